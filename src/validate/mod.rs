//! The independent validator: plain code, no integer program, that checks a plan (or just the
//! pinned part of a request) against every rule and reports each violation with the device,
//! its address and the rule id.
//!
//! One file per family of rules, each reading the same [`Check`] (the plan's topology and
//! the request):
//! - `names.rs`: ids, buses that exist, loops, controller models, chassis (D-PIN, R-RP-ID);
//! - `pins.rs`: pinned devices and controllers stay where they were pinned (D-PIN);
//! - `slots.rs`: what each bus's slots and functions hold (R-ROOT, R-FUNC, R-RP-PACK,
//!   R-INT-SLOT, the kind a bus accepts, double use);
//! - `hotplug.rs`: D-OFF, D-ON, D-HP, R-HP-PORT;
//! - `groups.rs`: D-GROUP; `numa.rs`: D-NUMA;
//! - `budgets.rs`: R-BUSNR, R-IO, O-COST, O-SPARE.
//!
//! Violations are sorted and deduplicated, so the order the rules run in does not show.

use petgraph::stable_graph::NodeIndex;

use crate::catalog::Catalog;
use crate::error::Violation;
use crate::idmap::IdMap;
use crate::plan::{PlacedDevice, Plan};
use crate::request::{Address, DeviceRequest, Request};
use crate::rule::Rule;
use crate::topology::{Node, Topology};
use crate::Text;

mod budgets;
mod groups;
mod hotplug;
mod names;
mod numa;
mod pins;
mod slots;

/// Checks a complete plan for `req` against every rule. An empty list means valid.
///
/// ```
/// let req = pciplan::Request::from_json(r#"{"devices":[{"id":"n","model":"virtio-net-pci","hotplug":"off"}]}"#).unwrap();
/// let plan = pciplan::plan(&req).unwrap();
/// assert!(pciplan::validate(&plan, &req, &pciplan::Catalog::q35()).is_empty());
/// ```
pub fn validate(plan: &Plan, req: &Request, cat: &Catalog) -> Vec<Violation> {
    validate_topology(&Topology::build(plan, cat), plan, req, cat)
}

/// [`validate`] of a plan whose topology `t` the caller already built.
pub(crate) fn validate_topology(
    t: &Topology,
    plan: &Plan,
    req: &Request,
    cat: &Catalog,
) -> Vec<Violation> {
    Check::new(t, plan, req, cat, true).run()
}

/// Checks only the addresses a request pins (devices and controllers), before planning.
pub fn validate_pins(req: &Request, cat: &Catalog) -> Vec<Violation> {
    let pinned = crate::topology::pinned_plan(req, cat);
    validate_pinned(&Topology::build(&pinned, cat), &pinned, req, cat)
}

/// [`validate_pins`] of the pinned plan `pinned`, whose topology `t` the caller already built.
pub(crate) fn validate_pinned(
    t: &Topology,
    pinned: &Plan,
    req: &Request,
    cat: &Catalog,
) -> Vec<Violation> {
    // Pins of nothing break no rule (most requests pin nothing; the test
    // `nothing_pinned_breaks_nothing` holds every rule to that).
    if pinned.controllers.is_empty() && pinned.devices.is_empty() {
        return Vec::new();
    }
    Check::new(t, pinned, req, cat, false).run()
}

/// [`validate_pinned`] without the devices' hotplug wishes (D-OFF, D-ON, D-HP): what an
/// adoption asks of the existing guest, whose wishes it is there to meet.
pub(crate) fn validate_pinned_layout(
    t: &Topology,
    pinned: &Plan,
    req: &Request,
    cat: &Catalog,
) -> Vec<Violation> {
    let mut c = Check::new(t, pinned, req, cat, false);
    c.wishes = false;
    c.run()
}

