//! oVirt VDSM's `before_vm_start` hook (docs/formats.md "Hooks of management stacks").
//!
//! VDSM runs every executable in `/usr/libexec/vdsm/hooks/before_vm_start/` with the domain
//! XML in the file named by the environment variable `_hook_domxml`, and each custom
//! property of the VM as an environment variable of its name. The hook reads the policy from
//! `pciplan_policy` (a JSON object as the request's `policy`) and `pciplan_hotplug`
//! (`ALIAS=on|off|any,...`; oVirt names devices `ua-` + their id), plans the domain, and
//! replaces the file atomically: a new file in the same directory, flushed, renamed over
//! the old one, so VDSM reads either the old domain or the whole new one. Without a policy
//! the file is not touched.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{plan_domain, HookError, HookPolicy};

/// The environment variable with the domain XML's path.
pub const DOMXML_VAR: &str = "_hook_domxml";
/// The custom property with the policy fields.
pub const POLICY_PROPERTY: &str = "pciplan_policy";
/// The custom property with per-device hotplug requirements.
pub const HOTPLUG_PROPERTY: &str = "pciplan_hotplug";

/// What the hook did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// No policy: the file was not touched.
    Untouched,
    /// The file now holds the planned domain.
    Replaced,
}

/// Runs the hook with the environment `env` gives (`std::env::var` in the real hook).
///
/// oVirt passes the addresses it stored for the VM's devices; they are adopted as
/// preferences (docs/formats.md, `--adopt`): the plan changes as few devices as the guest
/// can see.
///
/// # Errors
/// [`HookError::Unmet`] when the policy cannot be met; [`HookError::Skipped`] when the hook
/// could not run (no `_hook_domxml`, a property that does not parse, a file that cannot be
/// read or written). The file is unchanged in both cases.
pub fn before_vm_start(env: impl Fn(&str) -> Option<String>) -> Result<Done, HookError> {
    let path = env(DOMXML_VAR)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| HookError::Skipped(format!("{DOMXML_VAR} is not set (not run by VDSM?)")))?;
    let policy = HookPolicy::parse(
        env(POLICY_PROPERTY).as_deref(),
        env(HOTPLUG_PROPERTY).as_deref(),
        None,
    )
    .map_err(|e| HookError::Skipped(format!("custom property: {e}")))?;
    let Some(mut policy) = policy else {
        return Ok(Done::Untouched);
    };
    policy.adopt = true;
    let xml = fs::read_to_string(&path)
        .map_err(|e| HookError::Skipped(format!("{}: {e}", path.display())))?;
    let planned = plan_domain(&xml, &policy)?;
    if planned == xml {
        return Ok(Done::Untouched);
    }
    replace_atomically(&path, planned.as_bytes())
        .map_err(|e| HookError::Skipped(format!("{}: {e}", path.display())))?;
    Ok(Done::Replaced)
}

/// Replaces `path` with `bytes` so that a reader, or a crash at any point, sees the old
/// file or the whole new one: a new file beside it (same file system, same permissions),
/// written and flushed to disk, then renamed over it.
///
/// # Errors
/// When the new file cannot be written or renamed; `path` is then as it was.
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let tmp = dir.join(format!(
        ".{}.pciplan-{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    // create_new: never write through a file (or link) someone else put there.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    let mut write = || -> io::Result<()> {
        if let Ok(meta) = fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename itself reaches the disk with the directory.
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
