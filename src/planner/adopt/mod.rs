//! Adopting an existing guest (`--adopt`, O-ADOPT): its addresses become soft pins.
//!
//! 1. The existing guest (every device at its address) is checked as addresses go; what
//!    breaks the policy (D-OFF, D-ON) is what adoption repairs.
//! 2. The same guest with every device free to move is the program's model; each existing
//!    unit and port joins it as priced variables (`crate::ilp` adoption family), with the
//!    positions where a new bus would renumber existing ones (`guard`).
//! 3. The answer says which units stay and each port's `hotplug`: the guest with the
//!    moved units unpinned and the ports set is assigned from the same counts, checked by
//!    the validator, and compared with the existing guest (`crate::changes`).

mod guard;

use std::collections::BTreeMap;

use crate::catalog::{Catalog, HotplugControl};
use crate::changes::{changes, ChangeKind};
use crate::error::PlanError;
use crate::idmap::IdMap;
use crate::ilp::{Adopt, Model, OldPort, OldUnit, Place, Site};
use crate::plan::Plan;
use crate::request::Request;
use crate::topology::{pinned_plan, Node, Topology};
use crate::validate::validate_pinned_layout;
use crate::Text;

use super::assign::Assigner;
use super::{check_assigned_on, explain, solve_cached, units, Unit, World};
use guard::{anchor_of, Guard};

/// Adopts an existing guest with the catalog its `machine` names: the addresses it has are
/// preferences, and the plan changes as few devices as the guest can see (O-ADOPT), then
/// adds as few controllers, then flips as few ports' `hotplug`, proven minimal. The plan
/// lists what changed in `changes` and counts `guest_visible_changes`.
///
/// ```
/// // A NIC behind a hot-pluggable root port becomes non-unpluggable: the port flips.
/// let req = pciplan::Request::from_json(r#"{
///   "policy": {"hotplug_off": "auto"},
///   "devices": [{"id": "net0", "model": "virtio-net-pci", "hotplug": "off",
///                "address": {"bus": "rp1", "slot": 0}}],
///   "controllers": [{"id": "rp1", "model": "pcie-root-port", "chassis": 1,
///                    "address": {"bus": "pcie.0", "slot": 2}}]}"#).unwrap();
/// let plan = pciplan::adopt(&req).unwrap();
/// assert_eq!(plan.guest_visible_changes, Some(0));
/// assert_eq!(plan.controllers[0].hotplug, Some(false));
/// assert!(plan.optimal && !plan.devices[0].hotpluggable);
/// ```
pub fn adopt(req: &Request) -> Result<Plan, PlanError> {
    let cat = Catalog::for_machine(&req.machine)?;
    adopt_with(req, cat)
}

/// [`adopt`] with an explicit catalog.
pub fn adopt_with(req: &Request, cat: &Catalog) -> Result<Plan, PlanError> {
    adopt_inner(req, cat, true)
}

/// [`adopt_with`] without the natural decision's shortcut: the adoption program decides
/// every guest. For tests that check the shortcut and the program against each other.
#[doc(hidden)]
pub fn adopt_by_program(req: &Request, cat: &Catalog) -> Result<Plan, PlanError> {
    adopt_inner(req, cat, false)
}

