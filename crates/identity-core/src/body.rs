//! A JSON object read shallowly: each top-level value as one [`Raw`] scalar, strings borrowed
//! from the input where they have no escapes, nested values skipped without being built.
//!
//! Written here because a request body needs neither a `serde_json::Value` tree (a map node and
//! a string per key and value) nor a typed struct (which fails as a whole on one wrong type, when
//! the caller must be told about every bad field).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
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

/// The top-level members of a JSON object; a later duplicate key wins, as in `serde_json`.
pub(crate) type RawObject<'a> = HashMap<Cow<'a, str>, Raw<'a>>;

/// Why a body is not a JSON object.
pub(crate) enum NotAnObject {
    /// It is JSON, but an array, a string, a number, a boolean or null.
    OtherJson,
    /// It is not JSON at all.
    Syntax(serde_json::Error),
}

/// Reads `bytes` as a JSON object.
pub(crate) fn object_from_slice(bytes: &[u8]) -> Result<RawObject<'_>, NotAnObject> {
    match serde_json::from_slice::<Top<'_>>(bytes) {
        Ok(Top::Object(object)) => Ok(object),
        Ok(Top::Other) => Err(NotAnObject::OtherJson),
        Err(err) => Err(NotAnObject::Syntax(err)),
    }
}

/// Views a parsed `Value` the same way (strings borrowed from it).
pub(crate) fn object_from_value(value: &Value) -> Option<RawObject<'_>> {
    let Value::Object(map) = value else {
        return None;
    };
    Some(
        map.iter()
            .map(|(key, value)| {
                let raw = match value {
                    Value::String(text) => Raw::Str(Cow::Borrowed(text)),
                    Value::Bool(flag) => Raw::Bool(*flag),
                    Value::Number(n) => n.as_u64().map_or(Raw::Number, Raw::Unsigned),
                    Value::Null => Raw::Null,
                    Value::Array(_) | Value::Object(_) => Raw::Nested,
                };
                (Cow::Borrowed(key.as_str()), raw)
            })
            .collect(),
    )
}

enum Top<'a> {
    Object(RawObject<'a>),
    Other,
}

impl<'de> serde::Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TopVisitor;
        impl<'de> Visitor<'de> for TopVisitor {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut object = HashMap::with_capacity(map.size_hint().unwrap_or(8).min(32));
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    object.insert(key.0, map.next_value::<Raw<'de>>()?);
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
        deserializer.deserialize_any(TopVisitor)
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

    #[test]
    fn reads_the_top_level_and_borrows_plain_strings() {
        let body = br#"{"a":"plain","b":"esc\"aped","c":true,"d":7,"e":-1,"f":1.5,"g":null,"h":[1,{"x":2}],"i":{"y":[3]},"a2":"x"}"#;
        let object = object_from_slice(body).ok().unwrap();
        assert!(matches!(object["a"], Raw::Str(Cow::Borrowed("plain"))));
        assert!(matches!(&object["b"], Raw::Str(Cow::Owned(s)) if s == "esc\"aped"));
        assert!(matches!(object["c"], Raw::Bool(true)));
        assert!(matches!(object["d"], Raw::Unsigned(7)));
        assert!(matches!(object["e"], Raw::Number));
        assert!(matches!(object["f"], Raw::Number));
        assert!(matches!(object["g"], Raw::Null));
        assert!(matches!(object["h"], Raw::Nested));
        assert!(matches!(object["i"], Raw::Nested));
    }

    #[test]
    fn tells_other_json_from_no_json() {
        for body in [&b"[]"[..], b"\"s\"", b"1", b"true", b"null", b"[[{}]]"] {
            assert!(
                matches!(object_from_slice(body), Err(NotAnObject::OtherJson)),
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
                matches!(object_from_slice(body), Err(NotAnObject::Syntax(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_skipped_without_recursion() {
        // Skipped values are walked iteratively by serde_json: no stack to exhaust.
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(matches!(
            object_from_slice(deep.as_bytes()),
            Err(NotAnObject::OtherJson)
        ));
        let inside = format!("{{\"userId\":\"u\",\"x\":{deep}}}");
        let object = object_from_slice(inside.as_bytes()).ok().unwrap();
        assert!(matches!(object["x"], Raw::Nested));
        let unbalanced = "[".repeat(100_000);
        assert!(matches!(
            object_from_slice(unbalanced.as_bytes()),
            Err(NotAnObject::Syntax(_))
        ));
    }

    #[test]
    fn a_later_duplicate_key_wins_as_with_serde_json() {
        let object = object_from_slice(br#"{"k":"first","k":"second"}"#)
            .ok()
            .unwrap();
        assert!(matches!(&object["k"], Raw::Str(s) if s == "second"));
        let value: Value = serde_json::from_slice(br#"{"k":"first","k":"second"}"#).unwrap();
        assert_eq!(value["k"], "second");
    }
}
