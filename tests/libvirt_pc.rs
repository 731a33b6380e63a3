//! `pc` (i440fx) domains through the command line and a real libvirt 9.0 (`virsh define` +
//! `dumpxml`; no guest is started): `pciplan plan dom.xml --format libvirt` gives every PCI
//! device an address, libvirt moves none of them and adds no PCI controller, and the
//! `pci-root`'s `<target hotplug='off'/>` (PC-ROOT-HP) survives. libvirt's only additions are
//! the PIIX3 functions at 00:01.1 (IDE) and 00:01.2 (USB), slots the pc catalog reserves
//! (PC-ROOT). Planning libvirt's XML again keeps every address and adds nothing.
//!
//! The domains mix `off`, `on` and `any` devices (PC-MIX), virtio, transitional virtio and
//! conventional models, guests that need one bridge, several, and bridges chained behind a
//! bridge (PC-BRIDGE, when `pci.0` is full), and guests with pinned addresses and bridges.

mod common;

use common::cli::run;
use common::libvirt as lv;
use pciplan::libvirt::Domain;

const POLICY_NS: &str = "urn:pciplan:policy:1";

/// A pc domain: `machine`, policy attributes, `(alias, hotplug)` of named devices, devices.
fn domain(
    name: &str,
    machine: &str,
    policy: &str,
    named: &[(&str, &str)],
    devices: &str,
) -> String {
    let named: String = named
        .iter()
        .map(|(a, h)| format!("\n      <pciplan:device alias=\"{a}\" hotplug=\"{h}\"/>"))
        .collect();
    format!(
        "<domain type='kvm'>\n  <name>{name}</name>\n  <memory unit='MiB'>256</memory>\n  <metadata>\n    <pciplan:policy xmlns:pciplan=\"{POLICY_NS}\"{policy}>{named}\n    </pciplan:policy>\n  </metadata>\n  <os>\n    <type arch='x86_64' machine='{machine}'>hvm</type>\n  </os>\n  <devices>\n{devices}  </devices>\n</domain>\n"
    )
}

fn nic(alias: &str, model: &str) -> String {
    format!("    <interface type='network'>\n      <source network='default'/>\n      <model type='{model}'/>\n      <alias name='{alias}'/>\n    </interface>\n")
}

fn disk(alias: &str, dev: &str, extra: &str) -> String {
    format!("    <disk type='file' device='disk'>\n      <source file='/var/tmp/pciplan-{dev}.img'/>\n      <target dev='{dev}' bus='virtio'/>\n      <alias name='{alias}'/>{extra}\n    </disk>\n")
}

fn addr(bus: u8, slot: u8) -> String {
    format!("\n      <address type='pci' domain='0x0000' bus='0x{bus:02x}' slot='0x{slot:02x}' function='0x0'/>")
}

