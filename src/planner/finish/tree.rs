//! The topology the finishing passes read, by index: node 0 is the root bus, then come the
//! controllers, then the devices, each in plan order. Every node knows the node it is
//! plugged into and its children in address order. Built once per plan from what the
//! assigner knows of it ([`Wiring`]), so that added controllers need no names yet, or
//! from the plan's names (the `pc` planner's plans).

use crate::catalog::{BusKind, Catalog, ControllerModel, DeviceModel, HotplugControl};
use crate::idmap::IdMap;
use crate::plan::{PlacedController, Plan};

/// The root bus's node.
pub(in crate::planner) const ROOT: usize = 0;

/// An assigned plan's topology (see the module comment).
pub(super) struct Tree<'c> {
    /// How many controllers the plan has.
    ctrls: usize,
    /// The node each node is plugged into.
    parent: Vec<Option<usize>>,
    /// Children of every node, each node's sorted by (slot, function, node): those of node
    /// `n` are `kids[kid_start[n]..kid_start[n + 1]]`.
    kids: Vec<Kid>,
    kid_start: Vec<usize>,
    /// Each controller's catalog model.
    models: Vec<Option<&'c ControllerModel>>,
    /// Whether a child of the root bus can be unplugged by the guest (D-HP): the plan's
    /// `root_hotplug`, else the catalog's.
    root_hotplug: bool,
    /// Per device: (QEMU can unplug its model, it has an I/O BAR).
    dev_facts: Vec<(bool, bool)>,
}

/// A child on a bus: its slot, function and node in one integer, so that children order
/// by (slot, function, node) as integers do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Kid(u64);

impl Kid {
    /// Node `node` at `slot`.`function` (a plan has fewer than 2^32 nodes).
    fn new(slot: u8, function: u8, node: usize) -> Kid {
        Kid(u64::from(slot) << 40 | u64::from(function) << 32 | node as u64)
    }

    /// Its slot.
    pub fn slot(self) -> u8 {
        (self.0 >> 40) as u8
    }

    /// Its function.
    pub fn function(self) -> u8 {
        (self.0 >> 32) as u8
    }

    /// Its node.
    pub fn node(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }
}

/// What the assigner knows of the plan it hands over, by node (see the module comment):
/// the node each node is plugged into (`None` for the root bus and what is unplugged), each
/// controller's catalog model, and per device [`device_facts`].
#[derive(Debug, Default)]
pub(in crate::planner) struct Wiring<'c> {
    pub parent: Vec<Option<usize>>,
    pub models: Vec<Option<&'c ControllerModel>>,
    pub dev_facts: Vec<(bool, bool)>,
}

/// What the finishing passes need of a device of catalog model `m` (if known) and bus
/// `kind`: (QEMU can unplug it, it has an I/O BAR).
pub(in crate::planner) fn device_facts(m: Option<&DeviceModel>, kind: BusKind) -> (bool, bool) {
    (
        m.map(|m| m.hotpluggable).unwrap_or(true),
        m.map(|m| m.io).unwrap_or(kind == BusKind::Pci),
    )
}

impl<'c> Wiring<'c> {
    /// Reads `plan`'s wiring from its names: a bus names the root or the first controller
    /// of that id, else nothing.
    #[cfg(any(test, debug_assertions))]
    pub fn from_names(plan: &Plan, cat: &'c Catalog) -> Wiring<'c> {
        let mut ids: IdMap<&str, usize> = IdMap::default();
        ids.insert(cat.root.bus.as_str(), ROOT);
        for (i, c) in plan.controllers.iter().enumerate() {
            ids.entry(c.id.as_str()).or_insert(1 + i);
        }
        let parent = std::iter::once(None)
            .chain(
                plan.controllers
                    .iter()
                    .map(|c| c.bus.as_str())
                    .chain(plan.devices.iter().map(|d| d.bus.as_str()))
                    .map(|b| ids.get(b).copied()),
            )
            .collect();
        let models = plan
            .controllers
            .iter()
            .map(|c| cat.controller(&c.model))
            .collect();
        let dev_facts = plan
            .devices
            .iter()
            .map(|d| device_facts(cat.device(&d.model), d.kind))
            .collect();
        Wiring {
            parent,
            models,
            dev_facts,
        }
    }
}

/// The nodes of buses by name, as [`Wiring::from_names`] reads them, for a planner that
/// wires by index: the root bus, else the first pinned controller of that id, else none
/// (controllers the planner adds are wired by index, not by name).
pub(in crate::planner) struct Named<'p> {
    root: &'p str,
    pinned: &'p [PlacedController],
    /// The pinned controllers by id, when there are many.
    ids: Option<IdMap<&'p str, usize>>,
}

