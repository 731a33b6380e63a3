//! What the pins of a `pc` request leave free: `pci.0` slots, slots of existing bridges
//! (and whether each bridge already has an I/O window), bus numbers and I/O windows.

use crate::catalog::{Catalog, CLASS_PCI_BRIDGE};
use crate::plan::Plan;
use crate::topology::{Node, Topology};

/// A free slot of an existing `pci-bridge`.
#[derive(Debug, Clone)]
pub(super) struct BridgeSlot {
    /// The bridge's id.
    pub bridge: String,
    /// The free slot.
    pub slot: u8,
    /// The bridge already opens an I/O window (R-IO): a unit with I/O BARs costs none more.
    pub windowed: bool,
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
}

impl World {
    /// Free slots per existing bridge without an I/O window, bridge by bridge in order.
    pub fn windowless(&self) -> Vec<u32> {
        let mut out: Vec<(&str, u32)> = Vec::new();
        for s in self.bridge_slots.iter().filter(|s| !s.windowed) {
            match out.last_mut() {
                Some((b, n)) if *b == s.bridge => *n += 1,
                _ => out.push((&s.bridge, 1)),
            }
        }
        out.into_iter().map(|(_, n)| n).collect()
    }

    /// Reads the offer of the pinned plan `pinned` (topology `t`), with `windows` I/O
    /// windows in the firmware's budget.
    pub fn read(t: &Topology, pinned: &Plan, cat: &Catalog, windows: u32) -> World {
        let taken = |n| -> Vec<u8> { t.kids(n).iter().map(|k| k.0).collect() };
        let used_root = taken(t.root);
        let root_slots = cat
            .root_free_slots()
            .into_iter()
            .filter(|s| !used_root.contains(s))
            .collect();
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
            for slot in m.bus.slots.min..=m.bus.slots.max {
                if !used.contains(&slot) {
                    bridge_slots.push(BridgeSlot {
                        bridge: c.id.clone(),
                        slot,
                        windowed,
                    });
                }
            }
        }
        World {
            root_slots,
            bridge_slots,
            bus_free: cat.bus_numbers.max.saturating_sub(buses),
            windows_free: windows.saturating_sub(t.total_io_windows()),
        }
    }
}
