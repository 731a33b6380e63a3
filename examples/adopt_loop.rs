//! Adopts one 32-device existing guest in a loop (for profiling: `perf record`).

/// The command line's allocator (src/main.rs), so that the profile is that of `pciplan`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[path = "../benches/fleet/mod.rs"]
mod fleet;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20000);
    let text = fleet::existing_of(&fleet::sized(32)).expect("plans");
    let cat = pciplan::Catalog::q35();
    let mut bytes = 0;
    for _ in 0..n {
        let r = pciplan::Request::from_json(&text).expect("parses");
        let p = pciplan::adopt_with(&r, cat).expect("adopts");
        bytes += pciplan::emit::json(&p).len();
    }
    println!("{bytes}");
}
