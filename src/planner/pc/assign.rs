//! Addresses for a `pc` plan from the program's counts, deterministically (O-TIE): units
//! in request order, `pci.0` slots lowest first, then the new bridges on the next `pci.0`
//! slots; bridge slots go to units with I/O BARs first (on bridges that have or get a
//! window, R-IO), then to the others. A chained bridge takes slot 31 of the bridge before it.

use std::collections::VecDeque;

use super::world::World;
use super::{class_of, Unit};
use crate::catalog::{Catalog, DeviceModel, CLASS_PCI_BRIDGE};
use crate::error::PlanError;
use crate::ilp::pc::PcCounts;
use crate::plan::{PlacedController, PlacedDevice, Plan};
use crate::planner::finish::{device_facts, Named, Wiring};
use crate::request::Request;
use crate::Text;

/// The bus of a place: one named in the pinned plan (`pci.0`, an existing bridge), or the
/// `k`-th new bridge, whose temporary id is made once per bridge rather than per slot.
#[derive(Clone, Copy)]
enum Bus<'w> {
    Named(&'w str),
    New(u32),
}

/// A place for one unit: a bus and a slot.
type Spot<'w> = (Bus<'w>, u8);

/// Turns counts into a plan (before the finishing passes).
pub(super) struct Assigner<'a> {
    req: &'a Request,
    cat: &'a Catalog,
    units: &'a [Unit],
    /// Each request device's catalog model, by device index.
    models: &'a [Option<&'a DeviceModel>],
    counts: &'a PcCounts,
    world: &'a World,
    plan: Plan,
    /// The devices placed so far (after the pinned plan's), for the finishing passes'
    /// wiring: each one's bus and [`device_facts`].
    dev_bus: Vec<Bus<'a>>,
    dev_facts: Vec<(bool, bool)>,
}

/// The temporary id of the `k`-th new bridge (not a valid request id, so it collides with
/// none; the finishing pass names it `br1`, `br2`, ...).
fn temp_id(k: u32) -> Text {
    compact_str::format_compact!("#br{k}")
}

/// The id of `bus` (`new_ids`: the new bridges' temporary ids, by number).
fn bus_text(bus: Bus, new_ids: &[Text]) -> Text {
    match bus {
        Bus::Named(name) => Text::from(name),
        Bus::New(k) => new_ids[k as usize].clone(),
    }
}

