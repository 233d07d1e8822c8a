//! One sink on one worker: its delivery queue, and the driver of its protocol. Every sink is
//! driven the same way: a due batch goes to [`Sink::start`], each call it asks for goes out
//! (one at a time, not before its time), each answer goes to [`Sink::on_answer`], until the
//! sink settles the batch, which settles it in [`Delivery`]. The filter's root context only
//! dispatches the [`Call`]s this returns and hands back the answers. The gaps it owes (records
//! it lost, once delivery works again) go to the outbox, which chains a `gap` record for them.

use super::config::SinkConfig;
use super::delivery::{Delivery, Limits, Stats, Unaccounted};
use super::{
    no_answer, retry_after_ms, Answer, Batch, Call, Gap, Outcome, QueuedRecord, Sink, Step,
};

/// Why records were lost, as a `gap` record's `cause`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapCause {
    /// Shed from a full buffer.
    BufferFull,
    /// Refused by the sink for good (a 4xx answer, a bulk item rejected).
    Rejected,
    /// Held by a VM that failed (trapped) before delivering them.
    VmFailed,
    /// Held by a VM that was stopped (configuration change, shutdown) before delivering them.
    VmStopped,
    /// Taken off the shipper's queue unreadable (another module version's message, or not a
    /// record at all): how many is all that is known.
    Undecodable,
    /// Taken off the shipper's queue with a header (chain, seq) that is not the record's own.
    RelayMismatch,
}

impl GapCause {
    pub fn name(self) -> &'static str {
        match self {
            GapCause::BufferFull => "buffer_full",
            GapCause::Rejected => "rejected",
            GapCause::VmFailed => "vm_failed",
            GapCause::VmStopped => "vm_stopped",
            GapCause::Undecodable => "undecodable",
            GapCause::RelayMismatch => "relay_mismatch",
        }
    }
}

/// Where the batch under way is.
#[derive(Default)]
enum Flight {
    /// No batch under way.
    #[default]
    Idle,
    /// The batch's next call, to send from `at_ms`.
    Ready { call: Call, at_ms: u64 },
    /// A call is out: its answer is awaited.
    Waiting,
}

pub struct Shipper {
    name: &'static str,
    sink: Box<dyn Sink>,
    delivery: Delivery,
    /// Losses taken from delivery, not yet handed to the outbox for a gap record.
    owed: Vec<(Gap, GapCause)>,
    flight: Flight,
    /// `Retry-After` of the last answer, for retries the sink left untimed.
    retry_hint: Option<u64>,
}

