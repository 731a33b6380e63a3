//! The topology of a plan: the root bus, controllers and devices are the nodes (the root,
//! then the controllers, then the devices, in plan order, numbered by `petgraph` node
//! indices); each node owning a bus has as children the nodes plugged into it, with their
//! slot and function, kept in one flat array.

use petgraph::stable_graph::NodeIndex;

use crate::catalog::{BusKind, Catalog, ControllerModel, HotplugControl};
use crate::plan::{PlacedController, PlacedDevice, Plan};
use crate::request::Request;
use crate::strtable::StrTable;
use crate::Text;

/// A node of the topology.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Node<'a> {
    /// The root bus.
    Root,
    /// A controller (it also owns the bus named by its id).
    Ctrl(&'a PlacedController),
    /// An endpoint.
    Dev(&'a PlacedDevice),
}

impl<'a> Node<'a> {
    pub fn id(&self, cat: &'a Catalog) -> &'a str {
        match self {
            Node::Root => cat.root.bus.as_str(),
            Node::Ctrl(c) => c.id.as_str(),
            Node::Dev(d) => d.id.as_str(),
        }
    }
}

/// What the build reads of each node once, for the checks that ask for it many times
/// (one array of these, by node index, instead of one array per fact).
#[derive(Debug, Clone, Copy, Default)]
struct Facts<'a> {
    /// A controller's model, if the catalog knows it.
    model: Option<&'a ControllerModel>,
    /// A controller whose model's bus is an expander's (bus type `pxb`).
    pxb: bool,
    /// The node whose bus it plugs into.
    parent: Option<NodeIndex>,
    /// Whether it hangs from the root.
    reach: bool,
    /// The nearest expander above it, when it hangs from the root.
    expander: Option<NodeIndex>,
    /// A device: whether QEMU can hot-unplug its model (the catalog's word).
    unpluggable: bool,
    /// A device: whether it needs I/O space (rule R-IO).
    io: bool,
}

/// The nodes of a topology by index: the part of a graph's interface the topology's readers
/// use (a topology holds no edges, see [`Topology::kids`], so a plain array serves, without
/// a graph's bookkeeping per node added and read).
pub(crate) struct Nodes<'a>(Vec<Node<'a>>);

impl<'a> Nodes<'a> {
    /// The number of nodes.
    pub fn node_count(&self) -> usize {
        self.0.len()
    }

    /// The node indices, in order.
    pub fn node_indices(&self) -> impl Iterator<Item = NodeIndex> {
        (0..self.0.len()).map(NodeIndex::new)
    }

    /// The nodes, in index order.
    pub fn node_weights(&self) -> std::slice::Iter<'_, Node<'a>> {
        self.0.iter()
    }
}

impl petgraph::visit::GraphBase for Nodes<'_> {
    type NodeId = NodeIndex;
    type EdgeId = petgraph::stable_graph::EdgeIndex;
}

/// Node indices as array indices, as a graph's readers ask for them (`node_bound`: one past
/// the highest, every index below being a node).
impl petgraph::visit::NodeIndexable for Nodes<'_> {
    fn node_bound(&self) -> usize {
        self.0.len()
    }

    fn to_index(&self, a: NodeIndex) -> usize {
        a.index()
    }

    fn from_index(&self, i: usize) -> NodeIndex {
        NodeIndex::new(i)
    }
}

impl<'a> std::ops::Index<NodeIndex> for Nodes<'a> {
    type Output = Node<'a>;

    #[inline]
    fn index(&self, n: NodeIndex) -> &Node<'a> {
        &self.0[n.index()]
    }
}

/// A plan's topology.
pub(crate) struct Topology<'a> {
    /// The nodes (no edges: see [`Topology::kids`]).
    pub g: Nodes<'a>,
    pub root: NodeIndex,
    /// The node of each id (the first node that has it).
    pub ids: StrTable<&'a str, NodeIndex>,
    /// Nodes whose bus names no existing bus: (node, bus name).
    pub dangling: Vec<(NodeIndex, &'a str)>,
    /// Nodes (other than the root) whose id an earlier node other than the root has, in
    /// node order.
    pub repeated: Vec<NodeIndex>,
    cat: &'a Catalog,
    /// Children of every node, node by node, each node's sorted by (slot, function): those
    /// of node `n` are `kids[kid_start[n]..kid_start[n + 1]]` (one array for all, not one
    /// per node: a topology is built several times per plan).
    kids: Vec<(u8, u8, NodeIndex)>,
    /// Where each node's children start in `kids`, by node index, and their end last.
    kid_start: Vec<u32>,
    /// What the build read of each node, by node index.
    facts: Vec<Facts<'a>>,
    /// Number of controller nodes.
    ctrls: usize,
    /// Whether the root bus lets the guest unplug its devices: the plan's `root_hotplug`
    /// where it has one (PC-ROOT-HP), else the catalog's.
    root_hotplug: bool,
}

