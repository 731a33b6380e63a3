//! The integer program as a struct: it owns its variables in named groups, and each
//! constraint family is one method that carries its rule.
//!
//! microlp's answer among equal optima can depend on the order of variables and
//! constraints, and plans must not change from one release to the next: variables are made
//! in the order [`Program::new`] lists them, and the families run in the order
//! [`Program::constrain`] calls them. Change either only with the golden outputs in hand.

use good_lp::{constraint, variable, Constraint, Expression, ProblemVariables, Variable};

use super::adoption::AdoptVars;
use super::budgets::Budgets;
use super::model::{Class, Model, Place, PLACES};
use super::ranges::RangeVars;
use crate::rule::Rule;

/// Upper bound of counts that have no natural one.
const BIG: u32 = 4096;

/// The new controllers that belong to no NUMA node. Without them the `pcie.0` slots could
/// not run short (see [`Budgets`]), so they exist only where the slot budget does.
#[derive(Debug, Clone, Copy)]
pub(super) struct Global {
    /// New `pxb-pcie` expanders without a NUMA node (R-PXB).
    pub expanders: Option<Variable>,
    /// Root ports on them.
    pub expander_ports: Option<Variable>,
    /// New switches, one upstream port each (R-SWITCH).
    pub switches: Option<Variable>,
    /// Their downstream ports.
    pub downstream_ports: Option<Variable>,
}

/// The root bus.
#[derive(Debug, Clone, Copy)]
pub(super) struct Root {
    /// Root ports added on `pcie.0` (R-RP).
    pub ports: Variable,
    /// `pcie.0` slots those ports fill, 8 functions each (R-RP-PACK).
    pub port_slots: Option<Variable>,
    /// `pcie.0` slots holding packed single integrated units (R-INT-SLOT).
    pub packed_slots: Option<Variable>,
}

/// Elastic slack on the budgets, priced so that any slack means infeasible. Continuous: at
/// any integer placement the least slack is integer anyway, and branch and bound never has
/// to search for a feasible point (any placement is one).
#[derive(Debug, Clone, Copy)]
pub(super) struct Slack {
    /// Missing `pcie.0` slots (R-ROOT).
    pub slots: Option<Variable>,
    /// Missing guest bus numbers (R-BUSNR).
    pub bus: Option<Variable>,
    /// Missing I/O windows (R-IO).
    pub io: Option<Variable>,
}

/// The variables of one region (0: no NUMA node; others: one NUMA node each). A variable
/// exists only where the region can use it.
#[derive(Debug, Clone, Copy)]
pub(super) struct RegionVars {
    /// Root ports added on the region's expanders (NUMA regions).
    pub ports: Option<Variable>,
    /// New bridges (where some class may sit on a bridge).
    pub bridges: Option<Variable>,
    /// Conventional units without a NUMA node, with I/O BARs, on this region's bridges.
    pub hosted_io: Option<Variable>,
    /// The same without I/O BARs.
    pub hosted: Option<Variable>,
    /// Bridges that open an I/O window: new ones, or existing ones without one (R-IO).
    pub io_bridges: Option<Variable>,
    /// Existing free hot-pluggable ports used.
    pub used_on: Option<Variable>,
    /// Existing free `hotplug=off` ports used.
    pub used_off: Option<Variable>,
    /// Existing free hot-pluggable ports lent to region 0 (what has no NUMA node).
    pub lent_on: Option<Variable>,
    /// Existing free `hotplug=off` ports lent to region 0.
    pub lent_off: Option<Variable>,
    /// Of `lent_on`, ports only an endpoint may use (R-BUSNR, G-ID): region 0 gives them
    /// to units or keeps them as spares.
    pub lent_on_eo: Option<Variable>,
    /// Of `lent_off`, ports only an endpoint may use.
    pub lent_off_eo: Option<Variable>,
    /// New expanders of the region's NUMA node.
    pub expanders: Option<Variable>,
}

