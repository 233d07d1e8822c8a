//! A VM's audit outbox: every configured sink's shipper, the call each has out, what the
//! metrics were last told, and this VM's entry in the ledger (`sinks::ledger`). The filter's
//! root context calls it on each event (a record, a tick, an answer, a stop) through a small
//! [`Host`] (dispatch a call, the shared data), and applies the [`Report`] it returns: metric
//! moves and warnings to log. Every delivery decision is here, host-free.

use super::config::AuditConfig;
use super::delivery::Stats;
use super::ledger::{self, Entry, SinkEntry, Store};
use super::shipper::Shipper;
use super::{Answer, Call, Outcome, QueuedRecord};

/// How often a VM looks for dead VMs' ledgers (and checks that its own was not claimed).
const LEDGER_SCAN_MS: u64 = 1_000;

/// The host, as delivery uses it: its shared data (for the ledger) and its HTTP calls.
pub trait Host: Store {
    /// Dispatches `call`: the token its answer will come back with, or why it could not.
    fn dispatch(&self, call: &Call) -> Result<u32, String>;
}

/// Moves of one sink's metrics: counters (`delivered`, `retried`, `dropped`) and the
/// `buffered_bytes` gauge. Deltas, so that workers sharing a metric sum correctly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub delivered: i64,
    pub retried: i64,
    pub dropped: i64,
    pub buffered_bytes: i64,
}

/// What the host is to apply after an event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Per sink, in the order of [`Outbox::names`].
    pub sinks: Vec<Counters>,
    /// For `records.dropped`: every sink's drops, and those a dead VM left on a sink this
    /// configuration lacks.
    pub dropped: i64,
    /// Lines to log as warnings.
    pub warnings: Vec<String>,
}

/// One sink of the VM.
struct Slot {
    shipper: Shipper,
    /// The token of the call out, if one is.
    in_flight: Option<u32>,
    /// The counters as metrics last saw them.
    reported: Stats,
    reported_bytes: i64,
    /// The last reason logged: each is logged once, until delivery works again.
    last_error: Option<String>,
}

/// This VM's place in the ledger.
#[derive(Debug, Default)]
struct VmLedger {
    /// Its number; `None` until registered (the index was contended: retried on tick).
    vm: Option<u64>,
    /// Set by [`Outbox::stop`]: what is left is reported as `vm_stopped` if it never drains.
    stopped: bool,
    last_scan_ms: u64,
}

pub struct Outbox {
    /// The gateway's instance id.
    gateway: String,
    vm_stale_ms: u64,
    slots: Vec<Slot>,
    ledger: VmLedger,
}

impl Outbox {
    /// The configured sinks of a VM numbered `vm` in the ledger; `seed` is the VM's.
    pub fn new(audit: &AuditConfig, gateway: &str, seed: u64, vm: Option<u64>) -> Outbox {
        let limits = audit.limits();
        let slots = audit
            .sinks()
            .into_iter()
            .enumerate()
            .map(|(i, config)| Slot {
                shipper: Shipper::new(config, limits, gateway, seed ^ (i as u64) << 40),
                in_flight: None,
                reported: Stats::default(),
                reported_bytes: 0,
                last_error: None,
            })
            .collect();
        Outbox {
            gateway: gateway.to_string(),
            vm_stale_ms: audit.vm_stale_ms,
            slots,
            ledger: VmLedger {
                vm,
                ..VmLedger::default()
            },
        }
    }

