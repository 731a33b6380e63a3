//! The guest's own view of a plan (issue 12): Debian's Linux kernel boots under TCG in the
//! plan's firmware (SeaBIOS, or OVMF for a `uefi` plan; on aarch64 `virt` the arm64 kernel
//! in AAVMF) with the plan's `--format qemu`
//! lines and a busybox initramfs that prints the PCI hotplug slots the kernel registered
//! (`/sys/bus/pci/slots/*/address`) and every PCI device's sysfs path (`common/guest.rs`).
//! For every planned device, found in the guest by its path of (slot, function) from the
//! root bus: a hotplug slot is registered at its position (`domain:bus:slot`) exactly when
//! the plan says it is hot-pluggable, so never for an `off` device and always for an `on`
//! one; an empty hot-pluggable spare port has its slot too.
//!
//! On `pc` it also checks what a Linux guest names NICs after (G-FLIP): with root hotplug on,
//! a NIC at `pci.0` slot N sits in a hotplug slot named `N` (systemd: `ensN`); the same plan
//! with root hotplug off registers none there (`enp0sN`), and the plan's notes say so.

mod common;

use common::guest::{self, Arch, GuestView, Kernel};
use common::qemu::{device_args, QemuPlan};
use pciplan::{Catalog, Firmware, Hotplug, Plan, Request};

/// The guest's kernel, or `None` (said on standard error) where QEMU or the Debian
/// packages are missing; with `PCIPLAN_REQUIRE_QEMU=1` (CI) a missing piece is a failure.
fn kernel_or_skip(arch: Arch) -> Option<Kernel> {
    let runs = std::process::Command::new(arch.qemu())
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs {
        common::missing(
            "PCIPLAN_REQUIRE_QEMU",
            &format!("{} does not run", arch.qemu()),
        );
        return None;
    }
    match guest::kernel(arch) {
        Ok(k) => {
            hotplug_drivers_built_in(&k);
            Some(k)
        }
        Err(e) => {
            common::missing(
                "PCIPLAN_REQUIRE_QEMU",
                &format!("no Debian {} kernel for the guest: {e}", arch.debian()),
            );
            None
        }
    }
}

/// The kernel registers the slots it has a driver for: PCIe native hotplug (root and
/// downstream ports), SHPC (bridges) and, on x86, ACPI (pc's `pci.0` and bridges, q35's
/// bridges) must be built in (the initramfs loads no modules), or a missing slot would be
/// the kernel's doing, not the plan's. Read from the package's `config-*`.
fn hotplug_drivers_built_in(k: &Kernel) {
    let config = k.vmlinuz.with_file_name("config");
    let text = std::fs::read_to_string(&config)
        .unwrap_or_else(|e| panic!("{}: {}: {e}", k.package, config.display()));
    let mut need = vec!["CONFIG_HOTPLUG_PCI_PCIE", "CONFIG_HOTPLUG_PCI_SHPC"];
    if k.arch == Arch::X86_64 {
        need.push("CONFIG_HOTPLUG_PCI_ACPI");
    }
    for opt in need {
        assert!(
            text.lines().any(|l| l == format!("{opt}=y")),
            "{}: {opt} is not built in",
            k.package
        );
    }
}