/// The domains: (tag, XML, expected bridges added, root hotplug off after planning).
fn cases() -> Vec<(String, String, usize, bool)> {
    let mut v = Vec::new();
    let mut push = |tag: &str, xml: String, bridges: usize, off: bool| {
        v.push((tag.to_string(), xml, bridges, off))
    };
    // 1. Everything hot-pluggable: pci.0 with root hotplug on, no bridge.
    push(
        "all-on",
        domain(
            "pc-all-on",
            "pc",
            "",
            &[],
            &(nic("ua-net0", "virtio") + &disk("ua-disk0", "vda", "") + &nic("ua-net1", "e1000")),
        ),
        0,
        false,
    );
    // 2. Mixed: the off NIC on pci.0 with root hotplug off, the others behind one bridge.
    push(
        "mixed",
        domain(
            "pc-mixed",
            "pc-i440fx-7.2",
            "",
            &[("ua-net0", "off")],
            &(nic("ua-net0", "virtio")
                + &nic("ua-net1", "e1000")
                + &disk("ua-disk0", "vda", "")
                + "    <graphics type='vnc'/>\n"),
        ),
        1,
        true,
    );
    // 3. Everything off: pci.0 only, no bridge.
    let mut devs = String::new();
    for i in 0..5 {
        devs += &disk(
            &format!("ua-disk{i}"),
            &format!("vd{}", (b'a' + i) as char),
            "",
        );
    }
    devs += "    <memballoon model='none'/>\n";
    push(
        "all-off",
        domain("pc-all-off", "pc", " default-hotplug=\"off\"", &[], &devs),
        0,
        true,
    );
    // 4. Off by default with spare slots: the spares need a bridge once root hotplug is off.
    push(
        "off-spares",
        domain(
            "pc-off-spares",
            "pc",
            " default-hotplug=\"off\" spare-ports=\"3\"",
            &[],
            &(nic("ua-net0", "virtio") + &disk("ua-disk0", "vda", "")),
        ),
        1,
        true,
    );
    // 5. Many hot-pluggable devices with one off: two bridges (31 slots each).
    let mut devs = nic("ua-net0", "virtio");
    for i in 0..40 {
        devs += &nic(
            &format!("ua-nic{i}"),
            if i % 2 == 0 { "virtio" } else { "rtl8139" },
        );
    }
    push(
        "two-bridges",
        domain("pc-two-bridges", "pc", "", &[("ua-net0", "off")], &devs),
        2,
        true,
    );
    // 6. pci.0 full of off disks: the second bridge is chained behind the first.
    let mut devs = String::new();
    for i in 0..29u32 {
        devs += &disk(
            &format!("ua-d{i}"),
            &format!(
                "vd{}{}",
                (b'a' + (i / 26) as u8) as char,
                (b'a' + (i % 26) as u8) as char
            ),
            "",
        );
    }
    for i in 0..35 {
        devs += &nic(&format!("ua-nic{i}"), "virtio");
    }
    let named: Vec<(String, &str)> = (0..29).map(|i| (format!("ua-d{i}"), "off")).collect();
    let named: Vec<(&str, &str)> = named.iter().map(|(a, h)| (a.as_str(), *h)).collect();
    push(
        "chained",
        domain("pc-chained", "pc", "", &named, &devs),
        2,
        true,
    );
    // 7. Pinned: an existing bridge (index 1 at 00:05.0), a device on it and one on pci.0;
    //    root hotplug stays on (the pinned on NIC on pci.0 needs it).
    let devs = "    <controller type='pci' index='0' model='pci-root'/>\n    <controller type='pci' index='1' model='pci-bridge'>\n      <model name='pci-bridge'/>\n      <target chassisNr='1'/>\n      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>\n    </controller>\n".to_string()
        + &nic("ua-net0", "virtio").replace("\n    </interface>", &(addr(0, 7) + "\n    </interface>"))
        + &nic("ua-net1", "e1000").replace("\n    </interface>", &(addr(1, 3) + "\n    </interface>"))
        + &disk("ua-disk0", "vda", "")
        + &nic("ua-net2", "rtl8139");
    push(
        "pinned",
        domain("pc-pinned", "pc", "", &[], &devs),
        0,
        false,
    );
    // 8. Pinned, with an off device: root hotplug goes off, the pinned bridge takes the on
    //    devices (no new bridge).
    push(
        "pinned-off",
        domain("pc-pinned-off", "pc", "", &[("ua-disk0", "off")], &devs),
        0,
        true,
    );
    // 9. The pci-root already has hotplug off, no off device: kept, on devices behind a bridge.
    let devs = "    <controller type='pci' index='0' model='pci-root'>\n      <target hotplug='off'/>\n    </controller>\n".to_string()
        + &nic("ua-net0", "virtio")
        + &disk("ua-disk0", "vda", "");
    push(
        "root-off-kept",
        domain("pc-root-off-kept", "pc", "", &[], &devs),
        1,
        true,
    );
    // 10. Transitional virtio and conventional models with their controllers: SCSI, SATA,
    //     IDE cdrom, USB xhci, sound, watchdog, virtio-serial, rng; some any, one off.
    let devs = nic("ua-net0", "virtio").replace("<model type='virtio'/>", "<model type='virtio-transitional'/>")
        + "    <disk type='file' device='disk'>\n      <source file='/var/tmp/pciplan-sda.img'/>\n      <target dev='sda' bus='scsi'/>\n    </disk>\n"
        + "    <disk type='file' device='disk'>\n      <source file='/var/tmp/pciplan-sdb.img'/>\n      <target dev='sdb' bus='sata'/>\n    </disk>\n"
        + "    <disk type='file' device='cdrom'>\n      <target dev='hdc' bus='ide'/>\n      <readonly/>\n    </disk>\n"
        + "    <controller type='usb' index='0' model='qemu-xhci'>\n      <alias name='ua-usb'/>\n    </controller>\n"
        + "    <controller type='virtio-serial' index='0'/>\n"
        + "    <channel type='unix'>\n      <target type='virtio' name='org.qemu.guest_agent.0'/>\n    </channel>\n"
        + "    <sound model='ich6'>\n      <alias name='ua-snd'/>\n    </sound>\n"
        + "    <watchdog model='i6300esb' action='reset'/>\n"
        + "    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n    </rng>\n"
        + "    <video>\n      <model type='qxl'/>\n    </video>\n";
    push(
        "models",
        domain(
            "pc-models",
            "pc",
            " default-hotplug=\"any\"",
            &[("ua-net0", "off"), ("ua-usb", "on"), ("ua-snd", "on")],
            &devs,
        ),
        1,
        true,
    );
    // 11. More hot-pluggable devices than pci.0 has slots, root hotplug on: one bridge.
    let mut devs = String::new();
    for i in 0..33 {
        devs += &nic(&format!("ua-n{i}"), "virtio");
    }
    push(
        "overflow-on",
        domain("pc-overflow-on", "pc-i440fx-7.2", "", &[], &devs),
        1,
        false,
    );
    // 12. any devices only: pci.0, root hotplug on.
    push(
        "any",
        domain(
            "pc-any",
            "pc",
            " default-hotplug=\"any\"",
            &[],
            &(nic("ua-net0", "e1000")
                + &disk("ua-disk0", "vda", "")
                + "    <video>\n      <model type='vga'/>\n    </video>\n"),
        ),
        0,
        false,
    );
    v
}

