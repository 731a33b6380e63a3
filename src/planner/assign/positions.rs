//! Positions: pinned units keep their addresses, integrated units take `pcie.0` slots, and
//! the counts decide where new root ports and expanders go.

use crate::catalog::{CLASS_PXB, CLASS_ROOT_PORT};
use crate::error::PlanError;
use crate::ilp::Place;

use super::pool::Pool;
use super::{Assigner, Bus};

impl<'a> Assigner<'a> {
    /// Pinned devices keep their addresses.
    pub(super) fn place_pinned(&mut self) {
        for u in self.units.iter().filter(|u| u.pinned) {
            for &i in &u.devs {
                if let Some(a) = &self.req.devices[i].address {
                    self.place_device(i, Bus::Named(&a.bus), a.slot, a.function);
                }
            }
        }
    }

    /// R-INTEGRATED: integrated units in request order, lowest `pcie.0` slots first; units
    /// of a packable class share a slot's functions (policy `pack_integrated`).
    pub(super) fn place_integrated(&mut self) -> Result<(), PlanError> {
        let root = Bus::Named(self.cat.root.bus.as_str());
        let mut pack: Option<(u8, u8)> = None;
        let mut beside = self.world.pack_beside.iter();
        for ui in 0..self.units.len() {
            if self.place[ui] != Some(Place::Integrated) {
                continue;
            }
            let packable = self.unit_class[ui].is_some_and(|c| self.model.classes[c].packable);
            let spot = if packable { beside.next() } else { None };
            if let Some(&(slot, f)) = spot {
                self.put(ui, root, slot, f);
            } else if packable {
                let (slot, f) = match pack {
                    Some((s, f)) if f < self.cat.root.functions => (s, f),
                    _ => (self.next_root_slot()?, 0),
                };
                self.put(ui, root, slot, f);
                pack = Some((slot, f + 1));
            } else {
                let slot = self.next_root_slot()?;
                self.put(ui, root, slot, 0);
            }
        }
        Ok(())
    }

    /// New root-port positions on `pcie.0`: free functions of slots that hold only root
    /// ports, then the fresh slots the counts give (all their functions when root ports
    /// share slots), as many as the counts want.
    pub(super) fn root_port_positions(&mut self) -> Result<Pool<'a>, PlanError> {
        let cat = self.cat;
        let root = Bus::Named(cat.root.bus.as_str());
        let rp = cat.adder_or_internal(CLASS_ROOT_PORT);
        let mut out = Pool::default();
        for &at in &self.world.root_partial {
            out.push(root, CLASS_ROOT_PORT, at, SINGLE, 1);
        }
        let per = if rp.aggregate { cat.root.functions } else { 1 };
        for _ in 0..self.counts.root_port_slots {
            let slot = self.next_port_slot()?;
            out.push(root, CLASS_ROOT_PORT, (slot, 0), per, u32::from(per));
        }
        out.truncate(self.counts.root_ports as usize);
        Ok(out)
    }

    /// Root-port positions per region: those of pinned expanders, then of the new
    /// expanders the counts give (NUMA regions first, each expander with its region's
    /// `numa_node`; then the global ones), every slot and `per` functions each.
    pub(super) fn expander_positions(&mut self) -> Result<Vec<Pool<'a>>, PlanError> {
        let cat = self.cat;
        let world = self.world;
        let root = Bus::Named(cat.root.bus.as_str());
        let rp = cat.adder_or_internal(CLASS_ROOT_PORT);
        let pxb = cat.adder_or_internal(CLASS_PXB);
        let per = if rp.aggregate { pxb.bus.functions } else { 1 };
        let slots = pxb.bus.slots;
        let each = (u32::from(slots.max) + 1).saturating_sub(u32::from(slots.min)) * u32::from(per);
        let nreg = world.region_numa.len();
        let mut out: Vec<Pool> = vec![Pool::default(); nreg];
        for (r, pool) in out.iter_mut().enumerate() {
            for (b, s, f) in &world.pxb_positions[r] {
                pool.push(Bus::Named(b), CLASS_ROOT_PORT, (*s, *f), SINGLE, 1);
            }
        }
        for (r, pool) in out.iter_mut().enumerate().skip(1) {
            for _ in 0..self.counts.region_expanders.get(r).copied().unwrap_or(0) {
                let s = self.next_root_slot()?;
                let id = self.add(pxb, root, s, 0);
                if let Some(c) = self.plan.controllers.last_mut() {
                    c.numa_node = world.region_numa[r];
                }
                pool.push(id, CLASS_ROOT_PORT, (slots.min, 0), per, each);
            }
        }
        for _ in 0..self.counts.expanders {
            let s = self.next_root_slot()?;
            let id = self.add(pxb, root, s, 0);
            out[0].push(id, CLASS_ROOT_PORT, (slots.min, 0), per, each);
        }
        Ok(out)
    }
}

/// The functions a slot has, for a run of one position (no slot has more).
const SINGLE: u8 = 8;
