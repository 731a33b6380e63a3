//! Step 6 of planning: the finishing passes over an assigned plan. Each pass is a function
//! of its own; [`finish`] runs them in order.
//!
//! The first four read one topology of the assigned plan (controller order, expander bus
//! ranges, `io-reserve`, hot-pluggability); names do not matter to any of them, so they run
//! before added controllers get their final names. Then come names, chassis/port numbers,
//! multifunction flags and the device order.

use std::collections::BTreeSet;

use crate::catalog::{
    Catalog, Layout, CLASS_BRIDGE, CLASS_DOWNSTREAM, CLASS_PCI_BRIDGE, CLASS_PXB, CLASS_ROOT_PORT,
    CLASS_UPSTREAM,
};
use crate::idmap::IdMap;
use crate::plan::{PlacedController, Plan};
use crate::request::Request;
use crate::topology::{Node, Topology};

/// Runs every finishing pass: orders controllers, numbers expander bus ranges, sets
/// `io-reserve`, hot-pluggability, names, chassis/port numbers and multifunction flags, and
/// puts the devices back in request order.
pub(super) fn finish(plan: &mut Plan, req: &Request, cat: &Catalog) {
    let t = Topology::build(plan, cat);
    let order = controller_order(&t);
    let bus_nrs = expander_bus_numbers(&t, cat);
    // Where the catalog asks for it for this firmware (`IoBudget::io_reserve_zero`).
    let io_zero = if cat.io_budget(req.firmware).is_ok_and(|b| b.io_reserve_zero) {
        io_reserve_zero(&t)
    } else {
        Vec::new()
    };
    let hotpluggable = devices_hotpluggable(&t);
    drop(t);
    for (d, h) in plan.devices.iter_mut().zip(hotpluggable) {
        d.hotpluggable = h;
    }
    for (i, nr) in bus_nrs {
        plan.controllers[i].bus_nr = Some(nr);
    }
    for i in io_zero {
        plan.controllers[i].io_reserve = Some(0);
    }
    reorder_controllers(plan, &order);
    name_added(plan, req, cat);
    number_ports(plan, cat);
    set_multifunction(plan);
    devices_in_request_order(plan, req);
}

/// Controllers by index in `plan.controllers`, depth first in address order, so that every
/// bus is defined before it is used.
fn controller_order(t: &Topology) -> Vec<usize> {
    t.descendants(t.root)
        .into_iter()
        .filter_map(|n| t.ctrl_index(n))
        .collect()
}

/// Puts the controllers in `order` (indices into `plan.controllers`). Anything not in it
/// (unreachable: cannot happen after pin validation) follows, sorted by id.
fn reorder_controllers(plan: &mut Plan, order: &[usize]) {
    let mut slots: Vec<Option<PlacedController>> = plan.controllers.drain(..).map(Some).collect();
    plan.controllers = order.iter().filter_map(|&i| slots[i].take()).collect();
    let mut rest: Vec<PlacedController> = slots.into_iter().flatten().collect();
    rest.sort_by(|a, b| a.id.cmp(&b.id));
    plan.controllers.extend(rest);
}

/// R-BUSNR: the `bus_nr` of each expander without one, as (controller index, bus_nr).
///
/// The firmware numbers the buses below `pcie.0` from 1 up; each expander's range (its own
/// bus and every bus below it) must lie above them and apart from the others. New expanders
/// take ranges from the top (`bus_numbers.max`) down, each below the ranges already taken.
fn expander_bus_numbers(t: &Topology, cat: &Catalog) -> Vec<(usize, u8)> {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    let mut below_root = 0u32;
    let mut new_pxbs: Vec<(usize, u32)> = Vec::new();
    for n in t.descendants(t.root) {
        if !t.uses_bus_number(n) {
            continue;
        }
        let Node::Ctrl(c) = t.g[n] else { continue };
        if t.bus_type(n) == Some("pxb") {
            let size = 1 + t
                .descendants(n)
                .into_iter()
                .filter(|&d| t.uses_bus_number(d))
                .count() as u32;
            match c.bus_nr {
                Some(nr) => ranges.push((u32::from(nr), u32::from(nr) + size - 1)),
                None => new_pxbs.extend(t.ctrl_index(n).map(|i| (i, size))),
            }
        } else if t.expander_of(n).is_none() {
            below_root += 1;
        }
    }
    let mut out = Vec::new();
    for (i, size) in new_pxbs {
        let mut hi = cat.bus_numbers.max;
        while hi >= size + below_root {
            let lo = hi + 1 - size;
            let overlap = ranges
                .iter()
                .filter(|&&(a, b)| a <= hi && b >= lo)
                .map(|&(a, _)| a)
                .min();
            match overlap {
                Some(a) => hi = a.saturating_sub(1),
                None => {
                    ranges.push((lo, hi));
                    out.extend(u8::try_from(lo).ok().map(|nr| (i, nr)));
                    break;
                }
            }
        }
    }
    out
}

