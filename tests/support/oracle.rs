//! The optimality oracle: an exhaustive search written from docs/rules.md alone (see
//! `tests/oracle.rs` for what it covers and how it is compared with the planner; the
//! held-out acceptance run uses it too). The adoption oracle (`adopt_oracle.rs`) runs the
//! same search with positions: each place a new bus can go carries the set of existing
//! units whose firmware bus number it changes (G-ID), and existing empty ports may flip
//! (G-FLIP); plain plans have no such sets and no flips.
#![allow(dead_code)]

// A file of its own, found from here both as `support::oracle` and as the bench's module.
#[path = "spots.rs"]
mod spots;

use std::collections::{BTreeSet, HashMap};

use pciplan::{Catalog, ControllerRequest, DeviceRequest, Hotplug, OffStrategy, Policy, Request};
use spots::Spots;

// Numbers from docs/rules.md.
const FUNCTIONS: u32 = 8; // R-FUNC, R-RP-PACK, R-INT-SLOT
const PXB_PORTS: u32 = 32 * 8; // R-PXB: slots 0..31, 8 root ports each
const SWITCH_PORTS: u32 = 32; // R-SWITCH: slots 0..31
const BRIDGE_SLOTS: u32 = 31; // R-BRIDGE: slots 1..31
/// How deep switches may nest below switches in the search.
const SWITCH_DEPTH: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pcie,
    Pci,
    /// A group with both kinds: only an integrated slot takes it.
    Mixed,
}

#[derive(Debug, Clone)]
struct Unit {
    kind: Kind,
    hp: Hotplug,
    numa: Option<u32>,
    grouped: bool,
    io: bool,
    /// Some member is a model QEMU never hot-unplugs (catalog `hotpluggable: false`): `on`
    /// cannot be met.
    some_fixed: bool,
    /// Every member is such a model: `off` holds anywhere.
    all_fixed: bool,
    /// Some member is a model QEMU only takes on the root bus (catalog `root_only`).
    root_only: bool,
}

/// One PCI hierarchy with its own bus numbers: index 0 is `pcie.0`'s, the others are
/// expanders (`pxb-pcie`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Tree {
    numa: Option<u32>,
    bus_nr: Option<u32>,
    /// Bus numbers its controllers take (an expander counts its own root bus).
    buses: u32,
    /// Free root-port positions (expanders only).
    free: Spots,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Port {
    tree: usize,
    hotplug: bool,
    /// An existing port of an adopted guest: its `hotplug` may change, at one flip.
    flippable: bool,
    /// The units a bridge or switch plugged into it renumbers.
    mask: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Bridge {
    tree: usize,
    free: u32,
    /// Already holds a device with an I/O BAR (so it already takes an I/O window).
    io: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Switch {
    tree: usize,
    /// Free downstream-port slots.
    free: Spots,
}

/// A topology, up to the symmetries that do not change the cost.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct State {
    cost: u32,
    /// Existing ports whose `hotplug` changed (adoption only).
    flips: u32,
    /// Existing units renumbered by the buses added so far (adoption only).
    renum: u32,
    /// Empty usable `pcie.0` slots.
    root_slots: Spots,
    /// Free functions in `pcie.0` slots holding only root ports.
    rp_functions: Spots,
    /// Free functions in slots of packed integrated devices.
    pack_functions: u32,
    /// Of those, function 0 of kept slots whose device there moved (R-FUNC): a packed
    /// device placed anew must fill each (adoption only).
    holes: u32,
    trees: Vec<Tree>,
    /// Empty ports (existing ones; new ones are made when needed).
    ports: Vec<Port>,
    bridges: Vec<Bridge>,
    switches: Vec<Switch>,
    /// I/O windows taken.
    io: u32,
}

impl State {
    fn canonical(mut self) -> State {
        self.ports.sort();
        self.bridges.sort();
        self.switches.sort();
        self
    }
    fn buses(&self) -> u32 {
        self.trees.iter().map(|t| t.buses).sum()
    }
    /// A new bus-using controller in `tree`, at a place that renumbers `mask`.
    fn add_bus(&mut self, tree: usize, mask: u32) {
        self.cost += 1;
        self.trees[tree].buses += 1;
        self.renum |= mask;
    }
}

/// What a unit (or bridge, switch, spare) asks of a port's hotplug setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Hot,
    Off,
    Either,
}

