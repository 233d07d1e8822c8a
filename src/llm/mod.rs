//! LLM API body formats: which API a body belongs to, the texts in it (with their roles),
//! and writing changed texts and parameters back so the body stays valid for its API.
//!
//! One module per format (`openai_chat`, `openai_responses`, `openai_completions` (also
//! embeddings), `anthropic_messages`, `generic` for unknown shapes); this module detects the
//! format and dispatches. [`path`] navigates [`PathSeg`] paths.
//!
//! Extraction borrows every text from the parsed body and records its path in a tree shared
//! by the body's texts ([`path::Paths`]), only for the strings it emits; empty strings are not
//! segments (nothing to inspect or rewrite). A body with more texts, path steps or nesting than
//! [`path`]'s caps is not extracted at all ([`TooComplex`]).

use serde_json::Value;

mod anthropic_messages;
pub mod event;
mod generic;
pub mod json;
mod keyset;
#[cfg(test)]
mod measure_tests;
mod openai_chat;
mod openai_completions;
mod openai_responses;
pub mod path;
pub mod route;
pub mod sse;
pub mod stream;
#[cfg(test)]
pub(crate) mod testutil;

pub use path::{
    PathId, PathSeg, Paths, Slot, Texts, TooComplex, MAX_DEPTH, MAX_PATH_NODES, MAX_SEGMENTS,
};

/// The API a body belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFormat {
    OpenaiChat,
    OpenaiResponses,
    OpenaiCompletions,
    OpenaiEmbeddings,
    AnthropicMessages,
    Unknown,
}

impl ApiFormat {
    /// Name used in audit records (`api_format`).
    pub fn name(self) -> &'static str {
        match self {
            ApiFormat::OpenaiChat => "openai_chat",
            ApiFormat::OpenaiResponses => "openai_responses",
            ApiFormat::OpenaiCompletions => "openai_completions",
            ApiFormat::OpenaiEmbeddings => "openai_embeddings",
            ApiFormat::AnthropicMessages => "anthropic_messages",
            ApiFormat::Unknown => "unknown",
        }
    }

    /// Provider family used in audit records (`provider`).
    pub fn provider(self) -> &'static str {
        match self {
            ApiFormat::AnthropicMessages => "anthropic",
            ApiFormat::Unknown => "unknown",
            _ => "openai",
        }
    }
}

/// Request (prompt) or response (output) side of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Request,
    Response,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Request => "request",
            Phase::Response => "response",
        }
    }
}

/// Who authored a piece of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    /// Text in an unknown body shape, or a role name this crate does not know.
    Other,
}

impl Role {
    pub const ALL: &'static [Role] = &[
        Role::System,
        Role::Developer,
        Role::User,
        Role::Assistant,
        Role::Tool,
        Role::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
            Role::Other => "other",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.iter().copied().find(|r| r.name() == name)
    }

    /// The role of a message's `role` field as a client wrote it. Clients choose it, so every
    /// value maps to a role a policy can name: known names in any case and with surrounding
    /// ASCII whitespace (`"User"`, `" SYSTEM"`), `function` (the legacy tool result) as `tool`,
    /// anything else as `other`.
    pub fn from_wire(name: &str) -> Role {
        let name = name.as_bytes().trim_ascii();
        let mut lower = [0u8; 9];
        let Some(buf) = lower.get_mut(..name.len()) else {
            return Role::Other;
        };
        buf.copy_from_slice(name);
        buf.make_ascii_lowercase();
        match &*buf {
            b"system" => Role::System,
            b"developer" => Role::Developer,
            b"user" => Role::User,
            b"assistant" => Role::Assistant,
            b"tool" | b"function" => Role::Tool,
            _ => Role::Other,
        }
    }
}

/// One inspectable text of a body, borrowed from the parsed body, with where it lives (in the
/// [`Paths`] of its [`Texts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    pub role: Role,
    pub text: &'a str,
    pub path: PathId,
    /// What the text is at `path`: a string value, an object key, or a number's digits.
    pub slot: Slot,
}

/// Token usage reported by a response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
}

/// Which API a body belongs to, from the request path when known, else from its shape.
///
/// The body may be a request or a response (the caller passes the request path for both), or
/// `Value::Null` when only the path is known yet.
pub fn detect_format(path: Option<&str>, body: &Value) -> ApiFormat {
    // Bedrock Converse bodies look like chat messages but keep text in untyped blocks no
    // format module reads: every string is inspected instead.
    if path.is_some_and(route::is_bedrock_converse) {
        return ApiFormat::Unknown;
    }
    path.and_then(format_from_path)
        .unwrap_or_else(|| format_from_shape(body))
}

