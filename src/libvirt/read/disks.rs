//! `<disk>`: a virtio disk is a PCI device; a SCSI or SATA disk needs its controller, which
//! libvirt adds when the domain lacks it (see `implicit.rs`). Without `bus=`, the bus is what
//! libvirt infers from the target name; IDE, q35 refuses.

use roxmltree::Node;

use super::xml::{address_attr, child, disk_index, err};
use super::{El, Reader};
use crate::catalog::BusKind;
use crate::error::InputError;

/// Disks per SCSI controller as libvirt numbers targets (buses are wide in the QEMU driver).
pub(super) const SCSI_DISKS_PER_CONTROLLER: u64 = 15;
/// Disks per SATA controller (six AHCI ports).
const SATA_DISKS_PER_CONTROLLER: u64 = 6;

/// libvirt's message for IDE on q35 (the ICH9 has no IDE controller).
const NO_IDE: &str = "IDE controllers are unsupported for this QEMU binary or machine type";

/// The bus of a disk: its `<target bus>`, else what libvirt infers (a floppy is on the
/// floppy controller; else the target name's prefix: `hd` IDE, `sd` SCSI, `vd` virtio, `xvd`
/// Xen, `ubd` UML; anything else IDE).
fn disk_bus<'a>(el: &El<'a, '_>) -> (&'a str, bool) {
    let target = child(el.node, "target");
    if let Some(bus) = target.and_then(|t| t.attribute("bus")) {
        return (bus, false);
    }
    if el.attr("device") == Some("floppy") {
        return ("fdc", true);
    }
    let dev = target.and_then(|t| t.attribute("dev")).unwrap_or("");
    let bus = [
        ("hd", "ide"),
        ("sd", "scsi"),
        ("vd", "virtio"),
        ("xvd", "xen"),
        ("ubd", "uml"),
    ]
    .iter()
    .find(|(prefix, _)| dev.starts_with(prefix))
    .map(|(_, bus)| *bus)
    .unwrap_or("ide");
    (bus, true)
}

impl Reader<'_, '_> {
    pub(super) fn disk(&mut self, el: &El) -> Result<(), InputError> {
        let (bus, inferred) = disk_bus(el);
        match bus {
            "virtio" if el.attr("type") == Some("vhostuser") => {
                self.push(el, "disk", "vhost-user-blk-pci", BusKind::Pcie)
            }
            "virtio" => {
                let (m, kd) = self.virtio("virtio-blk-pci", el.attr("model"), el)?;
                self.push(el, "disk", m, kd)
            }
            "scsi" => {
                let c = drive_controller(el.node, SCSI_DISKS_PER_CONTROLLER);
                self.seen.scsi_need.insert(c);
                Ok(())
            }
            "sata" => {
                let c = drive_controller(el.node, SATA_DISKS_PER_CONTROLLER);
                self.seen.sata_need.insert(c);
                Ok(())
            }
            // pc: the PIIX3 IDE controller at 00:01.1 (PC-ROOT), always there.
            "ide" if self.pc => Ok(()),
            "ide" => {
                let why = if inferred {
                    let dev = child(el.node, "target").and_then(|t| t.attribute("dev"));
                    format!(
                        "a disk without <target bus> on target '{}' is on bus 'ide' (libvirt infers the bus from the name), which q35 does not have",
                        dev.unwrap_or("")
                    )
                } else {
                    "bus 'ide' is not available on q35".to_string()
                };
                Err(err(
                    &el.what,
                    format!(
                        "{why}: libvirt refuses it ('{NO_IDE}'); use bus='sata' or bus='virtio'"
                    ),
                ))
            }
            // USB, floppy, Xen, UML, SD card: no PCI device of their own.
            _ => Ok(()),
        }
    }
}

