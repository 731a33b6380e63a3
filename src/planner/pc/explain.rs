//! Why a `pc` plan looks as it does, and why a `pc` request cannot be planned: root hotplug
//! as the request forces it (PC-ROOT-HP, PC-MIX), budgets that are short (PC-ROOT, R-IO,
//! R-BUSNR), and the notes of a plan with root hotplug off (which devices made it so, which
//! `on` devices therefore sit behind a bridge, which NICs Linux renames: G-FLIP).

use super::Unit;
use crate::catalog::{Catalog, IoBudget};
use crate::error::{Cause, Explanation, PlanError};
use crate::ilp::pc::{PcCounts, PcModel};
use crate::plan::Plan;
use crate::request::{Hotplug, Request};
use crate::rule::Rule;

/// Ids of the first devices of `units` that satisfy `pick`.
fn ids(req: &Request, units: &[Unit], pick: impl Fn(&Unit) -> bool) -> Vec<String> {
    units
        .iter()
        .filter(|u| pick(u))
        .flat_map(|u| u.devs.iter().map(|&d| req.devices[d].id.to_string()))
        .collect()
}

/// A short list of ids for a sentence: `a, b, c` or `a, b, ... (N in all)`.
fn list(ids: &[String]) -> String {
    const SHOW: usize = 4;
    let mut s = ids
        .iter()
        .take(SHOW)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOW {
        s.push_str(&format!(", ... ({} in all)", ids.len()));
    }
    s
}

/// Root hotplug as the request forces it: off for an `off` unit (only `pci.0` with root
/// hotplug off protects a device, PC-MIX), on for an `on` unit pinned on `pci.0`; `None` when
/// the program may choose. Both at once: infeasible, naming both sides (PC-MIX).
pub(super) fn forced_root_hotplug(
    req: &Request,
    cat: &Catalog,
    units: &[Unit],
) -> Result<Option<bool>, PlanError> {
    let root = cat.root.bus.as_str();
    let on_root_pin = |u: &Unit| {
        u.pinned
            && req.devices[u.devs[0]]
                .address
                .as_ref()
                .is_some_and(|a| a.bus == root)
    };
    let offs = ids(req, units, |u| u.hp == Hotplug::Off);
    let pinned_on = ids(req, units, |u| u.hp == Hotplug::On && on_root_pin(u));
    match (offs.is_empty(), pinned_on.is_empty()) {
        (false, false) => {
            let mut devices = pinned_on.clone();
            devices.extend(offs.iter().cloned());
            Err(PlanError::Infeasible(Explanation {
                causes: vec![Cause {
                    rule: Rule::PcMix,
                    message: format!(
                        "{} (hotplug on) pinned on {root} needs root hotplug on, but {} (hotplug off) needs it off: on {} root hotplug is one switch for the whole bus [PC-ROOT-HP]",
                        list(&pinned_on), list(&offs), req.machine
                    ),
                    devices,
                    need: 1,
                    have: 0,
                    hints: vec![
                        format!("remove the address of {} so that it can go behind a pci-bridge", list(&pinned_on)),
                        format!("let {} be hotplug any", list(&offs)),
                    ],
                }],
            }))
        }
        (false, true) => pinned_switch(req, Some(false), &offs),
        (true, false) => pinned_switch(req, Some(true), &pinned_on),
        (true, true) => Ok(req.root_hotplug),
    }
}

/// The devices' demand `want` on root hotplug against the request's own `root_hotplug` (an
/// existing guest's switch, a pin): they must agree (PC-MIX).
fn pinned_switch(
    req: &Request,
    want: Option<bool>,
    who: &[String],
) -> Result<Option<bool>, PlanError> {
    match (req.root_hotplug, want) {
        (Some(have), Some(w)) if have != w => {
            let (need, has) = if w { ("on", "off") } else { ("off", "on") };
            let why = if w {
                "(hotplug on) pinned on the root bus"
            } else {
                "(hotplug off)"
            };
            Err(PlanError::Infeasible(Explanation {
                causes: vec![Cause {
                    rule: Rule::PcMix,
                    message: format!(
                        "{} {why} needs root hotplug {need}, but the request pins it {has} (root_hotplug: {have}) [PC-ROOT-HP]",
                        list(who)
                    ),
                    devices: who.to_vec(),
                    need: 1,
                    have: 0,
                    hints: vec![
                        format!("drop root_hotplug (libvirt: the pci-root's <target hotplug='{has}'/>) so that the planner may turn it {need}"),
                    ],
                }],
            }))
        }
        _ => Ok(want),
    }
}

