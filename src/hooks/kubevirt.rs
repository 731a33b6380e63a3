//! KubeVirt's `onDefineDomain` hook (docs/formats.md "Hooks of management stacks").
//!
//! KubeVirt's sidecar shim runs `onDefineDomain --vmi VMI_JSON --domain DOMAIN_XML` and
//! defines the domain the hook prints. The policy comes from the VMI's
//! `metadata.annotations`:
//!
//! - `pciplan.io/policy`: a JSON object as the request's `policy`
//!   (`{"default_hotplug": "off", "spare_ports": 2}`);
//! - `pciplan.io/hotplug`: `ua-net0=off,ua-rootdisk=any`, devices named by their libvirt
//!   aliases. virt-launcher gives every device the VMI names the user alias `ua-` + its
//!   name, so a name without the prefix (`default=off`) gets it;
//! - `pciplan.io/adopt`: `true` to treat existing addresses as preferences.
//!
//! With none of them the domain is printed back byte for byte.
//!
//! ```
//! use pciplan::hooks::kubevirt;
//! let vmi = r#"{"metadata": {"name": "vm1", "annotations": {"pciplan.io/hotplug": "default=off"}}}"#;
//! let p = kubevirt::policy_of_vmi(vmi).unwrap().unwrap();
//! assert_eq!(p.hotplug[0].0, "ua-default");
//! let plain = r#"{"metadata": {"name": "vm1", "annotations": {"other": "x"}}}"#;
//! assert!(kubevirt::policy_of_vmi(plain).unwrap().is_none());
//! ```

use serde_json::Value;

use super::{plan_domain, HookError, HookPolicy};

/// The annotation with the policy fields (a JSON object).
pub const POLICY_ANNOTATION: &str = "pciplan.io/policy";
/// The annotation with per-device hotplug requirements (`ALIAS=on|off|any,...`).
pub const HOTPLUG_ANNOTATION: &str = "pciplan.io/hotplug";
/// The annotation that asks to adopt existing addresses (`true`).
pub const ADOPT_ANNOTATION: &str = "pciplan.io/adopt";
/// The prefix virt-launcher puts before the names of VMI devices to make libvirt aliases.
pub const ALIAS_PREFIX: &str = "ua-";

/// The policy a VMI's annotations ask for; `Ok(None)` when it has none of pciplan's.
///
/// # Errors
/// When the VMI is not JSON, or an annotation does not parse.
pub fn policy_of_vmi(vmi_json: &str) -> Result<Option<HookPolicy>, String> {
    let vmi: Value = serde_json::from_str(vmi_json).map_err(|e| format!("VMI: {e}"))?;
    let annotations = vmi.pointer("/metadata/annotations");
    let get = |key: &str| -> Result<Option<&str>, String> {
        match annotations.and_then(|a| a.get(key)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(format!("annotation {key}: a string, not {other}")),
        }
    };
    let policy = HookPolicy::parse(
        get(POLICY_ANNOTATION)?,
        get(HOTPLUG_ANNOTATION)?,
        get(ADOPT_ANNOTATION)?,
    )
    .map_err(|e| format!("annotation: {e}"))?;
    Ok(policy.map(|mut p| {
        for (alias, _) in &mut p.hotplug {
            if !alias.starts_with(ALIAS_PREFIX) {
                alias.insert_str(0, ALIAS_PREFIX);
            }
        }
        p
    }))
}

/// The domain to define: `Ok(None)` when the VMI asks for no policy (define the input as it
/// is), else the planned domain.
///
/// # Errors
/// [`HookError::Unmet`] when the policy cannot be met (the VM must not start);
/// [`HookError::Skipped`] for anything else (the input is to be defined as it is).
pub fn on_define_domain(vmi_json: &str, domain_xml: &str) -> Result<Option<String>, HookError> {
    let Some(policy) = policy_of_vmi(vmi_json).map_err(HookError::Skipped)? else {
        return Ok(None);
    };
    plan_domain(domain_xml, &policy).map(Some)
}
