//! The texts a stream carries, one channel each (a choice's content, a content block, a tool
//! call's arguments): what of each text is held, judged and released, and its findings.

use std::collections::BTreeMap;

use super::StreamError;
use crate::engine::hits::Hit;
use crate::engine::holdback::Progress;
use crate::engine::work;
use crate::llm::stream::{Channel, ChannelKind, End};

/// Released text kept before held text, so detectors see what precedes a new entity.
pub(super) const CONTEXT_BYTES: usize = 128;
/// Most distinct texts (choices, blocks, tool calls) one stream may carry.
pub(super) const MAX_CHANNELS: usize = 1024;

/// A finding of a rule in a channel, in channel offsets.
#[derive(Debug, Clone, Copy)]
pub(super) struct Found {
    pub(super) hit: Hit,
    pub(super) start: u64,
    pub(super) end: u64,
}

#[derive(Debug, Default)]
pub(super) struct ChannelText {
    /// Text not released yet is `text[skip..]`, which starts at offset `base` of the whole
    /// channel text (released text is dropped from the front now and then, not every time).
    pub(super) text: String,
    pub(super) skip: usize,
    pub(super) base: u64,
    /// The tail of released text, starting after a whitespace when possible.
    pub(super) context: String,
    pub(super) closed: bool,
    /// Text before this offset is judged: its findings are final, in `found`.
    pub(super) settled: u64,
    /// Findings in judged text not released yet, by start; none ends after `settled`.
    pub(super) found: Vec<Found>,
    /// The union of `found`'s spans, sorted and disjoint: no release may end inside one.
    spans: Vec<(u64, u64)>,
    /// What the hold-back has read of the text.
    pub(super) progress: Progress,
    /// Text arrived, or the text ended, since it was last judged (it is in `dirty`).
    pub(super) dirty: bool,
    /// Unsettled text is not judged again until it is this long: the cap could not cut it
    /// without cutting a finding (judging again at once would only scan it again).
    pub(super) retry_at: usize,
    /// Pieces of this channel in queued events.
    pub(super) queued: usize,
}

impl ChannelText {
    /// Text not released yet.
    pub(super) fn held(&self) -> &str {
        self.text.get(self.skip..).unwrap_or_default()
    }

    pub(super) fn end(&self) -> u64 {
        self.base + self.held().len() as u64
    }

    /// The held text from `from` to `to` (channel offsets).
    pub(super) fn slice(&self, from: u64, to: u64) -> &str {
        let a = from.saturating_sub(self.base) as usize;
        let b = to.saturating_sub(self.base) as usize;
        self.held().get(a..b).unwrap_or_default()
    }

    /// Whether `at` is strictly inside a finding of judged text.
    pub(super) fn inside(&self, at: u64) -> bool {
        let i = self.spans.partition_point(|(s, _)| *s < at);
        i > 0 && self.spans.get(i - 1).is_some_and(|(_, e)| at < *e)
    }

