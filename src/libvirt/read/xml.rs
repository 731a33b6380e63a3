//! Small readers of domain XML pieces: numbers as libvirt parses them, disk target names,
//! `<address type='pci'>`, aliases, and libvirt's parse-time address checks.

use roxmltree::Node;

use crate::error::{InputError, Violation};
use crate::rule::Rule;

pub(in crate::libvirt) fn err(field: impl Into<String>, msg: impl Into<String>) -> InputError {
    InputError::new(field, msg)
}

/// The index libvirt gives a disk target name: `sda` 0, `sdz` 25, `sdaa` 26 (letters after
/// the `sd`/`hd`/`vd`/`xvd`/`ubd` prefix, counted like spreadsheet columns).
pub(in crate::libvirt) fn disk_index(dev: &str) -> Option<u64> {
    let letters = ["xvd", "ubd", "sd", "hd", "vd", "fd"]
        .iter()
        .find_map(|p| dev.strip_prefix(p))?;
    if letters.is_empty() || letters.len() > 6 || !letters.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let n = letters
        .bytes()
        .fold(0u64, |n, b| n * 26 + u64::from(b - b'a') + 1);
    Some(n - 1)
}

/// Parses an unsigned number the way libvirt does (C `strtoul` base 0: `0x` hex, leading `0`
/// octal, else decimal).
pub(in crate::libvirt) fn parse_uint(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// A guest PCI address as written (bus is a controller index).
#[derive(Debug, Clone)]
pub(in crate::libvirt) struct RawAddr {
    pub domain: u64,
    pub bus: u64,
    pub slot: u64,
    pub function: u64,
    /// The `multifunction` attribute, as written.
    pub mf: Option<String>,
}

impl RawAddr {
    pub fn show(&self) -> String {
        format!(
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.slot, self.function
        )
    }

    /// Domain, bus and slot all 0: libvirt reads this as "no address".
    pub fn is_empty(&self) -> bool {
        self.domain == 0 && self.bus == 0 && self.slot == 0
    }
}

/// The direct `<address>` child of an element, when it is `type='pci'`.
pub(in crate::libvirt) fn pci_address(n: Node, what: &str) -> Result<Option<RawAddr>, InputError> {
    let Some(a) = n.children().find(|c| c.has_tag_name("address")) else {
        return Ok(None);
    };
    if a.attribute("type") != Some("pci") {
        return Ok(None);
    }
    let num = |k: &str| -> Result<u64, InputError> {
        match a.attribute(k) {
            None => Ok(0),
            Some(v) => parse_uint(v).ok_or_else(|| {
                err(
                    what,
                    format!("cannot parse <address> '{k}' attribute '{v}'"),
                )
            }),
        }
    };
    Ok(Some(RawAddr {
        domain: num("domain")?,
        bus: num("bus")?,
        slot: num("slot")?,
        function: num("function")?,
        mf: a.attribute("multifunction").map(str::to_string),
    }))
}

/// A numeric attribute of the direct `<address type=T>` child (`drive`'s `controller`, ...).
pub(in crate::libvirt) fn address_attr(n: Node, address_type: &str, attr: &str) -> Option<u64> {
    n.children()
        .find(|c| c.has_tag_name("address") && c.attribute("type") == Some(address_type))
        .and_then(|a| a.attribute(attr))
        .and_then(parse_uint)
}

/// `<alias name=...>`.
pub(in crate::libvirt) fn alias_of(n: Node) -> Option<String> {
    n.children()
        .find(|c| c.has_tag_name("alias"))
        .and_then(|a| a.attribute("name"))
        .map(str::to_string)
}

/// The first child element `name` outside any namespace.
pub(in crate::libvirt) fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| {
        c.is_element() && c.tag_name().name() == name && c.tag_name().namespace().is_none()
    })
}

/// libvirt's parse-time address checks; `None` when the address is empty (domain, bus and slot
/// all 0 means "no address" to libvirt) or invalid (a problem is recorded).
pub(in crate::libvirt) fn checked_address(
    a: &RawAddr,
    id: &str,
    problems: &mut Vec<Violation>,
) -> Option<(u64, u8, u8)> {
    if a.is_empty() {
        return None;
    }
    let mut bad = |msg: String| {
        problems.push(Violation {
            device: id.to_string(),
            address: a.show(),
            rule: Rule::Pin,
            message: msg,
        })
    };
    let mut ok = true;
    if a.domain != 0 {
        bad(format!(
            "Invalid PCI address {}. Only PCI domain 0 is available",
            a.show()
        ));
        ok = false;
    }
    if a.bus > 0xff {
        bad(format!(
            "Invalid PCI address bus='0x{:x}', must be <= 0xFF",
            a.bus
        ));
        ok = false;
    }
    if a.slot > 0x1f {
        bad(format!(
            "Invalid PCI address slot='0x{:x}', must be <= 0x1F",
            a.slot
        ));
        ok = false;
    }
    if a.function > 7 {
        bad(format!(
            "Invalid PCI address function=0x{:x}, must be <= 7",
            a.function
        ));
        ok = false;
    }
    ok.then_some((a.bus, a.slot as u8, a.function as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_like_libvirt() {
        assert_eq!(parse_uint("0x1f"), Some(31));
        assert_eq!(parse_uint("4"), Some(4));
        assert_eq!(parse_uint("010"), Some(8));
        assert_eq!(parse_uint("0"), Some(0));
        assert_eq!(parse_uint("x"), None);
    }

    #[test]
    fn disk_names_index_like_libvirt() {
        assert_eq!(disk_index("sda"), Some(0));
        assert_eq!(disk_index("sdz"), Some(25));
        assert_eq!(disk_index("sdaa"), Some(26));
        assert_eq!(disk_index("vdb"), Some(1));
        assert_eq!(disk_index("xvdc"), Some(2));
        assert_eq!(disk_index("sd"), None);
        assert_eq!(disk_index("sd1"), None);
    }

    #[test]
    fn address_checks_like_libvirt() {
        let a = |domain, bus, slot, function| RawAddr {
            domain,
            bus,
            slot,
            function,
            mf: None,
        };
        let mut p = Vec::new();
        assert_eq!(checked_address(&a(0, 0, 0, 3), "x", &mut p), None);
        assert!(p.is_empty(), "all-zero is no address, not an error");
        assert_eq!(
            checked_address(&a(0, 1, 2, 3), "x", &mut p),
            Some((1, 2, 3))
        );
        assert_eq!(checked_address(&a(1, 0x100, 0x20, 8), "x", &mut p), None);
        assert_eq!(p.len(), 4);
        assert!(p.iter().all(|v| v.rule == Rule::Pin));
    }
}
