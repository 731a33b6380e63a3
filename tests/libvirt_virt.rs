//! aarch64 `virt` domains through the command line and a real libvirt 9.0 (`virsh define` +
//! `dumpxml`, TCG domain type `qemu`; no guest is started): `pciplan plan dom.xml --format
//! libvirt` gives every PCI device an address, libvirt moves none of them and adds no PCI
//! controller (VIRT-LIBVIRT). On `virt` libvirt adds no USB controller, no memballoon and no
//! chipset SATA; a `<serial>` is the pl011 (no PCI). libvirt's XML checks clean and plans
//! again with cost 0 and the same addresses.

mod common;

use common::cli::run;
use common::libvirt as lv;
use pciplan::libvirt::Domain;

const POLICY_NS: &str = "urn:pciplan:policy:1";

/// A virt domain: `machine`, policy attributes, `(alias, hotplug)` of named devices, extra
/// domain XML (cpu/numa), devices.
fn domain(
    name: &str,
    machine: &str,
    policy: &str,
    named: &[(&str, &str)],
    extra: &str,
    devices: &str,
) -> String {
    let named: String = named
        .iter()
        .map(|(a, h)| format!("\n      <pciplan:device alias=\"{a}\" hotplug=\"{h}\"/>"))
        .collect();
    format!(
        "<domain type='qemu'>\n  <name>{name}</name>\n  <memory unit='MiB'>512</memory>\n  <vcpu>2</vcpu>\n  <metadata>\n    <pciplan:policy xmlns:pciplan=\"{POLICY_NS}\"{policy}>{named}\n    </pciplan:policy>\n  </metadata>\n  <os firmware='efi'>\n    <type arch='aarch64' machine='{machine}'>hvm</type>\n  </os>\n{extra}  <devices>\n{devices}  </devices>\n</domain>\n"
    )
}

fn nic(alias: &str, model: &str) -> String {
    format!("    <interface type='network'>\n      <source network='default'/>\n      <model type='{model}'/>\n      <alias name='{alias}'/>\n    </interface>\n")
}

fn disk(alias: &str, dev: &str, extra: &str) -> String {
    format!("    <disk type='file' device='disk'>\n      <source file='/var/tmp/pciplan-{dev}.img'/>\n      <target dev='{dev}' bus='virtio'/>\n      <alias name='{alias}'/>{extra}\n    </disk>\n")
}

fn addr(bus: u8, slot: u8, function: u8, mf: bool) -> String {
    let mf = if mf { " multifunction='on'" } else { "" };
    format!("\n      <address type='pci' domain='0x0000' bus='0x{bus:02x}' slot='0x{slot:02x}' function='0x{function:x}'{mf}/>")
}

const NUMA: &str = "  <cpu mode='custom' match='exact'>\n    <model>cortex-a57</model>\n    <numa>\n      <cell id='0' cpus='0' memory='256' unit='MiB'/>\n      <cell id='1' cpus='1' memory='256' unit='MiB'/>\n    </numa>\n  </cpu>\n";