impl Need {
    fn takes(self, hotplug: bool) -> bool {
        match self {
            Need::Hot => hotplug,
            Need::Off => !hotplug,
            Need::Either => true,
        }
    }
}

/// An adoption's score (O-ADOPT): guest-visible changes, controllers added, ports flipped.
/// A plain plan's is `(0, cost, 0)`.
pub type Score = (u32, u32, u32);

/// What an adoption search knows besides its request (whose kept devices are pinned and
/// moved ones not): which kept units a new bus renumbers where, what each unit weighs, and
/// what was changed before the search.
pub struct Positions<'a> {
    /// The kept units (bit mask) a new bus plugged into `bus` at `slot`.`function` renumbers.
    pub mask_at: &'a dyn Fn(&str, u8, u8) -> u32,
    /// Devices of the unit of each mask bit.
    pub weights: Vec<u32>,
    /// Devices moved before the search.
    pub moved: u32,
    /// Ports flipped before the search (those of kept units).
    pub flips: u32,
}

struct Oracle<'a> {
    units: Vec<Unit>,
    policy: &'a Policy,
    /// NUMA nodes the request mentions (an added expander may take any of them).
    nodes: Vec<u32>,
    bus_max: u32,
    io_max: u32,
    /// Devices per renumbered unit bit (adoption).
    weights: Vec<u32>,
    /// Devices moved before the search (adoption).
    moved: u32,
    best: Option<Score>,
    /// Per unit, spares left and state (less cost and flips): the least (cost, flips) seen.
    memo: HashMap<(usize, u32, State), (u32, u32)>,
    /// Search steps left before giving up (`None`: no limit).
    budget: Option<u64>,
}

/// The minimum number of added controllers, or `None` when nothing fits.
pub fn oracle_min(req: &Request, cat: &Catalog) -> Option<u32> {
    oracle_min_within(req, cat, None).unwrap_or(None)
}

/// [`oracle_min`] within `budget` search steps: `Err(())` when the search did not finish.
pub fn oracle_min_within(
    req: &Request,
    cat: &Catalog,
    budget: Option<u64>,
) -> Result<Option<u32>, ()> {
    let start = existing(req, cat, &|_, _, _| 0, false);
    let mut o = Oracle::new(req, cat, Vec::new(), 0, None, budget);
    o.search(0, start);
    if o.budget == Some(0) {
        return Err(());
    }
    Ok(o.best.map(|b| b.1))
}

/// The least [`Score`] of placing `req`'s unpinned units (and spares) on what it pins, where
/// new buses renumber as `pos` says and the request's empty existing ports may flip; `None`
/// when nothing fits or nothing beats `bound`.
pub fn adopt_search(
    req: &Request,
    cat: &Catalog,
    pos: &Positions,
    bound: Option<Score>,
) -> Option<Score> {
    let mut start = existing(req, cat, pos.mask_at, true);
    start.flips = pos.flips;
    let mut o = Oracle::new(req, cat, pos.weights.clone(), pos.moved, bound, None);
    o.search(0, start);
    o.best.filter(|&b| bound.is_none_or(|c| b < c))
}

