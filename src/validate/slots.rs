//! Slots: what each bus's slots and functions hold. The slot range of the bus (its own rule:
//! R-ROOT, R-RP, R-SWITCH, R-PXB, R-BRIDGE), functions and multifunction (R-FUNC), slots the
//! chipset holds (R-ROOT), the kinds a bus accepts, double use (D-PIN), and who may share a
//! slot (R-RP-PACK, R-INT-SLOT).

use petgraph::stable_graph::NodeIndex;

use crate::catalog::SlotRange;
use crate::error::Violation;
use crate::idmap::IdMap;
use crate::request::Address;
use crate::rule::Rule;
use crate::topology::Node;

use super::Check;

/// A bus and what its owner's model says about it.
struct Bus<'a> {
    name: &'a str,
    bus_type: &'a str,
    /// The rule of this kind of bus (its slot range breaks it).
    rule: Rule,
    slots: SlotRange,
    functions: u8,
    accepts: &'a [String],
    reserved: &'a [u8],
    /// Its children, sorted by (slot, function).
    kids: &'a [(u8, u8, NodeIndex)],
}

/// Who may share a slot, read from the request once.
enum Sharing<'a> {
    /// The plan has the request's devices in request order, each id once
    /// ([`Check::in_order`]): a device node's request device is found by its index.
    InOrder,
    /// Else by id.
    ById {
        /// The group of each request device.
        groups: IdMap<&'a str, Option<&'a str>>,
        /// What the request pins (devices and controllers).
        pinned: IdMap<&'a str, &'a Address>,
    },
}

fn rule_for_bus(bus_type: &str) -> Rule {
    match bus_type {
        "pcie-root" => Rule::Root,
        "pci-root" => Rule::PcRoot,
        "port" => Rule::RootPort,
        "switch" => Rule::Switch,
        "pxb" => Rule::Pxb,
        _ => Rule::Bridge,
    }
}

/// The buses of the topology: the root bus and every controller of a known model.
fn buses<'c>(c: &'c Check) -> impl Iterator<Item = Bus<'c>> + 'c {
    let (t, cat) = (&c.t, c.cat);
    // Devices own no bus: the root bus, then the controllers.
    std::iter::once(t.root)
        .chain(t.ctrl_nodes())
        .filter_map(move |node| {
            let bus_type = t.bus_type(node)?;
            let (slots, functions, accepts, reserved) = match t.g[node] {
                Node::Root => (
                    cat.root.slots,
                    cat.root.functions,
                    cat.root.accepts.as_slice(),
                    cat.root.reserved_slots.as_slice(),
                ),
                Node::Ctrl(_) => {
                    let m = t.model(node)?;
                    (
                        m.bus.slots,
                        m.bus.functions,
                        m.bus.accepts.as_slice(),
                        &[][..],
                    )
                }
                Node::Dev(_) => return None,
            };
            Some(Bus {
                name: c.id_of(node),
                bus_type,
                rule: rule_for_bus(bus_type),
                slots,
                functions,
                accepts,
                reserved,
                kids: t.kids(node),
            })
        })
}

