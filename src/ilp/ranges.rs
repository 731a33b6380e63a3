//! R-BUSNR with pinned expander ranges. The firmware numbers `pcie.0`'s hierarchy from 1 up
//! to below the lowest pinned `bus_nr`, and each pinned expander's hierarchy from its
//! `bus_nr` up to below the next one. Every new bus takes a number in the range of the
//! hierarchy it sits in: a root port on `pcie.0` or a switch in `pcie.0`'s range, a root
//! port on a pinned expander in that expander's range, and a bridge in the range of the
//! port it is plugged into. These variables say how many new bridges sit where, and how
//! many new root ports each pinned expander with room left gets, so that each range is
//! budgeted on its own (the total is budgeted in `bus_number_budget`).
//!
//! Expanders without a pinned `bus_nr` (new ones, or pinned without) get a range of their
//! own after assignment: bridges below them take no number of a pinned range.

use good_lp::{constraint, Expression, ProblemVariables, Variable};

use super::model::Model;
use super::program::{ex, sum, Global, Program, RegionVars};
use crate::rule::Rule;

/// The variables of the pinned ranges; they exist only with a pinned `bus_nr`.
#[derive(Debug, Clone)]
pub(super) struct RangeVars {
    /// Per capped expander ([`Model::caps`]): root ports added on it.
    pub cap_ports: Vec<Option<Variable>>,
    /// Per capped expander: bridges added below it.
    pub cap_bridges: Vec<Option<Variable>>,
    /// Bridges added in `pcie.0`'s hierarchy.
    pub root_bridges: Option<Variable>,
    /// Per region: bridges added below its expanders without a pinned `bus_nr`.
    pub float_bridges: Vec<Option<Variable>>,
}

fn int(vars: &mut ProblemVariables, max: u32) -> Variable {
    vars.add(good_lp::variable().integer().min(0).max(f64::from(max)))
}

/// The variable that counts the root ports region `r` adds on expanders.
fn expander_ports(r: usize, global: &Global, regions: &[RegionVars]) -> Option<Variable> {
    if r == 0 {
        global.expander_ports
    } else {
        regions[r].ports
    }
}

impl RangeVars {
    /// The variables of `m`'s pinned ranges, made after every other variable; `None`
    /// without a pinned `bus_nr`.
    pub fn new(
        vars: &mut ProblemVariables,
        m: &Model,
        global: &Global,
        regions: &[RegionVars],
    ) -> Option<RangeVars> {
        if m.root_bus_room >= m.bus_max {
            return None;
        }
        let bridges = regions.iter().any(|g| g.bridges.is_some());
        let cap_ports = m
            .caps
            .iter()
            .map(|c| {
                let has = expander_ports(c.region, global, regions).is_some() && c.positions > 0;
                has.then(|| int(vars, c.positions.min(c.room)))
            })
            .collect::<Vec<_>>();
        let cap_bridges = m
            .caps
            .iter()
            .zip(&cap_ports)
            .map(|(c, p)| (bridges && (p.is_some() || c.ports > 0)).then(|| int(vars, c.room)))
            .collect();
        let root_bridges = bridges.then(|| int(vars, 4096));
        let float_bridges = (0..m.regions.len())
            .map(|r| {
                let has = expander_ports(r, global, regions).is_some()
                    || m.float_ports.get(r).is_some_and(|&n| n > 0);
                (bridges && has).then(|| int(vars, 4096))
            })
            .collect();
        Some(RangeVars {
            cap_ports,
            cap_bridges,
            root_bridges,
            float_bridges,
        })
    }
}