impl<'a> Oracle<'a> {
    fn new(
        req: &'a Request,
        cat: &Catalog,
        weights: Vec<u32>,
        moved: u32,
        best: Option<Score>,
        budget: Option<u64>,
    ) -> Oracle<'a> {
        let mut nodes: Vec<u32> = req
            .devices
            .iter()
            .filter_map(|d| d.numa_node)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        nodes.extend(
            req.controllers
                .iter()
                .filter_map(|c| c.numa_node)
                .filter(|n| !nodes.contains(n))
                .collect::<Vec<_>>(),
        );
        Oracle {
            units: units(req, cat),
            policy: &req.policy,
            nodes,
            bus_max: cat.bus_numbers.max,
            io_max: cat.io_budget(req.firmware).map_or(0, |b| b.windows),
            weights,
            moved,
            best,
            memo: HashMap::new(),
            budget,
        }
    }

    fn score(&self, s: &State) -> Score {
        let renumbered: u32 = (0..self.weights.len())
            .filter(|&u| s.renum & (1 << u) != 0)
            .map(|u| self.weights[u])
            .sum();
        (self.moved + renumbered, s.cost, s.flips)
    }
}

/// Units from the request's unpinned devices, groups merged (request order).
fn units(req: &Request, cat: &Catalog) -> Vec<Unit> {
    // Read as JSON so that the oracle does not depend on which model flags the catalog type has.
    let json = serde_json::to_value(cat).expect("catalog serialises");
    let flag = |model: &str, name: &str| json["devices"][model][name].as_bool();
    let mut out: Vec<Unit> = Vec::new();
    let mut group_at: HashMap<&str, usize> = HashMap::new();
    for d in req.devices.iter().filter(|d| d.address.is_none()) {
        let model = cat.device(&d.model);
        let kind = match d.bus_kind.or(model.map(|m| m.kind)) {
            Some(pciplan::BusKind::Pci) => Kind::Pci,
            _ => Kind::Pcie,
        };
        let io = model.map(|m| m.io).unwrap_or(kind == Kind::Pci);
        let hp = d.hotplug.unwrap_or(req.policy.default_hotplug);
        let fixed = flag(&d.model, "hotpluggable") == Some(false);
        let root_only = flag(&d.model, "root_only") == Some(true);
        if let Some(&i) = d.group.as_deref().and_then(|g| group_at.get(g)) {
            let u: &mut Unit = &mut out[i];
            if u.kind != kind {
                u.kind = Kind::Mixed;
            }
            if u.hp == Hotplug::Any {
                u.hp = hp;
            }
            u.io |= io;
            u.some_fixed |= fixed;
            u.all_fixed &= fixed;
            u.root_only |= root_only;
            continue;
        }
        if let Some(g) = &d.group {
            group_at.insert(g, out.len());
        }
        out.push(Unit {
            kind,
            hp,
            numa: d.numa_node,
            grouped: d.group.is_some(),
            io,
            some_fixed: fixed,
            all_fixed: fixed,
            root_only,
        });
    }
    // `off` devices QEMU never unplugs are protected wherever they sit.
    for u in &mut out {
        if u.all_fixed && u.hp == Hotplug::Off {
            u.hp = Hotplug::Any;
        }
    }
    out
}

pub fn is_port(model: &str) -> bool {
    matches!(model, "pcie-root-port" | "ioh3420" | "xio3130-downstream")
}

