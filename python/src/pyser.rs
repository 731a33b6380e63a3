//! Library values (plans, batch results, causes) built straight into the Python objects
//! `json.loads` would make of their JSON text, without the text.
//!
//! A plan of 32 devices is about 1,100 Python objects, half of them dict keys. Keys are
//! struct field names (`&'static str`): each is made once, kept from call to call (see
//! [`Keys`]) and shared by every dict, with its hash computed once, as `json.loads` shares
//! the keys of one document. Enum words (`"off"`, `"pcie"`), models, drivers and bus names
//! are shared the same way, and a struct's dict is a copy of a template dict of its keys
//! with only the values that differ set (see [`Template`]): 32 devices in and out of a
//! `plan` call took 0.87 M instructions, now 0.67 M; the plan alone 321 k, now 170 k
//! (callgrind, CPython 3.11).
//!
//! Anything JSON text would spell differently from a direct build (byte strings, map keys
//! other than strings and integers, floats that are not finite) is [`Error::Unsupported`]: the caller then goes the
//! JSON text way, so a result is always the dict its JSON line parses to.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard};

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

/// What building gives.
pub type Result<T> = std::result::Result<T, Error>;

/// A cheap hash for the caches below: static strings' addresses and lengths, and short
/// value strings (none of it comes from an adversary that could aim for collisions: the
/// values are a plan's own models and bus names).
#[derive(Default)]
struct QuickHasher(u64);

impl QuickHasher {
    fn mix(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for QuickHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Eight bytes at a time: the words hashed are short.
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w));
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }
}

type Quick = BuildHasherDefault<QuickHasher>;

/// A static string (a field name, an enum word) by address and length: two static strings
/// at the same address with the same length are the same text.
type StaticKey = (usize, usize);

fn static_key(s: &'static str) -> StaticKey {
    (s.as_ptr() as usize, s.len())
}

/// A dict of one struct's key sequence, with the values of the first dict built of it
/// where they are immutable (str, int, bool, None, float; `None` stands in for the others):
/// a struct's dict is a copy of it with the values that differ set. `PyDict_Copy` copies
/// the table whole, where inserting keys one by one into a new dict grows its table twice
/// for ten keys; and most fields of a plan's devices and controllers hold the same
/// objects from one to the next (`false`, `0`, the shared enum words, models and bus
/// names), which the copy carries already.
struct Template {
    keys: Box<[StaticKey]>,
    names: Box<[Py<PyString>]>,
    values: Box<[Py<PyAny>]>,
    dict: Py<PyDict>,
}

impl Template {
    /// Whether `fields` has this template's key sequence.
    fn has_keys(&self, fields: &[(&'static str, Bound<'_, PyAny>)]) -> bool {
        self.keys.len() == fields.len()
            && self
                .keys
                .iter()
                .zip(fields)
                .all(|(a, (k, _))| *a == static_key(k))
    }
}

/// A copy of template `t` with the values of `fields` (its key sequence) set.
fn copy_with<'py>(
    py: Python<'py>,
    t: &Template,
    fields: &[(&'static str, Bound<'py, PyAny>)],
) -> Result<Bound<'py, PyDict>> {
    let dict = t.dict.bind(py).copy()?;
    for ((name, was), (_, v)) in t.names.iter().zip(&t.values).zip(fields) {
        if was.as_ptr() == v.as_ptr() {
            // The copy holds this very object already.
            continue;
        }
        // SAFETY: three live objects; PyDict_SetItem takes its own references. The key
        // is in the copy, so this replaces a value: the order stays.
        let r = unsafe { pyo3::ffi::PyDict_SetItem(dict.as_ptr(), name.as_ptr(), v.as_ptr()) };
        if r != 0 {
            return Err(Error::Py(PyErr::fetch(py)));
        }
    }
    Ok(dict)
}

/// Whether a template may hold `v` (it must never be changed through a dict built).
fn immutable(v: &Bound<'_, PyAny>) -> bool {
    v.is_none()
        || v.is_exact_instance_of::<PyString>()
        || v.is_exact_instance_of::<PyInt>()
        || v.is_exact_instance_of::<PyBool>()
        || v.is_exact_instance_of::<PyFloat>()
}

