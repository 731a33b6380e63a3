//! Domain XML → request (see the module documentation of [`crate::libvirt`] for the rules).
//!
//! A [`Reader`] walks `<devices>` once, in document order, handing each element to the
//! handler for its kind; then libvirt's own additions ([`super::implicit`]), ids, pins, the
//! placement of PCI controllers without an address, and the policy are added in turn:
//!
//! | step | file |
//! |---|---|
//! | `<controller type='pci'>`: indexes, models, targets | `pci_controllers.rs` |
//! | `<disk>` (and the SCSI/SATA controllers disks need) | `disks.rs` |
//! | `<interface>` | `interfaces.rs` |
//! | `<hostdev>` | `hostdevs.rs` |
//! | `<video>`, `<graphics>` | `video.rs` |
//! | `<sound>` | `sound.rs` |
//! | `<controller>` of other types (USB, SCSI, SATA, virtio-serial) | `controllers.rs` |
//! | every other element kind | `other_devices.rs` |
//! | what libvirt adds by itself | `../implicit.rs` |
//! | ids, pins, kinds of pinned endpoints | `ids.rs` |
//! | PCI controllers without an address, libvirt's target defaults | `pci_placement.rs` |
//! | `pciplan:policy` metadata and command-line overrides | `policy.rs` |
//! | the request, in libvirt's order | `assemble.rs` |

mod assemble;
mod controllers;
mod disks;
mod hostdevs;
mod ids;
mod interfaces;
pub(super) mod models;
mod other_devices;
mod pci_controllers;
mod pci_placement;
mod policy;
mod sound;
mod video;
pub(super) mod xml;

#[cfg(test)]
mod pc_tests;
#[cfg(test)]
mod virt_tests;

use std::collections::HashMap;

use roxmltree::{Document, Node, ParsingOptions};

use super::implicit::{self, Seen};
use super::{Domain, ReadOptions, Source};
use crate::catalog::{BusKind, Catalog};
use crate::error::{InputError, Violation};
use crate::request::{Firmware, MAX_REQUEST_BYTES};

pub use policy::POLICY_NS;
use xml::{alias_of, child, err, pci_address, RawAddr};

/// Most XML nodes accepted (a guest with 4096 devices stays far below).
const MAX_NODES: u32 = 2_000_000;

/// A device found in the XML (or implied), before ids and policy.
#[derive(Debug)]
pub(in crate::libvirt) struct Item {
    /// Id prefix when the device has no usable alias (`net`, `disk`, ...).
    pub prefix: &'static str,
    pub alias: Option<String>,
    /// The element, for messages (`interface[2]`, `implicit usb`).
    pub what: String,
    /// QEMU device model.
    pub model: String,
    pub kind: BusKind,
    pub src: Source,
    pub addr: Option<RawAddr>,
    /// libvirt always integrates it (primary video, ICH9 sound, ICH9 USB2 sets).
    pub default_any: bool,
    /// ICH9 USB2 set: (controller index, function libvirt gives it).
    pub usb2: Option<(u32, u8)>,
}

impl Item {
    /// A device libvirt adds by itself (no element, no alias, no address).
    pub(in crate::libvirt) fn implicit(
        imp: super::Implicit,
        prefix: &'static str,
        model: &str,
        kind: BusKind,
        default_any: bool,
    ) -> Item {
        Item {
            prefix,
            alias: None,
            what: format!("implicit {prefix}"),
            model: model.into(),
            kind,
            src: Source::Implicit(imp),
            addr: None,
            default_any,
            usb2: None,
        }
    }
}

/// One element of `<devices>` being read: the node and its name for messages (`disk[2]`,
/// counted per tag in document order).
pub(super) struct El<'a, 'i> {
    node: Node<'a, 'i>,
    what: String,
}

impl<'a, 'i> El<'a, 'i> {
    fn attr(&self, name: &str) -> Option<&'a str> {
        self.node.attribute(name)
    }

    /// `<model type=...>`.
    fn model_type(&self) -> Option<&'a str> {
        child(self.node, "model").and_then(|m| m.attribute("type"))
    }

    /// `<target type=...>` (channels, consoles, serial ports).
    fn target_type(&self) -> Option<&'a str> {
        child(self.node, "target").and_then(|t| t.attribute("type"))
    }
}

