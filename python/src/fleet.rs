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
use pciplan::Request;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyIterator, PyList, PyString};

use crate::convert::{self, NotJson};
use crate::{depy, errors, pyser};

/// Chunks handed to the planning thread and not yet answered, at most.
const IN_FLIGHT: usize = 2;

/// One chunk's outcomes.
type Answer = Vec<Outcome>;

/// A chunk for the planning thread: its items, and the outcomes of an earlier chunk whose
/// dicts are made, to be freed there rather than on the caller's thread (a few percent
/// of its work, which holds the GIL).
type Chunk = (Vec<Item>, Vec<Outcome>);

/// Plans chunks of items until the input ends (the sending side is dropped) or nobody
/// listens any more.
fn planning_thread(rx: Receiver<Chunk>, adopt: bool, out: SyncSender<Answer>) {
    let opts = BatchOptions {
        adopt,
        ..BatchOptions::default()
    };
    // The items come over the channel, not from the batch's input.
    let mut batch = Batch::new(io::empty(), opts);
    while let Ok((items, spent)) = rx.recv() {
        if out.send(batch.plan_items(items, |o| o)).is_err() {
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
    /// Outcomes whose dicts are made, sent to be freed with the next chunk.
    spent: Vec<Outcome>,
    from_planner: Mutex<Receiver<Answer>>,
    chunk: usize,
    /// Requests pulled so far (the next one's line number is this plus one).
    pulled: u64,
    /// Refused requests of every chunk in flight, oldest first.
    in_flight: VecDeque<Vec<Refused>>,
    /// Results of the current chunk, handed out from `next`.
    ready: Option<Py<PyList>>,
    next: usize,
    /// An exception the source raised, raised after the results before it.
    raised: Option<PyErr>,
}

impl BatchIter {
    /// Starts the planning thread over `source`.
    pub fn start(source: Bound<'_, PyIterator>, chunk: usize, adopt: bool) -> PyResult<BatchIter> {
        let chunk = chunk.max(1);
        let (tx, rx) = mpsc::channel();
        let (out_tx, out_rx) = mpsc::sync_channel(IN_FLIGHT);
        std::thread::Builder::new()
            .name("pciplan-batch".into())
            .spawn(move || planning_thread(rx, adopt, out_tx))
            .map_err(|e| errors::error(source.py(), &format!("cannot start a thread: {e}")))?;
        Ok(BatchIter {
            source: Some(source.unbind()),
            to_planner: Some(tx),
            spent: Vec::new(),
            from_planner: Mutex::new(out_rx),
            chunk,
            pulled: 0,
            in_flight: VecDeque::new(),
            ready: None,
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
                if tx.send((items, std::mem::take(&mut self.spent))).is_err() {
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

    /// Waits (without the GIL) for the oldest chunk in flight and makes its dicts.
    fn receive_chunk(&mut self, py: Python<'_>) -> PyResult<()> {
        let rx = &self.from_planner;
        let answer = py.detach(|| match rx.lock() {
            Ok(r) => r.recv().ok(),
            Err(_) => None,
        });
        let refused = self.in_flight.pop_front().unwrap_or_default();
        let Some(outcomes) = answer else {
            return Err(errors::error(py, "the planning thread stopped"));
        };
        // The next chunk is planned while this one becomes dicts.
        self.top_up(py)?;
        let list = results(py, &outcomes)?;
        for r in refused {
            let item = list.get_item(r.index)?;
            let item = item.cast::<PyDict>()?;
            item.set_item("name", r.name)?;
            if let Some(err) = item.get_item("error")? {
                err.set_item("message", r.message)?;
            }
        }
        self.ready = Some(list.unbind());
        self.next = 0;
        self.spent = outcomes;
        Ok(())
    }
}

/// Appends one request as one item. A dict read directly is handed over as the request
/// it is (see [`depy`]): no JSON text is written for the planning thread to parse again.
/// Anything else becomes its JSON line: line breaks inside JSON text become tabs (both
/// are white space between tokens and both are refused inside a string, so the request
/// means what it meant; a trailing newline, as lines read from a file have, is dropped).
fn push_item(item: &Bound<'_, PyAny>, items: &mut Vec<Item>) -> Result<(), NotJson> {
    if item.is_exact_instance_of::<PyDict>() {
        if let Ok(req) = depy::read::<Request>(item) {
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
    for b in &mut line {
        if *b == b'\n' {
            *b = b'\t';
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

/// One chunk's outcomes as a list of dicts (the objects of their result lines), built
/// directly with one key cache for the chunk.
fn results<'py>(py: Python<'py>, outcomes: &[Outcome]) -> PyResult<Bound<'py, PyList>> {
    let mut keys = pyser::Keys::new(py);
    let dicts = outcomes
        .iter()
        .map(|o| convert::to_python_with(&mut keys, o))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, dicts)
}

#[pymethods]
impl BatchIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        loop {
            if let Some(list) = &self.ready {
                let list = list.bind(py);
                if self.next < list.len() {
                    let item = list.get_item(self.next)?;
                    self.next += 1;
                    return Ok(Some(item.unbind()));
                }
                self.ready = None;
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
