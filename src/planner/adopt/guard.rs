//! Where a new bus renumbers existing devices (G-ID).
//!
//! The firmware numbers the buses below `pcie.0` depth first in slot/function order from 1,
//! and those below an expander from its `bus_nr`. A port, bridge or switch added at some
//! position takes the next number there, and every bus after it in that order moves up by
//! one: the devices on those buses get a new bus number (a new Linux name, a new
//! `/dev/disk/by-path`). The guard reads, from the existing guest, which existing units a
//! new bus at each free position would renumber, and keeps the positions that renumber
//! nothing for new controllers; free `pcie.0` slots that do renumber are ordered latest
//! first, with the units each would renumber, for the program to price.

use std::collections::BTreeSet;

use petgraph::stable_graph::NodeIndex;
use petgraph::visit::NodeIndexable;

use super::super::World;
use crate::topology::{Node, Topology};
use crate::Text;

/// What a new bus may renumber, read from the existing guest.
#[derive(Debug, Default)]
pub(super) struct Guard {
    /// Free `pcie.0` slots where a new port renumbers nothing, ascending.
    pub late: Vec<u8>,
    /// `pcie.0` slots existing devices hold where a new port renumbers nothing: a port may
    /// take one when its devices move.
    pub late_freed: Vec<u8>,
    /// The other free slots, latest first, with the existing units a new port there
    /// renumbers (indices into the adoption's units).
    pub early: Vec<(u8, Vec<usize>)>,
    /// Free root-port functions of `pcie.0` slots that renumber nothing.
    late_partial: BTreeSet<(u8, u8)>,
    /// Free expander positions that renumber nothing.
    pxb_ok: BTreeSet<(Text, u8, u8)>,
    /// Free switch positions that renumber nothing.
    upstream_ok: BTreeSet<(Text, u8)>,
    /// Free ports where a bridge or switch would renumber existing units.
    endpoint_only: BTreeSet<Text>,
}

/// The existing guest's topology in depth-first order, and each unit's bus.
struct Order<'t, 'a> {
    t: &'t Topology<'a>,
    /// Depth-first position of each node (the root has none).
    pos: Positions,
    /// Per node index, the depth-first position just after its subtree.
    end: Vec<usize>,
    /// Per existing unit whose bus can be renumbered: its index, the numbering domain of
    /// its bus and the bus's depth-first position.
    anchors: Vec<(usize, Option<NodeIndex>, usize)>,
}

/// Depth-first position of each node, by node index (the root and unreachable nodes have
/// none).
struct Positions(Vec<Option<usize>>);

impl Positions {
    fn get(&self, n: NodeIndex) -> Option<usize> {
        self.0.get(n.index()).copied().flatten()
    }
}

impl Order<'_, '_> {
    /// The numbering domain of bus `b`: `None` for `pcie.0`'s, else its expander.
    fn domain(&self, b: NodeIndex) -> Option<NodeIndex> {
        if b == self.t.root {
            return None;
        }
        if self.t.bus_type(b) == Some("pxb") {
            return Some(b);
        }
        self.t.expander_of(b)
    }

    /// The numbering domain of a new bus plugged into bus `b` at `slot.function`, and the
    /// depth-first position from which the existing buses of that domain are renumbered.
    fn from(&self, b: NodeIndex, slot: u8, function: u8) -> (Option<NodeIndex>, usize) {
        let t = self.t;
        let after_subtree = || match self.pos.get(b) {
            Some(_) => self.end.get(b.index()).copied().unwrap_or(usize::MAX),
            None => usize::MAX,
        };
        let key = t
            .kids(b)
            .iter()
            .find(|&&(s, f, _)| (s, f) > (slot, function))
            .and_then(|k| self.pos.get(k.2))
            .unwrap_or_else(after_subtree);
        (self.domain(b), key)
    }

    /// Existing units whose bus number changes when a new bus is plugged into bus `b` at
    /// `slot.function`.
    fn renumbered(&self, b: NodeIndex, slot: u8, function: u8) -> Vec<usize> {
        let (domain, key) = self.from(b, slot, function);
        self.anchors
            .iter()
            .filter(|&&(_, d, p)| d == domain && p >= key)
            .map(|&(u, _, _)| u)
            .collect()
    }

    /// Whether [`Order::renumbered`] is empty, without listing the units.
    fn renumbers_nothing(&self, b: NodeIndex, slot: u8, function: u8) -> bool {
        let (domain, key) = self.from(b, slot, function);
        !self
            .anchors
            .iter()
            .any(|&(_, d, p)| d == domain && p >= key)
    }
}

