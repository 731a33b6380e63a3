//! Any bytes as batch input, each line also repeated under another name: the caches (line
//! and shape) give the same result lines, byte for byte, as planning every line alone.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pciplan::batch::{Batch, BatchOptions};

fn run(input: &str, cache: bool) -> Vec<String> {
    let opts = BatchOptions {
        shape_cache: cache,
        ..BatchOptions::default()
    };
    let mut b = Batch::new(input.as_bytes(), opts);
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = b.next_chunk_jsonl() {
        out.extend(chunk.into_iter().map(|(l, _)| l));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut input = String::new();
    for l in text.lines().take(8) {
        for variant in [
            l.to_string(),
            l.replacen("\"name\":\"", "\"name\":\"x", 1),
            l.replacen("\"name\":", "\"name\":null,\"zz\":", 1),
            l.to_string(),
        ] {
            input.push_str(&variant);
            input.push('\n');
        }
    }
    assert_eq!(run(&input, true), run(&input, false));
});