/// The format an API path serves, ignoring any prefix (`/openai/v1/…`, Azure's
/// `/openai/deployments/{name}/…`), query string and trailing slash; None when not known.
pub fn format_from_path(path: &str) -> Option<ApiFormat> {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    let p = path.get(..end)?.trim_end_matches('/');
    if p.ends_with("/chat/completions") {
        Some(ApiFormat::OpenaiChat)
    } else if p.ends_with("/completions") {
        Some(ApiFormat::OpenaiCompletions)
    } else if p.ends_with("/embeddings") {
        Some(ApiFormat::OpenaiEmbeddings)
    } else if p.ends_with("/responses") {
        Some(ApiFormat::OpenaiResponses)
    } else if (p.ends_with("/messages") || p.ends_with("/messages/count_tokens"))
        // OpenAI Assistants: /v1/threads/{id}/messages is not Anthropic.
        && !p.contains("/threads/")
    {
        Some(ApiFormat::AnthropicMessages)
    } else {
        None
    }
}

/// The format a request or response body has, by its fields.
pub fn format_from_shape(body: &Value) -> ApiFormat {
    let Some(obj) = body.as_object() else {
        return ApiFormat::Unknown;
    };
    // Response bodies.
    match obj.get("object").and_then(Value::as_str) {
        Some("chat.completion" | "chat.completion.chunk") => return ApiFormat::OpenaiChat,
        Some("response") => return ApiFormat::OpenaiResponses,
        Some("text_completion") => return ApiFormat::OpenaiCompletions,
        Some("list") => {
            let first = obj
                .get("data")
                .and_then(Value::as_array)
                .and_then(|d| d.first());
            if first.and_then(|d| path::str_field(d, "object")) == Some("embedding") {
                return ApiFormat::OpenaiEmbeddings;
            }
        }
        _ => {}
    }
    if obj.get("type").and_then(Value::as_str) == Some("message")
        && obj.get("content").is_some_and(Value::is_array)
    {
        return ApiFormat::AnthropicMessages;
    }
    // Request bodies.
    if let Some(messages) = obj.get("messages").and_then(Value::as_array) {
        return if anthropic_messages::looks_like_request(body, messages) {
            ApiFormat::AnthropicMessages
        } else {
            ApiFormat::OpenaiChat
        };
    }
    if let Some(input) = obj.get("input") {
        let embeddings = obj.contains_key("encoding_format")
            || obj.contains_key("dimensions")
            || model(body).is_some_and(is_embedding_model)
            || input
                .as_array()
                .is_some_and(|items| openai_completions::is_embedding_input_list(items));
        return if embeddings {
            ApiFormat::OpenaiEmbeddings
        } else {
            ApiFormat::OpenaiResponses
        };
    }
    match obj.get("prompt") {
        Some(Value::String(_) | Value::Array(_)) => return ApiFormat::OpenaiCompletions,
        // A Responses API prompt template reference: {"id": "pmpt_…", "variables": {…}}.
        Some(Value::Object(_)) => return ApiFormat::OpenaiResponses,
        _ => {}
    }
    if obj.contains_key("instructions") || obj.contains_key("previous_response_id") {
        return ApiFormat::OpenaiResponses;
    }
    ApiFormat::Unknown
}

/// Whether a model name names an embedding model (`text-embedding-3-small`, `nomic-embed-text`…).
fn is_embedding_model(model: &str) -> bool {
    model
        .as_bytes()
        .windows(5)
        .any(|w| w.eq_ignore_ascii_case(b"embed"))
}

/// The inspectable texts of `body` for `phase`: the format's own texts with their roles, then
/// everything else that reaches the model as role `other` ([`generic::rest`]: other string
/// values, unknown keys, long numbers; not structural values). Fails when the body exceeds a
/// cap of [`path`] (no text is left out silently).
pub fn extract(format: ApiFormat, phase: Phase, body: &Value) -> Result<Texts<'_>, TooComplex> {
    let mut out = Texts::new();
    extract_into(format, phase, body, &mut out);
    generic::rest(body, &mut out);
    out.finish()
}

/// [`extract`] counting only ([`Texts::counting`]): the same number of texts, bytes and
/// [`TooComplex`] verdict, for a caller no rule of which reads the texts themselves.
pub fn measure(format: ApiFormat, phase: Phase, body: &Value) -> Result<Texts<'_>, TooComplex> {
    let mut out = Texts::counting();
    extract_into(format, phase, body, &mut out);
    generic::rest(body, &mut out);
    out.finish()
}

