//! What the pins of a `pc` request leave free: `pci.0` slots, slots of existing bridges
//! (and whether each bridge already has an I/O window), bus numbers and I/O windows.

use crate::catalog::{Catalog, CLASS_PCI_BRIDGE};
use crate::plan::Plan;
use crate::Text;
use petgraph::stable_graph::NodeIndex;

use crate::topology::{Node, Topology};

/// A free slot of an existing `pci-bridge`.
#[derive(Debug, Clone)]
pub(super) struct BridgeSlot {
    /// The bridge's id.
    pub bridge: Text,
    /// The free slot.
    pub slot: u8,
    /// The bridge already opens an I/O window (R-IO): a unit with I/O BARs costs none more.
    pub windowed: bool,
    /// Adopting: a new bridge here comes after every existing bridge in the firmware's
    /// depth-first numbering, so it renumbers none (G-ID). Always false in a plain plan.
    pub late: bool,
}

/// The pinned topology's offer.
#[derive(Debug, Clone)]
pub(super) struct World {
    /// Free `pci.0` slots, ascending (PC-ROOT).
    pub root_slots: Vec<u8>,
    /// Free slots of existing bridges, bridge by bridge in plan order, ascending.
    pub bridge_slots: Vec<BridgeSlot>,
    /// Guest bus numbers left (R-BUSNR).
    pub bus_free: u32,
    /// I/O windows left (R-IO).
    pub windows_free: u32,
    /// Adopting: the `pci.0` slots where a new bridge renumbers no existing one (after
    /// every existing bridge in depth-first slot order, G-ID); `None` in a plain plan.
    pub late_root: Option<Vec<u8>>,
}

impl World {
    /// Free slots per existing bridge without an I/O window, bridge by bridge in order.
    pub fn windowless(&self) -> Vec<u32> {
        self.windowless_bridges()
            .into_iter()
            .map(|(_, n)| n)
            .collect()
    }

    /// The existing bridges without an I/O window and their free slots, in order.
    fn windowless_bridges(&self) -> Vec<(&str, u32)> {
        let mut out: Vec<(&str, u32)> = Vec::new();
        for s in self.bridge_slots.iter().filter(|s| !s.windowed) {
            match out.last_mut() {
                Some((b, n)) if *b == s.bridge => *n += 1,
                _ => out.push((&s.bridge, 1)),
            }
        }
        out
    }

    /// The slot of an existing bridge where the first new bridge goes when none goes on
    /// `pci.0` (an index into `bridge_slots`): adopting, the first late slot (it renumbers
    /// nothing, G-ID); else the last free one.
    pub fn chain_start(&self) -> Option<usize> {
        let late = self.bridge_slots.iter().position(|s| s.late);
        match late {
            Some(i) if self.late_root.is_some() => Some(i),
            _ => self.bridge_slots.len().checked_sub(1),
        }
    }

    /// When [`World::chain_start`] is on a bridge without an I/O window: that bridge's
    /// index in [`World::windowless`].
    pub fn chain_start_windowless(&self) -> Option<usize> {
        let at = &self.bridge_slots[self.chain_start()?];
        if at.windowed {
            return None;
        }
        self.windowless_bridges()
            .iter()
            .position(|&(b, _)| b == at.bridge)
    }

    /// Reads the offer of the pinned plan `pinned` (topology `t`), with `windows` I/O
    /// windows in the firmware's budget; `adopting` also marks the late places.
    pub fn read(t: &Topology, pinned: &Plan, cat: &Catalog, windows: u32, adopting: bool) -> World {
        let taken = |n| -> Vec<u8> { t.kids(n).iter().map(|k| k.0).collect() };
        let used_root = taken(t.root);
        let root_slots: Vec<u8> = cat
            .root_free_slots()
            .into_iter()
            .filter(|s| !used_root.contains(s))
            .collect();
        let bridges = if adopting {
            bridge_paths(t)
        } else {
            Vec::new()
        };
        let late = |path: &[(u8, u8)]| adopting && bridges.iter().all(|b| b.as_slice() < path);
        let mut bridge_slots = Vec::new();
        let mut buses = 0u32;
        for (i, c) in pinned.controllers.iter().enumerate() {
            let Some(&n) = t.ids.get(c.id.as_str()) else {
                continue;
            };
            if !t.rooted(n) || !matches!(t.g[n], Node::Ctrl(_)) || t.ctrl_index(n) != Some(i) {
                continue;
            }
            let Some(m) = t.model(n) else { continue };
            buses += u32::from(m.uses_bus_number);
            if m.class != CLASS_PCI_BRIDGE {
                continue;
            }
            let used = taken(n);
            let windowed = t.io_windows(n) > 0;
            let mut path = if adopting { path_of(t, n) } else { Vec::new() };
            for slot in m.bus.slots.min..=m.bus.slots.max {
                if !used.contains(&slot) {
                    path.push((slot, 0));
                    bridge_slots.push(BridgeSlot {
                        bridge: c.id.clone(),
                        slot,
                        windowed,
                        late: late(&path),
                    });
                    path.pop();
                }
            }
        }
        let late_root = adopting.then(|| {
            root_slots
                .iter()
                .copied()
                .filter(|&s| late(&[(s, 0)]))
                .collect()
        });
        World {
            root_slots,
            bridge_slots,
            bus_free: cat.bus_numbers.max.saturating_sub(buses),
            windows_free: windows.saturating_sub(t.total_io_windows()),
            late_root,
        }
    }
}

/// The (slot, function) hops from the root bus down to node `n`.
fn path_of(t: &Topology, n: NodeIndex) -> Vec<(u8, u8)> {
    let mut out = Vec::new();
    let mut cur = n;
    while let (Some(p), Node::Ctrl(c)) = (t.parent(cur), &t.g[cur]) {
        out.push((c.slot, c.function));
        cur = p;
        if out.len() > 64 {
            break;
        }
    }
    out.reverse();
    out
}

/// The paths of the bus-numbered controllers of `t` (the guest's bridges).
fn bridge_paths(t: &Topology) -> Vec<Vec<(u8, u8)>> {
    t.descendants(t.root)
        .into_iter()
        .filter(|&n| t.uses_bus_number(n))
        .map(|n| path_of(t, n))
        .collect()
}
