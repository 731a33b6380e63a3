//! Plans written as JSON text directly, compact (batch result lines) or pretty (`--format
//! json`), byte for byte what `serde_json` writes from the same [`Plan`] through its
//! `Serialize` implementation (which stays the reference, and the tests compare the two).
//!
//! Why not `serde_json` here: a plan's text is mostly keys and short strings, and the
//! generic serializer escapes every key and grows its buffer as it goes. Here every key is a
//! constant spelled with its separator (`,"model":"`, see [`key!`]), a field whose values are
//! a few known words (`kind`, `hotplug`, the booleans) is a constant too, and the text is
//! appended to a buffer the caller sized once and keeps (a batch reuses one buffer for many
//! result lines). Compact or pretty is a type parameter, so the compact text has no indent
//! logic at all.

use crate::changes::{Change, ChangeKind, Seen};
use crate::plan::{PlacedController, PlacedDevice, Plan};
use crate::request::Firmware;

/// A key as the compact text writes it after an earlier entry, with the quote that opens a
/// string value: `key!("model")` is `,"model":"`. A writer drops the comma for a first key and
/// the quote for other values, so that a string field is one constant and the string. Keys
/// of the formats are plain words (no escaping).
macro_rules! key {
    ($k:literal) => {
        concat!(",\"", $k, "\":\"")
    };
}
pub(crate) use key;

/// A JSON text under construction, appended to a `String`: compact, or (`PRETTY`) with
/// two-space indents as `serde_json::to_string_pretty` writes it. Objects are written with
/// [`Writer::open`] (which writes the first key: every object here has one), [`Writer::key`]
/// and [`Writer::close`]; keys are spelled with [`key!`].
pub(crate) struct Writer<'o, const PRETTY: bool> {
    out: &'o mut String,
    /// Open objects and arrays (the indent depth).
    depth: usize,
}

impl<'o, const PRETTY: bool> Writer<'o, PRETTY> {
    /// A writer appending to `out`, at the top level.
    pub fn new(out: &'o mut String) -> Self {
        Writer { out, depth: 0 }
    }

