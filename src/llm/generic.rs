//! Unknown body shapes: every string value, depth-first in document order, with an explicit
//! stack (no recursion). Also used for free-form JSON inside known formats (tool inputs).
//!
//! [`rest`] is the walk after a format's own extraction: everything else in the body that
//! reaches the model is inspected as role `other` (see its documentation).

use serde_json::Value;

use super::keyset::KeySet;
use super::path::{PathId, Slot, TooComplex, MAX_DEPTH};
use super::{Role, Texts};

/// Keys whose string values are structure, not text: identifiers of the model and of the
/// message's author, type and enum tags, provider signatures. A client that rewrites these
/// changes what the request means; nothing here is read by the model as text.
pub(crate) const STRUCTURAL: &[&str] = &[
    "model",
    "role",
    "type",
    "name",
    "object",
    "finish_reason",
    "stop_reason",
    "tool_choice",
    "detail",
    "format",
    "encoding_format",
    "media_type",
    "reasoning_effort",
    "effort",
    "service_tier",
    "status",
    "truncation",
    "verbosity",
    "voice",
    "modalities",
    "include",
    "signature",
    "encrypted_content",
    "system_fingerprint",
    "anthropic_version",
];

/// Field names of the APIs the gateway knows (and of JSON Schema): as keys they carry nothing
/// to inspect, and numbers under them are counts, sizes, times and seeds, not identifiers.
const KNOWN_KEYS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "name",
    "stream",
    "stream_options",
    "include_usage",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "temperature",
    "top_p",
    "top_k",
    "n",
    "stop",
    "seed",
    "user",
    "tools",
    "tool_choice",
    "function",
    "functions",
    "function_call",
    "description",
    "parameters",
    "properties",
    "required",
    "items",
    "enum",
    "additionalProperties",
    "strict",
    "arguments",
    "tool_calls",
    "tool_call_id",
    "id",
    "refusal",
    "image_url",
    "url",
    "detail",
    "input_audio",
    "data",
    "format",
    "file",
    "file_id",
    "file_data",
    "filename",
    "response_format",
    "json_schema",
    "schema",
    "prediction",
    "metadata",
    "store",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "presence_penalty",
    "frequency_penalty",
    "modalities",
    "audio",
    "voice",
    "reasoning_effort",
    "reasoning",
    "effort",
    "summary",
    "service_tier",
    "parallel_tool_calls",
    "input",
    "instructions",
    "previous_response_id",
    "prompt",
    "variables",
    "version",
    "truncation",
    "include",
    "output",
    "call_id",
    "system",
    "anthropic_version",
    "stop_sequences",
    "tool_use_id",
    "input_schema",
    "source",
    "media_type",
    "cache_control",
    "ttl",
    "thinking",
    "budget_tokens",
    "signature",
    "is_error",
    "citations",
    "title",
    "context",
    "choices",
    "index",
    "message",
    "delta",
    "finish_reason",
    "usage",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "object",
    "created",
    "created_at",
    "system_fingerprint",
    "status",
    "encoding_format",
    "dimensions",
    "embedding",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
    "$defs",
    "definitions",
    "const",
    "examples",
    "nullable",
    "verbosity",
    "suffix",
    "echo",
    "best_of",
    "keep_alive",
    "options",
    "num_ctx",
    "num_predict",
    "raw",
    "images",
    "template",
    "toolConfig",
    "inferenceConfig",
    "maxTokens",
    "topP",
    "stopSequences",
    "toolSpec",
    "inputSchema",
    "json",
    "toolUse",
    "toolResult",
    "toolUseId",
    "guardContent",
    "additionalModelRequestFields",
    "output_index",
    "content_index",
    "sequence_number",
    "item_id",
    "event_id",
];

/// Digits a number needs before it is inspected: 7 covers local phone numbers and every
/// national identifier, card and account number; shorter ones (counts, years, prices) cannot
/// identify anyone.
const MIN_NUMBER_DIGITS: usize = 7;

