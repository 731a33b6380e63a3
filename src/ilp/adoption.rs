//! Soft pins (O-ADOPT): an adopted guest's existing units and ports as priced variables.
//!
//! The model of an adopted guest is the model of the same guest with every device free to
//! move: its classes count existing units too, and what the existing ones occupy counts as
//! free. These variables take that back where a unit stays:
//!
//! - `keep[u]` (binary, only where unit `u` may stay under some port setting): kept units
//!   leave their class's count, and hold their `pcie.0` slot, port or bridge slot;
//! - `on[p]`: the `hotplug` of existing port `p` after adoption; a kept `on` unit needs it
//!   on, a kept `off` unit off (D-ON, D-OFF); a change is a flip (G-FLIP);
//! - `free_on[p]`, `free_off[p]`: port `p` holds no kept unit and serves a unit placed
//!   anew, as a hot-pluggable or a `hotplug=off` port;
//! - `early[j]`: a new port takes the `j`-th free `pcie.0` slot that comes before existing
//!   ports in the firmware's depth-first numbering (latest first), and `renumbered[u]`:
//!   a kept unit whose bus number that changes (G-ID).
//!
//! The objective puts guest-visible changes (moved or renumbered devices) first, then the
//! plain program's controllers and ties, with flips between controllers and ties: see
//! [`Program::objective`](super::program::Program::objective).

use good_lp::{constraint, variable, Expression, ProblemVariables, Variable};

use super::model::{Adopt, Model, Place, Site};
use super::program::{ex, sum, Program};
use crate::rule::Rule;

/// The variables of the soft pins.
#[derive(Debug, Clone)]
pub(super) struct AdoptVars {
    /// Per existing unit: it stays (absent where it cannot).
    pub keep: Vec<Option<Variable>>,
    /// Per existing port: hot-pluggable after adoption.
    pub on: Vec<Variable>,
    /// Per existing port: free and serving a new unit as a hot-pluggable port.
    pub free_on: Vec<Variable>,
    /// Per existing port: free and serving a new unit as a `hotplug=off` port.
    pub free_off: Vec<Variable>,
    /// Per existing unit's `pcie.0` slot: some kept unit holds it.
    pub slot_taken: Vec<Variable>,
    /// Per early slot (latest first): a new port takes it.
    pub early: Vec<Variable>,
    /// Per existing unit: its bus is renumbered (absent where nothing can renumber it).
    pub renumbered: Vec<Option<Variable>>,
    /// Per existing port and bridge: a kept unit with I/O BARs keeps its window.
    pub port_window: Vec<Option<Variable>>,
    /// The same per existing bridge.
    pub bridge_window: Vec<Option<Variable>>,
    /// Per existing unit's `pcie.0` slot: a packed unit placed anew takes function 0 of it,
    /// where the unit there moves and units above it stay (R-FUNC, R-INT-SLOT; absent
    /// unless every unit of the slot is packable and one sits above function 0).
    pub fill0: Vec<Option<Variable>>,
}

fn binary(vars: &mut ProblemVariables) -> Variable {
    vars.add(variable().integer().min(0).max(1))
}

