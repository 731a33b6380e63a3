//! Planned domain XML through a real libvirt 9.0 (`virsh define` + `dumpxml`; no guest is
//! started): libvirt keeps every address pciplan wrote and adds no PCI controller.
//!
//! Held-out guests (tests/data/libvirt/guests) carry their policy in the metadata and no
//! addresses; each states the optimum in a `pciplan-expect cost=N` comment. After define, the
//! XML libvirt returns is read again: the policy metadata survived, every device's hotplug
//! requirement holds (`check` is clean) and planning it again adds nothing.

mod common;

use std::path::{Path, PathBuf};

use common::libvirt as lv;
use pciplan::libvirt::{Domain, Overrides, ReadOptions};
use pciplan::{validate, Catalog};

fn data(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/libvirt")
        .join(dir)
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn expected_cost(xml: &str) -> u32 {
    let at = xml
        .find("pciplan-expect cost=")
        .expect("guest states its optimum")
        + "pciplan-expect cost=".len();
    xml[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

/// Defines `planned`, and checks libvirt kept it: same PCI addresses, same controllers.
fn round_trip(planned: &str, tag: &str) -> Result<String, String> {
    let dump = lv::define_dump(planned, tag)?;
    let (ours, theirs) = (lv::pci_addresses(planned), lv::pci_addresses(&dump));
    if ours != theirs {
        let only_ours: Vec<_> = ours.iter().filter(|x| !theirs.contains(x)).collect();
        let only_theirs: Vec<_> = theirs.iter().filter(|x| !ours.contains(x)).collect();
        return Err(format!("{tag}: libvirt changed addresses: ours only {only_ours:?}, libvirt only {only_theirs:?}"));
    }
    if lv::pci_controllers(planned) != lv::pci_controllers(&dump) {
        return Err(format!("{tag}: libvirt added PCI controllers"));
    }
    Ok(dump)
}

#[test]
fn held_out_guests_define_unchanged() {
    if let Err(e) = lv::ensure() {
        eprintln!("skipping: no libvirt: {e}");
        return;
    }
    let guests = files(&data("guests"), ".xml");
    assert!(
        guests.len() >= 20,
        "need at least 20 held-out guests, have {}",
        guests.len()
    );
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for path in &guests {
        let tag = path.file_stem().unwrap().to_string_lossy().to_string();
        let input = std::fs::read_to_string(path).unwrap();
        let dom = Domain::parse(&input).unwrap_or_else(|e| panic!("{tag}: {e}"));
        let plan = dom.plan().unwrap_or_else(|e| panic!("{tag}: {e}"));
        assert!(
            validate(&plan, &dom.request, Catalog::q35()).is_empty(),
            "{tag}: plan fails validation"
        );
        assert!(plan.optimal, "{tag}: not proven optimal");
        assert_eq!(
            plan.cost,
            expected_cost(&input),
            "{tag}: PCI controllers added vs the optimum"
        );
        let planned = dom.write(&plan).unwrap();
        let dump = match round_trip(&planned, &tag) {
            Ok(d) => d,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        assert!(
            dump.contains("urn:pciplan:policy:1"),
            "{tag}: libvirt dropped the policy metadata"
        );
        let back = Domain::parse(&dump).unwrap_or_else(|e| panic!("{tag}: libvirt's XML: {e}"));
        let v = back.check();
        if !v.is_empty() {
            failures.push(format!(
                "{tag}: after define, hotplug/address check fails: {v:?}"
            ));
            continue;
        }
        let again = back
            .plan()
            .unwrap_or_else(|e| panic!("{tag}: re-plan: {e}"));
        assert_eq!(
            again.cost, 0,
            "{tag}: re-planning libvirt's XML adds controllers"
        );
        report.push(format!(
            "{tag}: cost {} (optimal), {} PCI addresses kept",
            plan.cost,
            lv::pci_addresses(&planned).len()
        ));
    }
    println!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!(
        "{} held-out guests defined unchanged by libvirt",
        report.len()
    );
}

/// Adding a device to a planned, defined domain and planning again moves nothing.
#[test]
fn adding_a_device_moves_nothing() {
    if let Err(e) = lv::ensure() {
        eprintln!("skipping: no libvirt: {e}");
        return;
    }
    let input = std::fs::read_to_string(data("guests").join("g03-mixed.xml")).unwrap();
    let dom = Domain::parse(&input).unwrap();
    let planned = dom.write(&dom.plan().unwrap()).unwrap();
    let dump = round_trip(&planned, "add-before").unwrap();
    let before = lv::pci_addresses(&dump);
    // A new hot-pluggable NIC, as a user would add it to libvirt's XML.
    let extra =
        "    <interface type='user'>\n      <model type='virtio'/>\n    </interface>\n  </devices>";
    let grown = dump.replacen("  </devices>", extra, 1);
    let dom2 = Domain::parse(&grown).unwrap();
    let plan2 = dom2.plan().unwrap();
    assert!(plan2.optimal);
    let planned2 = dom2.write(&plan2).unwrap();
    let dump2 = round_trip(&planned2, "add-after").unwrap();
    let after = lv::pci_addresses(&dump2);
    for a in &before {
        assert!(after.contains(a), "{a} moved after adding a device");
    }
    assert!(
        plan2.cost <= 1,
        "one new port at most (the spare may be reused): {}",
        plan2.cost
    );
}

/// The CLI's policy flags win over the metadata, and the planned XML records them.
#[test]
fn flags_override_metadata_and_survive_define() {
    if let Err(e) = lv::ensure() {
        eprintln!("skipping: no libvirt: {e}");
        return;
    }
    let input = std::fs::read_to_string(data("guests").join("g03-mixed.xml")).unwrap();
    let ov = Overrides {
        policy: pciplan::PolicyPatch {
            spare_ports: Some(0),
            ..Default::default()
        },
        hotplug: vec![("ua-disk0".into(), pciplan::Hotplug::Off)],
    };
    let dom = Domain::parse_with(
        &input,
        &ReadOptions {
            overrides: ov,
            ..ReadOptions::default()
        },
    )
    .unwrap();
    let plan = dom.plan().unwrap();
    assert_eq!(
        plan.cost, 2,
        "usb and balloon ports only: disk0 is now fixed, no spare"
    );
    let planned = dom.write(&plan).unwrap();
    assert!(
        planned.contains("<pciplan:device alias=\"ua-disk0\" hotplug=\"off\"/>"),
        "{planned}"
    );
    let dump = round_trip(&planned, "flags").unwrap();
    let back = Domain::parse(&dump).unwrap();
    assert!(back.check().is_empty(), "{:?}", back.check());
    assert_eq!(back.request.policy.spare_ports, 0);
}

/// The corpus inputs pciplan plans, through libvirt 9.0 as well (the domain type becomes
/// `qemu`; inputs libvirt 9.0 refuses for reasons unrelated to PCI are counted, not failed).
#[test]
fn corpus_plans_define_unchanged() {
    if let Err(e) = lv::ensure() {
        eprintln!("skipping: no libvirt: {e}");
        return;
    }
    let Some(corpus) = common::corpus::dir("libvirt-q35") else {
        return;
    };
    let mut kept = 0;
    let mut refused = Vec::new();
    let mut failures = Vec::new();
    for path in files(&corpus, ".in.xml") {
        let case = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".in.xml")
            .to_string();
        if path.with_file_name(format!("{case}.err")).exists() {
            continue;
        }
        let input = std::fs::read_to_string(&path)
            .unwrap()
            .replace("<domain type='kvm'", "<domain type='qemu'");
        let Ok(dom) = Domain::parse(&input) else {
            continue;
        };
        let Ok(plan) = dom.plan() else { continue };
        let planned = dom.write(&plan).unwrap();
        match lv::define_dump(&planned, &case) {
            Err(e) => refused.push(format!("{case}: {e}")),
            Ok(dump) => {
                if lv::pci_addresses(&planned) != lv::pci_addresses(&dump)
                    || lv::pci_controllers(&planned) != lv::pci_controllers(&dump)
                {
                    failures.push(format!(
                        "{case}: libvirt changed the plan:\n ours {:?}\n libvirt {:?}",
                        lv::pci_addresses(&planned),
                        lv::pci_addresses(&dump)
                    ));
                } else {
                    kept += 1;
                }
            }
        }
    }
    println!("corpus through libvirt 9.0: {kept} defined unchanged; {} refused by libvirt 9.0 for other reasons:\n{}", refused.len(), refused.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(kept >= 20, "only {kept} corpus plans defined");
}
