//! What an adoption changes in an existing guest, and what the guest sees of it (G-ID,
//! G-FLIP): each device's path from the root and the bus number the firmware gives its
//! bus, before and after.

use std::collections::BTreeMap;

use petgraph::visit::NodeIndexable;
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::idmap::IdMap;
use crate::plan::Plan;
use crate::topology::{Node, Topology};

/// The kind of one change (`docs/formats.md`, "Adopting an existing guest").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChangeKind {
    /// The device's path from the root changed (guest-visible).
    Moved,
    /// Same path, another bus number from the firmware (guest-visible).
    Renumbered,
    /// Same path and bus number, but the guest gains or loses the hotplug slot its Linux
    /// name comes from (guest-visible; `pc` only, G-FLIP).
    Renamed,
    /// An existing port's `hotplug` changed (not guest-visible on q35).
    PortHotplug,
    /// A controller was added.
    Added,
}

/// A before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seen {
    /// Before the change.
    pub from: String,
    /// After it.
    pub to: String,
}

/// One change to an existing guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// The device's or controller's id.
    pub id: String,
    /// What changed.
    pub change: ChangeKind,
    /// Before: an address (`pci.3:00.0`), a bus (`bus 4`) or a setting (`on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// After, in the same terms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Whether the guest sees it (G-ID).
    pub guest_visible: bool,
    /// A network card's Linux interface name before and after (systemd's path names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux_name: Option<Seen>,
    /// The device's Windows location path before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_path: Option<Seen>,
    /// Why a device had to change, with the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// A device's guest-visible identity (G-ID).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    /// (slot, function) of every bridge above it and its own, from the root down.
    path: Path,
    /// The bus number of its bus (`None` below an expander without `bus_nr`).
    bus: Option<u32>,
    /// The firmware root it hangs from: 0 for `pcie.0`, else its expander's `bus_nr`
    /// (`None` for an expander without one: QEMU's choice, not the plan's).
    root: Option<u32>,
    /// Leading elements of `path` that belong to no bridge below its root: the expander's
    /// own slot on `pcie.0` (the guest sees the expander as a root bus of its own).
    below_root: usize,
    /// Its slot is an ACPI hotplug slot whose number systemd names a NIC after (`pc`:
    /// `pci.0` with root hotplug on, or a `pci-bridge` slot; G-FLIP). Never on q35.
    named_slot: bool,
}

/// A device's path: up to [`Path::INLINE`] hops in place (every real guest), deeper ones on
/// the heap; two paths are equal when their hops are.
#[derive(Debug, Clone)]
enum Path {
    Inline(usize, [(u8, u8); Path::INLINE]),
    Heap(Vec<(u8, u8)>),
}

impl Path {
    const INLINE: usize = 12;

    fn new() -> Path {
        Path::Inline(0, [(0, 0); Path::INLINE])
    }

    fn push(&mut self, hop: (u8, u8)) {
        match self {
            Path::Inline(n, hops) if *n < Path::INLINE => {
                hops[*n] = hop;
                *n += 1;
            }
            Path::Inline(n, hops) => {
                let mut v = hops[..*n].to_vec();
                v.push(hop);
                *self = Path::Heap(v);
            }
            Path::Heap(v) => v.push(hop),
        }
    }

    fn hops(&self) -> &[(u8, u8)] {
        match self {
            Path::Inline(n, hops) => &hops[..*n],
            Path::Heap(v) => v,
        }
    }

    fn reverse(&mut self) {
        match self {
            Path::Inline(n, hops) => hops[..*n].reverse(),
            Path::Heap(v) => v.reverse(),
        }
    }

    fn len(&self) -> usize {
        self.hops().len()
    }
}

impl PartialEq for Path {
    fn eq(&self, other: &Path) -> bool {
        self.hops() == other.hops()
    }
}

impl Eq for Path {}

impl Identity {
    /// The Linux name of a network card there (`enp3s0`, `enp0s5f1`).
    /// On a named hotplug slot (`pc`, G-FLIP) systemd's slot name wins: `ens3`.
    fn linux(&self) -> Option<String> {
        let &(slot, function) = self.path.hops().last()?;
        let f = if function > 0 {
            format!("f{function}")
        } else {
            String::new()
        };
        if self.named_slot {
            return Some(format!("ens{slot}{f}"));
        }
        let bus = self.bus?;
        Some(format!("enp{bus}s{slot}{f}"))
    }

