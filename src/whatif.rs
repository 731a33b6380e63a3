//! Capacity studies ("what if"): how many more devices fit, what a policy field costs across
//! its range, and what a policy change does to a whole fleet. Results are data; the
//! command line prints them as tables, CSV and SVG charts.
//!
//! ```
//! use pciplan::{whatif, Catalog, Request};
//! let req = Request::from_json(r#"{"devices":[{"id":"net0","model":"virtio-net-pci"}]}"#).unwrap();
//! let m = whatif::max_devices(&req, Catalog::q35(), "virtio-blk-pci", Some(pciplan::Hotplug::Off)).unwrap();
//! // hotplug-off disks are integrated: the 29 free pcie.0 slots after net0's root port.
//! assert_eq!(m.max, 29);
//! // Integrated devices cost nothing: the last step costs what the guest costs now.
//! assert_eq!(m.steps.last().unwrap().usage.cost, m.base.cost);
//! ```

pub use crate::fleet_adoption::{AdoptionStudy, GuestAdoption};
use std::collections::BTreeMap;
use std::fmt;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::catalog::{BusKind, Catalog, Layout};
use crate::error::{InputError, PlanError};
use crate::plan::Plan;
use crate::planner::{max_of_class, plan_with};
use crate::request::{DeviceRequest, Firmware, Hotplug, OffStrategy, Request, MAX_DEVICES};
use crate::Text;

/// What a plan uses: its cost and the two scarce resources of q35.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Usage {
    /// Controllers added (rule O-COST).
    pub cost: u32,
    /// `pcie.0` slots in use (R-ROOT: 30 usable).
    pub root_slots: u32,
    /// Guest bus numbers in use (R-BUSNR: 255 beside `pcie.0`).
    pub bus_numbers: u32,
}

impl Usage {
    /// The usage of a plan.
    pub fn of(plan: &Plan, cat: &Catalog) -> Usage {
        let root = cat.root.bus.as_str();
        let mut slots: Vec<u8> = plan
            .controllers
            .iter()
            .filter(|c| c.bus == root)
            .map(|c| c.slot)
            .chain(
                plan.devices
                    .iter()
                    .filter(|d| d.bus == root)
                    .map(|d| d.slot),
            )
            .filter(|&s| cat.root.slots.contains(s) && cat.root_reserved(s, 0).is_none())
            .collect();
        slots.sort_unstable();
        slots.dedup();
        let bus_numbers = plan
            .controllers
            .iter()
            .filter(|c| cat.controller(&c.model).is_some_and(|m| m.uses_bus_number))
            .count() as u32;
        Usage {
            cost: plan.cost,
            root_slots: slots.len() as u32,
            bus_numbers,
        }
    }
}

/// One step of a `--max` study: the guest with `added` more devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaxStep {
    /// Devices added.
    pub added: u32,
    /// Cost and resources of the plan with them.
    #[serde(flatten)]
    pub usage: Usage,
    /// Cost of this step over the previous one.
    pub step_cost: u32,
}

/// How many more devices of one model fit in a guest, and what each costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaxReport {
    /// The device model added.
    pub model: String,
    /// Its hotplug requirement.
    pub hotplug: Hotplug,
    /// The guest as it is.
    pub base: Usage,
    /// The most that can be added (q35 and virt: one solve, the objective swapped; pc: a
    /// search over plans).
    pub max: u32,
    /// For each count 1..=max, the cheapest plan (each solved with the count fixed).
    pub steps: Vec<MaxStep>,
    /// The machine's root bus (`pcie.0`, `pci.0`), whose slots [`Usage::root_slots`] counts.
    #[serde(skip)]
    pub root_bus: String,
}

/// An id not used in `req` for the `k`-th added device.
fn fresh_id(req: &Request, k: u32) -> String {
    let mut prefix = "whatif".to_string();
    while req
        .devices
        .iter()
        .map(|d| &d.id)
        .chain(req.controllers.iter().map(|c| &c.id))
        .any(|id| id.starts_with(&prefix))
    {
        prefix.push('x');
    }
    format!("{prefix}{k}")
}

fn with_devices(req: &Request, model: &str, hotplug: Option<Hotplug>, n: u32) -> Request {
    let mut r = req.clone();
    for k in 1..=n {
        r.devices.push(DeviceRequest {
            id: fresh_id(req, k).into(),
            model: Text::from(model),
            hotplug,
            group: None,
            numa_node: None,
            bus_kind: None,
            address: None,
        });
    }
    r
}