/// The domains: (tag, XML, PCI-to-PCI bridges expected after planning).
fn cases() -> Vec<(String, String, usize)> {
    let mut v = Vec::new();
    let mut push = |tag: &str, xml: String, bridges: usize| v.push((tag.to_string(), xml, bridges));
    // 1. Everything hot-pluggable: a root port each.
    push(
        "all-on",
        domain(
            "v-all-on",
            "virt",
            "",
            &[],
            "",
            &(nic("ua-net0", "virtio") + &disk("ua-disk0", "vda", "")),
        ),
        0,
    );
    // 2. Mixed, with the conventional e1000 behind a pcie-to-pci-bridge.
    push(
        "mixed",
        domain(
            "v-mixed",
            "virt-7.2",
            "",
            &[("ua-net0", "off")],
            "",
            &(nic("ua-net0", "virtio") + &nic("ua-net1", "e1000") + &disk("ua-disk0", "vda", "")),
        ),
        1,
    );
    // 3. Everything off: integrated endpoints on pcie.0, no root port.
    let mut devs = String::new();
    for i in 0..6u8 {
        devs += &disk(
            &format!("ua-disk{i}"),
            &format!("vd{}", (b'a' + i) as char),
            "",
        );
    }
    push(
        "all-off",
        domain(
            "v-all-off",
            "virt",
            " default-hotplug=\"off\"",
            &[],
            "",
            &devs,
        ),
        0,
    );
    // 4. Off by default with spare ports (hotplug=off ports are not made; spares are on).
    push(
        "off-spares",
        domain(
            "v-off-spares",
            "virt",
            " default-hotplug=\"off\" spare-ports=\"3\"",
            &[],
            "",
            &(nic("ua-net0", "virtio") + &disk("ua-disk0", "vda", "")),
        ),
        0,
    );
    // 5. Everything any, with a graphics (libvirt's video on virt is virtio).
    push(
        "all-any",
        domain(
            "v-all-any",
            "virt",
            " default-hotplug=\"any\"",
            &[],
            "",
            &(nic("ua-net0", "virtio")
                + &disk("ua-disk0", "vda", "")
                + "    <graphics type='vnc'/>\n"),
        ),
        0,
    );
    // 6. Pinned addresses: an integrated NIC and a pinned root port with a disk behind it.
    push(
        "pinned",
        domain(
            "v-pinned",
            "virt",
            "",
            &[("ua-net0", "off")],
            "",
            &(format!("    <interface type='network'>\n      <source network='default'/>\n      <model type='virtio'/>\n      <alias name='ua-net0'/>{}\n    </interface>\n", addr(0, 5, 0, false))
                + &format!("    <controller type='pci' index='1' model='pcie-root-port'>\n      <target chassis='1' port='0x50'/>{}\n    </controller>\n", addr(0, 10, 0, false))
                + &disk("ua-disk0", "vda", &addr(1, 0, 0, false))
                + &nic("ua-net1", "virtio")),
        ),
        0,
    );
    // 7. Multifunction: two off disks pinned as functions 0 and 1 of one pcie.0 slot.
    push(
        "multifunction",
        domain(
            "v-mf",
            "virt",
            " default-hotplug=\"off\"",
            &[],
            "",
            &(disk("ua-disk0", "vda", &addr(0, 3, 0, true))
                + &disk("ua-disk1", "vdb", &addr(0, 3, 1, false))
                + &nic("ua-net0", "virtio")),
        ),
        0,
    );
    // 8. NUMA: a pcie-expander-bus on node 1 with a NIC behind it.
    push(
        "numa",
        domain(
            "v-numa",
            "virt",
            "",
            &[],
            NUMA,
            &("    <controller type='pci' index='1' model='pcie-expander-bus'>\n      <target busNr='200'>\n        <node>1</node>\n      </target>\n    </controller>\n".to_string()
                + "    <controller type='pci' index='2' model='pcie-root-port'>\n      <address type='pci' bus='0x01' slot='0x00' function='0x0'/>\n    </controller>\n"
                + &format!("    <interface type='network'>\n      <source network='default'/>\n      <model type='virtio'/>\n      <alias name='ua-net0'/>{}\n    </interface>\n", addr(2, 0, 0, false))
                + &disk("ua-disk0", "vda", "")),
        ),
        0,
    );
    // 9. Many devices: 40 on NICs need several slots of root ports, conventional ones a bridge.
    let mut devs = String::new();
    for i in 0..40 {
        devs += &nic(
            &format!("ua-nic{i}"),
            if i % 8 == 7 { "e1000" } else { "virtio" },
        );
    }
    push(
        "many",
        domain("v-many", "virt", "", &[("ua-nic0", "off")], "", &devs),
        1,
    );
    // 10. Controllers: USB (qemu-xhci default on virt), SCSI, SATA 0 (a conventional AHCI
    // behind a pcie-to-pci-bridge), virtio-serial.
    push(
        "controllers",
        domain(
            "v-ctrl",
            "virt",
            "",
            &[],
            "",
            "    <controller type='usb'/>\n    <input type='tablet' bus='usb'/>\n    <controller type='scsi' model='virtio-scsi'/>\n    <disk type='file' device='cdrom'>\n      <source file='/var/tmp/pciplan-c.iso'/>\n      <target dev='sda' bus='sata'/>\n    </disk>\n    <serial type='pty'/>\n    <channel type='unix'>\n      <target type='virtio' name='org.qemu.guest_agent.0'/>\n    </channel>\n    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n    </rng>\n    <memballoon model='virtio'/>\n",
        ),
        1,
    );
    // 11. Conventional models only (e1000, rtl8139, i6300esb, ich9 sound): one bridge.
    push(
        "conventional",
        domain(
            "v-conv",
            "virt",
            "",
            &[],
            "",
            &(nic("ua-net0", "e1000")
                + &nic("ua-net1", "rtl8139")
                + "    <watchdog model='i6300esb'/>\n    <sound model='ich9'/>\n"),
        ),
        1,
    );
    // 12. Hotplug=off ports: off devices with root ports kept for them (virtio-vs-pcie.0 mix).
    push(
        "off-and-on",
        domain(
            "v-off-on",
            "virt",
            " default-hotplug=\"off\"",
            &[("ua-net1", "on"), ("ua-disk1", "on")],
            "",
            &(nic("ua-net0", "virtio")
                + &nic("ua-net1", "virtio")
                + &disk("ua-disk0", "vda", "")
                + &disk("ua-disk1", "vdb", "")),
        ),
        0,
    );
    v
}

