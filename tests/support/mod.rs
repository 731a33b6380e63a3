//! Shared generators for the property and oracle tests: random requests drawn from the q35
//! catalog, and shrunken catalogs whose root bus runs out quickly.
#![allow(dead_code)]

pub mod adopt_oracle;
pub mod cases;
pub mod heldout;
pub mod oracle;
pub mod pc_adopt_oracle;
pub mod pc_oracle;

use std::collections::BTreeSet;

use pciplan::{Address, Catalog, DeviceRequest, Hotplug, OffStrategy, Policy, Request};
use proptest::prelude::*;

/// Device model names of the q35 catalog (sorted, so generation is reproducible).
pub fn models() -> Vec<String> {
    Catalog::q35().devices.keys().cloned().collect()
}

/// The q35 catalog with the root bus cut to usable slots `1..=slots` and the bus-number
/// budget cut to `bus_max`.
pub fn small_catalog(slots: u8, bus_max: u32) -> Catalog {
    shrunk_catalog(slots, bus_max, None)
}

/// Like [`small_catalog`], and with room for only `io_windows` bridge I/O windows (R-IO)
/// when given.
pub fn shrunk_catalog(slots: u8, bus_max: u32, io_windows: Option<u32>) -> Catalog {
    shrunk_catalog_of(Catalog::q35(), slots, bus_max, io_windows)
}

/// [`shrunk_catalog`] of another machine's catalog (`Catalog::virt()`): the I/O budget is
/// cut for the firmwares the catalog has.
pub fn shrunk_catalog_of(
    base: &Catalog,
    slots: u8,
    bus_max: u32,
    io_windows: Option<u32>,
) -> Catalog {
    let mut v = serde_json::to_value(base).expect("catalog serialises");
    v["root"]["slots"]["max"] = serde_json::json!(slots);
    v["bus_numbers"]["max"] = serde_json::json!(bus_max);
    if let Some(w) = io_windows {
        // Every firmware gets the same small budget; the oracle reads it per firmware.
        if let Some(fws) = v["io_space"]["firmware"].as_object_mut() {
            for fw in fws.values_mut() {
                fw["windows"] = serde_json::json!(w);
            }
        }
    }
    Catalog::from_json(&v.to_string()).expect("shrunken catalog is valid")
}

/// One planned unit of the generator: a single device or a multifunction group.
#[derive(Debug, Clone)]
pub struct UnitSpec {
    /// Catalog models of its members (1 for a single device, 2-3 for a group).
    pub models: Vec<usize>,
    /// Hotplug shared by all members (`None`: policy default).
    pub hotplug: Option<Hotplug>,
    /// NUMA node shared by all members.
    pub numa: Option<u32>,
    /// Pin a single non-NUMA device with hotplug off/any to a free pcie.0 slot.
    pub pin: bool,
}

/// Knobs of the request generator.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Units (singles or groups) per request.
    pub units: (usize, usize),
    /// Most devices kept (groups may push past the unit count).
    pub max_devices: usize,
    /// Probability weights (out of 100) of a group, a NUMA node, a pin.
    pub group_pct: u32,
    pub numa_pct: u32,
    pub pin_pct: u32,
    /// Usable root slots (pins go to 1..=root_slots).
    pub root_slots: u8,
    /// Largest spare_ports.
    pub max_spare: u32,
    /// Restrict models to this many distinct ones of each kind (0 = all).
    pub few_models: bool,
}

impl Shape {
    /// 0..40 devices on the full q35 root bus.
    pub fn small() -> Shape {
        Shape {
            units: (0, 32),
            max_devices: 40,
            group_pct: 12,
            numa_pct: 12,
            pin_pct: 6,
            root_slots: 30,
            max_spare: 3,
            few_models: false,
        }
    }
    /// 100..260 devices: pcie.0 runs out, expanders and bus numbers matter.
    pub fn big() -> Shape {
        Shape {
            units: (90, 230),
            max_devices: 260,
            group_pct: 8,
            numa_pct: 5,
            pin_pct: 3,
            root_slots: 30,
            max_spare: 3,
            few_models: false,
        }
    }
}

/// A device's hotplug: unset (the policy's default) or each value.
pub fn hotplug() -> impl Strategy<Value = Option<Hotplug>> {
    prop_oneof![
        Just(None),
        Just(Some(Hotplug::On)),
        Just(Some(Hotplug::Off)),
        Just(Some(Hotplug::Any))
    ]
}

fn hotplug_value() -> impl Strategy<Value = Hotplug> {
    prop_oneof![Just(Hotplug::On), Just(Hotplug::Off), Just(Hotplug::Any)]
}

fn off_strategy() -> impl Strategy<Value = OffStrategy> {
    prop_oneof![
        Just(OffStrategy::Integrated),
        Just(OffStrategy::Port),
        Just(OffStrategy::Auto)
    ]
}

