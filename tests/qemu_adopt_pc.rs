//! Adoption on `pc` (i440fx; `pciplan::adopt`, O-ADOPT, G-ID, G-FLIP, PC-ROOT-HP, PC-MIX,
//! PC-BRIDGE) seen by the real guest: QEMU 7.2 `-machine pc` under TCG with SeaBIOS, the
//! firmware run until it has numbered every bridge, then `query-pci`, as
//! `tests/qemu_adopt.rs` does for q35 (both through `tests/common/adoption.rs`).
//!
//! Each case is an existing pc guest (every device at an address, its `pci-bridge`s, its
//! root hotplug switch) and a new policy. BEFORE is the existing guest planned as it is
//! (every device `any`, root hotplug pinned: `pciplan::plan` adds nothing); AFTER is what
//! `pciplan::adopt` makes of it. Both are started from `pciplan::emit::qemu` (the
//! `-global PIIX4_PM.acpi-root-pci-hotplug=off` line included when the plan turns root
//! hotplug off) and QEMU's own `acpi-root-pci-hotplug` (`info qtree`) must be the plan's.
//! Then, for every device of the existing guest, from `query-pci` (path of (slot,
//! function) from `pci.0`, bus number):
//! - a device the plan does not list keeps its path and bus number, and a NIC on `pci.0`
//!   keeps its Linux name (so root hotplug keeps its setting or the NIC is listed);
//! - a `moved` one has another path; a `renumbered` one the same path, another bus;
//! - a `renamed` one (a NIC on `pci.0`) the same path and bus, while root hotplug flips, and
//!   the Linux names `ensS` -> `enp0sS` (off) or back (on), S the slot `query-pci` shows;
//! - the Linux names and Windows paths of the other changes are those of `query-pci`'s
//!   slots and buses (a NIC behind a bridge: its slot name or its path name);
//! - `pci.0` is listed as a `port_hotplug` change (not guest-visible, no device) exactly when
//!   root hotplug differs between the two guests;
//! - in the AFTER guest `device_del` is refused for every `off` device and accepted for every
//!   `on` one (new devices included).
//!
//! Besides the 13 hand-written cases, 60 random existing pc guests (earlier plans of random
//! requests, every address pinned, their root hotplug kept) are adopted under random
//! policies (`PCIPLAN_HELDOUT_SEED` picks others). `query-pci` shows no Linux names: a
//! NIC's name is derived from its place by the rule `tests/guest_view.rs` observed in Linux
//! 6.1 (`pci.0`: `ensS` with root hotplug on, `enp0sS` off; the first bridge's slot N:
//! `ensN` unless `pci.0` registered slot N first, else `enp1sN`), and every change's names
//! must be those. NICs on further bridges (names not observed) are counted and printed.
//! The internal error "the pc assigner ran out of bridge slots" (fixed) would be counted
//! and printed too.
//!
//! Without QEMU the tests skip and say so, unless `PCIPLAN_REQUIRE_QEMU=1` (CI), where they
//! fail.

mod common;

use std::time::Instant;

use common::adoption::{assert_refused_by_any_layout, compare, under_policy, Compared, Rng};
use common::qemu::qemu_or_skip;
use pciplan::{Hotplug, PlanError, Previous, Request};

/// One existing pc guest and the policy it is adopted under.
struct Case {
    name: &'static str,
    /// The existing guest: `"root_hotplug":...,"devices":[...],"controllers":[...]`, every
    /// device with an address and no `hotplug`.
    guest: String,
    /// The new policy (JSON object).
    policy: &'static str,
    /// The new hotplug requirement per device id; the others take the policy's default.
    hotplug: &'static [(&'static str, &'static str)],
    /// Devices the guest gains (JSON objects without address).
    new: &'static [&'static str],
    /// The guest-visible changes the adoption must come to (the minimum, O-ADOPT).
    visible: usize,
    /// Of those, the NICs renamed (G-FLIP).
    renamed: usize,
}