/// A device's PIIX3 function, which libvirt adds on pc by itself (PC-ROOT).
fn piix3(a: &str) -> bool {
    a.ends_with("@00:01.1") || a.ends_with("@00:01.2")
}

fn bridges(xml: &str) -> usize {
    xml.matches("model='pci-bridge'>").count()
}

fn root_off(xml: &str) -> bool {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("controller") && n.attribute("model") == Some("pci-root"))
        .any(|n| {
            n.children()
                .any(|t| t.has_tag_name("target") && t.attribute("hotplug") == Some("off"))
        })
}

/// Plans every case with the command line; checks what needs no libvirt.
fn planned(run_tag: &str) -> Vec<(String, String, String)> {
    let dir = std::env::temp_dir().join(format!(
        "pciplan-libvirt-pc-{}-{run_tag}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut out = Vec::new();
    for (tag, xml, want_bridges, want_off) in cases() {
        let file = dir.join(format!("{tag}.xml"));
        std::fs::write(&file, &xml).unwrap();
        let f = file.to_string_lossy().to_string();
        let (code, stdout, stderr) = run(&["plan", &f, "--format", "libvirt"], None).parts();
        assert_eq!(code, 0, "{tag}: {stderr}");
        assert_eq!(
            bridges(&stdout) - bridges(&xml),
            want_bridges,
            "{tag}: bridges added\n{stdout}"
        );
        assert_eq!(
            root_off(&stdout),
            want_off,
            "{tag}: pci-root hotplug\n{stdout}"
        );
        if tag == "chained" {
            // pci.0 is full: the second bridge sits behind the first (libvirt index 1).
            let doc = roxmltree::Document::parse(&stdout).unwrap();
            let behind = doc
                .descendants()
                .filter(|n| n.attribute("model") == Some("pci-bridge"))
                .filter_map(|n| n.children().find(|a| a.has_tag_name("address")))
                .any(|a| a.attribute("bus") == Some("0x01"));
            assert!(behind, "{tag}: no bridge behind a bridge\n{stdout}");
        }
        // Every PCI device has an address; pinned ones kept theirs.
        let dom = Domain::parse(&xml).unwrap();
        let placed = lv::pci_addresses(&stdout).len();
        assert!(
            placed >= dom.request.devices.len(),
            "{tag}: {placed} addresses for {} devices",
            dom.request.devices.len()
        );
        for a in lv::pci_addresses(&xml) {
            assert!(
                lv::pci_addresses(&stdout).contains(&a),
                "{tag}: pinned {a} moved"
            );
        }
        // Planning the output again changes nothing.
        let (code2, again, _) = run(&["plan", "-", "--format", "libvirt"], Some(&stdout)).parts();
        assert_eq!(
            (code2, &again),
            (0, &stdout),
            "{tag}: planning the output again"
        );
        let _ = std::fs::remove_file(&file);
        out.push((tag, xml, stdout));
    }
    out
}

#[test]
fn pc_domains_plan_with_the_command_line() {
    let p = planned("cli");
    assert!(p.len() >= 10, "{} domains", p.len());
}

#[test]
fn pc_domains_define_unchanged_in_libvirt() {
    if let Err(e) = lv::ensure() {
        eprintln!("skipping: no libvirt: {e}");
        return;
    }
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for (tag, input, planned) in planned("define") {
        let dump = match lv::define_dump(&planned, &format!("pc-{tag}")) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{tag}: virsh define: {e}"));
                continue;
            }
        };
        let ours = lv::pci_addresses(&planned);
        let theirs = lv::pci_addresses(&dump);
        let moved: Vec<&String> = ours.iter().filter(|a| !theirs.contains(a)).collect();
        let added: Vec<&String> = theirs
            .iter()
            .filter(|a| !ours.contains(a) && !piix3(a))
            .collect();
        if !moved.is_empty() || !added.is_empty() {
            failures.push(format!("{tag}: libvirt moved {moved:?}, added {added:?}"));
            continue;
        }
        if lv::pci_controllers(&planned) != lv::pci_controllers(&dump) {
            failures.push(format!("{tag}: libvirt added PCI controllers"));
            continue;
        }
        if root_off(&planned) != root_off(&dump) {
            failures.push(format!("{tag}: pci-root hotplug='off' did not survive"));
            continue;
        }
        // libvirt's XML read again: clean, and planning it keeps everything.
        let back = Domain::parse(&dump).unwrap_or_else(|e| panic!("{tag}: libvirt's XML: {e}"));
        let v = back.check();
        if !v.is_empty() {
            failures.push(format!("{tag}: after define, check fails: {v:?}"));
            continue;
        }
        if let Err(e) = lv::replans_unchanged(&tag, &dump, &theirs) {
            failures.push(e);
            continue;
        }
        report.push(format!(
            "{tag}: {} PCI addresses kept, {} bridge(s) added, root hotplug {}",
            ours.len(),
            bridges(&planned) - bridges(&input),
            if root_off(&planned) { "off" } else { "on" }
        ));
    }
    println!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(report.len() >= 10);
}
