//! A request dict read field by field, with the devices (most of a request) read by a
//! reader of their usual shape rather than through serde: `id`, `model`, `hotplug`,
//! `group`, `numa_node`. A device of any other shape, and every other field of the
//! request, goes through serde and [`super::Reader`] as the whole request did, so the
//! request read is the one serde reads, or [`Fallback`] where that falls back. Serde's
//! visitors took some 1,600 instructions a device on the thread that holds the GIL; this
//! takes a fraction of that (a mixed guest's request: 33.6 k -> 25.3 k in all).

use std::sync::OnceLock;

use pciplan::{ControllerRequest, DeviceRequest, Firmware, Hotplug, Policy, Request, Text};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyList, PyString};
use pyo3::Borrowed;
use serde::Deserialize;

use super::{text, Fallback, Reader, MAX_TEXT};

/// Reads a request dict (an exact `dict`, as the caller checked).
pub fn read_request(obj: &Bound<'_, PyDict>) -> Result<Request, Fallback> {
    let mut budget = MAX_TEXT;
    // The dict itself, as `Reader::deserialize_any` charges it.
    budget = budget.checked_sub(1).ok_or(Fallback)?;
    let mut req = empty_request()?;
    for (key, value) in obj.iter() {
        let key = key.cast_into::<PyString>().map_err(|_| Fallback)?;
        if !key.is_exact_instance_of::<PyString>() {
            return Err(Fallback);
        }
        let key = text(&key)?;
        budget = budget.checked_sub(key.len() + 1).ok_or(Fallback)?;
        match key.as_ref() {
            "devices" => req.devices = devices(&value, &mut budget)?,
            "name" => req.name = Option::<Text>::deserialize(field(&value, &mut budget))?,
            "machine" => req.machine = Text::deserialize(field(&value, &mut budget))?,
            "firmware" => req.firmware = Firmware::deserialize(field(&value, &mut budget))?,
            "policy" => req.policy = Policy::deserialize(field(&value, &mut budget))?,
            "controllers" => {
                req.controllers =
                    Vec::<ControllerRequest>::deserialize(field(&value, &mut budget))?;
            }
            "root_hotplug" => {
                req.root_hotplug = Option::<bool>::deserialize(field(&value, &mut budget))?
            }
            // Unknown fields are refused (the text way says which).
            _ => return Err(Fallback),
        }
    }
    Ok(req)
}

/// A field's value, one level down, as the request's map hands it to serde.
fn field<'a, 'py>(obj: &'a Bound<'py, PyAny>, budget: &'a mut usize) -> Reader<'a, 'py> {
    Reader {
        obj,
        depth: 1,
        budget,
    }
}

/// The request of an empty dict: every field at its serde default (read once).
fn empty_request() -> Result<Request, Fallback> {
    static EMPTY: OnceLock<Option<Request>> = OnceLock::new();
    EMPTY
        .get_or_init(|| serde_json::from_str("{}").ok())
        .clone()
        .ok_or(Fallback)
}

/// The `devices` value: a list read device by device, anything else by serde.
fn devices(value: &Bound<'_, PyAny>, budget: &mut usize) -> Result<Vec<DeviceRequest>, Fallback> {
    let list = match value.cast::<PyList>() {
        Ok(list) if list.is_exact_instance_of::<PyList>() => list,
        _ => return Vec::<DeviceRequest>::deserialize(field(value, budget)),
    };
    // The list, as `Reader::deserialize_any` charges it.
    *budget = budget.checked_sub(1).ok_or(Fallback)?;
    let mut out = Vec::with_capacity(list.len());
    let mut keys = DeviceKeys::default();
    for item in list.iter() {
        let d = match device(&item, &mut keys)? {
            Some((d, cost)) => {
                *budget = budget.checked_sub(cost).ok_or(Fallback)?;
                d
            }
            None => DeviceRequest::deserialize(Reader {
                obj: &item,
                depth: 2,
                budget,
            })?,
        };
        out.push(d);
    }
    Ok(out)
}

