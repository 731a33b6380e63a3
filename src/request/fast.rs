//! A quick reader of the common request text: plain objects, arrays, strings without
//! escapes, small unsigned integers, `true`/`false`/`null`.
//!
//! It accepts a subset of what serde reads, and gives the same [`Request`] for it: every
//! text it cannot read exactly as serde would (escapes, numbers with a sign, fraction or
//! exponent, a wrong type, an unknown or repeated field, a missing one, anything malformed)
//! makes it answer `None`, and [`Request::from_json`] reads the text with serde instead,
//! which also writes the error message. The test below compares the two on many texts.

use crate::catalog::BusKind;
use crate::request::{
    Address, ControllerRequest, DeviceRequest, Firmware, Hotplug, OffStrategy, Policy, Request,
};
use crate::Text;

/// Reads `text` as serde would, or `None` when it takes serde to read it.
pub(super) fn parse(text: &str) -> Option<Request> {
    let mut p = Reader { s: text, i: 0 };
    let r = p.request()?;
    p.ws();
    (p.i == text.len()).then_some(r)
}

/// The bytes of `w` (little-endian) that end or break a plain string (`"`, `\\`, control
/// characters) have their high bit set in the answer; the lowest set bit is exact (a
/// borrow may mark bytes above it too).
fn special(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    (zero(w ^ (ONES * u64::from(b'"')))
        | zero(w ^ (ONES * u64::from(b'\\')))
        | (w.wrapping_sub(ONES * 0x20) & !w))
        & HIGH
}

/// `s` as a [`Text`]. A short one (as ids and models are) is copied by an arm of its
/// length, where the copy is a few moves of a known size instead of a call of `memcpy`.
#[inline(always)]
fn text(s: &str) -> Text {
    macro_rules! by_len {
        ($($n:literal)*) => {
            match s.len() {
                $($n => Text::from(&s[..$n]),)*
                _ => Text::from(s),
            }
        };
    }
    by_len!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24)
}

