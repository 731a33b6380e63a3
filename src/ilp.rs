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
    constraint, microlp, variable, variables, Expression, ResolutionError, Solution, SolutionStatus, SolverModel,
    Variable, WithTimeLimit,
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

pub(crate) const PLACES: [Place; 4] = [Place::Integrated, Place::OffPort, Place::Port, Place::Bridge];

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
    /// Free existing hot-pluggable bridge slots.
    pub bridge_free: u32,
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
                    row[p as usize] = Some(int(&mut vars, if grow == Some(ci) { big } else { c.n }));
                }
            }
            row
        })
        .collect();
    let r0 = int(&mut vars, big);
    // Not bounded by `s0`: the slot budget below is elastic (`ss`), and a bound here would
    // make a request that needs one more slot than there is an unexplained solver failure.
    let k0 = int(&mut vars, big);
    let ks = int(&mut vars, big);
    let x = int(&mut vars, big);
    let tx = int(&mut vars, big);
    let w = int(&mut vars, big);
    let d = int(&mut vars, big);
    let ss = int(&mut vars, big);
    let sb = int(&mut vars, big);
    let si = int(&mut vars, big);
    let t: Vec<Variable> = (0..nreg).map(|_| int(&mut vars, big)).collect();
    let b: Vec<Variable> = (0..nreg).map(|_| int(&mut vars, big)).collect();
    let bio: Vec<Variable> = (0..nreg).map(|_| int(&mut vars, big)).collect();
    let eon: Vec<Variable> = m.regions.iter().map(|r| int(&mut vars, r.e_on)).collect();
    let eoff: Vec<Variable> = m.regions.iter().map(|r| int(&mut vars, r.e_off)).collect();

    let val = |p: Place, ci: usize| -> Expression { v[ci][p as usize].map(Expression::from).unwrap_or_default() };
    let in_region = |r: usize| m.classes.iter().enumerate().filter(move |(_, c)| c.region == r);

    let new_numa_pxbs: u32 = m.regions.iter().skip(1).filter(|r| r.new_pxb).count() as u32;
    let cost: Expression = r0 + x + tx + w + d + sum(t.iter().skip(1).map(|&e| e.into())) + sum(b.iter().map(|&e| e.into()))
        + f64::from(new_numa_pxbs);
    let tie: Expression = 20.0 * (x + w) + tx + d + sum(t.iter().skip(1).map(|&e| e.into()));
    let mut objective = 1_000_000.0 * (ss + sb + si) + 1000.0 * cost.clone() + tie;
    if let Some(g) = grow {
        let grown = sum(v[g].iter().flatten().map(|&e| e.into()));
        objective = objective - 1e9 * grown;
    }
    let mut pb = vars.minimise(objective).using(microlp).with_time_limit(TIME_LIMIT_S);

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
        let off_dem = sum(in_region(r).filter(|(_, c)| c.off).map(|(i, _)| val(Place::OffPort, i)));
        let any_port = sum(in_region(r).filter(|(_, c)| c.any).map(|(i, _)| val(Place::Port, i)));
        let mut other = sum(in_region(r).map(|(i, _)| val(Place::Port, i))) + b[r];
        if r == 0 {
            other = other + w + f64::from(m.spare);
        }
        // Existing hotplug=off ports take `off` units and anything that does not care: `any`
        // units, bridges and switch upstreams (R-HP-PORT: hotplug=off protects only the direct
        // child). Hot-pluggable ones take all but `off` units. No port is counted twice.
        let mut flexible = any_port + b[r];
        if r == 0 {
            flexible = flexible + w;
        }
        pb = pb.with(constraint!(eoff[r] <= off_dem.clone() + flexible));
        pb = pb.with(constraint!(eon[r] <= other.clone()));
        pb = pb.with(constraint!(eon[r] + eoff[r] <= off_dem.clone() + other.clone()));
        let new_ports = off_dem + other - eon[r] - eoff[r];
        let bridged = sum(in_region(r).map(|(i, _)| val(Place::Bridge, i)));
        pb = pb.with(constraint!(f64::from(m.bridge_cap) * b[r] + f64::from(m.regions[r].bridge_free) >= bridged));
        // Bridges holding devices with I/O BARs (filled first) are the ones that take a window.
        let io_bridged = sum(in_region(r).filter(|(_, c)| c.io).map(|(i, _)| val(Place::Bridge, i)));
        pb = pb.with(constraint!(f64::from(m.bridge_cap) * bio[r] + f64::from(m.regions[r].bridge_free) >= io_bridged));
        pb = pb.with(constraint!(bio[r] <= b[r]));
        if r == 0 {
            global_new = new_ports;
        } else {
            let cap = if m.regions[r].new_pxb { m.pxb_cap } else { m.regions[r].pxb_free };
            pb = pb.with(constraint!(new_ports.clone() <= t[r]));
            pb = pb.with(constraint!(t[r] <= f64::from(cap)));
            numa_new = numa_new + new_ports;
        }
    }
    pb = pb.with(constraint!(t[0] == 0));
    let numa_t = sum(t.iter().skip(1).map(|&e| e.into()));
    pb = pb.with(constraint!(global_new <= r0 + tx + d + numa_t.clone() - numa_new));
    pb = pb.with(constraint!(r0 <= f64::from(m.ports_per_slot) * k0 + f64::from(m.f0)));
    pb = pb.with(constraint!(tx <= f64::from(m.pxb_cap) * x + f64::from(m.regions[0].pxb_free)));
    pb = pb.with(constraint!(d <= f64::from(m.switch_cap) * w + f64::from(m.upstream_free)));
    pb = pb.with(constraint!(w <= r0 + tx + eon[0] + eoff[0]));

    let packed_singles = sum(m.classes.iter().enumerate().filter(|(_, c)| c.packable).map(|(i, _)| val(Place::Integrated, i)));
    let own_slots = sum(m.classes.iter().enumerate().filter(|(_, c)| !c.packable).map(|(i, _)| val(Place::Integrated, i)));
    pb = pb.with(constraint!(f64::from(m.int_per_slot) * ks >= packed_singles));
    let slots = own_slots.clone() + ks + k0 + x + f64::from(new_numa_pxbs);
    pb = pb.with(constraint!(slots <= f64::from(m.s0) + ss));
    let buses = r0 + tx + d + w + x + numa_t + sum(b.iter().map(|&e| e.into())) + f64::from(new_numa_pxbs + m.bus_used);
    pb = pb.with(constraint!(buses <= f64::from(m.bus_max) + sb));

    // R-IO: every port whose device has I/O BARs, and every bridge holding one, takes a 4 KiB window.
    let io = sum(m.classes.iter().enumerate().filter(|(_, c)| c.io).map(|(i, _)| val(Place::Port, i) + val(Place::OffPort, i)))
        + sum(bio.iter().map(|&e| e.into()))
        + f64::from(m.io_used);
    pb = pb.with(constraint!(io.clone() <= f64::from(m.io_max) + si));

    if grow.is_some() {
        pb = pb.with(constraint!(ss + sb + si <= 0.0));
    }
    let sol = match pb.solve() {
        Ok(s) => s,
        Err(ResolutionError::Infeasible) => return Err("the integer program has no solution".into()),
        Err(e) => return Err(e.to_string()),
    };
    let optimal = matches!(sol.status(), SolutionStatus::Optimal);
    let get = |var: Variable| -> u32 { sol.value(var).round().max(0.0) as u32 };
    let counts = Counts {
        v: v.iter().map(|row| {
            let mut out = [0u32; 4];
            for p in PLACES {
                out[p as usize] = row[p as usize].map(get).unwrap_or(0);
            }
            out
        })
        .collect(),
        r0: get(r0),
        k0: get(k0),
        x: get(x),
        tx: get(tx),
        w: get(w),
        d: get(d),
        t: t.iter().map(|&e| get(e)).collect(),
        b: b.iter().map(|&e| get(e)).collect(),
        eon: eon.iter().map(|&e| get(e)).collect(),
        eoff: eoff.iter().map(|&e| get(e)).collect(),
        cost: sol.eval(&cost).round().max(0.0) as u32,
        slack_slots: get(ss),
        slack_bus: get(sb),
        slack_io: get(si),
        io_windows: sol.eval(&io).round().max(0.0) as u32,
        int_slots: (sol.eval(&own_slots) + sol.value(ks)).round().max(0.0) as u32,
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
            io_max: 14,
            io_window_kib: 4,
        }
    }
    fn class(n: u32, allowed: [bool; 4], off: bool, any: bool) -> Class {
        Class { n, allowed, region: 0, off, any, packable: false, io: false }
    }

    #[test]
    fn on_devices_cost_one_port_each() {
        let c = solve(&model(vec![class(5, [false, false, true, false], false, false)])).unwrap();
        assert_eq!((c.cost, c.r0, c.k0, c.slack_slots), (5, 5, 1, 0));
        assert!(c.optimal);
    }

    #[test]
    fn off_devices_integrated_cost_nothing_until_full() {
        let c = solve(&model(vec![class(30, [true, false, false, false], true, false)])).unwrap();
        assert_eq!((c.cost, c.slack_slots), (0, 0));
        let c = solve(&model(vec![class(31, [true, false, false, false], true, false)])).unwrap();
        assert_eq!(c.slack_slots, 1);
        // auto: the 31st goes to a hotplug=off port, with its slot (29 integrated + 1 port slot).
        let c = solve(&model(vec![class(31, [true, true, false, false], true, false)])).unwrap();
        assert_eq!((c.cost, c.slack_slots, c.v[0]), (2, 0, [29, 2, 0, 0]));
    }

    #[test]
    fn conventional_on_devices_share_a_bridge() {
        let c = solve(&model(vec![class(40, [false, false, false, true], false, false)])).unwrap();
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
        let c = solve(&model(vec![class(300, [false, false, true, false], false, false)])).unwrap();
        assert!(c.slack_bus > 0);
    }
}
