//! The integer program.
//!
//! Devices are not variables one by one: interchangeable devices form *classes* (same kind,
//! hotplug requirement, multifunction-group or not, NUMA region), and the program decides how
//! many of each class go to each kind of place, and how many controllers of each kind exist.
//! Concrete addresses are chosen afterwards by `assign`.
//!
//! Variables (all non-negative integers):
//! - `v[c][p]`: units of class `c` placed as `p` (integrated, hot-pluggable port, `hotplug=off`
//!   port, bridge slot), only for placements the rules allow (D-OFF, D-ON, D-NUMA, R-RP);
//! - `r0` root ports on `pcie.0`, `k0` `pcie.0` slots holding them (R-RP-PACK), `ks` packed
//!   integrated slots (R-INT-SLOT);
//! - per NUMA region: `t` root ports on its expander, `b` bridges, `eon`/`eoff` existing free
//!   ports used; global: `x` new expanders, `tx` root ports on them, `w` switches, `d`
//!   downstream ports (R-PXB, R-SWITCH, R-BRIDGE);
//! - `ss`, `sb`, `si`: elastic slack on the `pcie.0` slot, bus-number and I/O-window budgets,
//!   priced so that any slack means infeasible; their values explain why (R-ROOT, R-BUSNR, R-IO).
//!
//! Objective (O-COST, O-TIE): `1e6·slack + 1000·controllers + 20·(x + w) + ports not on pcie.0`.

use good_lp::{
    constraint, microlp, variable, variables, Expression, ResolutionError, Solution,
    SolutionStatus, SolverModel, Variable, WithTimeLimit,
};

/// Where a unit may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Place {
    /// Function 0 of a `pcie.0` slot (R-INTEGRATED).
    Integrated = 0,
    /// A `hotplug=off` port (D-OFF).
    OffPort = 1,
    /// A port (hot-pluggable for `on`).
    Port = 2,
    /// A `pcie-pci-bridge` slot (D-ON for conventional PCI).
    Bridge = 3,
}

pub(crate) const PLACES: [Place; 4] = [
    Place::Integrated,
    Place::OffPort,
    Place::Port,
    Place::Bridge,
];

/// A class of interchangeable units.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Class {
    /// Units in the class.
    pub n: u32,
    /// Allowed placements.
    pub allowed: [bool; 4],
    /// Region index (0 = anywhere; others = a NUMA node's expander).
    pub region: usize,
    /// `hotplug` is `off`.
    pub off: bool,
    /// `hotplug` is `any`.
    pub any: bool,
    /// Single devices that may share an integrated slot (pack_integrated).
    pub packable: bool,
    /// Some device of the unit has an I/O BAR (rule R-IO).
    pub io: bool,
}

/// Per-region resources that already exist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Region {
    /// Free existing hot-pluggable ports.
    pub e_on: u32,
    /// Free existing `hotplug=off` ports.
    pub e_off: u32,
    /// Of `e_on`, those only an endpoint may use (no bus number left for a bridge).
    pub e_on_ep: u32,
    /// Of `e_off`, those only an endpoint may use.
    pub e_off_ep: u32,
    /// Free existing hot-pluggable bridge slots.
    pub bridge_free: u32,
    /// Of those, slots on bridges that already have an I/O window (R-IO).
    pub bridge_free_io: u32,
    /// Existing bridges with free slots but no I/O window yet.
    pub bridges_unwindowed: u32,
    /// Root-port positions free on existing expanders of this region.
    pub pxb_free: u32,
    /// Whether a new expander must be added for this region (NUMA region without one).
    pub new_pxb: bool,
}