    /// Its Windows location path (`PCIROOT(0)#PCI(0200)#PCI(0000)`).
    fn windows(&self) -> String {
        use std::fmt::Write;
        let mut s = String::with_capacity(12 + 9 * self.path.len());
        let _ = write!(s, "PCIROOT({})", self.root.unwrap_or(0));
        for (slot, function) in &self.path.hops()[self.below_root..] {
            let _ = write!(s, "#PCI({slot:02X}{function:02X})");
        }
        s
    }
}

/// Bus numbers as the firmware gives them (R-BUSNR, G-ID): `pcie.0` is 0 and the buses
/// below it count from 1 depth first in slot/function order; an expander's bus is its
/// `bus_nr` and the buses below it count on from there. By node index.
pub(crate) fn bus_numbers(t: &Topology) -> Vec<Option<u32>> {
    let nodes = t.g.node_bound();
    let mut out = vec![None; nodes];
    out[t.root.index()] = Some(0);
    let mut next_root = 1;
    let mut next_in: Vec<Option<u32>> = vec![None; nodes];
    for n in t.descendants(t.root) {
        if !t.uses_bus_number(n) && t.bus_type(n) != Some("pxb") {
            continue;
        }
        if t.bus_type(n) == Some("pxb") {
            if let Node::Ctrl(c) = t.g[n] {
                if let Some(nr) = c.bus_nr {
                    out[n.index()] = Some(u32::from(nr));
                    next_in[n.index()] = Some(u32::from(nr) + 1);
                }
            }
            continue;
        }
        match t.expander_of(n) {
            None => {
                out[n.index()] = Some(next_root);
                next_root += 1;
            }
            Some(x) => {
                if let Some(k) = next_in[x.index()].as_mut() {
                    out[n.index()] = Some(*k);
                    *k += 1;
                }
            }
        }
    }
    out
}

/// Every device's identity in `plan`, whose topology is `t`, by id (the last device of an
/// id counts). `pc`: whether slots are named hotplug slots (G-FLIP) depends on the bus.
fn identities<'p>(plan: &'p Plan, t: &Topology, cat: &Catalog) -> IdMap<&'p str, Identity> {
    let numbers = bus_numbers(t);
    let pc = cat.root.hotplug_switch.is_some();
    let root_named = pc && plan.root_hotplug.unwrap_or(cat.root.hotpluggable);
    let root_bridges = if pc { root_bridge_slots(t) } else { Vec::new() };
    let mut out = IdMap::default();
    out.reserve(plan.devices.len());
    for d in &plan.devices {
        let Some(&n) = t.ids.get(d.id.as_str()) else {
            continue;
        };
        let mut path = Path::new();
        path.push((d.slot, d.function));
        let mut root = Some(0);
        let mut pxb_at = None;
        let mut cur = n;
        while let Some(p) = t.parent(cur) {
            if let Node::Ctrl(c) = t.g[p] {
                path.push((c.slot, c.function));
                if t.bus_type(p) == Some("pxb") {
                    root = c.bus_nr.map(u32::from);
                    pxb_at = Some(path.len());
                }
            }
            if path.len() > 64 {
                break;
            }
            cur = p;
        }
        // Counted from the device up: the expander's element is the last one of those.
        let below_root = pxb_at.map_or(0, |k| path.len() - k + 1);
        path.reverse();
        let parent = t.parent(n);
        let bus = parent.and_then(|p| numbers[p.index()]);
        let named_slot = pc
            && match parent.map(|p| &t.g[p]) {
                Some(Node::Root) => root_named,
                Some(Node::Ctrl(_)) => {
                    parent
                        .and_then(|p| t.model(p))
                        .is_some_and(|m| m.hotplug == crate::catalog::HotplugControl::Always)
                        && bridge_slot_named(bus, d.slot, root_named, &root_bridges)
                }
                _ => false,
            };
        out.insert(
            d.id.as_str(),
            Identity {
                path,
                bus,
                root,
                below_root,
                named_slot,
            },
        );
    }
    out
}

