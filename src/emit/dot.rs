use std::fmt::Write;

use crate::catalog::Catalog;
use crate::plan::Plan;
use crate::topology::{Node, Topology};

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Graphviz of the topology: boxes for buses and controllers (dashed when added), ellipses
/// for devices (green when hot-pluggable, red when fixed), edges labelled `slot.function`.
pub fn dot(plan: &Plan, cat: &Catalog) -> String {
    let t = Topology::build(plan, cat);
    let mut out =
        String::from("digraph pciplan {\n  rankdir=LR;\n  node [fontname=\"monospace\"];\n");
    let _ = writeln!(out, "  {} [shape=box, style=bold];", quote(&cat.root.bus));
    for n in t.descendants(t.root) {
        match t.g[n] {
            Node::Ctrl(c) => {
                let label = format!(
                    "{}\\n{}{}",
                    c.id,
                    c.model,
                    if c.hotplug == Some(false) {
                        "\\nhotplug=off"
                    } else {
                        ""
                    }
                );
                let _ = writeln!(
                    out,
                    "  {} [shape=box, label={}{}];",
                    quote(&c.id),
                    quote(&label),
                    if c.added { ", style=dashed" } else { "" }
                );
            }
            Node::Dev(d) => {
                let color = if d.hotpluggable { "darkgreen" } else { "red" };
                let _ = writeln!(
                    out,
                    "  {} [shape=ellipse, color={color}, label={}];",
                    quote(&d.id),
                    quote(&format!("{}\\n{}", d.id, d.model))
                );
            }
            Node::Root => {}
        }
        if let Some(p) = t.parent(n) {
            let (s, f) = match t.g[n] {
                Node::Ctrl(c) => (c.slot, c.function),
                Node::Dev(d) => (d.slot, d.function),
                Node::Root => (0, 0),
            };
            let pid = t.g[p].id(cat);
            let _ = writeln!(
                out,
                "  {} -> {} [label=\"{:02x}.{}\"];",
                quote(pid),
                quote(t.g[n].id(cat)),
                s,
                f
            );
        }
    }
    out.push_str("}\n");
    out
}
