//! Planning a fleet: JSON Lines in, one result per line out, in input order (docs/formats.md
//! "Batch").
//!
//! A [`Batch`] reads a bounded chunk of lines, plans them in parallel on the rayon thread
//! pool and hands the results back in input order; memory is bounded by the chunk size,
//! not the fleet. A bad or infeasible line gives an error result for that line only.
//!
//! ```
//! use pciplan::batch::{Batch, BatchOptions};
//! let input = r#"{"name":"web-01","devices":[{"id":"net0","model":"virtio-net-pci"}]}
//! {"name":"db-07","devices":[{"id":"x","model":"frobnicator"}]}
//! not json
//! "#;
//! let results: Vec<_> = Batch::new(input.as_bytes(), BatchOptions::default())
//!     .collect::<Result<_, _>>()
//!     .unwrap();
//! assert_eq!(results.len(), 3);
//! assert_eq!(results[0].result.as_ref().unwrap().cost, 1);
//! assert_eq!(results[1].name.as_deref(), Some("db-07"));
//! assert!(results[2].to_json_line().starts_with(r#"{"line":3,"name":null,"ok":false"#));
//! ```

use std::collections::VecDeque;
use std::io::{self, BufRead};
use std::sync::Arc;

use rayon::prelude::*;

use crate::catalog::Catalog;
use crate::error::{InputError, PlanError};
use crate::plan::Plan;
use crate::planner::plan_checked;
use crate::request::{Request, MAX_REQUEST_BYTES};
use crate::shape::lines::{name_at, name_json, LineEntry, NameAt};
use crate::shape::{Answer, Cached, ShapeCache};
use crate::Text;

/// Lines planned together (and the most results held in memory at once).
pub const DEFAULT_CHUNK: usize = 1024;

mod line;
mod name;
mod resume;
mod summary;

use line::Block;
pub use line::Rendered;
pub use resume::{LineSet, Resume, Shard};
pub use summary::{Summary, Tally};

/// How a batch runs.
#[derive(Clone)]
pub struct BatchOptions {
    /// Lines planned together; bounds memory (default [`DEFAULT_CHUNK`]).
    pub chunk: usize,
    /// Plan each request shape once (see [`ShapeCache`]); default on.
    pub shape_cache: bool,
    /// Plan only this shard of the lines.
    pub shard: Option<Shard>,
    /// Lines to skip (already answered).
    pub skip: Option<LineSet>,
    /// Plan every line with this catalog instead of the one its `machine` names.
    pub catalog: Option<Arc<Catalog>>,
    /// Adopt every guest (`--adopt`, see [`crate::adopt`]): addresses are preferences. The
    /// shape cache never answers an adopted line (plain and adopted plans never mix).
    pub adopt: bool,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            chunk: DEFAULT_CHUNK,
            shape_cache: true,
            shard: None,
            skip: None,
            catalog: None,
            adopt: false,
        }
    }
}

/// The result of one input line.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Input line number, from 1.
    pub line: u64,
    /// The request's `name`, when it could be read.
    pub name: Option<Text>,
    /// The plan or why there is none.
    pub result: Result<Plan, PlanError>,
}

/// A planned line: an outcome, or a cache hit not yet turned into one.
enum Done<'a> {
    Outcome(Outcome),
    Hit {
        line: u64,
        req: Request,
        cached: Arc<Cached>,
    },
    /// A line equal to one seen before but for the guest name: the line, where its name
    /// is, and what the earlier line planned to.
    LineHit {
        line: u64,
        text: &'a str,
        at: NameAt,
        entry: Arc<LineEntry>,
    },
}

impl Done<'_> {
    fn into_outcome(self) -> Outcome {
        match self {
            Done::Outcome(o) => o,
            // Only rendering asks the line cache; an outcome needs the request after all.
            Done::LineHit {
                line, text, entry, ..
            } => match Request::from_json(text) {
                Ok(req) => Outcome {
                    line,
                    result: Ok(ShapeCache::plan_of(&entry.cached, &req)),
                    name: req.name,
                },
                Err(e) => Outcome {
                    line,
                    name: None,
                    result: Err(PlanError::Invalid(e)),
                },
            },
            Done::Hit { line, req, cached } => {
                let plan = ShapeCache::plan_of(&cached, &req);
                Outcome {
                    line,
                    name: req.name,
                    result: Ok(plan),
                }
            }
        }
    }
}

