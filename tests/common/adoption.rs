//! Adoption seen by the guest: an existing guest and its adopted plan booted in QEMU
//! (SeaBIOS numbers the buses), `query-pci` read from both, and what the guest sees of each
//! device (G-ID) compared with the plan's `changes`. Used by `tests/qemu_adopt.rs` (q35)
//! and `tests/qemu_adopt_pc.rs` (`pc`, i440fx: started with `-machine pc`, root hotplug as
//! the plan's `-global` line says, read back from QEMU's qtree).

use std::collections::BTreeMap;

use super::qemu::{PciDevice, PciTree, Qemu, Unplug, DEFAULT_FIRMWARE_TIMEOUT};
use pciplan::{Catalog, Change, ChangeKind, Hotplug, Plan, PlanError, Request};

/// What the guest sees of a device in `query-pci` (G-ID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The root bus: 0 for `pcie.0`, an expander's `bus_nr`.
    pub root: u8,
    /// (slot, function) of each bridge above the device below its root bus, and its own.
    pub path: Vec<(u8, u8)>,
    /// The number of the bus it sits on.
    pub bus: u8,
}

impl Identity {
    /// systemd's path name of a NIC here (`enp1s0`, `enp0s5f1`).
    pub fn linux(&self) -> String {
        let (slot, f) = *self.path.last().expect("a path");
        format!("enp{}s{slot}{}", self.bus, function_suffix(f))
    }

    /// systemd's slot name of a NIC here, from its hotplug slot's number (`ens3`, `ens5f1`):
    /// a `pc` guest names a NIC on `pci.0` so while root hotplug is on (G-FLIP).
    pub fn linux_slot(&self) -> String {
        let (slot, f) = *self.path.last().expect("a path");
        format!("ens{slot}{}", function_suffix(f))
    }

    /// The Linux name a guest gives a NIC here, where `query-pci` and the root hotplug
    /// switch decide it: always on q35 (path names); on `pc` for a NIC on `pci.0` (`ensS`
    /// with root hotplug on, `enp0sS` with it off: G-FLIP), and on the first `pci-bridge`
    /// (bus 1), whose slot N is named `N` only where `pci.0` registered no slot N first
    /// (N = 1, a bridge in `pci.0` slot N, or root hotplug off): else `enp1sN` (both observed
    /// in a Linux 6.1 guest by `tests/guest_view.rs`). Further bridges: not observed, `None`.
    pub fn linux_name(&self, naming: Naming) -> Option<String> {
        let &(slot, _) = self.path.last()?;
        match naming {
            Naming::Path => Some(self.linux()),
            Naming::Pc { root_hotplug, .. } if self.path.len() == 1 => Some(if root_hotplug {
                self.linux_slot()
            } else {
                self.linux()
            }),
            Naming::Pc {
                root_hotplug,
                root_bridges,
            } if self.path.len() == 2 && self.bus == 1 => {
                let taken = root_hotplug && slot != 1 && root_bridges & (1 << slot) == 0;
                Some(if taken {
                    self.linux()
                } else {
                    self.linux_slot()
                })
            }
            Naming::Pc { .. } => None,
        }
    }

    /// Whether `name` can be this NIC's Linux name under `naming`: the one
    /// [`Identity::linux_name`] gives, or where it gives none (behind a `pc` bridge) its
    /// slot name or its path name.
    pub fn linux_matches(&self, naming: Naming, name: &str) -> bool {
        match self.linux_name(naming) {
            Some(n) => n == name,
            None => name == self.linux_slot() || name == self.linux(),
        }
    }

