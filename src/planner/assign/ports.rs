//! Ports, region by region (NUMA regions first, then the global one): which units, new
//! bridges, new switches and spares take a port; existing free ports first, then new root
//! ports (or switch downstream ports) at the counted positions.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::catalog::{CLASS_BRIDGE, CLASS_DOWNSTREAM, CLASS_ROOT_PORT, CLASS_UPSTREAM};
use crate::error::{Cause, Explanation, PlanError};
use crate::ilp::{Counts, Place};
use crate::planner::World;
use crate::request::Hotplug;
use crate::rule::Rule;
use crate::Text;

use super::bridges::bridges_needed;
use super::pool::Pool;
use super::{Assigner, Bus, Pos, Taker};

/// Existing free ports of one region, by hotplug flavour: (id, only an endpoint may use it).
/// Endpoint-only ports are listed first and skipped for the others.
#[derive(Debug, Default)]
struct FreePorts<'a> {
    off: VecDeque<(&'a str, bool)>,
    on: VecDeque<(&'a str, bool)>,
}

impl<'a> FreePorts<'a> {
    /// The first port of `q` that a taker may use (an endpoint, or not endpoint-only, and
    /// one `allow` lets a bridge or switch take).
    fn take(
        q: &mut VecDeque<(&'a str, bool)>,
        endpoint: bool,
        allow: &mut dyn FnMut(&str) -> bool,
    ) -> Option<&'a str> {
        let i = q.iter().position(|p| endpoint || (!p.1 && allow(p.0)))?;
        q.remove(i).map(|p| p.0)
    }

    /// Hands out the free ports to takers given as (hotplug, is an endpoint): off ports to
    /// `off` takers, on ports to `on` takers, then either to what does not care (off ports
    /// first, so that hot-pluggable ones stay for spares). `allow(k, port)` says whether
    /// taker `k`, a bridge or switch, may take `port` (and takes its bus number when it
    /// says yes). Returns each taker's port.
    fn hand_out(
        &mut self,
        takers: &[(Hotplug, bool)],
        allow: &mut dyn FnMut(usize, &str) -> bool,
    ) -> Vec<Option<&'a str>> {
        let mut got: Vec<Option<&'a str>> = vec![None; takers.len()];
        for (k, &(hp, endpoint)) in takers.iter().enumerate() {
            if hp == Hotplug::Off {
                got[k] = Self::take(&mut self.off, endpoint, &mut |id| allow(k, id));
            }
        }
        for (k, &(hp, endpoint)) in takers.iter().enumerate() {
            if got[k].is_none() && hp == Hotplug::On {
                got[k] = Self::take(&mut self.on, endpoint, &mut |id| allow(k, id));
            }
        }
        for (k, &(hp, endpoint)) in takers.iter().enumerate() {
            if got[k].is_none() && hp == Hotplug::Any {
                got[k] = Self::take(&mut self.off, endpoint, &mut |id| allow(k, id))
                    .or_else(|| Self::take(&mut self.on, endpoint, &mut |id| allow(k, id)));
            }
        }
        got
    }
}

/// Where a bus sits for R-BUSNR: `pcie.0`'s hierarchy, below a pinned expander with a
/// `bus_nr` (its id), or below an expander whose range is given after assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tree<'s> {
    Root,
    Cap(&'s str),
    Float,
}

/// R-BUSNR with pinned expander ranges: what the assigner may still put where. The
/// program counted the root ports, switches and bridges in `pcie.0`'s hierarchy and the
/// buses below each pinned expander against their rooms; the assigner keeps to them.
#[derive(Debug, Clone, Default)]
pub(super) struct Ranges {
    /// Bridges `pcie.0`'s hierarchy may still take.
    root: u32,
    /// Bus numbers left below each pinned expander with a `bus_nr`.
    caps: BTreeMap<Text, u32>,
}