/// Plans one input line (the text without its newline). With `render`, the result goes
/// straight to a result line, and the cache may answer a repeated line without parsing it.
fn plan_line<'a>(
    line: u64,
    text: &'a [u8],
    catalog: Option<&Catalog>,
    cache: Option<&ShapeCache>,
    render: bool,
    adopt: bool,
) -> Done<'a> {
    let invalid = |name: Option<Text>, field: &str, msg: String| {
        Done::Outcome(Outcome {
            line,
            name,
            result: Err(PlanError::Invalid(InputError::new(field, msg))),
        })
    };
    let text = match std::str::from_utf8(text) {
        Ok(t) => t.strip_suffix('\r').unwrap_or(t),
        Err(e) => return invalid(None, "request", format!("not UTF-8 text ({e})")),
    };
    if text.len() > MAX_REQUEST_BYTES {
        return invalid(
            None,
            "request",
            format!("the line is longer than the {MAX_REQUEST_BYTES} byte limit"),
        );
    }
    if text.trim().is_empty() {
        return invalid(None, "request", "empty line".into());
    }
    let lines = cache.filter(|_| render);
    let at = lines.and_then(|_| name_at(text.as_bytes()));
    // Whether this line (up to its name) was seen before: then it earns a line-cache entry.
    let mut seen_before = false;
    if let (Some(c), Some(at)) = (lines, at) {
        match c.lines.get(text.as_bytes(), at) {
            Ok(entry) => {
                return Done::LineHit {
                    line,
                    text,
                    at,
                    entry,
                }
            }
            Err(seen) => seen_before = seen,
        }
    }
    let req = match Request::from_json(text) {
        Ok(r) => r,
        Err(e) => {
            let name = name::name_of(text).map(Text::from);
            return Done::Outcome(Outcome {
                line,
                name,
                result: Err(PlanError::Invalid(e)),
            });
        }
    };
    let line_key = at.map(|at| (text, at, seen_before));
    plan_request(line, req, line_key, catalog, cache, adopt)
}

/// Plans one request read from line `line`. With `line_key` (the line's text, where its
/// name is, whether the line was seen before), a shape-cache hit earns a line-cache entry.
fn plan_request<'a>(
    line: u64,
    req: Request,
    line_key: Option<(&'a str, NameAt, bool)>,
    catalog: Option<&Catalog>,
    cache: Option<&ShapeCache>,
    adopt: bool,
) -> Done<'a> {
    let cat = match catalog {
        Some(c) => c,
        None => match Catalog::for_machine(&req.machine) {
            Ok(c) => c,
            Err(e) => {
                return Done::Outcome(Outcome {
                    line,
                    name: req.name,
                    result: Err(PlanError::Invalid(e)),
                })
            }
        },
    };
    let result = match cache {
        _ if adopt => crate::planner::adopt_with(&req, cat),
        Some(c) => match c.answer(&req, cat) {
            Answer::Hit(cached) => {
                if let Some((text, at, true)) = line_key {
                    if let Some(e) = LineEntry::new(cached.clone(), &req) {
                        c.lines.put(text.as_bytes(), at, Arc::new(e));
                    }
                }
                return Done::Hit { line, req, cached };
            }
            Answer::Planned(r) => r,
        },
        // Every request here passed the shape check (read from its line, or checked).
        None => plan_checked(&req, cat),
    };
    Done::Outcome(Outcome {
        line,
        name: req.name,
        result,
    })
}

/// One request of a fleet handed to [`Batch::plan_items`] rather than read from the input.
pub enum Item {
    /// The text of one input line, without its newline (a line break inside it is taken
    /// as the end of the line, so it must hold none).
    Line(Vec<u8>),
    /// A request already read, by other means than its JSON text (a binding reading its
    /// language's objects, say), into exactly the request its line would have parsed to.
    /// It is planned as that line would be, from the shape check on.
    Request(Request),
}

