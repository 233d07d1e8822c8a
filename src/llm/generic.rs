//! Unknown body shapes: every string value, depth-first in document order, with an explicit
//! stack (no recursion). Also used for free-form JSON inside known formats (tool inputs).

use serde_json::Value;

use super::{PathSeg, Role, Segment};

/// Containers nested deeper than this below the starting value are not entered.
///
/// serde_json refuses to parse JSON nested deeper than 128, so bodies read from the wire never
/// reach this; it only bounds values built in code (path lengths, and the stack).
pub const MAX_DEPTH: usize = 256;

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

/// Appends every non-empty string value in `root` (or `root` itself when it is a string) as a
/// segment of `role`, each path starting with `base`.
pub(crate) fn collect<'a>(
    root: &'a Value,
    role: Role,
    base: &[PathSeg],
    out: &mut Vec<Segment<'a>>,
) {
    if let Value::String(s) = root {
        if !s.is_empty() {
            out.push(Segment {
                role,
                text: s,
                path: base.to_vec(),
            });
        }
        return;
    }
    let Some(first) = Frame::of(root) else {
        return;
    };
    // Invariant: `path` is `base` plus one step per frame below the root frame.
    let mut path: Vec<PathSeg> = base.to_vec();
    let mut stack: Vec<Frame<'a>> = vec![first];
    while let Some(top) = stack.last_mut() {
        let next: Option<(PathSeg, &'a Value)> = match top {
            Frame::Arr(it) => loop {
                match it.next() {
                    None => break None,
                    Some((i, v)) if wanted(v) => break Some((PathSeg::Index(i), v)),
                    Some(_) => {}
                }
            },
            Frame::Obj(it) => loop {
                match it.next() {
                    None => break None,
                    Some((k, v)) if wanted(v) => break Some((PathSeg::Key(k.clone()), v)),
                    Some(_) => {}
                }
            },
        };
        let Some((seg, v)) = next else {
            stack.pop();
            if path.len() > base.len() {
                path.pop();
            }
            continue;
        };
        match v {
            Value::String(s) => {
                path.push(seg);
                out.push(Segment {
                    role,
                    text: s,
                    path: path.clone(),
                });
                path.pop();
            }
            _ => {
                if stack.len() <= MAX_DEPTH {
                    if let Some(frame) = Frame::of(v) {
                        path.push(seg);
                        stack.push(frame);
                    }
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
    use crate::llm::path::{get, idx, key};
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn all(v: &Value) -> Vec<Segment<'_>> {
        let mut out = Vec::new();
        collect(v, Role::Other, &[], &mut out);
        out
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
        let mut out = Vec::new();
        let base = [key("messages"), idx(2)];
        collect(&v, Role::Assistant, &base, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].path,
            vec![key("messages"), idx(2), key("n"), key("r")]
        );
        assert_eq!(out[1].path, vec![key("messages"), idx(2), key("q")]);
        assert!(out.iter().all(|s| s.role == Role::Assistant));
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

    #[test]
    fn deep_nesting_built_in_code_is_bounded_without_stack_overflow() {
        let mut v = json!("deep");
        for _ in 0..10_000 {
            v = Value::Array(vec![v]);
        }
        // Not json!: it would serialize `v` recursively.
        let mut obj = serde_json::Map::new();
        obj.insert("top".into(), json!("t"));
        obj.insert("deep".into(), v);
        let v = Value::Object(obj);
        let segs = all(&v);
        assert_eq!(
            segs.len(),
            1,
            "only the shallow string, the deep one is past MAX_DEPTH"
        );
        assert_eq!(segs[0].text, "t");
        // Let the deep value drop iteratively-ish: serde_json's Drop is recursive, so take it
        // apart by hand to keep this test itself from overflowing the stack.
        let mut v = v;
        let mut cur = v.get_mut("deep").map(Value::take);
        while let Some(Value::Array(mut a)) = cur {
            cur = a.pop();
        }
    }

    #[test]
    fn nesting_at_the_limit_is_still_read() {
        let mut v = json!("bottom");
        for _ in 0..MAX_DEPTH {
            v = Value::Array(vec![v]);
        }
        let segs = all(&v);
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].path.len(), MAX_DEPTH);
    }

    #[test]
    fn huge_arrays() {
        let v = Value::Array((0..50_000).map(|i| json!(format!("s{i}"))).collect());
        let segs = all(&v);
        assert_eq!(segs.len(), 50_000);
        assert_eq!(segs[49_999].text, "s49999");
        assert_eq!(segs[49_999].path, vec![idx(49_999)]);
    }
}
