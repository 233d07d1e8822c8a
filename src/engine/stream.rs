//! Inspection of a streamed (SSE) response as it passes: output text is checked by the
//! response rules, redacted even when an entity is split across events, and a refusal ends
//! the stream with the provider's error event. Memory is bounded whatever the stream's length.
//!
//! Events are held, in order, only while the text they carry is inside the hold-back
//! ([`super::holdback`]); an event goes out byte for byte unless its text changed, then its
//! `data` is re-serialized with the corrected text (its other lines stay, its `logprobs` are
//! blanked). When a redacted entity spans several events, its replacement goes in the event
//! where it starts and the later pieces become empty, so every event stays where it was
//! (sequence numbers and ids keep their places).
//!
//! Decisions are made on released text only: a finding is final once the text after it has
//! arrived (or the text has ended), so what is held can still grow into, or out of, an entity.
//!
//! Each event costs work in proportion to what it adds, whatever the stream's length and its
//! number of texts: only texts that changed are looked at again, a text's judged part (before
//! the hold-back's point; its findings are final) is never scanned again (only the text after
//! it, with [`CONTEXT_BYTES`] before it), nothing is scanned while nothing could be released,
//! the hold-back reads only new bytes, and the walk over queued events resumes where it
//! stopped.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::Value;

use super::holdback::{Holdback, Progress};
use super::redact;
use super::{
    find_hits, find_hits_scored, plan_edits, reason, reply, rule_mask, Hit, PhaseOutcome, Source,
};
use crate::llm::stream::{self, Channel, ChannelKind, End, EventInfo, Whole};
use crate::llm::{path, sse, ApiFormat, PathId, PathSeg, Phase, Segment, Usage};
use crate::policy::document::{EscalateMode, OnError};
use crate::policy::{Action, Policy};

/// Limits that bound a stream's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Largest single event (a `response.completed` repeats the whole output).
    pub max_event_bytes: usize,
    /// Most output text held back per text.
    pub max_holdback_bytes: usize,
    /// Most bytes of events waiting behind held text; beyond it everything is released.
    pub max_queued_bytes: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_event_bytes: 1 << 20,
            max_holdback_bytes: 8192,
            max_queued_bytes: 256 << 10,
        }
    }
}

/// How a stream ended, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The provider's final event arrived.
    Complete,
    /// The upstream ended the response without the final event.
    UpstreamIncomplete,
    /// The upstream connection broke midway.
    UpstreamDisconnected,
    /// The client went away midway.
    ClientDisconnected,
    /// The policy ended the stream (refusal or hold).
    Refused,
}

impl StreamEnd {
    pub fn name(self) -> &'static str {
        match self {
            StreamEnd::Complete => "complete",
            StreamEnd::UpstreamIncomplete => "upstream_incomplete",
            StreamEnd::UpstreamDisconnected => "upstream_disconnected",
            StreamEnd::ClientDisconnected => "client_disconnected",
            StreamEnd::Refused => "refused",
        }
    }

    /// The reason code of an exchange no rule decided, when the stream did not complete.
    pub fn reason_code(self) -> Option<&'static str> {
        match self {
            StreamEnd::Complete | StreamEnd::Refused => None,
            StreamEnd::UpstreamIncomplete => Some("STREAM_UPSTREAM_INCOMPLETE"),
            StreamEnd::UpstreamDisconnected => Some("STREAM_UPSTREAM_DISCONNECTED"),
            StreamEnd::ClientDisconnected => Some("STREAM_CLIENT_DISCONNECTED"),
        }
    }
}

/// What the record says about a stream besides the decision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StreamSummary {
    pub end: &'static str,
    pub events: u64,
    /// Most output text left waiting after a chunk was read, in bytes.
    pub max_held_bytes: u64,
    /// Times the hold-back limits forced text out before it could be judged whole.
    #[serde(skip_serializing_if = "is_zero")]
    pub overflows: u32,
    /// Events whose data was not the provider's JSON.
    #[serde(skip_serializing_if = "is_zero")]
    pub malformed_events: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Characters of text per token when usage must be estimated (OpenAI's rule of thumb).
const CHARS_PER_TOKEN: u64 = 4;
/// Released text kept before held text, so detectors see what precedes a new entity.
const CONTEXT_BYTES: usize = 128;
/// Most distinct texts (choices, blocks, tool calls) one stream may carry.
const MAX_CHANNELS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Inspecting,
    /// Inspection gave up (limits, `on_error: allow`): bytes pass unchanged.
    PassThrough,
    /// The policy ended the stream: nothing more goes out.
    Stopped,
}

#[derive(Debug, Default)]
struct ChannelText {
    /// Text not released yet is `text[skip..]`, which starts at offset `base` of the whole
    /// channel text (released text is dropped from the front now and then, not every time).
    text: String,
    skip: usize,
    base: u64,
    /// The tail of released text, starting after a whitespace when possible.
    context: String,
    closed: bool,
    /// Text before this offset is judged: its findings are final, in `found`.
    settled: u64,
    /// Findings in judged text not released yet, by start; none ends after `settled`.
    found: Vec<Found>,
    /// The union of `found`'s spans, sorted and disjoint: no release may end inside one.
    spans: Vec<(u64, u64)>,
    /// What the hold-back has read of the text.
    progress: Progress,
    /// Text arrived, or the text ended, since it was last judged (it is in `dirty`).
    dirty: bool,
    /// Unsettled text is not judged again until it is this long: the cap could not cut it
    /// without cutting a finding (judging again at once would only scan it again).
    retry_at: usize,
    /// Pieces of this channel in queued events.
    queued: usize,
}

impl ChannelText {
    /// Text not released yet.
    fn held(&self) -> &str {
        self.text.get(self.skip..).unwrap_or_default()
    }

    fn end(&self) -> u64 {
        self.base + self.held().len() as u64
    }

    /// The held text from `from` to `to` (channel offsets).
    fn slice(&self, from: u64, to: u64) -> &str {
        let a = from.saturating_sub(self.base) as usize;
        let b = to.saturating_sub(self.base) as usize;
        self.held().get(a..b).unwrap_or_default()
    }

    /// Whether `at` is strictly inside a finding of judged text.
    fn inside(&self, at: u64) -> bool {
        let i = self.spans.partition_point(|(s, _)| *s < at);
        i > 0 && self.spans.get(i - 1).is_some_and(|(_, e)| at < *e)
    }

    /// Adds findings that start at or after every finding already kept.
    fn keep(&mut self, found: impl IntoIterator<Item = Found>) {
        for f in found {
            match self.spans.last_mut() {
                Some((_, end)) if f.start < *end => *end = (*end).max(f.end),
                _ => self.spans.push((f.start, f.end)),
            }
            self.found.push(f);
        }
    }

    /// Text up to `to` goes out: it leaves the channel, a little stays as context. Returns the
    /// number of bytes released.
    fn release_to(&mut self, to: u64) -> usize {
        let cut = (to.saturating_sub(self.base) as usize).min(self.held().len());
        if cut == 0 {
            return 0;
        }
        let released = self.held().get(..cut).unwrap_or_default();
        super::work::add(released.len().min(CONTEXT_BYTES) + 1);
        self.context = context_of(&self.context, released);
        self.skip += cut;
        self.base += cut as u64;
        self.settled = self.settled.max(self.base);
        // Findings and spans before the cut were released with it (a release never ends inside
        // one).
        let f = self.found.partition_point(|f| f.start < self.base);
        self.found.drain(..f);
        let sp = self.spans.partition_point(|(s, _)| *s < self.base);
        self.spans.drain(..sp);
        // Amortised: the held part is moved only when it is at most what was dropped.
        if self.skip >= self.text.len() / 2 {
            super::work::add(self.text.len() - self.skip);
            self.text.drain(..self.skip);
            self.skip = 0;
        }
        cut
    }
}

/// How far the walk over the queue got (kept between releases: the queue only grows at the
/// back and loses its front, and judged text only grows, so walked events stay walkable).
#[derive(Debug, Default)]
struct Walk {
    /// Events at the front of the queue walked: none carries text that is still held.
    walked: usize,
    /// The walked events a release may take: after them no text ends inside a finding.
    clean: usize,
    /// Where each channel's text ends after the walked events (absent: at its `base`).
    ends: BTreeMap<Channel, u64>,
    /// Channels whose walked text ends inside one of their findings.
    inside: usize,
}

#[derive(Debug)]
struct TextRef {
    channel: Channel,
    path: Vec<PathSeg<'static>>,
    start: u64,
    end: u64,
}

#[derive(Debug)]
struct Parsed {
    /// The event's JSON when the texts it repeats whole were redacted on arrival. Other
    /// events keep only their bytes (a parsed event takes ~18 times as much memory) and are
    /// parsed again in the rare case their text changes.
    changed: Option<Value>,
    texts: Vec<TextRef>,
    sequence_number: Option<u64>,
}

#[derive(Debug)]
struct Queued {
    raw: Vec<u8>,
    parsed: Option<Parsed>,
}

/// A finding of a rule in a channel, in channel offsets.
#[derive(Debug, Clone, Copy)]
struct Found {
    hit: Hit,
    start: u64,
    end: u64,
}

