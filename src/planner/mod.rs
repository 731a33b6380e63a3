//! Planning one guest, as the steps of [`plan_with`]:
//!
//! 1. Check the request (shape, models) and build the topology of its pins once: the pins
//!    are validated on it (D-PIN and the rules a pin breaks), and what it still offers
//!    (free `pcie.0` slots, free ports, bridge slots, expander positions) is read from it
//!    into a [`World`](offer::World) (`offer`).
//! 2. Group devices into units (a multifunction group is one unit) and units into classes,
//!    the integer program's model (`units`); classes with no allowed place are explained
//!    before any solving (`explain::precheck`).
//! 3. Solve the class-count program (`crate::ilp`, memoised by model) into named counts, or
//!    settle it without the solver where a counting argument proves the optimum; a
//!    short budget is explained from the program's slack (`explain::explain`).
//! 4. Turn the counts into addresses with a deterministic pass, lowest slots first and
//!    request order kept, then the finishing passes: expander bus ranges, io-reserve, names,
//!    chassis and port numbers, multifunction (`assign`).
//! 5. R-BUSNR: the bus numbering of the assigned plan must fit pinned expander ranges
//!    (`explain::bus_ranges`); the planner decides this itself.
//! 6. Check the result with the independent validator: a plan it rejects is a bug in
//!    pciplan ([`PlanError::Internal`]), never the request's fault.

use std::collections::HashMap;

use crate::catalog::{Catalog, DeviceModel};
use crate::error::PlanError;
use crate::ilp::{self, Counts, Model};
use crate::plan::Plan;
use crate::request::Request;
use crate::topology::{pinned_plan, Topology};
use crate::validate::{validate_pinned, validate_topology};

mod adopt;
mod assign;
mod explain;
mod finish;
mod offer;
mod pc;
mod units;

pub use adopt::{adopt, adopt_by_program, adopt_with};
use assign::Assigner;
pub(crate) use offer::World;
pub(crate) use units::Unit;

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
    plan_shaped(req, cat, false)
}

/// [`plan_with`] for a request known to pass [`Request::check_shape`] (read by
/// [`Request::from_json`], or checked since): the same plan or error, without checking
/// its shape again.
pub(crate) fn plan_checked(req: &Request, cat: &Catalog) -> Result<Plan, PlanError> {
    plan_shaped(req, cat, true)
}

/// [`plan_with`]; `shaped`: the request's shape is checked already.
fn plan_shaped(req: &Request, cat: &Catalog, shaped: bool) -> Result<Plan, PlanError> {
    if cat.layout == crate::catalog::Layout::PciRoot {
        return pc::plan(req, cat, shaped);
    }
    // Steps 1 and 2: checks, the pins' topology and its offer, units, classes, model.
    let Prepared {
        units,
        pinned,
        world,
        model,
        unit_class,
        dev_models,
    } = prepare(req, cat, shaped)?;
    // Step 3: the integer program.
    let counts = solve_cached(&model)?;
    if counts.short() {
        let why = explain::explain(req, cat, &units, &unit_class, &model, &counts, &world);
        return Err(PlanError::Infeasible(why));
    }
    // Step 4: addresses and the finishing passes.
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
    .with_device_models(&dev_models)
    .run()?;
    // Steps 5 and 6 on one topology of the plan.
    check_assigned(&plan, req, cat)?;
    Ok(plan)
}

/// Steps 5 and 6 on one topology of an assigned plan: R-BUSNR's ranges (the planner's own
/// check), then the independent validator, whose objection is a bug in pciplan.
fn check_assigned(plan: &Plan, req: &Request, cat: &Catalog) -> Result<(), PlanError> {
    check_assigned_on(&Topology::build(plan, cat), plan, req, cat)
}

