//! Events waiting, in order, behind text that is still held, and how far a release may take
//! them: the walk over the queue resumes where it stopped.

use std::collections::{BTreeMap, VecDeque};

use serde_json::Value;

use super::channels::Channels;
use crate::engine::work;
use crate::llm::stream::{Channel, Step};

/// A piece of a channel's text that an event carries, at `path` in its JSON.
#[derive(Debug)]
pub(super) struct TextRef {
    pub(super) channel: Channel,
    pub(super) path: Vec<Step>,
    pub(super) start: u64,
    pub(super) end: u64,
}

/// What an event carries besides its bytes, when its data is the provider's JSON.
#[derive(Debug)]
pub(super) struct Parsed {
    /// The event's JSON when the texts it repeats whole were redacted on arrival. Other
    /// events keep only their bytes (a parsed event takes ~18 times as much memory) and are
    /// parsed again in the rare case their text changes.
    pub(super) changed: Option<Value>,
    pub(super) texts: Vec<TextRef>,
    pub(super) sequence_number: Option<u64>,
}

#[derive(Debug)]
pub(super) struct Queued {
    pub(super) raw: Vec<u8>,
    pub(super) parsed: Option<Parsed>,
}

impl Queued {
    pub(super) fn texts(&self) -> impl Iterator<Item = &TextRef> + Clone {
        self.parsed.iter().flat_map(|p| &p.texts)
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

#[derive(Debug, Default)]
pub(super) struct Queue {
    events: VecDeque<Queued>,
    /// Bytes of the events waiting.
    pub(super) bytes: usize,
    walk: Walk,
}

impl Queue {
    pub(super) fn push(&mut self, q: Queued) {
        self.bytes += q.raw.len();
        self.events.push_back(q);
    }

    /// The next event to go out.
    pub(super) fn pop_front(&mut self) -> Option<Queued> {
        let q = self.events.pop_front()?;
        self.bytes = self.bytes.saturating_sub(q.raw.len());
        Some(q)
    }

    /// Empties the queue; returns what waited, in order.
    pub(super) fn take(&mut self) -> VecDeque<Queued> {
        self.bytes = 0;
        self.walk = Walk::default();
        std::mem::take(&mut self.events)
    }

    /// Walks on from where the last walk stopped, over events whose text is all settled;
    /// returns how many events at the front a release may take.
    pub(super) fn walk(&mut self, channels: &Channels) -> usize {
        'walk: while let Some(q) = self.events.get(self.walk.walked) {
            work::add(1);
            for t in q.texts() {
                // A channel already gone has nothing held: only empty pieces can refer to it.
                let blocked = match channels.get(&t.channel) {
                    Some(ch) => t.end > ch.settled,
                    None => t.end > t.start,
                };
                if blocked {
                    break 'walk;
                }
            }
            for t in q.texts() {
                work::add(1);
                let was = self.walk.ends.insert(t.channel, t.end);
                let inside = |at: Option<u64>| at.is_some_and(|at| channels.inside(&t.channel, at));
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
        self.walk.clean.min(self.events.len())
    }

    /// Where each channel's text ends after the first `n` events (the last piece of it they
    /// carry).
    pub(super) fn ends(&self, n: usize) -> BTreeMap<Channel, u64> {
        let mut ends = BTreeMap::new();
        for t in self.events.iter().take(n).flat_map(Queued::texts) {
            work::add(1);
            ends.insert(t.channel, t.end);
        }
        ends
    }

    /// The longest prefix of the first `n` events that carries no text at or after its
    /// channel's stop and, like any release, ends outside every finding.
    pub(super) fn prefix_before(
        &self,
        n: usize,
        stops: &BTreeMap<Channel, u64>,
        channels: &Channels,
    ) -> usize {
        let mut ends: BTreeMap<Channel, u64> = BTreeMap::new();
        let mut best = 0;
        'cut: for (k, q) in self.events.iter().take(n).enumerate() {
            for t in q.texts() {
                if stops.get(&t.channel).is_some_and(|s| t.end > *s) {
                    break 'cut;
                }
                ends.insert(t.channel, t.end);
            }
            if ends.iter().all(|(c, at)| !channels.inside(c, *at)) {
                best = k + 1;
            }
        }
        best
    }

    /// The first `n` events went out: the walk keeps its place in what remains.
    pub(super) fn released(&mut self, n: usize) {
        self.walk.walked = self.walk.walked.saturating_sub(n);
        self.walk.clean = self.walk.clean.saturating_sub(n);
    }

    /// Channel `c` went: the walk forgets where its text ended.
    pub(super) fn forget_channel(&mut self, c: &Channel) {
        self.walk.ends.remove(c);
    }
}
