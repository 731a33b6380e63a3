//! Planning one guest: request → classes → integer program → concrete addresses.
//!
//! 1. Validate the request and its pins (`validate_pins`).
//! 2. Read what the pinned topology already offers (free `pcie.0` slots, free ports, free
//!    bridge slots, expander positions) into a [`World`].
//! 3. Group devices into units (a multifunction group is one unit) and units into classes.
//! 4. Solve the class-count program (`ilp`).
//! 5. Turn the counts into addresses with a deterministic pass (lowest slots first, request
//!    order preserved), then number chassis, ports and expander bus ranges.
//! 6. Check the result with the independent validator before returning it.

use crate::rule::Rule;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::stable_graph::NodeIndex;

use crate::catalog::{BusKind, Catalog, CLASS_BRIDGE, CLASS_PXB, CLASS_ROOT_PORT, CLASS_UPSTREAM};
use crate::error::{Cause, Explanation, PlanError};
use crate::ilp::{self, Class, Counts, Model, Place, Region};
use crate::plan::Plan;
use crate::request::{Hotplug, Request};
use crate::topology::{pinned_plan, Node, Topology};
use crate::validate::{validate, validate_pins};

mod assign;
mod finish;
use assign::Assigner;

/// Plans one guest with the catalog its `machine` names.
///
/// ```
/// let req = pciplan::Request::from_json(r#"{
///   "devices": [
///     {"id": "net0", "model": "virtio-net-pci", "hotplug": "off"},
///     {"id": "disk0", "model": "virtio-blk-pci"}
///   ]}"#).unwrap();
/// let plan = pciplan::plan(&req).unwrap();
/// assert_eq!(plan.cost, 1); // one root port for the hot-pluggable disk
/// assert!(plan.optimal);
/// assert!(!plan.devices[0].hotpluggable && plan.devices[1].hotpluggable);
/// ```
pub fn plan(req: &Request) -> Result<Plan, PlanError> {
    let cat = Catalog::for_machine(&req.machine)?;
    plan_with(req, cat)
}

/// Plans one guest with an explicit catalog.
pub fn plan_with(req: &Request, cat: &Catalog) -> Result<Plan, PlanError> {
    let Prepared {
        units,
        pinned,
        world,
        model,
        unit_class,
    } = prepare(req, cat)?;
    let counts = solve_cached(&model)?;
    if counts.short() {
        return Err(PlanError::Infeasible(explain(
            req,
            cat,
            &units,
            &unit_class,
            &model,
            &counts,
            &world,
        )));
    }
    let plan = Assigner::new(
        req,
        cat,
        &units,
        &unit_class,
        &model,
        &counts,
        &world,
        pinned,
    )
    .run()?;
    let bad = validate(&plan, req, cat);
    if !bad.is_empty() && bad.iter().all(|v| v.rule == Rule::BusNr) {
        // The program budgets bus numbers in total and per pinned expander; a pinned
        // expander's bus_nr can still leave its subtree (or pcie.0's) too little room.
        return Err(PlanError::Infeasible(Explanation {
            causes: vec![Cause {
                rule: Rule::BusNr,
                message: format!(
                    "the guest bus numbers do not fit the pinned expander ranges: {}",
                    bad.iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                devices: bad.iter().map(|v| v.device.clone()).collect(),
                need: 0,
                have: cat.bus_numbers.max,
                hints: vec![
                    "lower the bus_nr of the pinned pxb-pcie to leave room above it, or unpin it"
                        .to_string(),
                    "fewer hot-pluggable devices need fewer ports".to_string(),
                ],
            }],
        }));
    }
    if !bad.is_empty() {
        let list: Vec<String> = bad.iter().map(|b| b.to_string()).collect();
        return Err(PlanError::Solver(format!(
            "internal error: the plan fails validation: {}",
            list.join("; ")
        )));
    }
    Ok(plan)
}

/// A request checked and turned into units, the pinned topology's offer, and the model.
struct Prepared {
    units: Vec<Unit>,
    pinned: Plan,
    world: World,
    model: Model,
    unit_class: Vec<Option<usize>>,
}

/// Steps 1-3 of planning, shared by [`plan_with`] and what-if `--max`: checks (shape,
/// models, pins), units, what the pinned topology offers, the class model, and the
/// prechecks for classes with no allowed place.
fn prepare(req: &Request, cat: &Catalog) -> Result<Prepared, PlanError> {
    req.check_shape()?;
    req.check_models(cat)?;
    let pins = validate_pins(req, cat);
    if !pins.is_empty() {
        return Err(PlanError::Pins(pins));
    }
    let units = units(req, cat)?;
    let pinned = pinned_plan(req, cat);
    let world = World::read(&pinned, req, cat);
    let io = cat.io_budget(req.firmware)?;
    let (model, unit_class) = build_model(req, cat, &units, &world, io.windows);
    precheck(req, &units, &unit_class, &model)?;
    Ok(Prepared {
        units,
        pinned,
        world,
        model,
        unit_class,
    })
}

/// Programs the solution memo holds at most.
const MEMO_PROGRAMS: usize = 20_000;

/// The process-wide memo of integer-program solutions, by numeric model.
fn solution_memo() -> &'static std::sync::Mutex<HashMap<Model, Counts>> {
    static MEMO: std::sync::OnceLock<std::sync::Mutex<HashMap<Model, Counts>>> =
        std::sync::OnceLock::new();
    MEMO.get_or_init(Default::default)
}

