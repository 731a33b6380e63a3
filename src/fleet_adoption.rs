//! What-if on a fleet of existing guests (`whatif --policy P --adopt`): how many guests reach
//! a new policy without the guest seeing anything, how many notice (and which devices), how
//! many ports flip, what controllers are added, and which guests cannot reach it at all.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::catalog::Catalog;
use crate::changes::ChangeKind;
use crate::error::PlanError;
use crate::plan::Plan;
use crate::planner::adopt_with;
use crate::request::Request;
use crate::whatif::PolicyChange;
use crate::Text;

/// One guest adopted under the new policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestAdoption {
    /// Input line.
    pub line: u64,
    /// Guest name.
    pub name: Option<Text>,
    /// Devices the guest sees change (moved, renumbered or renamed), or `None` when it
    /// cannot reach the policy.
    pub changes: Option<u32>,
    /// Of those, moved.
    pub moved: u32,
    /// Of those, renumbered.
    pub renumbered: u32,
    /// Of those, renamed: a `pc` NIC on `pci.0` whose root hotplug changes (G-FLIP).
    pub renamed: u32,
    /// Existing ports whose `hotplug` flips.
    pub flipped: u32,
    /// Controllers added.
    pub added: u32,
    /// The rule that cannot be met, when the guest cannot reach the policy.
    pub rule: Option<String>,
    /// Why it cannot, in a sentence.
    pub error: Option<String>,
}

/// The fleet-wide answer to "how many of my VMs will notice?".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AdoptionStudy {
    /// Guests read.
    pub guests: u64,
    /// Guests that reach the policy.
    pub reached: u64,
    /// Of those, with no guest-visible change at all.
    pub unnoticed: u64,
    /// Guests by number of guest-visible changes (reached ones only).
    pub histogram: BTreeMap<u32, u64>,
    /// Devices that change, by model.
    pub by_model: BTreeMap<String, u64>,
    /// Ports flipped over the fleet.
    pub flipped: u64,
    /// Controllers added over the fleet.
    pub added: u64,
    /// Guests that cannot reach the policy even with every device free to move.
    pub cannot: Vec<GuestAdoption>,
}

impl AdoptionStudy {
    /// Adopts one chunk of existing guests (line number and request) under `change`;
    /// returns each guest's row and adds them to the totals. Guests plan in parallel.
    ///
    /// ```
    /// use pciplan::whatif::{AdoptionStudy, PolicyChange};
    /// let change = PolicyChange::from_json(
    ///     r#"{"policy":{"hotplug_off":"auto"},"devices":[{"match":{"model":["virtio-net*"]},"set":{"hotplug":"off"}}]}"#,
    /// ).unwrap();
    /// let guest = pciplan::Request::from_json(r#"{"devices":[
    ///   {"id":"net0","model":"virtio-net-pci","address":{"bus":"rp1","slot":0}}],
    ///  "controllers":[{"id":"rp1","model":"pcie-root-port","chassis":1,
    ///   "address":{"bus":"pcie.0","slot":2}}]}"#).unwrap();
    /// let mut study = AdoptionStudy::default();
    /// let rows = study.add(&[(1, guest)], &change, None);
    /// assert_eq!((study.reached, study.unnoticed, study.flipped), (1, 1, 1));
    /// assert_eq!(rows[0].changes, Some(0));
    /// ```
    pub fn add(
        &mut self,
        guests: &[(u64, Request)],
        change: &PolicyChange,
        catalog: Option<&Catalog>,
    ) -> Vec<GuestAdoption> {
        let results: Vec<Result<Plan, PlanError>> = guests
            .par_iter()
            .map(|(_, g)| {
                let cat = match catalog {
                    Some(c) => c,
                    None => Catalog::for_machine(&g.machine)?,
                };
                adopt_with(&change.apply(g, cat), cat)
            })
            .collect();
        let mut rows = Vec::with_capacity(guests.len());
        for ((line, g), r) in guests.iter().zip(results) {
            self.guests += 1;
            let row = self.row(*line, g, r);
            if row.changes.is_none() {
                self.cannot.push(row.clone());
            }
            rows.push(row);
        }
        rows
    }

    /// One guest's row, added to the totals.
    fn row(&mut self, line: u64, g: &Request, r: Result<Plan, PlanError>) -> GuestAdoption {
        let mut row = GuestAdoption {
            line,
            name: g.name.clone(),
            changes: None,
            moved: 0,
            renumbered: 0,
            renamed: 0,
            flipped: 0,
            added: 0,
            rule: None,
            error: None,
        };
        let plan = match r {
            Ok(p) => p,
            Err(e) => {
                row.rule = e.rule().map(|r| r.to_string());
                row.error = Some(e.to_string());
                return row;
            }
        };
        let list = plan.changes.as_deref().unwrap_or_default();
        let count = |k: ChangeKind| list.iter().filter(|c| c.change == k).count() as u32;
        row.moved = count(ChangeKind::Moved);
        row.renumbered = count(ChangeKind::Renumbered);
        row.renamed = count(ChangeKind::Renamed);
        row.flipped = count(ChangeKind::PortHotplug);
        row.added = plan.cost;
        let visible = plan.guest_visible_changes.unwrap_or(0);
        row.changes = Some(visible);
        self.reached += 1;
        self.unnoticed += u64::from(visible == 0);
        *self.histogram.entry(visible).or_insert(0) += 1;
        self.flipped += u64::from(row.flipped);
        self.added += u64::from(plan.cost);
        for c in list.iter().filter(|c| c.guest_visible) {
            if let Some(d) = plan.devices.iter().find(|d| d.id == c.id) {
                *self.by_model.entry(d.model.to_string()).or_insert(0) += 1;
            }
        }
        row
    }
}
