//! `<sound>`: the PCI sound models. libvirt always puts an ICH9 sound device on `pcie.0`
//! (00:1b.0 when free), so it defaults to hotplug `any`.

use super::{El, Reader};
use crate::catalog::BusKind;
use crate::error::InputError;

impl Reader<'_> {
    pub(super) fn sound(&mut self, el: &El) -> Result<(), InputError> {
        let (qemu, any) = match el.attr("model").unwrap_or("") {
            "ich9" => ("ich9-intel-hda", true),
            "ich6" => ("intel-hda", false),
            "ac97" => ("AC97", false),
            "es1370" => ("ES1370", false),
            _ => return Ok(()),
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
            element_models("<sound model='ich9'/><sound model='ich6'/><sound model='ac97'/><sound model='es1370'/><sound model='pcspk'/>"),
            vec!["ich9-intel-hda", "intel-hda", "AC97", "ES1370"]
        );
    }

    #[test]
    fn ich9_sound_is_integrated_like_libvirt_does() {
        let d = domain("<sound model='ich9'/><sound model='ich6'/>").unwrap();
        assert_eq!(d.request.devices[0].hotplug, Some(Hotplug::Any));
        assert_eq!(d.request.devices[1].hotplug, None);
    }
}
