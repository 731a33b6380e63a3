//! `pciplan plan FILE`: one guest from a JSON request (a domain XML goes to the libvirt side).

use std::path::PathBuf;
use std::process::ExitCode;

use pciplan::{Catalog, PlanError, Request};

use super::{fail, libvirt, read_input, Format, PolicyFlags};

/// Runs `pciplan plan`: reads FILE, plans it, prints the plan in `format`.
pub fn run(
    file: &str,
    format: Format,
    previous: Option<PathBuf>,
    adopt: bool,
    policy: &PolicyFlags,
    custom: Option<&Catalog>,
) -> ExitCode {
    let text = match read_input(file) {
        Ok(t) => t,
        Err(e) => return fail(2, &e),
    };
    if pciplan::libvirt::looks_like_xml(file, &text) {
        if previous.is_some() {
            return fail(
                2,
                &format!(
                    "{file}: --previous takes JSON requests; a domain XML keeps its own addresses"
                ),
            );
        }
        let fmt = match format {
            Format::Json => libvirt::Out::Json,
            Format::Qemu => libvirt::Out::Qemu,
            Format::Tree => libvirt::Out::Tree,
            Format::Dot => libvirt::Out::Dot,
            Format::Libvirt => libvirt::Out::Libvirt,
        };
        return libvirt::plan(file, &text, fmt, &policy.overrides(), custom, adopt);
    }
    if matches!(format, Format::Libvirt) {
        return fail(
            2,
            &format!("{file}: --format libvirt needs a libvirt domain XML as input"),
        );
    }
    let mut req = match Request::from_json(&text) {
        Ok(r) => r,
        Err(e) => return fail(2, &format!("{file}: invalid input: {e}")),
    };
    if let Err(e) = policy.overrides().apply_to(&mut req) {
        return fail(2, &format!("{file}: {e}"));
    }
    if let Some(prev) = previous {
        let pf = prev.display().to_string();
        let pinned = read_input(&pf)
            .and_then(|t| pciplan::Previous::from_json(&t).map_err(|e| format!("{pf}: {e}")))
            .and_then(|p| req.pinned_to(&p).map_err(|e| format!("{file}: {e}")));
        match pinned {
            Ok(r) => req = r,
            Err(e) => return fail(2, &e),
        }
    }
    let cat = match custom {
        Some(c) => c,
        None => match Catalog::for_machine(&req.machine) {
            Ok(c) => c,
            Err(e) => return fail(2, &format!("{file}: {e}")),
        },
    };
    let planned = if adopt {
        pciplan::adopt_with(&req, cat)
    } else {
        pciplan::plan_with(&req, cat)
    };
    match planned {
        Ok(plan) => {
            say_changes(file, &plan);
            let out = match format {
                Format::Json => pciplan::emit::json(&plan),
                Format::Qemu => pciplan::emit::qemu(&plan, cat),
                Format::Tree => pciplan::emit::tree(&plan, cat),
                Format::Dot => pciplan::emit::dot(&plan, cat),
                Format::Libvirt => unreachable!("checked above"),
            };
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => report(file, &e),
    }
}

/// An adoption's summary on standard error (nothing for a plain plan).
pub(super) fn say_changes(file: &str, plan: &pciplan::Plan) {
    if plan.changes.is_some() {
        eprintln!("pciplan: {file}: adopted: {}", pciplan::summary(plan));
    }
}

fn report(file: &str, e: &PlanError) -> ExitCode {
    fail(e.exit_code() as u8, &format!("{file}: {e}"))
}