impl Guard {
    /// Reads the guard of the existing guest `t` (every unit where it is), whose units
    /// sit on the buses of `anchors`, for the free positions `w` offers.
    pub fn read(t: &Topology, anchors: Vec<Option<NodeIndex>>, w: &World) -> Guard {
        let order = t.descendants(t.root);
        let mut pos = Positions(vec![None; t.g.node_bound()]);
        for (i, &n) in order.iter().enumerate() {
            pos.0[n.index()] = Some(i);
        }
        // Subtree sizes bottom up (children come after their parent in depth-first order).
        let mut size = vec![1usize; t.g.node_bound()];
        for &n in order.iter().rev() {
            let below: usize = t.kids(n).iter().map(|k| size[k.2.index()]).sum();
            size[n.index()] = 1 + below;
        }
        let mut end = vec![usize::MAX; t.g.node_bound()];
        for (i, &n) in order.iter().enumerate() {
            end[n.index()] = i + size[n.index()];
        }
        let mut o = Order {
            t,
            pos,
            end,
            anchors: Vec::new(),
        };
        // An expander's own bus keeps its bus_nr: what sits on it is never renumbered.
        o.anchors = anchors
            .iter()
            .enumerate()
            .filter_map(|(u, a)| a.map(|a| (u, a)))
            .filter(|&(_, a)| t.bus_type(a) != Some("pxb"))
            .filter_map(|(u, a)| Some((u, o.domain(a), o.pos.get(a)?)))
            .collect();
        let used: BTreeSet<u8> = t.kids(t.root).iter().map(|k| k.0).collect();
        let mut g = Guard::default();
        for &s in w.root_free.iter() {
            let r = o.renumbered(t.root, s, 0);
            match (used.contains(&s), r.is_empty()) {
                (false, true) => g.late.push(s),
                (false, false) => g.early.push((s, r)),
                // Free once its devices move (the free guest offers only such slots).
                (true, true) => g.late_freed.push(s),
                (true, false) => {}
            }
        }
        g.early.reverse();
        g.late_partial = w
            .root_partial
            .iter()
            .copied()
            .filter(|&(s, f)| o.renumbers_nothing(t.root, s, f))
            .collect();
        let node = |id: &str| t.ids.get(id).copied();
        g.pxb_ok = w
            .pxb_positions
            .iter()
            .flatten()
            .filter(|(b, s, f)| node(b).is_some_and(|n| o.renumbers_nothing(n, *s, *f)))
            .cloned()
            .collect();
        g.upstream_ok = w
            .upstream_slots
            .iter()
            .filter(|(b, s)| node(b).is_some_and(|n| o.renumbers_nothing(n, *s, 0)))
            .cloned()
            .collect();
        g.endpoint_only = w
            .ports
            .iter()
            .filter(|p| node(&p.id).is_some_and(|n| !o.renumbers_nothing(n, 0, 0)))
            .map(|p| p.id.clone())
            .collect();
        g
    }

    /// Restricts what `w` offers to positions that renumber nothing, and orders the free
    /// `pcie.0` slots for new root ports (late ones, then early ones latest first).
    pub fn apply(&self, w: &mut World) {
        w.root_partial.retain(|p| self.late_partial.contains(p));
        // One key buffer for the lookups (the sets are keyed by owned names).
        let mut key = (Text::default(), 0, 0);
        for r in w.pxb_positions.iter_mut() {
            r.retain(|(b, s, f)| {
                key.0.clear();
                key.0.push_str(b);
                (key.1, key.2) = (*s, *f);
                self.pxb_ok.contains(&key)
            });
        }
        let mut key = (key.0, 0);
        w.upstream_slots.retain(|(b, s)| {
            key.0.clear();
            key.0.push_str(b);
            key.1 = *s;
            self.upstream_ok.contains(&key)
        });
        for p in w.ports.iter_mut() {
            p.endpoint_only |= self.endpoint_only.contains(&p.id);
        }
        let mut late: Vec<u8> = self.late.iter().chain(&self.late_freed).copied().collect();
        late.sort_unstable();
        let order = late
            .into_iter()
            .chain(self.early.iter().map(|e| e.0))
            .collect();
        w.port_slot_order = Some(order);
        w.port_slots_early = self.early.len();
    }
}

/// The node whose bus a device with id `id` sits on in `t`.
pub(super) fn anchor_of(t: &Topology, id: &str) -> Option<NodeIndex> {
    let n = *t.ids.get(id)?;
    let p = t.parent(n)?;
    match t.g[p] {
        Node::Root => None,
        _ => Some(p),
    }
}
