//! Domain XML → request (see the module documentation for the rules followed).

use crate::rule::Rule;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use roxmltree::{Document, Node, ParsingOptions};

use super::{CtrlSrc, DevSrc, Domain, Implicit, ReadOptions, Source};
use crate::catalog::{BusKind, Catalog, ControllerModel};
use crate::error::{InputError, Violation};
use crate::request::{
    valid_id, Address, ControllerRequest, DeviceRequest, Hotplug, OffStrategy, Policy, Request,
    MAX_REQUEST_BYTES,
};

/// Namespace of the `pciplan:policy` metadata element.
pub const POLICY_NS: &str = "urn:pciplan:policy:1";

/// Most XML nodes accepted (a guest with 4096 devices stays far below).
const MAX_NODES: u32 = 2_000_000;

fn err(field: impl Into<String>, msg: impl Into<String>) -> InputError {
    InputError::new(field, msg)
}

/// Parses an unsigned number the way libvirt does (C `strtoul` base 0: `0x` hex, leading `0`
/// octal, else decimal).
/// The index libvirt gives a disk target name: `sda` 0, `sdz` 25, `sdaa` 26 (letters after
/// the `sd`/`hd`/`vd`/`xvd`/`ubd` prefix, counted like spreadsheet columns).
pub(crate) fn disk_index(dev: &str) -> Option<u64> {
    let letters = ["xvd", "ubd", "sd", "hd", "vd", "fd"]
        .iter()
        .find_map(|p| dev.strip_prefix(p))?;
    if letters.is_empty() || letters.len() > 6 || !letters.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let n = letters
        .bytes()
        .fold(0u64, |n, b| n * 26 + u64::from(b - b'a') + 1);
    Some(n - 1)
}

pub(crate) fn parse_uint(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// A guest PCI address as written (bus is a controller index).
#[derive(Debug, Clone)]
struct RawAddr {
    domain: u64,
    bus: u64,
    slot: u64,
    function: u64,
    mf: Option<String>,
}

impl RawAddr {
    fn show(&self) -> String {
        format!(
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.slot, self.function
        )
    }
}

/// The direct `<address>` child of an element, when it is `type='pci'`.
fn pci_address(n: Node, what: &str) -> Result<Option<RawAddr>, InputError> {
    let Some(a) = n.children().find(|c| c.has_tag_name("address")) else {
        return Ok(None);
    };
    if a.attribute("type") != Some("pci") {
        return Ok(None);
    }
    let num = |k: &str| -> Result<u64, InputError> {
        match a.attribute(k) {
            None => Ok(0),
            Some(v) => parse_uint(v).ok_or_else(|| {
                err(
                    what,
                    format!("cannot parse <address> '{k}' attribute '{v}'"),
                )
            }),
        }
    };
    Ok(Some(RawAddr {
        domain: num("domain")?,
        bus: num("bus")?,
        slot: num("slot")?,
        function: num("function")?,
        mf: a.attribute("multifunction").map(str::to_string),
    }))
}

fn alias_of(n: Node) -> Option<String> {
    n.children()
        .find(|c| c.has_tag_name("alias"))
        .and_then(|a| a.attribute("name"))
        .map(str::to_string)
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| {
        c.is_element() && c.tag_name().name() == name && c.tag_name().namespace().is_none()
    })
}

/// A device found in the XML (or implied), before ids and policy.
struct Item {
    prefix: &'static str,
    alias: Option<String>,
    what: String,
    model: String,
    kind: BusKind,
    src: Source,
    addr: Option<RawAddr>,
    /// libvirt always integrates it (primary video, ICH9 sound, ICH9 USB2 sets).
    default_any: bool,
    /// ICH9 USB2 set: (controller index, function libvirt gives it).
    usb2: Option<(u32, u8)>,
}

/// An existing `<controller type='pci'>` with index > 0.
struct Ctrl {
    index: u32,
    start: usize,
    id: String,
    model: &'static ControllerModel,
    addr: Option<RawAddr>,
    chassis: Option<u64>,
    port: Option<u64>,
    bus_nr: Option<u64>,
    node: Option<u64>,
    hotplug: Option<bool>,
}

fn virtio(
    base: &str,
    variant: Option<&str>,
    what: &str,
    opts: &ReadOptions,
) -> Result<(String, BusKind), InputError> {
    match variant {
        None | Some("virtio") => Ok((
            base.to_string(),
            if opts.virtio_conventional {
                BusKind::Pci
            } else {
                BusKind::Pcie
            },
        )),
        Some("virtio-transitional") => Ok((format!("{base}-transitional"), BusKind::Pci)),
        Some("virtio-non-transitional") => Ok((format!("{base}-non-transitional"), BusKind::Pcie)),
        Some(other) => Err(err(what, format!("unknown virtio model '{other}'"))),
    }
}

/// A libvirt USB controller model: QEMU device, kind, and the function libvirt gives an ICH9
/// USB2 set member; `None` for models without a PCI device.
#[allow(clippy::type_complexity)]
fn usb_model(model: Option<&str>) -> Result<Option<(&'static str, BusKind, Option<u8>)>, String> {
    Ok(Some(match model {
        // An explicit USB controller without a model gets piix3-uhci (libvirt 9.0).
        None => ("piix3-usb-uhci", BusKind::Pci, None),
        Some("none") | Some("qusb") => return Ok(None),
        Some("qemu-xhci") => ("qemu-xhci", BusKind::Pcie, None),
        Some("nec-xhci") => ("nec-usb-xhci", BusKind::Pcie, None),
        Some("piix3-uhci") => ("piix3-usb-uhci", BusKind::Pci, None),
        Some("piix4-uhci") => ("piix4-usb-uhci", BusKind::Pci, None),
        Some("ehci") => ("usb-ehci", BusKind::Pci, None),
        Some("ich9-ehci1") => ("ich9-usb-ehci1", BusKind::Pci, Some(7)),
        Some("ich9-uhci1") => ("ich9-usb-uhci1", BusKind::Pci, Some(0)),
        Some("ich9-uhci2") => ("ich9-usb-uhci2", BusKind::Pci, Some(1)),
        Some("ich9-uhci3") => ("ich9-usb-uhci3", BusKind::Pci, Some(2)),
        Some("vt82c686b-uhci") => ("vt82c686b-usb-uhci", BusKind::Pci, None),
        Some("pci-ohci") => ("pci-ohci", BusKind::Pci, None),
        Some(other) => {
            return Err(format!(
                "USB controller model '{other}' has no PCI device on q35"
            ))
        }
    }))
}

fn is_q35(machine: &str) -> bool {
    machine == "q35" || machine.starts_with("pc-q35-")
}

