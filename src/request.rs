//! The planning request (docs/formats.md "Request"): devices, existing controllers and policy.
//!
//! Parsing is strict: unknown fields, duplicate ids, malformed ids, unknown models and
//! out-of-range values are errors naming the field or device.

use serde::{Deserialize, Serialize};

use crate::catalog::{BusKind, Catalog, DeviceModel};
use crate::error::InputError;
use crate::strtable::Key;
use crate::Text;

mod fast;

/// Largest accepted request text, in bytes.
pub const MAX_REQUEST_BYTES: usize = 16 << 20;
/// Most devices in one request.
pub const MAX_DEVICES: usize = 4096;
/// Most controllers in one request.
pub const MAX_CONTROLLERS: usize = 1024;
/// Largest `spare_ports` value.
pub const MAX_SPARE_PORTS: u32 = 1024;
/// Largest NUMA node number (QEMU allows 128 nodes).
pub const MAX_NUMA_NODE: u32 = 127;

/// A device's hotplug requirement (rule D-HP).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Hotplug {
    /// Must stay hot-unpluggable.
    #[default]
    On,
    /// The guest must not be able to unplug it.
    Off,
    /// Either.
    Any,
}

impl Hotplug {
    /// The request spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Hotplug::On => "on",
            Hotplug::Off => "off",
            Hotplug::Any => "any",
        }
    }
    /// Parses `on`/`off`/`any`.
    pub fn parse(s: &str) -> Option<Hotplug> {
        match s {
            "on" => Some(Hotplug::On),
            "off" => Some(Hotplug::Off),
            "any" => Some(Hotplug::Any),
            _ => None,
        }
    }
}

/// Where hotplug-`off` devices may go (policy `hotplug_off`, rule D-OFF).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum OffStrategy {
    /// Only integrated slots on `pcie.0`.
    #[default]
    Integrated,
    /// Only `hotplug=off` ports.
    Port,
    /// Whichever is cheaper.
    Auto,
}

impl OffStrategy {
    /// The request spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OffStrategy::Integrated => "integrated",
            OffStrategy::Port => "port",
            OffStrategy::Auto => "auto",
        }
    }
    /// Parses `integrated`/`port`/`auto`.
    pub fn parse(s: &str) -> Option<OffStrategy> {
        match s {
            "integrated" => Some(OffStrategy::Integrated),
            "port" => Some(OffStrategy::Port),
            "auto" => Some(OffStrategy::Auto),
            _ => None,
        }
    }
    /// Whether integrated slots are allowed for `off` devices.
    pub fn allows_integrated(self) -> bool {
        self != OffStrategy::Port
    }
    /// Whether `hotplug=off` ports are allowed for `off` devices.
    pub fn allows_port(self) -> bool {
        self != OffStrategy::Integrated
    }
}

/// The firmware the guest boots (request field `firmware`): it decides the I/O port budget
/// (rule R-IO) and whether empty ports need `io-reserve=0`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// Legacy BIOS: SeaBIOS on x86 (the default, as QEMU's).
    #[default]
    Bios,
    /// UEFI: OVMF on x86 (AAVMF on aarch64), as libvirt's `<os firmware='efi'>`.
    Uefi,
}

impl Firmware {
    /// Every firmware, in request spelling order.
    pub const ALL: [Firmware; 2] = [Firmware::Bios, Firmware::Uefi];

    /// The request spelling: `bios` or `uefi`.
    pub fn as_str(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }

    /// Parses `bios`/`uefi`.
    pub fn parse(s: &str) -> Option<Firmware> {
        match s {
            "bios" => Some(Firmware::Bios),
            "uefi" => Some(Firmware::Uefi),
            _ => None,
        }
    }

    /// Whether this is the default (`bios`), which requests need not spell out.
    pub fn is_default(&self) -> bool {
        *self == Firmware::Bios
    }
}

