//! The delivery engine of one sink on one worker: a bounded buffer (in bytes) of serialized
//! records, batches by count, bytes and age, one batch at a time, retries with exponential
//! backoff and full jitter. Time comes from the caller, so this is plain, testable Rust.
//!
//! - The byte bound (`buffer_max_bytes`) covers everything held: the buffer and the batch in
//!   flight or waiting for its retry. When a record does not fit, the oldest records go first:
//!   those of a batch waiting for its retry (it is the oldest), then the oldest buffered ones.
//!   A batch whose call is under way is left alone, gap records go last, and one record is
//!   always kept (a record larger than the bound still ships).
//! - A failed batch is retried as it is (same records, same [`Delivery::batch_id`]) until it is
//!   delivered or dropped, so a sink that stores a batch as one object (S3) can reuse its key.
//!   The id changes only when the batch does (records shed, or some delivered on their own).
//! - Every dropped record (shed for room, or rejected by the sink) is counted in one place,
//!   `drop_record`, into [`Stats`], and noted (time and chain sequence number) for the next
//!   `gap` record of its cause; a gap record that is itself dropped hands its records, and its
//!   own sequence number, back to the next one.

use std::collections::VecDeque;

use super::{Gap, Outcome, QueuedRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub batch_max_records: usize,
    pub batch_max_bytes: usize,
    pub buffer_max_bytes: usize,
    pub flush_interval_ms: u64,
}

/// Backoff: 500 ms doubling to 30 s, full jitter.
const BACKOFF_BASE_MS: u64 = 500;
const BACKOFF_MAX_MS: u64 = 30_000;

/// Counters for metrics and logs. Records count once each: a record is delivered, dropped
/// (shed for room, or rejected), or still held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub delivered: u64,
    pub retried: u64,
    pub dropped_overflow: u64,
    pub dropped_rejected: u64,
}

impl Stats {
    /// Every record dropped, whatever the cause: what the dropped metrics report.
    pub fn dropped(&self) -> u64 {
        self.dropped_overflow + self.dropped_rejected
    }
}

/// What this worker would lose, untraced, if its VM died now (see `sinks::ledger`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unaccounted {
    /// Records held (buffered, in flight, waiting for a retry), gap records aside: how many,
    /// and the times of the oldest and newest.
    pub pending: Option<Gap>,
    /// Records already dropped and counted whose gap record is not delivered yet.
    pub unannounced: Option<Gap>,
}

/// What happened to one record of a batch (sinks that answer per item, e.g. `_bulk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemResult {
    Delivered,
    Retry,
    Dropped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// Shed to keep the buffer within its bound.
    Overflow,
    /// The sink will never take it.
    Rejected,
}

#[derive(Debug)]
pub struct Delivery {
    limits: Limits,
    buffer: VecDeque<QueuedRecord>,
    buffer_bytes: usize,
    /// The current batch: in flight (`sending`) or waiting for its retry; empty when none.
    batch: Vec<QueuedRecord>,
    batch_bytes: usize,
    batch_id: u64,
    last_batch_id: u64,
    sending: bool,
    attempt: u32,
    next_attempt_ms: u64,
    rng: u64,
    /// Dropped for room and not yet in a gap record.
    gap: Option<Gap>,
    /// Rejected by the sink and not yet in a gap record.
    rejected: Option<Gap>,
    /// The shipper's losses in other chains than those of `gap` and `rejected` (a gap names
    /// one chain's range), one per chain and cause: (gap, rejected).
    other_chains: Vec<(Gap, bool)>,
    /// Whether `rejected` holds records other than gap records.
    rejected_records: bool,
    /// Gap records held (buffer or batch), and the records they announce together (the
    /// span may be wider than what is left once some were delivered).
    held_gap_records: usize,
    held_gap: Option<Gap>,
    pub stats: Stats,
}

impl Delivery {
    pub fn new(limits: Limits, seed: u64) -> Delivery {
        Delivery {
            limits,
            buffer: VecDeque::new(),
            buffer_bytes: 0,
            batch: Vec::new(),
            batch_bytes: 0,
            batch_id: 0,
            last_batch_id: 0,
            sending: false,
            attempt: 0,
            next_attempt_ms: 0,
            rng: seed | 1,
            gap: None,
            rejected: None,
            other_chains: Vec::new(),
            rejected_records: false,
            held_gap_records: 0,
            held_gap: None,
            stats: Stats::default(),
        }
    }