impl Ranges {
    /// The rooms of `world`'s pinned ranges under `counts`; `None` without a pinned bus_nr.
    pub(super) fn of(world: &World, counts: &Counts) -> Option<Ranges> {
        if world.root_bus_room == u32::MAX {
            return None;
        }
        let used = counts.root_ports + counts.switches + counts.downstream_ports;
        Some(Ranges {
            root: world.root_bus_room.saturating_sub(used),
            caps: world
                .capped_pxbs
                .iter()
                .map(|id| (id.clone(), world.cap_rooms.get(id).map_or(0, |r| r.1)))
                .collect(),
        })
    }

    /// The bus numbers of `tree` a taker needs there: a bridge one (two on a new port of a
    /// pinned expander, the port's and its own), a unit or spare one for a new port of a
    /// pinned expander. A switch never goes below a pinned expander (root ports on it do
    /// better: one bus number fewer each).
    fn need(tree: Tree, t: Taker, new_port: bool) -> Option<u32> {
        match (t, tree) {
            (Taker::Upstream, Tree::Cap(_)) => None,
            (Taker::Upstream, _) | (_, Tree::Float) => Some(0),
            (Taker::Unit(_) | Taker::Spare, Tree::Cap(_)) => Some(u32::from(new_port)),
            (Taker::Unit(_) | Taker::Spare, Tree::Root) => Some(0),
            (Taker::Bridge, Tree::Root) => Some(1),
            (Taker::Bridge, Tree::Cap(_)) => Some(1 + u32::from(new_port)),
        }
    }

    /// Whether taker `t` fits in the tree `tree` gives (on a new port or an existing one);
    /// without pinned ranges everything fits, and the tree is not worked out.
    #[inline]
    fn fits<'t>(
        ranges: &Option<Ranges>,
        tree: impl FnOnce() -> Tree<'t>,
        t: Taker,
        new_port: bool,
    ) -> bool {
        ranges
            .as_ref()
            .is_none_or(|r| r.fits_in(tree(), t, new_port))
    }

    /// [`Ranges::fits`] in `tree`.
    fn fits_in(&self, tree: Tree, t: Taker, new_port: bool) -> bool {
        let Some(n) = Self::need(tree, t, new_port) else {
            return false;
        };
        let left = match tree {
            Tree::Root if t == Taker::Bridge => self.root,
            Tree::Cap(x) => self.caps.get(x).copied().unwrap_or(0),
            _ => u32::MAX,
        };
        n <= left
    }

    /// Takes what taker `t` needs in the tree `tree` gives; `false` (and nothing taken) if
    /// it does not fit. Without pinned ranges everything fits, and the tree is not worked
    /// out.
    #[inline]
    fn take<'t>(
        ranges: &mut Option<Ranges>,
        tree: impl FnOnce() -> Tree<'t>,
        t: Taker,
        new_port: bool,
    ) -> bool {
        let Some(r) = ranges.as_mut() else {
            return true;
        };
        let tree = tree();
        if !r.fits_in(tree, t, new_port) {
            return false;
        }
        let Some(n) = Self::need(tree, t, new_port) else {
            return true;
        };
        match tree {
            Tree::Root if t == Taker::Bridge => r.root -= n,
            Tree::Cap(x) => {
                if let Some(left) = r.caps.get_mut(x) {
                    *left -= n;
                }
            }
            _ => {}
        }
        true
    }
}

/// The tree of existing port `id`.
fn port_tree<'w>(world: &'w World, id: &str) -> Tree<'w> {
    match world.ports.iter().find(|p| p.id == id) {
        Some(p) => match (&p.pxb, p.below_pxb) {
            (Some(x), _) => Tree::Cap(x),
            (None, true) => Tree::Float,
            (None, false) => Tree::Root,
        },
        None => Tree::Float,
    }
}

/// The tree of a new port at `p`.
fn position_tree<'p>(world: &World, root: &str, p: &Pos<'p>) -> Tree<'p> {
    match p.bus {
        Bus::Named(b) if b == root => Tree::Root,
        Bus::Named(b) if world.capped_pxbs.contains(b) => Tree::Cap(b),
        _ => Tree::Float,
    }
}