/// [`check_assigned`] on the plan's topology `t`.
fn check_assigned_on(
    t: &Topology,
    plan: &Plan,
    req: &Request,
    cat: &Catalog,
) -> Result<(), PlanError> {
    if let Some(why) = explain::bus_ranges(t, cat) {
        return Err(PlanError::Infeasible(why));
    }
    let bad = validate_topology(t, plan, req, cat);
    if !bad.is_empty() {
        let list: Vec<String> = bad.iter().map(|b| b.to_string()).collect();
        return Err(PlanError::Internal(format!(
            "the plan fails validation: {}",
            list.join("; ")
        )));
    }
    Ok(())
}

/// A request checked and turned into units, the pinned topology's offer, and the model.
struct Prepared<'c> {
    units: Vec<Unit>,
    pinned: Plan,
    world: World,
    model: ilp::Model,
    unit_class: Vec<Option<usize>>,
    /// Each request device's catalog model, by device index.
    dev_models: Vec<Option<&'c DeviceModel>>,
}

/// Steps 1-2 of planning, shared by [`plan_with`] and what-if `--max`: checks (shape,
/// models, pins on the pins' topology), units, what that topology offers, the class model,
/// and the prechecks for classes with no allowed place. `shaped`: the request's shape is
/// checked already.
fn prepare<'c>(req: &Request, cat: &'c Catalog, shaped: bool) -> Result<Prepared<'c>, PlanError> {
    cat.pcie_planner()?;
    if !shaped {
        req.check_shape()?;
    }
    let models = req.resolve_models(cat)?;
    let pinned = pinned_plan(req, cat);
    // Most requests pin nothing: their pins break no rule, and the machine's offer needs no
    // topology of them.
    let world = if pinned.controllers.is_empty() && pinned.devices.is_empty() {
        World::unpinned(req, cat)
    } else {
        let t = Topology::build(&pinned, cat);
        let pins = validate_pinned(&t, &pinned, req, cat);
        if !pins.is_empty() {
            return Err(PlanError::Pins(pins));
        }
        World::read(&t, &pinned, req, cat)
    };
    let units = units::units_of(req, cat, &models)?;
    let io = cat.io_budget(req.firmware)?;
    let (model, unit_class) = units::build_model(req, cat, &units, &world, io.windows);
    explain::precheck(req, &units, &unit_class, &model)?;
    Ok(Prepared {
        units,
        pinned,
        world,
        model,
        unit_class,
        dev_models: models,
    })
}

