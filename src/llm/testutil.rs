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

/// A deterministic generator of bodies for comparing two readings of the same body: the five
/// APIs' request and response shapes, with nested content parts, tool calls and inputs,
/// provider-signed and binary blocks, unknown keys, long numbers and empty strings mixed in
/// at random (seeded, so a failure names its body).
pub(crate) struct BodyGen(u64);

const GEN_KEYS: &[&str] = &[
    "content",
    "text",
    "role",
    "type",
    "messages",
    "choices",
    "message",
    "delta",
    "tool_calls",
    "function",
    "arguments",
    "input",
    "output",
    "usage",
    "id",
    "model",
    "data",
    "thinking",
    "signature",
    "name",
    "parts",
    "system",
    "prompt",
    "instructions",
    "summary",
    "refusal",
    "tool_use_id",
    "source",
    "created",
    "index",
    "customer_ref",
    "Kunde",
    "",
    "x y",
    "notes",
    "b64_json",
    "format",
    "object",
    "status",
    "result",
    "embedding",
];
const GEN_TYPES: &[&str] = &[
    "text",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "base64",
    "message",
    "output_text",
    "input_text",
    "function_call",
    "function_call_output",
    "image_url",
    "reasoning",
    "image",
    "document",
    "refusal",
    "custom",
];
const GEN_STRINGS: &[&str] = &[
    "",
    "a",
    "Hello there, how can I help?",
    "data:image/png;base64,iVBORw0KGgo=",
    "user",
    "assistant",
    "content",
    "Grüße ✓ 東京 🙂",
    "{\"city\": \"Paris\"}",
    "\\u0041 \"q\"",
    "call_123",
    "gpt-4o",
    "text",
];

impl BodyGen {
    pub(crate) fn new(seed: u64) -> BodyGen {
        BodyGen(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
        from[self.below(from.len())]
    }

    fn scalar(&mut self) -> Value {
        match self.below(10) {
            0 => Value::Null,
            1 => Value::Bool(self.below(2) == 0),
            2 => Value::from(self.below(1000) as u64),
            3 => Value::from(4_155_000_000_000_000u64 + self.below(1_000_000) as u64),
            4 => Value::from(-(12_345_678i64 + self.below(1000) as i64)),
            5 => serde_json::json!(1.5e9),
            _ => Value::from(self.pick(GEN_STRINGS)),
        }
    }

    /// A random value nested at most `depth` more levels.
    pub(crate) fn value(&mut self, depth: usize) -> Value {
        if depth == 0 {
            return self.scalar();
        }
        match self.below(6) {
            0 | 1 => self.scalar(),
            2 => (0..self.below(4)).map(|_| self.value(depth - 1)).collect(),
            3 => self.part(depth - 1),
            _ => {
                let mut m = serde_json::Map::new();
                for _ in 0..self.below(5) {
                    let k = self.pick(GEN_KEYS).to_string();
                    let v = self.value(depth - 1);
                    m.insert(k, v);
                }
                Value::Object(m)
            }
        }
    }

    /// A content part or block: a `type` and the fields formats read for it.
    fn part(&mut self, depth: usize) -> Value {
        let t = self.pick(GEN_TYPES);
        let mut m = serde_json::Map::new();
        m.insert("type".into(), Value::from(t));
        for k in [
            "text",
            "thinking",
            "input",
            "content",
            "data",
            "arguments",
            "name",
            "output",
        ] {
            if self.below(3) == 0 {
                let v = if depth > 0 && self.below(3) == 0 {
                    self.value(depth - 1)
                } else {
                    Value::from(self.pick(GEN_STRINGS))
                };
                m.insert(k.into(), v);
            }
        }
        Value::Object(m)
    }

    fn content(&mut self, depth: usize) -> Value {
        match self.below(4) {
            0 => Value::from(self.pick(GEN_STRINGS)),
            1 => self.value(depth),
            _ => (0..self.below(4)).map(|_| self.part(depth)).collect(),
        }
    }

    fn tool_calls(&mut self, depth: usize) -> Value {
        (0..self.below(3))
            .map(|i| {
                serde_json::json!({"id": format!("call_{i}"), "type": "function",
                    "function": {"name": self.pick(GEN_STRINGS), "arguments": self.content(depth)}})
            })
            .collect()
    }

    /// A body of one of the APIs' shapes (request or response), or a random value.
    pub(crate) fn body(&mut self) -> Value {
        let d = 1 + self.below(4);
        let mut body = match self.below(9) {
            0 => serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion",
                "created": 1_700_000_000u64, "model": "gpt-4o",
                "choices": (0..self.below(3)).map(|i| serde_json::json!({"index": i,
                    "finish_reason": "stop", "message": {"role": "assistant",
                    "content": self.content(d), "refusal": self.scalar(),
                    "tool_calls": self.tool_calls(d)}})).collect::<Vec<_>>(),
                "usage": {"prompt_tokens": 5, "completion_tokens": self.below(9),
                    "total_tokens": self.scalar()}}),
            1 => serde_json::json!({"id": "resp_1", "object": "response", "model": "gpt-4o",
                "output": (0..self.below(4)).map(|_| serde_json::json!({"type": self.pick(GEN_TYPES),
                    "role": "assistant", "content": self.content(d), "arguments": self.content(d),
                    "summary": self.content(d)})).collect::<Vec<_>>(),
                "usage": {"input_tokens": 3, "output_tokens": 4}}),
            2 => serde_json::json!({"id": "msg_1", "type": "message", "role": "assistant",
                "model": "claude-sonnet-4", "content": (0..self.below(4)).map(|_| self.part(d))
                    .collect::<Vec<_>>(), "stop_reason": "end_turn",
                "usage": {"input_tokens": 7, "output_tokens": self.scalar()}}),
            3 => serde_json::json!({"id": "cmpl-1", "object": "text_completion",
                "choices": (0..self.below(3)).map(|i| serde_json::json!({"index": i,
                    "text": self.content(d), "logprobs": self.scalar()})).collect::<Vec<_>>()}),
            4 => serde_json::json!({"object": "list", "data": [{"object": "embedding",
                "embedding": [0.1, -0.2], "index": 0}], "model": "text-embedding-3-small"}),
            5 => serde_json::json!({"model": "gpt-4o", "max_tokens": self.scalar(),
                "messages": (0..self.below(4)).map(|_| serde_json::json!({
                    "role": self.pick(&["system", "user", "assistant", "tool", "User ", "x"]),
                    "content": self.content(d), "tool_calls": self.tool_calls(d)}))
                    .collect::<Vec<_>>(), "tools": self.value(d)}),
            6 => serde_json::json!({"model": "claude-sonnet-4", "system": self.content(d),
                "messages": (0..self.below(4)).map(|_| serde_json::json!({"role": "user",
                    "content": self.content(d)})).collect::<Vec<_>>()}),
            7 => serde_json::json!({"model": "gpt-4o", "input": self.content(d),
                "instructions": self.content(d), "prompt": self.value(d)}),
            _ => self.value(d + 2),
        };
        // Anything may carry extra members.
        if let Some(m) = body.as_object_mut() {
            for _ in 0..self.below(3) {
                let k = self.pick(GEN_KEYS).to_string();
                let v = self.value(2);
                m.insert(k, v);
            }
        }
        body
    }
}

