//! A table keyed by short strings (QEMU ids, device model names) that looks a name up
//! without a general hasher: the name's length and three 8-byte words of it make its key,
//! which is both the hash input and, for names up to 24 bytes, the equality test.

/// A name's length and its first, middle and last eight bytes (fewer bytes packed into
/// the first word for shorter names). Up to 24 bytes these cover the whole name, so equal
/// keys mean equal names; longer names compare their bytes too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Key {
    len: usize,
    w: [u64; 3],
}

/// Names up to this long are equal when their keys are.
const COVERED: usize = 24;

/// The eight bytes of `b` at `at` (little-endian); `at + 8 <= b.len()`.
fn word(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl Key {
    /// The key of `name`.
    #[inline(always)]
    pub(crate) fn of(name: &str) -> Key {
        let b = name.as_bytes();
        let n = b.len();
        let w = if n >= 8 {
            [word(b, 0), word(b, n / 2 - 4), word(b, n - 8)]
        } else if n >= 4 {
            let half = |at: usize| {
                let mut a = [0u8; 4];
                a.copy_from_slice(&b[at..at + 4]);
                u64::from(u32::from_le_bytes(a))
            };
            [half(0) | half(n - 4) << 32, 0, 0]
        } else if n > 0 {
            [
                u64::from(b[0]) | u64::from(b[n / 2]) << 8 | u64::from(b[n - 1]) << 16,
                0,
                0,
            ]
        } else {
            [0; 3]
        };
        Key { len: n, w }
    }

    /// The hash: the key's words mixed by one multiplication; the table takes its high bits.
    #[inline(always)]
    pub(crate) fn hash(&self) -> u64 {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        (self.w[0] ^ self.w[1].rotate_left(21) ^ self.w[2].rotate_left(42) ^ self.len as u64)
            .wrapping_mul(K)
    }
}

/// Values by name, inserted once each: open addressing over a power-of-two table kept at
/// most a quarter full.
#[derive(Debug, Clone)]
pub(crate) struct StrTable<S, V> {
    entries: Vec<(Key, S, V)>,
    /// Entry index + 1, or 0 for a free slot.
    slots: Vec<u32>,
    /// 64 minus the table's bits.
    shift: u32,
}

impl<S: AsRef<str>, V> Default for StrTable<S, V> {
    fn default() -> Self {
        StrTable::with_capacity(0)
    }
}

impl<S: AsRef<str>, V> StrTable<S, V> {
    /// An empty table with room for `n` names before it regrows.
    pub(crate) fn with_capacity(n: usize) -> Self {
        let size = (n.max(1) * 4).next_power_of_two();
        StrTable {
            entries: Vec::with_capacity(n),
            slots: vec![0; size],
            shift: 64 - size.trailing_zeros(),
        }
    }

    /// The entry of the name with key `k` (equal to `name`), or the free slot it would take.
    #[inline(always)]
    fn find(&self, k: &Key, name: &str) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut i = (k.hash() >> self.shift) as usize;
        loop {
            let e = self.slots[i & mask] as usize;
            if e == 0 {
                return Err(i & mask);
            }
            let (ek, es, _) = &self.entries[e - 1];
            if ek.w == k.w && ek.len == k.len && (k.len <= COVERED || es.as_ref() == name) {
                return Ok(e - 1);
            }
            i += 1;
        }
    }

    /// The value of `name`.
    #[inline]
    pub(crate) fn get(&self, name: &str) -> Option<&V> {
        self.find(&Key::of(name), name)
            .ok()
            .map(|e| &self.entries[e].2)
    }

    /// Adds `name` unless it is there: `false` (nothing changed) when it is.
    pub(crate) fn insert(&mut self, name: S, value: V) -> bool {
        let k = Key::of(name.as_ref());
        let Err(slot) = self.find(&k, name.as_ref()) else {
            return false;
        };
        self.entries.push((k, name, value));
        self.slots[slot] = self.entries.len() as u32;
        if self.entries.len() * 4 > self.slots.len() {
            self.regrow();
        }
        true
    }

    /// Doubles the table and places every entry again.
    fn regrow(&mut self) {
        let size = self.slots.len() * 2;
        self.slots = vec![0; size];
        self.shift = 64 - size.trailing_zeros();
        let mask = size - 1;
        for (e, (k, _, _)) in self.entries.iter().enumerate() {
            let mut i = (k.hash() >> self.shift) as usize;
            while self.slots[i & mask] != 0 {
                i += 1;
            }
            self.slots[i & mask] = e as u32 + 1;
        }
    }
}

/// The value of a name the table holds (tests read topologies this way).
#[cfg(test)]
impl<S: AsRef<str>, V> std::ops::Index<&str> for StrTable<S, V> {
    type Output = V;

    fn index(&self, name: &str) -> &V {
        self.get(name).expect("a name the table holds")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_inserted_and_nothing_else() {
        let mut names: Vec<String> = ["", "a", "ab", "abc", "abcd", "abcdefg", "abcdefgh"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // Long names differing only in bytes the key leaves out, and many short ones.
        for n in [9, 16, 17, 24, 25, 31, 40] {
            names.push("x".repeat(n));
            let mut s = "x".repeat(n).into_bytes();
            s[n / 2 - 6.min(n / 2)] = b'y';
            names.push(String::from_utf8(s).unwrap());
        }
        for i in 0..300 {
            names.push(format!("dev{i}"));
            names.push(format!("virtio-net-pci-{i}-non-transitional"));
        }
        names.sort();
        names.dedup();
        let mut t: StrTable<String, usize> = StrTable::default();
        for (i, n) in names.iter().enumerate() {
            assert!(t.insert(n.clone(), i), "{n}");
        }
        for (i, n) in names.iter().enumerate() {
            assert_eq!(t.get(n), Some(&i), "{n}");
            assert!(!t.insert(n.clone(), 0), "{n}");
        }
        for n in [
            "abcde",
            "dev300",
            "x",
            "xx",
            "virtio-net-pci",
            "é",
            "abcdefgi",
        ] {
            assert_eq!(t.get(n), None, "{n}");
        }
        // Keys of different names up to 24 bytes differ.
        for a in names.iter().filter(|n| n.len() <= COVERED) {
            for b in names
                .iter()
                .filter(|n| n.len() <= COVERED && *n != a)
                .take(50)
            {
                assert_ne!(Key::of(a), Key::of(b), "{a} {b}");
            }
        }
    }
}
