//! A change to a [`Policy`]: every field optional, absent ones left as they are.
//!
//! One type serves every place a policy is partly given: the command-line flags
//! (`--default-hotplug`, `--spare-ports`, `--hotplug-off-strategy`), the `pciplan:policy`
//! metadata of a libvirt domain, and a what-if policy change (`whatif --policy`). Patches stack
//! with [`PolicyPatch::then`]: a field the later one sets wins.

use serde::{Deserialize, Serialize};

use crate::request::{Hotplug, OffStrategy, Policy};

/// Policy fields to set; `None` keeps the value the policy already has.
///
/// ```
/// use pciplan::{Hotplug, Policy, PolicyPatch};
/// let metadata = PolicyPatch { spare_ports: Some(2), default_hotplug: Some(Hotplug::Off), ..Default::default() };
/// let flags = PolicyPatch { spare_ports: Some(4), ..Default::default() };
/// let mut policy = Policy::default();
/// metadata.then(&flags).apply(&mut policy); // the flags come later: they win
/// assert_eq!(policy.spare_ports, 4);
/// assert_eq!(policy.default_hotplug, Hotplug::Off);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    /// New `default_hotplug`.
    #[serde(default)]
    pub default_hotplug: Option<Hotplug>,
    /// New `spare_ports`.
    #[serde(default)]
    pub spare_ports: Option<u32>,
    /// New `hotplug_off`.
    #[serde(default)]
    pub hotplug_off: Option<OffStrategy>,
    /// New `pack_integrated`.
    #[serde(default)]
    pub pack_integrated: Option<bool>,
}

impl PolicyPatch {
    /// Whether the patch sets nothing.
    pub fn is_empty(&self) -> bool {
        self == &PolicyPatch::default()
    }

    /// Sets every field the patch has on `policy`.
    pub fn apply(&self, policy: &mut Policy) {
        if let Some(v) = self.default_hotplug {
            policy.default_hotplug = v;
        }
        if let Some(v) = self.spare_ports {
            policy.spare_ports = v;
        }
        if let Some(v) = self.hotplug_off {
            policy.hotplug_off = v;
        }
        if let Some(v) = self.pack_integrated {
            policy.pack_integrated = v;
        }
    }

    /// This patch followed by `later`: each field `later` sets wins, the others stay.
    pub fn then(&self, later: &PolicyPatch) -> PolicyPatch {
        PolicyPatch {
            default_hotplug: later.default_hotplug.or(self.default_hotplug),
            spare_ports: later.spare_ports.or(self.spare_ports),
            hotplug_off: later.hotplug_off.or(self.hotplug_off),
            pack_integrated: later.pack_integrated.or(self.pack_integrated),
        }
    }

    /// The policy this patch gives when applied to the default one.
    pub fn policy(&self) -> Policy {
        let mut p = Policy::default();
        self.apply(&mut p);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_wins_field_by_field() {
        let a = PolicyPatch {
            default_hotplug: Some(Hotplug::Off),
            spare_ports: Some(1),
            ..Default::default()
        };
        let b = PolicyPatch {
            spare_ports: Some(3),
            pack_integrated: Some(true),
            ..Default::default()
        };
        let m = a.then(&b);
        assert_eq!(m.default_hotplug, Some(Hotplug::Off));
        assert_eq!(m.spare_ports, Some(3));
        assert_eq!(m.hotplug_off, None);
        assert_eq!(m.pack_integrated, Some(true));
        assert_eq!(b.then(&a).spare_ports, Some(1));
    }

    #[test]
    fn empty_patch_changes_nothing() {
        let mut p = Policy {
            spare_ports: 7,
            ..Default::default()
        };
        let before = p.clone();
        assert!(PolicyPatch::default().is_empty());
        PolicyPatch::default().apply(&mut p);
        assert_eq!(p, before);
        assert_eq!(PolicyPatch::default().policy(), Policy::default());
    }

    #[test]
    fn serde_names_the_policy_fields() {
        let p: PolicyPatch =
            serde_json::from_str(r#"{"hotplug_off":"auto","spare_ports":2}"#).unwrap();
        assert_eq!(p.hotplug_off, Some(OffStrategy::Auto));
        assert!(serde_json::from_str::<PolicyPatch>(r#"{"spare":2}"#).is_err());
    }
}