    pub fn windows(&self) -> String {
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
    pub fn windows_matches(&self, reported: &str) -> bool {
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

/// `f1` for function 1, nothing for function 0.
fn function_suffix(f: u8) -> String {
    if f > 0 {
        format!("f{f}")
    } else {
        String::new()
    }
}

/// How a Linux guest names NICs in one booted guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// By path only (q35: its ports carry no slot number, G-FLIP).
    Path,
    /// `pc`, with root hotplug as QEMU reports it and the `pci.0` slots holding a bridge
    /// (bit N: slot N), where `pci.0` registers no hotplug slot.
    Pc {
        root_hotplug: bool,
        root_bridges: u32,
    },
}

/// Each device's guest-visible identity in `query-pci`, by qdev id.
pub fn identities(tree: &PciTree) -> BTreeMap<String, Identity> {
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

/// The catalog of the machine `plan` is for.
pub fn catalog_of(plan: &Plan) -> &'static Catalog {
    Catalog::for_machine(&plan.machine).unwrap_or_else(|e| panic!("{}: {e}", plan.machine))
}

/// Whether `cat` has one hotplug switch for its whole root bus (`pc`, PC-ROOT-HP).
fn has_root_switch(cat: &Catalog) -> bool {
    cat.root.hotplug_switch.is_some()
}

/// Root hotplug as QEMU has it on a `pc` guest: `PIIX4_PM`'s `acpi-root-pci-hotplug` in
/// `info qtree`.
pub fn root_hotplug_in(vm: &mut Qemu) -> bool {
    let text = vm.qtree_text().expect("info qtree");
    let at = text
        .find("dev: PIIX4_PM")
        .unwrap_or_else(|| panic!("no PIIX4_PM in the qtree:\n{text}"));
    let key = "acpi-root-pci-hotplug = ";
    let rest = &text[at..][text[at..].find(key).expect("acpi-root-pci-hotplug") + key.len()..];
    match rest.split_whitespace().next() {
        Some("true") => true,
        Some("false") => false,
        v => panic!("acpi-root-pci-hotplug = {v:?}"),
    }
}

/// Starts `plan`, checks QEMU placed it as planned, lets SeaBIOS number the buses. A `pc`
/// plan is started with `-machine` of its own machine, and its root hotplug must be what
/// QEMU reports.
pub fn boot(plan: &Plan, what: &str) -> (Qemu, PciTree) {
    let cat = catalog_of(plan);
    let args = pciplan::emit::qemu(plan, cat);
    let started = if has_root_switch(cat) {
        Qemu::start_with_args(&args, &["-machine", &plan.machine])
    } else {
        Qemu::start(&args)
    };
    let mut vm = started.unwrap_or_else(|e| panic!("{what}: QEMU refused the plan: {e}\n{args}"));
    let wrong = vm.placement_mismatches().expect("qtree");
    assert!(
        wrong.is_empty(),
        "{what}: QEMU placed differently: {wrong:?}\n{args}"
    );
    if has_root_switch(cat) {
        assert_eq!(
            root_hotplug_in(&mut vm),
            plan.root_hotplug.unwrap_or(cat.root.hotpluggable),
            "{what}: root hotplug in QEMU\n{args}"
        );
    }
    let run = vm.run_firmware(DEFAULT_FIRMWARE_TIMEOUT * 3).expect("QMP");
    assert!(run.settled, "{what}: SeaBIOS: {:?}\n{args}", run.failure);
    (vm, run.pci)
}

/// How a Linux guest names NICs in the booted `plan` (its root hotplug as [`boot`] checked).
pub fn naming_of(plan: &Plan) -> Naming {
    let cat = catalog_of(plan);
    if has_root_switch(cat) {
        Naming::Pc {
            root_hotplug: plan.root_hotplug.unwrap_or(cat.root.hotpluggable),
            root_bridges: plan
                .controllers
                .iter()
                .filter(|c| c.bus == cat.root.bus)
                .fold(0, |m, c| m | 1 << c.slot),
        }
    } else {
        Naming::Path
    }
}

/// One device as the two guests show it: its identities before and after, and how each
/// guest names NICs.
pub struct Seen<'a> {
    pub old: &'a Identity,
    pub new: &'a Identity,
    pub names: (Naming, Naming),
}

/// Checks one reported change against what `query-pci` says before and after.
pub fn check_change(name: &str, c: &Change, seen: &Seen, nic: bool) {
    let (id, old, new) = (&c.id, seen.old, seen.new);
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
        ChangeKind::Renamed => return check_renamed(name, c, seen, nic),
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
        let (before, after) = seen.names;
        assert!(
            old.linux_matches(before, &l.from) && new.linux_matches(after, &l.to),
            "{name}: {id} Linux name {} -> {}, query-pci: {:?} -> {:?} ({before:?} -> {after:?})",
            l.from,
            l.to,
            old.linux_name(before).unwrap_or_else(|| old.linux()),
            new.linux_name(after).unwrap_or_else(|| new.linux()),
        );
    } else {
        assert!(c.linux_name.is_none(), "{name}: {id} is no NIC");
    }
}