/// Whether `p` is on a pinned expander with a `bus_nr` range.
fn on_capped(world: &World, p: &Pos) -> bool {
    matches!(p.bus, Bus::Named(b) if world.capped_pxbs.contains(b))
}

/// The next new-port position for a taker, among those `fits` allows. An endpoint takes
/// the first. A bridge or switch takes a bus number of its own: it goes below a pinned
/// expander with a `bus_nr` range (`capped`) only when nothing else is left.
fn next_position<'a>(
    pool: &mut Pool<'a>,
    endpoint: bool,
    capped: impl Fn(&Pos) -> bool,
    fits: impl Fn(&Pos) -> bool,
) -> Option<Pos<'a>> {
    if !endpoint {
        if let Some(p) = pool.take(|p| !capped(p) && fits(p)) {
            return Some(p);
        }
    }
    pool.take(fits)
}

impl<'a> Assigner<'a> {
    /// D. Ports, NUMA regions first, then the global region, which also gets the positions
    /// NUMA regions left unused and the new root-port positions on `pcie.0`.
    pub(super) fn place_ports(
        &mut self,
        root_positions: Pool<'a>,
        mut region_positions: Vec<Pool<'a>>,
    ) -> Result<(), PlanError> {
        let mut leftovers = Pool::default();
        let mut root_positions = Some(root_positions);
        for r in (1..region_positions.len()).chain(std::iter::once(0)) {
            let mut pool = if r == 0 {
                let mut p = root_positions.take().unwrap_or_default();
                if let Some(own) = region_positions.get_mut(0) {
                    p.append(own);
                }
                p.append(&mut leftovers);
                p
            } else {
                std::mem::take(&mut region_positions[r])
            };
            self.ports_for_region(r, &mut pool)?;
            if r != 0 {
                leftovers.append(&mut pool);
            }
        }
        Ok(())
    }

    /// Places the units of region `r` that need ports or bridges; leaves the unused
    /// positions in `pool`.
    fn ports_for_region(&mut self, r: usize, pool: &mut Pool<'a>) -> Result<(), PlanError> {
        let (port_units, bridge_units) = self.region_units(r);
        let br = self.cat.adder_or_internal(CLASS_BRIDGE);
        let new_bridges = bridges_needed(
            bridge_units.len(),
            self.world.bridge_slots[r].len(),
            br.bus.slots.len(),
        );
        let switches = if r == 0 {
            self.counts.switches as usize
        } else {
            0
        };
        // Takers: switch upstreams, units, bridges (then spares).
        // Room for the spares too (a hint: bounded whatever the request says).
        let spares = if r == 0 {
            (self.req.policy.spare_ports as usize).min(64)
        } else {
            0
        };
        let mut takers: Vec<Taker> =
            Vec::with_capacity(switches + port_units.len() + new_bridges + spares);
        takers.extend((0..switches).map(|_| Taker::Upstream));
        takers.extend(port_units.iter().map(|&u| Taker::Unit(u)));
        takers.extend((0..new_bridges).map(|_| Taker::Bridge));

        let mut free = self.free_ports(r);
        let wants: Vec<(Hotplug, bool)> = takers
            .iter()
            .map(|&t| (t.hotplug(self.units), matches!(t, Taker::Unit(_))))
            .collect();
        let world = self.world;
        let ranges = &mut self.ranges;
        let mut got = free.hand_out(&wants, &mut |k, id| {
            Ranges::take(ranges, || port_tree(world, id), takers[k], false)
        });
        if r != 0 {
            self.lend_leftovers(free);
        } else {
            // Spares (global): existing empty hot-pluggable ports count first.
            let have = free.on.len() as u32;
            let extra = self.req.policy.spare_ports.saturating_sub(have);
            takers.extend((0..extra).map(|_| Taker::Spare));
            got.resize(takers.len(), None);
        }
        let bridge_ports = self.give_ports(r, &takers, got, pool)?;
        self.place_bridge_units(r, bridge_ports, bridge_units)
    }

