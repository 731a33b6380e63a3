//! Adoption against the oracle (issue 10): on small random existing guests (earlier plans
//! of random oracle cases, pinned as they came out) under random new policies, the
//! exhaustive search of `support/adopt_oracle.rs`, written from docs/rules.md alone, finds
//! the same lexicographic minimum (O-ADOPT: guest-visible changes, then controllers added,
//! then ports flipped) as `pciplan::adopt_with`; the plan is valid, and the changes it lists
//! are the ones a comparison of paths and firmware bus numbers (G-ID) finds.
//!
//! Where a new bus goes seldom decides anything in those guests (a root port can nearly
//! always go after every existing one): guests with a full top slot of root ports
//! (`full_slot_guest`) are compared too, and there it does (blinding the oracle to
//! renumbering changes its answer on 13 of 500; on 3 of 2,000 of the others).
//!
//! Also: adopting a guest that already meets its policy changes nothing, and adoption is
//! deterministic.

mod support;

use std::collections::BTreeSet;

use pciplan::{
    adopt_with, plan_with, validate, ChangeKind, Hotplug, Plan, PlanError, Policy, Request,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use support::adopt_oracle::{adopt_min, visible_changes, Layout};
use support::cases::{build_case, device, piece, Case, Piece};
use support::{few_models, json};

/// An existing guest and the policy it is to meet now.
#[derive(Debug, Clone)]
struct AdoptCase {
    /// The earlier request (with the catalog's knobs): its plan is the existing guest.
    before: Case,
    /// The new policy, and each device's new hotplug (a group takes its first member's).
    policy: Policy,
    hotplug: Vec<Option<Hotplug>>,
    /// The existing guest's `pcie.0` slots in reverse order (slot s to slots + 1 - s): the
    /// pieces, with their empty ports, come first in the firmware's numbering and what the
    /// earlier plan added after them, so that where a new bus goes renumbers devices.
    mirror: bool,
    /// Devices (bit i: `d{i}`, ungrouped ones alone in their slot) unplugged from the
    /// existing guest since it was planned: their ports stay, empty, maybe before devices
    /// that remain.
    unplugged: u8,
}

impl AdoptCase {
    /// The existing guest under the new policy: every device at the address the earlier
    /// plan gave it, every controller of that plan pinned. `None` when there was no plan.
    fn guest(&self) -> Option<Request> {
        let cat = self.before.catalog();
        let old = plan_with(&self.before.req, &cat).ok()?;
        let mut new = self.before.req.clone();
        new.policy = self.policy.clone();
        for (i, h) in self.hotplug.iter().enumerate().take(new.devices.len()) {
            let first = new.devices[i].group.as_ref().and_then(|g| {
                new.devices[..i]
                    .iter()
                    .position(|d| d.group.as_ref() == Some(g))
            });
            new.devices[i].hotplug = match first {
                Some(f) => new.devices[f].hotplug,
                None => *h,
            };
            new.devices[i].address = None;
        }
        let mut guest = new
            .pinned_to(&(&old).into())
            .expect("a plan pins its own request");
        // A device sharing its slot stays (R-FUNC would refuse what is left).
        let at = |d: &pciplan::DeviceRequest| d.address.as_ref().map(|a| (a.bus.clone(), a.slot));
        let slots: Vec<_> = guest.devices.iter().map(at).collect();
        let mut i = 0;
        guest.devices.retain(|d| {
            i += 1;
            let alone = slots.iter().filter(|s| **s == at(d)).count() == 1;
            d.group.is_some() || !alone || self.unplugged & (1 << (i - 1)) == 0
        });
        if self.mirror {
            let top = self.before.slots + 1;
            for d in guest.devices.iter_mut() {
                if let Some(a) = d.address.as_mut().filter(|a| a.bus == "pcie.0") {
                    a.slot = top - a.slot;
                }
            }
            for c in guest.controllers.iter_mut() {
                if c.address.bus == "pcie.0" {
                    c.address.slot = top - c.address.slot;
                }
            }
        }
        Some(guest)
    }

    fn describe(&self, guest: &Request) -> String {
        let c = &self.before;
        format!(
            "catalog: {} root slots 1..={}, bus_numbers.max {}, io windows {:?}\nexisting guest: {}",
            c.req.machine,
            c.slots,
            c.bus_max,
            c.io,
            json(guest)
        )
    }
}

fn adopt_case() -> impl Strategy<Value = AdoptCase> {
    (
        (
            2u8..=5,
            prop_oneof![3 => Just(255u32), 1 => 4u32..=9],
            prop_oneof![3 => Just(None), 1 => (1u32..=3).prop_map(Some)],
            support::policy(1),
            proptest::collection::vec(device(), 1..=5),
            proptest::collection::vec(piece(), 0..=2),
            any::<u8>(),
        ),
        support::policy(1),
        proptest::collection::vec(support::hotplug(), 5),
        any::<bool>(),
        prop_oneof![1 => Just(0u8), 1 => any::<u8>()],
    )
        .prop_map(
            |(
                (slots, bus_max, io, old, devs, pieces, mask),
                mut policy,
                hotplug,
                mirror,
                unplugged,
            )| {
                // Every expander has a bus_nr, as libvirt always writes one (`busNr`): see
                // `expander_without_bus_nr` for what adoption does without.
                let pieces = pieces
                    .into_iter()
                    .map(|p| match p {
                        Piece::Expander(n, None, v) => Piece::Expander(n, Some(0), v),
                        p => p,
                    })
                    .collect();
                // pack_integrated stays as it was: a guest packed before is not what the
                // new policy is about (its R-INT-SLOT would refuse the existing guest).
                policy.pack_integrated = old.pack_integrated;
                AdoptCase {
                    before: build_case(slots, bus_max, io, old, devs, pieces, mask),
                    policy,
                    hotplug,
                    mirror,
                    unplugged,
                }
            },
        )
}

/// What one comparison came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The earlier request had no plan, or the existing guest breaks a rule the policy
    /// is not about (adoption refuses it): nothing to compare.
    Skipped,
    /// Both find no layout.
    Infeasible,
    /// Both find the same minimum, with no guest-visible change or with some.
    Unchanged,
    Changed,
    /// Adoption does worse than the oracle's minimum (a worse score, a refusal, or an
    /// internal error), with the case.
    Differs(String),
}