fn adopt_inner(req: &Request, cat: &Catalog, shortcut: bool) -> Result<Plan, PlanError> {
    if cat.layout == crate::catalog::Layout::PciRoot {
        return super::pc::adopt(req, cat);
    }
    cat.pcie_planner()?;
    req.check_shape()?;
    req.check_models(cat)?;
    // Step 1: the existing guest, as addresses go.
    let before = pinned_plan(req, cat);
    let t0 = Topology::build(&before, cat);
    let bad = validate_pinned_layout(&t0, &before, req, cat);
    if !bad.is_empty() {
        return Err(PlanError::Pins(bad));
    }
    // Step 2: every device free, and the soft pins.
    // `work` is the free guest, then the kept guest of a decision (`make_kept`).
    let mut work = unpinned(req);
    let f = free_model(req, &work, cat, &before, &t0)?;
    // The natural decision (keep what can stay, set each port as its units need) is
    // proven optimal when it moves only what must move and renumbers nothing (see
    // `natural`); otherwise the adoption program decides.
    if let Some(d) = natural(&f).filter(|_| shortcut) {
        make_kept(&mut work, req, &f, &d);
        if let Some(plan) = plan_natural(req, cat, &f, &d, &before, &t0, &work)? {
            return Ok(plan);
        }
    }
    let counts = solve_cached(&f.model)?;
    if counts.short() {
        let free = unpinned(req);
        let why = explain::explain(
            &free,
            cat,
            &f.units,
            &f.unit_class,
            &f.model,
            &counts,
            &f.world,
        );
        return Err(PlanError::Infeasible(why));
    }
    let Some(a) = counts.adopt.as_ref() else {
        return Err(PlanError::Internal(
            "the adoption program has no soft pins".into(),
        ));
    };
    let d = Decision {
        keep: a.keep.clone(),
        on: a.on.clone(),
        changes: a.changes,
        flips: a.flips,
    };
    // Step 3: what stays is pinned, the ports are set; assign the rest from the counts.
    make_kept(&mut work, req, &f, &d);
    let kept = work;
    let kept_plan = kept_plan(req, cat, &before, &kept, &f, &d);
    let tk = Topology::build(&kept_plan, cat);
    let kept_units = kept_units(&f, &d);
    let kept_class: Vec<Option<usize>> = kept_units
        .iter()
        .zip(&f.unit_class)
        .map(|(u, &c)| if u.pinned { None } else { c })
        .collect();
    let mut kept_world = World::read_in(&tk, &kept_plan, cat, f.world.region_numa.clone());
    drop(tk);
    f.guard.apply(&mut kept_world);
    kept_world.pack_beside = pack_beside(&kept, cat, &f, &d);
    let mut plan = Assigner::new(
        &kept,
        cat,
        &kept_units,
        &kept_class,
        &f.model,
        &counts,
        &kept_world,
        kept_plan,
    )
    .run()?;
    plan.optimal = counts.optimal;
    match report(plan, req, cat, &f, &d, &before, &t0, &kept)? {
        Ok(plan) => Ok(plan),
        Err(why) => Err(PlanError::Internal(why)),
    }
}

/// Which existing units stay and each existing port's `hotplug`, with the guest-visible
/// changes and flips that should follow.
struct Decision {
    keep: Vec<bool>,
    on: Vec<bool>,
    changes: u32,
    flips: u32,
}

/// The natural decision: every unit that can stay stays, and each port gets the setting
/// its units need; `None` when two units of one port need different settings, or a unit
/// above function 0 would stay without the one at function 0 (then the program decides).
///
/// Why it is optimal when [`plan_natural`] accepts it: each unit it moves cannot stay
/// under any setting, so every plan moves at least those (O-ADOPT's first measure is met
/// when nothing is renumbered); any other plan with as few changes keeps the same units,
/// so its ports holding them have the same settings, and only the placement of the moved
/// units differs, which the plain program minimises (its second measure) as long as no
/// free existing port of the other setting is left unused (a flip could then save a
/// controller); flips are those the kept units force (the third).
fn natural(f: &Free) -> Option<Decision> {
    let a = f.model.adopt.as_ref()?;
    let keep: Vec<bool> = a
        .units
        .iter()
        .map(|u| u.site.is_some() && (u.stay_on || u.stay_off))
        .collect();
    let mut need: Vec<Option<bool>> = vec![None; a.ports.len()];
    for (u, &k) in a.units.iter().zip(&keep) {
        if !k {
            continue;
        }
        if u.after.is_some_and(|first| !keep[first]) {
            return None;
        }
        let Some(Site::Port(p)) = u.site else {
            continue;
        };
        let want = match (u.stay_on, u.stay_off) {
            (true, false) => true,
            (false, true) => false,
            _ => continue,
        };
        match need[p] {
            Some(w) if w != want => return None,
            _ => need[p] = Some(want),
        }
    }
    let on: Vec<bool> = a
        .ports
        .iter()
        .zip(&need)
        .map(|(p, n)| n.unwrap_or(p.hotplug))
        .collect();
    let changes = a
        .units
        .iter()
        .zip(&keep)
        .filter(|(_, &k)| !k)
        .map(|(u, _)| u.devices)
        .sum();
    let flips = a
        .ports
        .iter()
        .zip(&on)
        .filter(|(p, &o)| p.hotplug != o)
        .count() as u32;
    Some(Decision {
        keep,
        on,
        changes,
        flips,
    })
}

