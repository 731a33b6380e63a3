//! Every `PlanError` variant and every infeasibility path reachable through the public API:
//! the message names the devices, the rule and the numbers, and gives a hint.

mod support;

use pciplan::{plan, plan_with, Catalog, Cause, InputError, PlanError, Request};
use support::small_catalog;

fn req(text: &str) -> Request {
    Request::from_json(text).unwrap_or_else(|e| panic!("bad test request: {e}"))
}

fn devices(n: usize, model: &str, hotplug: &str) -> String {
    (0..n)
        .map(|i| format!(r#"{{"id":"d{i}","model":"{model}","hotplug":"{hotplug}"}}"#))
        .collect::<Vec<_>>()
        .join(",")
}

/// The causes of an infeasible request (panics on anything else).
fn infeasible(r: Result<pciplan::Plan, PlanError>) -> (Vec<Cause>, String) {
    match r {
        Err(e @ PlanError::Infeasible(_)) => {
            assert_eq!((e.exit_code(), e.kind()), (1, "infeasible"));
            let text = e.to_string();
            let PlanError::Infeasible(x) = e else {
                unreachable!()
            };
            (x.causes, text)
        }
        other => panic!("expected infeasible, got {other:?}"),
    }
}

fn invalid(r: Result<pciplan::Plan, PlanError>) -> InputError {
    match r {
        Err(PlanError::Invalid(e)) => e,
        other => panic!("expected invalid input, got {other:?}"),
    }
}

fn pins(r: Result<pciplan::Plan, PlanError>) -> Vec<pciplan::Violation> {
    match r {
        Err(e @ PlanError::Pins(_)) => {
            assert_eq!((e.exit_code(), e.kind()), (2, "invalid"));
            let PlanError::Pins(v) = e else {
                unreachable!()
            };
            assert!(!v.is_empty());
            v
        }
        other => panic!("expected pin violations, got {other:?}"),
    }
}

fn has_hint(c: &Cause) -> bool {
    !c.hints.is_empty() && c.hints.iter().all(|h| !h.trim().is_empty())
}

// ---- PlanError::Invalid --------------------------------------------------------------

#[test]
fn invalid_unknown_model_names_device_and_rule() {
    let e = invalid(plan(&req(
        r#"{"devices":[{"id":"x1","model":"frobnicator"}]}"#,
    )));
    assert_eq!(e.field, "devices[0].model");
    assert!(
        e.message.contains("x1")
            && e.message.contains("frobnicator")
            && e.message.contains("D-KIND"),
        "{e}"
    );
    assert!(e.message.contains("bus_kind"), "hint missing: {e}");
}

#[test]
fn invalid_machine() {
    let mut r = req(r#"{"devices":[]}"#);
    r.machine = "isapc".into();
    let e = plan(&r).unwrap_err();
    assert_eq!((e.exit_code(), e.kind()), (2, "invalid"));
    assert!(
        e.to_string().contains("isapc")
            && e.to_string().contains("q35")
            && e.to_string().contains("pc-i440fx-*"),
        "{e}"
    );
    let PlanError::Invalid(i) = e else {
        unreachable!()
    };
    assert_eq!(i.field, "machine");
}

#[test]
fn invalid_duplicate_id_built_in_code() {
    // from_json refuses it; a Request built in code is checked again by plan().
    let mut r = req(r#"{"devices":[{"id":"a","model":"e1000"}]}"#);
    r.devices.push(r.devices[0].clone());
    let e = invalid(plan(&r));
    assert_eq!(e.field, "devices[1].id");
    assert!(e.message.contains("duplicate id 'a'"), "{e}");
}

#[test]
fn invalid_group_numa_mismatch() {
    let e = invalid(plan(&req(
        r#"{"devices":[{"id":"g0","model":"vfio-pci","group":"gpu","numa_node":1},{"id":"g1","model":"vfio-pci","group":"gpu"}]}"#,
    )));
    assert_eq!(e.field, "devices[1].group");
    assert!(
        e.message.contains("g1")
            && e.message.contains("g0")
            && e.message.contains("numa_node")
            && e.message.contains("D-GROUP"),
        "{e}"
    );
}

#[test]
fn invalid_group_partly_pinned() {
    let e = invalid(plan(&req(
        r#"{"devices":[{"id":"g0","model":"vfio-pci","group":"gpu","hotplug":"off","address":{"bus":"pcie.0","slot":3}},{"id":"g1","model":"vfio-pci","group":"gpu"}]}"#,
    )));
    assert!(
        e.message.contains("g1")
            && e.message.contains("partly pinned")
            && e.message.contains("pin every member or none"),
        "{e}"
    );
}

#[test]
fn invalid_group_hotplug_conflict() {
    let e = invalid(plan(&req(
        r#"{"devices":[{"id":"g0","model":"vfio-pci","group":"gpu","hotplug":"on"},{"id":"g1","model":"vfio-pci","group":"gpu","hotplug":"off"}]}"#,
    )));
    assert!(
        e.message.contains("g1") && e.message.contains("g0") && e.message.contains("conflicts"),
        "{e}"
    );
}

#[test]
fn invalid_group_of_nine() {
    let devs: Vec<String> = (0..9)
        .map(|i| format!(r#"{{"id":"f{i}","model":"virtio-net-pci","group":"big"}}"#))
        .collect();
    let e = invalid(plan(&req(&format!(
        r#"{{"devices":[{}]}}"#,
        devs.join(",")
    ))));
    assert!(
        e.message.contains("f8") && e.message.contains("more than 8"),
        "{e}"
    );
}

// ---- PlanError::Pins (D-PIN and the rules a pin breaks) -------------------------------

#[test]
fn pins_bus_that_does_not_exist() {
    let v = pins(plan(&req(
        r#"{"devices":[{"id":"n0","model":"virtio-net-pci","address":{"bus":"rp9","slot":0}}]}"#,
    )));
    assert_eq!((v[0].device.as_str(), v[0].rule.id()), ("n0", "D-PIN"));
    assert!(
        v[0].message.contains("rp9") && v[0].message.contains("does not exist"),
        "{:?}",
        v
    );
}

#[test]
fn pins_reserved_root_slot() {
    let v = pins(plan(&req(
        r#"{"devices":[{"id":"n0","model":"virtio-net-pci","hotplug":"off","address":{"bus":"pcie.0","slot":31,"function":4}}]}"#,
    )));
    assert!(
        v.iter().any(|x| x.rule == "R-ROOT"
            && x.device == "n0"
            && x.message.contains("31")
            && x.message.contains("reserved")),
        "{v:?}"
    );
}

#[test]
fn pins_double_use() {
    let v = pins(plan(&req(
        r#"{"devices":[{"id":"a","model":"virtio-net-pci","hotplug":"off","address":{"bus":"pcie.0","slot":4}},
                       {"id":"b","model":"virtio-net-pci","hotplug":"off","address":{"bus":"pcie.0","slot":4}}]}"#,
    )));
    assert!(
        v.iter().any(|x| x.rule == "D-PIN"
            && x.message.contains("double use")
            && (x.message.contains("'a'") || x.message.contains("'b'"))),
        "{v:?}"
    );
}

#[test]
fn pins_function_without_function_zero() {
    let v = pins(plan(&req(
        r#"{"devices":[{"id":"a","model":"virtio-net-pci","hotplug":"off","address":{"bus":"pcie.0","slot":4,"function":2}}]}"#,
    )));
    assert!(
        v.iter()
            .any(|x| x.rule == "R-FUNC" && x.device == "a" && x.message.contains("function 0")),
        "{v:?}"
    );
}

#[test]
fn pins_wrong_kind_of_slot() {
    // a PCIe endpoint on a pcie-pci-bridge, an endpoint straight on an expander bus
    let v = pins(plan(&req(
        r#"{"devices":[{"id":"nv","model":"nvme","address":{"bus":"br","slot":1}},
                       {"id":"ne","model":"virtio-net-pci","hotplug":"off","address":{"bus":"px","slot":2}}],
            "controllers":[{"id":"rp","model":"pcie-root-port","chassis":1,"address":{"bus":"pcie.0","slot":2}},
                           {"id":"br","model":"pcie-pci-bridge","address":{"bus":"rp","slot":0}},
                           {"id":"px","model":"pxb-pcie","bus_nr":200,"address":{"bus":"pcie.0","slot":3}}]}"#,
    )));
    assert!(
        v.iter().any(|x| x.device == "nv"
            && x.rule == "R-BRIDGE"
            && x.message.contains("wrong kind of slot")),
        "{v:?}"
    );
    assert!(
        v.iter().any(|x| x.device == "ne"
            && x.rule == "R-PXB"
            && x.message.contains("wrong kind of slot")),
        "{v:?}"
    );
}

#[test]
fn pins_hotplug_off_device_where_it_can_be_unplugged() {
    let v = pins(plan(&req(
        r#"{"devices":[{"id":"boot","model":"virtio-blk-pci","hotplug":"off","address":{"bus":"rp","slot":0}}],
            "controllers":[{"id":"rp","model":"pcie-root-port","chassis":1,"address":{"bus":"pcie.0","slot":2}}]}"#,
    )));
    assert!(
        v.iter()
            .any(|x| x.device == "boot" && x.rule == "D-OFF" && x.message.contains("rp")),
        "{v:?}"
    );
    let text = PlanError::Pins(v).to_string();
    assert!(
        text.contains("boot at rp:00.0") && text.contains("[D-OFF]"),
        "{text}"
    );
}

// ---- PlanError::Infeasible: prechecks --------------------------------------------------

#[test]
fn infeasible_d_off_conventional_off_device_with_port_policy() {
    let (c, text) = infeasible(plan(&req(
        r#"{"policy":{"hotplug_off":"port"},"devices":[{"id":"nic","model":"e1000","hotplug":"off"}]}"#,
    )));
    assert_eq!(c[0].rule, "D-OFF");
    assert_eq!(c[0].devices, vec!["nic"]);
    assert!(
        c[0].message.contains("conventional PCI") && c[0].message.contains("'port'"),
        "{text}"
    );
    assert!(
        has_hint(&c[0]) && text.contains("hint: allow hotplug_off=auto"),
        "{text}"
    );
}

#[test]
fn infeasible_d_numa_off_device_with_integrated_policy() {
    let (c, text) = infeasible(plan(&req(
        r#"{"devices":[{"id":"nv","model":"nvme","hotplug":"off","numa_node":1}]}"#,
    )));
    assert_eq!(
        (c[0].rule.id(), c[0].devices.clone()),
        ("D-NUMA", vec!["nv".to_string()])
    );
    assert!(
        c[0].message.contains("numa_node 1") && c[0].message.contains("'integrated'"),
        "{text}"
    );
    assert!(
        has_hint(&c[0]) && text.contains("hotplug_off=auto"),
        "{text}"
    );
}

#[test]
fn infeasible_d_numa_conventional_off_device() {
    let (c, text) = infeasible(plan(&req(
        r#"{"policy":{"hotplug_off":"auto"},"devices":[{"id":"vga","model":"e1000","hotplug":"off","numa_node":0}]}"#,
    )));
    assert_eq!(
        (c[0].rule.id(), c[0].devices.clone()),
        ("D-NUMA", vec!["vga".to_string()])
    );
    assert!(
        c[0].message.contains("numa_node 0") && c[0].message.contains("conventional"),
        "{text}"
    );
    assert!(has_hint(&c[0]), "{text}");
}

#[test]
fn infeasible_d_group_mixed_kinds_hotplug_on() {
    let (c, text) = infeasible(plan(&req(
        r#"{"devices":[{"id":"gpu","model":"vfio-pci","group":"g"},{"id":"snd","model":"ich9-intel-hda","group":"g"}]}"#,
    )));
    assert_eq!(c[0].rule, "D-GROUP");
    assert_eq!(c[0].devices, vec!["gpu", "snd"]);
    assert!(
        c[0].message.contains("2 device(s)") && has_hint(&c[0]),
        "{text}"
    );
}

// ---- PlanError::Infeasible: budgets (R-ROOT, R-BUSNR, R-IO) ----------------------------

#[test]
fn infeasible_r_root_too_many_off_devices() {
    let (c, text) = infeasible(plan(&req(&format!(
        r#"{{"devices":[{}]}}"#,
        devices(31, "virtio-net-pci", "off")
    ))));
    assert_eq!(c[0].rule, "R-ROOT");
    assert_eq!((c[0].need, c[0].have), (31, 30));
    assert_eq!(c[0].devices.len(), 31);
    assert!(
        c[0].message.contains("31") && c[0].message.contains("30"),
        "{text}"
    );
    assert!(text.contains("hint: allow hotplug_off=auto"), "{text}");
    assert!(
        text.contains("(31 in all)"),
        "device list is shortened: {text}"
    );
}

#[test]
fn infeasible_r_root_pinned_devices_fill_the_bus() {
    // Two usable slots, both pinned; one hot-pluggable device needs a root-port slot.
    let cat = small_catalog(2, 255);
    let r = req(
        r#"{"devices":[{"id":"p1","model":"nvme","hotplug":"off","address":{"bus":"pcie.0","slot":1}},
                       {"id":"p2","model":"nvme","hotplug":"off","address":{"bus":"pcie.0","slot":2}},
                       {"id":"hot","model":"virtio-net-pci","hotplug":"on"}]}"#,
    );
    let (c, text) = infeasible(plan_with(&r, &cat));
    assert_eq!(c[0].rule, "R-ROOT");
    assert_eq!((c[0].need, c[0].have), (1, 0));
    assert!(
        c[0].message.contains("1 pcie.0 slots") && c[0].message.contains("0 free"),
        "{text}"
    );
    assert!(text.contains("hint: unpin p1 from pcie.0:01.0"), "{text}");
}

