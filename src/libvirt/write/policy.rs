//! The effective policy written into the domain's metadata when the command line changed it,
//! so that the output XML carries the policy it was planned with.

use std::collections::BTreeSet;

use roxmltree::Node;

use super::text::{child_edits, deeper, indent_at, Edit};
use crate::libvirt::{Domain, POLICY_NS};

fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The `<pciplan:policy>` element for the domain's explicit policy and named devices.
fn policy_element(dom: &Domain) -> String {
    let p = &dom.explicit;
    let mut s = format!("<pciplan:policy xmlns:pciplan=\"{POLICY_NS}\"");
    if let Some(h) = p.default_hotplug {
        s.push_str(&format!(" default-hotplug=\"{}\"", h.as_str()));
    }
    if let Some(n) = p.spare_ports {
        s.push_str(&format!(" spare-ports=\"{n}\""));
    }
    if let Some(o) = p.hotplug_off {
        s.push_str(&format!(" hotplug-off=\"{}\"", o.as_str()));
    }
    if let Some(b) = p.pack_integrated {
        s.push_str(&format!(" pack-integrated=\"{b}\""));
    }
    let mut aliases: BTreeSet<&str> = dom.named.keys().map(String::as_str).collect();
    aliases.extend(dom.meta_extra.keys().map(String::as_str));
    if aliases.is_empty() {
        s.push_str("/>");
    } else {
        s.push('>');
        for a in aliases {
            s.push_str(&format!("\n  <pciplan:device alias=\"{}\"", escape_attr(a)));
            if let Some(h) = dom.named.get(a) {
                s.push_str(&format!(" hotplug=\"{}\"", h.as_str()));
            }
            for (k, v) in dom.meta_extra.get(a).map(|v| v.as_slice()).unwrap_or(&[]) {
                s.push_str(&format!(" {k}=\"{}\"", escape_attr(v)));
            }
            s.push_str("/>");
        }
        s.push_str("\n</pciplan:policy>");
    }
    s
}

/// The edit that puts the policy element into `<metadata>` (replacing an earlier one), or adds
/// a `<metadata>` holding it after `<name>`.
pub(super) fn policy_edit(dom: &Domain, text: &str, root: Node, edits: &mut Vec<Edit>) {
    let s = policy_element(dom);
    let meta = root
        .children()
        .find(|n| n.is_element() && n.has_tag_name("metadata"));
    let existing = meta.and_then(|m| {
        m.children()
            .find(|c| c.is_element() && c.tag_name().namespace() == Some(POLICY_NS))
    });
    match (meta, existing) {
        (Some(_), Some(e)) => {
            let ind = indent_at(text, e.range().start);
            edits.push(Edit {
                start: e.range().start,
                end: e.range().end,
                text: s.replace('\n', &format!("\n{ind}")),
            });
        }
        (Some(m), None) => {
            let ind = deeper(&indent_at(text, m.range().start));
            child_edits(
                text,
                m,
                None,
                vec![s.replace('\n', &format!("\n{ind}"))],
                edits,
            );
        }
        (None, _) => {
            let anchor = root
                .children()
                .find(|n| n.is_element() && n.has_tag_name("name"));
            let ind = anchor
                .map(|a| indent_at(text, a.range().start))
                .unwrap_or_else(|| "  ".into());
            let inner = deeper(&ind);
            let block = format!(
                "\n{ind}<metadata>\n{inner}{}\n{ind}</metadata>",
                s.replace('\n', &format!("\n{inner}"))
            );
            let at = match anchor {
                Some(a) => a.range().end,
                None => root
                    .children()
                    .next()
                    .map(|c| c.range().start)
                    .unwrap_or(root.range().end),
            };
            edits.push(Edit {
                start: at,
                end: at,
                text: block,
            });
        }
    }
}
