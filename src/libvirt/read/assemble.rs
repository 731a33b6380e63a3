//! The request and the [`Domain`] from what the reader found: each device's hotplug
//! requirement (named by the policy, integrated by libvirt, or pinned by the user), its
//! metadata group, NUMA node and kind, and the ICH9 USB2 sets in libvirt's function order.

use std::collections::HashMap;

use super::pci_controllers::PciControllers;
use super::policy::Resolved;
use super::xml::err;
use super::Item;
use crate::catalog::{BusKind, Catalog};
use crate::error::{InputError, Violation};
use crate::libvirt::{CtrlSrc, DevSrc, Domain};
use crate::request::{Address, ControllerRequest, DeviceRequest, Firmware, Hotplug, Request};
use crate::Text;

/// Everything the reader found, by step.
pub(super) struct Parts<'x, 'c> {
    pub xml: &'x str,
    pub cat: &'c Catalog,
    pub name: Option<String>,
    pub machine: String,
    pub firmware: Firmware,
    pub numa_cells: usize,
    pub items: Vec<Item>,
    pub ids: Vec<String>,
    pub pins: Vec<Option<Address>>,
    pub kinds: Vec<BusKind>,
    pub controllers: Vec<ControllerRequest>,
    pub pci: PciControllers<'c>,
    pub problems: Vec<Violation>,
    pub sata0: Option<usize>,
    pub policy: Resolved,
    pub overridden: bool,
}

/// Whether QEMU accepts `model` only on the root bus (virtio-iommu-pci): integrated, so
/// never hot-unpluggable, like libvirt places it.
fn root_only(p: &Parts, model: &str) -> bool {
    p.cat.device(model).is_some_and(|m| m.root_only)
}

/// The hotplug requirement of item `i`: what the policy names, else `any` for what libvirt
/// always integrates and for a pinned device under an implicit default (its address is the
/// user's choice), else the policy default (`None`). A default `on` does not bind a device
/// QEMU can never hot-unplug (libvirt places it anyway): it gets `any`, with a note saying so;
/// only a per-device `on` makes such a domain infeasible.
fn hotplug_of(p: &Parts, i: usize) -> (Option<Hotplug>, Option<String>) {
    let explicit_default = p.policy.patch.default_hotplug.is_some();
    let it = &p.items[i];
    match p.policy.named.get(&p.ids[i]) {
        Some(h) => (Some(*h), None),
        None if it.default_any => (Some(Hotplug::Any), None),
        None if p.pins[i].is_some() && !explicit_default => (Some(Hotplug::Any), None),
        None if p.policy.patch.policy().default_hotplug == Hotplug::On
            && (!p.cat.model_hotpluggable(&it.model) || root_only(p, &it.model)) =>
        {
            let from = if explicit_default {
                "the"
            } else {
                "the implicit"
            };
            let why = if root_only(p, &it.model) {
                format!("QEMU accepts {} only on the root bus, integrated on pcie.0 where it cannot be hot-unplugged", it.model)
            } else {
                format!("QEMU can never hot-unplug {}", it.model)
            };
            let note = format!(
                "{} ({}, {}): {why}, so {from} default hotplug 'on' does not apply to it; it is placed as 'any' (name it in the policy to decide)",
                p.ids[i], it.what, it.model
            );
            (Some(Hotplug::Any), Some(note))
        }
        None => (None, None),
    }
}

/// The request device of item `i`.
fn device(p: &Parts, i: usize, notes: &mut Vec<String>) -> Result<DeviceRequest, InputError> {
    let it = &p.items[i];
    let mut group = None;
    let mut numa_node = None;
    let mut kind = p.kinds[i];
    if let Some(d) = p.policy.by_item.get(&i) {
        group = d.group.clone();
        if let Some(k) = d.bus_kind {
            kind = k;
        }
        if let Some(nn) = d.numa_node {
            if nn as usize >= p.numa_cells {
                return Err(err(
                    format!("metadata device '{}'", d.alias),
                    format!("numa-node {nn} needs a guest NUMA node {nn}, but the domain's <cpu><numa> has {} cell(s): a pcie-expander-bus for node {nn} would be refused by libvirt [D-NUMA]", p.numa_cells),
                ));
            }
            numa_node = Some(nn);
        }
    }
    if group.is_none() {
        if let Some((index, _)) = it.usb2 {
            // A whole unpinned ICH9 USB2 set shares one slot, as libvirt does.
            let set: Vec<usize> = p
                .items
                .iter()
                .enumerate()
                .filter(|(_, x)| x.usb2.map(|u| u.0) == Some(index))
                .map(|(j, _)| j)
                .collect();
            if set.len() > 1 && set.iter().all(|&j| p.pins[j].is_none()) {
                group = Some(format!("usb2-set{index}"));
            }
        }
    }
    let (hotplug, note) = hotplug_of(p, i);
    notes.extend(note);
    Ok(DeviceRequest {
        id: Text::from(p.ids[i].as_str()),
        model: Text::from(it.model.as_str()),
        hotplug,
        group: group.map(Text::from),
        numa_node,
        bus_kind: Some(kind),
        address: p.pins[i].clone(),
    })
}

