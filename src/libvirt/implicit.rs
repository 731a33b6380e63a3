//! What libvirt adds to a q35 domain by itself, in one place: the reader plans these devices
//! and the writer writes them out explicitly, so that `virsh define` adds nothing.
//!
//! libvirt 9.0 (`qemuDomainDefAddDefaultDevices` and the post-parse controller checks):
//! - the `pcie-root` (index 0) and the primary SATA controller (index 0), the ICH9 AHCI built
//!   into q35 at 00:1f.2: nothing to place, but written out;
//! - a USB controller when the domain has none (`qemu-xhci` with QEMU 7.2; older libvirt an
//!   ICH9 USB2 set), see [`ReadOptions::implicit_usb`](super::ReadOptions);
//! - a virtio memballoon when the domain has no `<memballoon>`;
//! - a virtio-serial controller for each controller index a virtio channel/console uses;
//! - every SCSI controller (model `lsilogic`) from 0 up to the highest one a SCSI disk or
//!   hostdev sits on, and likewise SATA controllers after the primary;
//! - a cirrus video for a `<graphics>` without any `<video>`.
//!
//! On `pc` (i440fx, PC-ROOT) the chipset is the PIIX3: libvirt adds the `pci-root` (index 0),
//! the IDE controller (index 0) at 00:01.1 and, when the domain has no USB controller, a
//! `piix3-uhci` at 00:01.2, slots the catalog reserves: nothing to plan. The `pci-root` is
//! written out (with `<target hotplug='off'/>` when the plan turns root hotplug off); the
//! memballoon, the cirrus video and the disk controllers are planned as on q35, SATA
//! controller 0 included (the PIIX3 has no AHCI).

use std::collections::BTreeSet;

use roxmltree::Node;

use super::read::models::{usb_model, virtio_kind};
use super::read::xml::{alias_of, pci_address};
use super::read::Item;
use super::ReadOptions;
use crate::catalog::BusKind;
use crate::error::{InputError, Violation};
use crate::request::MAX_DEVICES;
use crate::rule::Rule;

/// A device libvirt adds when the XML lacks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Implicit {
    /// `<controller type='usb' index='0' model=M>` (M a libvirt USB model).
    Usb(String),
    /// `<memballoon model='virtio'>`.
    Balloon,
    /// `<controller type='virtio-serial' index=N>` (virtio channels/consoles need it).
    VirtioSerial(u32),
    /// `<controller type='scsi' index=N model='lsilogic'>` (SCSI disks/hostdevs need it).
    Scsi(u32),
    /// `<controller type='sata' index=N>` for N > 0 (SATA disks need it).
    Sata(u32),
    /// `<video><model type='cirrus'/>` (a `<graphics>` without a `<video>`).
    Video,
    /// `<video><model type='virtio'/>` (the same on aarch64 `virt`: `virtio-gpu-pci`).
    VirtioVideo,
}

impl Implicit {
    /// The element libvirt would add, with its PCI address element `addr` (lines indented by
    /// two spaces per level from column 0).
    pub(super) fn element(&self, addr: &str) -> String {
        match self {
            Implicit::Usb(m) => {
                let master = match m.as_str() {
                    "ich9-uhci1" => "\n  <master startport='0'/>",
                    "ich9-uhci2" => "\n  <master startport='2'/>",
                    "ich9-uhci3" => "\n  <master startport='4'/>",
                    _ => "",
                };
                format!("<controller type='usb' index='0' model='{m}'>{master}\n  {addr}\n</controller>")
            }
            Implicit::Balloon => format!("<memballoon model='virtio'>\n  {addr}\n</memballoon>"),
            Implicit::VirtioSerial(i) => {
                format!("<controller type='virtio-serial' index='{i}'>\n  {addr}\n</controller>")
            }
            Implicit::Scsi(i) => format!(
                "<controller type='scsi' index='{i}' model='lsilogic'>\n  {addr}\n</controller>"
            ),
            Implicit::Sata(i) => {
                format!("<controller type='sata' index='{i}'>\n  {addr}\n</controller>")
            }
            Implicit::Video => format!("<video>\n  <model type='cirrus'/>\n  {addr}\n</video>"),
            Implicit::VirtioVideo => {
                format!("<video>\n  <model type='virtio'/>\n  {addr}\n</video>")
            }
        }
    }
}

/// The PCI address of the primary SATA controller: the ICH9 AHCI built into q35, 00:1f.2.
pub(super) const PRIMARY_SATA: (u8, u8) = (0x1f, 2);

/// The primary SATA controller element libvirt adds, with its address element.
pub(super) fn primary_sata_element(addr: &str) -> String {
    format!("<controller type='sata' index='0'>\n  {addr}\n</controller>")
}

/// The root controller element libvirt adds.
pub(super) const PCIE_ROOT_ELEMENT: &str = "<controller type='pci' index='0' model='pcie-root'/>";