/// A `renamed` change (`pc`, G-FLIP): a NIC whose path and bus number stay while the slot
/// its name comes from appears or vanishes (root hotplug flips; or, on the first bridge, a
/// bridge comes or goes in the `pci.0` slot of its number), so that its Linux name goes from
/// `ensS` to `enpBsS` or back.
fn check_renamed(name: &str, c: &Change, seen: &Seen, nic: bool) {
    let (id, old, new) = (&c.id, seen.old, seen.new);
    assert!(nic, "{name}: {id} renamed but is no NIC");
    assert!(c.guest_visible, "{name}: {id}");
    assert_eq!(
        old, new,
        "{name}: {id} renamed, but query-pci shows it move"
    );
    let want = match (old.linux_name(seen.names.0), new.linux_name(seen.names.1)) {
        (Some(a), Some(b)) if a != b => (a, b),
        n => panic!("{name}: {id} renamed, but the guests name it {n:?}"),
    };
    let l = c
        .linux_name
        .as_ref()
        .unwrap_or_else(|| panic!("{name}: {id} renamed without its Linux names"));
    assert_eq!(
        (l.from.as_str(), l.to.as_str()),
        (want.0.as_str(), want.1.as_str()),
        "{name}: {id} Linux name ({:?} -> {:?})",
        seen.names.0,
        seen.names.1
    );
    assert_eq!(
        (c.from.as_deref(), c.to.as_deref()),
        (Some(want.0.as_str()), Some(want.1.as_str())),
        "{name}: {id} from/to"
    );
}

/// What one comparison found.
pub struct Compared {
    /// Devices of the existing guest compared in `query-pci`.
    pub devices: usize,
    /// Guest-visible changes the plan reports.
    pub visible: usize,
    /// Ports whose `hotplug` the plan flips (on `pc` the root bus's switch counts).
    pub flips: usize,
    /// Devices reported renumbered (same path, another bus number).
    pub renumbered: usize,
    /// NICs reported renamed (`pc`: same path and bus, root hotplug flipped, G-FLIP).
    pub renamed: usize,
    /// The adoption is proven optimal (always, but on `pc`).
    pub proven: bool,
    /// NICs behind a `pc` bridge other than the first that keep their path and bus while
    /// root hotplug flips: whether the guest renames them was not observed (the rule
    /// pciplan follows says no). By id, those at slot 2 or above.
    pub bridge_nics_across_flip: Vec<String>,
}

