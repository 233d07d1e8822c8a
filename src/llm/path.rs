//! Paths from a body's root to one of its values: navigation, and the helpers the format
//! modules use to emit segments (paths are only built for strings that are emitted).

use serde_json::Value;

use super::{PathSeg, Role, Segment};

/// The value at `path`, if every step exists (keys in objects, indices in arrays).
pub fn get<'v>(root: &'v Value, path: &[PathSeg]) -> Option<&'v Value> {
    path.iter().try_fold(root, |v, seg| match seg {
        PathSeg::Key(k) => v.as_object()?.get(k),
        PathSeg::Index(i) => v.as_array()?.get(*i),
    })
}

/// The value at `path`, mutably, if every step exists.
pub fn get_mut<'v>(root: &'v mut Value, path: &[PathSeg]) -> Option<&'v mut Value> {
    path.iter().try_fold(root, |v, seg| match seg {
        PathSeg::Key(k) => v.as_object_mut()?.get_mut(k),
        PathSeg::Index(i) => v.as_array_mut()?.get_mut(*i),
    })
}

/// Replaces the string at `path`; false (body untouched) when the path does not lead to a string.
pub fn replace(root: &mut Value, path: &[PathSeg], text: String) -> bool {
    match get_mut(root, path) {
        Some(Value::String(s)) => {
            *s = text;
            true
        }
        _ => false,
    }
}

/// A key step.
pub(crate) fn key(k: &str) -> PathSeg {
    PathSeg::Key(k.to_owned())
}

/// An index step.
pub(crate) fn idx(i: usize) -> PathSeg {
    PathSeg::Index(i)
}

/// Appends a segment when `value` is a non-empty string; `path` is only built then.
///
/// Empty strings carry nothing to inspect or rewrite, so they are not segments.
#[inline]
pub(crate) fn emit<'a>(
    out: &mut Vec<Segment<'a>>,
    role: Role,
    value: Option<&'a Value>,
    path: impl FnOnce() -> Vec<PathSeg>,
) {
    if let Some(Value::String(s)) = value {
        if !s.is_empty() {
            out.push(Segment {
                role,
                text: s.as_str(),
                path: path(),
            });
        }
    }
}

/// `base` followed by `more`.
pub(crate) fn join(base: &[PathSeg], more: &[PathSeg]) -> Vec<PathSeg> {
    let mut p = Vec::with_capacity(base.len() + more.len());
    p.extend_from_slice(base);
    p.extend_from_slice(more);
    p
}

/// A string field's value, or None.
#[inline]
pub(crate) fn str_field<'v>(v: &'v Value, k: &str) -> Option<&'v str> {
    v.get(k).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn p(segs: &[PathSeg]) -> Vec<PathSeg> {
        segs.to_vec()
    }

    #[test]
    fn get_follows_keys_and_indices() {
        let v = json!({"a": [{"b": "x"}, {"b": "y"}]});
        let path = p(&[key("a"), idx(1), key("b")]);
        assert_eq!(get(&v, &path), Some(&json!("y")));
        assert_eq!(get(&v, &[]), Some(&v));
        assert_eq!(get(&v, &[key("a"), idx(2)]), None);
        assert_eq!(get(&v, &[key("a"), key("b")]), None, "key into an array");
        assert_eq!(get(&v, &[idx(0)]), None, "index into an object");
    }

    #[test]
    fn replace_only_strings() {
        let mut v = json!({"a": ["x", 1, null, {"s": "t"}]});
        assert!(replace(&mut v, &[key("a"), idx(0)], "new".into()));
        assert!(!replace(&mut v, &[key("a"), idx(1)], "n".into()));
        assert!(!replace(&mut v, &[key("a"), idx(2)], "n".into()));
        assert!(!replace(&mut v, &[key("a"), idx(3)], "n".into()));
        assert!(!replace(&mut v, &[key("a"), idx(9)], "n".into()));
        assert!(!replace(&mut v, &[key("zz")], "n".into()));
        assert!(replace(&mut v, &[key("a"), idx(3), key("s")], "u".into()));
        assert_eq!(v, json!({"a": ["new", 1, null, {"s": "u"}]}));
        let mut s = json!("root");
        assert!(replace(&mut s, &[], "r2".into()));
        assert_eq!(s, json!("r2"));
    }

    #[test]
    fn emit_skips_non_strings_and_empty() {
        let v = json!({"s": "x", "e": "", "n": 3});
        let mut out = Vec::new();
        let mut built = 0;
        for k in ["s", "e", "n", "missing"] {
            emit(&mut out, Role::User, v.get(k), || {
                built += 1;
                vec![key(k)]
            });
        }
        assert_eq!(built, 1, "paths are built only for emitted strings");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, "x");
        assert_eq!(out[0].path, vec![key("s")]);
    }
}
