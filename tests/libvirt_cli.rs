//! The command line on domain XML: `plan` (detection by name or leading `<`, `--format
//! libvirt`, policy flags) and `check` (every error, exit 0/2). No libvirtd needed.

use std::path::{Path, PathBuf};

mod common;

use common::cli::run;

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/libvirt")
        .join(p)
}

#[test]
fn check_reports_every_address_error() {
    let f = data("check/bad-addresses.xml");
    let o = run(&["check", f.to_str().unwrap()], None);
    assert_eq!(o.code, 2);
    let out = &o.stdout;
    for (who, rule) in [
        ("sata0", "[R-ROOT]"),
        ("ua-fixed", "[D-OFF]"),
        ("ua-nobus", "does not exist"),
        ("ua-onpxb", "[R-PXB]"),
        ("ua-slot", "must be <= 0x1F"),
        ("ua-twin", "double use"),
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(who) && l.contains(rule)),
            "missing {who} {rule} in:\n{out}"
        );
    }
    assert!(o.stderr.contains("7 address error(s)"), "{}", o.stderr);
}

#[test]
fn check_is_clean_on_a_planned_domain() {
    let g = data("guests/g03-mixed.xml");
    let planned = run(&["plan", g.to_str().unwrap(), "--format", "libvirt"], None);
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    let xml = &planned.stdout;
    let o = run(&["check", "-"], Some(xml));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    // Planning the planned XML again changes nothing.
    let again = run(&["plan", "-", "--format", "libvirt"], Some(xml));
    assert_eq!(&again.stdout, xml);
}

#[test]
fn plan_reads_xml_from_stdin_and_flags_win() {
    let g = std::fs::read_to_string(data("guests/g03-mixed.xml")).unwrap();
    let o = run(
        &[
            "plan",
            "-",
            "--format",
            "json",
            "--spare-ports",
            "0",
            "--hotplug",
            "ua-disk0=off",
            "--default-hotplug",
            "off",
        ],
        Some(&g),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let plan: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(plan["cost"], 0, "everything fixed, no spare: {plan}");
    let bad = run(&["plan", "-", "--hotplug", "ua-nosuch=off"], Some(&g));
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("ua-nosuch"));
}

#[test]
fn libvirt_format_needs_xml_and_q35() {
    let json = r#"{"devices":[{"id":"n","model":"virtio-net-pci"}]}"#;
    let o = run(&["plan", "-", "--format", "libvirt"], Some(json));
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("needs a libvirt domain XML"));
    let pc = "<domain type='qemu'><name>x</name><os><type machine='isapc'>hvm</type></os><devices/></domain>";
    let o = run(&["plan", "-", "--format", "libvirt"], Some(pc));
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("unsupported machine 'isapc'"),
        "{}",
        o.stderr
    );
}

#[test]
fn no_dtd_no_entities() {
    let evil = "<?xml version='1.0'?>\n<!DOCTYPE domain [<!ENTITY x 'boom'>]>\n<domain type='qemu'><name>&x;</name><os><type machine='q35'>hvm</type></os></domain>";
    let o = run(&["plan", "-"], Some(evil));
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("not a well-formed XML document"),
        "{}",
        o.stderr
    );
}

#[test]
fn numa_node_needs_guest_cells() {
    let xml = r#"<domain type='qemu'><name>n</name>
  <metadata><pciplan:policy xmlns:pciplan="urn:pciplan:policy:1"><pciplan:device alias="ua-n" numa-node="1"/></pciplan:policy></metadata>
  <os><type machine='q35'>hvm</type></os>
  <devices><interface type='user'><model type='virtio'/><alias name='ua-n'/></interface></devices></domain>"#;
    let o = run(&["plan", "-", "--format", "libvirt"], Some(xml));
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("<cpu><numa>"), "{}", o.stderr);
}

#[test]
fn writer_keeps_everything_else() {
    let xml = "<domain type='qemu'>\n  <!-- keep me -->\n  <name>k</name>\n  <metadata>\n    <app:x xmlns:app='urn:app' a='1'>text &amp; more</app:x>\n  </metadata>\n  <os><type machine='pc-q35-7.2'>hvm</type></os>\n  <devices>\n    <interface type='user' foo='bar'><model type='e1000e'/></interface>\n  </devices>\n</domain>\n";
    let o = run(&["plan", "-", "--format", "libvirt"], Some(xml));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let out = &o.stdout;
    for keep in [
        "<!-- keep me -->",
        "<app:x xmlns:app='urn:app' a='1'>text &amp; more</app:x>",
        "<interface type='user' foo='bar'><model type='e1000e'/>",
        "machine='pc-q35-7.2'",
    ] {
        assert!(out.contains(keep), "lost {keep}:\n{out}");
    }
    assert!(
        out.contains("<memballoon model='virtio'>")
            && out.contains("<controller type='usb' index='0' model='qemu-xhci'>")
    );
    assert!(
        out.contains("<controller type='sata' index='0'>")
            && out.contains("slot='0x1f' function='0x2'")
    );
}

