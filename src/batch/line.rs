//! Result lines (docs/formats.md "Batch"): an outcome or a cache hit written as its line,
//! straight into a buffer the caller keeps, and the chunks `pciplan batch` writes.

use serde::Serialize;

use super::{Done, Outcome, Summary, Tally};
use crate::emit::json::{self, key, Writer};
use crate::error::{Cause, InputError, PlanError, Violation};
use crate::plan::Plan;
use crate::shape::ShapeCache;

#[derive(Serialize)]
struct OkLine<'a> {
    line: u64,
    name: Option<&'a str>,
    ok: bool,
    cost: u32,
    optimal: bool,
    plan: &'a Plan,
}

#[derive(Serialize)]
struct ErrLine<'a> {
    line: u64,
    name: Option<&'a str>,
    ok: bool,
    error: ErrBody<'a>,
}

#[derive(Serialize)]
struct ErrBody<'a> {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<crate::Rule>,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    causes: Option<&'a [Cause]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    violations: Option<&'a [Violation]>,
}

/// An outcome as the object of its result line.
#[derive(Serialize)]
#[serde(untagged)]
enum LineObject<'a> {
    Ok(OkLine<'a>),
    Err(ErrLine<'a>),
}

impl Outcome {
    /// The result line (docs/formats.md "Batch"), without the newline. A plan is the same
    /// object `--format json` prints, on one line. Errors carry `kind`, `rule` (when there
    /// is one) and `message`, plus `causes` (infeasible) or `violations` (invalid pins).
    pub fn to_json_line(&self) -> String {
        let mut s = String::new();
        self.write_json_line(&mut s);
        s
    }

    /// Appends the result line ([`Outcome::to_json_line`], without the newline) to `out`:
    /// the same text, without a new buffer per line when `out` is kept from line to line.
    pub fn write_json_line(&self, out: &mut String) {
        line_head(out, self.line);
        match self.name.as_deref() {
            Some(n) => json::escaped(out, n),
            None => out.push_str("null"),
        }
        match &self.result {
            Ok(plan) => {
                out.reserve(16 + json::size_hint(plan, false));
                ok_head(out, plan.cost, plan.optimal);
                json::plan(&mut Writer::<false>::new(out), plan);
            }
            Err(e) => err_tail(out, self.line, e),
        }
        out.push('}');
    }

    fn line_object(&self) -> LineObject<'_> {
        let name = self.name.as_deref();
        match &self.result {
            Ok(plan) => LineObject::Ok(OkLine {
                line: self.line,
                name,
                ok: true,
                cost: plan.cost,
                optimal: plan.optimal,
                plan,
            }),
            Err(e) => {
                let (message, causes, violations) = error_parts(self.line, e);
                LineObject::Err(ErrLine {
                    line: self.line,
                    name,
                    ok: false,
                    error: ErrBody {
                        kind: e.kind(),
                        rule: e.rule(),
                        message,
                        causes,
                        violations,
                    },
                })
            }
        }
    }
}

/// An outcome serializes as the object of its result line ([`Outcome::to_json_line`]), so
/// any serde format (a binding's native objects, say) carries exactly what the line says.
impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.line_object().serialize(s)
    }
}

/// The message of an error line, and its causes (infeasible) or violations (invalid pins).
fn error_parts(line: u64, e: &PlanError) -> (String, Option<&[Cause]>, Option<&[Violation]>) {
    match e {
        PlanError::Invalid(i) => (invalid_message(line, i), None, None),
        PlanError::Pins(v) => (
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("; "),
            None,
            Some(v.as_slice()),
        ),
        PlanError::Infeasible(x) => (x.to_string(), Some(x.causes.as_slice()), None),
        PlanError::Solver(s) | PlanError::Internal(s) => (s.clone(), None, None),
    }
}

/// `,"ok":false,"error":{...}` of an error line, written directly: what `ErrLine`
/// serializes to.
fn err_tail(out: &mut String, line: u64, e: &PlanError) {
    let (message, causes, violations) = error_parts(line, e);
    out.push_str(",\"ok\":false,\"error\":");
    let mut w = Writer::<false>::new(out);
    w.open_word(key!("kind"), e.kind());
    if let Some(r) = e.rule() {
        w.word(key!("rule"), r.id());
    }
    w.field(key!("message"), &message);
    if let Some(causes) = causes {
        w.key(key!("causes"));
        w.array(causes, |w, c| {
            w.open_word(key!("rule"), c.rule.id());
            w.field(key!("message"), &c.message);
            w.key(key!("devices"));
            w.array(&c.devices, |w, d| w.str(d));
            w.key(key!("need"));
            w.num(c.need);
            w.key(key!("have"));
            w.num(c.have);
            w.key(key!("hints"));
            w.array(&c.hints, |w, h| w.str(h));
            w.close();
        });
    }
    if let Some(violations) = violations {
        w.key(key!("violations"));
        w.array(violations, |w, v| {
            w.open_field(key!("device"), &v.device);
            w.field(key!("address"), &v.address);
            w.word(key!("rule"), v.rule.id());
            w.field(key!("message"), &v.message);
            w.close();
        });
    }
    w.close();
}