/// The program of one model.
pub(super) struct Program<'m> {
    pub m: &'m Model,
    /// What-if `--max`: the class whose units the objective maximises.
    pub grow: Option<usize>,
    pub budgets: Budgets,
    /// Units of each class per place, only where the class may go.
    pub placed: Vec<[Option<Variable>; 4]>,
    pub root: Root,
    pub global: Global,
    pub slack: Slack,
    pub regions: Vec<RegionVars>,
    /// The soft pins of an adopted guest (O-ADOPT).
    pub adopt_vars: Option<AdoptVars>,
    /// Where new buses sit with pinned expander ranges (R-BUSNR).
    pub ranges: Option<RangeVars>,
    /// The constraints, each with the rule it stands for, in the order they are added.
    pub rows: Vec<(Rule, Constraint)>,
}

fn int(vars: &mut ProblemVariables, max: u32) -> Variable {
    vars.add(variable().integer().min(0).max(f64::from(max)))
}

/// An integer count bounded by [`BIG`], made only if `keep`.
fn count(vars: &mut ProblemVariables, keep: bool) -> Option<Variable> {
    keep.then(|| int(vars, BIG))
}

/// A continuous slack, made only if `keep`.
fn slack(vars: &mut ProblemVariables, keep: bool) -> Option<Variable> {
    keep.then(|| vars.add(variable().min(0).max(f64::from(BIG))))
}

/// A variable that may not exist, as an expression (0 if it does not).
pub(super) fn ex(o: Option<Variable>) -> Expression {
    o.map(Expression::from).unwrap_or_default()
}

pub(super) fn sum<I: IntoIterator<Item = Expression>>(it: I) -> Expression {
    it.into_iter().fold(Expression::from(0.0), |a, b| a + b)
}

/// What the units of one region ask of ports (the existing ones and new ones).
struct Demand {
    /// `hotplug=off` ports for `off` units.
    off: Expression,
    /// Hot-pluggable ports for units, new bridges, and in region 0 switches and spares.
    other: Expression,
    /// Of those, what does not care about the port's hotplug: `any` units, bridges and
    /// switch upstreams (R-HP-PORT: `hotplug=off` protects only the direct child).
    flexible: Expression,
    /// Units that are not `off`.
    on_units: Expression,
    /// `any` units on ports.
    any_units: Expression,
}

impl RegionVars {
    /// The region variables, made column by column (every region's `ports`, then every
    /// region's `bridges`, ...): that is the variable order.
    fn new(vars: &mut ProblemVariables, m: &Model, budgets: Budgets) -> Vec<RegionVars> {
        let n = m.regions.len();
        let mut column = |f: &dyn Fn(usize) -> Option<u32>| -> Vec<Option<Variable>> {
            (0..n).map(|r| f(r).map(|max| int(vars, max))).collect()
        };
        let big = |keep: bool| keep.then_some(BIG);
        // A NUMA region hosts conventional units without a NUMA node on the bridges it
        // adds, or on free slots of its existing ones.
        let hosts = |r: usize| {
            r > 0 && m.has_bridge(0) && (m.has_bridge(r) || m.regions[r].bridge_free > 0)
        };
        let ports = column(&|r| big(r > 0));
        let bridges = column(&|r| big(m.has_bridge(r)));
        let hosted_io = column(&|r| big(hosts(r)));
        let hosted = column(&|r| big(hosts(r)));
        let io_bridges = column(&|_| big(budgets.io_windows));
        let used_on = column(&|r| Some(m.regions[r].free_on).filter(|&e| e > 0));
        let used_off = column(&|r| Some(m.regions[r].free_off).filter(|&e| e > 0));
        // Endpoint-only ports are lent too, counted apart: only units and spares of
        // region 0 take them (`existing_ports`).
        let lent_on = column(&|r| {
            let g = &m.regions[r];
            (r > 0 && g.free_on > 0).then_some(g.free_on)
        });
        let lent_off = column(&|r| {
            let g = &m.regions[r];
            (r > 0 && g.free_off > 0).then_some(g.free_off)
        });
        let lent_on_eo = column(&|r| {
            let n = m.regions[r].free_on_endpoint_only;
            (r > 0 && n > 0).then_some(n)
        });
        let lent_off_eo = column(&|r| {
            let n = m.regions[r].free_off_endpoint_only;
            (r > 0 && n > 0).then_some(n)
        });
        let expanders = column(&|r| big(r > 0));
        (0..n)
            .map(|r| RegionVars {
                ports: ports[r],
                bridges: bridges[r],
                hosted_io: hosted_io[r],
                hosted: hosted[r],
                io_bridges: io_bridges[r],
                used_on: used_on[r],
                used_off: used_off[r],
                lent_on: lent_on[r],
                lent_off: lent_off[r],
                lent_on_eo: lent_on_eo[r],
                lent_off_eo: lent_off_eo[r],
                expanders: expanders[r],
            })
            .collect()
    }
}

