//! Ids for the devices read (a valid alias, else prefix + ordinal), their pins (an
//! `<address type='pci'>` with the bus index turned into a bus name), and libvirt's rule for the
//! kind of a pinned endpoint.

use std::collections::{BTreeSet, HashMap};

use super::pci_controllers::Ctrl;
use super::xml::{checked_address, err};
use super::Item;
use crate::catalog::{BusKind, Catalog};
use crate::error::{InputError, Violation};
use crate::request::{valid_id, Address, ControllerRequest};
use crate::rule::Rule;

/// An alias pciplan can use as an id.
fn usable_alias(a: &str) -> bool {
    valid_id(a) && a != "pcie.0"
}

/// The id of each item, in item order: its alias when usable and unique, else the item's
/// prefix and the lowest ordinal no other device or controller has. `taken` holds the PCI
/// controllers' ids.
pub(super) fn assign(items: &[Item], taken: &BTreeSet<String>) -> Result<Vec<String>, InputError> {
    let mut taken = taken.clone();
    let mut alias_seen: BTreeSet<String> = BTreeSet::new();
    for it in items {
        if let Some(a) = it.alias.as_deref().filter(|a| usable_alias(a)) {
            if !alias_seen.insert(a.to_string()) || taken.contains(a) {
                return Err(err(&it.what, format!("duplicate alias '{a}'")));
            }
        }
    }
    let mut counters: HashMap<&str, usize> = HashMap::new();
    let mut ids = Vec::with_capacity(items.len());
    for it in items {
        let id = match it.alias.as_deref().filter(|a| usable_alias(a)) {
            Some(a) => a.to_string(),
            None => loop {
                let n = counters.entry(it.prefix).or_insert(0);
                let cand = format!("{}{}", it.prefix, n);
                *n += 1;
                if !taken.contains(&cand) && !alias_seen.contains(&cand) {
                    break cand;
                }
            },
        };
        taken.insert(id.clone());
        ids.push(id);
    }
    Ok(ids)
}

/// Bus names by libvirt controller index.
pub(super) struct Buses {
    root: String,
    by_index: HashMap<u32, String>,
}

impl Buses {
    pub fn new(cat: &Catalog, ctrls: &[Ctrl]) -> Buses {
        Buses {
            root: cat.root.bus.clone(),
            by_index: ctrls.iter().map(|c| (c.index, c.id.clone())).collect(),
        }
    }

    /// The bus name of controller index `bus` (a missing controller keeps libvirt's default
    /// name, so the validator reports it as a missing bus).
    fn name(&self, bus: u64) -> String {
        if bus == 0 {
            self.root.clone()
        } else {
            self.by_index
                .get(&(bus as u32))
                .cloned()
                .unwrap_or_else(|| format!("pci.{bus}"))
        }
    }

    /// The pin of an address as written, after libvirt's parse-time checks.
    fn pin(
        &self,
        a: &super::xml::RawAddr,
        id: &str,
        problems: &mut Vec<Violation>,
    ) -> Option<Address> {
        checked_address(a, id, problems).map(|(bus, slot, function)| Address {
            bus: self.name(bus).into(),
            slot,
            function,
        })
    }
}

/// The pin of each item (`None`: no address, an empty one, or an invalid one, recorded in
/// `problems`).
pub(super) fn device_pins(
    items: &[Item],
    ids: &[String],
    buses: &Buses,
    problems: &mut Vec<Violation>,
) -> Vec<Option<Address>> {
    items
        .iter()
        .zip(ids)
        .map(|(it, id)| it.addr.as_ref().and_then(|a| buses.pin(a, id, problems)))
        .collect()
}