impl<'p> Named<'p> {
    /// Pinned controllers up to this many are searched in a row rather than hashed.
    const FEW: usize = 8;

    pub fn new(root: &'p str, pinned: &'p [PlacedController]) -> Named<'p> {
        let ids = (pinned.len() > Self::FEW).then(|| {
            let mut ids: IdMap<&str, usize> = IdMap::default();
            ids.reserve(pinned.len());
            for (i, c) in pinned.iter().enumerate() {
                ids.entry(c.id.as_str()).or_insert(i);
            }
            ids
        });
        Named { root, pinned, ids }
    }

    /// The node of the bus named `name`, if any.
    /// The root test is inlined where it is called: most named buses are the root bus,
    /// named by the catalog's own string.
    #[inline]
    pub fn node(&self, name: &str) -> Option<usize> {
        if std::ptr::eq(name, self.root) {
            return Some(ROOT);
        }
        self.node_by_name(name)
    }

    /// [`Named::node`] of a name other than the catalog's own root string.
    fn node_by_name(&self, name: &str) -> Option<usize> {
        if name == self.root {
            return Some(ROOT);
        }
        let i = match &self.ids {
            Some(ids) => ids.get(name).copied(),
            None => self.pinned.iter().position(|c| c.id == name),
        };
        i.map(|i| ROOT + 1 + i)
    }
}

impl Wiring<'_> {
    /// The same parents, device facts and catalog models (the very entries) as `other`: a
    /// wiring built by a planner checked against [`Wiring::from_names`] in debug and unit
    /// test builds.
    #[cfg(any(test, debug_assertions))]
    pub fn same_as(&self, other: &Wiring) -> bool {
        let same_model = |a: &Option<&ControllerModel>, b: &Option<&ControllerModel>| match (a, b) {
            (Some(a), Some(b)) => std::ptr::eq(*a, *b),
            (None, None) => true,
            _ => false,
        };
        self.parent == other.parent
            && self.dev_facts == other.dev_facts
            && self.models.len() == other.models.len()
            && self
                .models
                .iter()
                .zip(&other.models)
                .all(|(a, b)| same_model(a, b))
    }
}