/// What the request's pinned controllers and devices already hold; `mask_at` says what a
/// new bus at each free place renumbers, and `adopting` that empty ports may flip and that
/// slots of pinned integrated devices take more with `pack_integrated` (R-INT-SLOT).
///
/// The plain oracle does not pack beside pinned devices, because the planner does not: a
/// gap against R-INT-SLOT, left for the planner (with two root slots, `pack_integrated`,
/// `hotplug_off: integrated` and default `off`, `d0` pinned at pcie.0:01.0, `d1` with NUMA
/// node 0 and `d2` free: `d2` fits at 01.1 and `d1` behind an expander in slot 2, cost 2,
/// but the planner says R-ROOT).
fn existing(
    req: &Request,
    cat: &Catalog,
    mask_at: &dyn Fn(&str, u8, u8) -> u32,
    adopting: bool,
) -> State {
    let (flippable, pack_pinned) = (adopting, adopting);
    let io_model = |d: &DeviceRequest| {
        cat.device(&d.model)
            .map(|m| m.io)
            .unwrap_or(d.bus_kind == Some(pciplan::BusKind::Pci))
    };
    let ctrl_children = |bus: &str| -> Vec<&ControllerRequest> {
        req.controllers
            .iter()
            .filter(|c| c.address.bus == bus)
            .collect()
    };
    let dev_children = |bus: &str| -> Vec<&DeviceRequest> {
        req.devices
            .iter()
            .filter(|d| d.address.as_ref().map(|a| a.bus == bus).unwrap_or(false))
            .collect()
    };
    let mut s = State {
        cost: 0,
        flips: 0,
        renum: 0,
        root_slots: Spots::default(),
        rp_functions: Spots::default(),
        pack_functions: 0,
        holes: 0,
        trees: vec![Tree {
            numa: None,
            bus_nr: None,
            buses: 0,
            free: Spots::default(),
        }],
        ports: vec![],
        bridges: vec![],
        switches: vec![],
        io: 0,
    };

    // pcie.0 slots (R-ROOT): empty, root ports only, or taken.
    let root = cat.root.bus.as_str();
    for slot in cat.root.slots.min..=cat.root.slots.max {
        if cat.root.reserved_slots.contains(&slot) {
            continue;
        }
        let ctrls: Vec<_> = ctrl_children(root)
            .into_iter()
            .filter(|c| c.address.slot == slot)
            .collect();
        let here: Vec<_> = dev_children(root)
            .into_iter()
            .filter(|d| d.address.as_ref().map(|a| a.slot) == Some(slot))
            .collect();
        let devs = here.len();
        if ctrls.is_empty() && devs > 0 && req.policy.pack_integrated && pack_pinned {
            // R-INT-SLOT: unrelated integrated endpoints share a slot, up to 8.
            let packable = here.iter().all(|d| d.group.is_none());
            if packable {
                s.pack_functions += FUNCTIONS - devs as u32;
            }
            // R-FUNC: kept devices above an empty function 0 need a packed device there
            // (never filled where the slot's devices are not packable).
            let hole = !here
                .iter()
                .any(|d| d.address.as_ref().is_some_and(|a| a.function == 0));
            if hole {
                s.holes += if packable { 1 } else { 1000 };
            }
        }
        if ctrls.is_empty() && devs == 0 {
            s.root_slots.add(mask_at(root, slot, 0), 1);
        } else if devs == 0
            && ctrls
                .iter()
                .all(|c| matches!(c.model.as_str(), "pcie-root-port" | "ioh3420"))
        {
            for f in 0..FUNCTIONS as u8 {
                if !ctrls.iter().any(|c| c.address.function == f) {
                    s.rp_functions.add(mask_at(root, slot, f), 1);
                }
            }
        }
    }
    let w = Walk {
        req,
        io_model: &io_model,
        mask_at,
        flippable,
    };
    for c in ctrl_children(root) {
        w.walk(&mut s, c, 0);
    }
    s
}

/// What [`existing`] reads while it walks the controllers from the root, tree by tree.
struct Walk<'a> {
    req: &'a Request,
    io_model: &'a dyn Fn(&DeviceRequest) -> bool,
    mask_at: &'a dyn Fn(&str, u8, u8) -> u32,
    flippable: bool,
}