/// The pin of each PCI controller, and libvirt's check that a pci-bridge's index is above its
/// bus's.
pub(super) fn controller_pins(
    ctrls: &[Ctrl],
    buses: &Buses,
    problems: &mut Vec<Violation>,
) -> Vec<Option<Address>> {
    let mut pins = Vec::with_capacity(ctrls.len());
    for c in ctrls {
        pins.push(c.addr.as_ref().and_then(|a| buses.pin(a, &c.id, problems)));
        if c.model.model != "pci-bridge" {
            continue;
        }
        if let Some(a) = &c.addr {
            if u64::from(c.index) <= a.bus && !a.is_empty() {
                problems.push(Violation {
                    device: c.id.clone(),
                    address: a.show(),
                    rule: Rule::Legacy,
                    message: format!("PCI controller at index {} (0x{:02x}) has bus='0x{:02x}', but index must be larger than bus", c.index, c.index, a.bus),
                });
            }
        }
    }
    pins
}

/// The kind of each item: libvirt's rule for user addresses accepts a pinned endpoint on a
/// bus that takes endpoints of the other kind as that kind.
pub(super) fn pinned_kinds(
    cat: &Catalog,
    items: &[Item],
    pins: &[Option<Address>],
    controllers: &[ControllerRequest],
) -> Vec<BusKind> {
    let accepts_of = |bus: &str| -> Option<&Vec<String>> {
        if bus == cat.root.bus {
            return Some(&cat.root.accepts);
        }
        let c = controllers.iter().find(|c| c.id == bus)?;
        cat.controller(&c.model).map(|m| &m.bus.accepts)
    };
    let mut kinds: Vec<BusKind> = items.iter().map(|i| i.kind).collect();
    for (k, pin) in kinds.iter_mut().zip(pins) {
        let Some(acc) = pin.as_ref().and_then(|a| accepts_of(&a.bus)) else {
            continue;
        };
        let has = |x: BusKind| acc.iter().any(|c| c == x.category());
        let other = match *k {
            BusKind::Pcie => BusKind::Pci,
            BusKind::Pci => BusKind::Pcie,
        };
        if !has(*k) && has(other) {
            *k = other;
        }
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::super::testing::domain;
    use crate::BusKind;

    #[test]
    fn aliases_become_ids_and_others_get_ordinals() {
        let d = domain(
            "<interface type='network'><alias name='ua-net'/><model type='virtio'/></interface>\
             <interface type='network'><model type='virtio'/></interface>\
             <interface type='network'><alias name='net0'/><model type='virtio'/></interface>",
        )
        .unwrap();
        let ids: Vec<&str> = d.request.devices.iter().map(|x| x.id.as_str()).collect();
        assert_eq!(ids, vec!["ua-net", "net1", "net0", "usb0", "balloon0"]);
    }

    #[test]
    fn duplicate_alias_is_an_error() {
        let e = domain("<rng model='virtio'><alias name='x'/></rng><rng model='virtio'><alias name='x'/></rng>")
            .unwrap_err();
        assert!(e.to_string().contains("duplicate alias 'x'"), "{e}");
    }

    #[test]
    fn pins_name_buses_and_bad_addresses_are_problems() {
        let d = domain(
            "<controller type='pci' index='1' model='pcie-root-port'/>\
             <interface type='network'><model type='virtio'/><address type='pci' domain='0' bus='1' slot='0' function='0'/></interface>\
             <interface type='network'><model type='virtio'/><address type='pci' domain='0' bus='0' slot='0x20' function='0'/></interface>",
        )
        .unwrap();
        assert_eq!(d.request.devices[0].address.as_ref().unwrap().bus, "pci.1");
        assert_eq!(d.request.devices[1].address, None);
        assert_eq!(d.problems.len(), 1);
    }

    #[test]
    fn pinned_endpoint_takes_the_kind_its_bus_accepts() {
        // An e1000 (conventional PCI) pinned on a root port is accepted as PCIe.
        let d = domain(
            "<controller type='pci' index='1' model='pcie-root-port'/>\
             <interface type='network'><model type='e1000'/><address type='pci' domain='0' bus='1' slot='0' function='0'/></interface>",
        )
        .unwrap();
        assert_eq!(d.request.devices[0].bus_kind, Some(BusKind::Pcie));
    }
}