/// R-IO: the added controllers that take `io-reserve` and have nothing below them with an
/// I/O BAR; they get `io-reserve=0` so that the firmware opens no I/O window for them.
fn io_reserve_zero(t: &Topology) -> Vec<usize> {
    let mut out = Vec::new();
    for n in t.g.node_indices() {
        let Node::Ctrl(c) = t.g[n] else { continue };
        let Some(m) = t.model(n) else { continue };
        if c.added && m.props.iter().any(|p| p == "io-reserve") && t.io_windows(n) == 0 {
            out.extend(t.ctrl_index(n));
        }
    }
    out.sort_unstable();
    out
}

/// D-HP: per device index, whether the guest can unplug it where it sits.
fn devices_hotpluggable(t: &Topology) -> Vec<bool> {
    let mut hp = Vec::new();
    for n in t.g.node_indices() {
        if let Some(i) = t.dev_index(n) {
            if hp.len() <= i {
                hp.resize(i + 1, false);
            }
            hp[i] = t.device_hotpluggable(n);
        }
    }
    hp
}

/// The prefix added controllers of a class are named with (`rp1`, `dp1`, ...).
fn prefix_of(class: Option<&str>) -> &'static str {
    match class {
        Some(CLASS_ROOT_PORT) => "rp",
        Some(CLASS_DOWNSTREAM) => "dp",
        Some(CLASS_UPSTREAM) => "up",
        Some(CLASS_BRIDGE) => "br",
        Some(CLASS_PXB) => "pxb",
        Some(CLASS_PCI_BRIDGE) => "br",
        _ => "ctl",
    }
}

/// Names added controllers by class in plan order (`rp1`, `rp2`, ...), skipping the names the
/// request uses (and the root bus), and renames the buses that refer to them.
fn name_added(plan: &mut Plan, req: &Request, cat: &Catalog) {
    if !plan.controllers.iter().any(|c| c.added) {
        return;
    }
    let mut taken: IdMap<&str, ()> = IdMap::default();
    taken.reserve(req.devices.len() + req.controllers.len() + 1);
    taken.extend(req.devices.iter().map(|d| (d.id.as_str(), ())));
    taken.extend(req.controllers.iter().map(|c| (c.id.as_str(), ())));
    taken.insert(cat.root.bus.as_str(), ());
    // Names made here differ from each other by prefix or number, so only the request's
    // names need skipping.
    let mut counters: IdMap<&'static str, u32> = IdMap::default();
    let mut rename: IdMap<String, String> = IdMap::default();
    for c in plan.controllers.iter_mut().filter(|c| c.added) {
        let prefix = prefix_of(cat.controller(&c.model).map(|m| m.class.as_str()));
        let n = counters.entry(prefix).or_insert(0);
        let id = loop {
            *n += 1;
            let id = format!("{prefix}{n}");
            if !taken.contains_key(id.as_str()) {
                break id;
            }
        };
        rename.insert(std::mem::replace(&mut c.id, id.clone()), id);
    }
    for c in &mut plan.controllers {
        if let Some(n) = rename.get(&c.bus) {
            c.bus = n.clone();
        }
    }
    for d in &mut plan.devices {
        if let Some(n) = rename.get(&d.bus) {
            d.bus = n.clone();
        }
    }
}