/// The state of one read of `<devices>`: the devices found so far and what libvirt will add.
struct Reader<'o, 'c> {
    opts: &'o ReadOptions,
    /// The device models the machine has.
    cat: &'c Catalog,
    items: Vec<Item>,
    /// Address errors libvirt finds while parsing.
    problems: Vec<Violation>,
    /// What the domain has and needs, for libvirt's own additions.
    seen: Seen,
    /// Autoindexing of USB controllers.
    usb: controllers::UsbIndexes,
    /// Primary SATA controller element (its start), if the input has one.
    sata0: Option<usize>,
    /// No `<video>` read yet: the next one is the primary.
    first_video: bool,
    /// The machine is `pc` (i440fx, a `pci-root` catalog): the PIIX3 IDE and USB at 00:01.1
    /// and 00:01.2 are the chipset's, SATA controller 0 is an ordinary AHCI device.
    pc: bool,
    /// The machine is aarch64 `virt` (VIRT-ROOT): no chipset device, libvirt adds no USB
    /// controller and no balloon, its video is `virtio-gpu-pci` behind a root port.
    virt: bool,
}

impl<'o, 'c> Reader<'o, 'c> {
    fn new(opts: &'o ReadOptions, cat: &'c Catalog) -> Self {
        Reader {
            opts,
            cat,
            items: Vec::new(),
            problems: Vec::new(),
            seen: Seen::default(),
            usb: controllers::UsbIndexes::default(),
            sata0: None,
            first_video: true,
            pc: is_pci_root(cat),
            virt: is_virt_catalog(cat),
        }
    }

    /// Hands one element of `<devices>` to the handler of its kind.
    fn element(&mut self, el: &El) -> Result<(), InputError> {
        match el.node.tag_name().name() {
            "disk" => self.disk(el),
            "interface" => self.interface(el),
            "hostdev" => self.hostdev(el),
            "controller" => self.controller(el),
            "video" => self.video(el),
            "graphics" => {
                self.seen.graphics = true;
                Ok(())
            }
            "sound" => self.sound(el),
            _ => self.other_device(el),
        }
    }

    /// Records a PCI device read from `el`.
    fn push(
        &mut self,
        el: &El,
        prefix: &'static str,
        model: impl Into<String>,
        kind: BusKind,
    ) -> Result<(), InputError> {
        self.push_item(el, prefix, model.into(), kind, false, None)
    }

    /// Records a PCI device read from `el`, with libvirt's integration (`default_any`) and
    /// USB2 set membership.
    fn push_item(
        &mut self,
        el: &El,
        prefix: &'static str,
        model: String,
        kind: BusKind,
        default_any: bool,
        usb2: Option<(u32, u8)>,
    ) -> Result<(), InputError> {
        self.items.push(Item {
            prefix,
            alias: alias_of(el.node),
            what: el.what.clone(),
            model,
            kind,
            src: Source::Element(el.node.range().start),
            addr: pci_address(el.node, &el.what)?,
            default_any,
            usb2,
        });
        Ok(())
    }

    /// A virtio device's QEMU model and kind (see [`models::virtio`]).
    fn virtio(
        &self,
        base: &str,
        variant: Option<&str>,
        el: &El,
    ) -> Result<(String, BusKind), InputError> {
        models::virtio(base, variant, &el.what, self.opts)
    }
}

/// The parts of `<domain>` outside `<devices>` that placement depends on.
struct Head {
    name: Option<String>,
    machine: String,
    firmware: Firmware,
    numa_cells: usize,
}

fn parse_document(xml: &str) -> Result<Document<'_>, InputError> {
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
    Ok(doc)
}

/// The firmware a domain boots (rule R-IO): UEFI when `<os firmware='efi'>` or a
/// `<loader>` is a pflash image or names OVMF/edk2/AAVMF, as libvirt decides; BIOS otherwise.
fn firmware_of(root: Node) -> Firmware {
    let Some(os) = child(root, "os") else {
        return Firmware::Bios;
    };
    let efi_loader = child(os, "loader").is_some_and(|l| {
        let path = l.text().unwrap_or("").to_ascii_lowercase();
        l.attribute("type") == Some("pflash")
            || ["ovmf", "edk2", "aavmf", "qemu_efi"]
                .iter()
                .any(|k| path.contains(k))
    });
    if os.attribute("firmware") == Some("efi") || efi_loader {
        Firmware::Uefi
    } else {
        Firmware::Bios
    }
}

fn is_q35(machine: &str) -> bool {
    machine == "q35" || machine.starts_with("pc-q35-")
}

/// `pc` and `pc-i440fx-*` (PC-ROOT).
fn is_pc(machine: &str) -> bool {
    machine == "pc" || machine.starts_with("pc-i440fx-")
}

