//! Errors: bad input, invalid pins, and infeasibility explained as data.

use std::fmt;

use serde::Serialize;

use crate::rule::Rule;

/// Malformed or contradictory input, naming the field or device at fault (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
#[non_exhaustive]
pub struct InputError {
    /// Where: a JSON path (`devices[3].model`), a device id or an XML element.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl InputError {
    /// Builds an input error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> InputError {
        InputError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One rule a pinned (or planned) address breaks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[non_exhaustive]
pub struct Violation {
    /// Device or controller id.
    pub device: String,
    /// Address as `bus:slot.function`.
    pub address: String,
    /// The rule broken (`Display` gives its id).
    pub rule: Rule,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {}: {} [{}]",
            self.device, self.address, self.message, self.rule
        )
    }
}

/// One reason a request cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Cause {
    /// The rule that cannot be met (`Display` gives its id).
    pub rule: Rule,
    /// Sentence with the numbers ("31 hotplug-off devices need integrated slots; pcie.0 has 30 free").
    pub message: String,
    /// Devices involved (ids, request order).
    pub devices: Vec<String>,
    /// What is needed.
    pub need: u32,
    /// What there is.
    pub have: u32,
    /// What would make it fit.
    pub hints: Vec<String>,
}

/// Why a request is infeasible: the rules that fail, with numbers and hints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Explanation {
    /// The causes, most important first.
    pub causes: Vec<Cause>,
}

impl Explanation {
    /// The rule of the first cause.
    pub fn rule(&self) -> Rule {
        self.causes.first().map(|c| c.rule).unwrap_or(Rule::Cost)
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.causes.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "[{}] {}", c.rule, c.message)?;
            if !c.devices.is_empty() {
                const SHOW: usize = 12;
                let mut list = c
                    .devices
                    .iter()
                    .take(SHOW)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ");
                if c.devices.len() > SHOW {
                    list.push_str(&format!(", ... ({} in all)", c.devices.len()));
                }
                write!(f, "\n  devices: {list}")?;
            }
            for h in &c.hints {
                write!(f, "\n  hint: {h}")?;
            }
        }
        Ok(())
    }
}

/// Everything that can go wrong planning one guest: the request's fault (`Invalid`,
/// `Pins`, `Infeasible`), the solver's time limit (`Solver`), or a bug (`Internal`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// Malformed input (exit 2).
    #[error("invalid input: {0}")]
    Invalid(#[from] InputError),
    /// Pinned addresses break rules (exit 2); every violation is listed.
    #[error("invalid pinned addresses:\n{}", list(.0))]
    Pins(Vec<Violation>),
    /// The request is well formed but cannot be placed (exit 1).
    #[error("infeasible: {0}")]
    Infeasible(Explanation),
    /// The solver did not prove an answer within its time limit (exit 1). The request may
    /// be feasible; no plan is returned rather than one that may cost more than needed.
    #[error("solver: {0}")]
    Solver(String),
    /// A bug in pciplan, never the request's fault (exit 2): the plan fails the independent
    /// validator, the assigner runs short of what the program counted, or the solver fails
    /// on a program that always has a solution. Please report it with the request.
    #[error("internal error (please report it with the request): {0}")]
    Internal(String),
}

fn list(v: &[Violation]) -> String {
    v.iter()
        .map(|x| format!("  {x}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl PlanError {
    /// Process exit status (docs/formats.md): 1 infeasible or out of time, 2 bad input or
    /// internal error.
    pub fn exit_code(&self) -> i32 {
        match self {
            PlanError::Invalid(_) | PlanError::Pins(_) | PlanError::Internal(_) => 2,
            PlanError::Infeasible(_) | PlanError::Solver(_) => 1,
        }
    }

    /// Short kind name used in batch output (`invalid`, `infeasible`, `solver`, `internal`).
    pub fn kind(&self) -> &'static str {
        match self {
            PlanError::Invalid(_) | PlanError::Pins(_) => "invalid",
            PlanError::Infeasible(_) => "infeasible",
            PlanError::Solver(_) => "solver",
            PlanError::Internal(_) => "internal",
        }
    }

    /// Rule id most responsible, when there is one.
    pub fn rule(&self) -> Option<Rule> {
        match self {
            PlanError::Pins(v) => v.first().map(|x| x.rule),
            PlanError::Infeasible(e) => Some(e.rule()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_kinds() {
        let i = PlanError::Invalid(InputError::new("devices[0].model", "unknown"));
        assert_eq!(i.exit_code(), 2);
        assert_eq!(i.kind(), "invalid");
        assert!(i.to_string().contains("devices[0].model"));
        let p = PlanError::Pins(vec![Violation {
            device: "net0".into(),
            address: "pcie.0:05.0".into(),
            rule: Rule::Pin,
            message: "double use".into(),
        }]);
        assert_eq!(p.exit_code(), 2);
        assert_eq!(p.rule(), Some(Rule::Pin));
        assert!(p.to_string().contains("net0 at pcie.0:05.0"));
        let x = PlanError::Infeasible(Explanation {
            causes: vec![Cause {
                rule: Rule::Root,
                message: "31 need, 30 have".into(),
                devices: (0..20).map(|i| format!("d{i}")).collect(),
                need: 31,
                have: 30,
                hints: vec!["allow hotplug_off=auto".into()],
            }],
        });
        assert_eq!(x.exit_code(), 1);
        let s = x.to_string();
        assert!(s.contains("[R-ROOT]") && s.contains("20 in all") && s.contains("hint: allow"));
        let s = PlanError::Solver("time limit".into());
        assert_eq!((s.exit_code(), s.kind()), (1, "solver"));
        let b = PlanError::Internal("the plan fails validation".into());
        assert_eq!((b.exit_code(), b.kind(), b.rule()), (2, "internal", None));
        assert!(b.to_string().starts_with("internal error (please report"));
    }
}
