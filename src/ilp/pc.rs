//! The integer program of a `pc` (i440fx) guest (`docs/ilp.md`, "Machine pc").
//!
//! On `pc` every endpoint may sit on any conventional slot (PC-ROOT), so a unit's kind does
//! not matter; what does is its hotplug requirement and whether it has I/O BARs (R-IO). The
//! program decides, once per guest, whether the root bus `pci.0` stays hot-pluggable
//! (PC-ROOT-HP), how many units of each class sit on `pci.0` and how many on `pci-bridge`
//! slots, and how many bridges are added on `pci.0` or chained on another bridge's slot
//! (PC-BRIDGE): `off` units only on `pci.0`, with root hotplug off; `on` units on `pci.0`
//! only while root hotplug is on (PC-MIX). Budgets (root slots, bus numbers, I/O windows) are
//! elastic, as in the q35 program: slack says which rule fails and by how much.

use good_lp::{microlp, variable, Expression, ProblemVariables, ResolutionError, Solution};
use good_lp::{SolverModel, Variable, WithTimeLimit};

use super::{Failure, TIME_LIMIT_S};

/// Hotplug requirements of the classes, in class order (class = requirement × 2 + io).
pub(crate) const ON: usize = 0;
/// See [`ON`].
pub(crate) const OFF: usize = 1;
/// See [`ON`].
pub(crate) const ANY: usize = 2;

/// The numbers a `pc` program is built from; equal models have equal answers (the memo's key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct PcModel {
    /// Units to place per class: index `requirement * 2 + io` ([`ON`], [`OFF`], [`ANY`]).
    pub n: [u32; 6],
    /// Root hotplug decided by the request: `Some(false)` by an `off` unit (PC-MIX) or a
    /// pinned unpluggable device on `pci.0`, `Some(true)` by a pinned `on` device there.
    pub force: Option<bool>,
    /// Slots of a new bridge (the catalog's `pci-bridge`: 31, PC-BRIDGE).
    pub bridge_slots: u32,
    /// Free `pci.0` slots (PC-ROOT).
    pub root_free: u32,
    /// Free slots of existing bridges.
    pub bridge_free: u32,
    /// Of those, the ones on bridges that already have an I/O window (R-IO).
    pub bridge_free_io: u32,
    /// Free slots of each existing bridge without an I/O window, in world order: a unit
    /// with I/O BARs there opens one (R-IO).
    pub windowless: Vec<u32>,
    /// When no new bridge goes on `pci.0`, the first one takes a slot of an existing bridge;
    /// `Some(k)` when that bridge has no I/O window (its index in `windowless`): a new bridge
    /// below it holding units with I/O BARs opens its window (R-IO counts a bridge whose
    /// subtree holds them), and the slot it takes is no room for those units unless opened.
    pub chain_start_windowless: Option<usize>,
    /// Free hot-pluggable slots asked for (`spare_ports`).
    pub spares: u32,
    /// Guest bus numbers left (R-BUSNR).
    pub bus_free: u32,
    /// I/O windows left (R-IO).
    pub windows_free: u32,
}

/// The program's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PcCounts {
    /// Root hotplug on (PC-ROOT-HP).
    pub root_hotplug: bool,
    /// Units of each class on `pci.0`; the rest go on bridge slots.
    pub on_root: [u32; 6],
    /// Existing bridges without a window that get one (by `windowless` index).
    pub opened: Vec<bool>,
    /// New bridges on `pci.0`.
    pub bridges_root: u32,
    /// New bridges on another bridge's slot.
    pub bridges_chained: u32,
    /// `pci.0` slots short (PC-ROOT).
    pub slack_root: u32,
    /// Bus numbers short (R-BUSNR).
    pub slack_bus: u32,
    /// I/O windows short (R-IO).
    pub slack_io: u32,
    /// Proven optimal.
    pub optimal: bool,
}

impl PcCounts {
    /// Bridges added (the cost, O-COST).
    pub fn bridges(&self) -> u32 {
        self.bridges_root + self.bridges_chained
    }

