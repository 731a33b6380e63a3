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
                        None => added.push((c.model.clone(), 1)),
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
        self.guests += 1;
        match t.kind {
            None => self.planned += 1,
            Some("infeasible") => self.infeasible += 1,
            Some("invalid") => self.invalid += 1,
            Some(_) => self.solver += 1,
        }
        self.cost += t.cost;
        for (m, n) in &t.added {
            *self.added.entry(m.clone()).or_insert(0) += n;
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
