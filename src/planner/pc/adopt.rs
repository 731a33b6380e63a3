//! Adopting an existing `pc` (i440fx) guest (`--adopt`, O-ADOPT): its addresses are
//! preferences. The plan changes as few devices as the guest can see (G-ID: moved,
//! renumbered; G-FLIP: a NIC on `pci.0` renamed when root hotplug changes), then adds as few
//! bridges, then keeps root hotplug as it was if it can.
//!
//! How the minimum is proven, per root hotplug value `h` (PC-ROOT-HP: one switch per guest):
//!
//! - **Forced movers.** An existing unit may stay only where `h` lets it meet its
//!   requirement: on `pci.0` an `off` unit needs `h` off and an `on` unit needs it on; on a
//!   `pci-bridge` slot (always hot-pluggable, PC-BRIDGE) only `off` units cannot stay; a unit
//!   above function 0 stays only with the one at function 0 (R-FUNC). Every plan with root
//!   hotplug `h` moves at least these, and renames every NIC that stays on `pci.0` when `h`
//!   is not the guest's old setting: `lb(h)` = their devices + those NICs is a lower bound
//!   on the guest-visible changes of every plan with `h`.
//! - **The plan.** The guest with exactly the forced movers unpinned and root hotplug pinned
//!   to `h` is planned by the pc program (proven fewest bridges for that guest), with new
//!   bridges put where they renumber no existing one when such a place is free (`world`).
//!   Its changes are counted as the guest sees them (`crate::changes`).
//! - **Certificate.** It is the optimum for `h` when its changes equal `lb(h)` and its bridges
//!   equal `b(h)`, the pc program's fewest bridges with the forced movers *and* every
//!   renamed unit made only of NICs unpinned: a plan with `lb(h)` changes moves nothing else,
//!   renumbers nothing, and may move such a unit at no extra change, so `b(h)` bounds its
//!   bridges from below (unpinning only adds choices).
//! - **A full `pci.0`.** When the forced movers do not fit where the others stay (an `off`
//!   device leaving a bridge for a `pci.0` with no free slot), renamed NIC units are freed
//!   too, one at a time from the highest old slot, until the guest fits (the plan of `b(h)`
//!   when only freeing all does): a NIC moved instead of renamed is no extra change, and the
//!   plan is certified the same way. Fewest freed, because a NIC that stays is only renamed
//!   while one that moves also gets a new Windows path.
//! - **Across `h`.** The better of the two (changes, then bridges, then the switch kept) is
//!   proven when it is certified and the other value's bound (`lb`, and `b` where `lb` ties)
//!   is worse, or the other value admits no plan at all (PC-MIX, or no plan with every device
//!   free). Where the argument does not settle it (neither plan fits, or a new bridge
//!   must renumber), the best plan found is returned with `optimal: false`.

use crate::catalog::{Catalog, HotplugControl};
use crate::changes::{
    bridge_slot_named, bus_numbers, changes, root_bridge_slots, Change, ChangeKind,
};
use crate::error::PlanError;
use crate::plan::Plan;
use crate::request::{Hotplug, Request};
use crate::topology::{pinned_plan, Node, Topology};
use crate::validate::validate_pinned_layout;

use super::super::units::{units, Unit};
use super::{plan_in, refuse_what_pc_lacks};

/// Where an existing unit sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Site {
    /// On `pci.0` (PC-ROOT).
    Root,
    /// On a slot of an existing `pci-bridge` (PC-BRIDGE).
    Bridge,
    /// Anywhere else, or split over slots: it cannot stay.
    Other,
}

/// An existing unit (every device addressed).
#[derive(Debug, Clone)]
struct Old {
    /// Index in the guest's units.
    unit: usize,
    site: Site,
    hp: Hotplug,
    /// Devices, and of those NICs (the catalog's `nic`).
    devices: u32,
    nics: u32,
    /// Its slot on `pci.0` (PC-ROOT), for a unit there.
    root_slot: Option<u8>,
    /// Its slot N on the first `pci-bridge`, when `pci.0` takes the number N while root
    /// hotplug is on and no bridge holds its slot N: its NICs are named after N exactly while
    /// root hotplug is off or a bridge sits in `pci.0` slot N (G-FLIP,
    /// `changes::bridge_slot_named`).
    named_by_root: Option<u8>,
    /// The existing unit at function 0 of its slot, when it sits above function 0 (R-FUNC).
    after: Option<usize>,
}

impl Old {
    /// Made of NICs only and not kept only with another unit at function 0 (R-FUNC):
    /// renamed, it may move at no extra change.
    fn nics_only(&self) -> bool {
        self.nics == self.devices && self.after.is_none()
    }
}

