//! The adoption oracle, written from docs/rules.md alone (O-ADOPT, G-ID, G-FLIP; see
//! `tests/oracle_adopt.rs` for how it is compared with `pciplan::adopt_with`).
//!
//! For every set of existing units that stay where they are (the others move: one change per
//! device), each port holding a kept unit gets the setting that unit needs (D-ON, D-OFF; a
//! change is a flip), `validate_pins` says whether what stays is a valid guest, and the
//! exhaustive search of `oracle.rs` places the moved units and the spares. That search knows,
//! for every place a new bus can go, which kept units it renumbers: the firmware numbers the
//! buses below `pcie.0` depth first in slot/function order from 1, and those below an
//! expander from its `bus_nr` (R-BUSNR), so a bus added at a place comes before every
//! existing bus after that place in that order, in the same numbering, and the devices on
//! those buses get another number (G-ID). The answer is the least (changes, controllers
//! added, flips) over all of that.
#![allow(dead_code)]

use std::collections::BTreeMap;

use pciplan::{Catalog, Hotplug, OffStrategy, Plan, Request, Text};

use super::oracle::{adopt_search, is_port, Positions, Score};

/// A device or a multifunction group of the existing guest.
struct Unit {
    devs: Vec<usize>,
    /// The controller whose bus it sits on (`None`: `pcie.0`, or no address).
    bus: Option<Text>,
    /// It has an address (a device without one is new: placing it changes nothing).
    existing: bool,
}

fn units(req: &Request, root: &str) -> Vec<Unit> {
    let mut out: Vec<Unit> = Vec::new();
    let mut group_at: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, d) in req.devices.iter().enumerate() {
        if let Some(&u) = d.group.as_deref().and_then(|g| group_at.get(g)) {
            out[u].devs.push(i);
            out[u].existing &= d.address.is_some();
            continue;
        }
        if let Some(g) = &d.group {
            group_at.insert(g, out.len());
        }
        out.push(Unit {
            devs: vec![i],
            bus: d
                .address
                .as_ref()
                .map(|a| a.bus.clone())
                .filter(|b| b != root),
            existing: d.address.is_some(),
        });
    }
    out
}

/// A guest's controllers and devices, from a request's addresses or from a plan.
pub struct Layout {
    /// id, model, bus, slot, function, bus_nr.
    ctrls: Vec<(Text, Text, Text, u8, u8, Option<u8>)>,
    /// id, bus, slot, function.
    devs: Vec<(Text, Text, u8, u8)>,
}

impl Layout {
    /// The request as it stands: pinned controllers and the devices that have an address.
    pub fn of_request(req: &Request) -> Layout {
        Layout {
            ctrls: req
                .controllers
                .iter()
                .map(|c| {
                    let a = &c.address;
                    (
                        c.id.clone(),
                        c.model.clone(),
                        a.bus.clone(),
                        a.slot,
                        a.function,
                        c.bus_nr,
                    )
                })
                .collect(),
            devs: req
                .devices
                .iter()
                .filter_map(|d| {
                    let a = d.address.as_ref()?;
                    Some((d.id.clone(), a.bus.clone(), a.slot, a.function))
                })
                .collect(),
        }
    }

    pub fn of_plan(p: &Plan) -> Layout {
        Layout {
            ctrls: p
                .controllers
                .iter()
                .map(|c| {
                    let (id, model, bus) = (c.id.clone(), c.model.clone(), c.bus.clone());
                    (id, model, bus, c.slot, c.function, c.bus_nr)
                })
                .collect(),
            devs: p
                .devices
                .iter()
                .map(|d| (d.id.clone(), d.bus.clone(), d.slot, d.function))
                .collect(),
        }
    }
}

/// The controllers in the firmware's depth-first order (children in slot/function order).
struct Order {
    root: String,
    /// Controllers in depth-first order: id, model, numbering domain (the root bus or the
    /// expander whose bus_nr the numbers count from; an expander is its own).
    pre: Vec<(String, String, String)>,
    index: BTreeMap<String, usize>,
    /// Per bus: the index just after its subtree.
    end: BTreeMap<String, usize>,
    /// Per bus: its children (slot, function, index).
    kids: BTreeMap<String, Vec<(u8, u8, usize)>>,
}

impl Order {
    fn read(l: &Layout, root: &str) -> Order {
        let mut o = Order {
            root: root.to_string(),
            pre: Vec::new(),
            index: BTreeMap::new(),
            end: BTreeMap::new(),
            kids: BTreeMap::new(),
        };
        o.visit(l, root, root, 0);
        o
    }

