//! libvirt domain XML in and out (docs/formats.md "`--format libvirt`" and "Hotplug policy inside a
//! libvirt domain XML"; docs/libvirt.md).
//!
//! [`Domain::parse`] reads a q35 domain XML into a [`Request`] plus a side table that remembers
//! which XML element each request device and controller came from. [`Domain::write`] puts a
//! [`Plan`] back into the original text: an `<address type='pci'>` on every PCI device, the new
//! `<controller type='pci'>` elements in libvirt's own form, and the devices libvirt would add by
//! itself (USB controller, memballoon, SATA controller, ...) written out explicitly, so that
//! `virsh define` adds nothing and moves nothing. Everything else in the document (elements,
//! attributes, comments, metadata, formatting) is kept byte for byte: the writer splices text
//! into the original rather than re-serialising a tree.
//!
//! ```
//! let xml = r#"<domain type='kvm'><name>g</name><os><type machine='q35'>hvm</type></os>
//!   <devices><interface type='network'><source network='default'/><model type='virtio'/></interface></devices>
//! </domain>"#;
//! let dom = pciplan::libvirt::Domain::parse(xml).unwrap();
//! let plan = dom.plan().unwrap();
//! let out = dom.write(&plan).unwrap();
//! assert!(out.contains("<controller type='pci' index='1' model='pcie-root-port'>"));
//! assert!(out.contains("<memballoon model='virtio'>")); // libvirt's implicit balloon, planned
//! ```
//!
//! Reading follows libvirt 9.0 (QEMU 7.2) where it decides placement:
//! - which elements take a PCI address and which QEMU device they become (virtio is PCI
//!   Express on q35; `virtio-transitional`, e1000, rtl8139 (the default NIC model), lsilogic
//!   (the default SCSI model), qxl, vga, cirrus, ich9 sound, ... are conventional PCI; hostdevs are
//!   PCI Express unless the policy says `bus-kind='pci'`);
//! - an `<address type='pci'>` is a pin (`bus` is the controller index); an address with domain,
//!   bus and slot all 0 counts as no address, as in libvirt;
//! - a pinned endpoint on a bus that takes endpoints of the other kind is accepted as that kind
//!   (libvirt's rule for user addresses; QEMU accepts it too);
//! - existing `<controller type='pci'>` elements are pins; one without an address is placed the
//!   way libvirt would place it (first fit, root ports packed 8 per slot, a dmi-to-pci-bridge at
//!   00:1e.0), and missing `chassis`/`port`/`busNr` get libvirt's defaults;
//! - the primary video, ICH9 sound and ICH9 USB2 sets, which libvirt always puts on `pcie.0`,
//!   default to hotplug `any` unless the policy names them; a pinned device that the policy does
//!   not name (and with no explicit default) is `any` too: its address is the user's choice.

mod check;
mod implicit;
mod read;
mod write;

use std::collections::BTreeMap;

use crate::catalog::Catalog;
use crate::error::{InputError, PlanError, Violation};
use crate::plan::Plan;
use crate::policy_patch::PolicyPatch;
use crate::request::{Hotplug, Request};

pub(crate) use implicit::Implicit;
pub use read::POLICY_NS;

/// Policy settings from the command line; each one that is set wins over the domain's
/// `pciplan:policy` metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--default-hotplug`, `--spare-ports`, `--hotplug-off-strategy`.
    pub policy: PolicyPatch,
    /// `--hotplug ALIAS=off|on|any`, in command-line order (a device alias, or the id pciplan
    /// gave a device without one).
    pub hotplug: Vec<(String, Hotplug)>,
}

