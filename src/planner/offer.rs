//! What the pinned topology offers: free `pcie.0` slots and functions, free ports by hotplug
//! flavour, bridge slots, expander positions and their bus-number room, and what the pinned
//! controllers already use. Read once per plan from the topology of the pins.

use std::collections::{BTreeMap, BTreeSet};

use compact_str::ToCompactString;
use petgraph::stable_graph::NodeIndex;

use crate::catalog::{Catalog, ControllerModel};
use crate::plan::{PlacedController, Plan};
use crate::request::Request;
use crate::topology::{Node, Topology};
use crate::Text;

/// A free existing port.
#[derive(Debug, Clone)]
pub(crate) struct FreePort {
    /// The port's id.
    pub id: Text,
    /// Whether it is hot-pluggable.
    pub hotplug: bool,
    /// Its region (the NUMA node of its expander, 0 for none).
    pub region: usize,
    /// Below a pinned expander whose bus_nr range has no bus number left: only an endpoint
    /// may go there (a bridge or switch would need one more, R-BUSNR).
    pub endpoint_only: bool,
    /// The pinned expander with a bus_nr it is below, if any.
    pub pxb: Option<Text>,
    /// Below some expander (else in `pcie.0`'s hierarchy, R-BUSNR).
    pub below_pxb: bool,
}

/// What the pinned topology already offers.
#[derive(Debug, Default)]
pub(crate) struct World {
    /// Free root slots, ascending.
    pub root_free: Vec<u8>,
    /// Free (slot, function) on root slots holding only root ports.
    pub root_partial: Vec<(u8, u8)>,
    /// NUMA node of each region (index 0 = none).
    pub region_numa: Vec<Option<u32>>,
    /// Free existing ports.
    pub ports: Vec<FreePort>,
    /// Free bridge (bus, slot) per region, slots of bridges that already have an I/O
    /// window first.
    pub bridge_slots: Vec<Vec<(Text, u8)>>,
    /// Of those, slots on bridges that already have an I/O window, per region.
    pub bridge_free_io: Vec<u32>,
    /// Existing bridges with free slots and no I/O window yet, per region.
    pub bridges_unwindowed: Vec<u32>,
    /// How many of `bridge_slots` belong to windowed bridges (they are at the front).
    pub windowed_front: Vec<usize>,
    /// Free root-port positions on existing expanders, per region.
    pub pxb_positions: Vec<Vec<(Text, u8, u8)>>,
    /// Free downstream positions on existing switches.
    pub upstream_slots: Vec<(Text, u8)>,
    /// Bus numbers pinned controllers use.
    pub bus_used: u32,
    /// I/O windows pinned controllers take (ports and bridges with I/O devices pinned below).
    pub io_used: u32,
    /// Bus numbers left for the pcie.0 hierarchy below the lowest pinned expander.
    pub root_bus_room: u32,
    /// NUMA nodes that have a pinned expander.
    pub pinned_pxb_numa: BTreeSet<u32>,
    /// Pinned expanders whose free positions are capped by their bus_nr range.
    pub capped_pxbs: BTreeSet<Text>,
    /// Of those, the ones with bus numbers left in their range: (region, room) by id.
    pub cap_rooms: BTreeMap<Text, (usize, u32)>,
    /// Pinned endpoints on the root bus (for hints).
    pub root_pins: Vec<(Text, Text)>,
    /// Adopting (G-ID): the free `pcie.0` slots new root ports may take, in the order they
    /// take them (those that renumber no existing bus first). `None` for plain plans.
    pub port_slot_order: Option<Vec<u8>>,
    /// How many of `port_slot_order` (at its end) renumber existing buses.
    pub port_slots_early: usize,
    /// Adopting (R-INT-SLOT): free functions of `pcie.0` slots holding only kept packable
    /// single units, where moved packable units go first. Empty for plain plans.
    pub pack_beside: Vec<(u8, u8)>,
}

/// What is plugged into a bus: its children as (slot, function, node), sorted by address
/// (`Topology::kids`), read slot by slot.
struct Occupied<'t>(&'t [(u8, u8, NodeIndex)]);

impl<'t> Occupied<'t> {
    /// What is plugged into slot `s`, by function; `None` when nothing is.
    fn get(&self, s: u8) -> Option<&'t [(u8, u8, NodeIndex)]> {
        let from = self.0.partition_point(|k| k.0 < s);
        let to = from + self.0[from..].partition_point(|k| k.0 == s);
        (to > from).then(|| &self.0[from..to])
    }

    /// Whether anything is plugged into slot `s`.
    fn contains_key(&self, s: u8) -> bool {
        self.get(s).is_some()
    }

    /// Whether nothing is plugged into the bus.
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A reader of one pinned topology.
struct Reader<'t, 'a> {
    t: &'t Topology<'a>,
    pinned: &'a Plan,
    cat: &'a Catalog,
    w: World,
    /// Bus numbers left in each pinned expander's bus_nr range.
    rooms: BTreeMap<NodeIndex, usize>,
}

