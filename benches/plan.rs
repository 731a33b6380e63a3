//! One guest at 8, 32, 128 and 250 devices: parse, solve (plan) and emit timed apart and
//! together (`cargo bench --bench plan`).
//!
//! Criterion repeats the same request, so after the first iteration the planner's memo of
//! integer-program solutions answers the solve ("warm"): that is the steady state of a
//! service planning guests of recurring shapes. The `cold` rows plan a request whose
//! program has never been solved in the process (each iteration changes `spare_ports` and
//! the device count), so they include a real ILP solve.

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
        // Cold: a program never solved before in this process, each iteration.
        let mut k = 0u32;
        g.bench_function(BenchmarkId::new("full_cold", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    k += 1;
                    // Distinct (device count, spare ports) pairs: a new class-count model.
                    let extra = (k / 8) as usize % 40;
                    let mut r = Request::from_json(&fleet::sized(n.saturating_sub(extra).max(1)))
                        .expect("parses");
                    r.policy.spare_ports = k % 8 + 8 * (k / 320);
                    let text = serde_json::to_string(&r).expect("serialises");
                    let t = Instant::now();
                    let r = Request::from_json(black_box(&text)).expect("parses");
                    let out = pciplan::plan_with(&r, cat).map(|p| pciplan::emit::json(&p));
                    total += t.elapsed();
                    black_box(out).ok();
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, sizes);
criterion_main!(benches);