/// A device `id` of `model` at `bus` slot `slot`, function 0.
fn dev(id: &str, model: &str, bus: &str, slot: u8) -> String {
    format!(r#"{{"id":"{id}","model":"{model}","address":{{"bus":"{bus}","slot":{slot}}}}}"#)
}

/// A `pci-bridge` `id` at `bus` slot `slot` (PC-BRIDGE).
fn bridge(id: &str, bus: &str, slot: u8, chassis: u8) -> String {
    format!(
        r#"{{"id":"{id}","model":"pci-bridge","chassis":{chassis},"address":{{"bus":"{bus}","slot":{slot}}}}}"#
    )
}

/// An existing pc guest with root hotplug `root_hotplug` (PC-ROOT-HP).
fn guest(root_hotplug: bool, devices: &[String], controllers: &[String]) -> String {
    format!(
        r#""root_hotplug":{root_hotplug},"devices":[{}],"controllers":[{}]"#,
        devices.join(","),
        controllers.join(",")
    )
}

/// `pci.0` slots 2-29 taken, disks at even slots and `virtio-net-pci` NICs at odd ones,
/// root hotplug on.
fn crowded_layout() -> String {
    let devs: Vec<String> = (2..=29u8)
        .map(|s| {
            let model = if s % 2 == 0 {
                "virtio-blk-pci"
            } else {
                "virtio-net-pci"
            };
            dev(&format!("s{s}"), model, "pci.0", s)
        })
        .collect();
    guest(true, &devs, &[])
}

/// Every `pci.0` slot (2-31) taken: disks, and NICs at slots 10, 20 and 30; root hotplug on.
fn full_layout() -> String {
    let devs: Vec<String> = (2..=31u8)
        .map(|s| {
            let model = if s % 10 == 0 {
                "virtio-net-pci"
            } else {
                "virtio-blk-pci"
            };
            dev(&format!("s{s}"), model, "pci.0", s)
        })
        .collect();
    guest(true, &devs, &[])
}

/// A policy whose devices are `any` unless they say (the default is `on`).
const ANY: &str = r#"{"default_hotplug":"any"}"#;

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "all on, NICs and a disk off: root hotplug off, on devices behind a new bridge",
            guest: guest(
                true,
                &[
                    dev("vga", "VGA", "pci.0", 2),
                    dev("net0", "virtio-net-pci", "pci.0", 3),
                    dev("disk0", "virtio-blk-pci", "pci.0", 4),
                    dev("disk1", "virtio-blk-pci", "pci.0", 5),
                    dev("nic1", "e1000", "pci.0", 6),
                    dev("net2", "virtio-net-pci", "pci.0", 8),
                ],
                &[],
            ),
            policy: r#"{"default_hotplug":"on"}"#,
            hotplug: &[
                ("vga", "any"),
                ("net0", "off"),
                ("disk0", "off"),
                ("net2", "any"),
            ],
            new: &[],
            visible: 4,
            renamed: 2,
        },
        Case {
            name: "a guest meeting its policy: nothing changes",
            guest: guest(
                false,
                &[
                    dev("net0", "virtio-net-pci", "pci.0", 3),
                    dev("disk1", "virtio-blk-pci", "br", 1),
                    dev("nic1", "e1000", "br", 2),
                ],
                &[bridge("br", "pci.0", 4, 1)],
            ),
            policy: ANY,
            hotplug: &[("net0", "off"), ("disk1", "on"), ("nic1", "on")],
            new: &[],
            visible: 0,
            renamed: 0,
        },
        Case {
            name: "off devices on a bridge move to pci.0 (its slots are always hot-pluggable)",
            guest: guest(
                false,
                &[
                    dev("disk0", "virtio-blk-pci", "pci.0", 3),
                    dev("disk1", "virtio-blk-pci", "br", 1),
                    dev("nic1", "e1000", "br", 2),
                    dev("net1", "virtio-net-pci", "br", 3),
                ],
                &[bridge("br", "pci.0", 5, 1)],
            ),
            policy: ANY,
            hotplug: &[
                ("disk0", "off"),
                ("disk1", "off"),
                ("nic1", "on"),
                ("net1", "off"),
            ],
            new: &[],
            visible: 2,
            renamed: 0,
        },
        Case {
            name: "an on device goes behind the existing bridge, not a new one in front of it",
            guest: guest(
                true,
                &[
                    dev("net0", "virtio-net-pci", "pci.0", 2),
                    dev("disk1", "virtio-blk-pci", "pci.0", 3),
                    dev("disk2", "virtio-blk-pci", "br", 1),
                ],
                &[bridge("br", "pci.0", 5, 1)],
            ),
            policy: ANY,
            hotplug: &[("net0", "off"), ("disk1", "on"), ("disk2", "on")],
            new: &[],
            visible: 2,
            renamed: 1,
        },
        Case {
            name: "root hotplug off, a disk on pci.0 becomes on: it moves behind a new bridge",
            guest: guest(
                false,
                &[
                    dev("n0", "virtio-net-pci", "pci.0", 3),
                    dev("n1", "e1000", "pci.0", 4),
                    dev("d0", "virtio-blk-pci", "pci.0", 5),
                ],
                &[],
            ),
            policy: ANY,
            hotplug: &[("n0", "off"), ("n1", "off"), ("d0", "on")],
            new: &[],
            visible: 1,
            renamed: 0,
        },
        Case {
            name: "root hotplug off, nothing off any more: root hotplug turns on, no NIC to rename",
            guest: guest(
                false,
                &[
                    dev("d0", "virtio-blk-pci", "pci.0", 3),
                    dev("d1", "virtio-blk-pci", "pci.0", 4),
                    dev("s0", "virtio-scsi-pci", "pci.0", 5),
                ],
                &[],
            ),
            policy: ANY,
            hotplug: &[("d0", "on"), ("d1", "any"), ("s0", "any")],
            new: &[r#"{"id":"new0","model":"virtio-rng-pci","hotplug":"on"}"#],
            visible: 0,
            renamed: 0,
        },
        Case {
            name: "root hotplug off, two NICs on pci.0: moving the on disk beats renaming both",
            guest: guest(
                false,
                &[
                    dev("n0", "virtio-net-pci", "pci.0", 3),
                    dev("n1", "rtl8139", "pci.0", 4),
                    dev("d0", "virtio-blk-pci", "pci.0", 5),
                ],
                &[],
            ),
            policy: ANY,
            hotplug: &[("d0", "on")],
            new: &[],
            visible: 1,
            renamed: 0,
        },
        Case {
            name: "root hotplug off, one NIC: turning it on renames the NIC, as a move would cost",
            guest: guest(
                false,
                &[
                    dev("n0", "e1000", "pci.0", 3),
                    dev("d0", "virtio-blk-pci", "pci.0", 4),
                    dev("d1", "virtio-blk-pci", "pci.0", 5),
                ],
                &[],
            ),
            policy: ANY,
            hotplug: &[("d0", "on"), ("d1", "on")],
            new: &[],
            visible: 1,
            renamed: 1,
        },
        Case {
            name: "conventional and transitional models, two off and two on",
            guest: guest(
                true,
                &[
                    dev("e0", "e1000", "pci.0", 3),
                    dev("r0", "rtl8139", "pci.0", 4),
                    dev("nt", "virtio-net-pci-transitional", "pci.0", 5),
                    dev("bt", "virtio-blk-pci-transitional", "pci.0", 6),
                    dev("rng", "virtio-rng-pci", "pci.0", 7),
                    dev("e2", "e1000-82545em", "pci.0", 9),
                ],
                &[],
            ),
            policy: ANY,
            hotplug: &[("e0", "off"), ("r0", "on"), ("nt", "off"), ("bt", "on")],
            new: &[],
            visible: 5,
            renamed: 3,
        },
        Case {
            name: "crowded pci.0 (slots 2-29): a bridge at a free slot, 13 NICs renamed",
            guest: crowded_layout(),
            policy: ANY,
            hotplug: &[("s2", "off"), ("s3", "off"), ("s28", "on"), ("s29", "on")],
            new: &[],
            visible: 15,
            renamed: 13,
        },
        Case {
            name: "full pci.0 (slots 2-31): the bridge takes the slot the on disk leaves",
            guest: full_layout(),
            policy: ANY,
            hotplug: &[("s2", "off"), ("s31", "on")],
            new: &[],
            visible: 4,
            renamed: 3,
        },
        Case {
            name: "chained bridges: an off disk two bridges down moves to pci.0",
            guest: guest(
                false,
                &[
                    dev("x", "virtio-blk-pci", "pci.0", 3),
                    dev("a", "virtio-blk-pci", "br2", 1),
                    dev("n", "e1000", "br2", 2),
                    dev("c", "virtio-net-pci", "br1", 1),
                    dev("d", "virtio-scsi-pci", "br1", 4),
                ],
                &[bridge("br1", "pci.0", 5, 1), bridge("br2", "br1", 3, 2)],
            ),
            policy: ANY,
            hotplug: &[
                ("x", "off"),
                ("a", "off"),
                ("n", "on"),
                ("c", "on"),
                ("d", "on"),
            ],
            new: &[r#"{"id":"new0","model":"virtio-net-pci","hotplug":"on"}"#],
            visible: 1,
            renamed: 0,
        },
        Case {
            name: "root hotplug on goes off: NICs behind a bridge stay or move to pci.0",
            guest: guest(
                true,
                &[
                    dev("n1", "virtio-net-pci", "pci.0", 3),
                    dev("d0", "virtio-blk-pci", "pci.0", 4),
                    dev("n0", "virtio-net-pci", "br", 3),
                    dev("n2", "e1000", "br", 4),
                ],
                &[bridge("br", "pci.0", 6, 1)],
            ),
            policy: ANY,
            hotplug: &[("n1", "off"), ("d0", "on"), ("n0", "on"), ("n2", "off")],
            new: &[],
            visible: 4,
            renamed: 2,
        },
    ]
}

