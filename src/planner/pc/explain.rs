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

/// Ids of the devices of `units` that satisfy `pick` (see [`ids_of`]), for an error.
fn ids(req: &Request, units: &[Unit], pick: impl Fn(&Unit) -> bool) -> Vec<String> {
    ids_of(req, units, pick).map(str::to_string).collect()
}

/// A short list of ids for a sentence: `a, b, c` or `a, b, ... (N in all)`.
fn list(ids: &[String]) -> String {
    let mut s = String::new();
    push_list(&mut s, ids.iter().map(String::as_str));
    s
}

/// Appends [`list`] of `ids` to `s` (no list of them is collected: a plan's notes name only
/// the first few).
fn push_list<'s>(s: &mut String, ids: impl Iterator<Item = &'s str>) {
    const SHOW: usize = 4;
    let mut n = 0;
    for id in ids {
        if n > 0 && n < SHOW {
            s.push_str(", ");
        }
        if n < SHOW {
            s.push_str(id);
        }
        n += 1;
    }
    if n > SHOW {
        s.push_str(", ... (");
        s.push_str(itoa::Buffer::new().format(n));
        s.push_str(" in all)");
    }
}

/// Appends a NIC name's slot part: the slot, and `f` and the function above function 0.
fn push_slot(s: &mut String, slot: u8, function: u8) {
    s.push_str(itoa::Buffer::new().format(slot));
    if function > 0 {
        s.push('f');
        s.push_str(itoa::Buffer::new().format(function));
    }
}

/// Ids of the devices of `units` that satisfy `pick`, without collecting them.
fn ids_of<'r>(
    req: &'r Request,
    units: &'r [Unit],
    pick: impl Fn(&Unit) -> bool + 'r,
) -> impl Iterator<Item = &'r str> {
    units
        .iter()
        .filter(move |u| pick(u))
        .flat_map(move |u| u.devs.iter().map(move |&d| req.devices[d].id.as_str()))
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
    let is_off = |u: &Unit| u.hp == Hotplug::Off;
    let is_pinned_on = |u: &Unit| u.hp == Hotplug::On && on_root_pin(u);
    // The lists of ids are for the errors only.
    let offs = || ids(req, units, is_off);
    let pinned_on = || ids(req, units, is_pinned_on);
    match (units.iter().any(is_off), units.iter().any(is_pinned_on)) {
        (true, true) => {
            let (offs, pinned_on) = (offs(), pinned_on());
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
        (true, false) => pinned_switch(req, Some(false), offs),
        (false, true) => pinned_switch(req, Some(true), pinned_on),
        (false, false) => Ok(req.root_hotplug),
    }
}

/// The devices' demand `want` on root hotplug against the request's own `root_hotplug` (an
/// existing guest's switch, a pin): they must agree (PC-MIX).
fn pinned_switch(
    req: &Request,
    want: Option<bool>,
    who: impl FnOnce() -> Vec<String>,
) -> Result<Option<bool>, PlanError> {
    match (req.root_hotplug, want) {
        (Some(have), Some(w)) if have != w => {
            let who = who();
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
                        list(&who)
                    ),
                    devices: who,
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
    // Room for the sentences as most guests have them (a few ids, a few NICs): no regrowth.
    let mut why = String::with_capacity(160);
    for piece in [
        "root hotplug of ",
        root,
        " is off (",
        switch,
        "=off) because ",
    ] {
        why.push_str(piece);
    }
    push_list(&mut why, ids_of(req, units, |u| u.hp == Hotplug::Off));
    why.push_str(" must not be unpluggable [PC-ROOT-HP]");
    let mut out = vec![why];
    let mut bridged = plan
        .devices
        .iter()
        .filter(|d| d.hotplug == Hotplug::On && d.bus != root)
        .map(|d| d.id.as_str())
        .peekable();
    if bridged.peek().is_some() {
        let mut s = String::with_capacity(160);
        push_list(&mut s, bridged);
        s.push_str(" (hotplug on) sit behind a pci-bridge: ");
        s.push_str(root);
        s.push_str(" is not hot-pluggable with root hotplug off [PC-MIX]");
        out.push(s);
    }
    let mut nics = plan
        .devices
        .iter()
        .filter(|d| d.bus == root && cat.device(&d.model).is_some_and(|m| m.nic))
        .peekable();
    if nics.peek().is_some() {
        let mut s = String::with_capacity(512);
        s.push_str("a Linux guest names NICs on ");
        s.push_str(root);
        s.push_str(" by path once root hotplug is off: ");
        for (k, d) in nics.enumerate() {
            if k > 0 {
                s.push_str(", ");
            }
            // `enp0s<slot>[f<function>]`, and `ens<slot>[f<function>]` with root hotplug on.
            s.push_str(&d.id);
            s.push_str(" enp0s");
            push_slot(&mut s, d.slot, d.function);
            s.push_str(" (ens");
            push_slot(&mut s, d.slot, d.function);
            s.push_str(" with root hotplug on)");
        }
        s.push_str(" [G-FLIP]");
        out.push(s);
    }
    out
}
