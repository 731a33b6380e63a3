//! Units and classes: a device or a multifunction group takes one slot (a *unit*), and
//! interchangeable units form a *class*, the integer program's granularity.

use std::collections::{BTreeMap, BTreeSet};

use super::offer::World;
use crate::catalog::{
    BusKind, Catalog, DeviceModel, CLASS_BRIDGE, CLASS_PXB, CLASS_ROOT_PORT, CLASS_UPSTREAM,
};
use crate::error::{Cause, Explanation, PlanError};
use crate::ilp::{Cap, Class, Model, Place, Region};
use crate::request::{Hotplug, Request};
use crate::rule::Rule;
use crate::Text;

/// The request indices of a unit's devices, in request order (read as a slice): up to a
/// slot's eight functions in place, more (a catalog changed in code) in a vector, so that
/// making units allocates nothing per unit.
#[derive(Clone)]
pub(crate) struct Devs {
    len: usize,
    near: [usize; 8],
    /// Every index, once there are more than `near` holds.
    far: Vec<usize>,
}

impl Devs {
    /// The one device `i`.
    pub(crate) fn one(i: usize) -> Devs {
        let mut near = [0; 8];
        near[0] = i;
        Devs {
            len: 1,
            near,
            far: Vec::new(),
        }
    }

    /// Adds device `i` last.
    pub(crate) fn push(&mut self, i: usize) {
        if self.len < self.near.len() {
            self.near[self.len] = i;
        } else {
            if self.far.is_empty() {
                self.far.extend_from_slice(&self.near);
            }
            self.far.push(i);
        }
        self.len += 1;
    }
}

impl std::ops::Deref for Devs {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        if self.far.is_empty() {
            &self.near[..self.len]
        } else {
            &self.far
        }
    }
}

impl<'a> IntoIterator for &'a Devs {
    type Item = &'a usize;
    type IntoIter = std::slice::Iter<'a, usize>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl std::fmt::Debug for Devs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A device or a multifunction group: what takes one slot.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    /// Request indices of its devices, in request order.
    pub devs: Devs,
    pub kind: BusKind,
    pub hp: Hotplug,
    pub numa: Option<u32>,
    pub grouped: bool,
    pub pinned: bool,
    /// Some member has an I/O BAR (rule R-IO).
    pub io: bool,
    /// A group of PCIe and conventional PCI members: only an integrated slot takes both
    /// (R-RP takes PCIe endpoints only, R-BRIDGE conventional ones only).
    pub mixed: bool,
    /// Some member's model is accepted by QEMU only on the root bus.
    pub root_only: bool,
}

/// The request's units, in request order (a group where its first member is).
pub(crate) fn units(req: &Request, cat: &Catalog) -> Result<Vec<Unit>, PlanError> {
    let models: Vec<_> = req.devices.iter().map(|d| cat.device(&d.model)).collect();
    units_of(req, cat, &models)
}

