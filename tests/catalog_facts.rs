//! The catalog's facts about device models, checked against the real QEMU 7.2 and SeaBIOS:
//! every runnable model starts on the kind of slot its `kind` says (a PCIe model behind a
//! root port, a conventional one on a pcie-pci-bridge); it has I/O BARs there exactly when
//! `io` says so (R-IO: `io-reserve=0` is only emitted where nothing needs I/O); and
//! `device_del` is refused exactly when `hotpluggable` is false.

mod common;

use std::time::Duration;

use common::qemu::{
    qemu_or_skip, Qemu, Unplug, ROOT_BUS_ONLY_MODELS, SINGLE_INSTANCE_MODELS, TESTABLE_MODELS,
};
use pciplan::{BusKind, Catalog};

fn check_batch(models: &[&str]) -> Vec<String> {
    let cat = Catalog::q35();
    let mut lines = String::new();
    if models
        .iter()
        .any(|m| cat.device(m).unwrap().kind == BusKind::Pci)
    {
        lines.push_str("-device pcie-root-port,id=rpb,bus=pcie.0,addr=0x1,chassis=200\n");
        lines.push_str("-device pcie-pci-bridge,id=br,bus=rpb\n");
    }
    let mut bridge_slot = 1;
    let mut port = 0;
    for (i, m) in models.iter().enumerate() {
        let kind = cat.device(m).unwrap().kind;
        match kind {
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
    let q = Qemu::start(&lines).unwrap_or_else(|e| panic!("{models:?}: {e}"));
    compare_facts(q, cat, models)
}

/// Runs the firmware of `q` (models at ids `d0`, `d1`, ...), then compares each model's I/O
/// BARs with its catalog `io` and whether `device_del` is refused with its `hotpluggable`;
/// one line per disagreement, naming the catalog's machine.
fn compare_facts(mut q: Qemu, cat: &Catalog, models: &[&str]) -> Vec<String> {
    let run = q.run_firmware(Duration::from_secs(30)).unwrap();
    assert!(run.failure.is_none(), "{models:?}: {:?}", run.failure);
    let mut wrong = Vec::new();
    let by_id = run.pci.by_id();
    let machine = &cat.machine;
    for (i, m) in models.iter().enumerate() {
        let facts = cat.device(m).unwrap();
        let id = format!("d{i}");
        let dev = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("{machine}: {m} not in query-pci"));
        let has_io = dev.io_bars().next().is_some();
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
    let cat = Catalog::q35();
    let many: Vec<&str> = TESTABLE_MODELS
        .iter()
        .copied()
        .filter(|m| cat.device(m).is_some() && !ROOT_BUS_ONLY_MODELS.contains(m))
        .collect();
    assert!(many.len() >= 60);
    let mut wrong = Vec::new();
    // Batches small enough for the firmware's 14 I/O windows.
    for chunk in many.chunks(10) {
        wrong.extend(check_batch(chunk));
    }
    for m in SINGLE_INSTANCE_MODELS
        .iter()
        .filter(|m| cat.device(m).is_some() && !ROOT_BUS_ONLY_MODELS.contains(m))
    {
        wrong.extend(check_batch(&[m]));
    }
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
    let cat = Catalog::pc();
    let many: Vec<&str> = TESTABLE_MODELS
        .iter()
        .copied()
        .filter(|m| cat.device(m).is_some() && !ROOT_BUS_ONLY_MODELS.contains(m))
        .collect();
    assert!(many.len() >= 60, "{}", many.len());
    let mut wrong = Vec::new();
    for chunk in many.chunks(15) {
        wrong.extend(check_pc_batch(chunk));
    }
    for m in SINGLE_INSTANCE_MODELS
        .iter()
        .filter(|m| cat.device(m).is_some() && !ROOT_BUS_ONLY_MODELS.contains(m))
    {
        wrong.extend(check_pc_batch(&[m]));
    }
    assert!(
        wrong.is_empty(),
        "pc catalog disagrees with QEMU:\n{}",
        wrong.join("\n")
    );
}

/// Every model of the pc catalog QEMU knows: `qemu-system-x86_64 -machine pc -device help`
/// lists it (the catalog has no model the machine lacks).
#[test]
fn pc_catalog_models_exist_in_qemu() {
    if !qemu_or_skip() {
        return;
    }
    let out = std::process::Command::new(common::qemu::QEMU_BINARY)
        .args(["-machine", "pc", "-device", "help"])
        .output()
        .expect("qemu runs");
    let help =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let known: Vec<&str> = help
        .lines()
        .filter_map(|l| l.strip_prefix("name \"")?.split('"').next())
        .collect();
    let cat = Catalog::pc();
    let missing: Vec<&String> = cat
        .devices
        .keys()
        .chain(cat.controllers.iter().map(|c| &c.qemu))
        .filter(|m| !known.contains(&m.as_str()))
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