/// A fleet being planned: an iterator of [`Outcome`]s in input order.
///
/// Lines are read `chunk` at a time and planned in parallel. Lines outside the shard or in
/// the skip set produce no outcome. An I/O error reading the input ends the iteration with
/// that error.
pub struct Batch<R> {
    input: R,
    opts: BatchOptions,
    cache: Option<ShapeCache>,
    next_line: u64,
    bytes_read: u64,
    ready: VecDeque<Outcome>,
    done: bool,
    /// The chunk's lines end to end, kept from chunk to chunk: a fresh buffer of a chunk's
    /// size (megabytes) costs the kernel zeroing new pages on every chunk, while the other
    /// threads wait for the lines.
    text: Vec<u8>,
    /// The chunk's lines: (line number, start, end) in `text`.
    lines: Vec<(u64, usize, usize)>,
    /// The rendered result lines of the chunk ([`Batch::next_chunk_rendered`]), kept from
    /// chunk to chunk for the same reason as `text`.
    blocks: Vec<Block>,
}

/// The most a chunk's text buffer reserves ahead from its first line's length (bytes).
const CHUNK_RESERVE_LIMIT: usize = 16 << 20;

/// Lines of a chunk that one task plans and renders one after the other, into one buffer.
const BLOCK: usize = 16;

/// How many times the length of its requests a block's buffer has room for up front.
const BLOCK_RATIO: usize = 6;

impl<R: BufRead> Batch<R> {
    /// A batch over JSON Lines read from `input`.
    pub fn new(input: R, opts: BatchOptions) -> Batch<R> {
        let cache = (opts.shape_cache && !opts.adopt).then(ShapeCache::default);
        Batch {
            input,
            opts,
            cache,
            next_line: 1,
            bytes_read: 0,
            ready: VecDeque::new(),
            done: false,
            text: Vec::new(),
            lines: Vec::new(),
            blocks: Vec::new(),
        }
    }

    /// Bytes of input consumed so far (for a progress bar).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The shape cache's hits and misses, when it is on.
    pub fn cache_stats(&self) -> Option<crate::shape::CacheStats> {
        self.cache.as_ref().map(|c| c.stats())
    }

    /// Whether line `line` is planned (in the shard, not skipped).
    fn keeps(&self, line: u64) -> bool {
        self.opts.shard.is_none_or(|s| s.contains(line))
            && !self.opts.skip.as_ref().is_some_and(|s| s.contains(line))
    }

    /// Plans `items` as the next lines of the fleet, numbered on from the lines (and items)
    /// before, in parallel, with the batch's caches and options: exactly the outcomes those
    /// lines would have had (an item outside the shard or skipped gives none). `f` runs in
    /// parallel on each outcome; results keep the items' order. A binding that reads its
    /// own objects into [`Request`]s hands them over without writing and parsing JSON text.
    pub fn plan_items<T: Send>(
        &mut self,
        items: Vec<Item>,
        f: impl Fn(Outcome) -> T + Sync + Send,
    ) -> Vec<T> {
        self.plan_items_done(items, false, |done| f(done.into_outcome()))
    }

    /// Plans `items` as [`Batch::plan_items`] does, each into its result line (the text
    /// `pciplan batch` writes for it, with its newline), rendered in parallel: a shape-cache
    /// hit straight from the cached plan's template, as the command line renders it.
    pub fn plan_items_lines(&mut self, items: Vec<Item>) -> Vec<String> {
        self.plan_items_done(items, true, |done| {
            let mut line = String::new();
            done.write_line(&mut line);
            line
        })
    }