impl Walk<'_> {
    fn walk(&self, s: &mut State, c: &ControllerRequest, tree: usize) {
        let (req, io_model, mask_at) = (self.req, self.io_model, self.mask_at);
        let kids: Vec<&ControllerRequest> = req
            .controllers
            .iter()
            .filter(|k| k.address.bus == c.id)
            .collect();
        let devs: Vec<&DeviceRequest> = req
            .devices
            .iter()
            .filter(|d| d.address.as_ref().map(|a| a.bus == c.id).unwrap_or(false))
            .collect();
        let used_slots: BTreeSet<u8> = kids
            .iter()
            .map(|k| k.address.slot)
            .chain(
                devs.iter()
                    .filter_map(|d| d.address.as_ref().map(|a| a.slot)),
            )
            .collect();
        let mut tree = tree;
        match c.model.as_str() {
            m if is_port(m) => {
                s.trees[tree].buses += 1;
                if kids.is_empty() && devs.is_empty() {
                    s.ports.push(Port {
                        tree,
                        hotplug: c.hotplug.unwrap_or(true),
                        flippable: self.flippable,
                        mask: mask_at(&c.id, 0, 0),
                    });
                }
                if devs.iter().any(|d| io_model(d)) {
                    s.io += 1;
                }
            }
            "x3130-upstream" => {
                s.trees[tree].buses += 1;
                let mut free = Spots::default();
                for slot in (0..SWITCH_PORTS as u8).filter(|s| !used_slots.contains(s)) {
                    free.add(mask_at(&c.id, slot, 0), 1);
                }
                s.switches.push(Switch { tree, free });
            }
            "pcie-pci-bridge" => {
                s.trees[tree].buses += 1;
                let io = devs.iter().any(|d| io_model(d));
                s.io += u32::from(io);
                s.bridges.push(Bridge {
                    tree,
                    free: BRIDGE_SLOTS - used_slots.len() as u32,
                    io,
                });
            }
            "pxb-pcie" => {
                let mut free = Spots::default();
                for slot in 0..32u8 {
                    let here: Vec<_> = kids.iter().filter(|k| k.address.slot == slot).collect();
                    if here
                        .iter()
                        .all(|k| matches!(k.model.as_str(), "pcie-root-port" | "ioh3420"))
                    {
                        for f in 0..FUNCTIONS as u8 {
                            if !here.iter().any(|k| k.address.function == f) {
                                free.add(mask_at(&c.id, slot, f), 1);
                            }
                        }
                    }
                }
                s.trees.push(Tree {
                    numa: c.numa_node,
                    bus_nr: c.bus_nr.map(u32::from),
                    buses: 1,
                    free,
                });
                tree = s.trees.len() - 1;
            }
            other => panic!("oracle does not know controller model {other}"),
        }
        for k in kids {
            self.walk(s, k, tree);
        }
    }
}