impl<'a> Sharing<'a> {
    fn of(c: &Check<'a>) -> Sharing<'a> {
        if c.in_order {
            return Sharing::InOrder;
        }
        let req = c.req;
        Sharing::ById {
            groups: req
                .devices
                .iter()
                .map(|d| (d.id.as_str(), d.group.as_deref()))
                .collect(),
            pinned: req
                .devices
                .iter()
                .filter_map(|d| d.address.as_ref().map(|a| (d.id.as_str(), a)))
                .chain(req.controllers.iter().map(|k| (k.id.as_str(), &k.address)))
                .collect(),
        }
    }

    /// The group of the request device of device node `n`.
    fn group(&self, c: &Check<'a>, n: NodeIndex) -> Option<&'a str> {
        match self {
            Sharing::InOrder => {
                c.t.dev_index(n)
                    .and_then(|i| c.devices[i].req.group.as_deref())
            }
            Sharing::ById { groups, .. } => groups.get(c.id_of(n)).copied().flatten(),
        }
    }

    /// Whether the request pins a device or controller of device node `n`'s id (in order,
    /// ids are unique among the request's devices: the node's own request device).
    fn pinned(&self, c: &Check<'a>, n: NodeIndex) -> bool {
        match self {
            Sharing::InOrder => {
                c.t.dev_index(n)
                    .is_some_and(|i| c.devices[i].req.address.is_some())
                    || c.req.controllers.iter().any(|k| k.id == c.id_of(n))
            }
            Sharing::ById { pinned, .. } => pinned.contains_key(c.id_of(n)),
        }
    }
}

pub(super) fn check(c: &Check, out: &mut Vec<Violation>) {
    // Read from the request at the first slot endpoints share (most plans have none).
    let sharing = std::cell::OnceCell::new();
    // What a bus accepts depends on its list alone: buses of one model (the root ports,
    // most of them with one child) share the list, and what was found of it.
    let mut accepted = Accepted::default();
    let mut accepted_of: &[String] = &[];
    for bus in buses(c) {
        if !std::ptr::eq(bus.accepts, accepted_of) {
            accepted = Accepted::default();
            accepted_of = bus.accepts;
        }
        for &(slot, function, n) in bus.kids {
            slot_in_range(c, &bus, slot, n, out);
            function_in_range(c, &bus, function, n, out);
            slot_not_reserved(c, &bus, slot, function, n, out);
            kind_accepted(c, &bus, &mut accepted, n, out);
        }
        // Each slot's occupants are a run (the children are sorted by slot, function).
        for occupants in bus.kids.chunk_by(|a, b| a.0 == b.0) {
            no_double_use(c, occupants, out);
            function_zero(c, &bus, occupants, out);
            slot_sharing(c, &bus, &sharing, occupants, out);
        }
    }
}

/// The bus's own rule: the slot is in its range.
fn slot_in_range(c: &Check, bus: &Bus, slot: u8, n: NodeIndex, out: &mut Vec<Violation>) {
    if !bus.slots.contains(slot) {
        let (lo, hi, name) = (bus.slots.min, bus.slots.max, bus.name);
        let msg = format!("slot {slot} is out of range {lo}..{hi} on bus '{name}'");
        c.at(out, n, bus.rule, msg);
    }
}

/// R-FUNC: the function is one the bus has.
fn function_in_range(c: &Check, bus: &Bus, f: u8, n: NodeIndex, out: &mut Vec<Violation>) {
    if f >= bus.functions {
        let msg = format!(
            "function {f} is out of range 0..{} on bus '{}'",
            bus.functions - 1,
            bus.name
        );
        c.at(out, n, Rule::Func, msg);
    }
}

/// R-ROOT: nothing takes a slot the chipset holds.
fn slot_not_reserved(
    c: &Check,
    bus: &Bus,
    slot: u8,
    f: u8,
    n: NodeIndex,
    out: &mut Vec<Violation>,
) {
    if bus.reserved.contains(&slot) {
        let what = c
            .cat
            .root_reserved(slot, f)
            .map(|r| r.what.clone())
            .unwrap_or_else(|| "the chipset".into());
        let msg = format!("slot {slot} of {} is reserved ({what})", bus.name);
        c.at(out, n, Rule::Root, msg);
    }
}

/// The kinds one bus (or buses of one list) was found to accept, as the `&str`s its
/// children's kinds are spelled with: a device's kind is a constant and a controller's its
/// catalog model's class, so most children of a bus repeat one of a few by address, and are
/// let through without comparing them with the bus's list again.
#[derive(Default)]
struct Accepted<'a>([Option<&'a str>; 4]);

impl<'a> Accepted<'a> {
    fn has(&self, category: &str) -> bool {
        self.0.iter().flatten().any(|&k| std::ptr::eq(k, category))
    }

    fn add(&mut self, category: &'a str) {
        if let Some(free) = self.0.iter_mut().find(|k| k.is_none()) {
            *free = Some(category);
        }
    }
}

/// The bus accepts what plugs into it (a controller breaks its model's first rule, an
/// endpoint the bus's rule).
fn kind_accepted<'a>(
    c: &Check<'a>,
    bus: &Bus,
    accepted: &mut Accepted<'a>,
    n: NodeIndex,
    out: &mut Vec<Violation>,
) {
    let t = &c.t;
    let (category, rule) = match t.g[n] {
        Node::Dev(d) => (d.kind.category(), bus.rule),
        Node::Ctrl(_) => match t.model(n) {
            Some(m) => (
                m.class.as_str(),
                m.rules.first().copied().unwrap_or(bus.rule),
            ),
            None => return,
        },
        Node::Root => return,
    };
    if accepted.has(category) {
        return;
    }
    if bus.accepts.iter().any(|x| x == category) {
        accepted.add(category);
    } else {
        let msg = format!(
            "wrong kind of slot: a {category} cannot plug into bus '{}' ({}, accepts {})",
            bus.name,
            bus.bus_type,
            bus.accepts.join(", ")
        );
        c.at(out, n, rule, msg);
    }
}