impl<'m> Program<'m> {
    /// Makes the variables and adds every constraint. `grow`: see [`super::solve_max`].
    pub fn new(m: &'m Model, grow: Option<usize>) -> (Program<'m>, ProblemVariables) {
        let budgets = Budgets::of(m, grow.is_some());
        let mut vars = ProblemVariables::new();
        let placed = m
            .classes
            .iter()
            .enumerate()
            .map(|(ci, c)| {
                let max = if grow == Some(ci) { BIG } else { c.n };
                let mut row = [None; 4];
                for p in PLACES {
                    if c.may(p) {
                        row[p as usize] = Some(int(&mut vars, max));
                    }
                }
                row
            })
            .collect();
        let root_ports = int(&mut vars, BIG);
        // Port slots are not bounded by the free slots: the slot budget is elastic, and a
        // bound there would make a request that needs one more slot an unexplained failure.
        let slots = budgets.root_slots;
        let global = Global {
            expanders: count(&mut vars, slots),
            expander_ports: count(&mut vars, slots),
            switches: count(&mut vars, slots),
            downstream_ports: count(&mut vars, slots),
        };
        let root = Root {
            ports: root_ports,
            port_slots: count(&mut vars, slots),
            packed_slots: count(&mut vars, slots),
        };
        let slack = Slack {
            slots: slack(&mut vars, slots),
            bus: slack(&mut vars, budgets.bus_numbers),
            io: slack(&mut vars, budgets.io_windows),
        };
        let regions = RegionVars::new(&mut vars, m, budgets);
        let adopt_vars = m.adopt.as_ref().map(|a| AdoptVars::new(&mut vars, a, m));
        let ranges = RangeVars::new(&mut vars, m, &global, &regions);
        let mut p = Program {
            m,
            grow,
            budgets,
            placed,
            root,
            global,
            slack,
            regions,
            adopt_vars,
            ranges,
            rows: Vec::new(),
        };
        p.constrain();
        (p, vars)
    }

    /// Every constraint family, in the order the rows are added.
    fn constrain(&mut self) {
        self.every_unit_placed();
        let mut global_new = Expression::from(0.0);
        let mut numa_new = Expression::from(0.0);
        for r in 0..self.m.regions.len() {
            let d = self.demand(r);
            self.existing_ports(r, &d);
            let new_ports = d.off + d.other - self.used_on(r) - self.used_off(r);
            self.bridges(r);
            if r == 0 {
                global_new = new_ports;
            } else {
                self.numa_ports(r, &new_ports);
                numa_new += new_ports;
            }
        }
        self.lent_ports();
        self.port_supply(global_new, numa_new);
        if self.budgets.root_slots {
            self.root_port_packing();
            self.expanders_and_switches();
            self.root_slot_budget();
        }
        if self.budgets.bus_numbers {
            self.bus_number_budget();
        }
        if self.m.root_bus_room < self.m.bus_max {
            self.root_bus_room();
        }
        if self.budgets.io_windows {
            self.io_window_budget();
        }
        if self.grow.is_some() {
            self.no_slack();
        }
        self.adoption();
        self.expander_ranges();
    }

