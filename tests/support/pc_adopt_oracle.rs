//! The exhaustive oracle for adopting `pc` (i440fx) guests, written from docs/rules.md
//! (PC-ROOT, PC-ROOT-HP, PC-BRIDGE, PC-MIX, D-ON, D-OFF, G-ID, G-FLIP, O-ADOPT) alone.
//!
//! An existing guest: `pci-bridge`s at fixed places, single-function devices each on a
//! `pci.0` slot or a bridge slot, and root hotplug `h0`. Every root hotplug setting, every
//! number and place of new bridges (a concrete slot on `pci.0` or an existing bridge, or a
//! slot of an earlier new bridge), and for every device staying or going to any bus with
//! room are tried. The guest sees (G-ID, G-FLIP): a device moved (its place changed), a
//! device staying on a bridge whose bus number the firmware changes (SeaBIOS numbers bridges
//! depth first in slot order, so a new bridge before an existing one renumbers it), a NIC
//! staying on `pci.0` when root hotplug changes, or on a slot of the bridge the firmware
//! numbers 1 whose number `pci.0` registers as a hotplug slot before or after but not both
//! (renamed). The answer is the lexicographic
//! minimum of (guest-visible changes, bridges added, root hotplug changed).
//!
//! Budgets that this oracle does not model (I/O windows, bus numbers, spares) are left
//! ample by its callers.

/// A place: a bus (`None` = `pci.0`, `Some(j)` = bridge `j`, existing ones first) and a slot.
pub type Place = (Option<usize>, u8);

/// A device of the existing guest.
#[derive(Debug, Clone)]
pub struct Dev {
    /// Where it is now (`None`: a new device without an address).
    pub at: Option<Place>,
    /// Its requirement: `Some(true)` on, `Some(false)` off, `None` any (after the
    /// fixed-model rule: a model QEMU never unplugs has `off` as `any`).
    pub want: Option<bool>,
    /// A network card (G-FLIP renames it).
    pub nic: bool,
}

/// The existing guest.
#[derive(Debug, Clone)]
pub struct Guest {
    /// Usable `pci.0` slots.
    pub root_slots: Vec<u8>,
    /// Slots of a bridge (1..=this).
    pub bridge_slots: u8,
    /// Existing bridges: their places (a parent bridge comes earlier).
    pub bridges: Vec<Place>,
    pub devs: Vec<Dev>,
    /// Root hotplug now.
    pub h0: bool,
}

/// The minimum (changes, bridges added, root hotplug changed), or `None` when no layout
/// with at most `max_new` new bridges meets the requirements.
pub fn minimum(g: &Guest, max_new: usize) -> Option<(u32, u32, bool)> {
    let mut best: Option<(u32, u32, bool)> = None;
    for h in [g.h0, !g.h0] {
        for n in 0..=max_new {
            let mut placed: Vec<Place> = Vec::new();
            bridges(g, h, n, &mut placed, &mut best);
        }
    }
    best
}

/// Every place of `n` new bridges, then the devices.
fn bridges(
    g: &Guest,
    h: bool,
    n: usize,
    placed: &mut Vec<Place>,
    best: &mut Option<(u32, u32, bool)>,
) {
    if placed.len() == n {
        devices(g, h, placed, best);
        return;
    }
    let all = g.bridges.len() + placed.len();
    let mut options: Vec<Place> = g.root_slots.iter().map(|&s| (None, s)).collect();
    for j in 0..all {
        for s in 1..=g.bridge_slots {
            options.push((Some(j), s));
        }
    }
    for p in options {
        // Not on an existing bridge's place, nor another new bridge's.
        if g.bridges.contains(&p) || placed.contains(&p) {
            continue;
        }
        placed.push(p);
        bridges(g, h, n, placed, best);
        placed.pop();
    }
}

/// Whether a device with requirement `want` may sit on `pci.0` (`bus` `None`) or a bridge
/// with root hotplug `h`.
fn allowed(want: Option<bool>, bus: Option<usize>, h: bool) -> bool {
    match (bus, want) {
        (None, Some(true)) => h,
        (None, Some(false)) => !h,
        (Some(_), Some(false)) => false,
        _ => true,
    }
}

