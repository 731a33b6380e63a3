//! Adoption (`--adopt`, O-ADOPT) of domains whose every address libvirt chose, through a real
//! libvirt 9.0 (`virsh define` + `dumpxml --inactive`; no guest is started).
//!
//! Each domain is written without a policy, without addresses and without PCI controllers
//! (a small one of our own, and guests of `tests/data/libvirt/guests` and `examples/` with
//! their policy metadata and addresses stripped). libvirt defines it and chooses every
//! address; its `dumpxml` is the existing guest. That is adopted under new policies, the
//! result defined again and dumped, and then:
//! - libvirt kept every address of the adopted XML and added no PCI controller;
//! - the adoption itself added none (cost 0): libvirt's layout has room for each policy;
//! - the policy holds in what libvirt returns (`check` finds nothing; the ports the plan
//!   flipped carry `<target hotplug='off'/>`);
//! - every device the plan does not report as moved has the address libvirt gave it;
//! - the guest-visible changes are as few as each policy allows: none when the devices that
//!   become `off` are PCIe devices on root ports of their own and `hotplug_off` is `auto` or
//!   `port` (their ports flip), one per device with `integrated` (each moves to `pcie.0`),
//!   one per conventional device on libvirt's `pcie-pci-bridge` that becomes `off` (a bridge
//!   slot is always hot-pluggable, R-BRIDGE).
//!
//! Observed with libvirt 9.0 and QEMU 7.2: libvirt puts its root ports at 00:01.0-00:01.7 and
//! then 00:02.x (the first of each slot with `multifunction='on'`), one PCIe device behind
//! each, conventional devices on a `pcie-pci-bridge` behind a root port of its own, the SATA
//! controller at 00:1f.2, a `qemu-xhci` and a virtio balloon it adds by itself on ports, and
//! leaves a root port empty for hotplug (the small domain: 00:01.7); video (`qxl`) and
//! `ich9` sound go on `pcie.0` (00:01.0, 00:1b.0). Every adopted domain, with or without
//! added controllers, came back from libvirt with the addresses pciplan wrote, and each
//! domain's layout met the default policy (`on`) except for a device on `pcie.0` that QEMU
//! can unplug elsewhere (`ich9` sound): adopted without a policy, it comes back byte for byte.
//!
//! libvirt's layouts are also booted in QEMU 7.2 with SeaBIOS, before and after the devices on
//! its root ports and bridge become `off` under `auto` (`common/adoption.rs`): in each of the
//! 14 domains QEMU can run (one holds a `vhost-vsock-pci`, which cannot run here), no device
//! the plan does not report changed its path or bus number in `query-pci`, only the
//! conventional devices moved (to `pcie.0`; the emptied bridge keeps its bus number), and
//! `device_del` is refused for every `off` device.
//!
//! Without libvirt (or QEMU, for the last test) the tests skip and say so, unless
//! `PCIPLAN_REQUIRE_LIBVIRT=1` (`PCIPLAN_REQUIRE_QEMU=1`), as in CI, where they fail.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use common::libvirt as lv;
use common::qemu::{SINGLE_INSTANCE_MODELS, TESTABLE_MODELS};
use pciplan::libvirt::{Domain, Overrides, ReadOptions};
use pciplan::{Address, BusKind, ChangeKind, Hotplug, OffStrategy, Plan, PolicyPatch};

/// A small domain of our own: a virtio NIC, two virtio disks, an `e1000`, a virtio-scsi
/// controller; every device with a user alias, so the command line can name them.
const SMALL: &str = r#"<domain type='qemu'>
  <name>small</name>
  <memory unit='KiB'>262144</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <interface type='user'><model type='virtio'/><alias name='ua-net0'/></interface>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/var/lib/libvirt/images/vda.qcow2'/><target dev='vda' bus='virtio'/><alias name='ua-disk0'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/var/lib/libvirt/images/vdb.qcow2'/><target dev='vdb' bus='virtio'/><alias name='ua-disk1'/></disk>
    <interface type='user'><model type='e1000'/><alias name='ua-nic1'/></interface>
    <controller type='scsi' model='virtio-scsi'><alias name='ua-scsi0'/></controller>
  </devices>
</domain>
"#;