    pub(super) fn add(&mut self, rule: Rule, c: Constraint) {
        self.rows.push((rule, c));
    }

    /// Units of class `ci` at `p` (0 where the class may not go).
    pub fn at(&self, ci: usize, p: Place) -> Expression {
        ex(self.placed[ci][p as usize])
    }

    /// Units at `p` of the classes of region `r` that `pick` selects.
    pub(super) fn placed_in(
        &self,
        r: usize,
        p: Place,
        pick: impl Fn(&Class) -> bool,
    ) -> Expression {
        sum(self
            .m
            .in_region(r)
            .filter(|(_, c)| pick(c))
            .map(|(i, _)| self.at(i, p)))
    }

    /// Units at `p` of the classes (of any region) that `pick` selects.
    pub fn placed_where(&self, p: Place, pick: impl Fn(&Class) -> bool) -> Expression {
        sum(self
            .m
            .classes
            .iter()
            .enumerate()
            .filter(|(_, c)| pick(c))
            .map(|(i, _)| self.at(i, p)))
    }

    /// One region variable summed over every region.
    fn each_region(&self, f: impl Fn(&RegionVars) -> Option<Variable>) -> Expression {
        sum(self.regions.iter().map(|g| ex(f(g))))
    }

    /// One region variable summed over the NUMA regions.
    fn numa_regions(&self, f: impl Fn(&RegionVars) -> Option<Variable>) -> Expression {
        sum(self.regions.iter().skip(1).map(|g| ex(f(g))))
    }

    /// Existing hot-pluggable ports region `r` uses; region 0 also gets the lent ones.
    pub(super) fn used_on(&self, r: usize) -> Expression {
        let own = ex(self.regions[r].used_on);
        if r == 0 {
            own + self.each_region(|g| g.lent_on)
        } else {
            own
        }
    }

    /// Existing `hotplug=off` ports region `r` uses; region 0 also gets the lent ones.
    pub(super) fn used_off(&self, r: usize) -> Expression {
        let own = ex(self.regions[r].used_off);
        if r == 0 {
            own + self.each_region(|g| g.lent_off)
        } else {
            own
        }
    }

    /// Whether region `r` has existing hot-pluggable ports to use at all.
    fn has_used_on(&self, r: usize) -> bool {
        self.regions[r].used_on.is_some()
            || (r == 0 && self.regions.iter().any(|g| g.lent_on.is_some()))
    }

    /// Whether region `r` has existing `hotplug=off` ports to use at all.
    fn has_used_off(&self, r: usize) -> bool {
        self.regions[r].used_off.is_some()
            || (r == 0 && self.regions.iter().any(|g| g.lent_off.is_some()))
    }

    fn demand(&self, r: usize) -> Demand {
        let bridges = ex(self.regions[r].bridges);
        let switches = ex(self.global.switches);
        let any_port = self.placed_in(r, Place::Port, |c| c.any);
        let mut other = self.placed_in(r, Place::Port, |_| true) + bridges.clone();
        let mut flexible = any_port.clone() + bridges;
        if r == 0 {
            other = other + switches.clone() + f64::from(self.m.spare);
            flexible += switches;
        }
        Demand {
            off: self.placed_in(r, Place::OffPort, |c| c.off),
            other,
            flexible,
            on_units: self.placed_in(r, Place::Port, |c| !c.off),
            any_units: any_port,
        }
    }

    /// D-HP, D-ON, D-OFF: every unit is placed once, at a place its kind and hotplug
    /// requirement allow (the variables exist only there). What-if `--max` lets its class
    /// grow past the request.
    fn every_unit_placed(&mut self) {
        for (ci, c) in self.m.classes.iter().enumerate() {
            let all = sum(PLACES.iter().map(|&p| self.at(ci, p))) + self.kept_of_class(ci);
            let row = if self.grow == Some(ci) {
                constraint!(all >= f64::from(c.n))
            } else {
                constraint!(all == f64::from(c.n))
            };
            self.add(Rule::Hotplug, row);
        }
    }

