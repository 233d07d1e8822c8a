//! What each provider's streamed (SSE) events carry: output text deltas and where they sit in
//! the event's JSON, where each text ends, usage, the served model, the end of the stream, and
//! the end of a stream (the error event a refusal ends one with is in `engine::reply`).
//!
//! OpenAI chat completions: `data: {chunk}` with `choices[].delta.content` (a string, or
//! parts) / `.refusal` / `.tool_calls[].function.arguments` and `.custom.input` / the legacy
//! `.function_call.arguments`, `finish_reason` ending a choice, `usage` in a final chunk
//! (`stream_options.include_usage`), then `data: [DONE]`. Legacy completions: `choices[].text`.
//! Responses API: typed events; `response.output_text.delta`, `response.refusal.delta` and
//! `response.function_call_arguments.delta` stream text, the matching `.done` events, the
//! `content_part.done` / `output_item.done` events and the final `response.completed` repeat
//! the whole text (redacted as a whole by the caller). Anthropic messages: `message_start`
//! (model, input usage), `content_block_start` / `content_block_delta` (`text_delta`,
//! `input_json_delta`) / `content_block_stop`, `message_delta` (output usage), `message_stop`.
//! Thinking deltas are signed by the provider and are not inspected, as in whole bodies.
//!
//! Every other string of an event is text too (vendor extensions such as `reasoning_content`,
//! fields no documentation names): strings inside a chat `delta`, and the `delta` of a
//! Responses event type not listed above, extend a channel of their own ([`ChannelKind::Extra`],
//! one per field), so a value split over events is seen whole; any other string is a text of
//! its event alone (`once`). Structural values (ids, types, roles, models, signatures), usage,
//! `logprobs` (blanked when text changes) and what a `.done` event repeats are not.

use std::borrow::Cow;

use serde_json::Value;

use super::path::{emit, idx, key, str_field};
use super::{
    anthropic_messages, openai_responses, ApiFormat, PathId, PathSeg, Role, Texts, TooComplex,
    Usage,
};

/// What kind of text a channel carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChannelKind {
    Text,
    Refusal,
    ToolInput,
    /// A field no provider documents as text (see the module documentation).
    Extra,
}

/// One text being streamed: a choice's content, a content block, a tool call's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Channel {
    /// The choice (OpenAI chat), output item (Responses) or content block (Anthropic).
    pub index: u64,
    pub kind: ChannelKind,
    /// The tool call within a choice, or the content part within an output item.
    pub sub: u64,
}

/// A step of a path into an event's JSON, owned: events are kept as bytes and parsed again
/// when their text changes, and an extra field's key is the event's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(Cow<'static, str>),
    Index(usize),
}

impl From<PathSeg<'static>> for Step {
    fn from(s: PathSeg<'static>) -> Step {
        match s {
            PathSeg::Key(k) => Step::Key(Cow::Borrowed(k)),
            PathSeg::Index(i) => Step::Index(i),
        }
    }
}

/// `steps` as a path to navigate with.
pub fn as_path(steps: &[Step]) -> Vec<PathSeg<'_>> {
    steps
        .iter()
        .map(|s| match s {
            Step::Key(k) => PathSeg::Key(k),
            Step::Index(i) => PathSeg::Index(*i),
        })
        .collect()
}

fn steps(path: Vec<PathSeg<'static>>) -> Vec<Step> {
    path.into_iter().map(Step::from).collect()
}

/// A piece of streamed text: the string at `path` in the event's JSON extends `channel`; a
/// `once` piece is a whole text of its event (the inspector gives it a channel of its own,
/// ended with the event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub channel: Channel,
    pub path: Vec<Step>,
    pub once: bool,
}

/// Text an event repeats whole (Responses API `.done` events, `output_item.done`,
/// `response.completed`): already inspected as it streamed, redacted again as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whole {
    /// The string at this path.
    At(&'static [PathSeg<'static>]),
    /// Every text of the output item at `item`.
    Item,
    /// Every output text of the response at `response`.
    Response,
}

/// Texts that end with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    One(Channel),
    /// Every channel of a choice, output item or content block.
    Index(u64),
    All,
}

