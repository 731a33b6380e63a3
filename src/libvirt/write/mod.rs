//! Plan → domain XML, by splicing text into the original document.
//!
//! [`numbering`] decides the libvirt numbers (controller indexes, chassis); this file decides
//! what each element of the output says (an address on every device, the target values of
//! existing controllers, the added elements); [`text`] turns that into edits of the original
//! text; [`policy`] records a command-line policy in the metadata.

mod numbering;
mod policy;
mod text;

use std::collections::HashMap;

use roxmltree::{Document, Node, ParsingOptions};

use super::implicit::{self, PCIE_ROOT_ELEMENT, PRIMARY_SATA};
use super::{CtrlSrc, DevSrc, Domain, Source};
use crate::catalog::Catalog;
use crate::error::InputError;
use crate::plan::{PlacedController, Plan};
use numbering::Numbering;
use text::{child_edits, Edit};

fn address_xml(bus: u32, slot: u8, function: u8, mf: Option<&str>) -> String {
    let mut s = format!("<address type='pci' domain='0x0000' bus='0x{bus:02x}' slot='0x{slot:02x}' function='0x{function:x}'");
    if let Some(m) = mf {
        s.push_str(&format!(" multifunction='{m}'"));
    }
    s.push_str("/>");
    s
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

/// The input document and what is being written into it.
struct Writer<'a, 'd> {
    dom: &'d Domain<'d>,
    text: &'a str,
    /// Elements by their start offset.
    by_start: HashMap<usize, Node<'a, 'a>>,
    numbers: Numbering,
    edits: Vec<Edit>,
    /// Whole elements to append to `<devices>`.
    new_elems: Vec<String>,
}

impl<'a> Writer<'a, '_> {
    fn element(&self, start: usize, id: &str) -> Result<Node<'a, 'a>, InputError> {
        self.by_start
            .get(&start)
            .copied()
            .ok_or_else(|| InputError::new(id, "element not found again"))
    }

    /// The address element of a placed device or controller: its multifunction attribute as
    /// written, else `on` where the plan needs it.
    fn address(
        &self,
        bus: &str,
        slot: u8,
        function: u8,
        mf_attr: &Option<String>,
        multifunction: bool,
    ) -> Result<String, InputError> {
        let mf = mf_attr
            .clone()
            .or_else(|| multifunction.then(|| "on".to_string()));
        Ok(address_xml(
            self.numbers.index(bus)?,
            slot,
            function,
            mf.as_deref(),
        ))
    }

    /// Every planned device: an address on its element, or the element libvirt would add.
    fn devices(&mut self, plan: &Plan) -> Result<(), InputError> {
        let dom = self.dom;
        let src: HashMap<&str, &DevSrc> = dom.devices.iter().map(|d| (d.id.as_str(), d)).collect();
        for d in &plan.devices {
            let Some(s) = src.get(d.id.as_str()) else {
                return Err(InputError::new(
                    &d.id,
                    "the plan has a device this domain does not have",
                ));
            };
            let addr = self.address(&d.bus, d.slot, d.function, &s.mf_attr, d.multifunction)?;
            match &s.src {
                Source::Element(start) => {
                    let n = self.element(*start, &d.id)?;
                    child_edits(self.text, n, Some(addr), Vec::new(), &mut self.edits);
                }
                Source::Implicit(imp) => self.new_elems.push(imp.element(&addr)),
            }
        }
        Ok(())
    }

    /// What q35 has built in: the primary SATA controller at 00:1f.2 and the pcie-root,
    /// written out when the input lacks them.
    fn chipset(&mut self) {
        let (slot, function) = PRIMARY_SATA;
        let sata_addr = address_xml(0, slot, function, None);
        match self.dom.sata0 {
            Some(start) => {
                if let Some(n) = self.by_start.get(&start) {
                    child_edits(self.text, *n, Some(sata_addr), Vec::new(), &mut self.edits);
                }
            }
            None => self
                .new_elems
                .push(implicit::primary_sata_element(&sata_addr)),
        }
        if !self.dom.has_root {
            self.new_elems.push(PCIE_ROOT_ELEMENT.to_string());
        }
    }

    /// Existing PCI controllers: their address, and the target values libvirt would otherwise
    /// fill in at define time (written out, so that nothing depends on libvirt's defaults).
    fn existing_controllers(&mut self, plan: &Plan) -> Result<(), InputError> {
        let dom = self.dom;
        let csrc: HashMap<&str, &CtrlSrc> =
            dom.controllers.iter().map(|c| (c.id.as_str(), c)).collect();
        for c in plan.controllers.iter().filter(|c| !c.added) {
            let Some(s) = csrc.get(c.id.as_str()) else {
                continue;
            };
            let Some(n) = self.by_start.get(&s.start).copied() else {
                continue;
            };
            let addr = self.address(&c.bus, c.slot, c.function, &s.mf_attr, c.multifunction)?;
            let target = n.children().find(|x| x.has_tag_name("target"));
            let missing: Vec<(String, String)> = target_attrs(c, c.chassis)
                .into_iter()
                .filter(|(k, _)| k != "hotplug")
                .filter(|(k, _)| target.and_then(|t| t.attribute(k.as_str())).is_none())
                .collect();
            let mut kids = Vec::new();
            // An adoption may change an existing port's hotplug (G-FLIP): written as it is.
            let want = c.hotplug.map(|h| if h { "on" } else { "off" });
            let has = target.and_then(|t| t.attribute("hotplug"));
            let mut missing = missing;
            match (want, has, target) {
                (Some(w), Some(h), Some(t)) if h != w => {
                    if let Some(a) = t.attribute_node("hotplug") {
                        let r = a.range_value();
                        self.edits.push(Edit {
                            start: r.start,
                            end: r.end,
                            text: w.to_string(),
                        });
                    }
                }
                (Some("off"), None, _) => missing.push(("hotplug".into(), "off".into())),
                _ => {}
            }
            if !missing.is_empty() {
                let attrs: String = missing.iter().map(|(k, v)| format!(" {k}='{v}'")).collect();
                match target {
                    Some(t) => {
                        let at = t.range().start + "<target".len();
                        self.edits.push(Edit::insert(at, attrs));
                    }
                    None => kids.push(format!("<target{attrs}/>")),
                }
            }
            child_edits(self.text, n, Some(addr), kids, &mut self.edits);
        }
        Ok(())
    }

    /// An added controller in libvirt's own form.
    fn added_controller(&self, c: &PlacedController, cat: &Catalog) -> Result<String, InputError> {
        let m = cat.controller(&c.model).ok_or_else(|| {
            InputError::new(&c.id, format!("unknown controller model '{}'", c.model))
        })?;
        let i = self.numbers.index(&c.id)?;
        let mut e = format!(
            "<controller type='pci' index='{i}' model='{}'>\n  <model name='{}'/>\n",
            m.libvirt.model, m.libvirt.model_name
        );
        let attrs: String = target_attrs(c, self.numbers.chassis(&c.id))
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
        if let Some(node) = c.numa_node.filter(|n| *n as usize >= self.dom.numa_cells) {
            return Err(InputError::new(
                &c.id,
                format!("the plan puts a pcie-expander-bus on NUMA node {node}, but the domain's <cpu><numa> has {} cell(s)", self.dom.numa_cells),
            ));
        }
        let mf = c.multifunction.then_some("on");
        e.push_str(&format!(
            "  {}\n</controller>",
            address_xml(self.numbers.index(&c.bus)?, c.slot, c.function, mf)
        ));
        Ok(e)
    }
}

/// The domain's text with the plan written into it (see [`Domain::write`]).
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
    let mut w = Writer {
        dom,
        text,
        by_start: root
            .descendants()
            .filter(|n| n.is_element())
            .map(|n| (n.range().start, n))
            .collect(),
        numbers: Numbering::new(dom, plan, cat)?,
        edits: Vec::new(),
        new_elems: Vec::new(),
    };
    w.devices(plan)?;
    w.chipset();
    w.existing_controllers(plan)?;
    for c in plan.controllers.iter().filter(|c| c.added) {
        let e = w.added_controller(c, cat)?;
        w.new_elems.push(e);
    }
    let mut edits = w.edits;
    text::append_devices(text, root, &w.new_elems, &mut edits);
    if dom.overridden {
        policy::policy_edit(dom, text, root, &mut edits);
    }
    text::apply(text, edits)
}