    /// Whether some budget is short: no plan fits.
    pub fn short(&self) -> bool {
        self.slack_root + self.slack_bus + self.slack_io > 0
    }
}

impl PcModel {
    fn class_may_sit_on_root(&self, c: usize) -> bool {
        self.n[c] > 0
    }

    /// The optimum where a counting argument proves it without the solver (see
    /// [`PcModel::settle_free`] and [`PcModel::settle_mixed`]).
    pub(crate) fn settle(&self) -> Option<PcCounts> {
        self.settle_free().or_else(|| self.settle_mixed())
    }

    /// A guest with root hotplug off and new bridges only (no existing bridge): every plan
    /// needs at least `B0 = ⌈(on units + spares) / bridge slots⌉` bridges, since neither may
    /// use `pci.0`. When `B0` bridges on `pci.0` hold everything, with `any` units on
    /// `pci.0` as far as it has room (those with I/O BARs first: the program's tie-break),
    /// that is the program's optimum.
    fn settle_mixed(&self) -> Option<PcCounts> {
        if self.force != Some(false) || self.bridge_free > 0 || self.bridge_slots == 0 {
            return None;
        }
        let s = self.bridge_slots;
        let n_on = self.n[ON * 2] + self.n[ON * 2 + 1];
        let n_off = self.n[OFF * 2] + self.n[OFF * 2 + 1];
        let (any_plain, any_io) = (self.n[ANY * 2], self.n[ANY * 2 + 1]);
        let b0 = (n_on + self.spares).div_ceil(s);
        if b0 == 0 || b0 > self.bus_free {
            return None;
        }
        let room = self.root_free.checked_sub(n_off + b0)?;
        let io_root = any_io.min(room);
        let plain_root = any_plain.min(room - io_root);
        let bridged = n_on + (any_io - io_root) + (any_plain - plain_root);
        if bridged + self.spares > s * b0 {
            return None;
        }
        let io_bridged = self.n[ON * 2 + 1] + any_io - io_root;
        let windows = io_bridged.div_ceil(s);
        if windows > self.windows_free || windows > b0 {
            return None;
        }
        let mut on_root = [0; 6];
        on_root[OFF * 2] = self.n[OFF * 2];
        on_root[OFF * 2 + 1] = self.n[OFF * 2 + 1];
        on_root[ANY * 2] = plain_root;
        on_root[ANY * 2 + 1] = io_root;
        Some(PcCounts {
            root_hotplug: false,
            on_root,
            opened: vec![false; self.windowless.len()],
            bridges_root: b0,
            optimal: true,
            ..PcCounts::default()
        })
    }

    /// No bridge is needed (every unit fits on `pci.0`, none must leave it, and the spares
    /// fit), so the plan costs 0 and puts everything on `pci.0`.
    fn settle_free(&self) -> Option<PcCounts> {
        let hp = self.force.unwrap_or(true);
        let on: u32 = self.n[ON * 2] + self.n[ON * 2 + 1];
        let all: u32 = self.n.iter().sum();
        if (!hp && on > 0) || all > self.root_free {
            return None;
        }
        let spare_room = if hp {
            self.root_free - all + self.bridge_free
        } else {
            self.bridge_free
        };
        if spare_room < self.spares {
            return None;
        }
        Some(PcCounts {
            root_hotplug: hp,
            on_root: self.n,
            opened: vec![false; self.windowless.len()],
            optimal: true,
            ..PcCounts::default()
        })
    }
}

/// Weights of the objective: any slack outweighs any plan, a bridge outweighs every tie
/// term (at most 4 per unit or bridge, [`crate::MAX_DEVICES`] units).
const W_SLACK: f64 = 1e8;
const W_BRIDGE: f64 = 1e5;