#[test]
fn infeasible_r_root_packing_with_no_slot() {
    // Was an unexplained "integer program has no solution" before the packing count could
    // exceed the free slots.
    let cat = small_catalog(1, 255);
    let r = req(
        r#"{"policy":{"pack_integrated":true},"devices":[{"id":"p1","model":"nvme","hotplug":"off","address":{"bus":"pcie.0","slot":1}},
                       {"id":"d0","model":"virtio-net-pci","hotplug":"off"}]}"#,
    );
    let (c, text) = infeasible(plan_with(&r, &cat));
    assert_eq!(c[0].rule, "R-ROOT");
    assert!(
        c[0].devices.contains(&"d0".to_string()) && has_hint(&c[0]),
        "{text}"
    );
}

#[test]
fn infeasible_r_busnr() {
    // 30 slots but only 4 bus numbers: 5 hot-pluggable devices need 5 root ports.
    let cat = small_catalog(30, 4);
    let (c, text) = infeasible(plan_with(
        &req(&format!(
            r#"{{"policy":{{"spare_ports":1}},"devices":[{}]}}"#,
            devices(5, "nvme", "on")
        )),
        &cat,
    ));
    let b = c
        .iter()
        .find(|x| x.rule == "R-BUSNR")
        .unwrap_or_else(|| panic!("no R-BUSNR cause: {text}"));
    assert_eq!((b.need, b.have), (6, 4));
    assert!(b.message.contains("6") && b.message.contains("4"), "{text}");
    assert_eq!(b.devices, vec!["d0", "d1", "d2", "d3", "d4"]);
    assert!(b.hints.iter().any(|h| h.contains("spare_ports")), "{text}");
}

