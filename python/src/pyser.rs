//! Library values (plans, batch results, causes) built straight into the Python objects
//! `json.loads` would make of their JSON text, without the text.
//!
//! A plan of 32 devices is about 1,100 Python objects, half of them dict keys. Keys are
//! struct field names (`&'static str`): each is made once per [`Keys`] cache (one per call,
//! one per batch chunk) and shared by every dict, with its hash computed once, as
//! `json.loads` shares the keys of one document. Enum words (`"off"`, `"pcie"`) are shared
//! the same way.
//!
//! Anything JSON text would spell differently from a direct build (byte strings, map keys
//! other than strings and integers, floats that are not finite) is [`Error::Unsupported`]: the caller then goes the
//! JSON text way, so a result is always the dict its JSON line parses to.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};
use serde::ser::{self, Serialize};

/// Why a value was not built.
#[derive(Debug)]
pub enum Error {
    /// Python raised (out of memory, say).
    Py(PyErr),
    /// A value whose JSON spelling a direct build would not reproduce.
    Unsupported(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Py(e) => write!(f, "{e}"),
            Error::Unsupported(what) => write!(f, "{what} is built through JSON text"),
        }
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Error::Unsupported("a value with its own serializer error")
    }
}

impl From<PyErr> for Error {
    fn from(e: PyErr) -> Self {
        Error::Py(e)
    }
}

type Result<T> = std::result::Result<T, Error>;

/// A cheap hash for the caches below: static strings' addresses and lengths, and short
/// value strings (none of it comes from an adversary that could aim for collisions: the
/// values are a plan's own ids, models and bus names).
#[derive(Default)]
struct QuickHasher(u64);

impl Hasher for QuickHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// Python strings of static Rust strings (field names, enum words), made once each.
pub struct Keys<'py> {
    py: Python<'py>,
    made: HashMap<(usize, usize), Bound<'py, PyString>, BuildHasherDefault<QuickHasher>>,
    /// Short value strings made so far: ids, models and bus names repeat across the
    /// devices of a plan and the plans of a chunk, and a str is immutable, so one object
    /// serves every place (fewer objects to make and to free).
    values: HashMap<Box<str>, Bound<'py, PyString>, BuildHasherDefault<QuickHasher>>,
}

/// Value strings longer than this are made anew each time (names, messages).
const SHARED_VALUE_LEN: usize = 24;

impl<'py> Keys<'py> {
    /// An empty cache.
    pub fn new(py: Python<'py>) -> Keys<'py> {
        Keys {
            py,
            made: HashMap::default(),
            values: HashMap::default(),
        }
    }

    /// The interpreter the objects are made in.
    pub fn py(&self) -> Python<'py> {
        self.py
    }

    /// The Python string of `s`. Two static strings at the same address with the same
    /// length are the same text, so the address and length identify it.
    fn get(&mut self, s: &'static str) -> Bound<'py, PyString> {
        let py = self.py;
        self.made
            .entry((s.as_ptr() as usize, s.len()))
            .or_insert_with(|| PyString::intern(py, s))
            .clone()
    }

    /// The Python string of a value: shared when short.
    fn value(&mut self, s: &str) -> Bound<'py, PyString> {
        if s.len() > SHARED_VALUE_LEN {
            return PyString::new(self.py, s);
        }
        if let Some(v) = self.values.get(s) {
            return v.clone();
        }
        let v = PyString::new(self.py, s);
        self.values.insert(s.into(), v.clone());
        v
    }

    /// `value` as Python objects.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for what only JSON text spells right; [`Error::Py`] when
    /// Python raises.
    pub fn build<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<Bound<'py, PyAny>> {
        value.serialize(Builder { keys: self })
    }
}

/// Builds one value.
struct Builder<'a, 'py> {
    keys: &'a mut Keys<'py>,
}

/// Builds a list.
struct Items<'a, 'py> {
    keys: &'a mut Keys<'py>,
    items: Vec<Bound<'py, PyAny>>,
}

/// Builds a dict (of a struct or a map), optionally wrapped in `{variant: dict}`.
struct Fields<'a, 'py> {
    keys: &'a mut Keys<'py>,
    dict: Bound<'py, PyDict>,
    key: Option<Bound<'py, PyAny>>,
    variant: Option<&'static str>,
}

impl<'py> Fields<'_, 'py> {
    fn done(self) -> Result<Bound<'py, PyAny>> {
        match self.variant {
            None => Ok(self.dict.into_any()),
            Some(v) => wrap(self.keys, v, self.dict.into_any()),
        }
    }
}

/// `{variant: value}`, as serde writes a variant that carries data.
fn wrap<'py>(
    keys: &mut Keys<'py>,
    variant: &'static str,
    value: Bound<'py, PyAny>,
) -> Result<Bound<'py, PyAny>> {
    let d = PyDict::new(keys.py);
    d.set_item(keys.get(variant), value)?;
    Ok(d.into_any())
}