/// Compares adoption with the oracle on one case. An error is what must never happen
/// whatever the open bugs: an invalid plan, changes listed wrong, or adoption doing better
/// than the oracle (then the oracle is wrong).
fn compare(c: &AdoptCase) -> Result<Outcome, TestCaseError> {
    let Some(guest) = c.guest() else {
        return Ok(Outcome::Skipped);
    };
    compare_guest(&guest, &c.before.catalog(), &|| c.describe(&guest))
}

/// [`compare`] on an existing guest, with the catalog and what describes the case.
fn compare_guest(
    guest: &Request,
    cat: &pciplan::Catalog,
    why: &dyn Fn() -> String,
) -> Result<Outcome, TestCaseError> {
    let got = adopt_with(guest, cat);
    if let Err(PlanError::Pins(_) | PlanError::Invalid(_)) = &got {
        return Ok(Outcome::Skipped);
    }
    let want = adopt_min(guest, cat);
    let plan = match (got, want) {
        (Ok(p), _) => p,
        (Err(PlanError::Infeasible(_)), None) => return Ok(Outcome::Infeasible),
        (Err(e @ (PlanError::Infeasible(_) | PlanError::Internal(_))), Some(w)) => {
            let e = e.to_string().replace('\n', " ");
            return Ok(Outcome::Differs(format!(
                "adopt: {e}; the oracle finds {w:?}\n{}",
                why()
            )));
        }
        (Err(e), w) => {
            return Err(TestCaseError::fail(format!(
                "adopt says {e}; the oracle finds {w:?}\n{}",
                why()
            )))
        }
    };
    check_plan(&plan, guest, cat, why)?;
    let got = score(&plan);
    let Some(want) = want else {
        return Err(TestCaseError::fail(format!(
            "adopt found {got:?} (changes, controllers added, flips), a valid plan, but the oracle finds nothing\n{}",
            why()
        )));
    };
    if got < want && !plan.optimal {
        // Known: a device above function 0 kept beside another device at function 0 is
        // outside the program's model and the oracle's (R-FUNC); the plan says it is not
        // proven minimal.
        return Ok(Outcome::Differs(format!(
            "adopt: {got:?} (not proven minimal); the oracle finds {want:?}\n{}",
            why()
        )));
    }
    if got < want {
        return Err(TestCaseError::fail(format!(
            "adopt found {got:?} (changes, controllers added, flips), a valid plan, but the oracle's minimum is {want:?}\n{}",
            why()
        )));
    }
    Ok(if got > want {
        Outcome::Differs(format!(
            "adopt: {got:?}; the oracle finds {want:?} (changes, controllers added, flips)\n{}",
            why()
        ))
    } else if got.0 == 0 {
        Outcome::Unchanged
    } else {
        Outcome::Changed
    })
}

/// An adopted plan's (guest-visible changes, controllers added, ports flipped).
fn score(plan: &Plan) -> (u32, u32, u32) {
    let flips = plan
        .changes
        .iter()
        .flatten()
        .filter(|x| x.change == ChangeKind::PortHotplug)
        .count() as u32;
    let changes = plan.guest_visible_changes.unwrap_or(u32::MAX);
    (changes, plan.cost, flips)
}

/// The adopted plan is valid for the guest with its devices free and its ports as the
/// plan set them, keeps every existing controller, is proven optimal, and lists the
/// changes a comparison of the two layouts finds.
fn check_plan(
    plan: &Plan,
    guest: &Request,
    cat: &pciplan::Catalog,
    why: &dyn Fn() -> String,
) -> Result<(), TestCaseError> {
    let mut free = guest.clone();
    for d in free.devices.iter_mut() {
        d.address = None;
    }
    for x in free.controllers.iter_mut() {
        let after = plan.controllers.iter().find(|p| p.id == x.id);
        prop_assert!(
            after.is_some_and(|p| p.address() == x.address && !p.added),
            "existing controller {} not kept\n{}",
            x.id,
            why()
        );
        x.hotplug = after.and_then(|p| p.hotplug).or(x.hotplug);
    }
    let bad = validate(plan, &free, cat);
    prop_assert!(
        bad.is_empty(),
        "adopted plan fails validation: {:?}\n{}",
        bad,
        why()
    );
    prop_assert!(plan.optimal, "adopted plan not proven optimal\n{}", why());
    let changes = plan.changes.clone().unwrap_or_default();
    // G-ID, computed here.
    let seen: Vec<(String, &str)> = changes
        .iter()
        .filter(|x| x.guest_visible)
        .map(|x| {
            let kind = match x.change {
                ChangeKind::Moved => "moved",
                ChangeKind::Renumbered => "renumbered",
                _ => "other",
            };
            (x.id.clone(), kind)
        })
        .collect();
    let root = cat.root.bus.clone();
    let want = visible_changes(&Layout::of_request(guest), &Layout::of_plan(plan), &root);
    let want: Vec<(String, &str)> = want.into_iter().collect();
    prop_assert_eq!(
        &seen,
        &want,
        "guest-visible changes listed vs G-ID\n{}",
        why()
    );
    prop_assert_eq!(plan.guest_visible_changes, Some(want.len() as u32));
    // G-FLIP: existing ports whose hotplug differs.
    let flipped: BTreeSet<&str> = guest
        .controllers
        .iter()
        .filter(|x| {
            let after = plan.controllers.iter().find(|p| p.id == x.id);
            after.is_some_and(|p| p.hotplug.unwrap_or(true) != x.hotplug.unwrap_or(true))
        })
        .map(|x| x.id.as_str())
        .collect();
    let listed: BTreeSet<&str> = changes
        .iter()
        .filter(|x| x.change == ChangeKind::PortHotplug)
        .map(|x| x.id.as_str())
        .collect();
    prop_assert_eq!(flipped, listed, "ports flipped vs listed\n{}", why());
    let added: BTreeSet<&str> = plan
        .controllers
        .iter()
        .filter(|p| p.added)
        .map(|p| p.id.as_str())
        .collect();
    let listed: BTreeSet<&str> = changes
        .iter()
        .filter(|x| x.change == ChangeKind::Added)
        .map(|x| x.id.as_str())
        .collect();
    prop_assert_eq!(&added, &listed, "controllers added vs listed\n{}", why());
    prop_assert_eq!(added.len() as u32, plan.cost);
    Ok(())
}