#[test]
fn infeasible_r_busnr_full_catalog() {
    let (c, text) = infeasible(plan(&req(&format!(
        r#"{{"devices":[{}]}}"#,
        devices(300, "virtio-blk-pci", "on")
    ))));
    let b = c
        .iter()
        .find(|x| x.rule == "R-BUSNR")
        .unwrap_or_else(|| panic!("no R-BUSNR cause: {text}"));
    assert!(
        b.need > 255 && b.have == 255 && b.message.contains("255") && has_hint(b),
        "{text}"
    );
}

#[test]
fn infeasible_r_io() {
    // 15 hot-pluggable e1000e (I/O BARs): one window each, the firmware has 14.
    let (c, text) = infeasible(plan(&req(&format!(
        r#"{{"devices":[{}]}}"#,
        devices(15, "e1000e", "on")
    ))));
    let io = c
        .iter()
        .find(|x| x.rule == "R-IO")
        .unwrap_or_else(|| panic!("no R-IO cause: {text}"));
    assert_eq!((io.need, io.have), (15, 14));
    assert!(
        io.message.contains("15") && io.message.contains("14"),
        "{text}"
    );
    assert_eq!(io.devices.len(), 15);
    assert!(has_hint(io), "{text}");
}

// ---- PlanError::Solver -----------------------------------------------------------------