    /// R-HP-PORT: existing free ports of region `r` take what their flavour allows, and no
    /// port is counted twice. `hotplug=off` ports take `off` units and anything that does not
    /// care; hot-pluggable ones take all but `off` units. R-BUSNR: ports below a pinned
    /// expander without a bus number left take endpoints only (or stay empty as spares).
    fn existing_ports(&mut self, r: usize, d: &Demand) {
        let g = &self.m.regions[r];
        let (used_on, used_off) = (self.used_on(r), self.used_off(r));
        let (has_on, has_off) = (self.has_used_on(r), self.has_used_off(r));
        let own = self.regions[r];
        let spare = if r == 0 { f64::from(self.m.spare) } else { 0.0 };
        // Endpoint-only ports in use beyond the open ones: region `r`'s own (after the
        // open ones it lends), and in region 0 the endpoint-only ones NUMA regions lend.
        let (lent_on_eo, lent_off_eo) = if r == 0 {
            (
                self.numa_regions(|g| g.lent_on_eo),
                self.numa_regions(|g| g.lent_off_eo),
            )
        } else {
            (Expression::from(0.0), Expression::from(0.0))
        };
        let lent_open = |all: Option<Variable>, eo: Option<Variable>| -> Expression {
            if eo.is_some() {
                ex(all) - ex(eo)
            } else {
                Expression::from(0.0)
            }
        };
        let off_endpoints = d.off.clone() + d.any_units.clone();
        if has_off {
            let row = constraint!(used_off.clone() <= d.off.clone() + d.flexible.clone());
            self.add(Rule::HotplugPort, row);
            if g.free_off_endpoint_only > 0 {
                let row = constraint!(
                    ex(own.used_off)
                        + lent_open(own.lent_off, own.lent_off_eo)
                        + lent_off_eo.clone()
                        <= f64::from(g.free_off - g.free_off_endpoint_only) + off_endpoints.clone()
                );
                self.add(Rule::BusNr, row);
            }
        }
        if own.used_on.is_some() && g.free_on_endpoint_only > 0 {
            let row = constraint!(
                ex(own.used_on) + lent_open(own.lent_on, own.lent_on_eo) + lent_on_eo.clone()
                    <= f64::from(g.free_on - g.free_on_endpoint_only) + d.on_units.clone() + spare
            );
            self.add(Rule::BusNr, row);
        }
        let any_eo = |f: fn(&RegionVars) -> Option<Variable>| {
            r == 0 && self.regions.iter().any(|g| f(g).is_some())
        };
        let (eo_on, eo_off) = (any_eo(|g| g.lent_on_eo), any_eo(|g| g.lent_off_eo));
        if eo_off {
            let row = constraint!(lent_off_eo.clone() <= off_endpoints);
            self.add(Rule::BusNr, row);
        }
        if eo_on {
            let row = constraint!(lent_on_eo.clone() <= d.on_units.clone() + spare);
            self.add(Rule::BusNr, row);
        }
        if eo_on && eo_off {
            let units = self.placed_in(0, Place::Port, |_| true) + d.off.clone();
            let row = constraint!(lent_on_eo + lent_off_eo <= units + spare);
            self.add(Rule::BusNr, row);
        }
        if has_on {
            let row = constraint!(used_on.clone() <= d.other.clone());
            self.add(Rule::HotplugPort, row);
        }
        if has_on && has_off {
            let row = constraint!(used_on + used_off <= d.off.clone() + d.other.clone());
            self.add(Rule::HotplugPort, row);
        }
    }