    /// Adds findings that start at or after every finding already kept.
    pub(super) fn keep(&mut self, found: impl IntoIterator<Item = Found>) {
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
        // The held text is `text[skip..]`: borrowed by field, the context is written meanwhile.
        let released = self
            .text
            .get(self.skip..)
            .and_then(|h| h.get(..cut))
            .unwrap_or_default();
        work::add(released.len().min(CONTEXT_BYTES) + 1);
        extend_context(&mut self.context, released);
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

/// Every channel of a stream, and which of them changed since they were last judged.
#[derive(Debug, Default)]
pub(super) struct Channels {
    pub(super) map: BTreeMap<Channel, ChannelText>,
    /// Distinct channels the stream carried, for the record.
    pub(super) seen: u32,
    /// Channels whose text changed since they were last judged.
    dirty: Vec<Channel>,
    /// Bytes of text held in all channels.
    pub(super) held_text: usize,
    /// The highest prompt-injection score of the text judged so far, for the record.
    pub(super) injection_score: Option<f64>,
    /// The text a judgement scans (context and unsettled text), kept to reuse its memory.
    pub(super) scan: String,
}

impl Channels {
    pub(super) fn get(&self, c: &Channel) -> Option<&ChannelText> {
        self.map.get(c)
    }

    /// Whether `at` is strictly inside a finding of channel `c`'s judged text.
    pub(super) fn inside(&self, c: &Channel, at: u64) -> bool {
        self.map.get(c).is_some_and(|ch| ch.inside(at))
    }

    /// Bytes held: text not released yet and the context kept before it.
    pub(super) fn held_bytes(&self) -> usize {
        self.map
            .values()
            .map(|c| c.text.len() + c.context.len())
            .sum::<usize>()
    }

    /// Appends a piece of `c`'s text; returns where it sits in the channel (start, end).
    pub(super) fn append(&mut self, c: Channel, text: &str) -> Result<(u64, u64), StreamError> {
        if !self.map.contains_key(&c) {
            if self.map.len() >= MAX_CHANNELS {
                return Err(StreamError::TooManyTexts);
            }
            self.seen += 1;
        }
        let ch = self.map.entry(c).or_default();
        let start = ch.end();
        ch.text.push_str(text);
        self.held_text += text.len();
        if !text.is_empty() && !ch.dirty {
            ch.dirty = true;
            self.dirty.push(c);
        }
        work::add(text.len() + 1);
        Ok((start, start + text.len() as u64))
    }

    /// Marks the channels `end` covers as ended (to be judged whole).
    pub(super) fn close(&mut self, end: End) {
        let dirty = &mut self.dirty;
        let mut mark = |c: Channel, ch: &mut ChannelText| {
            work::add(1);
            ch.closed = true;
            if !ch.dirty {
                ch.dirty = true;
                dirty.push(c);
            }
        };
        match end {
            End::One(c) => {
                if let Some(ch) = self.map.get_mut(&c) {
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
                    kind: ChannelKind::Extra,
                    sub: u64::MAX,
                };
                for (c, ch) in self.map.range_mut(first..=last) {
                    mark(*c, ch);
                }
            }
            End::All => {
                for (c, ch) in self.map.iter_mut() {
                    mark(*c, ch);
                }
            }
        }
    }

    /// The channels to judge now: those that changed, or, when every text ends (`all`),
    /// every channel with unsettled text.
    pub(super) fn take_changed(&mut self, all: bool) -> Vec<Channel> {
        if !all {
            return std::mem::take(&mut self.dirty);
        }
        for c in std::mem::take(&mut self.dirty) {
            if let Some(ch) = self.map.get_mut(&c) {
                ch.dirty = false;
            }
        }
        self.map
            .iter()
            .filter(|(_, ch)| ch.settled < ch.end())
            .map(|(c, _)| *c)
            .collect()
    }

    /// The findings of each channel that start before its text released up to `ends`: they
    /// are final.
    pub(super) fn final_findings(
        &self,
        ends: &BTreeMap<Channel, u64>,
    ) -> BTreeMap<Channel, Vec<Found>> {
        let mut final_hits = BTreeMap::new();
        for (c, to) in ends {
            let Some(ch) = self.map.get(c) else {
                continue;
            };
            let n = ch.found.partition_point(|f| f.start < *to);
            if n > 0 {
                final_hits.insert(*c, ch.found.iter().take(n).copied().collect());
            }
        }
        final_hits
    }

    /// A queued event carries a piece of `c` (`true`), or one went out (`false`).
    pub(super) fn count_queued(&mut self, c: &Channel, queued: bool) {
        if let Some(ch) = self.map.get_mut(c) {
            ch.queued = if queued {
                ch.queued + 1
            } else {
                ch.queued.saturating_sub(1)
            };
        }
    }

    /// `c`'s text up to `to` went out.
    pub(super) fn release_to(&mut self, c: &Channel, to: u64) {
        if let Some(ch) = self.map.get_mut(c) {
            let cut = ch.release_to(to);
            self.held_text = self.held_text.saturating_sub(cut);
        }
    }

    /// A channel goes once its text ended, all of it went out and nothing queued refers to it.
    /// Returns whether it went.
    pub(super) fn drop_if_done(&mut self, c: &Channel) -> bool {
        let done = self
            .map
            .get(c)
            .is_some_and(|ch| ch.closed && ch.held().is_empty() && ch.queued == 0);
        if done {
            self.map.remove(c);
        }
        done
    }

    /// Drops every channel (the stream stopped or passes from here on).
    pub(super) fn clear(&mut self) {
        self.map.clear();
        self.dirty.clear();
        self.held_text = 0;
    }
}

/// Writes into `out` the last [`CONTEXT_BYTES`] of `previous` (the context so far) followed by
/// `released`, starting after a whitespace when one is there, so a detector never starts
/// reading in the middle of a word. No allocation once `out` has grown.
pub(super) fn context_into(out: &mut String, previous: &str, released: &str) {
    out.clear();
    if released.len() < CONTEXT_BYTES {
        out.push_str(previous);
    }
    extend_context(out, released);
}

/// Makes `context` the context after `released` followed it (see [`context_into`]), in place;
/// copies at most [`CONTEXT_BYTES`] of `released`.
fn extend_context(context: &mut String, released: &str) {
    if released.len() >= CONTEXT_BYTES {
        context.clear();
        context.push_str(released.get(context_start(released)..).unwrap_or_default());
        return;
    }
    context.push_str(released);
    let start = context_start(context);
    context.drain(..start);
}

/// Where the context kept of `text` starts: its last [`CONTEXT_BYTES`], from after a
/// whitespace when one is there and the text is longer.
fn context_start(text: &str) -> usize {
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
            from + i + skip
        }
        _ => from,
    }
}
