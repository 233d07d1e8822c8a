//! A typed, borrowed reading of the streamed events that make up nearly every stream: OpenAI
//! chat and legacy completion chunks, Anthropic's text and tool-input deltas, block stops and
//! pings, and the Responses API's text deltas. Their text is borrowed from the event's `data`
//! (copied only when it has escapes), no `serde_json::Value` is built and the event is not
//! walked for stray strings: [`read`] gives exactly what [`super::stream::interpret`] gives
//! for the same event, plus each delta's text.
//!
//! It reads only the exact known shapes: every field is named (`deny_unknown_fields`), typed
//! (an identifier must be a string, `logprobs` and `usage` must be null or empty) and given
//! once (serde's derive refuses a repeated field). Anything else (a field no shape lists, a
//! usage or error object, a `.done` event repeating text, a repeated key, a number where a
//! string goes, JSON serde_json refuses) is `None`, and the caller reads the event the general
//! way, strict parse and walk included, so hostile or unusual events keep their outcome.
//! Every string a shape accepts outside its deltas sits under a structural or identifier key
//! (`id`, `model`, `type`, `role`, `finish_reason`...), which the general walk never treats as
//! text; so a shape read here has no extra texts.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::stream::{Channel, ChannelKind, Delta, End, EventInfo, Step};
use super::ApiFormat;

/// An event read by its known shape: what it means, and the text of each of `info.deltas`.
#[derive(Debug)]
pub struct Read<'a> {
    pub info: EventInfo,
    pub texts: Vec<Cow<'a, str>>,
}

/// Reads `data` (one event's data) when it has a known shape of `format`; `None` otherwise
/// (the caller then parses it the general way).
pub fn read(format: ApiFormat, data: &str) -> Option<Read<'_>> {
    let mut de = serde_json::Deserializer::from_str(data);
    let read = match format {
        ApiFormat::OpenaiChat | ApiFormat::OpenaiCompletions => {
            chunk(format, Chunk::deserialize(&mut de).ok()?)?
        }
        ApiFormat::AnthropicMessages => anthropic(Anthropic::deserialize(&mut de).ok()?)?,
        ApiFormat::OpenaiResponses => responses(Responses::deserialize(&mut de).ok()?)?,
        ApiFormat::OpenaiEmbeddings | ApiFormat::Unknown => return None,
    };
    de.end().ok()?;
    Some(read)
}

/// A JSON string, borrowed from the event unless it has escapes.
#[derive(Debug)]
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Str<'a>, D::Error> {
        d.deserialize_str(StrVisitor)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Str<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
        Ok(Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
        Ok(Str(Cow::Owned(v.to_string())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'de>, E> {
        Ok(Str(Cow::Owned(v)))
    }
}

/// An OpenAI chat (or legacy completions) chunk without usage or error. Fields only checked
/// (their type, given once) are never read.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Chunk<'a> {
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    object: Option<Str<'a>>,
    created: Option<u64>,
    #[serde(borrow)]
    model: Option<Str<'a>>,
    #[serde(borrow)]
    system_fingerprint: Option<Str<'a>>,
    #[serde(borrow)]
    service_tier: Option<Str<'a>>,
    #[serde(borrow)]
    obfuscation: Option<Str<'a>>,
    /// Null only: usage is read the general way (once per stream).
    usage: Option<()>,
    /// Null only.
    error: Option<()>,
    #[serde(borrow)]
    choices: Option<Vec<Choice<'a>>>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Choice<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    delta: Option<ChatDelta<'a>>,
    /// Legacy completions' text; absent and null differ (either is the text branch).
    #[serde(default, borrow, deserialize_with = "present")]
    text: Option<Option<Str<'a>>>,
    /// Null only (log-probabilities are read the general way).
    logprobs: Option<()>,
    #[serde(borrow)]
    finish_reason: Option<Str<'a>>,
}

/// A field that is there (even as null): `Some`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatDelta<'a> {
    #[serde(borrow)]
    role: Option<Str<'a>>,
    /// A string (content as parts is read the general way).
    #[serde(borrow)]
    content: Option<Str<'a>>,
    #[serde(borrow)]
    refusal: Option<Str<'a>>,
    #[serde(borrow)]
    function_call: Option<Function<'a>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<ToolCall<'a>>>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Function<'a> {
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    arguments: Option<Str<'a>>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolCall<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    function: Option<Function<'a>>,
}

fn key(k: &'static str) -> Step {
    Step::Key(Cow::Borrowed(k))
}

/// Collects deltas and their texts in the order `interpret` lists them.
#[derive(Default)]
struct Out<'a> {
    info: EventInfo,
    texts: Vec<Cow<'a, str>>,
}

impl<'a> Out<'a> {
    fn delta(&mut self, channel: Channel, path: Vec<Step>, text: Str<'a>) {
        self.info.deltas.push(Delta {
            channel,
            path,
            once: false,
        });
        self.texts.push(text.0);
    }

    fn done(self) -> Option<Read<'a>> {
        Some(Read {
            info: self.info,
            texts: self.texts,
        })
    }
}