impl End {
    pub fn covers(self, c: Channel) -> bool {
        match self {
            End::One(one) => one == c,
            End::Index(i) => c.index == i,
            End::All => true,
        }
    }
}

/// What one event means for inspection.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EventInfo {
    pub deltas: Vec<Delta>,
    pub ends: Vec<End>,
    /// Texts that repeat text already streamed (Responses API `.done` events).
    pub whole: Vec<Whole>,
    pub usage: Option<Usage>,
    pub model: Option<String>,
    /// The last event of a complete stream.
    pub terminal: bool,
    /// The provider reported an error in the stream.
    pub error: bool,
    /// Responses API `sequence_number`.
    pub sequence_number: Option<u64>,
}

/// The `data` of OpenAI's last event.
pub const DONE: &str = "[DONE]";

/// Reads one event's parsed `data` (every provider repeats the event's type in it).
pub fn interpret(format: ApiFormat, data: &Value) -> EventInfo {
    let mut info = EventInfo {
        sequence_number: data.get("sequence_number").and_then(Value::as_u64),
        ..EventInfo::default()
    };
    match format {
        ApiFormat::AnthropicMessages => anthropic(data, &mut info),
        ApiFormat::OpenaiResponses => responses(data, &mut info),
        _ => choices(format, data, &mut info),
    }
    extras(format, data, &mut info);
    info
}

/// Keys under which nothing is text: usage counts, token log-probabilities (they spell the
/// text out and are blanked when it changes).
const NOT_TEXT: &[&str] = &["usage", "logprobs", "top_logprobs"];

/// Identifiers the provider writes into its events (besides the structural keys of bodies):
/// rewriting them breaks the stream's bookkeeping, and no model writes text there. Requests
/// keep inspecting these keys: there the client writes them.
const EVENT_IDS: &[&str] = &[
    "id",
    "call_id",
    "item_id",
    "tool_call_id",
    "tool_use_id",
    "event_id",
    "response_id",
    "previous_response_id",
    "obfuscation",
];

/// Every string of the event no known field covers, as extra deltas (see the module
/// documentation).
fn extras(format: ApiFormat, data: &Value, info: &mut EventInfo) {
    let whole: Vec<Vec<Step>> = info
        .whole
        .iter()
        .map(|w| match w {
            Whole::At(p) => p.iter().copied().map(Step::from).collect(),
            Whole::Item => vec![Step::Key(Cow::Borrowed("item"))],
            Whole::Response => vec![Step::Key(Cow::Borrowed("response"))],
        })
        .collect();
    let mut skip: Vec<(u64, &[Step])> = info
        .deltas
        .iter()
        .map(|d| d.path.as_slice())
        .chain(whole.iter().map(Vec::as_slice))
        .map(|p| (fnv(p), p))
        .collect();
    crate::sort::sort_by(&mut skip, &|a, b| a.0.cmp(&b.0));
    let mut walk = Walk {
        skip: &skip,
        path: Vec::new(),
        found: Vec::new(),
    };
    walk.value(data, None, None, FNV_BASIS);
    for p in walk.found {
        let channel = match (format, p.as_slice()) {
            // Inside a chat `delta`: a field that streams, one channel per field.
            (
                ApiFormat::OpenaiChat | ApiFormat::OpenaiCompletions | ApiFormat::Unknown,
                [Step::Key(c), Step::Index(k), Step::Key(d), rest @ ..],
            ) if c == "choices" && d == "delta" => {
                let index = data
                    .get("choices")
                    .and_then(|cs| cs.get(*k))
                    .map_or(*k as u64, |choice| index_of(choice, *k));
                Some(Channel {
                    index,
                    kind: ChannelKind::Extra,
                    sub: fnv(rest),
                })
            }
            _ => None,
        };
        info.deltas.push(Delta {
            channel: channel.unwrap_or(Channel {
                index: 0,
                kind: ChannelKind::Extra,
                sub: 0,
            }),
            path: p,
            once: channel.is_none(),
        });
    }
}

/// A step of the path being walked, borrowed from the event.
#[derive(Clone, Copy)]
enum At<'a> {
    Key(&'a str),
    Index(usize),
}

