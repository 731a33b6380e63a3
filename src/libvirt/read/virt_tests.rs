//! Reading aarch64 `virt` domains (VIRT-ROOT, VIRT-LIBVIRT): libvirt 9.0 adds no USB
//! controller, no balloon and no chipset SATA there; its video is `virtio-gpu-pci`.

use super::testing::{ids_models, models};
use super::*;
use crate::request::Firmware;

fn virt(devices: &str) -> Result<Domain<'static>, InputError> {
    let xml = format!("<domain type='qemu'><name>t</name><os><type arch='aarch64' machine='virt-7.2'>hvm</type></os><devices>{devices}</devices></domain>");
    read_builtin(&xml, &ReadOptions::default())
}

fn virt_models(devices: &str) -> Vec<String> {
    ids_models(&virt(devices).unwrap_or_else(|e| panic!("{devices}: {e}")))
}

#[test]
fn virt_machines_pick_the_virt_catalog_and_uefi() {
    let d = virt("").unwrap();
    assert_eq!(d.catalog().machine, "virt");
    assert_eq!(d.request.firmware, Firmware::Uefi);
    // No USB controller, no balloon, no SATA: nothing to plan (q35 would plan two).
    assert!(d.request.devices.is_empty());
    assert_eq!(models("").len(), 2);
}

#[test]
fn virt_defaults_are_libvirts_aarch64_ones() {
    assert_eq!(
        virt_models(
            "<graphics type='vnc'/><controller type='usb'/><controller type='sata' index='0'/>"
        ),
        ["usb0 qemu-xhci", "sata0 ich9-ahci", "video0 virtio-gpu-pci"]
    );
    let e = virt("<video><model type='vga'/></video>")
        .unwrap_err()
        .to_string();
    assert!(e.contains("video[1]") && e.contains("aarch64 virt"), "{e}");
}

#[test]
fn arch_and_machine_must_agree() {
    let bad = [
        (
            "<type arch='x86_64' machine='virt'>hvm</type>",
            "os/type@arch",
        ),
        ("<type machine='virt'>hvm</type>", "os/type@arch"),
        (
            "<type arch='aarch64' machine='pc'>hvm</type>",
            "os/type@arch",
        ),
        (
            "<type arch='aarch64' machine='q35'>hvm</type>",
            "os/type@arch",
        ),
    ];
    for (t, field) in bad {
        let xml = format!("<domain><name>t</name><os>{t}</os><devices/></domain>");
        let e = read_builtin(&xml, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{t}: {e}");
    }
    let xml = "<domain><name>t</name><os><type arch='aarch64' machine='virt'>hvm</type></os><devices/></domain>";
    let e = read(xml, &ReadOptions::default(), Catalog::q35())
        .unwrap_err()
        .to_string();
    assert!(e.contains("os/type@machine"), "{e}");
}