    /// Region `r`'s units that need a port, and those that go on bridges (the region's own
    /// conventional units, then the global ones the counts host there).
    fn region_units(&self, r: usize) -> (Vec<usize>, Vec<usize>) {
        let region_of = |u: usize| {
            self.units[u]
                .numa
                .and_then(|n| self.world.region_numa.iter().position(|&x| x == Some(n)))
                .unwrap_or(0)
        };
        let mut mine: Vec<usize> = Vec::with_capacity(self.units.len());
        mine.extend((0..self.units.len()).filter(|&i| !self.units[i].pinned && region_of(i) == r));
        let mut port_units: Vec<usize> = Vec::with_capacity(mine.len());
        port_units.extend(
            mine.iter()
                .copied()
                .filter(|&i| matches!(self.place[i], Some(Place::Port | Place::OffPort))),
        );
        let hosted_anywhere = |i: usize| self.hosted.iter().any(|h| h.contains(&i));
        let hosted_here = if r == 0 {
            Vec::new()
        } else {
            self.hosted.get(r).cloned().unwrap_or_default()
        };
        let bridge_units: Vec<usize> = mine
            .iter()
            .copied()
            .filter(|&i| self.place[i] == Some(Place::Bridge) && !hosted_anywhere(i))
            .chain(hosted_here)
            .collect();
        (port_units, bridge_units)
    }

    /// Region `r`'s existing free ports. The global region also gets what NUMA regions lent
    /// (only it takes them: a NUMA region planned before it must not drop what an earlier
    /// NUMA region lent).
    fn free_ports(&mut self, r: usize) -> FreePorts<'a> {
        let lent = if r == 0 {
            std::mem::take(&mut self.lent)
        } else {
            Vec::new()
        };
        let world = self.world;
        let endpoint_only = |id: &str| world.ports.iter().any(|p| p.id == id && p.endpoint_only);
        // Endpoint-only ports first (own, then lent), then the others (own, then lent).
        let list = |hp: bool| -> VecDeque<(&'a str, bool)> {
            let mut v: Vec<(&'a str, bool)> = world
                .ports
                .iter()
                .filter(|p| p.region == r && p.hotplug == hp)
                .map(|p| (p.id.as_str(), p.endpoint_only))
                .chain(
                    lent.iter()
                        .filter(|(_, h)| *h == hp)
                        .map(|&(id, _)| (id, endpoint_only(id))),
                )
                .collect();
            v.sort_by_key(|p| !p.1);
            v.into()
        };
        FreePorts {
            off: list(false),
            on: list(true),
        }
    }

    /// What a NUMA region left of its free ports is lent to the global region (endpoint-only
    /// ones too: there only units take them, and hot-pluggable ones left empty are spares).
    fn lend_leftovers(&mut self, free: FreePorts<'a>) {
        for (id, _) in free.on {
            self.lent.push((id, true));
        }
        for (id, _) in free.off {
            self.lent.push((id, false));
        }
    }