/// The inspection of one streamed response.
#[derive(Debug)]
pub struct StreamInspector {
    format: ApiFormat,
    enforced: bool,
    hold: Holdback,
    limits: StreamLimits,
    parser: sse::Parser,
    state: State,
    channels: BTreeMap<Channel, ChannelText>,
    channels_seen: u32,
    /// Channels whose text changed since they were last judged.
    dirty: Vec<Channel>,
    /// Bytes of text held in all channels.
    held_text: usize,
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    walk: Walk,
    out: Vec<u8>,
    newline: &'static str,
    sequence_number: Option<u64>,
    /// The last `sequence_number` of an event that went out (the error event follows it).
    sent_sequence: Option<u64>,
    // What the record gets.
    triggered: BTreeSet<usize>,
    detections: BTreeMap<String, u32>,
    redactions: BTreeMap<String, u32>,
    model: Option<String>,
    model_rules_checked: bool,
    usage: Usage,
    output_chars: u64,
    bytes: u64,
    events: u64,
    max_held: usize,
    overflows: u32,
    malformed: u32,
    terminal: bool,
    error: Option<String>,
    end: Option<StreamEnd>,
    /// The highest prompt-injection score of the text judged so far.
    injection_score: Option<f64>,
}

impl StreamInspector {
    /// `enforced` is the rollout's: when false the stream passes unchanged and is only judged.
    pub fn new(
        policy: &Policy,
        format: ApiFormat,
        enforced: bool,
        limits: StreamLimits,
    ) -> StreamInspector {
        let hold = Holdback::for_policy(policy, limits.max_holdback_bytes);
        StreamInspector::with_holdback(hold, format, enforced, limits)
    }

    /// Like [`StreamInspector::new`], with the policy's hold-back computed beforehand (the
    /// filter computes it once, at configure time).
    pub fn with_holdback(
        hold: Holdback,
        format: ApiFormat,
        enforced: bool,
        limits: StreamLimits,
    ) -> StreamInspector {
        StreamInspector {
            format,
            enforced,
            hold,
            limits,
            parser: sse::Parser::new(limits.max_event_bytes),
            state: State::Inspecting,
            channels: BTreeMap::new(),
            channels_seen: 0,
            dirty: Vec::new(),
            held_text: 0,
            queue: VecDeque::new(),
            queued_bytes: 0,
            walk: Walk::default(),
            out: Vec::new(),
            newline: "\n",
            sequence_number: None,
            sent_sequence: None,
            triggered: BTreeSet::new(),
            detections: BTreeMap::new(),
            redactions: BTreeMap::new(),
            model: None,
            model_rules_checked: false,
            usage: Usage::default(),
            output_chars: 0,
            bytes: 0,
            events: 0,
            max_held: 0,
            overflows: 0,
            malformed: 0,
            terminal: false,
            error: None,
            end: None,
            injection_score: None,
        }
    }

    /// Reads a chunk of the response; returns the bytes the client gets now.
    pub fn push(&mut self, policy: &Policy, chunk: &[u8]) -> Vec<u8> {
        self.bytes += chunk.len() as u64;
        if self.state == State::Inspecting {
            let mut events = Vec::new();
            let fed = self.parser.feed(chunk, &mut events);
            for event in events {
                self.accept(policy, event);
            }
            if fed.is_err() {
                self.give_up(policy, "an event exceeds the limit");
            } else if !self.hold.inspects() {
                if self.state == State::Inspecting {
                    self.out.extend_from_slice(chunk);
                }
            } else {
                self.pump(policy, false);
                self.max_held = self.max_held.max(self.held_text);
            }
            if self.state == State::PassThrough {
                // Nothing of this chunk is held any more: the parser's pending bytes go too.
                let pending = self.parser.finish().map(|e| e.raw).unwrap_or_default();
                self.out.extend_from_slice(&pending);
            }
        } else if self.state == State::PassThrough {
            self.out.extend_from_slice(chunk);
        }
        self.take(chunk)
    }

    /// The end of the stream: releases what is held and returns the last bytes.
    pub fn finish(&mut self, policy: &Policy, end: StreamEnd) -> Vec<u8> {
        if self.end.is_some() {
            return Vec::new();
        }
        if self.state == State::Inspecting {
            if let Some(event) = self.parser.finish() {
                self.accept(policy, event);
            }
            self.close(End::All);
            self.pump(policy, true);
        }
        self.end = Some(if self.state == State::Stopped {
            StreamEnd::Refused
        } else if self.terminal {
            StreamEnd::Complete
        } else {
            end
        });
        self.take(&[])
    }

    /// Bytes held right now (events waiting, partial event, held text): bounded by the limits.
    pub fn held_bytes(&self) -> usize {
        self.queued_bytes
            + self.parser.buffered()
            + self
                .channels
                .values()
                .map(|c| c.text.len() + c.context.len())
                .sum::<usize>()
    }

    /// Marks the channels `end` covers as ended (to be judged whole).
    fn close(&mut self, end: End) {
        let mut mark = |c: Channel, ch: &mut ChannelText| {
            super::work::add(1);
            ch.closed = true;
            if !ch.dirty {
                ch.dirty = true;
                self.dirty.push(c);
            }
        };
        match end {
            End::One(c) => {
                if let Some(ch) = self.channels.get_mut(&c) {
                    mark(c, ch);
                }
            }
            End::Index(i) => {
                let first = Channel {
                    index: i,
                    kind: ChannelKind::Text,
                    sub: 0,
                };
                let last = Channel {
                    index: i,
                    kind: ChannelKind::ToolInput,
                    sub: u64::MAX,
                };
                for (c, ch) in self.channels.range_mut(first..=last) {
                    mark(*c, ch);
                }
            }
            End::All => {
                for (c, ch) in self.channels.iter_mut() {
                    mark(*c, ch);
                }
            }
        }
    }

    /// The response phase's outcome; `prompt_text_bytes` estimates input tokens when the
    /// stream reports none.
    pub fn outcome(&self, policy: &Policy, prompt_text_bytes: u64) -> PhaseOutcome {
        let mut out = PhaseOutcome::new(Phase::Response, 0);
        out.body_bytes = self.bytes;
        out.format = self.format;
        out.model = self.model.clone();
        out.stream = true;
        out.inspected = self.hold.inspects() && self.error.is_none();
        out.segments = self.channels_seen;
        let triggered: Vec<usize> = self.triggered.iter().copied().collect();
        let deciding = super::deciding_rule(policy, &triggered);
        if let Some(rule) = deciding {
            out.decision = rule.action;
            out.reason_code = rule.reason_code.clone();
            if rule.action == Action::Escalate {
                out.escalation = Some(rule.escalate_mode);
            }
        } else if let Some(code) = self.end.and_then(StreamEnd::reason_code) {
            out.reason_code = code.into();
        }
        if self.error.is_some() && deciding.is_none() {
            if let Some(code) = self.error_code() {
                out.reason_code = code.into();
                if policy.on_error == OnError::Refuse {
                    out.decision = Action::Refuse;
                }
            }
        }
        for r in triggered.iter().filter_map(|&i| policy.rules.get(i)) {
            out.triggered_rules.push(r.id.clone());
            if !out.triggered_categories.contains(&r.category) {
                out.triggered_categories.push(r.category.clone());
            }
        }
        out.detections = self.detections.clone();
        out.redactions = self.redactions.clone();
        out.error = self.error.clone();
        let estimate = |n: u64| n.div_ceil(CHARS_PER_TOKEN);
        let prompt = self.usage.prompt_tokens;
        let completion = self.usage.completion_tokens;
        let estimated = prompt.is_none() || completion.is_none();
        let prompt = prompt.unwrap_or_else(|| estimate(prompt_text_bytes));
        let completion = completion.unwrap_or_else(|| estimate(self.output_chars));
        out.usage = Some(Usage {
            prompt_tokens: Some(prompt),
            completion_tokens: Some(completion),
            total_tokens: Some(
                self.usage
                    .total_tokens
                    .filter(|_| !estimated)
                    .unwrap_or(prompt.saturating_add(completion)),
            ),
        });
        out.usage_estimated = estimated;
        out.injection_score = self.injection_score;
        out.stream_summary = Some(StreamSummary {
            end: self.end.unwrap_or(StreamEnd::UpstreamIncomplete).name(),
            events: self.events,
            max_held_bytes: self.max_held as u64,
            overflows: self.overflows,
            malformed_events: self.malformed,
        });
        out
    }

