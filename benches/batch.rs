//! A 10,000-guest batch, with and without the shape cache (`cargo bench --bench batch`).
//!
//! - `mixed/no_cache`: a mixed fleet (2..40 devices, random models, hotplug requirements,
//!   policies, groups, NUMA, pins, 2% infeasible, 1% invalid), shape cache off. Every
//!   iteration plans a *fresh* fleet (a new seed; generated outside the timing), so the
//!   planner's memo of ILP solutions only helps where class counts really recur.
//! - `templated/cache`: a template-heavy fleet (50 templates, names and ids differing per
//!   guest), shape cache on, a fresh fleet and a fresh cache every iteration.
//!
//! Both go through `Batch::next_chunk_rendered`, i.e. the work of `pciplan batch` from
//! reading lines to the rendered result lines (and their summary counts), on all cores.

/// The command line's allocator (src/main.rs), so that the numbers are those of `pciplan`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "fleet/mod.rs"]
mod fleet;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pciplan::batch::{Batch, BatchOptions};

const GUESTS: usize = 10_000;

fn run(input: &[u8], cache: bool) -> usize {
    let opts = BatchOptions {
        shape_cache: cache,
        ..BatchOptions::default()
    };
    let mut b = Batch::new(input, opts);
    let mut bytes = 0;
    let mut summary = pciplan::batch::Summary::default();
    while let Some(chunk) = b.next_chunk_rendered().expect("reads") {
        bytes += chunk.texts().map(str::len).sum::<usize>();
        chunk.add_to(&mut summary);
    }
    bytes
}

fn batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch10k");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(GUESTS as u64));
    let mut seed = 1000;
    g.bench_function("mixed/no_cache", |b| {
        b.iter_batched(
            || {
                seed += 1;
                fleet::mixed(seed, GUESTS).join("\n").into_bytes()
            },
            |input| run(&input, false),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("mixed/cache", |b| {
        b.iter_batched(
            || {
                seed += 1;
                fleet::mixed(seed, GUESTS).join("\n").into_bytes()
            },
            |input| run(&input, true),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("templated/no_cache", |b| {
        b.iter_batched(
            || {
                seed += 1;
                fleet::templated(seed, GUESTS, 50).join("\n").into_bytes()
            },
            |input| run(&input, false),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("templated/cache", |b| {
        b.iter_batched(
            || {
                seed += 1;
                fleet::templated(seed, GUESTS, 50).join("\n").into_bytes()
            },
            |input| run(&input, true),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, batch);
criterion_main!(benches);