/// A request's device with where the plan put it.
struct Placed<'a> {
    req: &'a DeviceRequest,
    /// The plan's device of that id (`None`: missing from the plan).
    dev: Option<&'a PlacedDevice>,
    /// The topology node of that id, if any.
    node: Option<NodeIndex>,
}

/// What every rule reads: the request, the plan and its topology.
struct Check<'a> {
    req: &'a Request,
    cat: &'a Catalog,
    plan: &'a Plan,
    /// A complete plan (`validate`), or only the pins (`validate_pins`): some rules hold
    /// only of complete plans.
    full: bool,
    /// Whether the devices' hotplug wishes are checked (D-OFF, D-ON, D-HP).
    wishes: bool,
    t: &'a Topology<'a>,
    /// The request's devices in request order, with where the plan put them.
    devices: Vec<Placed<'a>>,
    /// Whether the plan has the request's devices in request order and no id twice: then
    /// device node `i` (see [`Topology::dev_index`]) is request device `i`.
    in_order: bool,
}

impl<'a> Check<'a> {
    fn new(
        t: &'a Topology<'a>,
        plan: &'a Plan,
        req: &'a Request,
        cat: &'a Catalog,
        full: bool,
    ) -> Check<'a> {
        // A plan the planner made has the request's devices in request order, each id once:
        // device i is node i of the devices.
        let in_order = t.repeated.is_empty()
            && t.g.node_count() == 1 + plan.controllers.len() + plan.devices.len()
            && plan.devices_in_order_of(req);
        let devices = if in_order {
            (req.devices.iter().zip(&plan.devices).enumerate())
                .map(|(i, (rd, d))| Placed {
                    req: rd,
                    dev: Some(d),
                    node: Some(t.dev_node(i)),
                })
                .collect()
        } else {
            let placed: IdMap<&str, &PlacedDevice> =
                plan.devices.iter().map(|d| (d.id.as_str(), d)).collect();
            req.devices
                .iter()
                .map(|rd| {
                    let dev = placed.get(rd.id.as_str()).copied();
                    let node = dev.and_then(|d| t.ids.get(d.id.as_str()).copied());
                    Placed { req: rd, dev, node }
                })
                .collect()
        };
        Check {
            req,
            cat,
            plan,
            full,
            wishes: true,
            t,
            devices,
            in_order,
        }
    }

    fn run(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        names::check(self, &mut out);
        slots::check(self, &mut out);
        pins::check(self, &mut out);
        hotplug::check(self, &mut out);
        numa::check(self, &mut out);
        groups::check(self, &mut out);
        budgets::check(self, &mut out);
        out.sort();
        out.dedup();
        out
    }

    /// The id and address of a node (the root bus has an empty address).
    fn addr_of(&self, n: NodeIndex) -> (String, Address) {
        match self.t.g[n] {
            Node::Ctrl(c) => (c.id.to_string(), c.address()),
            Node::Dev(d) => (d.id.to_string(), d.address()),
            Node::Root => (
                self.cat.root.bus.clone(),
                Address {
                    bus: Text::default(),
                    slot: 0,
                    function: 0,
                },
            ),
        }
    }

    /// The id of a node.
    fn id_of(&self, n: NodeIndex) -> &'a str {
        self.t.g[n].id(self.cat)
    }

    /// Reports that node `n` breaks `rule`.
    fn at(&self, out: &mut Vec<Violation>, n: NodeIndex, rule: Rule, message: String) {
        let (id, a) = self.addr_of(n);
        push(out, &id, &a, rule, message);
    }
}

/// Reports that `device` at `address` breaks `rule`.
fn push(out: &mut Vec<Violation>, device: &str, address: &Address, rule: Rule, message: String) {
    out.push(Violation {
        device: device.to_string(),
        address: address.to_string(),
        rule,
        message,
    });
}