/// A request; `machine` is `MACHINE` or `MACHINE/FIRMWARE` (`virt/uefi`), `devices` is
/// `ID:MODEL:HOTPLUG ...`.
fn request(name: &str, machine: &str, policy: &str, devices: &str) -> Request {
    let (machine, firmware) = machine.split_once('/').unwrap_or((machine, "bios"));
    let devs: Vec<String> = devices
        .split_whitespace()
        .map(|d| {
            let [id, model, hp] = d.splitn(3, ':').collect::<Vec<_>>()[..] else {
                panic!("{d}: not ID:MODEL:HOTPLUG")
            };
            format!(r#"{{"id":"{id}","model":"{model}","hotplug":"{hp}"}}"#)
        })
        .collect();
    let text = format!(
        r#"{{"name":"{name}","machine":"{machine}","firmware":"{firmware}","policy":{{{policy}}},"devices":[{}]}}"#,
        devs.join(",")
    );
    Request::from_json(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The (slot, function) path from the root bus of whatever sits at `bus`:`slot`.`function`.
fn plan_path(plan: &Plan, bus: &str, slot: u8, function: u8) -> Vec<(u8, u8)> {
    let mut path = vec![(slot, function)];
    let mut bus = bus.to_string();
    while let Some(c) = plan.controllers.iter().find(|c| c.id == bus) {
        path.insert(0, (c.slot, c.function));
        bus = c.bus.to_string();
    }
    path
}

/// PCI vendor ids of the models the guests here use.
fn vendor(model: &str) -> u16 {
    match model {
        m if m.starts_with("virtio-") => 0x1af4,
        "e1000" | "e1000e" => 0x8086,
        "rtl8139" => 0x10ec,
        "nvme" | "qemu-xhci" => 0x1b36,
        m => panic!("no vendor id known for {m}"),
    }
}

/// One plan and what it is booted for.
struct Case {
    name: String,
    plan: Plan,
    /// The QEMU lines to boot (the plan's, or a variant for G-FLIP).
    args: String,
}

fn case(req: &Request) -> Case {
    let plan = pciplan::plan(req)
        .unwrap_or_else(|e| panic!("{}: {e}", req.name.as_deref().unwrap_or("?")));
    let cat = Catalog::for_machine(&plan.machine).unwrap();
    assert!(pciplan::validate(&plan, req, cat).is_empty());
    Case {
        name: req.name.clone().unwrap().to_string(),
        args: pciplan::emit::qemu(&plan, cat),
        plan,
    }
}

/// Boots every case at once (a thread each) and returns the views in order.
fn boot_all(kernel: &Kernel, machine: &[&str], cases: &[Case]) -> Vec<GuestView> {
    std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|c| {
                s.spawn(move || {
                    let plan = QemuPlan::parse(&c.args).unwrap();
                    let mut args = plan.other_args.clone();
                    args.extend(device_args(&plan));
                    let uefi = c.plan.firmware == Firmware::Uefi;
                    guest::boot(kernel, machine, &args, uefi).unwrap_or_else(|e| {
                        panic!("{}: the guest did not show its view: {e}", c.name)
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The checks every machine shares; returns (devices with a slot, devices without).
fn check_slots(c: &Case, view: &GuestView) -> (usize, usize) {
    let (mut with, mut without) = (0, 0);
    for d in &c.plan.devices {
        let path = plan_path(&c.plan, &d.bus, d.slot, d.function);
        let seen = view.device(&path).unwrap_or_else(|| {
            panic!(
                "{}: {} ({}) planned at path {path:?} is not in the guest: {:#?}",
                c.name, d.id, d.model, view.devices
            )
        });
        assert_eq!(
            seen.vendor,
            vendor(&d.model),
            "{}: {} at {} is another device",
            c.name,
            d.id,
            seen.bdf
        );
        let slot = view.slot_at(&seen.position());
        assert_eq!(
            slot.is_some(),
            d.hotpluggable,
            "{}: {} ({:?}, planned hotpluggable={}) at {} (path {path:?}): the guest registered {}\nslots: {:?}",
            c.name,
            d.id,
            d.hotplug,
            d.hotpluggable,
            seen.bdf,
            slot.map_or("no hotplug slot".to_string(), |n| format!("hotplug slot {n}")),
            view.slots
        );
        match d.hotplug {
            Hotplug::Off => assert!(slot.is_none(), "{}: off {} has a slot", c.name, d.id),
            Hotplug::On => assert!(slot.is_some(), "{}: on {} has none", c.name, d.id),
            Hotplug::Any => {}
        }
        if slot.is_some() {
            with += 1;
        } else {
            without += 1;
        }
    }
    // Empty hot-pluggable ports (spare_ports): the slot below them is registered.
    for p in c.plan.controllers.iter().filter(|p| {
        p.hotplug == Some(true)
            && !c.plan.devices.iter().any(|d| d.bus == p.id)
            && !c.plan.controllers.iter().any(|q| q.bus == p.id)
    }) {
        let path = plan_path(&c.plan, &p.bus, p.slot, p.function);
        let port = view
            .device(&path)
            .unwrap_or_else(|| panic!("{}: spare port {} not in the guest", c.name, p.id));
        let sec = port
            .secondary
            .unwrap_or_else(|| panic!("{}: {} has no secondary bus", c.name, port.bdf));
        let pos = format!("0000:{sec:02x}:00");
        assert!(
            view.slot_at(&pos).is_some(),
            "{}: spare port {} ({}): no hotplug slot at {pos}: {:?}",
            c.name,
            p.id,
            port.bdf,
            view.slots
        );
    }
    (with, without)
}

/// Boots the cases of `machine` at once, checks each ([`check_slots`]) and that at least
/// `min.0` devices sat in a hotplug slot and `min.1` in none; returns the views in order.
fn boot_and_check(
    kernel: &Kernel,
    machine: &[&str],
    cases: &[Case],
    min: (usize, usize),
) -> Vec<GuestView> {
    let views = boot_all(kernel, machine, cases);
    let machine = machine.join(" ");
    let (mut with, mut without) = (0, 0);
    for (c, v) in cases.iter().zip(&views) {
        report(c, v);
        let (w, wo) = check_slots(c, v);
        with += w;
        without += wo;
    }
    eprintln!("{machine}: {with} devices in a hotplug slot, {without} in none");
    assert!(
        with >= min.0 && without >= min.1,
        "{machine}: {with} {without}"
    );
    views
}

fn report(c: &Case, view: &GuestView) {
    eprintln!(
        "{}: booted in {:.1} s, {} devices, {} controllers, {} hotplug slots registered",
        c.name,
        view.seconds,
        c.plan.devices.len(),
        c.plan.controllers.len(),
        view.slots.len()
    );
}

/// The two PCIe layouts booted on q35 and on virt: `off` devices integrated on `pcie.0`
/// and `on` ones on plain root ports and a `pcie-pci-bridge`, with a spare port
/// (`MACHINE-integrated`, firmware `first`); `off` devices on `hotplug=off` root ports
/// (policy `port`), `on` on plain ones (`MACHINE-off-ports`, UEFI).
fn pcie_layouts(machine: &str, first: &str) -> [Case; 2] {
    let cases = [
        case(&request(
            &format!("{machine}-integrated"),
            first,
            r#""spare_ports":1"#,
            "n0:virtio-net-pci:off d0:virtio-blk-pci:off e0:e1000:off n1:virtio-net-pci:on d1:virtio-blk-pci:on e1:e1000:on r1:rtl8139:on s0:virtio-scsi-pci:any",
        )),
        case(&request(
            &format!("{machine}-off-ports"),
            &format!("{machine}/uefi"),
            r#""hotplug_off":"port""#,
            "n0:virtio-net-pci:off d0:virtio-blk-pci:off x0:e1000e:off n1:virtio-net-pci:on x1:e1000e:on e1:e1000:on v0:nvme:any",
        )),
    ];
    let offport = cases[1]
        .plan
        .controllers
        .iter()
        .filter(|c| c.hotplug == Some(false))
        .count();
    assert!(
        offport >= 3,
        "{machine}-off-ports: {offport} hotplug=off ports"
    );
    cases
}

/// q35: the integrated layout in SeaBIOS, the off-ports one in OVMF.
#[test]
fn q35_guest_registers_hotplug_slots_exactly_for_hotpluggable_devices() {
    let Some(kernel) = kernel_or_skip(Arch::X86_64) else {
        return;
    };
    let cases = pcie_layouts("q35", "q35");
    boot_and_check(&kernel, &["-machine", "q35"], &cases, (7, 6));
}

/// aarch64 `virt` (VIRT-HP: native PCIe hotplug only): Debian's arm64 kernel in AAVMF, both
/// layouts. A hotplug=off root port and `pcie.0` register no slot; a plain root port, the
/// `pcie-pci-bridge` (its SHPC slots) and an empty spare port do.
#[test]
fn virt_guest_registers_hotplug_slots_exactly_for_hotpluggable_devices() {
    let Some(kernel) = kernel_or_skip(Arch::Aarch64) else {
        return;
    };
    let cases = pcie_layouts("virt", "virt/uefi");
    boot_and_check(
        &kernel,
        &["-machine", "virt", "-cpu", "cortex-a57"],
        &cases,
        (7, 6),
    );
}

/// The NICs a `pc` plan puts on `pci.0`, with their slots.
fn root_nics(plan: &Plan) -> Vec<(String, u8)> {
    let cat = Catalog::pc();
    plan.devices
        .iter()
        .filter(|d| d.bus == "pci.0" && d.function == 0)
        .filter(|d| cat.device(&d.model).is_some_and(|m| m.nic))
        .map(|d| (d.id.to_string(), d.slot))
        .collect()
}

#[test]
fn pc_guest_registers_root_slots_only_with_root_hotplug_on() {
    let Some(kernel) = kernel_or_skip(Arch::X86_64) else {
        return;
    };
    let mixed = case(&request(
        "pc-mixed",
        "pc",
        r#""spare_ports":1"#,
        "n0:virtio-net-pci:off e0:e1000:off d0:virtio-blk-pci:off n1:virtio-net-pci:on e1:e1000:on d1:virtio-blk-pci:on r0:rtl8139:any",
    ));
    assert_eq!(mixed.plan.root_hotplug, Some(false), "pc-mixed");
    assert!(mixed
        .args
        .starts_with("-global PIIX4_PM.acpi-root-pci-hotplug=off\n"));
    // G-FLIP: the same plan with root hotplug on (the `-global` line left out).
    let flipped = Case {
        name: "pc-mixed, root hotplug on".into(),
        args: mixed.args.lines().skip(1).collect::<Vec<_>>().join("\n"),
        plan: Plan {
            root_hotplug: Some(true),
            devices: mixed
                .plan
                .devices
                .iter()
                .map(|d| pciplan::PlacedDevice {
                    hotpluggable: true,
                    hotplug: Hotplug::Any,
                    ..d.clone()
                })
                .collect(),
            ..mixed.plan.clone()
        },
    };
    let all_on = case(&request(
        "pc-all-on",
        "pc",
        "",
        "n0:virtio-net-pci:on e0:e1000:on r0:rtl8139:on d0:virtio-blk-pci:on d1:virtio-blk-pci:any x0:e1000e:any",
    ));
    assert_ne!(all_on.plan.root_hotplug, Some(false), "pc-all-on");
    assert!(all_on.plan.devices.iter().all(|d| d.bus == "pci.0"));
    let cases = [mixed, flipped, all_on];
    let views = boot_and_check(&kernel, &["-machine", "pc"], &cases, (10, 3));
    for (c, v) in cases.iter().zip(&views) {
        // Root hotplug on registers every free pci.0 slot from 2 (PC-ROOT-HP), off none.
        let root_slots = v
            .slots
            .iter()
            .filter(|(_, a)| a.starts_with("0000:00:"))
            .count();
        if c.plan.root_hotplug == Some(false) {
            assert_eq!(root_slots, 0, "{}: {:?}", c.name, v.slots);
        } else {
            assert!(root_slots >= 20, "{}: {:?}", c.name, v.slots);
        }
    }

    // G-FLIP: a NIC at pci.0 slot N sits in the slot named N while root hotplug is on
    // (ensN), in none once it is off (enp0sN), and the plan's notes say so.
    let (mixed, off, on) = (&cases[0], &views[0], &views[1]);
    let mut flips = Vec::new();
    for (id, slot) in root_nics(&mixed.plan) {
        let (d_off, d_on) = (
            off.device(&[(slot, 0)]).unwrap(),
            on.device(&[(slot, 0)]).unwrap(),
        );
        assert_eq!(off.nic_name(d_off), format!("enp0s{slot}"), "{id}");
        let name = slot.to_string();
        assert_eq!(on.slot_at(&d_on.position()), Some(name.as_str()), "{id}");
        assert_eq!(on.nic_name(d_on), format!("ens{slot}"), "{id}");
        let said = format!("{id} enp0s{slot} (ens{slot} with root hotplug on)");
        assert!(
            mixed
                .plan
                .notes
                .iter()
                .any(|n| n.contains(&said) && n.contains("[G-FLIP]")),
            "pc-mixed: the notes do not say {said:?}: {:#?}",
            mixed.plan.notes
        );
        flips.push(format!("{id} ens{slot} -> enp0s{slot}"));
    }
    assert!(flips.len() >= 2, "{flips:?}");
    for (id, slot) in root_nics(&cases[2].plan) {
        let d = views[2].device(&[(slot, 0)]).unwrap();
        assert_eq!(views[2].nic_name(d), format!("ens{slot}"), "pc-all-on {id}");
    }
    // Observed (Linux 6.1): the bridge's slots are named by slot number too, registered
    // after pci.0's; while root hotplug is on, bridge slot N >= 2 finds the name N taken by
    // pci.0's slot N and gets `N-2`, which systemd does not read as a number. So a NIC at
    // bridge slot N is `enp1sN` with root hotplug on and `ensN` with it off: G-FLIP renames
    // it the other way round.
    let cat = Catalog::pc();
    for d in mixed
        .plan
        .devices
        .iter()
        .filter(|d| d.bus != "pci.0" && d.function == 0)
    {
        if !cat.device(&d.model).is_some_and(|m| m.nic) {
            continue;
        }
        let path = plan_path(&mixed.plan, &d.bus, d.slot, d.function);
        let (g_off, g_on) = (off.device(&path).unwrap(), on.device(&path).unwrap());
        let bus = &g_off.bdf[5..7];
        let bus = u8::from_str_radix(bus, 16).unwrap();
        let root_taken = on.slot_at(&format!("0000:00:{:02x}", d.slot)).is_some();
        let (was, is) = (on.nic_name(g_on), off.nic_name(g_off));
        assert_eq!(is, format!("ens{}", d.slot), "{} behind the bridge", d.id);
        let expect = if root_taken {
            format!("enp{bus}s{}", d.slot)
        } else {
            format!("ens{}", d.slot)
        };
        assert_eq!(
            was, expect,
            "{} behind the bridge, root hotplug on: {:?}",
            d.id, on.slots
        );
        flips.push(format!("{} {was} -> {is} (behind the bridge)", d.id));
    }
    assert!(
        flips
            .iter()
            .any(|f| f.contains("enp1s") && f.ends_with("(behind the bridge)")),
        "no NIC behind the bridge renamed: {flips:?}"
    );
    eprintln!("G-FLIP, root hotplug on -> off: {}", flips.join(", "));
}

/// An adoption's `changes` list every NIC whose Linux name the guest changes, with the
/// names the guest has (G-FLIP). With root hotplug on, a Linux guest names bridge slot N >= 2
/// `N-2` when `pci.0` registered slot N first, so systemd names the NIC `enp1sN`; the
/// bridge's own `pci.0` slot (6 here) registers nothing, so bridge slot 6 is `ens6` either
/// way. Here an existing pc guest (root hotplug on, a bridge at 00:06 with NICs at slots 3
/// and 4) is adopted with one `pci.0` NIC and the NIC at slot 4 turned `off`: root hotplug
/// goes off, n1 on `pci.0` is renamed `ens3` -> `enp0s3`, n0 staying at bridge slot 3
/// `enp1s3` -> `ens3`, and n2 moves to `pci.0` from `enp1s4` (observed in Linux 6.1, 2
/// boots). Until `src/changes.rs` knew the bridge rule, n0 was missing and n2 listed from
/// `ens4`.
#[test]
fn pc_adoption_lists_every_nic_the_guest_renames() {
    let Some(kernel) = kernel_or_skip(Arch::X86_64) else {
        return;
    };
    let existing = Request::from_json(
        r#"{"name":"pc-adopt-before","machine":"pc","root_hotplug":true,"devices":[
      {"id":"n1","model":"virtio-net-pci","hotplug":"any","address":{"bus":"pci.0","slot":3}},
      {"id":"d0","model":"virtio-blk-pci","hotplug":"any","address":{"bus":"pci.0","slot":4}},
      {"id":"n0","model":"virtio-net-pci","hotplug":"any","address":{"bus":"br","slot":3}},
      {"id":"n2","model":"e1000","hotplug":"any","address":{"bus":"br","slot":4}}],
      "controllers":[{"id":"br","model":"pci-bridge","chassis":1,"address":{"bus":"pci.0","slot":6}}]}"#,
    )
    .expect("a request");
    let mut req = existing.clone();
    req.name = Some("pc-adopt-after".into());
    for (id, h) in [
        ("n1", Hotplug::Off),
        ("d0", Hotplug::On),
        ("n0", Hotplug::On),
        ("n2", Hotplug::Off),
    ] {
        req.devices.iter_mut().find(|d| d.id == id).unwrap().hotplug = Some(h);
    }
    let adopted = pciplan::adopt(&req).expect("adopts");
    let cat = Catalog::pc();
    let cases = [case(&existing), {
        let args = pciplan::emit::qemu(&adopted, cat);
        Case {
            name: "pc-adopt-after".into(),
            plan: adopted.clone(),
            args,
        }
    }];
    let views = boot_all(&kernel, &["-machine", "pc"], &cases);
    let name_in = |c: &Case, v: &GuestView, id: &str| {
        let d = c.plan.devices.iter().find(|d| d.id == id).unwrap();
        let path = plan_path(&c.plan, &d.bus, d.slot, d.function);
        v.nic_name(v.device(&path).unwrap())
    };
    let changes = adopted.changes.as_ref().expect("changes");
    let mut wrong = Vec::new();
    for d in existing
        .devices
        .iter()
        .filter(|d| cat.device(&d.model).is_some_and(|m| m.nic))
    {
        let seen = (
            name_in(&cases[0], &views[0], &d.id),
            name_in(&cases[1], &views[1], &d.id),
        );
        let listed = changes
            .iter()
            .find(|c| c.id == d.id)
            .and_then(|c| c.linux_name.as_ref())
            .map(|l| (l.from.clone(), l.to.clone()));
        let want = (seen.0 != seen.1).then(|| seen.clone());
        if listed != want {
            wrong.push(format!(
                "{}: the guest {} -> {}, changes {listed:?}",
                d.id, seen.0, seen.1
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
