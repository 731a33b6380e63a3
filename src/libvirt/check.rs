//! `pciplan check` on a domain: the address errors libvirt finds while parsing, then every
//! rule the validator checks on the pinned addresses (double use, missing bus, slot ranges,
//! kind of slot, endpoint on an expander bus, hotplug-`off` device on a hot-pluggable slot).

use super::Domain;
use crate::catalog::Catalog;
use crate::error::Violation;
use crate::validate::validate_pins;

pub(crate) fn check(dom: &Domain, cat: &Catalog) -> Vec<Violation> {
    let mut out = dom.problems.clone();
    out.extend(validate_pins(&dom.request, cat).into_iter().map(|mut v| {
        // Name buses the way a libvirt user reads them: the controller index.
        if let Some((bus, rest)) = v.address.split_once(':') {
            if let Some(i) = dom.index_of(bus) {
                v.address = format!("{bus}:{rest} (libvirt bus 0x{i:02x})");
            }
        }
        v
    }));
    out.sort();
    out.dedup();
    out
}
