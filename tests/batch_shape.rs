//! The shape cache gives byte-identical results to planning each guest alone.

#[path = "../benches/fleet/mod.rs"]
mod fleet;

use pciplan::batch::{Batch, BatchOptions, Outcome, Summary};
use pciplan::{Catalog, Request, ShapeCache};

fn alone(line: u64, text: &str) -> String {
    // The reference: parse and plan one guest with no cache of any kind above the planner.
    let opts = BatchOptions {
        shape_cache: false,
        chunk: 1,
        ..BatchOptions::default()
    };
    let mut b = Batch::new(text.as_bytes(), opts);
    let mut o: Outcome = b.next().expect("one line").expect("readable");
    o.line = line;
    let text = o.to_json_line();
    // serde_json's text of the outcome is the reference for the line written directly.
    assert_eq!(text, serde_json::to_string(&o).unwrap());
    text
}

/// How a test reads a batch.
#[derive(Clone, Copy, PartialEq)]
enum Read {
    /// `next_chunk_jsonl`: a rendered line and tally each.
    Jsonl,
    /// `next_chunk_with`: outcomes, each written with `to_json_line`.
    Outcomes,
    /// `next_chunk_rendered`: what `pciplan batch` writes, in pieces of many lines.
    Rendered,
}

fn run(lines: &[String], read: Read) -> (Vec<String>, Summary, (u64, u64)) {
    let input = lines.join("\n") + "\n";
    let opts = BatchOptions {
        chunk: 97,
        ..BatchOptions::default()
    };
    let mut batch = Batch::new(input.as_bytes(), opts);
    let mut got = Vec::new();
    let mut summary = Summary::default();
    loop {
        let chunk: Option<Vec<String>> = match read {
            Read::Jsonl => batch.next_chunk_jsonl().unwrap().map(|v| {
                v.into_iter()
                    .map(|(l, tally)| {
                        summary.add(&tally);
                        l.trim_end_matches('\n').to_string()
                    })
                    .collect()
            }),
            Read::Outcomes => batch.next_chunk_with(|o| o.to_json_line()).unwrap(),
            Read::Rendered => batch.next_chunk_rendered().unwrap().map(|r| {
                r.add_to(&mut summary);
                let text: String = r.texts().collect();
                assert!(text.is_empty() || text.ends_with('\n'));
                text.lines().map(str::to_string).collect()
            }),
        };
        match chunk {
            Some(c) => got.extend(c),
            None => break,
        }
    }
    let s = batch.cache_stats().unwrap();
    (got, summary, (s.hits, s.misses))
}

/// Every way of reading a cached batch (rendered lines, outcomes, the pieces `pciplan batch`
/// writes) gives, line for line, the bytes of planning each guest alone; rendered lines and
/// pieces count the same summary.
fn check(lines: &[String]) -> (u64, u64) {
    let (rendered, summary, stats) = run(lines, Read::Jsonl);
    let (outcomes, _, _) = run(lines, Read::Outcomes);
    let (pieces, pieces_summary, _) = run(lines, Read::Rendered);
    assert_eq!(rendered.len(), lines.len());
    assert_eq!(outcomes.len(), lines.len());
    assert_eq!(pieces.len(), lines.len());
    assert_eq!(pieces_summary, summary);
    assert_eq!(summary.guests, lines.len() as u64);
    for (i, text) in lines.iter().enumerate() {
        let want = alone(i as u64 + 1, text);
        assert_eq!(rendered[i], want, "line {}: {text}", i + 1);
        assert_eq!(outcomes[i], want, "line {}: {text}", i + 1);
        assert_eq!(pieces[i], want, "line {}: {text}", i + 1);
    }
    stats
}

#[test]
fn mixed_fleet_is_byte_identical() {
    let lines = fleet::mixed(7, 700);
    let (hits, misses) = check(&lines);
    assert!(misses > 0);
    let _ = hits;
}

#[test]
fn templated_fleet_is_byte_identical_and_hits() {
    let lines = fleet::templated(11, 1500, 40);
    let (hits, misses) = check(&lines);
    assert!(hits > 1000, "hits {hits} misses {misses}");
}

#[test]
fn planner_style_ids_and_pins_survive_relabelling() {
    // Device ids that look like the planner's own names, a pinned controller named like an
    // added one, groups and NUMA devices; and the same shape with other names.
    let a = r#"{"name":"a","policy":{"spare_ports":2},"devices":[
        {"id":"rp1","model":"virtio-net-pci"},{"id":"x","model":"e1000"},
        {"id":"g0","model":"vfio-pci","group":"gpu"},{"id":"g1","model":"vfio-pci","group":"gpu"},
        {"id":"pxb1","model":"virtio-rng-pci","numa_node":1},
        {"id":"pinned","model":"e1000e","address":{"bus":"rp2","slot":0}}],
        "controllers":[{"id":"rp2","model":"pcie-root-port","chassis":9,"port":40,"address":{"bus":"pcie.0","slot":5,"function":0}}]}"#;
    let b = a
        .replace("\"x\"", "\"y\"")
        .replace("\"gpu\"", "\"card\"")
        .replace("\"pinned\"", "\"p\"")
        .replace("\"a\"", "\"b\"");
    let cache = ShapeCache::new(100);
    for text in [a.to_string(), b.clone(), a.to_string()] {
        let req = Request::from_json(&text).unwrap();
        let want = pciplan::emit::json(&pciplan::plan(&req).unwrap());
        let got = pciplan::emit::json(&cache.plan_with(&req, Catalog::q35()).unwrap());
        assert_eq!(got, want);
    }
    assert_eq!(cache.stats().hits, 2);
}

