//! Hooks of management stacks (docs/formats.md "Hooks of management stacks"): a domain XML
//! on its way to libvirt, planned under a hotplug policy the stack carries for the VM.
//!
//! - [`kubevirt`]: KubeVirt's `onDefineDomain` sidecar hook; the policy comes from the VMI's
//!   annotations `pciplan.io/policy`, `pciplan.io/hotplug` and `pciplan.io/adopt`.
//! - [`vdsm`]: oVirt VDSM's `before_vm_start` hook; the policy comes from the VM's custom
//!   properties `pciplan_policy` and `pciplan_hotplug`, and the domain file is replaced
//!   atomically.
//!
//! Both follow one rule: a hook only ever stops a VM from starting when its policy cannot be
//! met ([`HookError::Unmet`], naming the rule and the devices). Any other trouble (a setting
//! that does not parse, a domain pciplan cannot read) leaves the domain as it was, with a
//! warning ([`HookError::Skipped`]). Without a policy the domain passes through byte for
//! byte.
//!
//! ```
//! use pciplan::hooks::{plan_domain, HookPolicy};
//! let xml = "<domain type='kvm'><name>g</name><os><type machine='q35'>hvm</type></os><devices>\
//!   <interface type='network'><source network='default'/><model type='virtio'/>\
//!   <alias name='ua-net0'/></interface></devices></domain>";
//! let policy = HookPolicy::parse(None, Some("ua-net0=off"), None).unwrap().unwrap();
//! let out = plan_domain(xml, &policy).unwrap();
//! assert!(out.contains("<address type='pci' domain='0x0000' bus='0x00'"));
//! assert!(HookPolicy::parse(None, None, None).unwrap().is_none()); // no policy: untouched
//! ```

pub mod kubevirt;
pub mod vdsm;

use std::fmt;

use crate::error::PlanError;
use crate::libvirt::{Domain, Overrides, ReadOptions};
use crate::request::Hotplug;
use crate::PolicyPatch;

/// A hotplug policy as a management stack passes it: the request's `policy` fields, hotplug
/// requirements of devices named by their libvirt aliases, and whether to adopt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookPolicy {
    /// Policy fields (`default_hotplug`, `spare_ports`, `hotplug_off`, `pack_integrated`).
    pub policy: PolicyPatch,
    /// `(alias, hotplug)` per named device, in the order given.
    pub hotplug: Vec<(String, Hotplug)>,
    /// Addresses the domain already has are preferences, not pins (docs/formats.md, `--adopt`).
    pub adopt: bool,
}

impl HookPolicy {
    /// Reads the three settings as the stacks carry them: `policy` a JSON object as the
    /// request's `policy`, `hotplug` a list `ALIAS=on|off|any` separated by commas, `adopt`
    /// `true` or `false`. `Ok(None)` when none is set (empty counts as not set): the domain
    /// is then left alone.
    ///
    /// ```
    /// use pciplan::hooks::HookPolicy;
    /// let p = HookPolicy::parse(Some(r#"{"spare_ports": 2}"#), Some("ua-net0=off, ua-disk1=any"), None)
    ///     .unwrap().unwrap();
    /// assert_eq!(p.policy.spare_ports, Some(2));
    /// assert_eq!(p.hotplug.len(), 2);
    /// assert!(HookPolicy::parse(Some("{\"spare\": 2}"), None, None).is_err()); // a typo is an error
    /// ```
    ///
    /// # Errors
    /// When a setting does not parse.
    pub fn parse(
        policy: Option<&str>,
        hotplug: Option<&str>,
        adopt: Option<&str>,
    ) -> Result<Option<HookPolicy>, String> {
        let (policy, hotplug, adopt) = (set(policy), set(hotplug), set(adopt));
        if policy.is_none() && hotplug.is_none() && adopt.is_none() {
            return Ok(None);
        }
        let mut out = HookPolicy::default();
        if let Some(p) = policy {
            out.policy = serde_json::from_str(p).map_err(|e| format!("policy '{p}': {e}"))?;
        }
        if let Some(h) = hotplug {
            for item in h.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                out.hotplug.push(Overrides::parse_hotplug_arg(item)?);
            }
        }
        if let Some(a) = adopt {
            out.adopt = match a.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" | "on" => true,
                "false" | "no" | "0" | "off" => false,
                _ => return Err(format!("adopt '{a}': expected true or false")),
            };
        }
        Ok(Some(out))
    }

    /// The policy as the libvirt reader's overrides (they win over the domain's own
    /// `pciplan:policy` metadata).
    pub fn overrides(&self) -> Overrides {
        Overrides {
            policy: self.policy,
            hotplug: self.hotplug.clone(),
        }
    }
}

/// A setting's text, `None` when absent or blank.
fn set(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

/// Why a hook did not plan a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookError {
    /// The policy cannot be met (infeasible, or addresses the domain already has break it):
    /// the VM must not start. The error names the rule and the devices.
    Unmet(PlanError),
    /// Anything else: the domain is left as it was and the reason is a warning.
    Skipped(String),
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookError::Unmet(e) => write!(f, "the hotplug policy cannot be met: {e}"),
            HookError::Skipped(why) => write!(f, "{why}; the domain is left unchanged"),
        }
    }
}

impl std::error::Error for HookError {}

/// Plans a domain XML under `policy`: the planned domain, as `--format libvirt` writes it.
///
/// With `adopt`, the addresses the domain already has are preferences (as `--adopt`):
/// the plan changes as few devices as the guest can see; without it they are pins, and a
/// policy they break is [`HookError::Unmet`]. The adoption's summary goes to standard error.
///
/// # Errors
/// [`HookError::Unmet`] when no layout meets the policy, [`HookError::Skipped`] otherwise.
pub fn plan_domain(xml: &str, policy: &HookPolicy) -> Result<String, HookError> {
    let opts = ReadOptions {
        overrides: policy.overrides(),
        ..ReadOptions::default()
    };
    let dom = Domain::parse_with(xml, &opts)
        .map_err(|e| HookError::Skipped(format!("cannot read the domain: {e}")))?;
    let planned = if policy.adopt {
        dom.adopt()
    } else {
        dom.plan()
    };
    let plan = match planned {
        Ok(p) => {
            if p.changes.is_some() {
                eprintln!("pciplan hook: adopted: {}", crate::summary(&p));
            }
            p
        }
        Err(e @ (PlanError::Infeasible(_) | PlanError::Pins(_))) => {
            return Err(HookError::Unmet(e))
        }
        Err(e) => return Err(HookError::Skipped(format!("cannot plan the domain: {e}"))),
    };
    let mut out = dom
        .write(&plan)
        .map_err(|e| HookError::Skipped(format!("cannot write the domain: {e}")))?;
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}
