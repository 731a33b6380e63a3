//! A batch outcome's result dict with its plan built field by field, as the library's JSON
//! writer spells a plan (`emit::json::plan`, checked there against serde), rather than
//! through serde's derived serializers: a plan's devices and controllers are most of a
//! result, and serde's traversal was a fifth of the caller's work on one. What is rarer
//! (errors, `changes`, `notes`) still goes through serde ([`Keys::build`]). The tests
//! compare every result with the command line's line.

use pciplan::batch::Outcome;
use pciplan::{BusKind, Firmware, Hotplug, PlacedController, PlacedDevice, Plan};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyList};

use crate::pyser::{Keys, Result, FIXED};

// The numbers of the dicts' key sequences (see `Keys::shaped`): each builder below adds
// to its base a bit for each optional field it writes, so one number is one sequence.
const OUTCOME: usize = 0;
/// + root_hotplug 1, guest_visible_changes 2, changes 4, notes 8.
const PLAN: usize = 1;
/// + group 1, numa_node 2.
const DEVICE: usize = PLAN + 16;
/// + chassis 1, port 2, hotplug 4, bus_nr 8, numa_node 16, io-reserve 32.
const CONTROLLER: usize = DEVICE + 4;

// The numbers of the enum words (see `Keys::fixed`).
const PCIE: usize = 0;
const PCI: usize = 1;
const ON: usize = 2;
const OFF: usize = 3;
const ANY: usize = 4;
const BIOS: usize = 5;
const UEFI: usize = 6;
const _: () = assert!(UEFI < FIXED);

/// The result dict of `o` (what its output line parses to).
pub fn outcome<'py>(keys: &mut Keys<'py>, o: &Outcome) -> Result<Bound<'py, PyAny>> {
    let Ok(plan) = &o.result else {
        return keys.build(o);
    };
    let py = keys.py();
    let name = match &o.name {
        Some(n) => keys.text(n).into_any(),
        None => py.None().into_bound(py),
    };
    let fields = [
        ("line", int(py, o.line)),
        ("name", name),
        ("ok", boolean(py, true)),
        ("cost", int(py, u64::from(plan.cost))),
        ("optimal", boolean(py, plan.optimal)),
        ("plan", plan_dict(keys, plan)?),
    ];
    Ok(keys.shaped(OUTCOME, &fields)?.into_any())
}

/// A plan's dict, its fields in `emit::json::plan`'s order.
pub fn plan_dict<'py>(keys: &mut Keys<'py>, plan: &Plan) -> Result<Bound<'py, PyAny>> {
    // Every field named (no `..`): a field added to the plan stops the build here until
    // it is written below.
    let Plan {
        name,
        machine,
        firmware,
        root_hotplug,
        cost,
        optimal,
        guest_visible_changes,
        changes,
        notes,
        controllers,
        devices,
    } = plan;
    let py = keys.py();
    let mut fields = Vec::with_capacity(12);
    let mut shape = PLAN;
    let name = match name {
        Some(n) => keys.text(n).into_any(),
        None => py.None().into_bound(py),
    };
    fields.push(("name", name));
    fields.push(("machine", keys.word(machine).into_any()));
    let firmware = match firmware {
        Firmware::Bios => keys.fixed(BIOS, "bios"),
        Firmware::Uefi => keys.fixed(UEFI, "uefi"),
    };
    fields.push(("firmware", firmware.into_any()));
    if let Some(h) = *root_hotplug {
        fields.push(("root_hotplug", boolean(py, h)));
        shape += 1;
    }
    fields.push(("cost", int(py, u64::from(*cost))));
    fields.push(("optimal", boolean(py, *optimal)));
    if let Some(n) = *guest_visible_changes {
        fields.push(("guest_visible_changes", int(py, u64::from(n))));
        shape += 2;
    }
    if let Some(list) = changes {
        fields.push(("changes", keys.build(list)?));
        shape += 4;
    }
    if !notes.is_empty() {
        fields.push(("notes", keys.build(notes)?));
        shape += 8;
    }
    let mut items = Vec::with_capacity(controllers.len());
    for c in controllers {
        items.push(controller(keys, c)?);
    }
    fields.push(("controllers", PyList::new(py, items)?.into_any()));
    let mut items = Vec::with_capacity(devices.len());
    for d in devices {
        items.push(device(keys, d)?);
    }
    fields.push(("devices", PyList::new(py, items)?.into_any()));
    Ok(keys.shaped(shape, &fields)?.into_any())
}