/// R-RP-ID: chassis and port numbers for added ports, and for pinned ports that came without
/// a chassis (QEMU's default chassis 0 would collide; libvirt numbers them too). Chassis are
/// the lowest numbers from 1 not in use, in plan order; a port is its slot on a switch, else
/// slot × 8 + function.
fn number_ports(plan: &mut Plan, cat: &Catalog) {
    let mut used: BTreeSet<u8> = plan.controllers.iter().filter_map(|c| c.chassis).collect();
    let mut next = 1u8;
    for c in plan
        .controllers
        .iter_mut()
        .filter(|c| c.added || c.chassis.is_none())
    {
        let Some(m) = cat.controller(&c.model) else {
            continue;
        };
        if m.props.iter().any(|p| p == "chassis_nr") && (c.added || cat.layout == Layout::PciRoot) {
            // PC-BRIDGE: QEMU wants a unique chassis_nr on every pci-bridge (q35 reads
            // pinned ones as they are).
            while used.contains(&next) && next < 255 {
                next += 1;
            }
            used.insert(next);
            c.chassis = Some(next);
            continue;
        }
        if !m.props.iter().any(|p| p == "chassis") {
            continue;
        }
        while used.contains(&next) && next < 255 {
            next += 1;
        }
        used.insert(next);
        c.chassis = Some(next);
        let port = if m.class == CLASS_DOWNSTREAM {
            c.slot
        } else {
            c.slot.wrapping_mul(8).wrapping_add(c.function)
        };
        if c.added || c.port.is_none() {
            c.port = Some(port);
        }
    }
}

/// R-FUNC: `multifunction=on` on function 0 of every slot with a function above 0 in use.
fn set_multifunction(plan: &mut Plan) {
    let shared: IdMap<(&str, u8), ()> = plan
        .controllers
        .iter()
        .map(|c| (c.bus.as_str(), c.slot, c.function))
        .chain(
            plan.devices
                .iter()
                .map(|d| (d.bus.as_str(), d.slot, d.function)),
        )
        .filter(|&(_, _, f)| f > 0)
        .map(|(b, s, _)| ((b, s), ()))
        .collect();
    if shared.is_empty() {
        return;
    }
    let mf_ctrl: Vec<bool> = plan
        .controllers
        .iter()
        .map(|c| c.function == 0 && shared.contains_key(&(c.bus.as_str(), c.slot)))
        .collect();
    let mf_dev: Vec<bool> = plan
        .devices
        .iter()
        .map(|d| d.function == 0 && shared.contains_key(&(d.bus.as_str(), d.slot)))
        .collect();
    drop(shared);
    for (c, mf) in plan.controllers.iter_mut().zip(mf_ctrl) {
        c.multifunction |= mf;
    }
    for (d, mf) in plan.devices.iter_mut().zip(mf_dev) {
        d.multifunction |= mf;
    }
}

