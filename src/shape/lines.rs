//! The line cache, in front of the shape cache: a batch line that repeats an earlier line
//! byte for byte except for the guest's `name` is answered without parsing it.
//!
//! Fleets made from templates repeat whole request lines; only the guest name differs.
//! Such a line is the same request but for its name, and the name never changes a plan
//! (the shape key leaves it out), so the result line is the earlier one with the name put
//! in. The line is only scanned: where the top-level `name` value starts and ends. Anything
//! unusual (an escaped key, `name` twice, a name that is not a string or null, text after
//! the object) is left to the full parser, and so is every line the cache has not seen.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use super::{json_string, key_hash, Cached, Pass};
use crate::request::Request;
use crate::Text;

/// Where the guest name sits in a request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameAt {
    /// The line has no top-level `name`.
    Absent,
    /// The byte range of the value token: a string (quotes included) or `null`.
    At(usize, usize),
}

/// Scans `line` (one JSON object) for its top-level `name` value. `None` when the line is
/// not a plain object this scanner reads with certainty; the full parser then decides.
///
/// The scan stops at the first top-level `name`: what follows is compared byte for byte
/// with a line the full parser accepted, so it needs no reading here.
pub(crate) fn name_at(line: &[u8]) -> Option<NameAt> {
    let mut i = ws(line, 0);
    if line.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(line, i + 1);
    if line.get(i) == Some(&b'}') {
        return (ws(line, i + 1) == line.len()).then_some(NameAt::Absent);
    }
    loop {
        let (k0, k1) = string(line, i)?;
        let key = &line[k0 + 1..k1 - 1];
        if key.contains(&b'\\') {
            return None;
        }
        i = ws(line, k1);
        if line.get(i) != Some(&b':') {
            return None;
        }
        i = ws(line, i + 1);
        let end = value(line, i)?;
        if key == b"name" {
            let v = &line[i..end];
            if v != b"null" && v.first() != Some(&b'"') {
                return None;
            }
            // Escapes are checked by decoding (`"\x"` is no JSON string).
            if v.contains(&b'\\') && serde_json::from_slice::<String>(v).is_err() {
                return None;
            }
            return Some(NameAt::At(i, end));
        }
        i = ws(line, end);
        match line.get(i) {
            Some(b',') => i = ws(line, i + 1),
            Some(b'}') => return (ws(line, i + 1) == line.len()).then_some(NameAt::Absent),
            _ => return None,
        }
    }
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The string starting at `i`: (start, one past the closing quote).
fn string(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        match *b.get(j)? {
            b'"' => return Some((i, j + 1)),
            b'\\' => j += 2,
            c if c < 0x20 => return None,
            _ => j += 1,
        }
    }
}