pub(crate) fn read(xml: &str, opts: &ReadOptions) -> Result<Domain, InputError> {
    if xml.len() > MAX_REQUEST_BYTES {
        return Err(err(
            "domain",
            format!(
                "{} bytes is larger than the {MAX_REQUEST_BYTES} byte limit",
                xml.len()
            ),
        ));
    }
    // roxmltree refuses DTDs by default (allow_dtd = false), so no entity is ever declared or
    // expanded beyond the five predefined ones.
    let popts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
    };
    let doc = Document::parse_with_options(xml, popts)
        .map_err(|e| err("domain", format!("not a well-formed XML document: {e}")))?;
    let root = doc.root_element();
    if !root.has_tag_name("domain") {
        return Err(err(
            "domain",
            format!(
                "the root element is <{}>, not <domain>",
                root.tag_name().name()
            ),
        ));
    }
    let cat = Catalog::q35();
    let name = child(root, "name")
        .and_then(|n| n.text())
        .map(|s| s.trim().to_string());
    let os_type = child(root, "os").and_then(|o| child(o, "type"));
    let machine = os_type.and_then(|t| t.attribute("machine")).unwrap_or("");
    if !is_q35(machine) {
        let shown = if machine.is_empty() {
            "(none: libvirt's default is 'pc', i440fx)".to_string()
        } else {
            format!("'{machine}'")
        };
        return Err(err("os/type@machine", format!("unsupported machine {shown}: pciplan plans q35 guests (machine 'q35' or 'pc-q35-*')")));
    }
    if let Some(arch) = os_type.and_then(|t| t.attribute("arch")) {
        if arch != "x86_64" && arch != "i686" {
            return Err(err(
                "os/type@arch",
                format!("unsupported architecture '{arch}': pciplan plans x86 q35 guests"),
            ));
        }
    }
    let numa_cells = child(root, "cpu")
        .and_then(|c| child(c, "numa"))
        .map(|n| n.children().filter(|c| c.has_tag_name("cell")).count())
        .unwrap_or(0);
    let devices = child(root, "devices");
    let dev_elems: Vec<Node> = devices
        .map(|d| d.children().filter(|c| c.is_element()).collect())
        .unwrap_or_default();
    let mut problems: Vec<Violation> = Vec::new();

    // 1. PCI controllers and their indexes.
    let pci_elems: Vec<Node> = dev_elems
        .iter()
        .copied()
        .filter(|n| n.has_tag_name("controller") && n.attribute("type") == Some("pci"))
        .collect();
    let mut used_idx: BTreeSet<u64> = BTreeSet::new();
    let mut explicit_idx: Vec<Option<u64>> = Vec::new();
    for n in &pci_elems {
        match n.attribute("index") {
            Some(v) => {
                let i = parse_uint(v).ok_or_else(|| {
                    err(
                        "controller[@type='pci']",
                        format!("cannot parse index '{v}'"),
                    )
                })?;
                if i > 255 {
                    return Err(err(
                        "controller[@type='pci']",
                        format!("PCI controller index {i} too high, maximum is 255"),
                    ));
                }
                if !used_idx.insert(i) {
                    return Err(err(
                        "controller[@type='pci']",
                        format!("Multiple 'pci' controllers with index '{i}' [D-PIN]"),
                    ));
                }
                explicit_idx.push(Some(i));
            }
            None => explicit_idx.push(None),
        }
    }
    let mut has_root = false;
    let mut ctrls: Vec<Ctrl> = Vec::new();
    let mut ids_taken: BTreeSet<String> = BTreeSet::new();
    for (n, ei) in pci_elems.iter().zip(explicit_idx) {
        let index = match ei {
            Some(i) => i,
            None => {
                // libvirt's autoindex: the lowest unused index, in document order.
                let i = (0..=255u64)
                    .find(|i| !used_idx.contains(i))
                    .ok_or_else(|| {
                        err("controller[@type='pci']", "more than 256 PCI controllers")
                    })?;
                used_idx.insert(i);
                i
            }
        } as u32;
        let what = format!("controller[@type='pci'][@index='{index}']");
        let lv_model = n.attribute("model");
        if index == 0 {
            match lv_model.unwrap_or("pcie-root") {
                "pcie-root" => {}
                other => {
                    return Err(err(&what, format!("The PCI controller with index='0' must be model='pcie-root' for this machine type, but model='{other}' was found instead")));
                }
            }
            if pci_address(*n, &what)?.is_some() {
                return Err(err(
                    &what,
                    "pci-root and pcie-root controllers should not have an address",
                ));
            }
            has_root = true;
            continue;
        }
        let lv_model = lv_model.unwrap_or("pcie-root-port");
        match lv_model {
            "pci-root" | "pcie-root" => {
                return Err(err(
                    &what,
                    "pci-root and pcie-root controllers should have index 0",
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
        let model_name = child(*n, "model").and_then(|m| m.attribute("name"));
        let cands: Vec<&'static ControllerModel> = cat
            .controllers
            .iter()
            .filter(|c| c.libvirt.model == lv_model)
            .collect();
        if cands.is_empty() {
            return Err(err(
                &what,
                format!("unknown PCI controller model '{lv_model}'"),
            ));
        }
        let model = match model_name {
            Some(mn) => *cands.iter().find(|c| c.libvirt.model_name == mn).ok_or_else(|| {
                err(&what, format!("Option 'modelName' has invalid value for PCI controller with index '{index}', model '{lv_model}' and modelName '{mn}'"))
            })?,
            None => cands.iter().find(|c| c.planner_adds).copied().unwrap_or(cands[0]),
        };
        let target = child(*n, "target");
        let tnum = |k: &str| -> Result<Option<u64>, InputError> {
            match target.and_then(|t| t.attribute(k)) {
                None => Ok(None),
                Some(v) => parse_uint(v).map(Some).ok_or_else(|| {
                    err(
                        &what,
                        format!("cannot parse <target> '{k}' attribute '{v}'"),
                    )
                }),
            }
        };
        let hotplug = match target.and_then(|t| t.attribute("hotplug")) {
            None => None,
            Some("on") => Some(true),
            Some("off") => Some(false),
            Some(v) => {
                return Err(err(
                    &what,
                    format!("invalid <target> hotplug '{v}' (on or off)"),
                ))
            }
        };
        if hotplug.is_some() && !model.props.iter().any(|p| p == "hotplug") {
            return Err(err(&what, format!("Option 'hotplug' is not valid for PCI controller with index '{index}', model '{lv_model}' and modelName '{}'", model.libvirt.model_name)));
        }
        let node = match target.and_then(|t| child(t, "node")).and_then(|x| x.text()) {
            None => None,
            Some(v) => Some(
                parse_uint(v).ok_or_else(|| err(&what, format!("cannot parse <node> '{v}'")))?,
            ),
        };
        if let Some(k) = node {
            if k as usize >= numa_cells {
                return Err(err(&what, format!("{lv_model} with index {index} is configured for a NUMA node ({k}) not present in the domain's <cpu><numa> array ({numa_cells})")));
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
                        &what,
                        format!("PCI controller {k} '{v}' out of range - must be {lo}-{hi}"),
                    ));
                }
            }
        }
        let id = match alias_of(*n) {
            Some(a) if valid_id(&a) && a != "pcie.0" => a,
            _ => format!("pci.{index}"),
        };
        if !ids_taken.insert(id.clone()) {
            return Err(err(&what, format!("duplicate alias '{id}'")));
        }
        let addr = pci_address(*n, &what)?;
        ctrls.push(Ctrl {
            index,
            start: n.range().start,
            id,
            model,
            addr,
            chassis,
            port,
            bus_nr,
            node,
            hotplug,
        });
    }
    ctrls.sort_by_key(|c| c.index);
    let idx_to_id: HashMap<u32, String> = ctrls.iter().map(|c| (c.index, c.id.clone())).collect();
    let bus_name = |bus: u64| -> String {
        if bus == 0 {
            cat.root.bus.clone()
        } else {
            idx_to_id
                .get(&(bus as u32))
                .cloned()
                .unwrap_or_else(|| format!("pci.{bus}"))
        }
    };

    // 2. Devices, in document order.
    let mut items: Vec<Item> = Vec::new();
    let mut sata0: Option<usize> = None;
    let mut has_usb = false;
    let mut has_balloon = false;
    let mut has_video = false;
    let mut has_graphics = false;
    let mut serial_have: BTreeSet<u32> = BTreeSet::new();
    let mut serial_need: BTreeSet<u32> = BTreeSet::new();
    let mut scsi_have: BTreeSet<u32> = BTreeSet::new();
    let mut scsi_need: BTreeSet<u32> = BTreeSet::new();
    let mut sata_have: BTreeSet<u32> = BTreeSet::new();
    let mut sata_need: BTreeSet<u32> = BTreeSet::new();
    let mut usb_next_index: u32 = 0;
    let mut usb_sets: BTreeMap<u32, BTreeSet<&str>> = BTreeMap::new();
    let mut first_video = true;
    // The controller a disk sits on: its drive address, else what libvirt derives from the
    // target name (`sdz` is disk 25: SATA controller 25 / 6 = 4, so libvirt adds SATA
    // controllers 1..4; SCSI buses are wide in the QEMU driver, 15 disks a controller).
    let drive_ctrl = |n: Node, per_controller: u64| -> u32 {
        let given = n
            .children()
            .find(|c| c.has_tag_name("address") && c.attribute("type") == Some("drive"))
            .and_then(|a| a.attribute("controller"))
            .and_then(parse_uint);
        let derived = || {
            child(n, "target")
                .and_then(|t| t.attribute("dev"))
                .and_then(disk_index)
                .map(|i| i / per_controller)
        };
        u32::try_from(given.or_else(derived).unwrap_or(0)).unwrap_or(u32::MAX)
    };
    let mut ordinal: HashMap<&str, usize> = HashMap::new();
    for n in &dev_elems {
        let tag = n.tag_name().name();
        let k = ordinal.entry(tag).or_insert(0);
        let what = format!("{tag}[{}]", *k + 1);
        *k += 1;
        let start = n.range().start;
        let mut push = |prefix: &'static str,
                        model: String,
                        kind: BusKind,
                        default_any: bool,
                        usb2: Option<(u32, u8)>|
         -> Result<(), InputError> {
            items.push(Item {
                prefix,
                alias: alias_of(*n),
                what: what.clone(),
                model,
                kind,
                src: Source::Element(start),
                addr: pci_address(*n, &what)?,
                default_any,
                usb2,
            });
            Ok(())
        };
        let model_type = child(*n, "model").and_then(|m| m.attribute("type"));
        match tag {
            "disk" => {
                let bus = child(*n, "target")
                    .and_then(|t| t.attribute("bus"))
                    .unwrap_or("");
                match bus {
                    "virtio" => {
                        if n.attribute("type") == Some("vhostuser") {
                            push(
                                "disk",
                                "vhost-user-blk-pci".into(),
                                BusKind::Pcie,
                                false,
                                None,
                            )?;
                        } else {
                            let (m, kd) =
                                virtio("virtio-blk-pci", n.attribute("model"), &what, opts)?;
                            push("disk", m, kd, false, None)?;
                        }
                    }
                    "scsi" => {
                        scsi_need.insert(drive_ctrl(*n, 15));
                    }
                    "sata" => {
                        sata_need.insert(drive_ctrl(*n, 6));
                    }
                    _ => {}
                }
            }
            "interface" => {
                if n.attribute("type") == Some("hostdev") {
                    push("hostdev", "vfio-pci".into(), BusKind::Pcie, false, None)?;
                    continue;
                }
                let m = model_type.unwrap_or("rtl8139");
                match m {
                    "virtio" | "virtio-transitional" | "virtio-non-transitional" => {
                        let (m, kd) = virtio("virtio-net-pci", Some(m), &what, opts)?;
                        push("net", m, kd, false, None)?;
                    }
                    "e1000e" | "igb" => push("net", m.into(), BusKind::Pcie, false, None)?,
                    "usb-net" | "spapr-vlan" | "smc91c111" | "lan9118" => {}
                    other => push("net", other.into(), BusKind::Pci, false, None)?,
                }
            }
            "hostdev" => {
                let unassigned = n.children().any(|c| {
                    c.has_tag_name("address") && c.attribute("type") == Some("unassigned")
                });
                if n.attribute("mode").unwrap_or("subsystem") != "subsystem" || unassigned {
                    continue;
                }
                match n.attribute("type") {
                    Some("pci") => push("hostdev", "vfio-pci".into(), BusKind::Pcie, false, None)?,
                    Some("mdev") if n.attribute("model") == Some("vfio-pci") => {
                        push("hostdev", "vfio-pci".into(), BusKind::Pcie, false, None)?
                    }
                    Some("scsi_host") => {
                        let (m, kd) = virtio("vhost-scsi-pci", n.attribute("model"), &what, opts)?;
                        push("hostdev", m, kd, false, None)?;
                    }
                    Some("scsi") => {
                        scsi_need.insert(drive_ctrl(*n, 15));
                    }
                    _ => {}
                }
            }
            "controller" => {
                let index = n.attribute("index").and_then(parse_uint).map(|i| i as u32);
                match n.attribute("type").unwrap_or("") {
                    "usb" => {
                        has_usb = true;
                        let model = n.attribute("model");
                        let companion =
                            matches!(model, Some("ich9-uhci1" | "ich9-uhci2" | "ich9-uhci3"));
                        let index = index.unwrap_or_else(|| {
                            // autoindex: a companion joins the newest set still lacking its model.
                            let m = model.unwrap_or("");
                            let join = if companion {
                                usb_sets
                                    .iter()
                                    .rev()
                                    .find(|(_, ms)| !ms.contains(m))
                                    .map(|(i, _)| *i)
                            } else {
                                None
                            };
                            join.unwrap_or(usb_next_index)
                        });
                        usb_next_index = usb_next_index.max(index + 1);
                        usb_sets
                            .entry(index)
                            .or_default()
                            .insert(model.unwrap_or(""));
                        let Some((qemu, kind, usb2fn)) =
                            usb_model(model).map_err(|e| err(&what, e))?
                        else {
                            continue;
                        };
                        push(
                            "usb",
                            qemu.into(),
                            kind,
                            usb2fn.is_some(),
                            usb2fn.map(|f| (index, f)),
                        )?;
                    }
                    "scsi" => {
                        scsi_have.insert(index.unwrap_or(scsi_have.len() as u32));
                        let model = n.attribute("model");
                        let (qemu, kind) = match model {
                            Some("virtio-scsi")
                            | Some("virtio-transitional")
                            | Some("virtio-non-transitional") => {
                                let v = if model == Some("virtio-scsi") {
                                    None
                                } else {
                                    model
                                };
                                virtio("virtio-scsi-pci", v, &what, opts)?
                            }
                            None | Some("lsilogic") => ("lsi53c895a".into(), BusKind::Pci),
                            Some("lsisas1068") => ("mptsas1068".into(), BusKind::Pci),
                            Some("lsisas1078") => ("megasas".into(), BusKind::Pci),
                            Some("vmpvscsi") => ("pvscsi".into(), BusKind::Pci),
                            Some("am53c974") => ("am53c974".into(), BusKind::Pci),
                            Some("dc390") => ("dc390".into(), BusKind::Pci),
                            Some("buslogic") => ("buslogic".into(), BusKind::Pci),
                            Some("ncr53c90") | Some("ibmvscsi") => continue,
                            Some(other) => {
                                return Err(err(
                                    &what,
                                    format!("unknown SCSI controller model '{other}'"),
                                ))
                            }
                        };
                        push("scsi", qemu, kind, false, None)?;
                    }
                    "virtio-serial" => {
                        serial_have.insert(index.unwrap_or(serial_have.len() as u32));
                        let (m, kd) =
                            virtio("virtio-serial-pci", n.attribute("model"), &what, opts)?;
                        push("virtio-serial", m, kd, false, None)?;
                    }
                    "sata" => {
                        let i = index.unwrap_or(sata_have.len() as u32);
                        sata_have.insert(i);
                        if i == 0 {
                            if let Some(a) = pci_address(*n, &what)? {
                                let empty = a.domain == 0 && a.bus == 0 && a.slot == 0;
                                if !empty
                                    && (a.domain, a.bus, a.slot, a.function) != (0, 0, 0x1f, 2)
                                {
                                    problems.push(Violation {
                                        device: alias_of(*n).unwrap_or_else(|| "sata0".into()),
                                        address: a.show(),
                                        rule: Rule::Root,
                                        message: "Primary SATA controller must have PCI address 0:0:1f.2 (the ICH9 AHCI built into q35)".into(),
                                    });
                                }
                            }
                            sata0 = Some(start);
                        } else {
                            push("sata", "ich9-ahci".into(), BusKind::Pci, false, None)?;
                        }
                    }
                    _ => {}
                }
            }
            "memballoon" => {
                has_balloon = true;
                match n.attribute("model") {
                    Some("virtio")
                    | Some("virtio-transitional")
                    | Some("virtio-non-transitional") => {
                        let m = n.attribute("model").filter(|m| *m != "virtio");
                        let (m, kd) = virtio("virtio-balloon-pci", m, &what, opts)?;
                        push("balloon", m, kd, false, None)?;
                    }
                    _ => {}
                }
            }
            "rng" => {
                if let Some(m) = n.attribute("model").filter(|m| m.starts_with("virtio")) {
                    let (m, kd) = virtio("virtio-rng-pci", Some(m), &what, opts)?;
                    push("rng", m, kd, false, None)?;
                }
            }
            "watchdog" => {
                if n.attribute("model") == Some("i6300esb") {
                    push("watchdog", "i6300esb".into(), BusKind::Pci, false, None)?;
                }
            }
            "video" => {
                has_video = true;
                let primary = first_video;
                first_video = false;
                let (qemu, kind) = match model_type.unwrap_or("cirrus") {
                    "vga" => ("VGA", BusKind::Pci),
                    "cirrus" => ("cirrus-vga", BusKind::Pci),
                    "vmvga" => ("vmware-svga", BusKind::Pci),
                    "qxl" => (if primary { "qxl-vga" } else { "qxl" }, BusKind::Pci),
                    "virtio" => (
                        if primary {
                            "virtio-vga"
                        } else {
                            "virtio-gpu-pci"
                        },
                        if opts.virtio_conventional {
                            BusKind::Pci
                        } else {
                            BusKind::Pcie
                        },
                    ),
                    "bochs" => ("bochs-display", BusKind::Pcie),
                    _ => continue,
                };
                push("video", qemu.into(), kind, primary, None)?;
            }
            "graphics" => has_graphics = true,
            "sound" => {
                let (qemu, any) = match n.attribute("model").unwrap_or("") {
                    "ich9" => ("ich9-intel-hda", true),
                    "ich6" => ("intel-hda", false),
                    "ac97" => ("AC97", false),
                    "es1370" => ("ES1370", false),
                    _ => continue,
                };
                push("sound", qemu.into(), BusKind::Pci, any, None)?;
            }
            "input" => {
                if n.attribute("bus") == Some("virtio") {
                    let t = n.attribute("type").unwrap_or("");
                    let base = match t {
                        "mouse" => "virtio-mouse-pci",
                        "keyboard" => "virtio-keyboard-pci",
                        "tablet" => "virtio-tablet-pci",
                        "passthrough" => "virtio-input-host-pci",
                        other => {
                            return Err(err(&what, format!("unknown virtio input type '{other}'")))
                        }
                    };
                    let m = n.attribute("model");
                    if t != "passthrough"
                        && matches!(m, Some("virtio-transitional" | "virtio-non-transitional"))
                    {
                        return Err(err(&what, format!("virtio (non-)transitional models are not supported for input type={t}")));
                    }
                    let (m, kd) = virtio(base, m, &what, opts)?;
                    push("input", m, kd, false, None)?;
                }
            }
            "vsock" => {
                let (m, kd) = virtio(
                    "vhost-vsock-pci",
                    n.attribute("model").filter(|m| *m != "virtio"),
                    &what,
                    opts,
                )?;
                push("vsock", m, kd, false, None)?;
            }
            "filesystem" => {
                if child(*n, "driver").and_then(|d| d.attribute("type")) == Some("virtiofs") {
                    push("fs", "vhost-user-fs-pci".into(), BusKind::Pcie, false, None)?;
                } else {
                    let (m, kd) = virtio("virtio-9p-pci", n.attribute("model"), &what, opts)?;
                    push("fs", m, kd, false, None)?;
                }
            }
            "shmem" => {
                let m = match model_type.unwrap_or("ivshmem-plain") {
                    "ivshmem-doorbell" => "ivshmem-doorbell",
                    _ => "ivshmem-plain",
                };
                push("shmem", m.into(), BusKind::Pci, false, None)?;
            }
            "serial" => {
                if child(*n, "target").and_then(|t| t.attribute("type")) == Some("pci-serial") {
                    push("serial", "pci-serial".into(), BusKind::Pci, false, None)?;
                }
            }
            "channel" | "console" => {
                if child(*n, "target").and_then(|t| t.attribute("type")) == Some("virtio") {
                    let c = n
                        .children()
                        .find(|c| {
                            c.has_tag_name("address")
                                && c.attribute("type") == Some("virtio-serial")
                        })
                        .and_then(|a| a.attribute("controller"))
                        .and_then(parse_uint)
                        .unwrap_or(0);
                    serial_need.insert(c as u32);
                }
            }
            "memory" => match n.attribute("model") {
                Some("virtio-pmem") => push(
                    "memory",
                    "virtio-pmem-pci".into(),
                    BusKind::Pcie,
                    false,
                    None,
                )?,
                Some("virtio-mem") => push(
                    "memory",
                    "virtio-mem-pci".into(),
                    BusKind::Pcie,
                    false,
                    None,
                )?,
                _ => {}
            },
            "iommu" if n.attribute("model") == Some("virtio") => push(
                "iommu",
                "virtio-iommu-pci".into(),
                BusKind::Pcie,
                false,
                None,
            )?,
            "crypto" if n.attribute("model") == Some("virtio") => push(
                "crypto",
                "virtio-crypto-pci".into(),
                BusKind::Pcie,
                false,
                None,
            )?,
            _ => {
                // Anything else that carries a PCI address keeps it (and its slot stays taken).
                if pci_address(*n, &what)?.is_some() {
                    push("dev", tag.to_string(), BusKind::Pcie, false, None)?;
                }
            }
        }
    }
    // 3. What libvirt adds by itself.
    if let (false, Some(lv)) = (has_usb, &opts.implicit_usb) {
        let set: Vec<&str> = if lv == "ich9-ehci1" {
            vec!["ich9-ehci1", "ich9-uhci1", "ich9-uhci2", "ich9-uhci3"]
        } else {
            vec![lv.as_str()]
        };
        for m in set {
            if let Some((qemu, kind, usb2fn)) =
                usb_model(Some(m)).map_err(|e| err("implicit USB controller", e))?
            {
                items.push(Item {
                    prefix: "usb",
                    alias: None,
                    what: "implicit usb".into(),
                    model: qemu.into(),
                    kind,
                    src: Source::Implicit(Implicit::Usb(m.to_string())),
                    addr: None,
                    default_any: usb2fn.is_some(),
                    usb2: usb2fn.map(|f| (0, f)),
                });
            }
        }
    }
    let mut implicit =
        |imp: Implicit, prefix: &'static str, model: &str, kind: BusKind, default_any: bool| {
            items.push(Item {
                prefix,
                alias: None,
                what: format!("implicit {prefix}"),
                model: model.into(),
                kind,
                src: Source::Implicit(imp),
                addr: None,
                default_any,
                usb2: None,
            });
        };
    for i in serial_need.difference(&serial_have) {
        let kind = if opts.virtio_conventional {
            BusKind::Pci
        } else {
            BusKind::Pcie
        };
        implicit(
            Implicit::VirtioSerial(*i),
            "virtio-serial",
            "virtio-serial-pci",
            kind,
            false,
        );
    }
    // libvirt adds every disk controller from 0 up to the highest one a disk sits on.
    for (bus, need) in [("scsi", &mut scsi_need), ("sata", &mut sata_need)] {
        if let Some(&top) = need.iter().next_back() {
            if top as usize >= crate::request::MAX_DEVICES {
                return Err(InputError::new(
                    "devices/disk/target",
                    format!("a {bus} disk's target or drive address puts it on {bus} controller {top}; libvirt would add {top} more controllers, past the {} device limit", crate::request::MAX_DEVICES),
                ));
            }
            need.extend(0..=top);
        }
    }
    for i in scsi_need.difference(&scsi_have) {
        implicit(
            Implicit::Scsi(*i),
            "scsi",
            "lsi53c895a",
            BusKind::Pci,
            false,
        );
    }
    for i in sata_need.difference(&sata_have) {
        if *i > 0 {
            implicit(Implicit::Sata(*i), "sata", "ich9-ahci", BusKind::Pci, false);
        }
    }
    if has_graphics && !has_video {
        implicit(Implicit::Video, "video", "cirrus-vga", BusKind::Pci, true);
    }
    if !has_balloon {
        let kind = if opts.virtio_conventional {
            BusKind::Pci
        } else {
            BusKind::Pcie
        };
        implicit(
            Implicit::Balloon,
            "balloon",
            "virtio-balloon-pci",
            kind,
            false,
        );
    }

    // 4. Ids: a valid alias, else prefix + ordinal.
    for c in &ctrls {
        ids_taken.insert(c.id.clone());
    }
    let mut item_ids: Vec<String> = Vec::with_capacity(items.len());
    let mut alias_seen: BTreeSet<String> = BTreeSet::new();
    for it in &items {
        if let Some(a) = &it.alias {
            if valid_id(a) && a != "pcie.0" {
                if !alias_seen.insert(a.clone()) || ids_taken.contains(a) {
                    return Err(err(&it.what, format!("duplicate alias '{a}'")));
                }
            }
        }
    }
    let mut counters: HashMap<&str, usize> = HashMap::new();
    for it in &items {
        let id = match &it.alias {
            Some(a) if valid_id(a) && a != "pcie.0" => a.clone(),
            _ => loop {
                let n = counters.entry(it.prefix).or_insert(0);
                let cand = format!("{}{}", it.prefix, n);
                *n += 1;
                if !ids_taken.contains(&cand) && !alias_seen.contains(&cand) {
                    break cand;
                }
            },
        };
        ids_taken.insert(id.clone());
        item_ids.push(id);
    }

    // 5. Pins: check what libvirt checks when parsing, and map bus indexes to ids.
    let mut pins: Vec<Option<Address>> = Vec::with_capacity(items.len());
    let mut mf_attrs: Vec<Option<String>> = Vec::with_capacity(items.len());
    for (it, id) in items.iter().zip(&item_ids) {
        mf_attrs.push(it.addr.as_ref().and_then(|a| a.mf.clone()));
        pins.push(match &it.addr {
            None => None,
            Some(a) => checked_address(a, id, &mut problems).map(|(bus, slot, function)| Address {
                bus: bus_name(bus),
                slot,
                function,
            }),
        });
    }
    let mut ctrl_pins: Vec<Option<Address>> = Vec::new();
    for c in &ctrls {
        ctrl_pins.push(match &c.addr {
            None => None,
            Some(a) => {
                checked_address(a, &c.id, &mut problems).map(|(bus, slot, function)| Address {
                    bus: bus_name(bus),
                    slot,
                    function,
                })
            }
        });
        if c.model.model == "pci-bridge" {
            if let Some(a) = &c.addr {
                if u64::from(c.index) <= a.bus && !(a.domain == 0 && a.bus == 0 && a.slot == 0) {
                    problems.push(Violation {
                        device: c.id.clone(),
                        address: a.show(),
                        rule: Rule::Legacy,
                        message: format!("PCI controller at index {} (0x{:02x}) has bus='0x{:02x}', but index must be larger than bus", c.index, c.index, a.bus),
                    });
                }
            }
        }
    }

    // 6. Controllers without an address go where libvirt would put them.
    place_controllers(cat, &ctrls, &mut ctrl_pins, &pins)?;

    // 7. libvirt's defaults for chassis, port and busNr.
    let mut lowest_bus_nr: u64 = ctrls.iter().filter_map(|c| c.bus_nr).min().unwrap_or(256);
    let mut controllers: Vec<ControllerRequest> = Vec::new();
    for (c, pin) in ctrls.iter().zip(&ctrl_pins) {
        let Some(address) = pin.clone() else { continue };
        let is_port = c.model.props.iter().any(|p| p == "chassis");
        let downstream = c.model.libvirt.model == "pcie-switch-downstream-port";
        let (mut chassis, mut port, mut bus_nr) = (c.chassis, c.port, c.bus_nr);
        if is_port {
            chassis = chassis.or(Some(u64::from(c.index)));
            port = port.or(Some(if downstream {
                u64::from(address.slot)
            } else {
                u64::from(address.slot) * 8 + u64::from(address.function)
            }));
        }
        if c.model.bus.bus_type == "pxb" && bus_nr.is_none() {
            if lowest_bus_nr <= 2 {
                return Err(err(&c.id, format!("No free busNr lower than current lowest busNr is available to auto-assign to bus {}. Must be manually assigned", c.index)));
            }
            lowest_bus_nr -= 2;
            bus_nr = Some(lowest_bus_nr);
        }
        controllers.push(ControllerRequest {
            id: c.id.clone(),
            model: c.model.model.clone(),
            hotplug: c.hotplug,
            address,
            chassis: chassis.map(|x| x as u8),
            port: port.map(|x| x as u8),
            bus_nr: bus_nr.map(|x| x as u8),
            numa_node: c.node.map(|x| x as u32),
            io_reserve: None,
        });
    }

    // 8. libvirt's rule for user addresses: a pinned endpoint on a bus that takes endpoints of
    //    the other kind is accepted as that kind.
    let accepts_of = |bus: &str| -> Option<&Vec<String>> {
        if bus == cat.root.bus {
            return Some(&cat.root.accepts);
        }
        let c = controllers.iter().find(|c| c.id == bus)?;
        cat.controller(&c.model).map(|m| &m.bus.accepts)
    };
    let mut kinds: Vec<BusKind> = items.iter().map(|i| i.kind).collect();
    for (k, pin) in kinds.iter_mut().zip(&pins) {
        let Some(a) = pin else { continue };
        let Some(acc) = accepts_of(&a.bus) else {
            continue;
        };
        let has = |x: BusKind| acc.iter().any(|c| c == x.category());
        if !has(*k) {
            let other = if *k == BusKind::Pcie {
                BusKind::Pci
            } else {
                BusKind::Pcie
            };
            if has(other) {
                *k = other;
            }
        }
    }

    // 9. Policy: metadata, then overrides.
    let meta = read_policy(root)?;
    let ov = &opts.overrides;
    let policy = Policy {
        default_hotplug: ov
            .default_hotplug
            .or(meta.default_hotplug)
            .unwrap_or_default(),
        spare_ports: ov.spare_ports.or(meta.spare_ports).unwrap_or(0),
        hotplug_off: ov.hotplug_off.or(meta.hotplug_off).unwrap_or_default(),
        pack_integrated: meta.pack_integrated.unwrap_or(false),
    };
    let explicit_default = ov.default_hotplug.is_some() || meta.default_hotplug.is_some();
    let find = |alias: &str| -> Option<usize> { item_ids.iter().position(|id| id == alias) };
    let mut named: BTreeMap<String, Hotplug> = BTreeMap::new();
    let mut extra: HashMap<usize, &MetaDevice> = HashMap::new();
    for d in &meta.devices {
        let i = find(&d.alias).ok_or_else(|| {
            err(
                "metadata/pciplan:policy/pciplan:device",
                format!("alias '{}' names no PCI device of this domain", d.alias),
            )
        })?;
        if let Some(h) = d.hotplug {
            named.insert(item_ids[i].clone(), h);
        }
        extra.insert(i, d);
    }
    for (alias, h) in &ov.hotplug {
        let i = find(alias).ok_or_else(|| {
            err(
                "--hotplug",
                format!(
                    "'{alias}' names no PCI device of this domain (known: {})",
                    item_ids.join(", ")
                ),
            )
        })?;
        named.insert(item_ids[i].clone(), *h);
    }

    // 10. The request.
    let mut devices: Vec<DeviceRequest> = Vec::new();
    let mut srcs: Vec<DevSrc> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let id = item_ids[i].clone();
        let pinned = pins[i].is_some();
        let hotplug = match named.get(&id) {
            Some(h) => Some(*h),
            None if it.default_any => Some(Hotplug::Any),
            None if pinned && !explicit_default => Some(Hotplug::Any),
            None => None,
        };
        let mut group = None;
        let mut numa_node = None;
        let mut kind = kinds[i];
        if let Some(d) = extra.get(&i) {
            group = d.group.clone();
            if let Some(k) = d.bus_kind {
                kind = k;
            }
            if let Some(nn) = d.numa_node {
                if nn as usize >= numa_cells {
                    return Err(err(
                        format!("metadata device '{}'", d.alias),
                        format!("numa-node {nn} needs a guest NUMA node {nn}, but the domain's <cpu><numa> has {numa_cells} cell(s): a pcie-expander-bus for node {nn} would be refused by libvirt [D-NUMA]"),
                    ));
                }
                numa_node = Some(nn);
            }
        }
        if group.is_none() {
            if let Some((index, _)) = it.usb2 {
                // A whole unpinned ICH9 USB2 set shares one slot, as libvirt does.
                let set: Vec<usize> = items
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| x.usb2.map(|u| u.0) == Some(index))
                    .map(|(j, _)| j)
                    .collect();
                if set.len() > 1 && set.iter().all(|&j| pins[j].is_none()) {
                    group = Some(format!("usb2-set{index}"));
                }
            }
        }
        devices.push(DeviceRequest {
            id: id.clone(),
            model: it.model.clone(),
            hotplug,
            group,
            numa_node,
            bus_kind: Some(kind),
            address: pins[i].clone(),
        });
        srcs.push(DevSrc {
            id,
            src: it.src.clone(),
            mf_attr: mf_attrs[i].clone(),
        });
    }
    // Members of a USB2 set in libvirt's function order (UHCI1, UHCI2, UHCI3, EHCI1).
    let fn_of = |id: &str| {
        items[item_ids.iter().position(|x| x == id).unwrap_or(0)]
            .usb2
            .map(|u| u.1)
            .unwrap_or(0)
    };
    let mut order: Vec<usize> = (0..devices.len()).collect();
    let mut first_pos: HashMap<String, usize> = HashMap::new();
    for (i, d) in devices.iter().enumerate() {
        if let Some(g) = &d.group {
            first_pos.entry(g.clone()).or_insert(i);
        }
    }
    order.sort_by_key(|&i| {
        let d = &devices[i];
        match &d.group {
            Some(g) if g.starts_with("usb2-set") => (first_pos[g], fn_of(&d.id) as usize),
            _ => (i, 0),
        }
    });
    let devices: Vec<DeviceRequest> = order.iter().map(|&i| devices[i].clone()).collect();
    let srcs: Vec<DevSrc> = order.iter().map(|&i| srcs[i].clone()).collect();

    let request = Request {
        name: name.clone(),
        machine: machine.to_string(),
        policy,
        devices,
        controllers,
    };
    request.check_shape()?;
    request.check_models(cat)?;
    let ctrl_srcs = ctrls
        .iter()
        .map(|c| CtrlSrc {
            id: c.id.clone(),
            index: c.index,
            start: c.start,
            mf_attr: c.addr.as_ref().and_then(|a| a.mf.clone()),
        })
        .collect();
    problems.sort();
    problems.dedup();
    Ok(Domain {
        text: xml.to_string(),
        request,
        problems,
        devices: srcs,
        controllers: ctrl_srcs,
        sata0,
        has_root,
        numa_cells,
        overridden: !ov.is_empty(),
        named,
        explicit: (
            ov.default_hotplug.or(meta.default_hotplug),
            ov.spare_ports.or(meta.spare_ports),
            ov.hotplug_off.or(meta.hotplug_off),
            meta.pack_integrated,
        ),
        meta_extra: meta
            .devices
            .iter()
            .filter(|d| !d.extra.is_empty())
            .map(|d| (d.alias.clone(), d.extra.clone()))
            .collect(),
    })
}

