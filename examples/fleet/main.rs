//! Writes a synthetic fleet as JSON Lines on standard output, for trying `pciplan batch`
//! and `pciplan whatif` on something big without committing it:
//!
//! ```text
//! cargo run --release --example fleet -- mixed 10000 > mixed.jsonl
//! cargo run --release --example fleet -- templated 1000000 > templated.jsonl
//! cargo run --release --example fleet -- sized 32 > one.json
//! cargo run --release --example fleet -- existing 10000 > existing.jsonl   # batch --adopt
//! cargo run --release --example fleet -- defined 10000 > defined.jsonl     # whatif --adopt
//! ```

#[path = "../../benches/fleet/mod.rs"]
mod fleet;

use std::io::{BufWriter, Write};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kind = args.first().map(String::as_str).unwrap_or("mixed");
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let out = std::io::stdout();
    let mut out = BufWriter::new(out.lock());
    let res = match kind {
        "sized" => writeln!(out, "{}", fleet::sized(n)),
        "templated" => {
            // Generate in slices so a million guests never sit in memory at once.
            let mut r = Ok(());
            let step = 100_000;
            for start in (0..n).step_by(step) {
                for line in fleet::templated(seed + start as u64, step.min(n - start), 50) {
                    r = r.and(writeln!(out, "{line}"));
                }
            }
            r
        }
        "existing" | "defined" => {
            let mut r = Ok(());
            let make = if kind == "existing" {
                fleet::existing
            } else {
                fleet::defined
            };
            for line in make(seed, n) {
                r = r.and(writeln!(out, "{line}"));
            }
            r
        }
        "mixed" => {
            let mut r = Ok(());
            let step = 100_000;
            for start in (0..n).step_by(step) {
                for line in fleet::mixed(seed + start as u64, step.min(n - start)) {
                    r = r.and(writeln!(out, "{line}"));
                }
            }
            r
        }
        other => {
            eprintln!("fleet: unknown kind '{other}' (mixed, templated, sized, existing, defined)");
            std::process::exit(2);
        }
    };
    if res.and_then(|_| out.flush()).is_err() {
        std::process::exit(1);
    }
}
