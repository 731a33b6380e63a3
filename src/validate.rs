//! The independent validator: plain code, no integer program, that checks a plan (or just the
//! pinned part of a request) against every rule and reports each violation with the device,
//! its address and the rule id.

use crate::rule::Rule;
use std::collections::BTreeMap;

use petgraph::stable_graph::NodeIndex;

use crate::catalog::Catalog;
use crate::error::Violation;
use crate::plan::{PlacedController, PlacedDevice, Plan};
use crate::request::{Address, Hotplug, Request};
use crate::idmap::IdMap;
use crate::topology::{Node, Topology};

/// Checks a complete plan for `req` against every rule. An empty list means valid.
///
/// ```
/// let req = pciplan::Request::from_json(r#"{"devices":[{"id":"n","model":"virtio-net-pci","hotplug":"off"}]}"#).unwrap();
/// let plan = pciplan::plan(&req).unwrap();
/// assert!(pciplan::validate(&plan, &req, &pciplan::Catalog::q35()).is_empty());
/// ```
pub fn validate(plan: &Plan, req: &Request, cat: &Catalog) -> Vec<Violation> {
    Checker {
        req,
        cat,
        full: true,
    }
    .run(plan)
}

/// Checks only the addresses a request pins (devices and controllers), before planning.
pub fn validate_pins(req: &Request, cat: &Catalog) -> Vec<Violation> {
    Checker {
        req,
        cat,
        full: false,
    }
    .run(&crate::topology::pinned_plan(req, cat))
}


struct Checker<'a> {
    req: &'a Request,
    cat: &'a Catalog,
    full: bool,
}

fn v(out: &mut Vec<Violation>, device: &str, address: &Address, rule: Rule, message: String) {
    out.push(Violation {
        device: device.to_string(),
        address: address.to_string(),
        rule,
        message,
    });
}

fn cat_fixed(cat: &Catalog, model: &str) -> bool {
    !cat.model_hotpluggable(model)
}

fn rule_for_bus(bus_type: &str) -> Rule {
    match bus_type {
        "pcie-root" => Rule::Root,
        "port" => Rule::RootPort,
        "switch" => Rule::Switch,
        "pxb" => Rule::Pxb,
        _ => Rule::Bridge,
    }
}

