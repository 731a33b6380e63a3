//! `<video>` (every head) and `<graphics>`: the primary video is the VGA-compatible variant
//! and libvirt always puts it on `pcie.0` (hotplug `any`); a `<graphics>` without any
//! `<video>` makes libvirt add a cirrus one (see `implicit.rs`).

use super::{El, Reader};
use crate::catalog::BusKind;
use crate::error::InputError;

/// libvirt's video model when `<model>` is absent.
const DEFAULT_VIDEO: &str = "cirrus";

impl Reader<'_, '_> {
    pub(super) fn video(&mut self, el: &El) -> Result<(), InputError> {
        self.seen.video = true;
        let primary = self.first_video;
        self.first_video = false;
        let (qemu, kind) = match el.model_type().unwrap_or(DEFAULT_VIDEO) {
            "vga" => ("VGA", BusKind::Pci),
            "cirrus" => ("cirrus-vga", BusKind::Pci),
            "vmvga" => ("vmware-svga", BusKind::Pci),
            "qxl" => (if primary { "qxl-vga" } else { "qxl" }, BusKind::Pci),
            "virtio" => (
                if primary {
                    "virtio-vga"
                } else {
                    "virtio-gpu-pci"
                },
                super::models::virtio_kind(self.opts),
            ),
            "bochs" => ("bochs-display", BusKind::Pcie),
            _ => return Ok(()),
        };
        self.push_item(el, "video", qemu.into(), kind, primary, None)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{domain, element_models, models};
    use crate::Hotplug;

    #[test]
    fn primary_and_secondary_heads() {
        assert_eq!(
            element_models("<video><model type='qxl'/></video><video><model type='qxl'/></video><video><model type='virtio'/></video><video><model type='none'/></video>"),
            vec!["qxl-vga", "qxl", "virtio-gpu-pci"]
        );
        assert_eq!(element_models("<video/>"), vec!["cirrus-vga"]);
        let d =
            domain("<video><model type='virtio'/></video><video><model type='virtio'/></video>")
                .unwrap();
        assert_eq!(d.request.devices[0].model, "virtio-vga");
        assert_eq!(d.request.devices[0].hotplug, Some(Hotplug::Any));
        // QEMU can never hot-unplug a virtio GPU: the default 'on' does not bind it.
        assert_eq!(d.request.devices[1].hotplug, Some(Hotplug::Any));
        assert_eq!(d.notes.len(), 1);
    }

    #[test]
    fn graphics_without_video_gets_cirrus() {
        let m = models("<graphics type='vnc'/>");
        assert!(m.iter().any(|(_, x)| x == "cirrus-vga"), "{m:?}");
        let m = models("<graphics type='vnc'/><video><model type='none'/></video>");
        assert!(!m.iter().any(|(_, x)| x == "cirrus-vga"), "{m:?}");
    }
}
