//! Plan → domain XML, by splicing text into the original document.

use std::collections::{BTreeSet, HashMap};

use roxmltree::{Document, Node, ParsingOptions};

use super::read::POLICY_NS;
use super::{Domain, Implicit, Source};
use crate::catalog::Catalog;
use crate::error::InputError;
use crate::plan::{PlacedController, Plan};

/// One text edit: replace `start..end` of the original with `text`.
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

fn indent_at(text: &str, pos: usize) -> String {
    let line_start = text[..pos].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let before = &text[line_start..pos];
    if before.chars().all(|c| c == ' ' || c == '\t') {
        before.to_string()
    } else {
        String::new()
    }
}

/// The indentation one level deeper than `indent` (two spaces, as libvirt writes).
fn deeper(indent: &str) -> String {
    format!("{indent}  ")
}

fn address_xml(bus: u32, slot: u8, function: u8, mf: Option<&str>) -> String {
    let mut s = format!("<address type='pci' domain='0x0000' bus='0x{bus:02x}' slot='0x{slot:02x}' function='0x{function:x}'");
    if let Some(m) = mf {
        s.push_str(&format!(" multifunction='{m}'"));
    }
    s.push_str("/>");
    s
}

/// Edits that give element `n` the new child elements `children` (each a line of XML) and,
/// when `address` is set, replace its existing `<address>` child.
fn child_edits(
    text: &str,
    n: Node,
    address: Option<String>,
    mut children: Vec<String>,
    out: &mut Vec<Edit>,
) {
    let r = n.range();
    let existing = n.children().find(|c| c.has_tag_name("address"));
    match (address, existing) {
        (Some(a), Some(e)) => out.push(Edit {
            start: e.range().start,
            end: e.range().end,
            text: a,
        }),
        (Some(a), None) => children.push(a),
        (None, _) => {}
    }
    if children.is_empty() {
        return;
    }
    let ei = indent_at(text, r.start);
    let ci = deeper(&ei);
    let elem = &text[r.clone()];
    let has_kids = n.children().next().is_some();
    if !has_kids && elem.ends_with("/>") {
        let tag = n.tag_name().name();
        let prefix = match n.tag_name().namespace().and_then(|ns| n.lookup_prefix(ns)) {
            Some(p) if !p.is_empty() => format!("{p}:"),
            _ => String::new(),
        };
        let mut s = String::from(">");
        for c in &children {
            s.push_str(&format!("\n{ci}{c}"));
        }
        s.push_str(&format!("\n{ei}</{prefix}{tag}>"));
        out.push(Edit {
            start: r.end - 2,
            end: r.end,
            text: s,
        });
        return;
    }
    let close = text[..r.end].rfind("</").unwrap_or(r.end);
    let last_child_end = n
        .children()
        .filter(|c| !c.is_text())
        .last()
        .map(|c| c.range().end)
        .unwrap_or(r.start);
    let between = &text[last_child_end.min(close)..close];
    if between.contains('\n') {
        // `...\n{ei}</tag>`: put each child on its own line before the closing tag.
        let line_start = text[..close].rfind('\n').map(|i| i + 1).unwrap_or(close);
        let mut s = String::new();
        for c in &children {
            s.push_str(&format!("{ci}{c}\n"));
        }
        out.push(Edit {
            start: line_start,
            end: line_start,
            text: s,
        });
    } else {
        out.push(Edit {
            start: close,
            end: close,
            text: children.concat(),
        });
    }
}

/// `<target .../>` attributes for a controller (ports: chassis/port/hotplug; expanders: busNr).
fn target_attrs(c: &PlacedController, chassis: Option<u8>) -> Vec<(String, String)> {
    let mut v = Vec::new();
    if let Some(ch) = chassis {
        v.push(("chassis".to_string(), ch.to_string()));
    }
    if let Some(p) = c.port {
        v.push(("port".to_string(), format!("0x{p:x}")));
    }
    if c.hotplug == Some(false) {
        v.push(("hotplug".to_string(), "off".to_string()));
    }
    if let Some(nr) = c.bus_nr {
        v.push(("busNr".to_string(), nr.to_string()));
    }
    v
}

fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

