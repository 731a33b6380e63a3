//! Tests of the QEMU test harness (`tests/common/qemu.rs`) with hand-written `-device`
//! lines. They run the real `qemu-system-x86_64` (q35, TCG); without it they skip, saying so,
//! unless `PCIPLAN_REQUIRE_QEMU=1` (CI), where they fail.

mod common;

use common::qemu::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// Starts a guest or fails the test with QEMU's message.
fn start(plan: &str) -> Qemu {
    match Qemu::start(plan) {
        Ok(vm) => vm,
        Err(e) => panic!("QEMU did not start: {e}\nplan:\n{plan}"),
    }
}

// ----------------------------------------------------------------------------------------
// Pure parsing (no QEMU)
// ----------------------------------------------------------------------------------------

#[test]
fn pci_addr_is_hex_like_qemu() {
    assert_eq!(parse_pci_addr("0x2.0x1"), Some((2, 1)));
    assert_eq!(parse_pci_addr("2.1"), Some((2, 1)));
    assert_eq!(parse_pci_addr("0x1f"), Some((0x1f, 0)));
    assert_eq!(parse_pci_addr("10"), Some((0x10, 0)));
    assert_eq!(parse_pci_addr("02.0"), Some((2, 0)));
    assert_eq!(parse_pci_addr("1f.3"), Some((0x1f, 3)));
    assert_eq!(parse_pci_addr("0x20"), None);
    assert_eq!(parse_pci_addr("1.8"), None);
    assert_eq!(parse_pci_addr("x"), None);
}

/// The firmware log is read while SeaBIOS writes it: a line counts once it is whole (a CI
/// run once read `PCI: out of I/O address spa`).
#[test]
fn firmware_log_lines_count_when_whole() {
    let failed = "PCI: init bdf=00:02.0\nPCI: out of I/O address space\n";
    assert_eq!(
        firmware_failure(failed).as_deref(),
        Some("PCI: out of I/O address space")
    );
    assert_eq!(firmware_failure(&failed[..failed.len() - 5]), None);
    assert_eq!(firmware_failure("PCI: out of I/O address space"), None);
    let done = "Found 2 cpu(s) max supported 2 cpu(s)\n";
    assert!(firmware_pci_finished(done));
    assert!(!firmware_pci_finished(&done[..done.len() - 1]));
}

#[test]
fn plan_lines_parse_and_get_backends() {
    let plan = QemuPlan::parse(
        "# a comment\n\
         -device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,addr=0x2 \\\n\
         \n\
         -device virtio-blk-pci,id=blk0,bus=rp1\n\
         -device virtio-blk-pci,id=blk1,bus=pcie.0,addr=0x4,drive=mine\n\
         -device pxb-pcie,id=pxb1,bus_nr=0x80,numa_node=0x2\n\
         -global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off\n",
    )
    .unwrap();
    assert_eq!(plan.devices.len(), 4);
    let rp = plan.device("rp1").unwrap();
    assert_eq!(rp.driver, "pcie-root-port");
    assert_eq!(rp.prop("chassis"), Some("1"));
    assert_eq!(rp.addr(), Some((2, 0)));
    assert_eq!(
        plan.other_args,
        vec![
            "-global",
            "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"
        ]
    );
    assert_eq!(plan.numa_nodes(), 3);

    let args = device_args(&plan);
    let joined = args.join(" ");
    assert!(
        joined.contains("-blockdev driver=null-co,node-name=drv-blk0"),
        "{joined}"
    );
    assert!(
        joined.contains("-device virtio-blk-pci,id=blk0,bus=rp1,drive=drv-blk0"),
        "{joined}"
    );
    // A line that names its backend itself is left alone.
    assert!(
        joined.contains("-device virtio-blk-pci,id=blk1,bus=pcie.0,addr=0x4,drive=mine "),
        "{joined}"
    );
    assert!(!joined.contains("drv-blk1"), "{joined}");

    let mem = memory_args(&plan).join(" ");
    assert!(
        mem.contains("-numa node,nodeid=2,memdev=pciplan-numa-mem2"),
        "{mem}"
    );
    assert!(mem.starts_with("-m 144M -smp 3"), "{mem}");

    assert!(QemuPlan::parse("virtio-net-pci,id=x").is_err());
    assert!(QemuPlan::parse("-device ,id=x").is_err());
    assert_eq!(backend_for("virtio-net-pci", "n"), None);
    let (props, extra) = backend_for("nvme", "n1").unwrap();
    assert_eq!(props, ",drive=drv-n1,serial=nvme-n1");
    assert_eq!(extra, vec!["-blockdev", "driver=null-co,node-name=drv-n1"]);
}

