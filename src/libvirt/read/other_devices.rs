//! Every other element kind of `<devices>` that can be a PCI device: memballoon, rng,
//! watchdog, input, vsock, filesystem, shmem, serial, channel/console (which need a
//! virtio-serial controller), memory devices, iommu, crypto. An element of any other kind that
//! carries a PCI address keeps it, so its slot stays taken.

use super::xml::{address_attr, child, pci_address};
use super::{El, Reader};
use crate::catalog::BusKind;
use crate::error::InputError;

use super::xml::err;

impl Reader<'_, '_> {
    pub(super) fn other_device(&mut self, el: &El) -> Result<(), InputError> {
        let model = el.attr("model");
        match el.node.tag_name().name() {
            "memballoon" => {
                self.seen.balloon = true;
                match model {
                    Some(m @ ("virtio" | "virtio-transitional" | "virtio-non-transitional")) => {
                        let variant = Some(m).filter(|m| *m != "virtio");
                        let (m, kd) = self.virtio("virtio-balloon-pci", variant, el)?;
                        self.push(el, "balloon", m, kd)
                    }
                    _ => Ok(()),
                }
            }
            "rng" => match model.filter(|m| m.starts_with("virtio")) {
                Some(m) => {
                    let (m, kd) = self.virtio("virtio-rng-pci", Some(m), el)?;
                    self.push(el, "rng", m, kd)
                }
                None => Ok(()),
            },
            "watchdog" if model == Some("i6300esb") => {
                self.push(el, "watchdog", "i6300esb", BusKind::Pci)
            }
            "watchdog" => Ok(()),
            "input" => self.input(el),
            "vsock" => {
                let variant = model.filter(|m| *m != "virtio");
                let (m, kd) = self.virtio("vhost-vsock-pci", variant, el)?;
                self.push(el, "vsock", m, kd)
            }
            "filesystem" => {
                if child(el.node, "driver").and_then(|d| d.attribute("type")) == Some("virtiofs") {
                    self.push(el, "fs", "vhost-user-fs-pci", BusKind::Pcie)
                } else {
                    let (m, kd) = self.virtio("virtio-9p-pci", model, el)?;
                    self.push(el, "fs", m, kd)
                }
            }
            "shmem" => {
                let m = match el.model_type().unwrap_or("ivshmem-plain") {
                    "ivshmem-doorbell" => "ivshmem-doorbell",
                    "ivshmem" => {
                        return Err(err(
                            &el.what,
                            "shmem model 'ivshmem' (the legacy device) is gone from QEMU: libvirt refuses it ('ivshmem device is not supported with this QEMU binary'); use ivshmem-plain or ivshmem-doorbell",
                        ))
                    }
                    _ => "ivshmem-plain",
                };
                self.push(el, "shmem", m, BusKind::Pci)
            }
            "serial" if el.target_type() == Some("pci-serial") => {
                self.push(el, "serial", "pci-serial", BusKind::Pci)
            }
            "serial" => Ok(()),
            "channel" | "console" => {
                if el.target_type() == Some("virtio") {
                    let c = address_attr(el.node, "virtio-serial", "controller").unwrap_or(0);
                    self.seen.serial_need.insert(c as u32);
                }
                Ok(())
            }
            "memory" => match model {
                Some("virtio-pmem") => self.push(el, "memory", "virtio-pmem-pci", BusKind::Pcie),
                Some("virtio-mem") => self.push(el, "memory", "virtio-mem-pci", BusKind::Pcie),
                _ => Ok(()),
            },
            "iommu" if model == Some("virtio") => {
                self.push(el, "iommu", "virtio-iommu-pci", BusKind::Pcie)
            }
            "crypto" if model == Some("virtio") => {
                self.push(el, "crypto", "virtio-crypto-pci", BusKind::Pcie)
            }
            tag => {
                // Anything else that carries a PCI address keeps it (and its slot stays taken).
                if pci_address(el.node, &el.what)?.is_some() {
                    self.push(el, "dev", tag, BusKind::Pcie)?;
                }
                Ok(())
            }
        }
    }