/// A device dict of the usual shape, with the text budget it takes (what `Reader` would
/// charge); `None` for any other shape (left to serde), [`Fallback`] for what serde would
/// refuse.
fn device(
    item: &Bound<'_, PyAny>,
    keys: &mut DeviceKeys,
) -> Result<Option<(DeviceRequest, usize)>, Fallback> {
    if !item.is_exact_instance_of::<PyDict>() {
        return Ok(None);
    }
    let py = item.py();
    let mut cost = 1;
    let (mut id, mut model) = (None, None);
    let mut d = DeviceRequest {
        id: Text::default(),
        model: Text::default(),
        hotplug: None,
        group: None,
        numa_node: None,
        bus_kind: None,
        address: None,
    };
    let mut pos: ffi::Py_ssize_t = 0;
    let mut k: *mut ffi::PyObject = std::ptr::null_mut();
    let mut v: *mut ffi::PyObject = std::ptr::null_mut();
    // SAFETY: `item` is a live dict; PyDict_Next hands out borrowed references, valid
    // while the dict is not changed, which nothing here does (no Python code runs).
    while unsafe { ffi::PyDict_Next(item.as_ptr(), &mut pos, &mut k, &mut v) } != 0 {
        // SAFETY: borrowed references from the live dict (above), used while it lives;
        // no reference counts change.
        let (key, value) = unsafe { (Borrowed::from_ptr(py, k), Borrowed::from_ptr(py, v)) };
        let (key, value): (&Bound<'_, PyAny>, &Bound<'_, PyAny>) = (&key, &value);
        let field = match keys.seen(k) {
            Some(f) => f,
            None => {
                if !key.is_exact_instance_of::<PyString>() {
                    return Err(Fallback);
                }
                // SAFETY: checked just above.
                let text = text(unsafe { key.cast_unchecked::<PyString>() })?;
                let Some(f) = DeviceField::of(&text) else {
                    // `bus_kind`, `address`, or a field serde refuses: serde reads it.
                    return Ok(None);
                };
                keys.remember(k, f);
                f
            }
        };
        cost += field.name().len() + 1;
        match field {
            DeviceField::Id => id = Some(string(value, &mut cost)?),
            DeviceField::Model => model = Some(string(value, &mut cost)?),
            DeviceField::Hotplug => {
                d.hotplug = match word(value)? {
                    None => None,
                    Some(w) => {
                        cost += w.len();
                        Some(Hotplug::parse(&w).ok_or(Fallback)?)
                    }
                }
            }
            DeviceField::Group => {
                d.group = if value.is_none() {
                    None
                } else {
                    Some(string(value, &mut cost)?)
                }
            }
            DeviceField::NumaNode => {
                d.numa_node = if value.is_none() {
                    None
                } else {
                    cost += 1;
                    Some(node(value)?)
                }
            }
        }
    }
    let (Some(id), Some(model)) = (id, model) else {
        // A field missing: serde says which.
        return Err(Fallback);
    };
    d.id = id;
    d.model = model;
    Ok(Some((d, cost)))
}

/// The fields the device reader reads.
#[derive(Clone, Copy)]
enum DeviceField {
    Id,
    Model,
    Hotplug,
    Group,
    NumaNode,
}

impl DeviceField {
    fn of(key: &str) -> Option<DeviceField> {
        Some(match key {
            "id" => DeviceField::Id,
            "model" => DeviceField::Model,
            "hotplug" => DeviceField::Hotplug,
            "group" => DeviceField::Group,
            "numa_node" => DeviceField::NumaNode,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            DeviceField::Id => "id",
            DeviceField::Model => "model",
            DeviceField::Hotplug => "hotplug",
            DeviceField::Group => "group",
            DeviceField::NumaNode => "numa_node",
        }
    }
}

/// The key objects of one request's device dicts already read, by address: `json.loads`
/// makes one object of each key per document, and dicts written in Python code share
/// their keys' constants, so after its first device a request's keys are known by
/// address, with no text to read or compare. Only within one request, whose dict holds
/// every key alive (an address freed and reused would name another object).
#[derive(Default)]
struct DeviceKeys {
    seen: [(usize, Option<DeviceField>); 5],
}

impl DeviceKeys {
    fn seen(&self, key: *mut ffi::PyObject) -> Option<DeviceField> {
        let at = key as usize;
        self.seen
            .iter()
            .find(|(a, _)| *a == at)
            .and_then(|(_, f)| *f)
    }

    fn remember(&mut self, key: *mut ffi::PyObject, field: DeviceField) {
        if let Some(slot) = self.seen.iter_mut().find(|(_, f)| f.is_none()) {
            *slot = (key as usize, Some(field));
        }
    }
}

/// A `str` value as text, charged as `Reader` charges it (1 + its length).
fn string(value: &Bound<'_, PyAny>, cost: &mut usize) -> Result<Text, Fallback> {
    if !value.is_exact_instance_of::<PyString>() {
        return Err(Fallback);
    }
    // SAFETY: checked just above.
    let s = text(unsafe { value.cast_unchecked::<PyString>() })?;
    *cost += 1 + s.len();
    Ok(Text::from(s.as_ref()))
}

/// An enum word (`None` for JSON's `null`).
fn word<'a>(value: &'a Bound<'_, PyAny>) -> Result<Option<std::borrow::Cow<'a, str>>, Fallback> {
    if value.is_none() {
        return Ok(None);
    }
    if !value.is_exact_instance_of::<PyString>() {
        return Err(Fallback);
    }
    // SAFETY: checked just above.
    text(unsafe { value.cast_unchecked::<PyString>() }).map(Some)
}

/// A NUMA node: an `int` (not a `bool`) that fits a `u32`.
fn node(value: &Bound<'_, PyAny>) -> Result<u32, Fallback> {
    if value.is_exact_instance_of::<PyBool>() || !value.is_exact_instance_of::<PyInt>() {
        return Err(Fallback);
    }
    value.extract::<u32>().map_err(|_| Fallback)
}