#[test]
fn qtree_parser_handles_nesting() {
    let text = "bus: main-system-bus\n  type System\n  dev: q35-pcihost, id \"\"\n    bus: pcie.0\n      type PCIE\n      dev: pcie-root-port, id \"rp1\"\n        chassis = 1 (0x1)\n        addr = 02.0\n        multifunction = true\n        class PCI bridge, addr 00:02.0, pci id 1b36:000c (sub 0000:0000)\n        bus: rp1\n          type PCIE\n          dev: e1000, id \"e1\"\n            addr = 00.0\n            multifunction = false\n      dev: e1000, id \"e2\"\n        addr = 1e.7\n      dev: mch, id \"\"\n        addr = 00.0\n";
    let all = parse_qtree(text);
    assert_eq!(all.len(), 4);
    let t = qtree_by_id(all);
    assert_eq!(t.len(), 3);
    assert_eq!(
        t["rp1"],
        QdevPlacement {
            id: "rp1".into(),
            driver: "pcie-root-port".into(),
            bus: "pcie.0".into(),
            slot: 2,
            function: 0,
            multifunction: true
        }
    );
    assert_eq!(
        (t["e1"].bus.as_str(), t["e1"].slot, t["e1"].multifunction),
        ("rp1", 0, false)
    );
    assert_eq!(
        (t["e2"].bus.as_str(), t["e2"].slot, t["e2"].function),
        ("pcie.0", 0x1e, 7)
    );
}

#[test]
fn every_q35_model_is_classified() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/q35.json");
    let model: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let devices: BTreeSet<&str> = model["devices"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut seen = BTreeSet::new();
    for m in TESTABLE_MODELS
        .iter()
        .chain(SINGLE_INSTANCE_MODELS)
        .copied()
    {
        assert!(
            devices.contains(m),
            "{m} is not a device of models/q35.json"
        );
        assert!(seen.insert(m), "{m} is listed twice");
    }
    for (m, _) in UNRUNNABLE_MODELS {
        // May name drivers the model file no longer has.
        assert!(seen.insert(m), "{m} is listed twice");
    }
    let missing: Vec<_> = devices.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "models/q35.json devices not classified by the harness: {missing:?}"
    );
}

// ----------------------------------------------------------------------------------------
// Real QEMU
// ----------------------------------------------------------------------------------------

const HOTPLUG_GUEST: &str = "\
-device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,port=0x10,addr=0x2,multifunction=on
-device virtio-net-pci,id=net0,bus=rp1,addr=0x0
-device e1000,id=nic1,bus=pcie.0,addr=0x3
-device pcie-root-port,id=rp2,bus=pcie.0,chassis=2,port=0x11,addr=0x2.0x1,hotplug=off
-device virtio-blk-pci,id=blk0,bus=rp2,addr=0x0
";

