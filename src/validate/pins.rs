//! Pins (D-PIN): in a complete plan, every requested device is there, and what the request
//! pins stays where it was pinned.

use crate::error::Violation;
use crate::plan::PlacedController;
use crate::rule::Rule;

use super::{push, push_guest, Check};

pub(super) fn check(c: &Check, out: &mut Vec<Violation>) {
    if !c.full {
        return;
    }
    devices_kept(c, out);
    controllers_kept(c, out);
}

/// Every requested device is in the plan, a pinned one at its pin.
fn devices_kept(c: &Check, out: &mut Vec<Violation>) {
    for p in &c.devices {
        let Some(d) = p.dev else {
            let msg = "device is missing from the plan".into();
            push_guest(out, &p.req.id, Rule::Pin, msg);
            continue;
        };
        if let Some(pin) = &p.req.address {
            // The address is made only for a device off its pin.
            if (pin.bus.as_str(), pin.slot, pin.function) != (d.bus.as_str(), d.slot, d.function) {
                let a = d.address();
                push(
                    out,
                    &d.id,
                    &a,
                    Rule::Pin,
                    format!("pinned at {pin} but planned at {a}"),
                );
            }
        }
    }
}

/// Every pinned controller is in the plan at its pin, and not marked as added.
fn controllers_kept(c: &Check, out: &mut Vec<Violation>) {
    for rc in &c.req.controllers {
        let placed = c.t.controller_named(&rc.id);
        let at = |k: &PlacedController| {
            (k.bus.as_str(), k.slot, k.function)
                == (
                    rc.address.bus.as_str(),
                    rc.address.slot,
                    rc.address.function,
                )
        };
        match placed {
            Some(k) if at(k) && !k.added => {}
            _ => push(
                out,
                &rc.id,
                &rc.address,
                Rule::Pin,
                "pinned controller moved or missing".into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use crate::rule::Rule;

    #[test]
    fn a_device_missing_from_the_plan() {
        let (mut p, req) = clean();
        p.devices.retain(|d| d.id != "nic");
        assert_eq!(rules(&p, &req), [Rule::Pin]);
    }

    #[test]
    fn a_pinned_device_moved() {
        let req = request(
            r#"{"devices":[{"id":"n","model":"virtio-net-pci","hotplug":"off",
                "address":{"bus":"pcie.0","slot":5,"function":0}}]}"#,
        );
        let mut p = crate::planner::plan(&req).expect("plans");
        assert_eq!(rules(&p, &req), NONE);
        p.devices[0].slot = 6;
        assert_eq!(rules(&p, &req), [Rule::Pin]);
    }

    #[test]
    fn a_pinned_controller_moved_or_marked_added() {
        let req = request(
            r#"{"devices":[],"controllers":[{"id":"rp","model":"pcie-root-port","chassis":1,
                "address":{"bus":"pcie.0","slot":5,"function":0}}]}"#,
        );
        let mut p = crate::planner::plan(&req).expect("plans");
        assert_eq!(rules(&p, &req), NONE);
        p.controllers[0].added = true;
        p.cost = 1;
        assert_eq!(rules(&p, &req), [Rule::Pin]);
    }
}
