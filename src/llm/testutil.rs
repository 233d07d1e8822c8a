//! Test helpers shared by the format modules' tests.

use serde_json::Value;

use super::{
    detect_format, extract_known as extract, ApiFormat, PathId, PathSeg, Paths, Phase, Role,
};

/// A segment with its path spelled out (keys borrowed from the body), for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seg<'a> {
    pub role: Role,
    pub text: &'a str,
    pub path: Vec<PathSeg<'a>>,
}

/// The steps of `id`, with keys borrowed from `body` (where the path must lead).
fn spelled<'a>(paths: &Paths, id: PathId, body: &'a Value) -> Vec<PathSeg<'a>> {
    let mut at = body;
    let mut out = Vec::new();
    for step in paths.steps(id) {
        match step {
            PathSeg::Key(k) => {
                let (key, v) = at.as_object().unwrap().get_key_value(k).unwrap();
                out.push(PathSeg::Key(key.as_str()));
                at = v;
            }
            PathSeg::Index(i) => {
                out.push(PathSeg::Index(i));
                at = &at.as_array().unwrap()[i];
            }
        }
    }
    out
}

pub(crate) fn segs(format: ApiFormat, phase: Phase, body: &Value) -> Vec<Seg<'_>> {
    let texts = extract(format, phase, body).unwrap();
    texts
        .segments
        .iter()
        .map(|s| Seg {
            role: s.role,
            text: s.text,
            path: spelled(&texts.paths, s.path, body),
        })
        .collect()
}

pub(crate) fn texts<'s>(segs: &'s [Seg<'_>]) -> Vec<(Role, &'s str)> {
    segs.iter().map(|s| (s.role, s.text)).collect()
}

/// The edit the round-trip tests apply: reversed, wrapped, with characters JSON must escape.
pub(crate) fn transform(text: &str) -> String {
    let rev: String = text.chars().rev().collect();
    format!("«{rev}» \"q\" \\ \n\t✓")
}

/// Every place where `a` and `b` differ: (path, b's value there).
fn diff<'a>(
    a: &'a Value,
    b: &Value,
    path: &mut Vec<PathSeg<'a>>,
    out: &mut Vec<(Vec<PathSeg<'a>>, Value)>,
) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys_x: Vec<&String> = x.keys().collect();
            let keys_y: Vec<&String> = y.keys().collect();
            if keys_x != keys_y {
                out.push((path.clone(), b.clone()));
                return;
            }
            for (k, v) in x {
                path.push(PathSeg::Key(k.as_str()));
                diff(v, &y[k], path, out);
                path.pop();
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                out.push((path.clone(), b.clone()));
                return;
            }
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                path.push(PathSeg::Index(i));
                diff(v, w, path, out);
                path.pop();
            }
        }
        _ => {
            if a != b {
                out.push((path.clone(), b.clone()));
            }
        }
    }
}

fn sorted<'a>(mut v: Vec<(Vec<PathSeg<'a>>, Value)>) -> Vec<(Vec<PathSeg<'a>>, Value)> {
    v.sort_by_key(|(p, _)| format!("{p:?}"));
    v
}

/// Replaces every segment's text with [`transform`]ed text through the path tree (as the
/// engine does), serializes and re-parses the body, and checks that exactly those strings
/// changed, and that extraction finds the new texts at the same paths with the same roles.
/// Returns the edited body.
pub(crate) fn assert_round_trip(
    format: ApiFormat,
    phase: Phase,
    body: &Value,
    expected_segments: usize,
) -> Value {
    let original = body.clone();
    let before = segs(format, phase, &original);
    assert_eq!(
        before.len(),
        expected_segments,
        "segment count of {original}"
    );
    let mut edited = original.clone();
    let tree = extract(format, phase, &original).unwrap();
    for s in &tree.segments {
        assert!(
            tree.paths.replace(&mut edited, s.path, transform(s.text)),
            "replace at {:?}",
            tree.paths.steps(s.path)
        );
    }
    let bytes = serde_json::to_vec(&edited).unwrap();
    let reparsed: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(reparsed, edited);

    let mut changed = Vec::new();
    diff(&original, &reparsed, &mut Vec::new(), &mut changed);
    let expected: Vec<(Vec<PathSeg<'_>>, Value)> = before
        .iter()
        .map(|s| (s.path.clone(), Value::String(transform(s.text))))
        .collect();
    assert_eq!(
        sorted(changed),
        sorted(expected),
        "only the segments' strings change"
    );

    let after = segs(format, phase, &reparsed);
    assert_eq!(after.len(), before.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.role, b.role);
        assert_eq!(a.path, b.path);
        assert_eq!(a.text, transform(b.text));
    }
    assert_eq!(
        detect_format(None, &reparsed),
        detect_format(None, &original),
        "shape detection unchanged"
    );
    reparsed
}