/// `--max MODEL[:hotplug]`: how many more `model` devices (with `hotplug`, or the policy
/// default) fit in `req`, and the cost after each one.
///
/// The maximum comes from one solve of the same integer program with the objective swapped
/// (maximise the devices of the added class, no slack allowed); the per-step costs from
/// planning with the count fixed, which the solution memo makes cheap.
///
/// # Errors
/// When `req` itself cannot be planned, or `model` is unknown.
pub fn max_devices(
    req: &Request,
    cat: &Catalog,
    model: &str,
    hotplug: Option<Hotplug>,
) -> Result<MaxReport, PlanError> {
    let base_plan = plan_with(req, cat)?;
    let base = Usage::of(&base_plan, cat);
    let probe = with_devices(req, model, hotplug, 1);
    probe.check_models(cat)?;
    let max = if cat.layout == Layout::PciRoot {
        most_that_fit(req, cat, model, hotplug)?
    } else {
        match max_of_class(&probe, cat, probe.devices.len() - 1) {
            Ok((most, n)) => (most + 1).saturating_sub(n),
            // No room for even one (the program has no solution without slack, or the device
            // has no place that meets its requirement).
            Err(PlanError::Solver(_) | PlanError::Infeasible(_)) => 0,
            Err(e) => return Err(e),
        }
    };
    let steps: Vec<MaxStep> = (1..=max)
        .into_par_iter()
        .map(|k| plan_with(&with_devices(req, model, hotplug, k), cat).map(|p| Usage::of(&p, cat)))
        .collect::<Result<Vec<Usage>, PlanError>>()?
        .into_iter()
        .scan(base.cost, |prev, usage| {
            let step_cost = usage.cost.saturating_sub(*prev);
            *prev = usage.cost;
            Some((usage, step_cost))
        })
        .zip(1..)
        .map(|((usage, step_cost), added)| MaxStep {
            added,
            usage,
            step_cost,
        })
        .collect();
    let hotplug = hotplug.unwrap_or(req.policy.default_hotplug);
    Ok(MaxReport {
        model: model.to_string(),
        hotplug,
        base,
        max,
        steps,
        root_bus: cat.root.bus.clone(),
    })
}