/// Whether a `pc` guest's kernel registers slot `slot` of the `pci-bridge` whose bus is
/// numbered `bus` under the plain number systemd names a NIC after (G-FLIP). Observed with
/// Linux 6.1: every hotplug slot is registered by its number, `pci.0`'s first (while root
/// hotplug is on: 2..=31 except the slots holding a bridge, `root_bridges`), then each
/// bridge's (1..=31) in bus order; a number already taken gets a suffix (`3-2`), which
/// systemd does not read as a number. So only the first bridge (bus 1) has named slots:
/// slot 1 and those whose number `pci.0` does not register, all once root hotplug is off.
/// (Further bridges are inferred from the same rule, not observed.)
pub(crate) fn bridge_slot_named(
    bus: Option<u32>,
    slot: u8,
    root_named: bool,
    root_bridges: &[u8],
) -> bool {
    bus == Some(1) && (slot == 1 || !root_named || root_bridges.contains(&slot))
}

/// The `pci.0` slots holding a controller (a `pci-bridge` on `pc`): no hotplug slot there.
pub(crate) fn root_bridge_slots(t: &Topology) -> Vec<u8> {
    t.kids(t.root)
        .iter()
        .filter(|k| matches!(t.g[k.2], Node::Ctrl(_)))
        .map(|k| k.0)
        .collect()
}

/// The changes from the existing guest `before` (every device at its old address), whose
/// topology is `t_before`, to the adopted plan `after`: devices in `after`'s order, then
/// ports whose `hotplug` changed (on `pc`, first the root bus's own switch), then added
/// controllers. A NIC whose path and bus number stay but whose slot gains or loses its
/// hotplug slot (`pc`, G-FLIP) is `renamed`.
pub(crate) fn changes(
    before: &Plan,
    t_before: &Topology,
    after: &Plan,
    t_after: &Topology,
    cat: &Catalog,
) -> Vec<Change> {
    let old = identities(before, t_before, cat);
    let new = identities(after, t_after, cat);
    // The first device of each id before.
    let mut was_at: IdMap<&str, usize> = IdMap::default();
    was_at.reserve(before.devices.len());
    for (i, b) in before.devices.iter().enumerate() {
        was_at.entry(b.id.as_str()).or_insert(i);
    }
    let mut out = Vec::new();
    for d in &after.devices {
        let (Some(o), Some(n)) = (old.get(d.id.as_str()), new.get(d.id.as_str())) else {
            continue;
        };
        let Some(was) = was_at.get(d.id.as_str()).map(|&i| &before.devices[i]) else {
            continue;
        };
        // An unknown number (an expander without bus_nr before) is no change to count.
        let differ = |a: Option<u32>, b: Option<u32>| a.is_some() && b.is_some() && a != b;
        let nic = cat.device(&d.model).is_some_and(|m| m.nic);
        let (kind, from, to) = if o.path != n.path || differ(o.root, n.root) {
            (
                ChangeKind::Moved,
                was.address().to_string(),
                d.address().to_string(),
            )
        } else if differ(o.bus, n.bus) {
            let bus = |b: Option<u32>| b.map_or("bus ?".to_string(), |b| format!("bus {b}"));
            (ChangeKind::Renumbered, bus(o.bus), bus(n.bus))
        } else if nic && o.named_slot != n.named_slot {
            let (Some(from), Some(to)) = (o.linux(), n.linux()) else {
                continue;
            };
            let on_bridge = o.path.hops().len() > 1;
            out.push(renamed(&d.id, from, to, o.named_slot, on_bridge));
            continue;
        } else {
            continue;
        };
        let linux_name = match (nic, o.linux(), n.linux()) {
            (true, Some(from), Some(to)) => Some(Seen { from, to }),
            _ => None,
        };
        out.push(Change {
            id: d.id.to_string(),
            change: kind,
            from: Some(from),
            to: Some(to),
            guest_visible: true,
            linux_name,
            windows_path: Some(Seen {
                from: o.windows(),
                to: n.windows(),
            }),
            why: (kind == ChangeKind::Renumbered).then(|| {
                "a bus was added before its own in the firmware's depth-first numbering (G-ID)"
                    .to_string()
            }),
        });
    }
    let setting = |h: Option<bool>| if h.unwrap_or(true) { "on" } else { "off" };
    if cat.root.hotplug_switch.is_some() {
        let was = before.root_hotplug.unwrap_or(cat.root.hotpluggable);
        let now = after.root_hotplug.unwrap_or(cat.root.hotpluggable);
        if was != now {
            out.push(Change {
                id: cat.root.bus.clone(),
                change: ChangeKind::PortHotplug,
                from: Some(setting(Some(was)).into()),
                to: Some(setting(Some(now)).into()),
                guest_visible: false,
                linux_name: None,
                windows_path: None,
                why: None,
            });
        }
    }
    for c in after.controllers.iter().filter(|c| !c.added) {
        let Some(b) = t_before.controller_named(&c.id) else {
            continue;
        };
        if c.hotplug.is_some() && b.hotplug.unwrap_or(true) != c.hotplug.unwrap_or(true) {
            out.push(Change {
                id: c.id.to_string(),
                change: ChangeKind::PortHotplug,
                from: Some(setting(b.hotplug).into()),
                to: Some(setting(c.hotplug).into()),
                guest_visible: false,
                linux_name: None,
                windows_path: None,
                why: None,
            });
        }
    }
    for c in after.controllers.iter().filter(|c| c.added) {
        out.push(Change {
            id: c.id.to_string(),
            change: ChangeKind::Added,
            from: None,
            to: None,
            guest_visible: false,
            linux_name: None,
            windows_path: None,
            why: None,
        });
    }
    out
}