    /// The items' planned lines (`render`: as lines to write, which lets the line cache
    /// answer), each through `f`, in parallel, in order.
    fn plan_items_done<T: Send>(
        &mut self,
        items: Vec<Item>,
        render: bool,
        f: impl Fn(Done<'_>) -> T + Sync + Send,
    ) -> Vec<T> {
        let first = self.next_line;
        self.next_line += items.len() as u64;
        let numbered: Vec<(u64, Item)> = (first..)
            .zip(items)
            .filter(|(line, _)| self.keeps(*line))
            .collect();
        let catalog = self.opts.catalog.as_deref();
        let cache = self.cache.as_ref();
        let adopt = self.opts.adopt;
        numbered
            .into_par_iter()
            .with_min_len(8)
            .map(|(line, item)| match item {
                Item::Line(text) => f(plan_line(line, &text, catalog, cache, render, adopt)),
                // What `Request::from_json` checks after reading.
                Item::Request(req) => f(match req.check_shape() {
                    Ok(()) => plan_request(line, req, None, catalog, cache, adopt),
                    Err(e) => Done::Outcome(Outcome {
                        line,
                        name: req.name,
                        result: Err(PlanError::Invalid(e)),
                    }),
                }),
            })
            .collect()
    }

    /// Reads one line (up to the limit; the rest of a longer line is discarded and the line
    /// reported as too long). Returns `None` at the end of the input.
    fn read_line(&mut self, keep: bool, buf: &mut Vec<u8>) -> io::Result<Option<()>> {
        // The line is appended to `buf`, which may hold earlier lines of the chunk.
        let limit = buf.len() + MAX_REQUEST_BYTES + 2;
        let mut any = false;
        loop {
            let avail = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                return Ok(any.then_some(()));
            }
            any = true;
            let (used, end) = match memchr(avail) {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            if keep && buf.len() < limit {
                let take = (used - usize::from(end)).min(limit - buf.len());
                buf.extend_from_slice(&avail[..take]);
            }
            self.input.consume(used);
            self.bytes_read += used as u64;
            if end {
                return Ok(Some(()));
            }
        }
    }

    /// Reads, plans and converts the next chunk of lines; `None` at the end of the input.
    /// `f` runs in parallel on each outcome (e.g. to render it), results keep input order.
    ///
    /// # Errors
    /// When reading the input fails.
    pub fn next_chunk_with<T: Send>(
        &mut self,
        f: impl Fn(Outcome) -> T + Sync + Send,
    ) -> io::Result<Option<Vec<T>>> {
        self.next_chunk_raw(false, |d| f(d.into_outcome()))
    }

    /// Reads and plans the next chunk and renders each result line (with its newline) as
    /// docs/formats.md "Batch" fixes it, plus its tally for the summary. Shape-cache hits are
    /// rendered straight from the cached plan's template, and a line that repeats an
    /// earlier one but for the guest name is answered by the line cache without being
    /// parsed: that is what makes a template-heavy fleet fast.
    ///
    /// # Errors
    /// When reading the input fails.
    pub fn next_chunk_jsonl(&mut self) -> io::Result<Option<Vec<(String, Tally)>>> {
        self.next_chunk_raw(true, |d| d.into_line())
    }

    /// Reads, plans and renders the next chunk of lines, as [`Batch::next_chunk_jsonl`]
    /// does, but into buffers the batch keeps from chunk to chunk (a task renders a run of
    /// lines into one buffer, so no line has a buffer of its own), with the counts for the
    /// summary added up per run: what `pciplan batch` writes. `None` at the end of the input.
    ///
    /// # Errors
    /// When reading the input fails.
    pub fn next_chunk_rendered(&mut self) -> io::Result<Option<Rendered<'_>>> {
        if self.read_chunk()?.is_none() {
            return Ok(None);
        }
        let n = self.lines.len().div_ceil(BLOCK);
        if self.blocks.len() < n {
            self.blocks.resize_with(n, Block::default);
        }
        let text = &self.text;
        let catalog = self.opts.catalog.as_deref();
        let cache = self.cache.as_ref();
        let adopt = self.opts.adopt;
        self.lines
            .par_chunks(BLOCK)
            .zip(self.blocks[..n].par_iter_mut())
            .for_each(|(lines, block)| {
                block.clear();
                for (k, &(line, start, end)) in lines.iter().enumerate() {
                    if k == 0 {
                        // Room for the whole block at once: a result line is a few times its
                        // request (a mixed fleet's three, a 32-device guest's five), so six
                        // times the block's requests hold it, and no line is copied to grow
                        // the buffer (a fresh block's first line was, by the reserve below).
                        let all: usize = lines.iter().map(|&(_, s, e)| e - s).sum();
                        reserve_block(
                            &mut block.text,
                            all.saturating_mul(BLOCK_RATIO) + 256 * lines.len(),
                        );
                    }
                    let done = plan_line(
                        line,
                        line_text(text, start, end),
                        catalog,
                        cache,
                        true,
                        adopt,
                    );
                    done.write_line(&mut block.text);
                    done.count(&mut block.summary);
                    if k == 0 {
                        // The rest of the block sized at four times its requests, or more
                        // when the first line made more of its request (a larger guest than
                        // the guess above): the buffer grows by copying one line, not most
                        // of the block when its lines outgrow the guess.
                        let rest: usize = lines[1..].iter().map(|&(_, s, e)| e - s).sum();
                        let ratio = block.text.len().div_ceil((end - start).max(1)).max(4);
                        reserve_block(
                            &mut block.text,
                            rest.saturating_mul(ratio) + 256 * (lines.len() - 1),
                        );
                    }
                }
            });
        Ok(Some(Rendered {
            blocks: &self.blocks[..n],
        }))
    }

