//! `<video>` (every head) and `<graphics>`: the primary video is the VGA-compatible variant
//! and libvirt always puts it on `pcie.0` (hotplug `any`); a `<graphics>` without any
//! `<video>` makes libvirt add a cirrus one (see `implicit.rs`). On aarch64 `virt` every
//! video is `virtio-gpu-pci`, placed like any endpoint.

use super::xml::err;
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
        if self.virt {
            return self.virt_video(el);
        }
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
            // Not PCI devices: no video, or a framebuffer in guest RAM.
            "none" | "ramfb" => return Ok(()),
            m @ ("xen" | "vbox" | "parallels" | "gop") => {
                return Err(err(
                    &el.what,
                    format!("video model '{m}' is not a QEMU device: libvirt refuses it ('domain configuration does not support video model '{m}''); use virtio, qxl, vga or bochs"),
                ))
            }
            other => {
                return Err(err(
                    &el.what,
                    format!("unknown video model '{other}' (libvirt: vga, cirrus, vmvga, qxl, virtio, bochs, ramfb, none)"),
                ))
            }
        };
        self.push_item(el, "video", qemu.into(), kind, primary, None)
    }

    /// aarch64 `virt` has no VGA (VIRT-MODELS): libvirt's default and only PCI video is
    /// virtio, `virtio-gpu-pci` on every head, placed like any endpoint (libvirt 9.0 puts it
    /// behind a root port, observed).
    fn virt_video(&mut self, el: &El) -> Result<(), InputError> {
        match el.model_type().unwrap_or("virtio") {
            "virtio" => {
                let kind = super::models::virtio_kind(self.opts);
                self.push_item(el, "video", "virtio-gpu-pci".into(), kind, false, None)
            }
            "none" | "ramfb" => Ok(()),
            other => Err(err(
                &el.what,
                format!("video model '{other}' is not available on aarch64 virt (no VGA there): use virtio, ramfb or none"),
            )),
        }
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
    fn video_models_qemu_lacks_are_refused_by_name() {
        for (model, says) in [
            ("vbox", "not a QEMU device"),
            ("xen", "not a QEMU device"),
            ("bogus", "unknown video model"),
        ] {
            let e = domain(&format!("<video><model type='{model}'/></video>"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("video[1]") && e.contains(says), "{model}: {e}");
        }
        assert_eq!(
            element_models("<video><model type='ramfb'/></video>"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn graphics_without_video_gets_cirrus() {
        let m = models("<graphics type='vnc'/>");
        assert!(m.iter().any(|(_, x)| x == "cirrus-vga"), "{m:?}");
        let m = models("<graphics type='vnc'/><video><model type='none'/></video>");
        assert!(!m.iter().any(|(_, x)| x == "cirrus-vga"), "{m:?}");
    }
}