/// Plans the natural decision with the plain program on what stays (`kept`, the existing
/// guest as [`make_kept`] makes it for `d`). `None` when its optimality is not proven (see
/// [`natural`]): it renumbers a device, or adds controllers while a free existing port is
/// left unused.
fn plan_natural(
    req: &Request,
    cat: &Catalog,
    f: &Free,
    d: &Decision,
    before: &Plan,
    t0: &Topology,
    kept: &Request,
) -> Result<Option<Plan>, PlanError> {
    let kept_plan = kept_plan(req, cat, before, kept, f, d);
    let tk = Topology::build(&kept_plan, cat);
    let kept_units = kept_units(f, d);
    let mut world = World::read(&tk, &kept_plan, kept, cat);
    drop(tk);
    f.guard.apply(&mut world);
    let io = cat.io_budget(req.firmware)?;
    let (model, unit_class) = units::build_model(kept, cat, &kept_units, &world, io.windows);
    if explain::precheck(kept, &kept_units, &unit_class, &model).is_err() {
        return Ok(None);
    }
    let counts = solve_cached(&model)?;
    if counts.short() {
        return Ok(None);
    }
    // The plain program knows nothing of renumbering: where its counts need a position the
    // guard does not offer, the natural decision is not the answer (the program decides).
    let Ok(mut plan) = Assigner::new(
        kept,
        cat,
        &kept_units,
        &unit_class,
        &model,
        &counts,
        &world,
        kept_plan,
    )
    .run() else {
        return Ok(None);
    };
    if plan.cost > 0 && free_ports_left(&plan, cat) {
        return Ok(None);
    }
    plan.optimal = counts.optimal;
    Ok(report(plan, req, cat, f, d, before, t0, kept)?.ok())
}

/// R-INT-SLOT: the free functions of `pcie.0` slots that hold only kept packable single
/// units (the adoption program counts them for packed units that move), slot by slot.
fn pack_beside(kept: &Request, cat: &Catalog, f: &Free, d: &Decision) -> Vec<(u8, u8)> {
    let Some(a) = f.model.adopt.as_ref() else {
        return Vec::new();
    };
    let root = cat.root.bus.as_str();
    let packable: Vec<usize> = f
        .old
        .iter()
        .enumerate()
        .filter(|&(k, _)| d.keep[k] && f.model.classes[a.units[k].class].packable)
        .map(|(_, &u)| u)
        .collect();
    let mut slots: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
    let mut mixed = Vec::new();
    for (i, dev) in kept.devices.iter().enumerate() {
        let Some(at) = dev.address.as_ref().filter(|x| x.bus == root) else {
            continue;
        };
        if packable.iter().any(|&u| f.units[u].devs.contains(&i)) {
            slots.entry(at.slot).or_default().push(at.function);
        } else {
            mixed.push(at.slot);
        }
    }
    let mut out = Vec::new();
    for (slot, used) in slots.into_iter().filter(|(s, _)| !mixed.contains(s)) {
        out.extend(
            (0..cat.root.functions)
                .filter(|f| !used.contains(f))
                .map(|f| (slot, f)),
        );
    }
    // Function 0 of a slot whose units above it stay is filled first (R-FUNC: the program
    // counted a packed unit there).
    out.sort_by_key(|&(_, f)| f != 0);
    out
}

/// Whether an existing port of `plan` holds nothing.
fn free_ports_left(plan: &Plan, cat: &Catalog) -> bool {
    let used: IdMap<&str, ()> = plan
        .devices
        .iter()
        .map(|d| d.bus.as_str())
        .chain(plan.controllers.iter().map(|x| x.bus.as_str()))
        .map(|b| (b, ()))
        .collect();
    plan.controllers.iter().any(|c| {
        !c.added
            && cat
                .controller(&c.model)
                .is_some_and(|m| m.hotplug == HotplugControl::Property)
            && !used.contains_key(c.id.as_str())
    })
}