/// The format's own texts only (what each format module reads, with its roles).
pub fn extract_known(
    format: ApiFormat,
    phase: Phase,
    body: &Value,
) -> Result<Texts<'_>, TooComplex> {
    let mut out = Texts::new();
    extract_into(format, phase, body, &mut out);
    out.finish()
}

fn extract_into<'a>(format: ApiFormat, phase: Phase, body: &'a Value, out: &mut Texts<'a>) {
    match (format, phase) {
        (ApiFormat::OpenaiChat, Phase::Request) => openai_chat::extract_request(body, out),
        (ApiFormat::OpenaiChat, Phase::Response) => openai_chat::extract_response(body, out),
        (ApiFormat::OpenaiResponses, Phase::Request) => {
            openai_responses::extract_request(body, out)
        }
        (ApiFormat::OpenaiResponses, Phase::Response) => {
            openai_responses::extract_response(body, out)
        }
        (ApiFormat::OpenaiCompletions, Phase::Request) => {
            openai_completions::extract_completions_request(body, out)
        }
        (ApiFormat::OpenaiCompletions, Phase::Response) => {
            openai_completions::extract_completions_response(body, out)
        }
        (ApiFormat::OpenaiEmbeddings, Phase::Request) => {
            openai_completions::extract_embeddings_request(body, out)
        }
        // Vectors, no text.
        (ApiFormat::OpenaiEmbeddings, Phase::Response) => {}
        (ApiFormat::AnthropicMessages, Phase::Request) => {
            anthropic_messages::extract_request(body, out)
        }
        (ApiFormat::AnthropicMessages, Phase::Response) => {
            anthropic_messages::extract_response(body, out)
        }
        (ApiFormat::Unknown, _) => generic::collect(body, Role::Other, PathId::ROOT, out),
    }
}

/// Replaces the string at `path`; false when the path does not lead to a string.
pub fn replace_text(body: &mut Value, path: &[PathSeg<'_>], text: String) -> bool {
    path::replace(body, path, text)
}

/// The requested (or, in a response, served) model.
pub fn model(body: &Value) -> Option<&str> {
    body.get("model").and_then(Value::as_str)
}

/// Sets `model` (see [`try_set_model`]).
pub fn set_model(body: &mut Value, model: &str) {
    try_set_model(body, model);
}

/// Sets `model`, adding it when absent, and says whether it did. Not done when the body is not
/// an object, nor when it has no `model` but has `anthropic_version`: Bedrock and Vertex AI
/// take the model from the URL and reject a body that names one.
pub fn try_set_model(body: &mut Value, model: &str) -> bool {
    let Some(obj) = body.as_object_mut() else {
        return false;
    };
    if !obj.contains_key("model") && obj.contains_key("anthropic_version") {
        return false;
    }
    obj.insert("model".to_owned(), Value::from(model));
    true
}

/// The fields that bound output tokens in a format's requests.
fn bound_fields(format: ApiFormat) -> &'static [&'static str] {
    match format {
        ApiFormat::OpenaiChat => &["max_completion_tokens", "max_tokens"],
        ApiFormat::OpenaiResponses => &["max_output_tokens"],
        ApiFormat::OpenaiCompletions | ApiFormat::AnthropicMessages => &["max_tokens"],
        ApiFormat::OpenaiEmbeddings => &[],
        ApiFormat::Unknown => &UNKNOWN_BOUNDS,
    }
}

const UNKNOWN_BOUNDS: [&str; 3] = ["max_tokens", "max_completion_tokens", "max_output_tokens"];

/// A token-bound field as a lenient upstream could read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// Absent or null: the upstream's default.
    Absent,
    Count(u64),
    /// Negative, not a number, or not a number's text.
    Invalid,
}

/// Reads a bound the most generous way any upstream could: integral numbers in any notation
/// (`4096`, `4096.0`, `4.096e3`), fractions rounded up, numbers past `u64` (`1e20`) as
/// `u64::MAX`, and strings holding a JSON number (`"4096"`, which lax parsers such as pydantic
/// coerce) likewise.
fn bound(v: &Value) -> Bound {
    match v {
        Value::Null => Bound::Absent,
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => Bound::Count(u),
            // `as` saturates: anything past u64 is u64::MAX.
            (None, Some(f)) if f.is_finite() && f >= 0.0 => Bound::Count(f.ceil() as u64),
            _ => Bound::Invalid,
        },
        Value::String(s) => {
            let t = s.trim();
            let t = t.strip_prefix('+').unwrap_or(t);
            if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                Bound::Count(t.parse().unwrap_or(u64::MAX))
            } else {
                // The JSON parser already in the module reads the other number forms.
                match json::from_slice(t.as_bytes()) {
                    Ok(n @ Value::Number(_)) => bound(&n),
                    _ => Bound::Invalid,
                }
            }
        }
        _ => Bound::Invalid,
    }
}

