//! LLM API body formats: which API a body belongs to, the texts in it (with their roles),
//! and writing changed texts and parameters back so the body stays valid for its API.
//!
//! PLACEHOLDER: the format modules are being written; signatures below are the contract.

use serde_json::Value;

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
}

/// One step of a path from the body root to a string value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// One inspectable text of a body, borrowed from the parsed body, with where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    pub role: Role,
    pub text: &'a str,
    pub path: Vec<PathSeg>,
}

/// Token usage reported by a response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
}

/// Which API a body belongs to, from the request path when known, else from its shape.
pub fn detect_format(_path: Option<&str>, _body: &Value) -> ApiFormat {
    ApiFormat::Unknown
}

/// Appends the inspectable texts of `body` for `phase`. `Unknown` yields every string value.
pub fn extract<'a>(
    _format: ApiFormat,
    _phase: Phase,
    _body: &'a Value,
    _out: &mut Vec<Segment<'a>>,
) {
}

/// Replaces the string at `path`; false when the path does not lead to a string.
pub fn replace_text(_body: &mut Value, _path: &[PathSeg], _text: String) -> bool {
    false
}

/// The requested (or, in a response, served) model.
pub fn model(body: &Value) -> Option<&str> {
    body.get("model").and_then(Value::as_str)
}

pub fn set_model(_body: &mut Value, _model: &str) {}

/// The requested output-token bound, under the field name the format uses.
pub fn max_tokens(_format: ApiFormat, _body: &Value) -> Option<u64> {
    None
}

pub fn set_max_tokens(_format: ApiFormat, _body: &mut Value, _n: u64) {}

/// Adds a system instruction where the format keeps one; false when it has none (embeddings).
pub fn add_system_message(_format: ApiFormat, _body: &mut Value, _text: &str) -> bool {
    false
}

/// Token usage from a response body.
pub fn usage(_format: ApiFormat, _response: &Value) -> Option<Usage> {
    None
}

/// Whether the request asks for a streamed (SSE) response.
pub fn is_stream(body: &Value) -> bool {
    body.get("stream").and_then(Value::as_bool).unwrap_or(false)
}
