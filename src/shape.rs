//! The shape cache: fleets repeat templates, so requests that differ only in their names
//! (guest name, device ids, controller ids, group names) are planned once.
//!
//! A request's *shape* is the request with every name replaced by a canonical one derived
//! from its position (`k-0`, `k-1`, ... for devices, `c-0`, ... for controllers, `g-0`, ...
//! for groups in order of first appearance) and the guest name dropped. The planner is
//! run on the shape, and the plan it returns is re-labelled with the guest's own names.
//!
//! Why this is byte-identical to planning the guest alone: the planner only compares names
//! for equality (bus references, groups) and never orders by them, except when it names the
//! controllers it adds (`rp1`, `br1`, `pxb1`, ...), where it skips names the request already
//! uses. Canonical names contain a `-` and so can never look like a planner name; and request
//! names that *do* look like one (`rp1`, `pxb2`, ... as left by an earlier plan) are kept
//! verbatim in the shape. So the set of taken planner-style names is the same in the shape
//! and in the guest, the planner makes the same choices, and re-labelling maps exactly the
//! names the request gave. Errors are not cached (their messages name devices and give
//! addresses): a shape whose plan fails is planned again under the guest's own names.
//!
//! The key keeps device order: the plan follows request order (rule O-TIE: lowest slots go
//! to earlier devices), so two orderings are two shapes. Order-insensitive reuse happens one
//! level down, where the planner memoises integer-program solutions by class counts.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use crate::catalog::Catalog;
use crate::error::PlanError;
use crate::plan::Plan;
use crate::planner::plan_with;
use crate::request::{Address, Request};
use crate::Text;

mod key;
pub(crate) mod lines;

use key::shape_key;

/// Prefixes of the names the planner gives the controllers it adds (`planner.rs`, `finish`).
/// Request names of the form `PREFIX` + digits are kept verbatim in a shape.
const PLANNER_PREFIXES: [&str; 6] = ["pxb", "ctl", "rp", "dp", "up", "br"];

/// Whether `id` could be a name the planner generates for an added controller.
fn planner_style(id: &str) -> bool {
    PLANNER_PREFIXES.iter().any(|p| {
        id.strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// What a canonical name stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Canon {
    Device(usize),
    Controller(usize),
    Group(usize),
    /// The guest name (only in plan templates).
    Guest,
}

fn canon_name(c: Canon) -> Text {
    match c {
        Canon::Device(i) => compact_str::format_compact!("k-{i}"),
        Canon::Controller(i) => compact_str::format_compact!("c-{i}"),
        Canon::Group(i) => compact_str::format_compact!("g-{i}"),
        Canon::Guest => Text::const_new("n-0"),
    }
}

fn parse_canon(name: &str) -> Option<Canon> {
    if name.as_bytes().get(1) != Some(&b'-') {
        return None;
    }
    let (kind, n) = name.split_once('-')?;
    let i: usize = n.parse().ok()?;
    match kind {
        "k" => Some(Canon::Device(i)),
        "c" => Some(Canon::Controller(i)),
        "g" => Some(Canon::Group(i)),
        "n" if i == 0 => Some(Canon::Guest),
        _ => None,
    }
}

/// A request in canonical form plus what is needed to map its plan back.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// The canonical request (what the planner plans on a miss).
    pub request: Request,
}

impl Shape {
    /// The shape of `req`, or `None` when the request cannot be shared safely (a pinned
    /// address names a bus that is no controller of the request nor the root bus; such a
    /// request fails anyway and is planned on its own).
    pub(crate) fn of(req: &Request, cat: &Catalog) -> Option<Shape> {
        let root = cat.root.bus.as_str();
        if !free_text_fits_templates(req) {
            return None;
        }
        let ctrl_index: HashMap<&str, usize> = req
            .controllers
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.as_str(), i))
            .collect();
        let rename_ctrl = |id: &str, i: usize| {
            if planner_style(id) {
                Text::from(id)
            } else {
                canon_name(Canon::Controller(i))
            }
        };
        let bus = |b: &str| -> Option<Text> {
            if b == root {
                Some(Text::from(b))
            } else {
                ctrl_index.get(b).map(|&i| rename_ctrl(b, i))
            }
        };
        let address = |a: &Address| -> Option<Address> {
            Some(Address {
                bus: bus(&a.bus)?,
                slot: a.slot,
                function: a.function,
            })
        };
        let mut groups: Vec<String> = Vec::new();
        let mut devices = Vec::with_capacity(req.devices.len());
        for (i, d) in req.devices.iter().enumerate() {
            let mut c = d.clone();
            c.id = if planner_style(&d.id) {
                d.id.clone()
            } else {
                canon_name(Canon::Device(i))
            };
            if let Some(g) = &d.group {
                let gi = match groups.iter().position(|x| x == g) {
                    Some(p) => p,
                    None => {
                        groups.push(g.to_string());
                        groups.len() - 1
                    }
                };
                c.group = Some(canon_name(Canon::Group(gi)));
            }
            if let Some(a) = &d.address {
                c.address = Some(address(a)?);
            }
            devices.push(c);
        }
        let mut controllers = Vec::with_capacity(req.controllers.len());
        for (i, k) in req.controllers.iter().enumerate() {
            let mut c = k.clone();
            c.id = rename_ctrl(&k.id, i);
            c.address = address(&k.address)?;
            controllers.push(c);
        }
        let request = Request {
            name: None,
            machine: req.machine.clone(),
            firmware: req.firmware,
            policy: req.policy.clone(),
            devices,
            controllers,
            root_hotplug: req.root_hotplug,
        };
        Some(Shape { request })
    }
}