/// The repository's domains this test has libvirt define without addresses.
const REPO_DOMAINS: &[&str] = &[
    "examples/web-01.xml",
    "tests/data/libvirt/guests/g02-all-off.xml",
    "tests/data/libvirt/guests/g03-mixed.xml",
    "tests/data/libvirt/guests/g04-legacy-on.xml",
    "tests/data/libvirt/guests/g05-transitional.xml",
    "tests/data/libvirt/guests/g07-auto-any.xml",
    "tests/data/libvirt/guests/g08-video-sound.xml",
    "tests/data/libvirt/guests/g13-partly-addressed.xml",
    "tests/data/libvirt/guests/g14-many-disks.xml",
    "tests/data/libvirt/guests/g15-many-off.xml",
    "tests/data/libvirt/guests/g19-misc-virtio.xml",
    "tests/data/libvirt/guests/g20-fs-shmem.xml",
    "tests/data/libvirt/guests/g21-nics.xml",
    "tests/data/libvirt/guests/g23-existing-bridge.xml",
];

/// `xml` without the pciplan policy, without any PCI address and without PCI controllers
/// other than the root: libvirt will choose all of them.
fn strip(xml: &str) -> String {
    let doc = roxmltree::Document::parse(xml).expect("well-formed XML");
    let mut cut: Vec<std::ops::Range<usize>> = doc
        .descendants()
        .filter(|n| {
            n.has_tag_name("metadata")
                || (n.has_tag_name("address") && n.attribute("type") == Some("pci"))
                || (n.has_tag_name("controller")
                    && n.attribute("type") == Some("pci")
                    && !matches!(n.attribute("model"), Some("pcie-root")))
        })
        .map(|n| n.range())
        .collect();
    cut.sort_by_key(|r| std::cmp::Reverse(r.start));
    let mut out = xml.to_string();
    let mut last = usize::MAX;
    for r in cut {
        // An element inside one already cut (an address inside a controller) is gone.
        if r.end <= last {
            out.replace_range(r.clone(), "");
            last = r.start;
        }
    }
    out
}

/// The existing guest: `xml` stripped, defined by libvirt, dumped.
fn libvirt_defined(xml: &str, tag: &str) -> String {
    let dump = lv::define_dump(&strip(xml), tag).unwrap_or_else(|e| panic!("{tag}: define: {e}"));
    assert!(
        !lv::pci_addresses(&dump).is_empty(),
        "{tag}: libvirt gave no PCI address"
    );
    dump
}

/// Devices of the existing guest by where libvirt put them.
struct Places {
    /// PCIe devices alone on a root port.
    on_ports: Vec<String>,
    /// Conventional devices on a `pcie-pci-bridge`.
    on_bridges: Vec<String>,
    /// Devices on `pcie.0` that QEMU can hot-unplug elsewhere.
    on_root: Vec<String>,
}

fn libvirt_places(dom: &Domain) -> Places {
    let req = &dom.request;
    let cat = dom.catalog();
    let model_of = |bus: &str| {
        req.controllers
            .iter()
            .find(|c| c.id == bus)
            .map(|c| c.model.as_str())
    };
    let (mut on_ports, mut on_bridges, mut on_root) = (Vec::new(), Vec::new(), Vec::new());
    for d in &req.devices {
        let Some(a) = &d.address else { continue };
        let alone = req
            .devices
            .iter()
            .filter(|o| o.address.as_ref().is_some_and(|b| b.bus == a.bus))
            .count()
            == 1;
        let model = cat.device(&d.model);
        let kind = model.map(|m| m.kind);
        if a.bus == "pcie.0" && model.is_some_and(|m| m.hotpluggable && !m.root_only) {
            on_root.push(d.id.to_string());
        }
        match model_of(&a.bus) {
            Some("pcie-root-port") if alone && kind == Some(BusKind::Pcie) => {
                on_ports.push(d.id.to_string())
            }
            Some("pcie-pci-bridge") => on_bridges.push(d.id.to_string()),
            _ => {}
        }
    }
    Places {
        on_ports,
        on_bridges,
        on_root,
    }
}

/// `setting` for `targets`, `any` for every other device, `hotplug_off` as given.
fn overrides(targets: &[String], setting: Hotplug, strategy: OffStrategy) -> Overrides {
    Overrides {
        policy: PolicyPatch {
            default_hotplug: Some(Hotplug::Any),
            hotplug_off: Some(strategy),
            ..Default::default()
        },
        hotplug: targets.iter().map(|t| (t.clone(), setting)).collect(),
    }
}