/// A solver's answer as the planner takes it: proven optimal, or an error saying whose
/// fault it is (the time limit's, or a bug's).
fn proven(solved: Result<Counts, ilp::Failure>) -> Result<Counts, PlanError> {
    match solved {
        Ok(c) if c.optimal => Ok(c),
        Ok(_) => Err(PlanError::Solver(format!(
            "no proven optimum within {} s",
            ilp::TIME_LIMIT_S
        ))),
        Err(ilp::Failure::TimeLimit(s)) => Err(PlanError::Solver(s)),
        Err(ilp::Failure::NoSolution) => Err(PlanError::Internal(
            "the integer program has no solution although its budgets are elastic".into(),
        )),
        Err(ilp::Failure::Solver(s)) => Err(PlanError::Internal(format!("solver: {s}"))),
    }
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

/// The proven optimum of `model`: settled by the counting argument where it applies
/// (`ilp::settle`), else from the memo or the solver.
fn solve_cached(model: &Model) -> Result<Counts, PlanError> {
    if let Some(settled) = ilp::settle(model) {
        return Ok(settled);
    }
    let cache = solution_memo();
    if let Ok(c) = cache.lock() {
        if let Some(hit) = c.get(model) {
            return Ok(hit.clone());
        }
    }
    let counts = proven(ilp::solve(model))?;
    if let Ok(mut c) = cache.lock() {
        // A program and its solution take about 1-2 kB: 20,000 of them stay near 40 MB.
        if c.len() >= MEMO_PROGRAMS {
            c.clear();
        }
        c.insert(model.clone(), counts.clone());
    }
    Ok(counts)
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
    } = prepare(req, cat, false)?;
    let Some(ci) = units
        .iter()
        .position(|u| u.devs.contains(&dev))
        .and_then(|u| unit_class[u])
    else {
        return Ok((0, 0));
    };
    // Without slack the program has no solution when not even one more unit fits: not a
    // bug here; what-if reads it as no room.
    let solved = match ilp::solve_max(&model, ci) {
        Err(ilp::Failure::NoSolution) => {
            return Err(PlanError::Solver(
                "the integer program has no solution".into(),
            ))
        }
        other => other,
    };
    let counts = proven(solved)?;
    Ok((counts.placed[ci].iter().sum(), model.classes[ci].n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::PlanError;

    fn req(json: &str) -> Request {
        Request::from_json(json).expect("request parses")
    }

    /// A pinned expander at bus_nr 3 leaves buses 1..2 below `pcie.0`: a root port and a
    /// bridge fit there, not two root ports and a bridge (R-BUSNR). The bridge a
    /// conventional device needs goes below the expander, in its own range (the planner
    /// once counted only root ports there and refused the guest).
    #[test]
    fn a_bridge_below_a_pinned_bus_nr_goes_below_the_expander() {
        let r = req(r#"{"devices":[
              {"id":"n","model":"virtio-net-pci","hotplug":"on"},
              {"id":"t","model":"virtio-net-pci-transitional","hotplug":"on"}],
            "controllers":[{"id":"px","model":"pxb-pcie","bus_nr":3,
              "address":{"bus":"pcie.0","slot":5}}]}"#);
        let p = plan(&r).expect("plans");
        assert_eq!((p.cost, p.optimal), (3, true));
        let bridge = p.controllers.iter().find(|c| c.model == "pcie-pci-bridge");
        let port = bridge.and_then(|b| p.controllers.iter().find(|c| c.id == b.bus));
        assert_eq!(port.map(|c| c.bus.as_str()), Some("px"));
        assert!(crate::validate(&p, &r, crate::Catalog::q35()).is_empty());
        // px's range ends where the next pinned expander's starts: the bridge and its port
        // go below that one.
        let r = req(r#"{"devices":[
              {"id":"n","model":"virtio-net-pci","hotplug":"on"},
              {"id":"t","model":"virtio-net-pci-transitional","hotplug":"on"}],
            "controllers":[{"id":"px","model":"pxb-pcie","bus_nr":3,
              "address":{"bus":"pcie.0","slot":5}},
              {"id":"hi","model":"pxb-pcie","bus_nr":4,"address":{"bus":"pcie.0","slot":6}}]}"#);
        let p = plan(&r).expect("plans");
        let bridge = p.controllers.iter().find(|c| c.model == "pcie-pci-bridge");
        let port = bridge.and_then(|b| p.controllers.iter().find(|c| c.id == b.bus));
        assert_eq!(port.map(|c| c.bus.as_str()), Some("hi"));
    }

    #[test]
    fn the_flow_plans_and_the_memo_answers_the_same() {
        let r = req(r#"{"devices":[{"id":"a","model":"virtio-blk-pci"},
            {"id":"b","model":"virtio-net-pci","hotplug":"off"}]}"#);
        let first = plan(&r).expect("plans");
        assert_eq!((first.cost, first.optimal), (1, true));
        assert_eq!(plan(&r).expect("plans again"), first);
    }

    #[test]
    fn solver_answers_become_plan_errors() {
        let c = Counts {
            optimal: true,
            ..Counts::default()
        };
        assert!(proven(Ok(c.clone())).is_ok());
        let slow = Counts {
            optimal: false,
            ..c
        };
        assert!(matches!(proven(Ok(slow)), Err(PlanError::Solver(_))));
        assert!(matches!(
            proven(Err(ilp::Failure::TimeLimit("Time limit".into()))),
            Err(PlanError::Solver(_))
        ));
        assert!(matches!(
            proven(Err(ilp::Failure::NoSolution)),
            Err(PlanError::Internal(_))
        ));
    }
}