static KNOWN: KeySet<256> = KeySet::new(KNOWN_KEYS);
static STRUCTURAL_SET: KeySet<64> = KeySet::new(STRUCTURAL);

fn known(key: &str) -> bool {
    KNOWN.contains(key)
}

/// Whether string values under `key` are structure ([`STRUCTURAL`]).
pub(crate) fn structural(key: &str) -> bool {
    STRUCTURAL_SET.contains(key)
}

/// Whether a string is a binary payload (a data URL, or base64 `data` of an image, audio or
/// document source): not text the model reads as text.
pub(crate) fn binary(
    key: Option<&str>,
    parent: Option<&serde_json::Map<String, Value>>,
    s: &str,
) -> bool {
    if s.starts_with("data:")
        && s.get(..s.len().min(256))
            .is_some_and(|h| h.contains(";base64,"))
    {
        return true;
    }
    let sibling = |k: &str| parent.and_then(|p| p.get(k)).and_then(Value::as_str);
    match key {
        Some("data") => sibling("type") == Some("base64") || sibling("format").is_some(),
        Some("b64_json") => true,
        _ => false,
    }
}

/// Objects whose strings are signed by the provider (editing them breaks the signature).
pub(crate) fn signed(obj: &serde_json::Map<String, Value>) -> bool {
    matches!(
        obj.get("type").and_then(Value::as_str),
        Some("thinking" | "redacted_thinking" | "reasoning" | "thinking_delta" | "signature_delta")
    )
}

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
#[derive(Clone, Copy)]
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

/// Everything in `root` a format's extraction left out, as role `other`: string values not
/// already in `out` (by address) and not structural ([`STRUCTURAL`] keys, binary payloads,
/// provider-signed blocks); object keys that are not the APIs' own field names; integers of
/// [`MIN_NUMBER_DIGITS`] digits or more that are not under such a field name. Containers nested
/// deeper than [`MAX_DEPTH`] fail the extraction.
pub(crate) fn rest<'a>(root: &'a Value, out: &mut Texts<'a>) {
    let seen = out.emitted();
    let emitted = |s: &str| seen.binary_search(&(s.as_ptr() as usize)).is_ok();
    if let Value::String(s) = root {
        if !s.is_empty() && !emitted(s) {
            out.push(Role::Other, s, PathId::ROOT);
        }
        return;
    }
    let Some(first) = Frame::of(root) else {
        return;
    };
    // Each level with its node in the path tree, made only once something under it is a text.
    // Room for the APIs' usual nesting up front: one allocation, not one per doubling.
    let mut stack: Vec<Level<'a>> = Vec::with_capacity(8);
    stack.push(Level {
        frame: first,
        id: Some(PathId::ROOT),
        step: Child::Index(0),
        object: root.as_object(),
    });
    while let Some(top) = stack.last_mut() {
        let parent = top.object;
        let next: Option<(Child<'a>, &'a Value)> = match &mut top.frame {
            Frame::Arr(it) => it.next().map(|(i, v)| (Child::Index(i), v)),
            Frame::Obj(it) => it.next().map(|(k, v)| (Child::Key(k.as_str()), v)),
        };
        let Some((child, v)) = next else {
            stack.pop();
            continue;
        };
        if out.failed() {
            return;
        }
        let key = match child {
            Child::Key(k) => Some(k),
            Child::Index(_) => None,
        };
        // One lookup per key: it decides both the key's own text and its numbers'.
        let unlisted = key.is_none_or(|k| !known(k));
        let wanted_key = key.filter(|k| !k.is_empty() && unlisted);
        let container = match v {
            Value::Array(a) => !a.is_empty(),
            Value::Object(m) => !m.is_empty() && !signed(m),
            _ => false,
        };
        let text = match v {
            Value::String(s) => {
                !s.is_empty()
                    && !key.is_some_and(structural)
                    && !emitted(s)
                    && !binary(key, parent, s)
            }
            Value::Number(n) => unlisted && long_number(n).is_some(),
            _ => false,
        };
        if container {
            if stack.len() >= MAX_DEPTH {
                return out.fail(TooComplex::Depth);
            }
            if let Some(frame) = Frame::of(v) {
                stack.push(Level {
                    frame,
                    id: None,
                    step: child,
                    object: v.as_object(),
                });
            }
            if let Some(k) = wanted_key {
                let last = stack.len() - 1;
                let path = node(&mut stack, last, out);
                out.push_slot(Role::Other, k, path, Slot::Key);
            }
            continue;
        }
        if !text && wanted_key.is_none() {
            continue;
        }
        let last = stack.len() - 1;
        let at = node(&mut stack, last, out);
        let path = match child {
            Child::Index(i) => out.index(at, i),
            Child::Key(k) => out.key(at, k),
        };
        if let Some(k) = wanted_key {
            out.push_slot(Role::Other, k, path, Slot::Key);
        }
        match v {
            Value::String(s) if text => out.push(Role::Other, s, path),
            Value::Number(n) if text => {
                if let Some(digits) = long_number(n) {
                    out.push_number(digits, path);
                }
            }
            _ => {}
        }
    }
}