    /// Bytes held: buffered, in flight and waiting for a retry (the buffered-bytes gauge;
    /// at most `buffer_max_bytes`, or one record when a single record is larger).
    pub fn buffered_bytes(&self) -> usize {
        self.buffer_bytes + self.batch_bytes
    }

    pub fn buffered_records(&self) -> usize {
        self.buffer.len() + self.batch.len()
    }

    /// The batch in flight, if any (multi-step sinks build later calls from it).
    pub fn in_flight(&self) -> Option<&[QueuedRecord]> {
        if self.sending {
            Some(self.batch.as_slice())
        } else {
            None
        }
    }

    /// Identifies the current batch's content: the same across retries of the same records,
    /// new for any other batch (never 0 for a batch).
    pub fn batch_id(&self) -> u64 {
        self.batch_id
    }

    /// Queues a record, shedding the oldest ones if it does not fit (counted in `stats`).
    pub fn push(&mut self, record: QueuedRecord) {
        self.enter(&record);
        self.buffer_bytes += record.json.len();
        self.buffer.push_back(record);
        self.shed();
    }

    fn enter(&mut self, record: &QueuedRecord) {
        if let Some(g) = record.gap {
            self.held_gap_records += 1;
            self.held_gap = Gap::union(self.held_gap, Some(g));
        }
    }

    /// A gap record left (delivered or dropped): its records are no longer announced by it.
    fn leave(&mut self, g: Gap) {
        self.held_gap_records = self.held_gap_records.saturating_sub(1);
        self.held_gap = match self.held_gap {
            Some(h) if self.held_gap_records > 0 => Some(Gap {
                dropped: h.dropped.saturating_sub(g.dropped),
                ..h
            }),
            _ => None,
        };
    }

    /// The one place where records are dropped and counted.
    #[inline(never)]
    fn drop_record(&mut self, record: QueuedRecord, cause: Cause) {
        let lost = match record.gap {
            // A gap record only announces records counted when they were dropped; dropped,
            // it hands them back to the next gap record, with its own place in the chain.
            Some(g) => {
                self.leave(g);
                let own = Gap {
                    dropped: 0,
                    ..Gap::one(record.epoch_ms, record.seq)
                };
                if g.other_chain(&own) {
                    // The shipper's gap record announcing another chain's records.
                    self.owe(own, cause);
                    g
                } else {
                    g.with_seq(record.seq)
                }
            }
            None => {
                match cause {
                    Cause::Overflow => self.stats.dropped_overflow += 1,
                    Cause::Rejected => {
                        self.stats.dropped_rejected += 1;
                        self.rejected_records = true;
                    }
                }
                Gap::one(record.epoch_ms, record.seq)
            }
        };
        self.owe(lost, cause);
    }

    /// Adds a loss to the gap owed for its cause (in its chain's, when not the same chain).
    fn owe(&mut self, lost: Gap, cause: Cause) {
        let rejected = matches!(cause, Cause::Rejected);
        let owed = if rejected {
            &mut self.rejected
        } else {
            &mut self.gap
        };
        match owed {
            Some(g) if g.other_chain(&lost) => {
                match self
                    .other_chains
                    .iter_mut()
                    .find(|(o, r)| *r == rejected && !o.other_chain(&lost))
                {
                    Some((o, _)) => *o = o.merge(lost),
                    None => self.other_chains.push((lost, rejected)),
                }
            }
            _ => *owed = Gap::union(*owed, Some(lost)),
        }
    }

    fn new_batch_id(&mut self) -> u64 {
        self.last_batch_id += 1;
        self.last_batch_id
    }

    /// Drops the oldest records until everything held fits the byte bound (see the module
    /// doc for which go first).
    fn shed(&mut self) {
        let limit = self.limits.buffer_max_bytes;
        while self.buffered_bytes() > limit {
            if !self.sending && !self.batch.is_empty() {
                // The batch waiting for its retry holds the oldest records: trim its front.
                let excess = self.buffered_bytes() - limit;
                let mut freed = 0;
                let take = self
                    .batch
                    .iter()
                    .take_while(|r| {
                        let more = freed < excess;
                        freed += r.json.len();
                        more
                    })
                    .count();
                let rest = self.batch.split_off(take);
                for r in std::mem::replace(&mut self.batch, rest) {
                    self.batch_bytes -= r.json.len();
                    self.drop_record(r, Cause::Overflow);
                }
                self.batch_id = self.new_batch_id();
                continue;
            }
            if self.buffer.len() <= 1 {
                break;
            }
            // The oldest record, passing over gap records (they announce many; shed, they
            // are folded into the next one), which go only when nothing else is left.
            let i = self
                .buffer
                .iter()
                .position(|r| r.gap.is_none())
                .unwrap_or(0);
            let Some(r) = self.buffer.remove(i) else {
                break;
            };
            self.buffer_bytes -= r.json.len();
            self.drop_record(r, Cause::Overflow);
        }
    }