/// Placement policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Hotplug requirement of devices that do not say.
    pub default_hotplug: Hotplug,
    /// Empty hot-pluggable ports to keep (rule O-SPARE).
    pub spare_ports: u32,
    /// Where `off` devices may go.
    pub hotplug_off: OffStrategy,
    /// Let unrelated integrated endpoints share a slot (rule R-INT-SLOT).
    pub pack_integrated: bool,
}

/// A PCI address: bus name, slot, function.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// `pcie.0` or a controller id.
    pub bus: Text,
    /// Slot 0..31.
    pub slot: u8,
    /// Function 0..7.
    #[serde(default)]
    pub function: u8,
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{:02x}.{}", self.bus, self.slot, self.function)
    }
}

/// A device to place.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRequest {
    /// QEMU id.
    pub id: Text,
    /// QEMU device driver.
    pub model: Text,
    /// Hotplug requirement (policy default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotplug: Option<Hotplug>,
    /// Multifunction group name (rule D-GROUP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Text>,
    /// NUMA node (rule D-NUMA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<u32>,
    /// Overrides the catalog kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus_kind: Option<BusKind>,
    /// Pinned address (rule D-PIN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// An existing controller (pinned).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerRequest {
    /// QEMU id; devices name it as `address.bus`.
    pub id: Text,
    /// Catalog controller model.
    pub model: Text,
    /// Port hotplug (ports only; default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotplug: Option<bool>,
    /// Where it sits.
    pub address: Address,
    /// Port chassis (ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chassis: Option<u8>,
    /// Port number (ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u8>,
    /// Root bus number (expanders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus_nr: Option<u8>,
    /// NUMA node (expanders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<u32>,
    /// `io-reserve` (root ports).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "io-reserve",
        alias = "io_reserve"
    )]
    pub io_reserve: Option<u32>,
}

fn default_machine() -> Text {
    Text::const_new("q35")
}

/// A planning request.
///
/// ```
/// let r = pciplan::Request::from_json(r#"{"devices":[{"id":"net0","model":"virtio-net-pci"}]}"#).unwrap();
/// assert_eq!(r.devices[0].id, "net0");
/// let e = pciplan::Request::from_json(r#"{"devices":[{"id":"net0","modle":"x"}]}"#).unwrap_err();
/// assert!(e.to_string().contains("devices[0]"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Guest name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text>,
    /// Machine catalog name.
    #[serde(default = "default_machine")]
    pub machine: Text,
    /// The firmware the guest boots (rule R-IO); `bios` when absent.
    #[serde(default, skip_serializing_if = "Firmware::is_default")]
    pub firmware: Firmware,
    /// Policy.
    #[serde(default)]
    pub policy: Policy,
    /// Devices, in request order.
    #[serde(default)]
    pub devices: Vec<DeviceRequest>,
    /// Existing controllers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controllers: Vec<ControllerRequest>,
    /// Root bus hotplug as the guest already has it, on machines with one switch for the
    /// whole root bus (`pc`: PC-ROOT-HP; a libvirt `pci-root` with `<target hotplug='off'/>`
    /// reads as `false`): a pin, like an existing controller's `hotplug`. Absent, the planner
    /// chooses. Other machines refuse it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_hotplug: Option<bool>,
}

/// The bytes a QEMU id may hold: letters, digits, `-`, `_`, `.`.
const ID_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
        c += 1;
    }
    t
};

/// Whether `id` is a valid QEMU id: letters, digits, `-`, `_`, `.`, starting with a letter.
pub fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() <= 128
        && b.first().is_some_and(u8::is_ascii_alphabetic)
        && b.iter().all(|&c| ID_BYTES[usize::from(c)])
}

/// The ids of a request seen so far, for finding the first repeated one: open addressing
/// over the ids' hashes (src/strtable.rs), each slot the position of an id in `names`
/// plus one, in a table at most a quarter full (on the stack for a common request).
struct SeenIds<'r, F: Fn(usize) -> &'r str> {
    /// The id at a position.
    names: F,
    small: [u16; 256],
    big: Vec<u16>,
    mask: usize,
    shift: u32,
}