    fn error_code(&self) -> Option<&'static str> {
        self.error.as_deref().map(|e| {
            if e.starts_with("an event exceeds") {
                "RESPONSE_EVENT_TOO_LARGE"
            } else if e.starts_with("too many") {
                "RESPONSE_STREAM_TOO_COMPLEX"
            } else {
                "RESPONSE_EVENT_MALFORMED"
            }
        })
    }

    fn take(&mut self, chunk: &[u8]) -> Vec<u8> {
        let out = std::mem::take(&mut self.out);
        if self.enforced {
            out
        } else {
            // Shadow and canary control: the stream is judged, never changed.
            chunk.to_vec()
        }
    }

    /// Takes in one event: its text joins its channel, the event waits in the queue.
    fn accept(&mut self, policy: &Policy, event: sse::Event) {
        self.events += 1;
        if self.events == 1 {
            self.newline = event.newline;
        }
        if self.state != State::Inspecting {
            // Given up on (or stopped) earlier in the same chunk.
            return self.enqueue(event.raw, None);
        }
        if event.data_invalid {
            return self.malformed(policy, event.raw, "an event's data is not UTF-8");
        }
        let Some(data) = event.data.as_deref() else {
            return self.enqueue(event.raw, None);
        };
        if data.trim() == stream::DONE {
            self.terminal = true;
            self.close(End::All);
            return self.enqueue(event.raw, None);
        }
        // Strict, as whole bodies: an event naming a key twice is not judged by one copy.
        let mut value: Value = match crate::llm::json::from_slice(data.as_bytes()) {
            Ok(v) => v,
            Err(_) => return self.malformed(policy, event.raw, "an event's data is not JSON"),
        };
        let info = stream::interpret(self.format, &value);
        self.note(policy, &info);
        if !self.hold.inspects() {
            // Nothing in the text to judge: the chunk passes as it came (see `push`).
            for d in &info.deltas {
                if let Some(text) = path::get(&value, &d.path).and_then(Value::as_str) {
                    self.output_chars += text.chars().count() as u64;
                }
            }
            return;
        }
        let mut texts = Vec::with_capacity(info.deltas.len());
        for d in info.deltas {
            let Some(text) = path::get(&value, &d.path).and_then(Value::as_str) else {
                continue;
            };
            if !self.channels.contains_key(&d.channel) {
                if self.channels.len() >= MAX_CHANNELS {
                    self.give_up(policy, "too many texts in one stream");
                    // Passing now (or stopped): the event goes out as it came (or not at all).
                    return self.enqueue(event.raw, None);
                }
                self.channels_seen += 1;
            }
            let ch = self.channels.entry(d.channel).or_default();
            let start = ch.end();
            ch.text.push_str(text);
            self.held_text += text.len();
            if !text.is_empty() && !ch.dirty {
                ch.dirty = true;
                self.dirty.push(d.channel);
            }
            super::work::add(text.len() + 1);
            self.output_chars += text.chars().count() as u64;
            texts.push(TextRef {
                channel: d.channel,
                path: d.path,
                start,
                end: start + text.len() as u64,
            });
        }
        for end in &info.ends {
            self.close(*end);
        }
        let mut changed = None;
        if !info.whole.is_empty() && self.enforced {
            match redact_whole(policy, &mut value, &info.whole) {
                Ok(true) => changed = Some(value),
                Ok(false) => {}
                Err(_) => {
                    self.give_up(policy, "too many texts in one event");
                    return self.enqueue(event.raw, None);
                }
            }
        }
        let parsed = Parsed {
            changed,
            texts,
            sequence_number: info.sequence_number,
        };
        self.enqueue(event.raw, Some(parsed));
    }

    /// Usage, model, sequence numbers and the end of the stream.
    fn note(&mut self, policy: &Policy, info: &EventInfo) {
        if let Some(n) = info.sequence_number {
            self.sequence_number = Some(n);
        }
        if info.terminal {
            self.terminal = true;
        }
        if let Some(u) = info.usage {
            self.usage.prompt_tokens = u.prompt_tokens.or(self.usage.prompt_tokens);
            self.usage.completion_tokens = u.completion_tokens.or(self.usage.completion_tokens);
            self.usage.total_tokens = u.total_tokens.or(self.usage.total_tokens);
        }
        if self.model.is_none() {
            if let Some(m) = &info.model {
                self.model = Some(m.clone());
            }
        }
        if !self.model_rules_checked && self.model.is_some() {
            self.model_rules_checked = true;
            self.model_rules(policy);
        }
    }

    /// Response rules on the served model alone (no content match) decide once it is known.
    fn model_rules(&mut self, policy: &Policy) {
        let model = self.model.as_deref();
        let hits: Vec<usize> = policy
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.applies_to(Phase::Response)
                    && !r.has_content_match()
                    && r.models.is_some()
                    && super::rule_triggers(r, false, model, None)
            })
            .map(|(i, _)| i)
            .collect();
        for &i in &hits {
            self.triggered.insert(i);
        }
        if let Some(rule) = self.stopping_rule(policy, &hits) {
            self.stop(policy, Some(rule));
        }
    }

    /// An event the inspector cannot read: counted, then the policy's `on_error` decides.
    fn malformed(&mut self, policy: &Policy, raw: Vec<u8>, detail: &str) {
        self.malformed += 1;
        if policy.on_error == OnError::Refuse && self.hold.inspects() {
            self.error = Some(detail.into());
            self.stop(policy, None);
            if self.state == State::Stopped {
                return;
            }
        }
        self.enqueue(raw, None);
    }

    fn enqueue(&mut self, raw: Vec<u8>, parsed: Option<Parsed>) {
        if self.state == State::PassThrough && self.hold.inspects() {
            self.out.extend_from_slice(&raw);
            return;
        }
        if self.state != State::Inspecting || !self.hold.inspects() {
            return;
        }
        self.queued_bytes += raw.len();
        for t in parsed.iter().flat_map(|p| &p.texts) {
            if let Some(ch) = self.channels.get_mut(&t.channel) {
                ch.queued += 1;
            }
        }
        self.queue.push_back(Queued { raw, parsed });
    }

    /// Drops every channel and everything queued (the stream stopped or passes from here on).
    fn forget(&mut self) {
        self.queue.clear();
        self.queued_bytes = 0;
        self.channels.clear();
        self.dirty.clear();
        self.held_text = 0;
        self.walk = Walk::default();
    }

    /// Inspection stops: the stream is refused (`on_error: refuse`) or passes unchanged.
    fn give_up(&mut self, policy: &Policy, detail: &str) {
        self.error = Some(detail.into());
        if self.enforced && policy.on_error == OnError::Refuse && self.hold.inspects() {
            self.stop(policy, None);
            return;
        }
        // Unenforced streams (shadow, canary control, the candidate) always pass from here
        // on; the record carries the error and what `on_error` would have decided.
        // What is queued goes out as it came; the rest of the stream passes.
        for q in std::mem::take(&mut self.queue) {
            self.out.extend_from_slice(&q.raw);
        }
        self.forget();
        self.state = State::PassThrough;
    }

    /// Ends the stream with the provider's error event: `rule` refused or held it, or it
    /// could not be inspected and the policy refuses what it cannot inspect.
    fn stop(&mut self, policy: &Policy, rule: Option<usize>) {
        if self.enforced {
            let (status, message, code, held) = match rule.and_then(|i| policy.rules.get(i)) {
                Some(r) if r.action == Action::Escalate => (
                    r.hold.status,
                    r.hold.message.as_str(),
                    r.reason_code.as_str(),
                    true,
                ),
                Some(r) => (
                    r.refuse.status,
                    r.refuse.message.as_str(),
                    r.reason_code.as_str(),
                    false,
                ),
                None => (
                    502,
                    "The response could not be inspected by the AI usage policy.",
                    self.error_code().unwrap_or(reason::BODY_UNPARSEABLE),
                    false,
                ),
            };
            let mut event = Vec::new();
            let refusal = reply::Refusal {
                status,
                message,
                reason_code: code,
                held,
            };
            reply::stream_error_event(
                self.format,
                &refusal,
                if self.hold.inspects() {
                    self.sent_sequence
                } else {
                    self.sequence_number
                },
                self.newline,
                &mut event,
            );
            self.out.extend_from_slice(&event);
            self.forget();
            self.state = State::Stopped;
        }
    }

    /// The rule, among `rules`, that ends the stream when enforced: refuse, or escalate-hold.
    fn stopping_rule(&self, policy: &Policy, rules: &[usize]) -> Option<usize> {
        rules
            .iter()
            .copied()
            .filter(|&i| {
                policy.rules.get(i).is_some_and(|r| {
                    r.action == Action::Refuse
                        || (r.action == Action::Escalate && r.escalate_mode == EscalateMode::Hold)
                })
            })
            .max_by_key(|&i| policy.rules.get(i).map(|r| r.action))
    }

    /// Releases every event whose text is safe; `all` releases everything (end of stream).
    fn pump(&mut self, policy: &Policy, all: bool) {
        self.release(policy, all);
        if !all
            && self.state == State::Inspecting
            && self.queued_bytes > self.limits.max_queued_bytes
        {
            // What waits exceeds the limit: out it goes, judged as it stands.
            self.overflows += 1;
            self.release(policy, true);
        }
    }

    /// Judges channel `c`'s unsettled text: how far it is safe (the hold-back's point, never
    /// inside a finding) and its findings up to there, which are final. Scans only the text
    /// after `settled` (with [`CONTEXT_BYTES`] before it), and only when the point moved.
    /// Returns whether the cap decided.
    fn judge(&mut self, policy: &Policy, c: Channel, all: bool) -> bool {
        let hold = self.hold;
        let Some(ch) = self.channels.get_mut(&c) else {
            return false;
        };
        ch.dirty = false;
        let from = ch.settled.saturating_sub(ch.base) as usize;
        // Borrowing the text field alone: the hold-back updates `ch.progress` meanwhile.
        let held = ch.text.get(ch.skip..).unwrap_or_default();
        let tail = held.get(from..).unwrap_or_default();
        let tail_len = tail.len();
        if tail_len == 0 {
            return false;
        }
        let (point, capped) = if all || ch.closed {
            (tail.len(), false)
        } else if tail.len() < ch.retry_at {
            return false;
        } else {
            super::work::add(1);
            hold.release_point_from(tail, ch.settled, &mut ch.progress)
        };
        if point == 0 {
            // Nothing can go yet: no need to look for entities.
            return capped;
        }
        // What precedes the unsettled text, so detectors see the start of an entity.
        let before = held.get(..from).unwrap_or_default();
        let look = context_of(&ch.context, before);
        let scan = format!("{look}{tail}");
        super::work::add(scan.len());
        let origin = ch.settled - look.len() as u64;
        let segment = Segment {
            role: stream::ROLE,
            text: &scan,
            path: PathId::ROOT,
        };
        let segments = std::slice::from_ref(&segment);
        let mut fs: Vec<Found> =
            find_hits_scored(policy, Phase::Response, segments, &mut self.injection_score)
                .into_iter()
                .filter(|h| h.start >= look.len())
                .map(|h| Found {
                    hit: h,
                    start: origin + h.start as u64,
                    end: origin + h.end as u64,
                })
                .collect();
        super::sort_counted(&mut fs, |f| (f.start, f.end));
        // Never cut through a finding: from the last start back, each crossing one moves the
        // point to its start (a finding starting later cannot cross the new point).
        let mut safe = ch.settled + point as u64;
        for f in fs.iter().rev() {
            if f.start < safe && safe < f.end {
                safe = f.start;
            }
        }
        if safe == ch.settled {
            // A finding longer than the cap keeps everything: wait for more text before
            // scanning it all again.
            ch.retry_at = if capped { tail_len + tail_len / 2 } else { 0 };
            return capped;
        }
        ch.retry_at = 0;
        ch.keep(fs.into_iter().filter(|f| f.start < safe));
        ch.settled = safe;
        capped
    }

    /// One release pass; `all` treats every text as ended.
    fn release(&mut self, policy: &Policy, all: bool) {
        if self.state != State::Inspecting {
            return;
        }

        // Judge what changed (everything unsettled when every text ends).
        let changed: Vec<Channel> = if all {
            for c in std::mem::take(&mut self.dirty) {
                if let Some(ch) = self.channels.get_mut(&c) {
                    ch.dirty = false;
                }
            }
            self.channels
                .iter()
                .filter(|(_, ch)| ch.settled < ch.end())
                .map(|(c, _)| *c)
                .collect()
        } else {
            std::mem::take(&mut self.dirty)
        };
        let mut capped_now = false;
        for c in changed {
            capped_now |= self.judge(policy, c, all);
            self.drop_if_done(c);
        }
        if capped_now {
            self.overflows += 1;
        }

        // Walk on from where the last pass stopped: events whose text is all settled.
        'walk: while let Some(q) = self.queue.get(self.walk.walked) {
            super::work::add(1);
            let texts = q.parsed.iter().flat_map(|p| &p.texts);
            for t in texts.clone() {
                // A channel already gone has nothing held: only empty pieces can refer to it.
                let blocked = match self.channels.get(&t.channel) {
                    Some(ch) => t.end > ch.settled,
                    None => t.end > t.start,
                };
                if blocked {
                    break 'walk;
                }
            }
            for t in texts {
                super::work::add(1);
                let was = self.walk.ends.insert(t.channel, t.end);
                let inside = |at: Option<u64>| {
                    at.zip(self.channels.get(&t.channel))
                        .is_some_and(|(at, ch)| ch.inside(at))
                };
                if inside(was) {
                    self.walk.inside = self.walk.inside.saturating_sub(1);
                }
                if inside(Some(t.end)) {
                    self.walk.inside += 1;
                }
            }
            self.walk.walked += 1;
            if self.walk.inside == 0 {
                self.walk.clean = self.walk.walked;
            }
        }
        let mut release = self.walk.clean.min(self.queue.len());
        if release == 0 {
            return;
        }

        // Where each channel's released text ends, and its findings there (they are final).
        let mut release_ends = released_ends(self.queue.iter().take(release));
        let mut final_hits: BTreeMap<Channel, Vec<Found>> = BTreeMap::new();
        for (c, to) in &release_ends {
            let Some(ch) = self.channels.get(c) else {
                continue;
            };
            let n = ch.found.partition_point(|f| f.start < *to);
            if n > 0 {
                final_hits.insert(*c, ch.found.iter().take(n).copied().collect());
            }
        }
        let mut rules: Vec<usize> = final_hits.values().flatten().map(|f| f.hit.rule).collect();
        rules.sort_unstable();
        rules.dedup();
        self.record_findings(policy, &final_hits, &rules);
        let stopping = self.stopping_rule(policy, &rules).filter(|_| self.enforced);
        if stopping.is_some() {
            // Text before the first finding of a stopping rule still goes out, then the error.
            let stops: BTreeMap<Channel, u64> = final_hits
                .iter()
                .filter_map(|(c, fs)| {
                    fs.iter()
                        .filter(|f| self.stopping_rule(policy, &[f.hit.rule]).is_some())
                        .map(|f| f.start)
                        .min()
                        .map(|s| (*c, s))
                })
                .collect();
            // The longest prefix before every stop that, like any release, ends at a cut
            // outside every finding (a redactable entity before the secret stays whole). Once
            // per stream: the stream ends here.
            let inside =
                |c: &Channel, at: u64| self.channels.get(c).is_some_and(|ch| ch.inside(at));
            let mut ends: BTreeMap<Channel, u64> = BTreeMap::new();
            let mut best = 0;
            'cut: for (k, q) in self.queue.iter().take(release).enumerate() {
                for t in q.parsed.iter().flat_map(|p| &p.texts) {
                    if stops.get(&t.channel).is_some_and(|s| t.end > *s) {
                        break 'cut;
                    }
                    ends.insert(t.channel, t.end);
                }
                if ends.iter().all(|(c, at)| !inside(c, *at)) {
                    best = k + 1;
                }
            }
            release = best;
            release_ends = released_ends(self.queue.iter().take(release));
            for (c, fs) in final_hits.iter_mut() {
                let to = release_ends.get(c).copied().unwrap_or(0);
                fs.retain(|f| f.end <= to);
            }
        }

        // Replacement spans per channel, in channel offsets.
        let mut spans: BTreeMap<Channel, Vec<(u64, u64, String)>> = BTreeMap::new();
        for (c, fs) in &final_hits {
            let Some(ch) = self.channels.get(c) else {
                continue;
            };
            // Findings are sorted: the first starts earliest.
            let origin = fs.first().map_or(ch.base, |f| f.start);
            let to = release_ends.get(c).copied().unwrap_or(origin);
            let hits: Vec<Hit> = fs
                .iter()
                .map(|f| Hit {
                    segment: 0,
                    start: (f.start - origin) as usize,
                    end: (f.end - origin) as usize,
                    ..f.hit
                })
                .collect();
            let text = ch.slice(origin, to);
            let mut plan = plan_edits(policy, &rule_mask(policy, &rules), &hits);
            let mut edits = plan.take_segment(0);
            let resolved = redact::resolve(text, &mut edits);
            spans.insert(
                *c,
                resolved
                    .into_iter()
                    .map(|(s, e, r)| (origin + s as u64, origin + e as u64, r))
                    .collect(),
            );
        }

        // Emit the released events.
        let mut unreadable = false;
        for q in self.queue.drain(..release) {
            super::work::add(1);
            self.queued_bytes = self.queued_bytes.saturating_sub(q.raw.len());
            let Some(mut p) = q.parsed else {
                self.out.extend_from_slice(&q.raw);
                continue;
            };
            if p.sequence_number.is_some() {
                self.sent_sequence = p.sequence_number;
            }
            let mut pieces = Vec::new();
            for t in &p.texts {
                let Some(ch) = self.channels.get_mut(&t.channel) else {
                    continue;
                };
                ch.queued = ch.queued.saturating_sub(1);
                let Some(sp) = spans.get(&t.channel) else {
                    continue;
                };
                if let Some(new) = rewrite_piece(ch, t.start, t.end, sp) {
                    pieces.push((&t.path, new));
                }
            }
            if pieces.is_empty() && p.changed.is_none() {
                self.out.extend_from_slice(&q.raw);
                continue;
            }
            // The bytes parsed when the event arrived: they parse again.
            let mut changed = p.changed.is_some();
            let Some(mut value) = p.changed.take().or_else(|| event_json(&q.raw)) else {
                unreadable = true;
                break;
            };
            for (path, new) in pieces {
                changed |= path::replace(&mut value, path, new);
            }
            if changed {
                // Token log-probabilities spell the original text out: they go too.
                crate::llm::blank_logprobs(&mut value);
                let data = serde_json::to_string(&value).unwrap_or_default();
                sse::rewrite_data(&q.raw, &data, &mut self.out);
            } else {
                self.out.extend_from_slice(&q.raw);
            }
        }
        if unreadable {
            // Cannot happen (the same bytes parsed before); never let the text out unjudged.
            self.error = Some("an event's data is not JSON".into());
            if self.enforced {
                self.stop(policy, None);
            } else {
                self.forget();
                self.state = State::PassThrough;
            }
            return;
        }
        self.walk.walked = self.walk.walked.saturating_sub(release);
        self.walk.clean = self.walk.clean.saturating_sub(release);

        // Released text leaves the channels; a little stays as context.
        for (c, to) in release_ends {
            if let Some(ch) = self.channels.get_mut(&c) {
                let cut = ch.release_to(to);
                self.held_text = self.held_text.saturating_sub(cut);
            }
            self.drop_if_done(c);
        }
        if let Some(rule) = stopping {
            self.stop(policy, Some(rule));
        }
    }

    /// A channel goes once its text ended, all of it went out and nothing queued refers to it.
    fn drop_if_done(&mut self, c: Channel) {
        let done = self
            .channels
            .get(&c)
            .is_some_and(|ch| ch.closed && ch.held().is_empty() && ch.queued == 0);
        if done {
            self.channels.remove(&c);
            self.walk.ends.remove(&c);
        }
    }

    /// Counts of detections and redactions, and the rules triggered, for the record.
    fn record_findings(
        &mut self,
        policy: &Policy,
        hits: &BTreeMap<Channel, Vec<Found>>,
        rules: &[usize],
    ) {
        self.triggered.extend(rules.iter().copied());
        for fs in hits.values() {
            let mut seen: Vec<(u64, u64, Source)> =
                fs.iter().map(|f| (f.start, f.end, f.hit.source)).collect();
            seen.sort();
            seen.dedup();
            for (_, _, source) in &seen {
                *self
                    .detections
                    .entry(source.name().to_string())
                    .or_insert(0) += 1;
            }
            let mut redacted: Vec<(u64, u64, Source)> = fs
                .iter()
                .filter(|f| {
                    policy
                        .rules
                        .get(f.hit.rule)
                        .is_some_and(|r| r.action == Action::Redact)
                })
                .map(|f| (f.start, f.end, f.hit.source))
                .collect();
            redacted.sort();
            redacted.dedup_by_key(|r| (r.0, r.1));
            for (_, _, source) in redacted {
                *self
                    .redactions
                    .entry(source.name().to_string())
                    .or_insert(0) += 1;
            }
        }
    }
}

