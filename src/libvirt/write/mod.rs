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
/// The `<target>` attributes of a planned controller; `chassis_key` is libvirt's name of its
/// chassis number (`chassisNr` for a `pc` pci-bridge, PC-BRIDGE; `chassis` for ports).
fn target_attrs(
    c: &PlacedController,
    chassis: Option<u8>,
    chassis_key: &str,
) -> Vec<(String, String)> {
    let mut v = Vec::new();
    if let Some(ch) = chassis {
        v.push((chassis_key.to_string(), ch.to_string()));
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
                    d.id.as_str(),
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
    /// libvirt's name of a controller's chassis number: `chassisNr` on a `pc` pci-bridge.
    fn chassis_key(&self, c: &PlacedController) -> &'static str {
        let cat = self.dom.cat;
        let bridge = cat
            .controller(&c.model)
            .is_some_and(|m| m.props.iter().any(|p| p == "chassis_nr"));
        if bridge && cat.root.hotplug_switch.is_some() {
            "chassisNr"
        } else {
            "chassis"
        }
    }

    /// `pc`: the `pci-root` (PC-ROOT-HP): written out, or the existing one's `<target
    /// hotplug>` set to what the plan says (`off` written, `on` as libvirt's default: absent,
    /// or an existing `hotplug` attribute set to `on`).
    fn pci_root(&mut self, plan: &Plan) {
        let off = plan.root_hotplug == Some(false);
        let Some(n) = self
            .dom
            .root_start
            .and_then(|s| self.by_start.get(&s).copied())
        else {
            self.new_elems.push(implicit::pci_root_element(off));
            return;
        };
        let target = n.children().find(|x| x.has_tag_name("target"));
        let want = if off { "off" } else { "on" };
        match target {
            Some(t) => match t.attribute_node("hotplug") {
                Some(a) if a.value() != want => {
                    let r = a.range_value();
                    self.edits.push(Edit {
                        start: r.start,
                        end: r.end,
                        text: want.to_string(),
                    });
                }
                Some(_) => {}
                None if off => {
                    let at = t.range().start + "<target".len();
                    self.edits
                        .push(Edit::insert(at, " hotplug='off'".to_string()));
                }
                None => {}
            },
            None if off => child_edits(
                self.text,
                n,
                None,
                vec!["<target hotplug='off'/>".to_string()],
                &mut self.edits,
            ),
            None => {}
        }
    }

    fn chipset(&mut self, plan: &Plan) {
        if self.dom.cat.root.hotplug_switch.is_some() {
            self.pci_root(plan);
            return;
        }
        // aarch64 virt has no chipset SATA: only the pcie-root (VIRT-ROOT).
        if super::read::is_virt_catalog(self.dom.cat) {
            if !self.dom.has_root {
                self.new_elems.push(PCIE_ROOT_ELEMENT.to_string());
            }
            return;
        }
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
            let missing: Vec<(String, String)> = target_attrs(c, c.chassis, self.chassis_key(c))
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
            InputError::new(
                c.id.as_str(),
                format!("unknown controller model '{}'", c.model),
            )
        })?;
        let i = self.numbers.index(&c.id)?;
        let mut e = format!(
            "<controller type='pci' index='{i}' model='{}'>\n  <model name='{}'/>\n",
            m.libvirt.model, m.libvirt.model_name
        );
        let attrs: String = target_attrs(c, self.numbers.chassis(&c.id), self.chassis_key(c))
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
                c.id.as_str(),
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
    w.chipset(plan);
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

#[cfg(test)]
mod pc_tests {
    //! Writing `pc` plans: the `pci-root` with root hotplug (PC-ROOT-HP), pci-bridges in
    //! libvirt's spelling (PC-BRIDGE), libvirt bus indexes.
    use crate::libvirt::Domain;

    fn pc(devices: &str, meta: &str) -> String {
        format!("<domain type='kvm'><name>t</name><os><type arch='x86_64' machine='pc'>hvm</type></os>{meta}<devices>{devices}</devices></domain>")
    }

