//! The configuration and the policy document read by hand from a parsed `serde_json::Value`,
//! with serde's error messages (`missing field`, `unknown field … expected one of`, `invalid
//! type: …, expected …`) and the path of the value at fault.
//!
//! Why by hand: serde's derived `Deserialize` instantiated every struct's visitor for each
//! reader it met (serde_json's slice reader, `Value`), ~140 KB of the filter module for code
//! that runs once per configuration. Parsing once into a `Value` and reading it here is one
//! copy of the parser and a few small functions per type.

use std::fmt::{self, Write as _};

use serde_json::{Map, Value};

/// One step from a document's root to a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// Where a value being read is: the root's label (empty for a document, `rules[2] "r"` for a
/// policy's rule) and the keys and indices from there. Borrowed, built on the stack as the
/// reader descends; only an error copies it.
#[derive(Clone, Copy)]
pub enum Path<'a> {
    Root(&'a str),
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    /// The path of the member `key` of the object here.
    pub fn key<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path::Key(self, key)
    }

    /// The path of the element `index` of the array here.
    pub fn index(&self, index: usize) -> Path<'_> {
        Path::Index(self, index)
    }

    /// An error about the value here.
    #[inline(never)]
    pub fn error(&self, message: String) -> ReadError {
        let mut steps = Vec::new();
        let mut at = *self;
        let root = loop {
            match at {
                Path::Root(label) => break label,
                Path::Key(parent, key) => {
                    steps.push(Step::Key(key.to_string()));
                    at = *parent;
                }
                Path::Index(parent, index) => {
                    steps.push(Step::Index(index));
                    at = *parent;
                }
            }
        };
        steps.reverse();
        ReadError {
            root: root.to_string(),
            steps,
            message,
        }
    }
}

/// What is wrong with a document being read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    /// The label of the root the steps start from (empty for a whole document).
    pub root: String,
    pub steps: Vec<Step>,
    pub message: String,
}

impl ReadError {
    /// The path as errors name it: `audit.splunk_hec.token`, `rules[1] "r".match.phase`.
    pub fn at(&self) -> String {
        let mut at = self.root.clone();
        for step in &self.steps {
            match step {
                Step::Key(key) => {
                    if !at.is_empty() {
                        at.push('.');
                    }
                    at.push_str(key);
                }
                Step::Index(i) => {
                    let _ = write!(at, "[{i}]");
                }
            }
        }
        at
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at();
        if at.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{at}: {}", self.message)
        }
    }
}

impl std::error::Error for ReadError {}

/// `Deserialize` for a type read by hand: through a `Value`, for tests and tools that build
/// one with serde (`serde_json::from_value`). The filter calls the readers directly.
#[macro_export]
#[doc(hidden)]
macro_rules! deserialize_by_hand {
    ($ty:ty) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                let value = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
                <$ty>::read(value, $crate::config::read::Path::Root(""))
                    .map_err(<D::Error as serde::de::Error>::custom)
            }
        }
    };
}

/// How serde names a JSON value that is not what was expected.
fn unexpected(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean `{b}`"),
        // serde's `Unexpected::Float`: the number as `Display` writes it, `.0` added when
        // it has no decimal point.
        Value::Number(n) if n.is_f64() => {
            let text = float_text(n.as_f64().unwrap_or(0.0));
            let point = if text.contains('.') { "" } else { ".0" };
            format!("floating point `{text}{point}`")
        }
        Value::Number(n) => format!("integer `{n}`"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "sequence".into(),
        Value::Object(_) => "map".into(),
    }
}

/// An `f64` as core's `Display` writes it (shortest round-trip digits, never an exponent:
/// `150`, `0.0001`, `-0`; where the exact value is halfway between two shortest candidates the
/// last digit may round the other way), from serde_json's float writer instead: core's float `Display` and
/// its `flt2dec` are ~19 KB of the filter module, reached only by configuration errors.
pub fn float_text(f: f64) -> String {
    let Some(number) = serde_json::Number::from_f64(f) else {
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    };
    let text = number.to_string();
    let (negative, text) = match text.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, text.as_str()),
    };
    let (mantissa, exp) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.trim_start_matches('+').parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The significant digits, and `point`: the value is 0.DIGITS × 10^point.
    let all: String = int.chars().chain(frac.chars()).collect();
    let lead = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_matches('0');
    let mut out = String::from(if negative { "-" } else { "" });
    if digits.is_empty() {
        out.push('0');
        return out;
    }
    let point = int.len() as i32 - lead as i32 + exp;
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
        out.push_str(digits);
    } else if let Some((whole, fraction)) = digits.split_at_checked(point as usize) {
        out.push_str(whole);
        if !fraction.is_empty() {
            out.push('.');
            out.push_str(fraction);
        }
    } else {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', point as usize - digits.len()));
    }
    out
}

