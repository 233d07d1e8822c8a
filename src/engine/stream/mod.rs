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

use super::decide::{answers_locally, decide, refusal_of, rule_triggers};
use super::edits::plan_edits;
use super::hits::{find_hits, rule_mask, sort_counted, Hit, Source};
use super::holdback::{Holdback, Progress};
use super::{redact, work, PhaseOutcome, Refusal};
use crate::llm::stream::{self, Channel, ChannelKind, End, EventInfo, Whole};
use crate::llm::{path, sse, ApiFormat, PathId, PathSeg, Phase, Segment, Usage};
use crate::policy::document::OnError;
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

/// Why a stream could not be inspected. The record's `error` is its detail (never content);
/// the policy's `on_error` decides what happens to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    /// An event larger than [`StreamLimits::max_event_bytes`].
    EventTooLarge,
    /// An event whose data is not UTF-8.
    DataNotUtf8,
    /// An event whose data is not JSON.
    DataNotJson,
    /// More distinct texts (choices, blocks, tool calls) than one stream may carry.
    TooManyTexts,
    /// An event repeating more texts than one body may have (`llm::MAX_SEGMENTS`).
    EventTooComplex,
}

impl StreamError {
    pub fn reason_code(self) -> &'static str {
        match self {
            StreamError::EventTooLarge => "RESPONSE_EVENT_TOO_LARGE",
            StreamError::DataNotUtf8 | StreamError::DataNotJson => "RESPONSE_EVENT_MALFORMED",
            StreamError::TooManyTexts | StreamError::EventTooComplex => {
                "RESPONSE_STREAM_TOO_COMPLEX"
            }
        }
    }

    pub fn detail(self) -> &'static str {
        match self {
            StreamError::EventTooLarge => "an event exceeds the limit",
            StreamError::DataNotUtf8 => "an event's data is not UTF-8",
            StreamError::DataNotJson => "an event's data is not JSON",
            StreamError::TooManyTexts => "too many texts in one stream",
            StreamError::EventTooComplex => "too many texts in one event",
        }
    }

    /// The error event that ends the stream under `on_error: refuse`.
    fn refusal(self) -> Refusal {
        Refusal {
            status: 502,
            message: "The response could not be inspected by the AI usage policy.".into(),
            reason_code: self.reason_code().into(),
            held: false,
        }
    }
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
        work::add(released.len().min(CONTEXT_BYTES) + 1);
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
            work::add(self.text.len() - self.skip);
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
    error: Option<StreamError>,
    end: Option<StreamEnd>,
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
                self.give_up(policy, StreamError::EventTooLarge);
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
            work::add(1);
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
        let decision = decide(policy, self.triggered.iter().copied());
        decision.record(&mut out);
        if decision.rule.is_none() {
            if let Some(code) = self.end.and_then(StreamEnd::reason_code) {
                out.reason_code = code.into();
            }
            if let Some(error) = self.error {
                out.reason_code = error.reason_code().into();
                if policy.on_error == OnError::Refuse {
                    out.decision = Action::Refuse;
                }
            }
        }
        out.detections = self.detections.clone();
        out.redactions = self.redactions.clone();
        out.error = self.error.map(|e| e.detail().to_string());
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
        out.stream_summary = Some(StreamSummary {
            end: self.end.unwrap_or(StreamEnd::UpstreamIncomplete).name(),
            events: self.events,
            max_held_bytes: self.max_held as u64,
            overflows: self.overflows,
            malformed_events: self.malformed,
        });
        out
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
            return self.malformed(policy, event.raw, StreamError::DataNotUtf8);
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
            Err(_) => return self.malformed(policy, event.raw, StreamError::DataNotJson),
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
                    self.give_up(policy, StreamError::TooManyTexts);
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
            work::add(text.len() + 1);
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
                    self.give_up(policy, StreamError::EventTooComplex);
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
                    && rule_triggers(r, false, model, None)
            })
            .map(|(i, _)| i)
            .collect();
        for &i in &hits {
            self.triggered.insert(i);
        }
        if let Some(refusal) = self
            .stopping_rule(policy, &hits)
            .and_then(|i| policy.rules.get(i).and_then(refusal_of))
        {
            self.stop(refusal);
        }
    }

    /// An event the inspector cannot read: counted, then the policy's `on_error` decides.
    fn malformed(&mut self, policy: &Policy, raw: Vec<u8>, error: StreamError) {
        self.malformed += 1;
        if policy.on_error == OnError::Refuse && self.hold.inspects() {
            self.error = Some(error);
            self.stop(error.refusal());
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
    fn give_up(&mut self, policy: &Policy, error: StreamError) {
        self.error = Some(error);
        if self.enforced && policy.on_error == OnError::Refuse && self.hold.inspects() {
            self.stop(error.refusal());
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

    /// Ends the stream with the provider's error event: a rule refused or held it, or it
    /// could not be inspected and the policy refuses what it cannot inspect.
    fn stop(&mut self, refusal: Refusal) {
        if self.enforced {
            let mut event = Vec::new();
            refusal.stream_error_event(
                self.format,
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
            .filter(|&i| policy.rules.get(i).is_some_and(answers_locally))
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
            work::add(1);
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
        work::add(scan.len());
        let origin = ch.settled - look.len() as u64;
        let segment = Segment {
            role: stream::ROLE,
            text: &scan,
            path: PathId::ROOT,
        };
        let mut fs: Vec<Found> = find_hits(policy, Phase::Response, std::slice::from_ref(&segment))
            .into_iter()
            .filter(|h| h.start >= look.len())
            .map(|h| Found {
                hit: h,
                start: origin + h.start as u64,
                end: origin + h.end as u64,
            })
            .collect();
        sort_counted(&mut fs, |f| (f.start, f.end));
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
            work::add(1);
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
                work::add(1);
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
            work::add(1);
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
            self.error = Some(StreamError::DataNotJson);
            if self.enforced {
                self.stop(StreamError::DataNotJson.refusal());
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
        if let Some(refusal) = stopping.and_then(|i| policy.rules.get(i).and_then(refusal_of)) {
            self.stop(refusal);
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
        work::add(1);
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
        work::add(1);
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
mod tests;