/// libvirt's parse-time address checks; `None` when the address is empty (domain, bus and slot
/// all 0 means "no address" to libvirt) or invalid (a problem is recorded).
fn checked_address(a: &RawAddr, id: &str, problems: &mut Vec<Violation>) -> Option<(u64, u8, u8)> {
    if a.domain == 0 && a.bus == 0 && a.slot == 0 {
        return None;
    }
    let mut bad = |msg: String| {
        problems.push(Violation {
            device: id.to_string(),
            address: a.show(),
            rule: Rule::Pin,
            message: msg,
        })
    };
    let mut ok = true;
    if a.domain != 0 {
        bad(format!(
            "Invalid PCI address {}. Only PCI domain 0 is available",
            a.show()
        ));
        ok = false;
    }
    if a.bus > 0xff {
        bad(format!(
            "Invalid PCI address bus='0x{:x}', must be <= 0xFF",
            a.bus
        ));
        ok = false;
    }
    if a.slot > 0x1f {
        bad(format!(
            "Invalid PCI address slot='0x{:x}', must be <= 0x1F",
            a.slot
        ));
        ok = false;
    }
    if a.function > 7 {
        bad(format!(
            "Invalid PCI address function=0x{:x}, must be <= 7",
            a.function
        ));
        ok = false;
    }
    ok.then_some((a.bus, a.slot as u8, a.function as u8))
}

