//! `<interface>`: the NIC model as QEMU knows it (libvirt's default is rtl8139), or a VFIO
//! device for `type='hostdev'`.

use super::{El, Reader};
use crate::catalog::BusKind;
use crate::error::InputError;

/// libvirt's NIC model when `<model>` is absent.
const DEFAULT_NIC: &str = "rtl8139";

impl Reader<'_, '_> {
    pub(super) fn interface(&mut self, el: &El) -> Result<(), InputError> {
        if el.attr("type") == Some("hostdev") {
            return self.push(el, "hostdev", "vfio-pci", BusKind::Pcie);
        }
        // A vDPA interface is always a virtio NIC: libvirt fills in model virtio.
        let default = if el.attr("type") == Some("vdpa") {
            "virtio"
        } else {
            DEFAULT_NIC
        };
        let m = el.model_type().unwrap_or(default);
        match m {
            "virtio" | "virtio-transitional" | "virtio-non-transitional" => {
                let (m, kd) = self.virtio("virtio-net-pci", Some(m), el)?;
                self.push(el, "net", m, kd)
            }
            "e1000e" | "igb" => self.push(el, "net", m, BusKind::Pcie),
            // Not PCI devices.
            "usb-net" | "spapr-vlan" | "smc91c111" | "lan9118" => Ok(()),
            other => self.push(el, "net", other, BusKind::Pci),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::element_models;

    #[test]
    fn nic_models() {
        assert_eq!(
            element_models(
                "<interface type='network'><source network='default'/></interface>\
                 <interface type='network'><model type='virtio'/></interface>\
                 <interface type='network'><model type='e1000e'/></interface>\
                 <interface type='network'><model type='usb-net'/></interface>\
                 <interface type='hostdev'><source><address type='pci' domain='0' bus='3' slot='0' function='0'/></source></interface>\
                 <interface type='vdpa'><source dev='/dev/vhost-vdpa-0'/></interface>"
            ),
            vec!["rtl8139", "virtio-net-pci", "e1000e", "vfio-pci", "virtio-net-pci"]
        );
    }
}