/// The comparison in CI: 2,000 generated cases (about 1,170 compared; the others had no
/// earlier plan, or adoption refuses the existing guest for a rule the policy is not about).
/// Every adopted plan is valid and lists its changes right, adoption never beats the oracle
/// (a plan better than its minimum would show the oracle wrong), and it finds the oracle's
/// minimum on every case. `adoption_is_the_oracle_minimum` is the same with random cases
/// that shrink (ignored: rare random cases still differ, see there).
#[test]
fn adoption_against_the_oracle() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let outcomes = (0..2000).map(|_| {
        let c = adopt_case().new_tree(&mut runner).unwrap().current();
        compare(&c).unwrap_or_else(|e| panic!("{e}"))
    });
    let (n, compared) = tally("", outcomes);
    assert!(compared >= 1000);
    assert!(n("Changed") >= 200 && n("Unchanged") >= 200 && n("Infeasible") >= 50);
}

/// The same comparison on aarch64 `virt` (`Case::on_virt`: UEFI, AAVMF's I/O budget cut
/// like q35's; `virtio-gpu-pci` for the VGA): 2,000 generated cases, the same checks.
#[test]
fn adoption_against_the_oracle_on_virt() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let outcomes = (0..2000).map(|_| {
        let mut c = adopt_case().new_tree(&mut runner).unwrap().current();
        c.before = c.before.on_virt();
        compare(&c).unwrap_or_else(|e| panic!("{e}"))
    });
    let (n, compared) = tally("virt ", outcomes);
    assert!(compared >= 1000);
    assert!(n("Changed") >= 200 && n("Unchanged") >= 200 && n("Infeasible") >= 50);
}

/// Counts `outcomes` by kind and prints them with the first few differences; checks that
/// adoption never does worse than the oracle. Returns
/// the count of a kind and the number compared.
fn tally(what: &str, outcomes: impl Iterator<Item = Outcome>) -> (impl Fn(&str) -> u32, u32) {
    let mut count = std::collections::BTreeMap::new();
    let mut differs = Vec::new();
    let mut total = 0;
    for o in outcomes {
        total += 1;
        if let Outcome::Differs(m) = &o {
            differs.push(m.clone());
        }
        let key = format!("{o:?}").split('(').next().unwrap_or("").to_string();
        *count.entry(key).or_insert(0u32) += 1;
    }
    eprintln!("outcomes of {total} {what}cases: {count:?}");
    for m in differs.iter().take(5) {
        eprintln!("differs: {m}");
    }
    let skipped = count.get("Skipped").copied().unwrap_or(0);
    let compared = total - skipped;
    assert!(
        differs.is_empty(),
        "adoption does worse than the oracle on {} of {compared} cases: {count:?}",
        differs.len()
    );
    (move |k: &str| count.get(k).copied().unwrap_or(0), compared)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        max_shrink_iters: 2048,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/oracle_adopt.txt"))),
        ..ProptestConfig::default()
    })]
    /// The strict comparison: adoption finds the oracle's minimum on every case (random
    /// cases, shrunk to a small one on failure). Still ignored: the deterministic 2,000 of
    /// `adoption_against_the_oracle` all agree, but random runs of 2,000 find now and then
    /// a case where they do not (a NUMA expander's endpoint-only `hotplug=off` port that a
    /// unit without a NUMA node could take; a switch counted on such a port).
    #[test]
    #[ignore]
    fn adoption_is_the_oracle_minimum(c in adopt_case()) {
        let o = compare(&c)?;
        if let Outcome::Differs(m) = o {
            prop_assert!(false, "{}", m);
        }
    }
}