/// Bodies at and past the caps of [`super::path`]: texts, path nodes and nesting.
pub(crate) fn bodies_at_the_caps() -> Vec<Value> {
    let strings = |n: usize| Value::Array(vec![Value::from("a"); n]);
    let nested = |levels: usize| {
        let mut v = Value::from("deep");
        for _ in 0..levels {
            v = Value::Array(vec![v]);
        }
        v
    };
    let chat = |content: Value| {
        serde_json::json!({"object": "chat.completion", "choices": [{"message":
            {"role": "assistant", "content": content}}]})
    };
    let mut out = vec![
        strings(super::MAX_SEGMENTS - 1),
        strings(super::MAX_SEGMENTS),
        strings(super::MAX_SEGMENTS + 1),
        serde_json::json!({"rest": strings(super::MAX_SEGMENTS), "id": "one more"}),
        chat(strings(super::MAX_SEGMENTS)),
        chat(Value::Array(vec![
            serde_json::json!({"type": "text", "text": "t"});
            super::MAX_SEGMENTS + 1
        ])),
        // Five path nodes per text: past MAX_PATH_NODES with fewer texts than MAX_SEGMENTS.
        Value::Array(vec![nested(4); super::MAX_PATH_NODES / 5 + 1]),
        Value::Array(vec![nested(4); super::MAX_PATH_NODES / 5 - 1]),
        // Unknown keys, each a text and a node.
        Value::Object(
            (0..super::MAX_SEGMENTS + 1)
                .map(|i| (format!("k{i}"), Value::Null))
                .collect(),
        ),
        nested(super::MAX_DEPTH - 1),
        nested(super::MAX_DEPTH),
        nested(super::MAX_DEPTH + 1),
        chat(nested(super::MAX_DEPTH + 1)),
    ];
    let long_numbers: Vec<Value> = (0..super::MAX_SEGMENTS + 1)
        .map(|i| Value::from(10_000_000u64 + i as u64))
        .collect();
    out.push(Value::Array(long_numbers));
    out
}
