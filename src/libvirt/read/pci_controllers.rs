//! `<controller type='pci'>`: indexes (given, or libvirt's autoindex), the catalog model each
//! one is, and its `<target>` values, with libvirt's parse-time refusals.

use std::collections::BTreeSet;

use roxmltree::Node;

use super::xml::{alias_of, child, err, parse_uint, pci_address, RawAddr};
use crate::catalog::{Catalog, ControllerModel};
use crate::error::InputError;
use crate::request::valid_id;

/// Field name for errors about PCI controllers in general.
const FIELD: &str = "controller[@type='pci']";

/// An existing `<controller type='pci'>` with index > 0.
#[derive(Debug)]
pub(super) struct Ctrl<'c> {
    pub index: u32,
    /// Byte offset of the element.
    pub start: usize,
    pub id: String,
    pub model: &'c ControllerModel,
    pub addr: Option<RawAddr>,
    pub chassis: Option<u64>,
    pub port: Option<u64>,
    pub bus_nr: Option<u64>,
    pub node: Option<u64>,
    pub hotplug: Option<bool>,
}

/// The PCI controllers of a domain.
#[derive(Debug)]
pub(super) struct PciControllers<'c> {
    /// Controllers with index > 0, by index.
    pub ctrls: Vec<Ctrl<'c>>,
    /// Whether a `<controller type='pci' index='0'>` is present.
    pub has_root: bool,
    /// The root controller element (its start), if present.
    pub root_start: Option<usize>,
    /// `pc`: the `pci-root`'s `<target hotplug>` (PC-ROOT-HP), the request's `root_hotplug`.
    pub root_hotplug: Option<bool>,
    /// The controllers' ids.
    pub ids: BTreeSet<String>,
}

/// Reads every `<controller type='pci'>` among `dev_elems`.
pub(super) fn read<'c>(
    cat: &'c Catalog,
    dev_elems: &[Node],
    numa_cells: usize,
) -> Result<PciControllers<'c>, InputError> {
    let pci_elems: Vec<Node> = dev_elems
        .iter()
        .copied()
        .filter(|n| n.has_tag_name("controller") && n.attribute("type") == Some("pci"))
        .collect();
    let (mut used_idx, explicit_idx) = explicit_indexes(&pci_elems)?;
    let mut out = PciControllers {
        ctrls: Vec::new(),
        has_root: false,
        root_start: None,
        root_hotplug: None,
        ids: BTreeSet::new(),
    };
    for (n, ei) in pci_elems.iter().zip(explicit_idx) {
        let index = match ei {
            Some(i) => i,
            None => {
                // libvirt's autoindex: the lowest unused index, in document order.
                let i = (0..=255u64)
                    .find(|i| !used_idx.contains(i))
                    .ok_or_else(|| err(FIELD, "more than 256 PCI controllers"))?;
                used_idx.insert(i);
                i
            }
        } as u32;
        match controller(cat, *n, index, numa_cells, &mut out.ids)? {
            Some(c) => out.ctrls.push(c),
            None => {
                out.has_root = true;
                out.root_start = Some(n.range().start);
                out.root_hotplug = root_hotplug(cat, *n)?;
            }
        }
    }
    out.ctrls.sort_by_key(|c| c.index);
    Ok(out)
}

/// `pc`: the `pci-root`'s `<target hotplug='on|off'>` (libvirt >= 7.9, QEMU
/// `PIIX4_PM.acpi-root-pci-hotplug`, PC-ROOT-HP). On q35 the `pcie-root` has none to read.
fn root_hotplug(cat: &Catalog, n: Node) -> Result<Option<bool>, InputError> {
    if cat.root.hotplug_switch.is_none() {
        return Ok(None);
    }
    let what = format!("{FIELD}[@index='0']/target@hotplug");
    match child(n, "target").and_then(|t| t.attribute("hotplug")) {
        None => Ok(None),
        Some("on") => Ok(Some(true)),
        Some("off") => Ok(Some(false)),
        Some(v) => Err(err(
            &what,
            format!("invalid pci-root hotplug '{v}' (on or off) [PC-ROOT-HP]"),
        )),
    }
}

/// The indexes given in the XML (in element order, `None` where absent), and the set of them.
#[allow(clippy::type_complexity)]
fn explicit_indexes(pci_elems: &[Node]) -> Result<(BTreeSet<u64>, Vec<Option<u64>>), InputError> {
    let mut used: BTreeSet<u64> = BTreeSet::new();
    let mut explicit: Vec<Option<u64>> = Vec::new();
    for n in pci_elems {
        let Some(v) = n.attribute("index") else {
            explicit.push(None);
            continue;
        };
        let i = parse_uint(v).ok_or_else(|| err(FIELD, format!("cannot parse index '{v}'")))?;
        if i > 255 {
            return Err(err(
                FIELD,
                format!("PCI controller index {i} too high, maximum is 255"),
            ));
        }
        if !used.insert(i) {
            return Err(err(
                FIELD,
                format!("Multiple 'pci' controllers with index '{i}' [D-PIN]"),
            ));
        }
        explicit.push(Some(i));
    }
    Ok((used, explicit))
}

