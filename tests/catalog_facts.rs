//! The catalog's facts about device models, checked against the real QEMU 7.2 and SeaBIOS:
//! every runnable model starts on the kind of slot its `kind` says (a PCIe model behind a
//! root port, a conventional one on a pcie-pci-bridge); it has I/O BARs there exactly when
//! `io` says so (R-IO: `io-reserve=0` is only emitted where nothing needs I/O); and
//! `device_del` is refused exactly when `hotpluggable` is false.

mod common;

use std::time::Duration;

use common::qemu::{
    aavmf_available, qemu_aarch64_or_skip, qemu_or_skip, Qemu, QemuPlan, Unplug, QEMU_AARCH64,
    ROOT_BUS_ONLY_MODELS, SINGLE_INSTANCE_MODELS, TESTABLE_MODELS, UEFI_FIRMWARE_TIMEOUT,
};
use pciplan::{BusKind, Catalog};

fn check_batch(models: &[&str]) -> Vec<String> {
    let cat = Catalog::q35();
    let lines = placed_lines(cat, models);
    let q = Qemu::start(&lines).unwrap_or_else(|e| panic!("{models:?}: {e}"));
    compare_facts(q, cat, models)
}

/// `-device` lines putting each model (id `d0`, `d1`, ...) where its `kind` says: a PCIe
/// model behind a root port of its own on `pcie.0` (from slot 2), a conventional one on a
/// slot of one `pcie-pci-bridge` behind the root port at slot 1.
fn placed_lines(cat: &Catalog, models: &[&str]) -> String {
    let mut lines = String::new();
    if models
        .iter()
        .any(|m| cat.device(m).unwrap().kind == BusKind::Pci)
    {
        lines.push_str("-device pcie-root-port,id=rpb,bus=pcie.0,addr=0x1,chassis=200\n");
        lines.push_str("-device pcie-pci-bridge,id=br,bus=rpb\n");
    }
    let (mut bridge_slot, mut port) = (1, 0);
    for (i, m) in models.iter().enumerate() {
        match cat.device(m).unwrap().kind {
            BusKind::Pcie => {
                let (slot, f) = (2 + port / 8, port % 8);
                port += 1;
                let mf = if f == 0 { ",multifunction=on" } else { "" };
                lines.push_str(&format!("-device pcie-root-port,id=rp{i},bus=pcie.0,addr={slot:#x}.{f:#x}{mf},chassis={}\n", i + 1));
                lines.push_str(&format!("-device {m},id=d{i},bus=rp{i}\n"));
            }
            BusKind::Pci => {
                lines.push_str(&format!(
                    "-device {m},id=d{i},bus=br,addr={bridge_slot:#x}\n"
                ));
                bridge_slot += 1;
            }
        }
    }
    lines
}

/// Runs the firmware of `q` (models at ids `d0`, `d1`, ...), then compares each model's I/O
/// BARs with its catalog `io` and whether `device_del` is refused with its `hotpluggable`;
/// one line per disagreement, naming the catalog's machine.
fn compare_facts(mut q: Qemu, cat: &Catalog, models: &[&str]) -> Vec<String> {
    let run = q.run_firmware(Duration::from_secs(30)).unwrap();
    assert!(run.failure.is_none(), "{models:?}: {:?}", run.failure);
    let by_id = run.pci.by_id();
    let io_of = |id: &str| by_id.get(id).map(|d| d.io_bars().next().is_some());
    judge(&mut q, cat, models, &io_of)
}