/// On `pc` (PC-ROOT, whose planner counts `pci.0` slots and bridges with an argument, not
/// an integer program to turn around): the most `model` devices that fit, by planning with
/// the count doubled until a plan fails, then halving the gap (one more device never makes
/// a guest fit that did not). At most the request's device limit.
fn most_that_fit(
    req: &Request,
    cat: &Catalog,
    model: &str,
    hotplug: Option<Hotplug>,
) -> Result<u32, PlanError> {
    let limit = MAX_DEVICES.saturating_sub(req.devices.len()) as u32;
    let fits = |k: u32| -> Result<bool, PlanError> {
        match plan_with(&with_devices(req, model, hotplug, k), cat) {
            Ok(_) => Ok(true),
            Err(PlanError::Infeasible(_)) => Ok(false),
            Err(e) => Err(e),
        }
    };
    // `lo` fits (0 does: the guest plans), `hi` does not or is past the limit.
    let (mut lo, mut hi) = (0u32, 1u32);
    while hi <= limit && fits(hi)? {
        lo = hi;
        hi = hi.saturating_mul(2);
    }
    let mut hi = hi.min(limit + 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// A policy field and the values to try (`--sweep spare_ports=0..32`,
/// `--sweep hotplug_off=integrated,port,auto`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// Field name as in the request's `policy`.
    pub field: String,
    /// Values, as text.
    pub values: Vec<String>,
}

impl Sweep {
    /// Parses `FIELD=A..B` (integers, inclusive) or `FIELD=v1,v2,...`.
    ///
    /// ```
    /// let s = pciplan::whatif::Sweep::parse("spare_ports=0..3").unwrap();
    /// assert_eq!(s.values, ["0", "1", "2", "3"]);
    /// assert!(pciplan::whatif::Sweep::parse("spare_ports=x").is_err());
    /// ```
    ///
    /// # Errors
    /// For an unknown field or a value the field does not take.
    pub fn parse(text: &str) -> Result<Sweep, InputError> {
        let bad = |m: String| InputError::new("sweep", m);
        let (field, range) = text
            .split_once('=')
            .ok_or_else(|| bad(format!("'{text}': want FIELD=A..B or FIELD=v1,v2")))?;
        let values: Vec<String> = match range.split_once("..") {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (
                    a.trim()
                        .parse()
                        .map_err(|_| bad(format!("'{a}' is not a number")))?,
                    b.trim()
                        .parse()
                        .map_err(|_| bad(format!("'{b}' is not a number")))?,
                );
                if b < a || b - a > 4096 {
                    return Err(bad(format!("{a}..{b}: want A <= B and at most 4097 steps")));
                }
                (a..=b).map(|v| v.to_string()).collect()
            }
            None => range.split(',').map(|v| v.trim().to_string()).collect(),
        };
        let sweep = Sweep {
            field: field.trim().to_string(),
            values,
        };
        let probe = Request::from_json("{}").map_err(|e| bad(e.to_string()))?;
        for i in 0..sweep.values.len() {
            sweep.apply(&probe, i)?;
        }
        Ok(sweep)
    }

    /// `req` with value `i` of the sweep applied.
    ///
    /// # Errors
    /// For an unknown field or a value the field does not take.
    pub fn apply(&self, req: &Request, i: usize) -> Result<Request, InputError> {
        let v = self.values.get(i).map(String::as_str).unwrap_or("");
        let bad = || {
            InputError::new(
                "sweep",
                format!("{}: '{v}' is not a valid value", self.field),
            )
        };
        let mut r = req.clone();
        match self.field.as_str() {
            "spare_ports" => r.policy.spare_ports = v.parse().map_err(|_| bad())?,
            "default_hotplug" => r.policy.default_hotplug = Hotplug::parse(v).ok_or_else(bad)?,
            "hotplug_off" => r.policy.hotplug_off = OffStrategy::parse(v).ok_or_else(bad)?,
            "pack_integrated" => r.policy.pack_integrated = v.parse().map_err(|_| bad())?,
            "firmware" => r.firmware = Firmware::parse(v).ok_or_else(bad)?,
            "machine" => {
                let to = Catalog::for_machine(v).map_err(|_| bad())?;
                r = moved_to(r, v, to);
            }
            f => {
                return Err(InputError::new(
                    "sweep",
                    format!("unknown policy field '{f}' (spare_ports, default_hotplug, hotplug_off, pack_integrated, firmware, machine)"),
                ))
            }
        }
        r.check_shape()?;
        Ok(r)
    }
}

/// A guest moved to machine `machine` (catalog `to`), as a machine sweep plans it. A guest
/// already on that catalog is unchanged (its addresses stay pins). Otherwise it is planned
/// afresh: its devices, groups, NUMA nodes, policy and firmware carry over; its addresses and
/// controllers are dropped (they name the old machine's buses and controller models), and so
/// is `root_hotplug` (the switch of a `pc` guest's `pci.0`, PC-ROOT-HP); `pack_integrated`
/// is turned off on a `pci-root` machine, which has no integrated endpoints (PC-MIX). What
/// the new machine cannot give (a `numa_node` on `pc`, PC-NUMA; `bios` on `virt`, R-IO; a
/// model its catalog lacks) fails that guest with the rule's own error.
///
/// ```
/// let s = pciplan::whatif::Sweep::parse("machine=q35,pc").unwrap();
/// let guest = pciplan::Request::from_json(r#"{"machine":"pc","root_hotplug":false,
///   "devices":[{"id":"n","model":"e1000","address":{"bus":"pci.0","slot":3}}]}"#).unwrap();
/// let on_q35 = s.apply(&guest, 0).unwrap();
/// assert_eq!((on_q35.machine.as_str(), on_q35.root_hotplug), ("q35", None));
/// assert!(on_q35.devices[0].address.is_none());
/// // On its own machine the guest is as it was.
/// assert_eq!(s.apply(&guest, 1).unwrap(), guest);
/// ```
fn moved_to(mut r: Request, machine: &str, to: &Catalog) -> Request {
    if Catalog::for_machine(&r.machine).is_ok_and(|from| from.machine == to.machine) {
        return r;
    }
    r.machine = Text::from(machine);
    r.controllers.clear();
    r.root_hotplug = None;
    for d in &mut r.devices {
        d.address = None;
    }
    if to.layout == Layout::PciRoot {
        r.policy.pack_integrated = false;
    }
    r
}

