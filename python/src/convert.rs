//! Between Python objects and the library's values.
//!
//! A Python call reads and answers exactly what the command line does: the same request,
//! the same errors, the same objects. Dicts are read straight into requests
//! ([`crate::depy`]) and plans built straight into dicts ([`crate::pyser`]); that halves
//! the instructions of a 32-device `plan` call against going through JSON text both ways
//! with CPython's C codec (0.97 M against 1.86 M, callgrind). What either direct way cannot
//! reproduce exactly goes through JSON text as before: str and bytes requests, dicts JSON
//! text would spell differently (int keys, subclasses, NaN), and the errors, whose columns
//! point into the dict's compact text.

use std::borrow::Cow;

use pyo3::exceptions::{PyRecursionError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyString};
use serde::Serialize;

use crate::{errors, pyser};

static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static ENCODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `json.loads`.
fn loads_fn(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    LOADS.import(py, "json", "loads")
}

/// The `encode` method of a compact, strict JSON encoder: no spaces, non-ASCII kept as is,
/// NaN and infinities refused (they are not JSON; the library would refuse them anyway).
fn encode_fn(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    let f = ENCODE.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        let kw = PyDict::new(py);
        kw.set_item("separators", (",", ":"))?;
        kw.set_item("ensure_ascii", false)?;
        kw.set_item("allow_nan", false)?;
        let enc = py
            .import("json")?
            .getattr("JSONEncoder")?
            .call((), Some(&kw))?;
        Ok(enc.getattr("encode")?.unbind())
    })?;
    Ok(f.bind(py))
}

/// Parses JSON text into Python objects.
pub fn loads<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    loads_fn(py)?.call1((text,))
}

/// The compact JSON text of a Python value, as the command line writes its lines (no
/// spaces, non-ASCII as it is).
pub fn json_text(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<String> {
    let text = encode_fn(py)?.call1((obj,))?;
    Ok(text.cast_into::<PyString>()?.to_cow()?.into_owned())
}

/// A serializable library value (a plan, causes, violations) as the Python dicts and
/// lists `json.loads` would make of its JSON text, built directly (see [`pyser`]).
pub fn to_python<'py, T: Serialize + ?Sized>(
    py: Python<'py>,
    value: &T,
) -> PyResult<Bound<'py, PyAny>> {
    to_python_with(&mut pyser::Keys::new(py), value)
}

/// [`to_python`] with a key cache shared by many values (a batch chunk's results).
pub fn to_python_with<'py, T: Serialize + ?Sized>(
    keys: &mut pyser::Keys<'py>,
    value: &T,
) -> PyResult<Bound<'py, PyAny>> {
    let built = keys.build(value);
    or_text(keys, built, value)
}

/// A plan as its dict (what `--format json` prints, parsed), built directly
/// ([`crate::plandict`]).
pub fn plan_to_python<'py>(py: Python<'py>, plan: &pciplan::Plan) -> PyResult<Bound<'py, PyAny>> {
    let mut keys = pyser::Keys::new(py);
    let built = crate::plandict::plan_dict(&mut keys, plan);
    or_text(&mut keys, built, plan)
}

/// A batch outcome as its result dict, the plan built directly ([`crate::plandict`]).
pub fn outcome_to_python<'py>(
    keys: &mut pyser::Keys<'py>,
    o: &pciplan::batch::Outcome,
) -> PyResult<Bound<'py, PyAny>> {
    let built = crate::plandict::outcome(keys, o);
    or_text(keys, built, o)
}

/// What a direct build of `value` gave, or, where only JSON text spells `value` right
/// ([`pyser::Error::Unsupported`]), the objects of its text.
fn or_text<'py, T: Serialize + ?Sized>(
    keys: &mut pyser::Keys<'py>,
    built: pyser::Result<Bound<'py, PyAny>>,
    value: &T,
) -> PyResult<Bound<'py, PyAny>> {
    let py = keys.py();
    match built {
        Ok(obj) => Ok(obj),
        Err(pyser::Error::Py(e)) => Err(e),
        Err(pyser::Error::Unsupported(_)) => {
            let text = serde_json::to_string(value)
                .map_err(|e| errors::error(py, &format!("internal error: {e}")))?;
            loads(py, &text)
        }
    }
}

/// Why a Python object could not become a request's JSON text.
pub enum NotJson {
    /// Not a dict, str or bytes (a programming error: `TypeError`).
    Type(PyErr),
    /// A dict whose values JSON cannot carry, or text that is not UTF-8: bad input.
    Value(String),
    /// Anything else (KeyboardInterrupt, MemoryError, ...): raised as it is.
    Other(PyErr),
}

/// The JSON text of one request: a dict (serialized compactly), a str or bytes (taken as
/// JSON text).
pub fn request_text<'a>(obj: &'a Bound<'_, PyAny>) -> Result<Cow<'a, str>, NotJson> {
    let py = obj.py();
    if let Ok(s) = obj.cast::<PyString>() {
        if let Ok(t) = crate::depy::text(s) {
            return Ok(t);
        }
        return s.to_cow().map_err(|e| not_text(py, e));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return std::str::from_utf8(b.as_bytes())
            .map(Cow::Borrowed)
            .map_err(|e| NotJson::Value(format!("not UTF-8 text ({e})")));
    }
    if obj.is_instance_of::<PyDict>() {
        let enc = encode_fn(py).map_err(NotJson::Other)?;
        let text = match enc.call1((obj,)) {
            Ok(t) => t,
            Err(e) => return Err(encode_failed(py, e)),
        };
        let text = text
            .cast_into::<PyString>()
            .map_err(|e| NotJson::Other(e.into()))?;
        return text
            .to_cow()
            .map(|c| Cow::Owned(c.into_owned()))
            .map_err(|e| not_text(py, e));
    }
    let ty = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    Err(NotJson::Type(PyTypeError::new_err(format!(
        "a request is a dict, or JSON text as str or bytes, not {ty}"
    ))))
}

/// A str with lone surrogates has no UTF-8 form: bad input, as non-UTF-8 bytes are.
fn not_text(py: Python<'_>, e: PyErr) -> NotJson {
    NotJson::Value(format!("not UTF-8 text ({})", e.value(py)))
}

/// The encoder raises TypeError (a value JSON has no form for), ValueError (NaN, a
/// circular reference) or RecursionError (nesting too deep): all bad input.
fn encode_failed(py: Python<'_>, e: PyErr) -> NotJson {
    if e.is_instance_of::<PyTypeError>(py)
        || e.is_instance_of::<PyValueError>(py)
        || e.is_instance_of::<PyRecursionError>(py)
    {
        NotJson::Value(format!("not JSON: {}", e.value(py)))
    } else {
        NotJson::Other(e)
    }
}

/// [`request_text`] for a single call: bad input raises `pciplan.InvalidInput`.
pub fn request_text_or_raise<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, str>> {
    request_text(obj).map_err(|e| match e {
        NotJson::Type(e) | NotJson::Other(e) => e,
        NotJson::Value(m) => errors::invalid(
            obj.py(),
            &format!("invalid input: request: {m}"),
            Some("request"),
        ),
    })
}