impl<'r, F: Fn(usize) -> &'r str> SeenIds<'r, F> {
    /// Room for `n` ids (at most `u16::MAX - 1`).
    fn new(n: usize, names: F) -> Self {
        let size = (n.max(1) * 4).next_power_of_two().max(16);
        SeenIds {
            names,
            small: [0; 256],
            big: if size > 256 {
                vec![0; size]
            } else {
                Vec::new()
            },
            mask: size - 1,
            shift: 64 - size.trailing_zeros(),
        }
    }

    /// Adds the id at position `at`: `false` when an earlier one is equal. Inlined into the
    /// loop over the ids: a call (its register saves and the table's fields loaded again)
    /// cost half of what an insert does.
    #[inline(always)]
    fn insert(&mut self, at: usize, id: &str) -> bool {
        let slots: &mut [u16] = if self.big.is_empty() {
            &mut self.small
        } else {
            &mut self.big
        };
        let mut i = (Key::of(id).hash() >> self.shift) as usize;
        loop {
            let e = slots[i & self.mask];
            if e == 0 {
                slots[i & self.mask] = at as u16 + 1;
                return true;
            }
            if (self.names)(usize::from(e) - 1) == id {
                return false;
            }
            i += 1;
        }
    }
}

impl Request {
    /// Parses a JSON request and checks what needs no catalog ([`Request::check_shape`]);
    /// the catalog's checks ([`Request::check_models`]) come when it is planned.
    pub fn from_json(text: &str) -> Result<Request, InputError> {
        if text.len() > MAX_REQUEST_BYTES {
            return Err(InputError::new(
                "request",
                format!(
                    "{} bytes is larger than the {} byte limit",
                    text.len(),
                    MAX_REQUEST_BYTES
                ),
            ));
        }
        // The quick reader first; what it leaves goes to plain serde, and only a request
        // that fails there is parsed again with the path-tracking deserializer, whose error
        // names the field.
        if let Some(req) = fast::parse(text) {
            req.check_shape()?;
            return Ok(req);
        }
        if let Ok(req) = serde_json::from_str::<Request>(text) {
            req.check_shape()?;
            return Ok(req);
        }
        let de = &mut serde_json::Deserializer::from_str(text);
        let req: Request = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." || path.is_empty() {
                "request".to_string()
            } else {
                path
            };
            InputError::new(field, e.inner().to_string())
        })?;
        req.check_shape()?;
        Ok(req)
    }

    /// A device's effective hotplug requirement.
    pub fn hotplug_of(&self, d: &DeviceRequest) -> Hotplug {
        d.hotplug.unwrap_or(self.policy.default_hotplug)
    }

    /// Catalog-independent checks: ids, counts, ranges.
    pub fn check_shape(&self) -> Result<(), InputError> {
        if self.devices.len() > MAX_DEVICES {
            return Err(InputError::new(
                "devices",
                format!(
                    "{} devices is more than the limit of {MAX_DEVICES}",
                    self.devices.len()
                ),
            ));
        }
        if self.controllers.len() > MAX_CONTROLLERS {
            return Err(InputError::new(
                "controllers",
                format!(
                    "{} controllers is more than the limit of {MAX_CONTROLLERS}",
                    self.controllers.len()
                ),
            ));
        }
        if self.policy.spare_ports > MAX_SPARE_PORTS {
            return Err(InputError::new(
                "policy.spare_ports",
                format!("{} is more than {MAX_SPARE_PORTS}", self.policy.spare_ports),
            ));
        }
        let nd = self.devices.len();
        let mut ids = SeenIds::new(nd + self.controllers.len(), |at| {
            if at < nd {
                self.devices[at].id.as_str()
            } else {
                self.controllers[at - nd].id.as_str()
            }
        });
        // Two plain loops (a chained iterator keeps too much in flight), in the same order:
        // devices, then controllers.
        for (i, d) in self.devices.iter().enumerate() {
            check_id(&mut ids, "devices", i, i, &d.id)?;
        }
        for (i, c) in self.controllers.iter().enumerate() {
            check_id(&mut ids, "controllers", i, nd + i, &c.id)?;
        }
        for (i, d) in self.devices.iter().enumerate() {
            if let Some(n) = d.numa_node {
                if n > MAX_NUMA_NODE {
                    return Err(InputError::new(
                        format!("devices[{i}].numa_node"),
                        format!("device '{}': numa_node {n} is above {MAX_NUMA_NODE}", d.id),
                    ));
                }
            }
            if let Some(g) = &d.group {
                if !valid_id(g) {
                    return Err(InputError::new(
                        format!("devices[{i}].group"),
                        format!("device '{}': group '{g}' is not a valid name", d.id),
                    ));
                }
            }
            if let Some(a) = &d.address {
                check_address_range(|| format!("devices[{i}].address"), &d.id, a)?;
            }
        }
        for (i, c) in self.controllers.iter().enumerate() {
            check_address_range(|| format!("controllers[{i}].address"), &c.id, &c.address)?;
            if let Some(n) = c.numa_node {
                if n > MAX_NUMA_NODE {
                    return Err(InputError::new(
                        format!("controllers[{i}].numa_node"),
                        format!(
                            "controller '{}': numa_node {n} is above {MAX_NUMA_NODE}",
                            c.id
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Catalog checks: every model known (or `bus_kind` given), controllers known.
    pub fn check_models(&self, cat: &Catalog) -> Result<(), InputError> {
        self.resolve_models(cat).map(drop)
    }

    /// [`Request::check_models`], answering each device's catalog model (`None` for a model
    /// the catalog lacks, given a `bus_kind`), by device index: looked up once here, for
    /// the planner to read.
    pub(crate) fn resolve_models<'c>(
        &self,
        cat: &'c Catalog,
    ) -> Result<Vec<Option<&'c DeviceModel>>, InputError> {
        if self.root_hotplug.is_some() && cat.root.hotplug_switch.is_none() {
            return Err(InputError::new(
                "root_hotplug",
                format!(
                    "machine '{}' has no root hotplug switch ({} hotplug is per port); root_hotplug is for pc (PC-ROOT-HP)",
                    cat.machine, cat.root.bus
                ),
            ));
        }
        let mut models = Vec::with_capacity(self.devices.len());
        for (i, d) in self.devices.iter().enumerate() {
            let m = cat.device(&d.model);
            models.push(m);
            if d.bus_kind.is_none() && m.is_none() {
                if cat.controller(&d.model).is_some() {
                    return Err(InputError::new(
                        format!("devices[{i}].model"),
                        format!(
                            "device '{}': '{}' is a controller; list it under controllers",
                            d.id, d.model
                        ),
                    ));
                }
                return Err(InputError::new(
                    format!("devices[{i}].model"),
                    format!("device '{}': unknown model '{}' (not in the {} catalog; set bus_kind to 'pcie' or 'pci') [D-KIND]", d.id, d.model, cat.machine),
                ));
            }
        }
        let mut first: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
        for (i, (d, m)) in self.devices.iter().zip(&models).enumerate() {
            let Some(msg) = m.and_then(|m| m.single.as_deref()) else {
                continue;
            };
            // The transitional variants share one limit with the plain model.
            let family = trim_suffix(trim_suffix(&d.model, "-non-transitional"), "-transitional");
            if let Some(prev) = first.insert(family, d.id.as_str()) {
                return Err(InputError::new(
                    format!("devices[{i}].model"),
                    format!("device '{}': a guest takes only one {} ('{prev}' is one already; QEMU: {msg})", d.id, family),
                ));
            }
        }
        for (i, c) in self.controllers.iter().enumerate() {
            if cat.controller(&c.model).is_none() {
                let known: Vec<&str> = cat.controllers.iter().map(|m| m.model.as_str()).collect();
                return Err(InputError::new(
                    format!("controllers[{i}].model"),
                    format!(
                        "controller '{}': unknown controller model '{}' (known: {})",
                        c.id,
                        c.model,
                        known.join(", ")
                    ),
                ));
            }
        }
        Ok(models)
    }

    /// A device's kind: `bus_kind` if given, else the catalog's.
    pub fn kind_of(&self, cat: &Catalog, d: &DeviceRequest) -> BusKind {
        d.bus_kind
            .or_else(|| cat.device(&d.model).map(|m| m.kind))
            .unwrap_or(BusKind::Pcie)
    }
}

/// Checks the id `id` of `list[i]`, at position `at` among the request's ids: a valid
/// QEMU id, not `pcie.0`, not an earlier one.
#[inline(always)]
fn check_id<'r, F: Fn(usize) -> &'r str>(
    ids: &mut SeenIds<'r, F>,
    list: &str,
    i: usize,
    at: usize,
    id: &str,
) -> Result<(), InputError> {
    if !valid_id(id) {
        return Err(id_error(
            list,
            i,
            format!("'{id}' is not a valid QEMU id (letters, digits, '-', '_', '.'; starts with a letter)"),
        ));
    }
    if id == "pcie.0" || !ids.insert(at, id) {
        return Err(id_error(list, i, format!("duplicate id '{id}'")));
    }
    Ok(())
}

/// The error of the id of `list[i]`.
#[cold]
fn id_error(list: &str, i: usize, message: String) -> InputError {
    InputError::new(format!("{list}[{i}].id"), message)
}

/// `s` without every trailing `suffix` (as `str::trim_end_matches` with a string).
fn trim_suffix<'s>(mut s: &'s str, suffix: &str) -> &'s str {
    while let Some(rest) = s.strip_suffix(suffix) {
        s = rest;
    }
    s
}

fn check_address_range(
    field: impl Fn() -> String,
    id: &str,
    a: &Address,
) -> Result<(), InputError> {
    if a.slot <= 31 && a.function <= 7 {
        return Ok(());
    }
    let field = field();
    if a.slot > 31 {
        return Err(InputError::new(
            format!("{field}.slot"),
            format!("'{id}': slot {} is out of range 0..31 [D-PIN]", a.slot),
        ));
    }
    if a.function > 7 {
        return Err(InputError::new(
            format!("{field}.function"),
            format!(
                "'{id}': function {} is out of range 0..7 [D-PIN]",
                a.function
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> InputError {
        Request::from_json(text).unwrap_err()
    }

    #[test]
    fn parses_the_formats_example() {
        let r = Request::from_json(
            r#"{"name":"web-01","machine":"q35","policy":{"default_hotplug":"on","spare_ports":1,"hotplug_off":"integrated","pack_integrated":false},
            "devices":[{"id":"net0","model":"virtio-net-pci","hotplug":"off"},
            {"id":"gpu0","model":"vfio-pci","group":"gpu0","numa_node":1},
            {"id":"legacy","model":"my-card","bus_kind":"pci"},
            {"id":"vga","model":"VGA","address":{"bus":"pcie.0","slot":1,"function":0}}],
            "controllers":[{"id":"rp1","model":"pcie-root-port","hotplug":false,"address":{"bus":"pcie.0","slot":2,"function":0}}]}"#,
        )
        .unwrap();
        assert_eq!(r.devices.len(), 4);
        assert_eq!(r.hotplug_of(&r.devices[0]), Hotplug::Off);
        assert_eq!(r.hotplug_of(&r.devices[1]), Hotplug::On);
        r.check_models(Catalog::q35()).unwrap();
    }

    #[test]
    fn unknown_field_names_path() {
        let e = err(r#"{"devices":[{"id":"a","model":"e1000","hotplg":"off"}]}"#);
        assert_eq!(e.field, "devices[0].hotplg");
        assert!(e.message.contains("unknown field"));
    }

    #[test]
    fn bad_enum_value() {
        let e = err(r#"{"policy":{"hotplug_off":"sometimes"}}"#);
        assert!(e.field.contains("policy.hotplug_off"), "{e}");
    }

    #[test]
    fn duplicate_ids() {
        let e = err(r#"{"devices":[{"id":"a","model":"e1000"},{"id":"a","model":"e1000"}]}"#);
        assert_eq!(e.field, "devices[1].id");
        let e = err(
            r#"{"devices":[{"id":"a","model":"e1000"}],"controllers":[{"id":"a","model":"pcie-root-port","address":{"bus":"pcie.0","slot":1}}]}"#,
        );
        assert_eq!(e.field, "controllers[0].id");
        let e = err(r#"{"devices":[{"id":"a","model":"e1000","model":"e1000"}]}"#);
        assert!(e.message.contains("duplicate field"), "{e}");
    }

    #[test]
    fn bad_ids() {
        for id in ["1abc", "", "a b", "a/b", "é"] {
            let e = err(&format!(
                r#"{{"devices":[{{"id":"{id}","model":"e1000"}}]}}"#
            ));
            assert!(e.message.contains("not a valid QEMU id"), "{id}: {e}");
        }
        assert!(valid_id("net0.a-b_c"));
    }

    #[test]
    fn out_of_range() {
        let e =
            err(r#"{"devices":[{"id":"a","model":"e1000","address":{"bus":"pcie.0","slot":32}}]}"#);
        assert_eq!(e.field, "devices[0].address.slot");
        let e = err(
            r#"{"devices":[{"id":"a","model":"e1000","address":{"bus":"pcie.0","slot":3,"function":8}}]}"#,
        );
        assert_eq!(e.field, "devices[0].address.function");
        let e = err(r#"{"devices":[{"id":"a","model":"e1000","numa_node":1000}]}"#);
        assert_eq!(e.field, "devices[0].numa_node");
        let e = err(r#"{"policy":{"spare_ports":100000}}"#);
        assert_eq!(e.field, "policy.spare_ports");
        let e = err(
            r#"{"devices":[{"id":"a","model":"e1000","address":{"bus":"pcie.0","slot":300}}]}"#,
        );
        assert!(e.field.contains("slot"), "{e}");
    }

    #[test]
    fn malformed_and_oversized() {
        let e = err(r#"{"devices":[{"id":"a""#);
        assert!(
            e.field.starts_with("devices[0]") && e.message.contains("EOF"),
            "{e}"
        );
        let e = err("[1,2]");
        assert!(e.message.contains("invalid type"), "{e}");
        let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(MAX_REQUEST_BYTES));
        assert!(err(&big).message.contains("limit"));
    }

    #[test]
    fn single_instance_models() {
        let r = Request::from_json(r#"{"devices":[{"id":"b1","model":"virtio-balloon-pci"},{"id":"b2","model":"virtio-balloon-pci-non-transitional"}]}"#).unwrap();
        let e = r.check_models(Catalog::q35()).unwrap_err();
        assert!(
            e.message.contains("'b2'")
                && e.message.contains("'b1'")
                && e.message.contains("Only one balloon"),
            "{e}"
        );
    }

    #[test]
    fn unknown_models() {
        let r = Request::from_json(r#"{"devices":[{"id":"a","model":"frobnicator"}]}"#).unwrap();
        let e = r.check_models(Catalog::q35()).unwrap_err();
        assert!(e.message.contains("frobnicator") && e.message.contains("D-KIND"));
        let r = Request::from_json(
            r#"{"devices":[{"id":"a","model":"frobnicator","bus_kind":"pci"}]}"#,
        )
        .unwrap();
        r.check_models(Catalog::q35()).unwrap();
        let r = Request::from_json(r#"{"controllers":[{"id":"c","model":"pcie-root-portx","address":{"bus":"pcie.0","slot":1}}]}"#).unwrap();
        assert!(r
            .check_models(Catalog::q35())
            .unwrap_err()
            .message
            .contains("unknown controller model"));
        let r = Request::from_json(r#"{"devices":[{"id":"a","model":"pcie-root-port"}]}"#).unwrap();
        assert!(r
            .check_models(Catalog::q35())
            .unwrap_err()
            .message
            .contains("controller"));
    }
}
