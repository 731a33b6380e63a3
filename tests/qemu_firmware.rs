//! The firmware's I/O budget (rule R-IO), observed by booting the real firmware: SeaBIOS
//! (package `seabios`) and OVMF (package `ovmf`) under `qemu-system-x86_64` (TCG).
//!
//! For each firmware the catalog's number of I/O windows is checked from both sides: at the
//! limit every device with an I/O BAR gets it; one past the limit the planner refuses with
//! R-IO naming the firmware, and the firmware really fails on such a layout (SeaBIOS stops
//! with "out of I/O address space"; OVMF gives none of the devices its I/O BAR). Then the
//! `io-reserve=0` decision per firmware, and seeded held-out guests around each limit: each
//! one either boots with every I/O BAR assigned or is refused with R-IO.
//!
//! Without QEMU or OVMF these tests skip and say so, unless `PCIPLAN_REQUIRE_QEMU=1` (CI),
//! where they fail.

mod common;

use common::qemu::{
    ovmf_available, qemu_or_skip, FirmwareRun, PciTree, Qemu, DEFAULT_FIRMWARE_TIMEOUT,
    UEFI_FIRMWARE_TIMEOUT,
};
use pciplan::{Catalog, Firmware, Plan, PlanError, Request, Rule};

/// True when QEMU (and OVMF for UEFI) can run here; says so, or fails in CI, when not.
fn can_boot(fw: Firmware) -> bool {
    if !qemu_or_skip() {
        return false;
    }
    if fw == Firmware::Uefi && !ovmf_available() {
        common::missing(
            "PCIPLAN_REQUIRE_QEMU",
            "OVMF is not installed (package ovmf)",
        );
        return false;
    }
    true
}

fn budget(fw: Firmware) -> u32 {
    Catalog::q35().io_budget(fw).unwrap().windows
}

/// `n` hot-pluggable `model` devices (each on a root port of its own) and `extra` JSON
/// device objects, for `fw`.
fn request(fw: Firmware, n: u32, model: &str, extra: &[String], spare: u32) -> Request {
    let mut devs: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"id":"n{i}","model":"{model}","hotplug":"on"}}"#))
        .collect();
    devs.extend(extra.iter().cloned());
    Request::from_json(&format!(
        r#"{{"firmware":"{}","policy":{{"spare_ports":{spare}}},"devices":[{}]}}"#,
        fw.as_str(),
        devs.join(",")
    ))
    .unwrap()
}

/// Boots `args` under `fw` and lets the firmware set PCI up.
fn boot(fw: Firmware, args: &str) -> FirmwareRun {
    let mut vm = match fw {
        Firmware::Bios => Qemu::start(args),
        _ => Qemu::start_uefi(args),
    }
    .unwrap_or_else(|e| panic!("QEMU refused the plan: {e}\n{args}"));
    let run = match fw {
        Firmware::Bios => vm.run_firmware(DEFAULT_FIRMWARE_TIMEOUT * 3),
        _ => vm.run_uefi_firmware(UEFI_FIRMWARE_TIMEOUT),
    }
    .unwrap();
    assert!(
        fw != Firmware::Uefi || run.settled,
        "OVMF did not finish: {:?}",
        run.failure
    );
    run
}

/// Ids of the plan's devices that have an I/O BAR and did not get it.
fn missing_io(plan: &Plan, pci: &PciTree) -> (usize, Vec<String>) {
    let mut with_io = 0;
    let mut missing = Vec::new();
    for d in &plan.devices {
        let dev = pci
            .device(&d.id)
            .unwrap_or_else(|| panic!("{} not in query-pci", d.id));
        let bars: Vec<_> = dev.io_bars().collect();
        if !bars.is_empty() {
            with_io += 1;
        }
        if bars.iter().any(|b| b.address.is_none()) {
            missing.push(d.id.to_string());
        }
    }
    (with_io, missing)
}

