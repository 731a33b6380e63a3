//! The placement rules, one variant each, so that the catalog, the integer program, the
//! validator, explanations and tests all name a rule the same way.
//!
//! A rule's [`Display`](std::fmt::Display) is its id (`R-ROOT`), the id printed in error
//! messages in square brackets and documented in `docs/rules.md`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! rules {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, )*) => {
        /// A placement rule (see `docs/rules.md`); `Display` gives its id.
        ///
        /// ```
        /// use pciplan::Rule;
        /// assert_eq!(Rule::Root.to_string(), "R-ROOT");
        /// assert_eq!("D-PIN".parse::<Rule>(), Ok(Rule::Pin));
        /// assert!("X-NOPE".parse::<Rule>().is_err());
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Rule {
            $( $(#[$doc])* $variant, )*
        }

        impl Rule {
            /// Every rule, in the order `docs/rules.md` lists them.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant),*];

            /// The rule's id, as printed in messages (`R-ROOT`).
            pub const fn id(self) -> &'static str {
                match self {
                    $(Rule::$variant => $id,)*
                }
            }
        }

        impl FromStr for Rule {
            type Err = UnknownRule;
            fn from_str(s: &str) -> Result<Rule, UnknownRule> {
                match s {
                    $($id => Ok(Rule::$variant),)*
                    _ => Err(UnknownRule(s.to_string())),
                }
            }
        }
    };
}

rules! {
    /// `pcie.0` is the root bus; slots 1..30 are usable.
    Root = "R-ROOT",
    /// A function > 0 needs function 0 of its slot with `multifunction=on`.
    Func = "R-FUNC",
    /// A device on `pcie.0` is an integrated endpoint the guest cannot unplug.
    Integrated = "R-INTEGRATED",
    /// An integrated endpoint takes a slot of its own unless grouped or packed.
    IntSlot = "R-INT-SLOT",
    /// What a `pcie-root-port` plugs into and takes.
    RootPort = "R-RP",
    /// Up to 8 root ports share one slot as functions.
    RootPortPack = "R-RP-PACK",
    /// Unique `chassis`/`port` per root or downstream port.
    RootPortId = "R-RP-ID",
    /// A port is hot-pluggable unless it has `hotplug=off`.
    HotplugPort = "R-HP-PORT",
    /// Switch upstream and downstream ports.
    Switch = "R-SWITCH",
    /// `pcie-pci-bridge`: conventional slots, always hot-pluggable.
    Bridge = "R-BRIDGE",
    /// `pxb-pcie` expander buses take only root ports.
    Pxb = "R-PXB",
    /// 256 guest bus numbers, ranges that must not overlap.
    BusNr = "R-BUSNR",
    /// The firmware's I/O port windows.
    Io = "R-IO",
    /// Legacy bridges are read, never added.
    Legacy = "R-LEGACY",
    /// A device model is a PCIe or a conventional PCI endpoint.
    Kind = "D-KIND",
    /// A device's hotplug requirement: `on`, `off` or `any`.
    Hotplug = "D-HP",
    /// Where a hotplug-`off` device may go.
    Off = "D-OFF",
    /// Where a hotplug-`on` device may go.
    On = "D-ON",
    /// A group shares one slot as functions.
    Group = "D-GROUP",
    /// A device with `numa_node` sits below an expander of that node.
    Numa = "D-NUMA",
    /// Pinned addresses are kept and validated.
    Pin = "D-PIN",
    /// A device's guest-visible identity: its path and bus number.
    GuestId = "G-ID",
    /// Flipping a port's `hotplug` changes no path or bus number.
    GuestFlip = "G-FLIP",
    /// Minimise the controllers added.
    Cost = "O-COST",
    /// Spare hot-pluggable ports count in the cost.
    Spare = "O-SPARE",
    /// Adopting: fewest guest-visible changes, then controllers, then flips.
    Adopt = "O-ADOPT",
    /// Equal-cost plans are chosen deterministically.
    Tie = "O-TIE",
    /// `pc`: the root bus `pci.0`, its reserved slots 0 and 1 (PIIX3), endpoints on 2..31.
    PcRoot = "PC-ROOT",
    /// `pc`: hotplug of the whole root bus is one switch per guest.
    PcRootHp = "PC-ROOT-HP",
    /// `pc`: a `pci-bridge` provides slots 1..31, always hot-pluggable.
    PcBridge = "PC-BRIDGE",
    /// `pc`: `off` devices on `pci.0` with root hotplug off, `on` devices then on bridges.
    PcMix = "PC-MIX",
    /// `pc`: NUMA placement is out of scope.
    PcNuma = "PC-NUMA",
    /// `virt`: the root bus `pcie.0`, slot 0 the gpex host bridge, 1..31 usable (no chipset).
    VirtRoot = "VIRT-ROOT",
    /// `virt`: hotplug is native PCIe only (root ports with or without `hotplug=off`).
    VirtHp = "VIRT-HP",
    /// `virt`: libvirt lays aarch64 `virt` out as q35.
    VirtLibvirt = "VIRT-LIBVIRT",
    /// `virt`: the device models of `qemu-system-aarch64`, no VGA or ISA; UEFI (AAVMF) only.
    VirtModels = "VIRT-MODELS",
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Rules order by id, so lists sorted by rule read alphabetically.
impl Ord for Rule {
    fn cmp(&self, other: &Rule) -> Ordering {
        self.id().cmp(other.id())
    }
}

impl PartialOrd for Rule {
    fn partial_cmp(&self, other: &Rule) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Serialised as its id, so JSON output says `"rule": "R-ROOT"`.
impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

/// Read from its id, so catalogs say `"rule": "R-ROOT"`; an unknown id is an error naming it.
impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rule, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl PartialEq<&str> for Rule {
    fn eq(&self, other: &&str) -> bool {
        self.id() == *other
    }
}

/// A string that is not the id of any [`Rule`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rule id '{0}'")]
pub struct UnknownRule(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Rule::ALL {
            assert_eq!(r.id().parse::<Rule>(), Ok(*r));
            assert!(seen.insert(r.id()), "duplicate id {}", r.id());
        }
    }

    #[test]
    fn orders_by_id() {
        assert!(Rule::Pin < Rule::Root); // "D-PIN" < "R-ROOT"
        assert!(Rule::Cost > Rule::Numa);
    }

    #[test]
    fn serialises_as_id() {
        assert_eq!(serde_json::to_string(&Rule::BusNr).unwrap(), "\"R-BUSNR\"");
    }
}