/// Whether the request's free text (machine and model strings, which end up in the plan
/// beside the names) can go into a plan template: none looks like a canonical name (it would
/// be mistaken for one) or needs a JSON escape (templates assume plan strings need none).
/// [`Shape::of`] and [`shape_key`] share the request only when this holds.
fn free_text_fits_templates(req: &Request) -> bool {
    let fits = |m: &str| {
        parse_canon(m).is_none() && !m.contains(['"', '\\']) && !m.chars().any(char::is_control)
    };
    fits(&req.machine)
        && req.devices.iter().all(|d| fits(&d.model))
        && req.controllers.iter().all(|c| fits(&c.model))
}

/// Group names of `req` in order of first appearance (canonical group `g-i` is the `i`th).
fn groups_of(req: &Request) -> Vec<&str> {
    let mut groups: Vec<&str> = Vec::new();
    for g in req.devices.iter().filter_map(|d| d.group.as_deref()) {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    groups
}

/// A cached plan (under canonical names) re-labelled with the names of `req`, a request
/// of the same shape.
fn relabel(plan: &Plan, req: &Request) -> Plan {
    let groups = groups_of(req);
    let mut p = plan.clone();
    let name = |s: &mut Text| {
        let orig = match parse_canon(s) {
            Some(Canon::Device(i)) => req.devices.get(i).map(|d| d.id.as_str()),
            Some(Canon::Controller(i)) => req.controllers.get(i).map(|c| c.id.as_str()),
            Some(Canon::Group(i)) => groups.get(i).copied(),
            Some(Canon::Guest) | None => None,
        };
        if let Some(o) = orig {
            s.clear();
            s.push_str(o);
        }
    };
    for c in &mut p.controllers {
        name(&mut c.id);
        name(&mut c.bus);
    }
    for d in &mut p.devices {
        name(&mut d.id);
        name(&mut d.bus);
        if let Some(g) = &mut d.group {
            name(g);
        }
    }
    p.name.clone_from(&req.name);
    p
}

/// A fast 64-bit hash of a shape key (word at a time). Not keyed: a colliding key only
/// costs a comparison, and the cache is bounded.
fn key_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let mut w = [0u8; 8];
    w[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    h ^ (h >> 29)
}

/// A piece of a plan template: JSON text, or a name to fill in.
#[derive(Debug, Clone)]
enum Seg {
    Text(String),
    Name(Canon),
}

/// One cached shape that planned: the plan under canonical names, the same plan as a JSON
/// template, and what a batch summary needs.
#[derive(Debug)]
pub(crate) struct Cached {
    plan: Plan,
    template: Vec<Seg>,
    /// Whether the plan names groups (then a render needs the request's group names).
    grouped: bool,
    /// About how long the rendered plan is.
    len_hint: usize,
    /// Controllers added, by model.
    pub added: Vec<(String, u64)>,
}

impl Cached {
    fn new(plan: Plan) -> Cached {
        let mut named = plan.clone();
        named.name = Some(canon_name(Canon::Guest));
        let text = serde_json::to_string(&named).unwrap_or_default();
        let mut added: Vec<(String, u64)> = Vec::new();
        for c in plan.controllers.iter().filter(|c| c.added) {
            match added.iter_mut().find(|(m, _)| *m == c.model) {
                Some((_, n)) => *n += 1,
                None => added.push((c.model.to_string(), 1)),
            }
        }
        let template = template(&text);
        Cached {
            len_hint: template
                .iter()
                .map(|s| match s {
                    Seg::Text(t) => t.len(),
                    Seg::Name(_) => 16,
                })
                .sum(),
            grouped: template
                .iter()
                .any(|s| matches!(s, Seg::Name(Canon::Group(_)))),
            plan,
            template,
            added,
        }
    }

    /// The plan's cost.
    pub fn cost(&self) -> u32 {
        self.plan.cost
    }

    /// Whether the plan is proven optimal.
    pub fn optimal(&self) -> bool {
        self.plan.optimal
    }

    /// About how long the rendered plan is, in bytes.
    pub fn len_hint(&self) -> usize {
        self.len_hint
    }

    /// About how many bytes the entry takes: the plan, its template and the tally.
    pub(crate) fn weight(&self) -> usize {
        3 * self.len_hint + 256
    }
}

/// Splits plan JSON at every string that is a canonical name (`"k-3"`, `"n-0"`, ...).
fn template(text: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    // Start of the literal text not yet pushed.
    let mut lit = 0;
    let mut at = 0;
    // Strings in a plan hold ids, buses, models and drivers, none with escapes.
    while let Some(q) = memchr::memchr(b'"', &text.as_bytes()[at..]) {
        let open = at + q;
        let Some(len) = memchr::memchr(b'"', &text.as_bytes()[open + 1..]) else {
            break;
        };
        let close = open + 1 + len;
        if let Some(c) = parse_canon(&text[open + 1..close]) {
            if lit < open {
                out.push(Seg::Text(text[lit..open].to_string()));
            }
            out.push(Seg::Name(c));
            lit = close + 1;
        }
        at = close + 1;
    }
    if lit < text.len() {
        out.push(Seg::Text(text[lit..].to_string()));
    }
    out
}

/// One cached shape: its plan, or the fact that it failed (then each guest is planned alone
/// so that its error names its own devices).
type Entry = Option<Arc<Cached>>;

/// What the cache answers for one request.
pub(crate) enum Answer {
    /// A hit: the cached plan, to be rendered for this request with [`ShapeCache::render`].
    Hit(Arc<Cached>),
    /// Planned (or failed) for this request alone.
    Planned(Result<Plan, PlanError>),
}

/// A memo of plans by request shape, shared between threads.
///
/// It gives exactly the plans [`plan_with`](crate::plan_with) gives (byte for byte once
/// emitted); it only saves the work for requests whose shape it has seen.
///
/// ```
/// use pciplan::{Catalog, Request, ShapeCache};
/// let cache = ShapeCache::new(10_000);
/// let a = Request::from_json(r#"{"name":"a","devices":[{"id":"net0","model":"virtio-net-pci"}]}"#).unwrap();
/// let b = Request::from_json(r#"{"name":"b","devices":[{"id":"eth","model":"virtio-net-pci"}]}"#).unwrap();
/// let pa = cache.plan_with(&a, Catalog::q35()).unwrap();
/// let pb = cache.plan_with(&b, Catalog::q35()).unwrap();
/// assert_eq!(pb, pciplan::plan(&b).unwrap());
/// assert_eq!((pa.devices[0].id.as_str(), pb.devices[0].id.as_str()), ("net0", "eth"));
/// assert_eq!(cache.stats().hits, 1);
/// ```
pub struct ShapeCache {
    /// Shape keys by their hash; a bucket holds the keys that share a hash.
    shards: Vec<Mutex<HashMap<u64, Bucket, BuildHasherDefault<Pass>>>>,
    /// Keys held per shard, and about how many bytes they take.
    lens: Vec<std::sync::atomic::AtomicUsize>,
    bytes: Vec<std::sync::atomic::AtomicUsize>,
    per_shard: usize,
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
    /// Requests seen while the cache was mostly missing.
    sampled: std::sync::atomic::AtomicU64,
    /// Batch lines seen, up to the guest name.
    pub(crate) lines: lines::LineCache,
}

/// Hit and miss counts of a [`ShapeCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Requests answered from the cache.
    pub hits: u64,
    /// Requests planned (and then cached).
    pub misses: u64,
}

