//! Names: every id once, every bus an existing controller, no loops, known controller models
//! (D-PIN), and one chassis per port (R-RP-ID).

use crate::error::Violation;
use crate::plan::PlacedController;
use crate::rule::Rule;

use super::{push, Check};

pub(super) fn check(c: &Check, out: &mut Vec<Violation>) {
    unique_ids(c, out);
    buses_exist(c, out);
    no_loops(c, out);
    known_models(c, out);
    chassis(c, out);
}

/// D-PIN: no id is used twice (the root bus's name included). The topology found the
/// repeats while naming its nodes.
fn unique_ids(c: &Check, out: &mut Vec<Violation>) {
    for &n in &c.t.repeated {
        let id = c.id_of(n);
        c.at(out, n, Rule::Pin, format!("id '{id}' is used twice"));
    }
}

/// D-PIN: every bus named is the root bus or a controller's.
fn buses_exist(c: &Check, out: &mut Vec<Violation>) {
    for &(n, bus) in &c.t.dangling {
        c.at(
            out,
            n,
            Rule::Pin,
            format!("bus '{bus}' does not exist (no controller with that id)"),
        );
    }
}

/// D-PIN: every node hangs from the root bus; one that does not, and is not below a
/// missing bus (reported already), sits on a loop.
fn no_loops(c: &Check, out: &mut Vec<Violation>) {
    let t = &c.t;
    let dangling = |n| t.dangling.iter().any(|d| d.0 == n);
    for n in t.g.node_indices() {
        if !t.rooted(n) && !dangling(n) && !t.ancestors(n).into_iter().any(dangling) {
            c.at(
                out,
                n,
                Rule::Pin,
                "is not connected to the root bus (its bus chain loops)".into(),
            );
        }
    }
}

/// D-PIN: every controller is of a model the catalog knows.
fn known_models(c: &Check, out: &mut Vec<Violation>) {
    for (i, ctrl) in c.plan.controllers.iter().enumerate() {
        if c.t.model(c.t.ctrl_node(i)).is_none() {
            push(
                out,
                &ctrl.id,
                &ctrl.address(),
                Rule::Pin,
                format!("unknown controller model '{}'", ctrl.model),
            );
        }
    }
}

/// R-RP-ID: every port has a chassis (in a complete plan), and no two share one.
fn chassis(c: &Check, out: &mut Vec<Violation>) {
    // The last port seen on each chassis number, by number (a chassis is a byte).
    let mut taken: [Option<&PlacedController>; 256] = [None; 256];
    for (i, ctrl) in c.plan.controllers.iter().enumerate() {
        let Some(m) = c.t.model(c.t.ctrl_node(i)) else {
            continue;
        };
        if !m.props.iter().any(|p| p == "chassis") {
            continue;
        }
        match ctrl.chassis {
            Some(ch) => {
                if let Some(prev) = taken[usize::from(ch)].replace(ctrl) {
                    push(
                        out,
                        &ctrl.id,
                        &ctrl.address(),
                        Rule::RootPortId,
                        format!(
                            "chassis {ch} is also used by '{}' (QEMU: Can't add chassis slot)",
                            prev.id
                        ),
                    );
                }
            }
            None if c.full => push(
                out,
                &ctrl.id,
                &ctrl.address(),
                Rule::RootPortId,
                "port has no chassis".into(),
            ),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use crate::rule::Rule;

    #[test]
    fn an_id_used_twice() {
        let (mut p, req) = clean();
        p.controllers
            .push(ctrl("disk", "pcie-pci-bridge", "nowhere", 0, 0));
        let got = rules(&p, &req);
        assert!(got.iter().all(|&r| r == Rule::Pin), "{got:?}");
        assert_eq!(got.len(), 2, "{got:?}"); // used twice, bus does not exist
    }

    #[test]
    fn a_bus_that_does_not_exist() {
        let req = request(
            r#"{"devices":[{"id":"n","model":"virtio-net-pci","address":{"bus":"rp9","slot":0,"function":0}}]}"#,
        );
        assert_eq!(pin_rules(&req), [Rule::Pin]);
    }

    #[test]
    fn a_loop_of_buses() {
        let req = request(
            r#"{"devices":[],"controllers":[
                {"id":"a","model":"pci-bridge","address":{"bus":"b","slot":1,"function":0}},
                {"id":"b","model":"pci-bridge","address":{"bus":"a","slot":1,"function":0}}]}"#,
        );
        assert_eq!(pin_rules(&req), [Rule::Pin, Rule::Pin]);
    }

    #[test]
    fn an_unknown_controller_model() {
        let p = plan(vec![ctrl("x", "no-such-port", "pcie.0", 1, 0)], vec![]);
        let v = crate::validate::validate(&p, &request(r#"{"devices":[]}"#), crate::Catalog::q35());
        assert!(
            v.iter()
                .any(|v| v.rule == Rule::Pin && v.message.contains("unknown controller model")),
            "{v:?}"
        );
    }

    #[test]
    fn two_ports_on_one_chassis_and_a_port_without() {
        let (mut p, req) = clean();
        let first = p.controllers[0].chassis;
        let mut twin = added(ctrl("rp9", "pcie-root-port", "pcie.0", 9, 0));
        twin.chassis = first;
        twin.port = Some(72);
        p.controllers.push(twin);
        p.controllers
            .push(added(ctrl("rp10", "pcie-root-port", "pcie.0", 10, 0)));
        p.cost += 2;
        assert_eq!(rules(&p, &req), [Rule::RootPortId, Rule::RootPortId]);
    }
}
