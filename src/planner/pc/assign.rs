//! Addresses for a `pc` plan from the program's counts, deterministically (O-TIE): units
//! in request order, `pci.0` slots lowest first, then the new bridges on the next `pci.0`
//! slots; bridge slots go to units with I/O BARs first (on bridges that have or get a
//! window, R-IO), then to the others. A chained bridge takes slot 31 of the bridge before it.

use std::collections::VecDeque;

use super::world::World;
use super::{class_of, Unit};
use crate::catalog::{Catalog, CLASS_PCI_BRIDGE};
use crate::error::PlanError;
use crate::ilp::pc::PcCounts;
use crate::plan::{PlacedController, PlacedDevice, Plan};
use crate::request::Request;
use crate::Text;

/// A place for one unit: a bus and a slot.
type Spot = (Text, u8);

/// Turns counts into a plan (before the finishing passes).
pub(super) struct Assigner<'a> {
    req: &'a Request,
    cat: &'a Catalog,
    units: &'a [Unit],
    counts: &'a PcCounts,
    world: &'a World,
    plan: Plan,
}

/// The temporary id of the `k`-th new bridge (not a valid request id, so it collides with
/// none; the finishing pass names it `br1`, `br2`, ...).
fn temp_id(k: u32) -> Text {
    compact_str::format_compact!("#br{k}")
}

impl<'a> Assigner<'a> {
    pub fn new(
        req: &'a Request,
        cat: &'a Catalog,
        units: &'a [Unit],
        counts: &'a PcCounts,
        world: &'a World,
        pinned: Plan,
    ) -> Assigner<'a> {
        Assigner {
            req,
            cat,
            units,
            counts,
            world,
            plan: pinned,
        }
    }

    fn short(what: &str) -> PlanError {
        PlanError::Internal(format!("the pc assigner ran out of {what}"))
    }

    pub fn run(mut self) -> Result<Plan, PlanError> {
        let c = self.counts;
        self.plan.root_hotplug = Some(c.root_hotplug);
        self.plan.cost = c.bridges();
        self.plan.optimal = c.optimal;
        // Which units go on pci.0: per class, the first ones in request order.
        let mut take = c.on_root;
        let (mut on_root, mut bridged) = (Vec::new(), Vec::new());
        for (i, u) in self.units.iter().enumerate().filter(|(_, u)| !u.pinned) {
            let k = class_of(u);
            if take[k] > 0 {
                take[k] -= 1;
                on_root.push(i);
            } else {
                bridged.push(i);
            }
        }
        let mut root: VecDeque<u8> = self.world.root_slots.iter().copied().collect();
        let root_bus = Text::from(self.cat.root.bus.as_str());
        // Adopting: new bridges on pci.0 take the slots where they renumber no existing
        // bridge first (G-ID), before the units; a plain plan puts them after the units.
        let mut bridge_root: VecDeque<u8> = VecDeque::new();
        if let Some(late) = &self.world.late_root {
            let want = c.bridges_root as usize;
            let mut pick: Vec<u8> = late.iter().copied().take(want).collect();
            for &s in root.iter() {
                if pick.len() >= want {
                    break;
                }
                if !pick.contains(&s) {
                    pick.push(s);
                }
            }
            pick.sort_unstable();
            root.retain(|s| !pick.contains(s));
            bridge_root = pick.into();
        }
        for &i in &on_root {
            let slot = root.pop_front().ok_or_else(|| Self::short("pci.0 slots"))?;
            self.place(i, (root_bus.clone(), slot));
        }
        // New bridges: on pci.0, then chained.
        // A slot may take units with I/O BARs when its bridge has a window or gets one.
        let mut opened = c.opened.iter();
        let mut last: Option<(&str, bool)> = None;
        let mut existing: Vec<(Spot, bool)> = Vec::with_capacity(self.world.bridge_slots.len());
        for s in &self.world.bridge_slots {
            let ok = match last {
                Some((b, ok)) if b == s.bridge => ok,
                _ => s.windowed || opened.next().copied().unwrap_or(false),
            };
            last = Some((&s.bridge, ok));
            existing.push(((s.bridge.clone(), s.slot), ok));
        }
        let bridge = self
            .cat
            .adder(CLASS_PCI_BRIDGE)
            .ok_or_else(|| Self::short("a pci-bridge model"))?;
        let (first, last) = (bridge.bus.slots.min, bridge.bus.slots.max);
        let mut fresh: Vec<Spot> = Vec::new();
        for k in 0..c.bridges() {
            let at = if k < c.bridges_root {
                let slot = bridge_root
                    .pop_front()
                    .or_else(|| root.pop_front())
                    .ok_or_else(|| Self::short("pci.0 slots"))?;
                (root_bus.clone(), slot)
            } else if k > 0 {
                (temp_id(k - 1), last)
            } else {
                let i = self
                    .world
                    .chain_start()
                    .ok_or_else(|| Self::short("bridge slots"))?;
                existing.remove(i).0
            };
            self.plan.controllers.push(PlacedController {
                id: temp_id(k),
                model: Text::from(bridge.model.as_str()),
                driver: Text::from(bridge.qemu.as_str()),
                bus: at.0,
                slot: at.1,
                function: 0,
                multifunction: false,
                chassis: None,
                port: None,
                hotplug: None,
                bus_nr: None,
                numa_node: None,
                io_reserve: None,
                added: true,
            });
            let chained_next = k + 1 < c.bridges() && k + 1 >= c.bridges_root;
            for slot in first..=last {
                if !(chained_next && slot == last) {
                    fresh.push((temp_id(k), slot));
                }
            }
        }
        // Units with I/O BARs on windowed existing bridges and new ones; then the rest.
        let (io, plain): (Vec<usize>, Vec<usize>) =
            bridged.into_iter().partition(|&i| self.units[i].io);
        let mut spots: Vec<(Spot, bool)> = existing;
        spots.extend(fresh.into_iter().map(|s| (s, true)));
        let mut free: Vec<Option<Spot>> = Vec::with_capacity(spots.len());
        let mut windowed: Vec<bool> = Vec::with_capacity(spots.len());
        for (s, w) in spots {
            free.push(Some(s));
            windowed.push(w);
        }
        for (list, need_window) in [(io, true), (plain, false)] {
            let mut next = 0;
            for i in list {
                while next < free.len()
                    && (free[next].is_none() || (need_window && !windowed[next]))
                {
                    next += 1;
                }
                let spot = free
                    .get_mut(next)
                    .and_then(Option::take)
                    .ok_or_else(|| Self::short("bridge slots"))?;
                self.place(i, spot);
            }
        }
        Ok(self.plan)
    }

    /// Puts unit `u`'s devices at functions 0, 1, ... of `spot`.
    fn place(&mut self, u: usize, (bus, slot): Spot) {
        for (f, &di) in self.units[u].devs.iter().enumerate() {
            let d = &self.req.devices[di];
            self.plan.devices.push(PlacedDevice {
                id: d.id.clone(),
                model: d.model.clone(),
                kind: self.req.kind_of(self.cat, d),
                bus: bus.clone(),
                slot,
                function: f as u8,
                multifunction: false,
                hotpluggable: false,
                hotplug: self.req.hotplug_of(d),
                group: d.group.clone(),
                numa_node: d.numa_node,
            });
        }
    }
}