/// The (slot, function, node) of a child packed in one integer, in that order of
/// significance: children sort by it.
fn kid_key(k: &(u8, u8, NodeIndex)) -> u64 {
    u64::from(k.0) << 40 | u64::from(k.1) << 32 | k.2.index() as u64
}

/// Sorts a run of children by [`kid_key`]. A run in order already is left as it is; a run
/// of two ordered parts whose second part all comes first (the root bus's, whose controllers
/// come before its integrated devices in node order while their slots are higher) is
/// rotated; any other is sorted as packed keys, which the library sorts without a branch
/// per move, and unpacked (`keys` is room for them, reused).
fn sort_run(run: &mut [(u8, u8, NodeIndex)], keys: &mut Vec<u64>) {
    let first = 1 + run
        .windows(2)
        .take_while(|w| kid_key(&w[0]) <= kid_key(&w[1]))
        .count();
    if first >= run.len() {
        return;
    }
    // Keys differ (each holds its node): the second part's last below the first part's
    // first puts the whole second part before the first.
    if kid_key(&run[run.len() - 1]) < kid_key(&run[0]) && run[first..].is_sorted_by_key(kid_key) {
        run.rotate_left(first);
        return;
    }
    keys.clear();
    keys.extend(run.iter().map(kid_key));
    keys.sort_unstable();
    for (k, &key) in run.iter_mut().zip(keys.iter()) {
        let node = NodeIndex::new((key & 0xffff_ffff) as usize);
        *k = ((key >> 40) as u8, (key >> 32) as u8, node);
    }
}

