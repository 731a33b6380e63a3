//! `pciplan batch` as a program: ordered results, bad lines, shards, resume, exit status.

mod common;

/// `pciplan ARGS` with `stdin` as standard input.
fn pciplan(args: &[&str], stdin: &str) -> (i32, String, String) {
    common::cli::run(args, Some(stdin)).parts()
}

fn fleet() -> String {
    let mut s = String::new();
    for i in 0..30 {
        match i % 10 {
            3 => s.push_str("{oops\n"),
            7 => {
                let devs: Vec<String> = (0..32).map(|k| format!(r#"{{"id":"n{k}","model":"e1000","hotplug":"off"}}"#)).collect();
                s.push_str(&format!("{{\"name\":\"big-{i}\",\"devices\":[{}]}}\n", devs.join(",")));
            }
            _ => s.push_str(&format!("{{\"name\":\"vm-{i}\",\"devices\":[{{\"id\":\"net0\",\"model\":\"virtio-net-pci\"}},{{\"id\":\"d{i}\",\"model\":\"e1000\"}}]}}\n")),
        }
    }
    s
}

fn line_numbers(out: &str) -> Vec<u64> {
    out.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["line"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn every_line_gets_a_result_in_order() {
    let (code, out, err) = pciplan(&["batch", "-", "--chunk", "4"], &fleet());
    assert_eq!(code, 0, "{err}");
    assert_eq!(line_numbers(&out), (1..=30).collect::<Vec<_>>());
    let v: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v[0]["ok"], true);
    assert_eq!(v[0]["cost"], 3); // net0's port, and a bridge on a port for e1000
    assert_eq!(v[0]["plan"]["devices"][1]["id"], "d0");
    assert_eq!(v[3]["error"]["kind"], "invalid");
    assert!(v[3]["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("line 4: "));
    assert_eq!(v[7]["error"]["kind"], "infeasible");
    assert_eq!(v[7]["error"]["rule"], "R-ROOT");
    assert_eq!(v[7]["name"], "big-7");
    assert!(
        err.contains("guests 30, planned 24, infeasible 3, invalid 3"),
        "{err}"
    );
    // Without the shape cache: the same bytes.
    let (_, plain, _) = pciplan(&["batch", "-", "--no-shape-cache"], &fleet());
    assert_eq!(plain, out);
}

#[test]
fn shards_cover_the_fleet_once() {
    let (_, all, _) = pciplan(&["batch", "-"], &fleet());
    let mut lines: Vec<String> = Vec::new();
    for k in 1..=3 {
        let (code, out, _) = pciplan(&["batch", "-", "--shard", &format!("{k}/3")], &fleet());
        assert_eq!(code, 0);
        assert!(line_numbers(&out).iter().all(|l| (l - 1) % 3 == k - 1));
        lines.extend(out.lines().map(String::from));
    }
    lines.sort_by_key(|l| line_numbers(l)[0]);
    assert_eq!(lines.join("\n") + "\n", all);
    let (code, _, err) = pciplan(&["batch", "-", "--shard", "4/3"], "");
    assert_eq!(code, 2, "{err}");
}

#[test]
fn resume_after_a_kill_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("pciplan-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.jsonl");
    let (_, all, _) = pciplan(&["batch", "-"], &fleet());
    // As if killed while writing line 12: 11 whole lines and half of the next.
    let cut: Vec<&str> = all.lines().collect();
    let partial = cut[..11].join("\n") + "\n" + &cut[11][..20];
    std::fs::write(&out, partial).unwrap();
    let (code, stdout, err) = pciplan(&["batch", "-", "--resume", out.to_str().unwrap()], &fleet());
    assert_eq!(code, 0, "{err}");
    assert!(stdout.is_empty());
    assert!(err.contains("11 lines already answered"), "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), all);
    // Resuming a finished run adds nothing.
    pciplan(&["batch", "-", "--resume", out.to_str().unwrap()], &fleet());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), all);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreadable_input_is_exit_2() {
    let (code, out, err) = pciplan(&["batch", "/nonexistent/fleet.jsonl"], "");
    assert_eq!(code, 2);
    assert!(
        out.is_empty() && err.contains("/nonexistent/fleet.jsonl"),
        "{err}"
    );
}
