//! The numbers the integer program is built from: classes of units, what each region already
//! offers, and the guest's budgets. Nothing here knows good_lp.

/// Where a unit may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Place {
    /// Function 0 of a `pcie.0` slot (R-INTEGRATED).
    Integrated = 0,
    /// A `hotplug=off` port (D-OFF).
    OffPort = 1,
    /// A port (hot-pluggable for `on`).
    Port = 2,
    /// A `pcie-pci-bridge` slot (D-ON for conventional PCI).
    Bridge = 3,
}

/// Every place, in the order the assigner hands them out within a class.
pub(crate) const PLACES: [Place; 4] = [
    Place::Integrated,
    Place::OffPort,
    Place::Port,
    Place::Bridge,
];

/// A class of interchangeable units.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Class {
    /// Units in the class.
    pub n: u32,
    /// Allowed placements, indexed by `Place as usize`.
    pub allowed: [bool; 4],
    /// Region index (0 = anywhere; others = a NUMA node's expander).
    pub region: usize,
    /// `hotplug` is `off`.
    pub off: bool,
    /// `hotplug` is `any`.
    pub any: bool,
    /// Single devices that may share an integrated slot (pack_integrated).
    pub packable: bool,
    /// Some device of the unit has an I/O BAR (rule R-IO).
    pub io: bool,
}

impl Class {
    /// Whether the class may go to `p`.
    pub fn may(&self, p: Place) -> bool {
        self.allowed[p as usize]
    }
}

/// Per-region resources that already exist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Region {
    /// Free existing hot-pluggable ports.
    pub free_on: u32,
    /// Free existing `hotplug=off` ports.
    pub free_off: u32,
    /// Of `free_on`, those only an endpoint may use (no bus number left for a bridge).
    pub free_on_endpoint_only: u32,
    /// Of `free_off`, those only an endpoint may use.
    pub free_off_endpoint_only: u32,
    /// Free existing hot-pluggable bridge slots.
    pub bridge_free: u32,
    /// Of those, slots on bridges that already have an I/O window (R-IO).
    pub bridge_free_io: u32,
    /// Existing bridges with free slots but no I/O window yet.
    pub bridges_unwindowed: u32,
    /// Root-port positions free on existing expanders of this region.
    pub pxb_free: u32,
    /// Whether a new expander must be added for this region (NUMA region without one).
    pub new_pxb: bool,
}

/// The numbers the program is built from. Equal models give equal solutions, so this is
/// also the key of the solution cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Model {
    /// The classes, in a canonical order (equal requests give equal models).
    pub classes: Vec<Class>,
    /// Region 0 has no NUMA node; regions 1.. are one NUMA node each.
    pub regions: Vec<Region>,
    /// Free `pcie.0` slots.
    pub root_free_slots: u32,
    /// Free functions in `pcie.0` slots already holding root ports.
    pub root_free_functions: u32,
    /// Root ports per slot.
    pub ports_per_slot: u32,
    /// Integrated functions per slot when packing.
    pub int_per_slot: u32,
    /// Root-port positions on one expander.
    pub pxb_cap: u32,
    /// Downstream ports per switch.
    pub switch_cap: u32,
    /// Slots per bridge.
    pub bridge_cap: u32,
    /// Free downstream positions on existing switches.
    pub upstream_free: u32,
    /// Spare hot-pluggable ports wanted.
    pub spare: u32,
    /// Bus numbers already used by existing controllers.
    pub bus_used: u32,
    /// Bus numbers available.
    pub bus_max: u32,
    /// Bus numbers left below the lowest pinned expander's `bus_nr` for the `pcie.0`
    /// hierarchy (R-BUSNR); `u32::MAX` without pinned expanders.
    pub root_bus_room: u32,
    /// Pinned expanders with a `bus_nr` whose range has bus numbers left (R-BUSNR): the
    /// new buses below each (root ports on it, bridges below it) must fit that room.
    /// Empty without pinned `bus_nr`.
    pub caps: Vec<Cap>,
    /// Per region, free existing ports below expanders without a pinned `bus_nr` that a
    /// bridge may use: bridges there take no number of `pcie.0`'s range (only read with
    /// [`Model::root_bus_room`] below `bus_max`).
    pub float_ports: Vec<u32>,
    /// Free existing ports in `pcie.0`'s hierarchy that a bridge may use (read likewise).
    pub root_ports_free: u32,
    /// I/O windows existing controllers already take.
    pub io_used: u32,
    /// I/O windows the firmware can give bridges.
    pub io_max: u32,
    /// Size of one window in KiB.
    pub io_window_kib: u32,
    /// Adopting an existing guest (O-ADOPT): its units are soft pins. `None` for every
    /// plain plan, whose program it leaves untouched.
    pub adopt: Option<Adopt>,
}

