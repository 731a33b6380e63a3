//! The libvirt numbers of a plan's controllers: the index of every bus (existing controllers
//! keep theirs, added ones take the lowest unused, in plan order so that every bus comes
//! before its users) and the chassis of added ports (libvirt's default, the index, when no
//! other port has it; else the lowest free).

use std::collections::{BTreeSet, HashMap};

use crate::catalog::Catalog;
use crate::error::InputError;
use crate::libvirt::Domain;
use crate::plan::Plan;

/// libvirt's largest PCI controller index.
const MAX_INDEX: u32 = 255;

/// Controller indexes and chassis numbers for one plan of one domain.
#[derive(Debug)]
pub(super) struct Numbering {
    index: HashMap<String, u32>,
    chassis: HashMap<String, u8>,
}

impl Numbering {
    pub fn new(dom: &Domain, plan: &Plan, cat: &Catalog) -> Result<Numbering, InputError> {
        let mut n = Numbering {
            index: indexes(dom, plan, cat)?,
            chassis: HashMap::new(),
        };
        n.chassis = n.chassis_numbers(plan)?;
        Ok(n)
    }

    /// The libvirt index of bus `bus` (the root is 0).
    pub fn index(&self, bus: &str) -> Result<u32, InputError> {
        self.index.get(bus).copied().ok_or_else(|| {
            InputError::new(
                bus,
                format!("the plan uses bus '{bus}', which is not a controller of this domain"),
            )
        })
    }

    /// The chassis of an added port.
    pub fn chassis(&self, id: &str) -> Option<u8> {
        self.chassis.get(id).copied()
    }

    fn chassis_numbers(&self, plan: &Plan) -> Result<HashMap<String, u8>, InputError> {
        let mut used: BTreeSet<u8> = plan
            .controllers
            .iter()
            .filter(|c| !c.added)
            .filter_map(|c| c.chassis)
            .collect();
        let mut chassis = HashMap::new();
        for c in plan
            .controllers
            .iter()
            .filter(|c| c.added && c.chassis.is_some())
        {
            let i = self.index(&c.id)?;
            let ch = match u8::try_from(i) {
                Ok(x) if x > 0 && !used.contains(&x) => x,
                _ => (1..=255u8)
                    .find(|x| !used.contains(x))
                    .ok_or_else(|| InputError::new(c.id.as_str(), "no free chassis number"))?,
            };
            used.insert(ch);
            chassis.insert(c.id.to_string(), ch);
        }
        Ok(chassis)
    }
}

fn indexes(dom: &Domain, plan: &Plan, cat: &Catalog) -> Result<HashMap<String, u32>, InputError> {
    let mut index: HashMap<String, u32> = HashMap::new();
    index.insert(cat.root.bus.clone(), 0);
    let mut used: BTreeSet<u32> = dom.controllers.iter().map(|c| c.index).collect();
    used.insert(0);
    for c in &dom.controllers {
        index.insert(c.id.clone(), c.index);
    }
    let mut next = 1u32;
    for c in plan.controllers.iter().filter(|c| c.added) {
        while used.contains(&next) {
            next += 1;
        }
        if next > MAX_INDEX {
            return Err(InputError::new(
                c.id.as_str(),
                "the plan needs a PCI controller index above 255 (libvirt's maximum)",
            ));
        }
        used.insert(next);
        index.insert(c.id.to_string(), next);
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_controllers_fill_index_gaps_and_take_their_index_as_chassis() {
        let xml = "<domain><name>t</name><os><type machine='q35'>hvm</type></os><devices>\
            <controller type='pci' index='2' model='pcie-root-port'><target chassis='1'/></controller>\
            <interface type='network'><model type='virtio'/></interface>\
            <interface type='network'><model type='virtio'/></interface>\
            </devices></domain>";
        let dom = Domain::parse(xml).unwrap();
        let plan = dom.plan().unwrap();
        let n = Numbering::new(&dom, &plan, Catalog::q35()).unwrap();
        assert_eq!(n.index("pcie.0").unwrap(), 0);
        assert_eq!(n.index("pci.2").unwrap(), 2);
        let added: Vec<(u32, Option<u8>)> = plan
            .controllers
            .iter()
            .filter(|c| c.added)
            .map(|c| (n.index(&c.id).unwrap(), n.chassis(&c.id)))
            .collect();
        // Four devices need a port (two NICs, libvirt's USB controller and balloon); one takes
        // the existing port. The new ports take the free indexes 1, 3, 4; port 1 cannot have
        // chassis 1 (the existing port's), so it gets the lowest free one.
        assert_eq!(added, vec![(1, Some(2)), (3, Some(3)), (4, Some(4))]);
        assert!(n.index("nope").is_err());
    }
}
