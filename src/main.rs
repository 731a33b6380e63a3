//! The `pciplan` command line: a thin layer over the library.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod cli_batch;

use pciplan::{Catalog, PlanError, Request};

#[derive(Parser)]
#[command(name = "pciplan", version, about = "Plan the PCI/PCIe topology of QEMU q35 guests, optimally")]
struct Cli {
    /// Use this machine catalog instead of the embedded one.
    #[arg(long, global = true, value_name = "FILE")]
    catalog: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Qemu,
    Tree,
    Dot,
}

#[derive(Subcommand)]
enum Cmd {
    /// Plan a fleet: JSON Lines in (`-` reads standard input), one result per line out,
    /// in input order.
    Batch(cli_batch::BatchArgs),
    /// Plan one guest from a JSON request (`-` reads standard input).
    Plan {
        /// Request file, or `-`.
        file: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
        /// An earlier `--format json` plan: every device and controller that still exists
        /// keeps its address; only new devices are placed.
        #[arg(long, value_name = "PLAN.json")]
        previous: Option<PathBuf>,
    },
}

fn read_input(file: &str) -> Result<String, String> {
    const LIMIT: u64 = pciplan_limit();
    let mut text = String::new();
    let res = if file == "-" {
        std::io::stdin().take(LIMIT + 1).read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(LIMIT + 1).read_to_string(&mut text))
    };
    res.map_err(|e| format!("{file}: {e}"))?;
    if text.len() as u64 > LIMIT {
        return Err(format!("{file}: input is larger than the {LIMIT} byte limit"));
    }
    Ok(text)
}

const fn pciplan_limit() -> u64 {
    16 << 20
}

fn fail(code: u8, msg: &str) -> ExitCode {
    eprintln!("pciplan: {msg}");
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let custom = match &cli.catalog {
        Some(p) => match Catalog::from_path(p) {
            Ok(c) => Some(c),
            Err(e) => return fail(2, &e.to_string()),
        },
        None => None,
    };
    match cli.cmd {
        Cmd::Batch(args) => cli_batch::run(args, custom),
        Cmd::Plan { file, format, previous } => {
            let text = match read_input(&file) {
                Ok(t) => t,
                Err(e) => return fail(2, &e),
            };
            let mut req = match Request::from_json(&text) {
                Ok(r) => r,
                Err(e) => return fail(2, &format!("{file}: invalid input: {e}")),
            };
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
            let cat = match &custom {
                Some(c) => c,
                None => match Catalog::for_machine(&req.machine) {
                    Ok(c) => c,
                    Err(e) => return fail(2, &format!("{file}: {e}")),
                },
            };
            match pciplan::plan_with(&req, cat) {
                Ok(plan) => {
                    let out = match format {
                        Format::Json => pciplan::emit::json(&plan),
                        Format::Qemu => pciplan::emit::qemu(&plan, cat),
                        Format::Tree => pciplan::emit::tree(&plan, cat),
                        Format::Dot => pciplan::emit::dot(&plan, cat),
                    };
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => report(&file, &e),
            }
        }
    }
}

fn report(file: &str, e: &PlanError) -> ExitCode {
    fail(e.exit_code() as u8, &format!("{file}: {e}"))
}