    fn next_chunk_raw<T: Send>(
        &mut self,
        render: bool,
        f: impl Fn(Done<'_>) -> T + Sync + Send,
    ) -> io::Result<Option<Vec<T>>> {
        if self.read_chunk()?.is_none() {
            return Ok(None);
        }
        let text = &self.text;
        let catalog = self.opts.catalog.as_deref();
        let cache = self.cache.as_ref();
        let adopt = self.opts.adopt;
        Ok(Some(
            self.lines
                .par_iter()
                .with_min_len(8)
                .map(|&(line, start, end)| {
                    f(plan_line(
                        line,
                        line_text(text, start, end),
                        catalog,
                        cache,
                        render,
                        adopt,
                    ))
                })
                .collect(),
        ))
    }

    /// Reads the next chunk's lines into `text` and `lines` (none when every line of the
    /// chunk is outside the shard or skipped); `None` at the end of the input.
    fn read_chunk(&mut self) -> io::Result<Option<()>> {
        if self.done {
            return Ok(None);
        }
        // The chunk's lines end to end in one buffer: (line number, start, end) each.
        let mut text = std::mem::take(&mut self.text);
        let mut lines = std::mem::take(&mut self.lines);
        text.clear();
        lines.clear();
        let mut result = Ok(Some(()));
        while lines.len() < self.opts.chunk.max(1) {
            let line = self.next_line;
            let keep = self.keeps(line);
            let start = text.len();
            let read = self.read_line(keep, &mut text);
            if !keep {
                text.truncate(start);
            }
            match read {
                Ok(Some(())) => {}
                Ok(None) => {
                    self.done = true;
                    break;
                }
                Err(e) => {
                    self.done = true;
                    if lines.is_empty() {
                        result = Err(e);
                    }
                    break;
                }
            }
            self.next_line += 1;
            if keep {
                lines.push((line, start, text.len()));
                if lines.len() == 1 {
                    // Room for the chunk's lines at the first one's length (up to a limit),
                    // rather than growing by copying what the chunk read so far.
                    let want = (text.len() - start).saturating_mul(self.opts.chunk.max(1));
                    text.reserve(want.min(CHUNK_RESERVE_LIMIT).saturating_sub(text.len()));
                }
            }
        }
        if lines.is_empty() && self.done && result.is_ok() {
            result = Ok(None);
        }
        self.text = text;
        self.lines = lines;
        result
    }
}

/// Room for `more` bytes after what `text` holds. Where the buffer must grow, the new one is
/// allocated apart and the text copied into it: growing in place (`realloc`) would copy the
/// whole old allocation, and a buffer kept from an earlier chunk is much larger than the
/// one line it holds when this is asked.
fn reserve_block(text: &mut String, more: usize) {
    if text.capacity() - text.len() >= more {
        return;
    }
    let mut grown = String::with_capacity((text.len() + more).max(2 * text.capacity()));
    grown.push_str(text);
    *text = grown;
}

/// The text of a line read into `text` at `start..end`, without its newline.
fn line_text(text: &[u8], start: usize, end: usize) -> &[u8] {
    let t = &text[start..end];
    t.strip_suffix(b"\n").unwrap_or(t)
}

fn memchr(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}

impl<R: BufRead> Iterator for Batch<R> {
    type Item = io::Result<Outcome>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(o) = self.ready.pop_front() {
                return Some(Ok(o));
            }
            match self.next_chunk_with(|o| o) {
                Ok(Some(v)) => self.ready.extend(v),
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Plans one JSON Lines text with the default options; a convenience for small fleets.
///
/// ```
/// let out = pciplan::batch::plan_batch("{\"devices\":[]}\n");
/// assert_eq!(out.len(), 1);
/// assert_eq!(out[0].result.as_ref().unwrap().cost, 0);
/// ```
pub fn plan_batch(jsonl: &str) -> Vec<Outcome> {
    Batch::new(jsonl.as_bytes(), BatchOptions::default())
        .filter_map(Result::ok)
        .collect()
}

#[cfg(test)]
mod tests;
