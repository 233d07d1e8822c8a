//! The delivery engine of one sink on one worker: a bounded buffer (in bytes) of serialized
//! records, batches by count, bytes and age, one batch in flight at a time, retries with
//! exponential backoff and full jitter. When the buffer is full the oldest records are
//! dropped and counted. Time comes from the caller, so this is plain, testable Rust.

use std::collections::VecDeque;

use super::{Outcome, QueuedRecord};

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

/// Counters for metrics and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub delivered: u64,
    pub retried: u64,
    pub dropped_overflow: u64,
    pub dropped_rejected: u64,
}

/// Records lost to a full buffer since delivery last succeeded: when it recovers, a gap
/// record says how many and over which time span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub dropped: u64,
    pub from_ms: u64,
    pub to_ms: u64,
}

/// What happened to one record of a batch (sinks that answer per item, e.g. `_bulk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemResult {
    Delivered,
    Retry,
    Dropped,
}

#[derive(Debug)]
pub struct Delivery {
    limits: Limits,
    buffer: VecDeque<QueuedRecord>,
    buffered_bytes: usize,
    in_flight: Option<Vec<QueuedRecord>>,
    attempt: u32,
    next_attempt_ms: u64,
    rng: u64,
    gap: Option<Gap>,
    pub stats: Stats,
}

impl Delivery {
    pub fn new(limits: Limits, seed: u64) -> Delivery {
        Delivery {
            limits,
            buffer: VecDeque::new(),
            buffered_bytes: 0,
            in_flight: None,
            attempt: 0,
            next_attempt_ms: 0,
            rng: seed | 1,
            gap: None,
            stats: Stats::default(),
        }
    }

