//! The guest name of a line that is no valid request, for its error line: what
//! `serde_json::Value` would make of the line (`name` of the object the line holds, when
//! that is a string; the last `name` when the key repeats), read without building the
//! value. Everything else in the line is parsed as `Value` parses it (numbers, escapes and
//! depth are checked the same way) and then dropped.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// The name as `Value` reads it: `text` is one JSON value, an object, whose `name` (the last
/// one) is a string. `None` otherwise, also when `text` is no JSON.
pub(super) fn name_of(text: &str) -> Option<String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let name = de
        .deserialize_any(Skim {
            top: true,
            keep: false,
        })
        .ok()?;
    de.end().ok()?;
    name
}

/// Any value, parsed and dropped, but for what it names: the line's value (`top`) yields the
/// value of its `name` key if it is an object; a `name`'s value (`keep`) yields itself if it
/// is a string.
#[derive(Clone, Copy)]
struct Skim {
    top: bool,
    keep: bool,
}

/// Neither the line's value nor a name.
const SKIP: Skim = Skim {
    top: false,
    keep: false,
};

/// A key: whether it is `name`.
struct IsName;

impl<'de> Visitor<'de> for Skim {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut name = None;
        while let Some(is_name) = m.next_key_seed(IsName)? {
            let keep = self.top && is_name;
            let v = m.next_value_seed(Skim { top: false, keep })?;
            if keep {
                name = v;
            }
        }
        Ok(name)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        while s.next_element_seed(SKIP)?.is_some() {}
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.keep.then(|| v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

impl<'de> DeserializeSeed<'de> for Skim {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> DeserializeSeed<'de> for IsName {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for IsName {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == "name")
    }
}

#[cfg(test)]
mod tests {
    use super::name_of;

    /// The name is what `serde_json::Value` reads, for lines of every sort.
    #[test]
    fn reads_the_name_as_a_value_does() {
        for text in [
            r#"{"name":"a","devices":5}"#,
            r#"{"devices":[1,{"name":"inner"}],"name":"b\"q\u00e9"}"#,
            r#"{"name":"a","name":"last"}"#,
            r#"{"name":"a","name":7}"#,
            r#"{"name":null}"#,
            r#"{"name":["x"]}"#,
            r#"{"name":"a","x":1e999}"#,
            r#"{"name":"a","x":"\q"}"#,
            r#"{"name":"a","x":"tab	in"}"#,
            r#"{"name":"a"} x"#,
            r#"{"name":"a""#,
            r#"["name","a"]"#,
            r#""name""#,
            "12",
            "null",
            "",
            r#"{"name":"a","deep":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
        ] {
            let want = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| Some(v.get("name")?.as_str()?.to_string()));
            assert_eq!(name_of(text), want, "{text}");
        }
    }
}
