//! libvirt model names → QEMU device models and kinds, where several element kinds share
//! them (virtio variants, USB controller models).

use super::xml::err;
use crate::catalog::BusKind;
use crate::error::InputError;
use crate::libvirt::ReadOptions;

/// The kind of a plain virtio device: PCI Express on q35 with a QEMU that has
/// `virtio-pci.disable-legacy` (every QEMU libvirt 9.0 supports), unless the options say to
/// read like an older libvirt.
pub(in crate::libvirt) fn virtio_kind(opts: &ReadOptions) -> BusKind {
    if opts.virtio_conventional {
        BusKind::Pci
    } else {
        BusKind::Pcie
    }
}

/// A virtio device `base` in libvirt's model `variant` (`virtio`, `virtio-transitional`,
/// `virtio-non-transitional`; absent is plain virtio): QEMU model and kind. Transitional
/// devices keep a legacy interface and "only work in conventional PCI slots".
pub(super) fn virtio(
    base: &str,
    variant: Option<&str>,
    what: &str,
    opts: &ReadOptions,
) -> Result<(String, BusKind), InputError> {
    match variant {
        None | Some("virtio") => Ok((base.to_string(), virtio_kind(opts))),
        Some("virtio-transitional") => Ok((format!("{base}-transitional"), BusKind::Pci)),
        Some("virtio-non-transitional") => Ok((format!("{base}-non-transitional"), BusKind::Pcie)),
        Some(other) => Err(err(what, format!("unknown virtio model '{other}'"))),
    }
}

/// A libvirt USB controller model as a PCI device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::libvirt) struct UsbModel {
    /// QEMU device.
    pub qemu: &'static str,
    pub kind: BusKind,
    /// The function libvirt gives a member of an ICH9 USB2 set (UHCI1..3 are 0..2, EHCI1 7).
    pub usb2_function: Option<u8>,
}

/// A libvirt USB controller model; `None` for models without a PCI device.
pub(in crate::libvirt) fn usb_model(model: Option<&str>) -> Result<Option<UsbModel>, String> {
    let m = |qemu, kind, usb2_function| {
        Ok(Some(UsbModel {
            qemu,
            kind,
            usb2_function,
        }))
    };
    match model {
        // An explicit USB controller without a model gets piix3-uhci (libvirt 9.0).
        None => m("piix3-usb-uhci", BusKind::Pci, None),
        Some("none") | Some("qusb") => Ok(None),
        Some("qemu-xhci") => m("qemu-xhci", BusKind::Pcie, None),
        Some("nec-xhci") => m("nec-usb-xhci", BusKind::Pcie, None),
        Some("piix3-uhci") => m("piix3-usb-uhci", BusKind::Pci, None),
        Some("piix4-uhci") => m("piix4-usb-uhci", BusKind::Pci, None),
        Some("ehci") => m("usb-ehci", BusKind::Pci, None),
        Some("ich9-ehci1") => m("ich9-usb-ehci1", BusKind::Pci, Some(7)),
        Some("ich9-uhci1") => m("ich9-usb-uhci1", BusKind::Pci, Some(0)),
        Some("ich9-uhci2") => m("ich9-usb-uhci2", BusKind::Pci, Some(1)),
        Some("ich9-uhci3") => m("ich9-usb-uhci3", BusKind::Pci, Some(2)),
        Some("vt82c686b-uhci") => m("vt82c686b-usb-uhci", BusKind::Pci, None),
        Some("pci-ohci") => m("pci-ohci", BusKind::Pci, None),
        Some(other) => Err(format!(
            "USB controller model '{other}' has no PCI device on q35"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtio_variants() {
        let o = ReadOptions::default();
        let v = |x| virtio("virtio-net-pci", x, "t", &o).unwrap();
        assert_eq!(v(None), ("virtio-net-pci".into(), BusKind::Pcie));
        assert_eq!(
            v(Some("virtio-transitional")),
            ("virtio-net-pci-transitional".into(), BusKind::Pci)
        );
        assert_eq!(v(Some("virtio-non-transitional")).1, BusKind::Pcie);
        assert!(virtio("x", Some("virtio-foo"), "t", &o).is_err());
        let old = ReadOptions {
            virtio_conventional: true,
            ..ReadOptions::default()
        };
        assert_eq!(virtio("x", None, "t", &old).unwrap().1, BusKind::Pci);
    }

    #[test]
    fn usb_models() {
        assert_eq!(usb_model(Some("none")), Ok(None));
        assert_eq!(
            usb_model(Some("ich9-ehci1"))
                .unwrap()
                .unwrap()
                .usb2_function,
            Some(7)
        );
        assert_eq!(usb_model(None).unwrap().unwrap().qemu, "piix3-usb-uhci");
        assert!(usb_model(Some("bogus")).is_err());
    }
}
