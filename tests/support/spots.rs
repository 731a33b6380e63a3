//! Multisets of places where a new bus can go, for the oracles (`oracle.rs`).
#![allow(dead_code)]

/// Places a new bus can go, as a multiset of the sets (bit masks over the adoption's units)
/// of existing units a new bus there renumbers: `(mask, how many)`, sorted by mask. In a
/// plain plan every mask is 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Spots(Vec<(u32, u32)>);

impl Spots {
    pub fn of(mask: u32, n: u32) -> Spots {
        let mut s = Spots::default();
        s.add(mask, n);
        s
    }
    pub fn total(&self) -> u32 {
        self.0.iter().map(|e| e.1).sum()
    }
    /// The distinct masks (places with the same mask are interchangeable).
    pub fn masks(&self) -> Vec<u32> {
        self.0.iter().map(|e| e.0).collect()
    }
    pub fn add(&mut self, mask: u32, n: u32) {
        if n == 0 {
            return;
        }
        match self.0.binary_search_by_key(&mask, |e| e.0) {
            Ok(i) => self.0[i].1 += n,
            Err(i) => self.0.insert(i, (mask, n)),
        }
    }
    pub fn take(&mut self, mask: u32) {
        if let Ok(i) = self.0.binary_search_by_key(&mask, |e| e.0) {
            self.0[i].1 -= 1;
            if self.0[i].1 == 0 {
                self.0.remove(i);
            }
        }
    }
}