    /// R-BRIDGE: bridges of region `r` hold its bridged units, 31 slots each, after the free
    /// slots of existing bridges. Conventional units without a NUMA node may fill a NUMA
    /// node's bridges (hosted), with and without I/O BARs counted apart. R-IO: bridges holding
    /// units with I/O BARs (filled first) are the ones that open a window.
    fn bridges(&mut self, r: usize) {
        let (m, g) = (self.m, self.regions[r]);
        let own = self.placed_in(r, Place::Bridge, |_| true);
        let own_io = self.placed_in(r, Place::Bridge, |c| c.io);
        let (bridged, io_bridged) = if r == 0 {
            let shared_io = self.each_region(|g| g.hosted_io);
            let shared_all = shared_io.clone() + self.each_region(|g| g.hosted);
            if self.regions.iter().any(|g| g.hosted_io.is_some()) {
                let row = constraint!(shared_io.clone() <= own_io.clone());
                self.add(Rule::Bridge, row);
                let row = constraint!(
                    shared_all.clone() - shared_io.clone() <= own.clone() - own_io.clone()
                );
                self.add(Rule::Bridge, row);
            }
            (own - shared_all, own_io - shared_io)
        } else {
            (
                own + ex(g.hosted_io) + ex(g.hosted),
                own_io + ex(g.hosted_io),
            )
        };
        let region = &m.regions[r];
        let cap = f64::from(m.bridge_cap);
        if g.bridges.is_some() || g.hosted.is_some() {
            let kept = self.kept_bridge_slots(r);
            let row =
                constraint!(cap * ex(g.bridges) + f64::from(region.bridge_free) >= bridged + kept);
            self.add(Rule::Bridge, row);
        }
        if let (Some(windows), true) = (g.io_bridges, g.bridges.is_some() || g.hosted.is_some()) {
            let kept = self.kept_window_slots(r);
            let row =
                constraint!(cap * windows + f64::from(region.bridge_free_io) + kept >= io_bridged);
            self.add(Rule::Io, row);
            let row = constraint!(windows <= ex(g.bridges) + f64::from(region.bridges_unwindowed));
            self.add(Rule::Io, row);
        }
    }

    /// D-NUMA: the new ports of NUMA region `r` are root ports on its expanders; R-PXB: those
    /// hold what existing ones have free plus 256 per new expander.
    fn numa_ports(&mut self, r: usize, new_ports: &Expression) {
        let g = self.regions[r];
        let row = constraint!(new_ports.clone() <= ex(g.ports));
        self.add(Rule::Numa, row);
        let free = f64::from(self.m.regions[r].pxb_free);
        let row = constraint!(ex(g.ports) <= free + f64::from(self.m.pxb_cap) * ex(g.expanders));
        self.add(Rule::Pxb, row);
    }

    /// A NUMA region's free port is used by the region or lent, not both.
    fn lent_ports(&mut self) {
        for r in 1..self.m.regions.len() {
            let (g, region) = (self.regions[r], &self.m.regions[r]);
            if let Some(lent) = g.lent_on {
                let row = constraint!(ex(g.used_on) + lent <= f64::from(region.free_on));
                self.add(Rule::HotplugPort, row);
            }
            if let Some(lent) = g.lent_off {
                let row = constraint!(ex(g.used_off) + lent <= f64::from(region.free_off));
                self.add(Rule::HotplugPort, row);
            }
        }
        // R-BUSNR: of the lent ports, those only an endpoint may use (`existing_ports`).
        for r in 1..self.m.regions.len() {
            let g = self.regions[r];
            for (eo, all) in [(g.lent_on_eo, g.lent_on), (g.lent_off_eo, g.lent_off)] {
                if let Some(eo) = eo {
                    self.add(Rule::BusNr, constraint!(eo <= ex(all)));
                }
            }
        }
    }

    /// R-RP: new ports without a NUMA node sit on root ports of `pcie.0`, of new expanders,
    /// on downstream ports, or on what NUMA regions' expanders hold beyond their own needs.
    fn port_supply(&mut self, global_new: Expression, numa_new: Expression) {
        let supply = self.root.ports
            + ex(self.global.expander_ports)
            + ex(self.global.downstream_ports)
            + self.numa_regions(|g| g.ports)
            - numa_new;
        self.add(Rule::RootPort, constraint!(global_new <= supply));
    }

