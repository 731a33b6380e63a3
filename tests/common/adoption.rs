//! Adoption seen by the guest: an existing guest and its adopted plan booted in QEMU
//! (SeaBIOS numbers the buses), `query-pci` read from both, and what the guest sees of each
//! device (G-ID) compared with the plan's `changes`. Used by `tests/qemu_adopt.rs`.

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
    pub fn linux(&self) -> String {
        let (slot, f) = *self.path.last().expect("a path");
        let f = if f > 0 {
            format!("f{f}")
        } else {
            String::new()
        };
        format!("enp{}s{slot}{f}", self.bus)
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

/// Starts `plan`, checks QEMU placed it as planned, lets SeaBIOS number the buses.
pub fn boot(plan: &Plan, what: &str) -> (Qemu, PciTree) {
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
pub fn check_change(name: &str, c: &Change, old: &Identity, new: &Identity, nic: bool) {
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

/// What one comparison found.
pub struct Compared {
    /// Devices of the existing guest compared in `query-pci`.
    pub devices: usize,
    /// Guest-visible changes the plan reports.
    pub visible: usize,
    /// Ports whose `hotplug` the plan flips.
    pub flips: usize,
    /// Devices reported renumbered (same path, another bus number).
    pub renumbered: usize,
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
    assert!(after.optimal, "{name}");
    let changes = after
        .changes
        .clone()
        .expect("an adopted plan lists its changes");
    let visible = changes.iter().filter(|c| c.guest_visible).count();
    assert_eq!(after.guest_visible_changes, Some(visible as u32), "{name}");

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
    let flips = changes
        .iter()
        .filter(|c| c.change == ChangeKind::PortHotplug)
        .count();
    let renumbered = changes
        .iter()
        .filter(|c| c.change == ChangeKind::Renumbered)
        .count();
    Ok(Compared {
        devices: before.devices.len(),
        visible,
        flips,
        renumbered,
    })
}