/// Not reachable with valid input through the public API (it means a time limit or a bug);
/// its contract is its kind and exit status.
#[test]
fn solver_error_kind_and_exit_status() {
    let e = PlanError::Solver("no proven optimum within 2 s".into());
    assert_eq!((e.exit_code(), e.kind(), e.rule()), (1, "solver", None));
    assert!(e.to_string().contains("no proven optimum"));
}

/// A feasible request is never reported as a solver error (the budgets are elastic).
#[test]
fn no_solver_error_at_the_edges() {
    for n in [0, 1, 29, 30, 31, 239, 240, 241, 255, 256] {
        let r = req(&format!(
            r#"{{"policy":{{"hotplug_off":"auto"}},"devices":[{}]}}"#,
            devices(n, "virtio-blk-pci", "off")
        ));
        match plan(&r) {
            Ok(p) => assert!(pciplan::validate(&p, &r, Catalog::q35()).is_empty()),
            Err(e) => assert!(matches!(e, PlanError::Infeasible(_)), "{n}: {e}"),
        }
    }
}

/// When pcie.0 is full of pinned hotplug-off devices, the slot is missing for the port of the
/// device that must stay hot-pluggable: the explanation names that device.
#[test]
fn r_root_names_the_devices_needing_a_port() {
    let mut devices: Vec<String> = (0..30)
        .map(|i| format!(r#"{{"id":"p{i}","model":"virtio-net-pci","hotplug":"off","address":{{"bus":"pcie.0","slot":{}}}}}"#, i + 1))
        .collect();
    devices.push(r#"{"id":"hot0","model":"virtio-net-pci","hotplug":"on"}"#.to_string());
    let req =
        pciplan::Request::from_json(&format!(r#"{{"devices":[{}]}}"#, devices.join(","))).unwrap();
    match pciplan::plan(&req) {
        Err(pciplan::PlanError::Infeasible(e)) => {
            assert_eq!(e.causes[0].rule, "R-ROOT");
            assert_eq!(e.causes[0].devices, vec!["hot0".to_string()]);
            assert_eq!((e.causes[0].need, e.causes[0].have), (1, 0));
        }
        other => panic!("expected R-ROOT, got {other:?}"),
    }
}

/// A catalog changed in code after it was read (its fields are public to read) is refused
/// with an error naming what is missing, never a panic.
#[test]
fn a_catalog_without_an_expander_model_is_an_error_not_a_panic() {
    let mut cat = pciplan::Catalog::q35().clone();
    cat.controllers.retain(|c| c.model != "pxb-pcie");
    let req = pciplan::Request::from_json(r#"{"devices":[{"id":"d","model":"virtio-blk-pci"}]}"#)
        .unwrap();
    for r in [
        pciplan::plan_with(&req, &cat),
        pciplan::adopt_with(&req, &cat),
    ] {
        match r {
            Err(pciplan::PlanError::Invalid(e)) => {
                assert!(e.to_string().contains("class 'pxb'"), "{e}")
            }
            other => panic!("expected an invalid catalog, got {other:?}"),
        }
    }
    assert!(cat.validate().is_err());
    assert!(pciplan::Catalog::q35().validate().is_ok());
}