/// The requested output-token bound: the largest of the format's bound fields (chat has two,
/// and servers differ on which wins), read by [`bound`]. A field that is not a count reads as
/// `u64::MAX` (asks for everything), so bound conditions and caps apply to it.
pub fn max_tokens(format: ApiFormat, body: &Value) -> Option<u64> {
    bound_fields(format)
        .iter()
        .filter_map(|f| match bound(body.get(*f)?) {
            Bound::Absent => None,
            Bound::Count(n) => Some(n),
            Bound::Invalid => Some(u64::MAX),
        })
        .max()
}

/// The first of the format's bound fields whose value is no token count (negative, `true`,
/// `"lots"`, `"NaN"`, an object…); None when every bound is absent or readable.
pub fn invalid_max_tokens(format: ApiFormat, body: &Value) -> Option<&'static str> {
    bound_fields(format)
        .iter()
        .copied()
        .find(|f| body.get(*f).is_some_and(|v| bound(v) == Bound::Invalid))
}

/// Caps every bound field in use at `cap`, written as a JSON integer whatever form it had
/// (a smaller bound keeps its value, normalised: `"100"` becomes `100`); when none is in use,
/// adds one as [`set_max_tokens`] does (not to unknown shapes nor embeddings). Says whether
/// the body changed.
pub fn cap_max_tokens(format: ApiFormat, body: &mut Value, cap: u64) -> bool {
    let Some(obj) = body.as_object_mut() else {
        return false;
    };
    let mut in_use = false;
    let mut changed = false;
    for f in bound_fields(format) {
        let Some(v) = obj.get_mut(*f) else {
            continue;
        };
        let n = match bound(v) {
            Bound::Absent => continue,
            Bound::Count(n) => n,
            Bound::Invalid => u64::MAX,
        };
        in_use = true;
        let capped = n.min(cap);
        if v.as_u64() != Some(capped) {
            *v = Value::from(capped);
            changed = true;
        }
    }
    if in_use || matches!(format, ApiFormat::Unknown | ApiFormat::OpenaiEmbeddings) {
        return changed;
    }
    set_max_tokens(format, body, cap);
    true
}

/// Sets a token-count field of a request body object.
fn set_count(body: &mut Value, field: &str, n: u64) {
    if let Some(obj) = body.as_object_mut() {
        obj.insert(field.to_owned(), Value::from(n));
    }
}

/// Puts `text` before the instructions kept in `field`: a string is joined with a blank
/// line; with `blocks`, a content-block array gets a text block first; absent, null or
/// empty, the field is set. False when the field holds anything else.
fn prepend_instructions(body: &mut Value, field: &str, text: &str, blocks: bool) -> bool {
    let Some(obj) = body.as_object_mut() else {
        return false;
    };
    match obj.get_mut(field) {
        Some(Value::String(s)) if !s.is_empty() => {
            *s = format!("{text}\n\n{s}");
            true
        }
        Some(Value::Array(items)) if blocks => {
            items.insert(0, serde_json::json!({"type": "text", "text": text}));
            true
        }
        None | Some(Value::Null) | Some(Value::String(_)) => {
            obj.insert(field.to_owned(), Value::from(text));
            true
        }
        Some(_) => false,
    }
}

/// Writes the output-token bound under the field the format uses (the caller decides the
/// value). Chat: see `openai_chat::set_max_tokens`. Embeddings: nothing. Unknown bodies: only
/// the bound fields already set are overwritten; none is added to a shape nobody knows.
pub fn set_max_tokens(format: ApiFormat, body: &mut Value, n: u64) {
    match format {
        ApiFormat::OpenaiChat => openai_chat::set_max_tokens(body, n),
        ApiFormat::OpenaiResponses => openai_responses::set_max_tokens(body, n),
        ApiFormat::OpenaiCompletions => openai_completions::set_max_tokens(body, n),
        ApiFormat::AnthropicMessages => anthropic_messages::set_max_tokens(body, n),
        ApiFormat::OpenaiEmbeddings => {}
        ApiFormat::Unknown => {
            if let Some(obj) = body.as_object_mut() {
                for f in UNKNOWN_BOUNDS {
                    if let Some(v) = obj.get_mut(f).filter(|v| bound(v) != Bound::Absent) {
                        *v = Value::from(n);
                    }
                }
            }
        }
    }
}

