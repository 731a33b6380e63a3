//! Positions: pinned units keep their addresses, integrated units take `pcie.0` slots, and
//! the counts decide where new root ports and expanders go.

use std::collections::VecDeque;

use crate::catalog::{SlotRange, CLASS_PXB, CLASS_ROOT_PORT};
use crate::error::PlanError;
use crate::ilp::Place;

use super::{Assigner, Bus, Pos};

impl<'a> Assigner<'a> {
    /// Pinned devices keep their addresses.
    pub(super) fn place_pinned(&mut self) {
        for u in self.units.iter().filter(|u| u.pinned) {
            for &i in &u.devs {
                if let Some(a) = &self.req.devices[i].address {
                    self.place_device(i, Bus::Named(&a.bus), a.slot, a.function);
                }
            }
        }
    }

    /// R-INTEGRATED: integrated units in request order, lowest `pcie.0` slots first; units
    /// of a packable class share a slot's functions (policy `pack_integrated`).
    pub(super) fn place_integrated(&mut self) -> Result<(), PlanError> {
        let root = Bus::Named(self.cat.root.bus.as_str());
        let mut pack: Option<(u8, u8)> = None;
        let mut beside = self.world.pack_beside.iter();
        for ui in 0..self.units.len() {
            if self.place[ui] != Some(Place::Integrated) {
                continue;
            }
            let packable = self.unit_class[ui].is_some_and(|c| self.model.classes[c].packable);
            let spot = if packable { beside.next() } else { None };
            if let Some(&(slot, f)) = spot {
                self.put(ui, root, slot, f);
            } else if packable {
                let (slot, f) = match pack {
                    Some((s, f)) if f < self.cat.root.functions => (s, f),
                    _ => (self.next_root_slot()?, 0),
                };
                self.put(ui, root, slot, f);
                pack = Some((slot, f + 1));
            } else {
                let slot = self.next_root_slot()?;
                self.put(ui, root, slot, 0);
            }
        }
        Ok(())
    }

    /// New root-port positions on `pcie.0`: free functions of slots that hold only root
    /// ports, then the fresh slots the counts give (all their functions when root ports
    /// share slots), as many as the counts want.
    pub(super) fn root_port_positions(&mut self) -> Result<VecDeque<Pos<'a>>, PlanError> {
        let cat = self.cat;
        let root = Bus::Named(cat.root.bus.as_str());
        let rp = cat.adder_or_internal(CLASS_ROOT_PORT);
        let mut out: VecDeque<Pos> = self
            .world
            .root_partial
            .iter()
            .map(|&(slot, function)| root_port_at(root, slot, function))
            .collect();
        let per = if rp.aggregate { cat.root.functions } else { 1 };
        for _ in 0..self.counts.root_port_slots {
            let slot = self.next_port_slot()?;
            out.extend((0..per).map(|f| root_port_at(root, slot, f)));
        }
        out.truncate(self.counts.root_ports as usize);
        Ok(out)
    }

    /// Root-port positions per region: those of pinned expanders, then of the new
    /// expanders the counts give (NUMA regions first, each expander with its region's
    /// `numa_node`; then the global ones).
    pub(super) fn expander_positions(&mut self) -> Result<Vec<VecDeque<Pos<'a>>>, PlanError> {
        let cat = self.cat;
        let world = self.world;
        let root = Bus::Named(cat.root.bus.as_str());
        let rp = cat.adder_or_internal(CLASS_ROOT_PORT);
        let pxb = cat.adder_or_internal(CLASS_PXB);
        let per = if rp.aggregate { pxb.bus.functions } else { 1 };
        let nreg = self.world.region_numa.len();
        let mut out: Vec<VecDeque<Pos>> = (0..nreg)
            .map(|r| {
                world.pxb_positions[r]
                    .iter()
                    .map(|(b, s, f)| root_port_at(Bus::Named(b), *s, *f))
                    .collect()
            })
            .collect();
        for r in 1..nreg {
            for _ in 0..self.counts.region_expanders.get(r).copied().unwrap_or(0) {
                let s = self.next_root_slot()?;
                let id = self.add(pxb, root, s, 0);
                if let Some(c) = self.plan.controllers.last_mut() {
                    c.numa_node = world.region_numa[r];
                }
                out[r].extend(root_ports_on(id, pxb.bus.slots, per));
            }
        }
        for _ in 0..self.counts.expanders {
            let s = self.next_root_slot()?;
            let id = self.add(pxb, root, s, 0);
            out[0].extend(root_ports_on(id, pxb.bus.slots, per));
        }
        Ok(out)
    }
}

/// A root-port position at `bus:slot.function`.
fn root_port_at(bus: Bus, slot: u8, function: u8) -> Pos {
    Pos {
        bus,
        slot,
        function,
        class: CLASS_ROOT_PORT,
    }
}

/// Root-port positions on a new expander `id`: every slot, `per` functions each.
fn root_ports_on(id: Bus, slots: SlotRange, per: u8) -> impl Iterator<Item = Pos> {
    (slots.min..=slots.max).flat_map(move |s| (0..per).map(move |f| root_port_at(id, s, f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expander_positions_go_slot_by_slot_then_function() {
        let got: Vec<(u8, u8)> = root_ports_on(Bus::Added(3), SlotRange { min: 0, max: 1 }, 2)
            .map(|p| {
                assert_eq!((p.bus, p.class), (Bus::Added(3), CLASS_ROOT_PORT));
                (p.slot, p.function)
            })
            .collect();
        assert_eq!(got, [(0, 0), (0, 1), (1, 0), (1, 1)]);
    }

    #[test]
    fn one_function_per_slot_when_ports_do_not_share_slots() {
        let x = Bus::Named("x");
        assert_eq!(root_ports_on(x, SlotRange { min: 3, max: 5 }, 1).count(), 3);
    }
}