#[test]
fn errors_name_each_guests_own_devices() {
    let mk = |id: &str| {
        let devs: Vec<String> = (0..32)
            .map(|i| format!(r#"{{"id":"{id}{i}","model":"e1000","hotplug":"off"}}"#))
            .collect();
        Request::from_json(&format!(r#"{{"devices":[{}]}}"#, devs.join(","))).unwrap()
    };
    let cache = ShapeCache::new(100);
    for id in ["a", "b"] {
        let req = mk(id);
        let got = cache.plan_with(&req, Catalog::q35()).unwrap_err();
        assert_eq!(got, pciplan::plan(&req).unwrap_err());
        assert!(got.to_string().contains(&format!("{id}0")), "{got}");
    }
}

#[test]
fn odd_names_and_models() {
    let lines: Vec<String> = [
        r#"{"name":"we\"ird \u00fc\\","devices":[{"id":"a","model":"virtio-net-pci"}]}"#,
        r#"{"name":"plain","devices":[{"id":"b","model":"virtio-net-pci"}]}"#,
        r#"{"devices":[{"id":"c","model":"virtio-net-pci"}]}"#,
        r#"{"devices":[{"id":"d","model":"k-0","bus_kind":"pcie"},{"id":"e","model":"my\"card","bus_kind":"pci"}]}"#,
        r#"{"devices":[{"id":"d","model":"k-0","bus_kind":"pcie"},{"id":"e","model":"my\"card","bus_kind":"pci"}]}"#,
        r#"{"name":"n-0","devices":[{"id":"k-1","model":"virtio-net-pci","group":"g-0"},{"id":"k-0","model":"e1000e","group":"g-0"}]}"#,
        r#"{"name":"x","devices":[{"id":"k-0","model":"virtio-net-pci","group":"g-1"},{"id":"k-1","model":"e1000e","group":"g-1"}]}"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    check(&lines);
}

/// Lines that repeat byte for byte but for the guest name are answered from the line cache
/// (no parse), with every kind of name written in: the bytes stay those of planning alone,
/// and lines that only look alike (a second `name`, a name that is no string) still fail.
#[test]
fn repeated_lines_up_to_the_name() {
    let body = r#""devices":[{"id":"net0","model":"virtio-net-pci","hotplug":"off"},{"id":"d","model":"virtio-blk-pci","group":"g"},{"id":"e","model":"virtio-rng-pci","group":"g"}],"policy":{"spare_ports":1}"#;
    let mut lines = Vec::new();
    for name in [
        r#""a""#,
        r#""b""#,
        r#""tab\there""#,
        r#""\u00e9t\u00e9""#,
        r#""été""#,
        r#""q\"uote\\""#,
        r#""sl\/ash""#,
        "null",
        r#""a""#,
    ] {
        lines.push(format!(r#"{{"name":{name},{body}}}"#));
        lines.push(format!(r#"{{{body},"name":{name}}}"#));
    }
    lines.push(format!("{{{body}}}"));
    lines.push(format!("{{{body}}}"));
    lines.push(format!(r#"{{"name":"a","name":"b",{body}}}"#));
    lines.push(format!(r#"{{"name":7,{body}}}"#));
    lines.push(format!(r#"{{"name":"a",{body}}} trailing"#));
    lines.push(format!(r#"  {{ "name" : "spaced" , {body} }}  "#));
    let (hits, _) = check(&lines);
    assert!(hits >= 15, "repeats answered from the caches: {hits}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// Any guest name, written plainly or with every character escaped, first or last in a
    /// line that otherwise repeats: the line cache gives the bytes of planning alone.
    #[test]
    fn any_name_in_a_repeated_line(
        names in proptest::collection::vec(
            proptest::option::of("(\\PC|[\"\\\\/\\t\\u{1}\\u{7f}]){0,8}"),
            1..6,
        ),
        escaped in proptest::collection::vec(proptest::prelude::any::<bool>(), 6),
        last in proptest::prelude::any::<bool>(),
        body in 0usize..3,
    ) {
        let bodies = [
            r#""devices":[{"id":"n","model":"virtio-net-pci","hotplug":"off"},{"id":"d","model":"e1000","hotplug":"any"}]"#,
            r#""devices":[{"id":"a","model":"vfio-pci","group":"g"},{"id":"b","model":"vfio-pci","group":"g"}],"policy":{"spare_ports":2}"#,
            r#""controllers":[{"id":"p","model":"pcie-root-port","address":{"bus":"pcie.0","slot":4}}],"devices":[{"id":"x","model":"virtio-blk-pci","address":{"bus":"p","slot":0}},{"id":"y","model":"virtio-blk-pci"}]"#,
        ];
        let lines: Vec<String> = names
            .iter()
            .zip(&escaped)
            .flat_map(|(n, &esc)| {
                let name = match n {
                    Some(n) if esc => format!(
                        "\"{}\"",
                        n.encode_utf16().map(|u| format!("\\u{u:04x}")).collect::<String>()
                    ),
                    n => serde_json::to_string(n).unwrap(),
                };
                let line = if last {
                    format!(r#"{{{},"name":{name}}}"#, bodies[body])
                } else {
                    format!(r#"{{"name":{name},{}}}"#, bodies[body])
                };
                [line.clone(), line]
            })
            .collect();
        let (hits, _) = check(&lines);
        proptest::prop_assert!(hits as usize >= names.len(), "hits {hits}");
    }
}
