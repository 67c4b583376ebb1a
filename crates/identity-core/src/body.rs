//! A JSON object read shallowly: each top-level value of the fields a reader knows as one
//! [`Raw`] scalar, strings borrowed from the input where they have no escapes, every other value
//! skipped without being built.
//!
//! Written here because a request body needs neither a `serde_json::Value` tree (a map node and
//! a string per key and value) nor a typed struct (which fails as a whole on one wrong type, when
//! the caller must be told about every bad field).

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// One top-level value of the object, as much of it as field checks need.
#[derive(Debug)]
pub(crate) enum Raw<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    /// A non-negative integer.
    Unsigned(u64),
    /// Any other number.
    Number,
    Null,
    /// An array or an object.
    Nested,
}

/// The members of a JSON object whose keys the reader knows. A later duplicate key wins, as in
/// `serde_json`. A handful of known fields make a vector with a linear search faster than any
/// hash map, and a body of a thousand unknown keys costs no memory.
#[derive(Debug, Default)]
pub(crate) struct RawObject<'a> {
    members: Vec<(&'static str, Raw<'a>)>,
}

impl<'a> RawObject<'a> {
    fn insert(&mut self, key: &'static str, value: Raw<'a>) {
        match self.members.iter_mut().find(|(k, _)| *k == key) {
            Some(member) => member.1 = value,
            None => self.members.push((key, value)),
        }
    }

    /// Takes the value of `key` out, if the object had it.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Raw<'a>> {
        let at = self.members.iter().position(|(k, _)| *k == key)?;
        Some(self.members.swap_remove(at).1)
    }
}

/// Why a body is not a JSON object.
pub(crate) enum NotAnObject {
    /// It is JSON, but an array, a string, a number, a boolean or null.
    OtherJson,
    /// It is not JSON at all.
    Syntax(serde_json::Error),
}

/// Reads `bytes` as a JSON object, keeping the members named in `known`.
pub(crate) fn object_from_slice<'a>(
    bytes: &'a [u8],
    known: &'static [&'static str],
) -> Result<RawObject<'a>, NotAnObject> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let top = TopSeed { known }
        .deserialize(&mut deserializer)
        .and_then(|top| deserializer.end().map(|()| top));
    match top {
        Ok(Top::Object(object)) => Ok(object),
        Ok(Top::Other) => Err(NotAnObject::OtherJson),
        Err(err) => Err(NotAnObject::Syntax(err)),
    }
}

/// Views a parsed `Value` the same way (strings borrowed from it).
pub(crate) fn object_from_value<'a>(
    value: &'a Value,
    known: &'static [&'static str],
) -> Option<RawObject<'a>> {
    let Value::Object(map) = value else {
        return None;
    };
    let mut object = RawObject::default();
    for (key, value) in map {
        let Some(key) = known.iter().find(|k| **k == key.as_str()) else {
            continue;
        };
        let raw = match value {
            Value::String(text) => Raw::Str(Cow::Borrowed(text)),
            Value::Bool(flag) => Raw::Bool(*flag),
            Value::Number(n) => n.as_u64().map_or(Raw::Number, Raw::Unsigned),
            Value::Null => Raw::Null,
            Value::Array(_) | Value::Object(_) => Raw::Nested,
        };
        object.insert(key, raw);
    }
    Some(object)
}

enum Top<'a> {
    Object(RawObject<'a>),
    Other,
}

struct TopSeed {
    known: &'static [&'static str],
}

impl<'de> DeserializeSeed<'de> for TopSeed {
    type Value = Top<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(TopVisitor { known: self.known })
    }
}

