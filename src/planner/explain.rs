//! Why a request cannot be planned: exact counting before the program (`precheck`), the
//! program's slack read back as causes with numbers and hints (`explain`), and the bus
//! numbering of an assigned plan against pinned expander ranges (`bus_ranges`).

use super::offer::World;
use super::units::Unit;
use crate::catalog::{BusKind, Catalog};
use crate::error::{Cause, Explanation, PlanError, Violation};
use crate::ilp::{Counts, Model};
use crate::request::{Hotplug, Request};
use crate::rule::Rule;
use crate::topology::{Node, Topology};

/// The ids of the devices of the units `pick` selects, in request order.
fn dev_ids(req: &Request, units: &[Unit], pick: impl Fn(&Unit) -> bool) -> Vec<String> {
    units
        .iter()
        .filter(|u| pick(u))
        .flat_map(|u| u.devs.iter().map(|&i| req.devices[i].id.to_string()))
        .collect()
}

/// Why a unit with a model QEMU accepts only on the root bus (virtio-iommu-pci) has no
/// place: integrated on the root bus is its only place, and its requirement or the policy
/// rules that out. Names the model(s) and where they can go, with a hint.
fn root_only_cause(req: &Request, u: &Unit, n: usize) -> (Rule, String, Vec<String>) {
    let mut models: Vec<&str> = u
        .devs
        .iter()
        .map(|&i| req.devices[i].model.as_str())
        .collect();
    models.dedup();
    let models = models.join(", ");
    let only = format!(
        "{n} device(s) of model {models}, which QEMU accepts only on the root bus: its only place is an integrated slot on pcie.0 (libvirt puts it there too), which"
    );
    match (u.hp, u.numa) {
        (_, Some(node)) => (
            Rule::Numa,
            format!("{only} has no NUMA node, but numa_node is {node}"),
            vec![format!("drop numa_node for {models}: it can only be on pcie.0")],
        ),
        (Hotplug::On, None) => (
            Rule::On,
            format!("{only} the guest cannot hot-unplug, but its hotplug is 'on' (it cannot be on a port)"),
            vec![format!("set hotplug 'any' (or 'off') for {models}: it can only be integrated on pcie.0")],
        ),
        _ => (
            Rule::Off,
            format!("{only} policy hotplug_off 'port' rules out (it cannot be on a hotplug=off port)"),
            vec![
                "allow hotplug_off=auto (or integrated)".to_string(),
                format!("or set hotplug 'any' for {models}"),
            ],
        ),
    }
}

/// Classes with no allowed place at all, explained before any solving.
pub(crate) fn precheck(
    req: &Request,
    units: &[Unit],
    unit_class: &[Option<usize>],
    model: &Model,
) -> Result<(), PlanError> {
    let mut causes = Vec::new();
    for (ci, c) in model.classes.iter().enumerate() {
        if c.allowed.iter().any(|&a| a) {
            continue;
        }
        let members: Vec<&Unit> = units
            .iter()
            .zip(unit_class)
            .filter(|(_, k)| **k == Some(ci))
            .map(|(u, _)| u)
            .collect();
        let Some(u) = members.first() else { continue };
        let devices = dev_ids(req, units, |x| members.iter().any(|m| std::ptr::eq(*m, x)));
        let (rule, message, hints) = match (u.kind, u.hp, u.numa) {
            _ if u.root_only && !u.mixed => root_only_cause(req, u, devices.len()),
            _ if u.mixed => (
                Rule::Group,
                format!(
                    "{} device(s) in group(s) mixing PCIe and conventional PCI functions: only an integrated pcie.0 slot takes both, and it {}",
                    devices.len(),
                    if u.numa.is_some() { "has no NUMA node" } else { "cannot be hot-unplugged" }
                ),
                vec!["split the group, or make its members the same kind (bus_kind)".to_string(), "or set hotplug 'any' or 'off' and drop numa_node for the group".to_string()],
            ),
            (BusKind::Pci, Hotplug::Off, Some(n)) => (
                Rule::Numa,
                format!("{} conventional PCI device(s) with hotplug off and numa_node {n}: they can only be integrated on pcie.0, which has no NUMA node", devices.len()),
                vec!["drop numa_node, or allow hotplug 'on'/'any' so they can sit on a bridge behind the node's expander".to_string()],
            ),
            (_, Hotplug::Off, Some(n)) => (
                Rule::Numa,
                format!("{} hotplug-off device(s) with numa_node {n} need a hotplug=off port below the node's pxb-pcie, but policy hotplug_off is 'integrated'", devices.len()),
                vec!["allow hotplug_off=auto (or port)".to_string()],
            ),
            (BusKind::Pci, Hotplug::Off, None) => (
                Rule::Off,
                format!("{} conventional PCI device(s) with hotplug off can only be integrated, but policy hotplug_off is 'port'", devices.len()),
                vec!["allow hotplug_off=auto".to_string(), "or set hotplug 'any' for them".to_string()],
            ),
            _ => (Rule::Hotplug, format!("{} device(s) have no place that meets their hotplug requirement", devices.len()), vec![]),
        };
        causes.push(Cause {
            rule,
            message,
            need: devices.len() as u32,
            have: 0,
            devices,
            hints,
        });
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(PlanError::Infeasible(Explanation { causes }))
    }
}