/// Empties the process-wide memo of integer-program solutions, so that the next plans solve
/// their programs afresh. Plans do not change; only their time does. Benchmarks use it to
/// time cold solves; a service has no need to (the memo is bounded at 20,000 programs).
///
/// ```
/// let req = pciplan::Request::from_json(r#"{"devices":[{"id":"d","model":"virtio-blk-pci"}]}"#).unwrap();
/// let before = pciplan::plan(&req).unwrap();
/// pciplan::forget_solutions();
/// assert_eq!(pciplan::plan(&req).unwrap(), before);
/// ```
pub fn forget_solutions() {
    if let Ok(mut m) = solution_memo().lock() {
        m.clear();
    }
}

fn solve_cached(model: &Model) -> Result<Counts, PlanError> {
    let cache = solution_memo();
    if let Ok(c) = cache.lock() {
        if let Some(hit) = c.get(model) {
            return Ok(hit.clone());
        }
    }
    let counts = ilp::solve(model).map_err(PlanError::Solver)?;
    if !counts.optimal {
        return Err(PlanError::Solver(format!(
            "no proven optimum within {} s",
            ilp::TIME_LIMIT_S
        )));
    }
    if let Ok(mut c) = cache.lock() {
        // A program and its solution take about 1-2 kB: 20,000 of them stay near 40 MB.
        if c.len() >= MEMO_PROGRAMS {
            c.clear();
        }
        c.insert(model.clone(), counts.clone());
    }
    Ok(counts)
}

/// A device or a multifunction group: what takes one slot.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    /// Request indices of its devices, in request order.
    pub devs: Vec<usize>,
    pub kind: BusKind,
    pub hp: Hotplug,
    pub numa: Option<u32>,
    pub grouped: bool,
    pub pinned: bool,
    /// Some member has an I/O BAR (rule R-IO).
    pub io: bool,
    /// A group of PCIe and conventional PCI members: only an integrated slot takes both
    /// (R-RP takes PCIe endpoints only, R-BRIDGE conventional ones only).
    pub mixed: bool,
    /// Some member's model is accepted by QEMU only on the root bus.
    pub root_only: bool,
}