impl Shipper {
    pub fn new(config: &dyn SinkConfig, limits: Limits, gateway: &str, seed: u64) -> Shipper {
        Shipper {
            name: config.name(),
            sink: config.build(gateway, seed),
            delivery: Delivery::new(limits, seed),
            owed: Vec::new(),
            flight: Flight::Idle,
            retry_hint: None,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Queues a record (a full buffer sheds its oldest records and counts them).
    pub fn push(&mut self, record: QueuedRecord) {
        self.delivery.push(record);
    }

    /// Delivery's counters.
    pub fn stats(&self) -> Stats {
        self.delivery.stats
    }

    /// Bytes held, batch under way included.
    pub fn buffered_bytes(&self) -> usize {
        self.delivery.buffered_bytes()
    }

    /// What would be lost, untraced, if the VM died now.
    pub fn unaccounted(&self) -> Unaccounted {
        let mut u = self.delivery.unaccounted();
        for (gap, _) in &self.owed {
            u.unannounced = Gap::union(u.unannounced, Some(*gap));
        }
        u
    }

    /// The records held, per chain (`Delivery::pending_by_chain`).
    pub fn pending_by_chain(&self) -> Vec<(u64, Gap)> {
        self.delivery.pending_by_chain()
    }

    /// Adds the chain numbers (`relay::unpack_seq`) of what it holds to `held`: records, and
    /// losses not yet announced.
    pub fn chains_held(&self, held: &mut Vec<u64>) {
        self.delivery.chains_held(held);
        for (gap, _) in &self.owed {
            gap.chains(held);
        }
    }

    /// The losses a gap record must now announce (delivery works again), with their causes.
    pub fn take_owed(&mut self) -> Vec<(Gap, GapCause)> {
        std::mem::take(&mut self.owed)
    }

    /// The next call to dispatch: the next call of the batch under way once its time has
    /// come, or the first call of a new batch when one is due. None while a call is out.
    pub fn poll(&mut self, now_ms: u64, force: bool) -> Option<Call> {
        if matches!(self.flight, Flight::Idle) {
            self.delivery.next_batch(now_ms, force)?;
            let records = self.delivery.in_flight()?;
            let batch = Batch {
                records,
                id: self.delivery.batch_id(),
            };
            let step = self.sink.start(&batch, now_ms);
            self.follow(step, now_ms);
        }
        match std::mem::take(&mut self.flight) {
            Flight::Ready { call, at_ms } if now_ms >= at_ms => {
                self.flight = Flight::Waiting;
                Some(call)
            }
            other => {
                self.flight = other;
                None
            }
        }
    }

    /// Takes the answer to the call out; returns what it said (for logs and metrics).
    pub fn on_answer(&mut self, answer: Answer<'_>, now_ms: u64) -> Outcome {
        if !matches!(self.flight, Flight::Waiting) {
            return no_answer();
        }
        self.retry_hint = answer.and_then(|(_, headers, _)| retry_after_ms(headers));
        let Some(records) = self.delivery.in_flight() else {
            self.flight = Flight::Idle;
            return no_answer();
        };
        let batch = Batch {
            records,
            id: self.delivery.batch_id(),
        };
        let step = self.sink.on_answer(answer, &batch, now_ms);
        self.follow(step, now_ms)
    }

    /// After a failed dispatch (the host refused the call).
    pub fn on_dispatch_failed(&mut self, now_ms: u64) -> Outcome {
        self.on_answer(None, now_ms)
    }

    /// Takes the sink's step: the next call, or the batch settled. Returns what the last
    /// answer said. A retry the sink left untimed waits for the answer's `Retry-After`, if
    /// any, rather than the backoff.
    fn follow(&mut self, step: Step, now_ms: u64) -> Outcome {
        let outcome = match step {
            Step::Call { call, at_ms, seen } => {
                self.flight = Flight::Ready { call, at_ms };
                return seen;
            }
            Step::Settle(outcome) => {
                let outcome = match outcome {
                    Outcome::Retry {
                        reason,
                        after_ms: None,
                    } => Outcome::Retry {
                        reason,
                        after_ms: self.retry_hint,
                    },
                    other => other,
                };
                self.delivery.settle(&outcome, now_ms);
                outcome
            }
            Step::SettleEach {
                results,
                after_ms,
                seen,
            } => {
                self.delivery
                    .settle_items(&results, after_ms.or(self.retry_hint), now_ms);
                seen
            }
        };
        self.flight = Flight::Idle;
        // A rejected batch is owed its gap record at once (the sink answers; there may be
        // nothing more to send), unless only gap records were rejected: those wait for a
        // delivery, or a sink rejecting everything would be sent gap records forever.
        let rejected = matches!(outcome, Outcome::Drop { .. }) && self.delivery.rejected_records();
        if outcome == Outcome::Delivered || rejected {
            self.report_gap();
        }
        outcome
    }

    /// Once delivery works again, what was lost is owed a gap record.
    fn report_gap(&mut self) {
        let (shed, rejected) = self.delivery.take_gaps();
        if let Some(gap) = shed {
            self.owed.push((gap, GapCause::BufferFull));
        }
        if let Some(gap) = rejected {
            self.owed.push((gap, GapCause::Rejected));
        }
        for (gap, rejected) in self.delivery.take_other_chains() {
            let cause = if rejected {
                GapCause::Rejected
            } else {
                GapCause::BufferFull
            };
            self.owed.push((gap, cause));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::azure_monitor::AzureConfig;
    use crate::sinks::datadog_logs::DatadogConfig;
    use crate::sinks::elasticsearch::ElasticsearchConfig;
    use crate::sinks::format::RecordFormat;
    use crate::sinks::s3::{self, S3Config, MAX_NEW_KEYS};
    use crate::sinks::splunk_hec::SplunkHecConfig;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn hec() -> SplunkHecConfig {
        SplunkHecConfig {
            cluster: "hec".into(),
            authority: "splunk:8088".into(),
            token: "t".into(),
            path: "/services/collector/event".into(),
            index: None,
            source: "policy-gateway".into(),
            sourcetype: "policy_gateway:decision".into(),
            host: None,
            ack: false,
            channel: None,
            format: RecordFormat::Native,
        }
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
            gap: None,
            seq: i + 1,
        }
    }

    const OK: &[u8] = br#"{"text":"Success","code":0}"#;

    #[test]
    fn one_call_at_a_time_and_settled_by_the_answer() {
        let mut s = Shipper::new(&hec(), limits(10_000), "gw", 1);
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

    fn es() -> ElasticsearchConfig {
        serde_json::from_value(serde_json::json!({
            "cluster": "es", "authority": "es:9200", "index": "policy-audit",
            "auth": {"basic": {"username": "elastic", "password": "changeme"}}
        }))
        .unwrap()
    }

    fn dd() -> DatadogConfig {
        serde_json::from_value(serde_json::json!({"cluster": "dd", "api_key": "k"})).unwrap()
    }

    #[test]
    fn bulk_answers_retry_only_failed_items() {
        let mut s = Shipper::new(&es(), limits(10_000), "gw", 1);
        s.delivery.push(rec(1));
        s.delivery.push(rec(2));
        let call = s.poll(0, true).unwrap();
        assert_eq!(call.cluster, "es");
        let body = br#"{"took":3,"errors":true,"items":[
            {"create":{"_index":"policy-audit","_id":"a","status":201}},
            {"create":{"_index":"policy-audit","_id":"b","status":429,
              "error":{"type":"es_rejected_execution_exception","reason":"busy"}}}]}"#;
        assert!(matches!(
            s.on_answer(Some((200, &[], body)), 1),
            Outcome::Retry { .. }
        ));
        assert_eq!(s.delivery.stats.delivered, 1);
        assert_eq!(s.delivery.buffered_records(), 1);
    }

    #[test]
    fn split_batches_go_out_part_by_part() {
        let mut big = Limits {
            batch_max_records: 2_000,
            batch_max_bytes: 100_000_000,
            ..limits(100_000_000)
        };
        big.flush_interval_ms = 0;
        let mut s = Shipper::new(&dd(), big, "gw", 1);
        for i in 0..1_500 {
            s.delivery.push(rec(i));
        }
        let first = s.poll(0, true).unwrap();
        assert_eq!(first.cluster, "dd");
        assert!(s.poll(0, true).is_none(), "one call at a time");
        // First part (1000 entries) accepted, second answered 503: only its records come back.
        assert_eq!(s.on_answer(Some((202, &[], b"{}")), 1), Outcome::Delivered);
        assert!(
            s.poll(1, false).is_some(),
            "the next part without waiting for a tick"
        );
        assert!(matches!(
            s.on_answer(Some((503, &[], b"")), 2),
            Outcome::Retry { .. }
        ));
        assert_eq!(s.delivery.stats.delivered, 1_000);
        assert_eq!(s.delivery.buffered_records(), 500);
    }

    #[test]
    fn acked_batches_count_only_once_indexed() {
        let mut cfg = hec();
        cfg.ack = true;
        let mut s = Shipper::new(&cfg, limits(10_000), "gw", 1);
        s.delivery.push(rec(1));
        let post = s.poll(0, true).unwrap();
        assert!(post
            .request
            .headers
            .iter()
            .any(|(k, _)| k == "x-splunk-request-channel"));
        s.on_answer(
            Some((200, &[], br#"{"text":"Success","code":0,"ackId":3}"#)),
            10,
        );
        assert_eq!(s.delivery.stats.delivered, 0, "posted is not indexed");
        assert!(s.poll(500, false).is_none(), "polls wait a second");
        let poll = s.poll(1_010, false).unwrap();
        assert_eq!(poll.request.path, "/services/collector/ack");
        s.on_answer(Some((200, &[], br#"{"acks":{"3":false}}"#)), 1_020);
        assert_eq!(s.delivery.stats.delivered, 0);
        assert!(s.poll(2_030, false).is_some());
        s.on_answer(Some((200, &[], br#"{"acks":{"3":true}}"#)), 2_040);
        assert_eq!(s.delivery.stats.delivered, 1);
    }

    #[test]
    fn retry_after_from_any_sink_is_honoured() {
        let mut s = Shipper::new(&hec(), limits(10_000), "gw", 1);
        s.delivery.push(rec(1));
        s.poll(0, true).unwrap();
        let headers = vec![("Retry-After".to_string(), "7".to_string())];
        let out = s.on_answer(
            Some((503, &headers, br#"{"text":"Server is busy","code":9}"#)),
            100,
        );
        assert!(matches!(
            out,
            Outcome::Retry {
                after_ms: Some(7_000),
                ..
            }
        ));
        assert!(s.poll(7_099, false).is_none());
        assert!(s.poll(7_100, false).is_some());
    }

    #[test]
    fn losses_are_owed_a_gap_record_once_delivery_recovers() {
        let mut s = Shipper::new(&hec(), limits(30), "gw", 1);
        for i in 0..10 {
            s.delivery.push(rec(i));
        }
        // 30 bytes hold 3 records of 9 bytes: 7 dropped.
        assert!(s.poll(0, true).is_some());
        assert_eq!(s.unaccounted().unannounced.map(|g| g.dropped), Some(7));
        assert!(s.take_owed().is_empty(), "not before a delivery");
        s.on_answer(Some((200, &[], OK)), 5);
        let owed = s.take_owed();
        let want = Gap {
            dropped: 7,
            from_ms: 1_000,
            to_ms: 1_006,
            from_seq: 1,
            to_seq: 7,
        };
        assert_eq!(owed, [(want, GapCause::BufferFull)]);
        assert!(s.take_owed().is_empty(), "once");
        // A rejected batch is owed one too, with its own cause, at once: the sink answers,
        // and nothing more may come to send.
        s.poll(6, true).unwrap();
        s.on_answer(Some((400, &[], b"{}")), 7);
        let owed = s.take_owed();
        assert_eq!(owed.len(), 1);
        assert_eq!(owed[0].1, GapCause::Rejected);
        assert_eq!((owed[0].0.from_seq, owed[0].0.to_seq), (10, 10));
        // A rejected gap record alone waits for a delivery (no gap records forever).
        s.delivery.push(QueuedRecord {
            gap: Some(owed[0].0),
            ..rec(11)
        });
        s.poll(8, true).unwrap();
        s.on_answer(Some((400, &[], b"{}")), 9);
        assert!(s.take_owed().is_empty());
        s.delivery.push(rec(12));
        s.poll(10, true).unwrap();
        s.on_answer(Some((200, &[], OK)), 11);
        let owed = s.take_owed();
        assert_eq!(owed[0].1, GapCause::Rejected);
        assert_eq!(
            (owed[0].0.from_seq, owed[0].0.to_seq),
            (10, 12),
            "with its own seq"
        );
    }

    fn s3() -> S3Config {
        serde_json::from_value(serde_json::json!({
            "presigner_cluster": "presigner", "presigner_authority": "presigner:8080",
            "s3_cluster": "s3",
        }))
        .unwrap()
    }

    fn key_of(call: &Call) -> String {
        let v: serde_json::Value = serde_json::from_slice(&call.request.body).unwrap();
        v["key"].as_str().unwrap().to_string()
    }

    fn presigned(key: &str) -> Vec<u8> {
        serde_json::json!({
            "url": format!("http://127.0.0.1:9000/audit/{key}?X-Amz-Signature=ab"),
            "headers": {"content-type": "application/x-ndjson", "content-encoding": "gzip",
                        "if-none-match": "*"},
            "expires_at": 9_999_999_999u64,
        })
        .to_string()
        .into_bytes()
    }

    const EXISTS: &[u8] = b"<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>";

    #[test]
    fn s3_keys_differ_across_vms_and_gateways_sharing_an_instance_id() {
        let mut keys = std::collections::HashSet::new();
        for seed in 1..=4 {
            let mut s = Shipper::new(&s3(), limits(10_000), "mesh", seed);
            s.delivery.push(rec(1));
            assert!(keys.insert(key_of(&s.poll(0, true).unwrap())), "{keys:?}");
        }
    }

    #[test]
    fn s3_retry_after_a_lost_answer_reuses_the_key() {
        let mut s = Shipper::new(&s3(), limits(10_000), "gw", 1);
        s.delivery.push(rec(1));
        s.delivery.push(rec(2));
        let key = key_of(&s.poll(0, true).unwrap());
        s.on_answer(Some((200, &[], &presigned(&key))), 1);
        assert_eq!(s.poll(1, false).unwrap().request.method, "PUT");
        assert!(matches!(s.on_answer(None, 2), Outcome::Retry { .. }));
        let again = s.poll(120_000, false).unwrap();
        assert_eq!(key_of(&again), key, "the same batch keeps its key");
        s.on_answer(Some((200, &[], &presigned(&key))), 120_001);
        let put = s.poll(120_001, false).unwrap();
        assert_eq!(
            s3::object_body(&[rec(1), rec(2)], Default::default()),
            put.request.body
        );
        // The lost answer had stored it: If-None-Match answers 412, the same batch, delivered.
        assert_eq!(
            s.on_answer(Some((412, &[], EXISTS)), 120_002),
            Outcome::Delivered
        );
        assert_eq!(s.delivery.stats.delivered, 2);
    }

    #[test]
    fn s3_412_on_a_first_attempt_is_not_a_delivery() {
        let mut s = Shipper::new(&s3(), limits(10_000), "gw", 1);
        s.delivery.push(rec(1));
        let key = key_of(&s.poll(0, true).unwrap());
        s.on_answer(Some((200, &[], &presigned(&key))), 1);
        s.poll(1, false).unwrap();
        assert_ne!(s.on_answer(Some((412, &[], EXISTS)), 2), Outcome::Delivered);
        assert_eq!(s.delivery.stats.delivered, 0);
        let next = s.poll(2, false).unwrap();
        assert_ne!(
            key_of(&next),
            key,
            "another writer holds the key: a new one"
        );
    }

    fn azure() -> AzureConfig {
        serde_json::from_value(serde_json::json!({
            "cluster": "azure", "endpoint_authority": "dce.ingest.monitor.azure.com",
            "dcr_immutable_id": "dcr-0123abcd", "stream": "Custom-Audit_CL",
            "auth": {"client_credentials": {"token_cluster": "entra",
                "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                "client_id": "11111111-2222-3333-4444-555555555555",
                "client_secret": "s3cr3t"}},
        }))
        .unwrap()
    }

    fn token(t: &str) -> Vec<u8> {
        format!(r#"{{"token_type":"Bearer","expires_in":3599,"access_token":"{t}"}}"#).into_bytes()
    }

    fn bearer(call: &Call) -> Option<String> {
        call.request
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone())
    }

    const REVOKED: &[u8] =
        br#"{"error":{"code":"InvalidToken","message":"The provided access token is invalid."}}"#;

    #[test]
    fn azure_401_retries_the_batch_with_a_fresh_token() {
        let mut s = Shipper::new(&azure(), limits(10_000), "gw", 1);
        s.delivery.push(rec(1));
        s.delivery.push(rec(2));
        assert_eq!(s.poll(0, true).unwrap().cluster, "entra");
        s.on_answer(Some((200, &[], &token("tok-1"))), 1);
        let ingest = s.poll(1, false).unwrap();
        assert_eq!(bearer(&ingest).as_deref(), Some("Bearer tok-1"));
        let out = s.on_answer(Some((401, &[], REVOKED)), 2);
        assert!(matches!(out, Outcome::Retry { .. }), "{out:?}");
        assert_eq!(s.delivery.stats.dropped_rejected, 0);
        let fetch = s.poll(2, false).unwrap();
        assert_eq!(fetch.cluster, "entra", "a fresh token at once");
        s.on_answer(Some((200, &[], &token("tok-2"))), 3);
        let ingest = s.poll(3, false).unwrap();
        assert_eq!(bearer(&ingest).as_deref(), Some("Bearer tok-2"));
        assert_eq!(s.on_answer(Some((204, &[], b"")), 4), Outcome::Delivered);
        assert_eq!(s.delivery.stats.delivered, 2);
    }

    #[test]
    fn azure_a_fresh_token_refused_too_drops_the_batch_once() {
        let mut s = Shipper::new(&azure(), limits(10_000), "gw", 1);
        s.delivery.push(rec(1));
        s.delivery.push(rec(2));
        s.poll(0, true).unwrap();
        s.on_answer(Some((200, &[], &token("tok-1"))), 1);
        s.poll(1, false).unwrap();
        assert!(matches!(
            s.on_answer(Some((401, &[], REVOKED)), 2),
            Outcome::Retry { .. }
        ));
        s.poll(2, false).unwrap();
        s.on_answer(Some((200, &[], &token("tok-2"))), 3);
        s.poll(3, false).unwrap();
        assert!(matches!(
            s.on_answer(Some((401, &[], REVOKED)), 4),
            Outcome::Drop { .. }
        ));
        assert_eq!(s.delivery.stats.dropped_rejected, 2);
        assert_eq!(s.delivery.stats.dropped(), 2, "counted once");
        assert_eq!(s.delivery.buffered_records(), 0);
        // The next batch gets its own retry with a fresh token.
        s.delivery.push(rec(3));
        assert_eq!(s.poll(5, true).unwrap().cluster, "entra");
        s.on_answer(Some((200, &[], &token("tok-3"))), 6);
        s.poll(6, false).unwrap();
        assert!(matches!(
            s.on_answer(Some((401, &[], REVOKED)), 7),
            Outcome::Retry { .. }
        ));
        assert_eq!(s.delivery.stats.dropped(), 2);
    }

    #[test]
    fn s3_a_key_taken_again_and_again_backs_off_and_is_never_delivered() {
        let mut s = Shipper::new(&s3(), limits(10_000), "gw", 1);
        s.delivery.push(rec(1));
        let mut keys = std::collections::HashSet::new();
        let mut now = 0;
        for _ in 0..=MAX_NEW_KEYS {
            let presign = s.poll(now, true).unwrap();
            assert!(keys.insert(key_of(&presign)), "a new key each time");
            s.on_answer(Some((200, &[], &presigned(&key_of(&presign)))), now);
            s.poll(now, false).unwrap();
            assert!(matches!(
                s.on_answer(Some((412, &[], EXISTS)), now),
                Outcome::Retry { .. }
            ));
            now += 1;
        }
        assert!(s.poll(now, false).is_none(), "then it backs off");
        assert_eq!(s.delivery.stats.delivered, 0);
        let presign = s.poll(now + 60_000, false).unwrap();
        assert!(keys.insert(key_of(&presign)), "and tries one more new key");
    }

    #[test]
    fn s3_a_batch_that_changed_while_waiting_gets_a_new_key() {
        let mut s = Shipper::new(&s3(), limits(27), "gw", 1);
        for i in 0..3 {
            s.delivery.push(rec(i));
        }
        let key = key_of(&s.poll(0, true).unwrap());
        s.on_answer(Some((500, &[], b"")), 1);
        // The full buffer sheds the oldest record of the waiting batch: not the same batch.
        s.delivery.push(rec(3));
        assert_ne!(key_of(&s.poll(120_000, false).unwrap()), key);
    }
}