impl<'c> Tree<'c> {
    /// Reads `plan`'s topology from its names (see [`Wiring::from_names`]).
    #[cfg(test)]
    pub fn build(plan: &Plan, cat: &'c Catalog) -> Tree<'c> {
        Tree::new(plan, cat, Wiring::from_names(plan, cat))
    }

    /// `plan`'s topology as `w` wires it (addresses are `plan`'s).
    ///
    /// The children are bucketed by parent in one counting pass (nodes in order, so each
    /// bucket starts sorted by node), then each bucket is sorted by address.
    #[inline(never)]
    pub fn new(plan: &Plan, cat: &Catalog, w: Wiring<'c>) -> Tree<'c> {
        let ctrls = plan.controllers.len();
        let nodes = 1 + ctrls + plan.devices.len();
        let Wiring {
            parent,
            models,
            dev_facts,
        } = w;
        // First how many children each node has, then where its children end.
        let mut kid_start = vec![0; nodes + 1];
        for &p in parent.iter().flatten() {
            kid_start[p] += 1;
        }
        let mut end = 0;
        for s in &mut kid_start {
            end += *s;
            *s = end;
        }
        // Filled from the last node back, each bucket from its end: then `kid_start[n]` is
        // where the children of `n` start.
        let mut kids = vec![Kid::default(); end];
        let mut put = |n: usize, (slot, function): (u8, u8)| {
            if let Some(p) = parent[n] {
                kid_start[p] -= 1;
                kids[kid_start[p]] = Kid::new(slot, function, n);
            }
        };
        let dev_addrs = plan.devices.iter().map(|d| (d.slot, d.function));
        for (j, a) in dev_addrs.enumerate().rev() {
            put(1 + ctrls + j, a);
        }
        for (i, c) in plan.controllers.iter().enumerate().rev() {
            put(1 + i, (c.slot, c.function));
        }
        let mut scratch = Vec::new();
        for w in kid_start.windows(2) {
            // One child or none is in order.
            if w[1] > w[0] + 1 {
                sort_by_address(&mut kids[w[0]..w[1]], &mut scratch);
            }
        }
        Tree {
            ctrls,
            parent,
            kids,
            kid_start,
            models,
            root_hotplug: plan.root_hotplug.unwrap_or(cat.root.hotpluggable),
            dev_facts,
        }
    }

    /// How many controllers the plan has.
    pub fn ctrls(&self) -> usize {
        self.ctrls
    }

    /// The node of controller `i`.
    pub fn ctrl_node(&self, i: usize) -> usize {
        1 + i
    }

    /// The node of device `j`.
    pub fn dev_node(&self, j: usize) -> usize {
        1 + self.ctrls + j
    }

    /// The controller index of node `n`, if it is a controller.
    pub fn ctrl(&self, n: usize) -> Option<usize> {
        (1..=self.ctrls).contains(&n).then(|| n - 1)
    }

    /// The device index of node `n`, if it is a device.
    pub fn dev(&self, n: usize) -> Option<usize> {
        (n > self.ctrls && n < self.parent.len()).then(|| n - 1 - self.ctrls)
    }

    /// The node `n` is plugged into.
    pub fn parent(&self, n: usize) -> Option<usize> {
        self.parent.get(n).copied().flatten()
    }

    /// The children of node `n`, in address order.
    pub fn kids(&self, n: usize) -> &[Kid] {
        &self.kids[self.kid_start[n]..self.kid_start[n + 1]]
    }

    /// The children of every bus (the root's, then each controller's), each in address
    /// order.
    pub fn buses(&self) -> impl Iterator<Item = &[Kid]> {
        self.kid_start[..self.ctrls + 2]
            .windows(2)
            .map(|w| &self.kids[w[0]..w[1]])
    }

    /// The catalog model of node `n`, if it is a controller of a known model.
    pub fn model(&self, n: usize) -> Option<&'c ControllerModel> {
        self.ctrl(n).and_then(|i| self.models[i])
    }

    /// Whether node `n` is an expander (its bus is of type `pxb`).
    fn is_expander(&self, n: usize) -> bool {
        self.model(n).is_some_and(|m| m.bus.bus_type == "pxb")
    }

    /// Whether node `n` is a controller that takes a guest bus number.
    pub fn uses_bus_number(&self, n: usize) -> bool {
        self.model(n).is_some_and(|m| m.uses_bus_number)
    }

    /// Whether node `n` is an expander that takes a bus number.
    pub fn numbered_expander(&self, n: usize) -> bool {
        self.uses_bus_number(n) && self.is_expander(n)
    }

    /// Whether some expander is above node `n`.
    #[inline(never)]
    pub fn below_expander(&self, n: usize) -> bool {
        let mut at = self.parent(n);
        while let Some(p) = at {
            if self.is_expander(p) {
                return true;
            }
            at = self.parent(p);
        }
        false
    }

    /// The controller nodes below `n`, depth first in address order, not including `n`
    /// (devices have nothing below them).
    #[inline(never)]
    pub fn ctrls_below(&self, n: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.ctrls);
        let mut stack: Vec<usize> = Vec::with_capacity(self.ctrls);
        // Controllers are nodes 1 to `ctrls`; devices come after them.
        let ctrl_kids = |x: usize| {
            self.kids(x)
                .iter()
                .rev()
                .map(|k| k.node())
                .filter(|&k| k <= self.ctrls)
        };
        stack.extend(ctrl_kids(n));
        // One parent each: a walk down meets no node twice, unless it comes back to `n`
        // on a loop of buses.
        while let Some(x) = stack.pop() {
            if x == n {
                continue;
            }
            out.push(x);
            stack.extend(ctrl_kids(x));
        }
        out
    }

    /// R-IO: the I/O windows controller node `n` needs from its parent (as
    /// `Topology::io_windows` counts them).
    pub fn io_windows(&self, n: usize) -> u32 {
        if self.ctrl(n).is_none() {
            return 0;
        }
        let mut own_io = false;
        let mut below = 0;
        for k in self.kids(n) {
            if let Some(j) = self.dev(k.node()) {
                own_io |= self.dev_facts[j].1;
            } else {
                below += self.io_windows(k.node());
            }
        }
        Self::windows(own_io, below)
    }

