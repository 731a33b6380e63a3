//! `pciplan hook kubevirt|vdsm` (and the `onDefineDomain` name): the command-line side of
//! [`pciplan::hooks`]. Exit status: 0 with the domain planned or passed through (a warning on
//! standard error says why it was not planned), 1 when the policy cannot be met (the rule
//! and the devices on standard error, the input unchanged), 2 for usage errors.

use std::io::{Read, Write};
use std::process::ExitCode;

use pciplan::hooks::{kubevirt, vdsm, HookError};

/// Arguments of `pciplan hook`.
#[derive(clap::Args)]
pub struct HookArgs {
    #[command(subcommand)]
    stack: Stack,
}

#[derive(clap::Subcommand)]
enum Stack {
    /// KubeVirt's onDefineDomain: prints the domain to define (policy from the VMI's
    /// pciplan.io/* annotations; without them the domain unchanged).
    Kubevirt {
        /// The VMI as JSON (as the sidecar shim passes it), or @FILE.
        #[arg(long, value_name = "VMI_JSON")]
        vmi: String,
        /// The domain XML (as the sidecar shim passes it), or @FILE.
        #[arg(long, value_name = "DOMAIN_XML")]
        domain: String,
    },
    /// oVirt VDSM's before_vm_start: plans the domain file named by $_hook_domxml under the
    /// custom properties pciplan_policy and pciplan_hotplug, replacing it atomically.
    Vdsm,
}

fn warn(msg: &str) {
    eprintln!("pciplan hook: {msg}");
}

/// A value as given, or the contents of the file after `@`.
fn value(arg: &str) -> Result<String, String> {
    match arg.strip_prefix('@') {
        None => Ok(arg.to_string()),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("standard input: {e}"))?;
            Ok(s)
        }
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}")),
    }
}

/// Runs `pciplan hook`.
pub fn run(args: HookArgs) -> ExitCode {
    match args.stack {
        Stack::Kubevirt { vmi, domain } => run_kubevirt(&vmi, &domain),
        Stack::Vdsm => match vdsm::before_vm_start(|k| std::env::var(k).ok()) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => report(&e),
        },
    }
}

fn report(e: &HookError) -> ExitCode {
    warn(&e.to_string());
    match e {
        HookError::Unmet(_) => ExitCode::from(1),
        HookError::Skipped(_) => ExitCode::SUCCESS,
    }
}

fn run_kubevirt(vmi: &str, domain: &str) -> ExitCode {
    let (vmi, domain) = match (value(vmi), value(domain)) {
        (Ok(v), Ok(d)) => (v, d),
        (Err(e), _) | (_, Err(e)) => {
            warn(&e);
            return ExitCode::from(2);
        }
    };
    let out = match kubevirt::on_define_domain(&vmi, &domain) {
        Ok(Some(planned)) => planned,
        Ok(None) => domain,
        Err(e) => {
            let code = report(&e);
            if matches!(e, HookError::Unmet(_)) {
                return code;
            }
            domain
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush())
    {
        warn(&format!("writing the domain: {e}"));
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}