/// Item order with the members of each grouped USB2 set moved next to its first member, in
/// libvirt's function order (UHCI1, UHCI2, UHCI3, EHCI1).
fn libvirt_order(items: &[Item], devices: &[DeviceRequest]) -> Vec<usize> {
    let mut first_pos: HashMap<&str, usize> = HashMap::new();
    for (i, d) in devices.iter().enumerate() {
        if let Some(g) = &d.group {
            first_pos.entry(g.as_str()).or_insert(i);
        }
    }
    let mut order: Vec<usize> = (0..devices.len()).collect();
    order.sort_by_key(|&i| match &devices[i].group {
        Some(g) if g.starts_with("usb2-set") => (
            first_pos[g.as_str()],
            items[i].usb2.map(|u| u.1).unwrap_or(0) as usize,
        ),
        _ => (i, 0),
    });
    order
}

/// The domain: request devices in document order (then libvirt's additions), USB2 sets in
/// function order; existing PCI controllers as pinned controllers.
pub(super) fn domain<'c>(p: Parts<'_, 'c>) -> Result<Domain<'c>, InputError> {
    let mut notes = Vec::new();
    let devices = (0..p.items.len())
        .map(|i| device(&p, i, &mut notes))
        .collect::<Result<Vec<_>, _>>()?;
    let order = libvirt_order(&p.items, &devices);
    let srcs: Vec<DevSrc> = order
        .iter()
        .map(|&i| DevSrc {
            id: p.ids[i].clone(),
            src: p.items[i].src.clone(),
            mf_attr: p.items[i].addr.as_ref().and_then(|a| a.mf.clone()),
        })
        .collect();
    let devices: Vec<DeviceRequest> = order.iter().map(|&i| devices[i].clone()).collect();
    let request = Request {
        name: p.name.map(Text::from),
        machine: p.machine.into(),
        firmware: p.firmware,
        policy: p.policy.patch.policy(),
        devices,
        controllers: p.controllers,
        root_hotplug: p.pci.root_hotplug,
    };
    request.check_shape()?;
    request.check_models(p.cat)?;
    let controllers = p
        .pci
        .ctrls
        .iter()
        .map(|c| CtrlSrc {
            id: c.id.clone(),
            index: c.index,
            start: c.start,
            mf_attr: c.addr.as_ref().and_then(|a| a.mf.clone()),
        })
        .collect();
    let mut problems = p.problems;
    problems.sort();
    problems.dedup();
    Ok(Domain {
        text: p.xml.to_string(),
        cat: p.cat,
        request,
        problems,
        notes,
        devices: srcs,
        controllers,
        sata0: p.sata0,
        has_root: p.pci.has_root,
        root_start: p.pci.root_start,
        numa_cells: p.numa_cells,
        overridden: p.overridden,
        named: p.policy.named,
        explicit: p.policy.patch,
        meta_extra: p.policy.meta_extra,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::domain;
    use crate::libvirt::Source;

    #[test]
    fn request_keeps_document_order_then_libvirts_additions() {
        let d = domain(
            "<interface type='network'><model type='virtio'/></interface>\
             <disk type='file'><target dev='vda' bus='virtio'/></disk>",
        )
        .unwrap();
        let ids: Vec<&str> = d.request.devices.iter().map(|x| x.id.as_str()).collect();
        assert_eq!(ids, vec!["net0", "disk0", "usb0", "balloon0"]);
        assert!(matches!(d.devices[0].src, Source::Element(_)));
        assert!(matches!(d.devices[3].src, Source::Implicit(_)));
    }

    #[test]
    fn default_on_does_not_bind_a_device_qemu_cannot_unplug() {
        use crate::Hotplug;
        let devs = "<video><model type='virtio'/></video><video><model type='virtio'/></video>\
                    <memory model='virtio-mem'/>";
        let d = domain(devs).unwrap();
        let hp: Vec<Option<Hotplug>> = d.request.devices.iter().map(|x| x.hotplug).collect();
        assert_eq!(
            hp[..3],
            [Some(Hotplug::Any), Some(Hotplug::Any), Some(Hotplug::Any)]
        );
        assert_eq!(d.notes.len(), 2, "{:?}", d.notes);
        assert!(
            d.notes[0].starts_with("video1 (video[2], virtio-gpu-pci)"),
            "{:?}",
            d.notes
        );
        assert!(d.plan().is_ok());
        // A per-device 'on' still binds.
        let named = crate::libvirt::ReadOptions {
            overrides: crate::libvirt::Overrides {
                hotplug: vec![("memory0".into(), Hotplug::On)],
                ..Default::default()
            },
            ..Default::default()
        };
        let d = super::super::testing::domain_with(devs, &named).unwrap();
        assert_eq!(d.notes.len(), 1);
        assert!(d.plan().is_err());
    }

    #[test]
    fn default_on_does_not_bind_a_root_bus_only_device() {
        // virtio-iommu-pci goes only on pcie.0 (as Nova's hw_viommu_model=virtio writes it):
        // the default 'on' places it there with a note; a per-device 'on' is refused.
        let d = domain("<iommu model='virtio'/>").unwrap();
        assert_eq!(d.request.devices[0].hotplug, Some(crate::Hotplug::Any));
        assert!(d.notes[0].contains("only on the root bus"), "{:?}", d.notes);
        assert_eq!(d.plan().unwrap().devices[0].bus, "pcie.0");
    }

    #[test]
    fn metadata_numa_node_needs_the_cell() {
        let xml = format!(
            "<domain><name>t</name><os><type machine='q35'>hvm</type></os>\
             <metadata><p:policy xmlns:p='{}'><p:device alias='net0' numa-node='1'/></p:policy></metadata>\
             <devices><interface type='network'><model type='virtio'/></interface></devices></domain>",
            super::super::POLICY_NS
        );
        let e = crate::libvirt::Domain::parse(&xml).unwrap_err();
        assert!(e.to_string().contains("[D-NUMA]"), "{e}");
    }
}