fn addresses(dom: &Domain) -> BTreeMap<pciplan::Text, Address> {
    dom.request
        .devices
        .iter()
        .filter_map(|d| Some((d.id.clone(), d.address.clone()?)))
        .collect()
}

/// `<target hotplug=...>` of `<controller type='pci' index='N'>`, by `pci.N`.
fn port_hotplug(xml: &str) -> BTreeMap<String, Option<String>> {
    let doc = roxmltree::Document::parse(xml).expect("well-formed XML");
    doc.descendants()
        .filter(|n| n.has_tag_name("controller") && n.attribute("type") == Some("pci"))
        .filter_map(|n| {
            let index = n.attribute("index")?;
            let target = n.children().find(|c| c.has_tag_name("target"));
            Some((
                format!("pci.{index}"),
                target
                    .and_then(|t| t.attribute("hotplug"))
                    .map(String::from),
            ))
        })
        .collect()
}

/// Adopts `dump` (libvirt's existing guest) with `ov`, defines the result, checks what
/// libvirt returns; gives the plan and libvirt's XML.
fn adopt_through_libvirt(dump: &str, ov: Overrides, tag: &str) -> (Plan, String) {
    let existing = Domain::parse(dump).unwrap_or_else(|e| panic!("{tag}: {e}"));
    let opts = ReadOptions {
        overrides: ov,
        ..ReadOptions::default()
    };
    let dom = Domain::parse_with(dump, &opts).unwrap_or_else(|e| panic!("{tag}: {e}"));
    let plan = dom.adopt().unwrap_or_else(|e| panic!("{tag}: adopt: {e}"));
    assert!(plan.optimal, "{tag}");
    let written = dom
        .write(&plan)
        .unwrap_or_else(|e| panic!("{tag}: write: {e}"));
    let again = lv::define_dump(&written, tag).unwrap_or_else(|e| panic!("{tag}: define: {e}"));
    assert_eq!(
        lv::pci_addresses(&written),
        lv::pci_addresses(&again),
        "{tag}: libvirt changed addresses"
    );
    assert_eq!(
        lv::pci_controllers(&again),
        lv::pci_controllers(&written),
        "{tag}: libvirt added PCI controllers"
    );
    assert_eq!(
        lv::pci_controllers(&written),
        lv::pci_controllers(dump) + plan.cost as usize,
        "{tag}: the plan's cost is what it added"
    );
    let back = Domain::parse(&again).unwrap_or_else(|e| panic!("{tag}: libvirt's XML: {e}"));
    assert_eq!(back.check(), Vec::new(), "{tag}: the policy does not hold");
    let changes = plan
        .changes
        .clone()
        .expect("an adopted plan lists its changes");
    let (before, after) = (addresses(&existing), addresses(&back));
    for (id, a) in &before {
        let moved = changes
            .iter()
            .any(|c| c.id == id && c.change == ChangeKind::Moved);
        assert_eq!(
            after.get(id) != Some(a),
            moved,
            "{tag}: {id} at {a}, now {:?}; reported moved: {moved}",
            after.get(id)
        );
    }
    let ports = port_hotplug(&again);
    for c in changes
        .iter()
        .filter(|c| c.change == ChangeKind::PortHotplug)
    {
        let want = c.to.as_deref().expect("a setting");
        let have = ports.get(&c.id).cloned().flatten();
        assert_eq!(
            have.as_deref().unwrap_or("on"),
            want,
            "{tag}: port {} in libvirt's XML",
            c.id
        );
    }
    (plan, again)
}

fn visible(plan: &Plan) -> usize {
    plan.guest_visible_changes
        .expect("an adopted plan counts its changes") as usize
}

fn flips(plan: &Plan) -> usize {
    let changes = plan.changes.as_deref().unwrap_or_default();
    changes
        .iter()
        .filter(|c| c.change == ChangeKind::PortHotplug)
        .count()
}

