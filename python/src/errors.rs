//! The library's errors as the Python exceptions of `pciplan._errors`, with their data
//! (`causes`, `violations`, `field`) as plain dicts and lists.

use pciplan::{InputError, PlanError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::convert;

static ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static INVALID: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static INFEASIBLE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The exception classes live in Python (`pciplan/_errors.py`) so that `InvalidInput` can
/// be a `ValueError` too and the classes pickle with their data; they are looked up once.
fn class<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyType>> {
    cell.import(py, "pciplan._errors", name)
}

/// Turns a constructed exception object into the error to raise (or the error met while
/// constructing it).
fn raise(obj: PyResult<Bound<'_, PyAny>>) -> PyErr {
    match obj {
        Ok(o) => PyErr::from_value(o),
        Err(e) => e,
    }
}

/// `pciplan.Error(message)`.
pub fn error(py: Python<'_>, message: &str) -> PyErr {
    raise(class(py, &ERROR, "Error").and_then(|c| c.call1((message,))))
}

/// `pciplan.InvalidInput(message, field)`.
pub fn invalid(py: Python<'_>, message: &str, field: Option<&str>) -> PyErr {
    raise(class(py, &INVALID, "InvalidInput").and_then(|c| c.call1((message, field))))
}

/// `pciplan.InvalidInput` for an input error of the library, worded as the command line
/// words it (`invalid input: FIELD: MESSAGE`).
pub fn input_error(py: Python<'_>, e: &InputError) -> PyErr {
    invalid(py, &format!("invalid input: {e}"), Some(&e.field))
}

/// The exception for a planning error: `InvalidInput` (bad input, or pinned addresses that
/// break rules, listed in `violations`), `Infeasible` (with `causes`) or `Error` (the solver
/// proved nothing).
pub fn plan_error(py: Python<'_>, e: &PlanError) -> PyErr {
    let message = e.to_string();
    let made = match e {
        PlanError::Invalid(i) => return input_error(py, i),
        PlanError::Pins(v) => convert::to_python(py, v).and_then(|violations| {
            let field = v.first().map(|x| x.device.as_str());
            class(py, &INVALID, "InvalidInput")?.call1((message, field, violations))
        }),
        PlanError::Infeasible(x) => convert::to_python(py, &x.causes)
            .and_then(|causes| class(py, &INFEASIBLE, "Infeasible")?.call1((message, causes))),
        // A time limit, an internal error, or a kind added later: the base class.
        _ => return error(py, &message),
    };
    raise(made)
}
