//! Planning a `pc` (i440fx) guest (rules PC-ROOT, PC-ROOT-HP, PC-BRIDGE, PC-MIX, PC-NUMA):
//!
//! 1. Checks: the request's shape and models, no `numa_node` (PC-NUMA), no
//!    `pack_integrated`; the pins are validated on their topology, with root hotplug as the
//!    request forces it (an `off` device forces it off, a pinned `on` device on `pci.0`
//!    forces it on; both at once cannot be met: PC-MIX, `explain`).
//! 2. Units (a multifunction group is one) counted per class (hotplug requirement × I/O
//!    BARs) into a [`PcModel`] with what the pins leave free (`world`).
//! 3. The class-count program (`crate::ilp::pc`), settled without the solver when no bridge
//!    is needed, else solved once per model (memo).
//! 4. Addresses (`assign`), then the finishing passes the q35 planner uses (names,
//!    chassis numbers, multifunction, request order), notes that say why root hotplug is
//!    off and what the guest sees (G-FLIP), and the independent validator.

use std::collections::HashMap;

use crate::catalog::Catalog;
use crate::error::{InputError, PlanError};
use crate::ilp::pc::{self as program, PcCounts, PcModel};
use crate::ilp::Failure;
use crate::plan::Plan;
use crate::request::{Hotplug, Request};
use crate::topology::{pinned_plan, Topology};
use crate::validate::{validate_pinned, validate_topology};

use super::units::{units_of, Unit};

mod adopt;
mod assign;
mod explain;
mod world;

pub(crate) use adopt::adopt;

/// Plans a guest of a `pci-root` catalog (`pc`); `shaped`: the request's shape is checked
/// already (as for the q35 planner's `plan_checked`).
pub(crate) fn plan(req: &Request, cat: &Catalog, shaped: bool) -> Result<Plan, PlanError> {
    plan_in(req, cat, false, shaped)
}

/// [`plan`]; `adopting` puts new bridges where they renumber no existing bridge when such
/// places are free (`adopt`).
fn plan_in(req: &Request, cat: &Catalog, adopting: bool, shaped: bool) -> Result<Plan, PlanError> {
    cat.planner_classes()?;
    if !shaped {
        req.check_shape()?;
    }
    // Each device's catalog model, looked up once for the checks and the units.
    let models = req.resolve_models(cat)?;
    refuse_what_pc_lacks(req)?;
    let io = cat.io_budget(req.firmware)?;
    let units = units_of(req, cat, &models)?;
    let force = explain::forced_root_hotplug(req, cat, &units)?;
    let mut pinned = pinned_plan(req, cat);
    pinned.root_hotplug = Some(force.unwrap_or(true));
    let t = Topology::build(&pinned, cat);
    let pins = validate_pinned(&t, &pinned, req, cat);
    if !pins.is_empty() {
        return Err(PlanError::Pins(pins));
    }
    let w = world::World::read(&t, &pinned, cat, io.windows, adopting);
    drop(t);
    let bridge_slots = cat
        .adder(crate::catalog::CLASS_PCI_BRIDGE)
        .map_or(0, |b| b.bus.slots.len());
    let model = model(req, &units, &w, force, bridge_slots);
    let counts = solve_cached(&model)?;
    if counts.short() {
        let why = explain::short(req, cat, &units, &model, &counts, io);
        return Err(PlanError::Infeasible(why));
    }
    let (mut plan, wiring) =
        assign::Assigner::new(req, cat, &units, &models, &counts, &w, pinned).run()?;
    super::finish::finish_wired(&mut plan, req, cat, wiring);
    plan.notes = explain::notes(req, cat, &units, &plan);
    let t = Topology::build(&plan, cat);
    let bad = validate_topology(&t, &plan, req, cat);
    if !bad.is_empty() {
        let list: Vec<String> = bad.iter().map(|b| b.to_string()).collect();
        return Err(PlanError::Internal(format!(
            "the plan fails validation: {}",
            list.join("; ")
        )));
    }
    Ok(plan)
}

/// PC-NUMA: no `numa_node` on `pc`; `pack_integrated` has no meaning there (refused rather
/// than ignored).
fn refuse_what_pc_lacks(req: &Request) -> Result<(), InputError> {
    for (i, d) in req.devices.iter().enumerate() {
        if let Some(n) = d.numa_node {
            return Err(InputError::new(
                format!("devices[{i}].numa_node"),
                format!("device '{}': numa_node {n}, but NUMA placement (pxb) is not available on machine '{}' [PC-NUMA]", d.id, req.machine),
            ));
        }
    }
    for (i, c) in req.controllers.iter().enumerate() {
        if c.numa_node.is_some() {
            return Err(InputError::new(
                format!("controllers[{i}].numa_node"),
                format!(
                    "controller '{}': no NUMA node on machine '{}' [PC-NUMA]",
                    c.id, req.machine
                ),
            ));
        }
    }
    if req.policy.pack_integrated {
        return Err(InputError::new(
            "policy.pack_integrated",
            format!("machine '{}' has no integrated endpoints to pack: set pack_integrated to false [PC-MIX]", req.machine),
        ));
    }
    Ok(())
}

/// The class of a unit in the pc program: requirement × 2 + I/O BARs.
pub(crate) fn class_of(u: &Unit) -> usize {
    let hp = match u.hp {
        Hotplug::On => program::ON,
        Hotplug::Off => program::OFF,
        Hotplug::Any => program::ANY,
    };
    hp * 2 + usize::from(u.io)
}

fn model(
    req: &Request,
    units: &[Unit],
    w: &world::World,
    force: Option<bool>,
    bridge_slots: u32,
) -> PcModel {
    let mut n = [0u32; 6];
    for u in units.iter().filter(|u| !u.pinned) {
        n[class_of(u)] += 1;
    }
    PcModel {
        n,
        force,
        bridge_slots,
        root_free: w.root_slots.len() as u32,
        bridge_free: w.bridge_slots.len() as u32,
        bridge_free_io: w.bridge_slots.iter().filter(|s| s.windowed).count() as u32,
        windowless: w.windowless(),
        chain_start_windowless: w.chain_start_windowless(),
        spares: req.policy.spare_ports,
        bus_free: w.bus_free,
        windows_free: w.windows_free,
    }
}

/// Programs the pc memo holds at most.
const MEMO_PROGRAMS: usize = 20_000;

/// The proven optimum of `m`: settled where no bridge is needed, else from the memo or the
/// solver.
fn solve_cached(m: &PcModel) -> Result<PcCounts, PlanError> {
    if let Some(c) = m.settle() {
        return Ok(c);
    }
    static MEMO: std::sync::OnceLock<std::sync::Mutex<HashMap<PcModel, PcCounts>>> =
        std::sync::OnceLock::new();
    let memo = MEMO.get_or_init(Default::default);
    if let Some(hit) = memo.lock().ok().and_then(|c| c.get(m).cloned()) {
        return Ok(hit);
    }
    let counts = match program::solve(m) {
        Ok(c) => c,
        Err(Failure::TimeLimit(s)) => return Err(PlanError::Solver(s)),
        Err(Failure::NoSolution) => {
            return Err(PlanError::Internal(
                "the pc program has no solution although its budgets are elastic".into(),
            ))
        }
        Err(Failure::Solver(s)) => return Err(PlanError::Internal(format!("solver: {s}"))),
    };
    if let Ok(mut c) = memo.lock() {
        if c.len() >= MEMO_PROGRAMS {
            c.clear();
        }
        c.insert(m.clone(), counts.clone());
    }
    Ok(counts)
}

#[cfg(test)]
mod tests;