fn units(req: &Request, cat: &Catalog) -> Result<Vec<Unit>, PlanError> {
    let mut out: Vec<Unit> = Vec::new();
    let mut by_group: BTreeMap<&str, usize> = BTreeMap::new();
    let mut never: Vec<String> = Vec::new();
    for (i, d) in req.devices.iter().enumerate() {
        let dm = cat.device(&d.model);
        let kind = d.bus_kind.or(dm.map(|m| m.kind)).unwrap_or(BusKind::Pcie);
        let io = dm.map(|m| m.io).unwrap_or(kind == BusKind::Pci);
        let mut hp = req.hotplug_of(d);
        if !dm.map(|m| m.hotpluggable).unwrap_or(true) {
            // QEMU never unplugs this model: `on` cannot be met, and `off` holds anywhere.
            match hp {
                Hotplug::On => never.push(d.id.clone()),
                Hotplug::Off => hp = Hotplug::Any,
                Hotplug::Any => {}
            }
        }
        let root_only = dm.is_some_and(|m| m.root_only);
        match &d.group {
            Some(g) => {
                if let Some(&u) = by_group.get(g.as_str()) {
                    let unit = &mut out[u];
                    let first = &req.devices[unit.devs[0]];
                    let bad = |msg: String| {
                        PlanError::Invalid(crate::error::InputError::new(
                            format!("devices[{i}].group"),
                            format!("device '{}': {msg} [D-GROUP]", d.id),
                        ))
                    };
                    if unit.numa != d.numa_node {
                        return Err(bad(format!(
                            "numa_node differs from '{}' in group '{g}'",
                            first.id
                        )));
                    }
                    if unit.pinned != d.address.is_some() {
                        return Err(bad(format!(
                            "group '{g}' is partly pinned: pin every member or none"
                        )));
                    }
                    unit.hp = match (unit.hp, hp) {
                        (Hotplug::On, Hotplug::Off) | (Hotplug::Off, Hotplug::On) => {
                            return Err(bad(format!(
                                "hotplug {} conflicts with '{}' (hotplug {}) in group '{g}'",
                                hp.as_str(),
                                first.id,
                                unit.hp.as_str()
                            )));
                        }
                        (Hotplug::Any, x) => x,
                        (x, _) => x,
                    };
                    unit.mixed |= kind != unit.kind;
                    if kind == BusKind::Pci {
                        unit.kind = BusKind::Pci;
                    }
                    unit.io |= io;
                    unit.root_only |= root_only;
                    unit.devs.push(i);
                    if unit.devs.len() > usize::from(cat.root.functions) {
                        return Err(bad(format!(
                            "group '{g}' has more than {} members",
                            cat.root.functions
                        )));
                    }
                } else {
                    by_group.insert(g, out.len());
                    out.push(Unit {
                        devs: vec![i],
                        kind,
                        hp,
                        numa: d.numa_node,
                        grouped: true,
                        pinned: d.address.is_some(),
                        io,
                        mixed: false,
                        root_only,
                    });
                }
            }
            None => out.push(Unit {
                devs: vec![i],
                kind,
                hp,
                numa: d.numa_node,
                grouped: false,
                pinned: d.address.is_some(),
                io,
                mixed: false,
                root_only,
            }),
        }
    }
    if !never.is_empty() {
        let models: BTreeSet<&str> = req
            .devices
            .iter()
            .filter(|d| never.contains(&d.id))
            .map(|d| d.model.as_str())
            .collect();
        return Err(PlanError::Infeasible(Explanation {
            causes: vec![Cause {
                rule: Rule::Hotplug,
                message: format!(
                    "{} device(s) must stay hot-unpluggable, but QEMU cannot hot-unplug {} anywhere ('does not support hotplugging')",
                    never.len(),
                    models.into_iter().collect::<Vec<_>>().join(", ")
                ),
                need: never.len() as u32,
                have: 0,
                devices: never,
                hints: vec!["set hotplug 'any' (or 'off') for them".to_string()],
            }],
        }));
    }
    Ok(out)
}

/// A free existing port.
#[derive(Debug, Clone)]
struct FreePort {
    id: String,
    hotplug: bool,
    region: usize,
    /// Below a pinned expander whose bus_nr range has no bus number left: only an endpoint
    /// may go there (a bridge or switch would need one more, R-BUSNR).
    endpoint_only: bool,
    /// The pinned expander with a bus_nr it is below, if any.
    pxb: Option<String>,
}

/// What the pinned topology already offers.
#[derive(Debug, Default)]
pub(crate) struct World {
    /// Free root slots, ascending.
    root_free: Vec<u8>,
    /// Free (slot, function) on root slots holding only root ports.
    root_partial: Vec<(u8, u8)>,
    /// NUMA node of each region (index 0 = none).
    region_numa: Vec<Option<u32>>,
    ports: Vec<FreePort>,
    /// Free bridge (bus, slot) per region, slots of bridges that already have an I/O
    /// window first.
    bridge_slots: Vec<Vec<(String, u8)>>,
    /// Of those, slots on bridges that already have an I/O window, per region.
    bridge_free_io: Vec<u32>,
    /// Existing bridges with free slots and no I/O window yet, per region.
    bridges_unwindowed: Vec<u32>,
    /// How many of `bridge_slots` belong to windowed bridges (they are at the front).
    windowed_front: Vec<usize>,
    /// Free root-port positions on existing expanders, per region.
    pxb_positions: Vec<Vec<(String, u8, u8)>>,
    /// Free downstream positions on existing switches.
    upstream_slots: Vec<(String, u8)>,
    bus_used: u32,
    /// I/O windows pinned controllers take (ports and bridges with I/O devices pinned below).
    io_used: u32,
    /// Bus numbers left for the pcie.0 hierarchy below the lowest pinned expander.
    root_bus_room: u32,
    pinned_pxb_numa: BTreeSet<u32>,
    /// Pinned expanders whose free positions are capped by their bus_nr range.
    capped_pxbs: BTreeSet<String>,
    /// Pinned endpoints on the root bus (for hints).
    root_pins: Vec<(String, String)>,
}

