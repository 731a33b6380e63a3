//! Adoption (`pciplan::adopt`, O-ADOPT, G-ID) seen by the real guest: QEMU 7.2 under TCG
//! with SeaBIOS, the firmware run until it has numbered every bus (as
//! `tests/qemu_firmware.rs` boots it), then `query-pci`.
//!
//! Each case is an existing guest (every device at an address, its controllers) and a new
//! policy. BEFORE is the existing guest planned as it is (every device `any`, so the policy
//! holds and every address stays a pin: `pciplan::plan` adds nothing); AFTER is what
//! `pciplan::adopt` makes of it under the new policy. Both are started from
//! `pciplan::emit::qemu` and read back with `query-pci` once SeaBIOS is done. For every
//! device of the existing guest the identity the guest sees is taken from `query-pci`: the
//! root bus (0 for `pcie.0`, an expander's `bus_nr`), the (slot, function) of every bridge
//! above it and its own, and the number of the bus it sits on. Then:
//! - a device the plan does not list in `changes` has the same identity in both guests;
//! - a `moved` one has another path (or root); a `renumbered` one the same path and the
//!   bus numbers the change reports (`bus N`);
//! - a change's Linux name (`enpBsS[fF]`) and Windows path (`PCIROOT(R)#PCI(SSFF)...`) are
//!   the ones `query-pci` gives before and after;
//! - in the AFTER guest `device_del` is refused for every `off` device and accepted for every
//!   `on` one (added devices included).
//!
//! Observed with QEMU 7.2 and SeaBIOS 1.16: SeaBIOS numbers the buses below `pcie.0` from 1,
//! depth first in slot/function order, and an empty root port takes a number too (an emptied
//! port the adoption keeps holds the numbers of the ports after it); the bus of a
//! `pxb-pcie` is its `bus_nr` and the ports below it count on from `bus_nr + 1`; a port
//! flipped to `hotplug=off` changes no number. In `query-pci` an expander is a root bus of
//! its own (numbered `bus_nr`), so the expander's own slot on `pcie.0` is in no device's
//! path there.
//!
//! Without QEMU the test skips and says so, unless `PCIPLAN_REQUIRE_QEMU=1` (CI), where it
//! fails.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::qemu::{qemu_or_skip, PciDevice, PciTree, Qemu, Unplug, DEFAULT_FIRMWARE_TIMEOUT};
use pciplan::{Catalog, Change, ChangeKind, Hotplug, Plan, Request};

/// One existing guest and the policy it is adopted under.
struct Case {
    name: &'static str,
    /// The existing guest: `"devices":[...],"controllers":[...]`, every device with an
    /// address and no `hotplug`.
    guest: String,
    /// The new policy (JSON object).
    policy: &'static str,
    /// The new hotplug requirement per device id; the others are `any`.
    hotplug: &'static [(&'static str, &'static str)],
    /// Devices the guest gains (JSON objects without address).
    new: &'static [&'static str],
    /// The guest-visible changes the adoption must come to (the minimum, O-ADOPT).
    visible: usize,
}

/// A root port at `slot.function` of `bus` as libvirt writes it.
fn port(id: &str, bus: &str, slot: u8, function: u8, chassis: u8) -> String {
    format!(
        r#"{{"id":"{id}","model":"pcie-root-port","chassis":{chassis},"port":{},"address":{{"bus":"{bus}","slot":{slot},"function":{function}}}}}"#,
        u16::from(chassis) + 15
    )
}

/// A device `id` of `model` at `bus` `slot.function`.
fn dev(id: &str, model: &str, bus: &str, slot: u8, function: u8) -> String {
    format!(
        r#"{{"id":"{id}","model":"{model}","address":{{"bus":"{bus}","slot":{slot},"function":{function}}}}}"#
    )
}

