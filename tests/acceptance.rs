//! Acceptance: the batch contract on a held-out fleet of 3,000 libvirt guests
//! (`tests/support/heldout.rs`; `PCIPLAN_HELDOUT_SEED` draws another one).
//!
//! Every guest is read from its domain XML into a request; the requests go through
//! `pciplan batch` (the library's [`Batch`], shape cache on, all cores). Then, per line:
//! - the guest planned (`ok`), its cost proven optimal (`optimal: true`);
//! - the line is byte for byte the line of planning that guest alone (the cache changes
//!   nothing);
//! - the cost equals the minimum found by the exhaustive oracle (`tests/support/oracle.rs`,
//!   written from rules.md, no integer program), computed once per distinct request;
//! - and, one guest per distinct request, the planned XML goes through a real libvirtd:
//!   `virsh define` keeps every address and adds no controller.
//!
//! Speed is not measured here: `cargo bench --bench acceptance` times the same fleet against
//! libvirt in one run.

mod common;
mod support;

use std::collections::BTreeMap;

use common::libvirt as lv;
use pciplan::batch::{Batch, BatchOptions, Outcome};
use pciplan::libvirt::Domain;
use pciplan::{plan_with, Catalog, Request};
use support::heldout;
use support::oracle::oracle_min_within;

const GUESTS: usize = 3000;
/// Oracle search steps per request.
const ORACLE_BUDGET: u64 = 5_000_000;

/// The fleet's requests as JSON Lines, each named after its guest.
fn requests(fleet: &[(String, String)]) -> (Vec<Request>, Vec<Domain>) {
    fleet
        .iter()
        .map(|(name, xml)| {
            let d = Domain::parse(xml).unwrap_or_else(|e| panic!("{name}: {e}\n{xml}"));
            let mut r = d.request.clone();
            r.name = Some(name.clone());
            (r, d)
        })
        .unzip()
}

#[test]
fn held_out_fleet_batch_contract() {
    let seed = heldout::seed();
    let cat = Catalog::q35();
    // A shape the oracle cannot settle within its budget counts as not running (in
    // practice: infeasible ones, whose proof is the whole search).
    let runs = |xml: &str| {
        Domain::parse(xml).is_ok_and(|d| {
            oracle_min_within(&d.request, cat, Some(ORACLE_BUDGET / 5)).is_ok_and(|m| m.is_some())
        })
    };
    let fleet = heldout::fleet(seed, GUESTS, runs);
    let (reqs, doms) = requests(&fleet);
    let input: String = reqs
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();

    let mut batch = Batch::new(input.as_bytes(), BatchOptions::default());
    let mut lines: Vec<String> = Vec::new();
    while let Some(chunk) = batch.next_chunk_jsonl().expect("reads") {
        lines.extend(chunk.into_iter().map(|(l, _)| l));
    }
    assert_eq!(lines.len(), GUESTS, "one result line per guest");

    // Distinct requests (up to the guest's name): the oracle runs once for each.
    let mut shapes: BTreeMap<String, (usize, Option<u32>)> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut infeasible = 0usize;
    for (i, (req, line)) in reqs.iter().zip(&lines).enumerate() {
        let name = req.name.as_deref().unwrap_or("");
        let v: serde_json::Value = serde_json::from_str(line).expect("result line is JSON");
        let alone = Outcome {
            line: i as u64 + 1,
            name: req.name.clone(),
            result: plan_with(req, cat),
        }
        .to_json_line();
        if line.trim_end() != alone {
            failures.push(format!(
                "{name}: batch line differs from planning alone\n batch: {line}\n alone: {alone}"
            ));
        }
        let mut key = req.clone();
        key.name = None;
        let key = serde_json::to_string(&key).unwrap();
        let (first, optimum) = *shapes.entry(key).or_insert_with(|| {
            let o = oracle_min_within(req, cat, Some(ORACLE_BUDGET));
            (i, o.expect("the oracle settles every shape of the fleet"))
        });
        let same = reqs[first].name.as_deref().unwrap_or("");
        match optimum {
            Some(o) if v["ok"] == true && v["optimal"] == true && v["cost"] == o => {}
            Some(o) => failures.push(format!(
                "{name}: the oracle's optimum is {o} (same request as {same}), the batch says {line}"
            )),
            None if v["ok"] == false && v["error"]["kind"] == "infeasible" => infeasible += 1,
            None => failures.push(format!(
                "{name}: the oracle finds no placement, the batch says {line}"
            )),
        }
    }
    let total: u64 = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["cost"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    println!(
        "held-out fleet (seed {seed:#x}): {GUESTS} guests, {} distinct requests, {infeasible} infeasible (the oracle agrees), {total} controllers added in all, {} failures",
        shapes.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{}",
        failures[..failures.len().min(20)].join("\n")
    );

    // One guest per distinct request through libvirt.
    if let Err(e) = lv::ensure() {
        eprintln!("skipping the libvirt part: {e}");
        return;
    }
    let mut bad = Vec::new();
    let mut defined = 0;
    for &(i, _) in shapes.values().filter(|s| s.1.is_some()) {
        defined += 1;
        let name = reqs[i].name.as_deref().unwrap_or("");
        let plan = plan_with(&reqs[i], cat).expect("planned above");
        let planned = doms[i].write(&plan).expect("writes");
        match lv::define_dump(&planned, name) {
            Ok(dump) => {
                if lv::pci_addresses(&planned) != lv::pci_addresses(&dump) {
                    bad.push(format!("{name}: libvirt moved or added addresses"));
                }
                if lv::pci_controllers(&planned) != lv::pci_controllers(&dump) {
                    bad.push(format!("{name}: libvirt added PCI controllers"));
                }
            }
            Err(e) => bad.push(format!("{name}: libvirt refused the planned XML: {e}")),
        }
    }
    println!(
        "libvirt defined {} planned guests (one per distinct feasible request) unchanged",
        defined - bad.len()
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