/// A guest where a new bus has to go before existing ones or cost more: the top `pcie.0`
/// slot full of root ports (8, each hot-pluggable or not), some holding devices, the
/// slots below holding at most an integrated device each. A new port goes to a lower slot
/// (renumbering every device in the top slot), on an expander (a controller more), or a
/// bridge or switch into an empty root port (renumbering the devices after it).
fn full_slot_guest() -> impl Strategy<Value = (u8, u32, Request)> {
    let on_port = (0usize..3, 0usize..8, support::hotplug());
    let integrated = (0usize..6, support::hotplug());
    (
        2u8..=3,
        prop_oneof![2 => Just(255u32), 1 => 9u32..=12],
        proptest::collection::vec(any::<bool>(), 8),
        proptest::collection::vec(on_port, 1..=3),
        proptest::collection::vec(integrated, 0..=2),
        support::policy(1),
    )
        .prop_map(|(slots, bus_max, hps, on_ports, integ, mut policy)| {
            policy.pack_integrated = false;
            let models = few_models();
            let mut controllers = Vec::new();
            for (f, &h) in hps.iter().enumerate() {
                controllers.push(format!(
                    r#"{{"id":"rp{f}","model":"pcie-root-port","hotplug":{h},"chassis":{},"address":{{"bus":"pcie.0","slot":{slots},"function":{f}}}}}"#,
                    f + 1
                ));
            }
            let mut devices = Vec::new();
            let mut used = BTreeSet::new();
            let hp = |h: Option<Hotplug>| {
                h.map(|h| format!(r#","hotplug":{}"#, serde_json::to_string(&h).unwrap_or_default()))
                    .unwrap_or_default()
            };
            for (m, port, h) in on_ports {
                if used.insert(port) {
                    let i = devices.len();
                    devices.push(format!(
                        r#"{{"id":"d{i}","model":"{}"{},"address":{{"bus":"rp{port}","slot":0}}}}"#,
                        models[m],
                        hp(h)
                    ));
                }
            }
            for (slot, (m, h)) in (1..slots).zip(integ) {
                let i = devices.len();
                devices.push(format!(
                    r#"{{"id":"d{i}","model":"{}"{},"address":{{"bus":"pcie.0","slot":{slot}}}}}"#,
                    models[m],
                    hp(h)
                ));
            }
            let text = format!(
                r#"{{"policy":{},"devices":[{}],"controllers":[{}]}}"#,
                serde_json::to_string(&policy).unwrap_or_default(),
                devices.join(","),
                controllers.join(",")
            );
            let req = Request::from_json(&text).expect("a full-slot guest parses");
            (slots, bus_max, req)
        })
}

/// The comparison on guests with a full top slot (`full_slot_guest`), where where a new bus
/// goes decides what is renumbered: 500 cases, the same checks as
/// `adoption_against_the_oracle`.
#[test]
fn adoption_against_the_oracle_full_slot() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let outcomes = (0..500).map(|_| {
        let (slots, bus_max, guest) = full_slot_guest().new_tree(&mut runner).unwrap().current();
        let cat = support::shrunk_catalog(slots, bus_max, None);
        let why = || {
            let g = json(&guest);
            format!(
                "catalog: root slots 1..={slots}, bus_numbers.max {bus_max}\nexisting guest: {g}"
            )
        };
        compare_guest(&guest, &cat, &why).unwrap_or_else(|e| panic!("{e}"))
    });
    let (_, compared) = tally("full-slot ", outcomes);
    assert!(compared >= 300);
}

/// A guest that already meets its policy: an oracle case planned without its device pins
/// (a pin may sit where the policy would not put a device), and pinned as it came out,
/// under the same policy (expanders with a bus_nr, as in `adopt_case`).
fn met_case() -> impl Strategy<Value = AdoptCase> {
    adopt_case().prop_map(|mut c| {
        for d in c.before.req.devices.iter_mut() {
            d.address = None;
        }
        c.policy = c.before.req.policy.clone();
        c.hotplug = c.before.req.devices.iter().map(|d| d.hotplug).collect();
        c
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/oracle_adopt.txt"))),
        ..ProptestConfig::default()
    })]
    /// Adopting a plan under its own policy changes nothing: no change listed, no
    /// controller added, every device and controller where it was.
    #[test]
    fn adopting_a_guest_meeting_its_policy_changes_nothing(c in met_case()) {
        let Some(guest) = c.guest() else { return Ok(()) };
        let cat = c.before.catalog();
        let plan = adopt_with(&guest, &cat).map_err(|e| {
            TestCaseError::fail(format!("{e}\n{}", c.describe(&guest)))
        })?;
        prop_assert_eq!(plan.guest_visible_changes, Some(0), "{}", c.describe(&guest));
        prop_assert_eq!(plan.changes.as_ref().map(|x| x.len()), Some(0), "{}", c.describe(&guest));
        prop_assert_eq!(plan.cost, 0);
        for d in &guest.devices {
            let p = plan.devices.iter().find(|p| p.id == d.id);
            prop_assert_eq!(p.map(|p| p.address()), d.address.clone(), "{}", c.describe(&guest));
        }
        for x in &guest.controllers {
            let p = plan.controllers.iter().find(|p| p.id == x.id);
            prop_assert!(p.is_some_and(|p| p.address() == x.address
                && p.hotplug.unwrap_or(true) == x.hotplug.unwrap_or(true)), "{}", c.describe(&guest));
        }
    }

    /// Adoption is deterministic: the same guest gives the same plan, byte for byte, also
    /// when the planner's memo of solutions is cleared in between.
    #[test]
    fn adoption_is_deterministic(c in adopt_case()) {
        let Some(guest) = c.guest() else { return Ok(()) };
        let cat = c.before.catalog();
        let text = |r: Result<Plan, PlanError>| match r {
            Ok(p) => serde_json::to_string(&p).unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        let first = text(adopt_with(&guest, &cat));
        pciplan::forget_solutions();
        let second = text(adopt_with(&guest, &cat));
        let third = text(adopt_with(&guest, &cat));
        prop_assert_eq!(&first, &second, "{}", c.describe(&guest));
        prop_assert_eq!(&first, &third, "{}", c.describe(&guest));
    }
}

/// Not a check: `ONE='slots bus_max io guest-json' cargo test ... one -- --ignored` prints
/// what adopt and the oracle make of one case (io: a number or -).
#[test]
#[ignore]
fn one() {
    let (cat, guest) = support::one_case();
    match adopt_with(&guest, &cat) {
        Ok(p) => eprintln!("adopt: {}", serde_json::to_string_pretty(&p).unwrap()),
        Err(e) => eprintln!("adopt: {e}"),
    }
    eprintln!("oracle: {:?}", adopt_min(&guest, &cat));
}

// ---------------------------------------------------------------------------------------
// Cases the oracle found where adoption did worse: each a small existing guest with the
// minimum worked out by hand (checked against the oracle in CI by
// `oracle_on_the_open_cases`), and a test that adoption finds it: ignored while open
// (`open_*`, and `conservative_*` for what the guard leaves out on purpose).

/// One open case: catalog knobs (root slots, bus numbers, I/O windows), the existing guest,
/// and the minimum (changes, controllers added, flips).
struct Open {
    slots: u8,
    bus_max: u32,
    io: Option<u32>,
    guest: &'static str,
    min: (u32, u32, u32),
}

impl Open {
    fn guest(&self) -> Request {
        Request::from_json(self.guest).expect("open case parses")
    }
    fn catalog(&self) -> pciplan::Catalog {
        support::shrunk_catalog(self.slots, self.bus_max, self.io)
    }
    /// Adoption finds the minimum, with a valid plan.
    fn check(&self) {
        let (guest, cat) = (self.guest(), self.catalog());
        let plan = adopt_with(&guest, &cat).unwrap_or_else(|e| panic!("{e}"));
        let got = score(&plan);
        assert_eq!(
            got,
            self.min,
            "{}",
            serde_json::to_string_pretty(&plan).unwrap()
        );
    }
}

/// A slot freed by a device that moves takes the new root port. Two root slots: `e` stays
/// integrated at 2; `n` must become hot-pluggable (D-ON), so it moves to a new root port
/// in slot 1, which it leaves: (1, 1, 0). Adoption offers new root ports only the slots
/// free in the existing guest (it added an expander and a root port; since 2699e8c it
/// stops with "ran out of pcie.0 slots for the ports the solver counted").
const FREED_SLOT: Open = Open {
    slots: 2,
    bus_max: 255,
    io: None,
    guest: r#"{"devices":[{"id":"e","model":"e1000","hotplug":"off","address":{"bus":"pcie.0","slot":2}},
        {"id":"n","model":"virtio-net-pci","hotplug":"on","address":{"bus":"pcie.0","slot":1}}]}"#,
    min: (1, 1, 0),
};

