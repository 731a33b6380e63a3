//! Plans written as JSON text directly, compact (batch result lines) or pretty (`--format
//! json`), byte for byte what `serde_json` writes from the same [`Plan`] through its
//! `Serialize` implementation (which stays the reference, and the tests compare the two).
//!
//! Why not `serde_json` here: a plan's text is mostly keys and short strings, and the
//! generic serializer escapes every key and grows its buffer as it goes; writing the known
//! keys as they are into a buffer sized from the plan costs about a third as much (a 32-device
//! adoption's plan is 17 kB, the largest single cost of an adoption after parsing).

use crate::changes::{Change, ChangeKind, Seen};
use crate::plan::{PlacedController, PlacedDevice, Plan};
use crate::request::Firmware;

/// A JSON text under construction: compact, or pretty with two-space indents as
/// `serde_json::to_string_pretty` writes it.
pub(crate) struct Writer<'o> {
    out: &'o mut String,
    pretty: bool,
    /// For each open object or array, innermost last: whether it has an entry yet (its
    /// length is the indent depth).
    has: Vec<bool>,
}

impl<'o> Writer<'o> {
    /// A writer appending to `out`.
    pub fn new(out: &'o mut String, pretty: bool) -> Self {
        Writer {
            out,
            pretty,
            has: Vec::with_capacity(8),
        }
    }

    fn open(&mut self, c: char) {
        self.out.push(c);
        self.has.push(false);
    }

    fn close(&mut self, c: char) {
        if self.has.pop() == Some(true) && self.pretty {
            self.newline();
        }
        self.out.push(c);
    }

    fn newline(&mut self) {
        /// A newline and the indent of the deepest level a plan reaches, and then some.
        const INDENT: &str = "\n                                ";
        let depth = self.has.len();
        match INDENT.get(..1 + 2 * depth) {
            Some(s) => self.out.push_str(s),
            None => {
                self.out.push('\n');
                for _ in 0..depth {
                    self.out.push_str("  ");
                }
            }
        }
    }

    /// Starts an entry of the innermost object or array: the separator and indent.
    fn entry(&mut self) {
        if let Some(h) = self.has.last_mut() {
            let first = !std::mem::replace(h, true);
            if !first {
                self.out.push(',');
            }
            if self.pretty {
                self.newline();
            }
        }
    }

    /// Starts an object.
    pub fn begin_object(&mut self) {
        self.open('{');
    }

    /// Ends an object.
    pub fn end_object(&mut self) {
        self.close('}');
    }

    /// Writes a key, which must need no escaping (the keys of the formats are plain).
    pub fn key(&mut self, k: &str) {
        self.entry();
        self.out.reserve(k.len() + 4);
        self.out.push('"');
        self.out.push_str(k);
        self.out.push_str(if self.pretty { "\": " } else { "\":" });
    }

    fn begin_array(&mut self) {
        self.open('[');
    }

    fn end_array(&mut self) {
        self.close(']');
    }

    /// Writes a string value.
    pub fn str(&mut self, s: &str) {
        escaped(self.out, s);
    }

    /// Writes an unsigned number.
    pub fn num(&mut self, n: u64) {
        let mut b = itoa::Buffer::new();
        self.out.push_str(b.format(n));
    }

    /// Writes `true` or `false`.
    pub fn bool(&mut self, v: bool) {
        self.out.push_str(if v { "true" } else { "false" });
    }

    /// Writes `null`.
    pub fn null(&mut self) {
        self.out.push_str("null");
    }

    fn field_str(&mut self, k: &str, s: &str) {
        self.key(k);
        self.str(s);
    }

    fn field_num(&mut self, k: &str, n: impl Into<u64>) {
        self.key(k);
        self.num(n.into());
    }

    fn field_bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.bool(v);
    }
}