/// One PCI controller; `None` for the root (index 0), which has nothing to place. Its id
/// joins `ids` (a second controller with the same alias is an error).
fn controller<'c>(
    cat: &'c Catalog,
    n: Node,
    index: u32,
    numa_cells: usize,
    ids: &mut BTreeSet<String>,
) -> Result<Option<Ctrl<'c>>, InputError> {
    let what = format!("{FIELD}[@index='{index}']");
    let lv_model = n.attribute("model");
    let root_model = cat.root.bus_type.as_str();
    if index == 0 {
        match lv_model.unwrap_or(root_model) {
            m if m == root_model => {}
            other => {
                return Err(err(&what, format!("The PCI controller with index='0' must be model='{root_model}' for this machine type, but model='{other}' was found instead")));
            }
        }
        if pci_address(n, &what)?.is_some() {
            return Err(err(
                &what,
                "pci-root and pcie-root controllers should not have an address",
            ));
        }
        return Ok(None);
    }
    let pc = super::is_pci_root(cat);
    // libvirt's default model for an index above 0: a pci-bridge on pc, a root port on q35.
    let lv_model = lv_model.unwrap_or(if pc { "pci-bridge" } else { "pcie-root-port" });
    match lv_model {
        "pci-root" | "pcie-root" => {
            return Err(err(
                &what,
                "pci-root and pcie-root controllers should have index 0",
            ))
        }
        "pci-expander-bus" if pc => {
            return Err(err(
                &what,
                "pci-expander-bus (pxb) is not planned on pc: NUMA placement on pc is out of scope [PC-NUMA]",
            ))
        }
        "pcie-expander-bus" if pc => {
            return Err(err(
                &what,
                "pcie-expander-bus controllers are not supported with this machine type (pc has no PCI Express) [PC-ROOT]",
            ))
        }
        "pci-expander-bus" => {
            return Err(err(
                &what,
                "pci-expander-bus controllers are only supported on 440fx-based machinetypes",
            ))
        }
        _ => {}
    }
    let model = catalog_model(cat, n, index, lv_model, &what)?;
    let mut t = read_target(n, index, lv_model, model, numa_cells, &what)?;
    if pc && model.props.iter().any(|p| p == "chassis_nr") {
        t.chassis = chassis_nr(n, index, &what)?;
    }
    let id = match alias_of(n) {
        Some(a) if valid_id(&a) && a != "pcie.0" => a,
        _ => format!("pci.{index}"),
    };
    if !ids.insert(id.clone()) {
        return Err(err(&what, format!("duplicate alias '{id}'")));
    }
    let addr = pci_address(n, &what)?;
    Ok(Some(Ctrl {
        index,
        start: n.range().start,
        id,
        model,
        addr,
        chassis: t.chassis,
        port: t.port,
        bus_nr: t.bus_nr,
        node: t.node,
        hotplug: t.hotplug,
    }))
}

