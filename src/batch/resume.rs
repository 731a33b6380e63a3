//! Which lines a batch plans: a shard of the fleet, and the lines an earlier run already
//! answered (`--resume`).

use std::io::{self, BufRead};

use crate::error::InputError;

/// Which part of a fleet this process plans: lines where `(line - 1) % n == k - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 1..=n.
    k: u64,
    /// Number of shards.
    n: u64,
}

impl Shard {
    /// Shard `k` of `n` (1-based).
    ///
    /// # Errors
    /// When `n` is 0 or `k` is not in `1..=n`.
    pub fn new(k: u64, n: u64) -> Result<Shard, InputError> {
        if n == 0 || k == 0 || k > n {
            return Err(InputError::new(
                "shard",
                format!("{k}/{n}: want K/N with 1 <= K <= N"),
            ));
        }
        Ok(Shard { k, n })
    }

    /// Parses `K/N`.
    ///
    /// ```
    /// let s = pciplan::batch::Shard::parse("2/3").unwrap();
    /// assert!(s.contains(2) && s.contains(5) && !s.contains(3));
    /// assert!(pciplan::batch::Shard::parse("4/3").is_err());
    /// ```
    ///
    /// # Errors
    /// When the text is not `K/N` with `1 <= K <= N`.
    pub fn parse(text: &str) -> Result<Shard, InputError> {
        let bad = || InputError::new("shard", format!("'{text}': want K/N, e.g. 1/4"));
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        Shard::new(
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        )
    }

    /// Whether input line `line` (1-based) belongs to this shard.
    pub fn contains(&self, line: u64) -> bool {
        line >= 1 && (line - 1) % self.n == self.k - 1
    }
}

/// A set of line numbers (a bitmap; 1,000,000 lines take 125 kB).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineSet {
    bits: Vec<u64>,
    len: u64,
}

impl LineSet {
    /// Adds a line number.
    pub fn insert(&mut self, line: u64) {
        let (w, b) = ((line / 64) as usize, line % 64);
        if w >= self.bits.len() {
            self.bits.resize(w + 1, 0);
        }
        if self.bits[w] & (1 << b) == 0 {
            self.len += 1;
        }
        self.bits[w] |= 1 << b;
    }
    /// Whether `line` is in the set.
    pub fn contains(&self, line: u64) -> bool {
        self.bits
            .get((line / 64) as usize)
            .is_some_and(|w| w & (1 << (line % 64)) != 0)
    }
    /// Number of lines in the set.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What an earlier, possibly killed, run already wrote (for `--resume`).
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// Lines that already have a result.
    pub done: LineSet,
    /// Length in bytes of the complete lines; anything after it is a line cut short by the
    /// kill and must be dropped before appending.
    pub valid_len: u64,
}

impl Resume {
    /// Reads the results written so far. Only complete lines (ending in a newline) count.
    ///
    /// ```
    /// let out = "{\"line\":1,\"name\":null,\"ok\":true}\n{\"line\":3,\"na";
    /// let r = pciplan::batch::Resume::read(out.as_bytes()).unwrap();
    /// assert!(r.done.contains(1) && !r.done.contains(3));
    /// assert_eq!(r.valid_len, 33);
    /// ```
    ///
    /// # Errors
    /// When the results cannot be read.
    pub fn read(mut r: impl BufRead) -> io::Result<Resume> {
        let mut out = Resume::default();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = r.read_until(b'\n', &mut buf)?;
            if n == 0 || buf.last() != Some(&b'\n') {
                return Ok(out);
            }
            out.valid_len += n as u64;
            if let Some(line) = result_line_number(&buf) {
                out.done.insert(line);
            }
        }
    }
}

/// The `line` of one result line: fast for the form pciplan writes, JSON otherwise.
fn result_line_number(text: &[u8]) -> Option<u64> {
    if let Some(rest) = text.strip_prefix(b"{\"line\":") {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 && rest.get(digits) == Some(&b',') {
            return std::str::from_utf8(&rest[..digits]).ok()?.parse().ok();
        }
    }
    serde_json::from_slice::<serde_json::Value>(text)
        .ok()?
        .get("line")?
        .as_u64()
}
