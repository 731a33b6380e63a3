//! Unit tests of the batch: items and lines planned alike, shards, chunks.

use super::*;

/// Requests read by other means (here: parsed with serde_json alone, without the shape
/// check) plan to exactly the outcomes of their lines, numbered as lines, repeats
/// answered by the shape cache; a refused line's outcome as a line's.
#[test]
fn plan_items_equal_lines() {
    let lines = [
        r#"{"name":"a","devices":[{"id":"n","model":"virtio-net-pci","hotplug":"off"}]}"#,
        r#"{"name":"b","devices":[{"id":"n","model":"virtio-net-pci","hotplug":"off"}]}"#,
        r#"{"name":"dup","devices":[{"id":"x","model":"e1000"},{"id":"x","model":"e1000"}]}"#,
        r#"{"name":"model","devices":[{"id":"x","model":"frobnicator"}]}"#,
        "not json",
        "",
        r#"{"name":"pc","machine":"pc","devices":[{"id":"n","model":"e1000"}]}"#,
    ];
    let text = lines.join("\n") + "\n";
    let want: Vec<String> = Batch::new(text.as_bytes(), BatchOptions::default())
        .map(|o| o.unwrap().to_json_line())
        .collect();
    let items: Vec<Item> = lines
        .iter()
        .map(|l| match serde_json::from_str::<Request>(l) {
            Ok(r) => Item::Request(r),
            Err(_) => Item::Line(l.as_bytes().to_vec()),
        })
        .collect();
    assert_eq!(
        items
            .iter()
            .filter(|i| matches!(i, Item::Request(_)))
            .count(),
        5
    );
    let mut batch = Batch::new(io::empty(), BatchOptions::default());
    let got = batch.plan_items(items, |o| o.to_json_line());
    assert_eq!(got, want);
    assert_eq!(batch.cache_stats().unwrap().hits, 1);
    // Numbering goes on from the items before.
    let more = batch.plan_items(vec![Item::Line(b"{}".to_vec())], |o| o.line);
    assert_eq!(more, [8]);
}

/// Items planned into their lines give the command line's lines (with their newlines),
/// repeats answered by the caches included, for lines and requests alike.
#[test]
fn plan_items_lines_equal_lines() {
    let guest = |name: &str, id: &str| {
        format!(
            r#"{{"name":"{name}","devices":[{{"id":"{id}","model":"virtio-net-pci","hotplug":"off"}},{{"id":"d","model":"virtio-blk-pci"}}]}}"#
        )
    };
    let mut lines: Vec<String> = vec![
        guest("a", "n"),
        guest("b", "n"),
        guest("c", "m"),
        "not json".into(),
        String::new(),
        r#"{"name":"model","devices":[{"id":"x","model":"frobnicator"}]}"#.into(),
        r#"{"name":"pc","machine":"pc","devices":[{"id":"n","model":"e1000"}]}"#.into(),
    ];
    lines.push(guest("a", "n"));
    let text = lines.join("\n") + "\n";
    let want: Vec<String> = Batch::new(text.as_bytes(), BatchOptions::default())
        .map(|o| o.unwrap().to_json_line() + "\n")
        .collect();
    for as_requests in [false, true] {
        let items: Vec<Item> = lines
            .iter()
            .map(|l| match serde_json::from_str::<Request>(l) {
                Ok(r) if as_requests => Item::Request(r),
                _ => Item::Line(l.as_bytes().to_vec()),
            })
            .collect();
        let mut batch = Batch::new(io::empty(), BatchOptions::default());
        assert_eq!(batch.plan_items_lines(items), want);
        assert!(batch.cache_stats().unwrap().hits >= 2, "{as_requests}");
    }
}

#[test]
fn shards_partition_lines() {
    let shards: Vec<Shard> = (1..=3).map(|k| Shard::new(k, 3).unwrap()).collect();
    for line in 1..100 {
        assert_eq!(shards.iter().filter(|s| s.contains(line)).count(), 1);
    }
    assert!(
        Shard::parse("0/3").is_err() && Shard::parse("x").is_err() && Shard::parse("1/0").is_err()
    );
}

#[test]
fn line_set() {
    let mut s = LineSet::default();
    s.insert(1);
    s.insert(1000);
    s.insert(1);
    assert_eq!(s.len(), 2);
    assert!(s.contains(1000) && !s.contains(999));
}

#[test]
fn invalid_lines_name_their_line() {
    let out = plan_batch("x\n\n{\"name\":\"n\",\"devices\":[{\"id\":\"a\",\"model\":\"e1000\",\"hotplg\":\"on\"}]}\n");
    let lines: Vec<String> = out.iter().map(|o| o.to_json_line()).collect();
    assert_eq!(
        lines[0],
        r#"{"line":1,"name":null,"ok":false,"error":{"kind":"invalid","message":"line 1: expected value at column 1"}}"#
    );
    assert!(lines[1].contains("line 2: empty line"), "{}", lines[1]);
    assert!(
        lines[2].starts_with(r#"{"line":3,"name":"n","ok":false"#)
            && lines[2].contains("devices[0].hotplg"),
        "{}",
        lines[2]
    );
}

#[test]
fn an_outcome_serializes_as_its_line() {
    let text = concat!(
        "{\"name\":\"ok\",\"devices\":[{\"id\":\"n\",\"model\":\"e1000\",\"hotplug\":\"off\"}]}\n",
        "x\n",
        "{\"devices\":[{\"id\":\"n\",\"model\":\"frob\"}]}\n",
        "{\"devices\":[{\"id\":\"a\",\"model\":\"e1000\",\"address\":{\"bus\":\"pcie.0\",\"slot\":3}},",
        "{\"id\":\"b\",\"model\":\"e1000\",\"address\":{\"bus\":\"pcie.0\",\"slot\":3}}]}\n",
    );
    let out = plan_batch(text);
    assert_eq!(out.len(), 4);
    for o in &out {
        assert_eq!(serde_json::to_string(o).unwrap(), o.to_json_line());
    }
    assert!(out[0].result.is_ok() && out.iter().skip(1).all(|o| o.result.is_err()));
}

#[test]
fn small_chunks_keep_order() {
    let text: String = (0..50)
        .map(|i| {
            format!("{{\"name\":\"g{i}\",\"devices\":[{{\"id\":\"d\",\"model\":\"e1000\"}}]}}\n")
        })
        .collect();
    let opts = BatchOptions {
        chunk: 7,
        ..BatchOptions::default()
    };
    let out: Vec<Outcome> = Batch::new(text.as_bytes(), opts)
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(out.len(), 50);
    for (i, o) in out.iter().enumerate() {
        assert_eq!(
            (o.line, o.name.clone()),
            (i as u64 + 1, Some(format!("g{i}").into()))
        );
    }
}
