//! Strict JSON for the bodies the gateway judges: serde_json's grammar, plus an object that
//! names a key twice is an error.
//!
//! Why strict: parsers disagree on repeated keys (serde_json and Python keep the last, others
//! the first, some both), and an allowed body goes upstream byte for byte. A body whose
//! reading here could differ from the upstream's is refused instead of judged
//! (`BODY_DUPLICATE_KEY`). Keys compare after unescaping, so `"a"` and `"\u0061"` are the same
//! key. Everything else serde_json refuses and a lenient upstream may accept (`NaN`,
//! `Infinity`, lone surrogates such as `"\ud800"`, a byte order mark, numbers beyond `f64`,
//! nesting deeper than 128, UTF-16 bodies) is a parse error, so it is refused too: the
//! gateway never judges a reading the upstream may not share.
//!
//! The value is built in the same single pass and at the same cost as `serde_json::Value`'s
//! own deserializer: one map insertion per key, whose result says whether the key was new.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why bytes are not strict JSON. The details carry positions, never the body's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// An object names the same key twice.
    DuplicateKey(String),
    /// Not JSON that serde_json accepts.
    Invalid(String),
}

/// Parses `bytes` as one JSON value (surrounding whitespace allowed), refusing repeated keys.
pub fn from_slice(bytes: &[u8]) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    StrictValue::deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v.0))
        .map_err(|e| {
            // serde_json's messages carry a position, never the input's text; ours is fixed.
            if e.classify() == serde_json::error::Category::Data {
                // The only data error building a `Value` can meet is ours: a repeated key.
                JsonError::DuplicateKey(e.to_string())
            } else {
                JsonError::Invalid(e.to_string())
            }
        })
}

/// A `Value` whose objects have distinct keys.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StrictValue, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // serde_json never yields a non-finite number from text; null as its own Value does.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut values = Map::new();
        while let Some((key, StrictValue(value))) = map.next_entry::<String, StrictValue>()? {
            if values.insert(key, value).is_some() {
                return Err(de::Error::custom("duplicate key in a JSON object"));
            }
        }
        Ok(Value::Object(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn dup(s: &str) -> bool {
        matches!(from_slice(s.as_bytes()), Err(JsonError::DuplicateKey(_)))
    }

    fn invalid(s: &[u8]) -> bool {
        matches!(from_slice(s), Err(JsonError::Invalid(_)))
    }

    #[test]
    fn same_value_as_serde_json() {
        let docs = [
            r#"{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi \u00e9 \ud83d\ude00"}],
               "n": 1, "t": -2, "p": 0.5, "big": 18446744073709551615, "huge": 1e300, "ok": true,
               "none": null, "nested": {"a": [[], {}, [1, [2, {"b": "c"}]]]}}"#,
            " [1, 2.0, -0, \"x\"] ",
            "\"s\"",
            "null",
            "12",
        ];
        for d in docs {
            let ours = from_slice(d.as_bytes()).unwrap();
            let theirs: Value = serde_json::from_str(d).unwrap();
            assert_eq!(ours, theirs, "{d}");
        }
    }

    #[test]
    fn repeated_keys_at_any_depth_are_refused() {
        assert!(dup(r#"{"messages": [], "messages": []}"#));
        assert!(dup(r#"{"model": "a", "x": 1, "model": "b"}"#));
        assert!(dup(
            r#"{"messages": [{"role": "user", "content": "a", "content": "b"}]}"#
        ));
        assert!(dup(r#"[1, {"a": {"b": {"c": 1, "c": 1}}}]"#));
        // Escapes are decoded before keys compare.
        assert!(dup(r#"{"model": "a", "mod\u0065l": "b"}"#));
        // The same key in sibling objects is fine, and so are keys differing in case.
        assert_eq!(
            from_slice(br#"[{"a": 1}, {"a": 2}, {"A": 3, "a": 4}]"#).unwrap(),
            json!([{"a": 1}, {"a": 2}, {"A": 3, "a": 4}])
        );
    }

    #[test]
    fn duplicate_detail_has_a_position_and_no_content() {
        let Err(JsonError::DuplicateKey(detail)) =
            from_slice(br#"{"sk-secret": 1, "sk-secret": 2}"#)
        else {
            panic!("expected a duplicate key error");
        };
        assert!(detail.contains("line 1 column"), "{detail}");
        assert!(!detail.contains("sk-secret"), "{detail}");
    }

    /// What lenient parsers (Python's json among them) accept and serde_json does not: all
    /// refused, none mistaken for a duplicate.
    #[test]
    fn lenient_forms_are_invalid() {
        for bad in [
            &br#"{"max_tokens": NaN}"#[..],
            br#"{"max_tokens": Infinity}"#,
            br#"{"max_tokens": -Infinity}"#,
            br#"{"max_tokens": 1e400}"#,
            br#"{"content": "\ud800"}"#,
            br#"{"content": "\udc00 x"}"#,
            b"\xef\xbb\xbf{\"a\": 1}",
            b"{\0\"\0a\0\"\0:\x001\0}\0",
            br#"{"a": 1,}"#,
            br#"{"a": 1} {"a": 2}"#,
            br#"{'a': 1}"#,
            br#"{"a": 1 /* c */}"#,
            b"",
        ] {
            assert!(invalid(bad), "{}", String::from_utf8_lossy(bad));
        }
        let deep = "[".repeat(129) + &"]".repeat(129);
        assert!(invalid(deep.as_bytes()));
        let ok = "[".repeat(127) + &"]".repeat(127);
        assert!(from_slice(ok.as_bytes()).is_ok());
    }
}