/// Objects kept from call to call: the strings of field names and enum words, the struct
/// templates, and the strings of models, drivers and bus names (a few hundred words in
/// all: the catalogs' models and the buses a plan names). Strings are immutable and the
/// templates are only ever copied, so sharing them changes no result.
#[derive(Default)]
struct Made {
    statics: HashMap<StaticKey, Py<PyString>, Quick>,
    templates: HashMap<u64, Template, Quick>,
    words: HashMap<Box<str>, Py<PyString>, Quick>,
    /// Templates by the number their builder gives their key sequence (see
    /// [`Keys::shaped`]): no hash of the keys to find them.
    shaped: Vec<Option<Template>>,
    /// Enum words by the number their builder gives them (see [`Keys::fixed`]).
    fixed: [Option<(StaticKey, Py<PyString>)>; FIXED],
    /// The words met last, by a hash of their bytes: one probe and one comparison before
    /// `words`' hash table (see [`Keys::word`]).
    recent: Vec<Option<Recent>>,
}

impl Made {
    /// The caches kept between calls: with the table of recent words, which a builder's
    /// own short-lived caches go without (it would cost more to clear than it saves).
    fn kept() -> Made {
        let mut m = Made::default();
        m.recent.resize_with(RECENT, || None);
        m
    }
}

/// A word in [`Made::recent`].
struct Recent {
    hash: u64,
    text: Box<str>,
    word: Py<PyString>,
}

/// How many enum words [`Keys::fixed`] keeps by number.
pub(crate) const FIXED: usize = 8;

/// Entries of [`Made::recent`] (a power of two).
const RECENT: usize = 512;

/// A word's hash for [`Made::recent`]: its length and its first and last bytes (eight
/// of each, or four, or each byte of a word of three or fewer), which tell apart the
/// models and bus names of a plan (`rp3`/`rp13`, `virtio-net-pci`/`virtio-blk-pci`); the
/// entry's text is compared whole anyway. Fixed-size reads only: no copy of a length
/// known at run time.
fn recent_hash(s: &str) -> u64 {
    let b = s.as_bytes();
    let n = b.len();
    let (head, tail) = if n >= 8 {
        (le8(&b[..8]), le8(&b[n - 8..]))
    } else if n >= 4 {
        (u64::from(le4(&b[..4])), u64::from(le4(&b[n - 4..])))
    } else {
        let byte = |i: usize| b.get(i).map_or(0, |&c| u64::from(c));
        (byte(0) | byte(1) << 8 | byte(2) << 16, 0)
    };
    let mut h = QuickHasher(n as u64);
    h.mix(head);
    h.mix(tail);
    h.0
}

/// Eight bytes as a number (`b` has eight).
fn le8(b: &[u8]) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

/// Four bytes as a number (`b` has four).
fn le4(b: &[u8]) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&b[..4]);
    u32::from_le_bytes(w)
}

/// Most templates and words kept (whatever the values planned: a bound, never reached by
/// the catalogs' models and the buses of a plan).
const MOST_KEPT: usize = 4096;

/// Value strings longer than this are never shared.
const SHARED_VALUE_LEN: usize = 24;

/// The objects kept between calls. Taken with `try_lock` only: building runs Python's
/// allocator, whose garbage collection may run finalizers, which may plan on this thread
/// again or let another thread plan; a builder that finds it taken uses a cache of its own.
static MADE: Mutex<Option<Made>> = Mutex::new(None);

/// The kept objects, or a builder's own when they are taken.
enum Slot {
    Kept(MutexGuard<'static, Option<Made>>),
    /// Boxed: rare (another builder holds the kept ones), and large.
    Own(Box<Made>),
}

impl Slot {
    fn made(&mut self) -> &mut Made {
        match self {
            Slot::Kept(g) => g.get_or_insert_with(Made::kept),
            Slot::Own(m) => m,
        }
    }
}

/// Where a value goes, as far as its strings are concerned: the fields whose strings are
/// words worth sharing (models, drivers, bus names).
fn shares_words(field: &'static str) -> bool {
    matches!(field, "model" | "driver" | "bus")
}

/// The builder's caches of Python objects (see [`Made`]).
pub struct Keys<'py> {
    py: Python<'py>,
    slot: Slot,
}

impl<'py> Keys<'py> {
    /// The kept caches, or fresh ones when another builder holds them.
    pub fn new(py: Python<'py>) -> Keys<'py> {
        let slot = match MADE.try_lock() {
            Ok(g) => Slot::Kept(g),
            Err(_) => Slot::Own(Box::default()),
        };
        Keys { py, slot }
    }

    /// The interpreter the objects are made in.
    pub fn py(&self) -> Python<'py> {
        self.py
    }

