//! Settling a program without the solver: where a counting argument proves which answer is
//! optimal, and proves that every optimum agrees with it on what the assigner reads, the
//! program is neither built nor solved. Any other model goes to the solver.
//!
//! The argument, on the models it takes (no adoption, no pinned `bus_nr`, no free port of a
//! NUMA node; conventional units of region 0 on bridges only where one answer hosts them,
//! see [`hosting`]; a binding `pcie.0` budget only where [`off_the_root`] settles it):
//!
//! - *A relaxation.* Leave out the budgets (`pcie.0` slots, bus numbers, I/O windows).
//!   Then an integrated place costs nothing; a unit on a port costs a port, new (1000) or
//!   existing and free (nothing, as far as the existing ones go: the most of them the
//!   R-HP-PORT rows let the units use); new bridges cost `⌈(bridged − free bridge slots) /
//!   31⌉` and their ports. New expanders and switches only add cost there, and a NUMA
//!   node's spare ports cost 1001 (O-TIE) against 1000 for a root port, so none is used.
//! - *Its optimum.* Every unit that may be integrated goes there; each other unit has
//!   exactly one place (`hotplug` and the bus kind decide between off port, port and
//!   bridge). That is the least cost of the relaxation, and among its least-cost answers
//!   the only one with every integrable unit integrated: O-TIE's last tie (1/1024 per unit
//!   that could be integrated and is not, below every other tie) picks it where a free
//!   existing port or bridge slot would take such a unit for nothing. The counts the
//!   assigner reads (placements, root ports, new expanders and switches, hosted units)
//!   follow and are the least their cost allows.
//! - *Meeting the bound.* The left-out rows only remove answers. When this one keeps within
//!   them with no slack, it is optimal for the whole program; and slack costs more (1e6
//!   against 1000 per controller) than the whole answer, so every optimum of the program is
//!   an optimum of the relaxation, and the ties pick this one, on what the assigner reads
//!   (root ports take the fewest `pcie.0` slots: O-TIE's last tie counts those slots too, so
//!   an expander added after them takes the lowest free slot).
//!
//! The answer is given as [`Counts::read`] would read it (the counts the program leaves out
//! follow by the same formulas), so the plan is byte for byte the one the solver's answer
//! gives. Counts no plan step reads may differ from the solver's among equal optima: which
//! kind of existing port serves which unit (the assigner hands them out itself), the I/O
//! windows (the least here), and the slots of root ports under a kept slot budget.

use super::budgets::Budgets;
use super::counts::Counts;
use super::model::{Model, Place, PLACES};

/// What the units of region 0 ask of ports and bridges, integrated units aside.
#[derive(Debug, Clone, Copy, Default)]
struct Demand {
    /// Units on `hotplug=off` ports.
    off: u32,
    /// `on` units on ports.
    on: u32,
    /// `any` units on ports.
    any: u32,
    /// Units on bridges.
    bridged: u32,
}

/// New bridges region `r` needs for `bridged` units, after its free bridge slots.
fn new_bridges(m: &Model, r: usize, bridged: u32) -> u32 {
    bridged
        .saturating_sub(m.regions[r].bridge_free)
        .div_ceil(m.bridge_cap.max(1))
}

/// What region 0 adds and uses for a demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Supply {
    /// New root ports on `pcie.0`.
    root_ports: u32,
    /// New bridges.
    bridges: u32,
    /// Existing free hot-pluggable and `hotplug=off` ports used.
    used_on: u32,
    used_off: u32,
}