/// Compares each model (at ids `d0`, `d1`, ...) with its catalog facts: its I/O BARs as
/// `io_of` reads them (`None`: QEMU does not list the device) with `io`, and whether
/// `device_del` is refused with `hotpluggable`; one line per disagreement.
fn judge(
    q: &mut Qemu,
    cat: &Catalog,
    models: &[&str],
    io_of: &dyn Fn(&str) -> Option<bool>,
) -> Vec<String> {
    let machine = &cat.machine;
    let mut wrong = Vec::new();
    for (i, m) in models.iter().enumerate() {
        let facts = cat.device(m).unwrap();
        let id = format!("d{i}");
        let has_io = io_of(&id).unwrap_or_else(|| panic!("{machine}: {m} not listed by QEMU"));
        if has_io != facts.io {
            wrong.push(format!(
                "{machine}: {m}: catalog io={} but QEMU shows I/O BARs: {has_io}",
                facts.io
            ));
        }
        let refused = match q.unplug(&id) {
            Ok(u) => matches!(u, Unplug::Refused(_)),
            // virtio-pmem/virtio-mem: "virtio based memory devices cannot be unplugged."
            Err(e) if e.contains("cannot be unplugged") => true,
            Err(e) => panic!("{machine}: {m}: device_del: {e}"),
        };
        if refused == facts.hotpluggable {
            wrong.push(format!(
                "{machine}: {m}: catalog hotpluggable={} but device_del refused: {refused}",
                facts.hotpluggable
            ));
        }
    }
    wrong
}

