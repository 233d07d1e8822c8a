//! One release pass: judge the texts that changed, take the queued events whose text is all
//! judged (never ending inside a finding), make their findings final for the record, cut
//! before a finding that ends the stream, and write the events out, changed where their text
//! was redacted.

use std::collections::BTreeMap;

use super::channels::Found;
use super::rewrite::{self, Span};
use super::{State, StreamError, StreamInspector};
use crate::engine::decide::{answers_locally, decide};
use crate::engine::pseudonym::RESTORE_RULE;
use crate::engine::work;
use crate::engine::Refusal;
use crate::llm::stream::Channel;
use crate::policy::Policy;

impl StreamInspector {
    /// Releases every event whose text is safe; `all` releases everything (end of stream).
    pub(super) fn pump(&mut self, policy: &Policy, all: bool) {
        self.release(policy, all);
        if !all
            && self.state == State::Inspecting
            && self.queue.bytes > self.limits.max_queued_bytes
        {
            // What waits exceeds the limit: out it goes, judged as it stands.
            self.tally.overflows += 1;
            self.release(policy, true);
        }
    }

    /// One release pass; `all` treats every text as ended.
    fn release(&mut self, policy: &Policy, all: bool) {
        if self.state != State::Inspecting {
            return;
        }
        // Judge what changed (everything unsettled when every text ends).
        let changed = self.channels.take_changed(all);
        if self
            .channels
            .judge(policy, self.hold, &self.vault, &changed, all)
        {
            self.tally.overflows += 1;
        }
        for c in &changed {
            self.drop_if_done(c);
        }
        let mut release = self.queue.walk(&self.channels);
        if release == 0 {
            return;
        }

        // Where each channel's released text ends, and its findings there (they are final).
        let mut ends = self.queue.ends(release);
        let mut final_hits = self.channels.final_findings(&ends);
        let mut rules: Vec<usize> = final_hits
            .values()
            .flatten()
            .map(|f| f.hit.rule)
            .filter(|&r| r != RESTORE_RULE)
            .collect();
        crate::sort::sort_by(&mut rules, &Ord::cmp);
        rules.dedup();
        self.tally.record_findings(policy, &final_hits, &rules);
        let stopping = self.stopping_refusal(policy, &rules);
        if stopping.is_some() {
            // Text before the first finding of a stopping rule still goes out, then the
            // error: the longest prefix before every stop that, like any release, ends at a
            // cut outside every finding (a redactable entity before the secret stays whole).
            // Once per stream: the stream ends here.
            let stops = stops(policy, &final_hits);
            release = self.queue.prefix_before(release, &stops, &self.channels);
            ends = self.queue.ends(release);
            for (c, fs) in final_hits.iter_mut() {
                let to = ends.get(c).copied().unwrap_or(0);
                fs.retain(|f| f.end <= to);
            }
        }
        let spans = rewrite::replacement_spans(
            policy,
            &self.vault,
            &rules,
            &final_hits,
            &ends,
            &self.channels,
        );
        if self.emit(release, &spans).is_err() {
            // Cannot happen (the same bytes parsed before); never let the text out unjudged.
            self.tally.error = Some(StreamError::DataNotJson);
            if self.enforced {
                self.stop(StreamError::DataNotJson.refusal());
            } else {
                self.forget();
                self.state = State::PassThrough;
            }
            return;
        }
        self.queue.released(release);

        // Released text leaves the channels; a little stays as context.
        for (c, to) in ends {
            self.channels.release_to(&c, to);
            self.drop_if_done(&c);
        }
        if let Some(refusal) = stopping {
            self.stop(refusal);
        }
    }

    /// The error event that ends the stream when `rules` just triggered (and are in the
    /// tally): what every rule triggered so far decides, as for a whole body, when it refuses
    /// or holds and the stream is enforced.
    pub(super) fn stopping_refusal(&self, policy: &Policy, rules: &[usize]) -> Option<Refusal> {
        let new_stop = rules
            .iter()
            .any(|&i| policy.rules.get(i).is_some_and(answers_locally));
        if !self.enforced || !new_stop {
            return None;
        }
        decide(policy, self.tally.triggered.iter().copied()).refusal()
    }

    /// Writes the first `release` queued events out, each piece of text replaced by what its
    /// channel's `spans` make of it.
    fn emit(
        &mut self,
        release: usize,
        spans: &BTreeMap<Channel, Vec<Span>>,
    ) -> Result<(), rewrite::Unreadable> {
        for _ in 0..release {
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            work::add(1);
            let Some(mut p) = q.parsed else {
                self.out.bytes.extend_from_slice(&q.raw);
                continue;
            };
            if p.sequence_number.is_some() {
                self.out.sent_sequence = p.sequence_number;
            }
            let mut pieces = Vec::new();
            for t in &p.texts {
                self.channels.count_queued(&t.channel, false);
                let (Some(ch), Some(sp)) = (self.channels.get(&t.channel), spans.get(&t.channel))
                else {
                    continue;
                };
                if let Some(new) = rewrite::rewrite_piece(ch, t.start, t.end, sp) {
                    pieces.push((t.path.as_slice(), new));
                }
            }
            if pieces.is_empty() && p.changed.is_none() {
                self.out.bytes.extend_from_slice(&q.raw);
                continue;
            }
            rewrite::write_changed(&q.raw, p.changed.take(), pieces, &mut self.out.bytes)?;
        }
        Ok(())
    }

    /// A channel goes once its text ended, all of it went out and nothing queued refers to it.
    pub(super) fn drop_if_done(&mut self, c: &Channel) {
        if self.channels.drop_if_done(c) {
            self.queue.forget_channel(c);
        }
    }
}

/// Where each channel's text must stop: the start of its first finding of a rule that ends
/// the stream.
/// (Inserted one by one: `collect` into a map sorts first, a sort compiled per element type.)
fn stops(policy: &Policy, final_hits: &BTreeMap<Channel, Vec<Found>>) -> BTreeMap<Channel, u64> {
    let mut stops = BTreeMap::new();
    for (c, fs) in final_hits {
        let first = fs
            .iter()
            .filter(|f| policy.rules.get(f.hit.rule).is_some_and(answers_locally))
            .map(|f| f.start)
            .min();
        if let Some(s) = first {
            stops.insert(*c, s);
        }
    }
    stops
}