/// Region 0's supply for `d`: every new port is a root port, after the most existing free
/// ports the R-HP-PORT and R-BUSNR rows let the units use.
fn region0(m: &Model, d: Demand) -> Supply {
    let g = &m.regions[0];
    let bridges = new_bridges(m, 0, d.bridged);
    let other = d.on + d.any + bridges + m.spare;
    let flexible = d.any + bridges;
    let used_on = if g.free_on == 0 {
        0
    } else if g.free_on_endpoint_only > 0 {
        let endpoints = g.free_on - g.free_on_endpoint_only + d.on + d.any + m.spare;
        g.free_on.min(other).min(endpoints)
    } else {
        g.free_on.min(other)
    };
    let used_off = if g.free_off == 0 {
        0
    } else if g.free_off_endpoint_only > 0 {
        let endpoints = g.free_off - g.free_off_endpoint_only + d.off + d.any;
        g.free_off.min(d.off + flexible).min(endpoints)
    } else {
        g.free_off.min(d.off + flexible)
    };
    // Both kinds together serve the demand once (the sum row).
    let used_off = used_off.min(d.off + other - used_on);
    Supply {
        root_ports: d.off + other - used_on - used_off,
        bridges,
        used_on,
        used_off,
    }
}

/// The relaxation's placement: integrated where allowed, else the one place a class has.
struct Placement {
    placed: Vec<[u32; 4]>,
    /// Region 0's demand.
    demand: Demand,
    /// Per region, units on ports and on bridges.
    on_ports: Vec<u32>,
    bridged: Vec<u32>,
    /// Per region, bridged units with I/O BARs.
    io_bridged: Vec<u32>,
    /// Units with I/O BARs on ports.
    io_ports: u32,
    /// Integrated units with a slot each, and packable ones.
    own_slots: u32,
    packed: u32,
}

impl Placement {
    fn of(m: &Model) -> Option<Placement> {
        let nreg = m.regions.len();
        let mut p = Placement {
            placed: Vec::with_capacity(m.classes.len()),
            demand: Demand::default(),
            on_ports: vec![0; nreg],
            bridged: vec![0; nreg],
            io_bridged: vec![0; nreg],
            io_ports: 0,
            own_slots: 0,
            packed: 0,
        };
        for c in &m.classes {
            let mut row = [0u32; 4];
            if c.may(Place::Integrated) {
                row[Place::Integrated as usize] = c.n;
                if c.packable {
                    p.packed += c.n;
                } else {
                    p.own_slots += c.n;
                }
                p.placed.push(row);
                continue;
            }
            let mut only = PLACES.iter().filter(|&&q| c.may(q));
            let q = *only.next()?;
            if only.next().is_some() {
                return None;
            }
            row[q as usize] = c.n;
            p.placed.push(row);
            let r = c.region;
            if q == Place::Bridge {
                p.bridged[r] += c.n;
                p.io_bridged[r] += if c.io { c.n } else { 0 };
            } else {
                p.on_ports[r] += c.n;
                p.io_ports += if c.io { c.n } else { 0 };
            }
            if r == 0 {
                match (q, c.any) {
                    (Place::Bridge, _) => p.demand.bridged += c.n,
                    (Place::OffPort, _) => p.demand.off += c.n,
                    (_, true) => p.demand.any += c.n,
                    (_, false) => p.demand.on += c.n,
                }
            }
        }
        Some(p)
    }
}

/// Where region 0's units on bridges go when a NUMA node has bridge slots to spare.
///
/// A NUMA region's bridges hold its own units first; its fewest bridges for those may leave
/// slots free, and units without a NUMA node may fill them (`hosted`) instead of taking
/// bridges of region 0. Another bridge in a NUMA region costs at least what one in region 0
/// costs (a bridge and a port), and O-TIE prefers the root port on `pcie.0` to the
/// expander's; so the least cost hosts as many as the spare slots take. Settled here when
/// the answer is the only one of that cost: no unit has to be hosted (`Some(None)`), or one
/// region alone has slots to spare, they take every bridged unit of region 0, and region 0
/// has no free bridge slot of its own that would take them for nothing too (`Some(Some((
/// region, units, of which with I/O BARs)))`). Otherwise which units go where is a tie the
/// solver breaks: `None`.
fn hosting(m: &Model, p: &Placement) -> Option<Option<(usize, u32, u32)>> {
    if p.bridged[0] == 0 {
        return Some(None);
    }
    let spare = |r: usize| numa_spare(m, p, r);
    let mut hosts = (1..m.regions.len()).filter(|&r| spare(r) > 0);
    let Some(r) = hosts.next() else {
        return Some(None);
    };
    if hosts.next().is_some() || m.regions[0].bridge_free > 0 || p.bridged[0] > spare(r) {
        return None;
    }
    Some(Some((r, p.bridged[0], p.io_bridged[0])))
}