/// The numbers the program is built from. Equal models give equal solutions, so this is
/// also the key of the solution cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Model {
    pub classes: Vec<Class>,
    pub regions: Vec<Region>,
    /// Free `pcie.0` slots.
    pub s0: u32,
    /// Free functions in `pcie.0` slots already holding root ports.
    pub f0: u32,
    /// Root ports per slot.
    pub ports_per_slot: u32,
    /// Integrated functions per slot when packing.
    pub int_per_slot: u32,
    /// Root-port positions on one expander.
    pub pxb_cap: u32,
    /// Downstream ports per switch.
    pub switch_cap: u32,
    /// Slots per bridge.
    pub bridge_cap: u32,
    /// Free downstream positions on existing switches.
    pub upstream_free: u32,
    /// Spare hot-pluggable ports wanted.
    pub spare: u32,
    /// Bus numbers already used by existing controllers.
    pub bus_used: u32,
    /// Bus numbers available.
    pub bus_max: u32,
    /// Bus numbers left below the lowest pinned expander's `bus_nr` for the `pcie.0`
    /// hierarchy (R-BUSNR); `u32::MAX` without pinned expanders.
    pub root_bus_room: u32,
    /// I/O windows existing controllers already take.
    pub io_used: u32,
    /// I/O windows the firmware can give bridges.
    pub io_max: u32,
    /// Size of one window in KiB.
    pub io_window_kib: u32,
}

/// The solver's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub v: Vec<[u32; 4]>,
    pub r0: u32,
    pub k0: u32,
    pub x: u32,
    pub tx: u32,
    pub w: u32,
    pub d: u32,
    pub t: Vec<u32>,
    pub b: Vec<u32>,
    pub eon: Vec<u32>,
    pub eoff: Vec<u32>,
    /// New expanders per NUMA region.
    pub xr: Vec<u32>,
    /// Conventional units without a NUMA node, with I/O BARs, hosted on each NUMA region's bridges.
    pub share_io: Vec<u32>,
    /// The same without I/O BARs.
    pub share: Vec<u32>,
    /// Controllers added.
    pub cost: u32,
    /// Missing `pcie.0` slots (0 when feasible).
    pub slack_slots: u32,
    /// Missing bus numbers (0 when feasible).
    pub slack_bus: u32,
    /// Missing I/O windows (0 when feasible).
    pub slack_io: u32,
    /// I/O windows the plan uses.
    pub io_windows: u32,
    /// `pcie.0` slots the plan uses for integrated endpoints.
    pub int_slots: u32,
    /// Slots the solver was proven optimal on.
    pub optimal: bool,
}

/// Seconds the solver may spend on one guest.
pub(crate) const TIME_LIMIT_S: f64 = 2.0;

fn int(vars: &mut good_lp::ProblemVariables, max: u32) -> Variable {
    vars.add(variable().integer().min(0).max(f64::from(max)))
}

fn sum<I: IntoIterator<Item = Expression>>(it: I) -> Expression {
    it.into_iter().fold(Expression::from(0.0), |a, b| a + b)
}

/// Builds and solves the program.
pub(crate) fn solve(m: &Model) -> Result<Counts, String> {
    solve_for(m, None)
}

/// The same program with the objective swapped (what-if `--max`): with no slack allowed,
/// maximise the units of class `grow` (at least its `n`), then minimise cost as usual. The
/// class's count in the answer is the most that fit.
pub(crate) fn solve_max(m: &Model, grow: usize) -> Result<Counts, String> {
    solve_for(m, Some(grow))
}

