//! Adopting existing guests (`--adopt`, issue 10): one 32-device guest, and a batch of
//! 10,000 distinct existing guests (`cargo bench --bench adopt`).
//!
//! The guests come from `fleet::existing_of`: a synthetic guest planned as libvirt lays it
//! out (every device hot-pluggable), pinned there, and given back its own policy, which it
//! then adopts. `full` parses, adopts and renders the plan; `full_cold` empties the memo
//! of integer-program solutions before every iteration (a real solve each time).

/// The command line's allocator (src/main.rs), so that the numbers are those of `pciplan`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "fleet/mod.rs"]
mod fleet;

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pciplan::batch::{Batch, BatchOptions};
use pciplan::{Catalog, Request};

const GUESTS: usize = 10_000;

fn one_guest(c: &mut Criterion) {
    let cat = Catalog::q35();
    let text = fleet::existing_of(&fleet::sized(32)).expect("the 32-device guest plans");
    let plan = pciplan::adopt(&Request::from_json(&text).expect("parses")).expect("adopts");
    assert!(plan.optimal && plan.changes.is_some());
    let mut g = c.benchmark_group("adopt");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    g.bench_function("full/32", |b| {
        b.iter(|| {
            let r = Request::from_json(black_box(&text)).expect("parses");
            let p = pciplan::adopt_with(&r, cat).expect("adopts");
            pciplan::emit::json(&p)
        })
    });
    g.bench_function("full_cold/32", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                pciplan::forget_solutions();
                let start = Instant::now();
                let r = Request::from_json(black_box(&text)).expect("parses");
                let p = pciplan::adopt_with(&r, cat).expect("adopts");
                black_box(pciplan::emit::json(&p));
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn run(input: &[u8]) -> usize {
    let opts = BatchOptions {
        adopt: true,
        ..BatchOptions::default()
    };
    let mut b = Batch::new(input, opts);
    let mut bytes = 0;
    while let Some(chunk) = b.next_chunk_rendered().expect("reads") {
        bytes += chunk.texts().map(str::len).sum::<usize>();
    }
    bytes
}

fn batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch10k");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(GUESTS as u64));
    let mut seed = 5000;
    g.bench_function("existing/adopt", |b| {
        b.iter_batched(
            || {
                seed += 1;
                fleet::existing(seed, GUESTS).join("\n").into_bytes()
            },
            |input| run(&input),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, one_guest, batch);
criterion_main!(benches);
