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
//! it, with [`channels::CONTEXT_BYTES`] before it), nothing is scanned while nothing could be
//! released, the hold-back reads only new bytes, and the walk over queued events resumes where
//! it stopped.
//!
//! In parts: [`channels`] holds each text (held, judged, released), [`judge`] finds how far
//! a text is safe and its final findings, [`queue`] holds the events waiting behind held text,
//! [`release`] takes the events that may go and ends the stream when a rule refuses,
//! [`rewrite`] writes what a changed event becomes, [`tally`] keeps what the record gets. What
//! the triggered rules decide is [`super::decide`], shared with whole bodies.

mod channels;
mod judge;
mod queue;
mod release;
mod rewrite;
mod tally;

use serde_json::Value;

use super::decide::rule_triggers;
use super::holdback::Holdback;
use super::pseudonym::Vault;
use super::{PhaseOutcome, Refusal};
use crate::llm::stream::{self, Channel, ChannelKind, Delta, End, EventInfo};
use crate::llm::{event, path, sse, ApiFormat, Phase};
use crate::policy::document::OnError;
use crate::policy::Policy;
use channels::Channels;
use queue::{Parsed, Queue, Queued, TextRef};
use tally::Tally;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Inspecting,
    /// Inspection gave up (limits, `on_error: allow`): bytes pass unchanged.
    PassThrough,
    /// The policy ended the stream: nothing more goes out.
    Stopped,
}

/// What goes to the client, and what an error event ending the stream needs.
#[derive(Debug)]
struct Output {
    /// Bytes for the client, taken after each chunk.
    bytes: Vec<u8>,
    /// The stream's line ending (its first event's).
    newline: &'static str,
    /// The last `sequence_number` seen.
    sequence_number: Option<u64>,
    /// The last `sequence_number` of an event that went out (the error event follows it).
    sent_sequence: Option<u64>,
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
    /// The texts the stream carries: held, judged, released.
    channels: Channels,
    /// Events waiting behind held text.
    queue: Queue,
    out: Output,
    /// What the record gets.
    tally: Tally,
    /// The exchange's pseudonyms, given back as they stream (empty: nothing to restore).
    vault: Vault,
    /// Texts of one event alone so far (their channels are numbered from [`ONCE`]).
    once: u64,
    /// Events read by their known shape (not parsed into a general value).
    #[cfg(test)]
    typed_reads: u64,
}