/// One value of a sweep over a guest or a fleet: totals over the guests.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SweepRow {
    /// The value.
    pub value: String,
    /// Guests planned.
    pub planned: u64,
    /// Guests that cannot be placed (or fail otherwise) with this value.
    pub failed: u64,
    /// Total controllers added.
    pub cost: u64,
    /// Total `pcie.0` slots used.
    pub root_slots: u64,
    /// Total bus numbers used.
    pub bus_numbers: u64,
    /// Devices hot-pluggable at the sweep's first value and not at this one (guests planned
    /// at both).
    pub hotplug_lost: u64,
    /// Devices not hot-pluggable at the first value and hot-pluggable at this one.
    pub hotplug_gained: u64,
    /// Those devices (lost and gained), by model.
    pub hotplug_by_model: BTreeMap<String, u64>,
    /// Controllers added, by model.
    pub controllers: BTreeMap<String, u64>,
    /// Guests not planned, by the rule that fails (`invalid` for bad input, `other` when no
    /// rule is named).
    pub failed_by_rule: BTreeMap<String, u64>,
}

/// A sweep's running totals, fed a fleet chunk by chunk.
#[derive(Debug, Clone)]
pub struct SweepStudy {
    sweep: Sweep,
    /// One row per value.
    pub rows: Vec<SweepRow>,
}

impl SweepStudy {
    /// An empty study.
    pub fn new(sweep: Sweep) -> SweepStudy {
        let rows = sweep
            .values
            .iter()
            .map(|v| SweepRow {
                value: v.clone(),
                ..SweepRow::default()
            })
            .collect();
        SweepStudy { sweep, rows }
    }

    /// Plans every guest at every value (in parallel) and adds them to the totals. A sweep
    /// of `machine` plans each value with that machine's catalog, never `catalog`.
    pub fn add(&mut self, guests: &[Request], catalog: Option<&Catalog>) {
        let sweep = &self.sweep;
        let catalog = catalog.filter(|_| sweep.field != "machine");
        // Each value's plan with the catalog it was planned with.
        let cells: Vec<Vec<Result<(Plan, &Catalog), PlanError>>> = guests
            .par_iter()
            .map(|g| {
                (0..sweep.values.len())
                    .map(|i| {
                        let r = sweep.apply(g, i)?;
                        let cat = match catalog {
                            Some(c) => c,
                            None => Catalog::for_machine(&r.machine)?,
                        };
                        plan_with(&r, cat).map(|p| (p, cat))
                    })
                    .collect()
            })
            .collect();
        for guest in cells {
            let first = guest.first().and_then(|p| p.as_ref().ok()).map(|(p, _)| p);
            for (row, cell) in self.rows.iter_mut().zip(&guest) {
                let (plan, cat) = match cell {
                    Ok((p, c)) => (p, *c),
                    Err(e) => {
                        row.failed += 1;
                        *row.failed_by_rule.entry(failure_rule(e)).or_insert(0) += 1;
                        continue;
                    }
                };
                let u = Usage::of(plan, cat);
                row.planned += 1;
                row.cost += u64::from(u.cost);
                row.root_slots += u64::from(u.root_slots);
                row.bus_numbers += u64::from(u.bus_numbers);
                for c in plan.controllers.iter().filter(|c| c.added) {
                    *row.controllers.entry(c.model.to_string()).or_insert(0) += 1;
                }
                if let Some(first) = first {
                    row.add_hotplug_changes(first, plan);
                }
            }
        }
    }
}

/// The rule a guest fails by: the error's own rule, else a rule id in brackets in an input
/// error's message (`[PC-NUMA]`), else the input field at fault with its indices dropped
/// (`devices[].model`), else `other`.
fn failure_rule(e: &PlanError) -> String {
    if let Some(r) = e.rule() {
        return r.to_string();
    }
    let PlanError::Invalid(i) = e else {
        return "other".to_string();
    };
    let named = i.message.match_indices('[').find_map(|(at, _)| {
        let id = i.message[at + 1..].split(']').next()?;
        id.parse::<crate::Rule>().ok()
    });
    match named {
        Some(r) => r.to_string(),
        None => {
            let mut field = String::new();
            let mut skip = false;
            for ch in i.field.chars() {
                match ch {
                    '[' => {
                        skip = true;
                        field.push('[');
                    }
                    ']' => {
                        skip = false;
                        field.push(']');
                    }
                    c if !skip => field.push(c),
                    _ => {}
                }
            }
            field
        }
    }
}

