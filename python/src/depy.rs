//! Python objects read straight into the library's types, exactly as their JSON text
//! would be read, or not at all.
//!
//! A request dict used to be written out as JSON text by CPython's encoder and parsed
//! again in Rust; reading the dict itself saves both steps (about a third of a small
//! call). The reader accepts only what JSON has, with the types `json.loads` gives:
//! `dict` with `str` keys, `list` and `tuple`, `str`, `int`, finite `float`, `bool` and
//! `None`, exact types only, not nested deeper than [`MAX_DEPTH`] and with no more text
//! than a fraction of the request size limit. Whatever it cannot read, it does not try to
//! explain: it answers [`Fallback`], and the caller goes the JSON text way, whose errors
//! (and whose conversions, such as `int` keys becoming strings) are the command line's.
//! A dict therefore plans, or fails, exactly as its `json.dumps` text does.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

mod fast;

pub use fast::read_request;

/// Nesting the reader follows before it leaves the object to the JSON text way (whose
/// reader refuses nesting deeper than 128).
pub const MAX_DEPTH: u32 = 64;

/// Bytes of text the reader takes, in all, before it leaves the object to the JSON text
/// way: a sixth of the request limit, since one character may take six bytes of JSON, so
/// whatever passes is surely under the limit the text way enforces.
pub const MAX_TEXT: usize = pciplan::MAX_REQUEST_BYTES / 6;

/// The object is not read directly; read its JSON text instead.
#[derive(Debug)]
pub struct Fallback;

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("read as JSON text instead")
    }
}

impl std::error::Error for Fallback {}

impl de::Error for Fallback {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Fallback
    }
}

/// Whether the interpreter has `PyUnicode_AsUTF8AndSize` in its stable ABI: 0 not asked
/// yet, 1 no (3.9), 2 yes (3.10 on).
static BORROWS_UTF8: AtomicU8 = AtomicU8::new(0);

extern "C" {
    /// Part of the stable ABI from CPython 3.10 (and present, outside it, since 3.3). The
    /// module is built for the stable ABI of 3.9, whose bindings leave it out.
    fn PyUnicode_AsUTF8AndSize(
        unicode: *mut pyo3::ffi::PyObject,
        size: *mut pyo3::ffi::Py_ssize_t,
    ) -> *const std::os::raw::c_char;
}

/// The UTF-8 text of a str: borrowed from the str itself on CPython 3.10 and later (no
/// object made, nothing copied: the text of an ASCII str is its own storage), else a
/// copy by way of a bytes object, which is what `PyString::to_cow` does on the 3.9
/// stable ABI for every key and value.
pub fn text<'a>(s: &'a Bound<'_, PyString>) -> Result<Cow<'a, str>, Fallback> {
    let borrows = match BORROWS_UTF8.load(Ordering::Relaxed) {
        0 => {
            let yes = s.py().version_info() >= (3, 10);
            BORROWS_UTF8.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
        v => v == 2,
    };
    if !borrows {
        return s.to_cow().map_err(|_| Fallback);
    }
    let mut size: pyo3::ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a live str. The text returned lives as long as the str does (a str
    // keeps its UTF-8 form once made), which `'a` bounds.
    let data = unsafe { PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut size) };
    if data.is_null() {
        // Lone surrogates have no UTF-8 form. The exception is dropped: the text way
        // reports it.
        drop(PyErr::take(s.py()));
        return Err(Fallback);
    }
    let len = usize::try_from(size).map_err(|_| Fallback)?;
    // SAFETY: CPython returns `size` bytes of valid UTF-8 at `data`.
    let text =
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(data.cast(), len)) };
    Ok(Cow::Borrowed(text))
}

/// One object being read, with what is left of the text budget.
struct Reader<'a, 'py> {
    obj: &'a Bound<'py, PyAny>,
    depth: u32,
    budget: &'a mut usize,
}

impl Reader<'_, '_> {
    /// Charges `n` bytes of text to the budget.
    fn spend(&mut self, n: usize) -> Result<(), Fallback> {
        *self.budget = self.budget.checked_sub(n).ok_or(Fallback)?;
        Ok(())
    }

    fn deeper(&self) -> Result<u32, Fallback> {
        if self.depth >= MAX_DEPTH {
            return Err(Fallback);
        }
        Ok(self.depth + 1)
    }
}

impl<'de> de::Deserializer<'de> for Reader<'_, '_> {
    type Error = Fallback;

