//! The solver's answer read back into named counts: what the assigner builds and where.

use good_lp::{Expression, Solution, SolutionStatus, Variable};

use super::model::{Place, PLACES};
use super::program::{Program, RegionVars};

/// The solver's answer: how many units of each class go where, and how many controllers of
/// each kind the plan adds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Units of each class per place, indexed by `Place as usize`.
    pub placed: Vec<[u32; 4]>,
    /// Root ports added on `pcie.0`.
    pub root_ports: u32,
    /// Fresh `pcie.0` slots those root ports take.
    pub root_port_slots: u32,
    /// New expanders without a NUMA node.
    pub expanders: u32,
    /// Root ports on them.
    pub expander_ports: u32,
    /// New switches.
    pub switches: u32,
    /// Their downstream ports.
    pub downstream_ports: u32,
    /// Per region, root ports added on its expanders.
    pub region_ports: Vec<u32>,
    /// Per region, new bridges.
    pub bridges: Vec<u32>,
    /// Per region, existing free hot-pluggable ports used.
    pub used_on: Vec<u32>,
    /// Per region, existing free `hotplug=off` ports used.
    pub used_off: Vec<u32>,
    /// Per region, new expanders of its NUMA node.
    pub region_expanders: Vec<u32>,
    /// Conventional units without a NUMA node, with I/O BARs, hosted on each NUMA region's
    /// bridges.
    pub hosted_io: Vec<u32>,
    /// The same without I/O BARs.
    pub hosted: Vec<u32>,
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
    /// Whether the solver proved the answer optimal.
    pub optimal: bool,
    /// What an adoption keeps and flips (O-ADOPT); `None` for plain plans.
    pub adopt: Option<Adopted>,
}

/// The soft pins' answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Adopted {
    /// Per existing unit: it stays where it is.
    pub keep: Vec<bool>,
    /// Per existing port: hot-pluggable after adoption.
    pub on: Vec<bool>,
    /// Guest-visible changes the program counts (moved and renumbered devices).
    pub changes: u32,
    /// Existing ports whose `hotplug` changes.
    pub flips: u32,
}

impl Counts {
    /// Whether some budget is short (the request is infeasible; the slack says why).
    pub fn short(&self) -> bool {
        self.slack_slots > 0 || self.slack_bus > 0 || self.slack_io > 0
    }

    /// Reads `sol` back. Counts of variables the program left out (see `Budgets`) follow
    /// from the others.
    pub(super) fn read<S: Solution>(p: &Program, sol: &S) -> Counts {
        let m = p.m;
        let get = |var: Variable| -> u32 { sol.value(var).round().max(0.0) as u32 };
        let opt = |var: Option<Variable>| var.map(get).unwrap_or(0);
        let eval = |e: &Expression| -> u32 { sol.eval(e).round().max(0.0) as u32 };
        let per_region = |f: &dyn Fn(&RegionVars) -> Option<Variable>| {
            p.regions.iter().map(|g| opt(f(g))).collect::<Vec<u32>>()
        };
        let root_ports = get(p.root.ports);
        let root_port_slots = p.root.port_slots.map(get).unwrap_or_else(|| {
            root_ports
                .saturating_sub(m.root_free_functions)
                .div_ceil(m.ports_per_slot.max(1))
        });
        let packed_slots = p
            .root
            .packed_slots
            .map(get)
            .unwrap_or_else(|| eval(&p.packed_singles()).div_ceil(m.int_per_slot.max(1)));
        let io_windows = if p.budgets.io_windows {
            eval(&p.io_windows())
        } else {
            // Without the budget no window variables exist: bridges holding I/O units, after
            // the free slots of windowed ones, each open one.
            let io_bridges: u32 = (0..m.regions.len())
                .map(|r| {
                    let io_bridged: u32 = m
                        .in_region(r)
                        .filter(|(_, c)| c.io)
                        .map(|(i, _)| eval(&p.at(i, Place::Bridge)))
                        .sum();
                    io_bridged
                        .saturating_sub(m.regions[r].bridge_free_io)
                        .div_ceil(m.bridge_cap.max(1))
                })
                .sum();
            eval(&p.io_ports()) + io_bridges + m.io_used
        };
        Counts {
            placed: p
                .placed
                .iter()
                .map(|row| PLACES.map(|pl| opt(row[pl as usize])))
                .collect(),
            root_ports,
            root_port_slots,
            expanders: opt(p.global.expanders),
            expander_ports: opt(p.global.expander_ports),
            switches: opt(p.global.switches),
            downstream_ports: opt(p.global.downstream_ports),
            region_ports: per_region(&|g| g.ports),
            bridges: per_region(&|g| g.bridges),
            used_on: per_region(&|g| g.used_on),
            used_off: per_region(&|g| g.used_off),
            region_expanders: per_region(&|g| g.expanders),
            hosted_io: per_region(&|g| g.hosted_io),
            hosted: per_region(&|g| g.hosted),
            cost: eval(&p.cost()),
            slack_slots: opt(p.slack.slots),
            slack_bus: opt(p.slack.bus),
            slack_io: opt(p.slack.io),
            io_windows,
            int_slots: eval(&p.own_slots()) + packed_slots,
            optimal: matches!(sol.status(), SolutionStatus::Optimal),
            adopt: p.adopt_vars.as_ref().map(|v| Adopted {
                keep: v
                    .keep
                    .iter()
                    .map(|k| k.is_some_and(|k| get(k) == 1))
                    .collect(),
                on: v.on.iter().map(|&o| get(o) == 1).collect(),
                changes: eval(&p.guest_changes()),
                flips: eval(&p.flips()),
            }),
        }
    }
}