/// A guest planned with a spare port below its NUMA node's expander (`rp2`), adopted under
/// its own policy: nothing changes, rp2 is the spare (O-SPARE asks for an empty
/// hot-pluggable port, any). Adoption moved `d0` to a new expander instead.
const NUMA_SPARE: Open = Open {
    slots: 2,
    bus_max: 255,
    io: None,
    guest: r#"{"policy":{"default_hotplug":"off","spare_ports":1,"hotplug_off":"auto"},
        "devices":[{"id":"d0","model":"virtio-net-pci","address":{"bus":"pcie.0","slot":1}},
          {"id":"d1","model":"virtio-net-pci","numa_node":0,"address":{"bus":"rp1","slot":0}}],
        "controllers":[{"id":"pxb1","model":"pxb-pcie","address":{"bus":"pcie.0","slot":2},"bus_nr":253,"numa_node":0},
          {"id":"rp1","model":"pcie-root-port","hotplug":false,"address":{"bus":"pxb1","slot":0},"chassis":1},
          {"id":"rp2","model":"pcie-root-port","hotplug":true,"address":{"bus":"pxb1","slot":0,"function":1},"chassis":2}]}"#,
    min: (0, 0, 0),
};

/// A device moved onto an existing bridge shares the window its kept device already
/// has (R-IO): `n` (conventional, now `on`) joins `b` on `br`, and the one I/O window
/// of the budget stays enough: (1, 0, 0). Adoption moved `b` off the bridge as well.
const BRIDGE_WINDOW: Open = Open {
    slots: 2,
    bus_max: 255,
    io: Some(1),
    guest: r#"{"devices":[{"id":"b","model":"rtl8139","hotplug":"any","address":{"bus":"br","slot":1}},
        {"id":"n","model":"rtl8139","hotplug":"on","address":{"bus":"pcie.0","slot":1}}],
        "controllers":[{"id":"rp","model":"pcie-root-port","chassis":1,"address":{"bus":"pcie.0","slot":2}},
          {"id":"br","model":"pcie-pci-bridge","address":{"bus":"rp","slot":0}}]}"#,
    min: (1, 0, 0),
};

/// No expander, 255 bus numbers, and adoption says R-BUSNR. `d0` stays and `rp1` flips
/// to off (D-OFF, `port`); `d1` (conventional, `on`) moves to a new bridge on the empty
/// `rp2`, last in the numbering (renumbers nothing); the spare is `e0rp0` flipped on (a new
/// root port would be a controller more; controllers come before flips): (1, 1, 2).
const BUSNR_WITHOUT_EXPANDERS: Open = Open {
    slots: 4,
    bus_max: 255,
    io: None,
    guest: r#"{"policy":{"spare_ports":1,"hotplug_off":"port"},
        "devices":[{"id":"d0","model":"virtio-net-pci","hotplug":"off","address":{"bus":"rp1","slot":0}},
          {"id":"d1","model":"e1000","hotplug":"on","address":{"bus":"pcie.0","slot":1}}],
        "controllers":[{"id":"e0rp0","model":"pcie-root-port","hotplug":false,"address":{"bus":"pcie.0","slot":4},"chassis":1},
          {"id":"rp1","model":"pcie-root-port","hotplug":true,"address":{"bus":"pcie.0","slot":4,"function":1},"chassis":2},
          {"id":"rp2","model":"pcie-root-port","hotplug":true,"address":{"bus":"pcie.0","slot":4,"function":2},"chassis":3}]}"#,
    min: (1, 1, 2),
};

/// With `pack_integrated`, a moved device may share a kept device's slot (R-INT-SLOT):
/// `p` (now `off`, `integrated`) leaves its port for function 1 of slot 1 beside `k`:
/// (1, 0, 0). Adoption's plan does that, but its program counted a slot more
/// (internal error).
const PACK_BESIDE_A_KEPT_DEVICE: Open = Open {
    slots: 2,
    bus_max: 255,
    io: None,
    guest: r#"{"policy":{"pack_integrated":true},
        "devices":[{"id":"k","model":"virtio-net-pci","hotplug":"off","address":{"bus":"pcie.0","slot":1}},
          {"id":"p","model":"virtio-net-pci","hotplug":"off","address":{"bus":"rp","slot":0}}],
        "controllers":[{"id":"rp","model":"pcie-root-port","chassis":1,"address":{"bus":"pcie.0","slot":2}}]}"#,
    min: (1, 0, 0),
};

/// An expander without a bus_nr (a JSON request may leave it out): the guest meets its
/// policy, nothing changes. Adoption's plan gives the expander a bus_nr, which changes
/// the root every device below it hangs from (internal error: counted 0, the plan has 1).
const EXPANDER_WITHOUT_BUS_NR: Open = Open {
    slots: 2,
    bus_max: 255,
    io: None,
    guest: r#"{"devices":[{"id":"d0","model":"virtio-net-pci","address":{"bus":"rp","slot":0}}],
        "controllers":[{"id":"px","model":"pxb-pcie","address":{"bus":"pcie.0","slot":2}},
          {"id":"rp","model":"pcie-root-port","hotplug":true,"chassis":2,"address":{"bus":"px","slot":0}}]}"#,
    min: (0, 0, 0),
};

