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
///
/// UTF-8 bytes (every body that can parse) are checked once, whole, and read as text:
/// serde_json's byte reader checks each string on its own, ~30 calls per 1 KiB chat
/// exchange. Other bytes never parse; [`not_utf8`] finds the error the byte reader gives.
pub fn from_slice(bytes: &[u8]) -> Result<Value, JsonError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => strict(serde_json::Deserializer::from_str(text)),
        Err(e) => Err(not_utf8(bytes, e.valid_up_to())),
    }
}

/// The error of bytes whose first `valid` are UTF-8 and the next not, the same (message and
/// position) as the strict parse of all of them by serde_json's byte reader, which is not in
/// the module (a second copy of the parse, ~6 KB): that parse reads the UTF-8 prefix as the
/// text reader does, so a key repeated in it is the same error at the same place (a value
/// that ends at the bad byte ends the same at the prefix's end). Without one, the first error
/// is the one serde_json's own `Value` parse (already in the module) meets.
/// `tests::same_result_as_the_byte_reader` compares both over damaged bodies.
fn not_utf8(bytes: &[u8], valid: usize) -> JsonError {
    let prefix = bytes
        .get(..valid)
        .and_then(|p| std::str::from_utf8(p).ok())
        .unwrap_or_default();
    match strict(serde_json::Deserializer::from_str(prefix)) {
        Err(repeated @ JsonError::DuplicateKey(_)) => repeated,
        _ => match serde_json::from_slice::<Value>(bytes) {
            Err(e) => JsonError::Invalid(e.to_string()),
            // Not reached: bytes that are not UTF-8 are never JSON.
            Ok(_) => JsonError::Invalid("invalid unicode code point".to_string()),
        },
    }
}

fn strict<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
) -> Result<Value, JsonError> {
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

    /// Bytes with the text reader's path and the byte reader's (the only one before) give the
    /// same value or the same error, message and position included: generated bodies of every
    /// format, compact and pretty, then damaged (truncated, a byte changed, invalid UTF-8, a
    /// key repeated or escaped, lone surrogates, control bytes, deep nesting, long numbers).
    #[test]
    fn same_result_as_the_byte_reader() {
        use crate::llm::testutil::BodyGen;
        use crate::test_rng::Rng;
        let by_bytes = |b: &[u8]| strict(serde_json::Deserializer::from_slice(b));
        const INSERTS: &[&[u8]] = &[
            b"\xff",
            b"\xc3",
            b"\xe2\x82",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"\xc3\xa9",
            b"\xf0\x9f\x98\x80",
            b"\\ud800",
            b"\\udc00",
            b"\\ud83d\\ude00",
            b"\\u0000",
            b"\\",
            b"\"",
            b"\x01",
            b"\n",
            b"\t",
            b",",
            b":",
            b"{",
            b"}",
            b"[",
            b"]",
            b"1e400",
            b"-0.0e-5",
            b"18446744073709551616",
            b"NaN",
            b"null",
            b" ",
        ];
        let mut rng = Rng(0x5eed_0fb0_d1e5);
        let mut gen = BodyGen::new(17);
        let mut cases = 0usize;
        let mut errors = 0usize;
        for n in 0..3000 {
            let body = gen.body();
            let bytes = if n % 2 == 0 {
                serde_json::to_vec(&body).unwrap()
            } else {
                serde_json::to_vec_pretty(&body).unwrap()
            };
            let mut check = |b: &[u8]| {
                let new = from_slice(b);
                errors += usize::from(new.is_err());
                assert_eq!(new, by_bytes(b), "{}", String::from_utf8_lossy(b));
                cases += 1;
            };
            check(&bytes);
            // Truncated anywhere.
            let cut = rng.below(bytes.len() + 1);
            check(&bytes[..cut]);
            // A byte changed to any byte.
            let mut changed = bytes.clone();
            if let Some(b) = changed.get_mut(rng.below(bytes.len().max(1))) {
                *b = rng.next() as u8;
            }
            check(&changed);
            // Hostile pieces inserted at a random place, up to three.
            let mut damaged = bytes.clone();
            for _ in 0..=rng.below(3) {
                let at = rng.below(damaged.len() + 1);
                let piece = rng.pick(INSERTS);
                damaged.splice(at..at, piece.iter().copied());
            }
            check(&damaged);
            // The first key named again, escaped or not, with invalid UTF-8 after it or not.
            if let Some(start) = bytes.iter().position(|&b| b == b'"') {
                let end = bytes[start + 1..]
                    .iter()
                    .position(|&b| b == b'"')
                    .map_or(bytes.len(), |e| start + 2 + e);
                let key = bytes[start..end].to_vec();
                let mut twice = bytes.clone();
                let mut again = key.clone();
                again.extend_from_slice(b": 1, ");
                let at = (1..twice.len())
                    .find(|&i| twice[i - 1] == b'{')
                    .unwrap_or(0);
                twice.splice(at..at, again.iter().copied());
                check(&twice);
                if key.len() > 2 {
                    let mut escaped = twice.clone();
                    escaped.splice(at + 1..at + 2, b"\\u0061".iter().copied());
                    check(&escaped);
                }
                let tail = rng.below(twice.len() + 1);
                twice.splice(tail..tail, b"\xff".iter().copied());
                check(&twice);
            }
        }
        // Nesting at and past serde_json's limit, with bad bytes inside.
        for depth in [1, 64, 127, 128, 129, 300] {
            for inner in [
                &b"1"[..],
                b"\xff",
                b"\"\\ud800\"",
                b"{\"a\":1,\"a\":2}",
                b"",
            ] {
                let mut b = b"[".repeat(depth);
                b.extend_from_slice(inner);
                b.extend_from_slice(&b"]".repeat(depth));
                let new = from_slice(&b);
                assert_eq!(new, by_bytes(&b), "depth {depth}");
            }
        }
        // A repeated key whose value ends at the bad byte, before spaces and the bad byte, or
        // before the object's end; a whole value, then the bad byte.
        for b in [
            &b"{\"a\":1,\"a\":2\xff}"[..],
            b"{\"a\":1,\"a\":2  \n \xff}",
            b"{\"a\":1,\"a\":\"x\"\xff",
            b"{\"a\":1,\"a\":[true]}\xff",
            b"[{\"a\":1,\"a\":null},\xc3]",
            b"{\"a\":1}\xff",
            b"{\"a\":1} \xe2\x82",
            b"\xff",
            b"{\"\xff\":1,\"\xff\":1}",
            b"{\"a\":1,\"a\xff\":1}",
            b"{\"a\":12\xff,\"a\":1}",
        ] {
            assert_eq!(from_slice(b), by_bytes(b), "{}", String::from_utf8_lossy(b));
        }
        // A huge string and a huge number of keys.
        let mut big = b"{\"content\": \"".to_vec();
        big.extend(std::iter::repeat_n(b'x', 1 << 20));
        big.extend_from_slice(b"\"}");
        assert_eq!(from_slice(&big), by_bytes(&big));
        let many: String = (0..5000).map(|i| format!("\"k{i}\": {i},")).collect();
        let many = format!("{{{}\"k7\": 0}}", many);
        assert_eq!(from_slice(many.as_bytes()), by_bytes(many.as_bytes()));
        assert!(
            cases > 14_000 && errors > 4_000,
            "{cases} cases, {errors} errors"
        );
    }
}
