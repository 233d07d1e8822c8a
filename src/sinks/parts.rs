//! A batch split over several calls (a sink's size limits: Datadog, Azure Monitor), sent one
//! at a time. Each call carries a range of the batch's records; each answer decides their
//! fate, and the batch is settled record by record once the last part is answered.

use std::ops::Range;

use super::delivery::ItemResult;
use super::{no_answer, Call, Outcome, Step};

#[derive(Debug)]
pub struct Parts {
    /// The calls not sent yet, each with the records it carries, the next one last.
    waiting: Vec<(Call, Range<usize>)>,
    /// The records of the call in flight.
    current: Range<usize>,
    /// Every record's fate so far: `Retry` until its part is answered.
    results: Vec<ItemResult>,
    /// The longest wait a part's answer asked for.
    after_ms: Option<u64>,
}

impl Parts {
    /// Starts sending `calls` for a batch of `len` records: the first call's step (and the
    /// parts, to take its answer), or, if there is no call, a retry of the batch.
    pub fn start(mut calls: Vec<(Call, Range<usize>)>, len: usize) -> (Step, Option<Parts>) {
        calls.reverse();
        let mut parts = Parts {
            waiting: calls,
            current: 0..0,
            results: vec![ItemResult::Retry; len],
            after_ms: None,
        };
        match parts.waiting.pop() {
            Some((call, range)) => {
                parts.current = range;
                let step = Step::Call {
                    call,
                    at_ms: 0,
                    seen: Outcome::Delivered,
                };
                (step, Some(parts))
            }
            None => (Step::Settle(no_answer()), None),
        }
    }

    /// The fates so far, for settling early (records of parts not answered yet are retried).
    pub fn results(self) -> Vec<ItemResult> {
        self.results
    }

    /// Takes the outcome of the part in flight: the next part's call (and the parts), or,
    /// after the last one, the batch settled record by record.
    pub fn answered(mut self, outcome: Outcome) -> (Step, Option<Parts>) {
        if let Outcome::Retry {
            after_ms: Some(a), ..
        } = &outcome
        {
            self.after_ms = Some(self.after_ms.map_or(*a, |b| b.max(*a)));
        }
        let fate = match &outcome {
            Outcome::Delivered => ItemResult::Delivered,
            Outcome::Retry { .. } => ItemResult::Retry,
            Outcome::Drop { .. } => ItemResult::Dropped,
        };
        for i in self.current.clone() {
            if let Some(r) = self.results.get_mut(i) {
                *r = fate;
            }
        }
        if let Some((call, range)) = self.waiting.pop() {
            self.current = range;
            let step = Step::Call {
                call,
                at_ms: 0,
                seen: outcome,
            };
            return (step, Some(self));
        }
        let seen = if self.results.iter().all(|r| *r == ItemResult::Delivered) {
            Outcome::Delivered
        } else {
            outcome
        };
        let step = Step::SettleEach {
            results: self.results,
            after_ms: self.after_ms,
            seen,
        };
        (step, None)
    }
}