/// Adoption's guard on purpose (src/planner/adopt/guard.rs): a new bridge or switch is
/// never put where it would renumber existing devices. Here that costs a flip: `n`
/// (conventional, now `on`) needs a bridge, and only 3 bus numbers leave no room for a new
/// port; a bridge on the empty `rp0` renumbers `d` (`rp1` comes after it): (2, 1, 0).
/// Adoption moves `d` to `rp0`, flipped on, and puts the bridge on `rp1`: (2, 1, 1).
const BRIDGE_BEFORE_A_KEPT_DEVICE: Open = Open {
    slots: 2,
    bus_max: 3,
    io: None,
    guest: r#"{"devices":[{"id":"n","model":"e1000","hotplug":"on","address":{"bus":"pcie.0","slot":1}},
        {"id":"d","model":"virtio-net-pci","hotplug":"on","address":{"bus":"rp1","slot":0}}],
        "controllers":[{"id":"rp0","model":"pcie-root-port","hotplug":false,"chassis":1,"address":{"bus":"pcie.0","slot":2}},
          {"id":"rp1","model":"pcie-root-port","chassis":2,"address":{"bus":"pcie.0","slot":2,"function":1}}]}"#,
    min: (2, 1, 0),
};

/// A switch needs a port a bridge or switch may use. `d2` (now `on`) leaves its
/// integrated slot; `d1` stays behind `rp1`, flipped on; the spare needs a new root port,
/// and every `pcie.0` slot is taken, so `d3` packs beside `d0` (R-INT-SLOT) and the new
/// root port takes slot 1: (2, 1, 1). The program counted a switch on `rp2`, the last
/// port of `pxb1`'s full bus_nr range (R-BUSNR: no number left for it), and the assigner
/// found no bus number (found by the strict random comparison).
const SWITCH_ON_AN_ENDPOINT_ONLY_PORT: Open = Open {
    slots: 3,
    bus_max: 255,
    io: None,
    guest: r#"{"policy":{"default_hotplug":"on","spare_ports":1,"hotplug_off":"auto","pack_integrated":true},
        "devices":[{"id":"d0","model":"virtio-net-pci","hotplug":"off","address":{"bus":"pcie.0","slot":2}},
          {"id":"d1","model":"virtio-net-pci","numa_node":0,"address":{"bus":"rp1","slot":0}},
          {"id":"d2","model":"virtio-net-pci","address":{"bus":"pcie.0","slot":2,"function":1}},
          {"id":"d3","model":"virtio-net-pci","hotplug":"off","address":{"bus":"pcie.0","slot":1}}],
        "controllers":[{"id":"pxb1","model":"pxb-pcie","address":{"bus":"pcie.0","slot":3},"bus_nr":253,"numa_node":0},
          {"id":"rp1","model":"pcie-root-port","hotplug":false,"address":{"bus":"pxb1","slot":0},"chassis":1},
          {"id":"rp2","model":"pcie-root-port","hotplug":true,"address":{"bus":"pxb1","slot":0,"function":1},"chassis":2}]}"#,
    min: (2, 1, 1),
};

/// Was open (found by the strict random comparison): a switch's upstream port is one a
/// bridge or switch may use.
#[test]
fn switch_on_an_endpoint_only_port() {
    SWITCH_ON_AN_ENDPOINT_ONLY_PORT.check();
}

/// A NUMA expander lends its endpoint-only ports too (libvirt gives an expander a bus_nr
/// range its ports fill exactly, so every free port on it is endpoint-only): `d4` (now
/// `off`, `integrated`) must leave `rp3`, every `pcie.0` slot is taken, and the minimum
/// swaps it with `d0` (`any`), which takes `rp3` (the last bus of `pxb1`'s range):
/// (2, 0, 0). Adoption added an expander and a root port for `d0`: (3, 2, 0).
const LENT_ENDPOINT_ONLY_OFF_PORT: Open = Open {
    slots: 3,
    bus_max: 255,
    io: None,
    guest: r#"{"policy":{"default_hotplug":"any","spare_ports":0,"hotplug_off":"integrated","pack_integrated":false},
        "devices":[{"id":"d0","model":"virtio-net-pci","address":{"bus":"pcie.0","slot":1}},
          {"id":"d1","model":"virtio-net-pci","address":{"bus":"pcie.0","slot":2}},
          {"id":"d2","model":"virtio-net-pci","numa_node":0,"address":{"bus":"rp1","slot":0}},
          {"id":"d3","model":"virtio-net-pci","address":{"bus":"rp2","slot":0}},
          {"id":"d4","model":"virtio-net-pci","hotplug":"off","address":{"bus":"rp3","slot":0}}],
        "controllers":[{"id":"pxb1","model":"pxb-pcie","address":{"bus":"pcie.0","slot":3},"bus_nr":252,"numa_node":0},
          {"id":"rp1","model":"pcie-root-port","hotplug":false,"address":{"bus":"pxb1","slot":0},"chassis":1},
          {"id":"rp2","model":"pcie-root-port","hotplug":false,"address":{"bus":"pxb1","slot":0,"function":1},"chassis":2},
          {"id":"rp3","model":"pcie-root-port","hotplug":false,"address":{"bus":"pxb1","slot":0,"function":2},"chassis":3}]}"#,
    min: (2, 0, 0),
};

/// Was conservative (found by the strict random comparison): endpoint-only ports are lent.
#[test]
fn lent_endpoint_only_off_port() {
    LENT_ENDPOINT_ONLY_OFF_PORT.check();
}

