use std::fmt::Write;

use crate::catalog::Catalog;
use crate::plan::Plan;
use crate::topology::{Node, Topology};

/// A readable tree like `lspci -t`: each line `slot.function id model`, with `[hotplug]` on
/// devices the guest can unplug, `[fixed]` on those it cannot, and `+` on added controllers.
pub fn tree(plan: &Plan, cat: &Catalog) -> String {
    let t = Topology::build(plan, cat);
    let mut out = String::new();
    // PC-ROOT-HP: on machines with the switch, the header says how it is set.
    let root_hotplug = match plan.root_hotplug {
        Some(true) => ", root hotplug on",
        Some(false) => ", root hotplug off",
        None => "",
    };
    let _ = writeln!(
        out,
        "{}  (cost {}, {}{root_hotplug})",
        cat.root.bus,
        plan.cost,
        if plan.optimal {
            "proven optimal"
        } else {
            "not proven optimal"
        }
    );
    walk(&t, t.root, "", &mut out);
    out
}

fn walk(t: &Topology, n: petgraph::stable_graph::NodeIndex, prefix: &str, out: &mut String) {
    let kids = t.children(n);
    for (i, (slot, f, c)) in kids.iter().enumerate() {
        let last = i + 1 == kids.len();
        let branch = if last { "└─" } else { "├─" };
        let line = match t.g[*c] {
            Node::Ctrl(x) => {
                let mut extra = Vec::new();
                if x.hotplug == Some(false) {
                    extra.push("hotplug=off".to_string());
                }
                if let Some(nr) = x.bus_nr {
                    extra.push(format!("bus_nr={nr}"));
                }
                if let Some(nn) = x.numa_node {
                    extra.push(format!("numa_node={nn}"));
                }
                let extra = if extra.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", extra.join(", "))
                };
                format!(
                    "{:02x}.{} {}{} {}{}",
                    slot,
                    f,
                    if x.added { "+" } else { "" },
                    x.id,
                    x.model,
                    extra
                )
            }
            Node::Dev(d) => format!(
                "{:02x}.{} {} {} [{}]",
                slot,
                f,
                d.id,
                d.model,
                if d.hotpluggable { "hotplug" } else { "fixed" }
            ),
            Node::Root => continue,
        };
        let _ = writeln!(out, "{prefix}{branch}{line}");
        let next = format!("{prefix}{}", if last { "  " } else { "│ " });
        walk(t, *c, &next, out);
    }
}
