//! `<controller>` of the types that are PCI devices: USB (with libvirt's autoindex of ICH9
//! USB2 sets), SCSI, virtio-serial and SATA. (`type='pci'` controllers are read by
//! `pci_controllers.rs`; other types are not PCI devices.)

use std::collections::{BTreeMap, BTreeSet};

use super::models::usb_model;
use super::xml::{err, parse_uint};
use super::{El, Reader};
use crate::catalog::BusKind;
use crate::error::InputError;
use crate::libvirt::implicit;

/// libvirt's autoindex of USB controllers: the next free index, and the models each index
/// already has (an ICH9 companion without an index joins the newest set lacking its model).
#[derive(Debug, Default)]
pub(super) struct UsbIndexes {
    next: u32,
    sets: BTreeMap<u32, BTreeSet<String>>,
}

impl UsbIndexes {
    /// The index of a USB controller of `model` with the index `given`, and records it.
    fn index(&mut self, given: Option<u32>, model: Option<&str>) -> u32 {
        let companion = matches!(model, Some("ich9-uhci1" | "ich9-uhci2" | "ich9-uhci3"));
        let m = model.unwrap_or("");
        let index = given.unwrap_or_else(|| {
            let join = if companion {
                self.sets
                    .iter()
                    .rev()
                    .find(|(_, ms)| !ms.contains(m))
                    .map(|(i, _)| *i)
            } else {
                None
            };
            join.unwrap_or(self.next)
        });
        self.next = self.next.max(index + 1);
        self.sets.entry(index).or_default().insert(m.to_string());
        index
    }
}

impl Reader<'_, '_> {
    pub(super) fn controller(&mut self, el: &El) -> Result<(), InputError> {
        let index = el.attr("index").and_then(parse_uint).map(|i| i as u32);
        match el.attr("type").unwrap_or("") {
            "usb" => self.usb_controller(el, index),
            "scsi" => self.scsi_controller(el, index),
            "virtio-serial" => {
                let have = &mut self.seen.serial_have;
                have.insert(index.unwrap_or(have.len() as u32));
                let (m, kd) = self.virtio("virtio-serial-pci", el.attr("model"), el)?;
                self.push(el, "virtio-serial", m, kd)
            }
            "sata" => self.sata_controller(el, index),
            "ide" if self.pc => self.piix3_ide(el, index),
            "ide" => Err(err(
                &el.what,
                "q35 has no IDE controller: libvirt refuses it ('IDE controllers are unsupported for this QEMU binary or machine type'); use a SATA controller",
            )),
            // fdc, ccid, xenbus, isa, mmc: not PCI devices.
            _ => Ok(()),
        }
    }

    /// `pc`: IDE controller 0 is the PIIX3's at 00:01.1 (PC-ROOT), nothing to place; libvirt
    /// allows no other.
    fn piix3_ide(&mut self, el: &El, index: Option<u32>) -> Result<(), InputError> {
        if index.unwrap_or(0) != 0 {
            return Err(err(
                &el.what,
                "pc has one IDE controller, the PIIX3's (index 0): libvirt refuses another ('Only a single IDE controller is supported for this machine type') [PC-ROOT]",
            ));
        }
        let p = implicit::piix3_problem(
            el.node,
            &el.what,
            implicit::PIIX3_IDE,
            "Primary IDE controller must have PCI address 0:0:1.1",
        )?;
        self.problems.extend(p);
        Ok(())
    }

    fn usb_controller(&mut self, el: &El, index: Option<u32>) -> Result<(), InputError> {
        self.seen.usb = true;
        let model = el.attr("model");
        let index = self.usb.index(index, model);
        if self.pc && index == 0 && matches!(model, None | Some("piix3-uhci")) {
            // The PIIX3's own USB function, 00:01.2 (PC-ROOT): nothing to place.
            let p = implicit::piix3_problem(
                el.node,
                &el.what,
                implicit::PIIX3_USB,
                "PIIX3 USB controller at index 0 must have PCI address 0:0:1.2",
            )?;
            self.problems.extend(p);
            return Ok(());
        }
        // aarch64 virt: libvirt's model for a USB controller without one is qemu-xhci.
        let model = if self.virt {
            model.or(Some("qemu-xhci"))
        } else {
            model
        };
        let Some(u) = usb_model(model).map_err(|e| err(&el.what, e))? else {
            return Ok(());
        };
        let usb2 = u.usb2_function.map(|f| (index, f));
        self.push_item(el, "usb", u.qemu.into(), u.kind, usb2.is_some(), usb2)
    }