impl<'a> Assigner<'a> {
    pub fn new(
        req: &'a Request,
        cat: &'a Catalog,
        units: &'a [Unit],
        models: &'a [Option<&'a DeviceModel>],
        counts: &'a PcCounts,
        world: &'a World,
        pinned: Plan,
    ) -> Assigner<'a> {
        Assigner {
            req,
            cat,
            units,
            models,
            counts,
            world,
            plan: pinned,
            dev_bus: Vec::new(),
            dev_facts: Vec::new(),
        }
    }

    /// The plan's wiring by index (what [`Wiring::from_names`] would read from its names,
    /// without hashing them): the pinned plan's controllers and devices by their buses'
    /// names, the new bridges (on `bridge_buses`) and the placed devices by where the
    /// assigner put them, the `k`-th new bridge being the node after the pinned controllers
    /// and the bridges before it.
    fn wiring(
        &mut self,
        pinned_ctrls: usize,
        pinned_devs: usize,
        bridge_buses: &[Bus<'a>],
    ) -> Wiring<'a> {
        let cat = self.cat;
        let plan = &self.plan;
        let named = Named::new(cat.root.bus.as_str(), &plan.controllers[..pinned_ctrls]);
        let node = |bus: &Bus| match *bus {
            Bus::Named(name) => named.node(name),
            Bus::New(k) => Some(1 + pinned_ctrls + k as usize),
        };
        let mut parent = Vec::with_capacity(1 + plan.controllers.len() + plan.devices.len());
        parent.push(None);
        parent.extend(
            plan.controllers[..pinned_ctrls]
                .iter()
                .map(|c| named.node(&c.bus)),
        );
        parent.extend(bridge_buses.iter().map(node));
        parent.extend(
            plan.devices[..pinned_devs]
                .iter()
                .map(|d| named.node(&d.bus)),
        );
        parent.extend(self.dev_bus.iter().map(node));
        let models = plan
            .controllers
            .iter()
            .map(|c| cat.controller(&c.model))
            .collect();
        let mut dev_facts: Vec<(bool, bool)> = plan.devices[..pinned_devs]
            .iter()
            .map(|d| device_facts(cat.device(&d.model), d.kind))
            .collect();
        dev_facts.append(&mut self.dev_facts);
        Wiring {
            parent,
            models,
            dev_facts,
        }
    }

    fn short(what: &str) -> PlanError {
        PlanError::Internal(format!("the pc assigner ran out of {what}"))
    }

    /// The plan, and its wiring for the finishing passes.
    pub fn run(mut self) -> Result<(Plan, Wiring<'a>), PlanError> {
        let c = self.counts;
        let (pinned_ctrls, pinned_devs) = (self.plan.controllers.len(), self.plan.devices.len());
        self.plan.devices.reserve(self.req.devices.len());
        self.dev_bus.reserve(self.req.devices.len());
        self.dev_facts.reserve(self.req.devices.len());
        self.plan.root_hotplug = Some(c.root_hotplug);
        self.plan.cost = c.bridges();
        self.plan.optimal = c.optimal;
        let (on_root, bridged) = self.split_units();
        let mut root: VecDeque<u8> = self.world.root_slots.iter().copied().collect();
        let bridge_root = self.bridge_root_slots(&mut root);
        // Where each unit goes, by unit index; placed in unit (request) order at the end, so
        // that the plan's devices are in request order already when nothing is pinned.
        let mut spot_of: Vec<Option<Spot>> = vec![None; self.units.len()];
        let root_bus = Bus::Named(self.cat.root.bus.as_str());
        for &i in &on_root {
            let slot = root.pop_front().ok_or_else(|| Self::short("pci.0 slots"))?;
            spot_of[i] = Some((root_bus, slot));
        }
        let mut spots = self.existing_spots();
        let (new_ids, bridge_buses) = self.add_bridges(root, bridge_root, &mut spots)?;
        self.fill_bridges(bridged, spots, &mut spot_of)?;
        for (u, spot) in spot_of.into_iter().enumerate() {
            if let Some((bus, slot)) = spot {
                self.place(u, bus, &new_ids, slot);
            }
        }
        let w = self.wiring(pinned_ctrls, pinned_devs, &bridge_buses);
        // Debug builds and the unit tests (also `cargo test --release`) check it against
        // the plan's names.
        #[cfg(any(test, debug_assertions))]
        assert!(
            w.same_as(&Wiring::from_names(&self.plan, self.cat)),
            "the pc assigner's wiring is the plan's by its names"
        );
        Ok((self.plan, w))
    }

    /// The units that go on `pci.0` (per class, the first ones in request order, as many
    /// as the counts say) and those that go behind bridges, by unit index.
    fn split_units(&self) -> (Vec<usize>, Vec<usize>) {
        let mut take = self.counts.on_root;
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
        (on_root, bridged)
    }

    /// Adopting: the `pci.0` slots the new bridges there take, taken out of `root` before
    /// the units: first those where they renumber no existing bridge (G-ID). A plain plan
    /// takes none here; its bridges follow the units.
    fn bridge_root_slots(&self, root: &mut VecDeque<u8>) -> VecDeque<u8> {
        let Some(late) = &self.world.late_root else {
            return VecDeque::new();
        };
        let want = self.counts.bridges_root as usize;
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
        pick.into()
    }

    /// The free slots of existing bridges, each with whether it may take a unit with I/O
    /// BARs: its bridge has a window, or the counts open one there (R-IO).
    fn existing_spots(&self) -> Vec<(Spot<'a>, bool)> {
        let mut opened = self.counts.opened.iter();
        let mut last: Option<(&str, bool)> = None;
        let mut spots = Vec::with_capacity(self.world.bridge_slots.len());
        for s in &self.world.bridge_slots {
            let ok = match last {
                Some((b, ok)) if b == s.bridge => ok,
                _ => s.windowed || opened.next().copied().unwrap_or(false),
            };
            last = Some((&s.bridge, ok));
            spots.push(((Bus::Named(&s.bridge), s.slot), ok));
        }
        spots
    }

    /// Adds the new bridges: on `pci.0` (the slots of `bridge_root`, then the next of
    /// `root`), then chained, each on the last slot of the one before (the first chained
    /// one on an existing bridge's slot, taken from `spots`). Their slots join `spots`, all
    /// windowed. Answers the bridges' temporary ids and the buses they are on.
    fn add_bridges(
        &mut self,
        mut root: VecDeque<u8>,
        mut bridge_root: VecDeque<u8>,
        spots: &mut Vec<(Spot<'a>, bool)>,
    ) -> Result<(Vec<Text>, Vec<Bus<'a>>), PlanError> {
        let c = self.counts;
        let bridge = self
            .cat
            .adder(CLASS_PCI_BRIDGE)
            .ok_or_else(|| Self::short("a pci-bridge model"))?;
        let (first, last) = (bridge.bus.slots.min, bridge.bus.slots.max);
        let root_bus = Bus::Named(self.cat.root.bus.as_str());
        let mut fresh: Vec<Spot> = Vec::new();
        let mut new_ids: Vec<Text> = Vec::with_capacity(c.bridges() as usize);
        let mut buses = Vec::with_capacity(c.bridges() as usize);
        for k in 0..c.bridges() {
            let at = if k < c.bridges_root {
                let slot = bridge_root
                    .pop_front()
                    .or_else(|| root.pop_front())
                    .ok_or_else(|| Self::short("pci.0 slots"))?;
                (root_bus, slot)
            } else if k > 0 {
                (Bus::New(k - 1), last)
            } else {
                let i = self
                    .world
                    .chain_start()
                    .ok_or_else(|| Self::short("bridge slots"))?;
                spots.remove(i).0
            };
            new_ids.push(temp_id(k));
            buses.push(at.0);
            self.plan.controllers.push(PlacedController {
                id: new_ids[k as usize].clone(),
                model: Text::from(bridge.model.as_str()),
                driver: Text::from(bridge.qemu.as_str()),
                bus: bus_text(at.0, &new_ids),
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
                    fresh.push((Bus::New(k), slot));
                }
            }
        }
        spots.extend(fresh.into_iter().map(|s| (s, true)));
        Ok((new_ids, buses))
    }

    /// Bridge slots for the `bridged` units, in `spots` order: units with I/O BARs on
    /// windowed slots first, then the rest on what is left.
    fn fill_bridges(
        &self,
        bridged: Vec<usize>,
        spots: Vec<(Spot<'a>, bool)>,
        spot_of: &mut [Option<Spot<'a>>],
    ) -> Result<(), PlanError> {
        let (io, plain): (Vec<usize>, Vec<usize>) =
            bridged.into_iter().partition(|&i| self.units[i].io);
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
                spot_of[i] = Some(spot);
            }
        }
        Ok(())
    }

    /// Puts unit `u`'s devices at functions 0, 1, ... of `slot` on `bus` (`new_ids`: the new
    /// bridges' temporary ids).
    fn place(&mut self, u: usize, at: Bus<'a>, new_ids: &[Text], slot: u8) {
        let bus = bus_text(at, new_ids);
        for (f, &di) in self.units[u].devs.iter().enumerate() {
            let d = &self.req.devices[di];
            let kind = self.req.kind_of(self.cat, d);
            self.dev_bus.push(at);
            self.dev_facts.push(device_facts(self.models[di], kind));
            self.plan.devices.push(PlacedDevice {
                id: d.id.clone(),
                model: d.model.clone(),
                kind,
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