/// Slots a NUMA region's fewest bridges for its own units leave free.
fn numa_spare(m: &Model, p: &Placement, r: usize) -> u32 {
    let room = new_bridges(m, r, p.bridged[r]) * m.bridge_cap + m.regions[r].bridge_free;
    room.saturating_sub(p.bridged[r])
}

/// R-ROOT binds by `over` slots: moves that many conventional `any` units from `pcie.0` to
/// bridge slots region 0 has anyway (its `bridges` new ones hold them with what they hold
/// already), where that is the only least answer.
///
/// Each such unit frees a slot and costs nothing; every other way to free one costs a
/// controller (a port for an `off` or `any` unit, an expander) or a root port off `pcie.0`
/// (O-TIE: a NUMA node's expander), far above the last tie (1/1024 per unit not
/// integrated). So the least answer moves exactly `over` units, and it is the only one
/// when nothing else frees a slot for nothing: no free existing port in region 0, no spare
/// slot on a NUMA node's bridges, no packable unit that could leave for a bridge (packed
/// slots free a slot per 8 or less), and one class to move from (or all of them move).
fn off_the_root(m: &Model, p: &mut Placement, over: u32, bridges: u32) -> Option<()> {
    let g = &m.regions[0];
    if g.free_on + g.free_off > 0 || (1..m.regions.len()).any(|r| numa_spare(m, p, r) > 0) {
        return None;
    }
    let leaves =
        |c: &super::Class| c.region == 0 && c.may(Place::Integrated) && c.may(Place::Bridge);
    if m.classes.iter().any(|c| leaves(c) && c.packable) {
        return None;
    }
    let movable: Vec<usize> = (0..m.classes.len())
        .filter(|&i| leaves(&m.classes[i]))
        .collect();
    let total: u32 = movable.iter().map(|&i| m.classes[i].n).sum();
    if over > total
        || (movable.len() > 1 && over < total)
        || new_bridges(m, 0, p.bridged[0] + over) != bridges
    {
        return None;
    }
    let mut left = over;
    for i in movable {
        let (c, take) = (&m.classes[i], m.classes[i].n.min(left));
        left -= take;
        p.placed[i][Place::Integrated as usize] -= take;
        p.placed[i][Place::Bridge as usize] += take;
        p.own_slots -= take;
        p.bridged[0] += take;
        p.io_bridged[0] += if c.io { take } else { 0 };
    }
    Some(())
}

