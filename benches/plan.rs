//! One guest at 8, 32, 128 and 250 devices: parse, solve (plan) and emit timed apart and
//! together (`cargo bench --bench plan`).
//!
//! Criterion repeats the same request, so after the first iteration the planner's memo of
//! integer-program solutions answers the solve ("warm"): that is the steady state of a
//! service planning guests of recurring shapes. The `cold` rows empty that memo before
//! every iteration (`pciplan::forget_solutions`), so they include a real ILP solve.

/// The command line's allocator (src/main.rs), so that the numbers are those of `pciplan`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "fleet/mod.rs"]
mod fleet;

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use pciplan::{Catalog, Request};

fn sizes(c: &mut Criterion) {
    let cat = Catalog::q35();
    let mut g = c.benchmark_group("guest");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    for n in [8usize, 32, 128, 250] {
        let text = fleet::sized(n);
        let req = Request::from_json(&text).expect("parses");
        let plan = pciplan::plan(&req).expect("plans");
        g.bench_with_input(BenchmarkId::new("parse", n), &text, |b, t| {
            b.iter(|| Request::from_json(black_box(t)))
        });
        g.bench_with_input(BenchmarkId::new("solve", n), &req, |b, r| {
            b.iter(|| pciplan::plan_with(black_box(r), cat))
        });
        g.bench_with_input(BenchmarkId::new("emit_json", n), &plan, |b, p| {
            b.iter(|| pciplan::emit::json(black_box(p)))
        });
        g.bench_with_input(BenchmarkId::new("emit_qemu", n), &plan, |b, p| {
            b.iter(|| pciplan::emit::qemu(black_box(p), cat))
        });
        g.bench_with_input(BenchmarkId::new("full", n), &text, |b, t| {
            b.iter(|| {
                let r = Request::from_json(black_box(t)).expect("parses");
                let p = pciplan::plan_with(&r, cat).expect("plans");
                pciplan::emit::json(&p)
            })
        });
        // Cold: see `full_cold`.
        g.bench_with_input(BenchmarkId::new("full_cold", n), &text, |b, t| {
            b.iter_custom(|iters| full_cold(iters, t, cat))
        });
    }
    g.finish();
}

/// `iters` full plans of `text`, each with the memo of integer-program solutions emptied
/// first (outside the timing), so that every one solves the program afresh.
fn full_cold(iters: u64, text: &str, cat: &Catalog) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        pciplan::forget_solutions();
        let start = Instant::now();
        let r = Request::from_json(black_box(text)).expect("parses");
        let p = pciplan::plan_with(&r, cat).expect("plans");
        black_box(pciplan::emit::json(&p));
        total += start.elapsed();
    }
    total
}

/// The same guests on each machine (issue 12: a `pc` or `virt` guest plans as fast as a q35
/// one of the same size): full plans, warm and cold.
fn machines(c: &mut Criterion) {
    let mut g = c.benchmark_group("machine");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    for machine in ["q35", "pc", "virt"] {
        for n in [8usize, 32] {
            let text = fleet::sized_on(n, machine);
            let req = Request::from_json(&text).expect("parses");
            let cat = Catalog::for_machine(&req.machine).expect("a known machine");
            pciplan::plan_with(&req, cat).expect("plans");
            let id = format!("{machine}/{n}");
            g.bench_with_input(BenchmarkId::new("full", &id), &text, |b, t| {
                b.iter(|| {
                    let r = Request::from_json(black_box(t)).expect("parses");
                    let p = pciplan::plan_with(&r, cat).expect("plans");
                    pciplan::emit::json(&p)
                })
            });
            g.bench_with_input(BenchmarkId::new("full_cold", &id), &text, |b, t| {
                b.iter_custom(|iters| full_cold(iters, t, cat))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, sizes, machines);
criterion_main!(benches);
