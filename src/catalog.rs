//! The machine catalog: buses, controller models and device models, loaded from JSON
//! (`models/q35.json` is embedded in the binary; a path may override it).
//!
//! Every placement fact the planner uses that can be written as data lives here: which
//! slots the root bus reserves, what each controller plugs into and what its bus accepts,
//! whether its hotplug can be turned off, what it costs, and the kind (PCIe or conventional
//! PCI) of every device model (rule D-KIND).

use crate::rule::Rule;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::InputError;
use crate::request::Firmware;

/// The catalog shipped with pciplan for the `q35` machine.
pub const Q35_JSON: &str = include_str!("../models/q35.json");

/// The catalog shipped with pciplan for the `pc` (i440fx) machine.
pub const PC_JSON: &str = include_str!("../models/pc.json");

/// The catalog shipped with pciplan for the aarch64 `virt` machine.
pub const VIRT_JSON: &str = include_str!("../models/virt.json");

/// How a machine's buses are laid out, which decides the planner that plans it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// A PCI Express root bus with root ports, switches, `pcie-pci-bridge`s and expanders
    /// (q35; aarch64 `virt` is the same without the chipset slot).
    #[default]
    Pcie,
    /// A conventional PCI root bus whose slots are hot-pluggable as a whole (one switch per
    /// guest) and `pci-bridge`s whose slots always are (`pc`, rules PC-ROOT, PC-ROOT-HP).
    PciRoot,
}

impl Layout {
    fn is_pcie(&self) -> bool {
        *self == Layout::Pcie
    }
}

/// Whether an endpoint is a PCI Express or a conventional PCI device (rule D-KIND).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// PCI Express endpoint.
    Pcie,
    /// Conventional PCI endpoint.
    Pci,
}

impl BusKind {
    /// The accept-category name of an endpoint of this kind, as used in `accepts` lists.
    pub fn category(self) -> &'static str {
        match self {
            BusKind::Pcie => "pcie-endpoint",
            BusKind::Pci => "pci-endpoint",
        }
    }
}

/// A slot range, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotRange {
    /// Lowest slot.
    pub min: u8,
    /// Highest slot.
    pub max: u8,
}

impl SlotRange {
    /// Whether `slot` is inside the range.
    pub fn contains(&self, slot: u8) -> bool {
        (self.min..=self.max).contains(&slot)
    }
    /// Number of slots in the range.
    pub fn len(&self) -> u32 {
        u32::from(self.max) - u32::from(self.min) + 1
    }
    /// Always false: a range has at least one slot.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A function of the root bus held by the chipset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reserved {
    /// Slot number.
    pub slot: u8,
    /// Function number.
    pub function: u8,
    /// What holds it.
    pub what: String,
    /// Rule id.
    pub rule: Rule,
}

/// The machine's root bus (`pcie.0` on q35).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootBus {
    /// QEMU bus name.
    pub bus: String,
    /// Bus type name, used in `plugs_into`.
    pub bus_type: String,
    /// Slot range.
    pub slots: SlotRange,
    /// Functions per slot.
    pub functions: u8,
    /// Functions the chipset holds.
    pub reserved: Vec<Reserved>,
    /// Whole slots nobody else may use.
    pub reserved_slots: Vec<u8>,
    /// Categories of devices it accepts.
    pub accepts: Vec<String>,
    /// Whether devices on it can be hot-unplugged (the machine's default).
    pub hotpluggable: bool,
    /// The QEMU `-global` property that turns hotplug of the whole root bus off, where the
    /// machine has one (`pc`: `PIIX4_PM.acpi-root-pci-hotplug`, rule PC-ROOT-HP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotplug_switch: Option<String>,
    /// Rule ids.
    pub rules: Vec<Rule>,
}

/// Guest bus-number budget (rule R-BUSNR).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusNumbers {
    /// Highest usable bus number.
    pub max: u32,
    /// Rule id.
    pub rule: Rule,
}

/// Firmware I/O port space (rule R-IO): the window size and each firmware's budget.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoSpace {
    /// Size of one bridge I/O window in KiB.
    pub window_kib: u32,
    /// Rule id.
    pub rule: Rule,
    /// Explanation.
    #[serde(default)]
    pub note: String,
    /// The budget of each firmware this machine boots (a firmware missing here cannot be
    /// planned for: the request gets an error naming it).
    pub firmware: BTreeMap<Firmware, IoBudget>,
}