/// D-PIN: no two occupants of one function (they are neighbours in the sorted run).
fn no_double_use(c: &Check, occupants: &[(u8, u8, NodeIndex)], out: &mut Vec<Violation>) {
    for w in occupants.windows(2) {
        if w[0].1 == w[1].1 {
            let (id, a) = c.addr_of(w[1].2);
            let msg = format!("double use of {a}: also taken by '{}'", c.id_of(w[0].2));
            super::push(out, &id, &a, Rule::Pin, msg);
        }
    }
}

/// R-FUNC: a slot with a function above 0 in use has function 0 in use, and (in a complete
/// plan) with `multifunction=on`.
fn function_zero(
    c: &Check,
    bus: &Bus,
    occupants: &[(u8, u8, NodeIndex)],
    out: &mut Vec<Violation>,
) {
    if !occupants.iter().any(|&(_, f, _)| f > 0) {
        return;
    }
    // The last occupant of function 0 (the others are double uses).
    match occupants.iter().rev().find(|&&(_, f, _)| f == 0) {
        None => {
            let slot = occupants[0].0;
            let msg = format!(
                "function > 0 used on slot {slot} of '{}' but function 0 is empty",
                bus.name
            );
            c.at(out, occupants[0].2, Rule::Func, msg);
        }
        Some(&(_, _, f0)) if c.full => {
            let multifunction = match c.t.g[f0] {
                Node::Ctrl(k) => k.multifunction,
                Node::Dev(d) => d.multifunction,
                Node::Root => true,
            };
            if !multifunction {
                let msg = "function 0 of a shared slot lacks multifunction=on".into();
                c.at(out, f0, Rule::Func, msg);
            }
        }
        _ => {}
    }
}

