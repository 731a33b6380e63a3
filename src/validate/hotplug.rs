//! Hotplug: each device's hotplug wish against where it sits (D-OFF, D-ON), the plan's
//! `hotpluggable` flags (D-HP), and `hotplug=off` only on ports that have the property
//! (R-HP-PORT).

use crate::catalog::HotplugControl;
use crate::error::Violation;
use crate::request::Hotplug;
use crate::rule::Rule;

use super::{push, Check};

pub(super) fn check(c: &Check, out: &mut Vec<Violation>) {
    devices(c, out);
    off_needs_the_property(c, out);
}

/// D-OFF, D-ON and D-HP for every placed device below a bus.
fn devices(c: &Check, out: &mut Vec<Violation>) {
    if !c.wishes {
        return;
    }
    let (t, req) = (&c.t, c.req);
    for p in &c.devices {
        let (Some(d), Some(n)) = (p.dev, p.node) else {
            continue;
        };
        let Some(parent) = t.parent(n) else { continue };
        let hp = t.device_hotpluggable(n);
        let want = req.hotplug_of(p.req);
        // A model QEMU cannot hot-unplug anywhere is fixed wherever it goes (the topology
        // read the catalog for the device's node already).
        let fixed = !t.model_hotpluggable(n, d);
        let wrong = match want {
            Hotplug::Off if hp => Some((
                Rule::Off,
                format!("hotplug off, but bus '{}' lets the guest unplug it", d.bus),
            )),
            Hotplug::On if !hp && !fixed => Some((
                Rule::On,
                format!(
                    "hotplug on, but the guest cannot unplug it from bus '{}'",
                    d.bus
                ),
            )),
            Hotplug::On if !hp => Some((
                Rule::On,
                format!(
                    "hotplug on, but QEMU cannot hot-unplug a {} anywhere",
                    d.model
                ),
            )),
            _ => None,
        };
        if let Some((rule, msg)) = wrong {
            push(out, &d.id, &d.address(), rule, msg);
        }
        if !c.full {
            continue;
        }
        if d.hotpluggable != hp {
            let msg = format!(
                "plan says hotpluggable={} but the topology says {hp}",
                d.hotpluggable
            );
            push(out, &d.id, &d.address(), Rule::Hotplug, msg);
        }
        // Where the policy lets planned hotplug-off devices go (pinned ones are where the
        // user put them).
        if want != Hotplug::Off || p.req.address.is_some() || fixed {
            continue;
        }
        let policy = req.policy.hotplug_off;
        let msg = match t.bus_type(parent) {
            Some("port") if !policy.allows_port() => {
                "on a hotplug=off port, but policy hotplug_off is 'integrated'"
            }
            Some("pcie-root") if !policy.allows_integrated() => {
                "integrated, but policy hotplug_off is 'port'"
            }
            _ => continue,
        };
        push(out, &d.id, &d.address(), Rule::Off, msg.into());
    }
}

/// R-HP-PORT: `hotplug=off` only on controllers with a `hotplug` property.
fn off_needs_the_property(c: &Check, out: &mut Vec<Violation>) {
    for (i, k) in c.plan.controllers.iter().enumerate() {
        // The model the topology read for the controller's node.
        let Some(m) = c.t.model(c.t.ctrl_node(i)) else {
            continue;
        };
        if k.hotplug == Some(false) && m.hotplug != HotplugControl::Property {
            let msg = format!(
                "'{}' has no hotplug property (QEMU: Property '{}.hotplug' not found)",
                k.model, m.qemu
            );
            push(out, &k.id, &k.address(), Rule::HotplugPort, msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use crate::request::Hotplug;
    use crate::rule::Rule;

    /// A NIC with hotplug `want` on an added root port (`port_hotplug`), and the request.
    fn on_port(want: &str, port_hotplug: bool) -> (crate::plan::Plan, crate::request::Request) {
        let req = request(&format!(
            r#"{{"devices":[{{"id":"n","model":"virtio-net-pci","hotplug":"{want}"}}]}}"#
        ));
        let mut rp = added(ctrl("rp1", "pcie-root-port", "pcie.0", 1, 0));
        rp.hotplug = Some(port_hotplug);
        rp.chassis = Some(1);
        rp.port = Some(8);
        rp.io_reserve = Some(0);
        let mut d = dev("n", "virtio-net-pci", "rp1", 0, 0);
        d.hotpluggable = port_hotplug;
        d.hotplug = req.hotplug_of(&req.devices[0]);
        let mut p = plan(vec![rp], vec![d]);
        p.cost = 1;
        (p, req)
    }

    #[test]
    fn clean_on_a_hot_pluggable_port() {
        let (p, req) = on_port("on", true);
        assert_eq!(rules(&p, &req), NONE);
    }

    #[test]
    fn off_device_on_a_hot_pluggable_port() {
        let (p, req) = on_port("off", true);
        // The port lets the guest unplug it, and the default policy wants it integrated.
        assert_eq!(rules(&p, &req), [Rule::Off, Rule::Off]);
    }

    #[test]
    fn on_device_on_an_off_port() {
        let (p, req) = on_port("on", false);
        assert_eq!(rules(&p, &req), [Rule::On]);
    }

    #[test]
    fn off_port_against_the_policy() {
        use crate::request::OffStrategy;
        let (p, mut req) = on_port("off", false);
        req.policy.hotplug_off = OffStrategy::Port;
        assert_eq!(rules(&p, &req), NONE);
        req.policy.hotplug_off = OffStrategy::Integrated;
        assert_eq!(rules(&p, &req), [Rule::Off]);
    }

    #[test]
    fn a_wrong_hotpluggable_flag() {
        let (mut p, req) = on_port("any", true);
        p.devices[0].hotpluggable = false;
        assert_eq!(rules(&p, &req), [Rule::Hotplug]);
        assert_eq!(p.devices[0].hotplug, Hotplug::Any);
    }

    #[test]
    fn hotplug_off_on_a_bridge() {
        let (mut p, mut req) = on_port("on", true);
        // A conventional NIC: the bridge takes it.
        req.devices[0].model = "e1000".into();
        p.devices[0].model = "e1000".into();
        p.devices[0].kind = crate::catalog::BusKind::Pci;
        let mut br = added(ctrl("br1", "pcie-pci-bridge", "rp1", 0, 0));
        br.hotplug = Some(false);
        p.devices[0].bus = "br1".into();
        p.devices[0].slot = 1;
        p.controllers.push(br);
        p.cost = 2;
        assert_eq!(rules(&p, &req), [Rule::HotplugPort]);
    }
}