/// Adopts an existing `pc` guest (see the module's documentation).
pub(crate) fn adopt(req: &Request, cat: &Catalog) -> Result<Plan, PlanError> {
    cat.planner_classes()?;
    req.check_shape()?;
    req.check_models(cat)?;
    refuse_what_pc_lacks(req)?;
    let before = pinned_plan(req, cat);
    let t0 = Topology::build(&before, cat);
    let bad = validate_pinned_layout(&t0, &before, req, cat);
    if !bad.is_empty() {
        return Err(PlanError::Pins(bad));
    }
    let all = units(req, cat)?;
    let old = existing(req, cat, &all, &t0);
    let h0 = req.root_hotplug.unwrap_or(cat.root.hotpluggable);
    let g = Guest {
        req,
        cat,
        all: &all,
        old: &old,
        h0,
        before: &before,
        t0: &t0,
    };
    let tries = [g.try_with(h0)?, g.try_with(!h0)?];
    let best = tries
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.plan.as_ref().map(|p| (i, p)))
        .min_by_key(|(i, p)| (p.visible, p.plan.cost, *i));
    let Some((w, found)) = best else {
        // No plan under either setting: explain as a plain plan of the free guest.
        let free = unpinned(req, None);
        return match plan_in(&free, cat, false, false) {
            Err(e) => Err(e),
            Ok(_) => Err(PlanError::Internal(
                "adoption found no plan, but the guest with every device free has one".into(),
            )),
        };
    };
    let winner = &tries[w];
    let other = &tries[1 - w];
    let proven = found.certified
        && match (&other.plan, other.lb) {
            _ if other.impossible => true,
            (_, lb) if lb > found.visible => true,
            (_, lb) if lb == found.visible => {
                // No plan of the other value has `lb` changes (`bound` is `None`), or those
                // that have need more bridges, or as many and a changed switch.
                other
                    .bound
                    .is_none_or(|b| (b, 1 - w) > (found.plan.cost, w))
            }
            _ => false,
        };
    let mut plan = found.plan.clone();
    plan.optimal = proven && plan.optimal;
    let mut list = found.changes.clone();
    explain_moves(&mut list, &g, winner.h);
    plan.guest_visible_changes = Some(found.visible);
    plan.changes = Some(list);
    Ok(plan)
}

/// The existing guest, read once.
struct Guest<'a> {
    req: &'a Request,
    cat: &'a Catalog,
    all: &'a [Unit],
    old: &'a [Old],
    h0: bool,
    before: &'a Plan,
    t0: &'a Topology<'a>,
}

/// A plan found for one root hotplug value, with its changes.
struct Found {
    plan: Plan,
    changes: Vec<Change>,
    visible: u32,
    /// Proven the optimum for its root hotplug value (see the module's documentation).
    certified: bool,
}

/// What one root hotplug value gives.
struct Try {
    h: bool,
    /// The lower bound on guest-visible changes with this value.
    lb: u32,
    /// The fewest bridges of a plan with `lb` changes (a lower bound), `None` when no plan
    /// has `lb` changes.
    bound: Option<u32>,
    /// No plan at all has this value (PC-MIX, or not even with every device free).
    impossible: bool,
    plan: Option<Found>,
}