    /// The Python string of `s` (a key or an enum word), kept.
    fn get(&mut self, s: &'static str) -> Bound<'py, PyString> {
        let py = self.py;
        self.slot
            .made()
            .statics
            .entry(static_key(s))
            .or_insert_with(|| PyString::intern(py, s).unbind())
            .bind(py)
            .clone()
    }

    /// The Python string of a value of `field`: shared when it is a word.
    fn value(&mut self, field: &'static str, s: &str) -> Bound<'py, PyString> {
        if shares_words(field) {
            self.word(s)
        } else {
            self.text(s)
        }
    }

    /// The Python string of text that is not shared (a name, an id).
    pub(crate) fn text(&mut self, s: &str) -> Bound<'py, PyString> {
        PyString::new(self.py, s)
    }

    /// The Python string of a word (a model, a driver, a bus name), shared unless long.
    pub(crate) fn word(&mut self, s: &str) -> Bound<'py, PyString> {
        let py = self.py;
        if s.len() > SHARED_VALUE_LEN {
            return PyString::new(py, s);
        }
        let hash = recent_hash(s);
        let made = self.slot.made();
        let at = (hash >> 32) as usize & (RECENT - 1);
        // A builder's own caches (see `Slot::Own`) have no `recent`: `get` misses.
        if let Some(Some(r)) = made.recent.get(at) {
            if r.hash == hash && *r.text == *s {
                return r.word.bind(py).clone();
            }
        }
        let v = match made.words.get(s) {
            Some(v) => v.bind(py).clone(),
            None => {
                let v = PyString::new(py, s);
                if made.words.len() < MOST_KEPT {
                    made.words.insert(s.into(), v.clone().unbind());
                }
                v
            }
        };
        if let Some(slot) = made.recent.get_mut(at) {
            *slot = Some(Recent {
                hash,
                text: s.into(),
                word: v.clone().unbind(),
            });
        }
        v
    }

    /// The Python string of enum word `s`, kept as number `n` (below [`FIXED`]) by a
    /// builder that numbers its words: an array's entry rather than a hash table's.
    pub(crate) fn fixed(&mut self, n: usize, s: &'static str) -> Bound<'py, PyString> {
        let py = self.py;
        let key = static_key(s);
        if let Some(Some((k, w))) = self.slot.made().fixed.get(n) {
            if *k == key {
                return w.bind(py).clone();
            }
        }
        let w = self.get(s);
        if let Some(slot) = self.slot.made().fixed.get_mut(n) {
            *slot = Some((key, w.clone().unbind()));
        }
        w
    }

    /// The dict of a struct whose builder numbers its key sequences: `shape` names
    /// `fields`' keys (one number, one sequence). Its template is found by that number
    /// and checked by the number of keys only (debug builds check every key); a number
    /// met with another count of keys (a builder's mistake) is built as [`Keys::dict`]
    /// does.
    pub(crate) fn shaped(
        &mut self,
        shape: usize,
        fields: &[(&'static str, Bound<'py, PyAny>)],
    ) -> Result<Bound<'py, PyDict>> {
        let py = self.py;
        match self.slot.made().shaped.get(shape) {
            Some(Some(t)) if t.keys.len() == fields.len() => {
                debug_assert!(t.has_keys(fields), "shape {shape} met with other keys");
                return copy_with(py, t, fields);
            }
            Some(Some(_)) => return self.dict(fields),
            _ => {}
        }
        let Some(t) = self.template(fields)? else {
            return self.dict_by_fields(fields);
        };
        let dict = copy_with(py, &t, fields)?;
        let shaped = &mut self.slot.made().shaped;
        if shaped.len() <= shape {
            shaped.resize_with(shape + 1, || None);
        }
        shaped[shape] = Some(t);
        Ok(dict)
    }