/// The pinned plan of the kept guest ([`make_kept`]) (`pinned_plan(kept)`), made from the existing
/// guest's pinned plan `before` (`pinned_plan(req)`): the devices `d` moves dropped and the
/// ports it flips set. Copying `before` skips the catalog lookups of a plan made anew.
fn kept_plan(
    req: &Request,
    cat: &Catalog,
    before: &Plan,
    kept: &Request,
    f: &Free,
    d: &Decision,
) -> Plan {
    let mut moved = vec![false; req.devices.len()];
    for (k, &u) in f.old.iter().enumerate() {
        if !d.keep[k] {
            for &i in &f.units[u].devs {
                moved[i] = true;
            }
        }
    }
    let mut plan = before.clone();
    // `before.devices` are the request's addressed devices, in request order.
    let mut stays = req
        .devices
        .iter()
        .enumerate()
        .filter(|(_, x)| x.address.is_some())
        .map(|(i, _)| !moved[i]);
    plan.devices.retain(|_| stays.next().unwrap_or(true));
    // `before.controllers` are the request's, in order; a port set takes `Some` either way.
    for (p, fp) in f.world.ports.iter().enumerate() {
        if d.on[p] != fp.hotplug {
            if let Some(c) = plan.controllers.iter_mut().find(|c| c.id == fp.id) {
                c.hotplug = Some(d.on[p]);
            }
        }
    }
    debug_assert_eq!(plan, pinned_plan(kept, cat));
    plan
}

/// The free guest's units with those `d` keeps pinned: the units of the kept guest.
fn kept_units(f: &Free, d: &Decision) -> Vec<Unit> {
    let mut units = f.units.clone();
    for (k, &u) in f.old.iter().enumerate() {
        units[u].pinned = d.keep[k];
    }
    units
}

/// Makes `work` the kept guest of `d`: the existing guest `req` with the units `d` moves
/// unpinned and its ports set. `work` is `req` with any device addresses taken away and
/// any ports set (the free guest, or the kept guest of another decision): copying back the
/// addresses that stay costs less than a clone of `req`.
fn make_kept(work: &mut Request, req: &Request, f: &Free, d: &Decision) {
    let mut moved = vec![false; req.devices.len()];
    for (k, &u) in f.old.iter().enumerate() {
        if !d.keep[k] {
            for &i in &f.units[u].devs {
                moved[i] = true;
            }
        }
    }
    for ((w, r), &m) in work.devices.iter_mut().zip(&req.devices).zip(&moved) {
        w.address = if m { None } else { r.address.clone() };
    }
    for (w, r) in work.controllers.iter_mut().zip(&req.controllers) {
        w.hotplug = r.hotplug;
    }
    for (p, fp) in f.world.ports.iter().enumerate() {
        if d.on[p] != fp.hotplug {
            if let Some(c) = work.controllers.iter_mut().find(|c| c.id == fp.id) {
                c.hotplug = Some(d.on[p]);
            }
        }
    }
}

/// Checks an assigned adoption (R-BUSNR, the validator against what stays) and lists its
/// changes. The inner `Err` says how the plan differs from what the decision counted:
/// a bug for the program's decisions, a refusal for the natural one.
#[allow(clippy::too_many_arguments)]
fn report(
    mut plan: Plan,
    req: &Request,
    cat: &Catalog,
    f: &Free,
    d: &Decision,
    before: &Plan,
    t0: &Topology,
    kept: &Request,
) -> Result<Result<Plan, String>, PlanError> {
    let t = Topology::build(&plan, cat);
    check_assigned_on(&t, &plan, kept, cat)?;
    let mut list = changes(before, t0, &plan, &t, cat);
    drop(t);
    explain_moves(&mut list, req, f, &d.keep, &d.on);
    let visible = list.iter().filter(|c| c.guest_visible).count() as u32;
    // Fewer than counted: a device the decision moves (it sits above function 0 of a slot
    // whose device at function 0 moves, R-FUNC) landed on its old address, beside another
    // device at function 0. The plan is valid and better than the program's minimum, whose
    // model keeps such a device only with its old neighbour: not proven minimal.
    if visible < d.changes {
        plan.optimal = false;
    } else if visible != d.changes {
        return Ok(Err(format!(
            "the adoption counted {} guest-visible changes, the plan has {visible}",
            d.changes
        )));
    }
    let flips = list
        .iter()
        .filter(|c| c.change == ChangeKind::PortHotplug)
        .count() as u32;
    if flips != d.flips {
        return Ok(Err(format!(
            "the adoption counted {} port flips, the plan has {flips}",
            d.flips
        )));
    }
    plan.guest_visible_changes = Some(visible);
    plan.changes = Some(list);
    Ok(Ok(plan))
}

