//! Reading `pc` (i440fx) domains (PC-ROOT, PC-ROOT-HP, PC-BRIDGE, PC-NUMA).

use super::testing::{ids_models, pc_domain};
use crate::libvirt::{Domain, Source};
use crate::Catalog;

#[test]
fn pc_machines_read_with_the_pc_catalog() {
    for m in ["pc", "pc-i440fx-7.2"] {
        let xml = format!("<domain><name>t</name><os><type arch='x86_64' machine='{m}'>hvm</type></os><devices/></domain>");
        let d = Domain::parse(&xml).unwrap_or_else(|e| panic!("{m}: {e}"));
        assert_eq!(d.catalog().machine, "pc", "{m}");
        assert_eq!(d.request.machine, m);
        assert_eq!(d.request.root_hotplug, None);
    }
    let q =
        "<domain><name>t</name><os><type machine='pc-q35-7.2'>hvm</type></os><devices/></domain>";
    assert_eq!(Domain::parse(q).unwrap().catalog().machine, "q35");
    // A catalog of the other layout is refused, naming the element.
    let pc = "<domain><name>t</name><os><type machine='pc'>hvm</type></os><devices/></domain>";
    let e = Domain::read(pc, &Default::default(), Catalog::q35())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("os/type@machine") && e.contains("pci-root"),
        "{e}"
    );
    let e = Domain::parse("<domain><os><type machine='microvm'>hvm</type></os></domain>")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("os/type@machine") && e.contains("pc-i440fx-*"),
        "{e}"
    );
}

#[test]
fn pci_root_hotplug_is_the_requests_root_hotplug() {
    let off = pc_domain(
        "<controller type='pci' index='0' model='pci-root'><target hotplug='off'/></controller>",
    )
    .unwrap();
    assert_eq!(off.request.root_hotplug, Some(false));
    assert!(off.has_root);
    let on = pc_domain(
        "<controller type='pci' index='0' model='pci-root'><target hotplug='on'/></controller>",
    )
    .unwrap();
    assert_eq!(on.request.root_hotplug, Some(true));
    let plain = pc_domain("<controller type='pci' index='0' model='pci-root'/>").unwrap();
    assert_eq!(plain.request.root_hotplug, None);
    let e = pc_domain(
        "<controller type='pci' index='0' model='pci-root'><target hotplug='maybe'/></controller>",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("target@hotplug") && e.contains("PC-ROOT-HP"),
        "{e}"
    );
    let e = pc_domain("<controller type='pci' index='0' model='pcie-root'/>")
        .unwrap_err()
        .to_string();
    assert!(e.contains("must be model='pci-root'"), "{e}");
}

#[test]
fn pci_bridges_read_with_chassis_nr_and_libvirt_defaults() {
    let d = pc_domain(
        "<controller type='pci' index='1' model='pci-bridge'><model name='pci-bridge'/><target chassisNr='7'/><address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></controller>\
         <controller type='pci' index='2'/>\
         <controller type='pci' index='3' model='pci-bridge'><address type='pci' domain='0x0000' bus='0x01' slot='0x01' function='0x0'/></controller>",
    )
    .unwrap();
    let c: Vec<String> = d
        .request
        .controllers
        .iter()
        .map(|c| format!("{} {} {} {:?}", c.id, c.model, c.address, c.chassis))
        .collect();
    assert_eq!(
        c,
        vec![
            "pci.1 pci-bridge pci.0:05.0 Some(7)",
            // No model: libvirt's pci-bridge; no address: first free pci.0 slot.
            "pci.2 pci-bridge pci.0:02.0 Some(2)",
            "pci.3 pci-bridge pci.1:01.0 Some(3)",
        ]
    );
    for (xml, says) in [
        ("<controller type='pci' index='1' model='pci-bridge'><target chassisNr='0'/></controller>", "chassisNr '0' out of range"),
        ("<controller type='pci' index='1' model='pci-bridge'><target hotplug='off'/></controller>", "Option 'hotplug' is not valid"),
        ("<controller type='pci' index='1' model='pcie-root-port'/>", "unknown PCI controller model 'pcie-root-port' for machine pc"),
        ("<controller type='pci' index='1' model='pci-expander-bus'/>", "PC-NUMA"),
        ("<controller type='pci' index='1' model='pcie-expander-bus'/>", "not supported with this machine type"),
    ] {
        let e = pc_domain(xml).unwrap_err().to_string();
        assert!(e.contains("controller[@type='pci'][@index='1']") && e.contains(says), "{xml}: {e}");
    }
}

