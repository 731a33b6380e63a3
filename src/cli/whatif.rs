//! `pciplan whatif`: prints the studies of [`pciplan::whatif`] as tables and writes them as
//! CSV and SVG charts.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pciplan::whatif::{
    self, AdoptionStudy, GuestAdoption, GuestDelta, PolicyChange, PolicyDelta, Sweep, SweepStudy,
};
use pciplan::{Catalog, Hotplug, Request};

use super::{chart, fail};

/// Arguments of `pciplan whatif`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("study").required(true).args(["max", "sweep", "policy"])))]
pub struct WhatifArgs {
    /// A guest (`.json`) or a fleet (JSON Lines); `-` reads standard input.
    file: String,
    /// How many more MODEL devices fit in the guest, and each one's controller cost.
    #[arg(long, value_name = "MODEL[:on|off|any]")]
    max: Option<String>,
    /// Cost, pcie.0 slots and bus numbers for each value of a policy field, over the guest
    /// or the fleet: FIELD=A..B or FIELD=v1,v2,...
    #[arg(long, value_name = "FIELD=RANGE")]
    sweep: Option<String>,
    /// The fleet-wide effect of a policy change (JSON: {"policy": {...}, "devices": [{"match":
    /// {"model": ["e1000*"]}, "set": {"hotplug": "off"}}]}).
    #[arg(long, value_name = "CHANGE.json")]
    policy: Option<PathBuf>,
    /// With --policy: the guests exist (their addresses are what the guests see); adopt each
    /// under the change and count who notices (guest-visible changes), flips and controllers.
    #[arg(long, requires = "policy")]
    adopt: bool,
    /// Where to write the CSV (default whatif-max.csv, whatif-sweep.csv or whatif-policy.csv).
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Where to write the SVG chart (default like --csv, with .svg); `none` for no chart.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

/// Runs `pciplan whatif`.
pub fn run(args: WhatifArgs, catalog: Option<Catalog>) -> ExitCode {
    let kind = if args.max.is_some() {
        "max"
    } else if args.sweep.is_some() {
        "sweep"
    } else {
        "policy"
    };
    let csv = args
        .csv
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("whatif-{kind}.csv")));
    let svg = match &args.svg {
        Some(p) if p.as_os_str() == "none" => None,
        Some(p) => Some(p.clone()),
        None => Some(csv.with_extension("svg")),
    };
    let guests = match read_guests(&args.file) {
        Ok(g) => g,
        Err(e) => return fail(2, &e),
    };
    let result = if let Some(spec) = &args.max {
        run_max(
            &args.file,
            spec,
            &guests,
            catalog.as_ref(),
            &csv,
            svg.as_deref(),
        )
    } else if let Some(spec) = &args.sweep {
        run_sweep(spec, &guests, catalog.as_ref(), &csv, svg.as_deref())
    } else if let (Some(path), true) = (&args.policy, args.adopt) {
        run_adopt(path, &guests, catalog.as_ref(), &csv, svg.as_deref())
    } else if let Some(path) = &args.policy {
        run_policy(path, &guests, catalog.as_ref(), &csv, svg.as_deref())
    } else {
        Err((2, "choose a study: --max, --sweep or --policy".into()))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => fail(code, &msg),
    }
}

type Failure = (u8, String);

