//! The hotplug policy of a domain: the `<pciplan:policy>` element of its `<metadata>`
//! (docs/formats.md "Hotplug policy inside a libvirt domain XML"), then the command-line overrides,
//! which win field by field.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use roxmltree::Node;

use super::xml::{child, err};
use crate::catalog::BusKind;
use crate::error::InputError;
use crate::libvirt::Overrides;
use crate::policy_patch::PolicyPatch;
use crate::request::{Hotplug, OffStrategy};

/// Namespace of the `pciplan:policy` metadata element.
pub const POLICY_NS: &str = "urn:pciplan:policy:1";

/// Field name for errors in the metadata policy.
const FIELD: &str = "metadata/pciplan:policy";

/// `<pciplan:device>` in the metadata.
#[derive(Debug, Default, Clone)]
pub(super) struct MetaDevice {
    pub alias: String,
    pub hotplug: Option<Hotplug>,
    pub group: Option<String>,
    pub numa_node: Option<u32>,
    pub bus_kind: Option<BusKind>,
    /// Attributes other than `alias` and `hotplug`, as written.
    pub extra: Vec<(String, String)>,
}

/// `<pciplan:policy>` in the metadata.
#[derive(Debug, Default)]
pub(super) struct MetaPolicy {
    pub patch: PolicyPatch,
    pub devices: Vec<MetaDevice>,
}

/// The policy of a domain, resolved against its device ids.
#[derive(Debug)]
pub(super) struct Resolved {
    /// The policy values given explicitly: metadata, then overrides.
    pub patch: PolicyPatch,
    /// Device ids named explicitly (metadata or overrides), with their hotplug.
    pub named: BTreeMap<String, Hotplug>,
    /// The metadata entry of each item that has one, by item index.
    pub by_item: HashMap<usize, MetaDevice>,
    /// Metadata device attributes other than alias and hotplug, by alias.
    pub meta_extra: BTreeMap<String, Vec<(String, String)>>,
}

/// Applies the overrides to the metadata policy; every alias must name a device of `ids`.
pub(super) fn resolve(
    meta: &MetaPolicy,
    ov: &Overrides,
    ids: &[String],
) -> Result<Resolved, InputError> {
    let find = |alias: &str| -> Option<usize> { ids.iter().position(|id| id == alias) };
    let mut named: BTreeMap<String, Hotplug> = BTreeMap::new();
    let mut by_item: HashMap<usize, MetaDevice> = HashMap::new();
    for d in &meta.devices {
        let i = find(&d.alias).ok_or_else(|| {
            err(
                "metadata/pciplan:policy/pciplan:device",
                format!("alias '{}' names no PCI device of this domain", d.alias),
            )
        })?;
        if let Some(h) = d.hotplug {
            named.insert(ids[i].clone(), h);
        }
        by_item.insert(i, d.clone());
    }
    for (alias, h) in &ov.hotplug {
        let i = find(alias).ok_or_else(|| {
            err(
                "--hotplug",
                format!(
                    "'{alias}' names no PCI device of this domain (known: {})",
                    ids.join(", ")
                ),
            )
        })?;
        named.insert(ids[i].clone(), *h);
    }
    Ok(Resolved {
        patch: meta.patch.then(&ov.policy),
        named,
        by_item,
        meta_extra: meta
            .devices
            .iter()
            .filter(|d| !d.extra.is_empty())
            .map(|d| (d.alias.clone(), d.extra.clone()))
            .collect(),
    })
}

fn hotplug(v: &str, k: &str) -> Result<Hotplug, InputError> {
    Hotplug::parse(v).ok_or_else(|| err(FIELD, format!("{k}='{v}': expected on, off or any")))
}