/// [`units`] with each device's catalog model given, by device index.
pub(crate) fn units_of(
    req: &Request,
    cat: &Catalog,
    models: &[Option<&DeviceModel>],
) -> Result<Vec<Unit>, PlanError> {
    let mut out: Vec<Unit> = Vec::with_capacity(req.devices.len());
    let mut by_group: BTreeMap<&str, usize> = BTreeMap::new();
    let mut never: Vec<Text> = Vec::new();
    for (i, (d, &dm)) in req.devices.iter().zip(models).enumerate() {
        let kind = d.bus_kind.or(dm.map(|m| m.kind)).unwrap_or(BusKind::Pcie);
        let io = dm.map(|m| m.io).unwrap_or(kind == BusKind::Pci);
        let mut hp = req.hotplug_of(d);
        if !dm.map(|m| m.hotpluggable).unwrap_or(true) {
            // QEMU never unplugs this model: `on` cannot be met, and `off` holds anywhere.
            match hp {
                Hotplug::On => never.push(d.id.clone()),
                Hotplug::Off => hp = Hotplug::Any,
                Hotplug::Any => {}
            }
        }
        let root_only = dm.is_some_and(|m| m.root_only);
        match &d.group {
            Some(g) => {
                if let Some(&u) = by_group.get(g.as_str()) {
                    let unit = &mut out[u];
                    let first = &req.devices[unit.devs[0]];
                    let bad = |msg: String| {
                        PlanError::Invalid(crate::error::InputError::new(
                            format!("devices[{i}].group"),
                            format!("device '{}': {msg} [D-GROUP]", d.id),
                        ))
                    };
                    if unit.numa != d.numa_node {
                        return Err(bad(format!(
                            "numa_node differs from '{}' in group '{g}'",
                            first.id
                        )));
                    }
                    if unit.pinned != d.address.is_some() {
                        return Err(bad(format!(
                            "group '{g}' is partly pinned: pin every member or none"
                        )));
                    }
                    unit.hp = match (unit.hp, hp) {
                        (Hotplug::On, Hotplug::Off) | (Hotplug::Off, Hotplug::On) => {
                            return Err(bad(format!(
                                "hotplug {} conflicts with '{}' (hotplug {}) in group '{g}'",
                                hp.as_str(),
                                first.id,
                                unit.hp.as_str()
                            )));
                        }
                        (Hotplug::Any, x) => x,
                        (x, _) => x,
                    };
                    unit.mixed |= kind != unit.kind;
                    if kind == BusKind::Pci {
                        unit.kind = BusKind::Pci;
                    }
                    unit.io |= io;
                    unit.root_only |= root_only;
                    unit.devs.push(i);
                    if unit.devs.len() > usize::from(cat.root.functions) {
                        return Err(bad(format!(
                            "group '{g}' has more than {} members",
                            cat.root.functions
                        )));
                    }
                } else {
                    by_group.insert(g, out.len());
                    out.push(Unit {
                        devs: Devs::one(i),
                        kind,
                        hp,
                        numa: d.numa_node,
                        grouped: true,
                        pinned: d.address.is_some(),
                        io,
                        mixed: false,
                        root_only,
                    });
                }
            }
            None => out.push(Unit {
                devs: Devs::one(i),
                kind,
                hp,
                numa: d.numa_node,
                grouped: false,
                pinned: d.address.is_some(),
                io,
                mixed: false,
                root_only,
            }),
        }
    }
    if !never.is_empty() {
        let models: BTreeSet<&str> = req
            .devices
            .iter()
            .filter(|d| never.contains(&d.id))
            .map(|d| d.model.as_str())
            .collect();
        return Err(PlanError::Infeasible(Explanation {
            causes: vec![Cause {
                rule: Rule::Hotplug,
                message: format!(
                    "{} device(s) must stay hot-unpluggable, but QEMU cannot hot-unplug {} anywhere ('does not support hotplugging')",
                    never.len(),
                    models.into_iter().collect::<Vec<_>>().join(", ")
                ),
                need: never.len() as u32,
                have: 0,
                devices: never.into_iter().map(String::from).collect(),
                hints: vec!["set hotplug 'any' (or 'off') for them".to_string()],
            }],
        }));
    }
    Ok(out)
}

/// Where a unit of `region` may go (D-ON, D-OFF, D-NUMA, R-RP, R-BRIDGE, root-only models).
pub(crate) fn allowed(req: &Request, u: &Unit, region: usize) -> [bool; 4] {
    let off = req.policy.hotplug_off;
    let mut a = [false; 4];
    a[Place::Integrated as usize] =
        region == 0 && u.hp != Hotplug::On && (u.hp != Hotplug::Off || off.allows_integrated());
    if u.root_only {
        return a;
    }
    a[Place::OffPort as usize] =
        !u.mixed && u.kind == BusKind::Pcie && u.hp == Hotplug::Off && off.allows_port();
    a[Place::Port as usize] = !u.mixed && u.kind == BusKind::Pcie && u.hp != Hotplug::Off;
    a[Place::Bridge as usize] = !u.mixed && u.kind == BusKind::Pci && u.hp != Hotplug::Off;
    a
}