/// A pinned expander with a `bus_nr` and room left in its range (R-BUSNR).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Cap {
    /// Its region (see [`Region`]).
    pub region: usize,
    /// Bus numbers left in its range: up to the next pinned `bus_nr` (or the last bus
    /// number), after its own bus and the buses already below it.
    pub room: u32,
    /// Free root-port positions on it (counted in its region's `pxb_free`).
    pub positions: u32,
    /// Free existing ports below it that a bridge may use.
    pub ports: u32,
}

/// Where an existing unit sits, as the adoption program sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Site {
    /// A `pcie.0` slot, as an index into [`Adopt::root_slots`].
    Root(usize),
    /// An existing port, as an index into [`Adopt::ports`].
    Port(usize),
    /// A slot of an existing bridge, as an index into [`Adopt::bridges`].
    Bridge(usize),
}

/// An existing unit (a device or multifunction group with an address): it stays where it
/// is (`keep`), or it joins the units of its class that the program places anew.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct OldUnit {
    /// The class it joins when it moves.
    pub class: usize,
    /// Devices in it: each is a guest-visible change when it moves (G-ID).
    pub devices: u32,
    /// Where it is; `None` where it cannot stay under any setting.
    pub site: Option<Site>,
    /// It may stay on a hot-pluggable port (or its site has no port setting and allows it).
    pub stay_on: bool,
    /// It may stay on a `hotplug=off` port.
    pub stay_off: bool,
    /// Some member has an I/O BAR: where it stays, its port or bridge keeps a window.
    pub io: bool,
    /// The existing unit at function 0 of its slot, when it sits at a function above 0:
    /// it stays only if that one does (R-FUNC).
    pub after: Option<usize>,
}

/// An existing port: kept, with a `hotplug` the program chooses (G-FLIP).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct OldPort {
    /// Its region (see [`Region`]).
    pub region: usize,
    /// Its `hotplug` before adoption.
    pub hotplug: bool,
    /// Only an endpoint may go there when it is free: a bridge or switch below it would
    /// take a bus number (R-BUSNR), or renumber the buses of existing devices after it (G-ID).
    pub endpoint_only: bool,
}

/// The soft pins of an adopted guest and the positions that renumber existing buses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Adopt {
    /// Existing units, in request order.
    pub units: Vec<OldUnit>,
    /// Existing ports.
    pub ports: Vec<OldPort>,
    /// `pcie.0` slots existing units occupy (they are among the model's free slots).
    pub root_slots: u32,
    /// Existing bridges, by region.
    pub bridges: Vec<usize>,
    /// Free `pcie.0` slots where a new port renumbers no existing bus (G-ID).
    pub late_slots: u32,
    /// Of [`Adopt::root_slots`] (by index), those where a new port renumbers nothing once
    /// the units there move.
    pub late_freed: Vec<usize>,
    /// The other free slots, latest first: for each, the existing units whose bus number
    /// a new port there changes (each list holds the one before it).
    pub early_slots: Vec<Vec<usize>>,
}

impl Model {
    /// Units in the classes `pick` selects.
    pub fn units_where(&self, pick: impl Fn(&Class) -> bool) -> u32 {
        self.classes.iter().filter(|c| pick(c)).map(|c| c.n).sum()
    }

    /// Whether some class of region `r` may sit on a bridge.
    pub fn has_bridge(&self, r: usize) -> bool {
        self.classes
            .iter()
            .any(|c| c.region == r && c.may(Place::Bridge))
    }

    /// The classes of region `r`, with their index.
    pub fn in_region(&self, r: usize) -> impl Iterator<Item = (usize, &Class)> {
        self.classes
            .iter()
            .enumerate()
            .filter(move |(_, c)| c.region == r)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A guest with the q35 numbers, one global region and the given classes.
    pub(crate) fn model(classes: Vec<Class>) -> Model {
        Model {
            classes,
            regions: vec![Region::default()],
            root_free_slots: 30,
            root_free_functions: 0,
            ports_per_slot: 8,
            int_per_slot: 8,
            pxb_cap: 256,
            switch_cap: 32,
            bridge_cap: 31,
            upstream_free: 0,
            spare: 0,
            bus_used: 0,
            bus_max: 255,
            io_used: 0,
            caps: Vec::new(),
            float_ports: vec![0],
            root_ports_free: 0,
            root_bus_room: u32::MAX,
            io_max: 14,
            io_window_kib: 4,
            adopt: None,
        }
    }

    /// `n` units of region 0 allowed at `allowed`.
    pub(crate) fn class(n: u32, allowed: [bool; 4], off: bool, any: bool) -> Class {
        Class {
            n,
            allowed,
            region: 0,
            off,
            any,
            packable: false,
            io: false,
        }
    }

    #[test]
    fn regions_and_bridges() {
        let mut m = model(vec![class(3, [false, false, false, true], false, false)]);
        m.classes.push(Class {
            region: 1,
            ..class(2, [false, false, true, false], false, false)
        });
        assert!(m.has_bridge(0) && !m.has_bridge(1));
        assert_eq!(m.in_region(1).map(|(i, _)| i).collect::<Vec<_>>(), [1]);
        assert_eq!(m.units_where(|c| c.may(Place::Port)), 2);
    }
}
