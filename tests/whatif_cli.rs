//! `pciplan whatif` on every machine: `--max` on q35, pc and virt guests (the answer is
//! exact: that many more plan, one more does not), `--sweep` and `--policy --adopt` over a
//! fleet that mixes the three machines, each writing its CSV and SVG where told.

mod common;

use std::path::PathBuf;

use common::cli;

/// A fresh directory for one test's files (never the working directory).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pciplan-whatif-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn example(name: &str) -> String {
    format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The examples `files` as a fleet, one JSON line each, written to `dir`/fleet.jsonl.
fn fleet_of(dir: &std::path::Path, files: &[&str]) -> (Vec<String>, PathBuf) {
    let fleet: Vec<String> = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(example(f)).unwrap();
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap()
                .to_string()
        })
        .collect();
    let path = dir.join("fleet.jsonl");
    std::fs::write(&path, fleet.join("\n") + "\n").unwrap();
    (fleet, path)
}

/// The guest of `file` with `n` more `model` devices (hotplug `hp`), as JSON text.
fn with_more(file: &str, model: &str, hp: &str, n: usize) -> String {
    let text = std::fs::read_to_string(file).expect("example");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let devs = v["devices"].as_array_mut().expect("devices");
    for k in 0..n {
        devs.push(serde_json::json!({"id": format!("more{k}"), "model": model, "hotplug": hp}));
    }
    v.to_string()
}