/// `virt` and `virt-*` (aarch64, VIRT-ROOT).
fn is_virt(machine: &str) -> bool {
    machine == "virt" || machine.starts_with("virt-")
}

/// Whether the catalog's root bus is a conventional `pci-root` (`pc`, PC-ROOT).
pub(super) fn is_pci_root(cat: &Catalog) -> bool {
    cat.root.bus_type == "pci-root"
}

/// Whether the catalog is one of aarch64 `virt` (its machine `virt` or `virt-*`).
pub(super) fn is_virt_catalog(cat: &Catalog) -> bool {
    is_virt(&cat.machine)
}

/// The machine family: `q35`, `pc` or `virt` (what the catalog must be for).
fn family(machine: &str) -> &'static str {
    if is_pc(machine) {
        "pc"
    } else if is_virt(machine) {
        "virt"
    } else {
        "q35"
    }
}

/// The machine family a catalog is for.
fn catalog_family(cat: &Catalog) -> &'static str {
    if is_pci_root(cat) {
        "pc"
    } else if is_virt_catalog(cat) {
        "virt"
    } else {
        "q35"
    }
}

/// The architecture a machine family runs on, and the `arch` values libvirt takes for it.
fn arch_ok(machine: &str, arch: &str) -> bool {
    if is_virt(machine) {
        arch == "aarch64"
    } else {
        arch == "x86_64" || arch == "i686"
    }
}

fn read_head(root: Node) -> Result<Head, InputError> {
    let name = child(root, "name")
        .and_then(|n| n.text())
        .map(|s| s.trim().to_string());
    let os_type = child(root, "os").and_then(|o| child(o, "type"));
    let machine = os_type.and_then(|t| t.attribute("machine")).unwrap_or("");
    if !is_q35(machine) && !is_pc(machine) && !is_virt(machine) {
        let shown = if machine.is_empty() {
            "(none: libvirt's default is 'pc', i440fx; write it out)".to_string()
        } else {
            format!("'{machine}'")
        };
        return Err(err("os/type@machine", format!("unsupported machine {shown}: pciplan plans q35 ('q35', 'pc-q35-*'), i440fx ('pc', 'pc-i440fx-*') and aarch64 virt ('virt', 'virt-*') guests")));
    }
    match os_type.and_then(|t| t.attribute("arch")) {
        Some(arch) if !arch_ok(machine, arch) => {
            let want = if is_virt(machine) {
                "'aarch64'"
            } else {
                "'x86_64' or 'i686'"
            };
            return Err(err(
                "os/type@arch",
                format!("architecture '{arch}' does not go with machine '{machine}': it needs {want} (pciplan plans x86 q35 and pc, and aarch64 virt guests)"),
            ));
        }
        // libvirt's default architecture is the host's (x86_64 here), which has no virt.
        None if is_virt(machine) => {
            return Err(err(
                "os/type@arch",
                format!("machine '{machine}' is aarch64: write arch='aarch64' (libvirt's default is the host's architecture)"),
            ));
        }
        _ => {}
    }
    let numa_cells = child(root, "cpu")
        .and_then(|c| child(c, "numa"))
        .map(|n| n.children().filter(|c| c.has_tag_name("cell")).count())
        .unwrap_or(0);
    Ok(Head {
        name,
        machine: machine.to_string(),
        // aarch64 virt has no BIOS: libvirt boots it with AAVMF (UEFI) or a direct kernel,
        // whose PCI enumeration pciplan plans as UEFI's.
        firmware: if is_virt(machine) {
            Firmware::Uefi
        } else {
            firmware_of(root)
        },
        numa_cells,
    })
}

/// Reads a domain for the built-in catalog of its machine (`<os><type machine>`: q35, pc or
/// virt).
pub(crate) fn read_builtin(xml: &str, opts: &ReadOptions) -> Result<Domain<'static>, InputError> {
    let doc = parse_document(xml)?;
    let head = read_head(doc.root_element())?;
    let cat =
        Catalog::for_machine(&head.machine).map_err(|e| err("os/type@machine", e.to_string()))?;
    read_doc(xml, &doc, head, opts, cat)
}

/// Reads a domain: the request to plan with `cat` and where each of its parts lives in the XML.
pub(crate) fn read<'c>(
    xml: &str,
    opts: &ReadOptions,
    cat: &'c Catalog,
) -> Result<Domain<'c>, InputError> {
    let doc = parse_document(xml)?;
    let head = read_head(doc.root_element())?;
    if family(&head.machine) != catalog_family(cat) {
        return Err(err(
            "os/type@machine",
            format!(
                "machine '{}' does not match the catalog '{}' (root bus type '{}'): a pc domain needs a pci-root catalog, a q35 domain a pcie-root one, a virt domain a virt one",
                head.machine, cat.machine, cat.root.bus_type
            ),
        ));
    }
    read_doc(xml, &doc, head, opts, cat)
}