/// The walk over an event for the strings no known field covers. The path is kept borrowed
/// and hashed step by step (FNV), so a node costs no allocation and one binary search of the
/// known fields' path hashes, whatever their number; a found path is made owned once.
struct Walk<'a, 's> {
    /// The known fields' paths, by hash.
    skip: &'s [(u64, &'s [Step])],
    path: Vec<At<'a>>,
    found: Vec<Vec<Step>>,
}

impl<'a> Walk<'a, '_> {
    /// Whether the path walked, of hash `h`, is a known field's.
    fn skipped(&self, h: u64) -> bool {
        let from = self.skip.partition_point(|(k, _)| *k < h);
        self.skip
            .get(from..)
            .unwrap_or_default()
            .iter()
            .take_while(|(k, _)| *k == h)
            .any(|(_, p)| {
                p.len() == self.path.len()
                    && p.iter().zip(&self.path).all(|(a, b)| match (a, b) {
                        (Step::Key(x), At::Key(y)) => x == y,
                        (Step::Index(x), At::Index(y)) => x == y,
                        _ => false,
                    })
            })
    }

    /// Collects the paths of the strings under `v` (at the path walked, of hash `h`) that
    /// are text (not known fields, not structural).
    fn value(
        &mut self,
        v: &'a Value,
        key: Option<&str>,
        parent: Option<&serde_json::Map<String, Value>>,
        h: u64,
    ) {
        if self.path.len() > super::MAX_DEPTH || self.skipped(h) {
            return;
        }
        match v {
            Value::String(s)
                if !s.is_empty()
                    && !key.is_some_and(|k| {
                        super::generic::structural(k) || EVENT_IDS.contains(&k)
                    })
                    && !super::generic::binary(key, parent, s) =>
            {
                self.found.push(
                    self.path
                        .iter()
                        .map(|a| match a {
                            At::Key(k) => Step::Key(Cow::Owned((*k).to_string())),
                            At::Index(i) => Step::Index(*i),
                        })
                        .collect(),
                );
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.path.push(At::Index(i));
                    self.value(item, None, None, fnv_step(h, &i.to_le_bytes()));
                    self.path.pop();
                }
            }
            Value::Object(m) if !super::generic::signed(m) => {
                for (k, item) in m {
                    if NOT_TEXT.contains(&k.as_str()) {
                        continue;
                    }
                    self.path.push(At::Key(k));
                    self.value(item, Some(k), Some(m), fnv_step(h, k.as_bytes()));
                    self.path.pop();
                }
            }
            _ => {}
        }
    }
}