/// The budgets the program's slack says are short (R-ROOT, R-BUSNR, R-IO), as causes.
pub(crate) fn explain(
    req: &Request,
    cat: &Catalog,
    units: &[Unit],
    unit_class: &[Option<usize>],
    model: &Model,
    c: &Counts,
    w: &World,
) -> Explanation {
    let mut causes = Vec::new();
    let only_int = |ci: Option<usize>| {
        ci.map(|i| model.classes[i].allowed == [true, false, false, false])
            .unwrap_or(false)
    };
    if c.slack_slots > 0 {
        let forced: Vec<&Unit> = units
            .iter()
            .zip(unit_class)
            .filter(|(_, k)| only_int(**k))
            .map(|(u, _)| u)
            .collect();
        let mut devices = dev_ids(req, units, |x| forced.iter().any(|m| std::ptr::eq(*m, x)));
        if devices.is_empty() {
            // Nothing is forced onto pcie.0: the slots are missing for the ports that the
            // devices which must stay hot-pluggable (or need a bridge) sit behind.
            devices = dev_ids(req, units, |u| !u.pinned && u.hp != Hotplug::Off);
        }
        let need = model.root_free_slots + c.slack_slots;
        let forced_slots: u32 = {
            let packed = forced
                .iter()
                .filter(|u| !u.grouped && req.policy.pack_integrated)
                .count() as u32;
            (forced.len() as u32 - packed) + packed.div_ceil(model.int_per_slot.max(1))
        };
        let message = if forced_slots > model.root_free_slots {
            if forced_slots == forced.len() as u32 {
                format!(
                    "{} hotplug-off devices need integrated slots; pcie.0 has {} free",
                    forced.len(),
                    model.root_free_slots
                )
            } else {
                format!("{} hotplug-off devices need {forced_slots} integrated slots (8 per slot); pcie.0 has {} free", forced.len(), model.root_free_slots)
            }
        } else {
            let pxbs = c.expanders + c.region_expanders.iter().sum::<u32>();
            format!(
                "the devices need {need} pcie.0 slots ({} for integrated devices, {} for root ports, {pxbs} for expander buses); pcie.0 has {} free",
                c.int_slots, c.root_port_slots, model.root_free_slots
            )
        };
        let mut hints = Vec::new();
        let off_pcie = units
            .iter()
            .any(|u| !u.pinned && u.hp == Hotplug::Off && u.kind == BusKind::Pcie);
        if off_pcie && !req.policy.hotplug_off.allows_port() {
            hints.push(
                "allow hotplug_off=auto so hotplug-off PCIe devices can use hotplug=off root ports"
                    .to_string(),
            );
        }
        if !req.policy.pack_integrated
            && units
                .iter()
                .any(|u| !u.pinned && !u.grouped && u.hp != Hotplug::On)
        {
            hints.push(
                "set pack_integrated=true to put up to 8 integrated devices in one slot"
                    .to_string(),
            );
        }
        let pci_off = dev_ids(req, units, |u| {
            !u.pinned && u.hp == Hotplug::Off && u.kind == BusKind::Pci
        });
        if !pci_off.is_empty() {
            let shown: Vec<&str> = pci_off.iter().take(5).map(|s| s.as_str()).collect();
            let more = if pci_off.len() > 5 {
                format!(", ... ({} in all)", pci_off.len())
            } else {
                String::new()
            };
            hints.push(format!("conventional PCI devices with hotplug off can only be integrated ({}{more}): set hotplug 'any' or 'on' for some", shown.join(", ")));
        }
        for (id, addr) in w.root_pins.iter().take(3) {
            hints.push(format!("unpin {id} from {addr}"));
        }
        causes.push(Cause {
            rule: Rule::Root,
            message,
            devices,
            need,
            have: model.root_free_slots,
            hints,
        });
    }
    if c.slack_bus > 0 {
        let need = model.bus_max + c.slack_bus;
        let devices = dev_ids(req, units, |u| !u.pinned && u.hp != Hotplug::Off);
        let mut hints = Vec::new();
        if req.policy.spare_ports > 0 {
            hints.push(format!(
                "lower spare_ports (now {})",
                req.policy.spare_ports
            ));
        }
        hints.push(
            "let more devices be hotplug 'off' or 'any' so they can be integrated without a port"
                .to_string(),
        );
        causes.push(Cause {
            rule: Rule::BusNr,
            message: format!("the plan needs {need} guest bus numbers (one per port, bridge, switch port and expander); there are {}", model.bus_max),
            devices,
            need,
            have: model.bus_max,
            hints,
        });
    }
    if c.slack_io > 0 {
        causes.push(io_cause(req, cat, units, model, c));
    }
    Explanation { causes }
}

