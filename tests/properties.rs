//! Property tests: random requests drawn from the q35 catalog.
//!
//! 1. every plan passes `pciplan::validate`; every error is an infeasibility or invalid
//!    input with a message, never a solver/internal error, never a panic;
//! 2. output is byte-identical across runs (`emit::json`, `emit::qemu`);
//! 3. permuting the devices changes neither feasibility nor cost nor the controllers added;
//! 4. removing a device never makes a feasible request infeasible, nor raises the cost;
//! 5. re-planning a plan's own output (`pinned_to`) adds nothing and moves nothing;
//! 6. re-planning with the earlier plan after removing and adding devices moves nothing.
//!
//! Small requests (0..40 devices) run 256 cases; big ones (100..260 devices, so that
//! `pcie.0` runs out and expanders and the bus-number budget matter) run fewer.
//! Failing inputs are kept in `proptest-regressions/properties.txt`.

mod support;

use pciplan::{emit, plan, validate, Catalog, Plan, PlanError, Request};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use support::{json, request, Shape};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_shrink_iters: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/properties.txt",
        ))),
        ..ProptestConfig::default()
    }
}

/// Plans and checks property 1 for one request.
fn plan_checked(req: &Request) -> Result<Result<Plan, PlanError>, TestCaseError> {
    let r = plan(req);
    match &r {
        Ok(p) => {
            let bad = validate(p, req, Catalog::q35());
            prop_assert!(
                bad.is_empty(),
                "plan fails validation: {:?}\nrequest: {}",
                bad,
                json(req)
            );
            prop_assert_eq!(
                p.cost as usize,
                p.controllers.iter().filter(|c| c.added).count()
            );
            prop_assert!(p.optimal, "plan not proven optimal\nrequest: {}", json(req));
        }
        Err(e) => {
            let ok_kind = matches!(
                e,
                PlanError::Infeasible(_) | PlanError::Invalid(_) | PlanError::Pins(_)
            );
            prop_assert!(
                ok_kind,
                "unexpected error kind: {}\nrequest: {}",
                e,
                json(req)
            );
            prop_assert!(!e.to_string().trim().is_empty());
            if let PlanError::Infeasible(x) = e {
                prop_assert!(
                    !x.causes.is_empty() && x.causes.iter().all(|c| !c.message.is_empty()),
                    "{e}"
                );
            }
        }
    }
    Ok(r)
}

/// Added controllers per model, for comparing plans of permuted requests.
fn added_per_model(p: &Plan) -> Vec<(String, usize)> {
    let mut models: Vec<String> = p
        .controllers
        .iter()
        .filter(|c| c.added)
        .map(|c| c.model.to_string())
        .collect();
    models.sort();
    models.dedup();
    models
        .into_iter()
        .map(|m| (m.clone(), p.added(&m)))
        .collect()
}

fn feasible_cost(r: &Result<Plan, PlanError>) -> Option<u32> {
    r.as_ref().ok().map(|p| p.cost)
}