/// The classes of the unpinned units, in a canonical order, and the program's model;
/// with the class of each unit (`None` when pinned).
pub(crate) fn build_model(
    req: &Request,
    cat: &Catalog,
    units: &[Unit],
    w: &World,
    io_windows: u32,
) -> (Model, Vec<Option<usize>>) {
    // A guest has a handful of classes: a list searched front to back beats a map.
    // Room for the usual handful, so that neither list regrows while it is built.
    let mut keys: Vec<(usize, BusKind, Hotplug, bool, bool, bool, bool)> = Vec::with_capacity(8);
    let mut classes: Vec<Class> = Vec::with_capacity(8);
    let mut unit_class = Vec::with_capacity(units.len());
    for u in units {
        if u.pinned {
            unit_class.push(None);
            continue;
        }
        let region = u
            .numa
            .and_then(|n| w.region_numa.iter().position(|&r| r == Some(n)))
            .unwrap_or(0);
        let packable = !u.grouped && req.policy.pack_integrated;
        let key = (region, u.kind, u.hp, packable, u.io, u.mixed, u.root_only);
        let idx = match keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                keys.push(key);
                classes.push(Class {
                    n: 0,
                    allowed: allowed(req, u, region),
                    region,
                    off: u.hp == Hotplug::Off,
                    any: u.hp == Hotplug::Any,
                    packable,
                    io: u.io,
                });
                classes.len() - 1
            }
        };
        classes[idx].n += 1;
        unit_class.push(Some(idx));
    }
    // Classes were numbered in order of first appearance; that order is part of the key,
    // so sort them canonically and renumber, to make equal shapes give equal models.
    let mut order: Vec<usize> = (0..classes.len()).collect();
    order.sort_by_key(|&i| {
        let c = &classes[i];
        (c.region, c.allowed, c.off, c.any, c.packable, c.io)
    });
    let mut renum = vec![0; classes.len()];
    for (new, &old) in order.iter().enumerate() {
        renum[old] = new;
    }
    let classes: Vec<Class> = order.iter().map(|&i| classes[i].clone()).collect();
    let unit_class = unit_class
        .into_iter()
        .map(|c| c.map(|i| renum[i]))
        .collect();
    let regions = w
        .region_numa
        .iter()
        .enumerate()
        .map(|(r, numa)| Region {
            free_on: w
                .ports
                .iter()
                .filter(|p| p.region == r && p.hotplug)
                .count() as u32,
            free_off: w
                .ports
                .iter()
                .filter(|p| p.region == r && !p.hotplug)
                .count() as u32,
            free_on_endpoint_only: w
                .ports
                .iter()
                .filter(|p| p.region == r && p.hotplug && p.endpoint_only)
                .count() as u32,
            free_off_endpoint_only: w
                .ports
                .iter()
                .filter(|p| p.region == r && !p.hotplug && p.endpoint_only)
                .count() as u32,
            bridge_free: w.bridge_slots[r].len() as u32,
            bridge_free_io: w.bridge_free_io[r],
            bridges_unwindowed: w.bridges_unwindowed[r],
            pxb_free: w.pxb_positions[r].len() as u32,
            new_pxb: numa
                .map(|n| !w.pinned_pxb_numa.contains(&n))
                .unwrap_or(false),
        })
        .collect();
    let rp = cat.adder_or_internal(CLASS_ROOT_PORT);
    let pxb = cat.adder_or_internal(CLASS_PXB);
    let sw = cat.adder_or_internal(CLASS_UPSTREAM);
    let br = cat.adder_or_internal(CLASS_BRIDGE);
    let model = Model {
        classes,
        regions,
        root_free_slots: w.root_free.len() as u32,
        root_free_functions: w.root_partial.len() as u32,
        ports_per_slot: if rp.aggregate {
            u32::from(cat.root.functions)
        } else {
            1
        },
        int_per_slot: u32::from(cat.root.functions),
        pxb_cap: pxb.bus.slots.len()
            * if rp.aggregate {
                u32::from(pxb.bus.functions)
            } else {
                1
            },
        switch_cap: sw.bus.slots.len(),
        bridge_cap: br.bus.slots.len(),
        upstream_free: w.upstream_slots.len() as u32,
        spare: req.policy.spare_ports,
        bus_used: w.bus_used,
        bus_max: cat.bus_numbers.max,
        io_used: w.io_used,
        root_bus_room: w.root_bus_room,
        caps: caps(w),
        float_ports: (0..w.region_numa.len())
            .map(|r| {
                w.ports
                    .iter()
                    .filter(|p| p.region == r && p.below_pxb && p.pxb.is_none() && !p.endpoint_only)
                    .count() as u32
            })
            .collect(),
        root_ports_free: w
            .ports
            .iter()
            .filter(|p| !p.below_pxb && !p.endpoint_only)
            .count() as u32,
        io_window_kib: cat.io_space.window_kib,
        adopt: None,
        io_max: io_windows,
    };
    (model, unit_class)
}

