//! The topology the finishing passes read, by index: node 0 is the root bus, then come the
//! controllers, then the devices, each in plan order. Every node knows the node it is
//! plugged into and its children in address order. Built once per plan from what the
//! assigner knows of it ([`Wiring`]), so that added controllers need no names yet, or
//! from the plan's names (the `pc` planner's plans).

use crate::catalog::{BusKind, Catalog, ControllerModel, DeviceModel, HotplugControl};
use crate::idmap::IdMap;
use crate::plan::Plan;

/// The root bus's node.
pub(super) const ROOT: usize = 0;

/// An assigned plan's topology (see the module comment).
pub(super) struct Tree<'c> {
    /// How many controllers the plan has.
    ctrls: usize,
    /// The node each node is plugged into.
    parent: Vec<Option<usize>>,
    /// Children of every node, each node's sorted by (slot, function, node): those of node
    /// `n` are `kids[kid_start[n]..kid_start[n + 1]]`.
    kids: Vec<(u8, u8, usize)>,
    kid_start: Vec<usize>,
    /// Each controller's catalog model.
    models: Vec<Option<&'c ControllerModel>>,
    /// Whether a child of each controller's bus can be unplugged by the guest (D-HP).
    bus_hotplug: Vec<bool>,
    /// The same for the root bus: the plan's `root_hotplug`, else the catalog's.
    root_hotplug: bool,
    /// Per device: (QEMU can unplug its model, it has an I/O BAR).
    dev_facts: Vec<(bool, bool)>,
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

impl<'c> Tree<'c> {
    /// Reads `plan`'s topology from its names (see [`Wiring::from_names`]).
    #[cfg(test)]
    pub fn build(plan: &Plan, cat: &'c Catalog) -> Tree<'c> {
        Tree::new(plan, cat, Wiring::from_names(plan, cat))
    }

    /// `plan`'s topology as `w` wires it (addresses are `plan`'s).
    #[inline(never)]
    pub fn new(plan: &Plan, cat: &Catalog, w: Wiring<'c>) -> Tree<'c> {
        let ctrls = plan.controllers.len();
        let nodes = 1 + ctrls + plan.devices.len();
        let Wiring {
            parent,
            models,
            dev_facts,
        } = w;
        let addrs = plan
            .controllers
            .iter()
            .map(|c| (c.slot, c.function))
            .chain(plan.devices.iter().map(|d| (d.slot, d.function)));
        // Each edge as one integer: the parent, then the child's slot, function and node,
        // in that order of significance (a plan has fewer than 2^24 nodes).
        let mut edges: Vec<u64> = Vec::with_capacity(nodes - 1);
        for (k, (slot, function)) in addrs.enumerate() {
            if let Some(p) = parent[1 + k] {
                edges.push(
                    (p as u64) << 40
                        | u64::from(slot) << 32
                        | u64::from(function) << 24
                        | (1 + k) as u64,
                );
            }
        }
        edges.sort_unstable();
        let mut kid_start = vec![0; nodes + 1];
        for e in &edges {
            kid_start[(e >> 40) as usize + 1] += 1;
        }
        for n in 0..nodes {
            kid_start[n + 1] += kid_start[n];
        }
        let kids = edges
            .into_iter()
            .map(|e| ((e >> 32) as u8, (e >> 24) as u8, (e & 0xff_ffff) as usize))
            .collect();
        let bus_hotplug = plan
            .controllers
            .iter()
            .zip(&models)
            .map(|(c, m)| match m.map(|m| m.hotplug) {
                Some(HotplugControl::Property) => c.hotplug.unwrap_or(true),
                Some(HotplugControl::Always) => true,
                Some(HotplugControl::Never) | None => false,
            })
            .collect();
        Tree {
            ctrls,
            parent,
            kids,
            kid_start,
            models,
            bus_hotplug,
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

    /// The children of node `n` as (slot, function, node), in address order.
    pub fn kids(&self, n: usize) -> &[(u8, u8, usize)] {
        &self.kids[self.kid_start[n]..self.kid_start[n + 1]]
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

    /// The nodes below `n`, depth first in address order, not including `n`.
    #[inline(never)]
    pub fn below(&self, n: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.parent.len());
        let mut stack: Vec<usize> = Vec::with_capacity(self.parent.len());
        stack.extend(self.kids(n).iter().rev().map(|k| k.2));
        // One parent each: a walk down meets no node twice, unless it comes back to `n`
        // on a loop of buses.
        while let Some(x) = stack.pop() {
            if x == n {
                continue;
            }
            out.push(x);
            stack.extend(self.kids(x).iter().rev().map(|k| k.2));
        }
        out
    }

    /// R-IO: the I/O windows controller node `n` needs from its parent (as
    /// `Topology::io_windows` counts them).
    #[inline(never)]
    pub fn io_windows(&self, n: usize) -> u32 {
        if self.ctrl(n).is_none() {
            return 0;
        }
        let mut own_io = false;
        let mut below = 0;
        for &(_, _, k) in self.kids(n) {
            if let Some(j) = self.dev(k) {
                own_io |= self.dev_facts[j].1;
            } else {
                below += self.io_windows(k);
            }
        }
        if own_io {
            below.max(1)
        } else {
            below
        }
    }

    /// D-HP: whether the guest can unplug device `j` where it sits.
    pub fn device_hotpluggable(&self, j: usize) -> bool {
        let bus_hp = match self.parent(self.dev_node(j)) {
            Some(ROOT) => self.root_hotplug,
            Some(p) => self.ctrl(p).is_some_and(|i| self.bus_hotplug[i]),
            None => false,
        };
        self.dev_facts[j].0 && bus_hp
    }
}