impl World {
    fn read(pinned: &Plan, req: &Request, cat: &Catalog) -> World {
        let t = Topology::build(pinned, cat);
        let mut w = World::default();
        let mut numas: BTreeSet<u32> = req
            .devices
            .iter()
            .filter(|d| d.address.is_none())
            .filter_map(|d| d.numa_node)
            .collect();
        let _ = &mut numas;
        w.region_numa = std::iter::once(None)
            .chain(numas.iter().map(|&n| Some(n)))
            .collect();
        let nreg = w.region_numa.len();
        w.bridge_slots = vec![Vec::new(); nreg];
        w.bridge_free_io = vec![0; nreg];
        w.bridges_unwindowed = vec![0; nreg];
        w.windowed_front = vec![0; nreg];
        w.pxb_positions = vec![Vec::new(); nreg];
        let region_of = |n: NodeIndex| -> usize {
            let numa = t.expander_of(n).and_then(|x| match t.g[x] {
                Node::Ctrl(c) => c.numa_node,
                _ => None,
            });
            numa.and_then(|m| w.region_numa.iter().position(|&r| r == Some(m)))
                .unwrap_or(0)
        };
        let occupied = |p: NodeIndex| -> BTreeMap<u8, Vec<(u8, NodeIndex)>> {
            let mut m: BTreeMap<u8, Vec<(u8, NodeIndex)>> = BTreeMap::new();
            for (s, f, c) in t.children(p) {
                m.entry(s).or_default().push((f, c));
            }
            m
        };
        let aggregate_only = |occ: &Vec<(u8, NodeIndex)>| {
            occ.iter()
                .all(|&(_, c)| t.model(c).map(|m| m.aggregate).unwrap_or(false))
        };
        // Root bus.
        let root_occ = occupied(t.root);
        for s in cat.root_free_slots() {
            match root_occ.get(&s) {
                None => w.root_free.push(s),
                Some(occ) if aggregate_only(occ) => {
                    for f in 0..cat.root.functions {
                        if !occ.iter().any(|o| o.0 == f) {
                            w.root_partial.push((s, f));
                        }
                    }
                }
                Some(occ) => {
                    for &(_, c) in occ {
                        if let Node::Dev(d) = t.g[c] {
                            w.root_pins.push((d.id.clone(), d.address().to_string()));
                        }
                    }
                }
            }
        }
        w.io_used = t.total_io_windows();
        w.root_bus_room = {
            let lowest = pinned
                .controllers
                .iter()
                .filter_map(|c| c.bus_nr.map(u32::from))
                .min();
            let below_root = t
                .descendants(t.root)
                .into_iter()
                .filter(|&n| {
                    t.uses_bus_number(n)
                        && t.bus_type(n) != Some("pxb")
                        && t.expander_of(n).is_none()
                })
                .count() as u32;
            lowest
                .map(|l| l.saturating_sub(1 + below_root))
                .unwrap_or(u32::MAX)
        };
        let mut rooms: BTreeMap<NodeIndex, usize> = BTreeMap::new();
        let mut ctrl_nodes: Vec<NodeIndex> = t.descendants(t.root);
        ctrl_nodes.retain(|&n| matches!(t.g[n], Node::Ctrl(_)));
        for n in ctrl_nodes {
            let Node::Ctrl(c) = t.g[n] else { continue };
            let Some(m) = t.model(n) else { continue };
            if m.uses_bus_number {
                w.bus_used += 1;
            }
            let occ = occupied(n);
            let region = region_of(n);
            match m.bus.bus_type.as_str() {
                "port" => {
                    if occ.is_empty() {
                        // Below a pinned expander with a bus_nr and no bus number left in its
                        // range (`rooms`), a free port takes endpoints only.
                        let below = t.expander_of(n).filter(|x| rooms.contains_key(x));
                        let endpoint_only = below.and_then(|x| rooms.get(&x)) == Some(&0);
                        let pxb = below.and_then(|x| match t.g[x] {
                            Node::Ctrl(c) => Some(c.id.clone()),
                            _ => None,
                        });
                        w.ports.push(FreePort {
                            id: c.id.clone(),
                            hotplug: t.bus_hotpluggable(n),
                            region,
                            endpoint_only,
                            pxb,
                        });
                    }
                }
                "pxb" => {
                    let r = c
                        .numa_node
                        .and_then(|m| w.region_numa.iter().position(|&x| x == Some(m)))
                        .unwrap_or(0);
                    if let Some(numa) = c.numa_node {
                        w.pinned_pxb_numa.insert(numa);
                    }
                    // R-BUSNR: its buses run from bus_nr up to the next expander's bus_nr (or
                    // the last bus number); new ports below it must fit in what is left.
                    let room = c.bus_nr.map(|nr| {
                        let nr = u32::from(nr);
                        let upper = pinned
                            .controllers
                            .iter()
                            .filter_map(|o| o.bus_nr.map(u32::from))
                            .filter(|&o| o > nr)
                            .min()
                            .unwrap_or(cat.bus_numbers.max + 1);
                        let size = 1 + t
                            .descendants(n)
                            .into_iter()
                            .filter(|&d| t.uses_bus_number(d))
                            .count() as u32;
                        upper.saturating_sub(nr + size) as usize
                    });
                    let before = w.pxb_positions[r].len();
                    for s in m.bus.slots.min..=m.bus.slots.max {
                        match occ.get(&s) {
                            None => (0..m.bus.functions)
                                .for_each(|f| w.pxb_positions[r].push((c.id.clone(), s, f))),
                            Some(o) if aggregate_only(o) => {
                                for f in 0..m.bus.functions {
                                    if !o.iter().any(|x| x.0 == f) {
                                        w.pxb_positions[r].push((c.id.clone(), s, f));
                                    }
                                }
                            }
                            Some(_) => {}
                        }
                    }
                    if let Some(room) = room {
                        w.pxb_positions[r].truncate(before + room);
                        rooms.insert(n, room);
                        w.capped_pxbs.insert(c.id.clone());
                    }
                }
                "switch" => {
                    for s in m.bus.slots.min..=m.bus.slots.max {
                        if !occ.contains_key(&s) {
                            w.upstream_slots.push((c.id.clone(), s));
                        }
                    }
                }
                "conventional" if t.bus_hotpluggable(n) => {
                    // R-IO: a bridge with I/O devices below already has its window; one
                    // without takes a new window when a device with I/O BARs joins it.
                    let windowed = t.io_windows(n) > 0;
                    let before = w.bridge_slots[region].len();
                    for s in m.bus.slots.min..=m.bus.slots.max {
                        if !occ.contains_key(&s) {
                            w.bridge_slots[region].push((c.id.clone(), s));
                        }
                    }
                    let added = (w.bridge_slots[region].len() - before) as u32;
                    if windowed {
                        w.bridge_free_io[region] += added;
                        // Windowed bridges' slots come first: units with I/O BARs fill them.
                        let mine: Vec<(String, u8)> =
                            w.bridge_slots[region].drain(before..).collect();
                        let at = w.windowed_front[region];
                        for (k, x) in mine.into_iter().enumerate() {
                            w.bridge_slots[region].insert(at + k, x);
                        }
                        w.windowed_front[region] += added as usize;
                    } else if added > 0 {
                        w.bridges_unwindowed[region] += 1;
                    }
                }
                _ => {}
            }
        }
        w
    }
}