#[test]
fn qtree_placement_and_unplug_probe() {
    if !qemu_or_skip() {
        return;
    }
    let mut vm = start(HOTPLUG_GUEST);
    let t = vm.qtree().unwrap();
    let at = |id: &str| {
        let d = &t[id];
        (
            d.driver.as_str(),
            d.bus.as_str(),
            d.slot,
            d.function,
            d.multifunction,
        )
    };
    assert_eq!(at("rp1"), ("pcie-root-port", "pcie.0", 2, 0, true));
    assert_eq!(at("rp2"), ("pcie-root-port", "pcie.0", 2, 1, false));
    assert_eq!(at("net0"), ("virtio-net-pci", "rp1", 0, 0, false));
    assert_eq!(at("nic1"), ("e1000", "pcie.0", 3, 0, false));
    assert_eq!(at("blk0"), ("virtio-blk-pci", "rp2", 0, 0, false));
    assert_eq!(t.len(), 5, "only the plan's devices have ids: {t:?}");
    assert_eq!(vm.placement_mismatches().unwrap(), Vec::<String>::new());
    // Built-ins are in the full list.
    let all = vm.qtree_all().unwrap();
    assert!(all
        .iter()
        .any(|d| d.driver == "mch" && d.bus == "pcie.0" && d.slot == 0));
    assert!(all
        .iter()
        .any(|d| d.driver == "ICH9-LPC" && d.slot == 0x1f && d.function == 0));
    // The backend was attached.
    assert_eq!(
        vm.qom_get("/machine/peripheral/blk0", "drive").unwrap(),
        json!("drv-blk0")
    );
    assert_eq!(
        vm.qom_get("/machine/peripheral/rp2", "hotplug").unwrap(),
        json!(false)
    );

    assert_eq!(
        vm.unplug("nic1"),
        Ok(Unplug::Refused(
            "Bus 'pcie.0' does not support hotplugging".to_string()
        ))
    );
    assert_eq!(
        vm.device_del("blk0"),
        Err("Bus 'rp2' does not support hotplugging".to_string())
    );
    assert!(!vm.unplug_refused("net0"));
    // The unplug is pending (no guest to acknowledge it): the device is still there and a
    // second request is an error, not a refusal.
    let again = vm.unplug("net0").unwrap_err();
    assert!(
        again.contains("already in the process of unplug"),
        "{again}"
    );
    assert!(vm.qtree().unwrap().contains_key("net0"));
    let missing = vm.unplug("nope").unwrap_err();
    assert_eq!(missing, "Device 'nope' not found");
    // QMP errors keep their class.
    let e = vm.execute("device_del", json!({"id": "nope"})).unwrap_err();
    assert_eq!(e.class, "DeviceNotFound");
    assert!(!e.is_transport());
}

#[test]
fn unplug_refused_panics_on_unknown_device() {
    if !qemu_or_skip() {
        return;
    }
    let mut vm = start("-device pcie-root-port,id=rp1,chassis=1");
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        vm.unplug_refused("ghost");
    }))
    .expect_err("an unknown device is a harness error, not a refusal");
    let msg = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(
        msg.contains("device_del ghost: unexpected error: Device 'ghost' not found"),
        "{msg}"
    );
}

#[test]
fn start_error_carries_qemu_message() {
    if !qemu_or_skip() {
        return;
    }
    let err = Qemu::start(
        "-device virtio-net-pci,id=net0,bus=pcie.0,addr=0x3\n\
         -device virtio-net-pci,id=net1,bus=pcie.0,addr=0x3\n",
    )
    .err()
    .expect("two devices at 00:03.0 must not start");
    let text = err.to_string();
    assert!(matches!(err, Error::Exited { .. }), "{err:?}");
    assert!(text.contains("not available"), "{text}");
    assert!(
        text.contains("PCI: slot 3 function 0 not available for virtio-net-pci, in use by virtio-net-pci,id=net0"),
        "{text}"
    );

    let err = Qemu::start("-device pxb-pcie,id=pxb1,bus_nr=0x80\n-device e1000,id=e1,bus=pxb1")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("PCI: Only PCI/PCIe bridges can be plugged into pxb-pcie"),
        "{err}"
    );
    let err = Qemu::start("-device no-such-device,id=x")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("'no-such-device' is not a valid device model name"),
        "{err}"
    );
}

