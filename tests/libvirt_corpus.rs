//! libvirt's own q35 test cases (the corpus `libvirt-q35`, outside the repository: see
//! tests/README.md, "Corpora"): every input either plans (validator-clean, with no more PCI
//! controllers than libvirt's output under the same policy) or is refused for the reason libvirt
//! refuses it; `check` agrees with libvirt on address errors. Writes the per-case table to
//! tests/data/libvirt/CORPUS.md.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use pciplan::libvirt::{Domain, Overrides, ReadOptions};
use pciplan::{validate, Catalog, PolicyPatch};

/// Cases whose libvirt output came from fake capabilities without
/// `VIRTIO_PCI_DISABLE_LEGACY`: libvirt treated plain virtio as conventional PCI (README,
/// "Fake capability flags per case"); we read them the same way to compare like with like.
const LEGACY_VIRTIO: &[&str] = &[
    "autoindex",
    "bios-nvram-secure",
    "boot-floppy-q35",
    "cpu-host-model",
    "machine-smm-opt",
    "pcie-expander-bus",
    "pcie-root",
    "pcie-root-port",
    "pcie-root-port-model-generic",
    "pcie-root-port-model-ioh3420",
    "pcie-switch-downstream-port",
    "pcie-switch-upstream-port",
    "pcihole64-q35",
    "q35",
    "q35-pci-force-address",
    "q35-pm-disable",
    "q35-pm-disable-fallback",
    "q35-usb2",
    "q35-usb2-multi",
    "q35-usb2-reorder",
    "q35-virtio-pci",
    "tseg-explicit-size",
    "usb-controller-default-q35",
    "usb-controller-explicit-q35",
    "user-aliases2",
    "vcpu-placement-static",
    "q35-acpi-nouefi",
    "q35-acpi-uefi",
    "q35-noacpi-nouefi",
];

/// What libvirt's `.err` says, and what pciplan must say.
enum Expect {
    /// pciplan refuses the input with a message containing this text.
    Refuse(&'static str),
    /// `check` reports a violation for this controller/device id, containing this text.
    Check(&'static str, &'static str),
    /// libvirt's error is about something other than PCI placement (ACPI, TSEG, capabilities
    /// of the 2021 test QEMU); pciplan plans the PCI part.
    OutOfScope,
}

fn expect_err(case: &str) -> Option<Expect> {
    Some(match case {
        "pci-expander-bus-bad-machine" | "q35-wrong-root" => {
            Expect::Refuse("must be model='pcie-root'")
        }
        "pcie-root-port-too-many" => Expect::Refuse(
            "a PCI slot is needed to connect a PCI controller model='pcie-root-port'",
        ),
        "q35-dmi-bad-address1" => Expect::Refuse("Multiple 'pci' controllers with index '2'"),
        "virtio-transitional-not-supported" => {
            Expect::Refuse("not supported for input type=keyboard")
        }
        "q35-dmi-bad-address2" => Expect::Check("pci.2", "wrong kind of slot: a dmi-bridge"),
        "pcie-expander-bus-bad-bus" => Expect::Check("pci.2", "wrong kind of slot: a pxb"),
        "q35-noacpi-uefi"
        | "tseg-invalid-size"
        | "usb-controller-default-unavailable-q35"
        | "usb-controller-explicit-unavailable-q35" => Expect::OutOfScope,
        _ => return None,
    })
}

/// Known, intended disagreements: libvirt accepts the input, pciplan refuses it by a rule.
fn deviation(case: &str) -> Option<&'static str> {
    match case {
        // busNr 254 with 34 buses below the expander: the guest firmware cannot number them
        // (254..288 > 255). libvirt and QEMU do not check; docs/rules.md R-BUSNR does.
        "pcie-expander-bus" => Some("R-BUSNR"),
        _ => None,
    }
}

/// The model of USB controller 0 in libvirt's output, if any.
fn implicit_usb_model(out: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(out).expect("well-formed");
    let usb = doc
        .descendants()
        .find(|n| n.has_tag_name("controller") && n.attribute("type") == Some("usb"))?;
    usb.attribute("model").map(str::to_string)
}

/// PCI controllers other than the root, in a domain XML.
fn pci_controllers(xml: &str) -> usize {
    let doc = roxmltree::Document::parse(xml).expect("well-formed");
    doc.descendants()
        .filter(|n| n.has_tag_name("controller") && n.attribute("type") == Some("pci"))
        .filter(|n| !matches!(n.attribute("model"), Some("pcie-root") | Some("pci-root")))
        .count()
}

