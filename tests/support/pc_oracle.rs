//! The exhaustive oracle for `pc` (i440fx), written from docs/rules.md (PC-ROOT,
//! PC-ROOT-HP, PC-BRIDGE, PC-MIX, D-ON, D-OFF, O-SPARE, R-IO, R-BUSNR) alone: every root
//! hotplug setting, every number of bridges, every way of hanging the chained ones, and every
//! place of every unit are tried; the cheapest feasible plan's cost is the answer.
//!
//! A unit is a device or a group (D-GROUP). It goes on `pci.0` (hot-pluggable exactly when
//! root hotplug is on) or on a slot of one of the new bridges (always hot-pluggable). `off`
//! (of a model QEMU can unplug) needs an unpluggable place: `pci.0` with root hotplug off;
//! `on` needs a pluggable one, and a model QEMU cannot unplug never has one; a fixed model's
//! `off` holds anywhere. Bridges: some on `pci.0`, the others each on a slot of an earlier
//! bridge. Every bridge whose subtree holds a unit with I/O BARs opens one window (R-IO).
//! `spare_ports`: free hot-pluggable slots left. Pinned units sit on their `pci.0` slot.

use pciplan::{Catalog, Hotplug, Request};

/// A unit as the oracle sees it.
#[derive(Debug, Clone)]
struct U {
    hp: Hotplug,
    fixed: bool,
    io: bool,
    pinned_root: bool,
}

/// The cheapest plan's cost, or `None` when nothing fits (or some device must stay
/// pluggable but QEMU never unplugs its model). `max_bridges` bounds the search.
pub fn pc_oracle(req: &Request, cat: &Catalog, max_bridges: u32) -> Option<u32> {
    let units = units(req, cat)?;
    let bridge = cat.controllers.iter().find(|c| c.planner_adds)?;
    let cap = u32::from(bridge.bus.slots.max - bridge.bus.slots.min + 1);
    let root_slots = (cat.root.slots.min..=cat.root.slots.max)
        .filter(|s| !cat.root.reserved_slots.contains(s))
        .count() as u32;
    let windows = cat.io_budget(req.firmware).ok()?.windows;
    let buses = cat.bus_numbers.max;
    let pinned = units.iter().filter(|u| u.pinned_root).count() as u32;
    let free_units: Vec<&U> = units.iter().filter(|u| !u.pinned_root).collect();
    for b in 0..=max_bridges {
        if b > buses {
            break;
        }
        for b_root in 0..=b {
            if b > 0 && b_root == 0 {
                continue;
            }
            for parents in chains(b_root, b) {
                for h in [true, false] {
                    if pinned_ok(&units, h)
                        && fits(
                            &free_units,
                            h,
                            b,
                            b_root,
                            &parents,
                            cap,
                            root_slots - pinned.min(root_slots),
                            windows,
                            req.policy.spare_ports,
                        )
                        && pinned <= root_slots
                    {
                        return Some(b);
                    }
                }
            }
        }
    }
    None
}

/// Every way of hanging bridges `b_root..b` each on an earlier bridge.
fn chains(b_root: u32, b: u32) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new()];
    for j in b_root..b {
        out = out
            .into_iter()
            .flat_map(|p| {
                (0..j).map(move |parent| {
                    let mut q = p.clone();
                    q.push(parent);
                    q
                })
            })
            .collect();
    }
    out
}

fn pinned_ok(units: &[U], h: bool) -> bool {
    units.iter().filter(|u| u.pinned_root).all(|u| ok(u, h))
}

/// Whether unit `u` may sit on `pci.0` with root hotplug `h`.
fn ok(u: &U, h: bool) -> bool {
    match u.hp {
        Hotplug::On => !u.fixed && h,
        Hotplug::Off => u.fixed || !h,
        Hotplug::Any => true,
    }
}

/// Whether unit `u` may sit on a bridge slot.
fn ok_bridge(u: &U) -> bool {
    match u.hp {
        Hotplug::On => !u.fixed,
        Hotplug::Off => u.fixed,
        Hotplug::Any => true,
    }
}

#[allow(clippy::too_many_arguments)]
fn fits(
    units: &[&U],
    h: bool,
    b: u32,
    b_root: u32,
    parents: &[u32],
    cap: u32,
    root_free: u32,
    windows: u32,
    spares: u32,
) -> bool {
    // Places: 0 = pci.0, 1 + j = bridge j. Try them all.
    let places = 1 + b as usize;
    let n = units.len();
    let mut choice = vec![0usize; n];
    loop {
        let mut root_used = b_root;
        let mut used = vec![0u32; b as usize];
        let mut io = vec![false; b as usize];
        for &p in parents {
            used[p as usize] += 1;
        }
        let mut good = true;
        for (u, &c) in units.iter().zip(&choice) {
            if c == 0 {
                good &= ok(u, h);
                root_used += 1;
            } else {
                good &= ok_bridge(u);
                used[c - 1] += 1;
                io[c - 1] |= u.io;
            }
        }
        good &= root_used <= root_free && used.iter().all(|&x| x <= cap);
        // R-IO: a bridge whose subtree holds a unit with I/O BARs opens a window; parents
        // come before their children.
        for (k, &p) in parents.iter().enumerate().rev() {
            if io[b_root as usize + k] {
                io[p as usize] = true;
            }
        }
        good &= io.iter().filter(|&&x| x).count() as u32 <= windows;
        if good {
            let free_root = if h { root_free - root_used } else { 0 };
            let free_bridges: u32 = used.iter().map(|&x| cap - x).sum();
            if free_root + free_bridges >= spares {
                return true;
            }
        }
        // Next choice.
        let mut i = 0;
        loop {
            if i == n {
                return false;
            }
            choice[i] += 1;
            if choice[i] < places {
                break;
            }
            choice[i] = 0;
            i += 1;
        }
    }
}

fn units(req: &Request, cat: &Catalog) -> Option<Vec<U>> {
    let mut out: Vec<U> = Vec::new();
    let mut groups: Vec<(String, usize)> = Vec::new();
    for d in &req.devices {
        let m = cat.device(&d.model)?;
        let mut hp = d.hotplug.unwrap_or(req.policy.default_hotplug);
        // D-HP per device: a model QEMU never unplugs meets `off` anywhere and never `on`.
        if !m.hotpluggable {
            match hp {
                Hotplug::On => return None,
                Hotplug::Off => hp = Hotplug::Any,
                Hotplug::Any => {}
            }
        }
        let u = U {
            hp,
            fixed: false,
            io: m.io,
            pinned_root: d.address.is_some(),
        };
        match &d.group {
            Some(g) => match groups.iter().find(|(n, _)| n == g) {
                Some(&(_, i)) => {
                    let x = &mut out[i];
                    x.io |= u.io;
                    if x.hp == Hotplug::Any {
                        x.hp = u.hp;
                    }
                }
                None => {
                    groups.push((g.to_string(), out.len()));
                    out.push(u);
                }
            },
            None => out.push(u),
        }
    }
    Some(out)
}