/// Plans the existing guest `before_req` as it is, adopts `after_req`, boots both and
/// compares; `Err` when the adoption is refused.
pub fn compare(
    name: &str,
    before_req: &Request,
    after_req: &Request,
) -> Result<Compared, PlanError> {
    let before =
        pciplan::plan(before_req).unwrap_or_else(|e| panic!("{name}: the existing guest: {e}"));
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
    let after = pciplan::adopt(after_req)?;
    // On `pc` an adoption may be valid but not proven (a first-bridge NIC whose name root
    // hotplug turned on takes away, where a bridge in the `pci.0` slot of its number would
    // keep it: the counting argument does not cover it); the caller counts those.
    let pc = catalog_of(&after).root.hotplug_switch.is_some();
    assert!(
        after.optimal || pc,
        "{name}: not proven optimal: {}\nexisting: {}\nadopted: {}",
        serde_json::to_string(&after.changes).unwrap_or_default(),
        serde_json::to_string(before_req).unwrap_or_default(),
        serde_json::to_string(after_req).unwrap_or_default()
    );
    let changes = after
        .changes
        .clone()
        .expect("an adopted plan lists its changes");
    let visible = changes.iter().filter(|c| c.guest_visible).count();
    assert_eq!(after.guest_visible_changes, Some(visible as u32), "{name}");

    let (_vm_before, pci_before) = boot(&before, &format!("{name} (before)"));
    let (mut vm, pci_after) = boot(&after, &format!("{name} (after)"));
    let (old, new) = (identities(&pci_before), identities(&pci_after));
    let cat = catalog_of(&after);
    let names = (naming_of(&before), naming_of(&after));
    check_root_switch(name, &changes, cat, names);
    let mut bridge_nics_across_flip = Vec::new();
    for d in &before.devices {
        let (o, n) = (&old[d.id.as_str()], &new[d.id.as_str()]);
        let nic = cat.device(&d.model).is_some_and(|m| m.nic);
        match changes.iter().find(|c| c.id == d.id) {
            None => {
                assert_eq!(
                    o, n,
                    "{name}: {} is not reported as changed, but the guest sees it change",
                    d.id
                );
                if nic {
                    let (a, b) = (o.linux_name(names.0), n.linux_name(names.1));
                    assert_eq!(
                        a, b,
                        "{name}: NIC {} is not reported as changed, but its Linux name changes",
                        d.id
                    );
                    if a.is_none() && names.0 != names.1 && o.path.last().is_some_and(|l| l.0 >= 2)
                    {
                        bridge_nics_across_flip.push(d.id.to_string());
                    }
                }
            }
            Some(c) => {
                check_change(
                    name,
                    c,
                    &Seen {
                        old: o,
                        new: n,
                        names,
                    },
                    nic,
                );
            }
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
        match want.unwrap_or(after_req.policy.default_hotplug) {
            Hotplug::Off => assert!(refused, "{name}: off device {} can be unplugged", d.id),
            Hotplug::On => assert!(
                !refused,
                "{name}: on device {} cannot be unplugged: {outcome:?}",
                d.id
            ),
            _ => {}
        }
    }
    let count = |k: ChangeKind| changes.iter().filter(|c| c.change == k).count();
    Ok(Compared {
        devices: before.devices.len(),
        visible,
        flips: count(ChangeKind::PortHotplug),
        renumbered: count(ChangeKind::Renumbered),
        renamed: count(ChangeKind::Renamed),
        proven: after.optimal,
        bridge_nics_across_flip,
    })
}

/// On `pc` the root bus's switch is listed (kind `port_hotplug`, not guest-visible) exactly
/// when QEMU's root hotplug differs between the two guests; elsewhere it is never listed.
fn check_root_switch(name: &str, changes: &[Change], cat: &Catalog, names: (Naming, Naming)) {
    let root = &cat.root.bus;
    let listed = changes.iter().find(|c| &c.id == root);
    let setting = |on: bool| if on { "on" } else { "off" };
    match names {
        (
            Naming::Pc {
                root_hotplug: a, ..
            },
            Naming::Pc {
                root_hotplug: b, ..
            },
        ) if a != b => {
            let c = listed.unwrap_or_else(|| {
                panic!("{name}: root hotplug {a} -> {b} in QEMU, but {root} is not listed")
            });
            assert_eq!(
                (
                    c.change,
                    c.guest_visible,
                    c.from.as_deref(),
                    c.to.as_deref()
                ),
                (
                    ChangeKind::PortHotplug,
                    false,
                    Some(setting(a)),
                    Some(setting(b))
                ),
                "{name}: {root}"
            );
        }
        _ => assert!(
            listed.is_none(),
            "{name}: {root} listed, but QEMU's root hotplug is the same: {listed:?}"
        ),
    }
}

/// A refused adoption (`Infeasible`, said in `why`) must be one no layout meets: planned from
/// scratch (no address, no controller, root hotplug free), `after` is refused too.
pub fn assert_refused_by_any_layout(name: &str, after: &Request, why: &dyn std::fmt::Display) {
    let mut fresh = after.clone();
    fresh.controllers.clear();
    fresh.root_hotplug = None;
    for d in &mut fresh.devices {
        d.address = None;
    }
    if let Ok(p) = pciplan::plan(&fresh) {
        panic!(
            "{name}: adoption refused ({why}), but a fresh layout meets the policy ({} controllers)\n{}",
            p.cost,
            serde_json::to_string(after).unwrap()
        );
    }
}

/// A small seeded generator (xorshift), so that the random guests of the adoption tests are
/// held out from their cases.
pub struct Rng(pub u64);

impl Rng {
    /// The generator of `seed`; xorshift stays at 0 forever, so seed 0 starts elsewhere.
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// A number below `n`.
    pub fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    /// One of `from`.
    pub fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.next(from.len())]
    }
}

/// The existing guest `existing` adopted under `policy` (a JSON object): named `after`, each
/// device of `hotplug` (id, requirement) given its new requirement, the `new` devices (JSON
/// objects without address) added. Panics naming `name` on a bad case.
pub fn under_policy(
    name: &str,
    existing: &Request,
    policy: &str,
    hotplug: &[(&str, &str)],
    new: &[&str],
) -> Request {
    let mut req = existing.clone();
    req.name = Some("after".into());
    req.policy = serde_json::from_str(policy).unwrap_or_else(|e| panic!("{name}: {e}"));
    for (id, h) in hotplug {
        let d = req
            .devices
            .iter_mut()
            .find(|d| d.id == *id)
            .unwrap_or_else(|| panic!("{name}: no {id}"));
        d.hotplug = Some(
            serde_json::from_value(serde_json::Value::String(h.to_string()))
                .unwrap_or_else(|e| panic!("{name}: {id}: {e}")),
        );
    }
    for n in new {
        req.devices
            .push(serde_json::from_str(n).unwrap_or_else(|e| panic!("{name}: {e}")));
    }
    req
}