impl<'a> Checker<'a> {
    fn run(&self, plan: &Plan) -> Vec<Violation> {
        let cat = self.cat;
        let t = Topology::build(plan, cat);
        let mut out = Vec::new();
        let addr_of = |n: NodeIndex| -> (String, Address) {
            match t.g[n] {
                Node::Ctrl(c) => (c.id.clone(), c.address()),
                Node::Dev(d) => (d.id.clone(), d.address()),
                Node::Root => (
                    cat.root.bus.clone(),
                    Address {
                        bus: String::new(),
                        slot: 0,
                        function: 0,
                    },
                ),
            }
        };
        let id_of = |n: NodeIndex| -> &str { t.g[n].id(cat) };
        let pinned: IdMap<&str, &Address> = self
            .req
            .devices
            .iter()
            .filter_map(|d| d.address.as_ref().map(|a| (d.id.as_str(), a)))
            .chain(
                self.req
                    .controllers
                    .iter()
                    .map(|c| (c.id.as_str(), &c.address)),
            )
            .collect();

        // Names: unique, and every bus exists.
        let mut seen: IdMap<&str, ()> = IdMap::default();
        seen.reserve(t.g.node_count());
        for n in t.g.node_indices() {
            if n != t.root && seen.insert(id_of(n), ()).is_some() {
                let (id, a) = addr_of(n);
                v(
                    &mut out,
                    &id,
                    &a,
                    Rule::Pin,
                    format!("id '{id}' is used twice"),
                );
            }
        }
        for &(n, bus) in &t.dangling {
            let (id, a) = addr_of(n);
            v(
                &mut out,
                &id,
                &a,
                Rule::Pin,
                format!("bus '{bus}' does not exist (no controller with that id)"),
            );
        }
        for n in t.g.node_indices() {
            if !t.rooted(n)
                && !t.dangling.iter().any(|d| d.0 == n)
                && !t
                    .ancestors(n)
                    .iter()
                    .any(|a| t.dangling.iter().any(|d| d.0 == *a))
            {
                let (id, a) = addr_of(n);
                v(
                    &mut out,
                    &id,
                    &a,
                    Rule::Pin,
                    "is not connected to the root bus (its bus chain loops)".into(),
                );
            }
        }

        // Per bus: ranges, kinds, double use, functions, slot sharing.
        let groups: IdMap<&str, Option<&str>> = self
            .req
            .devices
            .iter()
            .map(|d| (d.id.as_str(), d.group.as_deref()))
            .collect();
        for p in t.g.node_indices() {
            let Some(bus_type) = t.bus_type(p) else {
                continue;
            };
            let (slots, functions, accepts, reserved) = match t.g[p] {
                Node::Root => (
                    cat.root.slots,
                    cat.root.functions,
                    &cat.root.accepts,
                    cat.root.reserved_slots.as_slice(),
                ),
                Node::Ctrl(_) => match t.model(p) {
                    Some(m) => (m.bus.slots, m.bus.functions, &m.bus.accepts, &[][..]),
                    None => continue,
                },
                Node::Dev(_) => continue,
            };
            let bus_name = id_of(p);
            let rule = rule_for_bus(bus_type);
            let kids = t.kids(p);
            for &(slot, f, c) in kids {
                if !slots.contains(slot) {
                    let (id, a) = addr_of(c);
                    v(
                        &mut out,
                        &id,
                        &a,
                        rule,
                        format!(
                            "slot {slot} is out of range {}..{} on bus '{bus_name}'",
                            slots.min, slots.max
                        ),
                    );
                }
                if f >= functions {
                    let (id, a) = addr_of(c);
                    v(
                        &mut out,
                        &id,
                        &a,
                        Rule::Func,
                        format!(
                            "function {f} is out of range 0..{} on bus '{bus_name}'",
                            functions - 1
                        ),
                    );
                }
                if reserved.contains(&slot) {
                    let what = cat
                        .root_reserved(slot, f)
                        .map(|r| r.what.clone())
                        .unwrap_or_else(|| "the chipset".into());
                    let (id, a) = addr_of(c);
                    v(
                        &mut out,
                        &id,
                        &a,
                        Rule::Root,
                        format!("slot {slot} of {bus_name} is reserved ({what})"),
                    );
                }
                let category = match t.g[c] {
                    Node::Dev(d) => Some(d.kind.category()),
                    Node::Ctrl(_) => t.model(c).map(|m| m.class.as_str()),
                    Node::Root => None,
                };
                if let Some(category) = category {
                    if !accepts.iter().any(|x| x == category) {
                        let r = if let Node::Ctrl(_) = t.g[c] {
                            t.model(c)
                                .and_then(|m| m.rules.first().copied())
                                .unwrap_or(rule)
                        } else {
                            rule
                        };
                        let (id, a) = addr_of(c);
                        v(&mut out, &id, &a, r, format!("wrong kind of slot: a {category} cannot plug into bus '{bus_name}' ({bus_type}, accepts {})", accepts.join(", ")));
                    }
                }
            }
            // The children are sorted by (slot, function): each slot's occupants are a run,
            // and two occupants of one function are neighbours.
            for occ in kids.chunk_by(|a, b| a.0 == b.0) {
                let slot = occ[0].0;
                for w in occ.windows(2) {
                    if w[0].1 == w[1].1 {
                        let (id, a) = addr_of(w[1].2);
                        v(
                            &mut out,
                            &id,
                            &a,
                            Rule::Pin,
                            format!("double use of {a}: also taken by '{}'", id_of(w[0].2)),
                        );
                    }
                }
                if occ.iter().any(|&(_, f, _)| f > 0) {
                    // The last occupant of function 0 (the others are double uses).
                    match occ.iter().rev().find(|&&(_, f, _)| f == 0) {
                        None => {
                            let (id, a) = addr_of(occ[0].2);
                            v(&mut out, &id, &a, Rule::Func, format!("function > 0 used on slot {slot} of '{bus_name}' but function 0 is empty"));
                        }
                        Some(&(_, _, f0)) if self.full => {
                            let mf = match t.g[f0] {
                                Node::Ctrl(c) => c.multifunction,
                                Node::Dev(d) => d.multifunction,
                                Node::Root => true,
                            };
                            if !mf {
                                let (id, a) = addr_of(f0);
                                v(
                                    &mut out,
                                    &id,
                                    &a,
                                    Rule::Func,
                                    "function 0 of a shared slot lacks multifunction=on".into(),
                                );
                            }
                        }
                        _ => {}
                    }
                }
                // Who may share a slot.
                if occ.len() > 1 {
                    let any_ctrl = occ.iter().any(|&(_, _, c)| matches!(t.g[c], Node::Ctrl(_)));
                    let all_aggregate = occ
                        .iter()
                        .all(|&(_, _, c)| t.model(c).map(|m| m.aggregate).unwrap_or(false));
                    if any_ctrl && !all_aggregate {
                        let (id, a) = addr_of(occ[0].2);
                        v(&mut out, &id, &a, Rule::RootPortPack, format!("slot {slot} of '{bus_name}' is shared, but only root ports share slots with controllers"));
                    } else if !any_ctrl {
                        let group = |c: NodeIndex| groups.get(id_of(c)).copied().flatten();
                        let first = group(occ[0].2);
                        let same_group = occ.iter().all(|&(_, _, c)| group(c) == first);
                        let packing_ok = bus_type == "pcie-root"
                            && self.req.policy.pack_integrated
                            && occ.iter().all(|&(_, _, c)| group(c).is_none());
                        let one_group = same_group && first.is_some();
                        let pinned_all = occ.iter().all(|&(_, _, c)| pinned.contains_key(id_of(c)));
                        if !packing_ok && !one_group && !pinned_all {
                            let (id, a) = addr_of(occ[0].2);
                            v(&mut out, &id, &a, Rule::IntSlot, format!("endpoints share slot {slot} of '{bus_name}' without being one group (D-GROUP) or pack_integrated"));
                        }
                    }
                }
            }
        }

        self.devices(&t, plan, &mut out);
        self.controllers(&t, plan, &mut out);
        self.bus_numbers(&t, &mut out);
        let io = t.total_io_windows();
        let io_max = (cat
            .io_space
            .total_kib
            .saturating_sub(cat.io_space.reserved_kib))
            / cat.io_space.window_kib.max(1);
        if self.full && io > io_max {
            out.push(Violation {
                device: cat.root.bus.clone(),
                address: "-".into(),
                rule: cat.io_space.rule,
                message: format!(
                    "{io} I/O windows of {} KiB needed; the firmware has {io_max}",
                    cat.io_space.window_kib
                ),
            });
        }
        out.sort();
        out.dedup();
        out
    }