/// The new policies on one libvirt-defined domain; returns a line for the report.
fn adopt_under_new_policies(xml: &str, tag: &str) -> String {
    let dump = libvirt_defined(xml, tag);
    let dom = Domain::parse(&dump).unwrap_or_else(|e| panic!("{tag}: {e}"));
    let p = libvirt_places(&dom);
    let (off, on) = (Hotplug::Off, Hotplug::On);
    // Adopted as it is (every device `any`): nothing changes.
    let (plan, _) = adopt_through_libvirt(&dump, overrides(&[], off, OffStrategy::Auto), tag);
    assert_eq!(plan.changes.as_deref(), Some(&[][..]), "{tag}: as it is");
    // Without a policy every device is `on` (the default): libvirt's layout meets it, unless
    // a device QEMU can unplug sits on pcie.0; then the domain comes back byte for byte.
    if p.on_root.is_empty() {
        let plan = dom.adopt().unwrap_or_else(|e| panic!("{tag}: adopt: {e}"));
        assert_eq!(
            plan.changes.as_deref(),
            Some(&[][..]),
            "{tag}: default policy"
        );
        assert_eq!(
            dom.write(&plan).expect("writes"),
            dump,
            "{tag}: not byte for byte"
        );
    }
    let mut counts = Vec::new();
    // The devices on root ports off: their ports flip, nothing the guest sees changes.
    if !p.on_ports.is_empty() {
        for strategy in [OffStrategy::Auto, OffStrategy::Port] {
            let (plan, _) =
                adopt_through_libvirt(&dump, overrides(&p.on_ports, off, strategy), tag);
            assert_eq!(visible(&plan), 0, "{tag} {strategy:?}: {:#?}", plan.changes);
            assert_eq!(flips(&plan), p.on_ports.len(), "{tag} {strategy:?}");
            assert_eq!(plan.cost, 0, "{tag} {strategy:?}");
        }
        // With integrated, each moves to pcie.0 (where libvirt left room for a few).
        let few: Vec<String> = p.on_ports.iter().take(6).cloned().collect();
        let ov = overrides(&few, off, OffStrategy::Integrated);
        let (plan, _) = adopt_through_libvirt(&dump, ov, tag);
        assert_eq!(
            visible(&plan),
            few.len(),
            "{tag} integrated: {:#?}",
            plan.changes
        );
        assert_eq!((flips(&plan), plan.cost), (0, 0), "{tag} integrated");
        counts.push(format!("{} on root ports", p.on_ports.len()));
    }
    // Conventional devices on libvirt's bridge off: each must move (R-BRIDGE).
    if !p.on_bridges.is_empty() {
        let ov = overrides(&p.on_bridges, off, OffStrategy::Auto);
        let (plan, _) = adopt_through_libvirt(&dump, ov, tag);
        assert_eq!(
            visible(&plan),
            p.on_bridges.len(),
            "{tag} bridge: {:#?}",
            plan.changes
        );
        assert_eq!(plan.cost, 0, "{tag} bridge");
        counts.push(format!("{} on its bridge", p.on_bridges.len()));
    }
    // Devices on pcie.0 on: each must move behind something hot-pluggable.
    if !p.on_root.is_empty() {
        let ov = overrides(&p.on_root, on, OffStrategy::Auto);
        let (plan, _) = adopt_through_libvirt(&dump, ov, tag);
        assert_eq!(
            visible(&plan),
            p.on_root.len(),
            "{tag} root: {:#?}",
            plan.changes
        );
        counts.push(format!(
            "{} on pcie.0 (moved, {} controllers added)",
            p.on_root.len(),
            plan.cost
        ));
    }
    assert!(!counts.is_empty(), "{tag}: nothing to adopt");
    format!(
        "{tag}: {} PCI addresses from libvirt; devices: {}",
        lv::pci_addresses(&dump).len(),
        counts.join(", ")
    )
}

#[test]
fn libvirt_defined_domains_adopt_a_new_policy_and_define_unchanged() {
    if let Err(e) = lv::ensure() {
        eprintln!("skipping: no libvirt: {e}");
        return;
    }
    let start = Instant::now();
    let mut report = vec![adopt_under_new_policies(SMALL, "small")];
    for file in REPO_DOMAINS {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let xml = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let tag = path.file_stem().unwrap().to_string_lossy().to_string();
        report.push(adopt_under_new_policies(&xml, &tag));
    }
    eprintln!("{}", report.join("\n"));
    eprintln!(
        "{} domains in {:.1} s",
        report.len(),
        start.elapsed().as_secs_f64()
    );
}