#[derive(Default)]
struct Row {
    outcome: String,
    libvirt: Option<usize>,
    ours: Option<usize>,
    /// pciplan with default hotplug `any` and no spare port (what hot-plug-agnostic guests cost).
    ours_any: Option<usize>,
    spare: u32,
    note: String,
}

#[test]
fn corpus() {
    let Some(dir) = common::corpus::dir("libvirt-q35") else {
        return;
    };
    let mut cases: Vec<String> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix(".in.xml").map(str::to_string))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 60,
        "expected the 66 q35 cases, found {}",
        cases.len()
    );
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    for case in &cases {
        let input = std::fs::read_to_string(dir.join(format!("{case}.in.xml"))).unwrap();
        let out_xml = std::fs::read_to_string(dir.join(format!("{case}.out.xml"))).ok();
        let err_txt = std::fs::read_to_string(dir.join(format!("{case}.err"))).ok();
        let legacy = LEGACY_VIRTIO.contains(&case.as_str());
        let mut row = Row {
            libvirt: out_xml.as_deref().map(pci_controllers),
            ..Row::default()
        };
        // libvirt adds one spare root port when the input had no PCI controller but the root
        // and it had to add a bus (docs/libvirt.md, "Hotplug in libvirt").
        let in_ctrls = pci_controllers(&input);
        if in_ctrls == 0 && row.libvirt.unwrap_or(0) > 0 {
            row.spare = 1;
        }
        // The USB controller libvirt added by itself (its test QEMU decides the model, or none).
        let implicit_usb = match &out_xml {
            Some(o) if !input.contains("<controller type='usb'") => implicit_usb_model(o),
            _ => Some("qemu-xhci".to_string()),
        };
        let opts = ReadOptions {
            overrides: Overrides {
                policy: PolicyPatch {
                    spare_ports: Some(row.spare),
                    ..PolicyPatch::default()
                },
                ..Overrides::default()
            },
            virtio_conventional: legacy,
            implicit_usb: implicit_usb.clone(),
        };
        let parsed = Domain::parse_with(&input, &opts);
        if let Some(err_txt) = &err_txt {
            match expect_err(case) {
                Some(Expect::Refuse(text)) => match &parsed {
                    Err(e) if e.to_string().contains(text) => {
                        row.outcome = "refused, same reason".into()
                    }
                    Err(e) => failures.push(format!(
                        "{case}: refused for another reason: {e} (libvirt: {err_txt})"
                    )),
                    Ok(_) => failures.push(format!("{case}: accepted; libvirt says {err_txt}")),
                },
                Some(Expect::Check(id, text)) => {
                    match &parsed {
                        Ok(d) => {
                            let v = d.check();
                            if v.iter().any(|x| x.device == id && x.message.contains(text)) {
                                row.outcome = "check: same address error".into();
                                row.note = v
                                    .iter()
                                    .map(|x| x.to_string())
                                    .collect::<Vec<_>>()
                                    .join("; ");
                                if d.plan().is_ok() {
                                    failures.push(format!(
                                        "{case}: check reports errors but plan accepts it"
                                    ));
                                }
                            } else {
                                failures.push(format!("{case}: check misses the error libvirt reports ({err_txt}): {v:?}"));
                            }
                        }
                        Err(e) => failures.push(format!("{case}: refused before check: {e}")),
                    }
                }
                Some(Expect::OutOfScope) => {
                    row.outcome = "libvirt error not about PCI; planned".into();
                    row.note = err_txt.trim().to_string();
                    if let Err(e) = parsed
                        .as_ref()
                        .map_err(|e| e.to_string())
                        .and_then(|d| d.plan().map_err(|e| e.to_string()))
                    {
                        failures.push(format!("{case}: {e}"));
                    }
                }
                None => failures.push(format!(
                    "{case}: has an .err but no expectation in this test"
                )),
            }
            rows.insert(case.clone(), row);
            continue;
        }
        let dom = match parsed {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{case}: libvirt accepts it, pciplan refuses: {e}"));
                continue;
            }
        };
        let problems = dom.check();
        let planned = dom.plan();
        match (deviation(case), &planned) {
            (Some(rule), Err(e)) => {
                assert!(
                    e.to_string().contains(rule),
                    "{case}: expected a {rule} refusal, got {e}"
                );
                row.outcome = format!("refused by {rule} (libvirt accepts)");
                row.note = e
                    .to_string()
                    .lines()
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_string();
                rows.insert(case.clone(), row);
                continue;
            }
            (Some(rule), Ok(_)) => failures.push(format!(
                "{case}: expected the {rule} deviation, but it planned"
            )),
            _ => {}
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{case}: check finds errors libvirt does not: {problems:?}"
            ));
        }
        let plan = match planned {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!(
                    "{case}: libvirt accepts it, pciplan cannot plan: {e}"
                ));
                continue;
            }
        };
        let bad = validate(&plan, &dom.request, Catalog::q35());
        if !bad.is_empty() {
            failures.push(format!("{case}: validator: {bad:?}"));
        }
        if !plan.optimal {
            failures.push(format!("{case}: not proven optimal"));
        }
        let xml = dom
            .write(&plan)
            .unwrap_or_else(|e| panic!("{case}: write: {e}"));
        let ours = pci_controllers(&xml);
        row.ours = Some(ours);
        let any_opts = ReadOptions {
            overrides: Overrides {
                policy: PolicyPatch {
                    default_hotplug: Some(pciplan::Hotplug::Any),
                    spare_ports: Some(0),
                    ..PolicyPatch::default()
                },
                ..Overrides::default()
            },
            virtio_conventional: legacy,
            implicit_usb: implicit_usb.clone(),
        };
        if let Ok((d, p)) = Domain::parse_with(&input, &any_opts)
            .map_err(|e| e.to_string())
            .and_then(|d| d.plan().map_err(|e| e.to_string()).map(|p| (d, p)))
        {
            row.ours_any = d.write(&p).ok().map(|x| pci_controllers(&x));
        }
        if let Some(lv) = row.libvirt {
            if ours > lv {
                failures.push(format!("{case}: {ours} PCI controllers, libvirt {lv}"));
            }
        }
        // Stable re-planning: the planned XML plans to itself.
        let again = Domain::parse_with(
            &xml,
            &ReadOptions {
                virtio_conventional: legacy,
                implicit_usb,
                ..ReadOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{case}: re-read: {e}"));
        assert!(
            again.check().is_empty(),
            "{case}: planned XML fails check: {:?}",
            again.check()
        );
        let p2 = again
            .plan()
            .unwrap_or_else(|e| panic!("{case}: re-plan: {e}"));
        assert_eq!(p2.cost, 0, "{case}: re-planning added controllers");
        assert_eq!(
            again.write(&p2).unwrap(),
            xml,
            "{case}: re-planning changed the XML"
        );
        row.outcome = match row.libvirt {
            Some(lv) if ours < lv => "planned, fewer controllers".into(),
            Some(_) => "planned, same count".into(),
            None => "planned (libvirt: args only)".into(),
        };
        rows.insert(case.clone(), row);
    }

    let mut md = String::from(
        "# libvirt q35 corpus: pciplan vs libvirt\n\n\
         Generated by `cargo test --test libvirt_corpus` from the corpus `libvirt-q35` (libvirt's own\n\
         q35 test cases, commit 8970094a, kept outside the repository: tests/README.md, \"Corpora\").\n\
         Policy: default hotplug `on`, one spare port where libvirt\n\
         adds one (input without PCI controllers, libvirt added some); cases whose libvirt output used\n\
         fake capabilities without `virtio-pci.disable-legacy` are read with virtio as conventional PCI,\n\
         as libvirt did. Counts are `<controller type='pci'>` elements other than the root.\n\n\
         The `pciplan any` column plans the same input with default hotplug `any` and no spare\n\
         port: what the guest costs when its devices need not stay hot-pluggable.\n\n\
         | case | outcome | libvirt | pciplan | spare | pciplan any | note |\n|---|---|---|---|---|---|---|\n",
    );
    let (mut n_lv, mut n_ours, mut fewer, mut same, mut n_any) = (0, 0, 0, 0, 0);
    for (case, r) in &rows {
        let f = |x: Option<usize>| x.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
        if let (Some(l), Some(o)) = (r.libvirt, r.ours) {
            n_lv += l;
            n_ours += o;
            n_any += r.ours_any.unwrap_or(o);
            if o < l {
                fewer += 1;
            } else {
                same += 1;
            }
        }
        md.push_str(&format!(
            "| {case} | {} | {} | {} | {} | {} | {} |\n",
            r.outcome,
            f(r.libvirt),
            f(r.ours),
            r.spare,
            f(r.ours_any),
            r.note.replace('|', "\\|")
        ));
    }
    md.push_str(&format!(
        "\n{} cases. With a libvirt output to compare: {} (pciplan fewer controllers in {fewer}, same in {same}, more in none); \
         {n_ours} PCI controllers in all for pciplan vs {n_lv} for libvirt ({n_any} with default hotplug `any`).\n",
        rows.len(),
        fewer + same
    ));
    println!("{md}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/libvirt/CORPUS.md");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(md.as_str()) {
        std::fs::write(&path, &md).expect("write CORPUS.md");
    }
    assert!(
        failures.is_empty(),
        "{} corpus failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