    fn devices(&self, t: &Topology, plan: &Plan, out: &mut Vec<Violation>) {
        let req = self.req;
        let placed: IdMap<&str, &PlacedDevice> =
            plan.devices.iter().map(|d| (d.id.as_str(), d)).collect();
        let mut group_members: BTreeMap<&str, Vec<&PlacedDevice>> = BTreeMap::new();
        for rd in &req.devices {
            let Some(d) = placed.get(rd.id.as_str()) else {
                if self.full {
                    out.push(Violation {
                        device: rd.id.clone(),
                        address: "-".into(),
                        rule: Rule::Pin,
                        message: "device is missing from the plan".into(),
                    });
                }
                continue;
            };
            let a = d.address();
            if let (Some(pin), true) = (&rd.address, self.full) {
                if *pin != a {
                    v(
                        out,
                        &d.id,
                        &a,
                        Rule::Pin,
                        format!("pinned at {pin} but planned at {a}"),
                    );
                }
            }
            if let Some(g) = &rd.group {
                group_members.entry(g.as_str()).or_default().push(d);
            }
            let Some(&n) = t.ids.get(d.id.as_str()) else {
                continue;
            };
            let Some(p) = t.parent(n) else { continue };
            let hp = t.device_hotpluggable(n);
            let want = req.hotplug_of(rd);
            match want {
                Hotplug::Off if hp => v(
                    out,
                    &d.id,
                    &a,
                    Rule::Off,
                    format!("hotplug off, but bus '{}' lets the guest unplug it", d.bus),
                ),
                Hotplug::On if !hp && !cat_fixed(self.cat, &d.model) => v(
                    out,
                    &d.id,
                    &a,
                    Rule::On,
                    format!(
                        "hotplug on, but the guest cannot unplug it from bus '{}'",
                        d.bus
                    ),
                ),
                Hotplug::On if !hp => v(
                    out,
                    &d.id,
                    &a,
                    Rule::On,
                    format!(
                        "hotplug on, but QEMU cannot hot-unplug a {} anywhere",
                        d.model
                    ),
                ),
                _ => {}
            }
            if self.full {
                if d.hotpluggable != hp {
                    v(
                        out,
                        &d.id,
                        &a,
                        Rule::Hotplug,
                        format!(
                            "plan says hotpluggable={} but the topology says {hp}",
                            d.hotpluggable
                        ),
                    );
                }
                if want == Hotplug::Off
                    && rd.address.is_none()
                    && t.bus_type(p) == Some("port")
                    && !req.policy.hotplug_off.allows_port()
                    && !cat_fixed(self.cat, &d.model)
                {
                    v(
                        out,
                        &d.id,
                        &a,
                        Rule::Off,
                        "on a hotplug=off port, but policy hotplug_off is 'integrated'".into(),
                    );
                }
                if want == Hotplug::Off
                    && rd.address.is_none()
                    && t.bus_type(p) == Some("pcie-root")
                    && !req.policy.hotplug_off.allows_integrated()
                    && !cat_fixed(self.cat, &d.model)
                {
                    v(
                        out,
                        &d.id,
                        &a,
                        Rule::Off,
                        "integrated, but policy hotplug_off is 'port'".into(),
                    );
                }
            }
            if let Some(node) = rd.numa_node {
                let ok = t.expander_of(n).and_then(|x| match t.g[x] {
                    Node::Ctrl(c) => c.numa_node,
                    _ => None,
                }) == Some(node);
                if !ok {
                    v(out, &d.id, &a, Rule::Numa, format!("numa_node {node} asked, but it is not below a pxb-pcie with numa_node={node}"));
                }
            }
        }
        for (g, members) in group_members {
            if members.len() > 8 {
                v(
                    out,
                    &members[0].id,
                    &members[0].address(),
                    Rule::Group,
                    format!(
                        "group '{g}' has {} members; a slot has 8 functions",
                        members.len()
                    ),
                );
            }
            let first = members[0];
            for (i, m) in members.iter().enumerate() {
                if m.bus != first.bus || m.slot != first.slot {
                    v(
                        out,
                        &m.id,
                        &m.address(),
                        Rule::Group,
                        format!(
                            "group '{g}' is split: '{}' is at {}",
                            first.id,
                            first.address()
                        ),
                    );
                }
                if self.full
                    && req
                        .devices
                        .iter()
                        .find(|d| d.id == m.id)
                        .map(|d| d.address.is_none())
                        .unwrap_or(false)
                    && usize::from(m.function) != i
                {
                    v(
                        out,
                        &m.id,
                        &m.address(),
                        Rule::Group,
                        format!("group '{g}': member {i} in request order should be function {i}"),
                    );
                }
            }
        }
    }