/// The existing guest with every device `any`, root hotplug as it has it: it plans exactly
/// as it is.
fn before_request(name: &str, guest: &str) -> Request {
    let mut req = Request::from_json(&format!(r#"{{"name":"before","machine":"pc",{guest}}}"#))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    for d in &mut req.devices {
        d.hotplug = Some(Hotplug::Any);
    }
    req
}

/// The existing guest under the new policy, with the new devices.
fn after_request(case: &Case) -> Request {
    let mut existing = before_request(case.name, &case.guest);
    for d in &mut existing.devices {
        d.hotplug = None;
    }
    under_policy(case.name, &existing, case.policy, case.hotplug, case.new)
}

/// Totals over the guests compared.
#[derive(Default)]
struct Totals {
    guests: usize,
    devices: usize,
    visible: usize,
    renamed: usize,
    renumbered: usize,
    flips: usize,
    bridge_nics: Vec<String>,
    unproven: Vec<String>,
}

impl Totals {
    fn add(&mut self, name: &str, c: &Compared) {
        self.guests += 1;
        self.devices += c.devices;
        self.visible += c.visible;
        self.renamed += c.renamed;
        self.renumbered += c.renumbered;
        self.flips += c.flips;
        if !c.proven {
            self.unproven.push(name.to_string());
        }
        for id in &c.bridge_nics_across_flip {
            self.bridge_nics.push(format!("{name}: {id}"));
        }
    }

    fn say(&self, what: &str, secs: f64) {
        eprintln!(
            "{what}: {} guests, {} devices compared, {} guest-visible changes ({} renamed, {} renumbered), root hotplug flipped {} times, {secs:.1} s",
            self.guests, self.devices, self.visible, self.renamed, self.renumbered, self.flips
        );
        if !self.bridge_nics.is_empty() {
            eprintln!(
                "NICs behind a bridge other than the first kept in place while root hotplug flips (their names not observed; pciplan takes them as unchanged): {}",
                self.bridge_nics.join(", ")
            );
        }
        if !self.unproven.is_empty() {
            eprintln!(
                "valid, not proven optimal (optimal: false; the counting argument settles neither root hotplug value): {}",
                self.unproven.join(", ")
            );
        }
    }
}

#[test]
fn adopted_pc_guests_keep_what_they_do_not_report_and_enforce_the_policy() {
    if !qemu_or_skip() {
        return;
    }
    let start = Instant::now();
    let mut totals = Totals::default();
    for case in &cases() {
        let t = Instant::now();
        let name = case.name;
        let c = compare(
            name,
            &before_request(name, &case.guest),
            &after_request(case),
        )
        .unwrap_or_else(|e| panic!("{name}: adopt: {e}"));
        assert_eq!(
            (c.visible, c.renamed),
            (case.visible, case.renamed),
            "{name}: guest-visible changes, renamed NICs"
        );
        eprintln!(
            "{name}: {} devices compared, {} guest-visible changes ({} renamed), {} flips ({:.1} s)",
            c.devices,
            c.visible,
            c.renamed,
            c.flips,
            t.elapsed().as_secs_f64()
        );
        totals.add(name, &c);
    }
    totals.say("hand-written pc guests", start.elapsed().as_secs_f64());
    assert!(totals.unproven.is_empty(), "{:?}", totals.unproven);
    assert!(totals.renamed > 0 && totals.flips > 0, "no G-FLIP seen");
}

/// Hotplug requirements drawn from: a guest without `off` devices keeps root hotplug on, a
/// mixed one turns it off (PC-MIX); a third of the guests (before and after) draw from the
/// first list only.
const HOTPLUG: [Hotplug; 4] = [Hotplug::On, Hotplug::On, Hotplug::Any, Hotplug::Off];
const NO_OFF: [Hotplug; 3] = [Hotplug::On, Hotplug::Any, Hotplug::Any];

/// Models of the random guests: virtio (modern and transitional) and conventional NICs,
/// all hot-pluggable.
const MODELS: [&str; 9] = [
    "virtio-net-pci",
    "virtio-blk-pci",
    "e1000",
    "rtl8139",
    "virtio-rng-pci",
    "virtio-scsi-pci",
    "virtio-blk-pci-transitional",
    "virtio-net-pci-transitional",
    "e1000e",
];

/// The hotplug requirements one random guest draws from.
fn requirements(rng: &mut Rng) -> &'static [Hotplug] {
    if rng.next(3) == 0 {
        &NO_OFF
    } else {
        &HOTPLUG
    }
}