impl Guest<'_> {
    /// Which existing units stay with root hotplug `h` (R-FUNC applied).
    fn keep(&self, h: bool) -> Vec<bool> {
        let mut keep: Vec<bool> = self
            .old
            .iter()
            .map(|o| match o.site {
                Site::Root => match o.hp {
                    Hotplug::Off => !h,
                    Hotplug::On => h,
                    Hotplug::Any => true,
                },
                Site::Bridge => o.hp != Hotplug::Off,
                Site::Other => false,
            })
            .collect();
        loop {
            let mut changed = false;
            for k in 0..self.old.len() {
                if keep[k] && self.old[k].after.is_some_and(|f| !keep[f]) {
                    keep[k] = false;
                    changed = true;
                }
            }
            if !changed {
                return keep;
            }
        }
    }

    /// Whether unit `o`, staying on the first bridge, is renamed by every plan that flips
    /// root hotplug and keeps the units `keep` keeps where they are (G-FLIP). Turning root
    /// hotplug off always names its slot. Turning it on takes the name away unless a bridge
    /// goes in the `pci.0` slot of its number: counted when a unit that stays holds that slot
    /// and moving it would be a change of its own (not a renamed NIC unit, which may move at
    /// no extra change).
    fn renamed_by_flip(&self, o: &Old, keep: &[bool]) -> bool {
        let Some(n) = o.named_by_root.filter(|_| o.nics > 0) else {
            return false;
        };
        if self.h0 {
            return true;
        }
        self.old
            .iter()
            .zip(keep)
            .any(|(r, &k)| k && r.root_slot == Some(n) && !r.nics_only())
    }

    /// The guest with the units `keep` moves unpinned and root hotplug pinned to `h`.
    fn kept(&self, keep: &[bool], h: bool) -> Request {
        let mut r = self.req.clone();
        for (o, &k) in self.old.iter().zip(keep) {
            if !k {
                for &i in &self.all[o.unit].devs {
                    r.devices[i].address = None;
                }
            }
        }
        r.root_hotplug = Some(h);
        r
    }

    /// Plans `r`: `Ok(None)` when no layout fits.
    fn plan(&self, r: &Request) -> Result<Option<Plan>, PlanError> {
        match plan_in(r, self.cat, true, false) {
            Ok(p) => Ok(Some(p)),
            Err(PlanError::Infeasible(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A plan's changes from the existing guest.
    fn found(&self, plan: Plan, certified: impl FnOnce(&Plan, u32) -> bool) -> Found {
        let t = Topology::build(&plan, self.cat);
        let list = changes(self.before, self.t0, &plan, &t, self.cat);
        drop(t);
        let visible = list.iter().filter(|c| c.guest_visible).count() as u32;
        let certified = certified(&plan, visible);
        Found {
            plan,
            changes: list,
            visible,
            certified,
        }
    }

    /// The plan and bounds of root hotplug `h`.
    fn try_with(&self, h: bool) -> Result<Try, PlanError> {
        let keep = self.keep(h);
        let flipped = h != self.h0;
        let mut lb = 0;
        let mut relaxed = keep.clone();
        for (k, o) in self.old.iter().enumerate() {
            if !keep[k] {
                lb += if o.site == Site::Other { 1 } else { o.devices };
            } else if flipped && (o.site == Site::Root || self.renamed_by_flip(o, &keep)) {
                lb += o.nics;
                // A renamed unit of NICs only may move at no extra change.
                if o.nics_only() {
                    relaxed[k] = false;
                }
            }
        }
        let mut t = Try {
            h,
            lb,
            bound: None,
            impossible: false,
            plan: None,
        };
        // PC-MIX: an `off` device needs root hotplug off.
        if h && self.all.iter().any(|u| u.hp == Hotplug::Off) {
            t.impossible = true;
            return Ok(t);
        }
        let first = self.plan(&self.kept(&keep, h))?;
        let second = if relaxed == keep {
            None
        } else {
            self.plan(&self.kept(&relaxed, h))?
        };
        t.bound = if relaxed == keep { &first } else { &second }
            .as_ref()
            .map(|p| p.cost);
        let bound = t.bound;
        let certify = |p: &Plan, visible: u32| visible == lb && p.optimal && Some(p.cost) == bound;
        t.plan = match (first, second) {
            (Some(p), _) => Some(self.found(p, certify)),
            // The forced movers do not fit where they are (a full pci.0), but they do with
            // renamed NICs free too: with `lb` changes and `bound` bridges that is the
            // optimum. As few NICs as make room are freed first: one that stays is only
            // renamed, one that moves also changes its Windows path.
            (None, Some(p)) => {
                let mut found: Vec<Found> = self
                    .fewest_freed(&keep, &relaxed, h)?
                    .into_iter()
                    .chain([p])
                    .map(|p| self.found(p, certify))
                    .collect();
                if !found.iter().any(|f| f.certified) {
                    found.extend(self.free(h)?);
                }
                found.into_iter().min_by_key(|f| {
                    let moved = f.changes.iter().filter(|c| c.change == ChangeKind::Moved);
                    (f.visible, f.plan.cost, moved.count(), !f.certified)
                })
            }
            (None, None) => self.free(h)?,
        };
        t.impossible = t.plan.is_none();
        Ok(t)
    }

    /// The first plan with root hotplug `h` of the guest whose forced movers (`keep` false)
    /// and the last of the renamed NIC units (`keep` true, `relaxed` false) by old slot are
    /// free, freeing one more unit at a time; `None` when only freeing all of them fits.
    fn fewest_freed(
        &self,
        keep: &[bool],
        relaxed: &[bool],
        h: bool,
    ) -> Result<Option<Plan>, PlanError> {
        let slot = |k: &usize| {
            let first = self.all[self.old[*k].unit].devs[0];
            self.req.devices[first].address.as_ref().map(|a| a.slot)
        };
        // Only NICs on pci.0 make room there.
        let mut nics: Vec<usize> = (0..keep.len())
            .filter(|&k| keep[k] && !relaxed[k] && self.old[k].site == Site::Root)
            .collect();
        nics.sort_by_key(|k| std::cmp::Reverse(slot(k)));
        let mut partial = keep.to_vec();
        for k in nics.iter().take(nics.len().saturating_sub(1)) {
            partial[*k] = false;
            if let Some(p) = self.plan(&self.kept(&partial, h))? {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }

    /// The guest with every device free and root hotplug `h` (not proven minimal).
    fn free(&self, h: bool) -> Result<Option<Found>, PlanError> {
        Ok(self
            .plan(&unpinned(self.req, Some(h)))?
            .map(|p| self.found(p, |_, _| false)))
    }
}

/// The request with every device's address taken away and root hotplug `h`.
fn unpinned(req: &Request, h: Option<bool>) -> Request {
    let mut free = req.clone();
    for d in free.devices.iter_mut() {
        d.address = None;
    }
    free.root_hotplug = h;
    free
}

/// The existing units of `req` (every device addressed) and where each sits in `t0`.
fn existing(req: &Request, cat: &Catalog, all: &[Unit], t0: &Topology) -> Vec<Old> {
    let numbers = bus_numbers(t0);
    let root_bridges = root_bridge_slots(t0);
    let mut out: Vec<Old> = Vec::new();
    for (ui, u) in all.iter().enumerate() {
        let at: Vec<_> = u
            .devs
            .iter()
            .filter_map(|&i| req.devices[i].address.as_ref())
            .collect();
        if at.len() != u.devs.len() || at.is_empty() {
            continue;
        }
        let together = at
            .windows(2)
            .all(|w| w[0].bus == w[1].bus && w[0].slot == w[1].slot);
        let parent = t0
            .ids
            .get(req.devices[u.devs[0]].id.as_str())
            .and_then(|&n| t0.parent(n));
        let site = match parent.map(|p| (p, &t0.g[p])) {
            _ if !together => Site::Other,
            Some((_, Node::Root)) => Site::Root,
            Some((p, Node::Ctrl(_)))
                if t0
                    .model(p)
                    .is_some_and(|m| m.hotplug == HotplugControl::Always) =>
            {
                Site::Bridge
            }
            _ => Site::Other,
        };
        let nics = u
            .devs
            .iter()
            .filter(|&&i| cat.device(&req.devices[i].model).is_some_and(|m| m.nic))
            .count() as u32;
        let slot = at[0].slot;
        let named_by_root = (site == Site::Bridge
            && parent.is_some_and(|p| {
                let bus = numbers[p.index()];
                !bridge_slot_named(bus, slot, true, &root_bridges)
                    && bridge_slot_named(bus, slot, false, &root_bridges)
            }))
        .then_some(slot);
        out.push(Old {
            unit: ui,
            site,
            hp: u.hp,
            devices: u.devs.len() as u32,
            nics,
            root_slot: (site == Site::Root).then_some(slot),
            named_by_root,
            after: None,
        });
    }
    // R-FUNC: a unit above function 0 stays only with the one at function 0.
    let first = |o: &Old| req.devices[all[o.unit].devs[0]].address.clone();
    let firsts: Vec<_> = out.iter().map(first).collect();
    for k in 0..out.len() {
        let Some(a) = &firsts[k] else { continue };
        if a.function == 0 {
            continue;
        }
        out[k].after = firsts.iter().position(|b| {
            b.as_ref()
                .is_some_and(|b| b.bus == a.bus && b.slot == a.slot && b.function == 0)
        });
        if out[k].after.is_none() {
            out[k].site = Site::Other;
        }
    }
    out
}

/// Why each moved device moved: the rule its old place breaks under the new root hotplug
/// setting `h`, or what made moving it the cheapest way (O-ADOPT).
fn explain_moves(list: &mut [Change], g: &Guest, h: bool) {
    let root = g.cat.root.bus.as_str();
    for c in list.iter_mut().filter(|c| c.change == ChangeKind::Moved) {
        let Some(o) = g.old.iter().find(|o| {
            g.all[o.unit]
                .devs
                .iter()
                .any(|&i| g.req.devices[i].id == c.id)
        }) else {
            continue;
        };
        let why = match (o.site, o.hp) {
            (Site::Other, _) if o.after.is_some() => {
                "the device at function 0 of its slot moved (R-FUNC)".to_string()
            }
            (Site::Other, _) => "it is not where a unit of its kind can stay".to_string(),
            (Site::Root, Hotplug::On) if !h => format!("root hotplug is off, so a device on {root} cannot be unplugged, but it must stay hot-pluggable: it goes behind a pci-bridge (PC-ROOT-HP, PC-MIX, D-ON)"),
            (Site::Root, Hotplug::Off) if h => format!("root hotplug stays on, so a device on {root} can be unplugged (PC-ROOT-HP, D-OFF)"),
            (Site::Bridge, Hotplug::Off) => format!("a pci-bridge slot is always hot-pluggable (PC-BRIDGE), and the device must not be unpluggable: it goes to {root} with root hotplug off (D-OFF)"),
            _ if o.after.is_some() => "the device at function 0 of its slot moved (R-FUNC)".to_string(),
            _ => "moving it changes the guest least overall (O-ADOPT)".to_string(),
        };
        c.why = Some(why);
    }
}