/// A value for every variable: enough to read counts back without solving.
#[cfg(test)]
pub(super) struct Fixed(pub std::collections::HashMap<Variable, f64>);

#[cfg(test)]
impl Solution for Fixed {
    fn status(&self) -> SolutionStatus {
        SolutionStatus::Optimal
    }
    fn value(&self, v: Variable) -> f64 {
        self.0.get(&v).copied().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ilp::model::tests::{class, model};

    #[test]
    fn dropped_variables_follow_from_the_others() {
        // 20 root ports, no slot budget: their slots are 20 / 8 rounded up.
        let mut packable = class(10, [true, false, false, false], true, false);
        packable.packable = true;
        let m = model(vec![
            class(20, [false, false, true, false], false, false),
            packable,
        ]);
        let (p, _) = Program::new(&m, None);
        assert!(p.root.port_slots.is_none());
        let mut values = std::collections::HashMap::new();
        values.insert(p.root.ports, 20.0);
        values.insert(p.placed[0][Place::Port as usize].unwrap(), 20.0);
        values.insert(p.placed[1][Place::Integrated as usize].unwrap(), 10.0);
        let c = Counts::read(&p, &Fixed(values));
        assert_eq!(c.placed, [[0, 0, 20, 0], [10, 0, 0, 0]]);
        assert_eq!((c.root_ports, c.root_port_slots, c.cost), (20, 3, 20));
        // Ten packed singles take two slots of eight.
        assert_eq!(c.int_slots, 2);
        assert!(c.optimal && !c.short());
    }

    #[test]
    fn io_windows_without_the_budget() {
        // 40 bridged units with I/O BARs open two windows; two ports with I/O units two more.
        let mut bridged = class(40, [false, false, false, true], false, false);
        bridged.io = true;
        let mut ported = class(2, [false, false, true, false], false, false);
        ported.io = true;
        let m = model(vec![ported, bridged]);
        let (p, _) = Program::new(&m, None);
        assert!(!p.budgets.io_windows);
        let mut values = std::collections::HashMap::new();
        values.insert(p.placed[0][Place::Port as usize].unwrap(), 2.0);
        values.insert(p.placed[1][Place::Bridge as usize].unwrap(), 40.0);
        values.insert(p.regions[0].bridges.unwrap(), 2.0);
        let c = Counts::read(&p, &Fixed(values));
        assert_eq!((c.io_windows, c.bridges.clone()), (4, vec![2]));
    }
}