    fn deserialize_any<V: Visitor<'de>>(mut self, v: V) -> Result<V::Value, Fallback> {
        let o = self.obj;
        self.spend(1)?;
        if o.is_none() {
            v.visit_unit()
        } else if o.is_exact_instance_of::<PyBool>() {
            v.visit_bool(o.is_truthy().map_err(|_| Fallback)?)
        } else if o.is_exact_instance_of::<PyString>() {
            let s = o.cast::<PyString>().map_err(|_| Fallback)?;
            // A str with lone surrogates has no UTF-8 form: the text way says so.
            let s = text(s)?;
            self.spend(s.len())?;
            v.visit_str(&s)
        } else if o.is_exact_instance_of::<PyInt>() {
            // As JSON text reads an integer: u64 when it is one, else i64; larger ones
            // read as floats there, which no request field takes: the text way says so.
            if let Ok(n) = o.extract::<u64>() {
                v.visit_u64(n)
            } else {
                v.visit_i64(o.extract::<i64>().map_err(|_| Fallback)?)
            }
        } else if o.is_exact_instance_of::<PyFloat>() {
            let x: f64 = o.extract().map_err(|_| Fallback)?;
            if !x.is_finite() {
                return Err(Fallback);
            }
            v.visit_f64(x)
        } else if o.is_exact_instance_of::<PyList>() || o.is_exact_instance_of::<PyTuple>() {
            let depth = self.deeper()?;
            v.visit_seq(Items {
                seq: o,
                list: o.is_exact_instance_of::<PyList>(),
                next: 0,
                depth,
                budget: self.budget,
            })
        } else if o.is_exact_instance_of::<PyDict>() {
            let depth = self.deeper()?;
            let d = o.cast::<PyDict>().map_err(|_| Fallback)?;
            v.visit_map(Entries {
                entries: d.iter(),
                value: None,
                depth,
                budget: self.budget,
            })
        } else {
            Err(Fallback)
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Fallback> {
        if self.obj.is_none() {
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Fallback> {
        v.visit_newtype_struct(self)
    }

    /// Enums of the request are words (`"off"`); any other spelling goes the text way.
    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Fallback> {
        if !self.obj.is_exact_instance_of::<PyString>() {
            return Err(Fallback);
        }
        let s = self.obj.cast::<PyString>().map_err(|_| Fallback)?;
        let s = text(s)?;
        self.spend(s.len())?;
        v.visit_enum(IntoDeserializer::<Fallback>::into_deserializer(s.as_ref()))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

/// The items of a list or tuple, taken by index (no iterator object).
struct Items<'a, 'py> {
    seq: &'a Bound<'py, PyAny>,
    list: bool,
    next: usize,
    depth: u32,
    budget: &'a mut usize,
}

impl Items<'_, '_> {
    fn len(&self) -> usize {
        if self.list {
            // SAFETY: `list` says it is one.
            unsafe { self.seq.cast_unchecked::<PyList>() }.len()
        } else {
            // SAFETY: else it is a tuple.
            unsafe { self.seq.cast_unchecked::<PyTuple>() }.len()
        }
    }
}

impl<'de> de::SeqAccess<'de> for Items<'_, '_> {
    type Error = Fallback;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Fallback> {
        // Nothing read runs Python code, so the length cannot change on the way; it is
        // asked each time all the same.
        if self.next >= self.len() {
            return Ok(None);
        }
        let item = if self.list {
            // SAFETY: as in `len`.
            unsafe { self.seq.cast_unchecked::<PyList>() }.get_item(self.next)
        } else {
            // SAFETY: as in `len`.
            unsafe { self.seq.cast_unchecked::<PyTuple>() }.get_item(self.next)
        };
        let item = item.map_err(|_| Fallback)?;
        self.next += 1;
        seed.deserialize(Reader {
            obj: &item,
            depth: self.depth,
            budget: self.budget,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.len().saturating_sub(self.next))
    }
}

/// The entries of a dict, whose keys must be exact `str`.
struct Entries<'a, 'py> {
    entries: pyo3::types::iter::BoundDictIterator<'py>,
    value: Option<Bound<'py, PyAny>>,
    depth: u32,
    budget: &'a mut usize,
}

impl<'de> de::MapAccess<'de> for Entries<'_, '_> {
    type Error = Fallback;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Fallback> {
        let Some((k, v)) = self.entries.next() else {
            return Ok(None);
        };
        if !k.is_exact_instance_of::<PyString>() {
            return Err(Fallback);
        }
        let k = k.cast_into::<PyString>().map_err(|_| Fallback)?;
        let key = text(&k)?;
        *self.budget = self.budget.checked_sub(key.len() + 1).ok_or(Fallback)?;
        self.value = Some(v);
        seed.deserialize(IntoDeserializer::<Fallback>::into_deserializer(
            key.as_ref(),
        ))
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Fallback> {
        let v = self.value.take().ok_or(Fallback)?;
        seed.deserialize(Reader {
            obj: &v,
            depth: self.depth,
            budget: self.budget,
        })
    }
}
