//! The acceptance run, timed (`cargo bench --bench acceptance`): the held-out fleet of
//! `tests/acceptance.rs` (3,000 libvirt guests, `PCIPLAN_HELDOUT_SEED` draws another),
//! placed by libvirt and by pciplan in the same run, with the batch contract checked on the
//! very lines that were timed.
//!
//! - libvirt: `virsh define` of every domain XML (no addresses) in one virsh session: that
//!   is libvirt assigning PCI addresses and adding controllers. Needs a running libvirtd
//!   (`.ci/libvirtd-start`, as root); without one, libvirt's row is skipped.
//! - pciplan batch, cold: the fleet's requests as JSON Lines through `Batch` (all cores,
//!   shape cache on) in a process state with nothing learnt: the solution memo emptied and a
//!   new shape cache, every repetition.
//! - pciplan batch, steady: the fleet 100 times over as one input (a service or a nightly
//!   re-plan that has seen the shapes before).
//! - pciplan XML in, XML out: each domain read, planned and written back, all cores, no
//!   cache.
//!
//! Then every cold line is checked: planned, proven optimal, and at the cost the exhaustive
//! oracle finds for its request.

#[path = "../tests/support/heldout.rs"]
mod heldout;
#[path = "../tests/support/oracle.rs"]
mod oracle;

/// The command line's allocator (src/main.rs), so that the numbers are those of `pciplan`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use pciplan::batch::{Batch, BatchOptions};
use pciplan::libvirt::Domain;
use pciplan::Catalog;
use rayon::prelude::*;

const GUESTS: usize = 3000;
const URI: &str = "qemu:///system";

fn virsh_ok() -> bool {
    Command::new("virsh")
        .args(["-c", URI, "version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs virsh commands from standard input in one session.
fn virsh_session(script: &str) -> std::io::Result<std::process::Output> {
    let mut child = Command::new("virsh")
        .args(["-c", URI])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Written from another thread: virsh answers while it reads, and a full output pipe
    // would otherwise stop both sides.
    let mut stdin = child.stdin.take().expect("piped stdin");
    let script = script.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
    let out = child.wait_with_output();
    writer.join().expect("writer thread")?;
    out
}

/// Runs the whole batch; returns the result lines and the seconds it took.
fn batch(input: &[u8]) -> (Vec<String>, f64) {
    let t = Instant::now();
    let mut b = Batch::new(input, BatchOptions::default());
    let mut lines = Vec::with_capacity(GUESTS);
    while let Some(chunk) = b.next_chunk_jsonl().expect("reads") {
        lines.extend(chunk.into_iter().map(|(l, _)| l));
    }
    (lines, t.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let cat = Catalog::q35();
    let seed = heldout::seed();
    let fleet = heldout::acceptance(seed, GUESTS);
    let input = heldout::jsonl(&fleet);
    let devices: usize = fleet.iter().map(|g| g.request.devices.len()).sum();
    println!(
        "held-out fleet, seed {seed:#x}: {GUESTS} guests, {:.1} devices a guest on average, {} rayon threads",
        devices as f64 / GUESTS as f64,
        rayon::current_num_threads()
    );

    // libvirt first, so that pciplan's runs do not warm anything libvirt uses.
    if !virsh_ok() {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/libvirtd-start")).status();
    }
    let libvirt = if virsh_ok() {
        let dir = std::env::temp_dir().join(format!("pciplan-acceptance-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (mut define, mut undefine) = (String::new(), String::new());
        for heldout::Guest { name, xml, .. } in &fleet {
            let f = dir.join(format!("{name}.xml"));
            std::fs::write(&f, xml).expect("writes");
            define.push_str(&format!("define {}\n", f.display()));
            undefine.push_str(&format!("undefine {name}\n"));
        }
        let t = Instant::now();
        let out = virsh_session(&define).expect("virsh runs");
        let secs = t.elapsed().as_secs_f64();
        let defined = String::from_utf8_lossy(&out.stdout)
            .matches("defined from")
            .count();
        let _ = virsh_session(&undefine);
        let _ = std::fs::remove_dir_all(&dir);
        if defined != GUESTS {
            println!(
                "libvirt defined only {defined} of {GUESTS}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Some(GUESTS as f64 / secs)
    } else {
        println!("libvirt: no libvirtd answers on {URI} (run .ci/libvirtd-start as root); its row is skipped");
        None
    };

    // pciplan batch, cold: nothing learnt, every repetition.
    let mut cold = Vec::new();
    let mut lines = Vec::new();
    for _ in 0..15 {
        pciplan::forget_solutions();
        let (l, secs) = batch(input.as_bytes());
        cold.push(secs);
        lines = l;
    }
    let cold = GUESTS as f64 / median(cold);

    // Steady: the fleet 100 times over in one batch.
    let reps = 100;
    let big = input.repeat(reps);
    let t = Instant::now();
    let mut b = Batch::new(big.as_bytes(), BatchOptions::default());
    let mut bytes = 0usize;
    while let Some(chunk) = b.next_chunk_rendered().expect("reads") {
        bytes += chunk.texts().map(str::len).sum::<usize>();
    }
    let secs = t.elapsed().as_secs_f64();
    assert!(bytes > 0);
    let steady = (GUESTS * reps) as f64 / secs;

    // XML in, XML out, no cache.
    let t = Instant::now();
    let xml_ok = fleet
        .par_iter()
        .filter(|g| {
            Domain::parse(&g.xml)
                .ok()
                .and_then(|d| d.plan().ok().and_then(|p| d.write(&p).ok()))
                .is_some()
        })
        .count();
    let xml = GUESTS as f64 / t.elapsed().as_secs_f64();

    // The contract, on the timed lines.
    let mut optimum: BTreeMap<String, Option<u32>> = BTreeMap::new();
    let mut bad = 0usize;
    for (g, line) in fleet.iter().zip(&lines) {
        let req = &g.request;
        let mut key = req.clone();
        key.name = None;
        let key = serde_json::to_string(&key).expect("serialises");
        let o = *optimum.entry(key).or_insert_with(|| {
            oracle::oracle_min_within(req, cat, Some(heldout::ORACLE_BUDGET))
                .ok()
                .flatten()
        });
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        let ok = o.is_some_and(|o| v["ok"] == true && v["optimal"] == true && v["cost"] == o);
        bad += usize::from(!ok);
    }

    println!(
        "contract: {} of {GUESTS} lines planned at the oracle's optimum ({} distinct requests), {bad} not; XML in/out planned {xml_ok}",
        lines.len() - bad,
        optimum.len()
    );
    println!();
    println!("| who, same run | guests/s | vs libvirt |");
    println!("|---|---:|---:|");
    let vs = |x: f64| match libvirt {
        Some(l) => format!("{:.0}x", x / l),
        None => "-".into(),
    };
    if let Some(l) = libvirt {
        println!("| libvirt 9.0, `virsh define` in one session | {l:.0} | 1x |");
    }
    println!(
        "| pciplan batch, cold (nothing learnt), median of 15 | {cold:.0} | {} |",
        vs(cold)
    );
    println!(
        "| pciplan batch, steady (fleet x{reps} in one batch) | {steady:.0} | {} |",
        vs(steady)
    );
    println!(
        "| pciplan XML in, XML out, no cache | {xml:.0} | {} |",
        vs(xml)
    );
}
