//! Existing PCI controllers as libvirt completes them at define time: one without an address
//! is placed where libvirt would place it, and missing `chassis`, `port` and `busNr` get
//! libvirt's defaults. The result is the request's pinned controllers.

use std::collections::{BTreeMap, HashMap};

use super::pci_controllers::Ctrl;
use super::xml::err;
use crate::catalog::Catalog;
use crate::error::InputError;
use crate::request::{Address, ControllerRequest};
use crate::Text;

/// What sits in each slot: bus id → slot → [(function, is an aggregating controller)].
type Occupancy = HashMap<String, BTreeMap<u8, Vec<(u8, bool)>>>;

fn occupy(occ: &mut Occupancy, a: &Address, aggregate: bool) {
    occ.entry(a.bus.to_string())
        .or_default()
        .entry(a.slot)
        .or_default()
        .push((a.function, aggregate));
}

/// Places existing controllers that have no address, as libvirt does: in index order, first
/// fit over buses in index order and slots from the lowest, root ports also taking free
/// functions of slots that hold only root ports, a dmi-to-pci-bridge at 00:1e.0 when free.
pub(super) fn place(
    cat: &Catalog,
    ctrls: &[Ctrl],
    ctrl_pins: &mut [Option<Address>],
    dev_pins: &[Option<Address>],
) -> Result<(), InputError> {
    let mut occ: Occupancy = HashMap::new();
    for a in dev_pins.iter().flatten() {
        occupy(&mut occ, a, false);
    }
    for (c, a) in ctrls.iter().zip(ctrl_pins.iter()) {
        if let Some(a) = a {
            occupy(&mut occ, a, c.model.aggregate);
        }
    }
    for i in 0..ctrls.len() {
        if ctrl_pins[i].is_some() {
            continue;
        }
        let c = &ctrls[i];
        let Some(a) = first_fit(cat, ctrls, ctrl_pins, i, &occ) else {
            return Err(err(
                format!("controller[@type='pci'][@index='{}']", c.index),
                format!("a PCI slot is needed to connect a PCI controller model='{}', but none is available, and it cannot be automatically added", c.model.libvirt.model),
            ));
        };
        occupy(&mut occ, &a, c.model.aggregate);
        ctrl_pins[i] = Some(a);
    }
    Ok(())
}

/// A bus a controller may go on: name, slots, functions per slot, classes it accepts.
type BusSlots<'a> = (String, Vec<u8>, u8, &'a Vec<String>);

/// Where libvirt puts controller `i`, given what is placed so far.
fn first_fit(
    cat: &Catalog,
    ctrls: &[Ctrl],
    ctrl_pins: &[Option<Address>],
    i: usize,
    occ: &Occupancy,
) -> Option<Address> {
    let c = &ctrls[i];
    let class = c.model.class.as_str();
    let at = |bus: &str, slot: u8, function: u8| Address {
        bus: Text::from(bus),
        slot,
        function,
    };
    let root_has_1e = occ
        .get(&cat.root.bus)
        .map(|m| m.contains_key(&0x1e))
        .unwrap_or(false);
    if class == "dmi-bridge" && !root_has_1e {
        return Some(at(&cat.root.bus, 0x1e, 0));
    }
    // Buses in index order: the root, then placed controllers.
    let mut buses: Vec<BusSlots> = vec![(
        cat.root.bus.clone(),
        cat.root_free_slots(),
        cat.root.functions,
        &cat.root.accepts,
    )];
    for (j, p) in ctrls.iter().enumerate() {
        if j != i && ctrl_pins[j].is_some() {
            buses.push((
                p.id.clone(),
                (p.model.bus.slots.min..=p.model.bus.slots.max).collect(),
                p.model.bus.functions,
                &p.model.bus.accepts,
            ));
        }
    }
    for (bus, slots, functions, accepts) in &buses {
        // libvirt auto-places a pci-bridge on pci-root (pc), never on pcie-root (q35).
        let auto_ok = accepts.iter().any(|a| a == class)
            && !(bus == &cat.root.bus && class == "pci-bridge" && cat.root.bus_type == "pcie-root");
        if !auto_ok {
            continue;
        }
        for &s in slots {
            match occ.get(bus).and_then(|m| m.get(&s)) {
                None => return Some(at(bus, s, 0)),
                Some(o) if c.model.aggregate && o.iter().all(|x| x.1) => {
                    if let Some(f) = (0..*functions).find(|f| !o.iter().any(|x| x.0 == *f)) {
                        return Some(at(bus, s, f));
                    }
                }
                _ => {}
            }
        }
    }
    None
}