/// The JSON `data` of one whole event block.
fn event_json(raw: &[u8]) -> Option<Value> {
    let mut parser = sse::Parser::new(usize::MAX);
    let mut events = Vec::new();
    parser.feed(raw, &mut events).ok()?;
    let data = events.into_iter().next()?.data?;
    serde_json::from_str(&data).ok()
}

/// Where each channel's text ends after `events` (the last piece of it they carry).
fn released_ends<'q>(events: impl Iterator<Item = &'q Queued>) -> BTreeMap<Channel, u64> {
    let mut ends = BTreeMap::new();
    for t in events.flat_map(|q| q.parsed.iter().flat_map(|p| &p.texts)) {
        super::work::add(1);
        ends.insert(t.channel, t.end);
    }
    ends
}

/// The new text of one event's piece `start..end` of a channel, or None when unchanged:
/// a span's replacement goes where the span starts; the span's later pieces become empty.
/// `spans` are sorted and disjoint.
fn rewrite_piece(
    ch: &ChannelText,
    start: u64,
    end: u64,
    spans: &[(u64, u64, String)],
) -> Option<String> {
    // The spans that end after `start`, up to the first that starts at or after `end`.
    let first = spans.partition_point(|(_, e, _)| *e <= start);
    let touching = spans
        .get(first..)
        .unwrap_or_default()
        .iter()
        .take_while(|(s, _, _)| *s < end);
    let mut out = String::new();
    let mut pos = start;
    let mut any = false;
    for (s, e, replacement) in touching {
        super::work::add(1);
        any = true;
        if *s > pos {
            out.push_str(ch.slice(pos, *s));
        }
        if *s >= start {
            out.push_str(replacement);
        }
        pos = (*e).min(end).max(pos);
    }
    if !any {
        return None;
    }
    if pos < end {
        out.push_str(ch.slice(pos, end));
    }
    (out != ch.slice(start, end)).then_some(out)
}

