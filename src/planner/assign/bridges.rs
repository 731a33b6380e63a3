//! Bridges: how many new `pcie-pci-bridge`s a region needs, and which slot each of its
//! conventional units takes.

use std::collections::VecDeque;

use crate::catalog::CLASS_BRIDGE;
use crate::error::PlanError;

use super::super::Unit;
use super::{Assigner, Bus};

/// New bridges for `units` conventional units when `free` bridge slots exist already and a
/// new bridge has `per_bridge` slots.
pub(super) fn bridges_needed(units: usize, free: usize, per_bridge: u32) -> usize {
    units.saturating_sub(free).div_ceil(per_bridge as usize)
}

/// Units with I/O BARs first (stable), so that they share as few bridges (I/O windows, rule
/// R-IO) as possible.
fn io_first(mut bridge_units: Vec<usize>, units: &[Unit]) -> Vec<usize> {
    bridge_units.sort_by_key(|&u| !units[u].io);
    bridge_units
}

impl<'a> Assigner<'a> {
    /// Adds a bridge on each of `ports` and places `bridge_units` on region `r`'s free
    /// bridge slots, then on the new bridges' slots, lowest first.
    pub(super) fn place_bridge_units(
        &mut self,
        r: usize,
        ports: Vec<Bus<'a>>,
        bridge_units: Vec<usize>,
    ) -> Result<(), PlanError> {
        if bridge_units.is_empty() && ports.is_empty() {
            return Ok(());
        }
        let br = self.cat.adder_or_internal(CLASS_BRIDGE);
        let world = self.world;
        let mut slots: VecDeque<(Bus<'a>, u8)> = world.bridge_slots[r]
            .iter()
            .map(|(b, s)| (Bus::Named(b.as_str()), *s))
            .collect();
        for port in ports {
            let id = self.add(br, port, 0, 0);
            slots.extend((br.bus.slots.min..=br.bus.slots.max).map(|s| (id, s)));
        }
        for u in io_first(bridge_units, self.units) {
            let (bus, slot) = slots
                .pop_front()
                .ok_or_else(|| PlanError::Internal("ran out of bridge slots".into()))?;
            self.put(u, bus, slot, 0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::assign::tests::unit;
    use crate::request::Hotplug;

    #[test]
    fn bridges_cover_what_free_slots_do_not() {
        assert_eq!(bridges_needed(0, 0, 31), 0);
        assert_eq!(bridges_needed(3, 5, 31), 0);
        assert_eq!(bridges_needed(6, 5, 31), 1);
        assert_eq!(bridges_needed(32, 0, 31), 2);
    }

    #[test]
    fn units_with_io_bars_come_first_in_request_order() {
        let units: Vec<Unit> = [false, true, false, true]
            .iter()
            .enumerate()
            .map(|(i, &io)| unit(i, Hotplug::On, io, None))
            .collect();
        assert_eq!(io_first(vec![0, 1, 2, 3], &units), [1, 3, 0, 2]);
    }
}