fn read_doc<'c>(
    xml: &str,
    doc: &Document,
    head: Head,
    opts: &ReadOptions,
    cat: &'c Catalog,
) -> Result<Domain<'c>, InputError> {
    let root = doc.root_element();
    let dev_elems: Vec<Node> = child(root, "devices")
        .map(|d| d.children().filter(|c| c.is_element()).collect())
        .unwrap_or_default();

    let pci = pci_controllers::read(cat, &dev_elems, head.numa_cells)?;
    let mut r = Reader::new(opts, cat);
    let mut ordinal: HashMap<&str, usize> = HashMap::new();
    for n in &dev_elems {
        let tag = n.tag_name().name();
        let k = ordinal.entry(tag).or_insert(0);
        *k += 1;
        let el = El {
            node: *n,
            what: format!("{tag}[{k}]"),
        };
        r.element(&el)?;
    }
    r.items
        .extend(implicit::additions(&r.seen, opts, r.pc, r.virt)?);

    let ids = ids::assign(&r.items, &pci.ids)?;
    let buses = ids::Buses::new(cat, &pci.ctrls);
    let pins = ids::device_pins(&r.items, &ids, &buses, &mut r.problems);
    let mut ctrl_pins = ids::controller_pins(&pci.ctrls, &buses, &mut r.problems);
    pci_placement::place(cat, &pci.ctrls, &mut ctrl_pins, &pins)?;
    let controllers = pci_placement::requests(&pci.ctrls, &ctrl_pins)?;
    let kinds = ids::pinned_kinds(cat, &r.items, &pins, &controllers);

    let meta = policy::read_metadata(root)?;
    let pol = policy::resolve(&meta, &opts.overrides, &ids)?;
    assemble::domain(assemble::Parts {
        xml,
        cat,
        name: head.name,
        machine: head.machine,
        firmware: head.firmware,
        numa_cells: head.numa_cells,
        items: r.items,
        ids,
        pins,
        kinds,
        controllers,
        pci,
        problems: r.problems,
        sata0: r.sata0,
        policy: pol,
        overridden: !opts.overrides.is_empty(),
    })
}

#[cfg(test)]
pub(super) mod testing {
    //! Helpers for the handlers' unit tests.
    use super::*;

    /// `ID MODEL` of each device a domain's request plans, in request order.
    pub fn ids_models(d: &Domain) -> Vec<String> {
        d.request
            .devices
            .iter()
            .map(|x| format!("{} {}", x.id, x.model))
            .collect()
    }

    /// A q35 domain with these `<devices>`, read with the default options.
    pub fn domain(devices: &str) -> Result<Domain<'static>, InputError> {
        domain_with(devices, &ReadOptions::default())
    }

    /// A q35 domain with these `<devices>`, read with `opts`.
    pub fn domain_with(devices: &str, opts: &ReadOptions) -> Result<Domain<'static>, InputError> {
        let xml = format!("<domain type='kvm'><name>t</name><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>{devices}</devices></domain>");
        read(&xml, opts, Catalog::q35())
    }

    /// A pc (i440fx) domain with these `<devices>`, read with the default options.
    pub fn pc_domain(devices: &str) -> Result<Domain<'static>, InputError> {
        let xml = format!("<domain type='kvm'><name>t</name><os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os><devices>{devices}</devices></domain>");
        read(&xml, &ReadOptions::default(), Catalog::pc())
    }

    /// The (id, QEMU model) of every device read, implicit ones included.
    pub fn models(devices: &str) -> Vec<(String, String)> {
        let d = domain(devices).unwrap_or_else(|e| panic!("{devices}: {e}"));
        d.request
            .devices
            .iter()
            .map(|x| (x.id.to_string(), x.model.to_string()))
            .collect()
    }

    /// The QEMU models read from the elements of `devices` (libvirt's additions left out).
    pub fn element_models(devices: &str) -> Vec<String> {
        let d = domain(devices).unwrap_or_else(|e| panic!("{devices}: {e}"));
        d.request
            .devices
            .iter()
            .zip(&d.devices)
            .filter(|(_, s)| matches!(s.src, Source::Element(_)))
            .map(|(x, _)| x.model.to_string())
            .collect()
    }
}