/// The request's controllers, with libvirt's defaults for what the XML leaves out: a port's
/// `chassis` is its index and its `port` its slot and function (a downstream port's, its
/// slot); an expander bus without `busNr` takes the next two below the lowest one given
/// (from 256 down).
pub(super) fn requests(
    ctrls: &[Ctrl],
    ctrl_pins: &[Option<Address>],
) -> Result<Vec<ControllerRequest>, InputError> {
    let mut lowest_bus_nr: u64 = ctrls.iter().filter_map(|c| c.bus_nr).min().unwrap_or(256);
    let mut controllers: Vec<ControllerRequest> = Vec::new();
    for (c, pin) in ctrls.iter().zip(ctrl_pins) {
        let Some(address) = pin.clone() else { continue };
        let is_port = c.model.props.iter().any(|p| p == "chassis");
        let downstream = c.model.libvirt.model == "pcie-switch-downstream-port";
        let (mut chassis, mut port, mut bus_nr) = (c.chassis, c.port, c.bus_nr);
        if is_port {
            chassis = chassis.or(Some(u64::from(c.index)));
            port = port.or(Some(if downstream {
                u64::from(address.slot)
            } else {
                u64::from(address.slot) * 8 + u64::from(address.function)
            }));
        }
        if c.model.bus.bus_type == "pxb" && bus_nr.is_none() {
            if lowest_bus_nr <= 2 {
                return Err(err(&c.id, format!("No free busNr lower than current lowest busNr is available to auto-assign to bus {}. Must be manually assigned", c.index)));
            }
            lowest_bus_nr -= 2;
            bus_nr = Some(lowest_bus_nr);
        }
        controllers.push(ControllerRequest {
            id: Text::from(c.id.as_str()),
            model: Text::from(c.model.model.as_str()),
            hotplug: c.hotplug,
            address,
            chassis: chassis.map(|x| x as u8),
            port: port.map(|x| x as u8),
            bus_nr: bus_nr.map(|x| x as u8),
            numa_node: c.node.map(|x| x as u32),
            io_reserve: None,
        });
    }
    Ok(controllers)
}

#[cfg(test)]
mod tests {
    use super::super::testing::domain;

    fn placed(xml: &str) -> Vec<String> {
        let d = domain(xml).unwrap();
        d.request
            .controllers
            .iter()
            .map(|c| format!("{} {} {:?} {:?}", c.id, c.address, c.chassis, c.port))
            .collect()
    }

    #[test]
    fn root_ports_pack_eight_per_slot() {
        let ports: String = (1..=9)
            .map(|i| format!("<controller type='pci' index='{i}' model='pcie-root-port'/>"))
            .collect();
        let p = placed(&ports);
        assert_eq!(p[0], "pci.1 pcie.0:01.0 Some(1) Some(8)");
        assert_eq!(p[7], "pci.8 pcie.0:01.7 Some(8) Some(15)");
        assert_eq!(p[8], "pci.9 pcie.0:02.0 Some(9) Some(16)");
    }

    #[test]
    fn dmi_bridge_prefers_1e() {
        let p = placed("<controller type='pci' index='1' model='dmi-to-pci-bridge'/>");
        assert!(p[0].starts_with("pci.1 pcie.0:1e.0"), "{p:?}");
    }

    #[test]
    fn expander_bus_numbers_count_down_from_256() {
        let d = domain(
            "<controller type='pci' index='1' model='pcie-expander-bus'/>\
             <controller type='pci' index='2' model='pcie-expander-bus'/>",
        )
        .unwrap();
        let nrs: Vec<Option<u8>> = d.request.controllers.iter().map(|c| c.bus_nr).collect();
        assert_eq!(nrs, vec![Some(254), Some(252)]);
    }
}