#[test]
fn device_addresses_name_pci0_and_bridges() {
    let d = pc_domain(
        "<controller type='pci' index='1' model='pci-bridge'><address type='pci' domain='0x0000' bus='0x00' slot='0x1f' function='0x0'/></controller>\
         <interface type='network'><model type='e1000'/><address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/></interface>\
         <interface type='network'><model type='virtio'/><address type='pci' domain='0x0000' bus='0x01' slot='0x04' function='0x0'/></interface>",
    )
    .unwrap();
    let a: Vec<String> = d
        .request
        .devices
        .iter()
        .filter_map(|x| x.address.as_ref().map(|a| format!("{} {a}", x.id)))
        .collect();
    assert_eq!(a, vec!["net0 pci.0:03.0", "net1 pci.1:04.0"]);
    assert!(d.problems.is_empty(), "{:?}", d.problems);
}

#[test]
fn the_piix3_functions_are_the_chipsets() {
    // IDE and USB index 0 (piix3-uhci or no model) are the PIIX3's: nothing to plan, and
    // libvirt adds no USB device to plan either; the balloon and the cirrus video are planned.
    let d = pc_domain(
        "<disk type='file'><target dev='hda' bus='ide'/></disk>\
         <controller type='ide' index='0'/>\
         <controller type='usb' index='0'/>\
         <graphics type='vnc'/>",
    )
    .unwrap();
    assert_eq!(
        ids_models(&d),
        vec!["video0 cirrus-vga", "balloon0 virtio-balloon-pci"]
    );
    assert!(d
        .devices
        .iter()
        .all(|s| matches!(s.src, Source::Implicit(_))));
    let none = pc_domain("").unwrap();
    assert_eq!(ids_models(&none), vec!["balloon0 virtio-balloon-pci"]);
    // A second USB controller, or another model at index 0, is an ordinary device.
    let d = pc_domain("<controller type='usb' index='0' model='qemu-xhci'/><controller type='usb' index='1' model='piix3-uhci'/>").unwrap();
    assert_eq!(
        ids_models(&d)[..2],
        ["usb0 qemu-xhci", "usb1 piix3-usb-uhci"]
    );
    // SATA controller 0 is an AHCI device on pc (the PIIX3 has none).
    let d = pc_domain("<disk type='file'><target dev='sda' bus='sata'/></disk>").unwrap();
    assert_eq!(ids_models(&d)[0], "sata0 ich9-ahci");
    // libvirt pins the PIIX3 functions.
    let d = pc_domain("<controller type='ide' index='0'><address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></controller><controller type='usb' index='0' model='piix3-uhci'><address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x3'/></controller>").unwrap();
    let msgs: Vec<String> = d.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs.iter().any(|m| m.contains("0:0:1.1")) && msgs.iter().any(|m| m.contains("0:0:1.2")),
        "{msgs:?}"
    );
    assert!(msgs.iter().all(|m| m.contains("PC-ROOT")), "{msgs:?}");
    let pinned = pc_domain("<controller type='usb' index='0' model='piix3-uhci'><address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x2'/></controller>").unwrap();
    assert!(pinned.problems.is_empty());
    let e = pc_domain("<controller type='ide' index='1'/>")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("controller[1]") && e.contains("single IDE"),
        "{e}"
    );
}