    /// The sinks' names, in the order of [`Report::sinks`].
    pub fn names(&self) -> Vec<&'static str> {
        self.slots.iter().map(|s| s.shipper.name()).collect()
    }

    fn report(&self) -> Report {
        Report {
            sinks: vec![Counters::default(); self.slots.len()],
            ..Report::default()
        }
    }

    /// Queues a record for every sink. Never blocks, never fails: a full buffer drops its
    /// oldest records and counts them (reported with the sink's other counters).
    pub fn push(&mut self, host: &impl Host, json: String, epoch_ms: u64) {
        for slot in &mut self.slots {
            slot.shipper.push(QueuedRecord::new(json.clone(), epoch_ms));
        }
        self.write_ledger(host, epoch_ms);
    }

    /// Sends every due batch (all of them when `force`).
    pub fn flush(&mut self, host: &impl Host, now_ms: u64, force: bool) -> Report {
        let mut report = self.report();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            slot.dispatch_next(host, now_ms, force, &mut report);
            slot.count(i, &mut report);
        }
        report
    }

    /// Takes the answer to call `token`. A sink with more to send right away (the upload
    /// after its presigned URL, the next part) sends it at once.
    pub fn on_answer(
        &mut self,
        host: &impl Host,
        token: u32,
        answer: Answer<'_>,
        now_ms: u64,
    ) -> Report {
        let mut report = self.report();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.in_flight != Some(token) {
                continue;
            }
            slot.in_flight = None;
            match slot.shipper.on_answer(answer, now_ms) {
                Outcome::Delivered => slot.last_error = None,
                Outcome::Retry { reason, .. } | Outcome::Drop { reason } => {
                    slot.note_error(&reason, &mut report)
                }
            }
            slot.dispatch_next(host, now_ms, false, &mut report);
            slot.count(i, &mut report);
        }
        self.write_ledger(host, now_ms);
        report
    }

    /// Writes this VM's ledger entry: what each sink holds undelivered, as of now. Done
    /// whenever that changes (a record queued, an answer) and on every tick (the heartbeat).
    /// A stopped VM with nothing left takes itself out of the ledger instead.
    fn write_ledger(&mut self, host: &impl Host, now_ms: u64) {
        let Some(vm) = self.ledger.vm else {
            return;
        };
        let entry = Entry {
            vm,
            gateway: self.gateway.clone(),
            beat_ms: now_ms,
            stopped: self.ledger.stopped,
            sinks: self
                .slots
                .iter()
                .map(|s| {
                    let u = s.shipper.unaccounted();
                    let dropped = s.shipper.stats().dropped();
                    SinkEntry {
                        sink: s.shipper.name().to_string(),
                        pending: u.pending,
                        unannounced: u.unannounced,
                        unreported_dropped: dropped.saturating_sub(s.reported.dropped()),
                        gauge_bytes: s.reported_bytes.max(0) as u64,
                    }
                })
                .collect(),
        };
        if self.ledger.stopped && entry.is_empty() {
            ledger::retire(host, &[vm]);
            self.ledger.vm = None;
        } else {
            ledger::write(host, &entry);
        }
    }

    /// On tick: registers if needed, registers again if another VM presumed this one dead,
    /// claims dead VMs' ledgers and reports what they lost, then writes the heartbeat.
    pub fn tend(&mut self, host: &impl Host, now_ms: u64) -> Report {
        let mut report = self.report();
        let stale_ms = self.vm_stale_ms;
        let l = &mut self.ledger;
        if l.vm.is_none() && !l.stopped {
            l.vm = ledger::register(host, &self.gateway, now_ms);
        }
        let mut claimed = Vec::new();
        if let (Some(vm), true) = (
            l.vm,
            now_ms.saturating_sub(l.last_scan_ms) >= LEDGER_SCAN_MS,
        ) {
            l.last_scan_ms = now_ms;
            if let Some(by) = ledger::claimed_by(host, vm) {
                report.warnings.push(format!(
                    "{by} presumed this VM ({vm}) dead (no ledger write for {stale_ms} ms: a \
                     stalled worker?) and reported its undelivered records lost; those still \
                     delivered are then counted twice; registering again"
                ));
                l.vm = ledger::register(host, &self.gateway, now_ms);
            }
            if let Some(vm) = l.vm {
                claimed = ledger::claim_dead(host, vm, now_ms, stale_ms);
            }
        }
        for entry in &claimed {
            self.adopt(entry, now_ms, &mut report);
        }
        self.write_ledger(host, now_ms);
        report
    }

    /// Reports what a dead VM lost: a gap record per sink (into this VM's sink of the same
    /// name, or every sink when it has none), its records counted dropped in both dropped
    /// metrics, and its share of the buffered-bytes gauge taken back.
    fn adopt(&mut self, entry: &Entry, now_ms: u64, report: &mut Report) {
        let cause = entry.cause();
        for lost in entry.lost() {
            let named = self
                .slots
                .iter()
                .position(|s| s.shipper.name() == lost.sink);
            if lost.gap.dropped > 0 {
                report.warnings.push(format!(
                    "VM {} ({}) left {} records undelivered to {}: gap record queued",
                    entry.vm,
                    cause.name(),
                    lost.gap.dropped,
                    lost.sink
                ));
                for (i, s) in self.slots.iter_mut().enumerate() {
                    if named.is_none_or(|n| n == i) {
                        s.shipper
                            .announce(lost.gap, cause, Some(entry.vm), &entry.gateway, now_ms);
                    }
                }
            }
            let dropped = lost.newly_dropped as i64;
            report.dropped += dropped;
            // A sink this configuration lacks has no metrics here: only the global count.
            if let Some(c) = named.and_then(|n| report.sinks.get_mut(n)) {
                c.dropped += dropped;
                c.buffered_bytes -= lost.gauge_bytes as i64;
            }
        }
    }

    /// At a stop (shutdown, reconfiguration): the ledger keeps what is still undelivered,
    /// for whichever VM claims it if this one never drains it.
    pub fn stop(&mut self, host: &impl Host, now_ms: u64) {
        self.ledger.stopped = true;
        self.write_ledger(host, now_ms);
    }
}