    /// Gives every taker its port: the free port it got, else a new one at the next
    /// position (new root ports first, then downstream ports of new or existing switches).
    /// Places units, adds switches; returns the ports the new bridges go on.
    fn give_ports(
        &mut self,
        r: usize,
        takers: &[Taker],
        got: Vec<Option<&'a str>>,
        pool: &mut Pool<'a>,
    ) -> Result<Vec<Bus<'a>>, PlanError> {
        let cat = self.cat;
        let world = self.world;
        let mut downstream = Pool::default();
        if r == 0 {
            for (b, s) in &world.upstream_slots {
                downstream.push(Bus::Named(b), CLASS_DOWNSTREAM, (*s, 0), 1, 1);
            }
        }
        let mut bridge_ports: Vec<Bus<'a>> = Vec::new();
        for (&t, port) in takers.iter().zip(got) {
            let port = match port {
                Some(p) => Bus::Named(p),
                None => self.new_port(t, pool, &mut downstream)?,
            };
            match t {
                Taker::Unit(u) => self.put(u, port, 0, 0),
                Taker::Bridge => bridge_ports.push(port),
                Taker::Upstream => {
                    let up = cat.adder_or_internal(CLASS_UPSTREAM);
                    let id = self.add(up, port, 0, 0);
                    let (min, max) = (up.bus.slots.min, up.bus.slots.max);
                    let n = (u32::from(max) + 1).saturating_sub(u32::from(min));
                    downstream.push(id, CLASS_DOWNSTREAM, (min, 0), 1, n);
                }
                Taker::Spare => {}
            }
        }
        Ok(bridge_ports)
    }

    /// Adds a new port for taker `t` at the next position (`hotplug=off` for an off unit).
    fn new_port(
        &mut self,
        t: Taker,
        pool: &mut Pool<'a>,
        downstream: &mut Pool<'a>,
    ) -> Result<Bus<'a>, PlanError> {
        let world = self.world;
        let root = self.cat.root.bus.as_str();
        let capped = |p: &Pos| on_capped(world, p);
        // A unit or a spare needs the port's bus number only; a bridge or switch below
        // needs one more (R-BUSNR).
        let endpoint = matches!(t, Taker::Unit(_) | Taker::Spare);
        let ranges = &self.ranges;
        let fits = |p: &Pos| Ranges::fits(ranges, || position_tree(world, root, p), t, true);
        let next = next_position(pool, endpoint, capped, fits);
        if let Some(p) = &next {
            Ranges::take(&mut self.ranges, || position_tree(world, root, p), t, true);
        }
        // Only a pinned expander's bus_nr range can make the counted positions short (a
        // bridge on one of its ports took a bus number).
        let Some(pos) = next.or_else(|| downstream.take(|_| true)) else {
            return Err(self.bus_numbers_short());
        };
        let (class, known) = if pos.class == CLASS_DOWNSTREAM {
            (CLASS_DOWNSTREAM, self.port_models[1])
        } else {
            (CLASS_ROOT_PORT, self.port_models[0])
        };
        let m = known.unwrap_or_else(|| self.cat.adder_or_internal(class));
        let id = self.add(m, pos.bus, pos.slot, pos.function);
        if t.hotplug(self.units) == Hotplug::Off {
            if let Some(c) = self.plan.controllers.last_mut() {
                c.hotplug = Some(false);
            }
        }
        Ok(id)
    }

    /// R-BUSNR: the pinned expanders' bus_nr ranges leave too few bus numbers.
    fn bus_numbers_short(&self) -> PlanError {
        let pxbs: BTreeSet<Text> = self
            .world
            .ports
            .iter()
            .filter_map(|p| p.pxb.clone())
            .collect();
        PlanError::Infeasible(Explanation {
            causes: vec![Cause {
                rule: Rule::BusNr,
                message: "the ports and bridges below the pinned pxb-pcie expanders need more bus numbers than their bus_nr ranges leave".into(),
                devices: pxbs.into_iter().map(String::from).collect(),
                need: 0,
                have: 0,
                hints: vec!["lower the bus_nr of the pinned pxb-pcie to leave room above it, or unpin it".to_string()],
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q<'a>(ports: &[(&'a str, bool)]) -> VecDeque<(&'a str, bool)> {
        ports.iter().copied().collect()
    }

    #[test]
    fn free_ports_go_by_flavour_then_to_what_does_not_care() {
        let mut free = FreePorts {
            off: q(&[("off1", false)]),
            on: q(&[("on1", false), ("on2", false)]),
        };
        let got = free.hand_out(
            &[
                (Hotplug::Any, false),
                (Hotplug::On, true),
                (Hotplug::Off, true),
                (Hotplug::Any, false),
                (Hotplug::Off, true),
            ],
            &mut |_, _| true,
        );
        assert_eq!(got, [Some("on2"), Some("on1"), Some("off1"), None, None]);
        assert!(free.on.is_empty() && free.off.is_empty());
    }

    #[test]
    fn endpoint_only_ports_are_skipped_for_bridges_and_switches() {
        let mut free = FreePorts {
            off: VecDeque::new(),
            on: q(&[("capped", true), ("open", false)]),
        };
        let got = free.hand_out(
            &[(Hotplug::Any, false), (Hotplug::On, true)],
            &mut |_, _| true,
        );
        assert_eq!(got, [Some("open"), Some("capped")]);
    }

    fn pos(bus: &str, slot: u8) -> Pos<'_> {
        Pos {
            bus: Bus::Named(bus),
            slot,
            function: 0,
            class: CLASS_ROOT_PORT,
        }
    }

    fn buses<'a>(pool: &Pool<'a>) -> Vec<(Bus<'a>, u8)> {
        pool.positions().iter().map(|p| (p.bus, p.slot)).collect()
    }

    #[test]
    fn bridges_avoid_capped_expanders() {
        let capped = |p: &Pos| p.bus == Bus::Named("x");
        let mut pool = Pool::default();
        for p in [pos("x", 0), pos("x", 1), pos("pcie.0", 2)] {
            pool.push(p.bus, p.class, (p.slot, p.function), 1, 1);
        }
        let all = |_: &Pos| true;
        assert_eq!(
            next_position(&mut pool, true, capped, all),
            Some(pos("x", 0))
        );
        assert_eq!(
            next_position(&mut pool, false, capped, all),
            Some(pos("pcie.0", 2))
        );
        assert_eq!(buses(&pool), [(Bus::Named("x"), 1)]);
    }

    #[test]
    fn a_bridge_on_a_capped_expander_takes_two_bus_numbers() {
        // Room 3 below x: a bridge on a new port takes 2, and another one no longer fits.
        let mut ranges = Some(Ranges {
            root: 0,
            caps: [("x".into(), 3)].into(),
        });
        let (x, b) = (Tree::Cap("x"), Taker::Bridge);
        assert!(Ranges::take(&mut ranges, || x, b, true));
        assert!(!Ranges::fits(&ranges, || x, b, true));
        assert!(Ranges::fits(&ranges, || x, Taker::Spare, true));
        assert!(Ranges::take(&mut ranges, || x, b, false));
        assert!(!Ranges::fits(&ranges, || x, Taker::Unit(0), true));
        // Existing ports take units whatever the room; a bridge in pcie.0's hierarchy
        // needs the room the program left there.
        assert!(Ranges::fits(&ranges, || x, Taker::Unit(0), false));
        assert!(!Ranges::fits(&ranges, || Tree::Root, b, false));
        assert!(Ranges::fits(&None, || Tree::Root, b, false));
    }

    #[test]
    fn units_bridges_and_spares_get_ports() {
        // A hot-pluggable conventional NIC on a bridge, an off one integrated, a virtio NIC
        // on a port, one spare port.
        let req = crate::topology::fixtures::request(
            r#"{"devices":[{"id":"a","model":"e1000"},{"id":"b","model":"e1000","hotplug":"off"},
                {"id":"c","model":"virtio-net-pci"}],"policy":{"spare_ports":1}}"#,
        );
        let p = crate::planner::plan(&req).expect("plans");
        let got: Vec<(&str, &str, &str, u8, u8)> = p
            .controllers
            .iter()
            .map(|c| {
                (
                    c.id.as_str(),
                    c.model.as_str(),
                    c.bus.as_str(),
                    c.slot,
                    c.function,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("rp1", "pcie-root-port", "pcie.0", 2, 0),
                ("rp2", "pcie-root-port", "pcie.0", 2, 1),
                ("br1", "pcie-pci-bridge", "rp2", 0, 0),
                ("rp3", "pcie-root-port", "pcie.0", 2, 2),
            ]
        );
        let got: Vec<(&str, &str, u8)> = p
            .devices
            .iter()
            .map(|d| (d.id.as_str(), d.bus.as_str(), d.slot))
            .collect();
        assert_eq!(got, [("a", "br1", 1), ("b", "pcie.0", 1), ("c", "rp1", 0)]);
    }
}
