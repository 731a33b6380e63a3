//! Groups (D-GROUP): the members of a multifunction group share one slot, at most eight of
//! them, planned members at function = their index in request order.

use std::collections::BTreeMap;

use crate::error::Violation;
use crate::plan::PlacedDevice;
use crate::rule::Rule;

use super::{push, Check};

pub(super) fn check(c: &Check, out: &mut Vec<Violation>) {
    let mut groups: BTreeMap<&str, Vec<&PlacedDevice>> = BTreeMap::new();
    for p in &c.devices {
        if let (Some(d), Some(g)) = (p.dev, &p.req.group) {
            groups.entry(g.as_str()).or_default().push(d);
        }
    }
    for (g, members) in groups {
        at_most_eight(g, &members, out);
        one_slot(g, &members, out);
        if c.full {
            functions_in_request_order(c, g, &members, out);
        }
    }
}

/// A slot has eight functions.
fn at_most_eight(g: &str, members: &[&PlacedDevice], out: &mut Vec<Violation>) {
    if members.len() > 8 {
        let msg = format!(
            "group '{g}' has {} members; a slot has 8 functions",
            members.len()
        );
        push(out, &members[0].id, &members[0].address(), Rule::Group, msg);
    }
}

/// Every member is on the first member's slot.
fn one_slot(g: &str, members: &[&PlacedDevice], out: &mut Vec<Violation>) {
    let first = members[0];
    for m in members {
        if m.bus != first.bus || m.slot != first.slot {
            let msg = format!(
                "group '{g}' is split: '{}' is at {}",
                first.id,
                first.address()
            );
            push(out, &m.id, &m.address(), Rule::Group, msg);
        }
    }
}

/// Member `i` in request order (not pinned) is function `i`.
fn functions_in_request_order(
    c: &Check,
    g: &str,
    members: &[&PlacedDevice],
    out: &mut Vec<Violation>,
) {
    for (i, m) in members.iter().enumerate() {
        let planned = c
            .req
            .devices
            .iter()
            .find(|d| d.id == m.id)
            .is_some_and(|d| d.address.is_none());
        if planned && usize::from(m.function) != i {
            let msg = format!("group '{g}': member {i} in request order should be function {i}");
            push(out, &m.id, &m.address(), Rule::Group, msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use crate::rule::Rule;

    fn group_of(n: usize) -> String {
        let devs: Vec<String> = (0..n)
            .map(|i| {
                format!(r#"{{"id":"g{i}","model":"virtio-net-pci","hotplug":"off","group":"g"}}"#)
            })
            .collect();
        format!(r#"{{"devices":[{}]}}"#, devs.join(","))
    }

    #[test]
    fn a_planned_group_is_clean() {
        let req = request(&group_of(3));
        let p = crate::planner::plan(&req).expect("plans");
        assert_eq!(rules(&p, &req), NONE);
    }

    #[test]
    fn a_split_group_and_functions_out_of_order() {
        let req = request(&group_of(3));
        let mut p = crate::planner::plan(&req).expect("plans");
        p.devices[2].slot += 1;
        p.devices[2].function = 0;
        let got = rules(&p, &req);
        assert!(
            got.iter().filter(|&&r| r == Rule::Group).count() == 2,
            "{got:?}"
        );
    }

    #[test]
    fn nine_members_are_too_many() {
        let req = request(&group_of(9));
        let got = pin_rules(&req);
        assert_eq!(got, NONE); // nothing pinned: nothing to check before planning
        let p = plan(
            vec![],
            (0..9)
                .map(|i| {
                    dev(
                        &format!("g{i}"),
                        "virtio-net-pci",
                        "pcie.0",
                        1,
                        (i % 8) as u8,
                    )
                })
                .collect(),
        );
        let got = rules(&p, &req);
        assert!(got.contains(&Rule::Group), "{got:?}");
    }
}