/// Appends `s` as a JSON string, escaped as `serde_json` escapes: `"` and `\`, control
/// characters as `\b \t \n \f \r` or `\u00XX`; everything else as it is.
fn escaped(out: &mut String, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.push_str(&s[start..i]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x08 => out.push_str("\\b"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0c => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Whether any byte of `b` is escaped: a control character, `"` or `\`. Eight bytes at a
/// time (a byte below 0x20, or equal to 0x22 or 0x5C, leaves its high bit set in the tests
/// below; bytes from 0x80, which UTF-8 uses, are masked out by `!x`).
fn needs_escape(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        if below(x, 0x20) | below(x ^ (ONES * 0x22), 1) | below(x ^ (ONES * 0x5c), 1) != 0 {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&c| c < 0x20 || c == b'"' || c == b'\\')
}

/// A plan's text takes about this many bytes per controller, device or change (pretty;
/// compact is shorter), so that the buffer is sized once.
const BYTES_PER_ITEM: usize = 330;

/// The size to reserve for `plan`'s text.
pub(crate) fn size_hint(plan: &Plan) -> usize {
    let changes = plan.changes.as_ref().map_or(0, |c| c.len());
    256 + BYTES_PER_ITEM * (plan.controllers.len() + plan.devices.len() + changes)
}

/// Writes `plan` as the value at the writer's position.
pub(crate) fn plan(w: &mut Writer, plan: &Plan) {
    w.begin_object();
    w.key("name");
    match &plan.name {
        Some(n) => w.str(n),
        None => w.null(),
    }
    w.field_str("machine", &plan.machine);
    w.field_str(
        "firmware",
        match plan.firmware {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        },
    );
    if let Some(h) = plan.root_hotplug {
        w.field_bool("root_hotplug", h);
    }
    w.field_num("cost", plan.cost);
    w.field_bool("optimal", plan.optimal);
    if let Some(n) = plan.guest_visible_changes {
        w.field_num("guest_visible_changes", n);
    }
    if let Some(list) = &plan.changes {
        w.key("changes");
        w.begin_array();
        for c in list {
            w.entry();
            change(w, c);
        }
        w.end_array();
    }
    if !plan.notes.is_empty() {
        w.key("notes");
        w.begin_array();
        for n in &plan.notes {
            w.entry();
            w.str(n);
        }
        w.end_array();
    }
    w.key("controllers");
    w.begin_array();
    for c in &plan.controllers {
        w.entry();
        controller(w, c);
    }
    w.end_array();
    w.key("devices");
    w.begin_array();
    for d in &plan.devices {
        w.entry();
        device(w, d);
    }
    w.end_array();
    w.end_object();
}

fn controller(w: &mut Writer, c: &PlacedController) {
    w.begin_object();
    w.field_str("id", &c.id);
    w.field_str("model", &c.model);
    w.field_str("driver", &c.driver);
    w.field_str("bus", &c.bus);
    w.field_num("slot", c.slot);
    w.field_num("function", c.function);
    w.field_bool("multifunction", c.multifunction);
    if let Some(v) = c.chassis {
        w.field_num("chassis", v);
    }
    if let Some(v) = c.port {
        w.field_num("port", v);
    }
    if let Some(v) = c.hotplug {
        w.field_bool("hotplug", v);
    }
    if let Some(v) = c.bus_nr {
        w.field_num("bus_nr", v);
    }
    if let Some(v) = c.numa_node {
        w.field_num("numa_node", v);
    }
    if let Some(v) = c.io_reserve {
        w.field_num("io-reserve", v);
    }
    w.field_bool("added", c.added);
    w.end_object();
}

fn device(w: &mut Writer, d: &PlacedDevice) {
    w.begin_object();
    w.field_str("id", &d.id);
    w.field_str("model", &d.model);
    w.field_str(
        "kind",
        match d.kind {
            crate::catalog::BusKind::Pcie => "pcie",
            crate::catalog::BusKind::Pci => "pci",
        },
    );
    w.field_str("bus", &d.bus);
    w.field_num("slot", d.slot);
    w.field_num("function", d.function);
    w.field_bool("multifunction", d.multifunction);
    w.field_bool("hotpluggable", d.hotpluggable);
    w.field_str("hotplug", d.hotplug.as_str());
    if let Some(g) = &d.group {
        w.field_str("group", g);
    }
    if let Some(v) = d.numa_node {
        w.field_num("numa_node", v);
    }
    w.end_object();
}

fn change(w: &mut Writer, c: &Change) {
    w.begin_object();
    w.field_str("id", &c.id);
    w.field_str(
        "change",
        match c.change {
            ChangeKind::Moved => "moved",
            ChangeKind::Renumbered => "renumbered",
            ChangeKind::Renamed => "renamed",
            ChangeKind::PortHotplug => "port_hotplug",
            ChangeKind::Added => "added",
        },
    );
    if let Some(v) = &c.from {
        w.field_str("from", v);
    }
    if let Some(v) = &c.to {
        w.field_str("to", v);
    }
    w.field_bool("guest_visible", c.guest_visible);
    if let Some(s) = &c.linux_name {
        w.key("linux_name");
        seen(w, s);
    }
    if let Some(s) = &c.windows_path {
        w.key("windows_path");
        seen(w, s);
    }
    if let Some(v) = &c.why {
        w.field_str("why", v);
    }
    w.end_object();
}

fn seen(w: &mut Writer, s: &Seen) {
    w.begin_object();
    w.field_str("from", &s.from);
    w.field_str("to", &s.to);
    w.end_object();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::request::Request;

    fn both(p: &Plan) {
        for pretty in [false, true] {
            let mut s = String::new();
            plan(&mut Writer::new(&mut s, pretty), p);
            let want = if pretty {
                serde_json::to_string_pretty(p).unwrap()
            } else {
                serde_json::to_string(p).unwrap()
            };
            assert_eq!(s, want, "pretty {pretty}");
        }
    }

    #[test]
    fn escapes_as_serde_json() {
        for s in [
            "",
            "plain",
            "q\"uote",
            "back\\slash",
            "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f} \u{7f}",
            "é ü 漢 🙂",
        ] {
            let mut out = String::new();
            escaped(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap());
        }
    }

    #[test]
    fn finds_every_byte_to_escape() {
        for len in 0..20 {
            for at in 0..len {
                for c in 0u8..=0xff {
                    let mut b = vec![b'a'; len];
                    b[at] = c;
                    let want = c < 0x20 || c == b'"' || c == b'\\';
                    assert_eq!(needs_escape(&b), want, "{c:#x} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn plans_as_serde_json() {
        let cat = Catalog::q35();
        let req = Request::from_json(
            r#"{"name":"we\"ird\n\u0001","policy":{"spare_ports":1},"devices":[
                {"id":"n0","model":"virtio-net-pci","hotplug":"off"},
                {"id":"n1","model":"e1000","hotplug":"on","group":"g"},
                {"id":"n2","model":"virtio-blk-pci","numa_node":0}]}"#,
        )
        .unwrap();
        let mut p = crate::plan_with(&req, cat).unwrap();
        both(&p);
        p.name = None;
        p.notes = vec!["a \"note\"".into(), String::new()];
        p.root_hotplug = Some(false);
        p.guest_visible_changes = Some(2);
        p.changes = Some(vec![
            Change {
                id: "n0".into(),
                change: ChangeKind::Moved,
                from: Some("rp1:00.0".into()),
                to: Some("pcie.0:02.0".into()),
                guest_visible: true,
                linux_name: Some(Seen {
                    from: "enp1s0".into(),
                    to: "enp0s2".into(),
                }),
                windows_path: Some(Seen {
                    from: "PCIROOT(0)#PCI(0100)".into(),
                    to: "PCIROOT(0)#PCI(0200)".into(),
                }),
                why: Some("why \\ not".into()),
            },
            Change {
                id: "rp1".into(),
                change: ChangeKind::PortHotplug,
                from: None,
                to: None,
                guest_visible: false,
                linux_name: None,
                windows_path: None,
                why: None,
            },
        ]);
        both(&p);
        p.changes = Some(Vec::new());
        p.devices.clear();
        p.controllers.clear();
        both(&p);
    }
}