/// The request with every device's address taken away (controllers stay).
fn unpinned(req: &Request) -> Request {
    let mut free = req.clone();
    for d in free.devices.iter_mut() {
        d.address = None;
    }
    free
}

/// The guest with every device free, and its soft pins.
struct Free {
    units: Vec<Unit>,
    world: World,
    model: Model,
    unit_class: Vec<Option<usize>>,
    /// The units that exist (have an address), in request order.
    old: Vec<usize>,
    guard: Guard,
}

/// Builds the model of `free` (the request without device addresses) with the soft pins of
/// the existing guest `req`, whose pinned plan is `before` and topology `t0`.
fn free_model(
    req: &Request,
    free: &Request,
    cat: &Catalog,
    before: &Plan,
    t0: &Topology,
) -> Result<Free, PlanError> {
    // The controllers were validated with the existing guest. With every device free, the
    // pinned plan is `before`'s controllers alone (what the world reads of a plan).
    let tb = Topology::build_controllers(before, cat);
    let units = units::units(free, cat)?;
    // A group with some members addressed and some not is refused as in a plain plan: its
    // slot is the unit's, and half of it is no address the guest has.
    for u in units.iter().filter(|u| u.grouped) {
        let pinned = u
            .devs
            .iter()
            .filter(|&&i| req.devices[i].address.is_some())
            .count();
        if pinned > 0 && pinned < u.devs.len() {
            let first = req.devices[u.devs[0]].address.is_some();
            let i = u
                .devs
                .iter()
                .copied()
                .find(|&i| req.devices[i].address.is_some() != first)
                .unwrap_or(u.devs[0]);
            let d = &req.devices[u.devs[0]];
            let group = d.group.as_deref().unwrap_or("");
            return Err(PlanError::Invalid(crate::error::InputError::new(
                format!("devices[{i}].group"),
                format!(
                    "device '{}': group '{group}' is partly pinned: pin every member or none [D-GROUP]",
                    req.devices[i].id
                ),
            )));
        }
    }
    let mut world = World::read(&tb, before, free, cat);
    drop(tb);
    let old: Vec<usize> = (0..units.len())
        .filter(|&u| {
            units[u]
                .devs
                .iter()
                .all(|&i| req.devices[i].address.is_some())
        })
        .collect();
    // A unit that cannot stay is never kept: a new bus before it renumbers nothing.
    let anchors = old
        .iter()
        .map(|&u| {
            may_stay(free, &units[u], req, t0, &world)
                .then(|| anchor_of(t0, &req.devices[units[u].devs[0]].id))
                .flatten()
        })
        .collect();
    let guard = Guard::read(t0, anchors, &world);
    guard.apply(&mut world);
    let io = cat.io_budget(req.firmware)?;
    let (mut model, unit_class) = units::build_model(free, cat, &units, &world, io.windows);
    explain::precheck(free, &units, &unit_class, &model)?;
    let adopt = soft_pins(req, &units, &unit_class, &model, &world, &old, &guard, t0);
    for (r, region) in model.regions.iter_mut().enumerate() {
        let ports = world.ports.iter().filter(|p| p.region == r);
        let n = ports.clone().count() as u32;
        let eo = ports.filter(|p| p.endpoint_only).count() as u32;
        region.free_on = n;
        region.free_off = n;
        region.free_on_endpoint_only = eo;
        region.free_off_endpoint_only = eo;
    }
    model.adopt = Some(adopt);
    Ok(Free {
        units,
        world,
        model,
        unit_class,
        old,
        guard,
    })
}

