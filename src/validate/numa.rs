//! NUMA (D-NUMA): a device with a `numa_node` sits below an expander of that node, and only
//! controllers that take a `numa_node` have one.

use crate::error::Violation;
use crate::rule::Rule;
use crate::topology::Node;

use super::{push, Check};

pub(super) fn check(c: &Check, out: &mut Vec<Violation>) {
    devices_below_their_node(c, out);
    controllers_take_numa_node(c, out);
}

/// Every placed device asking for a NUMA node is below a `pxb-pcie` with that `numa_node`.
fn devices_below_their_node(c: &Check, out: &mut Vec<Violation>) {
    let t = &c.t;
    for p in &c.devices {
        let (Some(d), Some(n), Some(node)) = (p.dev, p.node, p.req.numa_node) else {
            continue;
        };
        if t.parent(n).is_none() {
            continue;
        }
        let has = t.expander_of(n).and_then(|x| match t.g[x] {
            Node::Ctrl(k) => k.numa_node,
            _ => None,
        });
        if has != Some(node) {
            let msg = format!(
                "numa_node {node} asked, but it is not below a pxb-pcie with numa_node={node}"
            );
            push(out, &d.id, &d.address(), Rule::Numa, msg);
        }
    }
}

/// Only models with a `numa_node` property carry one.
fn controllers_take_numa_node(c: &Check, out: &mut Vec<Violation>) {
    for (i, k) in c.plan.controllers.iter().enumerate() {
        // The model the topology read for the controller's node.
        let Some(m) = c.t.model(c.t.ctrl_node(i)) else {
            continue;
        };
        if k.numa_node.is_some() && !m.props.iter().any(|p| p == "numa_node") {
            let msg = format!("'{}' takes no numa_node", k.model);
            push(out, &k.id, &k.address(), Rule::Numa, msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use crate::rule::Rule;

    const TWO_NODES: &str = r#"{"devices":[
        {"id":"a","model":"virtio-net-pci","numa_node":0},
        {"id":"b","model":"virtio-net-pci","numa_node":1}]}"#;

    #[test]
    fn devices_planned_on_their_nodes_are_clean() {
        let req = request(TWO_NODES);
        let p = crate::planner::plan(&req).expect("plans");
        assert_eq!(rules(&p, &req), NONE);
    }

    #[test]
    fn a_device_below_another_node() {
        let req = request(TWO_NODES);
        let mut p = crate::planner::plan(&req).expect("plans");
        let bus_of = |id: &str| p.devices.iter().find(|d| d.id == id).map(|d| d.bus.clone());
        let (a, b) = (bus_of("a").expect("a"), bus_of("b").expect("b"));
        for d in &mut p.devices {
            d.bus = if d.id == "a" { b.clone() } else { a.clone() };
        }
        assert_eq!(rules(&p, &req), [Rule::Numa, Rule::Numa]);
    }

    #[test]
    fn a_root_port_with_a_numa_node() {
        let (mut p, req) = clean();
        p.controllers[0].numa_node = Some(0);
        assert_eq!(rules(&p, &req), [Rule::Numa]);
    }
}
