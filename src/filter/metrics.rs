//! Counters and gauges in Envoy's stats (`/stats`, `/stats/prometheus`), prefixed by Envoy
//! with `wasmcustom.`. Metrics with the same name are shared by every VM of the plugin.
//!
//! The per-request counters (decisions, records emitted, inspection errors) are counted in
//! the VM and added to Envoy's on each tick and when the VM stops ([`Metrics::flush`]): a
//! host call per counter per request was a measurable part of a request's fixed cost. A VM
//! that traps loses what it counted since its last tick (at most 200 ms of requests).

use std::cell::Cell;

use super::abi::MetricType;

use crate::engine::text_cache::Stats as TextCacheStats;
use crate::policy::{Action, RolloutMode};

const ACTIONS: [Action; 5] = [
    Action::Allow,
    Action::Rewrite,
    Action::Redact,
    Action::Escalate,
    Action::Refuse,
];
const MODES: [RolloutMode; 3] = [
    RolloutMode::Shadow,
    RolloutMode::Canary,
    RolloutMode::Enforce,
];

#[derive(Debug, Default)]
pub struct Metrics {
    /// decisions[action][mode]
    decisions: Vec<Vec<Option<u32>>>,
    records_emitted: Option<u32>,
    records_dropped: Option<u32>,
    /// Handed to the shipper's queue (a worker), taken off it (the shipper).
    records_forwarded: Option<u32>,
    records_relayed: Option<u32>,
    /// Worker VMs that found the shipper but ship their own records: its audit configuration
    /// is not theirs.
    shipper_config_mismatch: Option<u32>,
    /// Drains of the shipper's queue that stopped at `relay::DRAIN_CHUNK` (a backlog).
    drain_capped: Option<u32>,
    inspection_errors: Option<u32>,
    /// Texts answered by the text cache, texts looked up and judged, entries evicted; and
    /// the cache's totals already added.
    text_cache: [Option<u32>; 3],
    text_cache_reported: Cell<TextCacheStats>,
    /// Counted since the last flush: decisions[action][mode], records, inspection errors.
    pending_decisions: [[Cell<u32>; 3]; 5],
    pending_records: Cell<u32>,
    pending_inspection_errors: Cell<u32>,
}

#[derive(Debug, Default)]
pub struct SinkMetrics {
    pub delivered: Option<u32>,
    pub retried: Option<u32>,
    pub dropped: Option<u32>,
    pub buffered_bytes: Option<u32>,
}

fn define(kind: MetricType, name: &str) -> Option<u32> {
    match super::host::define_metric(kind, name) {
        Ok(id) => Some(id),
        Err(e) => {
            log::warn!("policy_gateway: cannot define metric {name}: {e:?}");
            None
        }
    }
}

impl Metrics {
    pub fn define() -> Metrics {
        let decisions = ACTIONS
            .iter()
            .map(|a| {
                MODES
                    .iter()
                    .map(|m| {
                        define(
                            MetricType::Counter,
                            &format!("policy_gateway.decisions.{}.{}", a.name(), m.name()),
                        )
                    })
                    .collect()
            })
            .collect();
        Metrics {
            decisions,
            records_emitted: define(MetricType::Counter, "policy_gateway.records.emitted"),
            records_dropped: define(MetricType::Counter, "policy_gateway.records.dropped"),
            records_forwarded: define(MetricType::Counter, "policy_gateway.records.forwarded"),
            records_relayed: define(MetricType::Counter, "policy_gateway.records.relayed"),
            shipper_config_mismatch: define(
                MetricType::Counter,
                "policy_gateway.shipper.config_mismatch",
            ),
            drain_capped: define(MetricType::Counter, "policy_gateway.shipper.drain_capped"),
            inspection_errors: define(MetricType::Counter, "policy_gateway.inspection_errors"),
            text_cache: [
                "policy_gateway.text_cache.hits",
                "policy_gateway.text_cache.misses",
                "policy_gateway.text_cache.evictions",
            ]
            .map(|name| define(MetricType::Counter, name)),
            ..Metrics::default()
        }
    }

    /// Adds what was counted since the last flush to Envoy's counters.
    pub fn flush(&self) {
        for (row, ids) in self.pending_decisions.iter().zip(&self.decisions) {
            for (n, id) in row.iter().zip(ids) {
                add(*id, i64::from(n.take()));
            }
        }
        add(self.records_emitted, i64::from(self.pending_records.take()));
        add(
            self.inspection_errors,
            i64::from(self.pending_inspection_errors.take()),
        );
    }

    /// Adds what the text cache did since the last call (its totals, `stats`).
    pub fn text_cache(&self, stats: TextCacheStats) {
        let was = self.text_cache_reported.replace(stats);
        let [hits, misses, evictions] = self.text_cache;
        let delta = |now: u64, then: u64| i64::try_from(now.saturating_sub(then)).unwrap_or(0);
        add(hits, delta(stats.hits, was.hits));
        add(misses, delta(stats.misses, was.misses));
        add(evictions, delta(stats.evictions, was.evictions));
    }

    pub fn decision(&self, action: Action, mode: RolloutMode) {
        let a = ACTIONS.iter().position(|x| *x == action);
        let m = MODES.iter().position(|x| *x == mode);
        let slot = a
            .zip(m)
            .and_then(|(a, m)| self.pending_decisions.get(a).and_then(|row| row.get(m)));
        if let Some(n) = slot {
            n.set(n.get().saturating_add(1));
        }
    }

    pub fn record_emitted(&self) {
        let n = &self.pending_records;
        n.set(n.get().saturating_add(1));
    }

    pub fn records_forwarded(&self, n: usize) {
        add(self.records_forwarded, n as i64);
    }

    pub fn records_relayed(&self, n: usize) {
        add(self.records_relayed, n as i64);
    }

    pub fn shipper_config_mismatch(&self) {
        add(self.shipper_config_mismatch, 1);
    }

    pub fn drain_capped(&self) {
        add(self.drain_capped, 1);
    }

    pub fn records_dropped_id(&self) -> Option<u32> {
        self.records_dropped
    }

    pub fn inspection_errors(&self, count: u32) {
        let n = &self.pending_inspection_errors;
        n.set(n.get().saturating_add(count));
    }
}

impl SinkMetrics {
    pub fn define(name: &str) -> SinkMetrics {
        SinkMetrics {
            delivered: define(
                MetricType::Counter,
                &format!("policy_gateway.sink.{name}.delivered"),
            ),
            retried: define(
                MetricType::Counter,
                &format!("policy_gateway.sink.{name}.retried"),
            ),
            dropped: define(
                MetricType::Counter,
                &format!("policy_gateway.sink.{name}.dropped"),
            ),
            buffered_bytes: define(
                MetricType::Gauge,
                &format!("policy_gateway.sink.{name}.buffered_bytes"),
            ),
        }
    }
}

/// Adds to a counter or moves a gauge (deltas, so workers sharing a gauge sum correctly).
pub fn add(id: Option<u32>, delta: i64) {
    if let Some(id) = id {
        if delta != 0 {
            super::host::increment_metric(id, delta);
        }
    }
}