    /// `<input bus='virtio'>` (other buses are not PCI).
    fn input(&mut self, el: &El) -> Result<(), InputError> {
        if el.attr("bus") != Some("virtio") {
            return Ok(());
        }
        let t = el.attr("type").unwrap_or("");
        let base = match t {
            "mouse" => "virtio-mouse-pci",
            "keyboard" => "virtio-keyboard-pci",
            "tablet" => "virtio-tablet-pci",
            "passthrough" => "virtio-input-host-pci",
            other => {
                return Err(err(
                    &el.what,
                    format!("unknown virtio input type '{other}'"),
                ))
            }
        };
        let m = el.attr("model");
        if t != "passthrough"
            && matches!(m, Some("virtio-transitional" | "virtio-non-transitional"))
        {
            return Err(err(
                &el.what,
                format!("virtio (non-)transitional models are not supported for input type={t}"),
            ));
        }
        let (m, kd) = self.virtio(base, m, el)?;
        self.push(el, "input", m, kd)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{domain, element_models, models};

    #[test]
    fn device_models() {
        assert_eq!(
            element_models(
                "<memballoon model='virtio-transitional'/>\
                 <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>\
                 <watchdog model='i6300esb'/><watchdog model='ib700'/>\
                 <input type='tablet' bus='virtio'/><input type='mouse' bus='ps2'/>\
                 <vsock model='virtio'><cid auto='yes'/></vsock>\
                 <filesystem type='mount'><driver type='virtiofs'/><source dir='/s'/><target dir='t'/></filesystem>\
                 <filesystem type='mount'><source dir='/s'/><target dir='u'/></filesystem>\
                 <shmem name='m'><model type='ivshmem-doorbell'/></shmem>\
                 <serial type='pty'><target type='pci-serial'/></serial><serial type='pty'/>\
                 <memory model='virtio-mem'/><memory model='dimm'/>\
                 <iommu model='virtio'/><iommu model='intel'/>\
                 <crypto model='virtio' type='qemu'/>\
                 <panic model='isa'/>"
            ),
            vec![
                "virtio-balloon-pci-transitional",
                "virtio-rng-pci",
                "i6300esb",
                "virtio-tablet-pci",
                "vhost-vsock-pci",
                "vhost-user-fs-pci",
                "virtio-9p-pci",
                "ivshmem-doorbell",
                "pci-serial",
                "virtio-mem-pci",
                "virtio-iommu-pci",
                "virtio-crypto-pci",
            ]
        );
    }

    #[test]
    fn memballoon_none_means_no_balloon() {
        let m = models("<memballoon model='none'/>");
        assert!(m.iter().all(|(_, x)| x != "virtio-balloon-pci"), "{m:?}");
        let m = models("");
        assert!(m.iter().any(|(_, x)| x == "virtio-balloon-pci"), "{m:?}");
    }

    #[test]
    fn virtio_channel_brings_its_controller() {
        let m = models(
            "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>",
        );
        assert!(
            m.iter()
                .any(|(id, x)| id == "virtio-serial0" && x == "virtio-serial-pci"),
            "{m:?}"
        );
    }

    #[test]
    fn unknown_element_with_a_pci_address_keeps_its_slot() {
        let d = domain("<foo><address type='pci' domain='0' bus='0' slot='5' function='0'/></foo>")
            .unwrap();
        assert_eq!(d.request.devices[0].id, "dev0");
        assert_eq!(
            d.request.devices[0].address.as_ref().map(|a| a.slot),
            Some(5)
        );
    }

    #[test]
    fn input_refusals() {
        assert!(domain("<input type='joystick' bus='virtio'/>").is_err());
        assert!(domain("<input type='mouse' bus='virtio' model='virtio-transitional'/>").is_err());
    }

    #[test]
    fn legacy_ivshmem_is_refused_by_name() {
        let e = domain("<shmem name='s'><model type='ivshmem'/></shmem>")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("shmem[1]") && e.contains("ivshmem device is not supported"),
            "{e}"
        );
    }
}