/// The proven optimum of `m` when the counting argument settles it; `None` sends the model to
/// the solver.
pub(crate) fn settle(m: &Model) -> Option<Counts> {
    let nreg = m.regions.len();
    let numa_free = |g: &super::Region| g.free_on > 0 || g.free_off > 0;
    // A pinned `bus_nr` places new bridges by hierarchy and range (`ranges.rs`).
    if m.adopt.is_some()
        || m.root_bus_room < m.bus_max
        || !m.caps.is_empty()
        || m.regions.iter().skip(1).any(numa_free)
    {
        return None;
    }
    let mut p = Placement::of(m)?;
    let host = hosting(m, &p)?;
    if let Some((r, n, io)) = host {
        p.demand.bridged -= n;
        p.bridged[0] -= n;
        p.bridged[r] += n;
        p.io_bridged[0] -= io;
        p.io_bridged[r] += io;
    }
    let cap = m.bridge_cap.max(1);
    let s = region0(m, p.demand);
    let root_ports = s.root_ports;
    let mut bridges = vec![s.bridges];
    let (mut used_on, mut used_off) = (vec![0u32; nreg], vec![0u32; nreg]);
    (used_on[0], used_off[0]) = (s.used_on, s.used_off);
    let mut region_ports = vec![0u32; nreg];
    let mut region_expanders = vec![0u32; nreg];
    for r in 1..nreg {
        // Hosted units fill slots the region's own units leave (`hosting`): no bridge more.
        let own = p.bridged[r] - host.filter(|h| h.0 == r).map_or(0, |h| h.1);
        bridges.push(new_bridges(m, r, own));
        let need = p.on_ports[r] + bridges[r];
        region_ports[r] = need;
        region_expanders[r] = need
            .saturating_sub(m.regions[r].pxb_free)
            .div_ceil(m.pxb_cap.max(1));
    }
    let numa_ports: u32 = region_ports.iter().sum();
    let numa_expanders: u32 = region_expanders.iter().sum();
    let all_bridges: u32 = bridges.iter().sum();
    let cost = root_ports + numa_ports + all_bridges + numa_expanders;
    let root_port_slots = root_ports
        .saturating_sub(m.root_free_functions)
        .div_ceil(m.ports_per_slot.max(1));
    let packed_slots = p.packed.div_ceil(m.int_per_slot.max(1));
    // Within the left-out rows, with no slack, and cheaper than any slack.
    let budgets = Budgets::of(m, false);
    let buses = cost + m.bus_used;
    let mut slots = p.own_slots + packed_slots + root_port_slots + numa_expanders;
    if budgets.root_slots && slots > m.root_free_slots && host.is_none() {
        let over = slots - m.root_free_slots;
        off_the_root(m, &mut p, over, bridges[0])?;
        slots -= over;
    }
    if cost >= 900
        || (budgets.root_slots && slots > m.root_free_slots)
        || (budgets.bus_numbers && buses > m.bus_max)
    {
        return None;
    }
    let mut windows = 0u32;
    for (r, g) in m.regions.iter().enumerate() {
        let w = p.io_bridged[r]
            .saturating_sub(g.bridge_free_io)
            .div_ceil(cap);
        if budgets.io_windows && w > bridges[r] + g.bridges_unwindowed {
            return None;
        }
        windows += w;
    }
    let io_windows = p.io_ports + windows + m.io_used;
    if budgets.io_windows && io_windows > m.io_max {
        return None;
    }
    let (mut hosted_io, mut hosted) = (vec![0; nreg], vec![0; nreg]);
    if let Some((r, n, io)) = host {
        (hosted_io[r], hosted[r]) = (io, n - io);
    }
    Some(Counts {
        placed: p.placed,
        root_ports,
        root_port_slots,
        region_ports,
        bridges,
        used_on,
        used_off,
        region_expanders,
        hosted_io,
        hosted,
        cost,
        io_windows,
        int_slots: p.own_slots + packed_slots,
        optimal: true,
        ..Counts::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ilp::model::tests::{class, model};
    use crate::ilp::model::{Class, Region};

    /// The counts a plan is made from (what the assigner reads); the slots of root ports
    /// only where an expander takes a slot after them.
    fn read_by_plans(c: &Counts, slot_budget: bool) -> impl PartialEq + std::fmt::Debug {
        let expanders = c.expanders + c.region_expanders.iter().sum::<u32>();
        let port_slots = (!slot_budget || expanders > 0).then_some(c.root_port_slots);
        (
            c.placed.clone(),
            (c.root_ports, port_slots, c.expanders, c.switches),
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
            (_, 6) => (
                [false, false, false, true],
                false,
                region > 0 && rng.below(2) == 0,
            ),
            _ => (
                [false, false, true, false],
                false,
                region > 0 && rng.below(2) == 0,
            ),
        };
        Class {
            region,
            packable: allowed[0] && rng.below(3) == 0,
            io: rng.below(3) == 0,
            ..class(1 + rng.below(30) as u32, allowed, off, any)
        }
    }

    fn random_model(rng: &mut Rng) -> Model {
        let nreg = 1 + rng.below(3) as usize;
        let mut classes: Vec<Class> = (0..1 + rng.below(6))
            .map(|_| {
                let r = rng.below(nreg as u64) as usize;
                random_class(rng, r)
            })
            .collect();
        let key = |c: &Class| (c.region, c.allowed, c.off, c.any, c.packable, c.io);
        classes.sort_by_key(key);
        classes.dedup_by_key(|c| key(c));
        let mut m = model(classes);
        m.regions = (0..nreg)
            .map(|r| {
                let bridge_free = if rng.below(4) == 0 {
                    1 + rng.below(3)
                } else {
                    0
                };
                Region {
                    pxb_free: if r > 0 && rng.below(3) == 0 { 32 } else { 0 },
                    new_pxb: r > 0,
                    bridge_free: bridge_free as u32,
                    bridge_free_io: rng.below(bridge_free + 1) as u32,
                    bridges_unwindowed: rng.below(2) as u32,
                    ..Region::default()
                }
            })
            .collect();
        let g = &mut m.regions[0];
        if rng.below(3) == 0 {
            g.free_on = rng.below(3) as u32;
            g.free_off = rng.below(3) as u32;
            g.free_on_endpoint_only = rng.below(u64::from(g.free_on) + 1) as u32;
            g.free_off_endpoint_only = rng.below(u64::from(g.free_off) + 1) as u32;
        }
        m.spare = rng.below(4) as u32;
        m.root_free_slots = 20 + rng.below(11) as u32;
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
        let (mut settled, mut budgeted, mut with_ports, mut with_slots) = (0, 0, 0, 0);
        let (mut hosting, mut moved) = (0, 0);
        let tried = 15_000;
        for _ in 0..tried {
            let m = random_model(&mut rng);
            let Some(fast) = settle(&m) else { continue };
            settled += 1;
            let slot_budget = Budgets::of(&m, false).root_slots;
            budgeted += u32::from(slot_budget);
            with_ports += u32::from(m.regions[0].free_on + m.regions[0].free_off > 0);
            with_slots += u32::from(m.regions.iter().any(|g| g.bridge_free > 0));
            hosting += u32::from(fast.hosted.iter().chain(&fast.hosted_io).any(|&n| n > 0));
            let left_root = |(c, at): (&Class, &[u32; 4])| c.may(Place::Integrated) && at[3] > 0;
            moved += u32::from(m.classes.iter().zip(&fast.placed).any(left_root));
            let solved = super::super::solve(&m).expect("solves");
            assert_eq!(
                read_by_plans(&fast, slot_budget),
                read_by_plans(&solved, slot_budget),
                "{m:?}"
            );
        }
        // The generator must exercise the settled path, the solver's, the slot budget, free
        // existing ports and bridge slots, hosting, and units leaving `pcie.0` for bridges.
        assert!(
            settled > tried / 5 && settled < tried,
            "{settled} of {tried}"
        );
        let exercised = [budgeted, with_ports, with_slots, hosting, moved];
        eprintln!("settled {settled} of {tried}; exercised {exercised:?}");
        assert!(exercised.iter().all(|&n| n > 50), "{exercised:?}");
    }

    /// O-TIE's last tie: a unit that may be integrated is, even where a free bridge slot or
    /// an existing free port would take it for nothing; the solver agrees.
    #[test]
    fn free_places_do_not_draw_integrable_units() {
        let either = class(2, [true, false, false, true], false, true);
        let bridged = class(1, [false, false, false, true], false, false);
        let mut in_a_new_bridge = model(vec![either.clone(), bridged]);
        let mut by_a_free_slot = model(vec![either]);
        by_a_free_slot.regions[0].bridge_free = 1;
        let mut by_a_free_port = model(vec![class(2, [true, true, false, false], true, false)]);
        by_a_free_port.regions[0].free_off = 1;
        for m in [
            &mut in_a_new_bridge,
            &mut by_a_free_slot,
            &mut by_a_free_port,
        ] {
            let c = settle(m).expect("settles");
            assert_eq!(c.placed[0], [2, 0, 0, 0], "{m:?}");
            let solved = super::super::solve(m).expect("solves");
            assert_eq!((solved.placed, solved.cost), (c.placed, c.cost), "{m:?}");
        }
        // An off unit that may only take a port takes the free one.
        by_a_free_port
            .classes
            .push(class(1, [false, true, false, false], true, false));
        let c = settle(&by_a_free_port).expect("settles");
        assert_eq!((c.cost, c.root_ports, c.used_off[0]), (0, 0, 1));
    }

    /// A NUMA node's bridge could host region 0's conventional units: settled while none of
    /// them sits on a bridge (they stay integrated, as the solver has them), and while one
    /// node's spare slots take them all; left to the solver where the hosting is a tie.
    #[test]
    fn numa_bridges_host_region_0_where_one_answer_is_least() {
        let either = class(2, [true, false, false, true], false, true);
        let numa_bridged = Class {
            region: 1,
            ..class(1, [false, false, false, true], false, false)
        };
        let mut m = model(vec![either, numa_bridged]);
        m.regions.push(Region {
            new_pxb: true,
            ..Region::default()
        });
        m.float_ports = vec![0, 0];
        let c = settle(&m).expect("settles");
        let solved = super::super::solve(&m).expect("solves");
        assert_eq!(read_by_plans(&c, false), read_by_plans(&solved, false));
        assert_eq!((c.placed[0], c.cost), ([2, 0, 0, 0], 3));
        // One conventional unit of region 0 must sit on a bridge: it takes a slot of the NUMA
        // node's bridge rather than a bridge (and root port) of its own, as the solver has it.
        m.classes
            .insert(0, class(1, [false, false, false, true], false, false));
        let c = settle(&m).expect("settles");
        let solved = super::super::solve(&m).expect("solves");
        assert_eq!(read_by_plans(&c, false), read_by_plans(&solved, false));
        assert_eq!((c.hosted[1], c.bridges.clone(), c.cost), (1, vec![0, 1], 3));
        // More than the node's bridge has to spare: which units leave is the solver's tie.
        m.classes[0].n = 31;
        assert!(settle(&m).is_none());
        // Two nodes with slots to spare: which one hosts is the solver's tie.
        m.classes[0].n = 1;
        m.classes.push(Class {
            region: 2,
            ..class(1, [false, false, false, true], false, false)
        });
        m.regions.push(m.regions[1].clone());
        m.float_ports.push(0);
        assert!(settle(&m).is_none());
    }

    /// `pcie.0` is two slots short: two conventional `any` units leave it for the bridge
    /// region 0 needs anyway, as the solver has it; with two such classes, which one gives
    /// them up is the solver's tie.
    #[test]
    fn a_full_root_bus_moves_units_to_a_bridge_it_has() {
        let mut m = model(vec![
            class(1, [false, false, false, true], false, false),
            class(3, [true, false, false, true], false, true),
            class(28, [true, false, false, false], true, false),
        ]);
        m.root_free_slots = 30;
        let c = settle(&m).expect("settles");
        assert_eq!(c.placed[1], [1, 0, 0, 2]);
        assert_eq!(
            (c.cost, c.bridges[0], c.root_ports, c.int_slots),
            (2, 1, 1, 29)
        );
        let solved = super::super::solve(&m).expect("solves");
        assert_eq!(read_by_plans(&c, true), read_by_plans(&solved, true));
        m.classes.insert(
            2,
            Class {
                io: true,
                ..class(1, [true, false, false, true], false, true)
            },
        );
        m.root_free_slots = 31;
        assert!(settle(&m).is_none());
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