impl SweepRow {
    /// Counts the devices whose hot-pluggability in `plan` differs from `first` (the plan
    /// of the sweep's first value), matched by id.
    fn add_hotplug_changes(&mut self, first: &Plan, plan: &Plan) {
        let before: BTreeMap<&str, bool> = first
            .devices
            .iter()
            .map(|d| (d.id.as_str(), d.hotpluggable))
            .collect();
        for d in &plan.devices {
            let Some(&was) = before.get(d.id.as_str()) else {
                continue;
            };
            if was == d.hotpluggable {
                continue;
            }
            if was {
                self.hotplug_lost += 1;
            } else {
                self.hotplug_gained += 1;
            }
            *self
                .hotplug_by_model
                .entry(d.model.to_string())
                .or_insert(0) += 1;
        }
    }
}

/// Which devices a policy change's device rule applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceMatch {
    /// Model names; `*` matches any run of characters (`e1000*`).
    #[serde(default)]
    pub model: Vec<String>,
    /// Device id pattern, same syntax.
    #[serde(default)]
    pub id: Option<String>,
    /// PCIe or conventional PCI (after `bus_kind` and the catalog).
    #[serde(default)]
    pub kind: Option<BusKind>,
}

/// What a device rule sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSet {
    /// New hotplug requirement.
    #[serde(default)]
    pub hotplug: Option<Hotplug>,
}

/// One device rule of a policy change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRule {
    /// Which devices (all when empty).
    #[serde(default, rename = "match")]
    pub matches: DeviceMatch,
    /// What to set on them.
    pub set: DeviceSet,
}

/// Policy fields to override (absent ones stay as each guest has them): the crate's one
/// policy-patch type.
pub use crate::policy_patch::PolicyPatch;

/// A policy change applied to every guest of a fleet (`whatif --policy FILE`):
///
/// ```
/// let change = pciplan::whatif::PolicyChange::from_json(r#"{
///   "policy": {"spare_ports": 2},
///   "devices": [{"match": {"model": ["virtio-net-pci", "e1000*"]}, "set": {"hotplug": "off"}}]
/// }"#).unwrap();
/// let req = pciplan::Request::from_json(r#"{"devices":[{"id":"n","model":"e1000e"}]}"#).unwrap();
/// let after = change.apply(&req, pciplan::Catalog::q35());
/// assert_eq!(after.devices[0].hotplug, Some(pciplan::Hotplug::Off));
/// assert_eq!(after.policy.spare_ports, 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyChange {
    /// Policy overrides.
    #[serde(default)]
    pub policy: PolicyPatch,
    /// Device rules, applied in order.
    #[serde(default)]
    pub devices: Vec<DeviceRule>,
}

/// `*` glob match.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(mut t) = text.strip_prefix(head) else {
                return false;
            };
            loop {
                if glob(rest, t) {
                    return true;
                }
                let mut chars = t.chars();
                if chars.next().is_none() {
                    return false;
                }
                t = chars.as_str();
            }
        }
    }
}

impl PolicyChange {
    /// Parses a change file.
    ///
    /// # Errors
    /// Naming the field at fault.
    pub fn from_json(text: &str) -> Result<PolicyChange, InputError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            InputError::new(
                format!("policy change: {}", e.path()),
                e.inner().to_string(),
            )
        })
    }

    /// A guest with the change applied.
    pub fn apply(&self, req: &Request, cat: &Catalog) -> Request {
        let mut r = req.clone();
        self.policy.apply(&mut r.policy);
        for rule in &self.devices {
            let m = &rule.matches;
            for i in 0..r.devices.len() {
                let d = &r.devices[i];
                let hit = (m.model.is_empty() || m.model.iter().any(|g| glob(g, &d.model)))
                    && m.id.as_ref().is_none_or(|g| glob(g, &d.id))
                    && m.kind.is_none_or(|k| req.kind_of(cat, d) == k);
                if hit {
                    if let Some(h) = rule.set.hotplug {
                        r.devices[i].hotplug = Some(h);
                    }
                }
            }
        }
        r
    }
}

