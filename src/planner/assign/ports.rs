//! Ports, region by region (NUMA regions first, then the global one): which units, new
//! bridges, new switches and spares take a port; existing free ports first, then new root
//! ports (or switch downstream ports) at the counted positions.

use std::collections::{BTreeSet, VecDeque};

use crate::catalog::{CLASS_BRIDGE, CLASS_DOWNSTREAM, CLASS_ROOT_PORT, CLASS_UPSTREAM};
use crate::error::{Cause, Explanation, PlanError};
use crate::ilp::Place;
use crate::request::Hotplug;
use crate::rule::Rule;

use super::bridges::bridges_needed;
use super::{Assigner, Pos, Taker};

/// Existing free ports of one region, by hotplug flavour: (id, only an endpoint may use it).
/// Endpoint-only ports are listed first and skipped for the others.
#[derive(Debug, Default)]
struct FreePorts {
    off: VecDeque<(String, bool)>,
    on: VecDeque<(String, bool)>,
}

impl FreePorts {
    /// The first port of `q` that a taker may use (an endpoint, or not endpoint-only).
    fn take(q: &mut VecDeque<(String, bool)>, endpoint: bool) -> Option<String> {
        let i = q.iter().position(|p| endpoint || !p.1)?;
        q.remove(i).map(|p| p.0)
    }

    /// Hands out the free ports to takers given as (hotplug, is an endpoint): off ports to
    /// `off` takers, on ports to `on` takers, then either to what does not care (off ports
    /// first, so that hot-pluggable ones stay for spares). Returns each taker's port.
    fn hand_out(&mut self, takers: &[(Hotplug, bool)]) -> Vec<Option<String>> {
        let mut got: Vec<Option<String>> = vec![None; takers.len()];
        for (k, &(hp, endpoint)) in takers.iter().enumerate() {
            if hp == Hotplug::Off {
                got[k] = Self::take(&mut self.off, endpoint);
            }
        }
        for (k, &(hp, endpoint)) in takers.iter().enumerate() {
            if got[k].is_none() && hp == Hotplug::On {
                got[k] = Self::take(&mut self.on, endpoint);
            }
        }
        for (k, &(hp, endpoint)) in takers.iter().enumerate() {
            if got[k].is_none() && hp == Hotplug::Any {
                got[k] = Self::take(&mut self.off, endpoint)
                    .or_else(|| Self::take(&mut self.on, endpoint));
            }
        }
        got
    }
}

/// The next new-port position for a taker. An endpoint takes the first. A bridge or switch
/// takes a bus number of its own: on a pinned expander with a `bus_nr` range (`capped`) it
/// also uses up one more position there, so it goes elsewhere when it can, and else gives
/// up the last position of that expander.
fn next_position(
    pool: &mut VecDeque<Pos>,
    endpoint: bool,
    capped: impl Fn(&Pos) -> bool,
) -> Option<Pos> {
    if endpoint {
        return pool.pop_front();
    }
    if let Some(i) = pool.iter().position(|p| !capped(p)) {
        return pool.remove(i);
    }
    let first = pool.pop_front()?;
    if let Some(i) = pool.iter().rposition(|p| p.bus == first.bus) {
        pool.remove(i);
    }
    Some(first)
}