/// A NIC renamed by root hotplug (G-FLIP): `from` and `to` are its Linux names.
/// `lost_slot`: its slot was named before; `on_bridge`: it sits on the first `pci-bridge`
/// (whose slot numbers `pci.0`'s hotplug slots take while root hotplug is on).
fn renamed(id: &str, from: String, to: String, lost_slot: bool, on_bridge: bool) -> Change {
    let why = match (lost_slot, on_bridge) {
        (true, false) => "root hotplug is turned off: pci.0 loses the ACPI hotplug slots systemd names NICs after (G-FLIP)",
        (false, false) => "root hotplug is turned on: pci.0 gains the ACPI hotplug slots systemd names NICs after (G-FLIP)",
        (false, true) => "root hotplug is turned off: the pci-bridge slot's number is no longer taken by a pci.0 hotplug slot, so systemd names the NIC after it (G-FLIP)",
        (true, true) => "root hotplug is turned on: a pci.0 hotplug slot takes the pci-bridge slot's number, so systemd no longer names the NIC after it (G-FLIP)",
    };
    Change {
        id: id.to_string(),
        change: ChangeKind::Renamed,
        from: Some(from.clone()),
        to: Some(to.clone()),
        guest_visible: true,
        linux_name: Some(Seen { from, to }),
        windows_path: None,
        why: Some(why.to_string()),
    }
}

/// A short human summary of an adoption's changes, for standard error.
///
/// ```
/// let req = pciplan::Request::from_json(r#"{"devices":[
///   {"id":"net0","model":"virtio-net-pci","hotplug":"off",
///    "address":{"bus":"rp1","slot":0}}],
///  "policy":{"hotplug_off":"port"},
///  "controllers":[{"id":"rp1","model":"pcie-root-port","chassis":1,
///    "address":{"bus":"pcie.0","slot":2}}]}"#).unwrap();
/// let plan = pciplan::adopt(&req).unwrap();
/// let text = pciplan::summary(&plan);
/// assert!(text.starts_with("0 guest-visible changes"), "{text}");
/// assert!(text.contains("rp1 hotplug on -> off"), "{text}");
/// ```
pub fn summary(plan: &Plan) -> String {
    let Some(changes) = &plan.changes else {
        return String::new();
    };
    let visible = plan.guest_visible_changes.unwrap_or(0);
    let flips = changes
        .iter()
        .filter(|c| c.change == ChangeKind::PortHotplug)
        .count();
    let mut s = format!(
        "{visible} guest-visible change{}, {} controller{} added, {flips} port{} flipped",
        if visible == 1 { "" } else { "s" },
        plan.cost,
        if plan.cost == 1 { "" } else { "s" },
        if flips == 1 { "" } else { "s" },
    );
    if !plan.optimal {
        s.push_str(" (a valid plan, not proven the fewest changes: optimal false)");
    }
    for c in changes {
        let (from, to) = (
            c.from.as_deref().unwrap_or(""),
            c.to.as_deref().unwrap_or(""),
        );
        match c.change {
            ChangeKind::PortHotplug => s.push_str(&format!("\n  {} hotplug {from} -> {to}", c.id)),
            ChangeKind::Added => {}
            _ => {
                let verb = match c.change {
                    ChangeKind::Moved => "moves",
                    ChangeKind::Renumbered => "is renumbered",
                    _ => "is renamed",
                };
                s.push_str(&format!("\n  {} {verb} {from} -> {to}", c.id));
                if let Some(l) = c
                    .linux_name
                    .as_ref()
                    .filter(|_| c.change != ChangeKind::Renamed)
                {
                    s.push_str(&format!("; Linux {} -> {}", l.from, l.to));
                }
                if let Some(w) = &c.windows_path {
                    s.push_str(&format!("; Windows {} -> {}", w.from, w.to));
                }
                if let Some(w) = &c.why {
                    s.push_str(&format!("\n    because {w}"));
                }
            }
        }
    }
    s
}

