//! The end-of-batch summary: what each result line counts for.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::Outcome;
use crate::shape::Cached;

/// Counts for the end-of-batch summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Lines with a result.
    pub guests: u64,
    /// Planned.
    pub planned: u64,
    /// Well formed but cannot be placed.
    pub infeasible: u64,
    /// Malformed lines or invalid pins.
    pub invalid: u64,
    /// No proven answer from the solver.
    pub solver: u64,
    /// Controllers added, by model, over all planned guests.
    pub added: BTreeMap<String, u64>,
    /// Sum of plan costs.
    pub cost: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// What a [`Summary`] needs from one outcome (small enough to keep per line).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    kind: Option<&'static str>,
    added: Vec<(String, u64)>,
    cost: u64,
}

impl Tally {
    /// The tally of a cached plan.
    pub(super) fn of_cached(c: &Cached) -> Tally {
        Tally {
            kind: None,
            added: c.added.clone(),
            cost: u64::from(c.cost()),
        }
    }

    /// The tally of one outcome.
    pub fn of(o: &Outcome) -> Tally {
        match &o.result {
            Ok(p) => {
                let mut added: Vec<(String, u64)> = Vec::new();
                for c in p.controllers.iter().filter(|c| c.added) {
                    match added.iter_mut().find(|(m, _)| *m == c.model) {
                        Some((_, n)) => *n += 1,
                        None => added.push((c.model.to_string(), 1)),
                    }
                }
                Tally {
                    kind: None,
                    added,
                    cost: u64::from(p.cost),
                }
            }
            Err(e) => Tally {
                kind: Some(e.kind()),
                added: Vec::new(),
                cost: 0,
            },
        }
    }
}

impl Summary {
    /// Adds one line's tally.
    pub fn add(&mut self, t: &Tally) {
        self.count(t.kind, t.cost);
        for (m, n) in &t.added {
            self.add_model(m, *n);
        }
    }

    /// Adds one outcome: what adding its [`Tally::of`] adds, without making the tally.
    pub fn add_outcome(&mut self, o: &Outcome) {
        match &o.result {
            Ok(p) => {
                self.count(None, u64::from(p.cost));
                // Added controllers of one model mostly come one after the other: one
                // look-up per run.
                let mut run: Option<(&str, u64)> = None;
                for c in p.controllers.iter().filter(|c| c.added) {
                    match &mut run {
                        Some((m, n)) if *m == c.model => *n += 1,
                        _ => {
                            if let Some((m, n)) = run.replace((&c.model, 1)) {
                                self.add_model(m, n);
                            }
                        }
                    }
                }
                if let Some((m, n)) = run {
                    self.add_model(m, n);
                }
            }
            Err(e) => self.count(Some(e.kind()), 0),
        }
    }

    /// Adds a line planned from the shape cache ([`Tally::of_cached`]).
    pub(super) fn add_cached(&mut self, c: &Cached) {
        self.count(None, u64::from(c.cost()));
        for (m, n) in &c.added {
            self.add_model(m, *n);
        }
    }

    /// Adds the counts of `other`, a summary of other lines (not its time).
    pub fn merge(&mut self, other: &Summary) {
        self.guests += other.guests;
        self.planned += other.planned;
        self.infeasible += other.infeasible;
        self.invalid += other.invalid;
        self.solver += other.solver;
        self.cost += other.cost;
        for (m, n) in &other.added {
            self.add_model(m, *n);
        }
    }

    /// Counts one line of `kind` (`None`: planned) and `cost`.
    fn count(&mut self, kind: Option<&str>, cost: u64) {
        self.guests += 1;
        match kind {
            None => self.planned += 1,
            Some("infeasible") => self.infeasible += 1,
            Some("invalid") => self.invalid += 1,
            Some(_) => self.solver += 1,
        }
        self.cost += cost;
    }

    /// Counts `n` added controllers of `model`.
    fn add_model(&mut self, model: &str, n: u64) {
        match self.added.get_mut(model) {
            Some(sum) => *sum += n,
            None => {
                self.added.insert(model.to_string(), n);
            }
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.guests as f64 / secs
        } else {
            0.0
        };
        write!(
            f,
            "guests {}, planned {}, infeasible {}, invalid {}",
            self.guests, self.planned, self.infeasible, self.invalid
        )?;
        if self.solver > 0 {
            write!(f, ", solver {}", self.solver)?;
        }
        write!(f, "\ncontrollers added: {}", self.cost)?;
        let parts: Vec<String> = self.added.iter().map(|(m, n)| format!("{m} {n}")).collect();
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(", "))?;
        }
        write!(f, "\ntime {secs:.3} s, {rate:.0} guests/s")
    }
}
