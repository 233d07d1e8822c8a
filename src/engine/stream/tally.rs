//! What the record gets from a stream: the rules triggered, detection and redaction counts,
//! model and usage (from the stream or estimated), and how the stream went.

use std::collections::{BTreeMap, BTreeSet};

use super::channels::Found;
use super::{StreamEnd, StreamError, StreamSummary};
use crate::engine::decide::decide;
use crate::engine::hits::Source;
use crate::engine::pseudonym::RESTORE_RULE;
use crate::engine::PhaseOutcome;
use crate::llm::stream::{Channel, EventInfo};
use crate::llm::{ApiFormat, Phase, Usage};
use crate::policy::document::OnError;
use crate::policy::{Action, Policy};

/// Characters of text per token when usage must be estimated (OpenAI's rule of thumb).
const CHARS_PER_TOKEN: u64 = 4;

#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Rules triggered by released text or by the served model, by index.
    pub(super) triggered: BTreeSet<usize>,
    detections: BTreeMap<String, u32>,
    redactions: BTreeMap<String, u32>,
    /// Tokens given back, by detector.
    restored: BTreeMap<String, u32>,
    pub(super) model: Option<String>,
    usage: Usage,
    /// Characters of output text, to estimate output tokens.
    pub(super) output_chars: u64,
    /// Bytes of the response.
    pub(super) bytes: u64,
    pub(super) events: u64,
    /// Most output text held after a chunk was read.
    pub(super) max_held: usize,
    pub(super) overflows: u32,
    pub(super) malformed: u32,
    /// The provider's final event arrived.
    pub(super) terminal: bool,
    pub(super) error: Option<StreamError>,
    pub(super) end: Option<StreamEnd>,
}

impl Tally {
    /// Usage, model and the end of the stream from one event; returns whether the model
    /// became known with it.
    pub(super) fn note(&mut self, info: &EventInfo) -> bool {
        if info.terminal {
            self.terminal = true;
        }
        if let Some(u) = info.usage {
            self.usage.prompt_tokens = u.prompt_tokens.or(self.usage.prompt_tokens);
            self.usage.completion_tokens = u.completion_tokens.or(self.usage.completion_tokens);
            self.usage.total_tokens = u.total_tokens.or(self.usage.total_tokens);
        }
        if self.model.is_some() {
            return false;
        }
        self.model.clone_from(&info.model);
        self.model.is_some()
    }

    /// Counts of detections and redactions, and the rules triggered, for the record.
    pub(super) fn record_findings(
        &mut self,
        policy: &Policy,
        hits: &BTreeMap<Channel, Vec<Found>>,
        rules: &[usize],
    ) {
        self.triggered.extend(rules.iter().copied());
        for fs in hits.values() {
            for f in fs.iter().filter(|f| f.hit.rule == RESTORE_RULE) {
                *self
                    .restored
                    .entry(f.hit.source.name().to_string())
                    .or_insert(0) += 1;
            }
            let mut seen: Vec<(u64, u64, Source)> = fs
                .iter()
                .filter(|f| f.hit.rule != RESTORE_RULE)
                .map(|f| (f.start, f.end, f.hit.source))
                .collect();
            crate::sort::sort_by(&mut seen, &Ord::cmp);
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
            crate::sort::sort_by(&mut redacted, &Ord::cmp);
            redacted.dedup_by_key(|r| (r.0, r.1));
            for (_, _, source) in redacted {
                *self
                    .redactions
                    .entry(source.name().to_string())
                    .or_insert(0) += 1;
            }
        }
    }

    /// The response phase's outcome. `inspected`: the policy inspects streamed text;
    /// `texts`: distinct texts the stream carried; `prompt_text_bytes` estimates input
    /// tokens when the stream reports none.
    pub(super) fn outcome(
        &self,
        policy: &Policy,
        format: ApiFormat,
        inspected: bool,
        texts: u32,
        prompt_text_bytes: u64,
    ) -> PhaseOutcome {
        let mut out = PhaseOutcome::new(Phase::Response, 0);
        out.body_bytes = self.bytes;
        out.format = format;
        out.model = self.model.clone();
        out.stream = true;
        out.inspected = inspected && self.error.is_none();
        out.segments = texts;
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
        out.pseudonyms.restored = self.restored.clone();
        out.error = self.error.map(|e| e.detail().to_string());
        let (usage, estimated) = self.usage(prompt_text_bytes);
        out.usage = Some(usage);
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

    /// Usage as the stream reported it, or estimated from text lengths (then `true`).
    fn usage(&self, prompt_text_bytes: u64) -> (Usage, bool) {
        let estimate = |n: u64| n.div_ceil(CHARS_PER_TOKEN);
        let prompt = self.usage.prompt_tokens;
        let completion = self.usage.completion_tokens;
        let estimated = prompt.is_none() || completion.is_none();
        let prompt = prompt.unwrap_or_else(|| estimate(prompt_text_bytes));
        let completion = completion.unwrap_or_else(|| estimate(self.output_chars));
        let usage = Usage {
            prompt_tokens: Some(prompt),
            completion_tokens: Some(completion),
            total_tokens: Some(
                self.usage
                    .total_tokens
                    .filter(|_| !estimated)
                    .unwrap_or(prompt.saturating_add(completion)),
            ),
        };
        (usage, estimated)
    }
}
