//! The plan: every controller and device with its address, the cost, and the proof status.

use serde::{Deserialize, Serialize};

use crate::catalog::BusKind;
use crate::request::{Address, Hotplug, Request};
use crate::Text;

/// A controller in the plan (pinned or added).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacedController {
    /// QEMU id (also the name of the bus it provides).
    pub id: Text,
    /// Catalog model.
    pub model: Text,
    /// QEMU driver.
    pub driver: Text,
    /// Parent bus.
    pub bus: Text,
    /// Slot on the parent bus.
    pub slot: u8,
    /// Function on the parent bus.
    pub function: u8,
    /// `multifunction=on` (function 0 of a shared slot).
    #[serde(default)]
    pub multifunction: bool,
    /// Port chassis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chassis: Option<u8>,
    /// Port number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u8>,
    /// `Some(false)` for a `hotplug=off` port; `Some(true)` for a hot-pluggable port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotplug: Option<bool>,
    /// Expander root bus number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus_nr: Option<u8>,
    /// Expander NUMA node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<u32>,
    /// `io-reserve` (0 when nothing below needs I/O ports).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "io-reserve"
    )]
    pub io_reserve: Option<u32>,
    /// Added by the planner (counts in the cost) rather than given.
    pub added: bool,
}

impl PlacedController {
    /// Its address.
    pub fn address(&self) -> Address {
        Address {
            bus: self.bus.clone(),
            slot: self.slot,
            function: self.function,
        }
    }
}

/// A device in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacedDevice {
    /// Request id.
    pub id: Text,
    /// QEMU driver.
    pub model: Text,
    /// PCIe or conventional.
    pub kind: BusKind,
    /// Parent bus.
    pub bus: Text,
    /// Slot.
    pub slot: u8,
    /// Function.
    pub function: u8,
    /// `multifunction=on` (function 0 of a shared slot).
    #[serde(default)]
    pub multifunction: bool,
    /// Whether the guest can hot-unplug it where it sits.
    pub hotpluggable: bool,
    /// The requirement it was planned for.
    pub hotplug: Hotplug,
    /// Multifunction group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Text>,
    /// NUMA node asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<u32>,
}

impl PlacedDevice {
    /// Its address.
    pub fn address(&self) -> Address {
        Address {
            bus: self.bus.clone(),
            slot: self.slot,
            function: self.function,
        }
    }
}

/// A planned topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Guest name.
    #[serde(default)]
    pub name: Option<Text>,
    /// Machine.
    pub machine: Text,
    /// The firmware it was planned for (its I/O budget, rule R-IO); `bios` when a plan
    /// written before firmware existed is read back.
    #[serde(default)]
    pub firmware: crate::request::Firmware,
    /// Whether the root bus is hot-pluggable, on machines where that is one switch per
    /// guest (`pc`: `false` is QEMU's `-global PIIX4_PM.acpi-root-pci-hotplug=off`, rule
    /// PC-ROOT-HP); absent on machines without the switch (q35), so their JSON is unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_hotplug: Option<bool>,
    /// Controllers added (rule O-COST).
    pub cost: u32,
    /// The solver proved no cheaper plan exists.
    pub optimal: bool,
    /// Adopting (`--adopt`): devices whose guest-visible identity changed (G-ID); absent
    /// for plain plans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_visible_changes: Option<u32>,
    /// Adopting: every change to the existing guest, devices first (O-ADOPT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<crate::changes::Change>>,
    /// What reading a libvirt domain decided that the user did not ask for, one sentence
    /// each ([`crate::libvirt::Domain::notes`]); absent when there is none, so every other
    /// plan's JSON is unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Controllers, each after the bus it plugs into.
    pub controllers: Vec<PlacedController>,
    /// Devices, in request order.
    pub devices: Vec<PlacedDevice>,
}

impl Plan {
    /// Whether the plan's devices are the request's, one for one, in request order (as
    /// every plan the planner returns has them).
    pub(crate) fn devices_in_order_of(&self, req: &Request) -> bool {
        self.devices.len() == req.devices.len()
            && self
                .devices
                .iter()
                .zip(&req.devices)
                .all(|(p, r)| p.id == r.id)
    }

    /// Number of controllers of `model` the planner added.
    pub fn added(&self, model: &str) -> usize {
        self.controllers
            .iter()
            .filter(|c| c.added && c.model == model)
            .count()
    }
}