/// A policy with every value of every field.
pub fn policy(max_spare: u32) -> impl Strategy<Value = Policy> {
    (
        hotplug_value(),
        0..=max_spare,
        off_strategy(),
        any::<bool>(),
    )
        .prop_map(
            |(default_hotplug, spare_ports, hotplug_off, pack_integrated)| Policy {
                default_hotplug,
                spare_ports,
                hotplug_off,
                pack_integrated,
            },
        )
}

fn pct(p: u32) -> impl Strategy<Value = bool> {
    (0u32..100).prop_map(move |x| x < p)
}

fn unit(shape: Shape, nmodels: usize) -> impl Strategy<Value = UnitSpec> {
    let members = (pct(shape.group_pct), 2usize..=3).prop_map(|(g, n)| if g { n } else { 1 });
    (
        members,
        proptest::collection::vec(0..nmodels, 3),
        hotplug(),
        pct(shape.numa_pct),
        0u32..2,
        pct(shape.pin_pct),
    )
        .prop_map(|(n, ms, hotplug, numa, node, pin)| UnitSpec {
            models: ms[..n].to_vec(),
            hotplug,
            numa: numa.then_some(node),
            pin,
        })
}

/// Builds a request from unit specs: devices `d0, d1, ...` in unit order, groups `g0, ...`.
pub fn build(policy: Policy, units: &[UnitSpec], models: &[String], shape: Shape) -> Request {
    let mut devices = Vec::new();
    let mut used_slots = BTreeSet::new();
    for (ui, u) in units.iter().enumerate() {
        if devices.len() + u.models.len() > shape.max_devices {
            break;
        }
        let grouped = u.models.len() > 1;
        for &m in &u.models {
            let i = devices.len();
            let hp = u.hotplug.unwrap_or(policy.default_hotplug);
            let mut address = None;
            if u.pin && !grouped && u.numa.is_none() && hp != Hotplug::On {
                // lowest free slot from a pseudo-random start, so pins spread over the bus
                let start = (ui * 7 + m) % usize::from(shape.root_slots);
                let slot = (0..usize::from(shape.root_slots))
                    .map(|k| (start + k) % usize::from(shape.root_slots) + 1)
                    .find(|s| !used_slots.contains(s));
                if let Some(s) = slot {
                    used_slots.insert(s);
                    address = Some(Address {
                        bus: "pcie.0".into(),
                        slot: s as u8,
                        function: 0,
                    });
                }
            }
            devices.push(DeviceRequest {
                id: format!("d{i}").into(),
                model: models[m].clone().into(),
                hotplug: u.hotplug,
                group: grouped.then(|| format!("g{ui}").into()),
                numa_node: u.numa,
                bus_kind: None,
                address,
            });
        }
    }
    Request {
        name: Some("prop".into()),
        machine: "q35".into(),
        firmware: Default::default(),
        policy,
        devices,
        controllers: vec![],
        root_hotplug: None,
    }
}

/// Random requests of the given shape.
pub fn request(shape: Shape) -> impl Strategy<Value = Request> {
    let models = models();
    let n = if shape.few_models { 6 } else { models.len() };
    (
        policy(shape.max_spare),
        proptest::collection::vec(unit(shape, n), shape.units.0..=shape.units.1),
    )
        .prop_map(move |(p, us)| {
            let ms: Vec<String> = if shape.few_models {
                few_models()
            } else {
                models.clone()
            };
            build(p, &us, &ms, shape)
        })
}

/// Three PCIe and three conventional models, for the oracle (kinds are what matters).
pub fn few_models() -> Vec<String> {
    [
        "virtio-net-pci",
        "nvme",
        "vfio-pci",
        "e1000",
        "VGA",
        "rtl8139",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The request as one line of JSON, for failure messages and regression notes.
pub fn json(req: &Request) -> String {
    serde_json::to_string(req).unwrap_or_else(|e| format!("<unserialisable: {e}>"))
}

/// The case of `ONE='slots bus_max io request-json'` (io: a number of I/O windows, or -):
/// its shrunken catalog and request, for the ignored `one` tests that print what the planner
/// and the oracle make of one case.
pub fn one_case() -> (Catalog, Request) {
    let spec = std::env::var("ONE").expect("ONE='slots bus_max io request-json'");
    let mut it = spec.splitn(4, ' ');
    let mut next = || it.next().expect("ONE has four parts");
    let slots: u8 = next().parse().expect("slots");
    let bus_max: u32 = next().parse().expect("bus_max");
    let io: Option<u32> = next().parse().ok();
    let req = Request::from_json(next()).expect("the request parses");
    (shrunk_catalog(slots, bus_max, io), req)
}