/// Who may share a slot: controllers only if all are root ports that share slots
/// (R-RP-PACK); endpoints only as one group, packed integrated endpoints, or all pinned
/// (R-INT-SLOT).
fn slot_sharing<'a>(
    c: &Check<'a>,
    bus: &Bus,
    sharing: &std::cell::OnceCell<Sharing<'a>>,
    occupants: &[(u8, u8, NodeIndex)],
    out: &mut Vec<Violation>,
) {
    if occupants.len() < 2 {
        return;
    }
    let t = &c.t;
    let slot = occupants[0].0;
    let first = occupants[0].2;
    let any_ctrl = occupants
        .iter()
        .any(|&(_, _, n)| matches!(t.g[n], Node::Ctrl(_)));
    if any_ctrl {
        let all_aggregate = occupants
            .iter()
            .all(|&(_, _, n)| t.model(n).is_some_and(|m| m.aggregate));
        if !all_aggregate {
            let msg = format!(
                "slot {slot} of '{}' is shared, but only root ports share slots with controllers",
                bus.name
            );
            c.at(out, first, Rule::RootPortPack, msg);
        }
        return;
    }
    let sharing = sharing.get_or_init(|| Sharing::of(c));
    let group = |n: NodeIndex| sharing.group(c, n);
    let first_group = group(first);
    let one_group =
        first_group.is_some() && occupants.iter().all(|&(_, _, n)| group(n) == first_group);
    let packing_ok = bus.bus_type == "pcie-root"
        && c.req.policy.pack_integrated
        && occupants.iter().all(|&(_, _, n)| group(n).is_none());
    let pinned_all = occupants.iter().all(|&(_, _, n)| sharing.pinned(c, n));
    if !packing_ok && !one_group && !pinned_all {
        let msg = format!(
            "endpoints share slot {slot} of '{}' without being one group (D-GROUP) or pack_integrated",
            bus.name
        );
        c.at(out, first, Rule::IntSlot, msg);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use crate::rule::Rule;

    fn pins(json: &str) -> Vec<Rule> {
        pin_rules(&request(json))
    }

    #[test]
    fn slot_out_of_the_bus_range_and_wrong_kind() {
        let got = pins(
            r#"{"devices":[{"id":"n","model":"virtio-net-pci","address":{"bus":"br","slot":0,"function":0}}],
                "controllers":[
                  {"id":"rp","model":"pcie-root-port","address":{"bus":"pcie.0","slot":2,"function":0}},
                  {"id":"br","model":"pcie-pci-bridge","address":{"bus":"rp","slot":0,"function":0}}]}"#,
        );
        // Slot 0 of a bridge, and a PCIe NIC on a conventional bus: both the bridge's rule.
        assert_eq!(got, [Rule::Bridge, Rule::Bridge]);
    }

    #[test]
    fn reserved_root_slot_and_empty_function_zero() {
        let got = pins(
            r#"{"devices":[{"id":"n","model":"virtio-net-pci","hotplug":"off","address":{"bus":"pcie.0","slot":31,"function":4}}]}"#,
        );
        assert_eq!(got, [Rule::Func, Rule::Root]);
        let got = pins(
            r#"{"devices":[{"id":"n","model":"virtio-net-pci","hotplug":"off","address":{"bus":"pcie.0","slot":3,"function":1}}]}"#,
        );
        assert_eq!(got, [Rule::Func]);
    }

    #[test]
    fn double_use_of_an_address() {
        let got = pins(
            r#"{"devices":[
                {"id":"a","model":"virtio-net-pci","hotplug":"off","address":{"bus":"pcie.0","slot":3,"function":0}},
                {"id":"b","model":"virtio-net-pci","hotplug":"off","address":{"bus":"pcie.0","slot":3,"function":0}}]}"#,
        );
        assert_eq!(got, [Rule::Pin]);
    }

    #[test]
    fn controllers_share_slots_only_as_root_ports() {
        let got = pins(
            r#"{"devices":[{"id":"n","model":"virtio-net-pci","hotplug":"off","address":{"bus":"pcie.0","slot":3,"function":1}}],
                "controllers":[{"id":"rp","model":"pcie-root-port","address":{"bus":"pcie.0","slot":3,"function":0}}]}"#,
        );
        assert_eq!(got, [Rule::RootPortPack]);
        let got = pins(
            r#"{"devices":[],"controllers":[
                {"id":"a","model":"pcie-root-port","address":{"bus":"pcie.0","slot":3,"function":0}},
                {"id":"b","model":"pcie-root-port","address":{"bus":"pcie.0","slot":3,"function":1}}]}"#,
        );
        assert_eq!(got, NONE);
    }

    /// Two integrated NICs on one slot, planned for `req`.
    fn two_on_one_slot() -> crate::plan::Plan {
        let mut a = dev("a", "virtio-net-pci", "pcie.0", 1, 0);
        a.multifunction = true;
        let b = dev("b", "virtio-net-pci", "pcie.0", 1, 1);
        let mut p = plan(vec![], vec![a, b]);
        for d in &mut p.devices {
            d.hotplug = crate::request::Hotplug::Off;
        }
        p
    }

    #[test]
    fn endpoints_share_slots_as_one_group_or_packed() {
        let p = two_on_one_slot();
        let two = |extra: &str, policy: &str| {
            request(&format!(
                r#"{{"devices":[{{"id":"a","model":"virtio-net-pci","hotplug":"off"{extra}}},
                    {{"id":"b","model":"virtio-net-pci","hotplug":"off"{extra}}}],"policy":{{{policy}}}}}"#
            ))
        };
        assert_eq!(rules(&p, &two("", "")), [Rule::IntSlot]);
        assert_eq!(rules(&p, &two("", r#""pack_integrated":true"#)), NONE);
        assert_eq!(rules(&p, &two(r#","group":"g""#, "")), NONE);
    }

    #[test]
    fn sharing_is_read_by_id_when_the_plan_reorders_the_devices() {
        let p = two_on_one_slot();
        let req = |policy: &str| {
            request(&format!(
                r#"{{"devices":[{{"id":"b","model":"virtio-net-pci","hotplug":"off"}},
                    {{"id":"a","model":"virtio-net-pci","hotplug":"off"}}],"policy":{{{policy}}}}}"#
            ))
        };
        assert_eq!(rules(&p, &req("")), [Rule::IntSlot]);
        assert_eq!(rules(&p, &req(r#""pack_integrated":true"#)), NONE);
    }

    #[test]
    fn function_zero_of_a_shared_slot_needs_multifunction() {
        let mut p = two_on_one_slot();
        p.devices[0].multifunction = false;
        let req = request(
            r#"{"devices":[{"id":"a","model":"virtio-net-pci","hotplug":"off","group":"g"},
                {"id":"b","model":"virtio-net-pci","hotplug":"off","group":"g"}]}"#,
        );
        assert_eq!(rules(&p, &req), [Rule::Func]);
    }
}