impl Oracle<'_> {
    fn search(&mut self, i: usize, s: State) {
        self.place_spares(i, self.policy.spare_ports, s);
    }

    /// Places unit `i` (and the rest), then the spares.
    fn place_spares(&mut self, i: usize, spares: u32, s: State) {
        match &mut self.budget {
            Some(0) => return,
            Some(b) => *b -= 1,
            None => {}
        }
        // Every part of the score only grows as the search goes on, so a state scoring no
        // better than the best complete one cannot lead to a better one.
        if self.best.is_some_and(|b| self.score(&s) >= b)
            || s.buses() > self.bus_max
            || s.io > self.io_max
        {
            return;
        }
        let s = s.canonical();
        let key = (
            i,
            spares,
            State {
                cost: 0,
                flips: 0,
                ..s.clone()
            },
        );
        if self.memo.get(&key).is_some_and(|&c| c <= (s.cost, s.flips)) {
            return;
        }
        self.memo.insert(key, (s.cost, s.flips));
        if i < self.units.len() {
            let u = self.units[i].clone();
            for next in self.unit_options(&u, &s) {
                self.place_spares(i + 1, spares, next);
            }
        } else if spares > 0 {
            // O-SPARE: an empty hot-pluggable port anywhere.
            for (next, _, _) in self.ports(&s, None, Need::Hot, 0) {
                self.place_spares(i, spares - 1, next);
            }
        } else if s.holes == 0 && bus_layout_fits(&s.trees, self.bus_max) {
            self.best = Some(self.score(&s));
        }
    }

    /// Every way to place one unit.
    fn unit_options(&self, u: &Unit, s: &State) -> Vec<State> {
        let mut out = Vec::new();
        let off = self.policy.hotplug_off;
        if u.some_fixed && u.hp == Hotplug::On {
            return out; // D-ON cannot be met anywhere
        }
        // Integrated (R-INTEGRATED, R-INT-SLOT, D-OFF, D-ON, D-NUMA).
        let integrated_ok = u.numa.is_none()
            && u.hp != Hotplug::On
            && (u.hp != Hotplug::Off || off != OffStrategy::Port);
        if integrated_ok {
            if self.policy.pack_integrated && !u.grouped {
                if s.pack_functions > 0 {
                    let mut n = s.clone();
                    n.pack_functions -= 1;
                    n.holes = n.holes.saturating_sub(1);
                    out.push(n);
                }
                // Which empty slot it takes matters only for what a new port there would
                // renumber later.
                for m in s.root_slots.masks() {
                    let mut n = s.clone();
                    n.root_slots.take(m);
                    n.pack_functions += FUNCTIONS - 1;
                    out.push(n);
                }
            } else {
                for m in s.root_slots.masks() {
                    let mut n = s.clone();
                    n.root_slots.take(m);
                    out.push(n);
                }
            }
        }
        if u.root_only {
            return out;
        }
        // A port (R-RP, D-ON, D-OFF).
        if u.kind == Kind::Pcie {
            let need = match u.hp {
                Hotplug::On => Some(Need::Hot),
                Hotplug::Off => (off != OffStrategy::Integrated).then_some(Need::Off),
                Hotplug::Any => Some(Need::Either),
            };
            if let Some(need) = need {
                for (mut n, _, _) in self.ports(s, u.numa, need, 0) {
                    n.io += u32::from(u.io);
                    out.push(n);
                }
            }
        }
        // A bridge slot (R-BRIDGE, D-ON).
        if u.kind == Kind::Pci && u.hp != Hotplug::Off {
            for (k, b) in s.bridges.iter().enumerate() {
                if b.free > 0 && self.tree_ok(s, b.tree, u.numa) {
                    let mut n = s.clone();
                    n.bridges[k].free -= 1;
                    if u.io && !b.io {
                        n.bridges[k].io = true;
                        n.io += 1;
                    }
                    out.push(n);
                }
            }
            for (mut n, tree, mask) in self.ports(s, u.numa, Need::Either, 0) {
                n.add_bus(tree, mask);
                n.bridges.push(Bridge {
                    tree,
                    free: BRIDGE_SLOTS - 1,
                    io: u.io,
                });
                n.io += u32::from(u.io);
                out.push(n);
            }
        }
        out
    }

    /// Whether something with NUMA node `numa` may sit in `tree` (D-NUMA).
    fn tree_ok(&self, s: &State, tree: usize, numa: Option<u32>) -> bool {
        numa.is_none() || s.trees[tree].numa == numa
    }

    /// Every way to get one port for something with NUMA node `numa`: the new state (with
    /// the port taken), the tree the port is in, and what a bus plugged into it renumbers.
    fn ports(
        &self,
        s: &State,
        numa: Option<u32>,
        need: Need,
        depth: u32,
    ) -> Vec<(State, usize, u32)> {
        let mut out = Vec::new();
        // An existing empty port: with its own setting when that will do, else (an existing
        // port of an adopted guest) flipped (G-FLIP).
        let mut seen = BTreeSet::new();
        for (k, p) in s.ports.iter().enumerate() {
            if !self.tree_ok(s, p.tree, numa) || !seen.insert(p.clone()) {
                continue;
            }
            let hotplug = if need.takes(p.hotplug) {
                p.hotplug
            } else if p.flippable {
                !p.hotplug
            } else {
                continue;
            };
            let mut n = s.clone();
            n.ports.remove(k);
            n.flips += u32::from(hotplug != p.hotplug);
            out.push((n, p.tree, p.mask));
        }
        // A new root port on pcie.0 (R-RP-PACK): beside root ports, or in an empty slot.
        if numa.is_none() {
            for m in s.rp_functions.masks() {
                let mut n = s.clone();
                n.rp_functions.take(m);
                n.add_bus(0, m);
                out.push((n, 0, m));
            }
            for m in s.root_slots.masks() {
                let mut n = s.clone();
                n.root_slots.take(m);
                n.rp_functions.add(m, FUNCTIONS - 1);
                n.add_bus(0, m);
                out.push((n, 0, m));
            }
        }
        // A new root port on an expander (R-PXB).
        for t in 1..s.trees.len() {
            if !self.tree_ok(s, t, numa) {
                continue;
            }
            for m in s.trees[t].free.masks() {
                let mut n = s.clone();
                n.trees[t].free.take(m);
                n.add_bus(t, m);
                out.push((n, t, m));
            }
        }
        // A new expander (any NUMA node, or the one asked) with a root port on it: it
        // numbers its own buses from its bus_nr, so it renumbers nothing (R-BUSNR).
        let choices: Vec<Option<u32>> = match numa {
            Some(m) => vec![Some(m)],
            None => std::iter::once(None)
                .chain(self.nodes.iter().map(|&m| Some(m)))
                .collect(),
        };
        for m in s.root_slots.masks() {
            for &node in &choices {
                let mut n = s.clone();
                n.root_slots.take(m);
                n.cost += 1;
                n.trees.push(Tree {
                    numa: node,
                    bus_nr: None,
                    buses: 1,
                    free: Spots::of(0, PXB_PORTS - 1),
                });
                let t = n.trees.len() - 1;
                n.add_bus(t, 0);
                out.push((n, t, 0));
            }
        }
        // A new downstream port on an existing or new switch (R-SWITCH).
        for (k, sw) in s.switches.iter().enumerate() {
            if !self.tree_ok(s, sw.tree, numa) {
                continue;
            }
            for m in sw.free.masks() {
                let mut n = s.clone();
                n.switches[k].free.take(m);
                n.add_bus(sw.tree, m);
                out.push((n, sw.tree, m));
            }
        }
        if depth < SWITCH_DEPTH {
            for (mut n, tree, m) in self.ports(s, numa, Need::Either, depth + 1) {
                n.add_bus(tree, m); // upstream port
                n.add_bus(tree, m); // the downstream port asked for
                n.switches.push(Switch {
                    tree,
                    free: Spots::of(m, SWITCH_PORTS - 1),
                });
                out.push((n, tree, m));
            }
        }
        out
    }
}