    fn visit(&mut self, l: &Layout, bus: &str, domain: &str, depth: usize) {
        let mut kids: Vec<_> = l.ctrls.iter().filter(|c| c.2 == bus).collect();
        kids.sort_by_key(|c| (c.3, c.4));
        let mut mine = Vec::new();
        for c in kids {
            if self.index.contains_key(c.0.as_str()) || depth > 64 {
                continue; // a loop: the validator's business
            }
            let i = self.pre.len();
            let dom = if c.1 == "pxb-pcie" {
                c.0.as_str()
            } else {
                domain
            };
            self.pre
                .push((c.0.to_string(), c.1.to_string(), dom.to_string()));
            self.index.insert(c.0.to_string(), i);
            mine.push((c.3, c.4, i));
            self.visit(l, &c.0, dom, depth + 1);
        }
        self.kids.insert(bus.to_string(), mine);
        self.end.insert(bus.to_string(), self.pre.len());
    }

    /// The numbering domain of the buses plugged into `bus`.
    fn domain_below(&self, bus: &str) -> String {
        match self.index.get(bus) {
            Some(&i) => self.pre[i].2.clone(),
            None => self.root.clone(),
        }
    }

    /// The existing buses (controller ids) whose number changes when a new bus is plugged
    /// into `bus` at `slot`.`function`: those after that place in its numbering.
    fn after(&self, bus: &str, slot: u8, function: u8) -> Vec<&str> {
        let key = self
            .kids
            .get(bus)
            .and_then(|k| k.iter().find(|k| (k.0, k.1) > (slot, function)))
            .map(|k| k.2)
            .or_else(|| self.end.get(bus).copied())
            .unwrap_or(usize::MAX);
        let dom = self.domain_below(bus);
        self.pre[key.min(self.pre.len())..]
            .iter()
            .filter(|c| c.1 != "pxb-pcie" && c.2 == dom)
            .map(|c| c.0.as_str())
            .collect()
    }

    /// Bus numbers as the firmware gives them (R-BUSNR): `pcie.0` 0, below it 1.. depth
    /// first; an expander its bus_nr and below it on from there (none without a bus_nr).
    fn numbers(&self, l: &Layout) -> BTreeMap<String, u32> {
        let bus_nr: BTreeMap<&str, Option<u8>> =
            l.ctrls.iter().map(|c| (c.0.as_str(), c.5)).collect();
        let mut next: BTreeMap<String, Option<u32>> = BTreeMap::new();
        next.insert(self.root.clone(), Some(1));
        let mut out = BTreeMap::new();
        out.insert(self.root.clone(), 0);
        for (id, model, dom) in &self.pre {
            if model == "pxb-pcie" {
                let nr = bus_nr.get(id.as_str()).copied().flatten().map(u32::from);
                if let Some(nr) = nr {
                    out.insert(id.clone(), nr);
                }
                next.insert(id.clone(), nr.map(|n| n + 1));
                continue;
            }
            if let Some(Some(k)) = next.get_mut(dom) {
                out.insert(id.clone(), *k);
                *k += 1;
            }
        }
        out
    }
}

/// The least (guest-visible changes, controllers added, ports flipped) of adopting `req`
/// (an existing guest: controllers and device addresses) under its policy, or `None` when
/// no layout meets it even with every device free.
pub fn adopt_min(req: &Request, cat: &Catalog) -> Option<Score> {
    let root = cat.root.bus.as_str();
    let units = units(req, root);
    assert!(units.len() < 31, "the oracle takes at most 30 units");
    let layout = Layout::of_request(req);
    let order = Order::read(&layout, root);
    let weights: Vec<u32> = units.iter().map(|u| u.devs.len() as u32).collect();
    // What a new bus at each place renumbers, over all units (kept ones are picked later).
    let renumbered = |bus: &str, slot: u8, function: u8| -> u32 {
        let after = order.after(bus, slot, function);
        let mut mask = 0;
        for (u, unit) in units.iter().enumerate() {
            if unit.bus.as_deref().is_some_and(|b| after.contains(&b)) {
                mask |= 1 << u;
            }
        }
        mask
    };
    let old: Vec<usize> = (0..units.len()).filter(|&u| units[u].existing).collect();
    let mut keeps: Vec<(u32, u32)> = (0u32..1 << old.len())
        .map(|k| {
            let mut keep = 0u32;
            let mut moved = 0;
            for (j, &u) in old.iter().enumerate() {
                if k & (1 << j) != 0 {
                    keep |= 1 << u;
                } else {
                    moved += weights[u];
                }
            }
            (moved, keep)
        })
        .collect();
    keeps.sort();
    let mut best: Option<Score> = None;
    for (moved, keep) in keeps {
        if best.is_some_and(|b| moved > b.0) {
            break;
        }
        let Some((sub, flips)) = kept_request(req, cat, &units, keep) else {
            continue;
        };
        // A kept device above an empty function 0 of a pcie.0 slot is left to the search,
        // which fills the hole with a packed device placed anew or drops the layout (R-FUNC).
        let fillable = |v: &pciplan::Violation| {
            v.rule == pciplan::Rule::Func
                && sub.policy.pack_integrated
                && v.address.starts_with(&format!("{root}:"))
        };
        if pciplan::validate_pins(&sub, cat)
            .iter()
            .any(|v| !fillable(v))
        {
            continue;
        }
        let mask_at = |bus: &str, slot: u8, function: u8| renumbered(bus, slot, function) & keep;
        let pos = Positions {
            mask_at: &mask_at,
            weights: weights.clone(),
            moved,
            flips,
        };
        if let Some(s) = adopt_search(&sub, cat, &pos, best) {
            best = Some(s);
        }
    }
    best
}