impl World {
    /// Reads what the pinned plan `pinned`, whose topology is `t`, offers to `req`. Of
    /// `pinned` it reads the controllers alone (the devices are `t`'s).
    pub fn read(t: &Topology, pinned: &Plan, req: &Request, cat: &Catalog) -> World {
        World::read_in(t, pinned, cat, regions_of(req))
    }

    /// What a machine offers when nothing is pinned: [`World::read`] of a plan without
    /// controllers or devices, whose topology is the root bus alone, without building it.
    /// Every usable `pcie.0` slot is free; nothing uses a bus number or an I/O window; no
    /// pinned expander bounds the root's bus numbers.
    pub fn unpinned(req: &Request, cat: &Catalog) -> World {
        let mut w = World::empty(regions_of(req));
        w.root_free = cat.root_free_slots();
        w.root_bus_room = u32::MAX;
        w
    }

    /// A world of `regions` (index 0: no NUMA node) offering nothing yet.
    fn empty(regions: Vec<Option<u32>>) -> World {
        let nreg = regions.len();
        World {
            region_numa: regions,
            bridge_slots: vec![Vec::new(); nreg],
            bridge_free_io: vec![0; nreg],
            bridges_unwindowed: vec![0; nreg],
            windowed_front: vec![0; nreg],
            pxb_positions: vec![Vec::new(); nreg],
            ..World::default()
        }
    }

    /// The same with the regions given (index 0: no NUMA node): an adoption reads the
    /// topology of what stays with the regions of the guest whose every device may move.
    pub fn read_in(t: &Topology, pinned: &Plan, cat: &Catalog, regions: Vec<Option<u32>>) -> World {
        let mut r = Reader {
            t,
            pinned,
            cat,
            w: World::empty(regions),
            rooms: BTreeMap::new(),
        };
        r.root();
        r.w.io_used = t.total_io_windows();
        r.w.root_bus_room = r.root_bus_room();
        r.controllers();
        r.w
    }

    /// The region of NUMA node `numa` (0 for none, or a node no unpinned device asks for).
    fn region_of_numa(&self, numa: Option<u32>) -> usize {
        numa.and_then(|m| self.region_numa.iter().position(|&r| r == Some(m)))
            .unwrap_or(0)
    }
}

/// The regions of `req`: none first, then each NUMA node an unpinned device asks for, in
/// ascending order.
fn regions_of(req: &Request) -> Vec<Option<u32>> {
    let numas: BTreeSet<u32> = req
        .devices
        .iter()
        .filter(|d| d.address.is_none())
        .filter_map(|d| d.numa_node)
        .collect();
    std::iter::once(None)
        .chain(numas.iter().map(|&n| Some(n)))
        .collect()
}