impl<'a> Topology<'a> {
    /// Builds the graph. Names that appear twice keep their first node.
    pub fn build(plan: &'a Plan, cat: &'a Catalog) -> Topology<'a> {
        Self::build_of(plan, &plan.devices, cat)
    }

    /// The topology of `plan`'s controllers alone, as [`Topology::build`] gives it for the
    /// same plan without devices (an adoption reads what the guest offers with every device
    /// free from the existing guest's plan).
    pub fn build_controllers(plan: &'a Plan, cat: &'a Catalog) -> Topology<'a> {
        Self::build_of(plan, &[], cat)
    }

    /// [`Topology::build`] with `devices` in place of `plan.devices`.
    fn build_of(plan: &'a Plan, devices: &'a [PlacedDevice], cat: &'a Catalog) -> Topology<'a> {
        let nodes = 1 + plan.controllers.len() + devices.len();
        let mut g = Vec::with_capacity(nodes);
        g.push(Node::Root);
        let root = NodeIndex::new(0);
        let mut facts = Vec::with_capacity(nodes);
        facts.push(Facts::default());
        for c in &plan.controllers {
            g.push(Node::Ctrl(c));
            let model = cat.controller(&c.model);
            let pxb = model.is_some_and(|m| m.bus.bus_type == "pxb");
            facts.push(Facts {
                model,
                pxb,
                ..Facts::default()
            });
        }
        for d in devices {
            g.push(Node::Dev(d));
            let m = cat.device(&d.model);
            facts.push(Facts {
                unpluggable: m.map(|m| m.hotpluggable).unwrap_or(true),
                io: m.map(|m| m.io).unwrap_or(d.kind == BusKind::Pci),
                ..Facts::default()
            });
        }
        let mut t = Topology {
            g: Nodes(g),
            root,
            ids: StrTable::with_capacity(nodes),
            dangling: Vec::new(),
            repeated: Vec::new(),
            cat,
            kids: Vec::new(),
            kid_start: Vec::new(),
            facts,
            ctrls: plan.controllers.len(),
            root_hotplug: plan.root_hotplug.unwrap_or(cat.root.hotpluggable),
        };
        t.name_nodes();
        t.link();
        t.walk_from_root();
        t
    }

    /// Fills the id map, node by node (the root, the controllers, the devices), and the
    /// repeated ids.
    fn name_nodes(&mut self) {
        self.ids.insert(self.cat.root.bus.as_str(), self.root);
        // A node named like the root bus is a repeat only after another such node.
        let mut root_named = false;
        for i in 1..self.facts.len() {
            let n = NodeIndex::new(i);
            let id = self.g[n].id(self.cat);
            if self.ids.insert(id, n) {
                continue;
            }
            let first = self.ids.get(id).copied();
            if first != Some(self.root) || std::mem::replace(&mut root_named, true) {
                self.repeated.push(n);
            }
        }
    }

    /// The bus, slot and function of a node other than the root.
    fn plugged_at(&self, n: NodeIndex) -> (&'a str, u8, u8) {
        match self.g[n] {
            Node::Ctrl(c) => (c.bus.as_str(), c.slot, c.function),
            Node::Dev(d) => (d.bus.as_str(), d.slot, d.function),
            Node::Root => ("", 0, 0),
        }
    }

    /// Finds each node's parent (or its dangling bus), then places the children of each
    /// node as one run of `kids` sorted by address: a counting sort on the parent, then
    /// each run of more than one child sorted (most runs hold one child).
    fn link(&mut self) {
        let count = self.facts.len();
        // Children per parent, counted at the parent's index.
        let mut kid_start = vec![0u32; count + 1];
        let mut edges = 0;
        // Most nodes plug into the root bus, which keeps its name in the map (a node named
        // like it is a repeat): found without a lookup.
        let root_bus = self.cat.root.bus.as_str();
        for i in 1..count {
            let n = NodeIndex::new(i);
            let bus = self.plugged_at(n).0;
            let parent = if bus == root_bus {
                Some(&self.root)
            } else {
                self.ids.get(bus)
            };
            match parent {
                Some(&p) if matches!(self.g[p], Node::Root | Node::Ctrl(_)) => {
                    // Every node is plugged into one bus at most: one edge leads to it.
                    self.facts[i].parent = Some(p);
                    kid_start[p.index()] += 1;
                    edges += 1;
                }
                _ => self.dangling.push((n, bus)),
            }
        }
        // Each entry becomes the end of its node's run; placing the children from the last
        // node back moves it down to the run's start.
        for i in 1..=count {
            kid_start[i] += kid_start[i - 1];
        }
        let mut kids = vec![(0, 0, NodeIndex::end()); edges];
        for i in (1..count).rev() {
            let Some(p) = self.facts[i].parent else {
                continue;
            };
            let n = NodeIndex::new(i);
            let (_, slot, function) = self.plugged_at(n);
            kid_start[p.index()] -= 1;
            kids[kid_start[p.index()] as usize] = (slot, function, n);
        }
        let mut keys = Vec::new();
        for w in kid_start.windows(2).filter(|w| w[1] - w[0] > 1) {
            sort_run(&mut kids[w[0] as usize..w[1] as usize], &mut keys);
        }
        self.kids = kids;
        self.kid_start = kid_start;
    }

    /// Every node has at most one bus, so the nodes reachable from the root are exactly
    /// those whose parent chain ends there; on the way, each node's nearest expander above.
    fn walk_from_root(&mut self) {
        // Each node is pushed once at most (by its one parent; the root has none, so no
        // loop is reached from it).
        let mut stack = Vec::with_capacity(self.facts.len());
        stack.push(self.root);
        while let Some(n) = stack.pop() {
            let f = &mut self.facts[n.index()];
            f.reach = true;
            let above = if f.pxb { Some(n) } else { f.expander };
            let (a, b) = (self.kid_start[n.index()], self.kid_start[n.index() + 1]);
            for &(_, _, k) in &self.kids[a as usize..b as usize] {
                self.facts[k.index()].expander = above;
                stack.push(k);
            }
        }
    }

    /// The index in `plan.controllers` of a controller node (nodes are the root, then the
    /// controllers, then the devices, each in plan order).
    pub fn ctrl_index(&self, n: NodeIndex) -> Option<usize> {
        matches!(self.g[n], Node::Ctrl(_)).then(|| n.index() - 1)
    }

    /// The node of `plan.controllers[i]`.
    pub fn ctrl_node(&self, i: usize) -> NodeIndex {
        NodeIndex::new(1 + i)
    }

    /// The controller nodes, in plan order (the only nodes that own a bus, the root's
    /// aside).
    pub fn ctrl_nodes(&self) -> impl Iterator<Item = NodeIndex> {
        (1..=self.ctrls).map(NodeIndex::new)
    }

    /// The node of `plan.devices[i]`.
    pub fn dev_node(&self, i: usize) -> NodeIndex {
        NodeIndex::new(1 + self.ctrls + i)
    }

    /// The index in `plan.devices` of a device node.
    pub fn dev_index(&self, n: NodeIndex) -> Option<usize> {
        matches!(self.g[n], Node::Dev(_)).then(|| n.index() - 1 - self.ctrls)
    }

    /// The plan's first controller with id `id`, as a search of `plan.controllers` finds it:
    /// through the id map, which keeps the first node of each id (controllers come before
    /// devices), or, where the root bus or a device holds the id, among the controller nodes.
    pub fn controller_named(&self, id: &str) -> Option<&'a PlacedController> {
        match self.ids.get(id).map(|&n| self.g[n]) {
            Some(Node::Ctrl(c)) => Some(c),
            Some(_) => self.g.node_weights().find_map(|w| match *w {
                Node::Ctrl(c) if c.id == id => Some(c),
                _ => None,
            }),
            None => None,
        }
    }

    /// The controller model of a node, if it is a controller of a known model.
    pub fn model(&self, n: NodeIndex) -> Option<&'a ControllerModel> {
        self.facts.get(n.index()).and_then(|f| f.model)
    }

    /// The parent of a node.
    pub fn parent(&self, n: NodeIndex) -> Option<NodeIndex> {
        self.facts.get(n.index()).and_then(|f| f.parent)
    }

    /// Children with their (slot, function), sorted by address.
    pub fn children(&self, n: NodeIndex) -> Vec<(u8, u8, NodeIndex)> {
        self.kids(n).to_vec()
    }

    /// Children as a slice (see [`Topology::children`]).
    pub fn kids(&self, n: NodeIndex) -> &[(u8, u8, NodeIndex)] {
        match (
            self.kid_start.get(n.index()),
            self.kid_start.get(n.index() + 1),
        ) {
            (Some(&a), Some(&b)) => &self.kids[a as usize..b as usize],
            _ => &[],
        }
    }

    /// The bus type of the bus a node owns (`pcie-root`, `port`, `switch`, `conventional`, `pxb`).
    pub fn bus_type(&self, n: NodeIndex) -> Option<&'a str> {
        match self.g[n] {
            Node::Root => Some(self.cat.root.bus_type.as_str()),
            Node::Ctrl(_) => self.model(n).map(|m| m.bus.bus_type.as_str()),
            Node::Dev(_) => None,
        }
    }

    /// Whether a child of the bus owned by `n` can be hot-unplugged by the guest
    /// (docs/qemu.md: `pcie.0` and expander buses never, ports unless `hotplug=off`, bridges always).
    pub fn bus_hotpluggable(&self, n: NodeIndex) -> bool {
        match self.g[n] {
            Node::Root => self.root_hotplug,
            Node::Ctrl(c) => {
                HotplugControl::bus_hotpluggable(self.model(n).map(|m| m.hotplug), c.hotplug)
            }
            Node::Dev(_) => false,
        }
    }

    /// Whether `n` owns an expander's bus: `bus_type(n) == Some("pxb")`, with the
    /// controllers' answer read at the build.
    pub fn is_expander(&self, n: NodeIndex) -> bool {
        match self.g[n] {
            Node::Root => self.cat.root.bus_type == "pxb",
            Node::Ctrl(_) => self.facts[n.index()].pxb,
            Node::Dev(_) => false,
        }
    }

    /// Whether the guest can hot-unplug the device at `n`: its bus allows it and QEMU can
    /// unplug its model at all.
    pub fn device_hotpluggable(&self, n: NodeIndex) -> bool {
        if !matches!(self.g[n], Node::Dev(_)) {
            return false;
        }
        self.facts[n.index()].unpluggable
            && self.parent(n).is_some_and(|p| self.bus_hotpluggable(p))
    }

    /// Whether QEMU can hot-unplug the model of `d` ([`Catalog::model_hotpluggable`]),
    /// where `n` is the node the plan's device `d` was found at: read at the build when
    /// that node is `d`'s own, else asked of the catalog.
    pub fn model_hotpluggable(&self, n: NodeIndex, d: &PlacedDevice) -> bool {
        match self.g[n] {
            Node::Dev(x) if std::ptr::eq(x, d) => self.facts[n.index()].unpluggable,
            _ => self.cat.model_hotpluggable(&d.model),
        }
    }

    /// Ancestors, nearest first (stops at the root or on a cycle).
    pub fn ancestors(&self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut out = Vec::new();
        let mut cur = n;
        while let Some(p) = self.parent(cur) {
            if out.contains(&p) || p == n {
                break;
            }
            out.push(p);
            cur = p;
        }
        out
    }

    /// The nearest expander (`pxb` bus type) above a node.
    pub fn expander_of(&self, n: NodeIndex) -> Option<NodeIndex> {
        if !self.rooted(n) {
            return self.ancestors(n).into_iter().find(|&a| self.is_expander(a));
        }
        // Rooted: read when the graph was built.
        self.facts.get(n.index()).and_then(|f| f.expander)
    }

    /// Whether a node hangs from the root (no dangling bus, no cycle).
    pub fn rooted(&self, n: NodeIndex) -> bool {
        self.facts.get(n.index()).is_some_and(|f| f.reach)
    }

    /// Nodes below `n` (depth first, in address order), not including `n`.
    pub fn descendants(&self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut out = Vec::new();
        let mut seen = vec![false; self.facts.len()];
        let mut stack: Vec<NodeIndex> = self.kids(n).iter().rev().map(|c| c.2).collect();
        while let Some(x) = stack.pop() {
            if std::mem::replace(&mut seen[x.index()], true) {
                continue;
            }
            out.push(x);
            stack.extend(self.kids(x).iter().rev().map(|c| c.2));
        }
        out
    }

    /// Whether the controller at `n` takes a guest bus number.
    pub fn uses_bus_number(&self, n: NodeIndex) -> bool {
        self.model(n).map(|m| m.uses_bus_number).unwrap_or(false)
    }

    /// I/O windows (rule R-IO) the controller at `n` needs from its parent: 0 when nothing
    /// below has an I/O BAR, else one window, or the sum of its child controllers' windows
    /// when that is larger (a switch's downstream ports each take one).
    pub fn io_windows(&self, n: NodeIndex) -> u32 {
        let Node::Ctrl(_) = self.g[n] else { return 0 };
        let mut own_io = false;
        let mut below = 0;
        for &(_, _, c) in self.kids(n) {
            match self.g[c] {
                Node::Dev(_) => own_io |= self.facts[c.index()].io,
                Node::Ctrl(_) => below += self.io_windows(c),
                Node::Root => {}
            }
        }
        if own_io {
            below.max(1)
        } else {
            below
        }
    }

    /// I/O windows the whole topology needs: the sum over controllers on the root bus and on
    /// expander buses.
    pub fn total_io_windows(&self) -> u32 {
        // The windows of the controllers on bus `b` that are no expanders (a child is never
        // the root: the build's `pxb` of a child is its `is_expander`).
        let on = |b: NodeIndex| -> u32 {
            self.kids(b)
                .iter()
                .filter(|&&(_, _, c)| !self.facts[c.index()].pxb)
                .map(|&(_, _, c)| self.io_windows(c))
                .sum()
        };
        let root = on(self.root);
        // The root counts again where it is an expander itself; devices are none, so only
        // the controllers are asked.
        let mut total = if self.is_expander(self.root) {
            2 * root
        } else {
            root
        };
        for n in self.ctrl_nodes() {
            let f = &self.facts[n.index()];
            if f.pxb && f.reach {
                total += on(n);
            }
        }
        total
    }
}