fn guest(devices: &[String], controllers: &[String]) -> String {
    format!(
        r#""devices":[{}],"controllers":[{}]"#,
        devices.join(","),
        controllers.join(",")
    )
}

/// libvirt's layout for a q35 domain: VGA at 00:01.0, every PCIe device behind its own root
/// port at 00:02.x, an `e1000` on a `pcie-pci-bridge` behind the last port.
fn libvirt_layout() -> String {
    let mut ctrls: Vec<String> = (1..=5)
        .map(|i| port(&format!("pci.{i}"), "pcie.0", 2, i - 1, i))
        .collect();
    ctrls.push(
        r#"{"id":"pci.6","model":"pcie-pci-bridge","address":{"bus":"pci.5","slot":0}}"#.into(),
    );
    guest(
        &[
            dev("video0", "VGA", "pcie.0", 1, 0),
            dev("net0", "virtio-net-pci", "pci.1", 0, 0),
            dev("disk0", "virtio-blk-pci", "pci.2", 0, 0),
            dev("disk1", "virtio-blk-pci", "pci.3", 0, 0),
            dev("rng0", "virtio-rng-pci", "pci.4", 0, 0),
            dev("nic1", "e1000", "pci.6", 1, 0),
        ],
        &ctrls,
    )
}

/// Nine devices of nine models, each on a root port of its own (00:02.0-00:03.0).
fn own_ports_layout() -> String {
    let models = [
        "virtio-net-pci",
        "virtio-blk-pci",
        "nvme",
        "qemu-xhci",
        "virtio-scsi-pci",
        "e1000e",
        "virtio-serial-pci",
        "virtio-balloon-pci",
        "virtio-rng-pci",
    ];
    let mut devs = Vec::new();
    let mut ctrls = Vec::new();
    for (i, m) in models.iter().enumerate() {
        let i = i as u8;
        let id = format!("rp{i}");
        ctrls.push(port(&id, "pcie.0", 2 + i / 8, i % 8, i + 1));
        devs.push(dev(&format!("d{i}"), m, &id, 0, 0));
    }
    guest(&devs, &ctrls)
}

/// Conventional devices on a `pcie-pci-bridge` (slots 1-3), one PCIe device on a port.
fn bridge_layout() -> String {
    guest(
        &[
            dev("nic0", "e1000", "br", 1, 0),
            dev("nic1", "rtl8139", "br", 2, 0),
            dev("disk0", "virtio-blk-pci-transitional", "br", 3, 0),
            dev("net0", "virtio-net-pci", "p2", 0, 0),
        ],
        &[
            port("p1", "pcie.0", 2, 0, 1),
            port("p2", "pcie.0", 2, 1, 2),
            r#"{"id":"br","model":"pcie-pci-bridge","address":{"bus":"p1","slot":0}}"#.into(),
        ],
    )
}

/// Integrated devices on `pcie.0` (slots 3-5) next to two ports at 00:02.x.
fn root_bus_layout() -> String {
    guest(
        &[
            dev("e0", "e1000e", "pcie.0", 3, 0),
            dev("n0", "virtio-net-pci", "pcie.0", 4, 0),
            dev("s0", "ich9-ahci", "pcie.0", 5, 0),
            dev("b0", "virtio-blk-pci", "p1", 0, 0),
            dev("b1", "virtio-blk-pci", "p2", 0, 0),
        ],
        &[port("p1", "pcie.0", 2, 0, 1), port("p2", "pcie.0", 2, 1, 2)],
    )
}