    fn controllers(&self, t: &Topology, plan: &Plan, out: &mut Vec<Violation>) {
        let cat = self.cat;
        let mut chassis: BTreeMap<u8, &PlacedController> = BTreeMap::new();
        for c in &plan.controllers {
            let a = c.address();
            let Some(m) = cat.controller(&c.model) else {
                v(
                    out,
                    &c.id,
                    &a,
                    Rule::Pin,
                    format!("unknown controller model '{}'", c.model),
                );
                continue;
            };
            if m.props.iter().any(|p| p == "chassis") {
                match c.chassis {
                    Some(ch) => {
                        if let Some(prev) = chassis.insert(ch, c) {
                            v(out, &c.id, &a, Rule::RootPortId, format!("chassis {ch} is also used by '{}' (QEMU: Can't add chassis slot)", prev.id));
                        }
                    }
                    None if self.full => v(out, &c.id, &a, Rule::RootPortId, "port has no chassis".into()),
                    None => {}
                }
            }
            if c.hotplug == Some(false) && m.hotplug != crate::catalog::HotplugControl::Property {
                v(
                    out,
                    &c.id,
                    &a,
                    Rule::HotplugPort,
                    format!(
                        "'{}' has no hotplug property (QEMU: Property '{}.hotplug' not found)",
                        c.model, m.qemu
                    ),
                );
            }
            if m.bus.bus_type == "pxb" && self.full && c.bus_nr.is_none() {
                v(out, &c.id, &a, Rule::BusNr, "expander has no bus_nr".into());
            }
            if !m.props.iter().any(|p| p == "numa_node") && c.numa_node.is_some() {
                v(
                    out,
                    &c.id,
                    &a,
                    Rule::Numa,
                    format!("'{}' takes no numa_node", c.model),
                );
            }
        }
        if self.full {
            let added = plan.controllers.iter().filter(|c| c.added).count() as u32;
            if added != plan.cost {
                out.push(Violation {
                    device: "-".into(),
                    address: "-".into(),
                    rule: Rule::Cost,
                    message: format!("cost {} but {added} controllers were added", plan.cost),
                });
            }
            for rc in &self.req.controllers {
                match plan.controllers.iter().find(|c| c.id == rc.id) {
                    Some(c) if c.address() == rc.address && !c.added => {}
                    _ => out.push(Violation {
                        device: rc.id.clone(),
                        address: rc.address.to_string(),
                        rule: Rule::Pin,
                        message: "pinned controller moved or missing".into(),
                    }),
                }
            }
            let spare =
                t.g.node_indices()
                    .filter(|&n| {
                        t.bus_type(n) == Some("port")
                            && t.bus_hotpluggable(n)
                            && t.kids(n).is_empty()
                            && t.rooted(n)
                    })
                    .count() as u32;
            if spare < self.req.policy.spare_ports {
                out.push(Violation {
                    device: "-".into(),
                    address: "-".into(),
                    rule: Rule::Spare,
                    message: format!(
                        "{spare} empty hot-pluggable ports, {} asked",
                        self.req.policy.spare_ports
                    ),
                });
            }
        }
    }