    /// R-RP-PACK: root ports on `pcie.0` fill free functions of slots holding root ports,
    /// then new slots, 8 functions each.
    fn root_port_packing(&mut self) {
        let m = self.m;
        let row = constraint!(
            self.root.ports
                <= f64::from(m.ports_per_slot) * ex(self.root.port_slots)
                    + f64::from(m.root_free_functions)
        );
        self.add(Rule::RootPortPack, row);
    }

    /// R-PXB: 256 root ports per new expander (after the free ones of existing ones);
    /// R-SWITCH: 32 downstream ports per switch, and each switch's upstream port takes a
    /// port of region 0.
    fn expanders_and_switches(&mut self) {
        let (m, gl) = (self.m, self.global);
        let row = constraint!(
            ex(gl.expander_ports)
                <= f64::from(m.pxb_cap) * ex(gl.expanders) + f64::from(m.regions[0].pxb_free)
        );
        self.add(Rule::Pxb, row);
        let row = constraint!(
            ex(gl.downstream_ports)
                <= f64::from(m.switch_cap) * ex(gl.switches) + f64::from(m.upstream_free)
        );
        self.add(Rule::Switch, row);
        let lent_eo = self.numa_regions(|g| g.lent_on_eo) + self.numa_regions(|g| g.lent_off_eo);
        let row = constraint!(
            ex(gl.switches)
                <= self.root.ports + ex(gl.expander_ports) + self.used_on(0) + self.used_off(0)
                    - lent_eo
        );
        self.add(Rule::Switch, row);
    }

    /// Integrated units with a slot each (not packable).
    pub fn own_slots(&self) -> Expression {
        self.placed_where(Place::Integrated, |c| !c.packable)
    }

    /// Packable single units placed integrated.
    pub fn packed_singles(&self) -> Expression {
        self.placed_where(Place::Integrated, |c| c.packable)
    }

    /// New expanders of NUMA nodes.
    pub fn new_numa_expanders(&self) -> Expression {
        self.each_region(|g| g.expanders)
    }

    /// R-INT-SLOT: packed singles take 8 per slot. R-ROOT: integrated slots, root-port
    /// slots and new expanders fit the free `pcie.0` slots (elastic).
    fn root_slot_budget(&mut self) {
        let m = self.m;
        let packed = ex(self.root.packed_slots);
        let room = f64::from(m.int_per_slot) * packed.clone() + self.kept_pack_room();
        let row = constraint!(room >= self.packed_singles());
        self.add(Rule::IntSlot, row);
        let slots = self.own_slots()
            + packed
            + ex(self.root.port_slots)
            + ex(self.global.expanders)
            + self.new_numa_expanders()
            + self.kept_root_slots();
        let row = constraint!(slots <= f64::from(m.root_free_slots) + ex(self.slack.slots));
        self.add(Rule::Root, row);
    }

    /// R-BUSNR: one bus number per port, switch port, bridge and expander (elastic).
    fn bus_number_budget(&mut self) {
        let (m, gl) = (self.m, self.global);
        let buses = self.root.ports
            + ex(gl.expander_ports)
            + ex(gl.downstream_ports)
            + ex(gl.switches)
            + ex(gl.expanders)
            + self.numa_regions(|g| g.ports)
            + self.each_region(|g| g.bridges)
            + self.new_numa_expanders()
            + f64::from(m.bus_used);
        let row = constraint!(buses <= f64::from(m.bus_max) + ex(self.slack.bus));
        self.add(Rule::BusNr, row);
    }

    /// R-BUSNR: below `pcie.0` the firmware numbers from 1 up to the lowest pinned
    /// expander's `bus_nr`: root ports, switches and the bridges in that hierarchy
    /// (`expander_ranges` says which bridges are).
    fn root_bus_room(&mut self) {
        let gl = self.global;
        let row = constraint!(
            self.root.ports + ex(gl.downstream_ports) + ex(gl.switches) + self.root_bridges()
                <= f64::from(self.m.root_bus_room) + ex(self.slack.bus)
        );
        self.add(Rule::BusNr, row);
    }

