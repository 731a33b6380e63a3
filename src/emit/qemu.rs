use std::fmt::Write;

use crate::catalog::Catalog;
use crate::plan::Plan;

fn addr(slot: u8, function: u8) -> String {
    if function == 0 {
        format!("{slot:#x}")
    } else {
        format!("{slot:#x}.{function:#x}")
    }
}

/// QEMU `-device` lines (formats.md `--format qemu`): controllers first, each bus defined
/// before it is used, then the devices in request order. Placement properties only.
pub fn qemu(plan: &Plan, cat: &Catalog) -> String {
    let mut out = String::new();
    for c in &plan.controllers {
        let props = cat
            .controller(&c.model)
            .map(|m| m.props.clone())
            .unwrap_or_default();
        let has = |p: &str| props.iter().any(|x| x == p);
        let _ = write!(
            out,
            "-device {},id={},bus={},addr={}",
            c.driver,
            c.id,
            c.bus,
            addr(c.slot, c.function)
        );
        if c.multifunction {
            out.push_str(",multifunction=on");
        }
        if let (true, Some(ch)) = (has("chassis"), c.chassis) {
            let _ = write!(out, ",chassis={ch}");
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
        let _ = write!(
            out,
            "-device {},id={},bus={},addr={}",
            d.model,
            d.id,
            d.bus,
            addr(d.slot, d.function)
        );
        if d.multifunction {
            out.push_str(",multifunction=on");
        }
        out.push('\n');
    }
    out
}