/// Reads `<metadata><pciplan:policy>` (absent: an empty policy).
pub(super) fn read_metadata(root: Node) -> Result<MetaPolicy, InputError> {
    let mut out = MetaPolicy::default();
    let Some(meta) = child(root, "metadata") else {
        return Ok(out);
    };
    let pols: Vec<Node> = meta
        .children()
        .filter(|c| c.is_element() && c.tag_name().namespace() == Some(POLICY_NS))
        .collect();
    if pols.len() > 1 {
        return Err(err(FIELD, "more than one element in the pciplan namespace"));
    }
    let Some(p) = pols.first() else {
        return Ok(out);
    };
    if p.tag_name().name() != "policy" {
        return Err(err(
            FIELD,
            format!(
                "unknown element <{}> in the pciplan namespace (expected <policy>)",
                p.tag_name().name()
            ),
        ));
    }
    out.patch = read_patch(*p)?;
    let mut seen = BTreeSet::new();
    for d in p.children().filter(|c| c.is_element()) {
        let md = read_device(d)?;
        if !seen.insert(md.alias.clone()) {
            return Err(err(FIELD, format!("alias '{}' listed twice", md.alias)));
        }
        out.devices.push(md);
    }
    Ok(out)
}

/// The attributes of `<pciplan:policy>`.
fn read_patch(p: Node) -> Result<PolicyPatch, InputError> {
    let mut out = PolicyPatch::default();
    for a in p.attributes() {
        if a.namespace().is_some() {
            continue;
        }
        let v = a.value();
        match a.name() {
            "default-hotplug" => out.default_hotplug = Some(hotplug(v, "default-hotplug")?),
            "spare-ports" => {
                out.spare_ports = Some(
                    v.trim()
                        .parse()
                        .map_err(|_| err(FIELD, format!("spare-ports='{v}': expected a number")))?,
                )
            }
            "hotplug-off" => {
                out.hotplug_off = Some(OffStrategy::parse(v).ok_or_else(|| {
                    err(
                        FIELD,
                        format!("hotplug-off='{v}': expected integrated, port or auto"),
                    )
                })?)
            }
            "pack-integrated" => {
                out.pack_integrated = Some(match v {
                    "true" | "yes" | "on" => true,
                    "false" | "no" | "off" => false,
                    _ => {
                        return Err(err(
                            FIELD,
                            format!("pack-integrated='{v}': expected true or false"),
                        ))
                    }
                })
            }
            other => return Err(err(FIELD, format!("unknown attribute '{other}'"))),
        }
    }
    Ok(out)
}