/// What one firmware does with I/O windows, as observed by booting it (rule R-IO).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoBudget {
    /// The firmware's name in messages (`SeaBIOS`, `OVMF`).
    pub name: String,
    /// How many I/O windows fit.
    pub windows: u32,
    /// Whether the planner writes `io-reserve=0` on added ports with nothing below: OVMF
    /// 2022.11 reserves an I/O window for every empty hot-pluggable port without it, SeaBIOS
    /// 1.16 does not (observed with QEMU 7.2; kept there as a guard).
    pub io_reserve_zero: bool,
    /// What happens past the budget, for messages ("SeaBIOS reports ...").
    pub failure: String,
    /// How and with what the numbers were observed.
    #[serde(default)]
    pub observed: String,
}

/// Whether a controller's own bus can have hotplug turned off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HotplugControl {
    /// `hotplug=off` property exists (root and downstream ports).
    Property,
    /// Always hot-pluggable (bridges).
    Always,
    /// Never hot-pluggable (switch upstream bus, expander bus).
    Never,
}

impl HotplugControl {
    /// D-HP: whether the guest can unplug what sits on a bus of this control, for a
    /// controller whose `hotplug` setting is `setting` (unset: on).
    pub fn bus_hotpluggable(control: Option<Self>, setting: Option<bool>) -> bool {
        match control {
            Some(HotplugControl::Property) => setting.unwrap_or(true),
            Some(HotplugControl::Always) => true,
            Some(HotplugControl::Never) | None => false,
        }
    }
}

/// The bus a controller provides.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusSpec {
    /// Bus type name (`port`, `switch`, `conventional`, `pxb`).
    #[serde(rename = "type")]
    pub bus_type: String,
    /// Usable slots.
    pub slots: SlotRange,
    /// Functions per slot.
    pub functions: u8,
    /// Categories it accepts.
    pub accepts: Vec<String>,
}

/// libvirt's names for a controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibvirtNames {
    /// `<controller model=...>`.
    pub model: String,
    /// `<model name=...>`.
    pub model_name: String,
}

/// A controller model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerModel {
    /// Model name used in requests.
    pub model: String,
    /// QEMU `-device` driver.
    pub qemu: String,
    /// libvirt names.
    pub libvirt: LibvirtNames,
    /// Category used in `accepts` lists (`root-port`, `switch-upstream`, ...).
    pub class: String,
    /// Bus types it plugs into.
    pub plugs_into: Vec<String>,
    /// Whether up to `functions` of these share one slot (rule R-RP-PACK).
    pub aggregate: bool,
    /// The bus it provides.
    pub bus: BusSpec,
    /// Whether its bus can have hotplug turned off.
    pub hotplug: HotplugControl,
    /// QEMU properties it takes.
    pub props: Vec<String>,
    /// Whether it takes a guest bus number (rule R-BUSNR).
    pub uses_bus_number: bool,
    /// Cost when added (rule O-COST).
    pub cost: u32,
    /// Whether the planner may add it.
    pub planner_adds: bool,
    /// Rule ids.
    pub rules: Vec<Rule>,
}

/// A device model entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceModel {
    /// PCIe or conventional (rule D-KIND).
    pub kind: BusKind,
    /// Whether the device has an I/O-space BAR (needs a bridge I/O window, rule R-IO).
    pub io: bool,
    /// What it is.
    #[serde(default)]
    pub what: String,
    /// Whether QEMU can hot-unplug it at all (false: `device_del` says "Device '...' does
    /// not support hotplugging" wherever it sits, e.g. VGA-class devices).
    #[serde(default = "yes")]
    pub hotpluggable: bool,
    /// Whether QEMU only accepts it on the root bus (e.g. virtio-iommu-pci).
    #[serde(default)]
    pub root_only: bool,
    /// A network card: the guest names its interface after its address (G-ID), which an
    /// adoption's report shows (`enp3s0 -> enp0s5`).
    #[serde(default)]
    pub nic: bool,
    /// When QEMU accepts only one per guest: its message for a second one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single: Option<String>,
}

fn yes() -> bool {
    true
}

/// A machine catalog.
///
/// ```
/// let cat = pciplan::Catalog::q35();
/// assert_eq!(cat.root.bus, "pcie.0");
/// assert!(cat.device("virtio-net-pci").is_some());
/// assert!(cat.controller("pcie-root-port").unwrap().aggregate);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Catalog {
    /// Machine name (`q35`).
    pub machine: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// The bus layout, which decides how the machine is planned (`pcie` when absent).
    #[serde(default, skip_serializing_if = "Layout::is_pcie")]
    pub layout: Layout,
    /// Root bus.
    pub root: RootBus,
    /// Bus numbers.
    pub bus_numbers: BusNumbers,
    /// I/O port space.
    pub io_space: IoSpace,
    /// Controller models.
    pub controllers: Vec<ControllerModel>,
    /// Device models by QEMU driver name.
    pub devices: crate::device_models::DeviceModels,
}