/// A NUMA guest: an expander for node 1 (`bus_nr` 128, at 00:05.0) with two root ports,
/// and two root ports on `pcie.0`.
fn numa_layout(numa: bool) -> String {
    let node = |id: &str, model: &str, bus: &str| {
        let d = dev(id, model, bus, 0, 0);
        if numa {
            d.replacen(r#","address""#, r#","numa_node":1,"address""#, 1)
        } else {
            d
        }
    };
    guest(
        &[
            dev("a", "virtio-net-pci", "p1", 0, 0),
            dev("b", "virtio-blk-pci", "p2", 0, 0),
            node("x0", "virtio-net-pci", "xp1"),
            node("x1", "virtio-blk-pci", "xp2"),
        ],
        &[
            port("p1", "pcie.0", 2, 0, 1),
            port("p2", "pcie.0", 2, 1, 2),
            r#"{"id":"pxb1","model":"pxb-pcie","bus_nr":128,"numa_node":1,"address":{"bus":"pcie.0","slot":5}}"#.into(),
            port("xp1", "pxb1", 0, 0, 3),
            port("xp2", "pxb1", 0, 1, 4),
        ],
    )
}

/// Issue 10's expander case: 16 ports with a device each at slots 29-30, integrated
/// endpoints at 4-28, an `any` disk on a port at slot 2; slots 1 and 3 free.
fn crowded_layout() -> String {
    let mut devs: Vec<String> = (4..=28)
        .map(|s| dev(&format!("i{s}"), "virtio-rng-pci", "pcie.0", s, 0))
        .collect();
    let mut ctrls = vec![port("q", "pcie.0", 2, 0, 40)];
    devs.push(dev("x", "virtio-blk-pci", "q", 0, 0));
    for slot in [29u8, 30] {
        for f in 0..8u8 {
            let id = format!("p{slot}_{f}");
            ctrls.push(port(&id, "pcie.0", slot, f, (slot - 29) * 8 + f + 1));
            devs.push(dev(&format!("d{slot}_{f}"), "virtio-net-pci", &id, 0, 0));
        }
    }
    guest(&devs, &ctrls)
}

fn cases() -> Vec<Case> {
    let lv = libvirt_layout;
    let on_off: &[(&str, &str)] = &[
        ("net0", "off"),
        ("disk0", "off"),
        ("disk1", "on"),
        ("rng0", "on"),
        ("nic1", "on"),
    ];
    vec![
        Case {
            name: "libvirt, disk and NIC off, auto",
            guest: lv(),
            policy: r#"{"hotplug_off":"auto"}"#,
            hotplug: on_off,
            new: &[],
            visible: 0,
        },
        Case {
            name: "libvirt, disk and NIC off, port",
            guest: lv(),
            policy: r#"{"hotplug_off":"port"}"#,
            hotplug: on_off,
            new: &[],
            visible: 0,
        },
        Case {
            name: "libvirt, disk and NIC off, integrated",
            guest: lv(),
            policy: r#"{"hotplug_off":"integrated"}"#,
            hotplug: on_off,
            new: &[],
            visible: 2,
        },
        Case {
            name: "libvirt, the bridged e1000 off",
            guest: lv(),
            policy: r#"{"hotplug_off":"auto"}"#,
            hotplug: &[("nic1", "off"), ("net0", "on"), ("disk0", "on")],
            new: &[],
            visible: 1,
        },
        Case {
            name: "own ports, three off and a new device, auto",
            guest: own_ports_layout(),
            policy: r#"{"hotplug_off":"auto"}"#,
            hotplug: &[
                ("d0", "off"),
                ("d1", "off"),
                ("d5", "off"),
                ("d2", "on"),
                ("d3", "on"),
                ("d8", "on"),
            ],
            new: &[r#"{"id":"new0","model":"virtio-net-pci","hotplug":"on"}"#],
            visible: 0,
        },
        Case {
            name: "own ports, three off, integrated",
            guest: own_ports_layout(),
            policy: r#"{"hotplug_off":"integrated"}"#,
            hotplug: &[("d0", "off"), ("d4", "off"), ("d8", "off"), ("d1", "on")],
            new: &[],
            visible: 3,
        },
        Case {
            name: "conventional devices on a bridge, e1000 off",
            guest: bridge_layout(),
            policy: r#"{"hotplug_off":"auto"}"#,
            hotplug: &[("nic0", "off"), ("nic1", "on"), ("net0", "on")],
            new: &[],
            visible: 1,
        },
        Case {
            name: "a multifunction port with an off and an on device",
            guest: guest(
                &[
                    dev("a", "virtio-net-pci", "p1", 0, 0),
                    dev("b", "virtio-blk-pci", "p1", 0, 1),
                    dev("c", "virtio-blk-pci", "p2", 0, 0),
                ],
                &[port("p1", "pcie.0", 2, 0, 1), port("p2", "pcie.0", 2, 1, 2)],
            ),
            policy: r#"{"hotplug_off":"auto"}"#,
            hotplug: &[("a", "off"), ("b", "on"), ("c", "on")],
            new: &[],
            visible: 1,
        },
        Case {
            name: "integrated devices: one becomes on, one on a port becomes off",
            guest: root_bus_layout(),
            policy: r#"{"hotplug_off":"integrated"}"#,
            hotplug: &[
                ("n0", "on"),
                ("e0", "off"),
                ("s0", "off"),
                ("b0", "off"),
                ("b1", "on"),
            ],
            new: &[],
            visible: 2,
        },
        Case {
            name: "a port with hotplug=off flips back for an on device",
            guest: guest(
                &[
                    dev("a", "virtio-blk-pci", "pcie.0", 4, 0),
                    dev("b", "virtio-blk-pci", "p1", 0, 0),
                    dev("c", "virtio-blk-pci", "p2", 0, 0),
                ],
                &[
                    port("p1", "pcie.0", 2, 0, 1).replacen(
                        r#","address""#,
                        r#","hotplug":false,"address""#,
                        1,
                    ),
                    port("p2", "pcie.0", 2, 1, 2),
                ],
            ),
            policy: r#"{"hotplug_off":"auto"}"#,
            hotplug: &[("a", "on"), ("b", "on"), ("c", "on")],
            new: &[],
            visible: 1,
        },
        Case {
            name: "ports at high slots, free slots below, a new device",
            guest: guest(
                &[
                    dev("a", "virtio-blk-pci", "p1", 0, 0),
                    dev("b", "virtio-net-pci", "p2", 0, 0),
                    dev("v", "VGA", "pcie.0", 1, 0),
                ],
                &[
                    port("p1", "pcie.0", 29, 0, 1),
                    port("p2", "pcie.0", 30, 0, 2),
                ],
            ),
            policy: r#"{"hotplug_off":"auto"}"#,
            hotplug: &[("a", "off"), ("b", "on")],
            new: &[
                r#"{"id":"new0","model":"virtio-blk-pci","hotplug":"on"}"#,
                r#"{"id":"new1","model":"e1000","hotplug":"on"}"#,
            ],
            visible: 0,
        },
        Case {
            name: "NUMA expander (bus_nr 128), a device below it off, auto",
            guest: numa_layout(true),
            policy: r#"{"hotplug_off":"auto"}"#,
            hotplug: &[("x0", "off"), ("x1", "on"), ("a", "on"), ("b", "off")],
            new: &[r#"{"id":"new0","model":"virtio-net-pci","hotplug":"on","numa_node":1}"#],
            visible: 0,
        },
        Case {
            name: "expander (bus_nr 128), a device below it off, integrated",
            guest: numa_layout(false),
            policy: r#"{"hotplug_off":"integrated"}"#,
            hotplug: &[("x0", "off"), ("x1", "on"), ("a", "on")],
            new: &[],
            visible: 1,
        },
        Case {
            name: "crowded pcie.0: an expander instead of renumbering 16 devices",
            guest: crowded_layout(),
            policy: "{}",
            hotplug: &[("d29_0", "on"), ("d30_7", "on")],
            new: &[r#"{"id":"new","model":"virtio-blk-pci","hotplug":"on"}"#],
            visible: 0,
        },
    ]
}

/// The existing guest with every device `any` and no spare ports: it meets that policy
/// and plans exactly as it is.
fn before_request(case: &Case) -> Request {
    let mut req = Request::from_json(&format!(r#"{{"name":"before",{}}}"#, case.guest))
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    for d in &mut req.devices {
        d.hotplug = Some(Hotplug::Any);
    }
    req
}

/// The existing guest under the new policy, with the new devices.
fn after_request(case: &Case) -> Request {
    let mut req = before_request(case);
    req.name = Some("after".into());
    req.policy = serde_json::from_str(case.policy).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    for (id, h) in case.hotplug {
        let d = req
            .devices
            .iter_mut()
            .find(|d| d.id == *id)
            .unwrap_or_else(|| panic!("{}: no {id}", case.name));
        d.hotplug = Some(serde_json::from_value(serde_json::Value::String(h.to_string())).unwrap());
    }
    for n in case.new {
        req.devices
            .push(serde_json::from_str(n).unwrap_or_else(|e| panic!("{}: {e}", case.name)));
    }
    req
}

/// What the guest sees of a device in `query-pci` (G-ID).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    /// The root bus: 0 for `pcie.0`, an expander's `bus_nr`.
    root: u8,
    /// (slot, function) of each bridge above the device below its root bus, and its own.
    path: Vec<(u8, u8)>,
    /// The number of the bus it sits on.
    bus: u8,
}

impl Identity {
    fn linux(&self) -> String {
        let (slot, f) = *self.path.last().expect("a path");
        let f = if f > 0 {
            format!("f{f}")
        } else {
            String::new()
        };
        format!("enp{}s{slot}{f}", self.bus)
    }

    fn windows(&self) -> String {
        let mut s = format!("PCIROOT({})", self.root);
        for (slot, f) in &self.path {
            s.push_str(&format!("#PCI({slot:02X}{f:02X})"));
        }
        s
    }

    /// Whether `reported` is this device's Windows location path. Below an expander the
    /// root is the expander's ACPI host bridge (QEMU gives it `_UID` = `bus_nr`), so its own
    /// slot on `pcie.0` is no element of the path; pciplan 0.1 writes it there all the same
    /// (`PCIROOT(128)#PCI(0500)#PCI(0000)#PCI(0000)` for `PCIROOT(128)#PCI(0000)#PCI(0000)`),
    /// which this accepts until the report drops it.
    fn windows_matches(&self, reported: &str) -> bool {
        if reported == self.windows() {
            return true;
        }
        let Some(rest) = reported.strip_prefix(&format!("PCIROOT({})#PCI(", self.root)) else {
            return false;
        };
        let Some((_expander, tail)) = rest.split_once(')') else {
            return false;
        };
        self.root != 0 && format!("PCIROOT({}){tail}", self.root) == self.windows()
    }
}

fn identities(tree: &PciTree) -> BTreeMap<String, Identity> {
    fn walk(ds: &[PciDevice], root: u8, above: &[(u8, u8)], out: &mut BTreeMap<String, Identity>) {
        for d in ds {
            let mut path = above.to_vec();
            path.push((d.slot, d.function));
            if let Some(b) = &d.bridge {
                walk(&b.devices, root, &path, out);
            }
            if !d.qdev_id.is_empty() {
                out.insert(
                    d.qdev_id.clone(),
                    Identity {
                        root,
                        path,
                        bus: d.bus,
                    },
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    for r in &tree.root_buses {
        walk(&r.devices, r.bus, &[], &mut out);
    }
    out
}

/// Starts `plan`, checks QEMU placed it as planned, lets SeaBIOS number the buses.
fn boot(plan: &Plan, what: &str) -> (Qemu, PciTree) {
    let args = pciplan::emit::qemu(plan, Catalog::q35());
    let mut vm =
        Qemu::start(&args).unwrap_or_else(|e| panic!("{what}: QEMU refused the plan: {e}\n{args}"));
    let wrong = vm.placement_mismatches().expect("qtree");
    assert!(
        wrong.is_empty(),
        "{what}: QEMU placed differently: {wrong:?}\n{args}"
    );
    let run = vm.run_firmware(DEFAULT_FIRMWARE_TIMEOUT * 3).expect("QMP");
    assert!(run.settled, "{what}: SeaBIOS: {:?}\n{args}", run.failure);
    (vm, run.pci)
}

/// Checks one reported change against what `query-pci` says before and after.
fn check_change(name: &str, c: &Change, old: &Identity, new: &Identity, nic: bool) {
    let id = &c.id;
    match c.change {
        ChangeKind::Moved => assert!(
            old.path != new.path || old.root != new.root,
            "{name}: {id} reported moved but keeps its path: {old:?}"
        ),
        ChangeKind::Renumbered => {
            assert_eq!(
                old.path, new.path,
                "{name}: {id} reported renumbered but moved"
            );
            assert_ne!(
                old.bus, new.bus,
                "{name}: {id} reported renumbered, same bus"
            );
            assert_eq!(
                c.from.as_deref(),
                Some(format!("bus {}", old.bus).as_str()),
                "{name}: {id} from"
            );
            assert_eq!(
                c.to.as_deref(),
                Some(format!("bus {}", new.bus).as_str()),
                "{name}: {id} to"
            );
        }
        k => panic!("{name}: {id}: a device change of kind {k:?}"),
    }
    assert!(c.guest_visible, "{name}: {id}");
    let w = c
        .windows_path
        .as_ref()
        .unwrap_or_else(|| panic!("{name}: {id} without a Windows path"));
    assert!(
        old.windows_matches(&w.from) && new.windows_matches(&w.to),
        "{name}: {id} Windows path {w:?}, query-pci: {} -> {}",
        old.windows(),
        new.windows()
    );
    if nic {
        let l = c
            .linux_name
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: NIC {id} without its Linux name"));
        assert_eq!(
            (l.from.as_str(), l.to.as_str()),
            (old.linux().as_str(), new.linux().as_str()),
            "{name}: {id} Linux name"
        );
    } else {
        assert!(c.linux_name.is_none(), "{name}: {id} is no NIC");
    }
}

/// Runs one case; returns (devices compared, guest-visible changes, ports flipped).
fn run_case(case: &Case) -> (usize, usize, usize) {
    let name = case.name;
    let before_req = before_request(case);
    let before =
        pciplan::plan(&before_req).unwrap_or_else(|e| panic!("{name}: the existing guest: {e}"));
    assert_eq!(
        before.cost, 0,
        "{name}: the existing guest planned with additions"
    );
    for (d, r) in before.devices.iter().zip(&before_req.devices) {
        assert_eq!(
            Some(&d.address()),
            r.address.as_ref(),
            "{name}: BEFORE moved {}",
            d.id
        );
    }
    let after_req = after_request(case);
    let after = pciplan::adopt(&after_req).unwrap_or_else(|e| panic!("{name}: adopt: {e}"));
    assert!(after.optimal, "{name}");
    let changes = after
        .changes
        .clone()
        .expect("an adopted plan lists its changes");
    let visible = changes.iter().filter(|c| c.guest_visible).count();
    assert_eq!(after.guest_visible_changes, Some(visible as u32), "{name}");
    assert_eq!(
        visible, case.visible,
        "{name}: guest-visible changes {changes:#?}"
    );

    let (_vm_before, pci_before) = boot(&before, &format!("{name} (before)"));
    let (mut vm, pci_after) = boot(&after, &format!("{name} (after)"));
    let (old, new) = (identities(&pci_before), identities(&pci_after));
    let cat = Catalog::q35();
    for d in &before.devices {
        let (o, n) = (&old[&d.id], &new[&d.id]);
        match changes.iter().find(|c| c.id == d.id) {
            None => assert_eq!(
                o, n,
                "{name}: {} is not reported as changed, but the guest sees it change",
                d.id
            ),
            Some(c) => check_change(name, c, o, n, cat.device(&d.model).is_some_and(|m| m.nic)),
        }
    }
    // The policy holds in QEMU.
    for d in &after.devices {
        let want = after_req
            .devices
            .iter()
            .find(|r| r.id == d.id)
            .and_then(|r| r.hotplug);
        let outcome = vm
            .unplug(&d.id)
            .unwrap_or_else(|e| panic!("{name}: device_del {}: {e}", d.id));
        let refused = matches!(outcome, Unplug::Refused(_));
        assert_eq!(
            refused, !d.hotpluggable,
            "{name}: {} planned hotpluggable={}, QEMU: {outcome:?}",
            d.id, d.hotpluggable
        );
        match want {
            Some(Hotplug::Off) => assert!(refused, "{name}: off device {} can be unplugged", d.id),
            Some(Hotplug::On) | None => assert!(
                !refused,
                "{name}: on device {} cannot be unplugged: {outcome:?}",
                d.id
            ),
            _ => {}
        }
    }
    let flips = changes
        .iter()
        .filter(|c| c.change == ChangeKind::PortHotplug)
        .count();
    (before.devices.len(), visible, flips)
}

#[test]
fn adopted_guests_keep_what_they_do_not_report_and_enforce_the_policy() {
    if !qemu_or_skip() {
        return;
    }
    let start = Instant::now();
    let cases = cases();
    for case in &cases {
        let t = Instant::now();
        let (n, visible, flips) = run_case(case);
        eprintln!(
            "{}: {n} devices compared, {visible} guest-visible changes, {flips} ports flipped ({:.1} s)",
            case.name,
            t.elapsed().as_secs_f64()
        );
    }
    eprintln!(
        "{} guests in {:.1} s",
        cases.len(),
        start.elapsed().as_secs_f64()
    );
}

/// The comparison does see renumbering. The plain planner keeps every address but does not
/// mind bus numbers: for the guest with ports at 00:1d.0 and 00:1e.0 it puts the two new
/// ports (one for the disk, one with a `pcie-pci-bridge` for the `e1000`) at 00:1d.x, in front
/// of 00:1e.0, and SeaBIOS then gives `b` (behind 00:1e.0) bus 5 instead of 2 (its path is
/// the same): the change G-ID counts and adoption avoids (its ports go to 00:1e.1 and
/// 00:1e.2, after every existing one).
#[test]
fn a_port_added_in_front_renumbers_the_buses_behind_it() {
    if !qemu_or_skip() {
        return;
    }
    let case = cases()
        .into_iter()
        .find(|c| c.name.starts_with("ports at high slots"))
        .expect("the case");
    let before = pciplan::plan(&before_request(&case)).expect("plans");
    // Only the new devices as the case has them: the plain planner keeps pins as they are.
    let mut req = after_request(&case);
    for d in req.devices.iter_mut().filter(|d| d.address.is_some()) {
        d.hotplug = Some(Hotplug::Any);
    }
    let plain = pciplan::plan(&req).expect("plans");
    let (_b, pci_before) = boot(&before, "before");
    let (_p, pci_plain) = boot(&plain, "plain plan");
    let (old, new) = (identities(&pci_before), identities(&pci_plain));
    assert_eq!(old["a"], new["a"]);
    assert_eq!(old["b"].path, new["b"].path);
    for c in plain
        .controllers
        .iter()
        .filter(|c| c.added && c.bus == "pcie.0")
    {
        assert_eq!(c.slot, 29, "{c:?}");
    }
    assert_eq!(
        (old["b"].bus, new["b"].bus),
        (2, 5),
        "{:?} -> {:?}",
        old["b"],
        new["b"]
    );
}
