//! The hooks of management stacks through the command line (docs/formats.md "Hooks of
//! management stacks"), on samples written the way the stacks write them:
//!
//! - `tests/data/hooks/kubevirt/domain.xml`: a domain as KubeVirt's virt-launcher hands it to
//!   `onDefineDomain` (Go's XML encoder: double quotes, explicit end tags, no trailing newline;
//!   `ua-` aliases on the devices the VMI names), with VMIs as the API server returns them
//!   (compact JSON, status and all) carrying pciplan's annotations or not;
//! - `tests/data/hooks/vdsm/domain.xml`: a domain as oVirt's engine sends it to VDSM, with the
//!   PCI addresses oVirt stored from the VM's last run, 16 root ports, and one NIC added since
//!   (no address yet).
//!
//! The planned domains are defined in a real libvirt, which must keep every address.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::libvirt as lv;
use pciplan::hooks::vdsm;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/hooks")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(data(rel)).unwrap()
}

fn kubevirt_hook(program: &Path, vmi: &str, domain: &str) -> Output {
    Command::new(program)
        .args(["--vmi", vmi, "--domain", domain])
        .output()
        .unwrap()
}

fn pciplan_kubevirt(vmi: &str, domain: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pciplan"))
        .args(["hook", "kubevirt", "--vmi", vmi, "--domain", domain])
        .output()
        .unwrap()
}

/// The `<address type='pci'>` of the device with this alias: (bus, slot, function).
fn address_of(xml: &str, alias: &str) -> Option<(u32, u32, u32)> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    let dev = doc.descendants().find(|n| {
        n.children()
            .any(|c| c.has_tag_name("alias") && c.attribute("name") == Some(alias))
    })?;
    let a = dev
        .children()
        .find(|c| c.has_tag_name("address") && c.attribute("type") == Some("pci"))?;
    let num = |k: &str| {
        let v = a.attribute(k).unwrap_or("0");
        match v.strip_prefix("0x") {
            Some(h) => u32::from_str_radix(h, 16).unwrap(),
            None => v.parse().unwrap(),
        }
    };
    Some((num("bus"), num("slot"), num("function")))
}

/// The `<controller type='pci'>` with this index: its model and its `<target hotplug>`.
fn port(xml: &str, index: u32) -> (String, Option<String>) {
    let doc = roxmltree::Document::parse(xml).unwrap();
    let c = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("controller")
                && n.attribute("type") == Some("pci")
                && n.attribute("index") == Some(index.to_string().as_str())
        })
        .unwrap_or_else(|| panic!("no PCI controller {index}"));
    let hotplug = c
        .children()
        .find(|t| t.has_tag_name("target"))
        .and_then(|t| t.attribute("hotplug"))
        .map(str::to_string);
    (c.attribute("model").unwrap().to_string(), hotplug)
}