fn solve_for(m: &Model, grow: Option<usize>) -> Result<Counts, String> {
    let big = 4096u32;
    let mut vars = variables!();
    let nreg = m.regions.len();
    let v: Vec<[Option<Variable>; 4]> = m
        .classes
        .iter()
        .enumerate()
        .map(|(ci, c)| {
            let mut row = [None; 4];
            for p in PLACES {
                if c.allowed[p as usize] {
                    row[p as usize] =
                        Some(int(&mut vars, if grow == Some(ci) { big } else { c.n }));
                }
            }
            row
        })
        .collect();
    let r0 = int(&mut vars, big);
    // `k0` is not bounded by `s0`: the slot budget below is elastic (`ss`), and a bound there
    // would make a request that needs one more slot than there is an unexplained failure.
    // Upper bounds on what any solution can use. When even the most the request could need
    // fits, the budget constraint cannot bind and is left out, with its slack, and so are
    // expanders and switches when root ports on pcie.0 can hold every port (they could only
    // add cost). A smaller program has far fewer branch-and-bound nodes; the answer is the same.
    let n_where = |f: &dyn Fn(&Class) -> bool| -> u32 {
        m.classes.iter().filter(|c| f(c)).map(|c| c.n).sum()
    };
    let may_integrate = n_where(&|c| c.allowed[Place::Integrated as usize]);
    let portable =
        n_where(&|c| c.allowed[Place::Port as usize] || c.allowed[Place::OffPort as usize]);
    let bridges_max: u32 = (0..nreg)
        .map(|r| {
            let bridged: u32 = m
                .classes
                .iter()
                .filter(|c| c.region == r && c.allowed[Place::Bridge as usize])
                .map(|c| c.n)
                .sum();
            bridged.div_ceil(m.bridge_cap.max(1))
        })
        .sum();
    let io_bridges_max: u32 = (0..nreg)
        .map(|r| {
            let bridged: u32 = m
                .classes
                .iter()
                .filter(|c| c.region == r && c.io && c.allowed[Place::Bridge as usize])
                .map(|c| c.n)
                .sum();
            if bridged == 0 {
                0
            } else {
                bridged.div_ceil(m.bridge_cap.max(1)) + m.regions[r].bridges_unwindowed
            }
        })
        .sum();
    let ports_max = portable + m.spare + bridges_max;
    let numa_pxbs = m
        .regions
        .iter()
        .skip(1)
        .filter(|r| r.new_pxb || r.pxb_free == 0)
        .count() as u32;
    let roomy = grow.is_none()
        && may_integrate + ports_max.div_ceil(m.ports_per_slot.max(1)) + numa_pxbs <= m.s0
        && ports_max + bridges_max <= m.root_bus_room;
    let bus_room = roomy && m.bus_used + ports_max + bridges_max + numa_pxbs <= m.bus_max;
    let io_portable = n_where(&|c| {
        c.io && (c.allowed[Place::Port as usize] || c.allowed[Place::OffPort as usize])
    });
    let io_room = grow.is_none() && m.io_used + io_portable + io_bridges_max <= m.io_max;
    let opt = |vars: &mut good_lp::ProblemVariables, keep: bool| {
        if keep {
            Some(int(vars, big))
        } else {
            None
        }
    };
    let (xv, txv, wv, dv) = (
        opt(&mut vars, !roomy),
        opt(&mut vars, !roomy),
        opt(&mut vars, !roomy),
        opt(&mut vars, !roomy),
    );
    let (k0v, ksv) = (opt(&mut vars, !roomy), opt(&mut vars, !roomy));
    // Slack is continuous: at any integer placement the least slack is integer anyway, and
    // branch and bound then never has to search for a feasible point (any placement is one).
    let slack = |vars: &mut good_lp::ProblemVariables, keep: bool| {
        keep.then(|| vars.add(variable().min(0).max(f64::from(big))))
    };
    let ssv = slack(&mut vars, !roomy);
    let sbv = slack(&mut vars, !bus_room);
    let siv = slack(&mut vars, !io_room);
    let ex = |o: Option<Variable>| o.map(Expression::from).unwrap_or_default();
    let (x, tx, w, d) = (ex(xv), ex(txv), ex(wv), ex(dv));
    let (k0, ks, ss, sb, si) = (ex(k0v), ex(ksv), ex(ssv), ex(sbv), ex(siv));
    // Only the variables a region can use: expander ports for NUMA regions, bridges where
    // some class may sit on one, existing ports where there are some.
    let has_bridge = |r: usize| {
        m.classes
            .iter()
            .any(|c| c.region == r && c.allowed[Place::Bridge as usize])
    };
    let tv: Vec<Option<Variable>> = (0..nreg).map(|r| opt(&mut vars, r > 0)).collect();
    let bv: Vec<Option<Variable>> = (0..nreg).map(|r| opt(&mut vars, has_bridge(r))).collect();
    let t: Vec<Expression> = tv.iter().map(|&o| ex(o)).collect();
    // Conventional units without a NUMA node may fill slots of a NUMA node's bridges
    // (with and without I/O BARs counted apart, for R-IO).
    let share_ok = |r: usize| r > 0 && has_bridge(r) && has_bridge(0);
    let shiov: Vec<Option<Variable>> = (0..nreg).map(|r| opt(&mut vars, share_ok(r))).collect();
    let shnv: Vec<Option<Variable>> = (0..nreg).map(|r| opt(&mut vars, share_ok(r))).collect();
    let shared_io = sum(shiov.iter().map(|&o| ex(o)));
    let shared_all = shared_io.clone() + sum(shnv.iter().map(|&o| ex(o)));
    let b: Vec<Expression> = bv.iter().map(|&o| ex(o)).collect();
    let bio: Vec<Option<Variable>> = (0..nreg).map(|_| opt(&mut vars, !io_room)).collect();
    let eonv: Vec<Option<Variable>> = m
        .regions
        .iter()
        .map(|r| (r.e_on > 0).then(|| int(&mut vars, r.e_on)))
        .collect();
    let eoffv: Vec<Option<Variable>> = m
        .regions
        .iter()
        .map(|r| (r.e_off > 0).then(|| int(&mut vars, r.e_off)))
        .collect();
    // Free existing ports below a NUMA node's expander may also take what has no NUMA node
    // (`geon`/`geoff`); ports only endpoints may use stay with their region.
    let geonv: Vec<Option<Variable>> = m
        .regions
        .iter()
        .enumerate()
        .map(|(r, reg)| {
            (r > 0 && reg.e_on > 0 && reg.e_on_ep == 0).then(|| int(&mut vars, reg.e_on))
        })
        .collect();
    let geoffv: Vec<Option<Variable>> = m
        .regions
        .iter()
        .enumerate()
        .map(|(r, reg)| {
            (r > 0 && reg.e_off > 0 && reg.e_off_ep == 0).then(|| int(&mut vars, reg.e_off))
        })
        .collect();
    let lent_on = sum(geonv.iter().map(|&o| ex(o)));
    let lent_off = sum(geoffv.iter().map(|&o| ex(o)));
    // Existing ports each region's consumers use; region 0 also gets the lent ones.
    let eon: Vec<Expression> = eonv
        .iter()
        .enumerate()
        .map(|(r, &o)| {
            if r == 0 {
                ex(o) + lent_on.clone()
            } else {
                ex(o)
            }
        })
        .collect();
    let eoff: Vec<Expression> = eoffv
        .iter()
        .enumerate()
        .map(|(r, &o)| {
            if r == 0 {
                ex(o) + lent_off.clone()
            } else {
                ex(o)
            }
        })
        .collect();
    let lends_on = geonv.iter().any(|o| o.is_some());
    let lends_off = geoffv.iter().any(|o| o.is_some());
    // Whether region r has existing ports of each flavour to use at all.
    let has_eon = |r: usize| eonv[r].is_some() || (r == 0 && lends_on);
    let has_eoff = |r: usize| eoffv[r].is_some() || (r == 0 && lends_off);

    let val = |p: Place, ci: usize| -> Expression {
        v[ci][p as usize].map(Expression::from).unwrap_or_default()
    };
    let in_region = |r: usize| {
        m.classes
            .iter()
            .enumerate()
            .filter(move |(_, c)| c.region == r)
    };

    // New expanders per NUMA region (a region whose node has no expander needs one; one whose
    // expander is full, or has no bus numbers left above its bus_nr, may take another).
    let xrv: Vec<Option<Variable>> = (0..nreg).map(|r| opt(&mut vars, r > 0)).collect();
    let new_numa_pxbs: Expression = sum(xrv.iter().map(|&o| ex(o)));
    let cost: Expression = r0
        + x.clone()
        + tx.clone()
        + w.clone()
        + d.clone()
        + sum(t.iter().skip(1).cloned())
        + sum(b.iter().cloned())
        + new_numa_pxbs.clone();
    let tie: Expression =
        20.0 * (x.clone() + w.clone()) + tx.clone() + d.clone() + sum(t.iter().skip(1).cloned());
    let mut objective =
        1_000_000.0 * (ss.clone() + sb.clone() + si.clone()) + 1000.0 * cost.clone() + tie;
    if let Some(g) = grow {
        let grown = sum(v[g].iter().flatten().map(|&e| e.into()));
        objective = objective - 1e9 * grown;
    }
    let mut pb = vars
        .minimise(objective)
        .using(microlp)
        .with_time_limit(TIME_LIMIT_S);

    for (ci, c) in m.classes.iter().enumerate() {
        let all = sum(PLACES.iter().map(|&p| val(p, ci)));
        if grow == Some(ci) {
            pb = pb.with(constraint!(all >= f64::from(c.n)));
        } else {
            pb = pb.with(constraint!(all == f64::from(c.n)));
        }
    }
    let mut global_new = Expression::from(0.0);
    let mut numa_new = Expression::from(0.0);
    for r in 0..nreg {
        let off_dem = sum(in_region(r)
            .filter(|(_, c)| c.off)
            .map(|(i, _)| val(Place::OffPort, i)));
        let any_port = sum(in_region(r)
            .filter(|(_, c)| c.any)
            .map(|(i, _)| val(Place::Port, i)));
        let mut other = sum(in_region(r).map(|(i, _)| val(Place::Port, i))) + b[r].clone();
        if r == 0 {
            other = other + w.clone() + f64::from(m.spare);
        }
        // Existing hotplug=off ports take `off` units and anything that does not care: `any`
        // units, bridges and switch upstreams (R-HP-PORT: hotplug=off protects only the direct
        // child). Hot-pluggable ones take all but `off` units. No port is counted twice.
        let mut flexible = any_port + b[r].clone();
        if r == 0 {
            flexible = flexible + w.clone();
        }
        let on_units = sum(in_region(r)
            .filter(|(_, c)| !c.off)
            .map(|(i, _)| val(Place::Port, i)));
        if has_eoff(r) {
            pb = pb.with(constraint!(eoff[r].clone() <= off_dem.clone() + flexible));
            if m.regions[r].e_off_ep > 0 {
                let any_units = sum(in_region(r)
                    .filter(|(_, c)| c.any)
                    .map(|(i, _)| val(Place::Port, i)));
                pb = pb.with(constraint!(
                    ex(eoffv[r])
                        <= f64::from(m.regions[r].e_off - m.regions[r].e_off_ep)
                            + off_dem.clone()
                            + any_units
                ));
            }
        }
        if eonv[r].is_some() && m.regions[r].e_on_ep > 0 {
            // Endpoint-only ports take units, or stay empty as spares.
            let spare = if r == 0 { f64::from(m.spare) } else { 0.0 };
            pb = pb.with(constraint!(
                ex(eonv[r])
                    <= f64::from(m.regions[r].e_on - m.regions[r].e_on_ep) + on_units + spare
            ));
        }
        if has_eon(r) {
            pb = pb.with(constraint!(eon[r].clone() <= other.clone()));
        }
        if has_eon(r) && has_eoff(r) {
            pb = pb.with(constraint!(
                eon[r].clone() + eoff[r].clone() <= off_dem.clone() + other.clone()
            ));
        }
        let new_ports = off_dem + other - eon[r].clone() - eoff[r].clone();
        let own_bridged = sum(in_region(r).map(|(i, _)| val(Place::Bridge, i)));
        let own_io_bridged = sum(in_region(r)
            .filter(|(_, c)| c.io)
            .map(|(i, _)| val(Place::Bridge, i)));
        let (bridged, io_bridged) = if r == 0 {
            if shiov.iter().any(|o| o.is_some()) {
                let io_units = own_io_bridged.clone();
                pb = pb.with(constraint!(shared_io.clone() <= io_units));
                pb = pb.with(constraint!(
                    shared_all.clone() - shared_io.clone()
                        <= own_bridged.clone() - own_io_bridged.clone()
                ));
            }
            (
                own_bridged - shared_all.clone(),
                own_io_bridged - shared_io.clone(),
            )
        } else {
            (
                own_bridged + ex(shiov[r]) + ex(shnv[r]),
                own_io_bridged + ex(shiov[r]),
            )
        };
        if bv[r].is_some() {
            pb = pb.with(constraint!(
                f64::from(m.bridge_cap) * b[r].clone() + f64::from(m.regions[r].bridge_free)
                    >= bridged
            ));
        }
        // Bridges holding devices with I/O BARs (filled first) are the ones that take a window.
        if let (Some(bio_r), true) = (bio[r], bv[r].is_some()) {
            // `bio` counts bridges that open a window: new ones, or existing ones without one.
            pb = pb.with(constraint!(
                f64::from(m.bridge_cap) * bio_r + f64::from(m.regions[r].bridge_free_io)
                    >= io_bridged
            ));
            pb = pb.with(constraint!(
                bio_r <= b[r].clone() + f64::from(m.regions[r].bridges_unwindowed)
            ));
        }
        if r == 0 {
            global_new = new_ports;
        } else {
            pb = pb.with(constraint!(new_ports.clone() <= t[r].clone()));
            pb = pb.with(constraint!(
                t[r].clone()
                    <= f64::from(m.regions[r].pxb_free) + f64::from(m.pxb_cap) * ex(xrv[r])
            ));
            numa_new = numa_new + new_ports;
        }
    }
    for r in 1..nreg {
        if let Some(g) = geonv[r] {
            pb = pb.with(constraint!(ex(eonv[r]) + g <= f64::from(m.regions[r].e_on)));
        }
        if let Some(g) = geoffv[r] {
            pb = pb.with(constraint!(
                ex(eoffv[r]) + g <= f64::from(m.regions[r].e_off)
            ));
        }
    }
    let numa_t = sum(t.iter().skip(1).cloned());
    pb = pb.with(constraint!(
        global_new <= r0 + tx.clone() + d.clone() + numa_t.clone() - numa_new
    ));
    if !roomy {
        pb = pb.with(constraint!(
            r0 <= f64::from(m.ports_per_slot) * k0.clone() + f64::from(m.f0)
        ));
    }
    if !roomy {
        pb = pb.with(constraint!(
            tx.clone() <= f64::from(m.pxb_cap) * x.clone() + f64::from(m.regions[0].pxb_free)
        ));
        pb = pb.with(constraint!(
            d.clone() <= f64::from(m.switch_cap) * w.clone() + f64::from(m.upstream_free)
        ));
        pb = pb.with(constraint!(
            w.clone() <= r0 + tx.clone() + eon[0].clone() + eoff[0].clone()
        ));
    }

    let packed_singles = sum(m
        .classes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.packable)
        .map(|(i, _)| val(Place::Integrated, i)));
    let own_slots = sum(m
        .classes
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.packable)
        .map(|(i, _)| val(Place::Integrated, i)));
    if !roomy {
        pb = pb.with(constraint!(
            f64::from(m.int_per_slot) * ks.clone() >= packed_singles.clone()
        ));
        let slots = own_slots.clone() + ks.clone() + k0.clone() + x.clone() + new_numa_pxbs.clone();
        pb = pb.with(constraint!(slots <= f64::from(m.s0) + ss.clone()));
    }
    let buses = r0
        + tx.clone()
        + d.clone()
        + w.clone()
        + x.clone()
        + numa_t
        + sum(b.iter().cloned())
        + new_numa_pxbs.clone()
        + f64::from(m.bus_used);
    if !bus_room {
        pb = pb.with(constraint!(buses <= f64::from(m.bus_max) + sb.clone()));
    }
    if m.root_bus_room < m.bus_max {
        // Below pcie.0 the firmware numbers from 1 up to the lowest pinned expander's bus_nr.
        // (Bridges may sit below an expander instead, so they are not counted here; a plan
        // whose bridge lands below pcie.0 without room fails validation and is reported as
        // R-BUSNR.)
        pb = pb.with(constraint!(
            r0 + d.clone() + w.clone() <= f64::from(m.root_bus_room) + sb.clone()
        ));
    }

    // R-IO: every port whose device has I/O BARs, and every bridge holding one, takes a 4 KiB window.
    let io_ports = sum(m
        .classes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.io)
        .map(|(i, _)| val(Place::Port, i) + val(Place::OffPort, i)));
    let io = io_ports.clone() + sum(bio.iter().map(|&e| ex(e))) + f64::from(m.io_used);
    if !io_room {
        pb = pb.with(constraint!(io.clone() <= f64::from(m.io_max) + si.clone()));
    }

    if grow.is_some() {
        pb = pb.with(constraint!(ss.clone() + sb.clone() + si.clone() <= 0.0));
    }
    let sol = match pb.solve() {
        Ok(s) => s,
        Err(ResolutionError::Infeasible) => {
            return Err("the integer program has no solution".into())
        }
        Err(e) => return Err(e.to_string()),
    };
    let optimal = matches!(sol.status(), SolutionStatus::Optimal);
    let get = |var: Variable| -> u32 { sol.value(var).round().max(0.0) as u32 };
    let eval = |e: &Expression| -> u32 { sol.eval(e).round().max(0.0) as u32 };
    let r0_val = get(r0);
    // Values of dropped variables follow from the others.
    let k0_val = k0v.map(get).unwrap_or_else(|| {
        r0_val
            .saturating_sub(m.f0)
            .div_ceil(m.ports_per_slot.max(1))
    });
    let ks_val = ksv
        .map(get)
        .unwrap_or_else(|| eval(&packed_singles).div_ceil(m.int_per_slot.max(1)));
    let io_val = if io_room {
        let bio_val: u32 = (0..nreg)
            .map(|r| {
                let io_bridged: u32 = m
                    .classes
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.region == r && c.io)
                    .map(|(i, _)| eval(&val(Place::Bridge, i)))
                    .sum();
                io_bridged
                    .saturating_sub(m.regions[r].bridge_free_io)
                    .div_ceil(m.bridge_cap.max(1))
            })
            .sum();
        eval(&io_ports) + bio_val + m.io_used
    } else {
        eval(&io)
    };
    let counts = Counts {
        v: v.iter()
            .map(|row| {
                let mut out = [0u32; 4];
                for p in PLACES {
                    out[p as usize] = row[p as usize].map(get).unwrap_or(0);
                }
                out
            })
            .collect(),
        r0: r0_val,
        k0: k0_val,
        x: xv.map(get).unwrap_or(0),
        tx: txv.map(get).unwrap_or(0),
        w: wv.map(get).unwrap_or(0),
        d: dv.map(get).unwrap_or(0),
        t: tv.iter().map(|&e| e.map(get).unwrap_or(0)).collect(),
        b: bv.iter().map(|&e| e.map(get).unwrap_or(0)).collect(),
        eon: eonv.iter().map(|&e| e.map(get).unwrap_or(0)).collect(),
        eoff: eoffv.iter().map(|&e| e.map(get).unwrap_or(0)).collect(),
        xr: xrv.iter().map(|&e| e.map(get).unwrap_or(0)).collect(),
        share_io: shiov.iter().map(|&e| e.map(get).unwrap_or(0)).collect(),
        share: shnv.iter().map(|&e| e.map(get).unwrap_or(0)).collect(),
        cost: sol.eval(&cost).round().max(0.0) as u32,
        slack_slots: ssv.map(get).unwrap_or(0),
        slack_bus: sbv.map(get).unwrap_or(0),
        slack_io: siv.map(get).unwrap_or(0),
        io_windows: io_val,
        int_slots: eval(&own_slots) + ks_val,
        optimal,
    };
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(classes: Vec<Class>) -> Model {
        Model {
            classes,
            regions: vec![Region::default()],
            s0: 30,
            f0: 0,
            ports_per_slot: 8,
            int_per_slot: 8,
            pxb_cap: 256,
            switch_cap: 32,
            bridge_cap: 31,
            upstream_free: 0,
            spare: 0,
            bus_used: 0,
            bus_max: 255,
            io_used: 0,
            root_bus_room: u32::MAX,
            io_max: 14,
            io_window_kib: 4,
        }
    }
    fn class(n: u32, allowed: [bool; 4], off: bool, any: bool) -> Class {
        Class {
            n,
            allowed,
            region: 0,
            off,
            any,
            packable: false,
            io: false,
        }
    }

    #[test]
    fn on_devices_cost_one_port_each() {
        let c = solve(&model(vec![class(
            5,
            [false, false, true, false],
            false,
            false,
        )]))
        .unwrap();
        assert_eq!((c.cost, c.r0, c.k0, c.slack_slots), (5, 5, 1, 0));
        assert!(c.optimal);
    }

    #[test]
    fn off_devices_integrated_cost_nothing_until_full() {
        let c = solve(&model(vec![class(
            30,
            [true, false, false, false],
            true,
            false,
        )]))
        .unwrap();
        assert_eq!((c.cost, c.slack_slots), (0, 0));
        let c = solve(&model(vec![class(
            31,
            [true, false, false, false],
            true,
            false,
        )]))
        .unwrap();
        assert_eq!(c.slack_slots, 1);
        // auto: the 31st goes to a hotplug=off port, with its slot (29 integrated + 1 port slot).
        let c = solve(&model(vec![class(
            31,
            [true, true, false, false],
            true,
            false,
        )]))
        .unwrap();
        assert_eq!((c.cost, c.slack_slots, c.v[0]), (2, 0, [29, 2, 0, 0]));
    }

    #[test]
    fn conventional_on_devices_share_a_bridge() {
        let c = solve(&model(vec![class(
            40,
            [false, false, false, true],
            false,
            false,
        )]))
        .unwrap();
        // two bridges and their two ports
        assert_eq!((c.cost, c.b[0], c.r0), (4, 2, 2));
    }

    #[test]
    fn expander_when_root_slots_run_out() {
        let mut m = model(vec![class(250, [false, false, true, false], false, false)]);
        m.s0 = 30;
        let c = solve(&m).unwrap();
        assert_eq!(c.slack_slots, 0);
        assert_eq!(c.x, 1);
        assert_eq!(c.cost, 251);
    }

    #[test]
    fn io_windows_limit() {
        let mut io_class = class(15, [false, false, true, false], false, false);
        io_class.io = true;
        let c = solve(&model(vec![io_class.clone()])).unwrap();
        assert_eq!(c.slack_io, 1);
        // With `any`, the extra ones go integrated instead.
        io_class.allowed = [true, false, true, false];
        io_class.any = true;
        let c = solve(&model(vec![io_class])).unwrap();
        assert_eq!((c.slack_io, c.cost), (0, 0));
    }

    #[test]
    fn bus_numbers_limit() {
        let c = solve(&model(vec![class(
            300,
            [false, false, true, false],
            false,
            false,
        )]))
        .unwrap();
        assert!(c.slack_bus > 0);
    }
}