/// `invalid type: integer `1`, expected a string`.
#[inline(never)]
pub fn invalid_type(value: &Value, expected: &str, path: Path<'_>) -> ReadError {
    path.error(format!(
        "invalid type: {}, expected {expected}",
        unexpected(value)
    ))
}

/// serde's list of what was expected: `` `a` ``, `` `a` or `b` ``, `` one of `a`, `b`, `c` ``.
fn one_of(names: &[&str]) -> String {
    match names {
        [] => "nothing".into(),
        [one] => format!("`{one}`"),
        [a, b] => format!("`{a}` or `{b}`"),
        _ => {
            let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            format!("one of {}", quoted.join(", "))
        }
    }
}

/// The members of an object being read: each is taken once; any other key is an error
/// (serde's `deny_unknown_fields`, which every configured object has).
pub struct Fields<'p> {
    map: Map<String, Value>,
    path: Path<'p>,
}

impl<'p> Fields<'p> {
    /// `value` as an object whose keys are all in `known`; `what` names it in type errors
    /// (`struct AuditConfig`).
    #[inline(never)]
    pub fn new(
        value: Value,
        path: Path<'p>,
        what: &str,
        known: &[&str],
    ) -> Result<Fields<'p>, ReadError> {
        let map = match value {
            Value::Object(map) => map,
            other => return Err(invalid_type(&other, what, path)),
        };
        if let Some(key) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(path
                .key(key)
                .error(format!("unknown field `{key}`, expected {}", one_of(known))));
        }
        Ok(Fields { map, path })
    }

    /// A member that must be there.
    pub fn req<T>(
        &mut self,
        key: &str,
        read: impl FnOnce(Value, Path<'_>) -> Result<T, ReadError>,
    ) -> Result<T, ReadError> {
        match self.map.remove(key) {
            Some(v) => read(v, self.path.key(key)),
            None => Err(self.missing(key)),
        }
    }

    /// An optional member: absent or `null` is `None`.
    pub fn opt<T>(
        &mut self,
        key: &str,
        read: impl FnOnce(Value, Path<'_>) -> Result<T, ReadError>,
    ) -> Result<Option<T>, ReadError> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => read(v, self.path.key(key)).map(Some),
        }
    }

    /// A member with a default when absent (`null` is a type error, as with serde).
    pub fn or<T>(
        &mut self,
        key: &str,
        read: impl FnOnce(Value, Path<'_>) -> Result<T, ReadError>,
        default: T,
    ) -> Result<T, ReadError> {
        match self.map.remove(key) {
            Some(v) => read(v, self.path.key(key)),
            None => Ok(default),
        }
    }

    #[inline(never)]
    fn missing(&self, key: &str) -> ReadError {
        self.path.error(format!("missing field `{key}`"))
    }
}

/// A string.
pub fn string(v: Value, path: Path<'_>) -> Result<String, ReadError> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(invalid_type(&other, "a string", path)),
    }
}

/// `true` or `false`.
pub fn boolean(v: Value, path: Path<'_>) -> Result<bool, ReadError> {
    match v {
        Value::Bool(b) => Ok(b),
        other => Err(invalid_type(&other, "a boolean", path)),
    }
}

/// A non-negative integer of at most `max`; `name` is the Rust type serde would name.
#[inline(never)]
fn unsigned(v: &Value, path: Path<'_>, max: u64, name: &str) -> Result<u64, ReadError> {
    match v {
        Value::Number(n) if n.is_u64() || n.is_i64() => match n.as_u64() {
            Some(x) if x <= max => Ok(x),
            _ => Err(path.error(format!("invalid value: integer `{n}`, expected {name}"))),
        },
        other => Err(invalid_type(other, name, path)),
    }
}

/// A `u64`.
pub fn u64(v: Value, path: Path<'_>) -> Result<u64, ReadError> {
    unsigned(&v, path, u64::MAX, "u64")
}

/// A `usize` (32 bits in the filter).
pub fn usize(v: Value, path: Path<'_>) -> Result<usize, ReadError> {
    let max = u64::try_from(usize::MAX).unwrap_or(u64::MAX);
    unsigned(&v, path, max, "usize").map(|x| usize::try_from(x).unwrap_or(usize::MAX))
}

/// A `u16`.
pub fn u16(v: Value, path: Path<'_>) -> Result<u16, ReadError> {
    unsigned(&v, path, u64::from(u16::MAX), "u16").map(|x| u16::try_from(x).unwrap_or(u16::MAX))
}