/// The text without its `<address type='pci' .../>` elements (and the white space before
/// them).
fn without_pci_addresses(xml: &str) -> String {
    let mut out = String::new();
    let mut rest = xml;
    while let Some(at) = rest.find("<address type='pci'") {
        let end = rest[at..].find("/>").map(|e| at + e + 2).unwrap();
        out.push_str(rest[..at].trim_end_matches([' ', '\n']));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Whether the device can be unplugged where it is: behind a root port that allows it.
fn hot_pluggable(xml: &str, alias: &str) -> bool {
    let (bus, _, _) = address_of(xml, alias).unwrap_or_else(|| panic!("{alias} has no address"));
    if bus == 0 {
        return false;
    }
    let (model, hotplug) = port(xml, bus);
    model == "pcie-root-port" && hotplug.as_deref() != Some("off")
}

/// Defines the domain in the real libvirt and checks that libvirt keeps every address and
/// adds no controller. KubeVirt and oVirt write `type="kvm"`; the test libvirt may lack KVM.
fn defines_unchanged(xml: &str, tag: &str) -> bool {
    if let Err(e) = lv::ensure() {
        eprintln!("skipping the libvirt part: {e}");
        return false;
    }
    let xml = xml.replacen("type=\"kvm\"", "type=\"qemu\"", 1);
    let dump = lv::define_dump(&xml, tag).unwrap_or_else(|e| panic!("virsh define: {e}"));
    assert_eq!(lv::pci_addresses(&xml), lv::pci_addresses(&dump), "{tag}");
    assert_eq!(
        lv::pci_controllers(&xml),
        lv::pci_controllers(&dump),
        "{tag}"
    );
    true
}

#[test]
fn kubevirt_without_annotations_passes_the_domain_through_byte_for_byte() {
    let domain = read("kubevirt/domain.xml");
    let out = pciplan_kubevirt(&read("kubevirt/vmi-plain.json"), &domain);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, domain.as_bytes());
    assert!(out.stderr.is_empty());
}

#[test]
fn kubevirt_policy_from_annotations_is_met_and_defines_unchanged() {
    let domain = read("kubevirt/domain.xml");
    let out = pciplan_kubevirt(&read("kubevirt/vmi-policy.json"), &domain);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let planned = String::from_utf8(out.stdout).unwrap();
    assert_ne!(planned, domain);
    // pciplan.io/hotplug: "default=off,ua-rootdisk=off,ua-datadisk=any"; the policy's
    // default_hotplug "on" for the rest.
    assert!(!hot_pluggable(&planned, "ua-default"));
    assert!(!hot_pluggable(&planned, "ua-rootdisk"));
    for alias in ["ua-storage", "ua-cloudinitdisk", "ua-tablet"] {
        assert!(hot_pluggable(&planned, alias), "{alias}");
    }
    assert!(address_of(&planned, "ua-datadisk").is_some());
    // Everything in the input is still there, in the same words: only addresses (and the
    // controllers and policy after the last device) were added.
    let kept = without_pci_addresses(&planned);
    for line in domain.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(kept.contains(line), "lost: {line}");
    }
    // Planned again under its own recorded policy, it changes nothing.
    let again = Command::new(env!("CARGO_BIN_EXE_pciplan"))
        .args(["plan", "-", "--format", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(planned.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(again.status.success());
    let plan: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        plan["cost"], 0,
        "re-planning the planned domain adds nothing"
    );
    defines_unchanged(&planned, "kubevirt-policy");
}

#[test]
fn on_define_domain_name_behaves_as_the_hook() {
    let dir = std::env::temp_dir().join(format!("pciplan-hook-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("onDefineDomain");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_pciplan"), &link).unwrap();
    let domain = read("kubevirt/domain.xml");
    for vmi in ["kubevirt/vmi-policy.json", "kubevirt/vmi-plain.json"] {
        let vmi = read(vmi);
        let by_name = kubevirt_hook(&link, &vmi, &domain);
        let by_command = pciplan_kubevirt(&vmi, &domain);
        assert!(by_name.status.success());
        assert_eq!(by_name.stdout, by_command.stdout);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kubevirt_unmet_policy_fails_with_rule_and_devices() {
    let domain = read("kubevirt/domain.xml");
    let out = pciplan_kubevirt(&read("kubevirt/vmi-unmet.json"), &domain);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing to define");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot be met") && err.contains("[R-"),
        "{err}"
    );
}

#[test]
fn kubevirt_bad_annotation_or_vmi_leaves_the_domain_as_it_is() {
    let domain = read("kubevirt/domain.xml");
    for vmi in [read("kubevirt/vmi-typo.json"), "not json".to_string()] {
        let out = pciplan_kubevirt(&vmi, &domain);
        assert!(out.status.success());
        assert_eq!(out.stdout, domain.as_bytes());
        assert!(String::from_utf8_lossy(&out.stderr).contains("left unchanged"));
    }
}

#[test]
fn kubevirt_reads_at_files() {
    let out = Command::new(env!("CARGO_BIN_EXE_pciplan"))
        .arg("hook")
        .arg("kubevirt")
        .arg(format!(
            "--vmi=@{}",
            data("kubevirt/vmi-policy.json").display()
        ))
        .arg(format!(
            "--domain=@{}",
            data("kubevirt/domain.xml").display()
        ))
        .output()
        .unwrap();
    let direct = pciplan_kubevirt(
        &read("kubevirt/vmi-policy.json"),
        &read("kubevirt/domain.xml"),
    );
    assert!(out.status.success());
    assert_eq!(out.stdout, direct.stdout);
}

/// A copy of the VDSM sample in a fresh directory, as VDSM's temporary domain file.
fn vdsm_file(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pciplan-vdsm-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tmpdomxml");
    std::fs::copy(data("vdsm/domain.xml"), &path).unwrap();
    path
}

fn vdsm_hook(path: &Path, policy: Option<&str>, hotplug: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pciplan"));
    cmd.args(["hook", "vdsm"])
        .env("_hook_domxml", path)
        .env_remove(vdsm::POLICY_PROPERTY)
        .env_remove(vdsm::HOTPLUG_PROPERTY);
    if let Some(p) = policy {
        cmd.env(vdsm::POLICY_PROPERTY, p);
    }
    if let Some(h) = hotplug {
        cmd.env(vdsm::HOTPLUG_PROPERTY, h);
    }
    cmd.output().unwrap()
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

const NEW_NIC: &str = "ua-8c4a1e57-0d3f-4b26-9f7e-2b5d8a0c6e93";
const DISK: &str = "ua-c2e4a6f8-0b1d-4e3f-9a5c-7e9b1d3f5a70";

#[test]
fn vdsm_plans_the_domain_file_keeping_stored_addresses() {
    let path = vdsm_file("plan");
    let before = std::fs::read_to_string(&path).unwrap();
    let ino = inode(&path);
    let out = vdsm_hook(
        &path,
        Some(r#"{"spare_ports": 1}"#),
        Some(&format!("{NEW_NIC}=off")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = std::fs::read_to_string(&path).unwrap();
    // Replaced by rename: a new inode, nothing left beside it.
    assert_ne!(inode(&path), ino);
    let dir: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(dir.len(), 1, "no temporary file left");
    // The new NIC is not hot-pluggable; every address oVirt stored is where it was, so the
    // guest sees no change (the fewest possible).
    assert!(!hot_pluggable(&after, NEW_NIC));
    let stored: Vec<String> = lv::pci_addresses(&before);
    let now = lv::pci_addresses(&after);
    for a in &stored {
        assert!(now.contains(a), "moved: {a}");
    }
    assert_eq!(
        now.len(),
        stored.len() + 1,
        "only the new NIC got an address"
    );
    assert_eq!(lv::pci_controllers(&after), lv::pci_controllers(&before));
    defines_unchanged(&after, "vdsm-policy");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn vdsm_without_a_policy_leaves_the_file_untouched() {
    let path = vdsm_file("none");
    let before = std::fs::read(&path).unwrap();
    let ino = inode(&path);
    let out = vdsm_hook(&path, None, None);
    assert!(out.status.success());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(inode(&path), ino);
    let out = vdsm_hook(&path, Some(""), Some("  "));
    assert!(out.status.success());
    assert_eq!(inode(&path), ino);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

const VIDEO: &str = "ua-9d3f6a28-4e1b-4c72-8d5a-3b7e0f1c9a64";

#[test]
fn vdsm_adopts_a_stored_address_that_breaks_the_policy() {
    let path = vdsm_file("adopt");
    let before = std::fs::read_to_string(&path).unwrap();
    // The disk's stored address is behind a hot-pluggable root port: with hotplug_off=auto
    // adoption flips that port instead of moving the disk (the guest sees no change).
    let out = vdsm_hook(
        &path,
        Some(r#"{"hotplug_off": "auto"}"#),
        Some(&format!("{DISK}=off")),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("0 guest-visible changes"), "{err}");
    let after = std::fs::read_to_string(&path).unwrap();
    assert_eq!(address_of(&after, DISK), address_of(&before, DISK));
    assert!(!hot_pluggable(&after, DISK));
    // Every stored address stays; only the NIC oVirt had not addressed yet gets one.
    let (was, now) = (lv::pci_addresses(&before), lv::pci_addresses(&after));
    assert!(was.iter().all(|a| now.contains(a)), "{was:?} -> {now:?}");
    assert_eq!(now.len(), was.len() + 1);
    assert_eq!(lv::pci_controllers(&after), lv::pci_controllers(&before));
    defines_unchanged(&after, "vdsm-adopt");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn vdsm_unmet_policy_fails_and_leaves_the_file() {
    let path = vdsm_file("unmet");
    let before = std::fs::read(&path).unwrap();
    let ino = inode(&path);
    // QEMU can never hot-unplug a QXL display: no layout keeps it hot-pluggable.
    let out = vdsm_hook(&path, None, Some(&format!("{VIDEO}=on")));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(VIDEO) && err.contains("[D-HP]"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(inode(&path), ino);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn vdsm_bad_property_leaves_the_file_and_starts() {
    let path = vdsm_file("bad");
    let before = std::fs::read(&path).unwrap();
    let out = vdsm_hook(&path, Some("{spare_ports: 1"), None);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("left unchanged"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn atomic_replace_never_leaves_half_a_file() {
    let path = vdsm_file("atomic");
    let before = std::fs::read(&path).unwrap();
    // Something already sits where the new file would be written: the replace fails, and
    // the original is whole and untouched.
    let blocker = path
        .parent()
        .unwrap()
        .join(format!(".tmpdomxml.pciplan-{}.tmp", std::process::id()));
    std::fs::create_dir(&blocker).unwrap();
    assert!(vdsm::replace_atomically(&path, b"<domain/>").is_err());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(blocker.is_dir(), "someone else's file is left alone");
    std::fs::remove_dir(&blocker).unwrap();
    vdsm::replace_atomically(&path, b"<domain/>").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"<domain/>");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