    /// R-IO: [`Tree::io_windows`] of every controller at once, by controller index, when
    /// `order` (controller nodes, each after its parent) holds them all; else `None`.
    pub fn all_io_windows(&self, order: &[usize]) -> Option<Vec<u32>> {
        if order.len() != self.ctrls {
            return None;
        }
        // Per controller: whether a device on its bus has an I/O BAR; the windows of its
        // children so far, then its own.
        let mut own_io = vec![false; self.ctrls];
        let mut windows = vec![0u32; self.ctrls];
        for (j, &(_, io)) in self.dev_facts.iter().enumerate() {
            if let Some(i) = self.parent_ctrl(self.dev_node(j)).filter(|_| io) {
                own_io[i] = true;
            }
        }
        // Children before their parents.
        for &n in order.iter().rev() {
            let Some(i) = self.ctrl(n) else { continue };
            let w = Self::windows(own_io[i], windows[i]);
            windows[i] = w;
            if let Some(p) = self.parent_ctrl(n) {
                windows[p] += w;
            }
        }
        Some(windows)
    }

    /// The windows a controller needs for its own devices (`own_io`: one has an I/O BAR)
    /// and the `below` windows of its children.
    fn windows(own_io: bool, below: u32) -> u32 {
        if own_io {
            below.max(1)
        } else {
            below
        }
    }

    /// The controller index of the node `n` is plugged into, if that is a controller.
    pub fn parent_ctrl(&self, n: usize) -> Option<usize> {
        self.parent(n).and_then(|p| self.ctrl(p))
    }

    /// D-HP: whether the guest can unplug device `j` where it sits (`ctrls`: the plan's
    /// controllers, for their `hotplug` setting).
    #[inline]
    pub fn device_hotpluggable(&self, j: usize, ctrls: &[PlacedController]) -> bool {
        let bus_hp = match self.parent(self.dev_node(j)) {
            Some(ROOT) => self.root_hotplug,
            Some(p) => self.ctrl(p).is_some_and(|i| {
                let control = self.models[i].map(|m| m.hotplug);
                HotplugControl::bus_hotpluggable(control, ctrls.get(i).and_then(|c| c.hotplug))
            }),
            None => false,
        };
        self.dev_facts[j].0 && bus_hp
    }
}

/// Sorts the children of one node, given in node order, by (slot, function, node). Most
/// come as one or two runs already in order (the controllers', then the devices'): those are
/// merged, through `scratch`; anything else is sorted.
fn sort_by_address(kids: &mut [Kid], scratch: &mut Vec<Kid>) {
    let run = |v: &[Kid]| 1 + v.windows(2).take_while(|w| w[0] <= w[1]).count();
    if kids.len() < 2 {
        return;
    }
    let mid = run(kids);
    if mid == kids.len() {
        return;
    }
    if mid + run(&kids[mid..]) < kids.len() {
        kids.sort_unstable();
        return;
    }
    // Merge from the back: the second run waits in `scratch`.
    scratch.clear();
    scratch.extend_from_slice(&kids[mid..]);
    let (mut a, mut b) = (mid, scratch.len());
    for k in (0..kids.len()).rev() {
        if b == 0 {
            break;
        }
        if a > 0 && kids[a - 1] > scratch[b - 1] {
            a -= 1;
            kids[k] = kids[a];
        } else {
            b -= 1;
            kids[k] = scratch[b];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sort_by_address` of children given as (slot, function, node).
    fn sorted(kids: &[(u8, u8, usize)]) -> Vec<(u8, u8, usize)> {
        let mut v: Vec<Kid> = kids.iter().map(|&(s, f, n)| Kid::new(s, f, n)).collect();
        sort_by_address(&mut v, &mut Vec::new());
        v.iter()
            .map(|k| (k.slot(), k.function(), k.node()))
            .collect()
    }

    #[test]
    fn children_sort_by_address_then_node() {
        let mut all = vec![
            (13, 0, 1),
            (13, 1, 2),
            (14, 0, 3),
            (1, 0, 4),
            (2, 0, 5),
            (20, 0, 6),
        ];
        let want = {
            let mut w = all.clone();
            w.sort();
            w
        };
        // Two runs (merged), already in order, one child, and many runs (sorted).
        assert_eq!(sorted(&all), want);
        assert_eq!(sorted(&want), want);
        assert_eq!(sorted(&all[..1]), all[..1]);
        all.swap(0, 5);
        all.swap(1, 3);
        assert_eq!(sorted(&all), want);
        assert_eq!(sorted(&[(3, 0, 9), (3, 0, 2)]), [(3, 0, 2), (3, 0, 9)]);
    }
}