fn chunk(format: ApiFormat, c: Chunk<'_>) -> Option<Read<'_>> {
    let mut out = Out::default();
    out.info.model = c.model.map(|m| m.0.into_owned());
    for (k, choice) in c.choices.unwrap_or_default().into_iter().enumerate() {
        let i = choice.index.unwrap_or(k as u64);
        let at = |more: &[&'static str]| {
            let mut p = vec![key("choices"), Step::Index(k)];
            p.extend(more.iter().map(|m| key(m)));
            p
        };
        let channel = |kind, sub| Channel {
            index: i,
            kind,
            sub,
        };
        if format == ApiFormat::OpenaiCompletions || choice.text.is_some() {
            if choice.delta.is_some() {
                // The delta's strings would be texts of their own: the general way.
                return None;
            }
            if let Some(Some(text)) = choice.text {
                out.delta(channel(ChannelKind::Text, 0), at(&["text"]), text);
            }
        } else if let Some(delta) = choice.delta {
            if let Some(content) = delta.content {
                let path = at(&["delta", "content"]);
                out.delta(channel(ChannelKind::Text, 0), path, content);
            }
            if let Some(args) = delta.function_call.and_then(|f| f.arguments) {
                let path = at(&["delta", "function_call", "arguments"]);
                out.delta(channel(ChannelKind::ToolInput, u64::MAX), path, args);
            }
            if let Some(refusal) = delta.refusal {
                let path = at(&["delta", "refusal"]);
                out.delta(channel(ChannelKind::Refusal, 0), path, refusal);
            }
            for (j, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                let sub = call.index.unwrap_or(j as u64);
                if let Some(args) = call.function.and_then(|f| f.arguments) {
                    let mut path = at(&["delta", "tool_calls"]);
                    path.extend([Step::Index(j), key("function"), key("arguments")]);
                    out.delta(channel(ChannelKind::ToolInput, sub), path, args);
                }
            }
        }
        if choice.finish_reason.is_some() {
            out.info.ends.push(End::Index(i));
        }
    }
    out.done()
}

/// An Anthropic messages event without a message, usage or error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Anthropic<'a> {
    #[serde(borrow, rename = "type")]
    kind: Str<'a>,
    index: Option<u64>,
    #[serde(borrow)]
    content_block: Option<Block<'a>>,
    #[serde(borrow)]
    delta: Option<Block<'a>>,
}

/// A text content block, or a text or tool-input delta.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Block<'a> {
    #[serde(borrow, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow)]
    text: Option<Str<'a>>,
    #[serde(borrow)]
    partial_json: Option<Str<'a>>,
}

fn anthropic(e: Anthropic<'_>) -> Option<Read<'_>> {
    let mut out = Out::default();
    let index = e.index.unwrap_or(0);
    let channel = |kind| Channel {
        index,
        kind,
        sub: 0,
    };
    match (&*e.kind.0, e.content_block, e.delta) {
        ("content_block_start", Some(block), None) => match block {
            Block {
                kind: Str(k),
                text: Some(text),
                partial_json: None,
            } if k == "text" => {
                let path = vec![key("content_block"), key("text")];
                out.delta(channel(ChannelKind::Text), path, text);
            }
            _ => return None,
        },
        ("content_block_delta", None, Some(delta)) => match delta {
            Block {
                kind: Str(k),
                text: Some(text),
                partial_json: None,
            } if k == "text_delta" => {
                let path = vec![key("delta"), key("text")];
                out.delta(channel(ChannelKind::Text), path, text);
            }
            Block {
                kind: Str(k),
                text: None,
                partial_json: Some(json),
            } if k == "input_json_delta" => {
                let path = vec![key("delta"), key("partial_json")];
                out.delta(channel(ChannelKind::ToolInput), path, json);
            }
            _ => return None,
        },
        ("content_block_stop", None, None) => out.info.ends.push(End::Index(index)),
        ("message_stop", None, None) => {
            out.info.terminal = true;
            out.info.ends.push(End::All);
        }
        ("ping", None, None) => {}
        _ => return None,
    }
    out.done()
}

/// A Responses API text delta.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Responses<'a> {
    #[serde(borrow, rename = "type")]
    kind: Str<'a>,
    sequence_number: Option<u64>,
    #[serde(borrow)]
    item_id: Option<Str<'a>>,
    output_index: Option<u64>,
    content_index: Option<u64>,
    #[serde(borrow)]
    delta: Option<Str<'a>>,
    /// Null or an empty list only.
    logprobs: Option<Vec<()>>,
    #[serde(borrow)]
    obfuscation: Option<Str<'a>>,
}

fn responses(e: Responses<'_>) -> Option<Read<'_>> {
    let kind = match &*e.kind.0 {
        "response.output_text.delta" => ChannelKind::Text,
        "response.refusal.delta" => ChannelKind::Refusal,
        "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
            ChannelKind::ToolInput
        }
        _ => return None,
    };
    let mut out = Out::default();
    out.info.sequence_number = e.sequence_number;
    if let Some(delta) = e.delta {
        let channel = Channel {
            index: e.output_index.unwrap_or(0),
            kind,
            sub: e.content_index.unwrap_or(0),
        };
        out.delta(channel, vec![key("delta")], delta);
    }
    out.done()
}

#[cfg(test)]
mod tests;
