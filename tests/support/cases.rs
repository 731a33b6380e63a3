//! Small random oracle cases: a shrunken catalog, pieces of an existing topology on the
//! highest `pcie.0` slots, and a few devices, some pinned (`tests/oracle.rs`,
//! `tests/oracle_adopt.rs`).
#![allow(dead_code)]

use std::collections::BTreeSet;

use pciplan::{Address, Catalog, ControllerRequest, DeviceRequest, Hotplug, Policy, Request};
use proptest::prelude::*;

use super::oracle::is_port;
use super::{few_models, json, shrunk_catalog_of};

/// Pieces of an existing (pinned) topology, each on its own `pcie.0` slot.
#[derive(Debug, Clone)]
pub enum Piece {
    /// Root ports in functions 0.. of one slot, with these hotplug settings.
    RootPorts(Vec<bool>),
    /// An expander with a NUMA node, a `bus_nr` (as an offset below the budget's top) and
    /// root ports.
    Expander(Option<u32>, Option<u32>, Vec<bool>),
    /// A root port holding a pcie-pci-bridge.
    Bridge(bool),
    /// A root port holding a switch with these downstream ports.
    Switch(bool, Vec<bool>),
}

/// One device of a case: a model of `few_models`, its hotplug, NUMA node and group number
/// (0: none; a group takes its first member's hotplug and NUMA node).
pub fn device() -> impl Strategy<Value = (usize, Option<Hotplug>, Option<u32>, u8)> {
    (
        0usize..6,
        prop::option::of(prop_oneof![
            Just(Hotplug::On),
            Just(Hotplug::Off),
            Just(Hotplug::Any)
        ]),
        prop::option::weighted(0.2, 0u32..2),
        prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
    )
}

pub fn piece() -> impl Strategy<Value = Piece> {
    let hps = |n: usize| proptest::collection::vec(any::<bool>(), 0..=n);
    prop_oneof![
        hps(3).prop_map(|v| Piece::RootPorts(if v.is_empty() { vec![true] } else { v })),
        (prop::option::of(0u32..2), prop::option::of(0u32..4), hps(2))
            .prop_map(|(n, b, v)| Piece::Expander(n, b, v)),
        any::<bool>().prop_map(Piece::Bridge),
        (any::<bool>(), hps(2)).prop_map(|(h, v)| Piece::Switch(h, v)),
    ]
}

/// One oracle case: the catalog's knobs and the request.
#[derive(Debug, Clone)]
pub struct Case {
    pub slots: u8,
    pub bus_max: u32,
    pub io: Option<u32>,
    pub req: Request,
}

impl Case {
    /// The shrunken catalog of the request's machine.
    pub fn catalog(&self) -> Catalog {
        let base = Catalog::for_machine(&self.req.machine).expect("a known machine");
        shrunk_catalog_of(base, self.slots, self.bus_max, self.io)
    }

    /// The same case on aarch64 `virt` (UEFI, the only firmware it boots; the conventional
    /// VGA, which `virt` lacks, becomes `virtio-gpu-pci`, the other model QEMU never unplugs).
    pub fn on_virt(mut self) -> Case {
        self.req.machine = "virt".into();
        self.req.firmware = pciplan::Firmware::Uefi;
        for d in self.req.devices.iter_mut() {
            if d.model == "VGA" {
                d.model = "virtio-gpu-pci".into();
            }
        }
        self
    }
    pub fn describe(&self) -> String {
        format!(
            "catalog: {} root slots 1..={}, bus_numbers.max {}, io windows {:?}\nrequest: {}",
            self.req.machine,
            self.slots,
            self.bus_max,
            self.io,
            json(&self.req)
        )
    }
}