/// Channel numbers of texts of one event alone, above any choice, item or block index.
const ONCE: u64 = 1 << 62;

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
            channels: Channels::default(),
            queue: Queue::default(),
            out: Output {
                bytes: Vec::new(),
                newline: "\n",
                sequence_number: None,
                sent_sequence: None,
            },
            tally: Tally::default(),
            vault: Vault::default(),
            once: 0,
            #[cfg(test)]
            typed_reads: 0,
        }
    }

    /// Restores the tokens of `vault` (the exchange's request filled it) as the text streams.
    pub fn restoring(mut self, mut vault: Vault) -> StreamInspector {
        vault.seal();
        self.vault = vault;
        self
    }

    /// Whether streamed text is inspected: the rules read it, or it carries tokens to restore.
    fn inspects(&self) -> bool {
        self.hold.inspects() || self.vault.restores()
    }

    /// Reads a chunk of the response; returns the bytes the client gets now.
    pub fn push(&mut self, policy: &Policy, chunk: &[u8]) -> Vec<u8> {
        self.tally.bytes += chunk.len() as u64;
        if self.state == State::Inspecting {
            let mut events = Vec::new();
            let fed = self.parser.feed(chunk, &mut events);
            for event in events {
                self.accept(policy, event);
            }
            if fed.is_err() {
                self.give_up(policy, StreamError::EventTooLarge);
            } else if !self.inspects() {
                if self.state == State::Inspecting {
                    self.out.bytes.extend_from_slice(chunk);
                }
            } else {
                self.pump(policy, false);
                self.tally.max_held = self.tally.max_held.max(self.channels.held_text);
            }
            if self.state == State::PassThrough {
                // Nothing of this chunk is held any more: the parser's pending bytes go too.
                let pending = self.parser.finish().map(|e| e.raw).unwrap_or_default();
                self.out.bytes.extend_from_slice(&pending);
            }
        } else if self.state == State::PassThrough {
            self.out.bytes.extend_from_slice(chunk);
        } else if self.state == State::Stopped {
            // Nothing more goes out, but what the upstream sent is still counted (events, and
            // text for usage: the provider bills it), so a record does not depend on how the
            // upstream's bytes were cut into chunks.
            let mut events = Vec::new();
            if self.parser.feed(chunk, &mut events).is_ok() {
                for event in events {
                    self.count_stopped(policy, &event);
                }
            }
        }
        self.take(chunk)
    }

    /// An event after the stream was stopped: counted, never sent.
    fn count_stopped(&mut self, policy: &Policy, event: &sse::Event) {
        self.tally.events += 1;
        let Some(data) = event.data.as_deref() else {
            return;
        };
        let Ok(value) = crate::llm::json::from_slice(data.as_bytes()) else {
            return;
        };
        let info = stream::interpret(self.format, &value);
        self.note(policy, &info);
        for d in info.deltas.iter().filter(|d| !d.once) {
            if let Some(text) = path::get(&value, &stream::as_path(&d.path)).and_then(Value::as_str)
            {
                self.tally.output_chars += text.chars().count() as u64;
            }
        }
    }

    /// The end of the stream: releases what is held and returns the last bytes.
    pub fn finish(&mut self, policy: &Policy, end: StreamEnd) -> Vec<u8> {
        if self.tally.end.is_some() {
            return Vec::new();
        }
        if self.state == State::Inspecting {
            if let Some(event) = self.parser.finish() {
                self.accept(policy, event);
            }
            self.channels.close(End::All);
            self.pump(policy, true);
        }
        self.tally.end = Some(if self.state == State::Stopped {
            StreamEnd::Refused
        } else if self.tally.terminal {
            StreamEnd::Complete
        } else {
            end
        });
        self.take(&[])
    }

    /// Bytes held right now (events waiting, partial event, held text): bounded by the limits.
    pub fn held_bytes(&self) -> usize {
        self.queue.bytes + self.parser.buffered() + self.channels.held_bytes()
    }

    /// The response phase's outcome; `prompt_text_bytes` estimates input tokens when the
    /// stream reports none.
    pub fn outcome(&self, policy: &Policy, prompt_text_bytes: u64) -> PhaseOutcome {
        let mut out = self.tally.outcome(
            policy,
            self.format,
            self.inspects(),
            self.channels.seen,
            prompt_text_bytes,
        );
        out.injection_score = self.channels.injection_score;
        out
    }

    fn take(&mut self, chunk: &[u8]) -> Vec<u8> {
        let out = std::mem::take(&mut self.out.bytes);
        if self.enforced {
            out
        } else {
            // Shadow and canary control: the stream is judged, never changed.
            chunk.to_vec()
        }
    }

    /// Takes in one event: its text joins its channel, the event waits in the queue.
    fn accept(&mut self, policy: &Policy, event: sse::Event) {
        self.tally.events += 1;
        if self.tally.events == 1 {
            self.out.newline = event.newline;
        }
        if self.state == State::Stopped {
            // Stopped earlier in the same chunk: counted as if it came later.
            self.tally.events -= 1;
            return self.count_stopped(policy, &event);
        }
        if self.state != State::Inspecting {
            // Given up on earlier in the same chunk.
            return self.enqueue(event.raw, None);
        }
        if event.data_invalid {
            return self.malformed(policy, event.raw, StreamError::DataNotUtf8);
        }
        let Some(data) = event.data.as_deref() else {
            return self.enqueue(event.raw, None);
        };
        if data.trim() == stream::DONE {
            self.tally.terminal = true;
            self.channels.close(End::All);
            return self.enqueue(event.raw, None);
        }
        // The events nearly every stream is made of, read by their shape, text borrowed.
        if let Some(read) = event::read(self.format, data) {
            #[cfg(test)]
            {
                self.typed_reads += 1;
            }
            let texts: Vec<Option<&str>> = read.texts.iter().map(|t| Some(&**t)).collect();
            return self.accept_read(policy, event.raw, read.info, &texts, None);
        }
        // Strict, as whole bodies: an event naming a key twice is not judged by one copy.
        let value: Value = match crate::llm::json::from_slice(data.as_bytes()) {
            Ok(v) => v,
            Err(_) => return self.malformed(policy, event.raw, StreamError::DataNotJson),
        };
        let info = stream::interpret(self.format, &value);
        let texts: Vec<Option<&str>> = info
            .deltas
            .iter()
            .map(|d| path::get(&value, &stream::as_path(&d.path)).and_then(Value::as_str))
            .collect();
        let texts: Vec<Option<String>> = texts.into_iter().map(|t| t.map(str::to_string)).collect();
        let texts: Vec<Option<&str>> = texts.iter().map(Option::as_deref).collect();
        self.accept_read(policy, event.raw, info, &texts, Some(value));
    }

    /// Takes in an event read: `texts` are its deltas' texts (None: not a string), `value`
    /// its parsed data when read the general way (needed to redact texts it repeats whole).
    /// One copy of this code for both readings (not generic over them: module size).
    fn accept_read(
        &mut self,
        policy: &Policy,
        raw: Vec<u8>,
        info: EventInfo,
        texts: &[Option<&str>],
        value: Option<Value>,
    ) {
        self.note(policy, &info);
        if !self.inspects() {
            // Nothing in the text to judge: the chunk passes as it came (see `push`).
            for (d, text) in info.deltas.iter().zip(texts.iter().copied()) {
                if let (false, Some(text)) = (d.once, text) {
                    self.tally.output_chars += text.chars().count() as u64;
                }
            }
            return;
        }
        let texts = match self.add_texts(info.deltas.into_iter().zip(texts.iter().copied())) {
            Ok(texts) => texts,
            Err(error) => {
                self.give_up(policy, error);
                // Passing now (or stopped): the event goes out as it came (or not at all).
                return self.enqueue(raw, None);
            }
        };
        for end in &info.ends {
            self.channels.close(*end);
        }
        let mut changed = None;
        if let (false, true, Some(mut value)) = (info.whole.is_empty(), self.enforced, value) {
            match rewrite::redact_whole(policy, &self.vault, &mut value, &info.whole) {
                Ok(true) => changed = Some(value),
                Ok(false) => {}
                Err(_) => {
                    self.give_up(policy, StreamError::EventTooComplex);
                    return self.enqueue(raw, None);
                }
            }
        }
        let parsed = Parsed {
            changed,
            texts,
            sequence_number: info.sequence_number,
        };
        self.enqueue(raw, Some(parsed));
    }

    /// Adds an event's pieces of text to their channels; returns where each sits.
    fn add_texts<'t>(
        &mut self,
        deltas: impl Iterator<Item = (Delta, Option<&'t str>)>,
    ) -> Result<Vec<TextRef>, StreamError> {
        let mut texts = Vec::with_capacity(deltas.size_hint().0);
        for (d, text) in deltas {
            let Some(text) = text else {
                continue;
            };
            // A text of this event alone: a channel of its own, ended with the event.
            let channel = if d.once {
                self.once += 1;
                Channel {
                    index: ONCE | self.once,
                    kind: ChannelKind::Extra,
                    sub: 0,
                }
            } else {
                d.channel
            };
            let (start, end) = self.channels.append(channel, text)?;
            if d.once {
                self.channels.close(End::One(channel));
            } else {
                self.tally.output_chars += text.chars().count() as u64;
            }
            texts.push(TextRef {
                channel,
                path: d.path,
                start,
                end,
            });
        }
        Ok(texts)
    }

    /// Usage, model, sequence numbers and the end of the stream.
    fn note(&mut self, policy: &Policy, info: &EventInfo) {
        if let Some(n) = info.sequence_number {
            self.out.sequence_number = Some(n);
        }
        if self.tally.note(info) {
            self.model_rules(policy);
        }
    }

    /// Response rules on the served model alone (no content match) decide once it is known.
    fn model_rules(&mut self, policy: &Policy) {
        let model = self.tally.model.as_deref();
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
        self.tally.triggered.extend(hits.iter().copied());
        if let Some(refusal) = self.stopping_refusal(policy, &hits) {
            self.stop(refusal);
        }
    }

    /// An event the inspector cannot read: counted, then the policy's `on_error` decides.
    fn malformed(&mut self, policy: &Policy, raw: Vec<u8>, error: StreamError) {
        self.tally.malformed += 1;
        if policy.on_error == OnError::Refuse && self.inspects() {
            self.tally.error = Some(error);
            self.stop(error.refusal());
            if self.state == State::Stopped {
                return;
            }
        }
        self.enqueue(raw, None);
    }

    fn enqueue(&mut self, raw: Vec<u8>, parsed: Option<Parsed>) {
        if self.state == State::PassThrough && self.inspects() {
            self.out.bytes.extend_from_slice(&raw);
            return;
        }
        if self.state != State::Inspecting || !self.inspects() {
            return;
        }
        for t in parsed.iter().flat_map(|p| &p.texts) {
            self.channels.count_queued(&t.channel, true);
        }
        self.queue.push(Queued { raw, parsed });
    }

    /// Drops every channel and everything queued (the stream stopped or passes from here on).
    fn forget(&mut self) {
        self.queue.take();
        self.channels.clear();
    }

    /// Inspection stops: the stream is refused (`on_error: refuse`) or passes unchanged.
    fn give_up(&mut self, policy: &Policy, error: StreamError) {
        self.tally.error = Some(error);
        if self.enforced && policy.on_error == OnError::Refuse && self.inspects() {
            self.stop(error.refusal());
            return;
        }
        // Unenforced streams (shadow, canary control, the candidate) always pass from here
        // on; the record carries the error and what `on_error` would have decided.
        // What is queued goes out as it came; the rest of the stream passes.
        for q in self.queue.take() {
            self.out.bytes.extend_from_slice(&q.raw);
        }
        self.forget();
        self.state = State::PassThrough;
    }

    /// Ends the stream with the provider's error event: a rule refused or held it, or it
    /// could not be inspected and the policy refuses what it cannot inspect.
    fn stop(&mut self, refusal: Refusal) {
        if self.enforced {
            let sequence_number = if self.inspects() {
                self.out.sent_sequence
            } else {
                self.out.sequence_number
            };
            refusal.stream_error_event(
                self.format,
                sequence_number,
                self.out.newline,
                &mut self.out.bytes,
            );
            self.forget();
            self.state = State::Stopped;
        }
    }
}

#[cfg(test)]
mod tests;
