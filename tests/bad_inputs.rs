//! Every bad input in tests/data/bad gets the exit status and a message naming the culprit
//! (tests/data/bad/EXPECT.tsv), within 5 s, on standard error, without a panic.

use std::path::Path;
use std::time::Duration;

mod common;

/// `pciplan ARGS` with no input, which must answer within 5 s.
fn run(args: &[&str]) -> (i32, String, String) {
    common::cli::run_within(args, None, Duration::from_secs(5)).parts()
}

#[test]
fn every_bad_input_is_refused_clearly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad");
    let expect = std::fs::read_to_string(dir.join("EXPECT.tsv")).unwrap();
    let mut n = 0;
    for line in expect
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut parts = line.split('\t');
        let (file, code, needle) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let path = dir.join(file);
        let (rc, stdout, stderr) = run(&["plan", path.to_str().unwrap()]);
        assert_eq!(rc.to_string(), code, "{file}: exit {rc}, stderr: {stderr}");
        assert!(
            stderr.contains(needle),
            "{file}: stderr lacks {needle:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{file}: {stderr}");
        assert!(stdout.is_empty(), "{file}: printed a plan for bad input");
        assert!(stderr.starts_with("pciplan: "), "{file}: {stderr}");
        n += 1;
    }
    assert!(n >= 45, "only {n} cases");
}

#[test]
fn usage_errors_exit_2() {
    let (rc, _, err) = run(&["plan"]);
    assert_eq!(rc, 2, "{err}");
    let (rc, _, err) = run(&["plan", "/nonexistent/file.json"]);
    assert_eq!(rc, 2);
    assert!(err.contains("/nonexistent/file.json"), "{err}");
    let (rc, _, _) = run(&["frobnicate"]);
    assert_eq!(rc, 2);
    let (rc, _, err) = run(&["plan", "examples/mixed.json", "--format", "yaml"]);
    assert_eq!(rc, 2, "{err}");
}

#[test]
fn output_is_byte_identical_across_runs() {
    for format in ["json", "qemu", "tree", "dot"] {
        let a = run(&["plan", "examples/mixed.json", "--format", format]);
        let b = run(&["plan", "examples/mixed.json", "--format", format]);
        assert_eq!(a.0, 0);
        assert_eq!(a, b, "{format}");
    }
}

#[test]
fn oversized_input_is_refused_without_reading_it_all() {
    let path = std::env::temp_dir().join(format!("pciplan-big-{}.json", std::process::id()));
    let mut text = String::from("{\"name\":\"");
    text.push_str(&"x".repeat(17 << 20));
    text.push_str("\"}");
    std::fs::write(&path, text).unwrap();
    let (rc, _, err) = run(&["plan", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(rc, 2);
    assert!(err.contains("limit"), "{err}");
}

#[test]
fn a_1024_device_guest_plans() {
    let models = ["intel-hda", "usb-ehci", "ich9-intel-hda", "virtio-net-pci"];
    let devices: Vec<String> = (0..1024)
        .map(|i| {
            let m = models[i % 4];
            let hp = if m.starts_with("virtio") {
                if i < 960 {
                    "any"
                } else {
                    "on"
                }
            } else if i % 2 == 0 {
                "on"
            } else {
                "any"
            };
            format!(r#"{{"id":"d{i}","model":"{m}","hotplug":"{hp}"}}"#)
        })
        .collect();
    let text = format!(
        r#"{{"policy":{{"hotplug_off":"auto","pack_integrated":true}},"devices":[{}]}}"#,
        devices.join(",")
    );
    let req = pciplan::Request::from_json(&text).unwrap();
    let plan = pciplan::plan(&req).unwrap();
    assert_eq!(plan.devices.len(), 1024);
    assert!(pciplan::validate(&plan, &req, pciplan::Catalog::q35()).is_empty());
}