fn allowed(req: &Request, u: &Unit, region: usize) -> [bool; 4] {
    let off = req.policy.hotplug_off;
    let mut a = [false; 4];
    a[Place::Integrated as usize] =
        region == 0 && u.hp != Hotplug::On && (u.hp != Hotplug::Off || off.allows_integrated());
    if u.root_only {
        return a;
    }
    a[Place::OffPort as usize] =
        !u.mixed && u.kind == BusKind::Pcie && u.hp == Hotplug::Off && off.allows_port();
    a[Place::Port as usize] = !u.mixed && u.kind == BusKind::Pcie && u.hp != Hotplug::Off;
    a[Place::Bridge as usize] = !u.mixed && u.kind == BusKind::Pci && u.hp != Hotplug::Off;
    a
}

fn build_model(
    req: &Request,
    cat: &Catalog,
    units: &[Unit],
    w: &World,
    io_windows: u32,
) -> (Model, Vec<Option<usize>>) {
    let mut keys: BTreeMap<(usize, BusKind, Hotplug, bool, bool, bool, bool), usize> =
        BTreeMap::new();
    let mut classes: Vec<Class> = Vec::new();
    let mut unit_class = Vec::with_capacity(units.len());
    for u in units {
        if u.pinned {
            unit_class.push(None);
            continue;
        }
        let region = u
            .numa
            .and_then(|n| w.region_numa.iter().position(|&r| r == Some(n)))
            .unwrap_or(0);
        let packable = !u.grouped && req.policy.pack_integrated;
        let key = (region, u.kind, u.hp, packable, u.io, u.mixed, u.root_only);
        let idx = *keys.entry(key).or_insert_with(|| {
            classes.push(Class {
                n: 0,
                allowed: allowed(req, u, region),
                region,
                off: u.hp == Hotplug::Off,
                any: u.hp == Hotplug::Any,
                packable,
                io: u.io,
            });
            classes.len() - 1
        });
        classes[idx].n += 1;
        unit_class.push(Some(idx));
    }
    // Classes were numbered in order of first appearance; that order is part of the key,
    // so sort them canonically and renumber, to make equal shapes give equal models.
    let mut order: Vec<usize> = (0..classes.len()).collect();
    order.sort_by_key(|&i| {
        let c = &classes[i];
        (c.region, c.allowed, c.off, c.any, c.packable, c.io)
    });
    let mut renum = vec![0; classes.len()];
    for (new, &old) in order.iter().enumerate() {
        renum[old] = new;
    }
    let classes: Vec<Class> = order.iter().map(|&i| classes[i].clone()).collect();
    let unit_class = unit_class
        .into_iter()
        .map(|c| c.map(|i| renum[i]))
        .collect();
    let regions = w
        .region_numa
        .iter()
        .enumerate()
        .map(|(r, numa)| Region {
            free_on: w
                .ports
                .iter()
                .filter(|p| p.region == r && p.hotplug)
                .count() as u32,
            free_off: w
                .ports
                .iter()
                .filter(|p| p.region == r && !p.hotplug)
                .count() as u32,
            free_on_endpoint_only: w
                .ports
                .iter()
                .filter(|p| p.region == r && p.hotplug && p.endpoint_only)
                .count() as u32,
            free_off_endpoint_only: w
                .ports
                .iter()
                .filter(|p| p.region == r && !p.hotplug && p.endpoint_only)
                .count() as u32,
            bridge_free: w.bridge_slots[r].len() as u32,
            bridge_free_io: w.bridge_free_io[r],
            bridges_unwindowed: w.bridges_unwindowed[r],
            pxb_free: w.pxb_positions[r].len() as u32,
            new_pxb: numa
                .map(|n| !w.pinned_pxb_numa.contains(&n))
                .unwrap_or(false),
        })
        .collect();
    let rp = cat.adder_or_internal(CLASS_ROOT_PORT);
    let pxb = cat.adder_or_internal(CLASS_PXB);
    let sw = cat.adder_or_internal(CLASS_UPSTREAM);
    let br = cat.adder_or_internal(CLASS_BRIDGE);
    let model = Model {
        classes,
        regions,
        root_free_slots: w.root_free.len() as u32,
        root_free_functions: w.root_partial.len() as u32,
        ports_per_slot: if rp.aggregate {
            u32::from(cat.root.functions)
        } else {
            1
        },
        int_per_slot: u32::from(cat.root.functions),
        pxb_cap: pxb.bus.slots.len()
            * if rp.aggregate {
                u32::from(pxb.bus.functions)
            } else {
                1
            },
        switch_cap: sw.bus.slots.len(),
        bridge_cap: br.bus.slots.len(),
        upstream_free: w.upstream_slots.len() as u32,
        spare: req.policy.spare_ports,
        bus_used: w.bus_used,
        bus_max: cat.bus_numbers.max,
        io_used: w.io_used,
        root_bus_room: w.root_bus_room,
        io_window_kib: cat.io_space.window_kib,
        io_max: io_windows,
    };
    (model, unit_class)
}

