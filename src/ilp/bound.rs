//! Settling a program without the solver: where a counting argument proves which answer is
//! optimal, and proves that every optimum agrees with it on what the assigner reads, the
//! program is neither built nor solved. Any other model goes to the solver.
//!
//! The argument, on the models it takes (no adoption, no `pcie.0` slot budget, no existing
//! free port or bridge slot, no regions sharing bridges):
//!
//! - *A lower bound.* Leave out the bus-number and I/O budgets and the root-bus room. Then an
//!   integrated place costs nothing, every unit on a port costs that port (a new one: there
//!   are no free ones), and the bridges of a region cost `⌈bridged / 31⌉` plus their ports.
//!   So the cheapest answer puts every unit that may be integrated there, and each other unit
//!   at its one place (a class that may not be integrated has exactly one: `hotplug` and the
//!   bus kind decide between off port, port and bridge). Its ports are root ports on
//!   `pcie.0` (1000 each) rather than spare ports of a NUMA node's expanders (1000 + 1 for
//!   O-TIE), and each NUMA node adds the expanders its own ports need.
//! - *Uniqueness.* Moving any integrated unit elsewhere costs a port, or a bridge and its
//!   port, strictly more, unless the region's bridges have a free slot anyway: then a unit
//!   that may be integrated or bridged could take it for nothing, the optimum is not unique,
//!   and the model goes to the solver. Every other count follows from the placement and is
//!   the least its cost allows. Adding units elsewhere never lowers the cost (it only adds
//!   demand), so no set of moves is free when no single one is.
//! - *Meeting the bound.* The left-out budgets only remove answers. When this one keeps
//!   within them with no slack, it is feasible, so it is optimal for the whole program; and
//!   any slack costs more (1e6 against 1000 per controller) than the whole answer, so every
//!   optimum of the program is an optimum of the bound, which is this one.
//!
//! The answer is given as [`Counts::read`] would read it from the solver (the counts the
//! program leaves out follow by the same formulas), so the plan is byte for byte the one the
//! solver's answer gives. The I/O windows, which no plan step reads, are the least.

use super::budgets::Budgets;
use super::counts::Counts;
use super::model::{Model, Place, PLACES};