fn check_all(req: &Request, perm: &[usize], drop: usize) -> Result<(), TestCaseError> {
    // (1) valid plans, clean errors.
    let first = plan_checked(req)?;

    // (2) byte-identical output.
    let second = plan_checked(req)?;
    match (&first, &second) {
        (Ok(a), Ok(b)) => {
            prop_assert_eq!(emit::json(a), emit::json(b));
            prop_assert_eq!(emit::qemu(a, Catalog::q35()), emit::qemu(b, Catalog::q35()));
        }
        (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
        _ => prop_assert!(
            false,
            "feasibility changed between two runs\nrequest: {}",
            json(req)
        ),
    }

    // (3) device order does not matter.
    let mut shuffled = req.clone();
    shuffled.devices = perm.iter().map(|&i| req.devices[i].clone()).collect();
    let third = plan_checked(&shuffled)?;
    prop_assert_eq!(
        feasible_cost(&first),
        feasible_cost(&third),
        "permuting devices changed the cost\nrequest: {}\npermuted: {}",
        json(req),
        json(&shuffled)
    );
    if let (Ok(a), Ok(b)) = (&first, &third) {
        prop_assert_eq!(
            added_per_model(a),
            added_per_model(b),
            "permuted: {}",
            json(&shuffled)
        );
    }
    if let (Err(a), Err(b)) = (&first, &third) {
        prop_assert_eq!(a.kind(), b.kind());
    }

    // (4) removing a device never hurts.
    if !req.devices.is_empty() {
        let mut smaller = req.clone();
        smaller.devices.remove(drop % req.devices.len());
        let fourth = plan_checked(&smaller)?;
        if let Ok(p) = &first {
            match &fourth {
                Ok(q) => prop_assert!(
                    q.cost <= p.cost,
                    "removing {} raised the cost {} -> {}\nrequest: {}",
                    req.devices[drop % req.devices.len()].id,
                    p.cost,
                    q.cost,
                    json(req)
                ),
                Err(e) => prop_assert!(
                    false,
                    "removing {} made it infeasible: {}\nrequest: {}",
                    req.devices[drop % req.devices.len()].id,
                    e,
                    json(req)
                ),
            }
        }
    }

    // (5) re-planning the plan's own output adds nothing and moves nothing.
    if let Ok(p) = &first {
        let again = req.pinned_to(&p.into());
        prop_assert!(again.is_ok(), "pinned_to failed: {:?}", again.err());
        let again = again.unwrap_or_else(|_| unreachable!());
        let q = plan_checked(&again)?;
        match q {
            Ok(q) => {
                prop_assert_eq!(
                    q.cost,
                    0,
                    "re-plan added controllers\nrequest: {}",
                    json(req)
                );
                for d in &p.devices {
                    let e = q.devices.iter().find(|x| x.id == d.id);
                    prop_assert_eq!(
                        e.map(|x| x.address()),
                        Some(d.address()),
                        "{} moved\nrequest: {}",
                        d.id,
                        json(req)
                    );
                }
            }
            Err(e) => prop_assert!(
                false,
                "re-plan of its own output fails: {}\nrequest: {}",
                e,
                json(req)
            ),
        }
    }
    Ok(())
}

fn with_perm(shape: Shape) -> impl Strategy<Value = (Request, Vec<usize>, usize)> {
    request(shape).prop_flat_map(|req| {
        let n = req.devices.len();
        (
            Just(req),
            Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
            any::<usize>(),
        )
    })
}

proptest! {
    #![proptest_config(config(256))]
    #[test]
    fn small_requests((req, perm, drop) in with_perm(Shape::small())) {
        check_all(&req, &perm, drop)?;
    }
}

proptest! {
    #![proptest_config(config(24))]
    #[test]
    fn big_requests((req, perm, drop) in with_perm(Shape::big())) {
        check_all(&req, &perm, drop)?;
    }
}

/// Found by `small_requests`: a hotplug-on group mixing a PCIe and a conventional function was
/// put on a pcie-pci-bridge (a PCIe endpoint on a conventional bus), and the plan failed the
/// planner's own validation ("internal error"). Only an integrated slot takes both kinds.
#[test]
fn regression_mixed_group_is_integrated_or_infeasible() {
    let on = Request::from_json(r#"{"devices":[{"id":"a","model":"virtio-net-pci","group":"g"},{"id":"b","model":"e1000","group":"g"}]}"#).unwrap();
    match plan(&on) {
        Err(PlanError::Infeasible(x)) => assert_eq!(x.rule(), "D-GROUP", "{x}"),
        other => panic!("expected D-GROUP infeasibility, got {other:?}"),
    }
    let any = Request::from_json(r#"{"devices":[{"id":"a","model":"virtio-net-pci","group":"g","hotplug":"any"},{"id":"b","model":"e1000","group":"g","hotplug":"any"}]}"#).unwrap();
    let p = plan(&any).unwrap();
    assert_eq!(p.cost, 0);
    assert!(p
        .devices
        .iter()
        .all(|d| d.bus == "pcie.0" && d.slot == p.devices[0].slot));
}

/// A pinned root port without `chassis` (as in the docs/formats.md example) made every plan fail
/// validation with "port has no chassis" (R-RP-ID) as an internal error.
#[test]
fn regression_pinned_port_without_chassis() {
    let req = Request::from_json(
        r#"{"devices":[{"id":"net0","model":"virtio-net-pci","hotplug":"off"},{"id":"disk0","model":"virtio-blk-pci"}],
        "controllers":[{"id":"rp1","model":"pcie-root-port","address":{"bus":"pcie.0","slot":2,"function":0}},
                       {"id":"rp2","model":"pcie-root-port","hotplug":false,"address":{"bus":"pcie.0","slot":2,"function":1}}]}"#,
    )
    .unwrap();
    let p = plan(&req).unwrap();
    assert!(validate(&p, &req, Catalog::q35()).is_empty());
    assert_eq!(p.cost, 0, "disk0 takes the free hot-pluggable rp1");
    let chassis: Vec<Option<u8>> = p.controllers.iter().map(|c| c.chassis).collect();
    assert!(
        chassis.iter().all(|c| c.is_some()) && chassis[0] != chassis[1],
        "{chassis:?}"
    );
}

/// 6. `--previous` (issue 5): after removing some devices and adding new ones, re-planning
///    against the earlier plan moves no device that still exists; the plan validates, or the
///    new devices do not fit and the error says so (never an internal error).
fn check_replan(base: &Request, extra: &Request, keep_mask: u64) -> Result<(), TestCaseError> {
    let Ok(first) = plan(base) else { return Ok(()) };
    let mut next = base.clone();
    next.devices = base
        .devices
        .iter()
        .enumerate()
        .filter(|(i, _)| keep_mask >> (i % 64) & 1 == 1)
        .map(|(_, d)| d.clone())
        .collect();
    for (i, d) in extra.devices.iter().enumerate() {
        let mut d = d.clone();
        d.id = format!("new{i}").into();
        d.address = None;
        d.group = d.group.map(|g| format!("new-{g}").into());
        next.devices.push(d);
    }
    let pinned = match next.pinned_to(&(&first).into()) {
        Ok(p) => p,
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "pinned_to failed: {e}\nbase: {}",
                json(base)
            )))
        }
    };
    match plan(&pinned) {
        Ok(second) => {
            prop_assert!(validate(&second, &pinned, Catalog::q35()).is_empty());
            for d in &second.devices {
                if let Some(old) = first.devices.iter().find(|o| o.id == d.id) {
                    prop_assert_eq!(
                        old.address(),
                        d.address(),
                        "{} moved\nbase: {}",
                        &d.id,
                        json(base)
                    );
                }
            }
            for c in &first.controllers {
                prop_assert!(
                    second
                        .controllers
                        .iter()
                        .any(|n| n.id == c.id && n.address() == c.address()),
                    "controller {} moved or dropped",
                    c.id
                );
            }
        }
        Err(PlanError::Solver(e)) => {
            return Err(TestCaseError::fail(format!(
                "solver error on re-plan: {e}\nbase: {}",
                json(base)
            )))
        }
        Err(_) => {}
    }
    Ok(())
}