#[test]
fn firmware_numbers_buses_and_windows() {
    if !qemu_or_skip() {
        return;
    }
    let mut vm = start(
        "-device pxb-pcie,id=pxb1,bus=pcie.0,bus_nr=0x80,addr=0x5\n\
         -device pcie-root-port,id=rp10,bus=pxb1,chassis=10,addr=0x0\n\
         -device virtio-net-pci,id=net10,bus=rp10\n\
         -device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,addr=0x2\n\
         -device pcie-pci-bridge,id=pb1,bus=rp1,addr=0x0\n\
         -device e1000,id=e1,bus=pb1,addr=0x1\n\
         -device e1000,id=e2,bus=pb1,addr=0x2\n\
         -device pcie-root-port,id=rp3,bus=pcie.0,chassis=3,addr=0x3,io-reserve=0x1000\n",
    );
    // Before the firmware: no bus numbers, nothing behind bridges.
    let before = vm.query_pci().unwrap();
    assert_eq!(before.bridge("rp1").unwrap().secondary, 0);
    assert_eq!(before.bridge("rp1").unwrap().io_range, None);
    assert!(before.device("e1").is_none());
    assert!(!firmware_done(&before));

    let fw = vm.run_firmware(DEFAULT_FIRMWARE_TIMEOUT).unwrap();
    assert!(
        fw.settled,
        "firmware did not finish: {:?}\n{}",
        fw.failure,
        vm.firmware_log()
    );
    assert_eq!(fw.failure, None);
    let pci = &fw.pci;
    assert_eq!(
        pci.root_buses.iter().map(|b| b.bus).collect::<Vec<_>>(),
        vec![0x80, 0]
    );

    let rp10 = pci.bridge("rp10").unwrap();
    assert_eq!(rp10.primary, 0x80);
    assert!(rp10.secondary > 0x80, "{rp10:?}");
    let net10 = pci.device("net10").unwrap();
    assert_eq!((net10.bus, net10.slot), (rp10.secondary, 0));
    // virtio-net (modern) has no I/O BAR: SeaBIOS gives the port no I/O window.
    assert_eq!(net10.io_bars().count(), 0);
    assert_eq!(rp10.io_range, None);

    let rp1 = pci.bridge("rp1").unwrap();
    let pb1 = pci.bridge("pb1").unwrap();
    assert_eq!((rp1.primary, rp1.secondary, rp1.subordinate), (0, 1, 2));
    assert_eq!((pb1.primary, pb1.secondary, pb1.subordinate), (1, 2, 2));
    assert_eq!(pci.device("e2").unwrap().bdf(), "02:02.0");
    let e1 = pci.device("e1").unwrap();
    assert_eq!(e1.bdf(), "02:01.0");
    assert_eq!(e1.class, 0x0200);
    // e1000 has an I/O BAR: both bridges above it forward a 4 KiB I/O window holding it.
    let io = e1.io_bars().next().unwrap().address.unwrap();
    for b in [rp1, pb1] {
        let w = b.io_range.expect("I/O window");
        assert_eq!(w.size(), 0x1000);
        assert!(w.base <= io && io <= w.limit, "{w:?} vs {io:#x}");
    }
    assert!(e1.irq.unwrap() != 0);
    // An empty port gets an I/O window only when io-reserve asks for one.
    let rp3 = pci.bridge("rp3").unwrap();
    assert_eq!(rp3.io_range.map(|w| w.size()), Some(0x1000));
    assert_eq!(rp3.memory_range.map(|w| w.size()), Some(2 << 20));
    assert_eq!(pci.bridges().len(), 4);
    assert!(pci.by_id().contains_key("pxb1"));
    assert!(vm.firmware_log().contains("=== PCI bus & bridge init ==="));
    // QEMU is paused again and still answers.
    assert_eq!(
        vm.execute("query-status", Value::Null).unwrap()["running"],
        json!(false)
    );
}