pub(crate) fn write(dom: &Domain, plan: &Plan, cat: &Catalog) -> Result<String, InputError> {
    let text = dom.text.as_str();
    let doc = Document::parse_with_options(
        text,
        ParsingOptions {
            allow_dtd: false,
            nodes_limit: u32::MAX,
        },
    )
    .map_err(|e| InputError::new("domain", format!("not a well-formed XML document: {e}")))?;
    let root = doc.root_element();
    let by_start: HashMap<usize, Node> = root
        .descendants()
        .filter(|n| n.is_element())
        .map(|n| (n.range().start, n))
        .collect();

    // Controller indexes: existing ones keep theirs; added ones get the lowest unused, in plan
    // order (every bus before its users).
    let mut index: HashMap<String, u32> = HashMap::new();
    index.insert(cat.root.bus.clone(), 0);
    let mut used: BTreeSet<u32> = dom.controllers.iter().map(|c| c.index).collect();
    used.insert(0);
    for c in &dom.controllers {
        index.insert(c.id.clone(), c.index);
    }
    let mut next = 1u32;
    for c in plan.controllers.iter().filter(|c| c.added) {
        while used.contains(&next) {
            next += 1;
        }
        if next > 255 {
            return Err(InputError::new(
                &c.id,
                "the plan needs a PCI controller index above 255 (libvirt's maximum)",
            ));
        }
        used.insert(next);
        index.insert(c.id.clone(), next);
    }
    let idx = |bus: &str| -> Result<u32, InputError> {
        index.get(bus).copied().ok_or_else(|| {
            InputError::new(
                bus,
                format!("the plan uses bus '{bus}', which is not a controller of this domain"),
            )
        })
    };

    // Chassis: libvirt's default (the index) for added ports when free, else the lowest free.
    let mut chassis_used: BTreeSet<u8> = plan
        .controllers
        .iter()
        .filter(|c| !c.added)
        .filter_map(|c| c.chassis)
        .collect();
    let mut chassis: HashMap<String, u8> = HashMap::new();
    for c in plan
        .controllers
        .iter()
        .filter(|c| c.added && c.chassis.is_some())
    {
        let i = idx(&c.id)?;
        let ch = match u8::try_from(i) {
            Ok(x) if x > 0 && !chassis_used.contains(&x) => x,
            _ => (1..=255u8)
                .find(|x| !chassis_used.contains(x))
                .ok_or_else(|| InputError::new(&c.id, "no free chassis number"))?,
        };
        chassis_used.insert(ch);
        chassis.insert(c.id.clone(), ch);
    }

    let mut edits: Vec<Edit> = Vec::new();
    let mut new_elems: Vec<String> = Vec::new();
    let src: HashMap<&str, &super::DevSrc> =
        dom.devices.iter().map(|d| (d.id.as_str(), d)).collect();

    for d in &plan.devices {
        let Some(s) = src.get(d.id.as_str()) else {
            return Err(InputError::new(
                &d.id,
                "the plan has a device this domain does not have",
            ));
        };
        let mf = s
            .mf_attr
            .clone()
            .or_else(|| d.multifunction.then(|| "on".to_string()));
        let addr = address_xml(idx(&d.bus)?, d.slot, d.function, mf.as_deref());
        match &s.src {
            Source::Element(start) => {
                let n = by_start
                    .get(start)
                    .ok_or_else(|| InputError::new(&d.id, "element not found again"))?;
                child_edits(text, *n, Some(addr), Vec::new(), &mut edits);
            }
            Source::Implicit(imp) => {
                let e = match imp {
                    Implicit::Usb(m) => {
                        let master = match m.as_str() {
                            "ich9-uhci1" => "\n  <master startport='0'/>",
                            "ich9-uhci2" => "\n  <master startport='2'/>",
                            "ich9-uhci3" => "\n  <master startport='4'/>",
                            _ => "",
                        };
                        format!("<controller type='usb' index='0' model='{m}'>{master}\n  {addr}\n</controller>")
                    }
                    Implicit::Balloon => format!("<memballoon model='virtio'>\n  {addr}\n</memballoon>"),
                    Implicit::VirtioSerial(i) => format!("<controller type='virtio-serial' index='{i}'>\n  {addr}\n</controller>"),
                    Implicit::Scsi(i) => format!("<controller type='scsi' index='{i}' model='lsilogic'>\n  {addr}\n</controller>"),
                    Implicit::Sata(i) => format!("<controller type='sata' index='{i}'>\n  {addr}\n</controller>"),
                    Implicit::Video => format!("<video>\n  <model type='cirrus'/>\n  {addr}\n</video>"),
                };
                new_elems.push(e);
            }
        }
    }

    // The primary SATA controller, built into q35 at 00:1f.2.
    let sata_addr = address_xml(0, 0x1f, 2, None);
    match dom.sata0 {
        Some(start) => {
            if let Some(n) = by_start.get(&start) {
                child_edits(text, *n, Some(sata_addr), Vec::new(), &mut edits);
            }
        }
        None => new_elems.push(format!(
            "<controller type='sata' index='0'>\n  {sata_addr}\n</controller>"
        )),
    }
    if !dom.has_root {
        new_elems.push("<controller type='pci' index='0' model='pcie-root'/>".to_string());
    }

    // Existing PCI controllers: their address, and the target values libvirt would otherwise
    // fill in at define time (written out, so that nothing depends on libvirt's defaults).
    let csrc: HashMap<&str, &super::CtrlSrc> =
        dom.controllers.iter().map(|c| (c.id.as_str(), c)).collect();
    for c in plan.controllers.iter().filter(|c| !c.added) {
        let Some(s) = csrc.get(c.id.as_str()) else {
            continue;
        };
        let Some(n) = by_start.get(&s.start) else {
            continue;
        };
        let mf = s
            .mf_attr
            .clone()
            .or_else(|| c.multifunction.then(|| "on".to_string()));
        let addr = address_xml(idx(&c.bus)?, c.slot, c.function, mf.as_deref());
        let target = n.children().find(|x| x.has_tag_name("target"));
        let want: Vec<(String, String)> = target_attrs(c, c.chassis)
            .into_iter()
            .filter(|(k, _)| k != "hotplug")
            .collect();
        let missing: Vec<(String, String)> = want
            .into_iter()
            .filter(|(k, _)| target.and_then(|t| t.attribute(k.as_str())).is_none())
            .collect();
        let mut kids = Vec::new();
        if !missing.is_empty() {
            let attrs: String = missing.iter().map(|(k, v)| format!(" {k}='{v}'")).collect();
            match target {
                Some(t) => {
                    let at = t.range().start + "<target".len();
                    edits.push(Edit {
                        start: at,
                        end: at,
                        text: attrs,
                    });
                }
                None => kids.push(format!("<target{attrs}/>")),
            }
        }
        child_edits(text, *n, Some(addr), kids, &mut edits);
    }

    // Added controllers, in libvirt's own form.
    for c in plan.controllers.iter().filter(|c| c.added) {
        let m = cat.controller(&c.model).ok_or_else(|| {
            InputError::new(&c.id, format!("unknown controller model '{}'", c.model))
        })?;
        let i = idx(&c.id)?;
        let mut e = format!(
            "<controller type='pci' index='{i}' model='{}'>\n  <model name='{}'/>\n",
            m.libvirt.model, m.libvirt.model_name
        );
        let attrs: String = target_attrs(c, chassis.get(&c.id).copied())
            .iter()
            .map(|(k, v)| format!(" {k}='{v}'"))
            .collect();
        match c.numa_node {
            Some(node) => e.push_str(&format!(
                "  <target{attrs}>\n    <node>{node}</node>\n  </target>\n"
            )),
            None if !attrs.is_empty() => e.push_str(&format!("  <target{attrs}/>\n")),
            None => {}
        }
        if c.numa_node.is_some() && (c.numa_node.unwrap_or(0) as usize) >= dom.numa_cells {
            return Err(InputError::new(
                &c.id,
                format!("the plan puts a pcie-expander-bus on NUMA node {}, but the domain's <cpu><numa> has {} cell(s)", c.numa_node.unwrap_or(0), dom.numa_cells),
            ));
        }
        let mf = c.multifunction.then_some("on");
        e.push_str(&format!(
            "  {}\n</controller>",
            address_xml(idx(&c.bus)?, c.slot, c.function, mf)
        ));
        new_elems.push(e);
    }

    // New elements go at the end of <devices>.
    if !new_elems.is_empty() {
        match root
            .children()
            .find(|n| n.is_element() && n.has_tag_name("devices"))
        {
            Some(devs) => {
                let di = indent_at(text, devs.range().start);
                let ci = devs
                    .children()
                    .find(|c| c.is_element())
                    .map(|c| indent_at(text, c.range().start))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| deeper(&di));
                let lines: Vec<String> = new_elems
                    .iter()
                    .map(|e| e.lines().collect::<Vec<_>>().join(&format!("\n{ci}")))
                    .collect();
                child_edits(text, devs, None, lines, &mut edits);
            }
            None => {
                let ri = indent_at(text, root.range().start);
                let ci = deeper(&ri);
                let inner = deeper(&ci);
                let mut s = format!("{ci}<devices>\n");
                for e in &new_elems {
                    s.push_str(&format!(
                        "{inner}{}\n",
                        e.lines().collect::<Vec<_>>().join(&format!("\n{inner}"))
                    ));
                }
                s.push_str(&format!("{ci}</devices>\n"));
                let close = text[..root.range().end]
                    .rfind("</")
                    .unwrap_or(root.range().end);
                let line_start = text[..close].rfind('\n').map(|i| i + 1).unwrap_or(close);
                edits.push(Edit {
                    start: line_start,
                    end: line_start,
                    text: s,
                });
            }
        }
    }

    // The effective policy, when the command line changed it.
    if dom.overridden {
        policy_edit(dom, text, root, &mut edits);
    }

    edits.sort_by(|a, b| b.start.cmp(&a.start).then(b.end.cmp(&a.end)));
    let mut out = text.to_string();
    let mut last = usize::MAX;
    for e in edits {
        if e.end > last {
            return Err(InputError::new(
                "domain",
                "internal error: overlapping XML edits",
            ));
        }
        out.replace_range(e.start..e.end, &e.text);
        last = e.start;
    }
    Ok(out)
}

fn policy_edit(dom: &Domain, text: &str, root: Node, edits: &mut Vec<Edit>) {
    let (dh, sp, ho, pk) = dom.explicit;
    let mut s = format!("<pciplan:policy xmlns:pciplan=\"{POLICY_NS}\"");
    if let Some(h) = dh {
        s.push_str(&format!(" default-hotplug=\"{}\"", h.as_str()));
    }
    if let Some(n) = sp {
        s.push_str(&format!(" spare-ports=\"{n}\""));
    }
    if let Some(o) = ho {
        s.push_str(&format!(" hotplug-off=\"{}\"", o.as_str()));
    }
    if let Some(b) = pk {
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