/// Any number, as `f64`.
pub fn f64(v: Value, path: Path<'_>) -> Result<f64, ReadError> {
    match v.as_f64() {
        Some(x) => Ok(x),
        None => Err(invalid_type(&v, "f64", path)),
    }
}

/// An array, each element read by `read`.
pub fn array<T>(
    v: Value,
    path: Path<'_>,
    read: impl Fn(Value, Path<'_>) -> Result<T, ReadError>,
) -> Result<Vec<T>, ReadError> {
    match v {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| read(item, path.index(i)))
            .collect(),
        other => Err(invalid_type(&other, "a sequence", path)),
    }
}

/// An array of strings.
pub fn strings(v: Value, path: Path<'_>) -> Result<Vec<String>, ReadError> {
    array(v, path, string)
}

/// A unit variant written as its name: the index of `v` in `names`.
#[inline(never)]
pub fn variant(v: Value, path: Path<'_>, names: &[&str]) -> Result<usize, ReadError> {
    match &v {
        Value::String(s) => names.iter().position(|n| n == s).ok_or_else(|| {
            path.error(format!("unknown variant `{s}`, expected {}", one_of(names)))
        }),
        other => Err(invalid_type(other, &one_of(names), path)),
    }
}

/// An externally tagged variant with content (`{"basic": {...}}`): its name's index in
/// `names`, the content and the content's key.
#[inline(never)]
pub fn tagged(
    v: Value,
    path: Path<'_>,
    names: &'static [&'static str],
) -> Result<(usize, Value, &'static str), ReadError> {
    let expected = || format!("an object with one key, {}", one_of(names));
    let mut map = match v {
        Value::Object(map) if map.len() == 1 => map,
        other => return Err(invalid_type(&other, &expected(), path)),
    };
    let Some((key, content)) = map.iter_mut().next().map(|(k, c)| (k.clone(), c.take())) else {
        return Err(path.error(expected()));
    };
    match names.iter().position(|n| *n == key) {
        Some(i) => Ok((i, content, names.get(i).copied().unwrap_or_default())),
        None => Err(path.key(&key).error(format!(
            "unknown variant `{key}`, expected {}",
            one_of(names)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[derive(Debug, PartialEq)]
    struct Probe {
        name: String,
        n: u16,
        tags: Vec<String>,
        on: bool,
        limit: Option<u64>,
    }

    impl Probe {
        fn read(v: Value, path: Path<'_>) -> Result<Probe, ReadError> {
            let mut f = Fields::new(
                v,
                path,
                "struct Probe",
                &["name", "n", "tags", "on", "limit"],
            )?;
            Ok(Probe {
                name: f.req("name", string)?,
                n: f.or("n", u16, 7)?,
                tags: f.or("tags", strings, Vec::new())?,
                on: f.or("on", boolean, true)?,
                limit: f.opt("limit", u64)?,
            })
        }
    }

    fn read(v: Value) -> Result<Probe, String> {
        let root = Path::Root("");
        let list = root.key("list");
        Probe::read(v, list.index(2)).map_err(|e| e.to_string())
    }

    /// The messages serde's derive gave for the same mistakes, with the path before them.
    #[test]
    fn reads_with_serde_messages_and_paths() {
        assert_eq!(
            read(json!({"name": "a", "limit": null})).unwrap(),
            Probe {
                name: "a".into(),
                n: 7,
                tags: vec![],
                on: true,
                limit: None
            }
        );
        for (doc, want) in [
            (json!({}), "list[2]: missing field `name`"),
            (
                json!({"name": "a", "colour": 1}),
                "list[2].colour: unknown field `colour`, expected one of `name`, `n`, `tags`, `on`, `limit`",
            ),
            (json!(3), "list[2]: invalid type: integer `3`, expected struct Probe"),
            (json!({"name": 1}), "list[2].name: invalid type: integer `1`, expected a string"),
            (json!({"name": "a", "n": 70000}), "list[2].n: invalid value: integer `70000`, expected u16"),
            (json!({"name": "a", "n": -1}), "list[2].n: invalid value: integer `-1`, expected u16"),
            (json!({"name": "a", "n": 1.5}), "list[2].n: invalid type: floating point `1.5`, expected u16"),
            (json!({"name": "a", "n": null}), "list[2].n: invalid type: null, expected u16"),
            (json!({"name": "a", "tags": "x"}), "list[2].tags: invalid type: string \"x\", expected a sequence"),
            (json!({"name": "a", "tags": ["x", 2]}), "list[2].tags[1]: invalid type: integer `2`, expected a string"),
            (json!({"name": "a", "on": "yes"}), "list[2].on: invalid type: string \"yes\", expected a boolean"),
            (json!({"name": "a", "limit": {}}), "list[2].limit: invalid type: map, expected u64"),
            (json!({"name": [], "limit": {}}), "list[2].name: invalid type: sequence, expected a string"),
        ] {
            assert_eq!(read(doc.clone()).unwrap_err(), want, "{doc}");
        }
    }

    #[test]
    fn variants_by_name_and_by_tag() {
        let root = Path::Root("");
        let at = root.key("mode");
        assert_eq!(variant(json!("b"), at, &["a", "b"]), Ok(1));
        assert_eq!(
            variant(json!("c"), at, &["a", "b", "d"])
                .unwrap_err()
                .to_string(),
            "mode: unknown variant `c`, expected one of `a`, `b`, `d`"
        );
        assert_eq!(
            variant(json!(1), at, &["a", "b"]).unwrap_err().to_string(),
            "mode: invalid type: integer `1`, expected `a` or `b`"
        );
        let (i, content, name) =
            tagged(json!({"basic": {"u": 1}}), at, &["api_key", "basic"]).unwrap();
        assert_eq!((i, content, name), (1, json!({"u": 1}), "basic"));
        for (doc, want) in [
            (json!({"bearer": "x"}), "mode.bearer: unknown variant `bearer`, expected `api_key` or `basic`"),
            (json!("basic"), "mode: invalid type: string \"basic\", expected an object with one key, `api_key` or `basic`"),
            (json!({}), "mode: invalid type: map, expected an object with one key, `api_key` or `basic`"),
            (json!({"api_key": "k", "basic": {}}), "mode: invalid type: map, expected an object with one key, `api_key` or `basic`"),
        ] {
            assert_eq!(tagged(doc.clone(), at, &["api_key", "basic"]).unwrap_err().to_string(), want, "{doc}");
        }
    }

    /// `float_text` writes what core's float `Display` writes, for every kind of value, but for
    /// the last digit of exact ties.
    #[test]
    fn floats_as_display_writes_them() {
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            1.5,
            12.5,
            100.0,
            101.0,
            150.0,
            -0.25,
            1e-7,
            1e-5,
            123.456,
            1e15,
            1e16,
            1e17,
            1e21,
            1e22,
            1.5e300,
            2.5e-300,
            5e-324,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            0.1 + 0.2,
            1.0 / 3.0,
            9007199254740993.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        // A deterministic spread over every exponent (xorshift over the bit patterns).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            values.push(f64::from_bits(crate::test_rng::xorshift64(&mut x)));
        }
        let mut ties = 0;
        for v in values {
            let (ours, display) = (float_text(v), format!("{v}"));
            if ours == display {
                continue;
            }
            // Where the exact value is halfway between two shortest candidates, the writers
            // round the last digit differently (8 in these 20,000, all in 1e14..1e16): the
            // same length, one apart in the last digit, and both read back as the same value.
            let (a, b) = (ours.as_bytes(), display.as_bytes());
            let (last_a, last_b) = (a.last().copied(), b.last().copied());
            assert!(
                a.len() == b.len()
                    && a[..a.len() - 1] == b[..b.len() - 1]
                    && last_a.zip(last_b).is_some_and(|(x, y)| x.abs_diff(y) == 1)
                    && ours.parse::<f64>() == Ok(v),
                "{:#x}: {ours} against {display}",
                v.to_bits()
            );
            ties += 1;
        }
        assert!(ties < 20, "{ties} ties");
    }

    /// serde's `Unexpected::Float` wording (its own `Display`, the reference here): `.0` when
    /// the number has no decimal point.
    #[test]
    fn floats_in_type_errors_as_serde_wrote_them() {
        let root = Path::Root("");
        for f in [1.5, 2.0, -0.0, 1e300, -1e-7, 0.1 + 0.2, 123456789.0] {
            let want = format!(
                "invalid type: {}, expected u16",
                serde::de::Unexpected::Float(f)
            );
            assert_eq!(u16(json!(f), root).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn numbers_at_their_bounds() {
        let root = Path::Root("");
        assert_eq!(u64(json!(u64::MAX), root), Ok(u64::MAX));
        assert_eq!(u16(json!(65535), root), Ok(65535));
        assert_eq!(f64(json!(3), root), Ok(3.0));
        assert!(f64(json!("3"), root).is_err());
        assert_eq!(
            usize(json!(-3), root).unwrap_err().to_string(),
            "invalid value: integer `-3`, expected usize"
        );
    }
}
