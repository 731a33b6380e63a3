//! Step 6 of planning: the finishing passes over an assigned plan. Each pass is a function
//! of its own; [`finish`] runs them in order.
//!
//! All of them read one topology of the assigned plan, by index in the plan as the assigner
//! left it: first the controller order, expander bus ranges, `io-reserve` and
//! hot-pluggability (names do not matter to any of them, so they run before added
//! controllers get their final names); then names and chassis/port numbers, both handed out
//! in the new controller order, and multifunction flags. The controllers move into their
//! order last; for plans wired by name, the devices then go in request order.

use crate::catalog::{
    Catalog, ControllerModel, Layout, CLASS_BRIDGE, CLASS_DOWNSTREAM, CLASS_PCI_BRIDGE, CLASS_PXB,
    CLASS_ROOT_PORT, CLASS_UPSTREAM,
};
use crate::idmap::IdMap;
use crate::plan::Plan;
use crate::request::Request;
use crate::Text;

mod tree;

use tree::Tree;
pub(super) use tree::{device_facts, Named, Wiring, ROOT};

/// Runs every finishing pass on `plan`, wired as `w` says: orders controllers, numbers
/// expander bus ranges, sets `io-reserve`, hot-pluggability, names, chassis/port numbers and
/// multifunction flags. The devices stay in their order (the assigner's: request order).
pub(super) fn finish(plan: &mut Plan, req: &Request, cat: &Catalog, w: Wiring) {
    let t = Tree::new(plan, cat, w);
    let below = t.ctrls_below(ROOT);
    let bus_nrs = expander_bus_numbers(&t, plan, &below, cat);
    let traits = traits(&t);
    // Where the catalog asks for it for this firmware (`IoBudget::io_reserve_zero`).
    let io_zero = if cat.io_budget(req.firmware).is_ok_and(|b| b.io_reserve_zero) {
        io_reserve_zero(&t, plan, &below, &traits)
    } else {
        Vec::new()
    };
    for (j, d) in plan.devices.iter_mut().enumerate() {
        d.hotpluggable = t.device_hotpluggable(j, &plan.controllers);
    }
    for (i, nr) in bus_nrs {
        plan.controllers[i].bus_nr = Some(nr);
    }
    for i in io_zero {
        plan.controllers[i].io_reserve = Some(0);
    }
    let order = controller_order(plan, &t, &below);
    name_added(plan, req, cat, &t, &order, &traits);
    number_ports(plan, cat, &order, &traits);
    set_multifunction(plan, &t);
    reorder_controllers(plan, &order);
}

/// [`finish`] for a plan whose devices may not be in request order (the `pc` planner's:
/// pinned devices come first), then puts them in request order.
pub(super) fn finish_wired(plan: &mut Plan, req: &Request, cat: &Catalog, w: Wiring) {
    finish(plan, req, cat, w);
    devices_in_request_order(plan, req);
}

/// The order controllers go in, by index in `plan.controllers` as the tree `t` has them:
/// depth first in address order, so that every bus is defined before it is used (`below`:
/// the controller nodes below the root). Anything not reached (cannot happen after pin
/// validation) follows, sorted by id.
fn controller_order(plan: &Plan, t: &Tree, below: &[usize]) -> Vec<usize> {
    let n = plan.controllers.len();
    let mut order = Vec::with_capacity(n);
    order.extend(below.iter().filter_map(|&k| t.ctrl(k)));
    if order.len() == n {
        return order;
    }
    let mut taken = vec![false; n];
    order.retain(|&i| i < n && !std::mem::replace(&mut taken[i], true));
    let placed = order.len();
    order.extend((0..n).filter(|&i| !taken[i]));
    let ids = &plan.controllers;
    order[placed..].sort_by(|&a, &b| ids[a].id.cmp(&ids[b].id));
    order
}

/// Puts the controllers in `order` (a permutation of their indices, see
/// [`controller_order`]).
fn reorder_controllers(plan: &mut Plan, order: &[usize]) {
    if order.iter().enumerate().any(|(k, &i)| k != i) {
        permute(&mut plan.controllers, order, &mut vec![false; order.len()]);
    }
}