    /// R-BUSNR: simulate the firmware's numbering and check the ranges.
    fn bus_numbers(&self, t: &Topology, out: &mut Vec<Violation>) {
        let max = self.cat.bus_numbers.max;
        let mut ranges: Vec<(u32, u32, String, Address)> = Vec::new();
        let mut below_root = 0u32;
        for n in t.g.node_indices() {
            if !t.uses_bus_number(n) || !t.rooted(n) {
                continue;
            }
            if t.bus_type(n) == Some("pxb") {
                let Node::Ctrl(c) = t.g[n] else { continue };
                let size = 1 + t
                    .descendants(n)
                    .into_iter()
                    .filter(|&d| t.uses_bus_number(d))
                    .count() as u32;
                if let Some(nr) = c.bus_nr {
                    ranges.push((
                        u32::from(nr),
                        u32::from(nr) + size - 1,
                        c.id.clone(),
                        c.address(),
                    ));
                }
            } else if t.expander_of(n).is_none() {
                below_root += 1;
            }
        }
        ranges.sort();
        let mut lowest_free = below_root + 1;
        if below_root > max {
            out.push(Violation {
                device: self.cat.root.bus.clone(),
                address: "-".into(),
                rule: Rule::BusNr,
                message: format!("{below_root} bus numbers needed below pcie.0; there are {max}"),
            });
        }
        for (lo, hi, id, a) in ranges {
            if lo < lowest_free {
                v(
                    out,
                    &id,
                    &a,
                    Rule::BusNr,
                    format!(
                        "bus_nr {lo} overlaps buses already numbered up to {}",
                        lowest_free - 1
                    ),
                );
            }
            if hi > max {
                v(
                    out,
                    &id,
                    &a,
                    Rule::BusNr,
                    format!("its buses {lo}..{hi} go past {max}"),
                );
            }
            lowest_free = lowest_free.max(hi + 1);
        }
    }
}