/// The built-in q35 catalog with `edit` applied to its JSON, written to a temporary file.
fn custom_catalog(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let q35 = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/q35.json");
    let mut cat: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(q35).unwrap()).unwrap();
    edit(&mut cat);
    let path = std::env::temp_dir().join(format!("pciplan-{}-{name}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_string(&cat).unwrap()).unwrap();
    path
}

#[test]
fn catalog_flag_reaches_the_libvirt_reader_checker_and_writer() {
    // A machine whose root bus reserves slot 1 as well.
    let cat = custom_catalog("slot1", |c| {
        c["root"]["reserved_slots"] = serde_json::json!([0, 1, 31]);
    });
    let cat = cat.to_str().unwrap();
    let dom = "<domain type='kvm'><name>c</name><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
        <controller type='pci' index='1' model='pcie-root-port'/>\
        <interface type='network'><source network='default'/><model type='virtio'/></interface>\
        </devices></domain>";
    // The reader places the unaddressed root port the way libvirt would on this machine, and
    // the writer numbers the plan: the port goes to 00:02.0, not 00:01.0.
    let builtin = run(&["plan", "-", "--format", "libvirt"], Some(dom));
    assert_eq!(builtin.code, 0, "{}", builtin.stderr);
    let custom = run(
        &["--catalog", cat, "plan", "-", "--format", "libvirt"],
        Some(dom),
    );
    assert_eq!(custom.code, 0, "{}", custom.stderr);
    let port_at = |out: &str, slot: &str| {
        let (_, port) = out
            .split_once("<controller type='pci' index='1' model='pcie-root-port'>")
            .unwrap();
        let port = &port[..port.find("</controller>").unwrap()];
        port.contains(&format!("bus='0x00' slot='{slot}' function='0x0'"))
    };
    assert!(port_at(&builtin.stdout, "0x01"), "{}", builtin.stdout);
    assert!(port_at(&custom.stdout, "0x02"), "{}", custom.stdout);

    // `check` validates the pins against the chosen catalog.
    let pinned = "<domain type='kvm'><name>c</name><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
        <interface type='network'><alias name='ua-nic'/><model type='e1000'/>\
        <address type='pci' domain='0' bus='0' slot='1' function='0'/></interface>\
        </devices></domain>";
    assert_eq!(run(&["check", "-"], Some(pinned)).code, 0);
    let o = run(&["--catalog", cat, "check", "-"], Some(pinned));
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(o.stdout.contains("ua-nic"), "{}", o.stdout);
}

#[test]
fn catalog_without_a_controller_model_refuses_it_in_a_domain() {
    let cat = custom_catalog("nodmi", |c| {
        let ctrls = c["controllers"].as_array_mut().unwrap();
        ctrls.retain(|m| m["model"] != "i82801b11-bridge");
    });
    let dom = "<domain type='kvm'><name>c</name><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
        <controller type='pci' index='1' model='dmi-to-pci-bridge'/>\
        </devices></domain>";
    assert_eq!(
        run(&["plan", "-", "--format", "libvirt"], Some(dom)).code,
        0
    );
    let o = run(
        &[
            "--catalog",
            cat.to_str().unwrap(),
            "plan",
            "-",
            "--format",
            "libvirt",
        ],
        Some(dom),
    );
    assert_eq!(o.code, 2);
    assert!(
        o.stderr
            .contains("unknown PCI controller model 'dmi-to-pci-bridge'"),
        "{}",
        o.stderr
    );
}

#[test]
fn json_plan_carries_the_readers_notes() {
    // A second virtio GPU (QEMU can never hot-unplug it) under the implicit default 'on' is
    // placed as libvirt places it, and the plan says so; a plan without notes has no field.
    let two_gpus = "<domain type='kvm'><name>n</name><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
                    <video><model type='virtio'/></video><video><model type='virtio'/></video></devices></domain>";
    let o = run(&["plan", "-", "--format", "json"], Some(two_gpus));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let notes = v["notes"].as_array().expect("notes in the JSON plan");
    assert_eq!(notes.len(), 1, "{notes:?}");
    let note = notes[0].as_str().unwrap();
    assert!(note.contains("virtio-gpu-pci"), "{note}");
    assert!(o.stderr.contains(note), "{}", o.stderr);
    // The plan reads back as a plan.
    assert!(serde_json::from_str::<pciplan::Plan>(&o.stdout).is_ok());
    let adopt = run(
        &["plan", "-", "--format", "json", "--adopt"],
        Some(two_gpus),
    );
    assert_eq!(adopt.code, 0, "{}", adopt.stderr);
    assert!(adopt.stdout.contains("\"notes\""), "{}", adopt.stdout);

    let one_gpu = two_gpus.replacen("<video><model type='virtio'/></video>", "", 1);
    let o = run(&["plan", "-", "--format", "json"], Some(&one_gpu));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(!o.stdout.contains("\"notes\""), "{}", o.stdout);
}

#[test]
fn virtio_iommu_off_the_root_bus_is_explained_by_model() {
    // QEMU accepts virtio-iommu-pci only on pcie.0: a policy wanting it on a port says so,
    // with the model, where it can go, and a hint (not a generic "no place").
    let xml = "<domain type='kvm'><name>i</name><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
               <iommu model='virtio'/></devices></domain>";
    for (args, rule, hint) in [
        (
            vec!["--hotplug", "iommu0=on"],
            "[D-ON]",
            "set hotplug 'any'",
        ),
        (
            vec!["--default-hotplug", "off", "--hotplug-off-strategy", "port"],
            "[D-OFF]",
            "allow hotplug_off=auto",
        ),
    ] {
        let mut a = vec!["plan", "-"];
        a.extend(args.iter().copied());
        let o = run(&a, Some(xml));
        assert_eq!(o.code, 1, "{args:?}: {}{}", o.stdout, o.stderr);
        let e = &o.stderr;
        for says in [
            "virtio-iommu-pci",
            "only on the root bus",
            "pcie.0",
            rule,
            hint,
        ] {
            assert!(e.contains(says), "{args:?}: no '{says}' in {e}");
        }
    }
    // Under auto it is integrated on pcie.0, as libvirt puts it.
    let o = run(
        &[
            "plan",
            "-",
            "--default-hotplug",
            "off",
            "--hotplug-off-strategy",
            "auto",
        ],
        Some(xml),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
}