/// An empty hot-pluggable port at the end of a NUMA expander's full range flips off for a
/// device without a NUMA node: `d2` (now `off`, strategy `port`) leaves `pcie.0` for `rp3`,
/// flipped: (1, 0, 1). Adoption added a `hotplug=off` root port: (1, 1, 0).
const FLIP_A_LENT_ENDPOINT_ONLY_PORT: Open = Open {
    slots: 2,
    bus_max: 255,
    io: None,
    guest: r#"{"machine":"q35","policy":{"default_hotplug":"on","spare_ports":0,"hotplug_off":"port","pack_integrated":false},"devices":[{"id":"d0","model":"virtio-net-pci","numa_node":0,"address":{"bus":"rp1","slot":0}},{"id":"d1","model":"virtio-net-pci","group":"g1","address":{"bus":"rp2","slot":0}},{"id":"d2","model":"virtio-net-pci","hotplug":"off","address":{"bus":"pcie.0","slot":1}}],"controllers":[{"id":"pxb1","model":"pxb-pcie","address":{"bus":"pcie.0","slot":2},"bus_nr":252,"numa_node":0},{"id":"rp1","model":"pcie-root-port","hotplug":true,"address":{"bus":"pxb1","slot":0},"chassis":1},{"id":"rp2","model":"pcie-root-port","hotplug":true,"address":{"bus":"pxb1","slot":0,"function":1},"chassis":2},{"id":"rp3","model":"pcie-root-port","hotplug":true,"address":{"bus":"pxb1","slot":0,"function":2},"chassis":3}]}"#,
    min: (1, 0, 1),
};

/// A bridge may go before a device that cannot stay: `d3` (now `off`, `integrated`) must
/// leave `rp1`, the last port of slot 3, so a bridge for `d0` and `d1` (conventional, now
/// `on`, leaving `pcie.0`) on the empty `e0rp1` renumbers nothing the guest keeps; `rp1`,
/// emptied, is the spare, and `e0rp0` flips on for `d2`: (3, 1, 1). The guard counted
/// `d3` as a device a bridge there renumbers, put the bridge on `rp1` and flipped
/// `e0rp1` on for the spare: (3, 1, 2).
const BRIDGE_BEFORE_A_MOVED_DEVICE: Open = Open {
    slots: 3,
    bus_max: 255,
    io: None,
    guest: r#"{"machine":"q35","policy":{"default_hotplug":"on","spare_ports":1,"hotplug_off":"integrated","pack_integrated":false},"devices":[{"id":"d0","model":"e1000","address":{"bus":"pcie.0","slot":1}},{"id":"d1","model":"e1000","address":{"bus":"pcie.0","slot":2}},{"id":"d2","model":"virtio-net-pci","address":{"bus":"e0rp0","slot":0}},{"id":"d3","model":"virtio-net-pci","hotplug":"off","address":{"bus":"rp1","slot":0}}],"controllers":[{"id":"e0rp0","model":"pcie-root-port","hotplug":false,"address":{"bus":"pcie.0","slot":3},"chassis":1},{"id":"e0rp1","model":"pcie-root-port","hotplug":false,"address":{"bus":"pcie.0","slot":3,"function":1},"chassis":2},{"id":"rp1","model":"pcie-root-port","hotplug":true,"address":{"bus":"pcie.0","slot":3,"function":2},"chassis":3}]}"#,
    min: (3, 1, 1),
};

/// Was open (found by the strict random comparison): only devices that may stay anchor
/// the guard.
#[test]
fn bridge_before_a_moved_device() {
    BRIDGE_BEFORE_A_MOVED_DEVICE.check();
}

/// A device above function 0 stays beside a device placed anew at function 0 (R-FUNC,
/// R-INT-SLOT): `d0` (now `on`) leaves 01.0 for `rp1`, `d1` (now `off`, `integrated`)
/// leaves `rp1` for 01.0, and `d2` keeps 01.1: (2, 0, 0). The program kept a device above
/// function 0 only with its old neighbour and counted `d2` moved: (3, 0, 0), or a plan
/// that said `optimal: false` when the assigner happened to keep it.
const FUNCTION_ZERO_FILLED: Open = Open {
    slots: 2,
    bus_max: 255,
    io: None,
    guest: r#"{"policy":{"default_hotplug":"off","hotplug_off":"integrated","pack_integrated":true},
        "devices":[{"id":"d0","model":"virtio-net-pci","hotplug":"on","address":{"bus":"pcie.0","slot":1}},
          {"id":"d1","model":"virtio-net-pci","address":{"bus":"rp1","slot":0}},
          {"id":"d2","model":"virtio-net-pci","hotplug":"off","address":{"bus":"pcie.0","slot":1,"function":1}}],
        "controllers":[{"id":"rp1","model":"pcie-root-port","hotplug":true,"chassis":1,"address":{"bus":"pcie.0","slot":2}}]}"#,
    min: (2, 0, 0),
};

/// Was open (found by the strict random comparison): function 0 of a kept slot may be
/// filled by a packed device placed anew.
#[test]
fn function_zero_filled() {
    FUNCTION_ZERO_FILLED.check();
    let plan = adopt_with(
        &FUNCTION_ZERO_FILLED.guest(),
        &FUNCTION_ZERO_FILLED.catalog(),
    )
    .unwrap();
    assert!(plan.optimal);
}

/// Was open (found by the strict random comparison): a lent endpoint-only port may flip.
#[test]
fn flip_a_lent_endpoint_only_port() {
    FLIP_A_LENT_ENDPOINT_ONLY_PORT.check();
}

/// A conventional device without a NUMA node may take a free slot of a NUMA node's
/// existing bridge: `d2` (now `on`) leaves slot 1 for a new root port there, and `d3`
/// (function 1 of that slot, R-FUNC) moves to `br1` below `pxb1`: (2, 1, 0). Adoption
/// could host it only on bridges of NUMA nodes with conventional devices of their own, and
/// added a root port and a bridge more: (2, 3, 0).
const HOSTED_ON_AN_EXISTING_NUMA_BRIDGE: Open = Open {
    slots: 2,
    bus_max: 255,
    io: None,
    guest: r#"{"machine":"q35","policy":{"default_hotplug":"on","spare_ports":0,"hotplug_off":"integrated","pack_integrated":true},"devices":[{"id":"d0","model":"virtio-net-pci","hotplug":"any","numa_node":0,"address":{"bus":"rp1","slot":0}},{"id":"d1","model":"rtl8139","address":{"bus":"br1","slot":1}},{"id":"d2","model":"virtio-net-pci","address":{"bus":"pcie.0","slot":1}},{"id":"d3","model":"e1000","hotplug":"any","address":{"bus":"pcie.0","slot":1,"function":1}}],"controllers":[{"id":"pxb1","model":"pxb-pcie","address":{"bus":"pcie.0","slot":2},"bus_nr":252,"numa_node":0},{"id":"rp1","model":"pcie-root-port","hotplug":false,"address":{"bus":"pxb1","slot":0},"chassis":1},{"id":"rp2","model":"pcie-root-port","hotplug":true,"address":{"bus":"pxb1","slot":0,"function":1},"chassis":2},{"id":"br1","model":"pcie-pci-bridge","address":{"bus":"rp2","slot":0}}]}"#,
    min: (2, 1, 0),
};