/// R-IO: more I/O windows than the guest's firmware fits, naming the firmware.
fn io_cause(req: &Request, cat: &Catalog, units: &[Unit], model: &Model, c: &Counts) -> Cause {
    let need = model.io_max + c.slack_io;
    let devices = dev_ids(req, units, |u| !u.pinned && u.io && u.hp != Hotplug::Off);
    let kib = model.io_window_kib;
    let failure = cat
        .io_budget(req.firmware)
        .map(|b| b.failure.as_str())
        .unwrap_or("the firmware runs out of I/O space");
    let mut hints = vec![
        "use models without I/O BARs (virtio-*-pci instead of e1000e/e1000/rtl8139)".to_string(),
        "let some of these devices be hotplug 'any' or 'off' so they sit on pcie.0 without a window".to_string(),
    ];
    // Another firmware with a larger budget is a way out too (UEFI guests cannot switch
    // back lightly, so it comes last).
    for (fw, b) in &cat.io_space.firmware {
        if *fw != req.firmware && b.windows >= need {
            hints.push(format!(
                "firmware '{}' ({}) fits {} windows",
                fw.as_str(),
                b.name,
                b.windows
            ));
        }
    }
    Cause {
        rule: Rule::Io,
        message: format!(
            "{need} ports and bridges would need a {kib} KiB I/O window for devices with I/O BARs; the firmware has {} (QEMU starts, but {failure})",
            model.io_max
        ),
        devices,
        need,
        have: model.io_max,
        hints,
    }
}