struct TopVisitor {
    known: &'static [&'static str],
}

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // Sized once: the object never holds more members than there are known fields.
        let mut object = RawObject {
            members: Vec::with_capacity(self.known.len()),
        };
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match self.known.iter().find(|k| **k == key.0.as_ref()) {
                Some(known) => object.insert(known, map.next_value::<Raw<'de>>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Top::Object(object))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Top::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Top::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Top::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Top::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Top::Other)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Top::Other)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Top::Other)
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
            fn visit_string<E>(self, key: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(key)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> serde::Deserialize<'de> for Raw<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = Raw<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Raw::Str(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Raw::Str(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(Raw::Str(Cow::Owned(text)))
            }
            fn visit_bool<E>(self, flag: bool) -> Result<Self::Value, E> {
                Ok(Raw::Bool(flag))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
                Ok(Raw::Unsigned(n))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
                Ok(u64::try_from(n).map_or(Raw::Number, Raw::Unsigned))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Raw::Number)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Raw::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Raw::Nested)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Raw::Nested)
            }
        }
        deserializer.deserialize_any(RawVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["a", "b", "c", "d", "e", "f", "g", "h", "i", "k", "x"];

    #[test]
    fn reads_the_known_members_and_borrows_plain_strings() {
        let body = br#"{"a":"plain","b":"esc\"aped","c":true,"d":7,"e":-1,"f":1.5,"g":null,"h":[1,{"x":2}],"i":{"y":[3]},"unknown":{"deep":[1]}}"#;
        let mut object = object_from_slice(body, KNOWN).ok().unwrap();
        assert!(matches!(
            object.remove("a"),
            Some(Raw::Str(Cow::Borrowed("plain")))
        ));
        assert!(matches!(object.remove("b"), Some(Raw::Str(Cow::Owned(s))) if s == "esc\"aped"));
        assert!(matches!(object.remove("c"), Some(Raw::Bool(true))));
        assert!(matches!(object.remove("d"), Some(Raw::Unsigned(7))));
        assert!(matches!(object.remove("e"), Some(Raw::Number)));
        assert!(matches!(object.remove("f"), Some(Raw::Number)));
        assert!(matches!(object.remove("g"), Some(Raw::Null)));
        assert!(matches!(object.remove("h"), Some(Raw::Nested)));
        assert!(matches!(object.remove("i"), Some(Raw::Nested)));
        assert!(object.remove("unknown").is_none());
        assert!(object.members.is_empty(), "unknown keys are not kept");
    }

    #[test]
    fn tells_other_json_from_no_json() {
        for body in [&b"[]"[..], b"\"s\"", b"1", b"true", b"null", b"[[{}]]"] {
            assert!(
                matches!(object_from_slice(body, KNOWN), Err(NotAnObject::OtherJson)),
                "{body:?}"
            );
        }
        for body in [
            &b"{"[..],
            b"",
            b"nope",
            b"{\"a\":}",
            b"{\"a\":1}x",
            b"{1:2}",
        ] {
            assert!(
                matches!(object_from_slice(body, KNOWN), Err(NotAnObject::Syntax(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_skipped_without_recursion() {
        // Skipped values are walked iteratively by serde_json: no stack to exhaust.
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(matches!(
            object_from_slice(deep.as_bytes(), KNOWN),
            Err(NotAnObject::OtherJson)
        ));
        let inside = format!("{{\"a\":\"u\",\"x\":{deep},\"other\":{deep}}}");
        let mut object = object_from_slice(inside.as_bytes(), KNOWN).ok().unwrap();
        assert!(matches!(object.remove("x"), Some(Raw::Nested)));
        let unbalanced = "[".repeat(100_000);
        assert!(matches!(
            object_from_slice(unbalanced.as_bytes(), KNOWN),
            Err(NotAnObject::Syntax(_))
        ));
    }

    #[test]
    fn a_later_duplicate_key_wins_as_with_serde_json() {
        let body = br#"{"k":"first","k":"second"}"#;
        let mut object = object_from_slice(body, KNOWN).ok().unwrap();
        assert!(matches!(object.remove("k"), Some(Raw::Str(s)) if s == "second"));
        let value: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(value["k"], "second");
        let mut viewed = object_from_value(&value, KNOWN).unwrap();
        assert!(matches!(viewed.remove("k"), Some(Raw::Str(s)) if s == "second"));
    }
}