/// The `pc` root controller element libvirt adds, with root hotplug as planned (PC-ROOT-HP).
pub(super) fn pci_root_element(hotplug_off: bool) -> String {
    if hotplug_off {
        "<controller type='pci' index='0' model='pci-root'>\n  <target hotplug='off'/>\n</controller>".to_string()
    } else {
        "<controller type='pci' index='0' model='pci-root'/>".to_string()
    }
}

/// The PIIX3 functions of `pc` that libvirt pins (PC-ROOT): the IDE controller index 0 at
/// 00:01.1, the USB controller index 0 (model `piix3-uhci` or none given) at 00:01.2.
pub(super) const PIIX3_IDE: (u8, u8) = (1, 1);
pub(super) const PIIX3_USB: (u8, u8) = (1, 2);

/// An address error on a PIIX3 function of `pc` (`n`, which libvirt puts at `at`): anywhere
/// else (libvirt: "Primary IDE controller must have PCI address 0:0:1.1", "PIIX3 USB controller
/// at index 0 must have PCI address 0:0:1.2").
pub(super) fn piix3_problem(
    n: Node,
    what: &str,
    at: (u8, u8),
    libvirt_says: &str,
) -> Result<Option<Violation>, InputError> {
    let Some(a) = pci_address(n, what)? else {
        return Ok(None);
    };
    if a.is_empty() || (a.domain, a.bus, a.slot, a.function) == (0, 0, at.0.into(), at.1.into()) {
        return Ok(None);
    }
    Ok(Some(Violation {
        device: alias_of(n).unwrap_or_else(|| what.to_string()),
        address: a.show(),
        rule: Rule::PcRoot,
        message: format!("{libvirt_says} (the PIIX3 function of pc)"),
    }))
}

/// An address error on the primary SATA controller `n`: anywhere but 00:1f.2 (libvirt:
/// "Primary SATA controller must have PCI address 0:0:1f.2").
pub(super) fn primary_sata_problem(n: Node, what: &str) -> Result<Option<Violation>, InputError> {
    let Some(a) = pci_address(n, what)? else {
        return Ok(None);
    };
    let (slot, function) = PRIMARY_SATA;
    if a.is_empty() || (a.domain, a.bus, a.slot, a.function) == (0, 0, slot.into(), function.into())
    {
        return Ok(None);
    }
    Ok(Some(Violation {
        device: alias_of(n).unwrap_or_else(|| "sata0".into()),
        address: a.show(),
        rule: Rule::Root,
        message:
            "Primary SATA controller must have PCI address 0:0:1f.2 (the ICH9 AHCI built into q35)"
                .into(),
    }))
}

/// What the elements read show about libvirt's additions: which kinds the domain has, and
/// the controller indexes its devices need.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// A `<controller type='usb'>` (any model, `none` included).
    pub usb: bool,
    /// A `<memballoon>` (any model, `none` included).
    pub balloon: bool,
    /// A `<video>` (any model).
    pub video: bool,
    /// A `<graphics>`.
    pub graphics: bool,
    pub serial_have: BTreeSet<u32>,
    pub serial_need: BTreeSet<u32>,
    pub scsi_have: BTreeSet<u32>,
    pub scsi_need: BTreeSet<u32>,
    pub sata_have: BTreeSet<u32>,
    pub sata_need: BTreeSet<u32>,
}

/// The devices libvirt adds to a domain with what `seen` records, in libvirt's order.
/// On `pc` libvirt's USB controller is the PIIX3's (nothing to plan) and SATA
/// controller 0 is an ordinary AHCI device. On aarch64 `virt` (libvirt 9.0, observed)
/// libvirt adds no USB controller and no memballoon, SATA controller 0 is an AHCI device
/// and the video of a `<graphics>` is a virtio one (`virtio-gpu-pci`, behind a root port).
pub(super) fn additions(
    seen: &Seen,
    opts: &ReadOptions,
    pc: bool,
    virt: bool,
) -> Result<Vec<Item>, InputError> {
    let mut items = if pc || virt {
        Vec::new()
    } else {
        usb(seen, opts)?
    };
    let virtio_kind = virtio_kind(opts);
    for i in seen.serial_need.difference(&seen.serial_have) {
        items.push(Item::implicit(
            Implicit::VirtioSerial(*i),
            "virtio-serial",
            "virtio-serial-pci",
            virtio_kind,
            false,
        ));
    }
    // libvirt adds every disk controller from 0 up to the highest one a disk sits on.
    let scsi_need = up_to_highest("scsi", &seen.scsi_need)?;
    let sata_need = up_to_highest("sata", &seen.sata_need)?;
    for i in scsi_need.difference(&seen.scsi_have) {
        items.push(Item::implicit(
            Implicit::Scsi(*i),
            "scsi",
            "lsi53c895a",
            BusKind::Pci,
            false,
        ));
    }
    for i in sata_need.difference(&seen.sata_have) {
        // SATA 0 is q35's chipset's own (see PRIMARY_SATA).
        if *i > 0 || pc || virt {
            items.push(Item::implicit(
                Implicit::Sata(*i),
                "sata",
                "ich9-ahci",
                BusKind::Pci,
                false,
            ));
        }
    }
    if seen.graphics && !seen.video && virt {
        items.push(Item::implicit(
            Implicit::VirtioVideo,
            "video",
            "virtio-gpu-pci",
            virtio_kind,
            false,
        ));
    } else if seen.graphics && !seen.video {
        items.push(Item::implicit(
            Implicit::Video,
            "video",
            "cirrus-vga",
            BusKind::Pci,
            true,
        ));
    }
    if !seen.balloon && !virt {
        items.push(Item::implicit(
            Implicit::Balloon,
            "balloon",
            "virtio-balloon-pci",
            virtio_kind,
            false,
        ));
    }
    Ok(items)
}