/// Before and after for one guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestDelta {
    /// Input line.
    pub line: u64,
    /// Guest name.
    pub name: Option<Text>,
    /// Cost before, or `None` when it could not be planned.
    pub before: Option<u32>,
    /// Cost after, or `None`.
    pub after: Option<u32>,
    /// Rule that fails after the change (when it does).
    pub rule: Option<String>,
}

/// The fleet-wide effect of a policy change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyDelta {
    /// Guests compared (lines that parse).
    pub guests: u64,
    /// Planned before the change.
    pub planned_before: u64,
    /// Planned after.
    pub planned_after: u64,
    /// Total cost before (over guests planned both times).
    pub cost_before: u64,
    /// Total cost after (same guests).
    pub cost_after: u64,
    /// Controllers added after minus before, by model (same guests).
    pub by_model: BTreeMap<String, i64>,
    /// Guests that cost more after.
    pub dearer: u64,
    /// Guests that cost less after.
    pub cheaper: u64,
    /// Guests planned before that cannot be planned after.
    pub became_infeasible: Vec<GuestDelta>,
    /// Guests that could not be planned before and can after.
    pub became_feasible: Vec<GuestDelta>,
    /// Histogram of per-guest cost change (after - before) over guests planned both times.
    pub histogram: BTreeMap<i64, u64>,
}

impl PolicyDelta {
    /// Compares one chunk of guests (line number and request) before and after `change`.
    /// Returns every guest's delta (for CSV) and adds them to the totals.
    pub fn add(
        &mut self,
        guests: &[(u64, Request)],
        change: &PolicyChange,
        catalog: Option<&Catalog>,
    ) -> Vec<GuestDelta> {
        type Side = Result<Plan, PlanError>;
        let results: Vec<(Side, Side)> = guests
            .par_iter()
            .map(|(_, g)| {
                let cat = match catalog {
                    Some(c) => c,
                    None => match Catalog::for_machine(&g.machine) {
                        Ok(c) => c,
                        Err(e) => {
                            return (
                                Err(PlanError::Invalid(e.clone())),
                                Err(PlanError::Invalid(e)),
                            )
                        }
                    },
                };
                (plan_with(g, cat), plan_with(&change.apply(g, cat), cat))
            })
            .collect();
        let mut out = Vec::with_capacity(guests.len());
        for ((line, g), (before, after)) in guests.iter().zip(results) {
            self.guests += 1;
            self.planned_before += u64::from(before.is_ok());
            self.planned_after += u64::from(after.is_ok());
            let delta = GuestDelta {
                line: *line,
                name: g.name.clone(),
                before: before.as_ref().ok().map(|p| p.cost),
                after: after.as_ref().ok().map(|p| p.cost),
                rule: after
                    .as_ref()
                    .err()
                    .and_then(|e| e.rule().map(|r| r.to_string())),
            };
            match (&before, &after) {
                (Ok(b), Ok(a)) => {
                    self.cost_before += u64::from(b.cost);
                    self.cost_after += u64::from(a.cost);
                    let d = i64::from(a.cost) - i64::from(b.cost);
                    *self.histogram.entry(d).or_insert(0) += 1;
                    self.dearer += u64::from(d > 0);
                    self.cheaper += u64::from(d < 0);
                    for c in a.controllers.iter().filter(|c| c.added) {
                        *self.by_model.entry(c.model.to_string()).or_insert(0) += 1;
                    }
                    for c in b.controllers.iter().filter(|c| c.added) {
                        *self.by_model.entry(c.model.to_string()).or_insert(0) -= 1;
                    }
                }
                (Ok(_), Err(_)) => self.became_infeasible.push(delta.clone()),
                (Err(_), Ok(_)) => self.became_feasible.push(delta.clone()),
                (Err(_), Err(_)) => {}
            }
            out.push(delta);
        }
        out
    }
}

impl fmt::Display for MaxReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} more {} (hotplug {}) fit; the guest now costs {}",
            self.max,
            self.model,
            self.hotplug.as_str(),
            self.base.cost
        )?;
        writeln!(
            f,
            "{:>6} {:>6} {:>6} {:>10} {:>11}",
            "added", "cost", "step", self.root_bus, "bus numbers"
        )?;
        for s in &self.steps {
            writeln!(
                f,
                "{:>6} {:>6} {:>6} {:>10} {:>11}",
                s.added, s.usage.cost, s.step_cost, s.usage.root_slots, s.usage.bus_numbers
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
