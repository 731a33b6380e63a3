//! pciplan against libvirt on the same guests, in the same run (`cargo bench --bench
//! vs_libvirt`). Not a unit test: it needs a running libvirtd (`.ci/libvirtd-start`, as
//! root) and prints numbers rather than asserting on them.
//!
//! The guests are the held-out libvirt domains in `tests/data/libvirt/guests/` (no PCI
//! addresses; the hotplug policy in their metadata), each repeated under new names up to
//! `PCIPLAN_VS_LIBVIRT_N` guests (default 300). libvirt's side is `virsh define` of every
//! domain in one virsh session (libvirt assigns PCI addresses and adds controllers at
//! define time); pciplan's side is reading the same XML, planning it and writing the planned
//! XML, on one thread and on all cores.

/// The command line's allocator (src/main.rs), so that the numbers are those of `pciplan`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use pciplan::batch::{Batch, BatchOptions};
use pciplan::libvirt::Domain;
use rayon::prelude::*;

const URI: &str = "qemu:///system";

fn virsh_ok() -> bool {
    Command::new("virsh")
        .args(["-c", URI, "list", "--all"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn virsh_script(script: &str) -> std::io::Result<std::process::Output> {
    let mut child = Command::new("virsh")
        .args(["-c", URI])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())?;
    child.wait_with_output()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("PCIPLAN_VS_LIBVIRT_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/libvirt/guests");
    let mut seeds: Vec<String> = std::fs::read_dir(dir)
        .expect("held-out guests")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .map(|p| std::fs::read_to_string(p).expect("readable"))
        .collect();
    seeds.sort();
    let tag = std::process::id();
    let guests: Vec<(String, String)> = (0..n)
        .map(|i| {
            let xml = &seeds[i % seeds.len()];
            let name = format!("ppvs-{tag}-{i}");
            let start = xml.find("<name>").expect("name") + 6;
            let end = xml.find("</name>").expect("name");
            (
                name.clone(),
                format!("{}{}{}", &xml[..start], name, &xml[end..]),
            )
        })
        .collect();

    // pciplan, one thread: parse the XML, plan, write the planned XML.
    let one = |xml: &String| -> bool {
        let Ok(d) = Domain::parse(xml) else {
            return false;
        };
        let Ok(p) = d.plan() else { return false };
        d.write(&p).is_ok()
    };
    let t = Instant::now();
    let ok1 = guests.iter().filter(|(_, x)| one(x)).count();
    let serial = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let okn = guests.par_iter().filter(|(_, x)| one(x)).count();
    let parallel = t.elapsed().as_secs_f64();
    println!("guests: {n} ({} distinct held-out domains)", seeds.len());
    println!(
        "pciplan, 1 thread : {:>10.0} guests/s ({ok1} planned, {:.1} us/guest)",
        n as f64 / serial,
        serial * 1e6 / n as f64
    );
    println!(
        "pciplan, {} threads: {:>10.0} guests/s ({okn} planned)",
        rayon::current_num_threads(),
        n as f64 / parallel
    );

    // pciplan batch on the same guests as JSON Lines (their requests as read from the XML,
    // each guest named apart), shape cache on: the fleet path of `pciplan batch`.
    let reps = 200usize;
    let lines: Vec<String> = guests
        .iter()
        .filter_map(|(name, xml)| {
            let mut r = Domain::parse(xml).ok()?.request;
            r.name = Some(name.clone());
            serde_json::to_string(&r).ok()
        })
        .collect();
    let jsonl: String = (0..reps)
        .flat_map(|k| {
            lines
                .iter()
                .map(move |l| l.replacen("\"ppvs-", &format!("\"r{k}-ppvs-"), 1) + "\n")
        })
        .collect();
    let total = lines.len() * reps;
    let t = Instant::now();
    let mut b = Batch::new(jsonl.as_bytes(), BatchOptions::default());
    let mut planned = 0usize;
    while let Some(chunk) = b.next_chunk_jsonl().expect("reads") {
        planned += chunk
            .iter()
            .filter(|(l, _)| l.contains("\"ok\":true"))
            .count();
    }
    let batch = t.elapsed().as_secs_f64();
    println!(
        "pciplan batch (JSON Lines, shape cache): {:>10.0} guests/s ({planned} of {total} planned)",
        total as f64 / batch
    );

    if !virsh_ok() {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/libvirtd-start")).status();
    }
    if !virsh_ok() {
        println!("libvirt: no libvirtd answers on {URI} (run .ci/libvirtd-start as root); skipped");
        return;
    }
    let tmp = std::env::temp_dir().join(format!("ppvs-{tag}"));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let mut define = String::new();
    let mut undefine = String::new();
    for (name, xml) in &guests {
        let f = tmp.join(format!("{name}.xml"));
        std::fs::write(&f, xml).expect("write");
        define.push_str(&format!("define {}\n", f.display()));
        undefine.push_str(&format!("undefine {name}\n"));
    }
    let t = Instant::now();
    let out = virsh_script(&define).expect("virsh runs");
    let libvirt = t.elapsed().as_secs_f64();
    let defined = String::from_utf8_lossy(&out.stdout)
        .matches("defined from")
        .count();
    let _ = virsh_script(&undefine);
    let _ = std::fs::remove_dir_all(&tmp);
    println!("libvirt (virsh define, one session): {:>10.0} guests/s ({defined} defined, {:.0} us/guest)", n as f64 / libvirt, libvirt * 1e6 / n as f64);
    println!(
        "ratio: pciplan is {:.0}x libvirt on 1 thread, {:.0}x on all cores (XML in, XML out)",
        libvirt / serial,
        libvirt / parallel
    );
    println!(
        "ratio: pciplan batch is {:.0}x libvirt",
        (total as f64 / batch) / (n as f64 / libvirt)
    );
}