/// Rearranges `v` in place so that `v[k]` becomes what `v[old[k]]` was (`old` a
/// permutation); `seen` is scratch of `v.len()`.
fn permute<T>(v: &mut [T], old: &[usize], seen: &mut [bool]) {
    seen.fill(false);
    for start in 0..v.len() {
        // Follow the cycle through `start`: each swap puts one element in its place.
        let mut k = start;
        while !seen[k] {
            seen[k] = true;
            let from = old[k];
            if from == start {
                break;
            }
            v.swap(k, from);
            k = from;
        }
    }
}

/// R-BUSNR: the `bus_nr` of each expander without one, as (controller index, bus_nr);
/// `below` are the controller nodes below the root.
///
/// The firmware numbers the buses below `pcie.0` from 1 up; each expander's range (its own
/// bus and every bus below it) must lie above them and apart from the others. New expanders
/// take ranges from the top (`bus_numbers.max`) down, each below the ranges already taken.
fn expander_bus_numbers(t: &Tree, plan: &Plan, below: &[usize], cat: &Catalog) -> Vec<(usize, u8)> {
    let bus_nr = |n: usize| t.ctrl(n).and_then(|i| plan.controllers[i].bus_nr);
    if !below
        .iter()
        .any(|&n| t.numbered_expander(n) && bus_nr(n).is_none())
    {
        return Vec::new();
    }
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    let mut below_root = 0u32;
    let mut new_pxbs: Vec<(usize, u32)> = Vec::new();
    for &n in below {
        if !t.uses_bus_number(n) {
            continue;
        }
        if t.numbered_expander(n) {
            let size = 1 + t
                .ctrls_below(n)
                .into_iter()
                .filter(|&d| t.uses_bus_number(d))
                .count() as u32;
            match bus_nr(n) {
                Some(nr) => ranges.push((u32::from(nr), u32::from(nr) + size - 1)),
                None => new_pxbs.extend(t.ctrl(n).map(|i| (i, size))),
            }
        } else if !t.below_expander(n) {
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

/// What the passes read of a controller's catalog model: its name prefix, the properties
/// it takes and whether it is a switch's downstream port.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Traits {
    /// The prefix (in [`PREFIXES`]) it is named with when added.
    prefix: usize,
    /// It takes `io-reserve`.
    io_reserve: bool,
    /// It takes `chassis_nr` (a pci-bridge).
    chassis_nr: bool,
    /// It takes `chassis` (a port).
    chassis: bool,
    /// It is a switch's downstream port.
    downstream: bool,
}

impl Traits {
    /// The traits of model `m`.
    fn of(m: &ControllerModel) -> Traits {
        let takes = |prop: &str| m.props.iter().any(|p| p == prop);
        Traits {
            prefix: prefix_of(Some(m.class.as_str())),
            io_reserve: takes("io-reserve"),
            chassis_nr: takes("chassis_nr"),
            chassis: takes("chassis"),
            downstream: m.class == CLASS_DOWNSTREAM,
        }
    }
}

/// The [`Traits`] of each controller of a known model in `t`, by index; worked out once per
/// run of controllers of one model (plans add them in such runs).
fn traits(t: &Tree) -> Vec<Option<Traits>> {
    let mut last: Option<(&ControllerModel, Traits)> = None;
    (0..t.ctrls())
        .map(|i| {
            let m = t.model(t.ctrl_node(i))?;
            match last {
                Some((l, tr)) if std::ptr::eq(l, m) => Some(tr),
                _ => {
                    let tr = Traits::of(m);
                    last = Some((m, tr));
                    Some(tr)
                }
            }
        })
        .collect()
}

/// R-IO: the added controllers that take `io-reserve` and have nothing below them with an
/// I/O BAR; they get `io-reserve=0` so that the firmware opens no I/O window for them
/// (`below`: the controller nodes below the root).
fn io_reserve_zero(
    t: &Tree,
    plan: &Plan,
    below: &[usize],
    traits: &[Option<Traits>],
) -> Vec<usize> {
    let takes = |i: usize| plan.controllers[i].added && traits[i].is_some_and(|tr| tr.io_reserve);
    let mut out = Vec::with_capacity(plan.controllers.len());
    out.extend((0..plan.controllers.len()).filter(|&i| takes(i)));
    if out.is_empty() {
        return out;
    }
    // One pass bottom-up when every controller hangs below the root, else one walk each.
    match t.all_io_windows(below) {
        Some(windows) => out.retain(|&i| windows[i] == 0),
        None => out.retain(|&i| t.io_windows(t.ctrl_node(i)) == 0),
    }
    out
}

/// The prefixes added controllers are named with (`rp1`, `dp1`, ...).
const PREFIXES: [&str; 6] = ["rp", "dp", "up", "br", "pxb", "ctl"];

/// The prefix (in [`PREFIXES`]) added controllers of a class are named with.
fn prefix_of(class: Option<&str>) -> usize {
    match class {
        Some(CLASS_ROOT_PORT) => 0,
        Some(CLASS_DOWNSTREAM) => 1,
        Some(CLASS_UPSTREAM) => 2,
        Some(CLASS_BRIDGE) | Some(CLASS_PCI_BRIDGE) => 3,
        Some(CLASS_PXB) => 4,
        _ => 5,
    }
}

/// The prefix (in [`PREFIXES`]) and number of `id` if it is a name [`made_name`] makes: a
/// prefix, then a decimal number without leading zeros.
fn made_name_parts(id: &str) -> Option<(usize, u32)> {
    let b = id.as_bytes();
    // The prefixes start with different letters.
    let p = match b.first()? {
        b'r' => 0,
        b'd' => 1,
        b'u' => 2,
        b'b' => 3,
        b'p' => 4,
        b'c' => 5,
        _ => return None,
    };
    let prefix = PREFIXES[p].as_bytes();
    // Byte by byte: a prefix is two or three letters.
    if b.len() <= prefix.len() || prefix.iter().zip(b).any(|(x, y)| x != y) {
        return None;
    }
    let digits = &b[prefix.len()..];
    if digits.first() == Some(&b'0') {
        return None;
    }
    digits
        .iter()
        .try_fold(0u32, |n, &d| {
            let d = d.checked_sub(b'0').filter(|&d| d < 10)?;
            n.checked_mul(10)?.checked_add(u32::from(d))
        })
        .map(|n| (p, n))
}

/// How many names of each prefix [`made_name`] spells once and then copies: more than most
/// plans add of one class.
const NAMES_AHEAD: u32 = 32;

/// The `n`-th name of prefix `p`: a copy of one spelled ahead (a short name is inline, so a
/// copy is a few words), else [`spell_name`].
fn made_name(p: usize, n: u32) -> Text {
    static AHEAD: std::sync::OnceLock<Vec<Vec<Text>>> = std::sync::OnceLock::new();
    let ahead = AHEAD.get_or_init(|| {
        (0..PREFIXES.len())
            .map(|p| (1..=NAMES_AHEAD).map(|n| spell_name(p, n)).collect())
            .collect()
    });
    let k = n.checked_sub(1).map(|k| k as usize);
    k.and_then(|k| ahead.get(p)?.get(k))
        .cloned()
        .unwrap_or_else(|| spell_name(p, n))
}

/// Spells the `n`-th name of prefix `p` (inline: a prefix and a number are short).
fn spell_name(p: usize, n: u32) -> Text {
    let mut s = Text::new(PREFIXES[p]);
    s.push_str(itoa::Buffer::new().format(n));
    s
}

/// Names added controllers by class in `order` (`rp1`, `rp2`, ...), skipping the names the
/// request uses (and the root bus), and renames the buses that refer to them.
fn name_added(
    plan: &mut Plan,
    req: &Request,
    cat: &Catalog,
    t: &Tree,
    order: &[usize],
    traits: &[Option<Traits>],
) {
    if !plan.controllers.iter().any(|c| c.added) {
        return;
    }
    // Names made here differ from each other by prefix or number, so only the request's
    // names that are made names need skipping, as (prefix, number).
    let taken: Vec<(usize, u32)> = req
        .devices
        .iter()
        .map(|d| d.id.as_str())
        .chain(req.controllers.iter().map(|c| c.id.as_str()))
        .chain(std::iter::once(cat.root.bus.as_str()))
        .filter_map(made_name_parts)
        .collect();
    let mut counters = [0u32; PREFIXES.len()];
    for &i in order {
        let c = &mut plan.controllers[i];
        if !c.added {
            continue;
        }
        let p = traits[i].map_or_else(|| prefix_of(None), |tr| tr.prefix);
        let n = &mut counters[p];
        *n += 1;
        while taken.contains(&(p, *n)) {
            *n += 1;
        }
        c.id = made_name(p, *n);
    }
    // A bus takes the name of the added controller it plugs into (a copy of its id: every
    // added controller was named above).
    for i in 0..plan.controllers.len() {
        if let Some(k) = t
            .parent_ctrl(t.ctrl_node(i))
            .filter(|&k| plan.controllers[k].added)
        {
            let name = plan.controllers[k].id.clone();
            plan.controllers[i].bus = name;
        }
    }
    let ctrls = &plan.controllers;
    for (j, d) in plan.devices.iter_mut().enumerate() {
        if let Some(k) = t.parent_ctrl(t.dev_node(j)).filter(|&k| ctrls[k].added) {
            d.bus.clone_from(&ctrls[k].id);
        }
    }
}

/// R-RP-ID: chassis and port numbers for added ports, and for pinned ports that came without
/// a chassis (QEMU's default chassis 0 would collide; libvirt numbers them too). Chassis are
/// the lowest numbers from 1 not in use, in `order`; a port is its slot on a switch, else
/// slot × 8 + function.
fn number_ports(plan: &mut Plan, cat: &Catalog, order: &[usize], traits: &[Option<Traits>]) {
    let mut used = [false; 256];
    for c in &plan.controllers {
        if let Some(n) = c.chassis {
            used[usize::from(n)] = true;
        }
    }
    let mut next = 1u8;
    let mut take = |used: &mut [bool; 256]| {
        while used[usize::from(next)] && next < 255 {
            next += 1;
        }
        used[usize::from(next)] = true;
        next
    };
    for &i in order {
        let c = &mut plan.controllers[i];
        if !(c.added || c.chassis.is_none()) {
            continue;
        }
        let Some(tr) = traits[i] else {
            continue;
        };
        if tr.chassis_nr && (c.added || cat.layout == Layout::PciRoot) {
            // PC-BRIDGE: QEMU wants a unique chassis_nr on every pci-bridge (q35 reads
            // pinned ones as they are).
            c.chassis = Some(take(&mut used));
            continue;
        }
        if !tr.chassis {
            continue;
        }
        c.chassis = Some(take(&mut used));
        let port = if tr.downstream {
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
fn set_multifunction(plan: &mut Plan, t: &Tree) {
    // One child alone shares no slot.
    for kids in t.buses().filter(|kids| kids.len() > 1) {
        // A bus's children come sorted by (slot, function): a slot's function 0 first, its
        // highest function last.
        let mut at = 0;
        while let Some(first) = kids.get(at) {
            let run = &kids[at..];
            let end = run.iter().take_while(|k| k.slot() == first.slot()).count();
            at += end;
            if run[end - 1].function() == 0 {
                continue;
            }
            for k in run[..end].iter().take_while(|k| k.function() == 0) {
                if let Some(i) = t.ctrl(k.node()) {
                    plan.controllers[i].multifunction = true;
                } else if let Some(j) = t.dev(k.node()) {
                    plan.devices[j].multifunction = true;
                }
            }
        }
    }
}

/// Puts the devices in request order (devices the request does not name go last).
fn devices_in_request_order(plan: &mut Plan, req: &Request) {
    if plan.devices_in_order_of(req) {
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
    use crate::plan::PlacedController;
    use crate::topology::fixtures::{added, ctrl, dev, plan, request};

    fn q35() -> &'static Catalog {
        Catalog::q35()
    }

    /// `p`'s topology, its controllers' traits and their order as they are.
    fn read(p: &Plan) -> (Tree<'static>, Vec<Option<Traits>>, Vec<usize>) {
        let t = Tree::build(p, q35());
        let traits = traits(&t);
        (t, traits, (0..p.controllers.len()).collect())
    }

    #[test]
    fn names_are_a_prefix_and_a_decimal_number() {
        let rp = PREFIXES
            .iter()
            .position(|&p| p == "rp")
            .expect("a root port prefix");
        assert_eq!(made_name(rp, 1), "rp1");
        assert_eq!(made_name(rp, 407), "rp407");
        assert_eq!(made_name(rp, u32::MAX), "rp4294967295");
        assert_eq!(made_name(rp, 0), "rp0");
        for n in [NAMES_AHEAD - 1, NAMES_AHEAD, NAMES_AHEAD + 1] {
            assert_eq!(made_name(4, n), format!("pxb{n}"));
        }
        assert_eq!(made_name_parts("rp12"), Some((rp, 12)));
        assert_eq!(made_name_parts("pxb1"), Some((4, 1)));
        assert_eq!(made_name_parts("rp4294967295"), Some((rp, u32::MAX)));
        for (p, prefix) in PREFIXES.iter().enumerate() {
            assert_eq!(made_name_parts(&format!("{prefix}7")), Some((p, 7)));
        }
        for id in [
            "rp",
            "rpx1",
            "n1",
            "rp01",
            "rp0",
            "rp4294967296",
            "rp+1",
            "",
            "p1",
        ] {
            assert_eq!(made_name_parts(id), None, "{id}");
        }
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
        let t = Tree::build(&p, q35());
        assert_eq!(
            controller_order(&p, &t, &t.ctrls_below(ROOT)),
            vec![2, 1, 0]
        );
    }

    #[test]
    fn a_permutation_is_applied_in_place() {
        let mut v = ['a', 'b', 'c', 'd', 'e'];
        permute(&mut v, &[3, 0, 4, 1, 2], &mut [false; 5]);
        assert_eq!(v, ['d', 'a', 'e', 'b', 'c']);
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
        let t = Tree::build(&p, q35());
        let order = controller_order(&p, &t, &t.ctrls_below(ROOT));
        assert_eq!(order, [1, 2, 0]);
        reorder_controllers(&mut p, &order);
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
        let t = Tree::build(&p, q35());
        let max = q35().bus_numbers.max as u8;
        assert_eq!(
            expander_bus_numbers(&t, &p, &t.ctrls_below(ROOT), q35()),
            vec![(0, max - 1), (1, max - 2)]
        );
    }

    #[test]
    fn new_expanders_skip_pinned_ranges() {
        let max = q35().bus_numbers.max as u8;
        let mut pinned = ctrl("x1", "pxb-pcie", "pcie.0", 1, 0);
        pinned.bus_nr = Some(max);
        let p = plan(vec![pinned, ctrl("x2", "pxb-pcie", "pcie.0", 2, 0)], vec![]);
        let t = Tree::build(&p, q35());
        assert_eq!(
            expander_bus_numbers(&t, &p, &t.ctrls_below(ROOT), q35()),
            vec![(1, max - 1)]
        );
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
        let t = Tree::build(&p, q35());
        assert_eq!(
            expander_bus_numbers(&t, &p, &t.ctrls_below(ROOT), q35()),
            vec![]
        );
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
        let (t, traits, _) = read(&p);
        assert!(q35().needs_io("e1000e", crate::catalog::BusKind::Pcie));
        let below = t.ctrls_below(ROOT);
        assert_eq!(io_reserve_zero(&t, &p, &below, &traits), vec![1, 3]);
        // The same one controller at a time, as when some hang below no root.
        assert_eq!(io_reserve_zero(&t, &p, &below[1..], &traits), vec![1, 3]);
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
        let t = Tree::build(&p, q35());
        let hp: Vec<bool> = (0..3)
            .map(|j| t.device_hotpluggable(j, &p.controllers))
            .collect();
        assert_eq!(hp, [true, false, false]);
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
        let (t, traits, order) = read(&p);
        name_added(&mut p, &req, q35(), &t, &order, &traits);
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
        let (_, traits, order) = read(&p);
        number_ports(&mut p, q35(), &order, &traits);
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
        let (t, ..) = read(&p);
        set_multifunction(&mut p, &t);
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
        let w = Wiring::from_names(&p, q35());
        finish(&mut p, &req, q35(), w);
        let c = &p.controllers[0];
        assert_eq!(
            (c.id.as_str(), c.chassis, c.port, c.io_reserve),
            ("rp1", Some(1), Some(8), Some(0))
        );
        assert_eq!(p.devices[0].bus, "rp1");
        assert!(p.devices[0].hotpluggable);
    }
}