    /// Appends `s` as it is.
    #[inline]
    fn raw(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn newline(&mut self) {
        /// A newline and the indent of the deepest level a plan reaches, and then some.
        const INDENT: &str = "\n                                ";
        match INDENT.get(..1 + 2 * self.depth) {
            Some(s) => self.out.push_str(s),
            None => {
                self.out.push('\n');
                for _ in 0..self.depth {
                    self.out.push_str("  ");
                }
            }
        }
    }

    /// Writes key `k` (from [`key!`]) of the innermost object, `first` or after another.
    #[inline]
    fn any_key(&mut self, k: &str, first: bool) {
        let k = &k[..k.len() - 1];
        if PRETTY {
            if !first {
                self.out.push(',');
            }
            self.newline();
            self.raw(&k[1..]);
            self.out.push(' ');
        } else if first {
            self.raw(&k[1..]);
        } else {
            self.raw(k);
        }
    }

    /// Opens an object and writes its first key `k` (from [`key!`]).
    #[inline]
    pub fn open(&mut self, k: &str) {
        self.out.push('{');
        self.depth += 1;
        self.any_key(k, true);
    }

    /// Writes key `k` (from [`key!`]) after an earlier entry of the innermost object.
    #[inline]
    pub fn key(&mut self, k: &str) {
        self.any_key(k, false);
    }

    /// Writes key `k` (from [`key!`]) and string `s` of the innermost object, `first` or
    /// after another; `plain`: `s` is known to need no escaping (a word of the format).
    /// Always inlined (as [`escaped`]), so that the constants fold.
    #[inline(always)]
    fn any_field(&mut self, k: &str, s: &str, first: bool, plain: bool) {
        if PRETTY {
            self.any_key(k, first);
            escaped(self.out, s);
        } else if !plain && needs_escape(s.as_bytes()) {
            self.any_key(k, first);
            escaped_slowly(self.out, s);
        } else {
            debug_assert!(!needs_escape(s.as_bytes()));
            self.raw(if first { &k[1..] } else { k });
            self.out.push_str(s);
            self.out.push('"');
        }
    }

    /// Opens an object and writes its first field: key `k` (from [`key!`]) and string `s`.
    #[inline]
    pub fn open_field(&mut self, k: &str, s: &str) {
        self.out.push('{');
        self.depth += 1;
        self.any_field(k, s, true, false);
    }

    /// Opens an object and writes its first field: key `k` (from [`key!`]) and `word`, a
    /// string known to need no escaping (a word of the format, a rule id).
    #[inline]
    pub fn open_word(&mut self, k: &str, word: &str) {
        self.out.push('{');
        self.depth += 1;
        self.any_field(k, word, true, true);
    }

    /// Writes key `k` (from [`key!`]) and string `s` after an earlier entry of the innermost
    /// object.
    #[inline]
    pub fn field(&mut self, k: &str, s: &str) {
        self.any_field(k, s, false, false);
    }

    /// Writes key `k` (from [`key!`]) and `word`, a string known to need no escaping, after
    /// an earlier entry of the innermost object.
    #[inline]
    pub fn word(&mut self, k: &str, word: &str) {
        self.any_field(k, word, false, true);
    }

    /// Closes the innermost object.
    #[inline]
    pub fn close(&mut self) {
        self.depth -= 1;
        if PRETTY {
            self.newline();
        }
        self.out.push('}');
    }

    /// Writes `items` as an array, each with `f`.
    #[inline]
    pub fn array<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.out.push('[');
        self.depth += 1;
        for (i, x) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            if PRETTY {
                self.newline();
            }
            f(self, x);
        }
        self.depth -= 1;
        if PRETTY && !items.is_empty() {
            self.newline();
        }
        self.out.push(']');
    }

    /// Writes a string value.
    #[inline]
    pub fn str(&mut self, s: &str) {
        escaped(self.out, s);
    }

    /// Writes an unsigned number (one digit directly: an `io-reserve` is mostly 0).
    #[inline]
    pub fn num(&mut self, n: u32) {
        num(self.out, n);
    }

    /// Writes `true` or `false`.
    #[inline]
    pub fn bool(&mut self, v: bool) {
        // Four bytes either way, so that they are copied as one word rather than by a call.
        self.out.push_str(if v { "true" } else { "fals" });
        if !v {
            self.out.push('e');
        }
    }

    /// Writes `null`.
    #[inline]
    pub fn null(&mut self) {
        self.out.push_str("null");
    }
}