    /// The gaps to report, shed for room and rejected, once delivery works again (not while
    /// a batch is under way or waiting for its retry).
    pub fn take_gaps(&mut self) -> (Option<Gap>, Option<Gap>) {
        if self.settled() {
            self.rejected_records = false;
            (self.gap.take(), self.rejected.take())
        } else {
            (None, None)
        }
    }

    /// With [`Self::take_gaps`], the shipper's losses in further chains: (gap, rejected).
    pub fn take_other_chains(&mut self) -> Vec<(Gap, bool)> {
        if self.settled() {
            std::mem::take(&mut self.other_chains)
        } else {
            Vec::new()
        }
    }

    fn settled(&self) -> bool {
        self.attempt == 0 && !self.sending && self.batch.is_empty()
    }

    /// Whether records other than gap records were rejected since the last gap was taken.
    pub fn rejected_records(&self) -> bool {
        self.rejected_records
    }

    /// What would be lost if the VM died now: records held, and drops not yet announced.
    pub fn unaccounted(&self) -> Unaccounted {
        let real = |r: &&QueuedRecord| r.gap.is_none();
        let count = self
            .buffered_records()
            .saturating_sub(self.held_gap_records) as u64;
        let first = self.batch.iter().chain(self.buffer.iter()).find(real);
        let last = self
            .buffer
            .iter()
            .rev()
            .chain(self.batch.iter().rev())
            .find(real);
        let pending = match (first, last) {
            (Some(a), Some(b)) if count > 0 => Some(Gap {
                dropped: count,
                from_ms: a.epoch_ms.min(b.epoch_ms),
                to_ms: a.epoch_ms.max(b.epoch_ms),
                from_seq: a.seq.min(b.seq),
                to_seq: a.seq.max(b.seq),
            }),
            _ => None,
        };
        Unaccounted {
            pending,
            unannounced: self.other_chains.iter().fold(
                Gap::union(Gap::union(self.gap, self.rejected), self.held_gap),
                |u, (g, _)| Gap::union(u, Some(*g)),
            ),
        }
    }

    /// Adds the chain numbers (`relay::unpack_seq`) of the records held and of the losses not
    /// yet in a gap record to `held`.
    pub fn chains_held(&self, held: &mut Vec<u64>) {
        for r in self.batch.iter().chain(self.buffer.iter()) {
            held.push(super::relay::unpack_seq(r.seq).0);
            if let Some(g) = r.gap {
                g.chains(held);
            }
        }
        let gaps = [self.gap, self.rejected, self.held_gap];
        for g in gaps
            .iter()
            .flatten()
            .chain(self.other_chains.iter().map(|(g, _)| g))
        {
            g.chains(held);
        }
    }

    /// The records held (gap records aside), per chain: `relay::unpack_seq`'s chain number
    /// (0: the VM's own; a shipper's relayed chains 1, 2, …) and, in that chain, how many,
    /// their times and their sequence range. What the shipper's ledger names per chain.
    pub fn pending_by_chain(&self) -> Vec<(u64, Gap)> {
        let mut out: Vec<(u64, Gap)> = Vec::new();
        let held = self.batch.iter().chain(self.buffer.iter());
        for r in held.filter(|r| r.gap.is_none()) {
            let (chain, seq) = super::relay::unpack_seq(r.seq);
            let one = Gap {
                dropped: 1,
                from_ms: r.epoch_ms,
                to_ms: r.epoch_ms,
                from_seq: seq,
                to_seq: seq,
            };
            match out.iter_mut().find(|(c, _)| *c == chain) {
                Some((_, g)) => *g = g.merge(one),
                None => out.push((chain, one)),
            }
        }
        out
    }