fn plan_ok(req: &Request) -> Plan {
    pciplan::plan(req).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_refused_by_io(req: &Request, fw_name: &str) {
    match pciplan::plan(req) {
        Err(PlanError::Infeasible(x)) => {
            assert_eq!(x.rule(), Rule::Io, "{x}");
            assert!(x.to_string().contains(fw_name), "{x}");
        }
        other => panic!("expected R-IO, got {other:?}"),
    }
}

fn limit_holds(fw: Firmware, fw_name: &str) {
    let n = budget(fw);
    // At the limit: every device has its I/O BAR.
    let plan = plan_ok(&request(fw, n, "e1000e", &[], 0));
    assert_eq!(plan.firmware, fw);
    let args = pciplan::emit::qemu(&plan, Catalog::q35());
    let run = boot(fw, &args);
    assert!(run.settled, "{:?}", run.failure);
    let (with_io, missing) = missing_io(&plan, &run.pci);
    assert_eq!(with_io, n as usize);
    assert_eq!(
        missing,
        Vec::<String>::new(),
        "{fw_name} at its limit of {n}"
    );

    // One past: the planner refuses, naming the firmware...
    let past = request(fw, n + 1, "e1000e", &[], 0);
    assert_refused_by_io(&past, fw_name);
    // ...and the firmware really fails on that layout (the plan at the limit plus one more
    // port holding an e1000e, written by hand).
    let args = format!(
        "{args}-device pcie-root-port,id=xrp,bus=pcie.0,chassis=200,addr=0x1e\n-device e1000e,id=xe,bus=xrp\n"
    );
    let run = boot(fw, &args);
    match fw {
        Firmware::Bios => {
            assert!(!run.settled);
            assert_eq!(
                run.failure.as_deref(),
                Some("PCI: out of I/O address space")
            );
        }
        _ => {
            // OVMF: the resources of the root bus do not fit, and none of the n + 1 devices
            // gets its I/O BAR (nor, observed, its memory BARs).
            let got = run
                .pci
                .devices()
                .iter()
                .filter(|d| d.qdev_id.starts_with('n') || d.qdev_id == "xe")
                .filter(|d| d.io_bars().any(|b| b.address.is_some()))
                .count();
            assert_eq!(got, 0, "OVMF past its limit");
        }
    }
}

#[test]
fn seabios_fits_its_budget_and_no_more() {
    if can_boot(Firmware::Bios) {
        limit_holds(Firmware::Bios, "SeaBIOS");
    }
}

#[test]
fn ovmf_fits_its_budget_and_no_more() {
    if can_boot(Firmware::Uefi) {
        assert_eq!(budget(Firmware::Uefi), 9);
        limit_holds(Firmware::Uefi, "OVMF");
    }
}

/// `io-reserve=0` per firmware. Observed with QEMU 7.2: SeaBIOS opens no I/O window for an
/// empty hot-pluggable root port, with ACPI PCI hotplug (q35's default) or native PCIe hotplug
/// (`-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off`), with or without
/// `io-reserve=0`. OVMF does open one: 9 e1000e plus 2 empty ports without `io-reserve=0`
/// leave all 9 without their I/O BAR; with it every BAR is assigned. Plans for both firmwares
/// carry `io-reserve=0` on added ports with nothing below.
#[test]
fn io_reserve_per_firmware() {
    const NATIVE: [&str; 2] = [
        "-global",
        "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",
    ];
    for fw in Firmware::ALL {
        if !can_boot(fw) {
            continue;
        }
        let (n, spare) = (budget(fw), 2);
        let plan = plan_ok(&request(fw, n, "e1000e", &[], spare));
        let reserved = plan
            .controllers
            .iter()
            .filter(|c| c.io_reserve == Some(0))
            .count();
        let args = pciplan::emit::qemu(&plan, Catalog::q35());
        match fw {
            Firmware::Bios => {
                assert_eq!(reserved, spare as usize, "the spare ports");
                for (plan_args, native) in [
                    (args.clone(), false),
                    (args.clone(), true),
                    (args.replace(",io-reserve=0", ""), false),
                    (args.replace(",io-reserve=0", ""), true),
                ] {
                    let extra: &[&str] = if native { &NATIVE } else { &[] };
                    let mut vm = Qemu::start_with_args(&plan_args, extra).unwrap();
                    let run = vm.run_firmware(DEFAULT_FIRMWARE_TIMEOUT * 3).unwrap();
                    let what = format!(
                        "native hotplug {native}, io-reserve kept {}",
                        plan_args == args
                    );
                    assert!(run.settled, "{what}: {:?}", run.failure);
                    assert_eq!(
                        missing_io(&plan, &run.pci).1,
                        Vec::<String>::new(),
                        "{what}"
                    );
                }
            }
            _ => {
                assert_eq!(reserved, spare as usize, "the spare ports");
                let bare = args.replace(",io-reserve=0", "");
                for (plan_args, fits) in [(&args, true), (&bare, false)] {
                    let mut vm = Qemu::start_uefi(plan_args).unwrap();
                    let run = vm.run_uefi_firmware(UEFI_FIRMWARE_TIMEOUT).unwrap();
                    assert!(run.settled, "{:?}", run.failure);
                    let missing = missing_io(&plan, &run.pci).1;
                    if fits {
                        assert_eq!(missing, Vec::<String>::new(), "OVMF with io-reserve=0");
                    } else {
                        assert_eq!(missing.len(), n as usize, "OVMF without io-reserve=0");
                    }
                }
            }
        }
    }
}

/// A small seeded generator (xorshift), so the guests are held out from the cases above.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % u64::from(n)) as u32
    }
}

