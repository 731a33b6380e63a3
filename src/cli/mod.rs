//! The command line: its arguments (clap), the dispatch to one module per command, and the
//! helpers they share (reading an input, failing with an exit status).

mod batch;
mod chart;
mod hook;
mod libvirt;
mod plan;
mod whatif;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use pciplan::Catalog;

#[derive(Parser)]
#[command(
    name = "pciplan",
    version,
    about = "Plan the PCI/PCIe topology of QEMU q35 guests, optimally"
)]
struct Cli {
    /// Use this machine catalog instead of the embedded one.
    #[arg(long, global = true, value_name = "FILE")]
    catalog: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Output formats of `plan`.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Json,
    Qemu,
    Tree,
    Dot,
    /// The input domain XML with every PCI address and the added controllers.
    Libvirt,
}

/// Policy flags; each one set wins over the policy in the input.
#[derive(clap::Args, Default)]
pub struct PolicyFlags {
    /// Hotplug requirement of devices that do not say: on, off or any.
    #[arg(long, value_name = "on|off|any", value_parser = parse_hotplug)]
    default_hotplug: Option<pciplan::Hotplug>,
    /// Empty hot-pluggable ports to keep.
    #[arg(long, value_name = "N")]
    spare_ports: Option<u32>,
    /// Where hotplug-off devices may go: integrated, port or auto.
    #[arg(long, value_name = "integrated|port|auto", value_parser = parse_off)]
    hotplug_off_strategy: Option<pciplan::OffStrategy>,
    /// One device's hotplug requirement (repeatable): ALIAS=off|on|any.
    #[arg(long, value_name = "ALIAS=off|on|any", value_parser = pciplan::libvirt::Overrides::parse_hotplug_arg)]
    hotplug: Vec<(String, pciplan::Hotplug)>,
}

fn parse_hotplug(s: &str) -> Result<pciplan::Hotplug, String> {
    pciplan::Hotplug::parse(s).ok_or_else(|| format!("'{s}': expected on, off or any"))
}

fn parse_off(s: &str) -> Result<pciplan::OffStrategy, String> {
    pciplan::OffStrategy::parse(s)
        .ok_or_else(|| format!("'{s}': expected integrated, port or auto"))
}

impl PolicyFlags {
    /// The flags as the libvirt reader's overrides (also applied to JSON requests).
    pub fn overrides(&self) -> pciplan::libvirt::Overrides {
        pciplan::libvirt::Overrides {
            policy: pciplan::PolicyPatch {
                default_hotplug: self.default_hotplug,
                spare_ports: self.spare_ports,
                hotplug_off: self.hotplug_off_strategy,
                pack_integrated: None,
            },
            hotplug: self.hotplug.clone(),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Plan a fleet: JSON Lines in (`-` reads standard input), one result per line out,
    /// in input order.
    Batch(batch::BatchArgs),
    /// Capacity studies on a guest or a fleet: --max, --sweep, --policy.
    Whatif(whatif::WhatifArgs),
    /// Hooks of management stacks: KubeVirt's onDefineDomain, oVirt VDSM's before_vm_start.
    Hook(hook::HookArgs),
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
        /// Adopt an existing guest: its addresses are preferences, not pins; change as few
        /// devices as the guest can see, then add as few controllers, then flip as few
        /// ports (O-ADOPT). The changes go to standard error and into the plan.
        #[arg(long, conflicts_with = "previous")]
        adopt: bool,
        #[command(flatten)]
        policy: PolicyFlags,
    },
    /// Check the addresses a domain XML or request already has, without planning
    /// (exit 0 clean, 2 with every error listed).
    Check {
        /// Domain XML or request file, or `-`.
        file: String,
        #[command(flatten)]
        policy: PolicyFlags,
    },
}

/// The text of an input file (`-`: standard input), refused above 16 MiB.
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
        return Err(format!(
            "{file}: input is larger than the {LIMIT} byte limit"
        ));
    }
    Ok(text)
}

const fn pciplan_limit() -> u64 {
    16 << 20
}

/// Prints `pciplan: MSG` on standard error and gives the exit status `code`.
fn fail(code: u8, msg: &str) -> ExitCode {
    eprintln!("pciplan: {msg}");
    ExitCode::from(code)
}

/// The arguments, as `pciplan hook kubevirt ...` when the program runs under KubeVirt's
/// hook name `onDefineDomain` (a link or a copy).
fn args() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let name = args
        .first()
        .map(std::path::Path::new)
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    if name.as_deref() == Some("onDefineDomain") {
        args.splice(1..1, ["hook".into(), "kubevirt".into()]);
    }
    args
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(args()) {
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
        Cmd::Batch(args) => batch::run(args, custom),
        Cmd::Whatif(args) => whatif::run(args, custom),
        Cmd::Hook(args) => hook::run(args),
        Cmd::Check { file, policy } => libvirt::check(&file, &policy.overrides(), custom.as_ref()),
        Cmd::Plan {
            file,
            format,
            previous,
            adopt,
            policy,
        } => plan::run(&file, format, previous, adopt, &policy, custom.as_ref()),
    }
}