/// The last [`CONTEXT_BYTES`] of the released text, starting after a whitespace when one is
/// there, so a detector never starts reading in the middle of a word.
fn context_of(previous: &str, released: &str) -> String {
    let joined;
    let text = if released.len() >= CONTEXT_BYTES {
        released
    } else {
        joined = format!("{previous}{released}");
        &joined
    };
    let mut from = text.len().saturating_sub(CONTEXT_BYTES);
    while from < text.len() && !text.is_char_boundary(from) {
        from += 1;
    }
    let tail = text.get(from..).unwrap_or_default();
    match tail.find(char::is_whitespace) {
        Some(i) if from > 0 => {
            let skip = tail
                .get(i..)
                .and_then(|s| s.chars().next())
                .map_or(0, char::len_utf8);
            tail.get(i + skip..).unwrap_or_default().to_string()
        }
        _ => tail.to_string(),
    }
}

/// Redacts texts an event repeats whole (Responses API `.done` and `response.completed`)
/// with the rules' edits; whether any changed, or the cap the event exceeds. Counted already
/// as they streamed.
fn redact_whole(
    policy: &Policy,
    value: &mut Value,
    whole: &[Whole],
) -> Result<bool, crate::llm::TooComplex> {
    let (changes, paths) = {
        let texts = stream::whole_texts(value, whole)?;
        let hits = find_hits(policy, Phase::Response, &texts.segments);
        let mut rules: Vec<usize> = hits.iter().map(|h| h.rule).collect();
        rules.sort_unstable();
        rules.dedup();
        let mut plan = plan_edits(policy, &rule_mask(policy, &rules), &hits);
        let changes: Vec<(PathId, String)> = plan
            .text_changes(&texts.segments)
            .into_iter()
            .filter_map(|(si, t)| texts.segments.get(si).map(|s| (s.path, t)))
            .collect();
        (changes, texts.paths)
    };
    let mut changed = false;
    for (p, text) in changes {
        changed |= paths.replace(value, p, text);
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const CARD: &str = "4111 1111 1111 1111";

    fn default_policy() -> Policy {
        Policy::from_json(include_bytes!("../../policies/default.json")).unwrap()
    }

    /// A small deterministic generator: `next(n)` is in `0..n`.
    fn lcg(mut seed: u64) -> impl FnMut(usize) -> usize {
        move |n| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as usize) % n
        }
    }

    /// What whole-body evaluation of `text` as an OpenAI chat response gives: the redacted
    /// text (None when refused) and the redaction counts.
    fn whole_body(policy: &Policy, text: &str) -> (Option<String>, BTreeMap<String, u32>) {
        let body = serde_json::json!({"id": "c", "object": "chat.completion", "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]});
        let info = super::super::RequestInfo {
            request_id: "r",
            path: Some("/v1/chat/completions"),
            ..Default::default()
        };
        let rollout = super::super::rollout(policy, &info);
        let w = super::super::evaluate(
            policy,
            &info,
            &rollout,
            Phase::Response,
            body.to_string().as_bytes(),
        );
        let shown = match &w.verdict {
            _ if w.decision == Action::Refuse => None,
            super::super::Verdict::Forward { body: Some(b), .. } => {
                let v: Value = serde_json::from_slice(b).unwrap();
                Some(
                    v["choices"][0]["message"]["content"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            }
            _ => Some(text.to_string()),
        };
        (shown, w.redactions)
    }

    fn chat_event(delta: &str) -> String {
        let v = serde_json::json!({"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": null}]});
        format!("data: {v}\n\n")
    }

    fn chat_stream(deltas: &[&str], usage: bool) -> Vec<u8> {
        let mut s = String::new();
        for d in deltas {
            s.push_str(&chat_event(d));
        }
        s.push_str("data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
        if usage {
            s.push_str("data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7,\"total_tokens\":18}}\n\n");
        }
        s.push_str("data: [DONE]\n\n");
        s.into_bytes()
    }

    /// Runs a stream through an inspector in network chunks; returns the client's bytes.
    fn run(
        policy: &Policy,
        format: ApiFormat,
        enforced: bool,
        chunks: &[&[u8]],
    ) -> (Vec<u8>, StreamInspector) {
        let mut insp = StreamInspector::new(policy, format, enforced, StreamLimits::default());
        let mut out = Vec::new();
        for c in chunks {
            out.extend(insp.push(policy, c));
        }
        out.extend(insp.finish(policy, StreamEnd::UpstreamIncomplete));
        (out, insp)
    }

    /// What an SDK shows: the events' data values, `[DONE]` dropped.
    fn client_events(bytes: &[u8]) -> Vec<(Option<String>, Value)> {
        let mut p = sse::Parser::new(1 << 30);
        let mut events = Vec::new();
        p.feed(bytes, &mut events).unwrap();
        assert!(p.finish().is_none(), "stream ends mid-event");
        events
            .into_iter()
            .filter_map(|e| {
                let data = e.data?;
                (data != "[DONE]").then(|| (e.name, serde_json::from_str(&data).unwrap()))
            })
            .collect()
    }

    fn chat_text(bytes: &[u8]) -> String {
        client_events(bytes)
            .iter()
            .filter_map(|(_, v)| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    }

    #[test]
    fn card_split_at_every_offset_is_redacted() {
        let policy = default_policy();
        let text = format!("Your card {CARD} is on file.");
        for i in 1..text.len() {
            let (a, b) = text.split_at(i);
            let input = chat_stream(&[a, b], false);
            let (out, insp) = run(&policy, ApiFormat::OpenaiChat, true, &[&input]);
            let shown = chat_text(&out);
            assert_eq!(shown, "Your card [CREDIT_CARD] is on file.", "split at {i}");
            let o = insp.outcome(&policy, 0);
            assert_eq!(o.decision, Action::Redact, "split at {i}");
            assert_eq!(o.redactions.get("credit_card"), Some(&1), "split at {i}");
            assert_eq!(o.reason_code, "OUTPUT_PII_REDACTED");
        }
    }

    #[test]
    fn email_split_at_the_at_sign_and_one_character_events() {
        let policy = default_policy();
        let input = chat_stream(&["Mail jane.doe", "@", "example.com today"], false);
        let (out, _) = run(&policy, ApiFormat::OpenaiChat, true, &[&input]);
        assert_eq!(chat_text(&out), "Mail [EMAIL] today");
        let text = format!("a {CARD} and bob@example.org, end");
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let deltas: Vec<&str> = chars.iter().map(String::as_str).collect();
        let input = chat_stream(&deltas, false);
        // Network chunks of every size from 1 byte up, independent of events.
        for size in [1, 2, 3, 7, 64, 1000] {
            let chunks: Vec<&[u8]> = input.chunks(size).collect();
            let (out, insp) = run(&policy, ApiFormat::OpenaiChat, true, &chunks);
            assert_eq!(
                chat_text(&out),
                "a [CREDIT_CARD] and [EMAIL], end",
                "chunks of {size}"
            );
            // Every event is still there, in order.
            assert_eq!(client_events(&out).len(), deltas.len() + 1);
            assert_eq!(insp.outcome(&policy, 0).redactions.len(), 2);
        }
    }

    #[test]
    fn unchanged_events_pass_byte_for_byte() {
        let policy = default_policy();
        let input = chat_stream(&["Nothing ", "to see ", "here."], true);
        let (out, _) = run(&policy, ApiFormat::OpenaiChat, true, &[&input]);
        assert_eq!(out, input);
    }

    #[test]
    fn shadow_mode_judges_but_never_changes() {
        let policy = default_policy();
        let input = chat_stream(&["card ", "4111 1111 ", "1111 1111 ok"], false);
        let mut insp = StreamInspector::new(
            &policy,
            ApiFormat::OpenaiChat,
            false,
            StreamLimits::default(),
        );
        let mut out = Vec::new();
        for c in input.chunks(5) {
            let got = insp.push(&policy, c);
            assert_eq!(got, c);
            out.extend(got);
        }
        assert!(insp
            .finish(&policy, StreamEnd::UpstreamIncomplete)
            .is_empty());
        assert_eq!(out, input);
        let o = insp.outcome(&policy, 0);
        assert_eq!(o.decision, Action::Redact);
        assert_eq!(o.redactions.get("credit_card"), Some(&1));
    }

    #[test]
    fn secret_in_output_ends_the_stream_with_an_error_event() {
        let policy = default_policy();
        let key = "AKIAIOSFODNN7EXAMPLE";
        let input = chat_stream(
            &["Here is the key: ", &key[..6], &key[6..], " use it well"],
            false,
        );
        let (out, insp) = run(&policy, ApiFormat::OpenaiChat, true, &[&input]);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(!text.contains("AKIA"), "{text}");
        let events = client_events(&out);
        let (_, last) = events.last().unwrap();
        assert_eq!(last["error"]["code"], "SECRET_DETECTED");
        assert!(text.ends_with("data: [DONE]\n\n"));
        let o = insp.outcome(&policy, 0);
        assert_eq!(o.decision, Action::Refuse);
        assert_eq!(o.stream_summary.unwrap().end, "refused");
        // Later bytes of the upstream stream are dropped.
        let mut insp = StreamInspector::new(
            &policy,
            ApiFormat::OpenaiChat,
            true,
            StreamLimits::default(),
        );
        insp.push(&policy, &input);
        assert!(insp
            .push(&policy, &chat_stream(&["more"], false))
            .is_empty());
    }

    #[test]
    fn usage_from_the_stream_or_estimated() {
        let policy = default_policy();
        let (_, insp) = run(
            &policy,
            ApiFormat::OpenaiChat,
            true,
            &[&chat_stream(&["hi"], true)],
        );
        let o = insp.outcome(&policy, 400);
        assert_eq!(o.usage.unwrap().prompt_tokens, Some(11));
        assert_eq!(o.usage.unwrap().total_tokens, Some(18));
        assert!(!o.usage_estimated);
        assert_eq!(o.stream_summary.unwrap().end, "complete");
        let (_, insp) = run(
            &policy,
            ApiFormat::OpenaiChat,
            true,
            &[&chat_stream(&["12345678"], false)],
        );
        let o = insp.outcome(&policy, 400);
        assert!(o.usage_estimated);
        assert_eq!(o.usage.unwrap().prompt_tokens, Some(100));
        assert_eq!(o.usage.unwrap().completion_tokens, Some(2));
        assert_eq!(o.usage.unwrap().total_tokens, Some(102));
    }

    fn anthropic_stream(deltas: &[&str]) -> Vec<u8> {
        let mut s = String::from("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n");
        s.push_str("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
        s.push_str("event: ping\ndata: {\"type\": \"ping\"}\n\n");
        for d in deltas {
            let v = serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": d}});
            s.push_str(&format!("event: content_block_delta\ndata: {v}\n\n"));
        }
        s.push_str(
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        );
        s.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n");
        s.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        s.into_bytes()
    }

    #[test]
    fn anthropic_stream_redacted_with_usage() {
        let policy = default_policy();
        let input = anthropic_stream(&["Call +1 415", " 555 0132", " or write to a@b", ".io now"]);
        let (out, insp) = run(&policy, ApiFormat::AnthropicMessages, true, &[&input]);
        let events = client_events(&out);
        let text: String = events
            .iter()
            .filter_map(|(_, v)| v["delta"]["text"].as_str().map(str::to_string))
            .collect();
        assert_eq!(text, "Call [PHONE] or write to [EMAIL] now");
        let names: Vec<_> = events.iter().map(|(n, _)| n.clone().unwrap()).collect();
        assert_eq!(names.first().unwrap(), "message_start");
        assert_eq!(names.last().unwrap(), "message_stop");
        let o = insp.outcome(&policy, 0);
        assert_eq!(o.usage.unwrap().prompt_tokens, Some(25));
        assert_eq!(o.usage.unwrap().completion_tokens, Some(15));
        assert!(!o.usage_estimated);
        assert_eq!(o.model.as_deref(), Some("claude-sonnet-4-5"));
    }

    #[test]
    fn anthropic_refusal_is_an_error_event() {
        let policy = default_policy();
        let input = anthropic_stream(&["token ghp_", "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 done"]);
        let (out, _) = run(&policy, ApiFormat::AnthropicMessages, true, &[&input]);
        let events = client_events(&out);
        let (name, last) = events.last().unwrap();
        assert_eq!(name.as_deref(), Some("error"));
        assert_eq!(last["type"], "error");
        assert_eq!(last["error"]["type"], "permission_error");
        assert!(!String::from_utf8_lossy(&out).contains("ghp_"));
    }

    #[test]
    fn responses_stream_redacts_deltas_and_whole_texts() {
        let policy = default_policy();
        let mut s = String::new();
        let mut seq = 0;
        let mut ev = |v: Value| {
            let mut v = v;
            v["sequence_number"] = seq.into();
            seq += 1;
            s.push_str(&format!(
                "event: {}\ndata: {v}\n\n",
                v["type"].as_str().unwrap()
            ));
        };
        let full = "Reach me at jo@corp.example please";
        ev(
            serde_json::json!({"type": "response.created", "response": {"id": "r", "model": "gpt-4.1", "output": []}}),
        );
        for d in ["Reach me at jo@", "corp.exam", "ple please"] {
            ev(
                serde_json::json!({"type": "response.output_text.delta", "item_id": "m", "output_index": 0, "content_index": 0, "delta": d}),
            );
        }
        ev(
            serde_json::json!({"type": "response.output_text.done", "item_id": "m", "output_index": 0, "content_index": 0, "text": full}),
        );
        ev(
            serde_json::json!({"type": "response.content_part.done", "item_id": "m", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": full}}),
        );
        ev(
            serde_json::json!({"type": "response.completed", "response": {"id": "r", "model": "gpt-4.1",
            "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": full}]}],
            "usage": {"input_tokens": 9, "output_tokens": 8, "total_tokens": 17}}}),
        );
        let (out, insp) = run(&policy, ApiFormat::OpenaiResponses, true, &[s.as_bytes()]);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            !text.contains("jo@") && !text.contains("corp.exam"),
            "{text}"
        );
        let events = client_events(&out);
        let seqs: Vec<u64> = events
            .iter()
            .map(|(_, v)| v["sequence_number"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (0..7).collect::<Vec<_>>());
        let deltas: String = events
            .iter()
            .filter(|(_, v)| v["type"] == "response.output_text.delta")
            .map(|(_, v)| v["delta"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(deltas, "Reach me at [EMAIL] please");
        let done = &events[4].1;
        assert_eq!(done["text"], "Reach me at [EMAIL] please");
        let completed = &events[6].1;
        assert_eq!(
            completed["response"]["output"][0]["content"][0]["text"],
            "Reach me at [EMAIL] please"
        );
        let o = insp.outcome(&policy, 0);
        assert_eq!(o.redactions.get("email"), Some(&1));
        assert_eq!(o.usage.unwrap().total_tokens, Some(17));
    }

    #[test]
    fn memory_stays_bounded_on_a_long_stream() {
        let policy = default_policy();
        let limits = StreamLimits::default();
        let mut insp = StreamInspector::new(&policy, ApiFormat::OpenaiChat, true, limits);
        let sentence = "The quick brown fox, card 4111 1111 1111 1111, jumps. ";
        let mut out_len = 0;
        let mut max_held = 0;
        let mut sent = 0;
        for _ in 0..20_000 {
            let out = insp.push(&policy, chat_event(sentence).as_bytes());
            sent += 1;
            out_len += out.len();
            max_held = max_held.max(insp.held_bytes());
        }
        let tail = insp.finish(&policy, StreamEnd::UpstreamIncomplete);
        out_len += tail.len();
        assert!(sent * sentence.len() > 1_000_000);
        assert!(max_held < 4096, "held {max_held} bytes");
        assert!(out_len > 1_000_000);
        let o = insp.outcome(&policy, 0);
        assert_eq!(o.redactions.get("credit_card"), Some(&20_000));
        assert_eq!(o.stream_summary.unwrap().overflows, 0);
    }

    #[test]
    fn a_token_longer_than_the_cap_is_released_and_counted() {
        let policy = default_policy();
        let limits = StreamLimits {
            max_holdback_bytes: 256,
            max_queued_bytes: 4096,
            ..StreamLimits::default()
        };
        let mut insp = StreamInspector::new(&policy, ApiFormat::OpenaiChat, true, limits);
        for _ in 0..2000 {
            insp.push(&policy, chat_event("x").as_bytes());
            assert!(insp.held_bytes() < 4096 + 512);
        }
        insp.finish(&policy, StreamEnd::UpstreamIncomplete);
        assert!(insp.outcome(&policy, 0).stream_summary.unwrap().overflows > 0);
    }

    #[test]
    fn disconnects_and_malformed_events_are_recorded() {
        let policy = default_policy();
        let mut insp = StreamInspector::new(
            &policy,
            ApiFormat::OpenaiChat,
            true,
            StreamLimits::default(),
        );
        insp.push(&policy, chat_event("partial ans").as_bytes());
        insp.finish(&policy, StreamEnd::ClientDisconnected);
        let o = insp.outcome(&policy, 0);
        assert_eq!(o.reason_code, "STREAM_CLIENT_DISCONNECTED");
        assert_eq!(o.decision, Action::Allow);
        // A non-JSON data line under `on_error: refuse` ends the stream.
        let (out, insp) = run(
            &policy,
            ApiFormat::OpenaiChat,
            true,
            &[b"data: {not json\n\n"],
        );
        let events = client_events(&out);
        assert_eq!(events[0].1["error"]["code"], "RESPONSE_EVENT_MALFORMED");
        assert_eq!(insp.outcome(&policy, 0).decision, Action::Refuse);
    }

    /// Streamed redaction equals whole-body redaction of the same text, whatever the splits.
    #[test]
    fn streamed_redaction_matches_whole_body_redaction() {
        let policy = default_policy();
        let pieces = [
            "hello ",
            "world. ",
            CARD,
            " ",
            "jane.doe@example.com",
            ", ",
            "+1 415 555 0132",
            "DE89 3704 0044 0532 0130 00",
            " 123-45-6789 ",
            "192.168.1.20",
            "12",
            "34 ",
            "x@y",
            ".io",
            "\n",
            "(415) 555-0100",
            " tel ",
            "4111-1111-1111-1111",
            "\u{e9}t\u{e9} ",
            "GB82 WEST 1234 5698 7654 32",
            " and ",
            "1.2.3",
            "-",
            "@",
            "sk",
            " ",
        ];
        let mut next = lcg(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let mut text = String::new();
            for _ in 0..(3 + next(12)) {
                text.push_str(pieces[next(pieces.len())]);
            }
            let (shown, redactions) = whole_body(&policy, &text);
            let want = shown.unwrap_or_else(|| text.clone());
            // Streamed, split at random char boundaries.
            let chars: Vec<char> = text.chars().collect();
            let mut deltas = Vec::new();
            let mut i = 0;
            while i < chars.len() {
                let n = 1 + next(6);
                deltas.push(
                    chars[i..(i + n).min(chars.len())]
                        .iter()
                        .collect::<String>(),
                );
                i += n;
            }
            let refs: Vec<&str> = deltas.iter().map(String::as_str).collect();
            let input = chat_stream(&refs, false);
            let (out, insp) = run(&policy, ApiFormat::OpenaiChat, true, &[&input]);
            assert_eq!(
                chat_text(&out),
                want,
                "round {round}: {text:?} split {refs:?}"
            );
            assert_eq!(
                insp.outcome(&policy, 0).redactions,
                redactions,
                "round {round}: {text:?}"
            );
        }
    }

    #[test]
    fn tool_call_arguments_and_interleaved_choices_are_separate_texts() {
        let policy = default_policy();
        let ev = |v: Value| format!("data: {v}\n\n");
        let mut s = String::new();
        // Two choices interleaved; choice 1 streams a tool call whose arguments carry an email.
        for (i, piece) in ["mail x", "@y.org", " ok"].iter().enumerate() {
            s.push_str(&ev(serde_json::json!({"model": "gpt-4o", "choices": [
                {"index": 0, "delta": {"content": format!("part{i} ")}, "finish_reason": null}]})));
            s.push_str(&ev(serde_json::json!({"model": "gpt-4o", "choices": [
                {"index": 1, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]},
                 "finish_reason": null}]})));
        }
        s.push_str(&ev(
            serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        ));
        s.push_str(&ev(serde_json::json!({"choices": [{"index": 1, "delta": {}, "finish_reason": "tool_calls"}]})));
        s.push_str("data: [DONE]\n\n");
        let (out, insp) = run(&policy, ApiFormat::OpenaiChat, true, &[s.as_bytes()]);
        let events = client_events(&out);
        let args: String = events
            .iter()
            .filter_map(|(_, v)| {
                v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        assert_eq!(args, "mail [EMAIL] ok");
        let content: String = events
            .iter()
            .filter_map(|(_, v)| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        assert_eq!(content, "part0 part1 part2 ");
        assert_eq!(insp.outcome(&policy, 0).segments, 2);
    }

    #[test]
    fn legacy_completions_stream() {
        let policy = default_policy();
        let mut s = String::new();
        for t in ["SSN 123-45", "-6780 noted"] {
            let v = serde_json::json!({"id": "cmpl", "object": "text_completion", "model": "gpt-3.5-turbo-instruct",
                "choices": [{"index": 0, "text": t, "finish_reason": null}]});
            s.push_str(&format!("data: {v}\n\n"));
        }
        s.push_str("data: [DONE]\n\n");
        let (out, _) = run(&policy, ApiFormat::OpenaiCompletions, true, &[s.as_bytes()]);
        let text: String = client_events(&out)
            .iter()
            .filter_map(|(_, v)| v["choices"][0]["text"].as_str().map(str::to_string))
            .collect();
        assert_eq!(text, "SSN [US_SSN] noted");
    }

    // Regressions found in review.

    fn ev(v: Value) -> String {
        format!("data: {v}\n\n")
    }

    fn chat_deltas(deltas: &[Value]) -> Vec<u8> {
        let mut s = String::new();
        for d in deltas {
            s.push_str(&ev(serde_json::json!({"model": "gpt-4o",
                "choices": [{"index": 0, "delta": d, "finish_reason": null}]})));
        }
        s.push_str("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
        s.into_bytes()
    }

    #[test]
    fn a_refusal_never_releases_half_of_another_entity() {
        let policy = default_policy();
        let input = chat_stream(
            &["mail jane.doe@exa", "mple.com AKIAIOSFODNN7EXAMPLE"],
            false,
        );
        let (out, _) = run(&policy, ApiFormat::OpenaiChat, true, &[&input]);
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains("jane.doe") && !text.contains("AKIA"),
            "{text}"
        );
        assert!(text.contains("SECRET_DETECTED"));
    }

    #[test]
    fn an_empty_delta_of_a_closed_choice_never_stalls_the_stream() {
        let policy = default_policy();
        let events = [
            ev(serde_json::json!({"choices": [{"index": 0, "delta": {"content": "hi "}}]})),
            ev(
                serde_json::json!({"choices": [{"index": 0, "delta": {"content": "mail bob@exa"}}]}),
            ),
            ev(
                serde_json::json!({"choices": [{"index": 1, "delta": {"content": ""}, "finish_reason": "stop"}]}),
            ),
            ev(serde_json::json!({"choices": [{"index": 0, "delta": {"content": "mple.com ok"}}]})),
            ev(
                serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            ),
            "data: [DONE]\n\n".to_string(),
        ];
        let mut insp = StreamInspector::new(
            &policy,
            ApiFormat::OpenaiChat,
            true,
            StreamLimits::default(),
        );
        let mut out = insp.push(&policy, events[..3].concat().as_bytes());
        for e in &events[3..] {
            out.extend(insp.push(&policy, e.as_bytes()));
        }
        for _ in 0..1000 {
            out.extend(insp.push(&policy, b": keep-alive\n\n"));
        }
        assert!(insp.held_bytes() < 1024, "held {}", insp.held_bytes());
        out.extend(insp.finish(&policy, StreamEnd::UpstreamIncomplete));
        assert_eq!(chat_text(&out), "hi mail [EMAIL] ok");
        assert!(String::from_utf8(out).unwrap().contains("[DONE]"));
    }

    #[test]
    fn unenforced_streams_stop_buffering_an_endless_event() {
        let policy = default_policy();
        let limits = StreamLimits {
            max_event_bytes: 1024,
            ..StreamLimits::default()
        };
        let mut insp = StreamInspector::new(&policy, ApiFormat::OpenaiChat, false, limits);
        insp.push(&policy, b"data: ");
        for _ in 0..1000 {
            insp.push(&policy, &[b'x'; 1024]);
        }
        assert!(insp.held_bytes() < 64 * 1024, "held {}", insp.held_bytes());
        let o = insp.outcome(&policy, 0);
        assert_eq!(
            o.decision,
            Action::Refuse,
            "what on_error: refuse would have done"
        );
    }

    #[test]
    fn giving_up_midway_loses_no_event() {
        let mut doc: Value =
            serde_json::from_slice(include_bytes!("../../policies/default.json")).unwrap();
        doc["on_error"] = "allow".into();
        let policy = Policy::from_value(doc).unwrap();
        let mut s = String::new();
        for i in 0..(MAX_CHANNELS as u64 + 6) {
            s.push_str(&ev(
                serde_json::json!({"choices": [{"index": i, "delta": {"content": "x "}}]}),
            ));
        }
        s.push_str("data: [DONE]\n\n");
        let (out, insp) = run(&policy, ApiFormat::OpenaiChat, true, &[s.as_bytes()]);
        assert_eq!(String::from_utf8(out).unwrap(), s);
        assert!(insp.outcome(&policy, 0).error.is_some());
    }

    #[test]
    fn every_streamed_chat_text_field_is_inspected() {
        let policy = default_policy();
        for delta in [
            serde_json::json!({"function_call": {"arguments": "{\"to\":\"bob@example.com\"}"}}),
            serde_json::json!({"tool_calls": [{"index": 0, "type": "custom", "custom": {"input": "mail bob@example.com"}}]}),
            serde_json::json!({"content": [{"type": "text", "text": "mail bob@example.com"}]}),
        ] {
            let (out, _) = run(
                &policy,
                ApiFormat::OpenaiChat,
                true,
                &[&chat_deltas(std::slice::from_ref(&delta))],
            );
            let text = String::from_utf8(out).unwrap();
            assert!(
                !text.contains("bob@example.com") && text.contains("[EMAIL]"),
                "{delta}: {text}"
            );
        }
    }

    #[test]
    fn non_utf8_event_data_is_malformed() {
        let policy = default_policy();
        let mut input = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"card 4111 1111 1111 1111 \xff\"}}]}\n\n".to_vec();
        input.extend_from_slice(b"data: [DONE]\n\n");
        let (out, insp) = run(&policy, ApiFormat::OpenaiChat, true, &[&input]);
        assert!(!String::from_utf8_lossy(&out).contains("4111 1111"));
        let o = insp.outcome(&policy, 0);
        assert_eq!(o.stream_summary.unwrap().malformed_events, 1);
        assert_eq!(o.decision, Action::Refuse);
    }

    #[test]
    fn logprobs_of_changed_events_are_blanked() {
        let policy = default_policy();
        let mut s = String::new();
        for d in ["mail bob@", "example.com ok"] {
            s.push_str(&ev(serde_json::json!({"choices": [{"index": 0, "delta": {"content": d},
                "logprobs": {"content": [{"token": d, "logprob": -0.1, "bytes": d.as_bytes(), "top_logprobs": []}]}}]})));
        }
        s.push_str("data: [DONE]\n\n");
        let (out, _) = run(&policy, ApiFormat::OpenaiChat, true, &[s.as_bytes()]);
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains("example.com") && !text.contains("bob@"),
            "{text}"
        );
        assert!(text.contains("\"logprobs\":null"));
    }

    #[test]
    fn the_error_event_follows_the_last_sequence_number_sent() {
        let policy = default_policy();
        let mut s = String::new();
        let mut seq = 0u64;
        let mut push = |v: Value, s: &mut String| {
            let mut v = v;
            v["sequence_number"] = seq.into();
            seq += 1;
            s.push_str(&format!(
                "event: {}\ndata: {v}\n\n",
                v["type"].as_str().unwrap()
            ));
        };
        push(
            serde_json::json!({"type": "response.created", "response": {"model": "gpt-4.1", "output": []}}),
            &mut s,
        );
        for d in [
            "Here: AKIA",
            "IOSFODNN7EXAMPLE",
            " and",
            " more",
            " text",
            " here",
        ] {
            push(
                serde_json::json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": d}),
                &mut s,
            );
        }
        let (out, _) = run(&policy, ApiFormat::OpenaiResponses, true, &[s.as_bytes()]);
        let seqs: Vec<u64> = client_events(&out)
            .iter()
            .filter_map(|(_, v)| v["sequence_number"].as_u64())
            .collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        assert_eq!(
            client_events(&out).last().unwrap().1["code"],
            "SECRET_DETECTED"
        );
    }

    #[test]
    fn text_the_cap_forces_out_is_counted() {
        let policy = default_policy();
        let limits = StreamLimits {
            max_holdback_bytes: 64,
            ..StreamLimits::default()
        };
        let mut insp = StreamInspector::new(&policy, ApiFormat::OpenaiChat, true, limits);
        for _ in 0..60 {
            insp.push(&policy, chat_event("xxxxx").as_bytes());
        }
        insp.finish(&policy, StreamEnd::UpstreamIncomplete);
        assert!(insp.outcome(&policy, 0).stream_summary.unwrap().overflows > 0);
    }

    /// Two interleaved choices with random splits and network chunks: each choice's text is
    /// what whole-body redaction gives, and nothing is cut off.
    #[test]
    fn interleaved_choices_match_whole_body_redaction() {
        let policy = default_policy();
        let pieces = [
            "hello ",
            CARD,
            " ",
            "jane.doe@mail.example.co.uk",
            ", ",
            "+44 20 7946 0958",
            "DE89 3704 0044 0532 0130 00",
            " 123-45-6780 ",
            "x@y",
            ".io",
            "\u{e9}t\u{e9} ",
            "a",
            "",
        ];
        let mut next = lcg(77);
        for round in 0..400 {
            let mut texts = [String::new(), String::new()];
            for t in &mut texts {
                for _ in 0..(1 + next(6)) {
                    t.push_str(pieces[next(pieces.len())]);
                }
            }
            let chars: Vec<Vec<char>> = texts.iter().map(|t| t.chars().collect()).collect();
            let mut pos = [0usize, 0];
            let mut s = String::new();
            while pos[0] < chars[0].len() || pos[1] < chars[1].len() {
                let t = next(2);
                let e = (pos[t] + next(5)).min(chars[t].len());
                let d: String = chars[t][pos[t]..e].iter().collect();
                s.push_str(&ev(
                    serde_json::json!({"choices": [{"index": t, "delta": {"content": d}}]}),
                ));
                pos[t] = e;
            }
            let first = next(2);
            for t in [first, 1 - first] {
                s.push_str(&ev(serde_json::json!({"choices": [{"index": t, "delta": {"content": ""}, "finish_reason": "stop"}]})));
            }
            s.push_str("data: [DONE]\n\n");
            let input = s.into_bytes();
            let chunks: Vec<&[u8]> = input.chunks(1 + next(400)).collect();
            let (out, _) = run(&policy, ApiFormat::OpenaiChat, true, &chunks);
            let events = client_events(&out);
            for (t, text) in texts.iter().enumerate() {
                let Some(want) = whole_body(&policy, text).0 else {
                    continue;
                };
                let got: String = events
                    .iter()
                    .filter(|(_, v)| v["choices"][0]["index"] == t)
                    .filter_map(|(_, v)| {
                        v["choices"][0]["delta"]["content"]
                            .as_str()
                            .map(str::to_string)
                    })
                    .collect();
                assert_eq!(got, want, "round {round} choice {t}: {text:?}");
            }
        }
    }

    #[test]
    fn an_event_repeating_more_texts_than_one_body_may_have_is_not_inspected_in_part() {
        // A `response.completed` repeats the whole output; over MAX_SEGMENTS texts its
        // redaction would be partial, so the stream gives up and `on_error` decides.
        let items: Vec<Value> = (0..=crate::llm::MAX_SEGMENTS)
            .map(|_| serde_json::json!({"type": "function_call", "arguments": "a"}))
            .collect();
        let completed = ev(
            serde_json::json!({"type": "response.completed", "sequence_number": 1,
            "response": {"id": "r", "model": "gpt-4.1", "output": items}}),
        );
        let limits = StreamLimits {
            max_event_bytes: 8 << 20,
            ..StreamLimits::default()
        };
        let policy = default_policy();
        let mut insp = StreamInspector::new(&policy, ApiFormat::OpenaiResponses, true, limits);
        let mut out = insp.push(&policy, completed.as_bytes());
        out.extend(insp.finish(&policy, StreamEnd::UpstreamIncomplete));
        let o = insp.outcome(&policy, 0);
        assert_eq!(o.reason_code, "RESPONSE_STREAM_TOO_COMPLEX");
        assert_eq!(o.decision, Action::Refuse);
        let events = client_events(&out);
        assert_eq!(events.len(), 1, "only the error event goes out");
        assert_eq!(events[0].1["code"], "RESPONSE_STREAM_TOO_COMPLEX");

        let mut doc: Value =
            serde_json::from_slice(include_bytes!("../../policies/default.json")).unwrap();
        doc["on_error"] = "allow".into();
        let lenient = Policy::from_value(doc).unwrap();
        let mut insp = StreamInspector::new(&lenient, ApiFormat::OpenaiResponses, true, limits);
        let mut out = insp.push(&lenient, completed.as_bytes());
        out.extend(insp.finish(&lenient, StreamEnd::UpstreamIncomplete));
        assert_eq!(out, completed.as_bytes(), "passes as it came");
        let o = insp.outcome(&lenient, 0);
        assert_eq!(o.reason_code, "RESPONSE_STREAM_TOO_COMPLEX");
        assert_eq!(o.decision, Action::Allow);
    }
}