impl AdoptVars {
    /// The variables of `a`, made after every variable of the plain program.
    pub fn new(vars: &mut ProblemVariables, a: &Adopt, m: &Model) -> AdoptVars {
        let keep = a
            .units
            .iter()
            .map(|u| (u.site.is_some() && (u.stay_on || u.stay_off)).then(|| binary(vars)))
            .collect();
        let on = a.ports.iter().map(|_| binary(vars)).collect();
        let free_on = a.ports.iter().map(|_| binary(vars)).collect();
        let free_off = a.ports.iter().map(|_| binary(vars)).collect();
        let slot_taken = (0..a.root_slots).map(|_| binary(vars)).collect();
        let early = a.early_slots.iter().map(|_| binary(vars)).collect();
        let renumbered = (0..a.units.len())
            .map(|u| {
                a.early_slots
                    .iter()
                    .any(|l| l.contains(&u))
                    .then(|| binary(vars))
            })
            .collect();
        let has_io_at = |pick: &dyn Fn(Site) -> bool| -> bool {
            a.units.iter().any(|u| u.io && u.site.is_some_and(pick))
        };
        let port_window = (0..a.ports.len())
            .map(|p| has_io_at(&|s| s == Site::Port(p)).then(|| binary(vars)))
            .collect();
        let bridge_window = (0..a.bridges.len())
            .map(|b| has_io_at(&|s| s == Site::Bridge(b)).then(|| binary(vars)))
            .collect();
        let fill0 = (0..a.root_slots as usize)
            .map(|s| {
                let here = || {
                    a.units
                        .iter()
                        .filter(move |u| u.site == Some(Site::Root(s)))
                };
                let above = here().any(|u| u.after.is_some());
                let packable = here().all(|u| m.classes[u.class].packable);
                (above && packable).then(|| binary(vars))
            })
            .collect();
        AdoptVars {
            keep,
            on,
            free_on,
            free_off,
            slot_taken,
            early,
            renumbered,
            port_window,
            bridge_window,
            fill0,
        }
    }
}