/// The pinned part of a request, as a partial plan.
pub(crate) fn pinned_plan(req: &Request, cat: &Catalog) -> Plan {
    let controllers = req
        .controllers
        .iter()
        .map(|c| {
            let m = cat.controller(&c.model);
            let is_port = m
                .map(|m| m.props.iter().any(|p| p == "hotplug"))
                .unwrap_or(false);
            PlacedController {
                id: c.id.clone(),
                model: c.model.clone(),
                driver: Text::from(m.map_or(c.model.as_str(), |m| m.qemu.as_str())),
                bus: c.address.bus.clone(),
                slot: c.address.slot,
                function: c.address.function,
                multifunction: false,
                chassis: c.chassis,
                port: c.port,
                hotplug: if is_port {
                    Some(c.hotplug.unwrap_or(true))
                } else {
                    c.hotplug
                },
                bus_nr: c.bus_nr,
                numa_node: c.numa_node,
                io_reserve: c.io_reserve,
                added: false,
            }
        })
        .collect();
    let devices = req
        .devices
        .iter()
        .filter_map(|d| {
            let a = d.address.as_ref()?;
            Some(PlacedDevice {
                id: d.id.clone(),
                model: d.model.clone(),
                kind: req.kind_of(cat, d),
                bus: a.bus.clone(),
                slot: a.slot,
                function: a.function,
                multifunction: false,
                hotpluggable: false,
                hotplug: req.hotplug_of(d),
                group: d.group.clone(),
                numa_node: d.numa_node,
            })
        })
        .collect();
    Plan {
        name: req.name.clone(),
        machine: req.machine.clone(),
        firmware: req.firmware,
        // The guest's own root hotplug, when the request pins it (pc, PC-ROOT-HP).
        root_hotplug: req.root_hotplug,
        cost: 0,
        optimal: false,
        guest_visible_changes: None,
        changes: None,
        notes: Vec::new(),
        controllers,
        devices,
    }
}

/// Small hand-built plans and requests for the unit tests of the topology, the planner's
/// passes and the validator.
#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests;
