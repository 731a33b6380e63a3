//! A real libvirtd for tests, through `virsh -c qemu:///system`.
//!
//! [`ensure`] starts the private daemon with `.ci/libvirtd-start` when `virsh version` does not
//! answer (so `cargo test` alone works on a machine with the Debian packages). Without virsh
//! or root, tests skip with a message, unless `PCIPLAN_REQUIRE_LIBVIRT=1` (CI), where they fail.
//! [`define_dump`] defines a domain under a unique name, reads back the inactive XML and always
//! undefines it again: no test leaves a domain behind.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The connection every test uses.
pub const URI: &str = "qemu:///system";

fn virsh(args: &[&str]) -> std::io::Result<Output> {
    Command::new("virsh")
        .arg("-q")
        .arg("-c")
        .arg(URI)
        .args(args)
        .output()
}

fn answers() -> bool {
    virsh(&["version"])
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Makes sure libvirtd answers; `Err` says why not (the caller skips or fails).
pub fn ensure() -> Result<(), String> {
    static STATE: OnceLock<Result<(), String>> = OnceLock::new();
    let r = STATE
        .get_or_init(|| {
            if answers() {
                return Ok(());
            }
            if Command::new("virsh").arg("--version").output().is_err() {
                return Err("virsh is not installed (libvirt-clients)".into());
            }
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/libvirtd-start");
            let out = Command::new(&script)
                .output()
                .map_err(|e| format!("{}: {e}", script.display()))?;
            if !out.status.success() {
                return Err(format!(
                    "{} failed: {}",
                    script.display(),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            if answers() {
                Ok(())
            } else {
                Err("libvirtd started but virsh does not answer".into())
            }
        })
        .clone();
    if let Err(e) = &r {
        if std::env::var("PCIPLAN_REQUIRE_LIBVIRT").as_deref() == Ok("1") {
            panic!("libvirt required (PCIPLAN_REQUIRE_LIBVIRT=1): {e}");
        }
    }
    r
}

/// A unique domain name for this process and call.
pub fn unique_name(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "pciplan-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Undefines a domain when dropped.
struct Defined(String);

impl Drop for Defined {
    fn drop(&mut self) {
        let ok = virsh(&["undefine", "--nvram", &self.0])
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            let _ = virsh(&["undefine", &self.0]);
        }
    }
}

/// Replaces the domain's `<name>` with `name` and drops its `<uuid>` and the SMBIOS `uuid`
/// entry (libvirt takes the domain's UUID from that one when `<uuid>` is gone), so that
/// parallel tests defining one domain never collide.
pub fn rename(xml: &str, name: &str) -> String {
    let mut s = xml.to_string();
    if let (Some(a), Some(b)) = (s.find("<name>"), s.find("</name>")) {
        s.replace_range(a + "<name>".len()..b, name);
    }
    if let (Some(a), Some(b)) = (s.find("<uuid>"), s.find("</uuid>")) {
        s.replace_range(a..b + "</uuid>".len(), "");
    }
    for open in ["<entry name=\"uuid\">", "<entry name='uuid'>"] {
        while let Some(a) = s.find(open) {
            let Some(len) = s[a..].find("</entry>") else {
                break;
            };
            s.replace_range(a..a + len + "</entry>".len(), "");
        }
    }
    s
}

/// Defines `xml` under a unique name, returns `virsh dumpxml --inactive`, and undefines it.
/// `Err` carries virsh's error text.
pub fn define_dump(xml: &str, tag: &str) -> Result<String, String> {
    let name = unique_name(tag);
    let xml = rename(xml, &name);
    let dir = std::env::temp_dir().join(format!("pciplan-libvirt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join(format!("{name}.xml"));
    std::fs::write(&file, &xml).map_err(|e| e.to_string())?;
    let path = file.to_string_lossy().to_string();
    let out = virsh(&["define", &path]).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&file);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let _guard = Defined(name.clone());
    let dump = virsh(&["dumpxml", "--inactive", &name]).map_err(|e| e.to_string())?;
    if !dump.status.success() {
        return Err(String::from_utf8_lossy(&dump.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&dump.stdout).to_string())
}

/// Every `<address type='pci'>` of a domain's devices as `element@bus:slot.function[+mf]`
/// (controllers also carry type and index), sorted: equal lists mean nothing moved and nothing
/// was added.
pub fn pci_addresses(xml: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(xml).expect("well-formed XML");
    let Some(devices) = doc
        .root_element()
        .children()
        .find(|n| n.has_tag_name("devices"))
    else {
        return Vec::new();
    };
    let num = |v: Option<&str>| -> u64 {
        let v = v.unwrap_or("0");
        match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).unwrap_or(u64::MAX),
            None => v.parse().unwrap_or(u64::MAX),
        }
    };
    let mut out: Vec<String> = devices
        .children()
        .filter(|n| n.is_element())
        .filter_map(|n| {
            let a = n
                .children()
                .find(|c| c.has_tag_name("address") && c.attribute("type") == Some("pci"))?;
            let what = match n.tag_name().name() {
                // Not index or model: libvirt fills those in when the input leaves them out.
                "controller" => format!("controller[{}]", n.attribute("type").unwrap_or("")),
                t => t.to_string(),
            };
            let mf = if a.attribute("multifunction") == Some("on") {
                "+mf"
            } else {
                ""
            };
            Some(format!(
                "{what}@{:02x}:{:02x}.{}{mf}",
                num(a.attribute("bus")),
                num(a.attribute("slot")),
                num(a.attribute("function"))
            ))
        })
        .collect();
    out.sort();
    out
}

/// `<controller type='pci'>` elements other than the root.
pub fn pci_controllers(xml: &str) -> usize {
    let doc = roxmltree::Document::parse(xml).expect("well-formed XML");
    doc.descendants()
        .filter(|n| n.has_tag_name("controller") && n.attribute("type") == Some("pci"))
        .filter(|n| !matches!(n.attribute("model"), Some("pcie-root") | Some("pci-root")))
        .count()
}

/// Plans libvirt's own XML of a defined domain (`dump`, whose PCI addresses are `theirs`)
/// again: `Err` when that adds a controller or moves an address. Panics when the XML does
/// not read or plan at all.
pub fn replans_unchanged(tag: &str, dump: &str, theirs: &[String]) -> Result<(), String> {
    let back = pciplan::libvirt::Domain::parse(dump)
        .unwrap_or_else(|e| panic!("{tag}: libvirt's XML: {e}"));
    let again = back
        .plan()
        .unwrap_or_else(|e| panic!("{tag}: re-plan: {e}"));
    let rewritten = back.write(&again).unwrap();
    if again.cost != 0 || pci_addresses(&rewritten) != theirs {
        return Err(format!(
            "{tag}: re-planning libvirt's XML changed it (cost {})",
            again.cost
        ));
    }
    Ok(())
}