/// A random pc guest of 3-14 devices (one in five: 15-36, crowding `pci.0`) planned under random hotplug requirements: the
/// existing guest, every address and bridge pinned, its root hotplug kept, every device
/// `any`.
fn random_existing(rng: &mut Rng) -> Option<Request> {
    let hotplug = requirements(rng);
    let n = if rng.next(5) == 0 {
        15 + rng.next(22)
    } else {
        3 + rng.next(12)
    };
    let devices: Vec<String> = (0..n)
        .map(|i| {
            let (model, hp) = (rng.pick(&MODELS), rng.pick(hotplug).as_str());
            format!(r#"{{"id":"d{i}","model":"{model}","hotplug":"{hp}"}}"#)
        })
        .collect();
    let text = format!(
        r#"{{"name":"before","machine":"pc","policy":{{"spare_ports":{}}},"devices":[{}]}}"#,
        rng.next(3),
        devices.join(",")
    );
    let req = Request::from_json(&text).expect("a request");
    let first = pciplan::plan(&req).ok()?;
    let mut existing = req.pinned_to(&Previous::from(&first)).ok()?;
    existing.root_hotplug = Some(first.root_hotplug.unwrap_or(true));
    existing.policy.spare_ports = 0;
    for d in &mut existing.devices {
        d.hotplug = Some(Hotplug::Any);
    }
    Some(existing)
}

/// Random guests compared per run (a pc guest boots to SeaBIOS done in well under a second).
const GUESTS: usize = 60;

/// Random existing pc guests under random new policies, with a new device now and then:
/// each adoption is refused (no layout meets the policy), hits the known "ran out of bridge
/// slots" (counted), or is booted and compared like the cases above.
#[test]
fn random_existing_pc_guests_adopted_under_random_policies() {
    if !qemu_or_skip() {
        return;
    }
    let seed = std::env::var("PCIPLAN_HELDOUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0a_d097_ed0c_u64);
    // Mixed, and never 0 (xorshift stays 0 there).
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (mut refused, mut out_of_slots) = (0, Vec::new());
    let mut totals = Totals::default();
    let start = Instant::now();
    let mut drawn = 0;
    while totals.guests < GUESTS {
        let Some(before) = random_existing(&mut rng) else {
            continue;
        };
        let mut after = before.clone();
        after.name = Some("after".into());
        let hotplug = requirements(&mut rng);
        for d in &mut after.devices {
            d.hotplug = Some(rng.pick(hotplug));
        }
        if rng.next(3) == 0 {
            let (model, hp) = (rng.pick(&MODELS), rng.pick(hotplug).as_str());
            let new = format!(r#"{{"id":"new","model":"{model}","hotplug":"{hp}"}}"#);
            after
                .devices
                .push(serde_json::from_str(&new).expect("a device"));
        }
        let name = format!("random pc guest {drawn} (seed {seed:#x})");
        drawn += 1;
        match compare(&name, &before, &after) {
            Ok(c) => totals.add(&name, &c),
            Err(PlanError::Infeasible(x)) => {
                // Refused only when no layout at all meets the policy.
                assert_refused_by_any_layout(&name, &after, &x);
                refused += 1
            }
            Err(PlanError::Internal(x)) if x.contains("ran out of bridge slots") => {
                out_of_slots.push(name.clone());
                eprintln!(
                    "{name}: known internal error ({x}), not compared\n{}",
                    serde_json::to_string(&after).unwrap()
                );
            }
            Err(e) => panic!(
                "{name}: adopt: {e}\n{}",
                serde_json::to_string(&after).unwrap()
            ),
        }
    }
    totals.say("random pc guests", start.elapsed().as_secs_f64());
    eprintln!(
        "{drawn} drawn: {} compared, {refused} adoptions refused (no layout meets the policy), {} hit \"ran out of bridge slots\"{}",
        totals.guests,
        out_of_slots.len(),
        if out_of_slots.is_empty() {
            String::new()
        } else {
            format!(": {}", out_of_slots.join(", "))
        }
    );
}