pub fn build_case(
    slots: u8,
    bus_max: u32,
    io: Option<u32>,
    policy: Policy,
    devs: Vec<(usize, Option<Hotplug>, Option<u32>, u8)>,
    pieces: Vec<Piece>,
    pin_mask: u8,
) -> Case {
    let models = few_models();
    let mut controllers = Vec::new();
    let mut chassis = 0u8;
    let mut port = |id: String, bus: &str, slot: u8, function: u8, hp: bool, model: &str| {
        chassis += 1;
        ControllerRequest {
            id: id.into(),
            model: model.into(),
            hotplug: Some(hp),
            address: Address {
                bus: bus.into(),
                slot,
                function,
            },
            chassis: Some(chassis),
            port: None,
            bus_nr: None,
            numa_node: None,
            io_reserve: None,
        }
    };
    let mut slot = slots;
    for (k, p) in pieces.iter().enumerate() {
        if slot == 0 {
            break;
        }
        match p {
            Piece::RootPorts(hps) => {
                for (f, &h) in hps.iter().enumerate() {
                    controllers.push(port(
                        format!("e{k}rp{f}"),
                        "pcie.0",
                        slot,
                        f as u8,
                        h,
                        "pcie-root-port",
                    ));
                }
            }
            Piece::Expander(numa, bus_nr, hps) => {
                let id = format!("e{k}pxb");
                let mut pxb = port(id.clone(), "pcie.0", slot, 0, true, "pxb-pcie");
                pxb.hotplug = None;
                pxb.chassis = None;
                pxb.numa_node = *numa;
                pxb.bus_nr =
                    bus_nr.map(|b| bus_max.saturating_sub(b + hps.len() as u32).max(1) as u8);
                controllers.push(pxb);
                for (f, &h) in hps.iter().enumerate() {
                    controllers.push(port(
                        format!("e{k}rp{f}"),
                        &id,
                        0,
                        f as u8,
                        h,
                        "pcie-root-port",
                    ));
                }
            }
            Piece::Bridge(h) => {
                controllers.push(port(
                    format!("e{k}rp"),
                    "pcie.0",
                    slot,
                    0,
                    *h,
                    "pcie-root-port",
                ));
                let mut br = port(
                    format!("e{k}br"),
                    &format!("e{k}rp"),
                    0,
                    0,
                    true,
                    "pcie-pci-bridge",
                );
                br.hotplug = None;
                br.chassis = None;
                controllers.push(br);
            }
            Piece::Switch(h, downs) => {
                controllers.push(port(
                    format!("e{k}rp"),
                    "pcie.0",
                    slot,
                    0,
                    *h,
                    "pcie-root-port",
                ));
                let mut up = port(
                    format!("e{k}up"),
                    &format!("e{k}rp"),
                    0,
                    0,
                    true,
                    "x3130-upstream",
                );
                up.hotplug = None;
                up.chassis = None;
                controllers.push(up);
                for (s, &dh) in downs.iter().enumerate() {
                    controllers.push(port(
                        format!("e{k}dp{s}"),
                        &format!("e{k}up"),
                        s as u8,
                        0,
                        dh,
                        "xio3130-downstream",
                    ));
                }
            }
        }
        slot -= 1;
    }
    // Devices: groups are runs with the same group number.
    let mut devices: Vec<DeviceRequest> = Vec::new();
    for (i, (m, hp, numa, g)) in devs.iter().enumerate() {
        let group = (*g > 0).then(|| pciplan::Text::from(format!("g{g}")));
        // a group member takes the first member's hotplug and NUMA node
        let first = group
            .as_ref()
            .and_then(|gr| devices.iter().find(|d| d.group.as_ref() == Some(gr)));
        let (hotplug, numa_node) = match first {
            Some(f) => (f.hotplug, f.numa_node),
            None => (*hp, *numa),
        };
        devices.push(DeviceRequest {
            id: format!("d{i}").into(),
            model: models[*m].clone().into(),
            hotplug,
            group,
            numa_node,
            bus_kind: None,
            address: None,
        });
    }
    let mut case = Case {
        slots,
        bus_max,
        io,
        req: Request {
            name: None,
            machine: "q35".into(),
            firmware: Default::default(),
            policy,
            devices,
            controllers,
            root_hotplug: None,
        },
    };
    pin_some(&mut case, pin_mask);
    case
}

/// Pins the devices `pin_mask` selects where they obviously fit: an ungrouped device without
/// NUMA node on a free `pcie.0` slot (not `on`), into an empty existing port of the right
/// hotplug (PCIe), or on the existing bridge (conventional, not `off`).
pub fn pin_some(case: &mut Case, pin_mask: u8) {
    let cat = case.catalog();
    let req = &mut case.req;
    let mut root_used: BTreeSet<u8> = req
        .controllers
        .iter()
        .filter(|c| c.address.bus == "pcie.0")
        .map(|c| c.address.slot)
        .collect();
    let mut taken: BTreeSet<pciplan::Text> = req
        .controllers
        .iter()
        .map(|c| c.address.bus.clone())
        .collect();
    let mut bridge_slot = 1u8;
    for i in 0..req.devices.len() {
        if pin_mask & (1 << i) == 0
            || req.devices[i].group.is_some()
            || req.devices[i].numa_node.is_some()
        {
            continue;
        }
        let d = &req.devices[i];
        let hp = d.hotplug.unwrap_or(req.policy.default_hotplug);
        let kind = cat.device(&d.model).map(|m| m.kind);
        let spot = if kind == Some(pciplan::BusKind::Pcie) {
            req.controllers
                .iter()
                .filter(|c| is_port(&c.model) && !taken.contains(&c.id))
                .find(|c| match hp {
                    Hotplug::On => c.hotplug != Some(false),
                    Hotplug::Off => c.hotplug == Some(false),
                    Hotplug::Any => true,
                })
                .map(|c| (c.id.clone(), 0u8))
        } else if hp != Hotplug::Off {
            req.controllers
                .iter()
                .find(|c| c.model == "pcie-pci-bridge")
                .map(|c| (c.id.clone(), bridge_slot))
        } else {
            None
        };
        let spot = spot.or_else(|| {
            (hp != Hotplug::On)
                .then(|| {
                    (1..=case.slots)
                        .find(|s| !root_used.contains(s))
                        .map(|s| (pciplan::Text::from("pcie.0"), s))
                })
                .flatten()
        });
        if let Some((bus, slot)) = spot {
            if bus == "pcie.0" {
                root_used.insert(slot);
            } else if slot > 0 {
                bridge_slot += 1;
            } else {
                taken.insert(bus.clone());
            }
            req.devices[i].address = Some(Address {
                bus,
                slot,
                function: 0,
            });
        }
    }
}