impl Assigner<'_> {
    /// D. Ports, NUMA regions first, then the global region, which also gets the positions
    /// NUMA regions left unused and the new root-port positions on `pcie.0`.
    pub(super) fn place_ports(
        &mut self,
        root_positions: VecDeque<Pos>,
        mut region_positions: Vec<VecDeque<Pos>>,
    ) -> Result<(), PlanError> {
        let mut leftovers: VecDeque<Pos> = VecDeque::new();
        let mut spare_existing = 0u32;
        for r in (1..region_positions.len()).chain(std::iter::once(0)) {
            let mut pool: VecDeque<Pos> = if r == 0 {
                let mut p = root_positions.clone();
                p.extend(region_positions[0].drain(..));
                p.extend(leftovers.drain(..));
                p
            } else {
                std::mem::take(&mut region_positions[r])
            };
            self.ports_for_region(r, &mut pool, &mut spare_existing)?;
            if r != 0 {
                leftovers.extend(pool);
            }
        }
        Ok(())
    }

    /// Places the units of region `r` that need ports or bridges; leaves the unused
    /// positions in `pool`.
    fn ports_for_region(
        &mut self,
        r: usize,
        pool: &mut VecDeque<Pos>,
        spare_existing: &mut u32,
    ) -> Result<(), PlanError> {
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
        let mut takers: Vec<Taker> = Vec::new();
        takers.extend((0..switches).map(|_| Taker::Upstream));
        takers.extend(port_units.iter().map(|&u| Taker::Unit(u)));
        takers.extend((0..new_bridges).map(|_| Taker::Bridge));

        let mut free = self.free_ports(r);
        let wants: Vec<(Hotplug, bool)> = takers
            .iter()
            .map(|&t| (t.hotplug(self.units), matches!(t, Taker::Unit(_))))
            .collect();
        let mut got = free.hand_out(&wants);
        self.release_capped_positions(&takers, &got, pool);
        if r != 0 {
            self.lend_leftovers(free, spare_existing);
        } else {
            // Spares (global): existing empty hot-pluggable ports count first.
            let have = *spare_existing + free.on.len() as u32;
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
        let mine: Vec<usize> = (0..self.units.len())
            .filter(|&i| !self.units[i].pinned && region_of(i) == r)
            .collect();
        let port_units: Vec<usize> = mine
            .iter()
            .copied()
            .filter(|&i| matches!(self.place[i], Some(Place::Port | Place::OffPort)))
            .collect();
        let hosted_anywhere: BTreeSet<usize> = self.hosted.iter().flatten().copied().collect();
        let hosted_here = if r == 0 {
            Vec::new()
        } else {
            self.hosted.get(r).cloned().unwrap_or_default()
        };
        let bridge_units: Vec<usize> = mine
            .iter()
            .copied()
            .filter(|&i| self.place[i] == Some(Place::Bridge) && !hosted_anywhere.contains(&i))
            .chain(hosted_here)
            .collect();
        (port_units, bridge_units)
    }

    /// Region `r`'s existing free ports. The global region also gets what NUMA regions lent
    /// (only it takes them: a NUMA region planned before it must not drop what an earlier
    /// NUMA region lent).
    fn free_ports(&mut self, r: usize) -> FreePorts {
        let lent = if r == 0 {
            std::mem::take(&mut self.lent)
        } else {
            Vec::new()
        };
        let list = |hp: bool| -> VecDeque<(String, bool)> {
            let mut v: Vec<(String, bool)> = self
                .world
                .ports
                .iter()
                .filter(|p| p.region == r && p.hotplug == hp)
                .map(|p| (p.id.clone(), p.endpoint_only))
                .collect();
            v.sort_by_key(|p| !p.1);
            v.extend(
                lent.iter()
                    .filter(|(_, h)| *h == hp)
                    .map(|(id, _)| (id.clone(), false)),
            );
            v.into()
        };
        FreePorts {
            off: list(false),
            on: list(true),
        }
    }

    /// R-BUSNR: a bridge or switch on an existing port below a pinned expander takes one of
    /// the bus numbers its range leaves, so one fewer new port fits there.
    fn release_capped_positions(
        &self,
        takers: &[Taker],
        got: &[Option<String>],
        pool: &mut VecDeque<Pos>,
    ) {
        for (t, id) in takers.iter().zip(got) {
            if matches!(t, Taker::Unit(_)) {
                continue;
            }
            let Some(id) = id else { continue };
            let pxb = self
                .world
                .ports
                .iter()
                .find(|p| &p.id == id)
                .and_then(|p| p.pxb.as_ref());
            if let Some(pxb) = pxb {
                if let Some(i) = pool.iter().rposition(|p| &p.bus == pxb) {
                    pool.remove(i);
                }
            }
        }
    }

    /// What a NUMA region left of its free ports is lent to the global region; an
    /// endpoint-only hot-pluggable one cannot be lent and counts as a spare there (once).
    fn lend_leftovers(&mut self, free: FreePorts, spare_existing: &mut u32) {
        let world = self.world;
        let endpoint_only =
            |id: &String| world.ports.iter().any(|p| &p.id == id && p.endpoint_only);
        for (id, _) in free.on {
            if endpoint_only(&id) {
                *spare_existing += 1;
            } else {
                self.lent.push((id, true));
            }
        }
        for (id, _) in free.off {
            if !endpoint_only(&id) {
                self.lent.push((id, false));
            }
        }
    }

    /// Gives every taker its port: the free port it got, else a new one at the next
    /// position (new root ports first, then downstream ports of new or existing switches).
    /// Places units, adds switches; returns the ports the new bridges go on.
    fn give_ports(
        &mut self,
        r: usize,
        takers: &[Taker],
        got: Vec<Option<String>>,
        pool: &mut VecDeque<Pos>,
    ) -> Result<Vec<String>, PlanError> {
        let cat = self.cat;
        let mut downstream: VecDeque<Pos> = self
            .world
            .upstream_slots
            .iter()
            .filter(|_| r == 0)
            .map(|(b, s)| downstream_at(b, *s))
            .collect();
        let mut bridge_ports: Vec<String> = Vec::new();
        for (&t, port) in takers.iter().zip(got) {
            let port = match port {
                Some(p) => p,
                None => self.new_port(t, pool, &mut downstream)?,
            };
            match t {
                Taker::Unit(u) => self.put(u, &port, 0, 0),
                Taker::Bridge => bridge_ports.push(port),
                Taker::Upstream => {
                    let up = cat.adder_or_internal(CLASS_UPSTREAM);
                    let id = self.add(up, &port, 0, 0);
                    downstream.extend(
                        (up.bus.slots.min..=up.bus.slots.max).map(|s| downstream_at(&id, s)),
                    );
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
        pool: &mut VecDeque<Pos>,
        downstream: &mut VecDeque<Pos>,
    ) -> Result<String, PlanError> {
        let world = self.world;
        let capped = |p: &Pos| world.capped_pxbs.contains(&p.bus);
        // A unit or a spare needs the port's bus number only; a bridge or switch below
        // needs one more (R-BUSNR).
        let endpoint = matches!(t, Taker::Unit(_) | Taker::Spare);
        let next = next_position(pool, endpoint, capped);
        // Only a pinned expander's bus_nr range can make the counted positions short (a
        // bridge on one of its ports took a bus number).
        let Some(pos) = next.or_else(|| downstream.pop_front()) else {
            return Err(self.bus_numbers_short());
        };
        let class = if pos.class == CLASS_DOWNSTREAM {
            CLASS_DOWNSTREAM
        } else {
            CLASS_ROOT_PORT
        };
        let id = self.add(
            self.cat.adder_or_internal(class),
            &pos.bus,
            pos.slot,
            pos.function,
        );
        if t.hotplug(self.units) == Hotplug::Off {
            if let Some(c) = self.plan.controllers.last_mut() {
                c.hotplug = Some(false);
            }
        }
        Ok(id)
    }

    /// R-BUSNR: the pinned expanders' bus_nr ranges leave too few bus numbers.
    fn bus_numbers_short(&self) -> PlanError {
        let pxbs: BTreeSet<String> = self
            .world
            .ports
            .iter()
            .filter_map(|p| p.pxb.clone())
            .collect();
        PlanError::Infeasible(Explanation {
            causes: vec![Cause {
                rule: Rule::BusNr,
                message: "the ports and bridges below the pinned pxb-pcie expanders need more bus numbers than their bus_nr ranges leave".into(),
                devices: pxbs.into_iter().collect(),
                need: 0,
                have: 0,
                hints: vec!["lower the bus_nr of the pinned pxb-pcie to leave room above it, or unpin it".to_string()],
            }],
        })
    }
}

/// A switch downstream-port position at `bus:slot.0`.
fn downstream_at(bus: &str, slot: u8) -> Pos {
    Pos {
        bus: bus.to_string(),
        slot,
        function: 0,
        class: CLASS_DOWNSTREAM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(ports: &[(&str, bool)]) -> VecDeque<(String, bool)> {
        ports.iter().map(|&(id, e)| (id.to_string(), e)).collect()
    }

    #[test]
    fn free_ports_go_by_flavour_then_to_what_does_not_care() {
        let mut free = FreePorts {
            off: q(&[("off1", false)]),
            on: q(&[("on1", false), ("on2", false)]),
        };
        let got = free.hand_out(&[
            (Hotplug::Any, false),
            (Hotplug::On, true),
            (Hotplug::Off, true),
            (Hotplug::Any, false),
            (Hotplug::Off, true),
        ]);
        let got: Vec<Option<&str>> = got.iter().map(|g| g.as_deref()).collect();
        assert_eq!(got, [Some("on2"), Some("on1"), Some("off1"), None, None]);
        assert!(free.on.is_empty() && free.off.is_empty());
    }

    #[test]
    fn endpoint_only_ports_are_skipped_for_bridges_and_switches() {
        let mut free = FreePorts {
            off: VecDeque::new(),
            on: q(&[("capped", true), ("open", false)]),
        };
        let got = free.hand_out(&[(Hotplug::Any, false), (Hotplug::On, true)]);
        let got: Vec<Option<&str>> = got.iter().map(|g| g.as_deref()).collect();
        assert_eq!(got, [Some("open"), Some("capped")]);
    }

    fn pos(bus: &str, slot: u8) -> Pos {
        Pos {
            bus: bus.into(),
            slot,
            function: 0,
            class: CLASS_ROOT_PORT,
        }
    }

    fn buses(pool: &VecDeque<Pos>) -> Vec<(&str, u8)> {
        pool.iter().map(|p| (p.bus.as_str(), p.slot)).collect()
    }

    #[test]
    fn bridges_avoid_capped_expanders() {
        let capped = |p: &Pos| p.bus == "x";
        let mut pool: VecDeque<Pos> = [pos("x", 0), pos("x", 1), pos("pcie.0", 2)].into();
        assert_eq!(next_position(&mut pool, true, capped), Some(pos("x", 0)));
        assert_eq!(
            next_position(&mut pool, false, capped),
            Some(pos("pcie.0", 2))
        );
        assert_eq!(buses(&pool), [("x", 1)]);
    }

    #[test]
    fn a_bridge_on_a_capped_expander_gives_up_its_last_position() {
        let capped = |p: &Pos| p.bus == "x";
        let mut pool: VecDeque<Pos> = [pos("x", 0), pos("x", 1), pos("x", 2)].into();
        assert_eq!(next_position(&mut pool, false, capped), Some(pos("x", 0)));
        assert_eq!(buses(&pool), [("x", 1)]);
        assert_eq!(next_position(&mut pool, false, capped), Some(pos("x", 1)));
        assert_eq!(next_position(&mut pool, false, capped), None);
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