/// `line 3: expected value at column 1` for a line that is not JSON; `line 3: field: what`
/// otherwise.
fn invalid_message(line: u64, e: &InputError) -> String {
    if e.field == "request" {
        format!(
            "line {line}: {}",
            e.message.replace(" at line 1 column ", " at column ")
        )
    } else {
        format!("line {line}: {e}")
    }
}

/// `{"line":N,"name":` of a result line.
fn line_head(out: &mut String, line: u64) {
    out.push_str("{\"line\":");
    out.push_str(itoa::Buffer::new().format(line));
    out.push_str(",\"name\":");
}

/// `,"ok":true,"cost":C,"optimal":B,"plan":` of a planned line.
fn ok_head(out: &mut String, cost: u32, optimal: bool) {
    out.push_str(",\"ok\":true,\"cost\":");
    out.push_str(itoa::Buffer::new().format(cost));
    out.push_str(if optimal {
        ",\"optimal\":true,\"plan\":"
    } else {
        ",\"optimal\":false,\"plan\":"
    });
}

impl Done<'_> {
    /// Appends the result line with its newline to `out`; a hit is rendered from the cached
    /// template without building the plan.
    pub(super) fn write_line(&self, out: &mut String) {
        match self {
            Done::Outcome(o) => o.write_json_line(out),
            Done::LineHit {
                line,
                text,
                at,
                entry,
            } => {
                let mut name = String::new();
                super::name_json(text.as_bytes(), *at, &mut name);
                out.reserve(entry.len_hint() + 2 * name.len() + 128);
                line_head(out, *line);
                out.push_str(&name);
                ok_head(out, entry.cached.cost(), entry.cached.optimal());
                entry.render(&name, out);
                out.push('}');
            }
            Done::Hit { line, req, cached } => {
                out.reserve(cached.len_hint() + 128);
                line_head(out, *line);
                match &req.name {
                    Some(n) => json::escaped(out, n),
                    None => out.push_str("null"),
                }
                ok_head(out, cached.cost(), cached.optimal());
                ShapeCache::render(cached, req, out);
                out.push('}');
            }
        }
        out.push('\n');
    }

    /// Adds what the line counts for to `summary`.
    pub(super) fn count(&self, summary: &mut Summary) {
        match self {
            Done::Outcome(o) => summary.add_outcome(o),
            Done::LineHit { entry, .. } => summary.add_cached(&entry.cached),
            Done::Hit { cached, .. } => summary.add_cached(cached),
        }
    }

    /// The result line with its newline, and its tally.
    pub(super) fn into_line(self) -> (String, Tally) {
        let mut s = String::new();
        self.write_line(&mut s);
        let tally = match &self {
            Done::Outcome(o) => Tally::of(o),
            Done::LineHit { entry, .. } => Tally::of_cached(&entry.cached),
            Done::Hit { cached, .. } => Tally::of_cached(cached),
        };
        (s, tally)
    }
}

/// Lines planned and rendered one after the other by one task of a chunk; its buffer and
/// counts are kept from chunk to chunk.
#[derive(Default)]
pub(super) struct Block {
    /// The result lines, each with its newline.
    pub text: String,
    /// What they count for.
    pub summary: Summary,
}

impl Block {
    /// Starts the block over for another chunk, keeping the buffer.
    pub fn clear(&mut self) {
        self.text.clear();
        self.summary = Summary::default();
    }
}

/// The result lines of one chunk, rendered ([`super::Batch::next_chunk_rendered`]), in
/// input order; they borrow the batch's buffers until the next chunk.
pub struct Rendered<'b> {
    pub(super) blocks: &'b [Block],
}

impl<'b> Rendered<'b> {
    /// The chunk's result lines, each with its newline, in input order: pieces of whole
    /// lines to write one after the other.
    pub fn texts(&self) -> impl Iterator<Item = &'b str> + 'b {
        self.blocks.iter().map(|b| b.text.as_str())
    }

    /// Adds what the chunk's lines count for to `summary` (not the time).
    pub fn add_to(&self, summary: &mut Summary) {
        for b in self.blocks {
            summary.merge(&b.summary);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::plan_batch;

    /// A line is appended to what the buffer holds, as `to_json_line` writes it, for plans
    /// and for every kind of error.
    #[test]
    fn lines_append_to_the_buffer() {
        let out = plan_batch(concat!(
            "{\"name\":\"q\\\"\",\"devices\":[{\"id\":\"n\",\"model\":\"e1000\"}]}\n",
            "x\n",
            "{\"devices\":[],\"policy\":{\"spare_ports\":1000}}\n",
            "{\"devices\":[{\"id\":\"a\",\"model\":\"e1000\",\"address\":{\"bus\":\"pcie.0\",\"slot\":3}},",
            "{\"id\":\"b\",\"model\":\"e1000\",\"address\":{\"bus\":\"pcie.0\",\"slot\":3}}]}\n",
        ));
        let kinds: Vec<&str> = out
            .iter()
            .map(|o| o.result.as_ref().map_or_else(|e| e.kind(), |_| "ok"))
            .collect();
        assert_eq!(kinds, ["ok", "invalid", "infeasible", "invalid"]);
        let mut buf = String::from("before\n");
        let mut want = buf.clone();
        for o in &out {
            o.write_json_line(&mut buf);
            want.push_str(&serde_json::to_string(o).unwrap());
            assert_eq!(buf, want);
        }
    }
}
