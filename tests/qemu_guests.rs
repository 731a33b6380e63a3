//! Real QEMU: every guest in tests/data/guests is planned, started with the emitted
//! `-device` lines (plus null backends) under TCG, and checked over QMP: the qtree shows the
//! planned tree, and `device_del` is refused for every device the plan made fixed (always
//! for hotplug `off`) and accepted for every hot-pluggable one (always for `on`).
//! Files named `x*.json` are infeasible and must be refused by the planner.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::qemu::{qemu_or_skip, Qemu, Unplug, SINGLE_INSTANCE_MODELS, TESTABLE_MODELS};
use pciplan::{Catalog, Hotplug, PlanError, Request};

fn guests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/guests");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

fn load(path: &Path) -> Request {
    Request::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Plans, starts and probes one guest; returns (devices probed, controllers added).
fn check_guest(path: &Path) -> (usize, u32) {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let req = load(path);
    for d in &req.devices {
        assert!(
            TESTABLE_MODELS.contains(&d.model.as_str())
                || SINGLE_INSTANCE_MODELS.contains(&d.model.as_str()),
            "{name}: model {} cannot run here",
            d.model
        );
    }
    let plan = pciplan::plan(&req).unwrap_or_else(|e| panic!("{name}: {e}"));
    let cat = Catalog::q35();
    assert!(pciplan::validate(&plan, &req, cat).is_empty());
    let args = pciplan::emit::qemu(&plan, cat);
    let mut q =
        Qemu::start(&args).unwrap_or_else(|e| panic!("{name}: QEMU refused the plan: {e}\n{args}"));
    let mismatches = q.placement_mismatches().unwrap();
    assert!(
        mismatches.is_empty(),
        "{name}: QEMU placed differently: {mismatches:?}"
    );
    for d in &plan.devices {
        let outcome = q
            .unplug(&d.id)
            .unwrap_or_else(|e| panic!("{name}: device_del {}: {e}", d.id));
        let refused = matches!(outcome, Unplug::Refused(_));
        assert_eq!(
            refused, !d.hotpluggable,
            "{name}: {} ({:?}) planned hotpluggable={} but QEMU said {outcome:?}",
            d.id, d.hotplug, d.hotpluggable
        );
        match d.hotplug {
            Hotplug::Off => assert!(refused, "{name}: hotplug-off {} can be unplugged", d.id),
            Hotplug::On => assert!(
                !refused,
                "{name}: hotplug-on {} cannot be unplugged: {outcome:?}",
                d.id
            ),
            Hotplug::Any => {}
        }
    }
    (plan.devices.len(), plan.cost)
}

#[test]
fn planned_guests_start_in_qemu_and_unplug_as_planned() {
    if !qemu_or_skip() {
        return;
    }
    let mut feasible = 0;
    let mut devices = 0;
    let mut shapes = std::collections::BTreeSet::new();
    for path in guests() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with('x') {
            continue;
        }
        let (n, cost) = check_guest(&path);
        let plan = pciplan::plan(&load(&path)).unwrap();
        for c in plan.controllers.iter().filter(|c| c.added) {
            shapes.insert(c.model.clone());
        }
        if plan
            .controllers
            .iter()
            .any(|c| c.hotplug == Some(false) && c.added)
        {
            shapes.insert("hotplug=off port".to_string().into());
        }
        eprintln!("{name}: {n} devices, cost {cost}: ok");
        feasible += 1;
        devices += n;
    }
    assert!(feasible >= 30, "only {feasible} guests");
    // The set covers every kind of controller the planner adds.
    for need in [
        "pcie-root-port",
        "pcie-pci-bridge",
        "pxb-pcie",
        "hotplug=off port",
    ] {
        assert!(
            shapes.contains(need),
            "no guest needed a {need}: {shapes:?}"
        );
    }
    eprintln!("{feasible} guests, {devices} devices probed");
}

#[test]
fn infeasible_guests_are_refused_with_a_rule() {
    let mut n = 0;
    for path in guests() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with('x') {
            continue;
        }
        match pciplan::plan(&load(&path)) {
            Err(PlanError::Infeasible(e)) => {
                assert!(
                    !e.causes.is_empty()
                        && !e.causes[0].devices.is_empty()
                        && !e.causes[0].hints.is_empty(),
                    "{name}: {e}"
                );
            }
            other => panic!("{name}: expected infeasible, got {other:?}"),
        }
        n += 1;
    }
    assert!(n >= 3);
}