impl Overrides {
    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self == &Overrides::default()
    }

    /// Parses one `ALIAS=off|on|any` argument.
    pub fn parse_hotplug_arg(arg: &str) -> Result<(String, Hotplug), String> {
        let (alias, v) = arg
            .split_once('=')
            .ok_or_else(|| format!("'{arg}': expected ALIAS=off|on|any"))?;
        let h =
            Hotplug::parse(v).ok_or_else(|| format!("'{arg}': hotplug must be off, on or any"))?;
        if alias.is_empty() {
            return Err(format!("'{arg}': empty alias"));
        }
        Ok((alias.to_string(), h))
    }

    /// Applies the overrides to a JSON request (`--hotplug` names device ids).
    pub fn apply_to(&self, req: &mut Request) -> Result<(), String> {
        self.policy.apply(&mut req.policy);
        for (id, h) in &self.hotplug {
            let d = req
                .devices
                .iter_mut()
                .find(|d| d.id == id)
                .ok_or_else(|| format!("--hotplug: no device '{id}'"))?;
            d.hotplug = Some(*h);
        }
        Ok(())
    }
}

/// How to read a domain.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Policy from the command line.
    pub overrides: Overrides,
    /// Treat plain `virtio` devices as conventional PCI, as libvirt does with a QEMU that lacks
    /// `virtio-pci.disable-legacy` (only useful to compare with old libvirt test outputs).
    pub virtio_conventional: bool,
    /// The USB controller model libvirt adds to a domain without one: `qemu-xhci` (libvirt 9.0
    /// with QEMU 7.2, the default), `ich9-ehci1` (an ICH9 USB2 set, older libvirt), or `None`
    /// when the QEMU has no USB controller libvirt could add.
    pub implicit_usb: Option<String>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            overrides: Overrides::default(),
            virtio_conventional: false,
            implicit_usb: Some("qemu-xhci".to_string()),
        }
    }
}

/// Where a request device comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// An element of the input, by the byte offset where it starts.
    Element(usize),
    /// A device libvirt would add by itself; the writer creates the element.
    Implicit(Implicit),
}

/// One request device and its element.
#[derive(Debug, Clone)]
pub(crate) struct DevSrc {
    pub id: String,
    pub src: Source,
    /// Value of an explicit `multifunction` attribute on its input address.
    pub mf_attr: Option<String>,
}

/// One existing `<controller type='pci'>` (index > 0).
#[derive(Debug, Clone)]
pub(crate) struct CtrlSrc {
    pub id: String,
    pub index: u32,
    /// Byte offset of the element.
    pub start: usize,
    /// Whether the input gave it an index / an address / a full target.
    pub mf_attr: Option<String>,
}

/// A parsed domain: the request to plan and where each part of it lives in the XML, read
/// against one machine catalog (the built-in q35 one, or one given to [`Domain::read`]) that
/// planning, checking and writing then use too.
#[derive(Debug, Clone)]
pub struct Domain<'c> {
    text: String,
    cat: &'c Catalog,
    /// The request: devices in document order (then libvirt's implicit ones), existing PCI
    /// controllers as pinned controllers, policy from metadata and overrides.
    pub request: Request,
    /// Address errors found while reading (libvirt's parse-time checks, SATA at 00:1f.2, ...);
    /// planning refuses a domain with any, `check` lists them with the validator's.
    pub problems: Vec<Violation>,
    /// What reading decided that the user did not ask for, one sentence each (a device QEMU
    /// can never hot-unplug placed as `any` under a default `on`); the command line prints
    /// them on standard error, and [`Domain::plan`] and [`Domain::adopt`] copy them into the
    /// plan ([`Plan::notes`]).
    pub notes: Vec<String>,
    pub(crate) devices: Vec<DevSrc>,
    pub(crate) controllers: Vec<CtrlSrc>,
    /// Primary SATA controller element (its start), if the input has one.
    pub(crate) sata0: Option<usize>,
    /// Whether a `<controller type='pci' index='0'>` is present.
    pub(crate) has_root: bool,
    /// The `<controller type='pci' index='0'>` element (its start), if present.
    pub(crate) root_start: Option<usize>,
    /// Number of guest NUMA cells.
    pub(crate) numa_cells: usize,
    /// Whether the overrides changed the policy (the writer then records it in the metadata).
    pub(crate) overridden: bool,
    /// Device ids named explicitly by the policy (metadata or overrides), with their hotplug.
    pub(crate) named: BTreeMap<String, Hotplug>,
    /// The policy values given explicitly: metadata, then overrides.
    pub(crate) explicit: PolicyPatch,
    /// Metadata device attributes other than alias and hotplug (group, numa-node, bus-kind).
    pub(crate) meta_extra: BTreeMap<String, Vec<(String, String)>>,
}