    fn scsi_controller(&mut self, el: &El, index: Option<u32>) -> Result<(), InputError> {
        let have = &mut self.seen.scsi_have;
        have.insert(index.unwrap_or(have.len() as u32));
        let model = el.attr("model");
        let (qemu, kind) = match model {
            Some("virtio-scsi") => self.virtio("virtio-scsi-pci", None, el)?,
            Some(v @ ("virtio-transitional" | "virtio-non-transitional")) => {
                self.virtio("virtio-scsi-pci", Some(v), el)?
            }
            // `auto` is libvirt's own default, lsilogic on q35 (libvirt 9.0 writes it back so).
            None | Some("auto") | Some("lsilogic") => ("lsi53c895a".into(), BusKind::Pci),
            Some("lsisas1068") => ("mptsas1068".into(), BusKind::Pci),
            Some("lsisas1078") => ("megasas".into(), BusKind::Pci),
            Some("vmpvscsi") => ("pvscsi".into(), BusKind::Pci),
            Some("am53c974") => ("am53c974".into(), BusKind::Pci),
            Some("dc390") => ("dc390".into(), BusKind::Pci),
            Some("buslogic") => ("buslogic".into(), BusKind::Pci),
            // Not PCI devices.
            Some("ncr53c90") | Some("ibmvscsi") => return Ok(()),
            Some(other) => {
                return Err(err(
                    &el.what,
                    format!("unknown SCSI controller model '{other}'"),
                ))
            }
        };
        self.push(el, "scsi", qemu, kind)
    }

    /// SATA controller 0 is the chipset's own AHCI at 00:1f.2 (nothing to place, but an
    /// address elsewhere is an error); others are ICH9 AHCI devices.
    fn sata_controller(&mut self, el: &El, index: Option<u32>) -> Result<(), InputError> {
        let have = &mut self.seen.sata_have;
        let i = index.unwrap_or(have.len() as u32);
        have.insert(i);
        if i > 0 || self.pc || self.virt {
            return self.push(el, "sata", "ich9-ahci", BusKind::Pci);
        }
        if let Some(p) = implicit::primary_sata_problem(el.node, &el.what)? {
            self.problems.push(p);
        }
        self.sata0 = Some(el.node.range().start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{domain, element_models};
    use crate::Hotplug;

    #[test]
    fn controller_models() {
        assert_eq!(
            element_models(
                "<controller type='usb' model='qemu-xhci'/>\
                 <controller type='usb' index='1' model='none'/>\
                 <controller type='scsi' model='virtio-scsi'/>\
                 <controller type='scsi' index='1'/>\
                 <controller type='scsi' index='2' model='ncr53c90'/>\
                 <controller type='virtio-serial'/>\
                 <controller type='sata' index='0'/>\
                 <controller type='sata' index='1'/>\
                 <controller type='scsi' index='3' model='auto'/>\
                 <controller type='fdc'/>"
            ),
            vec![
                "qemu-xhci",
                "virtio-scsi-pci",
                "lsi53c895a",
                "virtio-serial-pci",
                "ich9-ahci",
                "lsi53c895a"
            ]
        );
        assert!(domain("<controller type='scsi' model='bogus'/>").is_err());
        assert!(domain("<controller type='usb' model='bogus'/>").is_err());
    }

    #[test]
    fn ide_controller_is_refused_on_q35() {
        let e = domain("<controller type='ide' index='0'/>")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("controller[1]") && e.contains("IDE controllers are unsupported"),
            "{e}"
        );
    }

    #[test]
    fn ich9_usb2_set_shares_a_slot_in_function_order() {
        let d = domain(
            "<controller type='usb' model='ich9-ehci1'/>\
             <controller type='usb' model='ich9-uhci1'/>\
             <controller type='usb' model='ich9-uhci2'/>\
             <controller type='usb' model='ich9-uhci3'/>",
        )
        .unwrap();
        let set: Vec<(&str, Option<&str>)> = d
            .request
            .devices
            .iter()
            .filter(|x| x.id.starts_with("usb"))
            .map(|x| (x.model.as_str(), x.group.as_deref()))
            .collect();
        assert_eq!(
            set,
            vec![
                ("ich9-usb-uhci1", Some("usb2-set0")),
                ("ich9-usb-uhci2", Some("usb2-set0")),
                ("ich9-usb-uhci3", Some("usb2-set0")),
                ("ich9-usb-ehci1", Some("usb2-set0")),
            ]
        );
        assert!(d.request.devices[0].hotplug == Some(Hotplug::Any));
    }

    #[test]
    fn primary_sata_must_be_at_1f_2() {
        let d = domain("<controller type='sata' index='0'><address type='pci' domain='0' bus='0' slot='0x1f' function='2'/></controller>").unwrap();
        assert!(d.problems.is_empty());
        let d = domain("<controller type='sata' index='0'><address type='pci' domain='0' bus='0' slot='3' function='0'/></controller>").unwrap();
        assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
        assert!(d.problems[0].message.contains("0:0:1f.2"));
    }
}