/// The slots chained bridges take from the windowed new bridges, which are then no room
/// for units with I/O BARs (R-IO). The assigner fills the first `w` = `io_bridges` new
/// bridges with those units and hangs the chain from the last bridge on pci.0, each chained
/// bridge on the last slot of the one before; so `lost` = max(0, min(w, B - 1) - bt + 1) of
/// the windowed ones lose a slot, with `all_io` = [w = B] (min(w, B - 1) = w - all_io). Any
/// other arrangement of the chain loses as many (a windowed bridge's subtree holds I/O: its
/// parent has a window too). With no bridge on pci.0 the first chained one takes a slot of
/// an existing bridge instead, counted alike.
struct ChainLoss {
    all_io: Variable,
    lost: Variable,
    /// When that existing bridge has no I/O window: `first_chained` = [bt = 0], and the
    /// bridge's `open` variable. The slot taken is then room for units with I/O BARs only
    /// when the bridge is opened, and it is opened when the new bridges below it hold such
    /// units (`io_bridges` > 0).
    first_chained: Option<(Variable, Variable)>,
}

impl ChainLoss {
    /// Adds the rows bounding `lost` to `pb`.
    fn rows<M: SolverModel>(
        &self,
        mut pb: M,
        io_bridges: Variable,
        bridges: &Expression,
        bt: Variable,
    ) -> M {
        let all_io = self.all_io;
        pb = pb.with((io_bridges - bridges.clone()).geq(256.0 * all_io - 256.0));
        let base = Expression::from(io_bridges) - all_io - bt;
        let lost = Expression::from(self.lost);
        let Some((first_chained, open)) = self.first_chained else {
            return pb.with(lost.geq(base + 1.0));
        };
        pb = pb.with(Expression::from(bt).leq(256.0 - 256.0 * first_chained));
        pb = pb.with((first_chained + bt).geq(1.0));
        pb = pb.with(lost.clone().geq(base.clone() + 1.0 - first_chained));
        pb = pb.with(lost.geq(base + open));
        pb.with((256.0 * Expression::from(open)).geq(256.0 * first_chained + io_bridges - 256.0))
    }
}