/// Places existing controllers that have no address, as libvirt does: in index order, first
/// fit over buses in index order and slots from the lowest, root ports also taking free
/// functions of slots that hold only root ports, a dmi-to-pci-bridge at 00:1e.0 when free.
fn place_controllers(
    cat: &Catalog,
    ctrls: &[Ctrl],
    ctrl_pins: &mut [Option<Address>],
    dev_pins: &[Option<Address>],
) -> Result<(), InputError> {
    // bus id -> slot -> [(function, aggregate)]
    let mut occ: HashMap<String, BTreeMap<u8, Vec<(u8, bool)>>> = HashMap::new();
    for a in dev_pins.iter().flatten() {
        occ.entry(a.bus.clone())
            .or_default()
            .entry(a.slot)
            .or_default()
            .push((a.function, false));
    }
    for (c, a) in ctrls.iter().zip(ctrl_pins.iter()) {
        if let Some(a) = a {
            occ.entry(a.bus.clone())
                .or_default()
                .entry(a.slot)
                .or_default()
                .push((a.function, c.model.aggregate));
        }
    }
    for i in 0..ctrls.len() {
        if ctrl_pins[i].is_some() {
            continue;
        }
        let c = &ctrls[i];
        let class = c.model.class.as_str();
        let mut found: Option<Address> = None;
        if class == "dmi-bridge"
            && !occ
                .get(&cat.root.bus)
                .map(|m| m.contains_key(&0x1e))
                .unwrap_or(false)
        {
            found = Some(Address {
                bus: cat.root.bus.clone(),
                slot: 0x1e,
                function: 0,
            });
        }
        // Buses in index order: the root, then placed controllers.
        let mut buses: Vec<(String, Vec<u8>, u8, &Vec<String>)> = vec![(
            cat.root.bus.clone(),
            cat.root_free_slots(),
            cat.root.functions,
            &cat.root.accepts,
        )];
        for (j, p) in ctrls.iter().enumerate() {
            if j != i && ctrl_pins[j].is_some() {
                buses.push((
                    p.id.clone(),
                    (p.model.bus.slots.min..=p.model.bus.slots.max).collect(),
                    p.model.bus.functions,
                    &p.model.bus.accepts,
                ));
            }
        }
        'bus: for (bus, slots, functions, accepts) in &buses {
            if found.is_some() {
                break;
            }
            let auto_ok = accepts.iter().any(|a| a == class)
                && !(bus == &cat.root.bus && class == "pci-bridge");
            if !auto_ok {
                continue;
            }
            for &s in slots {
                let o = occ.get(bus).and_then(|m| m.get(&s));
                match o {
                    None => {
                        found = Some(Address {
                            bus: bus.clone(),
                            slot: s,
                            function: 0,
                        });
                        break 'bus;
                    }
                    Some(o) if c.model.aggregate && o.iter().all(|x| x.1) => {
                        if let Some(f) = (0..*functions).find(|f| !o.iter().any(|x| x.0 == *f)) {
                            found = Some(Address {
                                bus: bus.clone(),
                                slot: s,
                                function: f,
                            });
                            break 'bus;
                        }
                    }
                    _ => {}
                }
            }
        }
        let Some(a) = found else {
            return Err(err(
                format!("controller[@type='pci'][@index='{}']", c.index),
                format!("a PCI slot is needed to connect a PCI controller model='{}', but none is available, and it cannot be automatically added", c.model.libvirt.model),
            ));
        };
        occ.entry(a.bus.clone())
            .or_default()
            .entry(a.slot)
            .or_default()
            .push((a.function, c.model.aggregate));
        ctrl_pins[i] = Some(a);
    }
    Ok(())
}

