//! The command-line side of libvirt support: `plan` on a domain XML, and `check` on a domain
//! XML or a request.

use std::process::ExitCode;

use pciplan::libvirt::{looks_like_xml, Domain, Overrides, ReadOptions};
use pciplan::{Catalog, Request, Rule};

use super::fail;

/// Output formats for a planned domain.
pub enum Out {
    Json,
    Qemu,
    Tree,
    Dot,
    Libvirt,
}

/// `pciplan plan DOMAIN.xml`.
pub fn plan(
    file: &str,
    text: &str,
    out: Out,
    ov: &Overrides,
    custom: Option<&Catalog>,
    adopt: bool,
) -> ExitCode {
    let opts = ReadOptions {
        overrides: ov.clone(),
        ..ReadOptions::default()
    };
    let read = match custom {
        Some(c) => Domain::read(text, &opts, c),
        None => Domain::parse_with(text, &opts),
    };
    let dom = match read {
        Ok(d) => d,
        Err(e) => return fail(2, &format!("{file}: invalid input: {e}")),
    };
    let cat = dom.catalog();
    for n in &dom.notes {
        eprintln!("pciplan: {file}: note: {n}");
    }
    let planned = if adopt { dom.adopt() } else { dom.plan() };
    let plan = match planned {
        Ok(p) => p,
        Err(e) => return fail(e.exit_code() as u8, &format!("{file}: {e}")),
    };
    super::plan::say_changes(file, &plan);
    let s = match out {
        Out::Json => pciplan::emit::json(&plan),
        Out::Qemu => pciplan::emit::qemu(&plan, cat),
        Out::Tree => pciplan::emit::tree(&plan, cat),
        Out::Dot => pciplan::emit::dot(&plan, cat),
        Out::Libvirt => match dom.write(&plan) {
            Ok(x) => x,
            Err(e) => return fail(2, &format!("{file}: {e}")),
        },
    };
    print!("{s}");
    if matches!(out, Out::Libvirt) && !s.ends_with('\n') {
        println!();
    }
    ExitCode::SUCCESS
}

/// `pciplan check FILE`: exit 0 when every address is valid, 2 with every error listed.
pub fn check(file: &str, ov: &Overrides, custom: Option<&Catalog>) -> ExitCode {
    let text = match super::read_input(file) {
        Ok(t) => t,
        Err(e) => return fail(2, &e),
    };
    let (errors, fixes) = if looks_like_xml(file, &text) {
        let opts = ReadOptions {
            overrides: ov.clone(),
            ..ReadOptions::default()
        };
        let read = match custom {
            Some(c) => Domain::read(&text, &opts, c),
            None => Domain::parse_with(&text, &opts),
        };
        match read {
            Ok(d) => {
                let errors = d.check();
                let fixes = if needs_policy_fix(&errors) {
                    d.adopt().map(|p| pciplan::fixes(&p))
                } else {
                    Ok(Default::default())
                };
                (errors, fixes)
            }
            Err(e) => return fail(2, &format!("{file}: invalid input: {e}")),
        }
    } else {
        let mut req = match Request::from_json(&text) {
            Ok(r) => r,
            Err(e) => return fail(2, &format!("{file}: invalid input: {e}")),
        };
        if let Err(e) = ov.apply_to(&mut req) {
            return fail(2, &format!("{file}: {e}"));
        }
        let cat = match custom {
            Some(c) => c,
            None => match Catalog::for_machine(&req.machine) {
                Ok(c) => c,
                Err(e) => return fail(2, &format!("{file}: {e}")),
            },
        };
        match pciplan::libvirt::check_request(&req, cat) {
            Ok(errors) => {
                let fixes = if needs_policy_fix(&errors) {
                    pciplan::adopt_with(&req, cat).map(|p| pciplan::fixes(&p))
                } else {
                    Ok(Default::default())
                };
                (errors, fixes)
            }
            Err(e) => return fail(2, &format!("{file}: invalid input: {e}")),
        }
    };
    if errors.is_empty() {
        println!("{file}: no address errors");
        return ExitCode::SUCCESS;
    }
    for e in &errors {
        println!("{e}");
        if !matches!(e.rule, Rule::Off | Rule::On) {
            continue;
        }
        match &fixes {
            Ok(f) => {
                if let Some(h) = f.get(&e.device) {
                    println!("  cheapest fix: {h}; `pciplan plan {file} --adopt` makes it");
                }
            }
            // Other address errors stop adoption too: those come first, no hint here.
            Err(why @ pciplan::PlanError::Infeasible(_)) => {
                let first = why.to_string();
                println!(
                    "  no layout meets the policy even with every device free to move: {}",
                    first.lines().next().unwrap_or("")
                );
            }
            Err(_) => {}
        }
    }
    fail(2, &format!("{file}: {} address error(s)", errors.len()))
}

/// Whether a check found what adoption repairs (a device whose place breaks its hotplug
/// requirement), so that the cheapest fix is worth computing.
fn needs_policy_fix(errors: &[pciplan::Violation]) -> bool {
    errors
        .iter()
        .any(|e| matches!(e.rule, Rule::Off | Rule::On))
}
