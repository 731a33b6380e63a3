//! Step 5 of planning: turning the solver's counts into addresses (lowest slots first,
//! request order preserved), then numbering chassis, ports and expander bus ranges.

use std::collections::{BTreeSet, VecDeque};

use crate::catalog::{
    Catalog, ControllerModel, CLASS_BRIDGE, CLASS_DOWNSTREAM, CLASS_PXB, CLASS_ROOT_PORT,
    CLASS_UPSTREAM,
};
use crate::error::{Cause, Explanation, PlanError};
use crate::idmap::IdMap;
use crate::ilp::{self, Counts, Model, Place};
use crate::plan::{PlacedController, PlacedDevice, Plan};
use crate::request::{Hotplug, Request};
use crate::rule::Rule;
use crate::topology::{Node, Topology};

use super::{Unit, World};

/// A new-port position: the bus and (slot, function) where a port can be added.
#[derive(Debug, Clone)]
struct Pos {
    bus: String,
    slot: u8,
    function: u8,
    class: &'static str,
}

enum Taker {
    Unit(usize),
    Bridge,
    Upstream,
    Spare,
}

pub(super) struct Assigner<'a> {
    req: &'a Request,
    cat: &'a Catalog,
    units: &'a [Unit],
    unit_class: &'a [Option<usize>],
    model: &'a Model,
    counts: &'a Counts,
    world: &'a World,
    plan: Plan,
    /// Names the request uses (and the root bus): added controllers get other names.
    ids: IdMap<&'a str, ()>,
    counters: IdMap<&'static str, u32>,
    place: Vec<Option<Place>>,
    root_free: VecDeque<u8>,
    /// Per NUMA region, the units without a NUMA node placed on its bridges.
    hosted: Vec<Vec<usize>>,
    /// Free ports NUMA regions left, lent to the global region: (id, hot-pluggable).
    lent: Vec<(String, bool)>,
}

