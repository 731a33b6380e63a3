//! `pciplan.batch`: a fleet from any Python iterable through the library's batch machinery
//! ([`pciplan::batch::Batch`]), one result dict per request, in order.
//!
//! Requests are pulled from the iterable a chunk at a time and handed to a planning thread
//! that runs `Batch::plan_items` (every core, through rayon): a dict as the request read
//! from it directly, anything else as its JSON line (the dict used to be written back to
//! JSON text for the planning thread to parse again: a quarter of the caller's work on
//! a dict, and a parse per request on the planning side). The
//! Python side keeps two chunks in flight: while the planning thread works on the next one,
//! the caller's thread turns the previous chunk's outcomes into dicts, built directly (no
//! JSON text in between) as their result lines would parse. Memory is bounded
//! by those few chunks, whatever the length of the iterable. The GIL is held only to pull
//! requests and build dicts, never while planning.

use std::collections::VecDeque;
use std::io;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Mutex;

#[cfg(doc)]
use pciplan::batch::DEFAULT_CHUNK;
use pciplan::batch::{Batch, BatchOptions, Item, Outcome};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyIterator, PyString};

use crate::convert::{self, NotJson};
use crate::{depy, errors, pyser};

/// Chunks handed to the planning thread and not yet answered, at most.
const IN_FLIGHT: usize = 2;

/// One chunk's answers: outcomes, made dicts on the caller's thread, or (`as_json`) the
/// result lines, rendered on the planning threads.
enum Answer {
    Outcomes(Vec<Outcome>),
    Lines(Vec<String>),
}

impl Answer {
    fn len(&self) -> usize {
        match self {
            Answer::Outcomes(o) => o.len(),
            Answer::Lines(l) => l.len(),
        }
    }
}

/// A chunk for the planning thread: its items, and the answers of an earlier chunk whose
/// results are made, to be freed there rather than on the caller's thread (a few percent
/// of its work, which holds the GIL).
type Chunk = (Vec<Item>, Option<Answer>);

/// Plans chunks of items until the input ends (the sending side is dropped) or nobody
/// listens any more.
fn planning_thread(rx: Receiver<Chunk>, adopt: bool, as_json: bool, out: SyncSender<Answer>) {
    let opts = BatchOptions {
        adopt,
        ..BatchOptions::default()
    };
    // The items come over the channel, not from the batch's input.
    let mut batch = Batch::new(io::empty(), opts);
    while let Ok((items, spent)) = rx.recv() {
        let answer = if as_json {
            Answer::Lines(batch.plan_items_lines(items))
        } else {
            Answer::Outcomes(batch.plan_items(items, |o| o))
        };
        if out.send(answer).is_err() {
            return;
        }
        drop(spent);
    }
}

/// A request that could not become a JSON line: its place in the chunk, the message its
/// result carries, and its name when the dict had one.
struct Refused {
    index: usize,
    message: String,
    name: Option<String>,
}

/// Iterator of result dicts returned by `pciplan.batch`.
#[pyclass(module = "pciplan._native", name = "BatchIterator")]
pub struct BatchIter {
    /// The requests; `None` once exhausted (or once it raised).
    source: Option<Py<PyIterator>>,
    /// To the planning thread; dropped when the source is exhausted.
    to_planner: Option<Sender<Chunk>>,
    /// Answers whose results are made, sent to be freed with the next chunk.
    spent: Option<Answer>,
    from_planner: Mutex<Receiver<Answer>>,
    chunk: usize,
    /// Requests pulled so far (the next one's line number is this plus one).
    pulled: u64,
    /// Refused requests of every chunk in flight, oldest first.
    in_flight: VecDeque<Vec<Refused>>,
    /// Answers of the current chunk, each made a result when `next` hands it out (see
    /// [`BatchIter::result`]), and its refused requests, in chunk order.
    ready: Option<Answer>,
    refused: VecDeque<Refused>,
    next: usize,
    /// An exception the source raised, raised after the results before it.
    raised: Option<PyErr>,
}