/// The text and the position in it.
struct Reader<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    /// Skips JSON white space (serde_json's four characters).
    #[inline(always)]
    fn ws(&mut self) {
        let b = self.s.as_bytes();
        // Most texts are compact: the next byte is no white space (all four are <= b' ').
        if b.get(self.i).is_none_or(|&c| c > b' ') {
            return;
        }
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(self.i) {
            self.i += 1;
        }
    }

    /// White space, then `c`.
    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        if self.peek() != Some(c) {
            return None;
        }
        self.i += 1;
        Some(())
    }

    /// White space, then whether `c` is next (taken if so).
    fn next_is(&mut self, c: u8) -> bool {
        self.ws();
        let yes = self.peek() == Some(c);
        self.i += usize::from(yes);
        yes
    }

    /// After a member or an element: `true` for `,`, `false` for `close`.
    fn more(&mut self, close: u8) -> Option<bool> {
        self.ws();
        match self.peek()? {
            b',' => {
                self.i += 1;
                Some(true)
            }
            c if c == close => {
                self.i += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// A string without escapes or control characters.
    fn str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        self.str_body()
    }

    /// [`Reader::str`] after its opening quote, inlined: for the id and model of every
    /// device, whose quote is taken with the key.
    #[inline(always)]
    fn str_body(&mut self) -> Option<&'a str> {
        let b = self.s.as_bytes();
        let start = self.i;
        let mut i = start;
        // Eight bytes at a time while there are eight, then one at a time.
        while let Some(w) = b.get(i..).and_then(<[u8]>::first_chunk::<8>) {
            let m = special(u64::from_le_bytes(*w));
            if m != 0 {
                i += (m.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        while b
            .get(i)
            .is_some_and(|&c| !(c == b'"' || c == b'\\' || c < 0x20))
        {
            i += 1;
        }
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let out = self.s.get(start..i)?;
        self.i = i + 1;
        Some(out)
    }

    /// `null` (taken) or not (nothing taken).
    fn null(&mut self) -> bool {
        self.ws();
        if self.s.as_bytes()[self.i..].starts_with(b"null") {
            self.i += 4;
            return true;
        }
        false
    }

    /// An unsigned integer up to `max`, digits only.
    fn uint(&mut self, max: u32) -> Option<u32> {
        self.ws();
        let b = self.s.as_bytes();
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(&c @ b'0'..=b'9') = b.get(self.i) {
            v = v * 10 + u64::from(c - b'0');
            self.i += 1;
            if self.i - start > 10 {
                return None;
            }
        }
        let n = self.i - start;
        // No digits, or a leading zero before more digits (not JSON).
        if n == 0 || (n > 1 && b[start] == b'0') {
            return None;
        }
        // A fraction or an exponent makes it a float, which serde refuses for integers.
        if matches!(b.get(self.i), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        u32::try_from(v).ok().filter(|&v| v <= max)
    }

    fn u8(&mut self) -> Option<u8> {
        self.uint(u8::MAX.into()).map(|v| v as u8)
    }

    fn bool(&mut self) -> Option<bool> {
        self.ws();
        let rest = &self.s.as_bytes()[self.i..];
        if rest.starts_with(b"true") {
            self.i += 4;
            Some(true)
        } else if rest.starts_with(b"false") {
            self.i += 5;
            Some(false)
        } else {
            None
        }
    }

    /// `null` as `None`, else a value read by `f`.
    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.null() {
            return Some(None);
        }
        f(self).map(Some)
    }

    /// The key next (after white space) as the number of its spelling in `keys`, each
    /// written with its quotes (`"id"`), taken with them; `None` for any other key, or one
    /// with an escape. Found by its first letter, then compared whole: no scan for the
    /// closing quote.
    #[inline(always)]
    fn key(&mut self, keys: &[&[u8]]) -> Option<usize> {
        self.ws();
        let rest = &self.s.as_bytes()[self.i..];
        let first = *rest.get(1)?;
        let n = keys
            .iter()
            .position(|k| k[1] == first && rest.starts_with(k))?;
        self.i += keys[n].len();
        Some(n)
    }

    /// An object of the fields spelled `keys` (with their quotes): `member` reads the value
    /// of the field spelled `keys[n]`.
    #[inline(always)]
    fn object(
        &mut self,
        keys: &[&[u8]],
        mut member: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        if self.next_is(b'}') {
            return Some(());
        }
        loop {
            let n = self.key(keys)?;
            self.eat(b':')?;
            member(self, n)?;
            if !self.more(b'}')? {
                return Some(());
            }
        }
    }

    /// Whether the token `lit` (a string with its quotes, say) is next after white
    /// space: taken if so.
    #[inline(always)]
    fn lit(&mut self, lit: &[u8]) -> bool {
        self.ws();
        let yes = self.s.as_bytes()[self.i..].starts_with(lit);
        if yes {
            self.i += lit.len();
        }
        yes
    }

    /// Whether the bytes `t` come next, exactly (no white space skipped): taken if so.
    #[inline(always)]
    fn tag(&mut self, t: &[u8]) -> bool {
        let yes = self.s.as_bytes()[self.i..].starts_with(t);
        if yes {
            self.i += t.len();
        }
        yes
    }

    /// An array of what `f` reads, with room for `room` at first.
    fn array<T>(
        &mut self,
        mut f: impl FnMut(&mut Self) -> Option<T>,
        room: usize,
    ) -> Option<Vec<T>> {
        self.array_into(
            |r, out| {
                out.push(f(r)?);
                Some(())
            },
            room,
        )
    }

    /// An array whose elements `f` reads and pushes itself (so that a large one is built
    /// in place rather than returned and moved), with room for `room` at first.
    #[inline(always)]
    fn array_into<T>(
        &mut self,
        mut f: impl FnMut(&mut Self, &mut Vec<T>) -> Option<()>,
        room: usize,
    ) -> Option<Vec<T>> {
        self.eat(b'[')?;
        let mut out = Vec::new();
        if self.next_is(b']') {
            return Some(out);
        }
        out.reserve(room);
        loop {
            f(self, &mut out)?;
            if !self.more(b']')? {
                return Some(out);
            }
        }
    }

    /// `"on"`, `"off"` or `"any"`.
    fn hotplug(&mut self) -> Option<Hotplug> {
        self.hotplug_here()
    }

    /// [`Reader::hotplug`], inlined (for every device): told apart by the word's first
    /// four bytes.
    #[inline(always)]
    fn hotplug_here(&mut self) -> Option<Hotplug> {
        self.ws();
        let rest = &self.s.as_bytes()[self.i..];
        let (h, n) = match rest.first_chunk::<4>()? {
            b"\"on\"" => (Hotplug::On, 4),
            b"\"off" if rest.get(4) == Some(&b'"') => (Hotplug::Off, 5),
            b"\"any" if rest.get(4) == Some(&b'"') => (Hotplug::Any, 5),
            _ => return None,
        };
        self.i += n;
        Some(h)
    }

    /// An object of the fields spelled `keys` (with their quotes), field `field[n]` spelled
    /// `keys[n]`: `member` reads the value of a field by number. A key not among them, or
    /// a field given twice, is for serde.
    #[inline(always)]
    fn fields(
        &mut self,
        keys: &[&[u8]],
        field: impl Fn(usize) -> usize,
        mut member: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<u32> {
        let mut seen = 0u32;
        self.object(keys, |r, n| {
            let n = field(n);
            if seen & (1 << n) != 0 {
                return None;
            }
            seen |= 1 << n;
            member(r, n)
        })?;
        Some(seen)
    }

    fn owned(&mut self) -> Option<Text> {
        self.str().map(text)
    }

    fn u32(&mut self) -> Option<u32> {
        self.uint(u32::MAX)
    }

    fn request(&mut self) -> Option<Request> {
        let mut r = Request {
            name: None,
            machine: Text::const_new(""),
            firmware: Firmware::default(),
            policy: Policy::default(),
            devices: Vec::new(),
            controllers: Vec::new(),
            root_hotplug: None,
        };
        const KEYS: &[&[u8]] = &[
            b"\"name\"",
            b"\"machine\"",
            b"\"firmware\"",
            b"\"policy\"",
            b"\"devices\"",
            b"\"controllers\"",
            b"\"root_hotplug\"",
        ];
        let seen = self.fields(
            KEYS,
            |n| n,
            |p, n| {
                match n {
                    0 => r.name = p.opt(Self::owned)?,
                    1 => r.machine = p.owned()?,
                    2 => r.firmware = Firmware::parse(p.str()?)?,
                    3 => r.policy = p.policy()?,
                    4 => {
                        // Room for as many devices as objects follow, at most (no regrowing).
                        let rest = &p.s.as_bytes()[p.i..];
                        let most = memchr::memchr_iter(b'{', rest).count();
                        r.devices = p.array_into(Self::device, most.min(super::MAX_DEVICES + 1))?;
                    }
                    5 => r.controllers = p.array(Self::controller, 0)?,
                    _ => r.root_hotplug = p.opt(Self::bool)?,
                }
                Some(())
            },
        )?;
        if seen & 2 == 0 {
            r.machine = super::default_machine();
        }
        Some(r)
    }

    fn policy(&mut self) -> Option<Policy> {
        let mut p = Policy::default();
        const KEYS: &[&[u8]] = &[
            b"\"default_hotplug\"",
            b"\"spare_ports\"",
            b"\"hotplug_off\"",
            b"\"pack_integrated\"",
        ];
        self.fields(
            KEYS,
            |n| n,
            |r, n| {
                match n {
                    0 => p.default_hotplug = r.hotplug()?,
                    1 => p.spare_ports = r.u32()?,
                    2 => p.hotplug_off = OffStrategy::parse(r.str()?)?,
                    _ => p.pack_integrated = r.bool()?,
                }
                Some(())
            },
        )?;
        Some(p)
    }

    fn address(&mut self) -> Option<Address> {
        let (mut bus, mut slot, mut function) = (None, None, 0);
        const KEYS: &[&[u8]] = &[b"\"bus\"", b"\"slot\"", b"\"function\""];
        self.fields(
            KEYS,
            |n| n,
            |r, n| {
                match n {
                    0 => bus = Some(r.owned()?),
                    1 => slot = Some(r.u8()?),
                    _ => function = r.u8()?,
                }
                Some(())
            },
        )?;
        Some(Address {
            bus: bus?,
            slot: slot?,
            function,
        })
    }

    fn bus_kind(&mut self) -> Option<BusKind> {
        if self.lit(b"\"pcie\"") {
            Some(BusKind::Pcie)
        } else if self.lit(b"\"pci\"") {
            Some(BusKind::Pci)
        } else {
            None
        }
    }

    /// A device, pushed to `out`: as serde writes one ([`Reader::written_device`]), else
    /// any way ([`Reader::any_device`]), read again from the same place.
    fn device(&mut self, out: &mut Vec<DeviceRequest>) -> Option<()> {
        let start = self.i;
        if self.written_device(out).is_some() {
            return Some(());
        }
        self.i = start;
        out.push(self.any_device()?);
        Some(())
    }

    /// A device as serde writes one, which is how most requests come: `id` and `model`,
    /// then the optional fields present in the order [`DeviceRequest`] declares them, none
    /// `null`, no white space between a field and the next key, nor before the id's and the
    /// model's strings. Read without looking keys up, and pushed to `out` (not returned and
    /// moved again); `None` (nothing pushed) for any other text (the caller reads it again
    /// with [`Reader::any_device`], which reads these the same way).
    #[inline(always)]
    fn written_device(&mut self, out: &mut Vec<DeviceRequest>) -> Option<()> {
        self.ws();
        if !self.tag(b"{\"id\":\"") {
            return None;
        }
        let id = text(self.str_body()?);
        if !self.tag(b",\"model\":\"") {
            return None;
        }
        let model = text(self.str_body()?);
        // Built in its place in `out` and filled there (taken back out if the text is not as
        // serde writes it): the struct is not copied from the stack.
        out.push(DeviceRequest {
            id,
            model,
            hotplug: None,
            group: None,
            numa_node: None,
            bus_kind: None,
            address: None,
        });
        if self.written_device_rest(out.last_mut()?).is_none() {
            out.pop();
            return None;
        }
        Some(())
    }

    /// The fields of [`Reader::written_device`] after `model`, into `d`.
    #[inline(always)]
    fn written_device_rest(&mut self, d: &mut DeviceRequest) -> Option<()> {
        if self.tag(b",\"hotplug\":") {
            d.hotplug = Some(self.hotplug_here()?);
        }
        // Most devices end here: one test instead of four for the fields not given.
        if self.tag(b"}") {
            return Some(());
        }
        if self.tag(b",\"group\":") {
            d.group = Some(self.owned()?);
        }
        if self.tag(b",\"numa_node\":") {
            d.numa_node = Some(self.u32()?);
        }
        if self.tag(b",\"bus_kind\":") {
            d.bus_kind = Some(self.bus_kind()?);
        }
        if self.tag(b",\"address\":") {
            d.address = Some(self.address()?);
        }
        self.tag(b"}").then_some(())
    }

    /// A device object with its fields in any order, each at most once.
    fn any_device(&mut self) -> Option<DeviceRequest> {
        let (mut id, mut model) = (None, None);
        let (mut hotplug, mut group, mut numa_node, mut bus_kind, mut address) =
            (None, None, None, None, None);
        const KEYS: &[&[u8]] = &[
            b"\"id\"",
            b"\"model\"",
            b"\"hotplug\"",
            b"\"group\"",
            b"\"numa_node\"",
            b"\"bus_kind\"",
            b"\"address\"",
        ];
        self.fields(
            KEYS,
            |n| n,
            |r, n| {
                match n {
                    0 => id = Some(r.owned()?),
                    1 => model = Some(r.owned()?),
                    2 => hotplug = r.opt(Self::hotplug)?,
                    3 => group = r.opt(Self::owned)?,
                    4 => numa_node = r.opt(Self::u32)?,
                    5 => bus_kind = r.opt(Self::bus_kind)?,
                    _ => address = r.opt(Self::address)?,
                }
                Some(())
            },
        )?;
        Some(DeviceRequest {
            id: id?,
            model: model?,
            hotplug,
            group,
            numa_node,
            bus_kind,
            address,
        })
    }

    fn controller(&mut self) -> Option<ControllerRequest> {
        let (mut id, mut model, mut address) = (None, None, None);
        let (mut hotplug, mut chassis, mut port, mut bus_nr, mut numa_node, mut io_reserve) =
            (None, None, None, None, None, None);
        // `io-reserve` and its alias `io_reserve` are one field.
        const KEYS: &[&[u8]] = &[
            b"\"id\"",
            b"\"model\"",
            b"\"hotplug\"",
            b"\"address\"",
            b"\"chassis\"",
            b"\"port\"",
            b"\"bus_nr\"",
            b"\"numa_node\"",
            b"\"io-reserve\"",
            b"\"io_reserve\"",
        ];
        self.fields(
            KEYS,
            |n| n.min(8),
            |r, n| {
                match n {
                    0 => id = Some(r.owned()?),
                    1 => model = Some(r.owned()?),
                    2 => hotplug = r.opt(Self::bool)?,
                    3 => address = Some(r.address()?),
                    4 => chassis = r.opt(Self::u8)?,
                    5 => port = r.opt(Self::u8)?,
                    6 => bus_nr = r.opt(Self::u8)?,
                    7 => numa_node = r.opt(Self::u32)?,
                    _ => io_reserve = r.opt(Self::u32)?,
                }
                Some(())
            },
        )?;
        Some(ControllerRequest {
            id: id?,
            model: model?,
            hotplug,
            address: address?,
            chassis,
            port,
            bus_nr,
            numa_node,
            io_reserve,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts serde reads, and texts it refuses for many different reasons.
    const SAMPLES: &[&str] = &[
        r#"{"name":"web-01","machine":"q35","firmware":"uefi","policy":{"default_hotplug":"any","spare_ports":3,"hotplug_off":"auto","pack_integrated":true},"devices":[{"id":"net0","model":"virtio-net-pci","hotplug":"off"},{"id":"gpu0","model":"vfio-pci","group":"gpu0","numa_node":1},{"id":"legacy","model":"my-card","bus_kind":"pci"},{"id":"vga","model":"VGA","address":{"bus":"pcie.0","slot":1,"function":0}}],"controllers":[{"id":"rp1","model":"pcie-root-port","hotplug":false,"address":{"bus":"pcie.0","slot":2,"function":0},"chassis":1,"port":16,"io-reserve":0},{"id":"x","model":"pxb-pcie","address":{"bus":"pcie.0","slot":3},"bus_nr":10,"numa_node":1,"io_reserve":4}],"root_hotplug":null}"#,
        " { \"machine\" : \"pc\" ,\n\t\"root_hotplug\" : false , \"devices\" : [ { \"id\" : \"n\" , \"model\" : \"e1000\" , \"hotplug\" : null , \"group\" : null , \"numa_node\" : null , \"bus_kind\" : null , \"address\" : null } ] }\r\n",
        r#"{"devices":[{"id":"a","model":"e1000","hotplug":"on","group":"g","numa_node":1,"bus_kind":"pci","address":{"bus":"pcie.0","slot":3,"function":0}},{"id":"b","model":"nvme","hotplug":"any","address":{"bus":"x","slot":0}},{"id":"c","model":"m","numa_node":0},{"id":"d","model":"m","group":"g","bus_kind":"pcie"}]}"#,
        r#"{}"#,
        r#"{"devices":[],"controllers":[],"policy":{}}"#,
        r#"{"devices":[{"id":"a","model":"e1000","hotplug":null,"group":"g"}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000","group":"g","hotplug":"on"}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000","group":"g","group":"h"}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000","numa_node":1,"numa_node":1}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000","address":{"bus":"b","slot":1},"hotplug":"off"}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000","hotplug":"off" ,"group":"g"}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000","x":1}]}"#,
        r#"{"name":null,"devices":[{"id":"a","model":"e1000","numa_node":4294967295}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000","numa_node":4294967296}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000","address":{"bus":"pcie.0","slot":255}}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000","address":{"bus":"pcie.0","slot":256}}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000","address":{"bus":"pcie.0","slot":-0}}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000","address":{"bus":"pcie.0","slot":1.0}}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000","address":{"bus":"pcie.0","slot":1e0}}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000","address":{"bus":"pcie.0","slot":01}}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000","address":{"slot":1}}]}"#,
        r#"{"devices":[{"id":"a\u0062","model":"e\\1000"}]}"#,
        r#"{"devices":[{"id":"é","model":"e1000"}]}"#,
        r#"{"devices":[{"\u0069d":"a","model":"e1000"}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000","id":"b"}]}"#,
        r#"{"controllers":[{"id":"c","model":"m","address":{"bus":"b","slot":1},"io-reserve":1,"io_reserve":2}]}"#,
        r#"{"devices":[{"id":"a"}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000",}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000"},]}"#,
        r#"{"devices":[{"id":"a","model":"e1000","hotplug":"sometimes"}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000","hotplug":{"on":null}}]}"#,
        r#"{"devices":[{"id":"a","model":"e1000","bus_kind":"PCI"}]}"#,
        r#"{"policy":null}"#,
        r#"{"machine":null}"#,
        r#"{"policy":{"spare_ports":true}}"#,
        r#"{"policy":{"pack_integrated":1}}"#,
        r#"{"policy":{"x":1}}"#,
        r#"{"policy":{"hotplug_off":"port","hotplug_off":"port"}}"#,
        r#"{"root_hotplug":truex}"#,
        r#"{"root_hotplug":nul}"#,
        r#"{"devices":[{"id":"a","model":"e1000"}]} x"#,
        r#"{"devices":[{"id":"a","model":"e1000"}]}{}"#,
        r#"[null,"q35"]"#,
        r#"{"devices":[["a","e1000"]]}"#,
        "{\"name\":\"a\tb\"}",
        r#"{"name":"a"#,
        "",
        "null",
    ];

    /// Whether the quick reader agrees with serde: the same request, or it leaves the text
    /// to serde.
    fn agrees(text: &str) -> bool {
        match parse(text) {
            None => true,
            Some(r) => serde_json::from_str::<Request>(text).ok() == Some(r),
        }
    }

    #[test]
    fn reads_what_serde_reads() {
        let mut read = 0;
        for t in SAMPLES {
            assert!(agrees(t), "{t}");
            read += usize::from(parse(t).is_some());
        }
        // The common forms are read quickly.
        assert!(parse(SAMPLES[0]).is_some() && parse(SAMPLES[1]).is_some());
        assert!(read >= 10, "{read}");
    }

    #[test]
    fn agrees_with_serde_on_mangled_texts() {
        // Deterministic random edits of the samples: each text is either read as serde
        // reads it or left to serde.
        const PIECES: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"",
            "\\",
            " ",
            "null",
            "true",
            "false",
            "0",
            "1",
            "7",
            "-",
            ".",
            "e",
            "\"id\"",
            "\"model\"",
            "\"slot\"",
            "\"on\"",
            "\"pci\"",
            "\u{e9}",
            "\t",
            "99999999999",
            "\"io_reserve\"",
            "\"hotplug\"",
            "\"group\"",
            "\"numa_node\"",
            "\"address\"",
            "\"off\"",
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let mut read = 0;
        for _ in 0..30_000 {
            let mut t = SAMPLES[next(7)].to_string();
            for _ in 0..1 + next(3) {
                let at = (0..=t.len())
                    .filter(|&i| t.is_char_boundary(i))
                    .nth(next(t.len() + 1))
                    .unwrap_or(t.len());
                let end = (at..=t.len())
                    .filter(|&i| t.is_char_boundary(i))
                    .nth(next(4))
                    .unwrap_or(at);
                let piece = if next(3) == 0 {
                    ""
                } else {
                    PIECES[next(PIECES.len())]
                };
                t.replace_range(at..end, piece);
            }
            assert!(agrees(&t), "{t}");
            read += usize::from(parse(&t).is_some());
        }
        assert!(read > 1_000, "{read}");
    }
}