/// The soft pins: where each existing unit is and whether it may stay there under each
/// port setting, the existing ports, and the slots that renumber.
#[allow(clippy::too_many_arguments)]
fn soft_pins(
    req: &Request,
    units: &[Unit],
    unit_class: &[Option<usize>],
    model: &Model,
    world: &World,
    old: &[usize],
    guard: &Guard,
    t0: &Topology,
) -> Adopt {
    let mut root_slots: Vec<u8> = Vec::new();
    let mut bridges: Vec<(String, usize)> = Vec::new();
    let port_index: BTreeMap<&str, usize> = world
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let mut out_units = Vec::with_capacity(old.len());
    for &u in old {
        let unit = &units[u];
        let class = unit_class[u].unwrap_or(0);
        let c = &model.classes[class];
        let at: Vec<(Text, u8)> = unit
            .devs
            .iter()
            .filter_map(|&i| req.devices[i].address.as_ref())
            .map(|a| (a.bus.clone(), a.slot))
            .collect();
        let together = at.windows(2).all(|w| w[0] == w[1]);
        let first = t0.ids.get(req.devices[unit.devs[0]].id.as_str()).copied();
        let parent = first.and_then(|n| t0.parent(n));
        let mut site = None;
        let (mut stay_on, mut stay_off) = (false, false);
        if let (true, Some(p)) = (together, parent) {
            let region_ok = |r: usize| c.region == 0 || c.region == r;
            match t0.g[p] {
                Node::Root => {
                    let slot = at[0].1;
                    let i = root_slots
                        .iter()
                        .position(|&s| s == slot)
                        .unwrap_or_else(|| {
                            root_slots.push(slot);
                            root_slots.len() - 1
                        });
                    site = Some(Site::Root(i));
                    stay_on = c.may(Place::Integrated);
                    stay_off = stay_on;
                }
                Node::Ctrl(ctrl) => match t0.model(p).map(|m| m.hotplug) {
                    Some(HotplugControl::Property) => {
                        if let Some(&i) = port_index.get(ctrl.id.as_str()) {
                            let ok = region_ok(world.ports[i].region);
                            site = Some(Site::Port(i));
                            stay_on = ok && c.may(Place::Port);
                            stay_off =
                                ok && (c.may(Place::OffPort) || (c.any && c.may(Place::Port)));
                        }
                    }
                    Some(HotplugControl::Always) => {
                        let region = bridge_region(world, t0, p);
                        let i = bridges
                            .iter()
                            .position(|b| b.0 == ctrl.id)
                            .unwrap_or_else(|| {
                                bridges.push((ctrl.id.to_string(), region));
                                bridges.len() - 1
                            });
                        site = Some(Site::Bridge(i));
                        stay_on = region_ok(region) && c.may(Place::Bridge);
                        stay_off = stay_on;
                    }
                    _ => {}
                },
                Node::Dev(_) => {}
            }
        }
        out_units.push(OldUnit {
            class,
            devices: unit.devs.len() as u32,
            site,
            stay_on,
            stay_off,
            io: unit.io,
            after: None,
        });
    }
    // R-FUNC: a unit above function 0 stays only with the one at function 0.
    let first_fn = |k: usize| -> Option<(String, u8, u8)> {
        let a = req.devices[units[old[k]].devs[0]].address.as_ref()?;
        Some((a.bus.to_string(), a.slot, a.function))
    };
    let at: Vec<Option<(String, u8, u8)>> = (0..old.len()).map(first_fn).collect();
    for k in 0..old.len() {
        let Some((bus, slot, f)) = &at[k] else {
            continue;
        };
        if *f == 0 {
            continue;
        }
        out_units[k].after = (0..old.len())
            .find(|&j| j != k && matches!(&at[j], Some((b, s, 0)) if b == bus && s == slot));
    }
    Adopt {
        units: out_units,
        ports: world
            .ports
            .iter()
            .map(|p| OldPort {
                region: p.region,
                hotplug: p.hotplug,
                endpoint_only: p.endpoint_only,
            })
            .collect(),
        root_slots: root_slots.len() as u32,
        bridges: bridges.into_iter().map(|b| b.1).collect(),
        late_slots: guard.late.len() as u32,
        late_freed: root_slots
            .iter()
            .enumerate()
            .filter(|(_, s)| guard.late_freed.contains(s))
            .map(|(i, _)| i)
            .collect(),
        early_slots: guard.early.iter().map(|e| e.1.clone()).collect(),
    }
}