/// The guests of the input with their line numbers: one request (a whole `.json` file) or
/// JSON Lines. Lines that do not parse are reported and left out.
fn read_guests(file: &str) -> Result<Vec<(u64, Request)>, String> {
    let mut text = String::new();
    let res = if file == "-" {
        io::stdin().read_to_string(&mut text)
    } else {
        File::open(file).and_then(|mut f| f.read_to_string(&mut text))
    };
    res.map_err(|e| format!("{file}: {e}"))?;
    // One JSON value in the whole text is one guest; anything else is read as JSON Lines.
    // (`Request::from_json` alone would read the first line of a fleet and ignore the rest.)
    if serde_json::from_str::<serde_json::Value>(&text).is_ok() {
        return Request::from_json(&text)
            .map(|r| vec![(1, r)])
            .map_err(|e| format!("{file}: invalid input: {e}"));
    }
    let mut out = Vec::new();
    let mut bad = 0;
    for (i, line) in BufReader::new(text.as_bytes()).lines().enumerate() {
        let line = line.map_err(|e| format!("{file}: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        match Request::from_json(&line) {
            Ok(r) => out.push((i as u64 + 1, r)),
            Err(e) => {
                bad += 1;
                if bad <= 3 {
                    eprintln!(
                        "pciplan: {file}: line {}: invalid input: {e} (left out)",
                        i + 1
                    );
                }
            }
        }
    }
    if bad > 3 {
        eprintln!("pciplan: {file}: {bad} invalid lines left out");
    }
    if out.is_empty() {
        return Err(format!("{file}: no request could be read"));
    }
    Ok(out)
}

/// Writes a study's CSV and says so on standard error.
fn write_csv(path: &Path, header: &str, rows: impl Iterator<Item = String>) -> Result<(), Failure> {
    let mut f = io::BufWriter::new(
        File::create(path).map_err(|e| (2, format!("{}: {e}", path.display())))?,
    );
    let mut res = writeln!(f, "{header}");
    for r in rows {
        res = res.and_then(|_| writeln!(f, "{r}"));
    }
    res.and_then(|_| f.flush())
        .map_err(|e| (2, format!("{}: {e}", path.display())))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Draws a study's chart when one is wanted (`--svg none`: not) and says so on standard error.
fn write_chart(
    svg: Option<&Path>,
    draw: impl FnOnce(&Path) -> chart::ChartResult,
) -> Result<(), Failure> {
    if let Some(svg) = svg {
        draw(svg).map_err(|e| (2, format!("{}: {e}", svg.display())))?;
        eprintln!("wrote {}", svg.display());
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn run_max(
    file: &str,
    spec: &str,
    guests: &[(u64, Request)],
    catalog: Option<&Catalog>,
    csv: &Path,
    svg: Option<&Path>,
) -> Result<(), Failure> {
    let [(_, req)] = guests else {
        return Err((
            2,
            format!(
                "{file}: --max studies one guest; this input has {}",
                guests.len()
            ),
        ));
    };
    let (model, hotplug) = match spec.split_once(':') {
        Some((m, h)) => (
            m,
            Some(Hotplug::parse(h).ok_or_else(|| {
                (
                    2,
                    format!("--max {spec}: hotplug '{h}' is not on, off or any"),
                )
            })?),
        ),
        None => (spec, None),
    };
    let cat = match catalog {
        Some(c) => c,
        None => Catalog::for_machine(&req.machine).map_err(|e| (2, e.to_string()))?,
    };
    let report = whatif::max_devices(req, cat, model, hotplug)
        .map_err(|e| (e.exit_code() as u8, format!("{file}: {e}")))?;
    print!("{report}");
    write_csv(
        csv,
        "added,cost,step_cost,pcie0_slots,bus_numbers",
        report.steps.iter().map(|s| {
            format!(
                "{},{},{},{},{}",
                s.added, s.usage.cost, s.step_cost, s.usage.root_slots, s.usage.bus_numbers
            )
        }),
    )?;
    write_chart(svg, |path| chart::max(&report, path))
}

fn run_sweep(
    spec: &str,
    guests: &[(u64, Request)],
    catalog: Option<&Catalog>,
    csv: &Path,
    svg: Option<&Path>,
) -> Result<(), Failure> {
    let sweep = Sweep::parse(spec).map_err(|e| (2, format!("--{e}")))?;
    let field = sweep.field.clone();
    let machines = field == "machine";
    if machines && catalog.is_some() {
        return Err((
            2,
            "--sweep machine plans each value with that machine's catalog; leave out --catalog"
                .into(),
        ));
    }
    let mut study = SweepStudy::new(sweep);
    for chunk in guests.chunks(4096) {
        let reqs: Vec<Request> = chunk.iter().map(|(_, r)| r.clone()).collect();
        study.add(&reqs, catalog);
    }
    // A machine sweep mixes root buses (pcie.0, pci.0): its column says so.
    let root = if machines { "root slots" } else { "pcie.0" };
    let first = study
        .rows
        .first()
        .map(|r| r.value.clone())
        .unwrap_or_default();
    println!("{} guest(s), sweeping {field}", guests.len());
    println!(
        "{:>12} {:>8} {:>8} {:>10} {:>10} {:>11} {:>12} {:>14}",
        field, "planned", "failed", "cost", root, "bus numbers", "hotplug lost", "hotplug gained"
    );
    // The numbers of a row, in the table's and the CSV's column order.
    let numbers = |r: &pciplan::whatif::SweepRow| {
        [
            r.planned,
            r.failed,
            r.cost,
            r.root_slots,
            r.bus_numbers,
            r.hotplug_lost,
            r.hotplug_gained,
        ]
    };
    const WIDTHS: [usize; 7] = [8, 8, 10, 10, 11, 12, 14];
    for r in &study.rows {
        let mut line = format!("{:>12}", r.value);
        for (n, w) in numbers(r).iter().zip(WIDTHS) {
            line.push_str(&format!(" {n:>w$}"));
        }
        println!("{line}");
    }
    let join = |m: &std::collections::BTreeMap<String, u64>| -> String {
        let items: Vec<String> = m.iter().map(|(k, n)| format!("{k} {n}")).collect();
        items.join(", ")
    };
    for r in &study.rows {
        let mut lines = Vec::new();
        if !r.controllers.is_empty() {
            lines.push(format!("controllers added: {}", join(&r.controllers)));
        }
        if !r.hotplug_by_model.is_empty() {
            lines.push(format!(
                "hot-pluggability differs from {field}={first}: {}",
                join(&r.hotplug_by_model)
            ));
        }
        if !r.failed_by_rule.is_empty() {
            lines.push(format!("not planned, by rule: {}", join(&r.failed_by_rule)));
        }
        if !lines.is_empty() {
            println!("{field}={}:", r.value);
            for l in lines {
                println!("  {l}");
            }
        }
    }
    let slots = if machines {
        "root_slots"
    } else {
        "pcie0_slots"
    };
    write_csv(
        csv,
        &format!("{field},planned,failed,cost,{slots},bus_numbers,hotplug_lost,hotplug_gained"),
        study.rows.iter().map(|r| {
            let mut line = csv_field(&r.value);
            for n in numbers(r) {
                line.push_str(&format!(",{n}"));
            }
            line
        }),
    )?;
    write_chart(svg, |path| chart::sweep(&field, &study, path))
}

/// Reads a policy change file.
fn read_change(path: &Path) -> Result<PolicyChange, Failure> {
    let mut text = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| (2, format!("{}: {e}", path.display())))?;
    PolicyChange::from_json(&text).map_err(|e| (2, format!("{}: {e}", path.display())))
}

/// `whatif --policy CHANGE --adopt`: the fleet's existing guests adopted under the change.
fn run_adopt(
    path: &Path,
    guests: &[(u64, Request)],
    catalog: Option<&Catalog>,
    csv: &Path,
    svg: Option<&Path>,
) -> Result<(), Failure> {
    let change = read_change(path)?;
    let mut study = AdoptionStudy::default();
    let mut rows: Vec<GuestAdoption> = Vec::new();
    for chunk in guests.chunks(4096) {
        rows.extend(study.add(chunk, &change, catalog));
    }
    let s = &study;
    println!(
        "{} guest(s) adopted under {}: {} reach it, {} of them with no guest-visible change",
        s.guests,
        path.display(),
        s.reached,
        s.unnoticed
    );
    println!("guests by guest-visible changes:");
    for (k, n) in &s.histogram {
        println!("  {k:>4} change(s): {n}");
    }
    if !s.by_model.is_empty() {
        println!("devices the guests see change, by model:");
        for (m, n) in &s.by_model {
            println!("  {m:<28} {n}");
        }
    }
    println!(
        "ports flipped: {}; controllers added: {}",
        s.flipped, s.added
    );
    println!("cannot reach it: {}", s.cannot.len());
    for g in s.cannot.iter().take(20) {
        let why = g.error.as_deref().unwrap_or("");
        println!(
            "  {} (line {}): {}",
            g.name.as_deref().unwrap_or("-"),
            g.line,
            why.lines().next().unwrap_or("")
        );
    }
    if s.cannot.len() > 20 {
        println!("  ... ({} in all)", s.cannot.len());
    }
    let opt = |c: Option<u32>| c.map(|c| c.to_string()).unwrap_or_default();
    write_csv(
        csv,
        "line,name,guest_visible_changes,moved,renumbered,renamed,ports_flipped,controllers_added,rule",
        rows.iter().map(|g| {
            format!(
                "{},{},{},{},{},{},{},{},{}",
                g.line,
                csv_field(g.name.as_deref().unwrap_or("")),
                opt(g.changes),
                g.moved,
                g.renumbered,
                g.renamed,
                g.flipped,
                g.added,
                g.rule.as_deref().unwrap_or("")
            )
        }),
    )?;
    write_chart(svg, |path| chart::adoption(s, path))
}

fn run_policy(
    path: &Path,
    guests: &[(u64, Request)],
    catalog: Option<&Catalog>,
    csv: &Path,
    svg: Option<&Path>,
) -> Result<(), Failure> {
    let change = read_change(path)?;
    let mut delta = PolicyDelta::default();
    let mut rows: Vec<GuestDelta> = Vec::new();
    for chunk in guests.chunks(4096) {
        rows.extend(delta.add(chunk, &change, catalog));
    }
    let d = &delta;
    println!(
        "{} guest(s); planned before {}, after {}",
        d.guests, d.planned_before, d.planned_after
    );
    let diff = d.cost_after as i64 - d.cost_before as i64;
    println!(
        "controllers: {} before, {} after ({:+}) over guests planned both times; {} guests dearer, {} cheaper",
        d.cost_before, d.cost_after, diff, d.dearer, d.cheaper
    );
    for (m, n) in d.by_model.iter().filter(|(_, n)| **n != 0) {
        println!("  {m:<20} {n:+}");
    }
    let list = |v: &[GuestDelta]| -> String {
        let names: Vec<String> = v
            .iter()
            .take(20)
            .map(|g| format!("{} (line {})", g.name.as_deref().unwrap_or("-"), g.line))
            .collect();
        let more = if v.len() > 20 {
            format!(", ... ({} in all)", v.len())
        } else {
            String::new()
        };
        names.join(", ") + &more
    };
    println!("became infeasible: {}", d.became_infeasible.len());
    if !d.became_infeasible.is_empty() {
        println!("  {}", list(&d.became_infeasible));
    }
    if !d.became_feasible.is_empty() {
        println!(
            "became feasible: {}\n  {}",
            d.became_feasible.len(),
            list(&d.became_feasible)
        );
    }
    let opt = |c: Option<u32>| c.map(|c| c.to_string()).unwrap_or_default();
    write_csv(
        csv,
        "line,name,cost_before,cost_after,delta,rule_after",
        rows.iter().map(|g| {
            let delta = match (g.before, g.after) {
                (Some(b), Some(a)) => (i64::from(a) - i64::from(b)).to_string(),
                _ => String::new(),
            };
            format!(
                "{},{},{},{},{},{}",
                g.line,
                csv_field(g.name.as_deref().unwrap_or("")),
                opt(g.before),
                opt(g.after),
                delta,
                g.rule.as_deref().unwrap_or("")
            )
        }),
    )?;
    write_chart(svg, |path| chart::policy(d, path))
}
