//! `<hostdev>` in subsystem mode: PCI and mdev (vfio-pci) devices, vhost-scsi, and SCSI
//! hostdevs, which need a SCSI controller.

use super::disks::{drive_controller, SCSI_DISKS_PER_CONTROLLER};
use super::{El, Reader};
use crate::catalog::BusKind;
use crate::error::InputError;

impl Reader<'_, '_> {
    pub(super) fn hostdev(&mut self, el: &El) -> Result<(), InputError> {
        let unassigned = el
            .node
            .children()
            .any(|c| c.has_tag_name("address") && c.attribute("type") == Some("unassigned"));
        if el.attr("mode").unwrap_or("subsystem") != "subsystem" || unassigned {
            return Ok(());
        }
        match el.attr("type") {
            Some("pci") => self.push(el, "hostdev", "vfio-pci", BusKind::Pcie),
            Some("mdev") if el.attr("model") == Some("vfio-pci") => {
                self.push(el, "hostdev", "vfio-pci", BusKind::Pcie)
            }
            Some("scsi_host") => {
                let (m, kd) = self.virtio("vhost-scsi-pci", el.attr("model"), el)?;
                self.push(el, "hostdev", m, kd)
            }
            Some("scsi") => {
                let c = drive_controller(el.node, SCSI_DISKS_PER_CONTROLLER);
                self.seen.scsi_need.insert(c);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{domain, element_models};

    #[test]
    fn hostdev_kinds() {
        assert_eq!(
            element_models(
                "<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='3' slot='0' function='0'/></source></hostdev>\
                 <hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='c2177883-f1bb-47f0-914d-32a22e3a8804'/></source></hostdev>\
                 <hostdev mode='subsystem' type='scsi_host'><source protocol='vhost' wwpn='naa.5123456789abcde0'/></hostdev>\
                 <hostdev mode='capabilities' type='storage'><source><block>/dev/sdf1</block></source></hostdev>\
                 <hostdev mode='subsystem' type='pci'><source><address domain='0' bus='4' slot='0' function='0'/></source><address type='unassigned'/></hostdev>"
            ),
            vec!["vfio-pci", "vfio-pci", "vhost-scsi-pci"]
        );
    }

    #[test]
    fn scsi_hostdev_needs_a_scsi_controller() {
        let d = domain("<hostdev mode='subsystem' type='scsi'><source><adapter name='scsi_host0'/><address bus='0' target='0' unit='0'/></source></hostdev>").unwrap();
        assert!(d.request.devices.iter().any(|x| x.model == "lsi53c895a"));
    }
}