const SHARDS: usize = 16;

/// Misses a cache takes before it may decide that a fleet mostly misses.
const MISSES_BEFORE_SAMPLING: u64 = 1024;

/// While a fleet mostly misses, one request in this many still goes through the cache.
const SAMPLE_EVERY: u64 = 64;

/// Bytes of cached plans the shape cache holds at most (about).
const SHAPE_BYTES: usize = 96 << 20;

impl ShapeCache {
    /// A cache holding up to about `capacity` shapes, and at most about 96 MiB of plans
    /// (plus 64 MiB of repeated lines for a batch). When a part of it fills up it is
    /// emptied, so memory stays bounded whatever the fleet.
    pub fn new(capacity: usize) -> ShapeCache {
        ShapeCache {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
            lens: (0..SHARDS).map(|_| 0.into()).collect(),
            bytes: (0..SHARDS).map(|_| 0.into()).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hits: 0.into(),
            misses: 0.into(),
            sampled: 0.into(),
            lines: lines::LineCache::new(capacity),
        }
    }

    /// Hits and misses so far.
    pub fn stats(&self) -> CacheStats {
        use std::sync::atomic::Ordering::Relaxed;
        CacheStats {
            hits: self.hits.load(Relaxed) + self.lines.hits(),
            misses: self.misses.load(Relaxed),
        }
    }