    /// Ports holding a unit with I/O BARs (each takes a window).
    pub fn io_ports(&self) -> Expression {
        sum(self
            .m
            .classes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.io)
            .map(|(i, _)| self.at(i, Place::Port) + self.at(i, Place::OffPort)))
    }

    /// I/O windows the plan takes: ports with I/O units, windowed bridges, pinned ones.
    pub fn io_windows(&self) -> Expression {
        self.io_ports()
            + self.each_region(|g| g.io_bridges)
            + f64::from(self.m.io_used)
            + self.kept_windows()
    }

    /// R-IO: every port whose unit has I/O BARs, and every bridge holding one, takes a 4 KiB
    /// window of the firmware's (elastic).
    fn io_window_budget(&mut self) {
        let row = constraint!(self.io_windows() <= f64::from(self.m.io_max) + ex(self.slack.io));
        self.add(Rule::Io, row);
    }

    /// What-if `--max` looks for the most that fits: no slack.
    fn no_slack(&mut self) {
        let s = self.slack;
        let row = constraint!(ex(s.slots) + ex(s.bus) + ex(s.io) <= 0.0);
        self.add(Rule::Cost, row);
    }

    /// O-COST: controllers added (root ports, expanders and their ports, switches and their
    /// ports, bridges).
    pub fn cost(&self) -> Expression {
        let gl = self.global;
        self.root.ports
            + ex(gl.expanders)
            + ex(gl.expander_ports)
            + ex(gl.switches)
            + ex(gl.downstream_ports)
            + self.numa_regions(|g| g.ports)
            + self.each_region(|g| g.bridges)
            + self.new_numa_expanders()
    }

    /// O-TIE's last tie: units that may be integrated but are placed elsewhere (on a free
    /// existing port or bridge slot that costs nothing either).
    fn not_integrated(&self) -> Expression {
        let mut e = Expression::default();
        for (ci, c) in self.m.classes.iter().enumerate() {
            if !c.may(Place::Integrated) {
                continue;
            }
            for q in [Place::OffPort, Place::Port, Place::Bridge] {
                if let Some(v) = self.placed[ci][q as usize] {
                    e += v;
                }
            }
        }
        e
    }

    /// Slack first (1e6 each), then cost (1000 each); O-TIE: among equal costs, expanders and
    /// switches last (20), then ports not on `pcie.0`, then units that could be integrated
    /// and are not, and `pcie.0` slots taken by new root ports (1/1024 each, below any of the
    /// ties before: the lowest slots first). What-if `--max` first maximises its class.
    pub fn objective(&self) -> Expression {
        let (gl, s) = (self.global, self.slack);
        let tie: Expression = 20.0 * (ex(gl.expanders) + ex(gl.switches))
            + ex(gl.expander_ports)
            + ex(gl.downstream_ports)
            + self.numa_regions(|g| g.ports);
        let slack = ex(s.slots) + ex(s.bus) + ex(s.io);
        let objective = match self.adopt_weights() {
            // O-ADOPT: changes, then controllers, then flips, then the ties.
            Some((w_slack, w_change, w_flip)) => {
                w_slack * slack
                    + w_change * self.guest_changes()
                    + 1000.0 * self.cost()
                    + w_flip * self.flips()
                    + tie
            }
            None => {
                let last = self.not_integrated() + ex(self.root.port_slots);
                1_000_000.0 * slack + 1000.0 * self.cost() + tie + last / 1024.0
            }
        };
        match self.grow {
            Some(g) => {
                let grown = sum(self.placed[g].iter().flatten().map(|&v| v.into()));
                objective - 1e9 * grown
            }
            None => objective,
        }
    }
}

#[cfg(test)]
mod tests;