impl<'t, 'a> Reader<'t, 'a> {
    fn occupied(&self, p: NodeIndex) -> Occupied<'t> {
        Occupied(self.t.kids(p))
    }

    /// Whether a slot holds only controllers that share slots as functions (root ports).
    fn aggregate_only(&self, occ: &[(u8, u8, NodeIndex)]) -> bool {
        occ.iter()
            .all(|&(_, _, c)| self.t.model(c).map(|m| m.aggregate).unwrap_or(false))
    }

    /// Free slots and root-port functions of `pcie.0`, and the endpoints pinned there.
    fn root(&mut self) {
        let t = self.t;
        let root_occ = self.occupied(t.root);
        if root_occ.is_empty() {
            // Nothing pinned on the root bus: every usable slot is free.
            self.w.root_free = self.cat.root_free_slots();
            return;
        }
        for s in self.cat.root_free_slots() {
            match root_occ.get(s) {
                None => self.w.root_free.push(s),
                Some(occ) if self.aggregate_only(occ) => {
                    for f in 0..self.cat.root.functions {
                        if !occ.iter().any(|o| o.1 == f) {
                            self.w.root_partial.push((s, f));
                        }
                    }
                }
                Some(occ) => {
                    for &(_, _, c) in occ {
                        if let Node::Dev(d) = t.g[c] {
                            self.w
                                .root_pins
                                .push((d.id.clone(), d.address().to_compact_string()));
                        }
                    }
                }
            }
        }
    }

    /// R-BUSNR: bus numbers left for the `pcie.0` hierarchy below the lowest pinned
    /// expander's bus_nr (`u32::MAX` without one).
    fn root_bus_room(&self) -> u32 {
        let t = self.t;
        let Some(lowest) = self
            .pinned
            .controllers
            .iter()
            .filter_map(|c| c.bus_nr.map(u32::from))
            .min()
        else {
            return u32::MAX;
        };
        let below_root = t
            .descendants(t.root)
            .into_iter()
            .filter(|&n| {
                t.uses_bus_number(n) && t.bus_type(n) != Some("pxb") && t.expander_of(n).is_none()
            })
            .count() as u32;
        lowest.saturating_sub(1 + below_root)
    }

    /// Every pinned controller below `pcie.0`, depth first (an expander before its ports).
    fn controllers(&mut self) {
        let t = self.t;
        // Without pinned controllers there is nothing to walk.
        if self.pinned.controllers.is_empty() {
            return;
        }
        let mut nodes: Vec<NodeIndex> = t.descendants(t.root);
        nodes.retain(|&n| matches!(t.g[n], Node::Ctrl(_)));
        for n in nodes {
            let Node::Ctrl(c) = t.g[n] else { continue };
            let Some(m) = t.model(n) else { continue };
            if m.uses_bus_number {
                self.w.bus_used += 1;
            }
            let occ = self.occupied(n);
            match m.bus.bus_type.as_str() {
                "port" if occ.is_empty() => self.free_port(n, c),
                "pxb" => self.expander(n, c, m, &occ),
                "switch" => {
                    for s in m.bus.slots.min..=m.bus.slots.max {
                        if !occ.contains_key(s) {
                            self.w.upstream_slots.push((c.id.clone(), s));
                        }
                    }
                }
                "conventional" if t.bus_hotpluggable(n) => self.bridge(n, c, m, &occ),
                _ => {}
            }
        }
    }

    /// The region of a node: the NUMA node of the expander it is below.
    fn region(&self, n: NodeIndex) -> usize {
        let numa = self.t.expander_of(n).and_then(|x| match self.t.g[x] {
            Node::Ctrl(c) => c.numa_node,
            _ => None,
        });
        self.w.region_of_numa(numa)
    }

    /// A free port. Below a pinned expander with a bus_nr and no bus number left in its
    /// range, it takes endpoints only.
    fn free_port(&mut self, n: NodeIndex, c: &PlacedController) {
        let t = self.t;
        let below = t.expander_of(n).filter(|x| self.rooms.contains_key(x));
        let endpoint_only = below.and_then(|x| self.rooms.get(&x)) == Some(&0);
        let pxb = below.and_then(|x| match t.g[x] {
            Node::Ctrl(c) => Some(c.id.clone()),
            _ => None,
        });
        let region = self.region(n);
        self.w.ports.push(FreePort {
            id: c.id.clone(),
            hotplug: t.bus_hotpluggable(n),
            region,
            endpoint_only,
            pxb,
            below_pxb: t.expander_of(n).is_some(),
        });
    }

    /// A pinned expander: its free root-port positions, capped by its bus_nr range.
    fn expander(
        &mut self,
        n: NodeIndex,
        c: &PlacedController,
        m: &ControllerModel,
        occ: &Occupied<'t>,
    ) {
        let t = self.t;
        let r = self.w.region_of_numa(c.numa_node);
        if let Some(numa) = c.numa_node {
            self.w.pinned_pxb_numa.insert(numa);
        }
        // R-BUSNR: its buses run from bus_nr up to the next expander's bus_nr (or the last
        // bus number); new ports below it must fit in what is left.
        let room = c.bus_nr.map(|nr| {
            let nr = u32::from(nr);
            let upper = self
                .pinned
                .controllers
                .iter()
                .filter_map(|o| o.bus_nr.map(u32::from))
                .filter(|&o| o > nr)
                .min()
                .unwrap_or(self.cat.bus_numbers.max + 1);
            let size = 1 + t
                .descendants(n)
                .into_iter()
                .filter(|&d| t.uses_bus_number(d))
                .count() as u32;
            upper.saturating_sub(nr + size) as usize
        });
        // The free positions in address order, as many as its range has room for (all
        // without a bus_nr).
        let cap = room.unwrap_or(usize::MAX);
        let mut free = Vec::new();
        for s in m.bus.slots.min..=m.bus.slots.max {
            if free.len() >= cap {
                break;
            }
            match occ.get(s) {
                None => free.extend((0..m.bus.functions).map(|f| (s, f))),
                Some(o) if self.aggregate_only(o) => free.extend(
                    (0..m.bus.functions)
                        .filter(|&f| !o.iter().any(|x| x.1 == f))
                        .map(|f| (s, f)),
                ),
                Some(_) => {}
            }
        }
        free.truncate(cap);
        self.w.pxb_positions[r].extend(free.into_iter().map(|(s, f)| (c.id.clone(), s, f)));
        if let Some(room) = room {
            self.rooms.insert(n, room);
            self.w.capped_pxbs.insert(c.id.clone());
            if room > 0 {
                self.w.cap_rooms.insert(c.id.clone(), (r, room as u32));
            }
        }
    }

    /// A hot-pluggable bridge: its free slots. R-IO: a bridge with I/O devices below already
    /// has its window, and its slots come first (units with I/O BARs fill them); one without
    /// takes a new window when a device with I/O BARs joins it.
    fn bridge(
        &mut self,
        n: NodeIndex,
        c: &PlacedController,
        m: &ControllerModel,
        occ: &Occupied<'t>,
    ) {
        let region = self.region(n);
        let w = &mut self.w;
        let windowed = self.t.io_windows(n) > 0;
        let before = w.bridge_slots[region].len();
        for s in m.bus.slots.min..=m.bus.slots.max {
            if !occ.contains_key(s) {
                w.bridge_slots[region].push((c.id.clone(), s));
            }
        }
        let added = (w.bridge_slots[region].len() - before) as u32;
        if windowed {
            w.bridge_free_io[region] += added;
            let mine: Vec<(Text, u8)> = w.bridge_slots[region].drain(before..).collect();
            let at = w.windowed_front[region];
            for (k, x) in mine.into_iter().enumerate() {
                w.bridge_slots[region].insert(at + k, x);
            }
            w.windowed_front[region] += added as usize;
        } else if added > 0 {
            w.bridges_unwindowed[region] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::pinned_plan;

    fn world(json: &str) -> World {
        let req = Request::from_json(json).expect("parses");
        let cat = Catalog::q35();
        let pinned = pinned_plan(&req, cat);
        World::read(&Topology::build(&pinned, cat), &pinned, &req, cat)
    }

    #[test]
    fn pinned_ports_and_slots() {
        let w = world(
            r#"{"devices":[{"id":"d","model":"virtio-blk-pci","numa_node":1}],"controllers":[
              {"id":"rp","model":"pcie-root-port","chassis":1,"address":{"bus":"pcie.0","slot":2}},
              {"id":"off","model":"pcie-root-port","chassis":2,"hotplug":false,"address":{"bus":"pcie.0","slot":2,"function":1}}]}"#,
        );
        // Slot 2 holds two root ports: its other functions are free for more.
        assert!(!w.root_free.contains(&2));
        assert_eq!(w.root_partial.len(), 6);
        assert_eq!(
            w.ports
                .iter()
                .map(|p| (p.id.as_str(), p.hotplug))
                .collect::<Vec<_>>(),
            [("rp", true), ("off", false)]
        );
        // Region 1 is NUMA node 1, which has no expander yet.
        assert_eq!(w.region_numa, [None, Some(1)]);
        assert!(w.pinned_pxb_numa.is_empty());
        assert_eq!((w.bus_used, w.root_bus_room), (2, u32::MAX));
    }

    #[test]
    fn nothing_pinned_offers_what_the_root_alone_offers() {
        for json in [
            r#"{"devices":[{"id":"a","model":"virtio-net-pci"}]}"#,
            r#"{"devices":[{"id":"a","model":"e1000","numa_node":3},
              {"id":"b","model":"virtio-blk-pci","numa_node":1},{"id":"c","model":"virtio-rng-pci","numa_node":3}]}"#,
            r#"{"machine":"virt","devices":[{"id":"a","model":"virtio-net-pci","numa_node":0}]}"#,
        ] {
            let req = Request::from_json(json).expect("parses");
            let cat = Catalog::for_machine(&req.machine).expect("known machine");
            let pinned = pinned_plan(&req, cat);
            let read = World::read(&Topology::build(&pinned, cat), &pinned, &req, cat);
            let fast = World::unpinned(&req, cat);
            assert_eq!(format!("{fast:?}"), format!("{read:?}"), "{json}");
            assert!(!fast.root_free.is_empty());
        }
    }

    #[test]
    fn a_pinned_bus_nr_caps_its_expander_and_the_root_bus() {
        let w = world(
            r#"{"devices":[],"controllers":[
              {"id":"rp","model":"pcie-root-port","chassis":1,"address":{"bus":"pcie.0","slot":2}},
              {"id":"px","model":"pxb-pcie","bus_nr":250,"address":{"bus":"pcie.0","slot":5}}]}"#,
        );
        // Buses 1..249 below pcie.0, one taken by rp; px owns 250, 251..255 are left.
        assert_eq!(w.root_bus_room, 248);
        assert_eq!(w.pxb_positions[0].len(), 5);
        assert!(w.capped_pxbs.contains("px"));
    }
}