/// Controller classes the planner builds topologies from; each must exist in a catalog.
pub(crate) const CLASS_ROOT_PORT: &str = "root-port";
pub(crate) const CLASS_UPSTREAM: &str = "switch-upstream";
pub(crate) const CLASS_DOWNSTREAM: &str = "switch-downstream";
pub(crate) const CLASS_BRIDGE: &str = "pcie-pci-bridge";
pub(crate) const CLASS_PXB: &str = "pxb";
/// The conventional `pci-bridge` class, which the `pci-root` layout adds (PC-BRIDGE).
pub(crate) const CLASS_PCI_BRIDGE: &str = "pci-bridge";

impl Catalog {
    /// The embedded q35 catalog (parsed once).
    pub fn q35() -> &'static Catalog {
        static Q35: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
        Q35.get_or_init(|| match Catalog::from_json(Q35_JSON) {
            Ok(c) => c,
            // The embedded catalog is checked by a unit test; parsing cannot fail at run time.
            Err(e) => unreachable!("embedded catalog is invalid: {e}"),
        })
    }

    /// Parses and validates a catalog.
    pub fn from_json(text: &str) -> Result<Catalog, InputError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let cat: Catalog = serde_path_to_error::deserialize(de).map_err(|e| {
            InputError::new(format!("catalog: {}", e.path()), e.inner().to_string())
        })?;
        cat.validate()?;
        Ok(cat)
    }

    /// Loads a catalog file.
    pub fn from_path(path: &Path) -> Result<Catalog, InputError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            InputError::new("catalog", format!("cannot read {}: {e}", path.display()))
        })?;
        Catalog::from_json(&text)
    }

    /// The embedded `pc` (i440fx) catalog (parsed once).
    pub fn pc() -> &'static Catalog {
        static PC: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
        PC.get_or_init(|| match Catalog::from_json(PC_JSON) {
            Ok(c) => c,
            // The embedded catalog is checked by a unit test; parsing cannot fail at run time.
            Err(e) => unreachable!("embedded catalog is invalid: {e}"),
        })
    }

    /// The embedded aarch64 `virt` catalog (parsed once).
    pub fn virt() -> &'static Catalog {
        static VIRT: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
        VIRT.get_or_init(|| match Catalog::from_json(VIRT_JSON) {
            Ok(c) => c,
            // The embedded catalog is checked by a unit test; parsing cannot fail at run time.
            Err(e) => unreachable!("embedded catalog is invalid: {e}"),
        })
    }

    /// Looks up a catalog by machine name: `q35` and `pc-q35-*` (q35), `pc` and
    /// `pc-i440fx-*` (i440fx), `virt` and `virt-*` (aarch64); anything else is an error
    /// naming the `machine` field.
    pub fn for_machine(machine: &str) -> Result<&'static Catalog, InputError> {
        if machine == "q35" || machine.starts_with("pc-q35-") {
            Ok(Catalog::q35())
        } else if machine == "pc" || machine.starts_with("pc-i440fx-") {
            Ok(Catalog::pc())
        } else if machine == "virt" || machine.starts_with("virt-") {
            Ok(Catalog::virt())
        } else {
            Err(InputError::new(
                "machine",
                format!("unsupported machine '{machine}': pciplan plans q35 ('q35', 'pc-q35-*'), i440fx ('pc', 'pc-i440fx-*') and aarch64 virt ('virt', 'virt-*') guests"),
            ))
        }
    }

    /// Checks a catalog: what [`Catalog::from_json`] checks, for a catalog changed in code
    /// (its fields are public to read). Planning checks the part it relies on itself, so an
    /// inconsistent catalog is an error naming what is missing, never a panic.
    pub fn validate(&self) -> Result<(), InputError> {
        let err = |m: String| Err(InputError::new("catalog", m));
        let mut seen = BTreeSet::new();
        for c in &self.controllers {
            if !seen.insert(c.model.as_str()) {
                return err(format!("controller model '{}' listed twice", c.model));
            }
            if c.bus.functions == 0
                || c.bus.functions > 8
                || c.bus.slots.max > 31
                || c.bus.slots.min > c.bus.slots.max
            {
                return err(format!("controller '{}': bad slot/function range", c.model));
            }
            for into in &c.plugs_into {
                let accepted = (self.root.bus_type == *into
                    && self.root.accepts.contains(&c.class))
                    || self
                        .controllers
                        .iter()
                        .any(|p| p.bus.bus_type == *into && p.bus.accepts.contains(&c.class));
                if !accepted {
                    return err(format!(
                        "controller '{}' plugs into '{into}' but no such bus accepts class '{}'",
                        c.model, c.class
                    ));
                }
            }
        }
        self.planner_classes()?;
        if self.root.functions == 0 || self.root.functions > 8 || self.root.slots.max > 31 {
            return err("root bus: bad slot/function range".into());
        }
        if self.bus_numbers.max == 0 || self.bus_numbers.max > 255 {
            return err("bus_numbers.max must be 1..255".into());
        }
        Ok(())
    }

    /// A controller model by request model name.
    pub fn controller(&self, model: &str) -> Option<&ControllerModel> {
        self.controllers.iter().find(|c| c.model == model)
    }

    /// The controller of `class` the planner adds.
    pub fn adder(&self, class: &str) -> Option<&ControllerModel> {
        self.controllers
            .iter()
            .find(|c| c.class == class && c.planner_adds)
    }

    /// Every controller class the planner builds with has a model it may add: checked by
    /// [`Catalog::validate`] and again before each plan (cheap), so that a catalog changed in
    /// code after it was read is refused, not a panic.
    pub(crate) fn planner_classes(&self) -> Result<(), InputError> {
        let classes: &[&str] = match self.layout {
            Layout::Pcie => &[
                CLASS_ROOT_PORT,
                CLASS_UPSTREAM,
                CLASS_DOWNSTREAM,
                CLASS_BRIDGE,
                CLASS_PXB,
            ],
            Layout::PciRoot => &[CLASS_PCI_BRIDGE],
        };
        for &class in classes {
            if self.adder(class).is_none() {
                return Err(InputError::new(
                    "catalog",
                    format!("no controller of class '{class}' that the planner may add"),
                ));
            }
        }
        Ok(())
    }

    /// [`Catalog::planner_classes`], and that the q35 planner plans this layout: a `pci-root`
    /// catalog is planned by the `pc` planner, never by the one for PCI Express layouts.
    pub(crate) fn pcie_planner(&self) -> Result<(), InputError> {
        if self.layout != Layout::Pcie {
            return Err(InputError::new(
                "machine",
                format!("the {} catalog has a conventional PCI root bus; this planner plans PCI Express machines", self.machine),
            ));
        }
        self.planner_classes()
    }

    pub(crate) fn adder_or_internal(&self, class: &str) -> &ControllerModel {
        match self.adder(class) {
            Some(c) => c,
            // Every plan starts with planner_classes(): the class exists.
            None => unreachable!("catalog lacks class {class}"),
        }
    }

    /// The I/O budget of `firmware` on this machine (rule R-IO); an error naming the
    /// request's `firmware` field when the catalog has none for it.
    pub fn io_budget(&self, firmware: Firmware) -> Result<&IoBudget, InputError> {
        self.io_space.firmware.get(&firmware).ok_or_else(|| {
            InputError::new(
                "firmware",
                format!(
                    "'{}' is not a firmware the {} catalog knows (it has: {}; the request says \"firmware\": \"{}\" for it) [{}]",
                    firmware.as_str(),
                    self.machine,
                    self.io_space
                        .firmware
                        .iter()
                        .map(|(f, b)| format!("{} ({})", f.as_str(), b.name))
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.io_space
                        .firmware
                        .keys()
                        .next()
                        .map_or("", |f| f.as_str()),
                    self.io_space.rule
                ),
            )
        })
    }

    /// A device model by QEMU driver name.
    #[inline]
    pub fn device(&self, model: &str) -> Option<&DeviceModel> {
        self.devices.get(model)
    }

    /// Whether a device needs I/O port space (rule R-IO): the catalog says so; an unknown
    /// model is assumed to when it is conventional PCI.
    pub fn needs_io(&self, model: &str, kind: BusKind) -> bool {
        self.device(model)
            .map(|m| m.io)
            .unwrap_or(kind == BusKind::Pci)
    }

    /// Usable slots of the root bus (all slots minus the reserved ones), ascending.
    pub fn root_free_slots(&self) -> Vec<u8> {
        // Every plan asks: the reserved slots as one mask, and the list sized once.
        let reserved = (self.root.reserved_slots.iter())
            .filter(|&&s| s < 32)
            .fold(0u32, |m, &s| m | 1 << s);
        let (lo, hi) = (self.root.slots.min, self.root.slots.max.min(31));
        let mut free = Vec::with_capacity(usize::from(hi.saturating_sub(lo)) + 1);
        free.extend((lo..hi.saturating_add(1)).filter(|&s| reserved & 1 << s == 0));
        free
    }

    /// Whether QEMU can ever hot-unplug a device of this model (unknown models: yes).
    pub fn model_hotpluggable(&self, model: &str) -> bool {
        self.device(model).map(|m| m.hotpluggable).unwrap_or(true)
    }

    /// Root-bus functions the chipset holds.
    pub fn root_reserved(&self, slot: u8, function: u8) -> Option<&Reserved> {
        self.root
            .reserved
            .iter()
            .find(|r| r.slot == slot && r.function == function)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_is_valid_and_large() {
        let c = Catalog::from_json(Q35_JSON).unwrap();
        assert!(c.devices.len() >= 40);
        assert_eq!(c.root_free_slots().len(), 30);
        assert!(c.devices.values().any(|d| d.kind == BusKind::Pci));
    }

    #[test]
    fn unknown_catalog_field_names_path() {
        let bad = Q35_JSON.replacen(
            "\"machine\": \"q35\"",
            "\"machine\": \"q35\", \"bogus\": 1",
            1,
        );
        let e = Catalog::from_json(&bad).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn missing_planner_class_is_refused() {
        let bad = Q35_JSON.replace("\"class\": \"pxb\"", "\"class\": \"pxbx\"");
        let e = Catalog::from_json(&bad).unwrap_err();
        assert!(e.to_string().contains("pxb"), "{e}");
    }

    #[test]
    fn machines_select_their_catalog() {
        let e = Catalog::for_machine("virtio").unwrap_err();
        assert!(
            e.to_string().contains("unsupported machine 'virtio'"),
            "{e}"
        );
        assert_eq!(e.field, "machine");
        assert_eq!(Catalog::for_machine("pc-q35-7.2").unwrap().machine, "q35");
        assert_eq!(Catalog::for_machine("q35").unwrap().machine, "q35");
        for m in ["pc", "pc-i440fx-7.2"] {
            assert_eq!(Catalog::for_machine(m).unwrap().machine, "pc", "{m}");
        }
        for m in ["virt", "virt-7.2"] {
            assert_eq!(Catalog::for_machine(m).unwrap().machine, "virt", "{m}");
        }
        // "pc-q35" is not "pc", nor is a name that merely starts with it.
        assert!(Catalog::for_machine("pcx").is_err());
    }

    #[test]
    fn embedded_pc_catalog() {
        let c = Catalog::from_json(PC_JSON).unwrap();
        assert_eq!(c.layout, Layout::PciRoot);
        assert_eq!(c.root.bus, "pci.0");
        assert_eq!(c.root_free_slots(), (2..=31).collect::<Vec<u8>>());
        assert!(c.root.hotpluggable);
        assert_eq!(
            c.root.hotplug_switch.as_deref(),
            Some("PIIX4_PM.acpi-root-pci-hotplug")
        );
        assert_eq!(c.adder(CLASS_PCI_BRIDGE).unwrap().qemu, "pci-bridge");
        assert!(c.controller("pcie-root-port").is_none());
        assert!(c.devices.len() >= 60);
        // The q35 catalog's serialised form has no field the pc one added.
        let q = serde_json::to_string(Catalog::q35()).unwrap();
        assert!(!q.contains("layout") && !q.contains("hotplug_switch"));
    }

    #[test]
    fn embedded_virt_catalog() {
        let c = Catalog::from_json(VIRT_JSON).unwrap();
        assert_eq!(c.layout, Layout::Pcie);
        assert_eq!(c.root.bus, "pcie.0");
        // VIRT-ROOT: only the gpex host bridge's slot 0 is taken, no chipset slot.
        assert_eq!(c.root_free_slots(), (1..=31).collect::<Vec<u8>>());
        assert!(c.root_reserved(31, 0).is_none());
        assert!(!c.root.hotpluggable && c.root.hotplug_switch.is_none());
        // UEFI only (AAVMF); a bios request is refused naming the field.
        assert_eq!(c.io_budget(Firmware::Uefi).unwrap().name, "AAVMF");
        assert_eq!(c.io_budget(Firmware::Bios).unwrap_err().field, "firmware");
        // VIRT-MODELS: no VGA-class models.
        assert!(c.device("VGA").is_none() && c.device("cirrus-vga").is_none());
        assert!(c.devices.len() >= 60);
    }
}
