//! Step 5 of planning: turning the solver's counts into addresses, lowest slots first and
//! request order preserved, then the finishing passes (`super::finish`).
//!
//! - `positions.rs`: pinned and integrated units, and where new root ports and expanders go;
//! - `ports.rs`: per region, the ports for units, bridges, switches and spares;
//! - `bridges.rs`: the bridges and the conventional units on them.

use std::collections::VecDeque;

use crate::catalog::{
    BusKind, Catalog, ControllerModel, DeviceModel, HotplugControl, CLASS_BRIDGE, CLASS_DOWNSTREAM,
    CLASS_PXB, CLASS_ROOT_PORT, CLASS_UPSTREAM,
};
use crate::error::PlanError;
use crate::ilp::{self, Counts, Model, Place};
use crate::plan::{PlacedController, PlacedDevice, Plan};
use crate::request::{Hotplug, Request};
use crate::Text;

use super::finish::{device_facts, finish, Named, Wiring};
use super::{Unit, World};

mod bridges;
mod pool;
mod ports;
mod positions;

/// A bus the assigner plugs into: an existing one by name (the root bus, a pinned
/// controller), or a controller it added, by its index in `plan.controllers` (it has no
/// name until `finish` names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bus<'a> {
    Named(&'a str),
    Added(usize),
}

/// A new-port position: the bus and (slot, function) where a port can be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos<'a> {
    bus: Bus<'a>,
    slot: u8,
    function: u8,
    class: &'static str,
}

/// What takes a port: a unit, a new bridge, a new switch's upstream port, or a spare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taker {
    Unit(usize),
    Bridge,
    Upstream,
    Spare,
}

impl Taker {
    /// The hotplug a taker needs of its port: a unit's own, `on` for spares, and either for
    /// bridges and switches (what sits below them decides).
    fn hotplug(self, units: &[Unit]) -> Hotplug {
        match self {
            Taker::Unit(u) => units[u].hp,
            Taker::Spare => Hotplug::On,
            Taker::Bridge | Taker::Upstream => Hotplug::Any,
        }
    }
}

/// What the assigner keeps of a controller it added, by its index in `plan.controllers`.
#[derive(Debug, Clone, Copy)]
struct Added<'a> {
    /// The bus it is plugged into.
    bus: Bus<'a>,
    /// An expander, switch or bridge, dropped when nothing ends up below it.
    droppable: bool,
    /// Controllers and devices plugged into it.
    below: u32,
}

impl Added<'_> {
    /// The added controller it is plugged into, if any.
    fn parent(&self) -> Option<usize> {
        match self.bus {
            Bus::Added(k) => Some(k),
            Bus::Named(_) => None,
        }
    }
}

/// Where a request device was placed, with its kind and `device_facts`: the plan's
/// `PlacedDevice` is built from it and the request once, in `wire`, rather than built here
/// and moved twice on its way into the plan.
#[derive(Debug, Clone, Copy)]
struct Placed<'a> {
    bus: Bus<'a>,
    slot: u8,
    function: u8,
    kind: BusKind,
    facts: (bool, bool),
}

