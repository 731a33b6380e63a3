//! A placement service planning guests in-process with the pciplan library: one shape cache
//! shared by every request, plans returned as data, and an infeasible request answered with
//! its explanation (rule, numbers, devices and hints) rather than a string to parse.
//!
//! ```text
//! cargo run --release --example placement_service
//! ```

use std::sync::Arc;

use pciplan::{Catalog, PlanError, Request, ShapeCache};

/// What the service answers a caller.
#[derive(Debug)]
enum Placement {
    /// QEMU `-device` arguments and the number of controllers added.
    Placed {
        args: String,
        controllers_added: u32,
    },
    /// Cannot be placed: the rule that fails and what would make it fit.
    Rejected {
        rule: String,
        reason: String,
        hints: Vec<String>,
    },
    /// The request itself is wrong.
    BadRequest(String),
}

struct Service {
    cache: Arc<ShapeCache>,
    catalog: &'static Catalog,
}

impl Service {
    fn new() -> Service {
        Service {
            cache: Arc::new(ShapeCache::new(10_000)),
            catalog: Catalog::q35(),
        }
    }

    fn place(&self, json: &str) -> Placement {
        let req = match Request::from_json(json) {
            Ok(r) => r,
            Err(e) => return Placement::BadRequest(e.to_string()),
        };
        match self.cache.plan_with(&req, self.catalog) {
            Ok(plan) => Placement::Placed {
                args: pciplan::emit::qemu(&plan, self.catalog),
                controllers_added: plan.cost,
            },
            Err(PlanError::Infeasible(why)) => {
                // The explanation is data: take the first cause's rule, message and hints.
                let first = why.causes.first();
                Placement::Rejected {
                    rule: why.rule().to_string(),
                    reason: first
                        .map(|c| format!("{} (need {}, have {})", c.message, c.need, c.have))
                        .unwrap_or_default(),
                    hints: first.map(|c| c.hints.clone()).unwrap_or_default(),
                }
            }
            Err(e) => Placement::BadRequest(e.to_string()),
        }
    }
}

fn main() {
    let service = Service::new();
    let web = r#"{"name":"web-01","policy":{"spare_ports":1},"devices":[
        {"id":"net0","model":"virtio-net-pci","hotplug":"off"},
        {"id":"disk0","model":"virtio-blk-pci"},
        {"id":"disk1","model":"virtio-blk-pci"}]}"#;
    // The same template for another guest: answered from the shape cache, with its own ids.
    let web2 = web.replace("web-01", "web-02").replace("disk1", "data");
    // 32 conventional NICs that must not be unplugged: only integrated slots take them, and
    // pcie.0 has 30.
    let nics: Vec<String> = (0..32)
        .map(|i| format!(r#"{{"id":"nic{i}","model":"e1000","hotplug":"off"}}"#))
        .collect();
    let router = format!(r#"{{"name":"router","devices":[{}]}}"#, nics.join(","));
    let typo = r#"{"name":"typo","devices":[{"id":"net0","modle":"virtio-net-pci"}]}"#;

    for (what, json) in [
        ("web-01", web.to_string()),
        ("web-02", web2),
        ("router", router),
        ("typo", typo.to_string()),
    ] {
        match service.place(&json) {
            Placement::Placed {
                args,
                controllers_added,
            } => {
                println!("{what}: placed, {controllers_added} controller(s) added");
                for line in args.lines() {
                    println!("  {line}");
                }
            }
            Placement::Rejected {
                rule,
                reason,
                hints,
            } => {
                println!("{what}: rejected by {rule}: {reason}");
                for h in hints {
                    println!("  try: {h}");
                }
            }
            Placement::BadRequest(e) => println!("{what}: bad request: {e}"),
        }
    }
    let s = service.cache.stats();
    println!("shape cache: {} hit(s), {} miss(es)", s.hits, s.misses);
}