fn dev_ids(req: &Request, units: &[Unit], pick: impl Fn(&Unit) -> bool) -> Vec<String> {
    units
        .iter()
        .filter(|u| pick(u))
        .flat_map(|u| u.devs.iter().map(|&i| req.devices[i].id.clone()))
        .collect()
}

fn precheck(
    req: &Request,
    units: &[Unit],
    unit_class: &[Option<usize>],
    model: &Model,
) -> Result<(), PlanError> {
    let mut causes = Vec::new();
    for (ci, c) in model.classes.iter().enumerate() {
        if c.allowed.iter().any(|&a| a) {
            continue;
        }
        let members: Vec<&Unit> = units
            .iter()
            .zip(unit_class)
            .filter(|(_, k)| **k == Some(ci))
            .map(|(u, _)| u)
            .collect();
        let Some(u) = members.first() else { continue };
        let devices = dev_ids(req, units, |x| members.iter().any(|m| std::ptr::eq(*m, x)));
        let (rule, message, hints) = match (u.kind, u.hp, u.numa) {
            _ if u.mixed => (
                Rule::Group,
                format!(
                    "{} device(s) in group(s) mixing PCIe and conventional PCI functions: only an integrated pcie.0 slot takes both, and it {}",
                    devices.len(),
                    if u.numa.is_some() { "has no NUMA node" } else { "cannot be hot-unplugged" }
                ),
                vec!["split the group, or make its members the same kind (bus_kind)".to_string(), "or set hotplug 'any' or 'off' and drop numa_node for the group".to_string()],
            ),
            (BusKind::Pci, Hotplug::Off, Some(n)) => (
                Rule::Numa,
                format!("{} conventional PCI device(s) with hotplug off and numa_node {n}: they can only be integrated on pcie.0, which has no NUMA node", devices.len()),
                vec!["drop numa_node, or allow hotplug 'on'/'any' so they can sit on a bridge behind the node's expander".to_string()],
            ),
            (_, Hotplug::Off, Some(n)) => (
                Rule::Numa,
                format!("{} hotplug-off device(s) with numa_node {n} need a hotplug=off port below the node's pxb-pcie, but policy hotplug_off is 'integrated'", devices.len()),
                vec!["allow hotplug_off=auto (or port)".to_string()],
            ),
            (BusKind::Pci, Hotplug::Off, None) => (
                Rule::Off,
                format!("{} conventional PCI device(s) with hotplug off can only be integrated, but policy hotplug_off is 'port'", devices.len()),
                vec!["allow hotplug_off=auto".to_string(), "or set hotplug 'any' for them".to_string()],
            ),
            _ => (Rule::Hotplug, format!("{} device(s) have no place that meets their hotplug requirement", devices.len()), vec![]),
        };
        causes.push(Cause {
            rule: rule.into(),
            message,
            need: devices.len() as u32,
            have: 0,
            devices,
            hints,
        });
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(PlanError::Infeasible(Explanation { causes }))
    }
}