    /// Bytes held (buffered plus in flight), for the buffered-bytes gauge.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
            + self
                .in_flight
                .iter()
                .flatten()
                .map(|r| r.json.len())
                .sum::<usize>()
    }

    pub fn buffered_records(&self) -> usize {
        self.buffer.len() + self.in_flight.as_ref().map_or(0, Vec::len)
    }

    /// The batch in flight, if any (multi-step sinks build later calls from it).
    pub fn in_flight(&self) -> Option<&[QueuedRecord]> {
        self.in_flight.as_deref()
    }

    /// Queues a record; returns how many old records were dropped to make room.
    pub fn push(&mut self, record: QueuedRecord) -> u64 {
        self.buffered_bytes += record.json.len();
        self.buffer.push_back(record);
        self.shed_oldest()
    }

    /// Drops the oldest records until the buffer fits its byte bound (always keeping one);
    /// returns how many went, counted and noted for the gap record.
    fn shed_oldest(&mut self) -> u64 {
        let mut dropped = 0;
        while self.buffered_bytes > self.limits.buffer_max_bytes && self.buffer.len() > 1 {
            if let Some(old) = self.buffer.pop_front() {
                self.buffered_bytes -= old.json.len();
                self.note_gap(old.epoch_ms);
                dropped += 1;
            }
        }
        self.stats.dropped_overflow += dropped;
        dropped
    }

    fn note_gap(&mut self, epoch_ms: u64) {
        let g = self.gap.get_or_insert(Gap {
            dropped: 0,
            from_ms: epoch_ms,
            to_ms: epoch_ms,
        });
        g.dropped += 1;
        g.from_ms = g.from_ms.min(epoch_ms);
        g.to_ms = g.to_ms.max(epoch_ms);
    }

    /// The gap to report, once delivery works again (not while backing off).
    pub fn take_gap(&mut self) -> Option<Gap> {
        if self.attempt == 0 && self.in_flight.is_none() {
            self.gap.take()
        } else {
            None
        }
    }

    /// Puts a record at the head of the queue (a gap record goes out next).
    pub fn push_front(&mut self, record: QueuedRecord) {
        self.buffered_bytes += record.json.len();
        self.buffer.push_front(record);
    }

    /// Settles a batch whose records had different fates: only the `Retry` ones go back.
    pub fn settle_items(&mut self, results: &[ItemResult], after_ms: Option<u64>, now_ms: u64) {
        let Some(batch) = self.in_flight.take() else {
            return;
        };
        let mut retry = Vec::new();
        for (i, r) in batch.into_iter().enumerate() {
            // Records the sink said nothing about are retried, never silently lost.
            match results.get(i).copied().unwrap_or(ItemResult::Retry) {
                ItemResult::Delivered => self.stats.delivered += 1,
                ItemResult::Dropped => self.stats.dropped_rejected += 1,
                ItemResult::Retry => retry.push(r),
            }
        }
        if retry.is_empty() {
            self.attempt = 0;
            self.next_attempt_ms = 0;
            return;
        }
        self.in_flight = Some(retry);
        self.settle(
            &Outcome::Retry {
                reason: "some records to retry".into(),
                after_ms,
            },
            now_ms,
        );
    }

    /// The next batch to send, if one is due: none in flight, backoff elapsed, and the batch
    /// is full or its oldest record has waited a flush interval (or `force`, at shutdown).
    pub fn next_batch(&mut self, now_ms: u64, force: bool) -> Option<&[QueuedRecord]> {
        if self.in_flight.is_some() || self.buffer.is_empty() || now_ms < self.next_attempt_ms {
            return None;
        }
        let oldest = self.buffer.front().map_or(now_ms, |r| r.epoch_ms);
        let full = self.buffer.len() >= self.limits.batch_max_records
            || self.buffered_bytes >= self.limits.batch_max_bytes;
        let due = now_ms.saturating_sub(oldest) >= self.limits.flush_interval_ms;
        if !(full || due || force || self.attempt > 0) {
            return None;
        }
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(r) = self.buffer.front() {
            let fits = batch.is_empty()
                || (batch.len() < self.limits.batch_max_records
                    && bytes + r.json.len() <= self.limits.batch_max_bytes);
            if !fits {
                break;
            }
            if let Some(r) = self.buffer.pop_front() {
                bytes += r.json.len();
                self.buffered_bytes -= r.json.len();
                batch.push(r);
            }
        }
        self.in_flight = Some(batch);
        self.in_flight.as_deref()
    }

    /// Settles the batch in flight.
    pub fn settle(&mut self, outcome: &Outcome, now_ms: u64) {
        let Some(batch) = self.in_flight.take() else {
            return;
        };
        match outcome {
            Outcome::Delivered => {
                self.stats.delivered += batch.len() as u64;
                self.attempt = 0;
                self.next_attempt_ms = 0;
            }
            Outcome::Drop { .. } => {
                self.stats.dropped_rejected += batch.len() as u64;
                self.attempt = 0;
                self.next_attempt_ms = 0;
            }
            Outcome::Retry { after_ms, .. } => {
                self.stats.retried += batch.len() as u64;
                self.attempt = self.attempt.saturating_add(1);
                let delay = after_ms.unwrap_or_else(|| self.backoff_ms());
                self.next_attempt_ms = now_ms.saturating_add(delay);
                // Back to the front, in order; then enforce the byte bound again.
                for r in batch.into_iter().rev() {
                    self.push_front(r);
                }
                self.shed_oldest();
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
        let mut dropped = 0;
        for i in 0..20 {
            dropped += d.push(rec(i, 0));
        }
        // 100 bytes hold 11 records of 9 bytes.
        assert_eq!(d.buffered_records(), 11);
        assert_eq!(dropped, 9);
        assert_eq!(d.stats.dropped_overflow, 9);
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
        assert_eq!(d.take_gap(), None, "not while a batch is in flight");
        d.settle(
            &Outcome::Retry {
                reason: "503".into(),
                after_ms: Some(10),
            },
            0,
        );
        assert_eq!(d.take_gap(), None, "not while backing off");
        d.next_batch(100, true);
        d.settle(&Outcome::Delivered, 100);
        assert_eq!(
            d.take_gap(),
            Some(Gap {
                dropped: 9,
                from_ms: 1_000,
                to_ms: 1_008
            })
        );
        assert_eq!(d.take_gap(), None, "once");
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