/// One `<pciplan:device>`.
fn read_device(d: Node) -> Result<MetaDevice, InputError> {
    if d.tag_name().name() != "device" || d.tag_name().namespace() != Some(POLICY_NS) {
        return Err(err(
            FIELD,
            format!(
                "unknown element <{}> (expected <pciplan:device>)",
                d.tag_name().name()
            ),
        ));
    }
    let mut md = MetaDevice::default();
    for a in d.attributes() {
        if a.namespace().is_some() {
            continue;
        }
        let v = a.value();
        if !matches!(a.name(), "alias" | "hotplug") {
            md.extra.push((a.name().to_string(), v.to_string()));
        }
        match a.name() {
            "alias" => md.alias = v.to_string(),
            "hotplug" => md.hotplug = Some(hotplug(v, "hotplug")?),
            "group" => md.group = Some(v.to_string()),
            "numa-node" => {
                md.numa_node = Some(
                    v.trim()
                        .parse()
                        .map_err(|_| err(FIELD, format!("numa-node='{v}': expected a number")))?,
                )
            }
            "bus-kind" => {
                md.bus_kind = Some(match v {
                    "pcie" => BusKind::Pcie,
                    "pci" => BusKind::Pci,
                    _ => return Err(err(FIELD, format!("bus-kind='{v}': expected pcie or pci"))),
                })
            }
            other => {
                return Err(err(
                    FIELD,
                    format!("<pciplan:device>: unknown attribute '{other}'"),
                ))
            }
        }
    }
    if md.alias.is_empty() {
        return Err(err(FIELD, "<pciplan:device> without alias"));
    }
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::super::testing::domain_with;
    use super::*;
    use crate::libvirt::ReadOptions;

    fn meta(policy: &str) -> String {
        format!("<domain><metadata>{policy}</metadata></domain>")
    }

    #[test]
    fn metadata_policy_is_read() {
        let xml = meta(&format!(
            "<p:policy xmlns:p='{POLICY_NS}' default-hotplug='off' spare-ports='2' pack-integrated='yes'>\
             <p:device alias='net0' hotplug='on' group='g'/></p:policy>"
        ));
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let m = read_metadata(doc.root_element()).unwrap();
        assert_eq!(m.patch.default_hotplug, Some(Hotplug::Off));
        assert_eq!(m.patch.spare_ports, Some(2));
        assert_eq!(m.patch.pack_integrated, Some(true));
        assert_eq!(m.devices[0].hotplug, Some(Hotplug::On));
        assert_eq!(m.devices[0].extra, vec![("group".into(), "g".into())]);
    }

    #[test]
    fn metadata_errors() {
        for (p, says) in [
            (
                "<p:policy xmlns:p='NS' spare-ports='x'/>",
                "expected a number",
            ),
            ("<p:policy xmlns:p='NS' bogus='1'/>", "unknown attribute"),
            ("<p:rules xmlns:p='NS'/>", "expected <policy>"),
            (
                "<p:policy xmlns:p='NS'><p:device hotplug='on'/></p:policy>",
                "without alias",
            ),
            (
                "<p:policy xmlns:p='NS'><p:device alias='a'/><p:device alias='a'/></p:policy>",
                "listed twice",
            ),
        ] {
            let xml = meta(&p.replace("NS", POLICY_NS));
            let doc = roxmltree::Document::parse(&xml).unwrap();
            let e = read_metadata(doc.root_element()).unwrap_err().to_string();
            assert!(e.contains(says), "{p}: {e}");
        }
    }

    #[test]
    fn overrides_win_and_must_name_devices() {
        let meta = MetaPolicy {
            patch: PolicyPatch {
                spare_ports: Some(1),
                pack_integrated: Some(true),
                ..Default::default()
            },
            devices: vec![],
        };
        let ov = Overrides {
            policy: PolicyPatch {
                spare_ports: Some(3),
                ..Default::default()
            },
            hotplug: vec![("net0".into(), Hotplug::Off)],
        };
        let r = resolve(&meta, &ov, &["net0".to_string()]).unwrap();
        assert_eq!(r.patch.spare_ports, Some(3));
        assert_eq!(r.patch.pack_integrated, Some(true));
        assert_eq!(r.named.get("net0"), Some(&Hotplug::Off));
        assert!(resolve(&meta, &ov, &["disk0".to_string()]).is_err());
    }

    #[test]
    fn unpinned_devices_follow_the_default_and_pinned_ones_are_any() {
        let devs = "<interface type='network'><model type='virtio'/></interface>\
                    <interface type='network'><model type='virtio'/><address type='pci' domain='0' bus='0' slot='3' function='0'/></interface>";
        let d = domain_with(devs, &ReadOptions::default()).unwrap();
        assert_eq!(d.request.devices[0].hotplug, None);
        assert_eq!(d.request.devices[1].hotplug, Some(Hotplug::Any));
        let off = ReadOptions {
            overrides: Overrides {
                policy: PolicyPatch {
                    default_hotplug: Some(Hotplug::Off),
                    ..Default::default()
                },
                hotplug: vec![],
            },
            ..ReadOptions::default()
        };
        let d = domain_with(devs, &off).unwrap();
        // An explicit default covers pinned devices too.
        assert_eq!(d.request.devices[1].hotplug, None);
        assert_eq!(d.request.policy.default_hotplug, Hotplug::Off);
    }
}