/// R-BUSNR: `pcie.0`'s hierarchy takes 1..B0; each expander takes `bus_nr..bus_nr+size-1`,
/// all ranges disjoint, above `pcie.0`'s, within the budget. Pinned `bus_nr` stay; added
/// expanders go into the gaps.
fn bus_layout_fits(trees: &[Tree], max: u32) -> bool {
    let below_root = trees[0].buses;
    let mut fixed: Vec<(u32, u32)> = trees[1..]
        .iter()
        .filter_map(|t| t.bus_nr.map(|n| (n, n + t.buses - 1)))
        .collect();
    fixed.sort();
    let mut gaps = Vec::new();
    let mut lo = below_root + 1;
    for &(a, b) in &fixed {
        if a < lo {
            return false;
        }
        gaps.push(a - lo);
        lo = b + 1;
    }
    if lo > max + 1 {
        return false;
    }
    gaps.push(max + 1 - lo);
    let sizes: Vec<u32> = trees[1..]
        .iter()
        .filter(|t| t.bus_nr.is_none())
        .map(|t| t.buses)
        .collect();
    fn fit(sizes: &[u32], gaps: &mut Vec<u32>) -> bool {
        let Some((&first, rest)) = sizes.split_first() else {
            return true;
        };
        for g in 0..gaps.len() {
            if gaps[g] >= first {
                gaps[g] -= first;
                if fit(rest, gaps) {
                    return true;
                }
                gaps[g] += first;
            }
        }
        false
    }
    fit(&sizes, &mut gaps)
}