    /// The dict of a struct: its fields in order.
    fn dict(&mut self, fields: &[(&'static str, Bound<'py, PyAny>)]) -> Result<Bound<'py, PyDict>> {
        let py = self.py;
        let mut h = QuickHasher::default();
        for (k, _) in fields {
            let (a, n) = static_key(k);
            h.mix(a as u64 ^ ((n as u64) << 48));
        }
        let sig = h.finish();
        let made = self.slot.made();
        match made.templates.get(&sig) {
            Some(t) if t.has_keys(fields) => return copy_with(py, t, fields),
            // A hash shared with another sequence.
            Some(_) => return self.dict_by_fields(fields),
            None if made.templates.len() >= MOST_KEPT => return self.dict_by_fields(fields),
            None => {}
        }
        let Some(t) = self.template(fields)? else {
            return self.dict_by_fields(fields);
        };
        let dict = copy_with(py, &t, fields)?;
        self.slot.made().templates.insert(sig, t);
        Ok(dict)
    }

    /// The template of `fields`' key sequence, its values theirs where immutable; `None`
    /// when a key comes twice.
    fn template(
        &mut self,
        fields: &[(&'static str, Bound<'py, PyAny>)],
    ) -> Result<Option<Template>> {
        let py = self.py;
        let t = PyDict::new(py);
        let mut names = Vec::with_capacity(fields.len());
        let mut values = Vec::with_capacity(fields.len());
        for (k, v) in fields {
            let name = self.get(k);
            let v = if immutable(v) {
                v.clone()
            } else {
                py.None().into_bound(py)
            };
            t.set_item(&name, &v)?;
            names.push(name.unbind());
            values.push(v.unbind());
        }
        if t.len() != fields.len() {
            // A key twice: the values by field would not say what the dict holds.
            return Ok(None);
        }
        Ok(Some(Template {
            keys: fields.iter().map(|(k, _)| static_key(k)).collect(),
            names: names.into_boxed_slice(),
            values: values.into_boxed_slice(),
            dict: t.unbind(),
        }))
    }

    /// A struct's dict built key by key.
    fn dict_by_fields(
        &mut self,
        fields: &[(&'static str, Bound<'py, PyAny>)],
    ) -> Result<Bound<'py, PyDict>> {
        let dict = PyDict::new(self.py);
        for (k, v) in fields {
            dict.set_item(self.get(k), v)?;
        }
        Ok(dict)
    }

    /// `value` as Python objects.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for what only JSON text spells right; [`Error::Py`] when
    /// Python raises.
    pub fn build<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<Bound<'py, PyAny>> {
        value.serialize(Builder {
            keys: self,
            field: "",
        })
    }
}

/// Builds one value, the value of `field` (empty for an item or the whole value).
struct Builder<'a, 'py> {
    keys: &'a mut Keys<'py>,
    field: &'static str,
}

/// Builds a list.
struct Items<'a, 'py> {
    keys: &'a mut Keys<'py>,
    items: Vec<Bound<'py, PyAny>>,
}

/// Builds a dict, optionally wrapped in `{variant: dict}`: a map's entry by entry, a
/// struct's from its fields at the end (see [`Template`]).
struct Fields<'a, 'py> {
    keys: &'a mut Keys<'py>,
    /// A map's dict.
    dict: Option<Bound<'py, PyDict>>,
    key: Option<Bound<'py, PyAny>>,
    /// A struct's fields.
    fields: Vec<(&'static str, Bound<'py, PyAny>)>,
    variant: Option<&'static str>,
}

impl<'py> Fields<'_, 'py> {
    fn done(self) -> Result<Bound<'py, PyAny>> {
        let dict = match self.dict {
            Some(d) => d,
            None => self.keys.dict(&self.fields)?,
        };
        match self.variant {
            None => Ok(dict.into_any()),
            Some(v) => wrap(self.keys, v, dict.into_any()),
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
        Ok(self.keys.value(self.field, v).into_any())
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
        let inner = v.serialize(Builder {
            keys: self.keys,
            field: "",
        })?;
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
            dict: Some(dict),
            key: None,
            fields: Vec::new(),
            variant: None,
        })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Fields<'a, 'py>> {
        Ok(Fields {
            keys: self.keys,
            dict: None,
            key: None,
            fields: Vec::with_capacity(len),
            variant: None,
        })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Fields<'a, 'py>> {
        let mut f = self.serialize_struct(variant, len)?;
        f.variant = Some(variant);
        Ok(f)
    }
}

impl<'py> ser::SerializeSeq for Items<'_, 'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<()> {
        self.items.push(v.serialize(Builder {
            keys: self.keys,
            field: "",
        })?);
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
        let key = k.serialize(Builder {
            keys: self.keys,
            field: "",
        })?;
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
        let value = v.serialize(Builder {
            keys: self.keys,
            field: "",
        })?;
        let dict = self
            .dict
            .as_ref()
            .ok_or(Error::Unsupported("a map entry in a struct"))?;
        dict.set_item(key, value)?;
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
        let value = v.serialize(Builder {
            keys: self.keys,
            field: k,
        })?;
        self.fields.push((k, value));
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