/// A guest of 6..20 devices near `fw`'s limit: NICs and disks with and without I/O BARs,
/// conventional NICs behind bridges, and any/off devices that can sit on pcie.0.
fn heldout_guest(fw: Firmware, rng: &mut Rng) -> Request {
    const MODELS: [&str; 6] = [
        "e1000e",
        "e1000",
        "rtl8139",
        "virtio-net-pci",
        "virtio-blk-pci-transitional",
        "virtio-blk-pci",
    ];
    let n = budget(fw) - 3 + rng.next(6);
    let extra = 2 + rng.next(4);
    let mut devs = Vec::new();
    for i in 0..n + extra {
        let model = if i < n {
            MODELS[rng.next(3) as usize]
        } else {
            MODELS[rng.next(MODELS.len() as u32) as usize]
        };
        let hp = ["on", "on", "on", "any", "off"][rng.next(5) as usize];
        devs.push(format!(
            r#"{{"id":"d{i}","model":"{model}","hotplug":"{hp}"}}"#
        ));
    }
    request(fw, 0, "e1000e", &devs, rng.next(3))
}

#[test]
fn heldout_guests_around_each_limit_boot_or_are_refused() {
    let seed: u64 = std::env::var("PCIPLAN_HELDOUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f00d);
    for fw in Firmware::ALL {
        if !can_boot(fw) {
            continue;
        }
        let mut rng = Rng(seed ^ ((fw as u64 + 1) * 0x9e37_79b9_7f4a_7c15));
        let (mut booted, mut refused) = (0, 0);
        for g in 0..6 {
            let req = heldout_guest(fw, &mut rng);
            match pciplan::plan(&req) {
                Ok(plan) => {
                    let args = pciplan::emit::qemu(&plan, Catalog::q35());
                    let run = boot(fw, &args);
                    assert!(run.settled, "{fw:?} guest {g}: {:?}\n{args}", run.failure);
                    let (_, missing) = missing_io(&plan, &run.pci);
                    assert_eq!(missing, Vec::<String>::new(), "{fw:?} guest {g}:\n{args}");
                    booted += 1;
                }
                Err(PlanError::Infeasible(x)) => {
                    assert_eq!(x.rule(), Rule::Io, "{fw:?} guest {g}: {x}");
                    refused += 1;
                }
                Err(e) => panic!("{fw:?} guest {g}: {e}"),
            }
        }
        eprintln!("{fw:?}: {booted} held-out guests booted with every I/O BAR, {refused} refused with R-IO");
        assert!(booted > 0, "{fw:?}: no guest near the limit was plannable");
    }
}

#[test]
fn firmware_is_read_from_libvirt_domains() {
    let q35 = "<type arch='x86_64' machine='q35'>hvm</type>";
    for (os, fw) in [
        (format!("<os>{q35}</os>"), Firmware::Bios),
        (
            format!("<os>{q35}<loader readonly='yes' type='rom'>/usr/share/seabios/bios.bin</loader></os>"),
            Firmware::Bios,
        ),
        (format!("<os firmware='efi'>{q35}</os>"), Firmware::Uefi),
        (
            format!("<os>{q35}<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader><nvram>/var/lib/libvirt/qemu/nvram/w_VARS.fd</nvram></os>"),
            Firmware::Uefi,
        ),
        (
            format!("<os>{q35}<loader readonly='yes'>/usr/share/edk2/ovmf/OVMF_CODE.fd</loader></os>"),
            Firmware::Uefi,
        ),
    ] {
        let xml = format!(
            "<domain type='kvm'><name>w</name><memory>1048576</memory>{os}<devices><interface type='network'><source network='default'/><model type='e1000e'/></interface></devices></domain>"
        );
        let dom = pciplan::libvirt::Domain::parse(&xml).unwrap();
        assert_eq!(dom.request.firmware, fw, "{os}");
        let plan = dom.plan().unwrap();
        assert_eq!(plan.firmware, fw);
    }
}
