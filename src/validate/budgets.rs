//! Budgets of the guest as a whole: bus numbers (R-BUSNR), I/O windows (R-IO), and in a
//! complete plan its cost (O-COST) and spare ports (O-SPARE).

use crate::error::Violation;
use crate::request::Address;
use crate::rule::Rule;
use crate::topology::Node;

use super::{push, push_guest, Check};

pub(super) fn check(c: &Check, out: &mut Vec<Violation>) {
    expanders_numbered(c, out);
    bus_numbers(c, out);
    if c.full {
        io_windows(c, out);
        cost(c, out);
        spare_ports(c, out);
    }
}

/// R-BUSNR: in a complete plan every expander has a `bus_nr`.
fn expanders_numbered(c: &Check, out: &mut Vec<Violation>) {
    if !c.full {
        return;
    }
    for (i, k) in c.plan.controllers.iter().enumerate() {
        // The topology read each controller's model (and whether it is an expander).
        let is_pxb = c.t.is_expander(c.t.ctrl_node(i));
        if is_pxb && k.bus_nr.is_none() {
            push(
                out,
                &k.id,
                &k.address(),
                Rule::BusNr,
                "expander has no bus_nr".into(),
            );
        }
    }
}

/// R-BUSNR: simulates the firmware's numbering. The buses below `pcie.0` take 1, 2, ...;
/// each expander's range (its `bus_nr` and one number per bus below it) must lie above
/// those and above the ranges before it, and within the maximum.
fn bus_numbers(c: &Check, out: &mut Vec<Violation>) {
    let t = &c.t;
    let max = c.cat.bus_numbers.max;
    let mut ranges: Vec<(u32, u32, String, Address)> = Vec::new();
    let mut below_root = 0u32;
    // Only controllers use bus numbers.
    for n in t.ctrl_nodes() {
        if !t.uses_bus_number(n) || !t.rooted(n) {
            continue;
        }
        if t.is_expander(n) {
            let Node::Ctrl(k) = t.g[n] else { continue };
            let size = 1 + t
                .descendants(n)
                .into_iter()
                .filter(|&d| t.uses_bus_number(d))
                .count() as u32;
            if let Some(nr) = k.bus_nr {
                let lo = u32::from(nr);
                ranges.push((lo, lo + size - 1, k.id.to_string(), k.address()));
            }
        } else if t.expander_of(n).is_none() {
            below_root += 1;
        }
    }
    ranges.sort();
    if below_root > max {
        let msg = format!("{below_root} bus numbers needed below pcie.0; there are {max}");
        push_guest(out, &c.cat.root.bus, Rule::BusNr, msg);
    }
    let mut lowest_free = below_root + 1;
    for (lo, hi, id, a) in ranges {
        if lo < lowest_free {
            let msg = format!(
                "bus_nr {lo} overlaps buses already numbered up to {}",
                lowest_free - 1
            );
            push(out, &id, &a, Rule::BusNr, msg);
        }
        if hi > max {
            push(
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

/// R-IO: the I/O windows the topology needs fit the budget of the firmware the plan was
/// made for.
fn io_windows(c: &Check, out: &mut Vec<Violation>) {
    let io = &c.cat.io_space;
    let need = c.t.total_io_windows();
    let budget = c.cat.io_budget(c.plan.firmware);
    let have = budget.as_ref().map_or(0, |b| b.windows);
    if need > have {
        let name = budget.map_or_else(|e| e.message, |b| b.name.clone());
        let msg = format!(
            "{need} I/O windows of {} KiB needed; the firmware ({name}) has {have}",
            io.window_kib
        );
        push_guest(out, &c.cat.root.bus, io.rule, msg);
    }
}

/// O-COST: the plan's cost is the number of controllers it adds.
fn cost(c: &Check, out: &mut Vec<Violation>) {
    let added = c.plan.controllers.iter().filter(|k| k.added).count() as u32;
    if added != c.plan.cost {
        let msg = format!("cost {} but {added} controllers were added", c.plan.cost);
        push_guest(out, "-", Rule::Cost, msg);
    }
}

/// O-SPARE: at least `spare_ports` empty hot-pluggable ports.
fn spare_ports(c: &Check, out: &mut Vec<Violation>) {
    if c.cat.layout == crate::catalog::Layout::PciRoot {
        return spare_slots(c, out);
    }
    let t = &c.t;
    // Only controllers own ports' buses.
    let spare = t
        .ctrl_nodes()
        // Most ports hold a child: asked first, it spares reading the rest.
        .filter(|&n| {
            t.kids(n).is_empty()
                && t.bus_type(n) == Some("port")
                && t.bus_hotpluggable(n)
                && t.rooted(n)
        })
        .count() as u32;
    too_few_spares(c, out, spare, "empty hot-pluggable ports");
}

/// O-SPARE: `spare` of `what` where the policy asks for `spare_ports`.
fn too_few_spares(c: &Check, out: &mut Vec<Violation>, spare: u32, what: &str) {
    let asked = c.req.policy.spare_ports;
    if spare < asked {
        push_guest(
            out,
            "-",
            Rule::Spare,
            format!("{spare} {what}, {asked} asked"),
        );
    }
}

/// O-SPARE on `pc` (PC-MIX): free hot-pluggable slots, on `pci.0` while root hotplug is on
/// and on every reachable `pci-bridge`.
fn spare_slots(c: &Check, out: &mut Vec<Violation>) {
    let t = &c.t;
    let mut spare = 0u32;
    for n in t.g.node_indices() {
        let bus = match t.g[n] {
            Node::Root => Some((c.cat.root.slots, c.cat.root.reserved_slots.as_slice())),
            Node::Ctrl(_) => t.model(n).map(|m| (m.bus.slots, &[][..])),
            Node::Dev(_) => None,
        };
        let Some((slots, reserved)) = bus else {
            continue;
        };
        if !t.rooted(n) || !t.bus_hotpluggable(n) {
            continue;
        }
        let used: Vec<u8> = t.kids(n).iter().map(|k| k.0).collect();
        spare += (slots.min..=slots.max)
            .filter(|s| !reserved.contains(s) && !used.contains(s))
            .count() as u32;
    }
    too_few_spares(c, out, spare, "free hot-pluggable slots");
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use crate::rule::Rule;

    #[test]
    fn a_pinned_expander_range_overlapping_the_root_buses() {
        let req = request(
            r#"{"devices":[],"controllers":[
                {"id":"rp","model":"pcie-root-port","chassis":1,"address":{"bus":"pcie.0","slot":1,"function":0}},
                {"id":"x","model":"pxb-pcie","bus_nr":1,"address":{"bus":"pcie.0","slot":2,"function":0}}]}"#,
        );
        assert_eq!(pin_rules(&req), [Rule::BusNr]);
    }

    #[test]
    fn an_expander_range_past_the_maximum() {
        let req = request(
            r#"{"devices":[],"controllers":[
                {"id":"x","model":"pxb-pcie","bus_nr":255,"address":{"bus":"pcie.0","slot":2,"function":0}},
                {"id":"rp","model":"pcie-root-port","chassis":1,"address":{"bus":"x","slot":0,"function":0}}]}"#,
        );
        assert_eq!(pin_rules(&req), [Rule::BusNr]);
    }

    #[test]
    fn an_added_expander_without_bus_nr() {
        let (mut p, req) = clean();
        p.controllers
            .push(added(ctrl("pxb1", "pxb-pcie", "pcie.0", 9, 0)));
        p.cost += 1;
        assert_eq!(rules(&p, &req), [Rule::BusNr]);
    }

    #[test]
    fn too_many_io_windows() {
        // 15 ports with an I/O device each; the firmware has (64 - 8) / 4 = 14 windows.
        let mut ctrls = Vec::new();
        let mut devs = Vec::new();
        let mut ids = Vec::new();
        for i in 0..15u8 {
            let mut rp = added(ctrl(
                &format!("rp{i}"),
                "pcie-root-port",
                "pcie.0",
                1 + i / 8,
                i % 8,
            ));
            rp.chassis = Some(i + 1);
            rp.port = Some(i);
            rp.multifunction = i % 8 == 0;
            ctrls.push(rp);
            let mut d = dev(&format!("n{i}"), "e1000e", &format!("rp{i}"), 0, 0);
            d.hotpluggable = true;
            d.hotplug = crate::request::Hotplug::On;
            devs.push(d);
            ids.push(format!(r#"{{"id":"n{i}","model":"e1000e"}}"#));
        }
        let req = request(&format!(r#"{{"devices":[{}]}}"#, ids.join(",")));
        let mut p = plan(ctrls, devs);
        p.cost = 15;
        assert_eq!(rules(&p, &req), [Rule::Io]);
        p.devices.pop();
        p.controllers.pop();
        p.cost = 14;
        let mut fewer = req.clone();
        fewer.devices.pop();
        assert_eq!(rules(&p, &fewer), NONE);
    }

    #[test]
    fn cost_must_count_the_added_controllers() {
        let (mut p, req) = clean();
        p.cost += 1;
        assert_eq!(rules(&p, &req), [Rule::Cost]);
    }

    #[test]
    fn too_few_spare_ports() {
        let (p, mut req) = clean();
        req.policy.spare_ports = 1;
        assert_eq!(rules(&p, &req), [Rule::Spare]);
    }
}