/// Builds and solves the program (`docs/ilp.md`, "Machine pc").
pub(crate) fn solve(m: &PcModel) -> Result<PcCounts, Failure> {
    let mut vars = ProblemVariables::new();
    let int =
        |vars: &mut ProblemVariables, max: f64| vars.add(variable().integer().min(0).max(max));
    let h = vars.add(variable().binary());
    let big = f64::from(m.n.iter().sum::<u32>() + m.spares + m.root_free + 256);
    // Per class: units on pci.0 and on bridge slots.
    let mut root: Vec<Option<Variable>> = Vec::with_capacity(6);
    let mut bridged: Vec<Option<Variable>> = Vec::with_capacity(6);
    for c in 0..6 {
        let n = f64::from(m.n[c]);
        let may_root = m.class_may_sit_on_root(c);
        root.push(may_root.then(|| int(&mut vars, n)));
        bridged.push((m.n[c] > 0 && c / 2 != OFF).then(|| int(&mut vars, n)));
    }
    let bt = int(&mut vars, 256.0);
    let bc = int(&mut vars, 256.0);
    let io_bridges = int(&mut vars, 256.0);
    let spare_root = int(&mut vars, f64::from(m.spares));
    let spare_bridge = int(&mut vars, f64::from(m.spares));
    let open: Vec<Variable> = m
        .windowless
        .iter()
        .map(|_| vars.add(variable().binary()))
        .collect();
    let chain = ChainLoss {
        all_io: vars.add(variable().binary()),
        lost: int(&mut vars, 256.0),
        first_chained: m
            .chain_start_windowless
            .map(|k| (vars.add(variable().binary()), open[k])),
    };
    let s_root = vars.add(variable().min(0));
    let s_bus = vars.add(variable().min(0));
    let s_io = vars.add(variable().min(0));
    let sum = |vs: &[Option<Variable>], pick: &dyn Fn(usize) -> bool| -> Expression {
        vs.iter()
            .enumerate()
            .filter(|(c, _)| pick(*c))
            .filter_map(|(_, v)| *v)
            .map(Expression::from)
            .sum()
    };
    let bridges = Expression::from(bt) + bc;
    let on_bridges = sum(&bridged, &|_| true);
    let objective = W_SLACK * (Expression::from(s_root) + s_bus + s_io)
        + W_BRIDGE * bridges.clone()
        + 4.0 * bc
        + 2.0 * on_bridges.clone()
        + sum(&bridged, &|c| c % 2 == 1)
        + (1.0 - Expression::from(h))
        + open
            .iter()
            .map(|&o| Expression::from(o))
            .sum::<Expression>();
    let mut pb = vars
        .minimise(objective)
        .using(microlp)
        .with_time_limit(TIME_LIMIT_S);
    // Every unit placed [D-HP]; `off` units only on pci.0 [PC-MIX].
    for c in 0..6 {
        if m.n[c] == 0 {
            continue;
        }
        let placed = sum(&root, &|k| k == c) + sum(&bridged, &|k| k == c);
        pb = pb.with(placed.eq(f64::from(m.n[c])));
    }
    // PC-ROOT-HP: `on` units on pci.0 only while root hotplug is on; forced settings.
    let on_root = sum(&root, &|c| c / 2 == ON);
    pb = pb.with(on_root.leq(big * h));
    match m.force {
        Some(true) => pb = pb.with(Expression::from(h).eq(1.0)),
        Some(false) => pb = pb.with(Expression::from(h).eq(0.0)),
        None => {}
    }
    // PC-ROOT: units, bridges on pci.0 and spares there fit its free slots (spares there
    // only while it is hot-pluggable).
    let root_used = sum(&root, &|_| true) + bt + spare_root;
    pb = pb.with(root_used.leq(f64::from(m.root_free) + s_root));
    pb = pb.with(Expression::from(spare_root).leq(big * h));
    // PC-BRIDGE: bridge slots hold the bridged units, the chained bridges and spares.
    let pool = f64::from(m.bridge_slots) * bridges.clone() + f64::from(m.bridge_free);
    pb = pb.with((on_bridges + bc + spare_bridge).leq(pool));
    if m.bridge_free == 0 {
        // A chain starts on pci.0.
        pb = pb.with(Expression::from(bc).leq(256.0 * bt));
    }
    // O-SPARE.
    pb = pb.with((Expression::from(spare_root) + spare_bridge).geq(f64::from(m.spares)));
    // R-IO: units with I/O BARs on bridges fill windowed bridges.
    let io_bridged = sum(&bridged, &|c| c % 2 == 1);
    let opened_slots: Expression = open
        .iter()
        .zip(&m.windowless)
        .map(|(&o, &free)| f64::from(free) * o)
        .sum();
    let opened: Expression = open.iter().map(|&o| Expression::from(o)).sum();
    pb = pb.with(Expression::from(io_bridges).leq(bridges.clone()));
    pb = chain.rows(pb, io_bridges, &bridges, bt);
    pb = pb.with(io_bridged.leq(
        f64::from(m.bridge_slots) * io_bridges - chain.lost
            + f64::from(m.bridge_free_io)
            + opened_slots,
    ));
    pb = pb.with((opened + io_bridges).leq(f64::from(m.windows_free) + s_io));
    // R-BUSNR: one bus number per bridge.
    pb = pb.with(bridges.leq(f64::from(m.bus_free) + s_bus));
    let sol = match pb.solve() {
        Ok(sol) => sol,
        Err(ResolutionError::Infeasible) => return Err(Failure::NoSolution),
        Err(ResolutionError::Other(s)) if s.starts_with("Time limit") => {
            return Err(Failure::TimeLimit(s.to_string()))
        }
        Err(e) => return Err(Failure::Solver(e.to_string())),
    };
    let get = |v: Variable| sol.value(v).round().max(0.0) as u32;
    // Slack is integral at the optimum; round up only what is more than solver noise.
    let up = |v: Variable| (sol.value(v) - 1e-6).ceil().max(0.0) as u32;
    let mut on_root = [0u32; 6];
    for (c, v) in root.iter().enumerate() {
        on_root[c] = v.map(get).unwrap_or(0);
    }
    Ok(PcCounts {
        root_hotplug: get(h) == 1,
        on_root,
        opened: open.iter().map(|&o| get(o) == 1).collect(),
        bridges_root: get(bt),
        bridges_chained: get(bc),
        slack_root: up(s_root),
        slack_bus: up(s_bus),
        slack_io: up(s_io),
        optimal: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(n: [u32; 6]) -> PcModel {
        PcModel {
            n,
            force: (n[OFF * 2] + n[OFF * 2 + 1] > 0).then_some(false),
            root_free: 30,
            bridge_slots: 31,
            bus_free: 255,
            windows_free: 8,
            ..PcModel::default()
        }
    }

    #[test]
    fn everything_on_pci0_while_it_fits() {
        let m = model([5, 0, 0, 0, 20, 5]);
        let c = solve(&m).unwrap();
        assert_eq!((c.root_hotplug, c.bridges(), c.on_root), (true, 0, m.n));
        assert_eq!(m.settle(), Some(c));
    }

    #[test]
    fn mixed_guest_turns_root_hotplug_off_and_adds_a_bridge() {
        let m = model([3, 0, 2, 0, 1, 0]);
        let c = solve(&m).unwrap();
        assert_eq!(m.settle(), Some(c.clone()));
        assert!(!c.root_hotplug);
        assert_eq!((c.bridges_root, c.bridges_chained), (1, 0));
        assert_eq!(c.on_root, [0, 0, 2, 0, 1, 0]);
        // 32 on units: two bridges.
        let c = solve(&model([32, 0, 1, 0, 0, 0])).unwrap();
        assert_eq!(c.bridges(), 2);
    }

    #[test]
    fn full_root_bus_chains_bridges() {
        // 28 off units leave 2 root slots; 100 on units need 4 bridges: 2 on pci.0 and 2
        // chained.
        let c = solve(&model([100, 0, 28, 0, 0, 0])).unwrap();
        assert_eq!(
            (c.bridges_root, c.bridges_chained, c.short()),
            (2, 2, false)
        );
        let c = solve(&model([0, 0, 31, 0, 0, 0])).unwrap();
        assert_eq!(c.slack_root, 1);
    }

    /// The counting argument agrees with the solver wherever it settles a model.
    #[test]
    fn settled_models_match_the_solver() {
        let mut checked = 0;
        for on in [0, 1, 5, 31, 40] {
            for off in [1, 10, 28] {
                for any in [0, 3, 20] {
                    for spares in [0, 2, 31] {
                        for io in [false, true] {
                            let mut n = [on, 0, off, 0, any, 0];
                            if io {
                                n = [0, on, off, 0, 0, any];
                            }
                            let mut m = model(n);
                            m.spares = spares;
                            if let Some(s) = m.settle() {
                                let c = solve(&m).unwrap();
                                assert_eq!(
                                    (s.bridges(), s.short()),
                                    (c.bridges(), c.short()),
                                    "{m:?}"
                                );
                                assert_eq!(s.on_root, c.on_root, "{m:?}");
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 50, "{checked}");
    }

    #[test]
    fn io_windows_and_spares() {
        // 9 bridges worth of units with I/O BARs behind bridges: 8 windows only.
        let c = solve(&model([0, 9 * 31, 1, 0, 0, 0])).unwrap();
        assert_eq!(c.slack_io, 1);
        let mut m = model([0, 0, 1, 0, 0, 0]);
        m.spares = 2;
        let c = solve(&m).unwrap();
        assert_eq!((c.bridges(), c.short()), (1, false));
        let mut m = model([0, 0, 0, 0, 3, 0]);
        m.spares = 2;
        assert_eq!(m.settle().map(|c| c.bridges()), Some(0));
    }
}