/// The state of assignment: the plan as it grows, and what the counts still hand out.
pub(super) struct Assigner<'a> {
    req: &'a Request,
    cat: &'a Catalog,
    units: &'a [Unit],
    unit_class: &'a [Option<usize>],
    model: &'a Model,
    counts: &'a Counts,
    world: &'a World,
    plan: Plan,
    /// The placed devices by request index (they become `plan.devices` in request order).
    devices: Vec<Option<Placed<'a>>>,
    /// Per controller of `plan.controllers`, what the assigner keeps of it if it added it.
    added: Vec<Option<Added<'a>>>,
    /// Per controller of `plan.controllers`, its catalog model.
    models: Vec<Option<&'a ControllerModel>>,
    /// Each request device's catalog model, by device index, where the caller has them
    /// (else the catalog is asked as each is placed).
    dev_models: Option<&'a [Option<&'a DeviceModel>]>,
    /// How many controllers were pinned (they come first in `plan.controllers`).
    pinned: usize,
    place: Vec<Option<Place>>,
    root_free: VecDeque<u8>,
    /// Per NUMA region, the units without a NUMA node placed on its bridges.
    hosted: Vec<Vec<usize>>,
    /// Free ports NUMA regions left, lent to the global region: (id, hot-pluggable).
    lent: Vec<(&'a str, bool)>,
    /// The models new ports are added of: (root port, switch downstream port), looked up
    /// once rather than per port (`None`: asked as each is added).
    port_models: [Option<&'a ControllerModel>; 2],
    /// The model and driver names of the controller models added last, as the plan spells
    /// them: a plan adds controllers of few models, and a copy of a short name is a few
    /// words where spelling it again copies its bytes.
    names: [Option<(&'a ControllerModel, Text, Text)>; 2],
    /// What the pinned expander ranges still take (R-BUSNR); `None` without a pinned
    /// `bus_nr`.
    ranges: Option<ports::Ranges>,
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
        let place = unit_places(unit_class, &counts.placed);
        let hosted = hosted_units(
            units,
            &place,
            model.regions.len(),
            &counts.hosted_io,
            &counts.hosted,
        );
        let mut plan = pinned;
        plan.devices.clear();
        let pinned = plan.controllers.len();
        // Room for what the counts add (spares and all), so that the list never moves.
        let room = pinned + counts.cost as usize + 1;
        plan.controllers.reserve_exact(room - pinned);
        let mut added = Vec::with_capacity(room);
        added.resize(pinned, None);
        let mut models = Vec::with_capacity(room);
        models.extend(plan.controllers.iter().map(|c| cat.controller(&c.model)));
        let mut devices = Vec::with_capacity(req.devices.len());
        devices.resize_with(req.devices.len(), || None);
        Assigner {
            req,
            cat,
            units,
            unit_class,
            model,
            counts,
            world,
            plan,
            devices,
            added,
            models,
            dev_models: None,
            pinned,
            place,
            root_free: world.root_free.iter().copied().collect(),
            hosted,
            lent: Vec::new(),
            ranges: ports::Ranges::of(world, counts),
            port_models: [cat.adder(CLASS_ROOT_PORT), cat.adder(CLASS_DOWNSTREAM)],
            names: [None, None],
        }
    }

    /// The name `bus` has in the plan for now: none for an added controller (`finish` gives
    /// the final ones).
    fn bus_name(bus: Bus) -> Text {
        match bus {
            Bus::Named(name) => Text::from(name),
            Bus::Added(_) => Text::default(),
        }
    }

    /// Counts one more controller or device on `bus`.
    fn plug_into(&mut self, bus: Bus) -> Option<usize> {
        let Bus::Added(k) = bus else { return None };
        if let Some(Some(a)) = self.added.get_mut(k) {
            a.below += 1;
        }
        Some(k)
    }

    /// Adds a controller of model `m` at `bus:slot.function`, without a name yet (`finish`
    /// names added controllers); returns its bus.
    fn add(&mut self, m: &'a ControllerModel, bus: Bus<'a>, slot: u8, function: u8) -> Bus<'a> {
        let k = self.plan.controllers.len();
        let is_port = m.hotplug == HotplugControl::Property;
        self.plug_into(bus);
        let (model, driver) = self.names_of(m);
        self.plan.controllers.push(PlacedController {
            id: Text::default(),
            model,
            driver,
            bus: Self::bus_name(bus),
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
        let class = m.class.as_str();
        self.models.push(Some(m));
        self.added.push(Some(Added {
            bus,
            droppable: class == CLASS_PXB || class == CLASS_UPSTREAM || class == CLASS_BRIDGE,
            below: 0,
        }));
        Bus::Added(k)
    }

    /// The model and driver names of model `m` for the plan: copies of those kept in
    /// `names`, else spelled and kept there (in place of the older of the two).
    fn names_of(&mut self, m: &'a ControllerModel) -> (Text, Text) {
        for (l, model, driver) in self.names.iter().flatten() {
            if std::ptr::eq(*l, m) {
                return (model.clone(), driver.clone());
            }
        }
        let model = Text::from(m.model.as_str());
        let driver = Text::from(m.qemu.as_str());
        self.names[1] = self.names[0].take();
        self.names[0] = Some((m, model.clone(), driver.clone()));
        (model, driver)
    }

    /// Places request device `i` at `bus:slot.function`.
    fn place_device(&mut self, i: usize, bus: Bus<'a>, slot: u8, function: u8) {
        let d = &self.req.devices[i];
        self.plug_into(bus);
        // One catalog search for the kind (as `Request::kind_of`) and the facts.
        let m = match self.dev_models {
            Some(models) => models[i],
            None => self.cat.device(&d.model),
        };
        let kind = d.bus_kind.or(m.map(|m| m.kind)).unwrap_or(BusKind::Pcie);
        self.devices[i] = Some(Placed {
            bus,
            slot,
            function,
            kind,
            facts: device_facts(m, kind),
        });
    }

    /// Places a unit's devices on `bus:slot`, one function each from `first_function` on.
    fn put(&mut self, unit: usize, bus: Bus<'a>, slot: u8, first_function: u8) {
        for (k, &i) in self.units[unit].devs.iter().enumerate() {
            self.place_device(i, bus, slot, first_function + k as u8);
        }
    }
    /// A fresh `pcie.0` slot for a unit or a new expander: the lowest, or when adopting the
    /// one new ports would take last (G-ID).
    fn next_root_slot(&mut self) -> Result<u8, PlanError> {
        let out = || PlanError::Internal("ran out of pcie.0 slots the solver counted".into());
        // The lowest: the front, taken without `remove`'s general shuffle.
        let Some(order) = &self.world.port_slot_order else {
            return self.root_free.pop_front().ok_or_else(out);
        };
        // Adopting: slots new ports never take first (freed by moved units), then those
        // where a port would renumber most, leaving the ones that renumber nothing for the
        // ports (their early tail in reverse, then their late head in order).
        let late = order.len() - self.world.port_slots_early;
        let pos = |s: &u8| self.root_free.iter().position(|f| f == s);
        let at = (0..self.root_free.len())
            .find(|&i| !order.contains(&self.root_free[i]))
            .or_else(|| order[late..].iter().rev().find_map(pos))
            .or_else(|| order[..late].iter().find_map(pos));
        at.and_then(|i| self.root_free.remove(i)).ok_or_else(out)
    }

    /// A fresh `pcie.0` slot for new root ports: the lowest, or when adopting the next in
    /// the order that renumbers fewest existing buses (G-ID).
    fn next_port_slot(&mut self) -> Result<u8, PlanError> {
        let Some(order) = &self.world.port_slot_order else {
            return self.next_root_slot();
        };
        order
            .iter()
            .find_map(|s| self.root_free.iter().position(|f| f == s))
            .and_then(|i| self.root_free.remove(i))
            .ok_or_else(|| {
                PlanError::Internal(
                    "ran out of pcie.0 slots for the ports the solver counted".into(),
                )
            })
    }

    /// Uses `models`, each request device's catalog model by device index (as
    /// [`Request::resolve_models`] gives them), instead of asking the catalog again.
    pub(super) fn with_device_models(mut self, models: &'a [Option<&'a DeviceModel>]) -> Self {
        debug_assert_eq!(models.len(), self.req.devices.len());
        self.dev_models = Some(models);
        self
    }

    /// Assigns every unit an address, then runs the finishing passes.
    pub(super) fn run(mut self) -> Result<Plan, PlanError> {
        self.place_pinned();
        self.place_integrated()?;
        let root_positions = self.root_port_positions()?;
        let region_positions = self.expander_positions()?;
        self.place_ports(root_positions, region_positions)?;
        let wiring = self.wire();
        finish(&mut self.plan, self.req, self.cat, wiring);
        self.plan.cost = self.plan.controllers.iter().filter(|c| c.added).count() as u32;
        self.plan.optimal = self.counts.optimal && self.plan.cost == self.counts.cost;
        self.plan.name = self.req.name.clone();
        self.plan.machine = self.req.machine.clone();
        self.plan.firmware = self.req.firmware;
        Ok(self.plan)
    }

    /// Drops the added controllers left empty, moves the placed devices into the plan (in
    /// request order), and says how it is all wired.
    fn wire(&mut self) -> Wiring<'a> {
        let keep = keep_added(&mut self.added);
        // The index each controller kept gets.
        let mut kept = 0;
        let index: Vec<Option<usize>> = keep
            .iter()
            .map(|&k| {
                kept += usize::from(k);
                k.then(|| kept - 1)
            })
            .collect();
        let mut keeps = keep.iter();
        self.plan
            .controllers
            .retain(|_| keeps.next().copied().unwrap_or(true));
        let mut keeps = keep.iter();
        self.models
            .retain(|_| keeps.next().copied().unwrap_or(true));
        let devices = std::mem::take(&mut self.devices);
        let placed = devices.iter().flatten().count();
        let mut parent = Vec::with_capacity(1 + kept + placed);
        parent.push(None);
        let named = Named::new(
            self.cat.root.bus.as_str(),
            &self.plan.controllers[..self.pinned],
        );
        let node = |bus: Bus| match bus {
            Bus::Named(name) => named.node(name),
            Bus::Added(k) => index[k].map(|i| 1 + i),
        };
        for (k, a) in self.added.iter().enumerate() {
            match (a, index[k]) {
                (Some(a), Some(_)) => parent.push(node(a.bus)),
                (None, Some(i)) => parent.push(named.node(&self.plan.controllers[i].bus)),
                (_, None) => {}
            }
        }
        let mut dev_facts = Vec::with_capacity(placed);
        self.plan.devices.reserve_exact(placed);
        for (d, p) in self.req.devices.iter().zip(&devices) {
            let Some(p) = p else { continue };
            parent.push(node(p.bus));
            dev_facts.push(p.facts);
            self.plan.devices.push(PlacedDevice {
                id: d.id.clone(),
                model: d.model.clone(),
                kind: p.kind,
                bus: Self::bus_name(p.bus),
                slot: p.slot,
                function: p.function,
                multifunction: false,
                hotpluggable: false,
                hotplug: self.req.hotplug_of(d),
                group: d.group.clone(),
                numa_node: d.numa_node,
            });
        }
        Wiring {
            parent,
            models: std::mem::take(&mut self.models),
            dev_facts,
        }
    }
}

/// Which place each unit gets: per class, in request order, as many integrated as the
/// counts say, then off ports, ports and bridges (`counts[class][place]`).
fn unit_places(unit_class: &[Option<usize>], counts: &[[u32; 4]]) -> Vec<Option<Place>> {
    let mut left: Vec<[u32; 4]> = counts.to_vec();
    unit_class
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
        .collect()
}

/// Conventional units without a NUMA node that go on NUMA regions' bridges: per region
/// (from 1), `share_io[r]` of those with I/O BARs, then `share[r]` of the others, each in
/// request order and each unit once.
fn hosted_units(
    units: &[Unit],
    place: &[Option<Place>],
    regions: usize,
    share_io: &[u32],
    share: &[u32],
) -> Vec<Vec<usize>> {
    let mut hosted: Vec<Vec<usize>> = vec![Vec::new(); regions];
    if regions <= 1 {
        return hosted;
    }
    let mut taken = vec![false; units.len()];
    let global_bridged = |io: bool| -> Vec<usize> {
        (0..units.len())
            .filter(|&u| {
                place[u] == Some(Place::Bridge) && units[u].numa.is_none() && units[u].io == io
            })
            .collect()
    };
    let (io_units, plain_units) = (global_bridged(true), global_bridged(false));
    for (r, hosts) in hosted.iter_mut().enumerate().skip(1) {
        for (want, pool) in [
            (share_io.get(r).copied().unwrap_or(0), &io_units),
            (share.get(r).copied().unwrap_or(0), &plain_units),
        ] {
            let pick: Vec<usize> = pool
                .iter()
                .copied()
                .filter(|&u| !taken[u])
                .take(want as usize)
                .collect();
            for &u in &pick {
                taken[u] = true;
            }
            hosts.extend(pick);
        }
    }
    hosted
}

/// Which controllers stay: all but the added expanders, switches and bridges that ended
/// up with nothing below them (and then what that left empty). A controller comes after
/// the one it is plugged into, so one pass from the last catches the cascade.
fn keep_added(added: &mut [Option<Added<'_>>]) -> Vec<bool> {
    let mut keep = vec![true; added.len()];
    for k in (0..added.len()).rev() {
        let Some(a) = added[k] else { continue };
        if a.droppable && a.below == 0 {
            keep[k] = false;
            if let Some(Some(p)) = a.parent().map(|p| &mut added[p]) {
                p.below -= 1;
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::BusKind;
    use crate::topology::fixtures::request;

    /// A unit of one device with these traits.
    pub(super) fn unit(dev: usize, hp: Hotplug, io: bool, numa: Option<u32>) -> Unit {
        Unit {
            devs: crate::planner::units::Devs::one(dev),
            kind: BusKind::Pci,
            hp,
            numa,
            grouped: false,
            pinned: false,
            io,
            mixed: false,
            root_only: false,
        }
    }

    #[test]
    fn places_follow_the_counts_in_request_order() {
        // Class 0: 1 integrated, 2 on ports; class 1: 1 on a bridge.
        let counts = [[1, 0, 2, 0], [0, 0, 0, 1]];
        let classes = [Some(0), Some(1), Some(0), None, Some(0), Some(1)];
        assert_eq!(
            unit_places(&classes, &counts),
            [
                Some(Place::Integrated),
                Some(Place::Bridge),
                Some(Place::Port),
                None,
                Some(Place::Port),
                None,
            ]
        );
    }

    #[test]
    fn numa_regions_host_io_units_first_each_once() {
        let units: Vec<Unit> = vec![
            unit(0, Hotplug::On, false, None),
            unit(1, Hotplug::On, true, None),
            unit(2, Hotplug::On, true, None),
            unit(3, Hotplug::On, false, Some(1)),
            unit(4, Hotplug::On, false, None),
        ];
        let place = vec![Some(Place::Bridge); 5];
        // Region 1 takes one unit with I/O and one without; region 2 one of each too.
        let hosted = hosted_units(&units, &place, 3, &[0, 1, 1], &[0, 1, 1]);
        assert_eq!(hosted, vec![vec![], vec![1, 0], vec![2, 4]]);
    }

    #[test]
    fn empty_added_expanders_and_bridges_are_dropped_in_cascade() {
        let a = |parent: Option<usize>, droppable, below| {
            Some(Added {
                bus: parent.map_or(Bus::Named("pcie.0"), Bus::Added),
                droppable,
                below,
            })
        };
        // #0 expander, #1 root port on it, #2 empty bridge on #1; #3 expander, #4 root port,
        // #5 bridge holding a device; 6 pinned; #7 expander, #8 empty bridge on it.
        let mut added = vec![
            a(None, true, 1),
            a(Some(0), false, 1),
            a(Some(1), true, 0),
            a(None, true, 1),
            a(Some(3), false, 1),
            a(Some(4), true, 1),
            None,
            a(None, true, 1),
            a(Some(7), true, 0),
        ];
        // Empty bridges go, then the expander #7 left empty; a root port is never dropped,
        // so the expander above it stays.
        let keep = keep_added(&mut added);
        assert_eq!(
            keep,
            [true, true, false, true, true, true, true, false, false]
        );
    }

    /// Plans a request and lists (id, bus, slot, function) of its controllers and devices.
    fn layout(json: &str) -> Vec<(String, String, u8, u8)> {
        let req = request(json);
        let p = crate::planner::plan(&req).expect("plans");
        p.controllers
            .iter()
            .map(|c| (c.id.to_string(), c.bus.to_string(), c.slot, c.function))
            .chain(
                p.devices
                    .iter()
                    .map(|d| (d.id.to_string(), d.bus.to_string(), d.slot, d.function)),
            )
            .collect()
    }

    fn at(id: &str, bus: &str, slot: u8, function: u8) -> (String, String, u8, u8) {
        (id.into(), bus.into(), slot, function)
    }

    #[test]
    fn integrated_first_then_root_ports_packed_on_one_slot() {
        let got = layout(
            r#"{"devices":[
                {"id":"a","model":"virtio-net-pci","hotplug":"off"},
                {"id":"b","model":"virtio-blk-pci"},
                {"id":"c","model":"virtio-blk-pci"}]}"#,
        );
        assert_eq!(
            got,
            [
                at("rp1", "pcie.0", 2, 0),
                at("rp2", "pcie.0", 2, 1),
                at("a", "pcie.0", 1, 0),
                at("b", "rp1", 0, 0),
                at("c", "rp2", 0, 0),
            ]
        );
    }

    #[test]
    fn pinned_devices_keep_their_address() {
        let got = layout(
            r#"{"devices":[
                {"id":"a","model":"virtio-net-pci","hotplug":"off",
                 "address":{"bus":"pcie.0","slot":5,"function":0}},
                {"id":"b","model":"virtio-net-pci","hotplug":"off"}]}"#,
        );
        assert_eq!(got, [at("a", "pcie.0", 5, 0), at("b", "pcie.0", 1, 0)]);
    }
}