impl<'a, 'py> ser::Serializer for Builder<'a, 'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = Error;
    type SerializeSeq = Items<'a, 'py>;
    type SerializeTuple = Items<'a, 'py>;
    type SerializeTupleStruct = Items<'a, 'py>;
    type SerializeTupleVariant = ser::Impossible<Bound<'py, PyAny>, Error>;
    type SerializeMap = Fields<'a, 'py>;
    type SerializeStruct = Fields<'a, 'py>;
    type SerializeStructVariant = Fields<'a, 'py>;

    fn serialize_bool(self, v: bool) -> Result<Self::Ok> {
        Ok(PyBool::new(self.keys.py, v).to_owned().into_any())
    }
    fn serialize_i8(self, v: i8) -> Result<Self::Ok> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<Self::Ok> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<Self::Ok> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Self::Ok> {
        let Ok(n) = v.into_pyobject(self.keys.py);
        Ok(n.into_any())
    }
    fn serialize_u8(self, v: u8) -> Result<Self::Ok> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<Self::Ok> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<Self::Ok> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<Self::Ok> {
        let Ok(n) = v.into_pyobject(self.keys.py);
        Ok(n.into_any())
    }
    fn serialize_f32(self, v: f32) -> Result<Self::Ok> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Self::Ok> {
        if !v.is_finite() {
            // JSON text writes null for these.
            return Err(Error::Unsupported("a float that is not finite"));
        }
        Ok(PyFloat::new(self.keys.py, v).into_any())
    }
    fn serialize_char(self, v: char) -> Result<Self::Ok> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<Self::Ok> {
        Ok(self.keys.value(v).into_any())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<Self::Ok> {
        Err(Error::Unsupported("bytes"))
    }
    fn serialize_none(self) -> Result<Self::Ok> {
        Ok(self.keys.py.None().into_bound(self.keys.py))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Self::Ok> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Self::Ok> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Self::Ok> {
        self.serialize_none()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, v: &'static str) -> Result<Self::Ok> {
        Ok(self.keys.get(v).into_any())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<Self::Ok> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<Self::Ok> {
        let inner = v.serialize(Builder { keys: self.keys })?;
        wrap(self.keys, variant, inner)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Items<'a, 'py>> {
        Ok(Items {
            keys: self.keys,
            items: Vec::with_capacity(len.unwrap_or(0)),
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Items<'a, 'py>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Items<'a, 'py>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(Error::Unsupported("a tuple variant"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Fields<'a, 'py>> {
        let dict = PyDict::new(self.keys.py);
        Ok(Fields {
            keys: self.keys,
            dict,
            key: None,
            variant: None,
        })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Fields<'a, 'py>> {
        self.serialize_map(None)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Fields<'a, 'py>> {
        let mut f = self.serialize_map(None)?;
        f.variant = Some(variant);
        Ok(f)
    }
}

impl<'py> ser::SerializeSeq for Items<'_, 'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<()> {
        self.items.push(v.serialize(Builder { keys: self.keys })?);
        Ok(())
    }
    fn end(self) -> Result<Self::Ok> {
        Ok(PyList::new(self.keys.py, self.items)?.into_any())
    }
}

impl<'py> ser::SerializeTuple for Items<'_, 'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<()> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Self::Ok> {
        ser::SerializeSeq::end(self)
    }
}

impl<'py> ser::SerializeTupleStruct for Items<'_, 'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<()> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Self::Ok> {
        ser::SerializeSeq::end(self)
    }
}

impl<'py> ser::SerializeMap for Fields<'_, 'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<()> {
        // JSON text writes string keys as they are and integer keys as their decimal text;
        // any other key goes the JSON text way.
        let key = k.serialize(Builder { keys: self.keys })?;
        let key = if key.is_instance_of::<PyString>() {
            key
        } else if key.is_exact_instance_of::<PyInt>() {
            key.str()?.into_any()
        } else {
            return Err(Error::Unsupported(
                "a map key that is not a string or an integer",
            ));
        };
        self.key = Some(key);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<()> {
        let key = self
            .key
            .take()
            .ok_or(Error::Unsupported("a value without a key"))?;
        let value = v.serialize(Builder { keys: self.keys })?;
        self.dict.set_item(key, value)?;
        Ok(())
    }
    fn end(self) -> Result<Self::Ok> {
        self.done()
    }
}

impl<'py> ser::SerializeStruct for Fields<'_, 'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, k: &'static str, v: &T) -> Result<()> {
        let value = v.serialize(Builder { keys: self.keys })?;
        self.dict.set_item(self.keys.get(k), value)?;
        Ok(())
    }
    fn end(self) -> Result<Self::Ok> {
        self.done()
    }
}

impl<'py> ser::SerializeStructVariant for Fields<'_, 'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, k: &'static str, v: &T) -> Result<()> {
        ser::SerializeStruct::serialize_field(self, k, v)
    }
    fn end(self) -> Result<Self::Ok> {
        self.done()
    }
}