const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a of `hash` followed by one step's bytes and a separator.
fn fnv_step(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes.iter().chain(b"/") {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// FNV-1a of a path (a field's channel number below the delta; the walk's path hashes).
fn fnv(path: &[Step]) -> u64 {
    path.iter().fold(FNV_BASIS, |h, s| match s {
        Step::Key(k) => fnv_step(h, k.as_bytes()),
        Step::Index(i) => fnv_step(h, &i.to_le_bytes()),
    })
}

/// Roles are those of whole response bodies: every streamed output text is the assistant's.
pub const ROLE: Role = Role::Assistant;

fn index_of(v: &Value, position: usize) -> u64 {
    v.get("index")
        .and_then(Value::as_u64)
        .unwrap_or(position as u64)
}

/// OpenAI chat completions and legacy completions chunks.
fn choices(format: ApiFormat, data: &Value, info: &mut EventInfo) {
    if data.get("error").is_some_and(|e| !e.is_null()) {
        info.error = true;
    }
    info.model = str_field(data, "model").map(str::to_string);
    info.usage = data
        .get("usage")
        .filter(|u| u.is_object())
        .and_then(|_| super::usage(ApiFormat::OpenaiChat, data));
    let Some(choices) = data.get("choices").and_then(Value::as_array) else {
        return;
    };
    for (k, choice) in choices.iter().enumerate() {
        let i = index_of(choice, k);
        let at = |more: &[PathSeg<'static>]| {
            let mut p = vec![key("choices"), idx(k)];
            p.extend_from_slice(more);
            p
        };
        let mut text = |kind, sub, path: Vec<PathSeg<'static>>| {
            info.deltas.push(Delta {
                channel: Channel {
                    index: i,
                    kind,
                    sub,
                },
                path: steps(path),
                once: false,
            })
        };
        if format == ApiFormat::OpenaiCompletions || choice.get("text").is_some() {
            if choice.get("text").is_some_and(Value::is_string) {
                text(ChannelKind::Text, 0, at(&[key("text")]));
            }
        } else if let Some(delta) = choice.get("delta") {
            match delta.get("content") {
                Some(Value::String(_)) => {
                    text(ChannelKind::Text, 0, at(&[key("delta"), key("content")]))
                }
                // Content as parts, as some compatible servers stream it.
                Some(Value::Array(parts)) => {
                    for (j, part) in parts.iter().enumerate() {
                        if part.get("text").is_some_and(Value::is_string) {
                            text(
                                ChannelKind::Text,
                                0,
                                at(&[key("delta"), key("content"), idx(j), key("text")]),
                            );
                        }
                    }
                }
                _ => {}
            }
            // The legacy functions API streams its arguments here.
            let legacy = delta.get("function_call").and_then(|f| f.get("arguments"));
            if legacy.is_some_and(Value::is_string) {
                let path = at(&[key("delta"), key("function_call"), key("arguments")]);
                text(ChannelKind::ToolInput, u64::MAX, path);
            }
            if delta.get("refusal").is_some_and(Value::is_string) {
                text(ChannelKind::Refusal, 0, at(&[key("delta"), key("refusal")]));
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for (j, call) in calls.iter().enumerate() {
                    // Function tools stream `function.arguments`, custom tools `custom.input`.
                    for (outer, inner) in [("function", "arguments"), ("custom", "input")] {
                        let value = call.get(outer).and_then(|f| f.get(inner));
                        if value.is_some_and(Value::is_string) {
                            let path = at(&[
                                key("delta"),
                                key("tool_calls"),
                                idx(j),
                                key(outer),
                                key(inner),
                            ]);
                            text(ChannelKind::ToolInput, index_of(call, j), path);
                        }
                    }
                }
            }
        }
        if choice.get("finish_reason").is_some_and(Value::is_string) {
            info.ends.push(End::Index(i));
        }
    }
}

fn responses(data: &Value, info: &mut EventInfo) {
    let kind = str_field(data, "type").unwrap_or_default();
    let output = data
        .get("output_index")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let part = data
        .get("content_index")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let channel = |kind| Channel {
        index: output,
        kind,
        sub: part,
    };
    let mut delta = |kind| {
        if data.get("delta").is_some_and(Value::is_string) {
            info.deltas.push(Delta {
                channel: channel(kind),
                path: steps(vec![key("delta")]),
                once: false,
            });
        }
    };
    match kind {
        "response.output_text.delta" => delta(ChannelKind::Text),
        "response.refusal.delta" => delta(ChannelKind::Refusal),
        "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
            delta(ChannelKind::ToolInput)
        }
        "response.output_text.done" => {
            info.ends.push(End::One(channel(ChannelKind::Text)));
            info.whole.push(Whole::At(&[PathSeg::Key("text")]));
        }
        "response.refusal.done" => {
            info.ends.push(End::One(channel(ChannelKind::Refusal)));
            info.whole.push(Whole::At(&[PathSeg::Key("refusal")]));
        }
        "response.function_call_arguments.done" | "response.custom_tool_call_input.done" => {
            info.ends.push(End::One(channel(ChannelKind::ToolInput)));
            info.whole.push(Whole::At(&[PathSeg::Key("arguments")]));
            info.whole.push(Whole::At(&[PathSeg::Key("input")]));
        }
        "response.content_part.done" => {
            info.ends.push(End::One(channel(ChannelKind::Text)));
            info.ends.push(End::One(channel(ChannelKind::Refusal)));
            info.whole
                .push(Whole::At(&[PathSeg::Key("part"), PathSeg::Key("text")]));
            info.whole
                .push(Whole::At(&[PathSeg::Key("part"), PathSeg::Key("refusal")]));
        }
        "response.output_item.done" => {
            info.ends.push(End::Index(output));
            if data.get("item").is_some() {
                info.whole.push(Whole::Item);
            }
        }
        "response.created" | "response.in_progress" => {
            info.model = data
                .get("response")
                .and_then(|r| str_field(r, "model"))
                .map(str::to_string);
        }
        "response.completed" | "response.incomplete" | "response.failed" => {
            info.ends.push(End::All);
            info.terminal = true;
            info.error = kind == "response.failed";
            if let Some(response) = data.get("response") {
                info.model = str_field(response, "model").map(str::to_string);
                info.usage = super::usage(ApiFormat::OpenaiResponses, response);
                info.whole.push(Whole::Response);
            }
        }
        "error" => {
            info.error = true;
            info.terminal = true;
            info.ends.push(End::All);
        }
        // A type not listed that streams text (`response.reasoning_summary_text.delta`…):
        // a channel of its own, ended by its `.done` event.
        other => {
            let extra = |base: &str| Channel {
                index: output,
                kind: ChannelKind::Extra,
                sub: fnv(&[Step::Key(Cow::Owned(base.to_string()))]) ^ part,
            };
            if let Some(base) = other.strip_suffix(".delta") {
                if data.get("delta").is_some_and(Value::is_string) {
                    info.deltas.push(Delta {
                        channel: extra(base),
                        path: steps(vec![key("delta")]),
                        once: false,
                    });
                }
            } else if let Some(base) = other.strip_suffix(".done") {
                info.ends.push(End::One(extra(base)));
            }
        }
    }
}