/// `req` with the units of `keep` at their addresses and the others free, and the ports of
/// kept units set as those units need (D-ON: on; D-OFF: off, unless the device is a model
/// QEMU never unplugs; `any`: as it was): with the number of ports that flip. `None` when
/// a kept unit sits where the policy does not let it stay: an `off` unit on `pcie.0` under
/// `hotplug_off: port`, or on a port under `integrated` (docs/formats.md: "only
/// hotplug=off ports", "only pcie.0"; the validator takes such pins as the user's choice).
fn kept_request(req: &Request, cat: &Catalog, units: &[Unit], keep: u32) -> Option<(Request, u32)> {
    let mut sub = req.clone();
    let mut flips = 0;
    for (u, unit) in units.iter().enumerate() {
        if keep & (1 << u) == 0 {
            for &i in &unit.devs {
                sub.devices[i].address = None;
            }
            continue;
        }
        let hp = unit
            .devs
            .iter()
            .map(|&i| req.devices[i].hotplug.unwrap_or(req.policy.default_hotplug))
            .find(|&h| h != Hotplug::Any)
            .unwrap_or(Hotplug::Any);
        let fixed = unit
            .devs
            .iter()
            .all(|&i| !cat.model_hotpluggable(&req.devices[i].model));
        let off = hp == Hotplug::Off && !fixed;
        let Some(bus) = &unit.bus else {
            if off && req.policy.hotplug_off == OffStrategy::Port {
                return None;
            }
            continue;
        };
        let Some(port) = sub
            .controllers
            .iter_mut()
            .find(|c| c.id == bus && is_port(&c.model))
        else {
            continue;
        };
        if off && req.policy.hotplug_off == OffStrategy::Integrated {
            return None;
        }
        let want = match hp {
            Hotplug::On => Some(true),
            _ if off => Some(false),
            _ => None,
        };
        let was = port.hotplug.unwrap_or(true);
        if let Some(w) = want.filter(|&w| w != was) {
            port.hotplug = Some(w);
            flips += 1;
        }
    }
    Some((sub, flips))
}

/// One device's guest-visible identity (G-ID): the (slot, function) path from the root,
/// the firmware root it hangs from (0, or its expander's bus_nr) and its bus number.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    path: Vec<(u8, u8)>,
    root: u32,
    bus: Option<u32>,
}

fn identities(l: &Layout, root: &str) -> BTreeMap<String, Identity> {
    let order = Order::read(l, root);
    let numbers = order.numbers(l);
    let ctrl: BTreeMap<&str, _> = l.ctrls.iter().map(|c| (c.0.as_str(), c)).collect();
    let mut out = BTreeMap::new();
    for (id, bus, slot, function) in &l.devs {
        let mut path = vec![(*slot, *function)];
        let mut top = 0;
        let mut at = bus.as_str();
        while let Some(c) = ctrl.get(at) {
            path.push((c.3, c.4));
            if c.1 == "pxb-pcie" {
                top = c.5.map_or(0, u32::from);
            }
            at = c.2.as_str();
            if path.len() > 64 {
                break;
            }
        }
        path.reverse();
        let bus = numbers.get(bus.as_str()).copied();
        out.insert(
            id.to_string(),
            Identity {
                path,
                root: top,
                bus,
            },
        );
    }
    out
}

/// The guest-visible changes from `before` to `after` (G-ID), by device id in `after`'s
/// order: `"moved"` (another path) or `"renumbered"` (same path, another bus number).
pub fn visible_changes(before: &Layout, after: &Layout, root: &str) -> Vec<(String, &'static str)> {
    let old = identities(before, root);
    let new = identities(after, root);
    let mut out = Vec::new();
    for (id, ..) in &after.devs {
        let (Some(o), Some(n)) = (old.get(id.as_str()), new.get(id.as_str())) else {
            continue;
        };
        if o.path != n.path || o.root != n.root {
            out.push((id.to_string(), "moved"));
        } else if o.bus != n.bus {
            out.push((id.to_string(), "renumbered"));
        }
    }
    out
}
