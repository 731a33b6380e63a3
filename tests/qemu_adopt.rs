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
//! Besides the hand-written cases, 16 random existing guests (earlier plans of random
//! requests of 3-9 devices, some behind a NUMA expander, every address pinned) are adopted
//! under random new policies and compared the same way (`PCIPLAN_HELDOUT_SEED` picks
//! others). Over 40 seeds (640 guests, about 1,000 guest-visible changes) every device the
//! plans did not report kept its path and bus number in SeaBIOS, and no adoption chose to
//! renumber a bus (a move or a port elsewhere was always as cheap). About one adoption in
//! eight is refused; over 12 seeds each of those was refused by the plain planner too with
//! no address and no controller given: no layout meets that policy.
//!
//! Without QEMU the tests skip and say so, unless `PCIPLAN_REQUIRE_QEMU=1` (CI), where they
//! fail.

mod common;

use std::time::Instant;

use common::adoption::{
    assert_refused_by_any_layout, boot, compare, identities, under_policy, Compared, Rng,
};
use common::qemu::qemu_or_skip;
use pciplan::{Hotplug, OffStrategy, PlanError, Previous, Request};

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
    under_policy(
        case.name,
        &before_request(case),
        case.policy,
        case.hotplug,
        case.new,
    )
}

/// Runs one case.
fn run_case(case: &Case) -> Compared {
    let name = case.name;
    let out = compare(name, &before_request(case), &after_request(case))
        .unwrap_or_else(|e| panic!("{name}: adopt: {e}"));
    assert_eq!(out.visible, case.visible, "{name}: guest-visible changes");
    out
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
        let Compared {
            devices: n,
            visible,
            flips,
            ..
        } = run_case(case);
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

const HOTPLUG: [Hotplug; 4] = [Hotplug::On, Hotplug::On, Hotplug::Any, Hotplug::Off];
const STRATEGY: [OffStrategy; 3] = [
    OffStrategy::Integrated,
    OffStrategy::Port,
    OffStrategy::Auto,
];

/// A random guest of 3-9 devices planned under a random policy (some on NUMA node 1, so
/// behind an expander): the existing guest, every address and controller pinned.
fn random_existing(rng: &mut Rng) -> Option<Request> {
    const MODELS: [&str; 10] = [
        "virtio-net-pci",
        "virtio-blk-pci",
        "e1000e",
        "e1000",
        "rtl8139",
        "nvme",
        "virtio-rng-pci",
        "virtio-scsi-pci",
        "virtio-blk-pci-transitional",
        "virtio-serial-pci",
    ];
    let numa = rng.next(4) == 0;
    let devices: Vec<String> = (0..3 + rng.next(7))
        .map(|i| {
            let (model, hp) = (rng.pick(&MODELS), rng.pick(&HOTPLUG).as_str());
            let node = if numa && rng.next(3) == 0 && !MODELS[3..5].contains(&model) {
                r#","numa_node":1"#
            } else {
                ""
            };
            format!(r#"{{"id":"d{i}","model":"{model}","hotplug":"{hp}"{node}}}"#)
        })
        .collect();
    let text = format!(
        r#"{{"policy":{{"hotplug_off":"{}","spare_ports":{}}},"devices":[{}]}}"#,
        rng.pick(&STRATEGY).as_str(),
        rng.next(3),
        devices.join(",")
    );
    let req = Request::from_json(&text).expect("a request");
    let first = pciplan::plan(&req).ok()?;
    req.pinned_to(&Previous::from(&first)).ok()
}

/// Random existing guests (earlier plans of random requests, pinned) under random new
/// policies, with a new device now and then: each adoption is refused (no layout meets the
/// policy) or booted and compared like the cases above.
#[test]
fn random_existing_guests_adopted_under_random_policies() {
    if !qemu_or_skip() {
        return;
    }
    let seed = std::env::var("PCIPLAN_HELDOUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0ad0_97ed_u64);
    let mut rng = Rng::new(seed);
    let (mut compared, mut refused, mut visible, mut flips, mut renumbered) = (0, 0, 0, 0, 0);
    let start = Instant::now();
    while compared < 16 {
        let Some(existing) = random_existing(&mut rng) else {
            continue;
        };
        let mut before = existing.clone();
        before.policy.spare_ports = 0;
        for d in &mut before.devices {
            d.hotplug = Some(Hotplug::Any);
        }
        let mut after = existing;
        after.policy.hotplug_off = rng.pick(&STRATEGY);
        after.policy.spare_ports = 0;
        for d in &mut after.devices {
            d.hotplug = Some(rng.pick(&HOTPLUG));
        }
        if rng.next(3) == 0 {
            let new = r#"{"id":"new","model":"virtio-net-pci","hotplug":"on"}"#;
            after
                .devices
                .push(serde_json::from_str(new).expect("a device"));
        }
        let name = format!("random guest {} (seed {seed:#x})", compared + refused);
        match compare(&name, &before, &after) {
            Ok(c) => {
                compared += 1;
                visible += c.visible;
                flips += c.flips;
                renumbered += c.renumbered;
            }
            Err(PlanError::Infeasible(x)) => {
                // Refused only when no layout at all meets the policy.
                assert_refused_by_any_layout(&name, &after, &x);
                refused += 1
            }
            Err(e) => panic!(
                "{name}: adopt: {e}\n{}",
                serde_json::to_string(&after).unwrap()
            ),
        }
    }
    eprintln!(
        "{compared} random guests compared ({visible} guest-visible changes, {renumbered} of them renumbered, {flips} ports flipped), {refused} adoptions refused, {:.1} s",
        start.elapsed().as_secs_f64()
    );
}