/// The cheapest fix of each device an adoption changes or whose port it flips, by device
/// id, for `pciplan check` to print under a D-OFF or D-ON error: "set hotplug=off on port
/// pci.3" or "move it to pcie.0:05.0", each as `pciplan plan --adopt` would do it.
///
/// ```
/// let plan = pciplan::adopt(&pciplan::Request::from_json(r#"{
///   "policy": {"hotplug_off": "auto"},
///   "devices": [{"id": "net0", "model": "virtio-net-pci", "hotplug": "off",
///                "address": {"bus": "rp1", "slot": 0}}],
///   "controllers": [{"id": "rp1", "model": "pcie-root-port", "chassis": 1,
///                    "address": {"bus": "pcie.0", "slot": 2}}]}"#).unwrap()).unwrap();
/// let hints = pciplan::fixes(&plan);
/// assert_eq!(hints["net0"], "set hotplug=off on port rp1 (the guest sees no change)");
/// ```
pub fn fixes(plan: &Plan) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(list) = &plan.changes else {
        return out;
    };
    for c in list {
        match c.change {
            ChangeKind::Moved => {
                let to = c.to.as_deref().unwrap_or("?");
                let bus = plan.devices.iter().find(|d| d.id == c.id).map(|d| &d.bus);
                let fix = match plan.controllers.iter().find(|x| Some(&x.id) == bus) {
                    Some(n) if n.added => {
                        format!("move it behind a new {} at {} ({to})", n.model, n.address())
                    }
                    _ => format!("move it to {to}"),
                };
                out.insert(c.id.clone(), fix);
            }
            ChangeKind::PortHotplug => {
                let to = c.to.as_deref().unwrap_or("?");
                // `pc`: the root bus's own switch (no controller of the plan has its id).
                let root =
                    plan.root_hotplug.is_some() && !plan.controllers.iter().any(|x| x.id == c.id);
                for d in plan.devices.iter().filter(|d| d.bus == c.id) {
                    if !list.iter().any(|x| x.id == d.id) {
                        let fix = if root {
                            format!("turn root hotplug {to} on {} (the pci-root's <target hotplug='{to}'/>; the guest sees no change of this device)", c.id)
                        } else {
                            format!(
                                "set hotplug={to} on port {} (the guest sees no change)",
                                c.id
                            )
                        };
                        out.insert(d.id.to_string(), fix);
                    }
                }
            }
            ChangeKind::Renamed => {
                let (from, to) = (
                    c.from.as_deref().unwrap_or("?"),
                    c.to.as_deref().unwrap_or("?"),
                );
                let bus = plan
                    .devices
                    .iter()
                    .find(|d| d.id == c.id)
                    .map(|d| d.bus.as_str());
                let to_hp = if plan.root_hotplug == Some(false) {
                    "off"
                } else {
                    "on"
                };
                out.insert(
                    c.id.clone(),
                    format!(
                        "turn root hotplug {to_hp} on {} (the pci-root's <target hotplug='{to_hp}'/>); Linux renames it {from} -> {to} (G-FLIP)",
                        bus.unwrap_or("the root bus")
                    ),
                );
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::pinned_plan;

    /// The summary says when an adoption is valid but not proven the fewest changes.
    #[test]
    fn summary_says_when_an_adoption_is_not_proven() {
        let req = crate::Request::from_json(
            r#"{"machine":"pc","root_hotplug":true,"devices":[
              {"id":"n1","model":"virtio-net-pci","hotplug":"off","address":{"bus":"pci.0","slot":3}}]}"#,
        )
        .unwrap();
        let mut plan = crate::adopt(&req).unwrap();
        assert!(plan.optimal);
        assert!(!summary(&plan).contains("not proven"));
        plan.optimal = false;
        assert!(summary(&plan).contains("not proven the fewest changes"));
    }

    /// G-FLIP behind a `pc` bridge: the first bridge's slot N is named unless `pci.0`
    /// registered N first (root hotplug on, no bridge in `pci.0` slot N); slot 1 always is;
    /// further bridges never are.
    #[test]
    fn first_bridge_slots_are_named_where_pci0_leaves_the_number() {
        assert!(bridge_slot_named(Some(1), 1, true, &[]));
        assert!(!bridge_slot_named(Some(1), 3, true, &[2]));
        assert!(bridge_slot_named(Some(1), 3, false, &[2]));
        assert!(bridge_slot_named(Some(1), 6, true, &[6]));
        assert!(!bridge_slot_named(Some(2), 1, false, &[]));
        assert!(!bridge_slot_named(None, 1, false, &[]));
    }

    #[test]
    fn deep_paths_spill_and_compare_by_hops() {
        let (mut a, mut b) = (Path::new(), Path::new());
        for i in 0..20u8 {
            a.push((i, 0));
            b.push((i, 0));
            assert_eq!(a, b);
            assert_eq!(a.len(), usize::from(i) + 1);
        }
        assert!(matches!(a, Path::Heap(_)));
        a.reverse();
        assert_eq!(a.hops()[0], (19, 0));
        assert_ne!(a, b);
        let mut c = Path::new();
        c.push((1, 2));
        c.reverse();
        assert_eq!(c.hops(), &[(1, 2)]);
    }
    use crate::Request;

    fn plan_of(json: &str) -> Plan {
        let req = Request::from_json(json).expect("parses");
        pinned_plan(&req, Catalog::q35())
    }

    #[test]
    fn a_port_added_before_renumbers_what_follows() {
        let before = plan_of(
            r#"{"devices":[{"id":"n","model":"virtio-net-pci","address":{"bus":"b","slot":0}}],
            "controllers":[{"id":"b","model":"pcie-root-port","chassis":2,"address":{"bus":"pcie.0","slot":3}}]}"#,
        );
        let after = plan_of(
            r#"{"devices":[{"id":"n","model":"virtio-net-pci","address":{"bus":"b","slot":0}}],
            "controllers":[{"id":"a","model":"pcie-root-port","chassis":1,"address":{"bus":"pcie.0","slot":2}},
              {"id":"b","model":"pcie-root-port","chassis":2,"address":{"bus":"pcie.0","slot":3}}]}"#,
        );
        let cat = Catalog::q35();
        let c = changes(
            &before,
            &Topology::build(&before, cat),
            &after,
            &Topology::build(&after, cat),
            cat,
        );
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].change, ChangeKind::Renumbered);
        assert_eq!(
            (c[0].from.as_deref(), c[0].to.as_deref()),
            (Some("bus 1"), Some("bus 2"))
        );
        let l = c[0].linux_name.as_ref().expect("a NIC");
        assert_eq!((l.from.as_str(), l.to.as_str()), ("enp1s0", "enp2s0"));
        let w = c[0].windows_path.as_ref().expect("path");
        assert_eq!(w.from, "PCIROOT(0)#PCI(0300)#PCI(0000)");
        assert_eq!(w.from, w.to);
    }

    #[test]
    fn a_move_to_the_root_bus() {
        let before = plan_of(
            r#"{"devices":[{"id":"n","model":"e1000e","address":{"bus":"b","slot":0}}],
            "controllers":[{"id":"b","model":"pcie-root-port","chassis":2,"address":{"bus":"pcie.0","slot":3}}]}"#,
        );
        let after = plan_of(
            r#"{"devices":[{"id":"n","model":"e1000e","address":{"bus":"pcie.0","slot":5}}],
            "controllers":[{"id":"b","model":"pcie-root-port","chassis":2,"hotplug":false,"address":{"bus":"pcie.0","slot":3}}]}"#,
        );
        let cat = Catalog::q35();
        let c = changes(
            &before,
            &Topology::build(&before, cat),
            &after,
            &Topology::build(&after, cat),
            cat,
        );
        assert_eq!(c[0].change, ChangeKind::Moved);
        assert_eq!(c[0].from.as_deref(), Some("b:00.0"));
        assert_eq!(c[0].to.as_deref(), Some("pcie.0:05.0"));
        let l = c[0].linux_name.as_ref().expect("a NIC");
        assert_eq!((l.from.as_str(), l.to.as_str()), ("enp1s0", "enp0s5"));
        assert_eq!(c[1].change, ChangeKind::PortHotplug);
        assert!(!c[1].guest_visible);
    }
}
