//! The integer program: how many of each class of units go where, and how many
//! controllers of each kind the plan adds. `docs/ilp.md` explains the formulation for users.
//!
//! Devices are not variables one by one: interchangeable devices form *classes* (same kind,
//! hotplug requirement, multifunction group or not, NUMA region, I/O BARs), and the program
//! counts per class. A guest of 250 devices in 6 classes is a program of a few dozen
//! variables, not one per device and slot; concrete addresses are chosen afterwards by the
//! planner's assigner, lowest slots first in request order, so the counts decide the plan.
//!
//! - [`model`]: the numbers a program is built from ([`Model`], the memo's key);
//! - [`budgets`]: which budgets (R-ROOT, R-BUSNR, R-IO) can bind, decided before building;
//! - [`program`]: the [`Program`](program::Program), its variable groups (placements, the
//!   root bus, new controllers without a NUMA node, per-region ones, slack) and one method
//!   per constraint family, each tagged with its [`Rule`](crate::rule::Rule);
//! - [`counts`]: the solution read back into named [`Counts`].
//!
//! Objective (O-COST, O-TIE): `1e6·slack + 1000·controllers + 20·(expanders + switches) +
//! ports not on pcie.0`. The budgets are elastic: slack is priced so that any slack means
//! infeasible, and its value says which rule fails and by how much.

mod adoption;
mod bound;
mod budgets;
mod counts;
mod model;
pub(crate) mod pc;
mod program;
mod ranges;

use good_lp::{microlp, ResolutionError, SolverModel, WithTimeLimit};

pub(crate) use bound::settle;
pub(crate) use counts::Counts;
pub(crate) use model::{Adopt, Cap, Class, Model, OldPort, OldUnit, Place, Region, Site, PLACES};
use program::Program;

/// Seconds the solver may spend on one guest.
pub(crate) const TIME_LIMIT_S: f64 = 2.0;

/// Why the solver gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The program has no solution. With its elastic budgets [`solve`]'s program always has
    /// one (so this is a bug); [`solve_max`]'s has none when not one more unit fits.
    NoSolution,
    /// The time limit passed before any solution was found.
    TimeLimit(String),
    /// The solver failed otherwise.
    Solver(String),
}

/// Builds and solves the program.
pub(crate) fn solve(m: &Model) -> Result<Counts, Failure> {
    solve_for(m, None)
}

/// The same program with the objective swapped (what-if `--max`): with no slack allowed,
/// maximise the units of class `grow` (at least its `n`), then minimise cost as usual. The
/// class's count in the answer is the most that fit.
pub(crate) fn solve_max(m: &Model, grow: usize) -> Result<Counts, Failure> {
    solve_for(m, Some(grow))
}

fn solve_for(m: &Model, grow: Option<usize>) -> Result<Counts, Failure> {
    let (mut program, vars) = Program::new(m, grow);
    let mut pb = vars
        .minimise(program.objective())
        .using(microlp)
        .with_time_limit(TIME_LIMIT_S);
    for (_, row) in std::mem::take(&mut program.rows) {
        pb = pb.with(row);
    }
    match pb.solve() {
        Ok(sol) => Ok(Counts::read(&program, &sol)),
        Err(ResolutionError::Infeasible) => Err(Failure::NoSolution),
        Err(ResolutionError::Other(s)) if s.starts_with("Time limit") => {
            Err(Failure::TimeLimit(s.to_string()))
        }
        Err(e) => Err(Failure::Solver(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use model::tests::{class, model};

    #[test]
    fn on_devices_cost_one_port_each() {
        let c = solve(&model(vec![class(
            5,
            [false, false, true, false],
            false,
            false,
        )]))
        .unwrap();
        assert_eq!(
            (c.cost, c.root_ports, c.root_port_slots, c.slack_slots),
            (5, 5, 1, 0)
        );
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
        assert_eq!((c.cost, c.slack_slots, c.placed[0]), (2, 0, [29, 2, 0, 0]));
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
        assert_eq!((c.cost, c.bridges[0], c.root_ports), (4, 2, 2));
    }

    #[test]
    fn expander_when_root_slots_run_out() {
        let mut m = model(vec![class(250, [false, false, true, false], false, false)]);
        m.root_free_slots = 30;
        let c = solve(&m).unwrap();
        assert_eq!(c.slack_slots, 0);
        assert_eq!(c.expanders, 1);
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