#[test]
fn catalog_io_and_hotplug_facts_match_qemu() {
    if !qemu_or_skip() {
        return;
    }
    // Batches small enough for the firmware's 14 I/O windows.
    let wrong = check_models(Catalog::q35(), 10, check_batch);
    assert!(
        wrong.is_empty(),
        "catalog disagrees with QEMU:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn root_only_models_are_marked() {
    if !qemu_or_skip() {
        return;
    }
    let cat = Catalog::q35();
    for m in ROOT_BUS_ONLY_MODELS {
        assert!(cat.device(m).is_some_and(|d| d.root_only), "{m}");
    }
}

// ---------------------------------------------------------------------------------------
// pc (i440fx): models/pc.json against `qemu-system-x86_64 -machine pc`
// ---------------------------------------------------------------------------------------

/// `-machine pc` after the harness's `-machine q35`: QEMU takes the last machine type.
const PC: &[&str] = &["-machine", "pc"];

/// Starts a pc guest with these `-device` lines (and extra arguments).
fn pc_guest(lines: &str, extra: &[&str]) -> Qemu {
    let args: Vec<&str> = PC.iter().chain(extra).copied().collect();
    Qemu::start_with_args(lines, &args).unwrap_or_else(|e| panic!("{lines}: {e}"))
}

/// Each model of the batch on a slot of one `pci-bridge` (PC-BRIDGE), SeaBIOS run: the
/// model has I/O BARs there exactly when the pc catalog says `io` (on pc virtio models are
/// transitional, with an I/O BAR, wherever they sit), and `device_del` behind the bridge is
/// refused exactly when it says the model is not hot-pluggable.
fn check_pc_batch(models: &[&str]) -> Vec<String> {
    let cat = Catalog::pc();
    let mut lines = String::from("-device pci-bridge,id=br,bus=pci.0,addr=0x3,chassis_nr=1\n");
    for (i, m) in models.iter().enumerate() {
        lines.push_str(&format!("-device {m},id=d{i},bus=br,addr={:#x}\n", i + 1));
    }
    compare_facts(pc_guest(&lines, &[]), cat, models)
}

#[test]
fn pc_catalog_io_and_hotplug_facts_match_qemu() {
    if !qemu_or_skip() {
        return;
    }
    let wrong = check_models(Catalog::pc(), 15, check_pc_batch);
    assert!(
        wrong.is_empty(),
        "pc catalog disagrees with QEMU:\n{}",
        wrong.join("\n")
    );
}

/// The device models `binary -machine MACHINE -device help` lists.
fn known_models(binary: &str, machine: &str) -> Vec<String> {
    let out = std::process::Command::new(binary)
        .args(["-machine", machine, "-device", "help"])
        .output()
        .expect("qemu runs");
    let help =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    help.lines()
        .filter_map(|l| Some(l.strip_prefix("name \"")?.split('"').next()?.to_string()))
        .collect()
}

/// The catalog's runnable models in batches of `size` (each single-instance model in a
/// batch of its own), each checked by `check`; every disagreement it reports.
fn check_models(cat: &Catalog, size: usize, check: fn(&[&str]) -> Vec<String>) -> Vec<String> {
    let many: Vec<&str> = TESTABLE_MODELS
        .iter()
        .copied()
        .filter(|m| cat.device(m).is_some() && !ROOT_BUS_ONLY_MODELS.contains(m))
        .collect();
    assert!(many.len() >= 55, "{}: {}", cat.machine, many.len());
    let mut wrong = Vec::new();
    for chunk in many.chunks(size) {
        wrong.extend(check(chunk));
    }
    for m in SINGLE_INSTANCE_MODELS
        .iter()
        .filter(|m| cat.device(m).is_some() && !ROOT_BUS_ONLY_MODELS.contains(m))
    {
        wrong.extend(check(&[m]));
    }
    wrong
}

/// Every model of the pc catalog QEMU knows: `qemu-system-x86_64 -machine pc -device help`
/// lists it (the catalog has no model the machine lacks).
#[test]
fn pc_catalog_models_exist_in_qemu() {
    if !qemu_or_skip() {
        return;
    }
    let known = known_models(common::qemu::QEMU_BINARY, "pc");
    let cat = Catalog::pc();
    let missing: Vec<&String> = cat
        .devices
        .keys()
        .chain(cat.controllers.iter().map(|c| &c.qemu))
        .filter(|m| !known.contains(m))
        .collect();
    // Models QEMU 7.2 does not have at all are in the q35 catalog for newer QEMUs; the
    // same ones, and only they, are missing for pc.
    assert!(
        missing
            .iter()
            .all(|m| ["igb", "virtio-sound-pci"].contains(&m.as_str())),
        "{missing:?}"
    );
}

/// PC-ROOT-HP: with root hotplug on (QEMU's default) `device_del` of a device on `pci.0`
/// is accepted; with `-global PIIX4_PM.acpi-root-pci-hotplug=off` it is refused with
/// "Bus 'pci.0' does not support hotplugging", while a device behind a `pci-bridge` is
/// still accepted (PC-BRIDGE). The switch is the catalog's.
#[test]
fn pc_root_hotplug_switch() {
    if !qemu_or_skip() {
        return;
    }
    let switch = Catalog::pc().root.hotplug_switch.clone().unwrap();
    let lines = "-device virtio-net-pci,id=n,bus=pci.0,addr=0x4\n\
                 -device pci-bridge,id=br,bus=pci.0,addr=0x5,chassis_nr=1\n\
                 -device e1000,id=e,bus=br,addr=0x1\n";
    let mut on = pc_guest(lines, &[]);
    assert_eq!(on.unplug("n"), Ok(Unplug::Accepted));
    assert_eq!(on.unplug("e"), Ok(Unplug::Accepted));
    let global = format!("{switch}=off");
    let mut off = pc_guest(lines, &["-global", &global]);
    assert_eq!(
        off.unplug("n"),
        Ok(Unplug::Refused(
            "Bus 'pci.0' does not support hotplugging".into()
        ))
    );
    assert_eq!(off.unplug("e"), Ok(Unplug::Accepted));
    // The reserved functions of slot 1 are the PIIX3's (1.2, USB, is libvirt's addition).
    let pci = off.query_pci().unwrap();
    let slot1: Vec<u8> = pci
        .devices()
        .iter()
        .filter(|d| d.bus == 0 && d.slot == 1)
        .map(|d| d.function)
        .collect();
    let cat = Catalog::pc();
    for r in cat
        .root
        .reserved
        .iter()
        .filter(|r| r.slot == 1 && r.function != 2)
    {
        assert!(
            slot1.contains(&r.function),
            "{} at 1.{}",
            r.what,
            r.function
        );
    }
}

/// R-IO on pc: SeaBIOS gives the catalog's number of bridges holding an e1000 each their
/// I/O BARs, and one bridge more is out of I/O address space.
#[test]
fn pc_io_window_budget_matches_seabios() {
    if !qemu_or_skip() {
        return;
    }
    let windows = Catalog::pc()
        .io_budget(pciplan::Firmware::Bios)
        .unwrap()
        .windows;
    let guest = |n: u32| {
        let mut lines = String::new();
        for i in 0..n {
            lines.push_str(&format!(
                "-device pci-bridge,id=b{i},bus=pci.0,addr={:#x},chassis_nr={}\n\
                 -device e1000,id=e{i},bus=b{i},addr=0x1\n",
                i + 3,
                i + 1
            ));
        }
        let mut q = pc_guest(&lines, &[]);
        q.run_firmware(Duration::from_secs(30)).unwrap()
    };
    let fits = guest(windows);
    assert!(fits.failure.is_none(), "{:?}", fits.failure);
    let by_id = fits.pci.by_id();
    for i in 0..windows {
        let d = by_id.get(format!("e{i}").as_str()).expect("listed");
        assert!(d.io_bars().next().is_some(), "e{i} has no I/O BAR");
    }
    let past = guest(windows + 1);
    assert!(
        past.failure.as_deref().is_some_and(|f| f.contains("I/O")),
        "{:?}",
        past.failure
    );
}

// ---------------------------------------------------------------------------------------
// virt (aarch64): models/virt.json against `qemu-system-aarch64 -machine virt`
// ---------------------------------------------------------------------------------------

/// Starts a paused aarch64 `virt` guest with these `-device` lines (no firmware).
fn virt_guest(lines: &str, extra: &[&str]) -> Qemu {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let plan = QemuPlan::parse(lines).unwrap_or_else(|e| panic!("{lines}: {e}"));
    Qemu::start_virt(&plan, &extra).unwrap_or_else(|e| panic!("{lines}: {e}"))
}

/// Each model of the batch where its virt catalog `kind` says (a PCIe model behind a root
/// port of its own, a conventional one on a `pcie-pci-bridge`): QEMU starts it there, it
/// has an I/O BAR exactly when the catalog says `io` (QEMU lists a BAR's size before any
/// firmware runs), and `device_del` is refused exactly when it says the model is not
/// hot-pluggable.
fn check_virt_batch(models: &[&str]) -> Vec<String> {
    let cat = Catalog::virt();
    let lines = placed_lines(cat, models);
    let mut q = virt_guest(&lines, &[]);
    // Without firmware the buses behind the ports are unnumbered and query-pci does not
    // reach them; the qtree lists every device's BARs ("bar 2: i/o at ...") all the same.
    let qtree = q.qtree_text().unwrap();
    judge(&mut q, cat, models, &|id| qtree_has_io_bar(&qtree, id))
}

/// Whether the qtree's device `id` lists an I/O BAR (`bar N: i/o at ...` among the lines
/// indented under its `dev: ..., id "ID"` line); `None` when the id is not there.
fn qtree_has_io_bar(qtree: &str, id: &str) -> Option<bool> {
    let tag = format!("id \"{id}\"");
    let mut lines = qtree.lines();
    let head = lines.find(|l| l.trim_start().starts_with("dev: ") && l.ends_with(&tag))?;
    let indent = head.len() - head.trim_start().len();
    Some(
        lines
            .take_while(|l| l.len() - l.trim_start().len() > indent)
            .any(|l| l.trim_start().starts_with("bar ") && l.contains(": i/o at")),
    )
}

#[test]
fn virt_catalog_io_and_hotplug_facts_match_qemu() {
    if !qemu_aarch64_or_skip() {
        return;
    }
    let wrong = check_models(Catalog::virt(), 20, check_virt_batch);
    assert!(
        wrong.is_empty(),
        "virt catalog disagrees with QEMU:\n{}",
        wrong.join("\n")
    );
}

/// VIRT-MODELS: every model and controller of the virt catalog is one that
/// `qemu-system-aarch64 -machine virt -device help` lists, and none is VGA-class.
#[test]
fn virt_catalog_models_exist_in_qemu() {
    if !qemu_aarch64_or_skip() {
        return;
    }
    let known = known_models(QEMU_AARCH64, "virt");
    assert!(known.iter().any(|m| m == "pcie-root-port"), "{known:?}");
    let cat = Catalog::virt();
    let missing: Vec<&String> = cat
        .devices
        .keys()
        .chain(cat.controllers.iter().map(|c| &c.qemu))
        .filter(|m| !known.contains(m))
        .collect();
    assert!(missing.is_empty(), "{missing:?}");
    assert!(cat.devices.keys().all(|m| !m.contains("vga") && m != "VGA"));
}

/// VIRT-ROOT and VIRT-HP: slot 31 of `pcie.0` is free (no chipset), a device there cannot
/// be unplugged, a `hotplug=off` root port refuses `device_del` of its device, a plain one
/// and a `pcie-pci-bridge` slot accept it, and a `pxb-pcie` with a NUMA node works the same.
#[test]
fn virt_root_and_port_hotplug() {
    if !qemu_aarch64_or_skip() {
        return;
    }
    let cat = Catalog::virt();
    assert!(cat.root_free_slots().contains(&31));
    let lines = "-device virtio-net-pci,id=n,bus=pcie.0,addr=0x1f\n\
                 -device pcie-root-port,id=rp1,bus=pcie.0,addr=0x1,chassis=1,hotplug=off\n\
                 -device virtio-blk-pci,id=b1,bus=rp1\n\
                 -device pcie-root-port,id=rp2,bus=pcie.0,addr=0x2,chassis=2\n\
                 -device virtio-blk-pci,id=b2,bus=rp2\n\
                 -device pcie-root-port,id=rp3,bus=pcie.0,addr=0x3,chassis=3\n\
                 -device pcie-pci-bridge,id=br,bus=rp3\n\
                 -device e1000,id=e,bus=br,addr=0x1\n\
                 -device pxb-pcie,id=pxb,bus=pcie.0,addr=0x4,bus_nr=128,numa_node=0\n\
                 -device pcie-root-port,id=rp4,bus=pxb,addr=0x0,chassis=4,hotplug=off\n\
                 -device e1000e,id=x1,bus=rp4\n\
                 -device pcie-root-port,id=rp5,bus=pxb,addr=0x1,chassis=5\n\
                 -device e1000e,id=x2,bus=rp5\n";
    let mut q = virt_guest(lines, &[]);
    let refused = |u: Result<Unplug, String>| matches!(u, Ok(Unplug::Refused(_)));
    assert_eq!(
        q.unplug("n"),
        Ok(Unplug::Refused(
            "Bus 'pcie.0' does not support hotplugging".into()
        ))
    );
    assert!(refused(q.unplug("b1")), "hotplug=off port");
    assert!(refused(q.unplug("x1")), "hotplug=off port behind pxb-pcie");
    for id in ["b2", "e", "x2"] {
        assert_eq!(q.unplug(id), Ok(Unplug::Accepted), "{id}");
    }
}

/// R-IO on virt, booting AAVMF (UEFI, the only firmware of `virt`): the catalog's number
/// of root ports each holding an e1000e all get a 4 KiB I/O window, pairwise apart (the
/// whole 64 KiB); with one port more, one of them gets none.
#[test]
fn virt_io_window_budget_matches_aavmf() {
    if !qemu_aarch64_or_skip() {
        return;
    }
    if !aavmf_available() {
        common::missing(
            "PCIPLAN_REQUIRE_QEMU",
            "AAVMF is not installed (qemu-efi-aarch64)",
        );
        return;
    }
    let windows = Catalog::virt()
        .io_budget(pciplan::Firmware::Uefi)
        .unwrap()
        .windows;
    let opened = |n: u32| {
        let mut lines = String::new();
        for i in 0..n {
            let (slot, f) = (1 + i / 8, i % 8);
            let mf = if f == 0 { ",multifunction=on" } else { "" };
            lines.push_str(&format!(
                "-device pcie-root-port,id=rp{i},bus=pcie.0,addr={slot:#x}.{f:#x}{mf},chassis={}\n\
                 -device e1000e,id=e{i},bus=rp{i}\n",
                i + 1
            ));
        }
        let plan = QemuPlan::parse(&lines).unwrap();
        let mut q = Qemu::start_virt_uefi(&plan, &[]).unwrap();
        let run = q.run_uefi_firmware(UEFI_FIRMWARE_TIMEOUT).unwrap();
        let mut bases: Vec<u64> = (0..n)
            .filter_map(|i| {
                let b = run.pci.bridge(&format!("rp{i}"))?;
                b.io_range.as_ref().map(|r| r.base)
            })
            .collect();
        bases.sort();
        bases.dedup();
        bases.len() as u32
    };
    assert_eq!(opened(windows), windows);
    assert_eq!(opened(windows + 1), windows);
}