fn bridges(xml: &str) -> usize {
    xml.matches("model='pcie-to-pci-bridge'").count()
}

/// Plans every case with the command line; checks what needs no libvirt.
fn planned(run_tag: &str) -> Vec<(String, String, String)> {
    let dir = std::env::temp_dir().join(format!(
        "pciplan-libvirt-virt-{}-{run_tag}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut out = Vec::new();
    for (tag, xml, want_bridges) in cases() {
        let file = dir.join(format!("{tag}.xml"));
        std::fs::write(&file, &xml).unwrap();
        let f = file.to_string_lossy().to_string();
        let (code, stdout, stderr) = run(&["plan", &f, "--format", "libvirt"], None).parts();
        assert_eq!(code, 0, "{tag}: {stderr}");
        assert_eq!(bridges(&stdout), want_bridges, "{tag}: bridges\n{stdout}");
        assert!(!stdout.contains("type='sata' index='0'>\n      <address type='pci' domain='0x0000' bus='0x00' slot='0x1f'"), "{tag}: a q35 SATA on virt\n{stdout}");
        let dom = Domain::parse(&xml).unwrap();
        assert_eq!(dom.catalog().machine, "virt", "{tag}");
        let placed = lv::pci_addresses(&stdout).len();
        assert!(
            placed >= dom.request.devices.len(),
            "{tag}: {placed} addresses for {} devices",
            dom.request.devices.len()
        );
        // Pinned addresses stay; a pinned root port may gain multifunction='on' when new
        // ports pack into its slot.
        let kept: Vec<String> = lv::pci_addresses(&stdout)
            .iter()
            .map(|a| a.trim_end_matches("+mf").to_string())
            .collect();
        for a in lv::pci_addresses(&xml) {
            let a = a.trim_end_matches("+mf").to_string();
            assert!(kept.contains(&a), "{tag}: pinned {a} moved");
        }
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
fn virt_domains_plan_with_the_command_line() {
    assert_eq!(planned("cli").len(), 12);
}

#[test]
fn virt_domains_define_unchanged_in_libvirt() {
    if let Err(e) = lv::ensure() {
        eprintln!("skipping: no libvirt: {e}");
        return;
    }
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for (tag, _input, planned) in planned("define") {
        let dump = match lv::define_dump(&planned, &format!("virt-{tag}")) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{tag}: virsh define: {e}"));
                continue;
            }
        };
        let ours = lv::pci_addresses(&planned);
        let theirs = lv::pci_addresses(&dump);
        if ours != theirs {
            failures.push(format!(
                "{tag}: libvirt changed the addresses:\nours   {ours:?}\ntheirs {theirs:?}"
            ));
            continue;
        }
        if lv::pci_controllers(&planned) != lv::pci_controllers(&dump) {
            failures.push(format!("{tag}: libvirt added PCI controllers"));
            continue;
        }
        let (code, _, err) = run(&["check", "-"], Some(&dump)).parts();
        if code != 0 {
            failures.push(format!("{tag}: check of libvirt's XML: {err}"));
            continue;
        }
        if let Err(e) = lv::replans_unchanged(&tag, &dump, &theirs) {
            failures.push(e);
            continue;
        }
        report.push(format!("{tag}: {} PCI addresses kept", ours.len()));
    }
    println!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(report.len(), 12);
}

/// Adoption (O-ADOPT) of an aarch64 domain libvirt addressed itself: `examples/virt-web.xml`
/// (no addresses) defined and dumped, then every device made `off` with `hotplug_off=auto`:
/// the PCIe devices keep their addresses and their root ports flip to `hotplug='off'`; the
/// e1000 on libvirt's `pcie-to-pci-bridge` is the one guest-visible change (R-BRIDGE: a bridge
/// slot is always hot-pluggable); no controller is added; libvirt defines the adopted domain
/// with every address kept, and `check` finds the policy met.
#[test]
fn a_virt_domain_libvirt_addressed_adopts_a_new_policy() {
    if let Err(e) = lv::ensure() {
        eprintln!("skipping: no libvirt: {e}");
        return;
    }
    let example = format!("{}/examples/virt-web.xml", env!("CARGO_MANIFEST_DIR"));
    let xml = std::fs::read_to_string(example).unwrap();
    let dump = lv::define_dump(&xml, "virt-adopt").expect("libvirt defines the example");
    let before = lv::pci_addresses(&dump);
    assert!(before.len() >= 6, "libvirt addressed {before:?}");
    let flags = [
        "--adopt",
        "--default-hotplug",
        "off",
        "--hotplug-off-strategy",
        "auto",
    ];
    let mut args = vec!["plan", "-", "--format", "json"];
    args.extend(flags);
    let (code, out, err) = run(&args, Some(&dump)).parts();
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (plan["cost"].as_u64(), plan["optimal"].as_bool()),
        (Some(0), Some(true))
    );
    let changes = plan["changes"].as_array().unwrap();
    let visible: Vec<&serde_json::Value> = changes
        .iter()
        .filter(|c| c["guest_visible"] == true)
        .collect();
    assert_eq!(visible.len(), 1, "{changes:?}");
    assert_eq!(plan["guest_visible_changes"].as_u64(), Some(1));
    assert!(
        visible[0]["why"].as_str().unwrap().contains("R-BRIDGE"),
        "{:?}",
        visible[0]
    );
    let flips = changes
        .iter()
        .filter(|c| c["change"] == "port_hotplug")
        .count();
    assert!(flips >= 3, "{changes:?}");
    assert!(err.contains("1 guest-visible change"), "{err}");

    let mut args = vec!["plan", "-", "--format", "libvirt"];
    args.extend(flags);
    let (code, adopted, err) = run(&args, Some(&dump)).parts();
    assert_eq!(code, 0, "{err}");
    let again = lv::define_dump(&adopted, "virt-adopted").expect("libvirt defines the adoption");
    assert_eq!(lv::pci_addresses(&adopted), lv::pci_addresses(&again));
    assert_eq!(lv::pci_controllers(&adopted), lv::pci_controllers(&again));
    assert_eq!(lv::pci_controllers(&dump), lv::pci_controllers(&again));
    assert_eq!(again.matches("hotplug='off'").count(), flips, "{again}");
    let (code, _, err) = run(&["check", "-"], Some(&again)).parts();
    assert_eq!(code, 0, "check of the adopted domain: {err}");
}