/// The catalog model of a libvirt controller model (and `<model name>`, when given).
fn catalog_model<'c>(
    cat: &'c Catalog,
    n: Node,
    index: u32,
    lv_model: &str,
    what: &str,
) -> Result<&'c ControllerModel, InputError> {
    let model_name = child(n, "model").and_then(|m| m.attribute("name"));
    let cands: Vec<&'c ControllerModel> = cat
        .controllers
        .iter()
        .filter(|c| c.libvirt.model == lv_model)
        .collect();
    let Some(&first) = cands.first() else {
        return Err(err(
            what,
            format!(
                "unknown PCI controller model '{lv_model}' for machine {} (known: {})",
                cat.machine,
                cat.controllers
                    .iter()
                    .map(|c| c.libvirt.model.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    match model_name {
        Some(mn) => cands.iter().find(|c| c.libvirt.model_name == mn).copied().ok_or_else(|| {
            err(what, format!("Option 'modelName' has invalid value for PCI controller with index '{index}', model '{lv_model}' and modelName '{mn}'"))
        }),
        None => Ok(cands.iter().find(|c| c.planner_adds).copied().unwrap_or(first)),
    }
}

/// A `pci-bridge`'s `<target chassisNr>` (libvirt: 1-255; its index when absent, PC-BRIDGE).
fn chassis_nr(n: Node, index: u32, what: &str) -> Result<Option<u64>, InputError> {
    match child(n, "target").and_then(|t| t.attribute("chassisNr")) {
        None => Ok(Some(u64::from(index))),
        Some(v) => match parse_uint(v) {
            Some(x) if (1..=255).contains(&x) => Ok(Some(x)),
            Some(x) => Err(err(
                what,
                format!("PCI controller chassisNr '{x}' out of range - must be 1-255"),
            )),
            None => Err(err(
                what,
                format!("cannot parse <target> 'chassisNr' attribute '{v}'"),
            )),
        },
    }
}

/// The values of a controller's `<target>`.
struct Target {
    chassis: Option<u64>,
    port: Option<u64>,
    bus_nr: Option<u64>,
    node: Option<u64>,
    hotplug: Option<bool>,
}

fn read_target(
    n: Node,
    index: u32,
    lv_model: &str,
    model: &ControllerModel,
    numa_cells: usize,
    what: &str,
) -> Result<Target, InputError> {
    let target = child(n, "target");
    let tnum = |k: &str| -> Result<Option<u64>, InputError> {
        match target.and_then(|t| t.attribute(k)) {
            None => Ok(None),
            Some(v) => parse_uint(v)
                .map(Some)
                .ok_or_else(|| err(what, format!("cannot parse <target> '{k}' attribute '{v}'"))),
        }
    };
    let hotplug = match target.and_then(|t| t.attribute("hotplug")) {
        None => None,
        Some("on") => Some(true),
        Some("off") => Some(false),
        Some(v) => {
            return Err(err(
                what,
                format!("invalid <target> hotplug '{v}' (on or off)"),
            ))
        }
    };
    if hotplug.is_some() && !model.props.iter().any(|p| p == "hotplug") {
        return Err(err(what, format!("Option 'hotplug' is not valid for PCI controller with index '{index}', model '{lv_model}' and modelName '{}'", model.libvirt.model_name)));
    }
    let node = match target.and_then(|t| child(t, "node")).and_then(|x| x.text()) {
        None => None,
        Some(v) => {
            Some(parse_uint(v).ok_or_else(|| err(what, format!("cannot parse <node> '{v}'")))?)
        }
    };
    if let Some(k) = node {
        if k as usize >= numa_cells {
            return Err(err(what, format!("{lv_model} with index {index} is configured for a NUMA node ({k}) not present in the domain's <cpu><numa> array ({numa_cells})")));
        }
    }
    let (chassis, port, bus_nr) = (tnum("chassis")?, tnum("port")?, tnum("busNr")?);
    for (k, v, lo, hi) in [
        ("chassis", chassis, 0, 255),
        ("port", port, 0, 255),
        ("busNr", bus_nr, 1, 254),
    ] {
        if let Some(v) = v {
            if v < lo || v > hi {
                return Err(err(
                    what,
                    format!("PCI controller {k} '{v}' out of range - must be {lo}-{hi}"),
                ));
            }
        }
    }
    Ok(Target {
        chassis,
        port,
        bus_nr,
        node,
        hotplug,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::domain;

    #[test]
    fn autoindex_takes_the_lowest_free_index_in_document_order() {
        let d = domain(
            "<controller type='pci' model='pcie-root'/>\
             <controller type='pci' model='pcie-root-port'/>\
             <controller type='pci' index='1' model='pcie-root-port'/>\
             <controller type='pci' model='pcie-root-port'/>",
        )
        .unwrap();
        let idx: Vec<u32> = d.controllers.iter().map(|c| c.index).collect();
        assert_eq!(idx, vec![1, 2, 3]);
        assert_eq!(d.index_of("pci.2"), Some(2));
    }

    #[test]
    fn libvirt_refusals_are_errors() {
        for (xml, says) in [
            ("<controller type='pci' index='0' model='pci-root'/>", "must be model='pcie-root'"),
            ("<controller type='pci' index='1' model='pcie-root'/>", "should have index 0"),
            ("<controller type='pci' index='1'/><controller type='pci' index='1'/>", "Multiple"),
            ("<controller type='pci' index='300'/>", "too high"),
            ("<controller type='pci' index='1' model='pcie-to-pci-bridge'><target hotplug='off'/></controller>", "Option 'hotplug' is not valid"),
            ("<controller type='pci' index='1' model='pcie-expander-bus'><target busNr='255'/></controller>", "out of range"),
            ("<controller type='pci' index='1' model='pcie-expander-bus'><target><node>0</node></target></controller>", "NUMA node (0)"),
        ] {
            let e = domain(xml).unwrap_err().to_string();
            assert!(e.contains(says), "{xml}: {e}");
        }
    }

    #[test]
    fn model_name_picks_the_catalog_model() {
        let d = domain("<controller type='pci' index='1' model='pcie-root-port'><model name='ioh3420'/></controller>");
        // The built-in catalog knows ioh3420 only if it lists it; either way no panic.
        match d {
            Ok(d) => assert_eq!(d.request.controllers.len(), 1),
            Err(e) => assert!(e.to_string().contains("modelName"), "{e}"),
        }
    }
}