/// The texts `whole` names in an event's `data`, with paths from its root.
pub fn whole_texts<'a>(data: &'a Value, whole: &[Whole]) -> Result<Texts<'a>, TooComplex> {
    let mut out = Texts::new();
    for w in whole {
        match w {
            Whole::At(path) => emit(
                &mut out,
                ROLE,
                super::path::get(data, path),
                PathId::ROOT,
                path,
            ),
            Whole::Item => {
                if let Some(item) = data.get("item") {
                    let at = out.at(PathId::ROOT, &[key("item")]);
                    openai_responses::output_item(item, at, &mut out);
                }
            }
            Whole::Response => {
                if let Some(response) = data.get("response") {
                    let at = out.at(PathId::ROOT, &[key("response")]);
                    openai_responses::extract_response_at(response, at, &mut out);
                }
            }
        }
    }
    out.finish()
}

fn anthropic(data: &Value, info: &mut EventInfo) {
    let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
    let channel = |kind| Channel {
        index,
        kind,
        sub: 0,
    };
    match str_field(data, "type").unwrap_or_default() {
        "message_start" => {
            if let Some(m) = data.get("message") {
                info.model = str_field(m, "model").map(str::to_string);
                info.usage = m
                    .get("usage")
                    .filter(|u| u.is_object())
                    .and_then(anthropic_messages::usage);
            }
        }
        "content_block_start" => {
            let block = data.get("content_block");
            if block.and_then(|b| str_field(b, "type")) == Some("text")
                && block
                    .and_then(|b| b.get("text"))
                    .is_some_and(Value::is_string)
            {
                info.deltas.push(Delta {
                    channel: channel(ChannelKind::Text),
                    path: steps(vec![key("content_block"), key("text")]),
                    once: false,
                });
            }
        }
        "content_block_delta" => {
            let d = data.get("delta");
            let (kind, field) = match d.and_then(|d| str_field(d, "type")) {
                Some("text_delta") => (ChannelKind::Text, "text"),
                Some("input_json_delta") => (ChannelKind::ToolInput, "partial_json"),
                _ => return,
            };
            if d.and_then(|d| d.get(field)).is_some_and(Value::is_string) {
                info.deltas.push(Delta {
                    channel: channel(kind),
                    path: steps(vec![key("delta"), key(field)]),
                    once: false,
                });
            }
        }
        "content_block_stop" => info.ends.push(End::Index(index)),
        "message_delta" => {
            info.usage = data
                .get("usage")
                .filter(|u| u.is_object())
                .and_then(anthropic_messages::usage);
        }
        "message_stop" => {
            info.terminal = true;
            info.ends.push(End::All);
        }
        "error" => {
            info.error = true;
            info.terminal = true;
            info.ends.push(End::All);
        }
        _ => {}
    }
}