/// Puts the devices in request order (devices the request does not name go last).
fn devices_in_request_order(plan: &mut Plan, req: &Request) {
    let in_order = plan.devices.len() == req.devices.len()
        && plan
            .devices
            .iter()
            .zip(&req.devices)
            .all(|(p, r)| p.id == r.id);
    if in_order {
        return;
    }
    let order: IdMap<&str, usize> = req
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.as_str(), i))
        .collect();
    // One lookup per device, not per comparison (the sort is stable either way).
    plan.devices
        .sort_by_cached_key(|d| order.get(d.id.as_str()).copied().unwrap_or(usize::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::fixtures::{added, ctrl, dev, plan, request};

    fn q35() -> &'static Catalog {
        Catalog::q35()
    }

    #[test]
    fn controllers_come_depth_first_in_address_order() {
        let p = plan(
            vec![
                ctrl("b", "pcie-root-port", "pcie.0", 3, 0),
                ctrl("br", "pcie-pci-bridge", "a", 0, 0),
                ctrl("a", "pcie-root-port", "pcie.0", 2, 0),
            ],
            vec![],
        );
        let t = Topology::build(&p, q35());
        assert_eq!(controller_order(&t), vec![2, 1, 0]);
    }

    #[test]
    fn unreachable_controllers_go_last_by_id() {
        let mut p = plan(
            vec![
                ctrl("z", "pcie-root-port", "nowhere", 0, 0),
                ctrl("a", "pcie-root-port", "pcie.0", 2, 0),
                ctrl("y", "pcie-root-port", "nowhere", 0, 0),
            ],
            vec![],
        );
        reorder_controllers(&mut p, &[1]);
        let ids: Vec<&str> = p.controllers.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a", "y", "z"]);
    }

    #[test]
    fn new_expanders_take_bus_ranges_from_the_top_down() {
        // Expander 1 holds a port (2 bus numbers), expander 2 is empty (1).
        let p = plan(
            vec![
                ctrl("x1", "pxb-pcie", "pcie.0", 1, 0),
                ctrl("x2", "pxb-pcie", "pcie.0", 2, 0),
                ctrl("rp", "pcie-root-port", "x1", 0, 0),
            ],
            vec![],
        );
        let t = Topology::build(&p, q35());
        let max = q35().bus_numbers.max as u8;
        assert_eq!(
            expander_bus_numbers(&t, q35()),
            vec![(0, max - 1), (1, max - 2)]
        );
    }

    #[test]
    fn new_expanders_skip_pinned_ranges() {
        let max = q35().bus_numbers.max as u8;
        let mut pinned = ctrl("x1", "pxb-pcie", "pcie.0", 1, 0);
        pinned.bus_nr = Some(max);
        let p = plan(vec![pinned, ctrl("x2", "pxb-pcie", "pcie.0", 2, 0)], vec![]);
        let t = Topology::build(&p, q35());
        assert_eq!(expander_bus_numbers(&t, q35()), vec![(1, max - 1)]);
    }

    #[test]
    fn no_bus_range_when_the_root_needs_them_all() {
        let max = q35().bus_numbers.max;
        let mut ctrls: Vec<PlacedController> = (0..max)
            .map(|i| {
                ctrl(
                    &format!("p{i}"),
                    "pcie-root-port",
                    "pcie.0",
                    1 + (i / 8) as u8,
                    (i % 8) as u8,
                )
            })
            .collect();
        ctrls.push(ctrl("x", "pxb-pcie", "pcie.0", 30, 0));
        let p = plan(ctrls, vec![]);
        let t = Topology::build(&p, q35());
        assert_eq!(expander_bus_numbers(&t, q35()), vec![]);
    }

    #[test]
    fn io_reserve_zero_only_on_added_ports_without_io_below() {
        let p = plan(
            vec![
                added(ctrl("#0", "pcie-root-port", "pcie.0", 1, 0)),
                added(ctrl("#1", "pcie-root-port", "pcie.0", 2, 0)),
                ctrl("pinned", "pcie-root-port", "pcie.0", 3, 0),
                added(ctrl("#3", "pcie-root-port", "pcie.0", 4, 0)),
            ],
            vec![
                dev("nic", "e1000e", "#0", 0, 0),
                dev("disk", "virtio-blk-pci", "#1", 0, 0),
            ],
        );
        let t = Topology::build(&p, q35());
        assert!(q35().needs_io("e1000e", crate::catalog::BusKind::Pcie));
        assert_eq!(io_reserve_zero(&t), vec![1, 3]);
    }

    #[test]
    fn devices_on_ports_are_hotpluggable_and_integrated_ones_are_not() {
        let mut off = added(ctrl("#1", "pcie-root-port", "pcie.0", 2, 0));
        off.hotplug = Some(false);
        let p = plan(
            vec![added(ctrl("#0", "pcie-root-port", "pcie.0", 1, 0)), off],
            vec![
                dev("a", "virtio-net-pci", "#0", 0, 0),
                dev("b", "virtio-net-pci", "pcie.0", 3, 0),
                dev("c", "virtio-net-pci", "#1", 0, 0),
            ],
        );
        let t = Topology::build(&p, q35());
        assert_eq!(devices_hotpluggable(&t), vec![true, false, false]);
    }

    #[test]
    fn added_controllers_are_named_by_class_around_request_names() {
        let req = request(r#"{"devices":[{"id":"rp1","model":"virtio-net-pci"}]}"#);
        let mut p = plan(
            vec![
                added(ctrl("#0", "pcie-root-port", "pcie.0", 1, 0)),
                added(ctrl("#1", "pcie-root-port", "pcie.0", 2, 0)),
                added(ctrl("#2", "pcie-pci-bridge", "#1", 0, 0)),
            ],
            vec![dev("rp1", "virtio-net-pci", "#0", 0, 0)],
        );
        name_added(&mut p, &req, q35());
        let names: Vec<(&str, &str)> = p
            .controllers
            .iter()
            .map(|c| (c.id.as_str(), c.bus.as_str()))
            .collect();
        assert_eq!(
            names,
            [("rp2", "pcie.0"), ("rp3", "pcie.0"), ("br1", "rp3")]
        );
        assert_eq!(p.devices[0].bus, "rp2");
    }

    #[test]
    fn ports_get_free_chassis_and_their_port_numbers() {
        let mut pinned = ctrl("pinned", "pcie-root-port", "pcie.0", 1, 0);
        pinned.chassis = Some(1);
        pinned.port = Some(40);
        let mut p = plan(
            vec![
                pinned,
                added(ctrl("rp1", "pcie-root-port", "pcie.0", 2, 3)),
                ctrl("bare", "pcie-root-port", "pcie.0", 4, 0),
                added(ctrl("up1", "x3130-upstream", "rp1", 0, 0)),
                added(ctrl("dp1", "xio3130-downstream", "up1", 5, 0)),
                added(ctrl("br1", "pcie-pci-bridge", "bare", 0, 0)),
            ],
            vec![],
        );
        number_ports(&mut p, q35());
        let got: Vec<(Option<u8>, Option<u8>)> =
            p.controllers.iter().map(|c| (c.chassis, c.port)).collect();
        assert_eq!(
            got,
            [
                (Some(1), Some(40)),
                (Some(2), Some(19)),
                (Some(3), Some(32)),
                (None, None),
                (Some(4), Some(5)),
                (None, None),
            ]
        );
    }

    #[test]
    fn function_zero_of_a_shared_slot_is_multifunction() {
        let mut p = plan(
            vec![
                ctrl("a", "pcie-root-port", "pcie.0", 1, 0),
                ctrl("b", "pcie-root-port", "pcie.0", 1, 1),
                ctrl("c", "pcie-root-port", "pcie.0", 2, 0),
            ],
            vec![
                dev("d0", "virtio-net-pci", "pcie.0", 3, 0),
                dev("d1", "virtio-net-pci", "pcie.0", 3, 1),
            ],
        );
        set_multifunction(&mut p);
        let mf: Vec<bool> = p.controllers.iter().map(|c| c.multifunction).collect();
        assert_eq!(mf, [true, false, false]);
        let mf: Vec<bool> = p.devices.iter().map(|d| d.multifunction).collect();
        assert_eq!(mf, [true, false]);
    }

    #[test]
    fn devices_follow_the_request_order() {
        let req = request(
            r#"{"devices":[{"id":"b","model":"virtio-net-pci"},{"id":"a","model":"virtio-net-pci"}]}"#,
        );
        let mut p = plan(
            vec![],
            vec![
                dev("x", "virtio-net-pci", "pcie.0", 4, 0),
                dev("a", "virtio-net-pci", "pcie.0", 2, 0),
                dev("b", "virtio-net-pci", "pcie.0", 3, 0),
            ],
        );
        devices_in_request_order(&mut p, &req);
        let ids: Vec<&str> = p.devices.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["b", "a", "x"]);
    }

    #[test]
    fn finish_runs_every_pass() {
        let req = request(r#"{"devices":[{"id":"n","model":"virtio-net-pci"}]}"#);
        let mut p = plan(
            vec![added(ctrl("#0", "pcie-root-port", "pcie.0", 1, 0))],
            vec![dev("n", "virtio-net-pci", "#0", 0, 0)],
        );
        finish(&mut p, &req, q35());
        let c = &p.controllers[0];
        assert_eq!(
            (c.id.as_str(), c.chassis, c.port, c.io_reserve),
            ("rp1", Some(1), Some(8), Some(0))
        );
        assert_eq!(p.devices[0].bus, "rp1");
        assert!(p.devices[0].hotpluggable);
    }
}