/// One past the end of the JSON value starting at `i` (nesting and strings followed; what
/// the value holds is the full parser's business, for the line that made the entry).
fn value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string(b, i).map(|s| s.1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match *b.get(j)? {
                    b'"' => {
                        j = string(b, j)?.1;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while b
                .get(j)
                .is_some_and(|c| !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// The name as the result line prints it (serde_json's form of the same string).
pub(crate) fn name_json(line: &[u8], at: NameAt, out: &mut String) {
    let NameAt::At(a, b) = at else {
        out.push_str("null");
        return;
    };
    let token = std::str::from_utf8(&line[a..b]).unwrap_or("null");
    if token == "null" {
        out.push_str("null");
    } else if !token.contains('\\') {
        // A string without escapes prints as it was written.
        out.push_str(token);
    } else {
        match serde_json::from_str::<String>(token) {
            Ok(s) => json_string(&s, out),
            Err(_) => out.push_str("null"),
        }
    }
}

/// What a seen line planned to: the result-line text around the two places the name goes.
#[derive(Debug)]
pub(crate) struct LineEntry {
    /// The shape's cached plan (cost, tally).
    pub cached: Arc<Cached>,
    /// The plan object rendered for the line's names, split where the guest name goes.
    before: String,
    after: String,
}

impl LineEntry {
    /// The entry for a line whose request `req` hit `cached`; `None` when the plan names
    /// the guest other than exactly once.
    pub(crate) fn new(cached: Arc<Cached>, req: &Request) -> Option<LineEntry> {
        let mut named = req.clone();
        named.name = Some(Text::from(PLACEHOLDER));
        let mut text = String::new();
        super::ShapeCache::render(&cached, &named, &mut text);
        let quoted = serde_json::to_string(PLACEHOLDER).ok()?;
        let at = text.find(&quoted)?;
        if text[at + quoted.len()..].contains(&quoted) {
            return None;
        }
        Some(LineEntry {
            before: text[..at].to_string(),
            after: text[at + quoted.len()..].to_string(),
            cached,
        })
    }

    /// Appends the plan object with `name` (JSON text) in the guest's place.
    pub(crate) fn render(&self, name: &str, out: &mut String) {
        out.push_str(&self.before);
        out.push_str(name);
        out.push_str(&self.after);
    }

    /// About how long a rendered plan is.
    pub(crate) fn len_hint(&self) -> usize {
        self.before.len() + self.after.len() + 64
    }
}

/// Stands for the guest name while an entry is rendered; a name no request can have next to
/// these plans (it holds a character ids and models never do).
const PLACEHOLDER: &str = "\u{1}pciplan-guest\u{1}";

/// Seen lines, keyed by the line without its name value.
pub(crate) struct LineCache {
    shards: Vec<Mutex<LineShard>>,
    per_shard: usize,
    hits: AtomicU64,
}

/// Stored keys and entries by key hash.
type Buckets = std::collections::HashMap<
    u64,
    Vec<(StoredKey, Arc<LineEntry>)>,
    std::hash::BuildHasherDefault<Pass>,
>;

#[derive(Default)]
struct LineShard {
    /// Hashes of lines seen once: a line gets an entry when it comes again.
    seen: std::collections::HashSet<u64, std::hash::BuildHasherDefault<Pass>>,
    map: Buckets,
    len: usize,
    /// About how many bytes the entries take.
    bytes: usize,
}

const SHARDS: usize = 16;

/// Bytes of seen lines and their results the cache holds at most (about).
const LINE_BYTES: usize = 64 << 20;

/// A line's key: the text before and after the name value (or the whole line, when it has
/// no name), and its hash.
struct Key<'a> {
    before: &'a [u8],
    after: &'a [u8],
    named: bool,
    hash: u64,
}

impl<'a> Key<'a> {
    fn of(line: &'a [u8], at: NameAt) -> Key<'a> {
        let (before, after, named) = match at {
            NameAt::Absent => (line, &line[line.len()..], false),
            NameAt::At(a, b) => (&line[..a], &line[b..], true),
        };
        let hash = key_hash(before) ^ key_hash(after).rotate_left(17) ^ u64::from(named);
        Key {
            before,
            after,
            named,
            hash,
        }
    }

    fn matches(&self, stored: &StoredKey) -> bool {
        stored.named == self.named
            && stored.split == self.before.len()
            && stored.text[..stored.split] == *self.before
            && stored.text[stored.split..] == *self.after
    }
}

/// A key as stored: the two parts end to end.
struct StoredKey {
    text: Box<[u8]>,
    split: usize,
    named: bool,
}

impl LineCache {
    pub(crate) fn new(capacity: usize) -> LineCache {
        LineCache {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LineShard::default()))
                .collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hits: 0.into(),
        }
    }

    /// Lines answered.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Relaxed)
    }

    /// The entry of a line seen before (up to its name). Else the line is marked seen, and
    /// `Err` says whether it had been seen already: a line earns an entry on its second
    /// sight, so fleets whose lines never repeat (ids that change per guest) pay a hash per
    /// line, not an entry.
    pub(crate) fn get(&self, line: &[u8], at: NameAt) -> Result<Arc<LineEntry>, bool> {
        let key = Key::of(line, at);
        let Ok(mut shard) = self.shards[(key.hash as usize) % SHARDS].lock() else {
            return Err(false);
        };
        let hit = shard
            .map
            .get(&key.hash)
            .and_then(|b| b.iter().find(|(k, _)| key.matches(k)))
            .map(|(_, e)| e.clone());
        if let Some(e) = hit {
            self.hits.fetch_add(1, Relaxed);
            return Ok(e);
        }
        if shard.seen.len() >= 4 * self.per_shard {
            shard.seen.clear();
        }
        Err(!shard.seen.insert(key.hash))
    }

    /// Remembers what `line` planned to.
    pub(crate) fn put(&self, line: &[u8], at: NameAt, entry: Arc<LineEntry>) {
        let key = Key::of(line, at);
        let Ok(mut shard) = self.shards[(key.hash as usize) % SHARDS].lock() else {
            return;
        };
        let weight = key.before.len() + key.after.len() + entry.len_hint() + 128;
        if shard.len >= self.per_shard || shard.bytes + weight > LINE_BYTES / SHARDS {
            shard.map.clear();
            shard.len = 0;
            shard.bytes = 0;
        }
        let bucket = shard.map.entry(key.hash).or_default();
        if !bucket.iter().any(|(k, _)| key.matches(k)) {
            let stored = StoredKey {
                text: [key.before, key.after].concat().into(),
                split: key.before.len(),
                named: key.named,
            };
            bucket.push((stored, entry));
            shard.len += 1;
            shard.bytes += weight;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Option<NameAt> {
        name_at(s.as_bytes())
    }

    fn name_of(s: &str) -> Option<&str> {
        match at(s)? {
            NameAt::At(a, b) => Some(&s[a..b]),
            NameAt::Absent => Some("-"),
        }
    }

    #[test]
    fn finds_the_top_level_name_only() {
        assert_eq!(
            name_of(r#"{"name":"web-1","devices":[]}"#),
            Some("\"web-1\"")
        );
        assert_eq!(
            name_of(r#" { "devices" : [ {"id":"name","model":"x"} ] , "name" : null } "#),
            Some("null")
        );
        assert_eq!(name_of(r#"{"devices":[{"name":"x"}]}"#), Some("-"));
        assert_eq!(
            name_of(r#"{"policy":{"name":"x"},"name":"a\"b"}"#),
            Some("\"a\\\"b\"")
        );
        assert_eq!(name_of("{}"), Some("-"));
    }

    /// (What follows the name is not read: a line only hits when it equals, but for the
    /// name, a line the full parser accepted.)
    #[test]
    fn leaves_anything_unusual_to_the_parser() {
        for bad in [
            r#"{"name":3}"#,
            r#"{"name":"\x"}"#,
            r#"{"n\u0061me":"a"}"#,
            r#"["name"]"#,
            "{\"name\":\"a\u{1}\"}",
            r#"{"devices":[}"#,
            "",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_print_as_serde_prints_them() {
        for line in [
            r#"{"name":"plain"}"#,
            r#"{"name":"tab\there"}"#,
            r#"{"name":"\u00e9t\u00e9"}"#,
            r#"{"name":"été"}"#,
            r#"{"name":"q\"uote\\"}"#,
            r#"{"name":"sl\/ash"}"#,
            r#"{"name":null}"#,
        ] {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let mut out = String::new();
            name_json(line.as_bytes(), at(line).unwrap(), &mut out);
            assert_eq!(out, serde_json::to_string(&v["name"]).unwrap(), "{line}");
        }
    }
}