proptest! {
    // Only about a quarter of the random bases plan (the rest are infeasible or invalid
    // and skipped), so this runs more cases than the others.
    #![proptest_config(config(768))]
    #[test]
    fn replanning_with_previous_moves_nothing(base in request(Shape::small()), extra in request(Shape::small()), keep_mask in any::<u64>()) {
        check_replan(&base, &extra, keep_mask)?;
    }
}

// ---------------------------------------------------------------------------------------
// pc (i440fx)

/// A random pc request: up to 80 devices of pc catalog models, any hotplug, some spares.
fn pc_request() -> impl Strategy<Value = Request> {
    let models: Vec<String> = Catalog::pc()
        .devices
        .iter()
        .filter(|(_, m)| m.single.is_none())
        .map(|(k, _)| k.clone())
        .collect();
    (
        proptest::collection::vec((0..models.len(), 0usize..4), 0..80),
        0u32..40,
    )
        .prop_map(move |(devs, spares)| {
            let hp = ["on", "off", "any", "any"];
            let list: Vec<String> = devs
                .iter()
                .enumerate()
                .map(|(i, &(m, h))| {
                    format!(
                        r#"{{"id":"d{i}","model":"{}","hotplug":"{}"}}"#,
                        models[m], hp[h]
                    )
                })
                .collect();
            let text = format!(
                r#"{{"machine":"pc","policy":{{"spare_ports":{spares}}},"devices":[{}]}}"#,
                list.join(",")
            );
            Request::from_json(&text).expect("pc request")
        })
}