/// `<pciplan:device>` in the metadata.
#[derive(Debug, Default)]
struct MetaDevice {
    alias: String,
    hotplug: Option<Hotplug>,
    group: Option<String>,
    numa_node: Option<u32>,
    bus_kind: Option<BusKind>,
    /// Attributes other than `alias` and `hotplug`, as written.
    extra: Vec<(String, String)>,
}

/// `<pciplan:policy>` in the metadata.
#[derive(Debug, Default)]
struct MetaPolicy {
    default_hotplug: Option<Hotplug>,
    spare_ports: Option<u32>,
    hotplug_off: Option<OffStrategy>,
    pack_integrated: Option<bool>,
    devices: Vec<MetaDevice>,
}

fn read_policy(root: Node) -> Result<MetaPolicy, InputError> {
    let mut out = MetaPolicy::default();
    let Some(meta) = child(root, "metadata") else {
        return Ok(out);
    };
    let pols: Vec<Node> = meta
        .children()
        .filter(|c| c.is_element() && c.tag_name().namespace() == Some(POLICY_NS))
        .collect();
    let f = "metadata/pciplan:policy";
    if pols.len() > 1 {
        return Err(err(f, "more than one element in the pciplan namespace"));
    }
    let Some(p) = pols.first() else {
        return Ok(out);
    };
    if p.tag_name().name() != "policy" {
        return Err(err(
            f,
            format!(
                "unknown element <{}> in the pciplan namespace (expected <policy>)",
                p.tag_name().name()
            ),
        ));
    }
    let hp = |v: &str, k: &str| {
        Hotplug::parse(v).ok_or_else(|| err(f, format!("{k}='{v}': expected on, off or any")))
    };
    for a in p.attributes() {
        if a.namespace().is_some() {
            continue;
        }
        let v = a.value();
        match a.name() {
            "default-hotplug" => out.default_hotplug = Some(hp(v, "default-hotplug")?),
            "spare-ports" => {
                out.spare_ports = Some(
                    v.trim()
                        .parse()
                        .map_err(|_| err(f, format!("spare-ports='{v}': expected a number")))?,
                )
            }
            "hotplug-off" => {
                out.hotplug_off = Some(OffStrategy::parse(v).ok_or_else(|| {
                    err(
                        f,
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
                            f,
                            format!("pack-integrated='{v}': expected true or false"),
                        ))
                    }
                })
            }
            other => return Err(err(f, format!("unknown attribute '{other}'"))),
        }
    }
    let mut seen = BTreeSet::new();
    for d in p.children().filter(|c| c.is_element()) {
        if d.tag_name().name() != "device" || d.tag_name().namespace() != Some(POLICY_NS) {
            return Err(err(
                f,
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
                "hotplug" => md.hotplug = Some(hp(v, "hotplug")?),
                "group" => md.group = Some(v.to_string()),
                "numa-node" => {
                    md.numa_node = Some(
                        v.trim()
                            .parse()
                            .map_err(|_| err(f, format!("numa-node='{v}': expected a number")))?,
                    )
                }
                "bus-kind" => {
                    md.bus_kind = Some(match v {
                        "pcie" => BusKind::Pcie,
                        "pci" => BusKind::Pci,
                        _ => return Err(err(f, format!("bus-kind='{v}': expected pcie or pci"))),
                    })
                }
                other => {
                    return Err(err(
                        f,
                        format!("<pciplan:device>: unknown attribute '{other}'"),
                    ))
                }
            }
        }
        if md.alias.is_empty() {
            return Err(err(f, "<pciplan:device> without alias"));
        }
        if !seen.insert(md.alias.clone()) {
            return Err(err(f, format!("alias '{}' listed twice", md.alias)));
        }
        out.devices.push(md);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_like_libvirt() {
        assert_eq!(parse_uint("0x1f"), Some(31));
        assert_eq!(parse_uint("4"), Some(4));
        assert_eq!(parse_uint("010"), Some(8));
        assert_eq!(parse_uint("0"), Some(0));
        assert_eq!(parse_uint("x"), None);
    }

    #[test]
    fn disk_names_index_like_libvirt() {
        assert_eq!(disk_index("sda"), Some(0));
        assert_eq!(disk_index("sdz"), Some(25));
        assert_eq!(disk_index("sdaa"), Some(26));
        assert_eq!(disk_index("vdb"), Some(1));
        assert_eq!(disk_index("xvdc"), Some(2));
        assert_eq!(disk_index("sd"), None);
        assert_eq!(disk_index("sd1"), None);
    }

    fn sata_controllers(disks: &str) -> usize {
        let xml = format!("<domain type='qemu'><name>t</name><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>{disks}</devices></domain>");
        let d = read(&xml, &ReadOptions::default()).unwrap();
        d.request
            .devices
            .iter()
            .filter(|x| x.model == "ich9-ahci")
            .count()
    }

    #[test]
    fn sata_controllers_follow_the_target_names() {
        let disk = |dev: &str| {
            format!("<disk type='file' device='cdrom'><target dev='{dev}' bus='sata'/></disk>")
        };
        // Controller 0 is the chipset's own at 00:1f.2 (no device to place); libvirt adds
        // one more per 6 disks after it (seen with libvirt 9.0: `sdz` gave SATA 1..4).
        assert_eq!(sata_controllers(&disk("sda")), 0);
        assert_eq!(sata_controllers(&disk("sdf")), 0);
        assert_eq!(sata_controllers(&disk("sdg")), 1);
        assert_eq!(sata_controllers(&disk("sdz")), 4);
        let pinned = "<disk type='file' device='cdrom'><target dev='sdz' bus='sata'/><address type='drive' controller='0' bus='0' unit='1'/></disk>";
        assert_eq!(sata_controllers(pinned), 0);
    }
}