/// The command line as an operator runs it on `virsh dumpxml`'s output: the NIC and a disk
/// become `off` by alias, `hotplug_off` `auto`: no change the guest sees, their two ports
/// flip, and libvirt defines the result as written.
#[test]
fn the_command_line_adopts_a_dumped_domain() {
    if let Err(e) = lv::ensure() {
        eprintln!("skipping: no libvirt: {e}");
        return;
    }
    let dump = libvirt_defined(SMALL, "cli");
    let args = [
        "plan",
        "-",
        "--adopt",
        "--format",
        "libvirt",
        "--hotplug-off-strategy",
        "auto",
        "--hotplug",
        "ua-net0=off",
        "--hotplug",
        "ua-disk0=off",
    ];
    let (code, xml, err) = common::cli::run(&args, Some(&dump)).parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("0 guest-visible changes, 0 controllers added, 2 ports flipped"),
        "{err}"
    );
    assert_eq!(xml.matches("hotplug='off'").count(), 2, "{xml}");
    let again = lv::define_dump(&xml, "cli-adopted").expect("libvirt defines it");
    assert_eq!(lv::pci_addresses(&again), lv::pci_addresses(&dump));
    assert_eq!(lv::pci_controllers(&again), lv::pci_controllers(&dump));
    let back = Domain::parse(&again).expect("reads");
    assert_eq!(back.check(), Vec::new());
    let ports = port_hotplug(&again);
    assert_eq!(
        ports
            .values()
            .filter(|h| h.as_deref() == Some("off"))
            .count(),
        2,
        "{ports:?}"
    );
    // The same through the library: the JSON plan counts no guest-visible change.
    let (code, json, err) = common::cli::run(
        &[&args[..3], &["--format", "json"], &args[5..]].concat(),
        Some(&dump),
    )
    .parts();
    assert_eq!(code, 0, "{err}");
    let plan: Plan = serde_json::from_str(&json).expect("a plan");
    assert_eq!(plan.guest_visible_changes, Some(0));
}

/// libvirt's own layouts in the real guest: for each domain libvirt addressed, the existing
/// guest (its dump, planned as it is) and its adoption with the devices on root ports `off`
/// under `auto` are booted in QEMU with SeaBIOS and compared in `query-pci`
/// (`common/adoption.rs`): no device the plan does not report changes its path or bus
/// number, and `device_del` is refused for every `off` device. Needs libvirt and QEMU.
#[test]
fn libvirt_layouts_adopted_keep_what_the_guest_sees() {
    if let Err(e) = lv::ensure() {
        eprintln!("skipping: no libvirt: {e}");
        return;
    }
    if !common::qemu::qemu_or_skip() {
        return;
    }
    let mut domains = vec![("small".to_string(), SMALL.to_string())];
    for file in REPO_DOMAINS {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let xml = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        domains.push((path.file_stem().unwrap().to_string_lossy().to_string(), xml));
    }
    let start = Instant::now();
    let mut report = Vec::new();
    for (tag, xml) in &domains {
        let dump = libvirt_defined(xml, tag);
        let dom = Domain::parse(&dump).unwrap_or_else(|e| panic!("{tag}: {e}"));
        let runs = |m: &str| TESTABLE_MODELS.contains(&m) || SINGLE_INSTANCE_MODELS.contains(&m);
        if let Some(d) = dom.request.devices.iter().find(|d| !runs(&d.model)) {
            eprintln!("{tag}: not booted: {} cannot run here", d.model);
            continue;
        }
        let p = libvirt_places(&dom);
        let mut before = dom.request.clone();
        for d in &mut before.devices {
            d.hotplug = Some(Hotplug::Any);
        }
        let targets = [p.on_ports.clone(), p.on_bridges.clone()].concat();
        let opts = ReadOptions {
            overrides: overrides(&targets, Hotplug::Off, OffStrategy::Auto),
            ..ReadOptions::default()
        };
        let after = Domain::parse_with(&dump, &opts).unwrap_or_else(|e| panic!("{tag}: {e}"));
        let c = common::adoption::compare(tag, &before, &after.request)
            .unwrap_or_else(|e| panic!("{tag}: adopt: {e}"));
        assert_eq!(
            c.visible,
            p.on_bridges.len(),
            "{tag}: only the bridged devices move"
        );
        report.push(format!(
            "{tag}: {} devices in QEMU, {} off ({} ports flipped, {} moved off the bridge)",
            c.devices,
            targets.len(),
            c.flips,
            c.visible
        ));
    }
    eprintln!("{}", report.join("\n"));
    eprintln!(
        "{} libvirt layouts booted before and after in {:.1} s",
        report.len(),
        start.elapsed().as_secs_f64()
    );
}