/// Appends `s` as a JSON string, escaped as `serde_json` escapes: `"` and `\`, control
/// characters as `\b \t \n \f \r` or `\u00XX`; everything else as it is. Inlined into
/// every writer of a string field: a call costs a fifth of what the common case does.
#[inline(always)]
pub(crate) fn escaped(out: &mut String, s: &str) {
    if needs_escape(s.as_bytes()) {
        escaped_slowly(out, s);
    } else {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

/// [`escaped`] for a string with something to escape (rare: the strings of a plan are ids,
/// models and bus names).
#[cold]
#[inline(never)]
fn escaped_slowly(out: &mut String, s: &str) {
    out.push('"');
    escape_body(out, s);
    out.push('"');
}

/// Appends the content of string `s` (without its quotes): as it is when `plain` (the
/// caller found nothing to escape in it, see [`escape_bits`]), else escaped as [`escaped`]
/// does. The compact plan writers spell the quotes into the constants around it.
#[inline(always)]
fn body(out: &mut String, s: &str, plain: bool) {
    if plain {
        put(out, s);
    } else {
        escape_body(out, s);
    }
}

/// Appends `s`, a short one (an id, a model, a bus name: mostly 2 to 16 bytes) copied by a
/// few moves of its known length instead of a call of `memcpy`: each arm copies a constant
/// number of bytes, which the compiler spells out.
#[inline(always)]
fn put(out: &mut String, s: &str) {
    macro_rules! by_len {
        ($($n:literal)*) => {
            match s.len() {
                $($n => out.push_str(&s[..$n]),)*
                _ => out.push_str(s),
            }
        };
    }
    by_len!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
}

/// [`body`] for a string with something to escape.
#[cold]
#[inline(never)]
fn escape_body(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.push_str(&s[start..i]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x08 => out.push_str("\\b"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0c => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// Whether any byte of `b` is escaped: a control character, `"` or `\\`.
#[inline]
fn needs_escape(b: &[u8]) -> bool {
    escape_bits(b) != 0
}

/// Nonzero when any byte of `b` is escaped ([`needs_escape`]), so that the strings of an
/// item are tested with one branch: `escape_bits(a) | escape_bits(b) == 0`. Eight bytes at a
/// time: a byte below 0x20, or equal to 0x22 or 0x5C, leaves its high bit set in
/// [`special`]. A string of 8 to 16 bytes is read as its first and its last eight bytes
/// (overlapping: a byte checked twice is harmless), a longer one in words and then its last
/// eight; a shorter one as one word, from two overlapping halves (4 to 7 bytes) or its
/// first, middle and last byte (1 to 3, which are all its bytes) padded with spaces.
#[inline(always)]
fn escape_bits(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 8 {
        if n > 16 {
            return escape_bits_long(b);
        }
        return special(word8(b)) | special(word8(&b[n - 8..]));
    }
    if n >= 4 {
        return special(u64::from(word4(b)) | u64::from(word4(&b[n - 4..])) << 32);
    }
    if n == 0 {
        return 0;
    }
    const SPACES: u64 = 0x2020_2020_2000_0000;
    special(SPACES | u64::from(b[0]) | u64::from(b[n / 2]) << 8 | u64::from(b[n - 1]) << 16)
}

/// [`escape_bits`] of a string longer than 16 bytes.
#[inline(never)]
fn escape_bits_long(b: &[u8]) -> u64 {
    let mut words = b.chunks_exact(8);
    let mut bits = 0;
    for w in words.by_ref() {
        bits |= special(word8(w));
    }
    if !words.remainder().is_empty() {
        bits |= special(word8(&b[b.len() - 8..]));
    }
    bits
}

/// The first eight bytes of `w`, little-endian.
#[inline]
fn word8(w: &[u8]) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&w[..8]);
    u64::from_le_bytes(a)
}

/// The first four bytes of `w`, little-endian.
#[inline]
fn word4(w: &[u8]) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&w[..4]);
    u32::from_le_bytes(a)
}

/// The bytes of `x` below 0x20 or equal to 0x22 or 0x5C, by their high bit (nonzero when
/// there is one). `x - n·ONES & !x & HIGH` has a byte's high bit set where the byte is
/// below `n` (or above one that is; bytes from 0x80, which UTF-8 uses, are masked out by
/// `!x`); the three tests share the `!x & HIGH`, since `x ^ 0x22` and `x ^ 0x5C` have the
/// high bits of `x`.
#[inline(always)]
fn special(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    ((x ^ (ONES * 0x22)).wrapping_sub(ONES)
        | (x ^ (ONES * 0x5c)).wrapping_sub(ONES)
        | x.wrapping_sub(ONES * 0x20))
        & !x
        & HIGH
}

/// The numbers 00 to 99, two digits each: [`small`] appends the last two digits of a
/// number as one piece of this.
const TENS: &str = concat!(
    "0001020304050607080910111213141516171819",
    "2021222324252627282930313233343536373839",
    "4041424344454647484950515253545556575859",
    "6061626364656667686970717273747576777879",
    "8081828384858687888990919293949596979899",
);

/// Appends `n` (a slot, function, port or the like: mostly one or two digits): one digit
/// directly, the last two as one two-byte piece of [`TENS`] (one append instead of two, and
/// no tens digit to work out), a hundreds digit before them.
#[inline]
fn small(out: &mut String, n: u8) {
    if n < 10 {
        out.push(char::from(b'0' + n));
        return;
    }
    if n >= 100 {
        out.push(char::from(b'0' + n / 100));
    }
    let at = usize::from(n % 100) * 2;
    out.push_str(&TENS[at..at + 2]);
}

/// The size to reserve for `plan`'s text, so that the buffer is sized once: about 330
/// bytes per controller, device or change pretty, 200 compact.
pub(crate) fn size_hint(plan: &Plan, pretty: bool) -> usize {
    let changes = plan.changes.as_ref().map_or(0, |c| c.len());
    let per_item = if pretty { 330 } else { 200 };
    256 + per_item * (plan.controllers.len() + plan.devices.len() + changes)
}

/// Writes `plan` as the value at the writer's position.
pub(crate) fn plan<const P: bool>(w: &mut Writer<P>, plan: &Plan) {
    w.open(key!("name"));
    match &plan.name {
        Some(n) => w.str(n),
        None => w.null(),
    }
    w.field(key!("machine"), &plan.machine);
    w.word(
        key!("firmware"),
        match plan.firmware {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        },
    );
    if let Some(h) = plan.root_hotplug {
        w.key(key!("root_hotplug"));
        w.bool(h);
    }
    w.key(key!("cost"));
    w.num(plan.cost);
    w.key(key!("optimal"));
    w.bool(plan.optimal);
    if let Some(n) = plan.guest_visible_changes {
        w.key(key!("guest_visible_changes"));
        w.num(n);
    }
    if let Some(list) = &plan.changes {
        w.key(key!("changes"));
        w.array(list, change);
    }
    if !plan.notes.is_empty() {
        w.key(key!("notes"));
        w.array(&plan.notes, |w, n| w.str(n));
    }
    w.key(key!("controllers"));
    items(w, &plan.controllers, controller_text::<P>);
    w.key(key!("devices"));
    items(w, &plan.devices, device_text::<P>);
    w.close();
}

/// Writes `list` as an array of the plan (as [`Writer::array`] does), each item with `f`,
/// told whether it is the first: the items spell the comma before them and (pretty) the
/// indent of their brace in their first constant (see [`item!`]), one append less each.
#[inline(always)]
fn items<const P: bool, T>(w: &mut Writer<P>, list: &[T], f: impl Fn(&mut String, &T, bool)) {
    w.out.push('[');
    for (i, x) in list.iter().enumerate() {
        f(w.out, x, i == 0);
    }
    if P && !list.is_empty() {
        w.newline();
    }
    w.out.push(']');
}

/// A constant of a controller's or device's text, compact or (`$p`) pretty, from literals
/// and keys: `{key}` is an item's first key, `[key]` a later one (with the comma before it),
/// each spelled with its colon as the layout writes it; `open` opens the first item of an
/// array and `next` a later one (with the comma between), `end` closes an item. Pretty, an
/// item of a plan's array has its fields three levels deep (six spaces) and its brace two.
macro_rules! item {
    ($p:ident, $($piece:tt)*) => {
        if $p {
            concat!($(item!(@true $piece)),*)
        } else {
            concat!($(item!(@false $piece)),*)
        }
    };
    (@true {$k:literal}) => { concat!("\n      \"", $k, "\": ") };
    (@false {$k:literal}) => { concat!("\"", $k, "\":") };
    (@true [$k:literal]) => { concat!(",\n      \"", $k, "\": ") };
    (@false [$k:literal]) => { concat!(",\"", $k, "\":") };
    (@true end) => { "\n    }" };
    (@false end) => { "}" };
    (@true open) => { "\n    {" };
    (@false open) => { "{" };
    (@true next) => { ",\n    {" };
    (@false next) => { ",{" };
    (@$p:tt $s:literal) => { $s };
}

/// Appends `n`, one digit directly (an `io-reserve` or NUMA node is mostly 0).
#[inline]
fn num(out: &mut String, n: u32) {
    match u8::try_from(n) {
        Ok(n) if n < 10 => small(out, n),
        _ => out.push_str(itoa::Buffer::new().format(n)),
    }
}

/// `key` (with its comma and colon) and `v`, where there is a value.
#[inline(always)]
fn opt_small(out: &mut String, key: &str, v: Option<u8>) {
    if let Some(v) = v {
        out.push_str(key);
        small(out, v);
    }
}

/// `key` (with its comma and colon) and `v`, where there is a value.
#[inline(always)]
fn opt_num(out: &mut String, key: &str, v: Option<u32>) {
    if let Some(v) = v {
        out.push_str(key);
        num(out, v);
    }
}

/// `controller` as an item of a plan's array (the `first` one or a later one), compact or
/// (`P`) pretty, in as few appends as the fields allow: each constant (see [`item!`]) holds
/// a string's closing quote, the next key and the next string's opening quote, or a
/// boolean with its key.
fn controller_text<const P: bool>(out: &mut String, c: &PlacedController, first: bool) {
    let fixed = if P { 300 } else { 160 };
    // Each text read once (an inline `Text` finds its length on every read).
    let (id, model, driver, bus) = (
        c.id.as_str(),
        c.model.as_str(),
        c.driver.as_str(),
        c.bus.as_str(),
    );
    out.reserve(fixed + id.len() + model.len() + driver.len() + bus.len());
    // One test for the four texts (they are ids and catalog names: nothing to escape).
    let plain = escape_bits(id.as_bytes())
        | escape_bits(model.as_bytes())
        | escape_bits(driver.as_bytes())
        | escape_bits(bus.as_bytes())
        == 0;
    id_and_model::<P>(out, first, id, model, plain);
    out.push_str(item!(P, "\"" ["driver"] "\""));
    body(out, driver, plain);
    out.push_str(item!(P, "\"" ["bus"] "\""));
    body(out, bus, plain);
    out.push_str(item!(P, "\""["slot"]));
    small(out, c.slot);
    out.push_str(item!(P, ["function"]));
    small(out, c.function);
    if c.multifunction {
        out.push_str(item!(P, ["multifunction"] "true"));
    } else {
        out.push_str(item!(P, ["multifunction"] "false"));
    }
    opt_small(out, item!(P, ["chassis"]), c.chassis);
    opt_small(out, item!(P, ["port"]), c.port);
    match c.hotplug {
        Some(true) => out.push_str(item!(P, ["hotplug"] "true")),
        Some(false) => out.push_str(item!(P, ["hotplug"] "false")),
        None => {}
    }
    opt_small(out, item!(P, ["bus_nr"]), c.bus_nr);
    opt_num(out, item!(P, ["numa_node"]), c.numa_node);
    // An `io-reserve` is mostly 0: then it is one constant with the end.
    match (c.io_reserve, c.added) {
        (Some(0), true) => out.push_str(item!(P, ["io-reserve"] "0" ["added"] "true" end)),
        (Some(0), false) => out.push_str(item!(P, ["io-reserve"] "0" ["added"] "false" end)),
        (io, added) => {
            opt_num(out, item!(P, ["io-reserve"]), io);
            if added {
                out.push_str(item!(P, ["added"] "true" end));
            } else {
                out.push_str(item!(P, ["added"] "false" end));
            }
        }
    }
}

/// The start of a controller or device item (the `first` of its array or a later one): its
/// brace, `id` and `model`, the model's closing quote left to the caller's next constant.
#[inline(always)]
fn id_and_model<const P: bool>(out: &mut String, first: bool, id: &str, model: &str, plain: bool) {
    if first {
        out.push_str(item!(P, open {"id"} "\""));
    } else {
        out.push_str(item!(P, next {"id"} "\""));
    }
    body(out, id, plain);
    out.push_str(item!(P, "\"" ["model"] "\""));
    body(out, model, plain);
}

/// `device` as an item of a plan's array (the `first` one or a later one), as
/// [`controller_text`] writes a controller: the fields from `multifunction` to `hotplug`
/// are one constant of twelve.
fn device_text<const P: bool>(out: &mut String, d: &PlacedDevice, first: bool) {
    use crate::catalog::BusKind;
    use crate::request::Hotplug;
    let fixed = if P { 260 } else { 140 };
    // Each text read once, as in `controller_text`.
    let (id, model, bus) = (d.id.as_str(), d.model.as_str(), d.bus.as_str());
    let group = d.group.as_deref();
    out.reserve(fixed + id.len() + model.len() + bus.len() + group.map_or(0, str::len));
    // One test for the texts, as in `controller_text`.
    let plain = escape_bits(id.as_bytes())
        | escape_bits(model.as_bytes())
        | escape_bits(bus.as_bytes())
        | group.map_or(0, |g| escape_bits(g.as_bytes()))
        == 0;
    id_and_model::<P>(out, first, id, model, plain);
    match d.kind {
        BusKind::Pcie => out.push_str(item!(P, "\"" ["kind"] "\"pcie\"" ["bus"] "\"")),
        BusKind::Pci => out.push_str(item!(P, "\"" ["kind"] "\"pci\"" ["bus"] "\"")),
    }
    body(out, bus, plain);
    out.push_str(item!(P, "\""["slot"]));
    small(out, d.slot);
    out.push_str(item!(P, ["function"]));
    small(out, d.function);
    /// `,"multifunction":M,"hotpluggable":H,"hotplug":"P"` in the writer's layout.
    macro_rules! flags {
        ($m:literal, $h:literal, $p:literal) => {
            out.push_str(item!(
                P,
                ["multifunction"] $m ["hotpluggable"] $h ["hotplug"] "\"" $p "\""
            ))
        };
    }
    match (d.multifunction, d.hotpluggable, d.hotplug) {
        (false, false, Hotplug::On) => flags!("false", "false", "on"),
        (false, false, Hotplug::Off) => flags!("false", "false", "off"),
        (false, false, Hotplug::Any) => flags!("false", "false", "any"),
        (false, true, Hotplug::On) => flags!("false", "true", "on"),
        (false, true, Hotplug::Off) => flags!("false", "true", "off"),
        (false, true, Hotplug::Any) => flags!("false", "true", "any"),
        (true, false, Hotplug::On) => flags!("true", "false", "on"),
        (true, false, Hotplug::Off) => flags!("true", "false", "off"),
        (true, false, Hotplug::Any) => flags!("true", "false", "any"),
        (true, true, Hotplug::On) => flags!("true", "true", "on"),
        (true, true, Hotplug::Off) => flags!("true", "true", "off"),
        (true, true, Hotplug::Any) => flags!("true", "true", "any"),
    }
    if let Some(g) = group {
        out.push_str(item!(P, ["group"] "\""));
        body(out, g, plain);
        out.push('"');
    }
    opt_num(out, item!(P, ["numa_node"]), d.numa_node);
    out.push_str(item!(P, end));
}

fn change<const P: bool>(w: &mut Writer<P>, c: &Change) {
    w.open_field(key!("id"), &c.id);
    w.word(
        key!("change"),
        match c.change {
            ChangeKind::Moved => "moved",
            ChangeKind::Renumbered => "renumbered",
            ChangeKind::Renamed => "renamed",
            ChangeKind::PortHotplug => "port_hotplug",
            ChangeKind::Added => "added",
        },
    );
    if let Some(v) = &c.from {
        w.field(key!("from"), v);
    }
    if let Some(v) = &c.to {
        w.field(key!("to"), v);
    }
    w.key(key!("guest_visible"));
    w.bool(c.guest_visible);
    if let Some(s) = &c.linux_name {
        w.key(key!("linux_name"));
        seen(w, s);
    }
    if let Some(s) = &c.windows_path {
        w.key(key!("windows_path"));
        seen(w, s);
    }
    if let Some(v) = &c.why {
        w.field(key!("why"), v);
    }
    w.close();
}

fn seen<const P: bool>(w: &mut Writer<P>, s: &Seen) {
    w.open_field(key!("from"), &s.from);
    w.field(key!("to"), &s.to);
    w.close();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::request::Request;

    fn both(p: &Plan) {
        let mut s = String::new();
        plan(&mut Writer::<false>::new(&mut s), p);
        assert_eq!(s, serde_json::to_string(p).unwrap(), "compact");
        s.clear();
        plan(&mut Writer::<true>::new(&mut s), p);
        assert_eq!(s, serde_json::to_string_pretty(p).unwrap(), "pretty");
    }

    #[test]
    fn escapes_as_serde_json() {
        for s in [
            "",
            "plain",
            "q\"uote",
            "back\\slash",
            "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f} \u{7f}",
            "é ü 漢 🙂",
        ] {
            let mut out = String::new();
            escaped(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap());
        }
    }

    #[test]
    fn small_numbers_as_itoa() {
        for n in 0..=u8::MAX {
            let mut s = String::new();
            small(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    #[test]
    fn finds_every_byte_to_escape() {
        // The other bytes next to the limits (0x20, 0x21, 0x23, 0x5D) or UTF-8's (0xFF).
        for fill in [b'a', 0x20, 0x21, 0x23, 0x5d, 0xff] {
            for len in 0..26 {
                for at in 0..len {
                    for c in 0u8..=0xff {
                        let mut b = vec![fill; len];
                        b[at] = c;
                        let want = c < 0x20 || c == b'"' || c == b'\\';
                        assert_eq!(
                            needs_escape(&b),
                            want,
                            "{c:#x} at {at} of {len} in {fill:#x}"
                        );
                    }
                }
                assert!(!needs_escape(&vec![fill; len]));
            }
        }
    }

    #[test]
    fn plans_as_serde_json() {
        let cat = Catalog::q35();
        let req = Request::from_json(
            r#"{"name":"we\"ird\n\u0001","policy":{"spare_ports":1},"devices":[
                {"id":"n0","model":"virtio-net-pci","hotplug":"off"},
                {"id":"n1","model":"e1000","hotplug":"on","group":"g"},
                {"id":"n2","model":"virtio-blk-pci","numa_node":0}]}"#,
        )
        .unwrap();
        let mut p = crate::plan_with(&req, cat).unwrap();
        both(&p);
        p.name = None;
        p.notes = vec!["a \"note\"".into(), String::new()];
        p.root_hotplug = Some(false);
        p.guest_visible_changes = Some(2);
        p.changes = Some(vec![
            Change {
                id: "n0".into(),
                change: ChangeKind::Moved,
                from: Some("rp1:00.0".into()),
                to: Some("pcie.0:02.0".into()),
                guest_visible: true,
                linux_name: Some(Seen {
                    from: "enp1s0".into(),
                    to: "enp0s2".into(),
                }),
                windows_path: Some(Seen {
                    from: "PCIROOT(0)#PCI(0100)".into(),
                    to: "PCIROOT(0)#PCI(0200)".into(),
                }),
                why: Some("why \\ not".into()),
            },
            Change {
                id: "rp1".into(),
                change: ChangeKind::PortHotplug,
                from: None,
                to: None,
                guest_visible: false,
                linux_name: None,
                windows_path: None,
                why: None,
            },
        ]);
        both(&p);
        p.changes = Some(Vec::new());
        p.devices.clear();
        p.controllers.clear();
        both(&p);
    }
}
