//! Which budgets can bind: a pure step before the program is built.
//!
//! Each budget (R-ROOT `pcie.0` slots, R-BUSNR bus numbers, R-IO windows) is a constraint with
//! an elastic slack. When even the most a request could use fits, the budget cannot bind, and
//! the program leaves it out with its slack. The slot budget goes with the variables only it
//! needs (expanders, switches, slot counts): root ports on `pcie.0` then hold every port, and
//! anything else could only add cost. A smaller program has far fewer branch-and-bound nodes;
//! the answer is the same.

use super::model::{Model, Place};

/// Which budgets the program keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budgets {
    /// The `pcie.0` slots can run short (R-ROOT): keep the slot budget and its slack, the
    /// slot counts, and new expanders and switches.
    pub root_slots: bool,
    /// The guest bus numbers can run short (R-BUSNR).
    pub bus_numbers: bool,
    /// The firmware's I/O windows can run short (R-IO).
    pub io_windows: bool,
}

/// The most a request could use, counting every unit where it would cost the most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Worst {
    /// Units that may be integrated, one slot each.
    integrated: u32,
    /// Ports: every unit that may take one, the spares, and one per bridge.
    ports: u32,
    /// Bridges if every conventional unit sat on a new one.
    bridges: u32,
    /// Bridges that would open an I/O window.
    io_bridges: u32,
    /// Expanders NUMA regions must (or may) add.
    numa_pxbs: u32,
    /// Ports holding a unit with I/O BARs.
    io_ports: u32,
}

impl Worst {
    fn of(m: &Model) -> Worst {
        let cap = m.bridge_cap.max(1);
        let bridged = |r: usize, io: bool| -> u32 {
            m.in_region(r)
                .filter(|(_, c)| (!io || c.io) && c.may(Place::Bridge))
                .map(|(_, c)| c.n)
                .sum()
        };
        let bridges: u32 = (0..m.regions.len())
            .map(|r| bridged(r, false).div_ceil(cap))
            .sum();
        let io_bridges: u32 = (0..m.regions.len())
            .map(|r| match bridged(r, true) {
                0 => 0,
                n => n.div_ceil(cap) + m.regions[r].bridges_unwindowed,
            })
            .sum();
        let portable = |c: &super::Class| c.may(Place::Port) || c.may(Place::OffPort);
        Worst {
            integrated: m.units_where(|c| c.may(Place::Integrated)),
            ports: m.units_where(portable) + m.spare + bridges,
            bridges,
            io_bridges,
            numa_pxbs: m
                .regions
                .iter()
                .skip(1)
                .enumerate()
                .filter(|(i, r)| {
                    // A pinned range may leave too little room for what goes below.
                    r.new_pxb || r.pxb_free == 0 || m.caps.iter().any(|c| c.region == *i + 1)
                })
                .count() as u32,
            io_ports: m.units_where(|c| c.io && portable(c)),
        }
    }
}

impl Budgets {
    /// Decides which budgets can bind for `m`. What-if `--max` (`growing`) lets one class
    /// grow without bound, so every budget stays.
    pub fn of(m: &Model, growing: bool) -> Budgets {
        let w = Worst::of(m);
        let root_slots = growing
            || w.integrated + w.ports.div_ceil(m.ports_per_slot.max(1)) + w.numa_pxbs
                > m.root_free_slots
            || w.ports + w.bridges > m.root_bus_room
            // Adopting: new ports fill the slots that renumber nothing, then earlier ones.
            || m.adopt.as_ref().is_some_and(|a| {
                w.ports.div_ceil(m.ports_per_slot.max(1)) > a.late_slots
            });
        let bus_numbers = root_slots || m.bus_used + w.ports + w.bridges + w.numa_pxbs > m.bus_max;
        let io_windows = growing || m.io_used + w.io_ports + w.io_bridges > m.io_max;
        Budgets {
            root_slots,
            bus_numbers,
            io_windows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ilp::model::tests::{class, model};

    const PORT: [bool; 4] = [false, false, true, false];
    const BRIDGE: [bool; 4] = [false, false, false, true];

    #[test]
    fn a_small_guest_binds_nothing() {
        let m = model(vec![class(5, PORT, false, false)]);
        let b = Budgets::of(&m, false);
        assert_eq!(
            (b.root_slots, b.bus_numbers, b.io_windows),
            (false, false, false)
        );
        // What-if --max keeps every budget.
        let b = Budgets::of(&m, true);
        assert!(b.root_slots && b.bus_numbers && b.io_windows);
    }

    #[test]
    fn slots_bind_when_ports_may_not_fit() {
        // 240 ports take 30 slots of 8: they fit exactly; one more does not.
        let m = model(vec![class(240, PORT, false, false)]);
        assert!(!Budgets::of(&m, false).root_slots);
        let m = model(vec![class(241, PORT, false, false)]);
        let b = Budgets::of(&m, false);
        // The bus numbers go with the slots.
        assert!(b.root_slots && b.bus_numbers);
    }

    #[test]
    fn bus_numbers_bind_alone() {
        // 100 ports fit 30 slots, but 200 used bus numbers leave 55.
        let mut m = model(vec![class(100, PORT, false, false)]);
        m.bus_used = 200;
        let b = Budgets::of(&m, false);
        assert_eq!((b.root_slots, b.bus_numbers), (false, true));
    }

    #[test]
    fn a_pinned_expander_limits_the_root_bus() {
        let mut m = model(vec![class(10, PORT, false, false)]);
        m.root_bus_room = 9;
        assert!(Budgets::of(&m, false).root_slots);
        m.root_bus_room = 10;
        assert!(!Budgets::of(&m, false).root_slots);
    }

    #[test]
    fn io_windows_count_ports_and_bridges() {
        let mut io_port = class(10, PORT, false, false);
        io_port.io = true;
        let mut io_bridged = class(40, BRIDGE, false, false);
        io_bridged.io = true;
        // 10 ports + 2 bridges = 12 windows of 14.
        assert!(!Budgets::of(&model(vec![io_port.clone(), io_bridged.clone()]), false).io_windows);
        io_bridged.n = 70; // 3 bridges: 13 windows
        assert!(!Budgets::of(&model(vec![io_port.clone(), io_bridged.clone()]), false).io_windows);
        io_port.n = 12; // 15 windows
        assert!(Budgets::of(&model(vec![io_port, io_bridged]), false).io_windows);
    }
}