impl BatchIter {
    /// Starts the planning thread over `source`.
    pub fn start(
        source: Bound<'_, PyIterator>,
        chunk: usize,
        adopt: bool,
        as_json: bool,
    ) -> PyResult<BatchIter> {
        let chunk = chunk.max(1);
        let (tx, rx) = mpsc::channel();
        let (out_tx, out_rx) = mpsc::sync_channel(IN_FLIGHT);
        std::thread::Builder::new()
            .name("pciplan-batch".into())
            .spawn(move || planning_thread(rx, adopt, as_json, out_tx))
            .map_err(|e| errors::error(source.py(), &format!("cannot start a thread: {e}")))?;
        Ok(BatchIter {
            source: Some(source.unbind()),
            to_planner: Some(tx),
            spent: None,
            from_planner: Mutex::new(out_rx),
            chunk,
            pulled: 0,
            in_flight: VecDeque::new(),
            ready: None,
            refused: VecDeque::new(),
            next: 0,
            raised: None,
        })
    }

    /// Pulls up to one chunk of requests and sends them to the planning thread as JSON
    /// Lines. At the end of the source the channel is closed, which ends the batch.
    fn send_chunk(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(mut source) = self.source.as_ref().map(|s| s.bind(py).clone()) else {
            return Ok(());
        };
        let mut items: Vec<Item> = Vec::with_capacity(self.chunk.min(4096));
        let mut refused = Vec::new();
        let mut n = 0;
        let mut ended = false;
        while n < self.chunk {
            let item = match source.next() {
                None => {
                    ended = true;
                    break;
                }
                Some(Err(e)) => {
                    // Results before the error are still delivered; the error comes after.
                    self.raised = Some(e);
                    ended = true;
                    break;
                }
                Some(Ok(item)) => item,
            };
            if let Err(e) = push_item(&item, &mut items) {
                let message = match e {
                    NotJson::Value(m) => m,
                    NotJson::Type(e) => e.value(py).to_string(),
                    NotJson::Other(e) => {
                        // Raised after the results before it; it has no result itself.
                        items.pop();
                        self.raised = Some(e);
                        ended = true;
                        break;
                    }
                };
                let line = self.pulled + n as u64 + 1;
                refused.push(Refused {
                    index: n,
                    message: format!("line {line}: request: {message}"),
                    name: name_of(&item),
                });
            }
            n += 1;
        }
        self.pulled += n as u64;
        if n > 0 {
            if let Some(tx) = &self.to_planner {
                if tx.send((items, self.spent.take())).is_err() {
                    return Err(errors::error(py, "the planning thread stopped"));
                }
            }
            self.in_flight.push_back(refused);
        }
        if ended {
            self.source = None;
            self.to_planner = None;
        }
        Ok(())
    }

    /// Keeps the planning thread supplied.
    fn top_up(&mut self, py: Python<'_>) -> PyResult<()> {
        while self.source.is_some() && self.in_flight.len() < IN_FLIGHT {
            self.send_chunk(py)?;
        }
        Ok(())
    }

    /// Waits (without the GIL) for the oldest chunk in flight; its dicts are made one by
    /// one as they are handed out.
    fn receive_chunk(&mut self, py: Python<'_>) -> PyResult<()> {
        let rx = &self.from_planner;
        let answer = py.detach(|| match rx.lock() {
            Ok(r) => r.recv().ok(),
            Err(_) => None,
        });
        let refused = self.in_flight.pop_front().unwrap_or_default();
        let Some(answer) = answer else {
            return Err(errors::error(py, "the planning thread stopped"));
        };
        // The next chunk is planned while this one becomes results.
        self.top_up(py)?;
        self.ready = Some(answer);
        self.refused = refused.into();
        self.next = 0;
        Ok(())
    }

