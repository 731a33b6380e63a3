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
    let mut q = Qemu::start(&lines).unwrap_or_else(|e| panic!("{models:?}: {e}"));
    let run = q.run_firmware(Duration::from_secs(30)).unwrap();
    assert!(run.failure.is_none(), "{models:?}: {:?}", run.failure);
    let mut wrong = Vec::new();
    let by_id = run.pci.by_id();
    for (i, m) in models.iter().enumerate() {
        let facts = cat.device(m).unwrap();
        let id = format!("d{i}");
        let dev = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("{m} not in query-pci"));
        let has_io = dev.io_bars().next().is_some();
        if has_io != facts.io {
            wrong.push(format!(
                "{m}: catalog io={} but QEMU shows I/O BARs: {has_io}",
                facts.io
            ));
        }
        let refused = match q.unplug(&id) {
            Ok(u) => matches!(u, Unplug::Refused(_)),
            // virtio-pmem/virtio-mem: "virtio based memory devices cannot be unplugged."
            Err(e) if e.contains("cannot be unplugged") => true,
            Err(e) => panic!("{m}: device_del: {e}"),
        };
        if refused == facts.hotpluggable {
            wrong.push(format!(
                "{m}: catalog hotpluggable={} but device_del refused: {refused}",
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