/// Adds a system instruction where the format keeps one; false when it has none (embeddings).
///
/// Chat: a separate `system` message first. Responses: prepended to `instructions`.
/// Anthropic: prepended to `system`. Completions, embeddings, unknown: false.
pub fn add_system_message(format: ApiFormat, body: &mut Value, text: &str) -> bool {
    match format {
        ApiFormat::OpenaiChat => openai_chat::add_system_message(body, text),
        ApiFormat::OpenaiResponses => openai_responses::add_system_message(body, text),
        ApiFormat::AnthropicMessages => anthropic_messages::add_system_message(body, text),
        ApiFormat::OpenaiCompletions | ApiFormat::OpenaiEmbeddings | ApiFormat::Unknown => false,
    }
}

/// Token usage from a response body; None when it reports none.
///
/// OpenAI chat, completions, embeddings: `prompt_tokens` / `completion_tokens` /
/// `total_tokens`. Responses API: `input_tokens` / `output_tokens` / `total_tokens`.
/// Anthropic: `input_tokens` plus cache creation and cache read tokens, `output_tokens`.
/// Each OpenAI format falls back to the other OpenAI naming. The total is computed when
/// missing.
pub fn usage(format: ApiFormat, response: &Value) -> Option<Usage> {
    let u = response.get("usage").filter(|u| u.is_object())?;
    let found = match format {
        ApiFormat::AnthropicMessages => anthropic_messages::usage(u),
        ApiFormat::OpenaiResponses => {
            named_usage(u, "input_tokens", "output_tokens").or_else(|| chat_usage(u))
        }
        _ => chat_usage(u).or_else(|| named_usage(u, "input_tokens", "output_tokens")),
    }?;
    let total = found.total_tokens.or(match found {
        Usage {
            prompt_tokens: Some(p),
            completion_tokens: Some(c),
            ..
        } => Some(p.saturating_add(c)),
        _ => None,
    });
    let usage = Usage {
        total_tokens: total,
        ..found
    };
    (usage != Usage::default()).then_some(usage)
}

fn chat_usage(u: &Value) -> Option<Usage> {
    named_usage(u, "prompt_tokens", "completion_tokens")
}

/// Usage under the given names; None when neither they nor `total_tokens` is there.
fn named_usage(u: &Value, prompt: &str, completion: &str) -> Option<Usage> {
    let usage = Usage {
        prompt_tokens: u.get(prompt).and_then(count),
        completion_tokens: u.get(completion).and_then(count),
        total_tokens: u.get("total_tokens").and_then(count),
    };
    (usage.prompt_tokens.is_some() || usage.completion_tokens.is_some()).then_some(usage)
}

/// A token count: a non-negative integer (also written as `12.0`).
pub(crate) fn count(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| {
                f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < 18_446_744_073_709_551_616.0
            })
            .map(|f| f as u64)
    })
}