/// The devices of `g` with the new bridges at `placed` and root hotplug `h`.
fn devices(g: &Guest, h: bool, placed: &[Place], best: &mut Option<(u32, u32, bool)>) {
    let nb = g.bridges.len() + placed.len();
    // Paths of every bridge, and whether each existing bridge is renumbered.
    let mut places: Vec<Place> = g.bridges.clone();
    places.extend_from_slice(placed);
    let path = |mut j: usize| -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            out.push(places[j].1);
            match places[j].0 {
                Some(p) => j = p,
                None => break,
            }
        }
        out.reverse();
        out
    };
    let paths: Vec<Vec<u8>> = (0..nb).map(path).collect();
    let renumbered: Vec<bool> = (0..g.bridges.len())
        .map(|j| (g.bridges.len()..nb).any(|k| paths[k] < paths[j]))
        .collect();
    // G-FLIP: the slots of the existing bridge the firmware numbers 1 (the first depth
    // first) are named after their numbers unless pci.0 registers a hotplug slot of that
    // number first (root hotplug on, and no bridge in that pci.0 slot); slot 1 always is. A
    // NIC staying there is renamed when that changes, unless renumbered (a change already).
    let first = (0..g.bridges.len()).min_by(|&a, &b| paths[a].cmp(&paths[b]));
    let named = |h: bool, bridges: &[Place], slot: u8| {
        slot == 1 || !h || bridges.iter().any(|&(p, s)| p.is_none() && s == slot)
    };
    let renamed_at: Vec<bool> = (0..=g.bridge_slots)
        .map(|s| named(g.h0, &g.bridges, s) != named(h, &places, s))
        .collect();
    // Room per bus: slots not held by a bridge.
    let cap = |bus: Option<usize>| -> Vec<u8> {
        let slots: Vec<u8> = match bus {
            None => g.root_slots.clone(),
            Some(_) => (1..=g.bridge_slots).collect(),
        };
        slots
            .into_iter()
            .filter(|&s| !places.contains(&(bus, s)))
            .collect()
    };
    let buses: Vec<Option<usize>> = std::iter::once(None).chain((0..nb).map(Some)).collect();
    // Each device stays (if allowed, on its slot, which no new bridge holds) or moves to
    // any bus it may use; movers take the slots the stayers leave.
    let flip = h != g.h0;
    let mut free: Vec<Vec<u8>> = buses.iter().map(|&b| cap(b)).collect();
    let idx = |bus: Option<usize>| bus.map_or(0, |j| j + 1);
    let mut choice: Vec<Option<usize>> = vec![None; g.devs.len()]; // None = stays
    assign(
        g,
        h,
        flip,
        0,
        &mut choice,
        &mut free,
        &buses,
        &renumbered,
        (first, &renamed_at),
        placed.len() as u32,
        best,
        &idx,
    );
}

#[allow(clippy::too_many_arguments)]
fn assign(
    g: &Guest,
    h: bool,
    flip: bool,
    i: usize,
    choice: &mut Vec<Option<usize>>,
    free: &mut Vec<Vec<u8>>,
    buses: &[Option<usize>],
    renumbered: &[bool],
    (first, renamed_at): (Option<usize>, &[bool]),
    added: u32,
    best: &mut Option<(u32, u32, bool)>,
    idx: &dyn Fn(Option<usize>) -> usize,
) {
    if i == g.devs.len() {
        // Movers: count per bus, against the slots left.
        let mut need = vec![0usize; buses.len()];
        for c in choice.iter().flatten() {
            need[*c] += 1;
        }
        if need.iter().zip(free.iter()).any(|(n, f)| *n > f.len()) {
            return;
        }
        let mut changes = 0;
        for (d, c) in g.devs.iter().zip(choice.iter()) {
            match (c, d.at) {
                (Some(_), Some(_)) => changes += 1,
                (Some(_), None) => {}
                (None, Some((None, _))) => changes += u32::from(d.nic && flip),
                (None, Some((Some(j), slot))) => {
                    let renamed = d.nic && first == Some(j) && renamed_at[usize::from(slot)];
                    changes += u32::from(renumbered[j] || renamed)
                }
                (None, None) => return,
            }
        }
        let t = (changes, added, flip);
        if best.is_none_or(|b| t < b) {
            *best = Some(t);
        }
        return;
    }
    let d = &g.devs[i];
    // Stay.
    if let Some((bus, slot)) = d.at {
        let b = idx(bus);
        if allowed(d.want, bus, h) {
            if let Some(k) = free[b].iter().position(|&s| s == slot) {
                free[b].remove(k);
                choice[i] = None;
                assign(
                    g,
                    h,
                    flip,
                    i + 1,
                    choice,
                    free,
                    buses,
                    renumbered,
                    (first, renamed_at),
                    added,
                    best,
                    idx,
                );
                free[b].insert(k, slot);
            }
        }
    }
    // Move to any bus it may use.
    for (b, &bus) in buses.iter().enumerate() {
        if allowed(d.want, bus, h) {
            choice[i] = Some(b);
            assign(
                g,
                h,
                flip,
                i + 1,
                choice,
                free,
                buses,
                renumbered,
                (first, renamed_at),
                added,
                best,
                idx,
            );
        }
    }
    choice[i] = None;
}