impl Domain<'static> {
    /// Reads a domain XML with the policy from its metadata, for the built-in catalog of its
    /// machine (`<os><type machine>`: `q35`/`pc-q35-*` or `pc`/`pc-i440fx-*`).
    pub fn parse(xml: &str) -> Result<Domain<'static>, InputError> {
        Domain::parse_with(xml, &ReadOptions::default())
    }

    /// Reads a domain XML with options (command-line policy overrides), for the built-in
    /// catalog of its machine.
    pub fn parse_with(xml: &str, opts: &ReadOptions) -> Result<Domain<'static>, InputError> {
        read::read_builtin(xml, opts)
    }
}

impl<'c> Domain<'c> {
    /// Reads a domain XML with options for a machine catalog (`--catalog`): the controller
    /// models it knows, its root bus and the device models it accepts. Planning, checking and
    /// writing the domain use the same catalog.
    pub fn read(xml: &str, opts: &ReadOptions, cat: &'c Catalog) -> Result<Domain<'c>, InputError> {
        read::read(xml, opts, cat)
    }

    /// The original text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The catalog the domain was read for.
    pub fn catalog(&self) -> &'c Catalog {
        self.cat
    }

    /// Plans the domain: refuses it when reading found address errors, else plans the request
    /// with the domain's catalog.
    pub fn plan(&self) -> Result<Plan, PlanError> {
        if !self.problems.is_empty() {
            return Err(PlanError::Pins(self.problems.clone()));
        }
        let mut plan = crate::planner::plan_with(&self.request, self.cat)?;
        plan.notes = self.notes.clone();
        Ok(plan)
    }

    /// Adopts the domain (`--adopt`, O-ADOPT): its addresses are preferences; the plan
    /// changes as few devices as the guest can see, then adds as few controllers, then
    /// flips as few ports. Address errors other than the policy's own (D-OFF, D-ON) refuse
    /// it as [`Domain::plan`] does.
    pub fn adopt(&self) -> Result<Plan, PlanError> {
        use crate::rule::Rule;
        let bad: Vec<Violation> = self
            .problems
            .iter()
            .filter(|v| !matches!(v.rule, Rule::Off | Rule::On | Rule::Hotplug))
            .cloned()
            .collect();
        if !bad.is_empty() {
            return Err(PlanError::Pins(bad));
        }
        let mut plan = crate::planner::adopt_with(&self.request, self.cat)?;
        plan.notes = self.notes.clone();
        Ok(plan)
    }

    /// Checks the addresses the domain already has, without planning: every error, sorted.
    pub fn check(&self) -> Vec<Violation> {
        check::check(self, self.cat)
    }

    /// The domain with the plan's addresses and controllers (docs/formats.md `--format libvirt`).
    pub fn write(&self, plan: &Plan) -> Result<String, InputError> {
        write::write(self, plan, self.cat)
    }

    /// The libvirt controller index a plan bus name stands for, given the indexes that
    /// [`Domain::write`] gives new controllers.
    pub fn index_of(&self, bus: &str) -> Option<u32> {
        if bus == self.cat.root.bus {
            return Some(0);
        }
        self.controllers
            .iter()
            .find(|c| c.id == bus)
            .map(|c| c.index)
    }
}

/// Whether a file is a domain XML rather than a JSON request: a `.xml` name, or text whose
/// first non-blank character is `<`.
pub fn looks_like_xml(file: &str, text: &str) -> bool {
    file.to_ascii_lowercase().ends_with(".xml")
        || text
            .trim_start_matches('\u{feff}')
            .trim_start()
            .starts_with('<')
}

/// Checks a JSON request's pins (for `pciplan check` on a request).
pub fn check_request(req: &Request, cat: &Catalog) -> Result<Vec<Violation>, InputError> {
    req.check_shape()?;
    req.check_models(cat)?;
    Ok(crate::validate::validate_pins(req, cat))
}