/// The causes of a program with slack.
pub(super) fn short(
    req: &Request,
    cat: &Catalog,
    units: &[Unit],
    m: &PcModel,
    c: &PcCounts,
    io: &IoBudget,
) -> Explanation {
    let root = &cat.root.bus;
    let mut causes = Vec::new();
    if c.slack_root > 0 {
        let offs = ids(req, units, |u| !u.pinned && u.hp == Hotplug::Off);
        let devices = if offs.is_empty() {
            ids(req, units, |u| !u.pinned)
        } else {
            offs
        };
        causes.push(Cause {
            rule: Rule::PcRoot,
            message: format!(
                "{} {root} slots needed (hotplug-off devices sit only on {root}, and bridges start there); {root} has {} free",
                m.root_free + c.slack_root,
                m.root_free
            ),
            devices,
            need: m.root_free + c.slack_root,
            have: m.root_free,
            hints: vec![
                "let some hotplug-off devices be hotplug any or on: they can then go behind a pci-bridge".into(),
                "put functions of one card in one slot with group".into(),
            ],
        });
    }
    if c.slack_io > 0 {
        causes.push(Cause {
            rule: Rule::Io,
            message: format!(
                "{} I/O windows of {} KiB needed for devices with I/O BARs behind pci-bridges; the firmware ({}) has {}",
                m.windows_free + c.slack_io,
                cat.io_space.window_kib,
                io.name,
                m.windows_free
            ),
            devices: ids(req, units, |u| !u.pinned && u.io),
            need: m.windows_free + c.slack_io,
            have: m.windows_free,
            hints: vec![
                "use models without I/O BARs (virtio-*-non-transitional, e1000e)".into(),
                format!("let devices with I/O BARs be hotplug any or off, so that they sit on {root}"),
            ],
        });
    }
    if c.slack_bus > 0 {
        causes.push(Cause {
            rule: Rule::BusNr,
            message: format!(
                "{} bus numbers needed for pci-bridges; there are {}",
                m.bus_free + c.slack_bus,
                m.bus_free
            ),
            devices: Vec::new(),
            need: m.bus_free + c.slack_bus,
            have: m.bus_free,
            hints: vec!["fewer devices per guest".into()],
        });
    }
    Explanation { causes }
}

/// The notes of a planned `pc` guest with root hotplug off: why (PC-ROOT-HP), where the
/// `on` devices went (PC-MIX), and the NICs on `pci.0` a Linux guest names by path (G-FLIP).
pub(super) fn notes(req: &Request, cat: &Catalog, units: &[Unit], plan: &Plan) -> Vec<String> {
    if plan.root_hotplug != Some(false) {
        return Vec::new();
    }
    let root = cat.root.bus.as_str();
    let switch = cat.root.hotplug_switch.as_deref().unwrap_or("root hotplug");
    let mut out = vec![format!(
        "root hotplug of {root} is off ({switch}=off) because {} must not be unpluggable [PC-ROOT-HP]",
        list(&ids(req, units, |u| u.hp == Hotplug::Off))
    )];
    let bridged: Vec<String> = plan
        .devices
        .iter()
        .filter(|d| d.hotplug == Hotplug::On && d.bus != root)
        .map(|d| d.id.to_string())
        .collect();
    if !bridged.is_empty() {
        out.push(format!(
            "{} (hotplug on) sit behind a pci-bridge: {root} is not hot-pluggable with root hotplug off [PC-MIX]",
            list(&bridged)
        ));
    }
    let nics: Vec<String> = plan
        .devices
        .iter()
        .filter(|d| d.bus == root && cat.device(&d.model).is_some_and(|m| m.nic))
        .map(|d| {
            let f = if d.function > 0 {
                format!("f{}", d.function)
            } else {
                String::new()
            };
            format!(
                "{} enp0s{}{f} (ens{}{f} with root hotplug on)",
                d.id, d.slot, d.slot
            )
        })
        .collect();
    if !nics.is_empty() {
        out.push(format!(
            "a Linux guest names NICs on {root} by path once root hotplug is off: {} [G-FLIP]",
            nics.join(", ")
        ));
    }
    out
}