/// R-BUSNR on an assigned plan, whose topology is `t`: the firmware numbers the buses below
/// `pcie.0` from 1 up, and each expander with a `bus_nr` from there up over its subtree. The
/// program budgets bus numbers in total and below the lowest pinned expander; a pinned
/// `bus_nr` can still leave its subtree (or `pcie.0`'s) too little room, which only the
/// assigned plan shows. `None` when every range fits.
pub(crate) fn bus_ranges(t: &Topology, cat: &Catalog) -> Option<Explanation> {
    let faults = bus_range_faults(t, cat);
    if faults.is_empty() {
        return None;
    }
    Some(Explanation {
        causes: vec![Cause {
            rule: Rule::BusNr,
            message: format!(
                "the guest bus numbers do not fit the pinned expander ranges: {}",
                faults
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            devices: faults.iter().map(|v| v.device.clone()).collect(),
            need: 0,
            have: cat.bus_numbers.max,
            hints: vec![
                "lower the bus_nr of the pinned pxb-pcie to leave room above it, or unpin it"
                    .to_string(),
                "fewer hot-pluggable devices need fewer ports".to_string(),
            ],
        }],
    })
}

/// The ranges that do not fit: `pcie.0`'s buses past the last number, an expander without
/// a range, an expander's range starting below buses already numbered, or running past the
/// last number.
fn bus_range_faults(t: &Topology, cat: &Catalog) -> Vec<Violation> {
    let max = cat.bus_numbers.max;
    // Without an expander no range can fault, and `pcie.0` numbers at most every node that
    // takes a bus number: when those fit, there is nothing to walk.
    let (mut expander, mut numbered) = (false, 0u32);
    for n in t.ctrl_nodes() {
        expander |= t.is_expander(n);
        numbered += u32::from(t.uses_bus_number(n));
    }
    if !expander && numbered <= max {
        return Vec::new();
    }
    let mut out = Vec::new();
    let fault = |device: String, address: String, message: String| Violation {
        device,
        address,
        rule: Rule::BusNr,
        message,
    };
    let mut below_root = 0u32;
    // (first, last, expander) of every expander with a bus_nr.
    let mut ranges = Vec::new();
    for n in t.descendants(t.root) {
        if !t.uses_bus_number(n) {
            continue;
        }
        if t.bus_type(n) != Some("pxb") {
            below_root += u32::from(t.expander_of(n).is_none());
            continue;
        }
        let Node::Ctrl(c) = t.g[n] else { continue };
        let Some(nr) = c.bus_nr.map(u32::from) else {
            // An added expander gets a range only where one fits.
            out.push(fault(
                c.id.to_string(),
                c.address().to_string(),
                "expander has no bus_nr".into(),
            ));
            continue;
        };
        let below = t
            .descendants(n)
            .into_iter()
            .filter(|&d| t.uses_bus_number(d))
            .count() as u32;
        ranges.push((nr, nr + below, c.id.clone(), c.address()));
    }
    ranges.sort();
    if below_root > max {
        out.push(fault(
            cat.root.bus.clone(),
            "-".into(),
            format!("{below_root} bus numbers needed below pcie.0; there are {max}"),
        ));
    }
    let mut next_free = below_root + 1;
    for (lo, hi, id, address) in ranges {
        if lo < next_free {
            let message = format!(
                "bus_nr {lo} overlaps buses already numbered up to {}",
                next_free - 1
            );
            out.push(fault(id.to_string(), address.to_string(), message));
        }
        if hi > max {
            let message = format!("its buses {lo}..{hi} go past {max}");
            out.push(fault(id.to_string(), address.to_string(), message));
        }
        next_free = next_free.max(hi + 1);
    }
    // In the order violations sort (device, address, rule, message), as messages list them.
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::pinned_plan;

    /// The planner's R-BUSNR faults are the validator's, to the letter (the explanation
    /// quotes them).
    #[test]
    fn bus_range_faults_match_the_validator() {
        let req = Request::from_json(
            r#"{"devices":[],"controllers":[
              {"id":"rp1","model":"pcie-root-port","chassis":1,"address":{"bus":"pcie.0","slot":1}},
              {"id":"rp2","model":"pcie-root-port","chassis":2,"address":{"bus":"pcie.0","slot":2}},
              {"id":"rp3","model":"pcie-root-port","chassis":3,"address":{"bus":"pcie.0","slot":3}},
              {"id":"px","model":"pxb-pcie","bus_nr":2,"address":{"bus":"pcie.0","slot":5}},
              {"id":"hi","model":"pxb-pcie","bus_nr":255,"address":{"bus":"pcie.0","slot":6}},
              {"id":"rp4","model":"pcie-root-port","chassis":4,"address":{"bus":"hi","slot":0}}]}"#,
        )
        .expect("parses");
        let cat = Catalog::q35();
        let pinned = pinned_plan(&req, cat);
        let t = Topology::build(&pinned, cat);
        let mine = bus_range_faults(&t, cat);
        let theirs: Vec<Violation> = crate::validate::validate(&pinned, &req, cat)
            .into_iter()
            .filter(|v| v.rule == Rule::BusNr)
            .collect();
        assert_eq!(mine.len(), 2, "{mine:?}");
        assert_eq!(mine, theirs);
        assert!(mine[0].message.contains("its buses 255..256 go past"));
        assert!(mine[1]
            .message
            .contains("bus_nr 2 overlaps buses already numbered up to 3"));
        let why = bus_ranges(&t, cat).expect("short");
        assert_eq!(why.causes[0].devices, ["hi", "px"]);
    }

    #[test]
    fn fitting_ranges_explain_nothing() {
        let req = Request::from_json(
            r#"{"devices":[],"controllers":[
              {"id":"px","model":"pxb-pcie","bus_nr":100,"address":{"bus":"pcie.0","slot":5}}]}"#,
        )
        .expect("parses");
        let cat = Catalog::q35();
        let pinned = pinned_plan(&req, cat);
        assert!(bus_ranges(&Topology::build(&pinned, cat), cat).is_none());
    }
}