/// Was open (found by the strict random comparison).
#[test]
fn hosted_on_an_existing_numa_bridge() {
    HOSTED_ON_AN_EXISTING_NUMA_BRIDGE.check();
}

/// A new root port goes where it renumbers nothing: `n` must become hot-pluggable and
/// moves to a new root port at function 1 of slot 3, after `rp` (slots 1 and 2 come before
/// `rp` and would renumber `d`): (1, 1, 0), in both.
#[test]
fn new_root_port_after_the_existing_ones() {
    let o = Open {
        slots: 3,
        bus_max: 255,
        io: None,
        guest: r#"{"devices":[{"id":"n","model":"virtio-net-pci","hotplug":"on","address":{"bus":"pcie.0","slot":1}},
            {"id":"d","model":"virtio-net-pci","hotplug":"on","address":{"bus":"rp","slot":0}}],
            "controllers":[{"id":"rp","model":"pcie-root-port","chassis":1,"address":{"bus":"pcie.0","slot":3}}]}"#,
        min: (1, 1, 0),
    };
    assert_eq!(adopt_min(&o.guest(), &o.catalog()), Some(o.min));
    o.check();
}

#[test]
#[ignore]
fn conservative_bridge_before_a_kept_device() {
    BRIDGE_BEFORE_A_KEPT_DEVICE.check();
}

/// A spare from a port that flips: `d1` (now `off`) stays and `rp2` flips off; the spare
/// is `rp1` flipped on (an empty port below `d1`'s expander); controllers come before
/// flips (O-ADOPT): (0, 0, 2). Adoption adds a root port at 02.1 instead: (0, 1, 1).
const SPARE_BY_A_FLIP: Open = Open {
    slots: 2,
    bus_max: 255,
    io: None,
    guest: r#"{"policy":{"default_hotplug":"off","spare_ports":1,"hotplug_off":"auto"},
        "devices":[{"id":"d1","model":"vfio-pci","numa_node":1,"address":{"bus":"rp2","slot":0}}],
        "controllers":[{"id":"e0rp","model":"pcie-root-port","hotplug":false,"chassis":1,"address":{"bus":"pcie.0","slot":2}},
          {"id":"e0br","model":"pcie-pci-bridge","address":{"bus":"e0rp","slot":0}},
          {"id":"pxb1","model":"pxb-pcie","bus_nr":253,"numa_node":1,"address":{"bus":"pcie.0","slot":1}},
          {"id":"rp1","model":"pcie-root-port","hotplug":false,"chassis":2,"address":{"bus":"pxb1","slot":0}},
          {"id":"rp2","model":"pcie-root-port","hotplug":true,"chassis":3,"address":{"bus":"pxb1","slot":0,"function":1}}]}"#,
    min: (0, 0, 2),
};

/// Was open (found by this oracle): a NUMA expander's port that only an endpoint may use
/// is lent as a spare.
#[test]
fn spare_by_a_flip() {
    SPARE_BY_A_FLIP.check();
}

const OPEN: [&Open; 14] = [
    &SPARE_BY_A_FLIP,
    &FUNCTION_ZERO_FILLED,
    &BRIDGE_BEFORE_A_MOVED_DEVICE,
    &FLIP_A_LENT_ENDPOINT_ONLY_PORT,
    &HOSTED_ON_AN_EXISTING_NUMA_BRIDGE,
    &SWITCH_ON_AN_ENDPOINT_ONLY_PORT,
    &LENT_ENDPOINT_ONLY_OFF_PORT,
    &BRIDGE_BEFORE_A_KEPT_DEVICE,
    &FREED_SLOT,
    &NUMA_SPARE,
    &BRIDGE_WINDOW,
    &BUSNR_WITHOUT_EXPANDERS,
    &PACK_BESIDE_A_KEPT_DEVICE,
    &EXPANDER_WITHOUT_BUS_NR,
];

/// The oracle finds the minimum worked out by hand for each open (or conservative) case.
#[test]
fn oracle_on_the_open_cases() {
    for o in OPEN {
        assert_eq!(
            adopt_min(&o.guest(), &o.catalog()),
            Some(o.min),
            "{}",
            o.guest
        );
    }
}

/// Was open (found by this oracle): a slot freed by a moved device is offered to new root
/// ports where it renumbers nothing.
#[test]
fn freed_slot_takes_the_new_root_port() {
    FREED_SLOT.check();
}

/// Was open (found by this oracle, fixed by the natural decision of 2699e8c).
#[test]
fn spare_on_a_numa_expander_port() {
    NUMA_SPARE.check();
}

/// Was open (found by this oracle, fixed by the natural decision of 2699e8c).
#[test]
fn moved_device_shares_a_bridge_window() {
    BRIDGE_WINDOW.check();
}

/// Was open (found by this oracle): a port that only an endpoint may use serves, by its
/// setting, endpoints or spares (the program let a `hotplug=off` one hold a bridge).
#[test]
fn bus_numbers_without_expanders() {
    BUSNR_WITHOUT_EXPANDERS.check();
}

/// Was open (found by this oracle): a packed unit that moves may take a function of a kept
/// packed unit's slot.
#[test]
fn pack_beside_a_kept_device() {
    PACK_BESIDE_A_KEPT_DEVICE.check();
}

/// Was open (found by this oracle): an expander's number the plan fills in is no change.
#[test]
fn expander_without_bus_nr() {
    EXPANDER_WITHOUT_BUS_NR.check();
}
