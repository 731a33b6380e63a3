use crate::catalog::{BusKind, Catalog, HotplugControl};
use crate::plan::{PlacedController, PlacedDevice, Plan};
use crate::request::{Hotplug, Request};
use crate::Text;

/// A request from JSON (panics on bad JSON: tests only).
pub(crate) fn request(json: &str) -> Request {
    Request::from_json(json).expect("test request parses")
}

/// A pinned controller of a q35 model at `bus:slot.function`; ports get `hotplug=on`.
pub(crate) fn ctrl(id: &str, model: &str, bus: &str, slot: u8, function: u8) -> PlacedController {
    let m = Catalog::q35().controller(model);
    let is_port = m.is_some_and(|m| m.hotplug == HotplugControl::Property);
    PlacedController {
        id: Text::from(id),
        model: Text::from(model),
        driver: Text::from(m.map_or(model, |m| m.qemu.as_str())),
        bus: Text::from(bus),
        slot,
        function,
        multifunction: false,
        chassis: None,
        port: None,
        hotplug: is_port.then_some(true),
        bus_nr: None,
        numa_node: None,
        io_reserve: None,
        added: false,
    }
}

/// The same controller, marked as added by the planner.
pub(crate) fn added(mut c: PlacedController) -> PlacedController {
    c.added = true;
    c
}

/// A device of a q35 model at `bus:slot.function` (kind from the catalog).
pub(crate) fn dev(id: &str, model: &str, bus: &str, slot: u8, function: u8) -> PlacedDevice {
    PlacedDevice {
        id: Text::from(id),
        model: Text::from(model),
        kind: Catalog::q35()
            .device(model)
            .map_or(BusKind::Pcie, |m| m.kind),
        bus: Text::from(bus),
        slot,
        function,
        multifunction: false,
        hotpluggable: false,
        hotplug: Hotplug::Any,
        group: None,
        numa_node: None,
    }
}

/// A q35 plan of these controllers and devices.
pub(crate) fn plan(controllers: Vec<PlacedController>, devices: Vec<PlacedDevice>) -> Plan {
    Plan {
        name: None,
        machine: "q35".into(),
        firmware: Default::default(),
        root_hotplug: None,
        cost: 0,
        optimal: true,
        guest_visible_changes: None,
        changes: None,
        notes: Vec::new(),
        controllers,
        devices,
    }
}