fn explain(
    req: &Request,
    cat: &Catalog,
    units: &[Unit],
    unit_class: &[Option<usize>],
    model: &Model,
    c: &Counts,
    w: &World,
) -> Explanation {
    let mut causes = Vec::new();
    let only_int = |ci: Option<usize>| {
        ci.map(|i| model.classes[i].allowed == [true, false, false, false])
            .unwrap_or(false)
    };
    if c.slack_slots > 0 {
        let forced: Vec<&Unit> = units
            .iter()
            .zip(unit_class)
            .filter(|(_, k)| only_int(**k))
            .map(|(u, _)| u)
            .collect();
        let mut devices = dev_ids(req, units, |x| forced.iter().any(|m| std::ptr::eq(*m, x)));
        if devices.is_empty() {
            // Nothing is forced onto pcie.0: the slots are missing for the ports that the
            // devices which must stay hot-pluggable (or need a bridge) sit behind.
            devices = dev_ids(req, units, |u| !u.pinned && u.hp != Hotplug::Off);
        }
        let need = model.root_free_slots + c.slack_slots;
        let forced_slots: u32 = {
            let packed = forced
                .iter()
                .filter(|u| !u.grouped && req.policy.pack_integrated)
                .count() as u32;
            (forced.len() as u32 - packed) + packed.div_ceil(model.int_per_slot.max(1))
        };
        let message = if forced_slots > model.root_free_slots {
            if forced_slots == forced.len() as u32 {
                format!(
                    "{} hotplug-off devices need integrated slots; pcie.0 has {} free",
                    forced.len(),
                    model.root_free_slots
                )
            } else {
                format!("{} hotplug-off devices need {forced_slots} integrated slots (8 per slot); pcie.0 has {} free", forced.len(), model.root_free_slots)
            }
        } else {
            let pxbs = c.expanders + c.region_expanders.iter().sum::<u32>();
            format!(
                "the devices need {need} pcie.0 slots ({} for integrated devices, {} for root ports, {pxbs} for expander buses); pcie.0 has {} free",
                c.int_slots, c.root_port_slots, model.root_free_slots
            )
        };
        let mut hints = Vec::new();
        let off_pcie = units
            .iter()
            .any(|u| !u.pinned && u.hp == Hotplug::Off && u.kind == BusKind::Pcie);
        if off_pcie && !req.policy.hotplug_off.allows_port() {
            hints.push(
                "allow hotplug_off=auto so hotplug-off PCIe devices can use hotplug=off root ports"
                    .to_string(),
            );
        }
        if !req.policy.pack_integrated
            && units
                .iter()
                .any(|u| !u.pinned && !u.grouped && u.hp != Hotplug::On)
        {
            hints.push(
                "set pack_integrated=true to put up to 8 integrated devices in one slot"
                    .to_string(),
            );
        }
        let pci_off = dev_ids(req, units, |u| {
            !u.pinned && u.hp == Hotplug::Off && u.kind == BusKind::Pci
        });
        if !pci_off.is_empty() {
            let shown: Vec<&str> = pci_off.iter().take(5).map(|s| s.as_str()).collect();
            let more = if pci_off.len() > 5 {
                format!(", ... ({} in all)", pci_off.len())
            } else {
                String::new()
            };
            hints.push(format!("conventional PCI devices with hotplug off can only be integrated ({}{more}): set hotplug 'any' or 'on' for some", shown.join(", ")));
        }
        for (id, addr) in w.root_pins.iter().take(3) {
            hints.push(format!("unpin {id} from {addr}"));
        }
        causes.push(Cause {
            rule: Rule::Root,
            message,
            devices,
            need,
            have: model.root_free_slots,
            hints,
        });
    }
    if c.slack_bus > 0 {
        let need = model.bus_max + c.slack_bus;
        let devices = dev_ids(req, units, |u| !u.pinned && u.hp != Hotplug::Off);
        let mut hints = Vec::new();
        if req.policy.spare_ports > 0 {
            hints.push(format!(
                "lower spare_ports (now {})",
                req.policy.spare_ports
            ));
        }
        hints.push(
            "let more devices be hotplug 'off' or 'any' so they can be integrated without a port"
                .to_string(),
        );
        causes.push(Cause {
            rule: Rule::BusNr,
            message: format!("the plan needs {need} guest bus numbers (one per port, bridge, switch port and expander); there are {}", model.bus_max),
            devices,
            need,
            have: model.bus_max,
            hints,
        });
    }
    if c.slack_io > 0 {
        causes.push(io_cause(req, cat, units, model, c));
    }
    Explanation { causes }
}

