//! Unknown body shapes: every string value, depth-first in document order, with an explicit
//! stack (no recursion). Also used for free-form JSON inside known formats (tool inputs).

use serde_json::Value;

use super::path::{PathId, TooComplex, MAX_DEPTH};
use super::{Role, Texts};

enum Frame<'a> {
    Arr(std::iter::Enumerate<std::slice::Iter<'a, Value>>),
    Obj(serde_json::map::Iter<'a>),
}

impl<'a> Frame<'a> {
    fn of(v: &'a Value) -> Option<Frame<'a>> {
        match v {
            Value::Array(a) => Some(Frame::Arr(a.iter().enumerate())),
            Value::Object(m) => Some(Frame::Obj(m.iter())),
            _ => None,
        }
    }
}

/// A child of the container a frame reads.
enum Child<'a> {
    Index(usize),
    Key(&'a str),
}

/// Adds every non-empty string value in `root` (or `root` itself when it is a string) as a
/// text of `role`, below `base`. Each container entered is one node of the path tree, shared
/// by everything inside it. Containers nested more than [`MAX_DEPTH`] below `root` fail the
/// extraction ([`TooComplex::Depth`]) rather than go unread.
pub(crate) fn collect<'a>(root: &'a Value, role: Role, base: PathId, out: &mut Texts<'a>) {
    if let Value::String(s) = root {
        if !s.is_empty() {
            out.push(role, s, base);
        }
        return;
    }
    let Some(first) = Frame::of(root) else {
        return;
    };
    // Each frame with the path of the container it reads.
    let mut stack: Vec<(Frame<'a>, PathId)> = vec![(first, base)];
    while let Some((top, at)) = stack.last_mut() {
        let at = *at;
        let next: Option<(Child<'a>, &'a Value)> = match top {
            Frame::Arr(it) => it
                .find(|(_, v)| wanted(v))
                .map(|(i, v)| (Child::Index(i), v)),
            Frame::Obj(it) => it
                .find(|(_, v)| wanted(v))
                .map(|(k, v)| (Child::Key(k.as_str()), v)),
        };
        let Some((child, v)) = next else {
            stack.pop();
            continue;
        };
        if out.failed() {
            return;
        }
        if !matches!(v, Value::String(_)) && stack.len() >= MAX_DEPTH {
            return out.fail(TooComplex::Depth);
        }
        let path = match child {
            Child::Index(i) => out.index(at, i),
            Child::Key(k) => out.key(at, k),
        };
        match v {
            Value::String(s) => out.push(role, s, path),
            _ => {
                if let Some(frame) = Frame::of(v) {
                    stack.push((frame, path));
                }
            }
        }
    }
}

/// Non-empty strings, and containers that are not empty.
#[inline]
fn wanted(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::path::{get, idx, key, PathSeg};
    use crate::llm::testutil::segs;
    use crate::llm::{ApiFormat, Phase};
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn all(v: &Value) -> Vec<crate::llm::testutil::Seg<'_>> {
        segs(ApiFormat::Unknown, Phase::Request, v)
    }

    #[test]
    fn every_string_in_document_order_with_paths() {
        let v = json!({
            "a": "one",
            "b": [ "two", 3, null, true, {"c": "four", "d": []}, ["five", ["six"]] ],
            "e": {"f": {"g": "seven"}, "h": ""},
            "i": 1.5
        });
        let segs = all(&v);
        let texts: Vec<&str> = segs.iter().map(|s| s.text).collect();
        assert_eq!(texts, ["one", "two", "four", "five", "six", "seven"]);
        assert!(segs.iter().all(|s| s.role == Role::Other));
        assert_eq!(segs[2].path, vec![key("b"), idx(4), key("c")]);
        assert_eq!(segs[4].path, vec![key("b"), idx(5), idx(1), idx(0)]);
        assert_eq!(segs[5].path, vec![key("e"), key("f"), key("g")]);
        for s in &segs {
            assert_eq!(get(&v, &s.path).and_then(Value::as_str), Some(s.text));
        }
    }

    #[test]
    fn base_path_and_role() {
        let v = json!({"q": "x", "n": {"r": "y"}});
        let mut out = Texts::new();
        let base = out.at(PathId::ROOT, &[key("messages"), idx(2)]);
        collect(&v, Role::Assistant, base, &mut out);
        let out = out.finish().unwrap();
        assert_eq!(out.segments.len(), 2);
        assert_eq!(
            out.paths.steps(out.segments[0].path),
            vec![key("messages"), idx(2), key("n"), key("r")]
        );
        assert_eq!(
            out.paths.steps(out.segments[1].path),
            vec![key("messages"), idx(2), key("q")]
        );
        assert!(out.segments.iter().all(|s| s.role == Role::Assistant));
    }

    #[test]
    fn scalars_and_root_string() {
        assert!(all(&json!(null)).is_empty());
        assert!(all(&json!(42)).is_empty());
        assert!(all(&json!("")).is_empty());
        assert!(all(&json!([])).is_empty());
        let s = json!("alone");
        let segs = all(&s);
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].text, "alone");
        assert!(segs[0].path.is_empty());
    }

    /// `depth` arrays around `inner` (built iteratively; json! would recurse).
    fn nested(depth: usize, inner: Value) -> Value {
        let mut v = inner;
        for _ in 0..depth {
            v = Value::Array(vec![v]);
        }
        v
    }

    /// Takes a deep value apart by hand: serde_json's Drop is recursive.
    fn drop_deep(mut v: Value) {
        while let Value::Array(mut a) = v {
            match a.pop() {
                Some(inner) => v = inner,
                None => break,
            }
        }
    }

    #[test]
    fn nesting_past_the_limit_fails_instead_of_skipping_text() {
        let mut obj = serde_json::Map::new();
        obj.insert("top".into(), json!("t"));
        obj.insert("deep".into(), nested(10_000, json!("deep")));
        let mut v = Value::Object(obj);
        let got = crate::llm::extract(ApiFormat::Unknown, Phase::Request, &v);
        assert_eq!(got.unwrap_err(), TooComplex::Depth);
        // One level past the limit, without a stack overflow either way.
        let over = nested(MAX_DEPTH + 1, json!("x"));
        let got = crate::llm::extract(ApiFormat::Unknown, Phase::Request, &over);
        assert_eq!(got.unwrap_err(), TooComplex::Depth);
        drop_deep(over);
        drop_deep(v.get_mut("deep").map(Value::take).unwrap());
    }

    #[test]
    fn nesting_at_the_limit_is_still_read() {
        let v = nested(MAX_DEPTH, json!("bottom"));
        let segs = all(&v);
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].path.len(), MAX_DEPTH);
        assert!(segs[0].path.iter().all(|s| *s == PathSeg::Index(0)));
        drop_deep(v);
    }

    #[test]
    fn huge_arrays() {
        let v = Value::Array((0..50_000).map(|i| json!(format!("s{i}"))).collect());
        let segs = all(&v);
        assert_eq!(segs.len(), 50_000);
        assert_eq!(segs[49_999].text, "s49999");
        assert_eq!(segs[49_999].path, vec![idx(49_999)]);
    }

    #[test]
    fn deep_paths_are_shared_not_copied() {
        // Issue 11 item 6: 4,000 strings at depth 100 used to hold 400,000 path steps.
        let strings = Value::Array(vec![json!("a"); 4000]);
        let v = nested(99, strings);
        let texts = crate::llm::extract(ApiFormat::Unknown, Phase::Request, &v).unwrap();
        assert_eq!(texts.segments.len(), 4000);
        // One node per container, one per string.
        assert_eq!(texts.paths.len(), 99 + 4000);
        let last = texts.segments.last().unwrap();
        assert_eq!(texts.paths.steps(last.path).len(), 100);
        assert_eq!(texts.paths.get(&v, last.path), Some(&json!("a")));
        drop_deep(v);
    }
}