impl Slot {
    /// Dispatches the sink's next call, if one is due and none is out.
    fn dispatch_next(&mut self, host: &impl Host, now_ms: u64, force: bool, report: &mut Report) {
        if self.in_flight.is_some() {
            return;
        }
        let Some(call) = self.shipper.poll(now_ms, force) else {
            return;
        };
        match host.dispatch(&call) {
            Ok(token) => self.in_flight = Some(token),
            Err(status) => {
                let reason = format!("dispatch to cluster \"{}\" failed: {status}", call.cluster);
                self.note_error(&reason, report);
                self.shipper.on_dispatch_failed(now_ms);
            }
        }
    }

    /// Warns of an error once per distinct reason (never the token or the body sent).
    fn note_error(&mut self, reason: &str, report: &mut Report) {
        if self.last_error.as_deref() != Some(reason) {
            report
                .warnings
                .push(format!("sink {}: {reason}", self.shipper.name()));
            self.last_error = Some(reason.to_string());
        }
    }

    /// Adds the counters' moves since the last report to sink `i`'s. Drops come from one
    /// counter (`Stats::dropped`, whatever the cause), for both the sink's and the global
    /// metric.
    fn count(&mut self, i: usize, report: &mut Report) {
        let (s, r) = (self.shipper.stats(), self.reported);
        let dropped = s.dropped().saturating_sub(r.dropped()) as i64;
        let bytes = self.shipper.buffered_bytes() as i64;
        if let Some(c) = report.sinks.get_mut(i) {
            c.delivered += s.delivered.saturating_sub(r.delivered) as i64;
            c.retried += s.retried.saturating_sub(r.retried) as i64;
            c.dropped += dropped;
            c.buffered_bytes += bytes - self.reported_bytes;
        }
        report.dropped += dropped;
        self.reported = s;
        self.reported_bytes = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::ledger::{claim_key, entry_key, Entry, GONE, INDEX_KEY};
    use crate::sinks::Gap;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Shared data as Envoy keeps it (a CAS token per set), and the calls dispatched.
    #[derive(Default)]
    struct FakeHost {
        data: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        cas: Cell<u32>,
        calls: RefCell<Vec<Call>>,
        /// While set, every dispatch fails.
        refuse: Cell<bool>,
    }

    impl Store for FakeHost {
        fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
            match self.data.borrow().get(key) {
                Some((v, cas)) => (Some(v.clone()), Some(*cas)),
                None => (None, None),
            }
        }

        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
            let mut data = self.data.borrow_mut();
            if let (Some((_, current)), Some(cas)) = (data.get(key), cas) {
                if *current != cas {
                    return false;
                }
            }
            self.cas.set(self.cas.get() + 1);
            data.insert(key.to_string(), (value.to_vec(), self.cas.get()));
            true
        }
    }

    impl Host for FakeHost {
        fn dispatch(&self, call: &Call) -> Result<u32, String> {
            if self.refuse.get() {
                return Err("BadArgument".into());
            }
            self.calls.borrow_mut().push(call.clone());
            Ok(self.calls.borrow().len() as u32)
        }
    }

    impl FakeHost {
        fn call(&self, token: u32) -> Call {
            self.calls.borrow()[token as usize - 1].clone()
        }

        fn entry(&self, vm: u64) -> Vec<u8> {
            self.get(&entry_key(vm)).0.unwrap_or_default()
        }
    }

    fn audit(sinks: serde_json::Value) -> AuditConfig {
        let mut doc = serde_json::json!({"flush_interval_ms": 100});
        for (k, v) in sinks.as_object().unwrap() {
            doc[k] = v.clone();
        }
        serde_json::from_value(doc).unwrap()
    }

    fn hec() -> serde_json::Value {
        serde_json::json!({"cluster": "hec", "authority": "splunk:8088", "token": "t"})
    }

    fn s3() -> serde_json::Value {
        serde_json::json!({"presigner_cluster": "presigner",
            "presigner_authority": "presigner:8080", "s3_cluster": "s3"})
    }

    const OK: &[u8] = br#"{"text":"Success","code":0}"#;

    fn presigned() -> Vec<u8> {
        serde_json::json!({"url": "http://127.0.0.1:9000/audit/k?X-Amz-Signature=ab",
            "headers": {}, "expires_at": 9_999_999_999u64})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn answers_go_to_the_sink_that_made_the_call_and_the_next_call_goes_at_once() {
        let host = FakeHost::default();
        let mut out = Outbox::new(
            &audit(serde_json::json!({"splunk_hec": hec(), "s3": s3()})),
            "gw",
            1,
            None,
        );
        assert_eq!(out.names(), ["splunk_hec", "s3"]);
        out.push(&host, r#"{"i":1}"#.into(), 1_000);
        let r = out.flush(&host, 1_000, true);
        assert_eq!(
            (host.call(1).cluster.as_str(), host.call(2).cluster.as_str()),
            ("hec", "presigner")
        );
        assert_eq!(r.sinks[0].buffered_bytes, 7);
        // The presigned URL: the upload goes out with the answer, not at the next tick.
        let r = out.on_answer(&host, 2, Some((200, &[], &presigned())), 1_001);
        assert_eq!(host.call(3).request.method, "PUT");
        assert_eq!(r.sinks, vec![Counters::default(); 2]);
        let r = out.on_answer(&host, 1, Some((200, &[], OK)), 1_002);
        let hec_moves = Counters {
            delivered: 1,
            buffered_bytes: -7,
            ..Counters::default()
        };
        assert_eq!(r.sinks, vec![hec_moves, Counters::default()]);
        let r = out.on_answer(&host, 3, Some((200, &[], b"")), 1_003);
        assert_eq!(r.sinks[1].delivered, 1);
        assert!(r.warnings.is_empty());
        let r = out.on_answer(&host, 3, Some((200, &[], b"")), 1_004);
        assert_eq!(
            r.sinks,
            vec![Counters::default(); 2],
            "an answer counts once"
        );
    }

    #[test]
    fn a_failed_dispatch_is_retried_and_warned_once_until_delivery_works() {
        let host = FakeHost::default();
        let mut out = Outbox::new(
            &audit(serde_json::json!({"splunk_hec": hec()})),
            "gw",
            1,
            None,
        );
        out.push(&host, "{}".into(), 0);
        host.refuse.set(true);
        let r = out.flush(&host, 0, true);
        let warning = "sink splunk_hec: dispatch to cluster \"hec\" failed: BadArgument";
        assert_eq!(r.warnings, [warning]);
        assert_eq!((r.sinks[0].retried, r.dropped), (1, 0));
        let r = out.flush(&host, 60_000, false);
        assert!(r.warnings.is_empty(), "the same reason again: not logged");
        assert_eq!(r.sinks[0].retried, 1);
        host.refuse.set(false);
        out.flush(&host, 120_000, false);
        let r = out.on_answer(&host, 1, Some((200, &[], OK)), 120_001);
        assert_eq!(r.sinks[0].delivered, 1);
        out.push(&host, "{}".into(), 120_002);
        host.refuse.set(true);
        assert_eq!(
            out.flush(&host, 120_002, true).warnings,
            [warning],
            "logged again"
        );
    }

    #[test]
    fn a_dead_vms_losses_go_to_the_sink_of_the_same_name_or_to_every_sink() {
        let host = FakeHost::default();
        ledger::ensure_index(&host);
        let dead = ledger::register(&host, "gw-old", 0).unwrap();
        let gap = |n| {
            Some(Gap {
                dropped: n,
                from_ms: 100,
                to_ms: 200,
            })
        };
        ledger::write(
            &host,
            &Entry {
                vm: dead,
                gateway: "gw-old".into(),
                beat_ms: 500,
                stopped: false,
                sinks: vec![
                    SinkEntry {
                        sink: "s3".into(),
                        pending: gap(5),
                        gauge_bytes: 300,
                        ..SinkEntry::default()
                    },
                    SinkEntry {
                        sink: "elasticsearch".into(),
                        pending: gap(2),
                        ..SinkEntry::default()
                    },
                ],
            },
        );
        let me = ledger::register(&host, "gw", 20_000);
        let mut out = Outbox::new(
            &audit(serde_json::json!({"splunk_hec": hec(), "s3": s3()})),
            "gw",
            1,
            me,
        );
        let r = out.tend(&host, 20_000);
        assert_eq!(
            r.warnings,
            [
                format!("VM {dead} (vm_failed) left 5 records undelivered to s3: gap record queued"),
                format!("VM {dead} (vm_failed) left 2 records undelivered to elasticsearch: gap record queued"),
            ]
        );
        assert_eq!(r.dropped, 7, "both count in records.dropped");
        let s3_moves = Counters {
            dropped: 5,
            buffered_bytes: -300,
            ..Counters::default()
        };
        assert_eq!(r.sinks, vec![Counters::default(), s3_moves]);
        // HEC announces only the loss of the sink this configuration lacks.
        out.flush(&host, 20_001, true);
        let body = String::from_utf8(host.call(1).request.body).unwrap();
        assert_eq!(body.matches(r#""record_type":"gap""#).count(), 1, "{body}");
        assert!(body.contains(r#""dropped":2"#), "{body}");
        assert_eq!(out.tend(&host, 21_500).warnings.len(), 0, "claimed once");
    }

    #[test]
    fn a_stopped_vm_keeps_its_records_in_the_ledger_until_it_drains_them() {
        let host = FakeHost::default();
        ledger::ensure_index(&host);
        let vm = ledger::register(&host, "gw", 0).unwrap();
        let mut out = Outbox::new(
            &audit(serde_json::json!({"splunk_hec": hec()})),
            "gw",
            1,
            Some(vm),
        );
        out.push(&host, "{}".into(), 10);
        out.flush(&host, 10, true);
        out.stop(&host, 11);
        let entry = Entry::decode(&host.entry(vm)).unwrap();
        assert!(entry.stopped);
        assert_eq!(entry.sinks[0].pending.map(|p| p.dropped), Some(1));
        out.on_answer(&host, 1, Some((200, &[], OK)), 12);
        assert_eq!(host.entry(vm), GONE, "drained: out of the ledger");
        let index = String::from_utf8(host.get(INDEX_KEY).0.unwrap()).unwrap();
        assert!(
            !index.split(' ').skip(2).any(|n| n == vm.to_string()),
            "{index}"
        );
        assert!(out.tend(&host, 5_000).warnings.is_empty());
        assert_eq!(host.entry(vm), GONE, "a stopped VM does not register again");
    }

    #[test]
    fn a_vm_presumed_dead_says_so_and_registers_again() {
        let host = FakeHost::default();
        ledger::ensure_index(&host);
        let vm = ledger::register(&host, "gw", 0).unwrap();
        let mut out = Outbox::new(
            &audit(serde_json::json!({"splunk_hec": hec()})),
            "gw",
            1,
            Some(vm),
        );
        host.set(&claim_key(vm), b"vm 9", None);
        let r = out.tend(&host, 5_000);
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].starts_with(&format!("vm 9 presumed this VM ({vm}) dead")));
        let again = ledger::register(&host, "gw", 5_001).unwrap();
        assert_eq!(again, vm + 2, "it took the number after {vm}");
    }
}