/// Reports a violation of the guest as a whole (no device, no address).
fn push_guest(out: &mut Vec<Violation>, device: &str, rule: Rule, message: String) {
    out.push(Violation {
        device: device.to_string(),
        address: "-".into(),
        rule,
        message,
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    pub(crate) use crate::topology::fixtures::{added, ctrl, dev, plan, request};

    /// No rule broken.
    pub(crate) const NONE: Vec<Rule> = Vec::new();

    /// The rules a plan for `req` breaks, in order, one per violation.
    pub(crate) fn rules(p: &Plan, req: &Request) -> Vec<Rule> {
        validate(p, req, Catalog::q35())
            .into_iter()
            .map(|v| v.rule)
            .collect()
    }

    /// The rules the pins of `req` break.
    pub(crate) fn pin_rules(req: &Request) -> Vec<Rule> {
        validate_pins(req, Catalog::q35())
            .into_iter()
            .map(|v| v.rule)
            .collect()
    }

    /// [`validate_pinned`] skips the check of a request that pins nothing: no rule may
    /// object to the pins of such a request, whatever its devices ask (the whole check
    /// runs here).
    #[test]
    fn nothing_pinned_breaks_nothing() {
        let texts = [
            r#"{"devices":[]}"#,
            r#"{"devices":[{"id":"rp1","model":"e1000","hotplug":"off"},
                {"id":"n","model":"virtio-net-pci","hotplug":"off","numa_node":3},
                {"id":"x","model":"no-such-model","bus_kind":"pci","hotplug":"on"},
                {"id":"a","model":"virtio-blk-pci","group":"g"},{"id":"b","model":"e1000","group":"g"},
                {"id":"c","model":"virtio-blk-pci","group":"g"},{"id":"d","model":"virtio-blk-pci","group":"g"},
                {"id":"e","model":"virtio-blk-pci","group":"g"},{"id":"f","model":"virtio-blk-pci","group":"g"},
                {"id":"h","model":"virtio-blk-pci","group":"g"},{"id":"i","model":"virtio-blk-pci","group":"g"},
                {"id":"j","model":"virtio-blk-pci","group":"g"}],
                "policy":{"spare_ports":32,"hotplug_off":"port"},"firmware":"uefi"}"#,
        ];
        for text in texts {
            let req = request(text);
            for cat in [Catalog::q35(), Catalog::virt()] {
                let pinned = crate::topology::pinned_plan(&req, cat);
                assert!(pinned.controllers.is_empty() && pinned.devices.is_empty());
                let t = Topology::build(&pinned, cat);
                let found = Check::new(&t, &pinned, &req, cat, false).run();
                assert_eq!(found, [], "{}", cat.machine);
            }
        }
    }

    /// A clean plan: one integrated NIC (hotplug off) and a disk on an added root port.
    pub(crate) fn clean() -> (Plan, Request) {
        let req = request(
            r#"{"devices":[{"id":"nic","model":"virtio-net-pci","hotplug":"off"},
                {"id":"disk","model":"virtio-blk-pci"}]}"#,
        );
        let p = crate::planner::plan(&req).expect("plans");
        (p, req)
    }

    #[test]
    fn a_planned_guest_is_clean() {
        let (p, req) = clean();
        assert_eq!(rules(&p, &req), NONE);
    }

    #[test]
    fn violations_come_sorted_and_once() {
        let req = request(r#"{"devices":[]}"#);
        let p = plan(
            vec![],
            vec![
                dev("b", "virtio-net-pci", "nowhere", 1, 0),
                dev("a", "virtio-net-pci", "nowhere", 1, 0),
                dev("a", "virtio-net-pci", "nowhere", 1, 0),
            ],
        );
        let got: Vec<(String, Rule)> = validate(&p, &req, Catalog::q35())
            .into_iter()
            .map(|v| (v.device, v.rule))
            .collect();
        assert_eq!(
            got,
            [
                ("a".to_string(), Rule::Pin),
                ("a".to_string(), Rule::Pin),
                ("b".to_string(), Rule::Pin),
            ]
        );
    }
}