/// A placed device's dict, its fields in `emit::json::device_text`'s order.
fn device<'py>(keys: &mut Keys<'py>, d: &PlacedDevice) -> Result<Bound<'py, PyAny>> {
    // Every field named, as in `plan_dict`.
    let PlacedDevice {
        id,
        model,
        kind,
        bus,
        slot,
        function,
        multifunction,
        hotpluggable,
        hotplug,
        group,
        numa_node,
    } = d;
    let py = keys.py();
    let kind = match kind {
        BusKind::Pcie => keys.fixed(PCIE, "pcie"),
        BusKind::Pci => keys.fixed(PCI, "pci"),
    };
    let hotplug = match hotplug {
        Hotplug::On => keys.fixed(ON, "on"),
        Hotplug::Off => keys.fixed(OFF, "off"),
        Hotplug::Any => keys.fixed(ANY, "any"),
    };
    let fixed = [
        ("id", keys.text(id).into_any()),
        ("model", keys.word(model).into_any()),
        ("kind", kind.into_any()),
        ("bus", keys.word(bus).into_any()),
        ("slot", int(py, u64::from(*slot))),
        ("function", int(py, u64::from(*function))),
        ("multifunction", boolean(py, *multifunction)),
        ("hotpluggable", boolean(py, *hotpluggable)),
        ("hotplug", hotplug.into_any()),
    ];
    if group.is_none() && numa_node.is_none() {
        return Ok(keys.shaped(DEVICE, &fixed)?.into_any());
    }
    let mut fields = fixed.to_vec();
    let mut shape = DEVICE;
    if let Some(g) = group {
        fields.push(("group", keys.text(g).into_any()));
        shape += 1;
    }
    if let Some(n) = *numa_node {
        fields.push(("numa_node", int(py, u64::from(n))));
        shape += 2;
    }
    Ok(keys.shaped(shape, &fields)?.into_any())
}

/// A placed controller's dict, its fields in `emit::json::controller_text`'s order.
fn controller<'py>(keys: &mut Keys<'py>, c: &PlacedController) -> Result<Bound<'py, PyAny>> {
    // Every field named, as in `plan_dict`.
    let PlacedController {
        id,
        model,
        driver,
        bus,
        slot,
        function,
        multifunction,
        chassis,
        port,
        hotplug,
        bus_nr,
        numa_node,
        io_reserve,
        added,
    } = c;
    let py = keys.py();
    let mut fields = Vec::with_capacity(14);
    fields.push(("id", keys.text(id).into_any()));
    fields.push(("model", keys.word(model).into_any()));
    fields.push(("driver", keys.word(driver).into_any()));
    fields.push(("bus", keys.word(bus).into_any()));
    fields.push(("slot", int(py, u64::from(*slot))));
    fields.push(("function", int(py, u64::from(*function))));
    fields.push(("multifunction", boolean(py, *multifunction)));
    let mut shape = CONTROLLER;
    let optional = [
        ("chassis", chassis.map(u64::from), 1),
        ("port", port.map(u64::from), 2),
    ];
    for (k, n, bit) in optional {
        if let Some(n) = n {
            fields.push((k, int(py, n)));
            shape += bit;
        }
    }
    if let Some(h) = *hotplug {
        fields.push(("hotplug", boolean(py, h)));
        shape += 4;
    }
    let optional = [
        ("bus_nr", bus_nr.map(u64::from), 8),
        ("numa_node", numa_node.map(u64::from), 16),
        ("io-reserve", io_reserve.map(u64::from), 32),
    ];
    for (k, n, bit) in optional {
        if let Some(n) = n {
            fields.push((k, int(py, n)));
            shape += bit;
        }
    }
    fields.push(("added", boolean(py, *added)));
    Ok(keys.shaped(shape, &fields)?.into_any())
}

fn int(py: Python<'_>, n: u64) -> Bound<'_, PyAny> {
    let Ok(n) = n.into_pyobject(py);
    n.into_any()
}

fn boolean(py: Python<'_>, b: bool) -> Bound<'_, PyAny> {
    PyBool::new(py, b).to_owned().into_any()
}
