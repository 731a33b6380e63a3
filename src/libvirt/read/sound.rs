//! `<sound>`, every model libvirt knows: the PCI ones are planned (libvirt always puts an ICH9
//! sound device on `pcie.0`, 00:1b.0 when free, so it defaults to hotplug `any`); `sb16`,
//! `pcspk` (ISA) and `usb` are not PCI devices; the rest are refused by name, never skipped.

use super::models::virtio_kind;
use super::xml::err;
use super::{El, Reader};
use crate::catalog::BusKind;
use crate::error::InputError;

/// The QEMU device of `<sound model='virtio'>` (libvirt 10.4 and newer).
const VIRTIO_SOUND: &str = "virtio-sound-pci";

impl Reader<'_, '_> {
    pub(super) fn sound(&mut self, el: &El) -> Result<(), InputError> {
        let model = el.attr("model").unwrap_or("");
        let (qemu, any) = match model {
            "ich9" => ("ich9-intel-hda", true),
            "ich6" => ("intel-hda", false),
            "ac97" => ("AC97", false),
            "es1370" => ("ES1370", false),
            "sb16" | "pcspk" | "usb" => return Ok(()),
            // A catalog for a newer QEMU may list it; the built-in one (QEMU 7.2) does not.
            "virtio" if self.cat.device(VIRTIO_SOUND).is_some() => {
                return self.push(el, "sound", VIRTIO_SOUND, virtio_kind(self.opts));
            }
            "virtio" => {
                return Err(err(
                    &el.what,
                    format!("sound model 'virtio' is the PCI device {VIRTIO_SOUND}, which this machine catalog does not have (QEMU 7.2 lacks it, QEMU 8.2 added it; libvirt 9.0 refuses the model, 10.4 accepts it): pciplan will not leave a PCI device out; use a catalog that lists {VIRTIO_SOUND} (--catalog) or another model"),
                ))
            }
            "ich7" => {
                return Err(err(
                    &el.what,
                    "sound model 'ich7' has no QEMU device on q35: libvirt 9.0 cannot place it ('Cannot automatically add a new PCI bus for a device with connect flags 00'); use ich9",
                ))
            }
            other => {
                return Err(err(
                    &el.what,
                    format!("unknown sound model '{other}' (libvirt: ich9, ich6, ac97, es1370, sb16, pcspk, usb, ich7, virtio)"),
                ))
            }
        };
        self.push_item(el, "sound", qemu.into(), BusKind::Pci, any, None)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{domain, element_models};
    use crate::Hotplug;

    #[test]
    fn sound_models() {
        assert_eq!(
            element_models("<sound model='ich9'/><sound model='ich6'/><sound model='ac97'/><sound model='es1370'/><sound model='pcspk'/><sound model='sb16'/><sound model='usb'/>"),
            vec!["ich9-intel-hda", "intel-hda", "AC97", "ES1370"]
        );
    }

    #[test]
    fn ich9_sound_is_integrated_like_libvirt_does() {
        let d = domain("<sound model='ich9'/><sound model='ich6'/>").unwrap();
        assert_eq!(d.request.devices[0].hotplug, Some(Hotplug::Any));
        assert_eq!(d.request.devices[1].hotplug, None);
    }

    #[test]
    fn a_pci_sound_model_is_never_skipped() {
        for (model, says) in [
            ("virtio", "virtio-sound-pci"),
            ("ich7", "ich7"),
            ("bogus", "unknown sound model"),
        ] {
            let e = domain(&format!("<sound model='{model}'/>"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("sound[1]") && e.contains(says), "{model}: {e}");
        }
    }

    #[test]
    fn virtio_sound_is_planned_with_a_catalog_that_has_it() {
        let mut cat = crate::Catalog::q35().clone();
        let mut m = cat.devices["virtio-rng-pci"].clone();
        m.what = "virtio sound".into();
        cat.devices.insert("virtio-sound-pci".into(), m);
        let xml = "<domain><name>t</name><os><type machine='q35'>hvm</type></os><devices><sound model='virtio'/></devices></domain>";
        let d = crate::libvirt::Domain::read(xml, &Default::default(), &cat).unwrap();
        assert_eq!(d.request.devices[0].model, "virtio-sound-pci");
        assert!(d.plan().is_ok());
    }
}