#[test]
fn firmware_with_32_root_ports() {
    if !qemu_or_skip() {
        return;
    }
    // 32 root ports packed 8 per slot; ports with an e1000 (I/O BAR) need an I/O window,
    // ports with virtio-net do not.
    let mut plan = String::new();
    for i in 0..32u32 {
        let (slot, func) = (2 + i / 8, i % 8);
        let mf = if func == 0 { ",multifunction=on" } else { "" };
        plan += &format!(
            "-device pcie-root-port,id=rp{i},bus=pcie.0,chassis={},port={:#x},addr={slot:#x}.{func:#x}{mf}\n",
            i + 1,
            0x10 + i
        );
        let dev = if i % 8 == 0 {
            "e1000"
        } else {
            "virtio-net-pci"
        };
        plan += &format!("-device {dev},id=d{i},bus=rp{i}\n");
    }
    let mut vm = start(&plan);
    assert_eq!(vm.placement_mismatches().unwrap(), Vec::<String>::new());
    let fw = vm.run_firmware(DEFAULT_FIRMWARE_TIMEOUT).unwrap();
    assert!(fw.settled, "{:?}\n{}", fw.failure, vm.firmware_log());
    let mut secondaries = BTreeSet::new();
    for i in 0..32 {
        let b = fw.pci.bridge(&format!("rp{i}")).unwrap();
        assert_eq!(b.secondary, b.subordinate);
        secondaries.insert(b.secondary);
        assert_eq!(fw.pci.device(&format!("d{i}")).unwrap().bus, b.secondary);
        assert_eq!(b.io_range.is_some(), i % 8 == 0, "rp{i}: {:?}", b.io_range);
    }
    assert_eq!(secondaries, (1..=32).collect());
}

#[test]
fn firmware_failure_is_detected() {
    if !qemu_or_skip() {
        return;
    }
    // A generous timeout: a failure must be reported as soon as SeaBIOS logs it.
    let timeout = Duration::from_secs(20);
    // 15 ports each needing a 4 KiB I/O window do not fit SeaBIOS's I/O space (14 do).
    let mut plan = String::new();
    for i in 0..15u32 {
        plan += &format!(
            "-device pcie-root-port,id=rp{i},chassis={},addr={:#x}\n-device e1000,id=e{i},bus=rp{i}\n",
            i + 1,
            i + 2
        );
    }
    let mut vm = start(&plan);
    let fw = vm.run_firmware(timeout).unwrap();
    assert!(!fw.settled);
    assert_eq!(fw.failure.as_deref(), Some("PCI: out of I/O address space"));
    assert!(fw.elapsed < timeout / 2, "{:?}", fw.elapsed);

    // Bus numbers past 255: SeaBIOS wraps to 0 and never finishes.
    let mut vm = start(
        "-device pxb-pcie,id=pxb1,bus_nr=254\n\
         -device pcie-root-port,id=a,bus=pxb1,chassis=1,addr=0x0\n\
         -device pcie-root-port,id=b,bus=pxb1,chassis=2,addr=0x1\n\
         -device pcie-root-port,id=c,bus=pxb1,chassis=3,addr=0x2\n",
    );
    let fw = vm.run_firmware(timeout).unwrap();
    assert!(!fw.settled);
    let why = fw.failure.unwrap();
    assert!(why.starts_with("PCI bus numbers exhausted"), "{why}");
    assert!(fw.elapsed < timeout / 2, "{:?}", fw.elapsed);
}

#[test]
fn numa_node_on_pxb_gets_numa_guest() {
    if !qemu_or_skip() {
        return;
    }
    let mut vm = start(
        "-device pxb-pcie,id=pxb1,bus_nr=0x40,numa_node=3,addr=0x4\n\
         -device pcie-root-port,id=rp1,bus=pxb1,chassis=1\n\
         -device virtio-pmem-pci,id=pm1,bus=rp1\n\
         -device virtio-mem-pci,id=vm1,bus=pcie.0,addr=0x5\n",
    );
    assert_eq!(
        vm.qom_get("/machine/peripheral/pxb1", "numa_node").unwrap(),
        json!(3)
    );
    let nodes = vm.execute("query-memdev", Value::Null).unwrap();
    assert_eq!(nodes.as_array().unwrap().len(), 4 + 2, "{nodes}");
    let fw = vm.run_firmware(DEFAULT_FIRMWARE_TIMEOUT).unwrap();
    assert!(fw.settled, "{:?}", fw.failure);
    assert!(fw.pci.bridge("rp1").unwrap().secondary > 0x40);
}

