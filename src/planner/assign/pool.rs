//! New-port positions in the order takers get them, kept as runs: a run is a stretch of
//! positions on one bus, function by function and then slot by slot. Which positions a
//! taker may have depends on their bus alone (a pinned expander's `bus_nr` range), so a
//! taker gets the first position of the first run it may have, and an expander's 256
//! positions cost one run, not 256.

use std::collections::VecDeque;

use super::{Bus, Pos};

/// A run of positions on one bus: `count` of them from `slot`.`function` on, the function
/// going up to `per` before the slot goes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run<'a> {
    first: Pos<'a>,
    per: u8,
    count: u32,
}

impl Run<'_> {
    /// Drops the first position.
    fn advance(&mut self) {
        self.count -= 1;
        let p = &mut self.first;
        if p.function + 1 < self.per {
            p.function += 1;
        } else {
            p.function = 0;
            p.slot = p.slot.wrapping_add(1);
        }
    }

    /// The position after the last one.
    fn end(&self) -> (u8, u8) {
        let per = u32::from(self.per.max(1));
        let k = u32::from(self.first.function) + self.count;
        let slot = u32::from(self.first.slot) + k / per;
        (slot as u8, (k % per) as u8)
    }
}

/// New-port positions, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Pool<'a>(VecDeque<Run<'a>>);

impl<'a> Pool<'a> {
    /// Adds `count` positions of `class` on `bus` from `slot`.`function` on, `per`
    /// functions a slot (a position that continues the last run joins it).
    #[inline(never)]
    pub fn push(
        &mut self,
        bus: Bus<'a>,
        class: &'static str,
        (slot, function): (u8, u8),
        per: u8,
        count: u32,
    ) {
        if count == 0 {
            return;
        }
        if let Some(last) = self.0.back_mut() {
            if last.first.bus == bus
                && last.first.class == class
                && last.per == per
                && last.end() == (slot, function)
            {
                last.count += count;
                return;
            }
        }
        let first = Pos {
            bus,
            slot,
            function,
            class,
        };
        self.0.push_back(Run { first, per, count });
    }

    /// Moves all of `other`'s positions after these.
    pub fn append(&mut self, other: &mut Pool<'a>) {
        self.0.append(&mut other.0);
    }

    /// Keeps the first `n` positions.
    #[inline(never)]
    pub fn truncate(&mut self, n: usize) {
        let mut left = n as u64;
        let mut keep = 0;
        for r in self.0.iter_mut() {
            if left == 0 {
                break;
            }
            if u64::from(r.count) > left {
                r.count = left as u32;
            }
            left -= u64::from(r.count);
            keep += 1;
        }
        self.0.truncate(keep);
    }

    /// Takes the first position `ok` accepts (it looks at the bus alone).
    #[inline(never)]
    pub fn take(&mut self, ok: impl Fn(&Pos) -> bool) -> Option<Pos<'a>> {
        let i = self.0.iter().position(|r| ok(&r.first))?;
        let r = &mut self.0[i];
        let p = r.first;
        r.advance();
        if r.count == 0 {
            self.0.remove(i);
        }
        Some(p)
    }

    /// The positions, in order.
    #[cfg(test)]
    #[inline(never)]
    pub fn positions(&self) -> Vec<Pos<'a>> {
        let mut copy = self.clone();
        std::iter::from_fn(|| copy.take(|_| true)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CLASS_ROOT_PORT;

    fn at(p: &Pos) -> (u8, u8) {
        (p.slot, p.function)
    }

    #[test]
    fn runs_go_function_by_function_then_slot_by_slot() {
        let mut pool = Pool::default();
        pool.push(Bus::Added(3), CLASS_ROOT_PORT, (0, 0), 2, 4);
        let got: Vec<(u8, u8)> = pool.positions().iter().map(at).collect();
        assert_eq!(got, [(0, 0), (0, 1), (1, 0), (1, 1)]);
        pool.truncate(3);
        assert_eq!(pool.positions().len(), 3);
    }

    #[test]
    fn contiguous_positions_join_and_takers_skip_whole_buses() {
        let (x, y) = (Bus::Named("x"), Bus::Named("y"));
        let mut pool = Pool::default();
        pool.push(x, CLASS_ROOT_PORT, (2, 6), 8, 1);
        pool.push(x, CLASS_ROOT_PORT, (2, 7), 8, 1);
        pool.push(x, CLASS_ROOT_PORT, (3, 0), 8, 1);
        pool.push(y, CLASS_ROOT_PORT, (1, 0), 1, 2);
        assert_eq!(pool.0.len(), 2);
        let p = pool.take(|p| p.bus == y).map(|p| (p.bus, at(&p)));
        assert_eq!(p, Some((y, (1, 0))));
        let rest: Vec<(Bus, (u8, u8))> = pool.positions().iter().map(|p| (p.bus, at(p))).collect();
        assert_eq!(rest, [(x, (2, 6)), (x, (2, 7)), (x, (3, 0)), (y, (2, 0))]);
    }
}