    /// Plans `req` with the catalog its `machine` names, through the cache.
    ///
    /// # Errors
    /// As [`plan`](crate::plan).
    pub fn plan(&self, req: &Request) -> Result<Plan, PlanError> {
        let cat = Catalog::for_machine(&req.machine)?;
        self.plan_with(req, cat)
    }

    /// Plans `req` with `cat`, through the cache. Use one cache per catalog.
    ///
    /// # Errors
    /// As [`plan_with`](crate::plan_with).
    pub fn plan_with(&self, req: &Request, cat: &Catalog) -> Result<Plan, PlanError> {
        match self.answer(req, cat) {
            Answer::Hit(c) => Ok(relabel(&c.plan, req)),
            Answer::Planned(r) => r,
        }
    }

    /// Looks `req` up, planning its shape on a miss.
    pub(crate) fn answer(&self, req: &Request, cat: &Catalog) -> Answer {
        use std::sync::atomic::Ordering::Relaxed;
        // A fleet without repeats gains nothing from the cache, and a miss costs a canonical
        // copy, a plan template and a re-labelling on top of planning (together about as
        // much again as the plan). Once it mostly misses (after MISSES_BEFORE_SAMPLING),
        // only every SAMPLE_EVERY-th request still goes through it (so a fleet that turns
        // repetitive later is noticed); the others are planned directly. Either way the
        // bytes are those of planning alone.
        let (hits, misses) = (self.hits.load(Relaxed), self.misses.load(Relaxed));
        if misses >= MISSES_BEFORE_SAMPLING
            && hits.saturating_mul(8) < misses
            && self.sampled.fetch_add(1, Relaxed) % SAMPLE_EVERY != 0
        {
            return Answer::Planned(plan_with(req, cat));
        }
        thread_local! {
            static KEY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let looked = KEY.with(|k| {
            let mut key = k.borrow_mut();
            if !shape_key(req, cat, &mut key) {
                return None;
            }
            let h = key_hash(&key);
            let i = (h as usize) % SHARDS;
            let hit = self.shards[i].lock().ok().and_then(|m| {
                m.get(&h)?
                    .iter()
                    .find(|(k, _)| **k == key[..])
                    .map(|(_, e)| e.clone())
            });
            // A miss keeps a copy of the key, to store it with the plan.
            let owned = hit.is_none().then(|| key.clone().into_boxed_slice());
            Some((h, i, hit, owned))
        });
        let Some((h, i, hit, key)) = looked else {
            return Answer::Planned(plan_with(req, cat));
        };
        if let Some(entry) = hit {
            self.hits.fetch_add(1, Relaxed);
            return match entry {
                Some(c) => Answer::Hit(c),
                None => Answer::Planned(plan_with(req, cat)),
            };
        }
        self.misses.fetch_add(1, Relaxed);
        let Some(shape) = Shape::of(req, cat) else {
            return Answer::Planned(plan_with(req, cat));
        };
        let result = plan_with(&shape.request, cat);
        // A plan with notes (pc: why root hotplug is off) names devices inside sentences,
        // which re-labelling does not reach: planned for every guest, like errors.
        let entry: Entry = result
            .as_ref()
            .ok()
            .filter(|p| p.notes.is_empty())
            .map(|p| Arc::new(Cached::new(p.clone())));
        if let (Ok(mut m), Some(key)) = (self.shards[i].lock(), key) {
            let weight = key.len() + entry.as_ref().map_or(64, |c| c.weight());
            if self.lens[i].load(Relaxed) >= self.per_shard
                || self.bytes[i].load(Relaxed) + weight > SHAPE_BYTES / SHARDS
            {
                m.clear();
                self.lens[i].store(0, Relaxed);
                self.bytes[i].store(0, Relaxed);
            }
            let bucket = m.entry(h).or_default();
            if !bucket.iter().any(|(k, _)| *k == key) {
                bucket.push((key, entry.clone()));
                self.lens[i].fetch_add(1, Relaxed);
                self.bytes[i].fetch_add(weight, Relaxed);
            }
        }
        match entry {
            Some(c) => Answer::Hit(c),
            None => Answer::Planned(plan_with(req, cat)),
        }
    }

    /// The plan of a hit, re-labelled for `req`.
    pub(crate) fn plan_of(c: &Cached, req: &Request) -> Plan {
        relabel(&c.plan, req)
    }

    /// Appends the plan of a hit as `--format json` prints it on one line, with the names of
    /// `req`: the same bytes as serialising `plan_with(req)`.
    pub(crate) fn render(c: &Cached, req: &Request, out: &mut String) {
        let groups = if c.grouped {
            groups_of(req)
        } else {
            Vec::new()
        };
        for seg in &c.template {
            match seg {
                Seg::Text(t) => out.push_str(t),
                Seg::Name(Canon::Guest) => match &req.name {
                    Some(n) => json_string(n, out),
                    None => out.push_str("null"),
                },
                Seg::Name(n) => {
                    let name = match *n {
                        Canon::Device(i) => req.devices.get(i).map(|d| d.id.as_str()),
                        Canon::Controller(i) => req.controllers.get(i).map(|c| c.id.as_str()),
                        Canon::Group(i) => groups.get(i).copied(),
                        Canon::Guest => None,
                    };
                    out.push('"');
                    out.push_str(name.unwrap_or(""));
                    out.push('"');
                }
            }
        }
    }
}

/// Appends `s` as a JSON string, as serde_json writes it.
pub(crate) fn json_string(s: &str, out: &mut String) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

/// A shape key's bucket: the keys with one hash, and what each planned to.
type Bucket = Vec<(Box<[u8]>, Entry)>;

/// The hasher of a map keyed by hashes already computed.
#[derive(Default)]
struct Pass(u64);

impl Hasher for Pass {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Default for ShapeCache {
    /// A cache of 65,536 shapes.
    fn default() -> Self {
        ShapeCache::new(1 << 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planner_style_names() {
        for id in ["rp1", "rp12", "pxb3", "br1", "dp7", "up2", "ctl1"] {
            assert!(planner_style(id), "{id}");
        }
        for id in ["rp", "rpx1", "net0", "k-0", "rp1a", "gpu1"] {
            assert!(!planner_style(id), "{id}");
        }
        assert_eq!(parse_canon("k-3"), Some(Canon::Device(3)));
        assert_eq!(parse_canon("rp1"), None);
    }

    #[test]
    fn same_shape_same_key() {
        let a = Request::from_json(r#"{"name":"a","devices":[{"id":"gpu","model":"vfio-pci","group":"x"},{"id":"aud","model":"vfio-pci","group":"x"}],
            "controllers":[{"id":"port","model":"pcie-root-port","address":{"bus":"pcie.0","slot":3}}]}"#)
        .unwrap();
        let b = Request::from_json(r#"{"name":"b","devices":[{"id":"g2","model":"vfio-pci","group":"y"},{"id":"a2","model":"vfio-pci","group":"y"}],
            "controllers":[{"id":"p2","model":"pcie-root-port","address":{"bus":"pcie.0","slot":3}}]}"#)
        .unwrap();
        let cat = Catalog::q35();
        assert_eq!(
            Shape::of(&a, cat).unwrap().request,
            Shape::of(&b, cat).unwrap().request
        );
        let bad = Request::from_json(
            r#"{"devices":[{"id":"a","model":"e1000","address":{"bus":"nowhere","slot":1}}]}"#,
        )
        .unwrap();
        assert!(Shape::of(&bad, cat).is_none());
    }
}