/// SeaBIOS numbers the buses of a guest with 30+ root ports the way R-BUSNR says, every port
/// with I/O devices gets an I/O window, and nothing runs out (R-IO).
#[test]
fn firmware_numbers_buses_and_opens_io_windows() {
    if !qemu_or_skip() {
        return;
    }
    let mut devices: Vec<String> = (0..14)
        .map(|i| format!(r#"{{"id":"e{i}","model":"e1000e"}}"#))
        .collect();
    devices.extend((0..20).map(|i| format!(r#"{{"id":"v{i}","model":"virtio-net-pci"}}"#)));
    devices.push(r#"{"id":"n0","model":"virtio-blk-pci","numa_node":1}"#.to_string());
    let text = format!(
        r#"{{"policy":{{"spare_ports":2}},"devices":[{}]}}"#,
        devices.join(",")
    );
    let req = Request::from_json(&text).unwrap();
    let plan = pciplan::plan(&req).unwrap();
    let ports = plan
        .controllers
        .iter()
        .filter(|c| c.model == "pcie-root-port")
        .count();
    assert!(ports >= 30, "{ports} ports");
    let cat = Catalog::q35();
    let mut q = Qemu::start(&pciplan::emit::qemu(&plan, cat)).unwrap();
    let run = q.run_firmware(Duration::from_secs(30)).unwrap();
    assert!(run.failure.is_none(), "firmware: {:?}", run.failure);
    assert!(run.settled, "firmware did not finish PCI setup");
    let by_id = run.pci.by_id();
    let pxb_nr = plan
        .controllers
        .iter()
        .find_map(|c| c.bus_nr)
        .expect("an expander");
    let mut secondaries = std::collections::BTreeSet::new();
    for c in plan
        .controllers
        .iter()
        .filter(|c| c.model == "pcie-root-port")
    {
        let dev = by_id
            .get(c.id.as_str())
            .unwrap_or_else(|| panic!("{} not in query-pci", c.id));
        let bridge = dev.bridge.as_ref().unwrap();
        assert!(
            bridge.secondary > 0 && secondaries.insert(bridge.secondary),
            "{}: bus {}",
            c.id,
            bridge.secondary
        );
        // Below the expander, buses come from its bus_nr upwards; elsewhere below it.
        if c.bus.starts_with("pxb") {
            assert!(
                bridge.secondary > pxb_nr,
                "{}: {} <= bus_nr {pxb_nr}",
                c.id,
                bridge.secondary
            );
        } else {
            assert!(
                bridge.secondary < pxb_nr,
                "{}: {} >= bus_nr {pxb_nr}",
                c.id,
                bridge.secondary
            );
        }
        let child = plan.devices.iter().find(|d| d.bus == c.id);
        let io_device = child.is_some_and(|d| d.model == "e1000e");
        assert_eq!(
            bridge.io_range.is_some(),
            io_device,
            "{}: io window {:?}, device {:?}",
            c.id,
            bridge.io_range,
            child.map(|d| &d.model)
        );
        if !io_device {
            assert_eq!(
                c.io_reserve,
                Some(0),
                "{}: no I/O below but no io-reserve=0",
                c.id
            );
        }
    }
}

/// The R-IO number is QEMU's and SeaBIOS's, not ours: a 15th port with an I/O device (which
/// the planner refuses, see x02-io-budget.json) really exhausts the firmware's I/O space.
#[test]
fn fifteen_io_ports_exhaust_the_firmware() {
    if !qemu_or_skip() {
        return;
    }
    let mut lines = String::new();
    for i in 0..15u32 {
        let (slot, f) = (2 + i / 8, i % 8);
        let mf = if f == 0 { ",multifunction=on" } else { "" };
        lines.push_str(&format!(
            "-device pcie-root-port,id=rp{i},bus=pcie.0,addr={slot:#x}.{f:#x}{mf},chassis={}\n",
            i + 1
        ));
        lines.push_str(&format!("-device e1000e,id=e{i},bus=rp{i}\n"));
    }
    let mut q = Qemu::start(&lines).unwrap();
    let run = q.run_firmware(Duration::from_secs(30)).unwrap();
    assert!(
        run.failure
            .as_deref()
            .is_some_and(|f| f.contains("out of I/O")),
        "{:?}",
        run.failure
    );
}