impl<'a> Assigner<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        req: &'a Request,
        cat: &'a Catalog,
        units: &'a [Unit],
        unit_class: &'a [Option<usize>],
        model: &'a Model,
        counts: &'a Counts,
        world: &'a World,
        pinned: Plan,
    ) -> Self {
        let mut ids: IdMap<&'a str, ()> = IdMap::default();
        ids.reserve(req.devices.len() + req.controllers.len() + 1);
        ids.extend(req.devices.iter().map(|d| (d.id.as_str(), ())));
        ids.extend(req.controllers.iter().map(|c| (c.id.as_str(), ())));
        ids.insert(cat.root.bus.as_str(), ());
        // Which placement each unit gets: per class, in request order, Integrated, OffPort, Port, Bridge.
        let mut left: Vec<[u32; 4]> = counts.placed.clone();
        let place: Vec<Option<Place>> = unit_class
            .iter()
            .map(|k| {
                let ci = (*k)?;
                ilp::PLACES.iter().copied().find(|&p| {
                    if left[ci][p as usize] > 0 {
                        left[ci][p as usize] -= 1;
                        true
                    } else {
                        false
                    }
                })
            })
            .collect();
        let mut plan = pinned;
        plan.devices.clear();
        // Conventional units without a NUMA node that go on NUMA nodes' bridges: per region,
        // first those with I/O BARs, then the others, in request order.
        let mut hosted: Vec<Vec<usize>> = vec![Vec::new(); model.regions.len()];
        let mut taken: BTreeSet<usize> = BTreeSet::new();
        let global_bridged = |io: bool| -> Vec<usize> {
            (0..units.len())
                .filter(|&u| {
                    place[u] == Some(Place::Bridge) && units[u].numa.is_none() && units[u].io == io
                })
                .collect()
        };
        let (io_units, plain_units) = (global_bridged(true), global_bridged(false));
        for r in 1..model.regions.len() {
            for (want, pool) in [
                (counts.hosted_io.get(r).copied().unwrap_or(0), &io_units),
                (counts.hosted.get(r).copied().unwrap_or(0), &plain_units),
            ] {
                let pick: Vec<usize> = pool
                    .iter()
                    .copied()
                    .filter(|u| !taken.contains(u))
                    .take(want as usize)
                    .collect();
                taken.extend(pick.iter().copied());
                hosted[r].extend(pick);
            }
        }
        Assigner {
            req,
            cat,
            units,
            unit_class,
            model,
            counts,
            world,
            plan,
            ids,
            counters: IdMap::default(),
            place,
            root_free: world.root_free.iter().copied().collect(),
            hosted,
            lent: Vec::new(),
        }
    }

    /// The next free name with `prefix` (`rp1`, `rp2`, ...). Names made here differ from
    /// each other by prefix or number, so only the request's names need skipping.
    fn new_id(&mut self, prefix: &'static str) -> String {
        let n = self.counters.entry(prefix).or_insert(0);
        loop {
            *n += 1;
            let id = format!("{prefix}{n}");
            if !self.ids.contains_key(id.as_str()) {
                return id;
            }
        }
    }

    fn add(
        &mut self,
        m: &ControllerModel,
        _prefix: &'static str,
        bus: &str,
        slot: u8,
        function: u8,
    ) -> String {
        // A temporary name no request id can have; `finish` names added controllers for good.
        let id = format!("#{}", self.plan.controllers.len());
        let is_port = m.hotplug == crate::catalog::HotplugControl::Property;
        self.plan.controllers.push(PlacedController {
            id: id.clone(),
            model: m.model.clone(),
            driver: m.qemu.clone(),
            bus: bus.to_string(),
            slot,
            function,
            multifunction: false,
            chassis: None,
            port: None,
            hotplug: is_port.then_some(true),
            bus_nr: None,
            numa_node: None,
            io_reserve: None,
            added: true,
        });
        id
    }

    fn put(&mut self, unit: usize, bus: &str, slot: u8, first_function: u8) {
        for (k, &i) in self.units[unit].devs.iter().enumerate() {
            let d = &self.req.devices[i];
            self.plan.devices.push(PlacedDevice {
                id: d.id.clone(),
                model: d.model.clone(),
                kind: self.req.kind_of(self.cat, d),
                bus: bus.to_string(),
                slot,
                function: first_function + k as u8,
                multifunction: false,
                hotpluggable: false,
                hotplug: self.req.hotplug_of(d),
                group: d.group.clone(),
                numa_node: d.numa_node,
            });
        }
    }

    fn next_root_slot(&mut self) -> Result<u8, PlanError> {
        self.root_free.pop_front().ok_or_else(|| {
            PlanError::Solver("internal error: ran out of pcie.0 slots the solver counted".into())
        })
    }

    pub(super) fn run(mut self) -> Result<Plan, PlanError> {
        let cat = self.cat;
        let root = cat.root.bus.clone();
        // Pinned devices keep their addresses.
        for (ui, u) in self.units.iter().enumerate() {
            if u.pinned {
                for &i in &u.devs {
                    if let Some(a) = &self.req.devices[i].address {
                        let (bus, slot, f) = (a.bus.clone(), a.slot, a.function);
                        let d = &self.req.devices[i];
                        self.plan.devices.push(PlacedDevice {
                            id: d.id.clone(),
                            model: d.model.clone(),
                            kind: self.req.kind_of(cat, d),
                            bus,
                            slot,
                            function: f,
                            multifunction: false,
                            hotpluggable: false,
                            hotplug: self.req.hotplug_of(d),
                            group: d.group.clone(),
                            numa_node: d.numa_node,
                        });
                    }
                }
                let _ = ui;
            }
        }
        // A. Integrated units, request order, lowest slots first.
        let mut pack: Option<(u8, u8)> = None;
        for ui in 0..self.units.len() {
            if self.place[ui] != Some(Place::Integrated) {
                continue;
            }
            let packable = self.unit_class[ui]
                .map(|c| self.model.classes[c].packable)
                .unwrap_or(false);
            if packable {
                let (slot, f) = match pack {
                    Some((s, f)) if f < cat.root.functions => (s, f),
                    _ => (self.next_root_slot()?, 0),
                };
                self.put(ui, &root, slot, f);
                pack = Some((slot, f + 1));
            } else {
                let slot = self.next_root_slot()?;
                self.put(ui, &root, slot, 0);
            }
        }
        // B. Root-port positions on pcie.0: partial slots, then k0 fresh slots.
        let rp = cat.adder_or_internal(CLASS_ROOT_PORT);
        let mut root_positions: VecDeque<Pos> = self
            .world
            .root_partial
            .iter()
            .map(|&(s, f)| Pos {
                bus: root.clone(),
                slot: s,
                function: f,
                class: CLASS_ROOT_PORT,
            })
            .collect();
        for _ in 0..self.counts.root_port_slots {
            let s = self.next_root_slot()?;
            let per = if rp.aggregate { cat.root.functions } else { 1 };
            for f in 0..per {
                root_positions.push_back(Pos {
                    bus: root.clone(),
                    slot: s,
                    function: f,
                    class: CLASS_ROOT_PORT,
                });
            }
        }
        root_positions.truncate(self.counts.root_ports as usize);
        // C. Expanders: NUMA regions needing one, then global ones.
        let pxb = cat.adder_or_internal(CLASS_PXB);
        let positions_on = |id: &str| -> Vec<Pos> {
            let per = if rp.aggregate { pxb.bus.functions } else { 1 };
            (pxb.bus.slots.min..=pxb.bus.slots.max)
                .flat_map(|s| (0..per).map(move |f| (s, f)))
                .map(|(s, f)| Pos {
                    bus: id.to_string(),
                    slot: s,
                    function: f,
                    class: CLASS_ROOT_PORT,
                })
                .collect()
        };
        let nreg = self.world.region_numa.len();
        let mut region_positions: Vec<VecDeque<Pos>> = (0..nreg)
            .map(|r| {
                self.world.pxb_positions[r]
                    .iter()
                    .map(|(b, s, f)| Pos {
                        bus: b.clone(),
                        slot: *s,
                        function: *f,
                        class: CLASS_ROOT_PORT,
                    })
                    .collect()
            })
            .collect();
        for r in 1..nreg {
            for _ in 0..self.counts.region_expanders.get(r).copied().unwrap_or(0) {
                let s = self.next_root_slot()?;
                let id = self.add(pxb, "pxb", &root, s, 0);
                if let Some(c) = self.plan.controllers.last_mut() {
                    c.numa_node = self.world.region_numa[r];
                }
                region_positions[r].extend(positions_on(&id));
            }
        }
        for _ in 0..self.counts.expanders {
            let s = self.next_root_slot()?;
            let id = self.add(pxb, "pxb", &root, s, 0);
            region_positions[0].extend(positions_on(&id));
        }

        // D. Ports. NUMA regions first, then the global region.
        let mut leftovers: VecDeque<Pos> = VecDeque::new();
        let mut spare_existing = 0u32;
        for r in (1..nreg).chain(std::iter::once(0)) {
            let mut pool: VecDeque<Pos> = if r == 0 {
                let mut p = root_positions.clone();
                p.extend(region_positions[0].drain(..));
                p.extend(leftovers.drain(..));
                p
            } else {
                std::mem::take(&mut region_positions[r])
            };
            let left = self.ports_for_region(r, &mut pool, &mut spare_existing)?;
            if r != 0 {
                leftovers.extend(left);
            }
        }
        self.cleanup();
        self.finish();
        Ok(self.plan)
    }

    /// Places the units of region `r` that need ports or bridges; returns unused positions.
    fn ports_for_region(
        &mut self,
        r: usize,
        pool: &mut VecDeque<Pos>,
        spare_existing: &mut u32,
    ) -> Result<VecDeque<Pos>, PlanError> {
        let cat = self.cat;
        let region_of_unit = |u: &Unit| {
            u.numa
                .and_then(|n| self.world.region_numa.iter().position(|&x| x == Some(n)))
                .unwrap_or(0)
        };
        let mine: Vec<usize> = (0..self.units.len())
            .filter(|&i| !self.units[i].pinned && region_of_unit(&self.units[i]) == r)
            .collect();
        // Conventional units without a NUMA node that the solver put on a NUMA node's bridges.
        let hosted: Vec<usize> = if r == 0 {
            Vec::new()
        } else {
            self.hosted.get(r).cloned().unwrap_or_default()
        };
        let port_units: Vec<usize> = mine
            .iter()
            .copied()
            .filter(|&i| matches!(self.place[i], Some(Place::Port | Place::OffPort)))
            .collect();
        let hosted_anywhere: BTreeSet<usize> = self.hosted.iter().flatten().copied().collect();
        let bridge_units: Vec<usize> = mine
            .iter()
            .copied()
            .filter(|&i| self.place[i] == Some(Place::Bridge) && !hosted_anywhere.contains(&i))
            .chain(hosted)
            .collect();

        // Bridges needed after existing free bridge slots.
        let br = cat.adder_or_internal(CLASS_BRIDGE);
        let free_bridge = self.world.bridge_slots[r].len();
        let new_bridges = bridge_units
            .len()
            .saturating_sub(free_bridge)
            .div_ceil(br.bus.slots.len() as usize);
        let switches = if r == 0 {
            self.counts.switches as usize
        } else {
            0
        };

        // Consumers: switch upstreams, units, bridges, spares.
        let mut takers: Vec<Taker> = Vec::new();
        takers.extend((0..switches).map(|_| Taker::Upstream));
        takers.extend(port_units.iter().map(|&u| Taker::Unit(u)));
        takers.extend((0..new_bridges).map(|_| Taker::Bridge));

        // Existing free ports: off ports to off units, on ports to on units, then either to
        // what does not care (any units, bridges, switch upstreams; off ports first, so that
        // hot-pluggable ones stay for spares).
        // Ports that only endpoints may use are listed first and skipped for the others.
        // The global region also gets what NUMA regions left of their free ports.
        // (Only the global region takes them: a NUMA region planned before it must not
        // drop what an earlier NUMA region lent.)
        let lent = if r == 0 {
            std::mem::take(&mut self.lent)
        } else {
            Vec::new()
        };
        let list = |hp: bool| -> VecDeque<(String, bool)> {
            let mut v: Vec<(String, bool)> = self
                .world
                .ports
                .iter()
                .filter(|p| p.region == r && p.hotplug == hp)
                .map(|p| (p.id.clone(), p.endpoint_only))
                .collect();
            v.sort_by_key(|p| !p.1);
            if r == 0 {
                v.extend(
                    lent.iter()
                        .filter(|(_, h)| *h == hp)
                        .map(|(id, _)| (id.clone(), false)),
                );
            }
            v.into()
        };
        let (mut e_off, mut e_on) = (list(false), list(true));
        fn take(q: &mut VecDeque<(String, bool)>, endpoint: bool) -> Option<String> {
            let i = q.iter().position(|p| endpoint || !p.1)?;
            q.remove(i).map(|p| p.0)
        }
        let mut got: Vec<Option<String>> = vec![None; takers.len()];
        let hp_of = |t: &Taker| match t {
            Taker::Unit(u) => self.units[*u].hp,
            Taker::Spare => Hotplug::On,
            Taker::Bridge | Taker::Upstream => Hotplug::Any,
        };
        let is_unit = |t: &Taker| matches!(t, Taker::Unit(_));
        for (k, t) in takers.iter().enumerate() {
            if hp_of(t) == Hotplug::Off {
                got[k] = take(&mut e_off, is_unit(t));
            }
        }
        for (k, t) in takers.iter().enumerate() {
            if got[k].is_none() && hp_of(t) == Hotplug::On {
                got[k] = take(&mut e_on, is_unit(t));
            }
        }
        for (k, t) in takers.iter().enumerate() {
            if got[k].is_none() && hp_of(t) == Hotplug::Any {
                got[k] = take(&mut e_off, is_unit(t)).or_else(|| take(&mut e_on, is_unit(t)));
            }
        }
        // A bridge or switch on an existing port below a pinned expander takes one of the bus
        // numbers its range leaves: one fewer new port fits there.
        for (k, t) in takers.iter().enumerate() {
            if is_unit(t) {
                continue;
            }
            let Some(id) = &got[k] else { continue };
            if let Some(pxb) = self
                .world
                .ports
                .iter()
                .find(|p| &p.id == id)
                .and_then(|p| p.pxb.as_ref())
            {
                if let Some(i) = pool.iter().rposition(|p| &p.bus == pxb) {
                    pool.remove(i);
                }
            }
        }
        // Spares (global): existing empty hot-pluggable ports count first.
        if r != 0 {
            // Left over: lent to the global region (and counted as spares there, once).
            let ep = |id: &String| {
                self.world
                    .ports
                    .iter()
                    .any(|p| &p.id == id && p.endpoint_only)
            };
            for (id, _) in e_on.iter() {
                if ep(id) {
                    *spare_existing += 1;
                } else {
                    self.lent.push((id.clone(), true));
                }
            }
            for (id, _) in e_off.iter() {
                if !ep(id) {
                    self.lent.push((id.clone(), false));
                }
            }
        } else {
            let have = *spare_existing + e_on.len() as u32;
            let extra = self.req.policy.spare_ports.saturating_sub(have);
            for _ in 0..extra {
                takers.push(Taker::Spare);
                got.push(None);
            }
        }

        // New ports, in taker order (request order within units).
        let mut downstream: VecDeque<Pos> = self
            .world
            .upstream_slots
            .iter()
            .filter(|_| r == 0)
            .map(|(b, s)| Pos {
                bus: b.clone(),
                slot: *s,
                function: 0,
                class: CLASS_DOWNSTREAM,
            })
            .collect();
        let mut bridge_ports: Vec<String> = Vec::new();
        for (k, t) in takers.iter().enumerate() {
            let port = match got[k].take() {
                Some(p) => p,
                None => {
                    // A bridge or switch takes a bus number of its own: on a pinned expander
                    // with a bus_nr range it also uses up one more position there, so it goes
                    // elsewhere when it can.
                    let capped = |p: &Pos| self.world.capped_pxbs.contains(&p.bus);
                    let next = if is_unit(t) {
                        pool.pop_front()
                    } else {
                        match pool.iter().position(|p| !capped(p)) {
                            Some(i) => pool.remove(i),
                            None => {
                                let first = pool.pop_front();
                                if let Some(f) = &first {
                                    if let Some(i) = pool.iter().rposition(|p| p.bus == f.bus) {
                                        pool.remove(i);
                                    }
                                }
                                first
                            }
                        }
                    };
                    let pos = match next.or_else(|| downstream.pop_front()) {
                        Some(p) => p,
                        // Only a pinned expander's bus_nr range can make the counted positions
                        // short (a bridge on one of its ports took a bus number).
                        None => {
                            return Err(PlanError::Infeasible(Explanation {
                                causes: vec![Cause {
                                    rule: Rule::BusNr,
                                    message: "the ports and bridges below the pinned pxb-pcie expanders need more bus numbers than their bus_nr ranges leave".into(),
                                    devices: self.world.ports.iter().filter_map(|p| p.pxb.clone()).collect::<BTreeSet<_>>().into_iter().collect(),
                                    need: 0,
                                    have: 0,
                                    hints: vec!["lower the bus_nr of the pinned pxb-pcie to leave room above it, or unpin it".to_string()],
                                }],
                            }))
                        }
                    };
                    let (m, prefix) = if pos.class == CLASS_DOWNSTREAM {
                        (cat.adder_or_internal(CLASS_DOWNSTREAM), "dp")
                    } else {
                        (cat.adder_or_internal(CLASS_ROOT_PORT), "rp")
                    };
                    let id = self.add(m, prefix, &pos.bus, pos.slot, pos.function);
                    if hp_of(t) == Hotplug::Off {
                        if let Some(c) = self.plan.controllers.last_mut() {
                            c.hotplug = Some(false);
                        }
                    }
                    id
                }
            };
            match t {
                Taker::Unit(u) => self.put(*u, &port, 0, 0),
                Taker::Bridge => bridge_ports.push(port),
                Taker::Upstream => {
                    let up = cat.adder_or_internal(CLASS_UPSTREAM);
                    let id = self.add(up, "up", &port, 0, 0);
                    for s in up.bus.slots.min..=up.bus.slots.max {
                        downstream.push_back(Pos {
                            bus: id.clone(),
                            slot: s,
                            function: 0,
                            class: CLASS_DOWNSTREAM,
                        });
                    }
                }
                Taker::Spare => {}
            }
        }
        // Bridge units: existing free slots, then the new bridges.
        let mut slots: VecDeque<(String, u8)> =
            self.world.bridge_slots[r].iter().cloned().collect();
        for port in bridge_ports {
            let id = self.add(br, "br", &port, 0, 0);
            for s in br.bus.slots.min..=br.bus.slots.max {
                slots.push_back((id.clone(), s));
            }
        }
        // Units with I/O BARs first, so that they share as few bridges (I/O windows) as possible.
        let mut bridge_units = bridge_units;
        bridge_units.sort_by_key(|&u| !self.units[u].io);
        for u in bridge_units {
            let (bus, slot) = slots.pop_front().ok_or_else(|| {
                PlanError::Solver("internal error: ran out of bridge slots".into())
            })?;
            self.put(u, &bus, slot, 0);
        }
        Ok(std::mem::take(pool))
    }

    /// Drops added expanders and switches that ended up empty.
    fn cleanup(&mut self) {
        let cat = self.cat;
        loop {
            let used: IdMap<&str, ()> = self
                .plan
                .controllers
                .iter()
                .map(|c| (c.bus.as_str(), ()))
                .chain(self.plan.devices.iter().map(|d| (d.bus.as_str(), ())))
                .collect();
            let keep: Vec<bool> = self
                .plan
                .controllers
                .iter()
                .map(|c| {
                    let class = cat
                        .controller(&c.model)
                        .map(|m| m.class.as_str())
                        .unwrap_or("");
                    !(c.added
                        && (class == CLASS_PXB || class == CLASS_UPSTREAM || class == CLASS_BRIDGE)
                        && !used.contains_key(c.id.as_str()))
                })
                .collect();
            if keep.iter().all(|&k| k) {
                break;
            }
            let mut keep = keep.into_iter();
            self.plan
                .controllers
                .retain(|_| keep.next().unwrap_or(true));
        }
    }

    /// Orders controllers, numbers chassis/ports/bus ranges, sets multifunction and flags.
    fn finish(&mut self) {
        let cat = self.cat;
        // One topology of the assigned plan gives the controller order (depth first, in
        // address order, so every bus is defined before it is used), the expander bus
        // ranges, io-reserve and each device's hot-pluggability; names do not matter to any
        // of them, so they are computed before added controllers get their final names.
        let t = Topology::build(&self.plan, cat);
        let below_root_order = t.descendants(t.root);
        // Controllers by index in `plan.controllers`, depth first in address order.
        let order: Vec<usize> = below_root_order
            .iter()
            .filter_map(|&n| t.ctrl_index(n))
            .collect();
        // Per controller index: (bus_nr, io_reserve) to set.
        let mut updates: Vec<(Option<u8>, Option<u32>)> =
            vec![(None, None); self.plan.controllers.len()];
        // Expander bus ranges: from the top down, each new expander below the previous range.
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        let mut below_root = 0u32;
        let mut new_pxbs: Vec<(usize, u32)> = Vec::new();
        for &n in &below_root_order {
            if !t.uses_bus_number(n) {
                continue;
            }
            let Node::Ctrl(c) = t.g[n] else { continue };
            if t.bus_type(n) == Some("pxb") {
                let size = 1 + t
                    .descendants(n)
                    .into_iter()
                    .filter(|&d| t.uses_bus_number(d))
                    .count() as u32;
                match c.bus_nr {
                    Some(nr) => ranges.push((u32::from(nr), u32::from(nr) + size - 1)),
                    None => new_pxbs.extend(t.ctrl_index(n).map(|i| (i, size))),
                }
            } else if t.expander_of(n).is_none() {
                below_root += 1;
            }
        }
        for (i, size) in new_pxbs {
            let mut hi = cat.bus_numbers.max;
            loop {
                if hi < size + below_root {
                    break;
                }
                let lo = hi + 1 - size;
                match ranges
                    .iter()
                    .filter(|&&(a, b)| a <= hi && b >= lo)
                    .map(|&(a, _)| a)
                    .min()
                {
                    Some(a) => hi = a.saturating_sub(1),
                    None => {
                        ranges.push((lo, hi));
                        updates[i].0 = u8::try_from(lo).ok();
                        break;
                    }
                }
            }
        }
        // io-reserve=0 on added ports with nothing below that has I/O BARs.
        for n in t.g.node_indices() {
            let Node::Ctrl(c) = t.g[n] else { continue };
            let Some(m) = t.model(n) else { continue };
            if c.added && m.props.iter().any(|p| p == "io-reserve") && t.io_windows(n) == 0 {
                if let Some(i) = t.ctrl_index(n) {
                    updates[i].1 = Some(0);
                }
            }
        }
        // Per device index: whether the guest can unplug it.
        let mut hp = vec![false; self.plan.devices.len()];
        for n in t.g.node_indices() {
            if let Some(i) = t.dev_index(n) {
                hp[i] = t.device_hotpluggable(n);
            }
        }
        drop(t);
        for (d, h) in self.plan.devices.iter_mut().zip(hp) {
            d.hotpluggable = h;
        }
        for (c, (nr, io)) in self.plan.controllers.iter_mut().zip(updates) {
            if nr.is_some() {
                c.bus_nr = nr;
            }
            if io.is_some() {
                c.io_reserve = io;
            }
        }
        let mut slots: Vec<Option<PlacedController>> =
            self.plan.controllers.drain(..).map(Some).collect();
        self.plan.controllers = order.iter().filter_map(|&i| slots[i].take()).collect();
        // Anything unreachable (cannot happen after pin validation) keeps its place at the end.
        let mut rest: Vec<PlacedController> = slots.into_iter().flatten().collect();
        rest.sort_by(|a, b| a.id.cmp(&b.id));
        self.plan.controllers.extend(rest);

        // Added controllers are named by class in address order (rp1, rp2, ...).
        self.counters.clear();
        let mut rename: IdMap<String, String> = IdMap::default();
        for i in 0..self.plan.controllers.len() {
            if !self.plan.controllers[i].added {
                continue;
            }
            let prefix = match cat
                .controller(&self.plan.controllers[i].model)
                .map(|m| m.class.as_str())
            {
                Some(CLASS_ROOT_PORT) => "rp",
                Some(CLASS_DOWNSTREAM) => "dp",
                Some(CLASS_UPSTREAM) => "up",
                Some(CLASS_BRIDGE) => "br",
                Some(CLASS_PXB) => "pxb",
                _ => "ctl",
            };
            let id = self.new_id(prefix);
            rename.insert(self.plan.controllers[i].id.clone(), id.clone());
            self.plan.controllers[i].id = id;
        }
        for c in &mut self.plan.controllers {
            if let Some(n) = rename.get(&c.bus) {
                c.bus = n.clone();
            }
        }
        for d in &mut self.plan.devices {
            if let Some(n) = rename.get(&d.bus) {
                d.bus = n.clone();
            }
        }

        // Chassis and port numbers for added ports, and for pinned ports that came without a
        // chassis (R-RP-ID: QEMU's default chassis 0 would collide; libvirt numbers them too).
        let mut used: BTreeSet<u8> = self
            .plan
            .controllers
            .iter()
            .filter_map(|c| c.chassis)
            .collect();
        let mut next = 1u8;
        for c in self
            .plan
            .controllers
            .iter_mut()
            .filter(|c| c.added || c.chassis.is_none())
        {
            let Some(m) = cat.controller(&c.model) else {
                continue;
            };
            if m.props.iter().any(|p| p == "chassis") {
                while used.contains(&next) && next < 255 {
                    next += 1;
                }
                used.insert(next);
                c.chassis = Some(next);
                let port = if m.class == CLASS_DOWNSTREAM {
                    c.slot
                } else {
                    c.slot.wrapping_mul(8).wrapping_add(c.function)
                };
                if c.added || c.port.is_none() {
                    c.port = Some(port);
                }
            }
        }

        // Multifunction: function 0 of every slot with a function > 0 in use.
        let multi: IdMap<(&str, u8), ()> = self
            .plan
            .controllers
            .iter()
            .map(|c| (c.bus.as_str(), c.slot, c.function))
            .chain(
                self.plan
                    .devices
                    .iter()
                    .map(|d| (d.bus.as_str(), d.slot, d.function)),
            )
            .filter(|&(_, _, f)| f > 0)
            .map(|(b, s, _)| ((b, s), ()))
            .collect();
        let mf_ctrl: Vec<bool> = self
            .plan
            .controllers
            .iter()
            .map(|c| c.function == 0 && multi.contains_key(&(c.bus.as_str(), c.slot)))
            .collect();
        let mf_dev: Vec<bool> = self
            .plan
            .devices
            .iter()
            .map(|d| d.function == 0 && multi.contains_key(&(d.bus.as_str(), d.slot)))
            .collect();
        drop(multi);
        for (c, mf) in self.plan.controllers.iter_mut().zip(mf_ctrl) {
            if mf {
                c.multifunction = true;
            }
        }
        for (d, mf) in self.plan.devices.iter_mut().zip(mf_dev) {
            if mf {
                d.multifunction = true;
            }
        }
        let order: IdMap<&str, usize> = self
            .req
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.as_str(), i))
            .collect();
        self.plan
            .devices
            .sort_by_key(|d| order.get(d.id.as_str()).copied().unwrap_or(usize::MAX));
        self.plan.cost = self.plan.controllers.iter().filter(|c| c.added).count() as u32;
        self.plan.optimal = self.counts.optimal && self.plan.cost == self.counts.cost;
        self.plan.name = self.req.name.clone();
        self.plan.machine = self.req.machine.clone();
    }
}
