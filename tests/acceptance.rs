//! Acceptance: the batch contract on a held-out fleet of 3,000 libvirt guests
//! (`tests/support/heldout.rs`; `PCIPLAN_HELDOUT_SEED` draws another one).
//!
//! Every guest is read from its domain XML into a request; the requests go through
//! `pciplan batch` (the library's [`Batch`], shape cache on, all cores). Then, per line:
//! - the guest planned (`ok`), its cost proven optimal (`optimal: true`);
//! - the line is byte for byte the line of planning that guest alone (the cache changes
//!   nothing);
//! - the cost equals the minimum found by the exhaustive oracle (`tests/support/oracle.rs`,
//!   written from docs/rules.md, no integer program), computed once per distinct request;
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
use pciplan::{plan_with, Catalog};
use support::heldout;
use support::oracle::oracle_min_within;

const GUESTS: usize = 3000;

#[test]
fn held_out_fleet_batch_contract() {
    let seed = heldout::seed();
    let cat = Catalog::q35();
    let fleet = heldout::acceptance(seed, GUESTS);
    let input = heldout::jsonl(&fleet);

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
    for (i, (g, line)) in fleet.iter().zip(&lines).enumerate() {
        let req = &g.request;
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
            let o = oracle_min_within(req, cat, Some(heldout::ORACLE_BUDGET));
            (i, o.expect("the oracle settles every shape of the fleet"))
        });
        let same = &fleet[first].name;
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
        let name = &fleet[i].name;
        let plan = plan_with(&fleet[i].request, cat).expect("planned above");
        let planned = fleet[i].domain.write(&plan).expect("writes");
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