/// `--max` says how many more fit; planning that many succeeds and one more is refused as
/// infeasible (exit 1), on each machine.
#[test]
fn max_is_exact_on_every_machine() {
    let dir = scratch("max");
    let cases = [
        ("mixed.json", "virtio-blk-pci", "on", "pcie.0"),
        ("pc-mixed.json", "e1000", "on", "pci.0"),
        ("pc-mixed.json", "virtio-net-pci", "off", "pci.0"),
        ("virt-mixed.json", "virtio-net-pci", "off", "pcie.0"),
    ];
    for (file, model, hp, root) in cases {
        let csv = dir.join(format!("{file}-{model}.csv"));
        let svg = dir.join(format!("{file}-{model}.svg"));
        let spec = format!("{model}:{hp}");
        let ran = cli::run(
            &[
                "whatif",
                &example(file),
                "--max",
                &spec,
                "--csv",
                csv.to_str().unwrap(),
                "--svg",
                svg.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(ran.code, 0, "{file} {model}: {}", ran.stderr);
        let first = ran.stdout.lines().next().unwrap_or("");
        let max: usize = first
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{file}: {first}"));
        assert!(max > 0, "{file} {model}: {first}");
        assert!(
            ran.stdout.lines().nth(1).unwrap_or("").contains(root),
            "{}",
            ran.stdout
        );
        // The CSV has a row per count; the chart names the root bus.
        let rows = std::fs::read_to_string(&csv)
            .expect("csv written")
            .lines()
            .count();
        assert_eq!(rows, max + 1, "{file} {model}");
        let chart = std::fs::read_to_string(&svg).expect("svg written");
        assert!(chart.contains(&format!("{root} slots used")), "{file}");
        for (n, code) in [(max, 0), (max + 1, 1)] {
            let req = with_more(&example(file), model, hp, n);
            let ran = cli::run(&["plan", "-"], Some(&req));
            assert_eq!(ran.code, code, "{file}: {n} more {model}: {}", ran.stderr);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fleet of a q35, a pc and a virt guest: a sweep plans all three at every value, and
/// `--policy --adopt` adopts each (their addresses from a first plan) under the change.
#[test]
fn fleet_studies_mix_machines() {
    let dir = scratch("fleet");
    let (fleet, fleet_file) = fleet_of(&dir, &["mixed.json", "pc-mixed.json", "virt-mixed.json"]);
    let csv = dir.join("sweep.csv");
    let ran = cli::run(
        &[
            "whatif",
            fleet_file.to_str().unwrap(),
            "--sweep",
            "spare_ports=0..3",
            "--csv",
            csv.to_str().unwrap(),
            "--svg",
            "none",
        ],
        None,
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let rows: Vec<Vec<String>> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert_eq!((r[1].as_str(), r[2].as_str()), ("3", "0"), "{r:?}");
    }

    // Existing guests: each request pinned where a first plan put it (`--previous`'s
    // pinning, through the library).
    let existing: Vec<String> = fleet
        .iter()
        .map(|t| {
            let req = pciplan::Request::from_json(t).unwrap();
            let plan = pciplan::plan(&req).unwrap();
            let pinned = req.pinned_to(&pciplan::Previous::from(&plan)).unwrap();
            serde_json::to_string(&pinned).unwrap()
        })
        .collect();
    let existing_file = dir.join("existing.jsonl");
    std::fs::write(&existing_file, existing.join("\n") + "\n").unwrap();
    let change = dir.join("nics-off.json");
    std::fs::write(
        &change,
        r#"{"devices":[{"match":{"model":["virtio-net-pci","e1000*"]},"set":{"hotplug":"off"}}]}"#,
    )
    .unwrap();
    let csv = dir.join("policy.csv");
    let ran = cli::run(
        &[
            "whatif",
            existing_file.to_str().unwrap(),
            "--policy",
            change.to_str().unwrap(),
            "--adopt",
            "--csv",
            csv.to_str().unwrap(),
            "--svg",
            dir.join("policy.svg").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("3 reach it"), "{}", ran.stdout);
    assert!(ran.stdout.contains("cannot reach it: 0"), "{}", ran.stdout);
    assert!(dir.join("policy.svg").exists());
    // The pc guest turns root hotplug off (one flip): its NIC left on pci.0 is renamed
    // (G-FLIP), a column of its own.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("line,name,guest_visible_changes,moved,renumbered,renamed,ports_flipped,controllers_added,rule")
    );
    let pc: Vec<&str> = lines
        .find(|l| l.contains(",legacy-01,"))
        .expect("the pc guest's row")
        .split(',')
        .collect();
    assert_eq!((pc[5], pc[6]), ("1", "1"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The machine-migration study: a pc guest and a q35 guest swept over `machine=pc,q35`. Each
/// value is planned with its own machine's catalog (the q35 guest's NUMA node fails on pc
/// with PC-NUMA, named in the table); the CSV counts root slots; `--catalog` is refused.
#[test]
fn machine_sweep_moves_a_fleet_between_pc_and_q35() {
    let dir = scratch("machine");
    let (_, fleet_file) = fleet_of(&dir, &["pc-mixed.json", "mixed.json"]);
    let csv = dir.join("machine.csv");
    let svg = dir.join("machine.svg");
    let args = [
        "whatif",
        fleet_file.to_str().unwrap(),
        "--sweep",
        "machine=pc,q35",
        "--csv",
        csv.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ];
    let ran = cli::run(&args, None);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.contains("not planned, by rule: PC-NUMA 1"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("pcie-root-port"), "{}", ran.stdout);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("machine,planned,failed,cost,root_slots,bus_numbers,hotplug_lost,hotplug_gained")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0][0], rows[0][1], rows[0][2]), ("pc", "1", "1"));
    assert_eq!((rows[1][0], rows[1][1], rows[1][2]), ("q35", "2", "0"));
    // q35 adds root ports where pc plugs into pci.0: it costs more.
    let cost = |r: &Vec<&str>| r[3].parse::<u64>().unwrap();
    assert!(cost(&rows[1]) > cost(&rows[0]), "{rows:?}");
    assert!(std::fs::read_to_string(&svg)
        .unwrap()
        .contains("root bus (pcie.0 or pci.0)"));

    let catalog = example("../models/q35.json");
    let mut refused: Vec<&str> = args.to_vec();
    refused.extend(["--catalog", catalog.as_str()]);
    let ran = cli::run(&refused, None);
    assert_eq!(ran.code, 2, "{}", ran.stdout);
    assert!(ran.stderr.contains("leave out --catalog"), "{}", ran.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}