    /// The result of the current chunk's answer `i`, made when it is handed out rather than
    /// a chunk's at once: a chunk's dicts alive together are thousands of new containers,
    /// which set off CPython's garbage collector over and over, each time across every
    /// object the caller holds (the request dicts of a fleet, say: `python/bench/
    /// bench_batch.py`'s 20,000 mixed guests as dicts planned at 30,000-35,000 guests/s
    /// when a chunk's results were made at once, 66,000-67,500 made one by one). A request
    /// that could not be read gets its name and message here.
    fn result(&mut self, py: Python<'_>, i: usize) -> PyResult<Py<PyAny>> {
        let refused = if self.refused.front().is_some_and(|r| r.index == i) {
            self.refused.pop_front()
        } else {
            None
        };
        let dict = match (&self.ready, &refused) {
            (Some(Answer::Lines(lines)), None) => {
                return Ok(PyString::new(py, &lines[i]).into_any().unbind());
            }
            (Some(Answer::Lines(lines)), Some(_)) => convert::loads(py, &lines[i])?,
            (Some(Answer::Outcomes(outcomes)), _) => {
                convert::outcome_to_python(&mut pyser::Keys::new(py), &outcomes[i])?
            }
            (None, _) => return Err(errors::error(py, "no chunk to hand out")),
        };
        let Some(r) = refused else {
            return Ok(dict.unbind());
        };
        let item = dict.cast::<PyDict>()?;
        item.set_item("name", r.name)?;
        if let Some(err) = item.get_item("error")? {
            err.set_item("message", r.message)?;
        }
        if matches!(self.ready, Some(Answer::Lines(_))) {
            // Its line, as the others are written: compact, non-ASCII as it is.
            let mut line = convert::json_text(py, item.as_any())?;
            line.push('\n');
            return Ok(PyString::new(py, &line).into_any().unbind());
        }
        Ok(dict.unbind())
    }
}

/// Appends one request as one item. A dict read directly is handed over as the request
/// it is (see [`depy`]): no JSON text is written for the planning thread to parse again.
/// Anything else becomes its JSON line: line breaks inside JSON text become tabs (both
/// are white space between tokens and both are refused inside a string, so the request
/// means what it meant; a trailing newline, as lines read from a file have, is dropped).
fn push_item(item: &Bound<'_, PyAny>, items: &mut Vec<Item>) -> Result<(), NotJson> {
    if let Ok(d) = item.cast_exact::<PyDict>() {
        if let Ok(req) = depy::read_request(d) {
            items.push(Item::Request(req));
            return Ok(());
        }
    }
    let json = match convert::request_text(item) {
        Ok(j) => j,
        Err(e) => {
            // An empty line stands in for it: its result is `invalid`, and the message
            // and name are replaced once the chunk is answered.
            items.push(Item::Line(Vec::new()));
            return Err(e);
        }
    };
    let json = json.strip_suffix('\n').unwrap_or(&json);
    let mut line = json.as_bytes().to_vec();
    // Looked for first (memchr's vectorised search), since a line of a file has none: the
    // loop alone took 4 instructions a byte, a tenth of the caller's work on a line.
    if memchr::memchr(b'\n', &line).is_some() {
        for b in &mut line {
            if *b == b'\n' {
                *b = b'\t';
            }
        }
    }
    items.push(Item::Line(line));
    Ok(())
}

/// The `name` of a dict request, when it is a str.
fn name_of(item: &Bound<'_, PyAny>) -> Option<String> {
    let d = item.cast::<PyDict>().ok()?;
    let n = d.get_item("name").ok()??;
    n.extract::<String>().ok()
}

#[pymethods]
impl BatchIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        loop {
            if self.next < self.ready.as_ref().map_or(0, Answer::len) {
                let i = self.next;
                self.next += 1;
                return self.result(py, i).map(Some);
            }
            if self.ready.is_some() {
                // Freed on the planning thread, with the next chunk sent.
                self.spent = self.ready.take();
            }
            self.top_up(py)?;
            if self.in_flight.is_empty() {
                return match self.raised.take() {
                    Some(e) => Err(e),
                    None => Ok(None),
                };
            }
            self.receive_chunk(py)?;
        }
    }
}

/// Checks that `requests` is an iterable of requests rather than one request.
pub fn iterate<'py>(requests: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyIterator>> {
    if requests.is_instance_of::<PyString>()
        || requests.is_instance_of::<PyBytes>()
        || requests.is_instance_of::<PyDict>()
    {
        return Err(PyTypeError::new_err(
            "batch takes an iterable of requests (dicts or JSON strings), not one request: \
             use plan() for one, or text.splitlines() for JSON Lines",
        ));
    }
    requests.try_iter()
}

/// The default chunk: smaller than the command line's ([`DEFAULT_CHUNK`]), because here
/// every result becomes a few hundred Python objects on one thread: a chunk of 4,096
/// results churns memory (page faults, cold caches) that 512 reuses. 20,000 mixed guests
/// (str lines, 2 cores, alternated runs): 7,400-7,500 guests/s at 4,096, 8,000-9,000 at 512.
pub const CHUNK: usize = 512;