/// R-BUSNR: the pinned expanders with a `bus_nr` and room left, with their free positions
/// and the free ports below them a bridge may use.
fn caps(w: &World) -> Vec<Cap> {
    w.cap_rooms
        .iter()
        .map(|(id, &(region, room))| Cap {
            region,
            room,
            positions: w.pxb_positions[region].iter().filter(|p| p.0 == id).count() as u32,
            ports: w
                .ports
                .iter()
                .filter(|p| p.pxb.as_ref() == Some(id) && !p.endpoint_only)
                .count() as u32,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> Request {
        Request::from_json(json).expect("parses")
    }

    #[test]
    fn groups_are_one_unit_and_alike_units_one_class() {
        let r = req(r#"{"devices":[
            {"id":"a","model":"virtio-blk-pci"},
            {"id":"g0","model":"virtio-net-pci","group":"g"},
            {"id":"b","model":"virtio-blk-pci"},
            {"id":"g1","model":"virtio-blk-pci","group":"g"}]}"#);
        let cat = Catalog::q35();
        let us = units(&r, cat).expect("units");
        assert_eq!(
            us.iter().map(|u| u.devs.to_vec()).collect::<Vec<_>>(),
            [vec![0], vec![1, 3], vec![2]]
        );
        let w = World {
            region_numa: vec![None],
            bridge_slots: vec![Vec::new()],
            bridge_free_io: vec![0],
            bridges_unwindowed: vec![0],
            windowed_front: vec![0],
            pxb_positions: vec![Vec::new()],
            ..World::default()
        };
        let (model, unit_class) = build_model(&r, cat, &us, &w, 14);
        // A group takes a slot like a single device: without packing, one class of 3.
        assert_eq!(model.classes.len(), 1);
        assert_eq!(unit_class, [Some(0); 3]);
        assert_eq!(model.classes[0].n, 3);
    }

    #[test]
    fn a_group_with_conflicting_hotplug_is_invalid() {
        let r = req(r#"{"devices":[
            {"id":"a","model":"virtio-blk-pci","group":"g","hotplug":"on"},
            {"id":"b","model":"virtio-blk-pci","group":"g","hotplug":"off"}]}"#);
        let e = units(&r, Catalog::q35()).expect_err("conflict");
        assert!(e.to_string().contains("[D-GROUP]"), "{e}");
    }

    #[test]
    fn places_follow_hotplug() {
        let r = req(r#"{"devices":[{"id":"a","model":"virtio-blk-pci","hotplug":"on"}]}"#);
        let us = units(&r, Catalog::q35()).expect("units");
        assert_eq!(allowed(&r, &us[0], 0), [false, false, true, false]);
    }
}