proptest! {
    #![proptest_config(config(128))]

    /// On pc every plan validates, is the same twice, keeps `off` devices unpluggable and
    /// `on` ones pluggable (PC-MIX), turns root hotplug off exactly when an `off` device of a
    /// model QEMU can unplug is in the request, and every error is an infeasibility.
    #[test]
    fn pc_plans_hold(req in pc_request()) {
        let cat = Catalog::pc();
        match plan(&req) {
            Ok(p) => {
                prop_assert!(validate(&p, &req, cat).is_empty(), "{}", json(&req));
                prop_assert_eq!(emit::qemu(&p, cat), emit::qemu(&plan(&req).unwrap(), cat));
                let forced = req.devices.iter().any(|d| {
                    d.hotplug == Some(pciplan::Hotplug::Off) && cat.model_hotpluggable(&d.model)
                });
                prop_assert_eq!(p.root_hotplug, Some(!forced));
                for d in &p.devices {
                    match d.hotplug {
                        pciplan::Hotplug::On => prop_assert!(d.hotpluggable),
                        pciplan::Hotplug::Off => prop_assert!(!d.hotpluggable),
                        pciplan::Hotplug::Any => {}
                    }
                }
            }
            Err(PlanError::Infeasible(x)) => prop_assert!(!x.causes.is_empty()),
            Err(e) => prop_assert!(false, "{}: {e}", json(&req)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// aarch64 virt

/// A random request of the q35 generators made aarch64 `virt`: UEFI (the only firmware it
/// boots), the devices of models `virt` lacks (VGA-class, ISA) left out, and of a model a
/// guest takes once (a balloon, an IOMMU) only the first kept.
fn virt_request(shape: Shape) -> impl Strategy<Value = Request> {
    request(shape).prop_map(|mut req| {
        let cat = Catalog::virt();
        req.machine = "virt".into();
        req.firmware = pciplan::Firmware::Uefi;
        let mut once = std::collections::BTreeSet::new();
        req.devices.retain(|d| match cat.device(&d.model) {
            Some(m) if m.single.is_some() => once.insert(d.model.clone()),
            Some(_) => true,
            None => false,
        });
        req
    })
}

proptest! {
    #![proptest_config(config(192))]

    /// On virt every plan validates against the virt catalog, is proven optimal, the same
    /// twice, keeps `off` devices unpluggable and `on` ones pluggable (VIRT-HP), counts its
    /// added controllers as its cost; every error is an infeasibility, an invalid request or
    /// refused pins, with a message.
    #[test]
    fn virt_plans_hold(req in virt_request(Shape::small())) {
        let cat = Catalog::virt();
        match plan(&req) {
            Ok(p) => {
                prop_assert!(validate(&p, &req, cat).is_empty(), "{}", json(&req));
                prop_assert!(p.optimal, "not proven optimal: {}", json(&req));
                prop_assert_eq!(p.cost as usize, p.controllers.iter().filter(|c| c.added).count());
                prop_assert_eq!(emit::qemu(&p, cat), emit::qemu(&plan(&req).unwrap(), cat));
                for d in &p.devices {
                    match d.hotplug {
                        pciplan::Hotplug::On => prop_assert!(d.hotpluggable, "{}: {}", d.id, json(&req)),
                        pciplan::Hotplug::Off => prop_assert!(!d.hotpluggable, "{}: {}", d.id, json(&req)),
                        pciplan::Hotplug::Any => {}
                    }
                }
            }
            Err(e @ (PlanError::Infeasible(_) | PlanError::Invalid(_) | PlanError::Pins(_))) => {
                prop_assert!(!e.to_string().trim().is_empty());
            }
            Err(e) => prop_assert!(false, "{}: {e}", json(&req)),
        }
    }
}