    /// Settles a batch whose records had different fates: only the `Retry` ones stay, as
    /// the batch to retry (a new batch id when some left).
    pub fn settle_items(&mut self, results: &[ItemResult], after_ms: Option<u64>, now_ms: u64) {
        if !self.sending {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let total = batch.len();
        self.batch_bytes = 0;
        let mut retry = Vec::new();
        for (i, r) in batch.into_iter().enumerate() {
            // Records the sink said nothing about are retried, never silently lost.
            match results.get(i).copied().unwrap_or(ItemResult::Retry) {
                ItemResult::Delivered => self.delivered(&r),
                ItemResult::Dropped => self.drop_record(r, Cause::Rejected),
                ItemResult::Retry => retry.push(r),
            }
        }
        self.batch_bytes = retry.iter().map(|r| r.json.len()).sum();
        if retry.len() != total {
            self.batch_id = self.new_batch_id();
        }
        self.batch = retry;
        if self.batch.is_empty() {
            self.sending = false;
            self.attempt = 0;
            self.next_attempt_ms = 0;
            return;
        }
        self.settle(
            &Outcome::Retry {
                reason: "some records to retry".into(),
                after_ms,
            },
            now_ms,
        );
    }

    fn delivered(&mut self, r: &QueuedRecord) {
        self.stats.delivered += 1;
        if let Some(g) = r.gap {
            self.leave(g);
        }
    }

    /// The batch to send, if one is due: none under way, backoff elapsed, and a batch waiting
    /// for its retry (sent again as it is), or a buffer that is full or whose oldest record
    /// has waited a flush interval (or `force`, at shutdown).
    pub fn next_batch(&mut self, now_ms: u64, force: bool) -> Option<&[QueuedRecord]> {
        if self.sending || now_ms < self.next_attempt_ms {
            return None;
        }
        if self.batch.is_empty() {
            if self.buffer.is_empty() {
                return None;
            }
            let oldest = self.buffer.front().map_or(now_ms, |r| r.epoch_ms);
            let full = self.buffer.len() >= self.limits.batch_max_records
                || self.buffer_bytes >= self.limits.batch_max_bytes;
            let due = now_ms.saturating_sub(oldest) >= self.limits.flush_interval_ms;
            if !(full || due || force || self.attempt > 0) {
                return None;
            }
            let mut bytes = 0;
            while let Some(r) = self.buffer.front() {
                let fits = self.batch.is_empty()
                    || (self.batch.len() < self.limits.batch_max_records
                        && bytes + r.json.len() <= self.limits.batch_max_bytes);
                if !fits {
                    break;
                }
                if let Some(r) = self.buffer.pop_front() {
                    bytes += r.json.len();
                    self.buffer_bytes -= r.json.len();
                    self.batch.push(r);
                }
            }
            self.batch_bytes = bytes;
            self.batch_id = self.new_batch_id();
        }
        self.sending = true;
        Some(self.batch.as_slice())
    }

    /// Settles the batch in flight. A retried batch stays as it is, for the next attempt.
    pub fn settle(&mut self, outcome: &Outcome, now_ms: u64) {
        if !self.sending {
            return;
        }
        self.sending = false;
        match outcome {
            Outcome::Delivered => {
                for r in std::mem::take(&mut self.batch) {
                    self.delivered(&r);
                }
                self.batch_bytes = 0;
                self.attempt = 0;
                self.next_attempt_ms = 0;
            }
            Outcome::Drop { .. } => {
                for r in std::mem::take(&mut self.batch) {
                    self.drop_record(r, Cause::Rejected);
                }
                self.batch_bytes = 0;
                self.attempt = 0;
                self.next_attempt_ms = 0;
            }
            Outcome::Retry { after_ms, .. } => {
                self.stats.retried += self.batch.len() as u64;
                self.attempt = self.attempt.saturating_add(1);
                let delay = after_ms.unwrap_or_else(|| self.backoff_ms());
                self.next_attempt_ms = now_ms.saturating_add(delay);
            }
        }
    }

    /// Full jitter: uniform in [0, min(max, base · 2^attempt)).
    fn backoff_ms(&mut self) -> u64 {
        let exp = BACKOFF_BASE_MS.saturating_mul(1 << self.attempt.min(16));
        let cap = exp.clamp(1, BACKOFF_MAX_MS);
        self.rng = crate::audit::id::splitmix64(self.rng);
        BACKOFF_BASE_MS / 2 + self.rng % cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn limits() -> Limits {
        Limits {
            batch_max_records: 3,
            batch_max_bytes: 1000,
            buffer_max_bytes: 100,
            flush_interval_ms: 1000,
        }
    }

    fn rec(i: u64, t: u64) -> QueuedRecord {
        QueuedRecord {
            json: format!("{{\"i\":{i:03}}}"), // 9 bytes
            epoch_ms: t,
            gap: None,
            seq: i + 1,
        }
    }

    #[test]
    fn batches_when_full_or_old() {
        let mut d = Delivery::new(limits(), 1);
        d.push(rec(1, 0));
        d.push(rec(2, 0));
        assert!(d.next_batch(10, false).is_none(), "not full, not old");
        assert_eq!(
            d.next_batch(1000, false).map(<[_]>::len),
            Some(2),
            "old enough"
        );
        d.settle(&Outcome::Delivered, 1000);
        for i in 0..4 {
            d.push(rec(i, 1000));
        }
        assert_eq!(
            d.next_batch(1001, false).map(<[_]>::len),
            Some(3),
            "full batch"
        );
        assert!(d.next_batch(1002, false).is_none(), "one in flight");
        d.settle(&Outcome::Delivered, 1002);
        assert_eq!(d.stats.delivered, 5);
        assert_eq!(d.next_batch(1003, true).map(<[_]>::len), Some(1), "forced");
    }

    #[test]
    fn retry_keeps_order_and_backs_off() {
        let mut d = Delivery::new(limits(), 7);
        for i in 0..3 {
            d.push(rec(i, 0));
        }
        let first: Vec<_> = d.next_batch(0, false).unwrap().to_vec();
        d.settle(
            &Outcome::Retry {
                reason: "503".into(),
                after_ms: None,
            },
            0,
        );
        assert_eq!(d.stats.retried, 3);
        assert!(d.next_batch(0, false).is_none(), "backing off");
        let again: Vec<_> = d.next_batch(60_000, false).unwrap().to_vec();
        assert_eq!(first, again);
        d.settle(
            &Outcome::Retry {
                reason: "429".into(),
                after_ms: Some(5_000),
            },
            60_000,
        );
        assert!(d.next_batch(64_999, false).is_none());
        assert!(
            d.next_batch(65_000, false).is_some(),
            "Retry-After honoured"
        );
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts() {
        let mut d = Delivery::new(limits(), 1);
        for i in 0..20 {
            d.push(rec(i, 0));
        }
        // 100 bytes hold 11 records of 9 bytes.
        assert_eq!(d.buffered_records(), 11);
        assert_eq!(d.stats.dropped_overflow, 9);
        assert_eq!(d.stats.dropped(), 9);
        let batch = d.next_batch(0, true).unwrap();
        assert_eq!(batch[0].json, "{\"i\":009}", "oldest kept is the 10th");
    }

    #[test]
    fn rejected_batches_are_dropped_and_counted() {
        let mut d = Delivery::new(limits(), 1);
        d.push(rec(1, 0));
        d.next_batch(0, true);
        d.settle(
            &Outcome::Drop {
                reason: "400".into(),
            },
            0,
        );
        assert_eq!(d.stats.dropped_rejected, 1);
        assert_eq!(d.buffered_records(), 0);
    }

    #[test]
    fn gap_is_reported_once_delivery_recovers() {
        let mut d = Delivery::new(limits(), 1);
        for i in 0..20 {
            d.push(rec(i, 1_000 + i));
        }
        d.next_batch(0, true);
        assert_eq!(
            d.take_gaps(),
            (None, None),
            "not while a batch is in flight"
        );
        d.settle(
            &Outcome::Retry {
                reason: "503".into(),
                after_ms: Some(10),
            },
            0,
        );
        assert_eq!(d.take_gaps(), (None, None), "not while backing off");
        d.next_batch(100, true);
        d.settle(&Outcome::Delivered, 100);
        let shed = Gap {
            dropped: 9,
            from_ms: 1_000,
            to_ms: 1_008,
            from_seq: 1,
            to_seq: 9,
        };
        assert_eq!(d.take_gaps(), (Some(shed), None));
        assert_eq!(d.take_gaps(), (None, None), "once");
    }

    #[test]
    fn per_item_results_retry_only_the_failed_records() {
        let mut d = Delivery::new(limits(), 1);
        for i in 0..3 {
            d.push(rec(i, 0));
        }
        d.next_batch(0, true);
        d.settle_items(
            &[
                ItemResult::Delivered,
                ItemResult::Retry,
                ItemResult::Dropped,
            ],
            Some(0),
            0,
        );
        assert_eq!(
            (d.stats.delivered, d.stats.dropped_rejected, d.stats.retried),
            (1, 1, 1)
        );
        let again = d.next_batch(1, true).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].json, "{\"i\":001}");
        // Results missing for some records: those are retried, not lost.
        d.settle_items(&[], Some(0), 1);
        assert_eq!(d.buffered_records(), 1);
    }

    /// Pushes, batches and answers in every order, then checks that each record was counted
    /// exactly once: delivered, dropped (the one number both dropped metrics report), or held.
    #[test]
    fn every_record_is_delivered_dropped_or_held_and_counted_once() {
        let outcomes = [
            Outcome::Delivered,
            Outcome::Retry {
                reason: "timeout".into(),
                after_ms: Some(0),
            },
            Outcome::Drop {
                reason: "400".into(),
            },
        ];
        for seed in 0..200u64 {
            let mut d = Delivery::new(limits(), seed);
            let mut rng = seed;
            let mut pushed = 0u64;
            for step in 0..300u64 {
                rng = crate::audit::id::splitmix64(rng);
                match rng % 7 {
                    0..=2 => {
                        d.push(rec(step, step));
                        pushed += 1;
                    }
                    3 => {
                        d.next_batch(step, rng % 2 == 0);
                    }
                    4 | 5 => {
                        let outcome = &outcomes[(rng >> 8) as usize % 2 + (rng % 5 == 0) as usize];
                        d.settle(outcome, step);
                    }
                    _ => {
                        let results: Vec<ItemResult> = (0..3)
                            .map(|k| match (rng >> (k * 4)) % 3 {
                                0 => ItemResult::Delivered,
                                1 => ItemResult::Retry,
                                _ => ItemResult::Dropped,
                            })
                            .collect();
                        d.settle_items(&results, Some(0), step);
                    }
                }
                assert!(d.buffered_bytes() <= 100, "bound holds, batch included");
                assert_eq!(
                    d.stats.delivered + d.stats.dropped() + d.buffered_records() as u64,
                    pushed,
                    "seed {seed} step {step}"
                );
            }
        }
    }

    #[test]
    fn the_bound_includes_the_batch_in_flight_and_a_retry_sheds_nothing() {
        let mut d = Delivery::new(limits(), 1);
        for i in 0..11 {
            d.push(rec(i, i));
        }
        assert!(d.next_batch(0, true).is_some());
        for i in 11..14 {
            d.push(rec(i, i));
        }
        // 14 records of 9 bytes, 100 bytes: the 3 oldest buffered ones went, not the batch.
        assert_eq!(d.buffered_bytes(), 99);
        assert_eq!(d.stats.dropped_overflow, 3);
        assert_eq!(d.in_flight().map(|b| b[0].epoch_ms), Some(0));
        d.settle(
            &Outcome::Retry {
                reason: "timeout".into(),
                after_ms: None,
            },
            0,
        );
        assert_eq!(d.stats.dropped(), 3, "a re-queued batch sheds nothing more");
        assert_eq!(d.buffered_records(), 11);
    }

    #[test]
    fn a_retried_batch_goes_out_unchanged_with_its_id() {
        let mut d = Delivery::new(limits(), 1);
        d.push(rec(1, 0));
        d.push(rec(2, 0));
        let first: Vec<_> = d.next_batch(0, true).unwrap().to_vec();
        let id = d.batch_id();
        d.settle(
            &Outcome::Retry {
                reason: "timeout".into(),
                after_ms: Some(10),
            },
            0,
        );
        d.push(rec(3, 5)); // room in the batch, but it is not the same batch any more
        let again: Vec<_> = d.next_batch(10, false).unwrap().to_vec();
        assert_eq!((again, d.batch_id()), (first, id));
        d.settle(&Outcome::Delivered, 11);
        d.next_batch(2_000, false).unwrap();
        assert_ne!(d.batch_id(), id, "another batch, another id");
    }

    #[test]
    fn a_batch_waiting_for_its_retry_is_shed_first_and_changes_id() {
        let mut d = Delivery::new(limits(), 1);
        for i in 0..11 {
            d.push(rec(i, i));
        }
        d.next_batch(0, true).unwrap();
        let id = d.batch_id();
        d.settle(
            &Outcome::Retry {
                reason: "503".into(),
                after_ms: Some(10),
            },
            0,
        );
        d.push(rec(11, 11));
        assert_eq!(d.stats.dropped_overflow, 1);
        let batch = d.next_batch(10, false).unwrap();
        assert_eq!(batch.len(), 2, "its oldest record went");
        assert_eq!(batch[0].epoch_ms, 1);
        assert_ne!(d.batch_id(), id);
    }

    #[test]
    fn a_shed_gap_record_hands_its_records_to_the_next_one() {
        let mut d = Delivery::new(limits(), 1);
        let gap = Gap {
            dropped: 40,
            from_ms: 1,
            to_ms: 9,
            from_seq: 0,
            to_seq: 0,
        };
        d.push(QueuedRecord {
            json: "{\"gap\":40}".into(), // 10 bytes
            epoch_ms: 10,
            gap: Some(gap),
            seq: 100,
        });
        for i in 0..10 {
            d.push(rec(i, 20 + i));
        }
        let u = d.unaccounted();
        assert_eq!(u.unannounced, Some(gap));
        assert_eq!(
            u.pending.map(|p| (p.dropped, p.from_ms, p.to_ms)),
            Some((10, 20, 29))
        );
        // Full (100 bytes): the next record sheds the oldest decision record, not the gap record.
        d.push(rec(10, 30));
        assert_eq!(d.stats.dropped_overflow, 1);
        assert_eq!(d.buffer.front().and_then(|r| r.gap), Some(gap));
        // Rejected, the gap record's records stay counted once and are no longer pending; the
        // next rejection gap announces them again, with the gap record's own place in the chain.
        d.next_batch(0, true).unwrap();
        d.settle(
            &Outcome::Drop {
                reason: "400".into(),
            },
            0,
        );
        assert_eq!(
            d.stats.dropped_rejected, 2,
            "the gap record is not a record"
        );
        let u = d.unaccounted();
        assert_eq!(u.unannounced.map(|g| g.dropped), Some(1 + 40 + 2));
        assert_eq!(u.pending.map(|p| p.dropped), Some(8));
        let (shed, rejected) = d.take_gaps();
        assert_eq!(
            shed.map(|g| (g.dropped, g.from_seq, g.to_seq)),
            Some((1, 1, 1))
        );
        assert_eq!(
            rejected.map(|g| (g.dropped, g.from_seq, g.to_seq)),
            Some((42, 2, 100)),
            "records 2 and 3, and the gap record (100)"
        );
    }

    #[test]
    fn unaccounted_follows_delivery() {
        let mut d = Delivery::new(limits(), 1);
        assert_eq!(d.unaccounted(), Unaccounted::default());
        for i in 0..13 {
            d.push(rec(i, 100 + i));
        }
        let u = d.unaccounted();
        assert_eq!(
            u.pending,
            Some(Gap {
                dropped: 11,
                from_ms: 102,
                to_ms: 112,
                from_seq: 3,
                to_seq: 13,
            })
        );
        assert_eq!(
            u.unannounced,
            Some(Gap {
                dropped: 2,
                from_ms: 100,
                to_ms: 101,
                from_seq: 1,
                to_seq: 2,
            })
        );
        d.next_batch(0, true).unwrap();
        d.settle(&Outcome::Delivered, 0);
        assert_eq!(d.unaccounted().pending.map(|p| p.dropped), Some(8));
        let gap = d.take_gaps().0.unwrap();
        d.push(QueuedRecord {
            json: "{}".into(),
            epoch_ms: 200,
            gap: Some(gap),
            seq: 0,
        });
        assert_eq!(
            d.unaccounted().unannounced,
            Some(gap),
            "announced once delivered"
        );
        while d.next_batch(0, true).is_some() {
            d.settle(&Outcome::Delivered, 0);
        }
        assert_eq!(d.unaccounted().unannounced, None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut d = Delivery::new(limits(), 3);
        for attempt in 0..30 {
            d.attempt = attempt;
            let b = d.backoff_ms();
            assert!(b <= BACKOFF_MAX_MS + BACKOFF_BASE_MS, "{b}");
            assert!(b >= BACKOFF_BASE_MS / 2);
        }
    }
}
