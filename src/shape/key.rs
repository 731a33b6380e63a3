//! The shape key: a request encoded with its names replaced, what a shape-cache lookup
//! compares.

use super::{free_text_fits_templates, planner_style};
use crate::catalog::Catalog;
use crate::idmap::IdMap;
use crate::request::{Address, ControllerRequest, Request};

/// Writes the shape key of `req` into `out`: an injective encoding of the request with
/// every name replaced as [`Shape::of`] replaces it, so two requests have the same key
/// exactly when they have the same canonical request. Computed without copying the
/// request, it is what a cache lookup costs. `false` when the request cannot be shared
/// (the cases where [`Shape::of`] gives `None`).
pub(super) fn shape_key(req: &Request, cat: &Catalog, out: &mut Vec<u8>) -> bool {
    let Request {
        name: _,
        machine,
        firmware,
        policy,
        devices,
        controllers,
        root_hotplug,
    } = req;
    let crate::request::Policy {
        default_hotplug,
        spare_ports,
        hotplug_off,
        pack_integrated,
    } = policy;
    if !free_text_fits_templates(req) {
        return false;
    }
    out.clear();
    key_str(out, machine);
    out.extend_from_slice(&[
        *firmware as u8,
        *default_hotplug as u8,
        *hotplug_off as u8,
        u8::from(*pack_integrated),
        match root_hotplug {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        },
    ]);
    out.extend_from_slice(&spare_ports.to_le_bytes());
    let buses = KeyBuses::new(cat.root.bus.as_str(), controllers);
    let mut groups: Vec<&str> = Vec::new();
    out.extend_from_slice(&(devices.len() as u32).to_le_bytes());
    for d in devices {
        let crate::request::DeviceRequest {
            id,
            model,
            hotplug,
            group,
            numa_node,
            bus_kind,
            address: addr,
        } = d;
        key_name(out, id);
        key_str(out, model);
        out.push(hotplug.map_or(0, |h| 1 + h as u8));
        key_num(
            out,
            group
                .as_deref()
                .map(|g| match groups.iter().position(|x| *x == g) {
                    Some(p) => p as u32,
                    None => {
                        groups.push(g);
                        groups.len() as u32 - 1
                    }
                }),
        );
        key_num(out, *numa_node);
        out.push(bus_kind.map_or(0, |k| 1 + k as u8));
        match addr {
            Some(a) => {
                out.push(1);
                if !buses.address(out, a) {
                    return false;
                }
            }
            None => out.push(0),
        }
    }
    key_controllers(out, controllers, &buses)
}

/// The controllers' part of a shape key (see [`shape_key`]).
fn key_controllers(out: &mut Vec<u8>, controllers: &[ControllerRequest], buses: &KeyBuses) -> bool {
    out.extend_from_slice(&(controllers.len() as u32).to_le_bytes());
    for c in controllers {
        let ControllerRequest {
            id,
            model,
            hotplug,
            address: addr,
            chassis,
            port,
            bus_nr,
            numa_node,
            io_reserve,
        } = c;
        key_name(out, id);
        key_str(out, model);
        out.push(hotplug.map_or(0, |h| 1 + u8::from(h)));
        if !buses.address(out, addr) {
            return false;
        }
        key_num(out, chassis.map(u32::from));
        key_num(out, port.map(u32::from));
        key_num(out, bus_nr.map(u32::from));
        key_num(out, *numa_node);
        key_num(out, *io_reserve);
    }
    true
}

fn key_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn key_num(out: &mut Vec<u8>, n: Option<u32>) {
    match n {
        Some(n) => {
            out.push(1);
            out.extend_from_slice(&n.to_le_bytes());
        }
        None => out.push(0),
    }
}

/// A device or controller name: kept verbatim when it looks like a planner name, else
/// replaced by its position (implicit in where the token sits).
fn key_name(out: &mut Vec<u8>, id: &str) {
    if planner_style(id) {
        out.push(1);
        key_str(out, id);
    } else {
        out.push(0);
    }
}

/// Bus names as a shape key writes them: the root bus, a planner-style name verbatim, or a
/// controller's position in the request.
struct KeyBuses<'r> {
    root: &'r str,
    controllers: &'r [ControllerRequest],
    /// Controller positions by id: a scan for a few, a map for many.
    index: Option<IdMap<&'r str, usize>>,
}

impl<'r> KeyBuses<'r> {
    fn new(root: &'r str, controllers: &'r [ControllerRequest]) -> KeyBuses<'r> {
        let index = (controllers.len() > 16).then(|| {
            controllers
                .iter()
                .enumerate()
                .map(|(i, c)| (c.id.as_str(), i))
                .collect()
        });
        KeyBuses {
            root,
            controllers,
            index,
        }
    }

    fn position(&self, b: &str) -> Option<usize> {
        match &self.index {
            Some(m) => m.get(b).copied(),
            None => self.controllers.iter().rposition(|c| c.id == b),
        }
    }

    /// Writes an address; `false` when its bus names no controller of the request.
    fn address(&self, out: &mut Vec<u8>, a: &Address) -> bool {
        let Address {
            bus,
            slot,
            function,
        } = a;
        if bus == self.root {
            out.push(2);
        } else {
            let Some(i) = self.position(bus) else {
                return false;
            };
            if planner_style(bus) {
                out.push(1);
                key_str(out, bus);
            } else {
                out.push(0);
                out.extend_from_slice(&(i as u32).to_le_bytes());
            }
        }
        out.extend_from_slice(&[*slot, *function]);
        true
    }
}