/// Blanks every `logprobs` field (an array becomes empty, anything else null): token
/// log-probabilities repeat the output text, so a body whose text was redacted must not carry
/// them.
pub fn blank_logprobs(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "logprobs" {
                    *child = if child.is_array() {
                        Value::Array(Vec::new())
                    } else {
                        Value::Null
                    };
                } else {
                    blank_logprobs(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(blank_logprobs),
        _ => {}
    }
}

/// Whether the request asks for a streamed (SSE) response.
pub fn is_stream(body: &Value) -> bool {
    body.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use path::{idx, key};
    use serde_json::json;
    use testutil::{assert_round_trip, segs, texts};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn paths() {
        let cases: &[(&str, Option<ApiFormat>)] = &[
            ("/v1/chat/completions", Some(ApiFormat::OpenaiChat)),
            ("/chat/completions", Some(ApiFormat::OpenaiChat)),
            ("/v1/chat/completions/", Some(ApiFormat::OpenaiChat)),
            (
                "/v1/chat/completions?foo=bar/baz",
                Some(ApiFormat::OpenaiChat),
            ),
            ("/v1/chat/completions#frag", Some(ApiFormat::OpenaiChat)),
            (
                "/api/openai/v1/chat/completions",
                Some(ApiFormat::OpenaiChat),
            ),
            ("/v1/completions", Some(ApiFormat::OpenaiCompletions)),
            ("/v1/embeddings", Some(ApiFormat::OpenaiEmbeddings)),
            ("/v1/responses", Some(ApiFormat::OpenaiResponses)),
            ("/v1/messages", Some(ApiFormat::AnthropicMessages)),
            ("/v1/messages?beta=true", Some(ApiFormat::AnthropicMessages)),
            (
                "/v1/messages/count_tokens",
                Some(ApiFormat::AnthropicMessages),
            ),
            ("/v1/threads/thread_1/messages", None),
            ("/v1/chat/completionsX", None),
            ("/v1/models", None),
            ("/v1/responses/resp_123", None),
            ("/", None),
            ("", None),
            ("?", None),
            ("/v1/chat/completions\u{e9}?\u{e9}", None),
        ];
        for (p, f) in cases {
            assert_eq!(format_from_path(p), *f, "{p}");
        }
    }

    #[test]
    fn path_wins_over_shape() {
        let anthropic = json!({"system": "s", "messages": [{"role": "user", "content": "x"}]});
        assert_eq!(
            detect_format(None, &anthropic),
            ApiFormat::AnthropicMessages
        );
        assert_eq!(
            detect_format(Some("/v1/chat/completions"), &anthropic),
            ApiFormat::OpenaiChat
        );
        // An unknown path falls back to the shape.
        assert_eq!(
            detect_format(Some("/llm/proxy"), &anthropic),
            ApiFormat::AnthropicMessages
        );
    }

    #[test]
    fn unknown_shapes() {
        for b in [
            json!(null),
            json!(1),
            json!("s"),
            json!([{"messages": []}]),
            json!({}),
            json!({"messages": "not a list"}),
            json!({"prompt": 5}),
            json!({"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}),
        ] {
            assert_eq!(detect_format(None, &b), ApiFormat::Unknown, "{b}");
        }
    }

    #[test]
    fn unknown_extracts_every_string() {
        // A Gemini generateContent body: not a format this crate knows.
        let body = json!({
            "contents": [{"role": "user", "parts": [{"text": "Write a story about a magic backpack."}]}],
            "generationConfig": {"maxOutputTokens": 800, "stopSequences": ["Title"]}
        });
        let got = segs(ApiFormat::Unknown, Phase::Request, &body);
        // Object keys come in the map's order (sorted, unless serde_json's preserve_order).
        let mut found = texts(&got);
        found.sort_by_key(|(r, t)| (r.name(), *t));
        assert_eq!(
            found,
            vec![
                (Role::Other, "Title"),
                (Role::Other, "Write a story about a magic backpack."),
                (Role::Other, "user"),
            ]
        );
        let story = got.iter().find(|s| s.text.starts_with("Write")).unwrap();
        assert_eq!(
            story.path,
            vec![key("contents"), idx(0), key("parts"), idx(0), key("text")]
        );
        assert_eq!(segs(ApiFormat::Unknown, Phase::Response, &body).len(), 3);
        assert_round_trip(ApiFormat::Unknown, Phase::Request, &body, 3);

        // No system slot, no known bound, nothing added.
        let mut b = body.clone();
        assert!(!add_system_message(ApiFormat::Unknown, &mut b, "x"));
        assert_eq!(max_tokens(ApiFormat::Unknown, &b), None);
        set_max_tokens(ApiFormat::Unknown, &mut b, 5);
        assert_eq!(b, body);
        let mut b = json!({"max_output_tokens": 900, "max_tokens": 1000, "x": 1});
        assert_eq!(max_tokens(ApiFormat::Unknown, &b), Some(1000));
        set_max_tokens(ApiFormat::Unknown, &mut b, 5);
        assert_eq!(b, json!({"max_output_tokens": 5, "max_tokens": 5, "x": 1}));
    }

    #[test]
    fn usage_for_unknown_and_mismatched_names() {
        let chat = json!({"usage": {"prompt_tokens": 3, "completion_tokens": 4}});
        let resp = json!({"usage": {"input_tokens": 3, "output_tokens": 4}});
        let want = Some(Usage {
            prompt_tokens: Some(3),
            completion_tokens: Some(4),
            total_tokens: Some(7),
        });
        for f in [
            ApiFormat::Unknown,
            ApiFormat::OpenaiChat,
            ApiFormat::OpenaiResponses,
            ApiFormat::OpenaiCompletions,
        ] {
            assert_eq!(usage(f, &chat), want, "{f:?}");
            assert_eq!(usage(f, &resp), want, "{f:?}");
        }
        assert_eq!(
            usage(
                ApiFormat::OpenaiChat,
                &json!({"usage": {"total_tokens": 9}})
            ),
            None
        );
        assert_eq!(
            usage(ApiFormat::OpenaiChat, &json!({"usage": [1, 2]})),
            None
        );
        assert_eq!(usage(ApiFormat::OpenaiChat, &json!("usage")), None);
        assert_eq!(
            usage(
                ApiFormat::OpenaiChat,
                &json!({"usage": {"prompt_tokens": "3", "completion_tokens": -1}})
            ),
            None
        );
    }

    #[test]
    fn counts() {
        assert_eq!(count(&json!(12)), Some(12));
        assert_eq!(count(&json!(12.0)), Some(12));
        assert_eq!(count(&json!(0)), Some(0));
        assert_eq!(count(&json!(12.5)), None);
        assert_eq!(count(&json!(-1)), None);
        assert_eq!(count(&json!(-1.0)), None);
        assert_eq!(count(&json!(1e300)), None);
        assert_eq!(count(&json!("12")), None);
        assert_eq!(count(&json!(null)), None);
        assert_eq!(count(&json!(u64::MAX)), Some(u64::MAX));
    }

    #[test]
    fn model_and_stream() {
        let mut b = json!({"model": "gpt-4o", "stream": true});
        assert_eq!(model(&b), Some("gpt-4o"));
        assert!(is_stream(&b));
        assert!(try_set_model(&mut b, "gpt-4o-mini"));
        assert_eq!(model(&b), Some("gpt-4o-mini"));
        let mut absent = json!({"messages": []});
        set_model(&mut absent, "m");
        assert_eq!(model(&absent), Some("m"));
        let mut not_obj = json!([1]);
        assert!(!try_set_model(&mut not_obj, "m"));
        assert_eq!(not_obj, json!([1]));
        assert_eq!(model(&json!({"model": 5})), None);
        assert!(!is_stream(&json!({"stream": "true"})));
        assert!(!is_stream(&json!({})));
    }

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::from_name(r.name()), Some(*r));
        }
        assert_eq!(Role::from_name("function"), None);
    }

    /// Clients choose roles: every value maps to a role policies can name.
    #[test]
    fn wire_roles_map_case_and_unknowns() {
        let cases = [
            ("user", Role::User),
            ("User", Role::User),
            (" USER\n", Role::User),
            ("\tassistant ", Role::Assistant),
            ("assistants", Role::Other),
            ("function_result", Role::Other),
            ("SYSTEM", Role::System),
            ("Developer", Role::Developer),
            ("assistant", Role::Assistant),
            ("tool", Role::Tool),
            ("function", Role::Tool),
            ("Function", Role::Tool),
            ("other", Role::Other),
            ("critic", Role::Other),
            ("sуstem", Role::Other), // Cyrillic у: not a role any API knows
            ("", Role::Other),
        ];
        for (wire, role) in cases {
            assert_eq!(Role::from_wire(wire), role, "{wire:?}");
        }
    }

    /// Every form a bound can take, read as generously as any upstream could.
    #[test]
    fn token_bounds_in_every_form() {
        let f = ApiFormat::OpenaiCompletions;
        let read = |v: Value| {
            let b = json!({ "max_tokens": v });
            (max_tokens(f, &b), invalid_max_tokens(f, &b))
        };
        for (v, n) in [
            (json!(4096), 4096),
            (json!(4096.0), 4096),
            (json!(4.096e3), 4096),
            (json!(0), 0),
            (json!(-0.0), 0),
            (json!(12.5), 13),
            (json!(1e20), u64::MAX),
            (json!(u64::MAX), u64::MAX),
            (json!(1e300), u64::MAX),
            (json!("4096"), 4096),
            (json!(" +4096 "), 4096),
            (json!("4096.0"), 4096),
            (json!("1e20"), u64::MAX),
            (json!("99999999999999999999999"), u64::MAX),
            (json!("0.5"), 1),
        ] {
            assert_eq!(read(v.clone()), (Some(n), None), "{v}");
        }
        for v in [
            json!(-1),
            json!(-0.5),
            json!("-1"),
            json!("lots"),
            json!(""),
            json!("NaN"),
            json!("inf"),
            json!(".5"),
            json!("1_000"),
            json!("0x10"),
            json!(true),
            json!([4096]),
            json!({"n": 4096}),
        ] {
            assert_eq!(read(v.clone()), (Some(u64::MAX), Some("max_tokens")), "{v}");
        }
        assert_eq!(read(json!(null)), (None, None));
        assert_eq!(max_tokens(f, &json!({})), None);
        // The format's own fields only: a chat body's `max_output_tokens` is not a bound.
        let chat = json!({"max_output_tokens": "x", "max_completion_tokens": 5});
        assert_eq!(max_tokens(ApiFormat::OpenaiChat, &chat), Some(5));
        assert_eq!(invalid_max_tokens(ApiFormat::OpenaiChat, &chat), None);
        assert_eq!(
            invalid_max_tokens(ApiFormat::OpenaiResponses, &chat),
            Some("max_output_tokens")
        );
    }

    #[test]
    fn caps_write_integers_and_never_raise_a_bound() {
        let capped = |f: ApiFormat, mut b: Value, cap: u64| {
            let changed = cap_max_tokens(f, &mut b, cap);
            (changed, b)
        };
        let chat = ApiFormat::OpenaiChat;
        for v in [
            json!(1e20),
            json!("8192"),
            json!(9000.5),
            json!("lots"),
            json!(-1),
        ] {
            let (changed, b) = capped(chat, json!({"max_tokens": v}), 4096);
            assert!(changed);
            assert_eq!(b, json!({"max_tokens": 4096}));
        }
        // Within the cap: the value stays, as an integer.
        let (changed, b) = capped(chat, json!({"max_tokens": "100"}), 4096);
        assert!(changed);
        assert_eq!(b, json!({"max_tokens": 100}));
        let (changed, b) = capped(chat, json!({"max_tokens": 100}), 4096);
        assert!(!changed);
        assert_eq!(b, json!({"max_tokens": 100}));
        // Each field on its own: the smaller one is not raised to the cap.
        let (_, b) = capped(
            chat,
            json!({"max_completion_tokens": 100, "max_tokens": 1e20}),
            4096,
        );
        assert_eq!(b, json!({"max_completion_tokens": 100, "max_tokens": 4096}));
        // None in use: added where the format keeps it; never to unknown shapes.
        let (changed, b) = capped(ApiFormat::AnthropicMessages, json!({"messages": []}), 10);
        assert!(changed);
        assert_eq!(b["max_tokens"], 10);
        let (changed, b) = capped(ApiFormat::Unknown, json!({"x": 1}), 10);
        assert!(!changed);
        assert_eq!(b, json!({"x": 1}));
        let (changed, b) = capped(ApiFormat::Unknown, json!({"max_output_tokens": "5e9"}), 10);
        assert!(changed);
        assert_eq!(b, json!({"max_output_tokens": 10}));
        let (changed, _) = capped(ApiFormat::OpenaiEmbeddings, json!({"input": "x"}), 10);
        assert!(!changed);
    }

    #[test]
    fn replace_text_fails_when_the_path_moved() {
        let mut body = json!({"messages": [{"role": "user", "content": "hi"}]});
        let path = vec![key("messages"), idx(0), key("content")];
        assert!(replace_text(&mut body, &path, "yo".into()));
        assert_eq!(body["messages"][0]["content"], "yo");
        body["messages"][0]["content"] = json!([{"type": "text", "text": "x"}]);
        assert!(!replace_text(&mut body, &path, "zz".into()));
        assert!(!replace_text(
            &mut body,
            &[key("messages"), idx(5)],
            "zz".into()
        ));
        assert_eq!(body["messages"][0]["content"][0]["text"], "x");
    }

    /// Every format on every hostile body: no panic, and every segment points at its string.
    #[test]
    fn every_format_on_hostile_bodies() {
        let formats = [
            ApiFormat::OpenaiChat,
            ApiFormat::OpenaiResponses,
            ApiFormat::OpenaiCompletions,
            ApiFormat::OpenaiEmbeddings,
            ApiFormat::AnthropicMessages,
            ApiFormat::Unknown,
        ];
        let bodies = [
            json!(null),
            json!(true),
            json!(3.5),
            json!("text"),
            json!([null, "a", {"b": "c"}]),
            json!({"messages": [{"content": null}], "input": null, "prompt": null, "system": null,
                   "instructions": null, "choices": null, "output": null, "content": null}),
            json!({"messages": 1, "input": 2, "prompt": 3, "system": 4, "instructions": 5,
                   "choices": 6, "output": 7, "content": 8, "usage": 9, "max_tokens": 10.5}),
            json!({"messages": [[]], "input": [[]], "prompt": [[]], "system": [[]], "choices": [[]],
                   "output": [[]], "content": [[]]}),
        ];
        for f in formats {
            for b in &bodies {
                for phase in [Phase::Request, Phase::Response] {
                    for s in segs(f, phase, b) {
                        assert_eq!(path::get(b, &s.path).and_then(Value::as_str), Some(s.text));
                    }
                }
                let _ = detect_format(None, b);
                let _ = usage(f, b);
                let _ = max_tokens(f, b);
                let mut m = b.clone();
                let _ = add_system_message(f, &mut m, "x");
                set_max_tokens(f, &mut m, 1);
                set_model(&mut m, "m");
            }
        }
    }
}