    const OFF_NET0: &str = "<metadata><pciplan:policy xmlns:pciplan='urn:pciplan:policy:1'><pciplan:device alias='ua-net0' hotplug='off'/></pciplan:policy></metadata>";

    fn write(xml: &str) -> String {
        let d = Domain::parse(xml).unwrap();
        let p = d.plan().unwrap();
        d.write(&p).unwrap()
    }

    #[test]
    fn mixed_guest_gets_pci_root_off_and_a_bridge() {
        let out = write(&pc(
            "<interface type='network'><model type='virtio'/><alias name='ua-net0'/></interface>\
             <interface type='network'><model type='e1000'/></interface>",
            OFF_NET0,
        ));
        assert!(out.contains("<controller type='pci' index='0' model='pci-root'>\n    <target hotplug='off'/>\n  </controller>"), "{out}");
        assert!(out.contains("<controller type='pci' index='1' model='pci-bridge'>\n    <model name='pci-bridge'/>\n    <target chassisNr='1'/>\n    <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>"), "{out}");
        assert!(!out.contains("chassis='"), "{out}");
        // net0 on pci.0, the e1000 behind the bridge (libvirt bus index 1).
        assert!(out.contains("<alias name='ua-net0'/><address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>"), "{out}");
        assert!(out.contains("<model type='e1000'/><address type='pci' domain='0x0000' bus='0x01' slot='0x01' function='0x0'/>"), "{out}");
        // Planning the output again changes nothing.
        assert_eq!(write(&out), out);
    }

    #[test]
    fn all_on_guest_keeps_root_hotplug_on_and_adds_nothing() {
        let out = write(&pc(
            "<interface type='network'><model type='virtio'/></interface>",
            "",
        ));
        assert!(
            out.contains("<controller type='pci' index='0' model='pci-root'/>"),
            "{out}"
        );
        assert!(
            !out.contains("hotplug") && !out.contains("pci-bridge"),
            "{out}"
        );
        assert_eq!(write(&out), out);
    }

    #[test]
    fn an_existing_pci_root_gets_or_keeps_hotplug_off() {
        let out = write(&pc(
            "<controller type='pci' index='0' model='pci-root'/><interface type='network'><model type='virtio'/><alias name='ua-net0'/></interface>",
            OFF_NET0,
        ));
        assert!(out.contains("<controller type='pci' index='0' model='pci-root'>\n  <target hotplug='off'/>\n</controller>"), "{out}");
        let out = write(&pc(
            "<controller type='pci' index='0' model='pci-root'><target/></controller><interface type='network'><model type='virtio'/><alias name='ua-net0'/></interface>",
            OFF_NET0,
        ));
        assert!(out.contains("<target hotplug='off'/>"), "{out}");
        // A pinned root hotplug off stays off without any off device.
        let kept = pc(
            "<controller type='pci' index='0' model='pci-root'><target hotplug='off'/></controller><interface type='network'><model type='virtio'/></interface>",
            "",
        );
        let d = Domain::parse(&kept).unwrap();
        let p = d.plan().unwrap();
        assert_eq!(p.root_hotplug, Some(false));
        let out = d.write(&p).unwrap();
        assert!(out.contains("<target hotplug='off'/>"), "{out}");
        // The on NIC then sits behind a bridge (PC-MIX), index 1.
        assert!(
            out.contains("model='pci-bridge'") && out.contains("bus='0x01'"),
            "{out}"
        );
    }

    #[test]
    fn existing_bridges_keep_their_index_and_chassis() {
        let out = write(&pc(
            "<controller type='pci' index='3' model='pci-bridge'><model name='pci-bridge'/><target chassisNr='3'/><address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></controller>\
             <controller type='pci' index='0' model='pci-root'><target hotplug='off'/></controller>\
             <interface type='network'><model type='e1000'/></interface>",
            "",
        ));
        assert!(out.contains("<model type='e1000'/><address type='pci' domain='0x0000' bus='0x03' slot='0x01' function='0x0'/>"), "{out}");
        assert_eq!(out.matches("model='pci-bridge'").count(), 1, "{out}");
    }
}