/// Plan with every driver of `models`: per driver two instances on pcie.0 (functions 0
/// and 1 of one slot) and one behind each of two root ports.
fn multi_instance_plan(models: &[&str]) -> String {
    assert!(models.len() <= 12);
    let mut plan = String::new();
    let mut port = 0u32;
    for (k, m) in models.iter().enumerate() {
        let slot = k + 1;
        plan += &format!("-device {m},id=m{k}a,bus=pcie.0,addr={slot:#x}.0x0,multifunction=on\n");
        plan += &format!("-device {m},id=m{k}b,bus=pcie.0,addr={slot:#x}.0x1\n");
        for sfx in ["c", "d"] {
            let (pslot, func) = (0x10 + port / 8, port % 8);
            let mf = if func == 0 { ",multifunction=on" } else { "" };
            plan += &format!(
                "-device pcie-root-port,id=rp{port},bus=pcie.0,chassis={},addr={pslot:#x}.{func:#x}{mf}\n",
                port + 1
            );
            plan += &format!("-device {m},id=m{k}{sfx},bus=rp{port}\n");
            port += 1;
        }
    }
    plan
}

#[test]
fn testable_models_start_several_times() {
    if !qemu_or_skip() {
        return;
    }
    let batches: Vec<&[&str]> = TESTABLE_MODELS.chunks(12).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = batches
            .iter()
            .map(|batch| {
                s.spawn(move || {
                    let plan = multi_instance_plan(batch);
                    let mut vm = start(&plan);
                    let bad = vm.placement_mismatches().unwrap();
                    assert!(bad.is_empty(), "{batch:?}: {bad:?}");
                    assert_eq!(vm.qtree().unwrap().len(), batch.len() * 6);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn testable_models_pass_firmware() {
    if !qemu_or_skip() {
        return;
    }
    // One of each on pcie.0, eight functions per slot, so SeaBIOS initialises them all
    // without running out of bridge I/O windows.
    let mut plan = String::new();
    for (k, m) in TESTABLE_MODELS.iter().enumerate() {
        let (slot, func) = (1 + k / 8, k % 8);
        let mf = if func == 0 { ",multifunction=on" } else { "" };
        plan += &format!("-device {m},id=m{k},bus=pcie.0,addr={slot:#x}.{func:#x}{mf}\n");
    }
    let mut vm = start(&plan);
    let fw = vm.run_firmware(DEFAULT_FIRMWARE_TIMEOUT).unwrap();
    assert!(fw.settled, "{:?}\n{}", fw.failure, vm.firmware_log());
    for (k, m) in TESTABLE_MODELS.iter().enumerate() {
        let d = fw
            .pci
            .device(&format!("m{k}"))
            .unwrap_or_else(|| panic!("{m} missing"));
        assert_eq!(
            (d.slot as usize, d.function as usize),
            (1 + k / 8, k % 8),
            "{m}"
        );
    }
}

#[test]
fn single_instance_models() {
    if !qemu_or_skip() {
        return;
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = SINGLE_INSTANCE_MODELS
            .iter()
            .map(|m| {
                s.spawn(move || {
                    let mut vm = start(&format!("-device {m},id=one,bus=pcie.0,addr=0x4"));
                    assert_eq!(vm.qtree().unwrap()["one"].driver, *m);
                    let fw = vm.run_firmware(DEFAULT_FIRMWARE_TIMEOUT).unwrap();
                    assert!(fw.settled, "{m}: {:?}", fw.failure);
                    drop(vm);

                    let behind_port = Qemu::start(&format!(
                        "-device pcie-root-port,id=rp1,chassis=1\n-device {m},id=one,bus=rp1"
                    ));
                    if ROOT_BUS_ONLY_MODELS.contains(m) {
                        let e = behind_port.err().expect("must be refused").to_string();
                        assert!(e.contains("must be plugged on the root bus"), "{e}");
                    } else {
                        assert!(behind_port.is_ok(), "{m}: {}", behind_port.err().unwrap());
                    }

                    let two = Qemu::start(&format!(
                        "-device {m},id=one,bus=pcie.0,addr=0x4\n-device {m},id=two,bus=pcie.0,addr=0x5"
                    ));
                    assert!(two.is_err(), "{m}: two instances started");
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}
