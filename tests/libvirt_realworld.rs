//! Real-world q35 domains as virt-install, NixVirt, oVirt and others write them (the corpus
//! `realworld`, outside the repository: tests/README.md, "Corpora"). Each one is read, checked
//! and planned without a panic; every plan validates, and planning the planned XML again adds
//! nothing and changes no byte. No libvirtd needed.

mod common;

use std::path::PathBuf;

use pciplan::libvirt::Domain;
use pciplan::{validate, Catalog};

fn domains(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("xml"))
        .expect("realworld/xml")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    v.sort();
    v
}

#[test]
fn realworld_domains_plan_and_replan_unchanged() {
    let Some(dir) = common::corpus::dir("realworld") else {
        return;
    };
    let (mut planned, mut refused, mut failures) = (0, Vec::new(), Vec::new());
    for path in domains(&dir) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let dom = match Domain::parse(&text) {
            Ok(d) => d,
            Err(e) => {
                refused.push(format!("{name}: {e}"));
                continue;
            }
        };
        let _ = dom.check();
        let plan = match dom.plan() {
            Ok(p) => p,
            Err(e) => {
                refused.push(format!("{name}: {e}"));
                continue;
            }
        };
        let v = validate(&plan, &dom.request, Catalog::q35());
        if !v.is_empty() {
            failures.push(format!("{name}: plan breaks rules: {v:?}"));
            continue;
        }
        let xml = match dom.write(&plan) {
            Ok(x) => x,
            Err(e) => {
                failures.push(format!("{name}: cannot write the plan: {e}"));
                continue;
            }
        };
        // Planning the planned XML again adds nothing and changes no byte.
        let again = Domain::parse(&xml)
            .map_err(|e| e.to_string())
            .and_then(|d| {
                let p = d.plan().map_err(|e| e.to_string())?;
                Ok((p.cost, d.write(&p).map_err(|e| e.to_string())?))
            });
        match again {
            Ok((0, same)) if same == xml => planned += 1,
            Ok((cost, _)) => failures.push(format!(
                "{name}: the planned XML plans again at cost {cost}, or is written differently"
            )),
            Err(e) => failures.push(format!("{name}: the planned XML does not plan again: {e}")),
        }
    }
    eprintln!(
        "realworld: {planned} planned and re-planned unchanged; {} refused:\n{}",
        refused.len(),
        refused.join("\n")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(planned >= 60, "only {planned} real-world domains planned");
}