impl Program<'_> {
    /// Bridges added in `pcie.0`'s hierarchy (0 without pinned ranges: they are then
    /// counted with the rest in the total).
    pub(super) fn root_bridges(&self) -> Expression {
        ex(self.ranges.as_ref().and_then(|v| v.root_bridges))
    }

    /// R-BUSNR per pinned range: the root ports and bridges added below each pinned
    /// expander fit its room; every new bridge sits in `pcie.0`'s hierarchy, below a pinned
    /// expander, or below an expander without a pinned `bus_nr`; a NUMA region's bridges sit
    /// below its expanders.
    pub(super) fn expander_ranges(&mut self) {
        let Some(v) = self.ranges.clone() else { return };
        let m = self.m;
        let bus_slack = ex(self.slack.bus);
        for (i, c) in m.caps.iter().enumerate() {
            let (p, b) = (ex(v.cap_ports[i]), ex(v.cap_bridges[i]));
            let row = constraint!(p.clone() + b.clone() <= f64::from(c.room) + bus_slack.clone());
            self.add(Rule::BusNr, row);
            if v.cap_bridges[i].is_some() {
                self.add(Rule::BusNr, constraint!(b <= p + f64::from(c.ports)));
            }
        }
        let on_caps = |r: usize| -> Expression {
            sum(m
                .caps
                .iter()
                .zip(&v.cap_ports)
                .filter(|(c, _)| c.region == r)
                .map(|(_, p)| ex(*p)))
        };
        for r in 0..m.regions.len() {
            if !m
                .caps
                .iter()
                .zip(&v.cap_ports)
                .any(|(c, p)| c.region == r && p.is_some())
            {
                continue;
            }
            let all = ex(expander_ports(r, &self.global, &self.regions));
            let new_pxbs = if r == 0 {
                ex(self.global.expanders)
            } else {
                ex(self.regions[r].expanders)
            };
            let capped: u32 = m
                .caps
                .iter()
                .filter(|c| c.region == r)
                .map(|c| c.positions.min(c.room))
                .sum();
            let elsewhere = f64::from(m.regions[r].pxb_free.saturating_sub(capped));
            self.add(Rule::Pxb, constraint!(on_caps(r) <= all.clone()));
            let row = constraint!(all - on_caps(r) <= elsewhere + f64::from(m.pxb_cap) * new_pxbs);
            self.add(Rule::Pxb, row);
        }
        // R-SWITCH: a new switch's buses are budgeted in `pcie.0`'s range (`root_bus_room`),
        // so its upstream port sits in that hierarchy or below an expander without a pinned
        // range: a new root port, a port on an uncapped expander, or a free existing port a
        // bridge may use there (never one of a pinned expander's: its range may not hold them).
        if let Some(sw) = self.global.switches {
            let capped_ports = sum(m
                .caps
                .iter()
                .zip(&v.cap_ports)
                .filter(|(c, _)| c.region == 0)
                .map(|(_, p)| ex(*p)));
            let existing: u32 = m.root_ports_free + m.float_ports.iter().sum::<u32>();
            let row = constraint!(
                sw <= self.root.ports + ex(self.global.expander_ports) - capped_ports
                    + f64::from(existing)
            );
            self.add(Rule::Switch, row);
        }
        let Some(root) = v.root_bridges else { return };
        let bridges = sum(self.regions.iter().map(|g| ex(g.bridges)));
        let placed = Expression::from(root)
            + sum(v.float_bridges.iter().map(|f| ex(*f)))
            + sum(v.cap_bridges.iter().map(|b| ex(*b)));
        self.add(Rule::BusNr, constraint!(bridges <= placed));
        // Bridges in `pcie.0`'s hierarchy sit on its ports: free ones, new root ports, new
        // downstream ports.
        let ports =
            self.root.ports + ex(self.global.downstream_ports) + f64::from(m.root_ports_free);
        self.add(Rule::BusNr, constraint!(root <= ports));
        for r in 0..m.regions.len() {
            let below_caps = sum(m
                .caps
                .iter()
                .zip(&v.cap_bridges)
                .filter(|(c, _)| c.region == r)
                .map(|(_, b)| ex(*b)));
            if r > 0 && self.regions[r].bridges.is_some() {
                let row =
                    constraint!(ex(self.regions[r].bridges) <= ex(v.float_bridges[r]) + below_caps);
                self.add(Rule::BusNr, row);
            }
            if let Some(f) = v.float_bridges[r] {
                let ports = ex(expander_ports(r, &self.global, &self.regions)) - on_caps(r)
                    + f64::from(m.float_ports.get(r).copied().unwrap_or(0));
                self.add(Rule::BusNr, constraint!(f <= ports));
            }
        }
    }
}