/// A container being walked by [`rest`].
struct Level<'a> {
    frame: Frame<'a>,
    /// Its node, once made.
    id: Option<PathId>,
    /// Its step from the level below.
    step: Child<'a>,
    object: Option<&'a serde_json::Map<String, Value>>,
}

/// The node of `stack[at]`, making it (and the nodes below it) when not made yet.
fn node(stack: &mut [Level<'_>], at: usize, out: &mut Texts<'_>) -> PathId {
    let made = stack
        .get(..=at)
        .unwrap_or_default()
        .iter()
        .rposition(|l| l.id.is_some())
        .unwrap_or(0);
    let mut id = stack.get(made).and_then(|l| l.id).unwrap_or(PathId::ROOT);
    for level in stack.iter_mut().take(at + 1).skip(made + 1) {
        id = match level.step {
            Child::Index(i) => out.index(id, i),
            Child::Key(k) => out.key(id, k),
        };
        level.id = Some(id);
    }
    id
}

/// An integer's digits when it has at least [`MIN_NUMBER_DIGITS`].
fn long_number(n: &serde_json::Number) -> Option<String> {
    let digits = match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => u.to_string(),
        (None, Some(i)) => i.unsigned_abs().to_string(),
        _ => return None,
    };
    (digits.len() >= MIN_NUMBER_DIGITS).then_some(digits)
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

    #[test]
    fn key_sets_hold_exactly_their_lists() {
        assert!(KNOWN_KEYS.iter().all(|k| known(k)));
        assert!(STRUCTURAL.iter().all(|k| structural(k)));
        let mut g = crate::llm::testutil::BodyGen::new(3);
        let mut names: Vec<String> = KNOWN_KEYS.iter().map(|k| format!("{k}s")).collect();
        names.extend(["Usage", "customer_ref", "", "$", "zzz", "content "].map(String::from));
        names.extend((0..2000).filter_map(|_| g.body().as_object()?.keys().next().cloned()));
        // Names the hash cannot tell from a listed one (same length, ends and middle byte):
        // every other byte of every listed name changed, and the middle one too.
        for k in KNOWN_KEYS.iter().chain(STRUCTURAL) {
            for i in 0..k.len() {
                let mut b = k.as_bytes().to_vec();
                b[i] = if b[i] == b'x' { b'y' } else { b'x' };
                names.push(String::from_utf8(b).unwrap());
            }
        }
        for k in &names {
            assert_eq!(known(k), KNOWN_KEYS.contains(&k.as_str()), "{k:?}");
            assert_eq!(structural(k), STRUCTURAL.contains(&k.as_str()), "{k:?}");
        }
    }

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