/// The USB controller(s) libvirt adds to a domain without one.
fn usb(seen: &Seen, opts: &ReadOptions) -> Result<Vec<Item>, InputError> {
    let mut items = Vec::new();
    let (false, Some(lv)) = (seen.usb, &opts.implicit_usb) else {
        return Ok(items);
    };
    let set: Vec<&str> = if lv == "ich9-ehci1" {
        vec!["ich9-ehci1", "ich9-uhci1", "ich9-uhci2", "ich9-uhci3"]
    } else {
        vec![lv.as_str()]
    };
    for m in set {
        let u = usb_model(Some(m)).map_err(|e| InputError::new("implicit USB controller", e))?;
        if let Some(u) = u {
            items.push(Item {
                usb2: u.usb2_function.map(|f| (0, f)),
                ..Item::implicit(
                    Implicit::Usb(m.to_string()),
                    "usb",
                    u.qemu,
                    u.kind,
                    u.usb2_function.is_some(),
                )
            });
        }
    }
    Ok(items)
}

/// Every controller index from 0 to the highest in `need` (libvirt fills the gaps).
fn up_to_highest(bus: &str, need: &BTreeSet<u32>) -> Result<BTreeSet<u32>, InputError> {
    let mut out = need.clone();
    if let Some(&top) = need.iter().next_back() {
        if top as usize >= MAX_DEVICES {
            return Err(InputError::new(
                "devices/disk/target",
                format!("a {bus} disk's target or drive address puts it on {bus} controller {top}; libvirt would add {top} more controllers, past the {MAX_DEVICES} device limit"),
            ));
        }
        out.extend(0..=top);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes(seen: &Seen, opts: &ReadOptions) -> Vec<String> {
        additions(seen, opts, false, false)
            .unwrap()
            .iter()
            .map(|i| format!("{} {}", i.prefix, i.model))
            .collect()
    }

    #[test]
    fn an_empty_domain_gets_usb_and_balloon() {
        let o = ReadOptions::default();
        assert_eq!(
            prefixes(&Seen::default(), &o),
            vec!["usb qemu-xhci", "balloon virtio-balloon-pci"]
        );
        let old = ReadOptions {
            implicit_usb: Some("ich9-ehci1".into()),
            ..ReadOptions::default()
        };
        assert_eq!(
            additions(&Seen::default(), &old, false, false)
                .unwrap()
                .len(),
            5
        );
        let none = ReadOptions {
            implicit_usb: None,
            ..ReadOptions::default()
        };
        assert_eq!(
            additions(&Seen::default(), &none, false, false)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn controllers_up_to_the_highest_needed() {
        let seen = Seen {
            usb: true,
            balloon: true,
            scsi_need: [2].into(),
            scsi_have: [1].into(),
            sata_need: [1].into(),
            serial_need: [0].into(),
            graphics: true,
            ..Seen::default()
        };
        assert_eq!(
            prefixes(&seen, &ReadOptions::default()),
            vec![
                "virtio-serial virtio-serial-pci",
                "scsi lsi53c895a",
                "scsi lsi53c895a",
                "sata ich9-ahci",
                "video cirrus-vga",
            ]
        );
        let too_far = Seen {
            sata_need: [5000].into(),
            ..Seen::default()
        };
        assert!(additions(&too_far, &ReadOptions::default(), false, false).is_err());
    }

    #[test]
    fn elements_libvirt_would_write() {
        let a = "<address/>";
        assert_eq!(
            Implicit::Usb("ich9-uhci2".into()).element(a),
            "<controller type='usb' index='0' model='ich9-uhci2'>\n  <master startport='2'/>\n  <address/>\n</controller>"
        );
        assert_eq!(
            Implicit::Scsi(1).element(a),
            "<controller type='scsi' index='1' model='lsilogic'>\n  <address/>\n</controller>"
        );
    }
}