impl Program<'_> {
    fn adopt(&self) -> Option<(&Adopt, &AdoptVars)> {
        Some((self.m.adopt.as_ref()?, self.adopt_vars.as_ref()?))
    }

    /// Existing units of class `ci` that stay (0 without adoption).
    pub(super) fn kept_of_class(&self, ci: usize) -> Expression {
        let Some((a, v)) = self.adopt() else {
            return Expression::from(0.0);
        };
        sum(a
            .units
            .iter()
            .zip(&v.keep)
            .filter(|(u, _)| u.class == ci)
            .map(|(_, k)| ex(*k)))
    }

    /// `pcie.0` slots kept units hold (0 without adoption).
    pub(super) fn kept_root_slots(&self) -> Expression {
        self.adopt()
            .map(|(_, v)| sum(v.slot_taken.iter().map(|&s| s.into())))
            .unwrap_or_default()
    }

    /// Bridge slots kept units of region `r` hold (0 without adoption).
    pub(super) fn kept_bridge_slots(&self, r: usize) -> Expression {
        let Some((a, v)) = self.adopt() else {
            return Expression::from(0.0);
        };
        sum(a
            .units
            .iter()
            .zip(&v.keep)
            .filter(|(u, _)| matches!(u.site, Some(Site::Bridge(b)) if a.bridges[b] == r))
            .map(|(_, k)| ex(*k)))
    }

    /// I/O windows the ports and bridges of kept units keep (0 without adoption).
    pub(super) fn kept_windows(&self) -> Expression {
        self.adopt()
            .map(|(_, v)| sum(v.port_window.iter().chain(&v.bridge_window).map(|w| ex(*w))))
            .unwrap_or_default()
    }

    /// R-IO: free slots of region `r`'s existing bridges that keep their window for a kept
    /// unit with I/O BARs: a unit with I/O BARs placed there opens no other (0 without
    /// adoption).
    pub(super) fn kept_window_slots(&self, r: usize) -> Expression {
        let Some((a, v)) = self.adopt() else {
            return Expression::from(0.0);
        };
        let cap = self.m.bridge_cap;
        sum(a
            .bridges
            .iter()
            .zip(&v.bridge_window)
            .enumerate()
            .filter(|(_, (&region, w))| region == r && w.is_some())
            .map(|(b, (_, w))| {
                let sited = a
                    .units
                    .iter()
                    .filter(|u| u.site == Some(Site::Bridge(b)))
                    .count() as u32;
                f64::from(cap.saturating_sub(sited)) * ex(*w)
            }))
    }

    /// R-INT-SLOT: functions a packed single may take beside kept ones, in `pcie.0` slots
    /// that hold only packable single units (0 without adoption).
    pub(super) fn kept_pack_room(&self) -> Expression {
        let Some((a, v)) = self.adopt() else {
            return Expression::from(0.0);
        };
        let per = f64::from(self.m.int_per_slot);
        let mut room = Expression::from(0.0);
        for (s, &taken) in v.slot_taken.iter().enumerate() {
            let here: Vec<usize> = (0..a.units.len())
                .filter(|&u| a.units[u].site == Some(Site::Root(s)))
                .collect();
            if here
                .iter()
                .all(|&u| self.m.classes[a.units[u].class].packable)
            {
                room += per * taken - sum(here.iter().map(|&u| ex(v.keep[u])));
            }
        }
        room
    }

    /// Guest-visible changes: devices of units that move or whose bus is renumbered.
    pub(crate) fn guest_changes(&self) -> Expression {
        let Some((a, v)) = self.adopt() else {
            return Expression::from(0.0);
        };
        let mut e = Expression::from(0.0);
        for (u, (k, r)) in a.units.iter().zip(v.keep.iter().zip(&v.renumbered)) {
            let n = f64::from(u.devices);
            e += n - n * ex(*k);
            e += n * ex(*r);
        }
        e
    }

    /// Existing ports whose `hotplug` changes (G-FLIP).
    pub(crate) fn flips(&self) -> Expression {
        let Some((a, v)) = self.adopt() else {
            return Expression::from(0.0);
        };
        sum(a.ports.iter().zip(&v.on).map(|(p, &on)| {
            if p.hotplug {
                1.0 - Expression::from(on)
            } else {
                on.into()
            }
        }))
    }

    /// The adoption's rows: a kept unit's port has the setting it needs and serves nothing
    /// else; free existing ports feed their region; new ports on early slots renumber the
    /// kept units after them; kept units hold their slots and windows.
    pub(super) fn adoption(&mut self) {
        let Some((a, v)) = self.adopt() else { return };
        let (a, v) = (a.clone(), v.clone());
        for (u, k) in a.units.iter().zip(&v.keep) {
            let Some(k) = *k else { continue };
            if let Some(first) = u.after {
                let fill = match u.site {
                    Some(Site::Root(s)) => ex(v.fill0[s]),
                    _ => Expression::from(0.0),
                };
                let row = constraint!(k <= ex(v.keep[first]) + fill);
                self.add(Rule::Func, row);
            }
            match u.site {
                Some(Site::Port(p)) => {
                    let on = v.on[p];
                    if !u.stay_off {
                        self.add(Rule::On, constraint!(k <= on));
                    }
                    if !u.stay_on {
                        self.add(Rule::Off, constraint!(k + on <= 1.0));
                    }
                    let row = constraint!(k + v.free_on[p] + v.free_off[p] <= 1.0);
                    self.add(Rule::HotplugPort, row);
                    if let Some(w) = v.port_window[p].filter(|_| u.io) {
                        self.add(Rule::Io, constraint!(k <= w));
                    }
                }
                Some(Site::Root(s)) => {
                    self.add(Rule::IntSlot, constraint!(k <= v.slot_taken[s]));
                }
                Some(Site::Bridge(b)) => {
                    if let Some(w) = v.bridge_window[b].filter(|_| u.io) {
                        self.add(Rule::Io, constraint!(k <= w));
                    }
                }
                None => {}
            }
        }
        for p in 0..a.ports.len() {
            self.add(Rule::HotplugPort, constraint!(v.free_on[p] <= v.on[p]));
            self.add(
                Rule::HotplugPort,
                constraint!(v.free_off[p] + v.on[p] <= 1.0),
            );
        }
        self.function_zero_fills(&a, &v);
        self.adopted_port_pools(&a, &v);
        self.switch_ports(&a, &v);
        self.renumbering(&a, &v);
    }

    /// R-HP-PORT: the existing ports a region uses (its own and lent ones) are ports the
    /// adoption frees, with the setting they serve.
    fn adopted_port_pools(&mut self, a: &Adopt, v: &AdoptVars) {
        for r in 0..self.m.regions.len() {
            let g = self.regions[r];
            let in_r = |f: &[Variable]| -> Expression {
                sum(a
                    .ports
                    .iter()
                    .zip(f)
                    .filter(|(p, _)| p.region == r)
                    .map(|(_, &x)| x.into()))
            };
            if g.used_on.is_some() || g.lent_on.is_some() {
                let row = constraint!(ex(g.used_on) + ex(g.lent_on) <= in_r(&v.free_on));
                self.add(Rule::Adopt, row);
            }
            if g.used_off.is_some() || g.lent_off.is_some() {
                let row = constraint!(ex(g.used_off) + ex(g.lent_off) <= in_r(&v.free_off));
                self.add(Rule::Adopt, row);
            }
            // Lent ports only an endpoint may use are among the freed ones of that kind.
            let eo_in_r = |f: &[Variable]| -> Expression {
                sum(a
                    .ports
                    .iter()
                    .zip(f)
                    .filter(|(p, _)| p.region == r && p.endpoint_only)
                    .map(|(_, &x)| x.into()))
            };
            if let Some(eo) = g.lent_on_eo {
                self.add(Rule::BusNr, constraint!(eo <= eo_in_r(&v.free_on)));
            }
            if let Some(eo) = g.lent_off_eo {
                self.add(Rule::BusNr, constraint!(eo <= eo_in_r(&v.free_off)));
            }
            // Open ports a NUMA region lends are not there for its own bridges or units.
            let lent_open = |all: Option<Variable>, eo: Option<Variable>| -> Expression {
                if eo.is_some() {
                    ex(all) - ex(eo)
                } else {
                    Expression::from(0.0)
                }
            };
            let (open_on_lent, open_off_lent) = if r > 0 {
                (
                    lent_open(g.lent_on, g.lent_on_eo),
                    lent_open(g.lent_off, g.lent_off_eo),
                )
            } else {
                (Expression::from(0.0), Expression::from(0.0))
            };
            // A bridge or switch on an existing port needs one that renumbers nothing
            // (not endpoint-only); units and spares take any.
            let usable: Expression = sum(a
                .ports
                .iter()
                .enumerate()
                .filter(|(_, p)| p.region == r && !p.endpoint_only)
                .map(|(i, _)| Expression::from(v.free_on[i]) + v.free_off[i]));
            let units = self.placed_in(r, Place::Port, |_| true)
                + self.placed_in(r, Place::OffPort, |_| true);
            let spare = if r == 0 { f64::from(self.m.spare) } else { 0.0 };
            let used = self.used_on(r) + self.used_off(r);
            if g.used_on.is_some() || g.used_off.is_some() {
                let lent = open_on_lent.clone() + open_off_lent.clone();
                let row = constraint!(used + lent <= units + spare + usable);
                self.add(Rule::BusNr, row);
            }
            // The same per flavour: a port only an endpoint may use serves, hot-pluggable,
            // units that are not `off` or spares; `hotplug=off`, `off` or `any` units.
            let open = |f: &[Variable]| -> Expression {
                sum(a
                    .ports
                    .iter()
                    .zip(f)
                    .filter(|(p, _)| p.region == r && !p.endpoint_only)
                    .map(|(_, &x)| x.into()))
            };
            if g.used_on.is_some() || (r == 0 && self.regions.iter().any(|x| x.lent_on.is_some())) {
                let on_units = self.placed_in(r, Place::Port, |c| !c.off);
                let row = constraint!(
                    self.used_on(r) + open_on_lent <= on_units + spare + open(&v.free_on)
                );
                self.add(Rule::BusNr, row);
            }
            if g.used_off.is_some() || (r == 0 && self.regions.iter().any(|x| x.lent_off.is_some()))
            {
                let endpoints = self.placed_in(r, Place::OffPort, |c| c.off)
                    + self.placed_in(r, Place::Port, |c| c.any);
                let row =
                    constraint!(self.used_off(r) + open_off_lent <= endpoints + open(&v.free_off));
                self.add(Rule::BusNr, row);
            }
        }
    }

    /// R-FUNC, R-INT-SLOT: function 0 of a kept slot is filled by a packed unit placed anew
    /// only where the unit there moves, and each fill is one of the packed units.
    fn function_zero_fills(&mut self, a: &Adopt, v: &AdoptVars) {
        if v.fill0.iter().all(Option::is_none) {
            return;
        }
        for (s, fill) in v.fill0.iter().enumerate() {
            let Some(fill) = *fill else { continue };
            self.add(Rule::IntSlot, constraint!(fill <= v.slot_taken[s]));
            for (u, k) in a.units.iter().zip(&v.keep) {
                let first = u.site == Some(Site::Root(s)) && u.after.is_none();
                if let (true, Some(k)) = (first, *k) {
                    self.add(Rule::Func, constraint!(fill + k <= 1.0));
                }
            }
        }
        let fills = sum(v.fill0.iter().map(|f| ex(*f)));
        let row = constraint!(fills <= self.packed_singles());
        self.add(Rule::IntSlot, row);
    }

    /// R-SWITCH, G-ID: a new switch's upstream port is a new root or expander port, or a
    /// freed existing port a bridge or switch may use (not one only an endpoint may use:
    /// a switch there would renumber existing buses, or find no bus number).
    fn switch_ports(&mut self, a: &Adopt, v: &AdoptVars) {
        let Some(sw) = self.global.switches else {
            return;
        };
        let open = sum(a
            .ports
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.endpoint_only)
            .map(|(i, _)| Expression::from(v.free_on[i]) + v.free_off[i]));
        let row = constraint!(sw <= self.root.ports + ex(self.global.expander_ports) + open);
        self.add(Rule::Switch, row);
    }

    /// G-ID: new root ports fill the slots after every existing port first; each earlier
    /// slot they take (latest first) renumbers the kept units after it.
    fn renumbering(&mut self, a: &Adopt, v: &AdoptVars) {
        if let Some(slots) = self.root.port_slots {
            let early = sum(v.early.iter().map(|&z| z.into()));
            let freed = sum(a
                .late_freed
                .iter()
                .map(|&i| 1.0 - Expression::from(v.slot_taken[i])));
            let room = f64::from(a.late_slots) + freed + early + ex(self.slack.slots);
            let row = constraint!(slots <= room);
            self.add(Rule::GuestId, row);
        }
        for w in v.early.windows(2) {
            self.add(Rule::GuestId, constraint!(w[1] <= w[0]));
        }
        for (u, (k, r)) in v.keep.iter().zip(&v.renumbered).enumerate() {
            let (Some(k), Some(r)) = (*k, *r) else {
                continue;
            };
            if let Some(j) = a.early_slots.iter().position(|l| l.contains(&u)) {
                self.add(Rule::GuestId, constraint!(v.early[j] + k - 1.0 <= r));
            }
        }
    }

    /// Weights of the adoption's objective: one guest-visible change outweighs every
    /// controller a plan could add (each unit and spare needs at most a port and a bridge or
    /// switch, each region an expander), and slack outweighs every change.
    pub(super) fn adopt_weights(&self) -> Option<(f64, f64, f64)> {
        let (a, _) = self.adopt()?;
        let units: u32 = self.m.classes.iter().map(|c| c.n).sum::<u32>() + self.m.spare;
        let regions = self.m.regions.len() as u32;
        let change = 1000.0 * f64::from(3 * units + 4 * regions + 10);
        let devices: u32 = a.units.iter().map(|u| u.devices).sum();
        let slack = change * f64::from(devices + 2);
        let flip = 1000.0 / (a.ports.len() as f64 + 1.0);
        Some((slack, change, flip))
    }
}