/// The controller a disk sits on: its drive address, else what libvirt derives from the
/// target name (`sdz` is disk 25: SATA controller 25 / 6 = 4, so libvirt adds SATA controllers
/// 1..4).
pub(super) fn drive_controller(n: Node, per_controller: u64) -> u32 {
    let given = address_attr(n, "drive", "controller");
    let derived = || {
        child(n, "target")
            .and_then(|t| t.attribute("dev"))
            .and_then(disk_index)
            .map(|i| i / per_controller)
    };
    u32::try_from(given.or_else(derived).unwrap_or(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{domain, element_models};

    fn sata_controllers(disks: &str) -> usize {
        let d = domain(disks).unwrap();
        d.request
            .devices
            .iter()
            .filter(|x| x.model == "ich9-ahci")
            .count()
    }

    #[test]
    fn virtio_disks_are_pci_devices() {
        assert_eq!(
            element_models(
                "<disk type='file'><target dev='vda' bus='virtio'/></disk>\
                 <disk type='file' model='virtio-transitional'><target dev='vdb' bus='virtio'/></disk>\
                 <disk type='vhostuser'><target dev='vdc' bus='virtio'/></disk>\
                 <disk type='file'><target dev='sda' bus='sata'/></disk>"
            ),
            vec![
                "virtio-blk-pci",
                "virtio-blk-pci-transitional",
                "vhost-user-blk-pci"
            ]
        );
    }

    #[test]
    fn sata_controllers_follow_the_target_names() {
        let disk = |dev: &str| {
            format!("<disk type='file' device='cdrom'><target dev='{dev}' bus='sata'/></disk>")
        };
        // Controller 0 is the chipset's own at 00:1f.2 (no device to place); libvirt adds
        // one more per 6 disks after it (seen with libvirt 9.0: `sdz` gave SATA 1..4).
        assert_eq!(sata_controllers(&disk("sda")), 0);
        assert_eq!(sata_controllers(&disk("sdf")), 0);
        assert_eq!(sata_controllers(&disk("sdg")), 1);
        assert_eq!(sata_controllers(&disk("sdz")), 4);
        let pinned = "<disk type='file' device='cdrom'><target dev='sdz' bus='sata'/><address type='drive' controller='0' bus='0' unit='1'/></disk>";
        assert_eq!(sata_controllers(pinned), 0);
    }

    #[test]
    fn bus_is_inferred_from_the_target_name() {
        // As NixVirt writes them: libvirt 9.0 makes vda a virtio disk and sdc a SCSI disk on
        // an lsilogic controller it adds.
        let d = domain(
            "<disk type='file'><target dev='vda'/></disk><disk type='file'><target dev='sdc'/></disk>",
        )
        .unwrap();
        let m: Vec<&str> = d.request.devices.iter().map(|x| x.model.as_str()).collect();
        assert_eq!(
            m,
            vec![
                "virtio-blk-pci",
                "qemu-xhci",
                "lsi53c895a",
                "virtio-balloon-pci"
            ]
        );
        assert_eq!(
            element_models("<disk type='file' device='floppy'><target dev='fda'/></disk>"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn ide_is_refused_on_q35() {
        for disk in [
            "<disk type='file'><target dev='hda'/></disk>",
            "<disk type='file'><target dev='hdb' bus='ide'/></disk>",
            "<disk type='file'><target dev='xyz'/></disk>",
        ] {
            let e = domain(disk).unwrap_err().to_string();
            assert!(
                e.contains("disk[1]") && e.contains("IDE controllers are unsupported"),
                "{e}"
            );
        }
    }

    #[test]
    fn scsi_disks_bring_lsilogic_controllers() {
        let d = domain("<disk type='file'><target dev='sdp' bus='scsi'/></disk>").unwrap();
        let scsi: Vec<&str> = d
            .request
            .devices
            .iter()
            .filter(|x| x.id.starts_with("scsi"))
            .map(|x| x.model.as_str())
            .collect();
        // sdp is disk 15: controller 1, so libvirt adds 0 and 1.
        assert_eq!(scsi, vec!["lsi53c895a", "lsi53c895a"]);
    }
}
