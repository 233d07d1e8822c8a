//! One sink on one worker: its delivery queue and the HTTP calls that deliver a batch. The
//! filter's root context only dispatches the [`Call`]s this returns and hands back answers.

use super::delivery::{Delivery, Limits};
use super::{no_answer, splunk_hec, HttpRequest, Outcome, QueuedRecord};
use crate::audit::time::iso8601_millis;
use crate::audit::{IdGenerator, SCHEMA_VERSION};
use crate::config::SplunkHecConfig;

/// A request for the host to dispatch to an Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub cluster: String,
    pub request: HttpRequest,
}

/// An answer to a call: status, headers and body; `None` when there was none (timeout,
/// connection failure, unknown cluster).
pub type Answer<'a> = Option<(u16, &'a [(String, String)], &'a [u8])>;

/// The configured sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    SplunkHec(SplunkHecConfig),
}

impl SinkSpec {
    pub fn name(&self) -> &'static str {
        match self {
            SinkSpec::SplunkHec(_) => "splunk_hec",
        }
    }
}

#[derive(Debug)]
pub struct Shipper {
    spec: SinkSpec,
    pub delivery: Delivery,
    gateway: String,
    ids: IdGenerator,
    waiting: bool,
}

impl Shipper {
    pub fn new(spec: SinkSpec, limits: Limits, gateway: &str, seed: u64) -> Shipper {
        Shipper {
            spec,
            delivery: Delivery::new(limits, seed),
            gateway: gateway.to_string(),
            ids: IdGenerator::new(seed ^ 0x5eed),
            waiting: false,
        }
    }

    pub fn name(&self) -> &'static str {
        self.spec.name()
    }

    /// Whether a call is in flight.
    pub fn waiting(&self) -> bool {
        self.waiting
    }

    /// The next call to dispatch, if a batch is due and no call is in flight.
    pub fn poll(&mut self, now_ms: u64, force: bool) -> Option<Call> {
        if self.waiting {
            return None;
        }
        let batch = self.delivery.next_batch(now_ms, force)?;
        let call = match &self.spec {
            SinkSpec::SplunkHec(cfg) => Call {
                cluster: cfg.cluster.clone(),
                request: splunk_hec::build_request(cfg, &self.gateway, batch),
            },
        };
        self.waiting = true;
        Some(call)
    }

    /// Takes the answer to the call in flight; returns the outcome (for logs and metrics).
    pub fn on_answer(&mut self, answer: Answer<'_>, now_ms: u64) -> Outcome {
        self.waiting = false;
        let outcome = match (&self.spec, answer) {
            (_, None) => no_answer(),
            (SinkSpec::SplunkHec(_), Some((status, _, body))) => splunk_hec::classify(status, body),
        };
        self.delivery.settle(&outcome, now_ms);
        if outcome == Outcome::Delivered {
            self.report_gap(now_ms);
        }
        outcome
    }

    /// After a failed dispatch (the host refused the call).
    pub fn on_dispatch_failed(&mut self, now_ms: u64) -> Outcome {
        self.on_answer(None, now_ms)
    }

    /// Once delivery works again, a gap record says what a full buffer cost.
    fn report_gap(&mut self, now_ms: u64) {
        let Some(gap) = self.delivery.take_gap() else {
            return;
        };
        let record = serde_json::json!({
            "schema_version": SCHEMA_VERSION,
            "record_type": "gap",
            "record_id": self.ids.next(now_ms),
            "timestamp": iso8601_millis(now_ms),
            "sink": self.name(),
            "gateway": self.gateway,
            "dropped": gap.dropped,
            "from": iso8601_millis(gap.from_ms),
            "to": iso8601_millis(gap.to_ms),
        });
        self.delivery.push_front(QueuedRecord {
            json: record.to_string(),
            epoch_ms: now_ms,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn hec() -> SinkSpec {
        SinkSpec::SplunkHec(SplunkHecConfig {
            cluster: "hec".into(),
            authority: "splunk:8088".into(),
            token: "t".into(),
            path: "/services/collector/event".into(),
            index: None,
            source: "policy-gateway".into(),
            sourcetype: "policy_gateway:decision".into(),
            host: None,
        })
    }

    fn limits(buffer: usize) -> Limits {
        Limits {
            batch_max_records: 2,
            batch_max_bytes: 10_000,
            buffer_max_bytes: buffer,
            flush_interval_ms: 100,
        }
    }

    fn rec(i: u64) -> QueuedRecord {
        QueuedRecord {
            json: format!("{{\"i\":{i:03}}}"),
            epoch_ms: 1_000 + i,
        }
    }

    const OK: &[u8] = br#"{"text":"Success","code":0}"#;

    #[test]
    fn one_call_at_a_time_and_settled_by_the_answer() {
        let mut s = Shipper::new(hec(), limits(10_000), "gw", 1);
        for i in 0..4 {
            s.delivery.push(rec(i));
        }
        let call = s.poll(0, false).unwrap();
        assert_eq!(call.cluster, "hec");
        assert!(s.poll(0, false).is_none(), "waiting for the answer");
        assert_eq!(s.on_answer(Some((200, &[], OK)), 1), Outcome::Delivered);
        assert!(s.poll(1, false).is_some());
        assert!(matches!(s.on_answer(None, 2), Outcome::Retry { .. }));
        assert_eq!(s.delivery.stats.delivered, 2);
        assert_eq!(s.delivery.buffered_records(), 2);
    }

    #[test]
    fn a_gap_record_follows_recovery() {
        let mut s = Shipper::new(hec(), limits(30), "gw", 1);
        for i in 0..10 {
            s.delivery.push(rec(i));
        }
        // 30 bytes hold 3 records of 9 bytes: 7 dropped.
        assert!(s.poll(0, true).is_some());
        s.on_answer(Some((200, &[], OK)), 5);
        let next = s.poll(6, true).unwrap();
        let body = String::from_utf8(next.request.body).unwrap();
        let first: serde_json::Value = serde_json::Deserializer::from_str(&body)
            .into_iter()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(first["event"]["record_type"], "gap");
        assert_eq!(first["event"]["dropped"], 7);
        assert_eq!(first["event"]["from"], "1970-01-01T00:00:01.000Z");
        assert_eq!(first["event"]["to"], "1970-01-01T00:00:01.006Z");
    }
}