/// The region of an existing bridge: the NUMA node of the expander above it.
/// Whether existing unit `u` may stay where it is under some port setting, as
/// [`soft_pins`] decides it (`free`: the guest with every device unpinned, whose policy
/// says where the unit may go).
fn may_stay(free: &Request, u: &Unit, req: &Request, t0: &Topology, world: &World) -> bool {
    let mut at = u
        .devs
        .iter()
        .filter_map(|&i| req.devices[i].address.as_ref());
    let Some(first) = at.next() else {
        return false;
    };
    if !at.all(|a| a.bus == first.bus && a.slot == first.slot) {
        return false;
    }
    let Some(p) = t0
        .ids
        .get(req.devices[u.devs[0]].id.as_str())
        .and_then(|&n| t0.parent(n))
    else {
        return false;
    };
    let own = u
        .numa
        .and_then(|n| world.region_numa.iter().position(|&r| r == Some(n)))
        .unwrap_or(0);
    let a = units::allowed(free, u, own);
    let region_ok = |r: usize| own == 0 || own == r;
    match t0.g[p] {
        Node::Root => a[Place::Integrated as usize],
        Node::Ctrl(ctrl) => match t0.model(p).map(|m| m.hotplug) {
            Some(HotplugControl::Property) => world.ports.iter().any(|x| {
                x.id == ctrl.id
                    && region_ok(x.region)
                    && (a[Place::Port as usize] || a[Place::OffPort as usize])
            }),
            Some(HotplugControl::Always) => {
                region_ok(bridge_region(world, t0, p)) && a[Place::Bridge as usize]
            }
            _ => false,
        },
        Node::Dev(_) => false,
    }
}

fn bridge_region(world: &World, t0: &Topology, b: petgraph::stable_graph::NodeIndex) -> usize {
    let numa = t0.expander_of(b).and_then(|x| match t0.g[x] {
        Node::Ctrl(c) => c.numa_node,
        _ => None,
    });
    numa.and_then(|m| world.region_numa.iter().position(|&r| r == Some(m)))
        .unwrap_or(0)
}

/// Why each moved device moved: the rule its old place breaks, or what made moving it the
/// cheapest way (O-ADOPT).
fn explain_moves(
    list: &mut [crate::changes::Change],
    req: &Request,
    f: &Free,
    keep: &[bool],
    on: &[bool],
) {
    let (units, old, model, world) = (&f.units, &f.old, &f.model, &f.world);
    let Some(a) = &model.adopt else { return };
    let off_mode = req.policy.hotplug_off.as_str();
    for c in list.iter_mut().filter(|c| c.change == ChangeKind::Moved) {
        let Some(k) = old
            .iter()
            .position(|&u| units[u].devs.iter().any(|&i| req.devices[i].id == c.id))
        else {
            continue;
        };
        let u = &a.units[k];
        let class = &model.classes[u.class];
        let why = match (u.site, u.stay_on || u.stay_off) {
            (None, _) => "it is not where a unit of its kind can stay (its group is split, or its bus takes no devices)".to_string(),
            (Some(Site::Root(_)), false) if class.region > 0 => {
                "it has a NUMA node, and pcie.0 belongs to none (D-NUMA)".to_string()
            }
            (Some(Site::Root(_)), false) if !class.off => "a device on pcie.0 is integrated and the guest cannot unplug it, but it must stay hot-pluggable (R-INTEGRATED, D-ON)".to_string(),
            (Some(Site::Root(_)), false) => format!("policy hotplug_off={off_mode} puts hotplug-off devices on hotplug=off ports (D-OFF)"),
            (Some(Site::Port(_)), false) if class.off => format!("policy hotplug_off={off_mode} puts hotplug-off devices on pcie.0 (D-OFF)"),
            (Some(Site::Port(_)), false) => "its port is below an expander of another NUMA node (D-NUMA)".to_string(),
            (Some(Site::Bridge(_)), false) if class.off => "a pcie-pci-bridge slot is always hot-pluggable (R-BRIDGE), and the device must not be unpluggable (D-OFF)".to_string(),
            (Some(Site::Bridge(_)), false) => "its bridge is below an expander of another NUMA node (D-NUMA)".to_string(),
            (Some(_), true) if u.after.is_some_and(|f| !keep[f]) => {
                "the device at function 0 of its slot moved (R-FUNC)".to_string()
            }
            (Some(Site::Port(p)), true) => {
                let want = if on[p] { "on" } else { "off" };
                format!(
                    "its port {} also holds devices that need it hotplug={want}, and a port has one setting (R-HP-PORT, O-ADOPT)",
                    world.ports[p].id
                )
            }
            (Some(_), true) => "moving it changes the guest least overall (O-ADOPT)".to_string(),
        };
        c.why = Some(why);
    }
}