/// The proven optimum of `m` when the counting argument settles it; `None` sends the model to
/// the solver.
pub(crate) fn settle(m: &Model) -> Option<Counts> {
    // A pinned expander's range with room left is budgeted per range (`ranges.rs`).
    if m.adopt.is_some() || !m.caps.is_empty() {
        return None;
    }
    let budgets = Budgets::of(m, false);
    if budgets.root_slots {
        return None;
    }
    let nreg = m.regions.len();
    if m.regions
        .iter()
        .any(|g| g.free_on > 0 || g.free_off > 0 || g.bridge_free > 0)
    {
        return None;
    }
    // Conventional units of region 0 could fill a NUMA node's bridges (`hosted`).
    if (1..nreg).any(|r| m.has_bridge(r)) && m.has_bridge(0) {
        return None;
    }
    let cap = m.bridge_cap.max(1);
    let mut placed: Vec<[u32; 4]> = Vec::with_capacity(m.classes.len());
    // Per region: units on off ports, on ports, on bridges, of which with I/O BARs.
    let mut on_ports = vec![0u32; nreg];
    let mut bridged = vec![0u32; nreg];
    let mut io_bridged = vec![0u32; nreg];
    let mut io_ports = 0u32;
    let mut own_slots = 0u32;
    let mut packed = 0u32;
    // Units that may be integrated or bridged (their bridges' free slots would tie).
    let mut may_bridge_instead = false;
    for c in &m.classes {
        let mut row = [0u32; 4];
        if c.may(Place::Integrated) {
            row[Place::Integrated as usize] = c.n;
            if c.packable {
                packed += c.n;
            } else {
                own_slots += c.n;
            }
            may_bridge_instead |= c.may(Place::Bridge) && c.n > 0;
        } else {
            let mut only = PLACES.iter().filter(|&&p| c.may(p));
            let p = *only.next()?;
            if only.next().is_some() {
                return None;
            }
            row[p as usize] = c.n;
            let r = c.region;
            match p {
                Place::Bridge => {
                    bridged[r] += c.n;
                    if c.io {
                        io_bridged[r] += c.n;
                    }
                }
                _ => {
                    on_ports[r] += c.n;
                    if c.io {
                        io_ports += c.n;
                    }
                }
            }
        }
        placed.push(row);
    }
    if may_bridge_instead && bridged[0] % cap != 0 {
        return None;
    }
    let bridges: Vec<u32> = (0..nreg)
        .map(|r| {
            if m.has_bridge(r) {
                bridged[r].div_ceil(cap)
            } else {
                0
            }
        })
        .collect();
    let root_ports = on_ports[0] + bridges[0] + m.spare;
    let mut region_ports = vec![0u32; nreg];
    let mut region_expanders = vec![0u32; nreg];
    for r in 1..nreg {
        let need = on_ports[r] + bridges[r];
        region_ports[r] = need;
        region_expanders[r] = need
            .saturating_sub(m.regions[r].pxb_free)
            .div_ceil(m.pxb_cap.max(1));
    }
    let numa_ports: u32 = region_ports.iter().sum();
    let numa_expanders: u32 = region_expanders.iter().sum();
    let all_bridges: u32 = bridges.iter().sum();
    let cost = root_ports + numa_ports + all_bridges + numa_expanders;
    // Slack in the answer would cost 1e6; the argument needs every answer cheaper.
    if cost >= 900 {
        return None;
    }
    // The budgets the bound left out, with no slack.
    let buses = root_ports + numa_ports + all_bridges + numa_expanders + m.bus_used;
    if budgets.bus_numbers && buses > m.bus_max {
        return None;
    }
    if m.root_bus_room < m.bus_max && root_ports + bridges[0] > m.root_bus_room {
        return None;
    }
    let mut windows = 0u32;
    for r in 0..nreg {
        let g = &m.regions[r];
        let w = io_bridged[r]
            .saturating_sub(g.bridge_free_io)
            .div_ceil(cap);
        if budgets.io_windows && m.has_bridge(r) && w > bridges[r] + g.bridges_unwindowed {
            return None;
        }
        windows += w;
    }
    let io_windows = io_ports + windows + m.io_used;
    if budgets.io_windows && io_windows > m.io_max {
        return None;
    }
    Some(Counts {
        placed,
        root_ports,
        root_port_slots: root_ports
            .saturating_sub(m.root_free_functions)
            .div_ceil(m.ports_per_slot.max(1)),
        expanders: 0,
        expander_ports: 0,
        switches: 0,
        downstream_ports: 0,
        region_ports,
        bridges,
        used_on: vec![0; nreg],
        used_off: vec![0; nreg],
        region_expanders,
        hosted_io: vec![0; nreg],
        hosted: vec![0; nreg],
        cost,
        slack_slots: 0,
        slack_bus: 0,
        slack_io: 0,
        io_windows,
        int_slots: own_slots + packed.div_ceil(m.int_per_slot.max(1)),
        optimal: true,
        adopt: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ilp::model::tests::{class, model};
    use crate::ilp::model::{Class, Region};

    /// The counts a plan is made from (what the assigner reads).
    fn read_by_plans(c: &Counts) -> impl PartialEq + std::fmt::Debug {
        (
            c.placed.clone(),
            (c.root_ports, c.root_port_slots, c.expanders, c.switches),
            c.region_expanders.clone(),
            (c.hosted.clone(), c.hosted_io.clone()),
            (c.cost, c.optimal, c.short()),
        )
    }

    /// A small deterministic generator for the random models.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n.max(1)
        }
    }

    /// A class as the planner makes them: where its kind and hotplug let it go.
    fn random_class(rng: &mut Rng, region: usize) -> Class {
        const INT: [bool; 4] = [true, false, false, false];
        let (allowed, off, any) = match (region, rng.below(8)) {
            (0, 0) => (INT, true, false),
            (0, 1) => (INT, false, true),
            (0, 2) => ([true, true, false, false], true, false),
            (0, 3) => ([true, false, true, false], false, true),
            (0, 4) => ([true, false, false, true], false, true),
            (_, 5) => ([false, true, false, false], true, false),
            (_, 6) => ([false, false, false, true], false, region > 0 && rng.below(2) == 0),
            _ => ([false, false, true, false], false, region > 0 && rng.below(2) == 0),
        };
        Class {
            region,
            packable: allowed[0] && rng.below(3) == 0,
            io: rng.below(3) == 0,
            ..class(1 + rng.below(40) as u32, allowed, off, any)
        }
    }

    fn random_model(rng: &mut Rng) -> Model {
        let nreg = 1 + rng.below(3) as usize;
        let mut classes: Vec<Class> = (0..1 + rng.below(5))
            .map(|_| {
                let r = rng.below(nreg as u64) as usize;
                random_class(rng, r)
            })
            .collect();
        classes.sort_by_key(|c| (c.region, c.allowed, c.off, c.any, c.packable, c.io));
        classes.dedup_by_key(|c| (c.region, c.allowed, c.off, c.any, c.packable, c.io));
        let mut m = model(classes);
        m.regions = (0..nreg)
            .map(|r| Region {
                pxb_free: if r > 0 && rng.below(3) == 0 { 32 } else { 0 },
                new_pxb: r > 0,
                bridges_unwindowed: rng.below(2) as u32,
                ..Region::default()
            })
            .collect();
        m.spare = rng.below(4) as u32;
        m.root_free_functions = rng.below(3) as u32;
        m.bus_used = [0, 0, 150, 220][rng.below(4) as usize];
        m.io_used = rng.below(6) as u32;
        if rng.below(6) == 0 {
            m.root_bus_room = 20 + rng.below(40) as u32;
        }
        m
    }

    /// Wherever the argument settles a model, the solver finds the same plan counts.
    #[test]
    fn settled_models_are_the_solvers_answers() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let (mut settled, mut tried) = (0, 0);
        for _ in 0..3000 {
            let m = random_model(&mut rng);
            tried += 1;
            let Some(fast) = settle(&m) else { continue };
            settled += 1;
            let solved = super::super::solve(&m).expect("solves");
            assert_eq!(read_by_plans(&fast), read_by_plans(&solved), "{m:?}");
        }
        // The generator must exercise the settled path and the solver's.
        assert!(settled > tried / 5 && settled < tried, "{settled} of {tried}");
    }

    #[test]
    fn a_free_bridge_slot_leaves_an_any_unit_to_the_solver() {
        let bridged = class(1, [false, false, false, true], false, false);
        let either = class(2, [true, false, false, true], false, true);
        assert!(settle(&model(vec![either.clone()])).is_some());
        assert!(settle(&model(vec![either, bridged])).is_none());
    }

    #[test]
    fn off_units_go_integrated_and_on_units_to_ports() {
        let m = model(vec![
            class(3, [true, true, false, false], true, false),
            class(4, [false, false, true, false], false, false),
        ]);
        let c = settle(&m).expect("settles");
        assert_eq!(c.placed, [[3, 0, 0, 0], [0, 0, 4, 0]]);
        assert_eq!((c.cost, c.root_ports, c.root_port_slots), (4, 4, 1));
    }
}