/// What-if `--max`, one solve with the objective swapped (`ilp::solve_max`): the most units
/// the class of device `dev` can hold next to everything else in the request, and how many
/// units that class has in the request. A pinned device's class cannot grow: `(0, 0)`.
pub(crate) fn max_of_class(
    req: &Request,
    cat: &Catalog,
    dev: usize,
) -> Result<(u32, u32), PlanError> {
    let Prepared {
        units,
        model,
        unit_class,
        ..
    } = prepare(req, cat)?;
    let Some(ci) = units
        .iter()
        .position(|u| u.devs.contains(&dev))
        .and_then(|u| unit_class[u])
    else {
        return Ok((0, 0));
    };
    let counts = ilp::solve_max(&model, ci).map_err(PlanError::Solver)?;
    if !counts.optimal {
        return Err(PlanError::Solver(format!(
            "no proven optimum within {} s",
            ilp::TIME_LIMIT_S
        )));
    }
    Ok((counts.placed[ci].iter().sum(), model.classes[ci].n))
}

/// R-IO: more I/O windows than the guest's firmware fits, naming the firmware.
fn io_cause(req: &Request, cat: &Catalog, units: &[Unit], model: &Model, c: &Counts) -> Cause {
    let need = model.io_max + c.slack_io;
    let devices = dev_ids(req, units, |u| !u.pinned && u.io && u.hp != Hotplug::Off);
    let kib = model.io_window_kib;
    let failure = cat
        .io_budget(req.firmware)
        .map(|b| b.failure.as_str())
        .unwrap_or("the firmware runs out of I/O space");
    let mut hints = vec![
        "use models without I/O BARs (virtio-*-pci instead of e1000e/e1000/rtl8139)".to_string(),
        "let some of these devices be hotplug 'any' or 'off' so they sit on pcie.0 without a window".to_string(),
    ];
    // Another firmware with a larger budget is a way out too (UEFI guests cannot switch
    // back lightly, so it comes last).
    for (fw, b) in &cat.io_space.firmware {
        if *fw != req.firmware && b.windows >= need {
            hints.push(format!(
                "firmware '{}' ({}) fits {} windows",
                fw.as_str(),
                b.name,
                b.windows
            ));
        }
    }
    Cause {
        rule: Rule::Io,
        message: format!(
            "{need} ports and bridges would need a {kib} KiB I/O window for devices with I/O BARs; the firmware has {} (QEMU starts, but {failure})",
            model.io_max
        ),
        devices,
        need,
        have: model.io_max,
        hints,
    }
}
