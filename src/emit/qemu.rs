use std::fmt::Write;

use crate::catalog::Catalog;
use crate::plan::Plan;

/// The part every line has: driver, id, bus, `addr` (`0xS` or `0xS.0xF`) and
/// `multifunction=on` on function 0 of a shared slot.
#[allow(clippy::too_many_arguments)]
fn head(
    out: &mut String,
    driver: &str,
    id: &str,
    bus: &str,
    slot: u8,
    function: u8,
    multifunction: bool,
) {
    let _ = write!(out, "-device {driver},id={id},bus={bus},addr={slot:#x}");
    if function != 0 {
        let _ = write!(out, ".{function:#x}");
    }
    if multifunction {
        out.push_str(",multifunction=on");
    }
}

/// QEMU `-device` lines (docs/formats.md `--format qemu`): controllers first, each bus defined
/// before it is used, then the devices in request order. Placement properties only.
///
/// On a machine whose root bus hotplug is one switch (`pc`, PC-ROOT-HP), a plan with root
/// hotplug off starts with the `-global` line that turns it off.
pub fn qemu(plan: &Plan, cat: &Catalog) -> String {
    let mut out = String::new();
    if let (Some(false), Some(switch)) = (plan.root_hotplug, &cat.root.hotplug_switch) {
        let _ = writeln!(out, "-global {switch}=off");
    }
    let pci_root = cat.layout == crate::catalog::Layout::PciRoot;
    for c in &plan.controllers {
        let props: &[String] = cat
            .controller(&c.model)
            .map(|m| m.props.as_slice())
            .unwrap_or(&[]);
        let has = |p: &str| props.iter().any(|x| x == p);
        head(
            &mut out,
            &c.driver,
            &c.id,
            &c.bus,
            c.slot,
            c.function,
            c.multifunction,
        );
        if let (true, Some(ch)) = (has("chassis"), c.chassis) {
            let _ = write!(out, ",chassis={ch}");
        }
        // PC-BRIDGE (q35 prints pinned pci-bridges as it always did).
        if let (true, true, Some(ch)) = (pci_root, has("chassis_nr"), c.chassis) {
            let _ = write!(out, ",chassis_nr={ch}");
        }
        if let (true, Some(p)) = (has("port"), c.port) {
            let _ = write!(out, ",port={p:#x}");
        }
        if has("hotplug") && c.hotplug == Some(false) {
            out.push_str(",hotplug=off");
        }
        if let Some(nr) = c.bus_nr {
            let _ = write!(out, ",bus_nr={nr}");
        }
        if let Some(n) = c.numa_node {
            let _ = write!(out, ",numa_node={n}");
        }
        if let (true, Some(io)) = (has("io-reserve"), c.io_reserve) {
            let _ = write!(out, ",io-reserve={io}");
        }
        out.push('\n');
    }
    for d in &plan.devices {
        head(
            &mut out,
            &d.model,
            &d.id,
            &d.bus,
            d.slot,
            d.function,
            d.multifunction,
        );
        out.push('\n');
    }
    out
}
