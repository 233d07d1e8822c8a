//! The root context of a VM: configuration, the audit queues, and sink calls on tick.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::host;
use super::http::Http;
use super::metrics::{self, Metrics, SinkMetrics};
use crate::audit::{AuditRecord, IdGenerator};
use crate::config::PluginConfig;
use crate::sinks::delivery::Limits;
use crate::sinks::ledger::{self, Entry, SinkEntry};
use crate::sinks::shipper::{Shipper, SinkSpec};
use crate::sinks::{Outcome, QueuedRecord};

/// How often a VM looks for dead VMs' ledgers (and checks that its own was not claimed).
const LEDGER_SCAN_MS: u64 = 1_000;

/// The host's shared data, for the ledger.
struct HostStore;

impl ledger::Store for HostStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        host::shared_data(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        host::set_shared_data(key, value, cas)
    }
}

/// This VM's place in the ledger (`sinks::ledger`).
#[derive(Debug, Default)]
pub struct VmLedger {
    /// Its number; `None` until registered (the index was contended: retried on tick).
    vm: Option<u64>,
    /// Set by `on_done`: what is left is reported as `vm_stopped` if it never drains.
    stopped: bool,
    last_scan_ms: u64,
}

/// One sink on this VM: its shipper, the call in flight and what metrics have seen.
pub struct SinkState {
    shipper: Shipper,
    metrics: SinkMetrics,
    in_flight: Option<u32>,
    reported_bytes: i64,
    reported: crate::sinks::delivery::Stats,
    last_error: Option<String>,
}

/// State shared by the root context and the HTTP contexts of one VM.
pub struct Shared {
    pub config: Rc<PluginConfig>,
    pub ids: RefCell<IdGenerator>,
    pub metrics: Metrics,
    pub sinks: RefCell<Vec<SinkState>>,
    pub ledger: RefCell<VmLedger>,
}

impl Shared {
    /// Queues a finished record for every sink. Never blocks, never fails: a full buffer
    /// drops its oldest records and counts them.
    pub fn emit(&self, record: &AuditRecord, epoch_ms: u64) {
        self.emit_json(record.to_json(), epoch_ms);
    }

    /// Queues any record, already serialized, for every sink. Records shed to make room
    /// are counted by the sink's delivery and reported with its other counters.
    pub fn emit_json(&self, json: String, epoch_ms: u64) {
        self.metrics.record_emitted();
        for sink in self.sinks.borrow_mut().iter_mut() {
            sink.shipper
                .delivery
                .push(QueuedRecord::new(json.clone(), epoch_ms));
        }
        self.write_ledger(epoch_ms);
    }

    /// Writes this VM's ledger entry: what each sink holds undelivered, as of now. Called
    /// whenever that changes (a record queued, an answer) and on every tick (the heartbeat).
    /// A stopped VM with nothing left takes itself out of the ledger instead.
    fn write_ledger(&self, now_ms: u64) {
        let l = self.ledger.borrow();
        let Some(vm) = l.vm else {
            return;
        };
        let entry = Entry {
            vm,
            gateway: self.config.instance_id.clone(),
            beat_ms: now_ms,
            stopped: l.stopped,
            sinks: self
                .sinks
                .borrow()
                .iter()
                .map(|s| {
                    let d = &s.shipper.delivery;
                    let u = d.unaccounted();
                    SinkEntry {
                        sink: s.shipper.name().to_string(),
                        pending: u.pending,
                        unannounced: u.unannounced,
                        unreported_dropped: d.stats.dropped().saturating_sub(s.reported.dropped()),
                        gauge_bytes: s.reported_bytes.max(0) as u64,
                    }
                })
                .collect(),
        };
        if l.stopped && entry.is_empty() {
            ledger::retire(&HostStore, &[vm]);
            drop(l);
            self.ledger.borrow_mut().vm = None;
        } else {
            ledger::write(&HostStore, &entry);
        }
    }

    /// On tick: registers if needed, re-registers if another VM presumed this one dead, claims
    /// dead VMs' ledgers, then writes the heartbeat.
    fn tend_ledger(&self, now_ms: u64) {
        let stale_ms = self.config.audit.vm_stale_ms;
        let mut claimed = Vec::new();
        {
            let mut l = self.ledger.borrow_mut();
            if l.vm.is_none() && !l.stopped {
                l.vm = ledger::register(&HostStore, &self.config.instance_id, now_ms);
            }
            if let (Some(vm), true) = (
                l.vm,
                now_ms.saturating_sub(l.last_scan_ms) >= LEDGER_SCAN_MS,
            ) {
                l.last_scan_ms = now_ms;
                if let Some(by) = ledger::claimed_by(&HostStore, vm) {
                    log::warn!(
                        "policy_gateway: {by} presumed this VM ({vm}) dead (no ledger write for \
                         {stale_ms} ms: a stalled worker?) and reported its undelivered records \
                         lost; those still delivered are then counted twice; registering again"
                    );
                    l.vm = ledger::register(&HostStore, &self.config.instance_id, now_ms);
                }
                if let Some(vm) = l.vm {
                    claimed = ledger::claim_dead(&HostStore, vm, now_ms, stale_ms);
                }
            }
        }
        for entry in &claimed {
            self.adopt(entry, now_ms);
        }
        self.write_ledger(now_ms);
    }

    /// Reports what a dead VM lost: a gap record per sink (into this VM's sink of the same
    /// name, or every sink when it has none), its records counted dropped in both dropped
    /// metrics, and its share of the buffered-bytes gauge taken back.
    fn adopt(&self, entry: &Entry, now_ms: u64) {
        let cause = entry.cause();
        let mut sinks = self.sinks.borrow_mut();
        for lost in entry.lost() {
            let named = sinks.iter().position(|s| s.shipper.name() == lost.sink);
            if lost.gap.dropped > 0 {
                log::warn!(
                    "policy_gateway: VM {} ({}) left {} records undelivered to {}: gap record queued",
                    entry.vm,
                    cause.name(),
                    lost.gap.dropped,
                    lost.sink
                );
                for (i, s) in sinks.iter_mut().enumerate() {
                    if named.is_none_or(|n| n == i) {
                        s.shipper
                            .announce(lost.gap, cause, Some(entry.vm), &entry.gateway, now_ms);
                    }
                }
            }
            let dropped = lost.newly_dropped as i64;
            metrics::add(self.metrics.records_dropped_id(), dropped);
            // A sink this configuration lacks has no metrics here: only the global count.
            if let Some(s) = named.and_then(|n| sinks.get(n)) {
                metrics::add(s.metrics.dropped, dropped);
                metrics::add(s.metrics.buffered_bytes, -(lost.gauge_bytes as i64));
            }
        }
    }

    /// At `on_done`: sends what it can, and leaves in the ledger what is still undelivered.
    fn stop_ledger(&self, now_ms: u64) {
        self.ledger.borrow_mut().stopped = true;
        self.write_ledger(now_ms);
    }
}

/// Writes the `policy_change` record when this configuration changes what the gateway
/// enforces; of all the VMs of the configuration, only the one whose compare-and-swap of the
/// shared "announced" value succeeds writes it.
fn announce_policy(shared: &Shared) {
    use crate::audit::policy_change::{self, Announced};
    let config = &shared.config;
    let key = Announced::key(&config.instance_id);
    let (value, cas) = host::shared_data(&key);
    let previous: Option<Announced> = value.and_then(|v| serde_json::from_slice(&v).ok());
    let now = host::now_ms();
    let record_id = shared.ids.borrow_mut().next(now);
    let Some(record) = policy_change::record(config, previous.as_ref(), &record_id, now) else {
        return;
    };
    let current = serde_json::to_vec(&Announced::of(config)).unwrap_or_default();
    // on_configure created the value, so there is a token; without one, do not risk a
    // second record.
    let Some(cas) = cas else {
        return;
    };
    if host::set_shared_data(&key, &current, Some(cas)) {
        log::info!(
            "policy_gateway: policy change {} -> {}",
            record.previous_policy_id.as_deref().unwrap_or("(none)"),
            record.policy_id
        );
        shared.emit_json(record.to_json(), now);
    }
}

pub struct Root {
    shared: Option<Rc<Shared>>,
    /// Whether this VM has tried to announce its configuration's policy.
    announced: bool,
}

impl Root {
    pub fn new() -> Root {
        Root {
            shared: None,
            announced: false,
        }
    }

    /// Sends every due batch (all of them when `force`).
    fn flush(&mut self, force: bool) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let now = host::now_ms();
        let timeout = Duration::from_millis(shared.config.audit.timeout_ms);
        let mut sinks = shared.sinks.borrow_mut();
        for sink in sinks.iter_mut() {
            dispatch_next(sink, now, force, timeout);
            report_stats(&shared.metrics, sink);
        }
    }
}

/// Dispatches the sink's next call, if one is due.
fn dispatch_next(sink: &mut SinkState, now: u64, force: bool, timeout: Duration) {
    if sink.in_flight.is_some() {
        return;
    }
    let Some(call) = sink.shipper.poll(now, force) else {
        return;
    };
    let req = &call.request;
    let mut headers: Vec<(&str, &str)> = vec![
        (":method", req.method),
        (":path", &req.path),
        (":authority", &req.authority),
    ];
    headers.extend(req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    match host::dispatch_http_call(&call.cluster, headers, &req.body, timeout) {
        Ok(token) => sink.in_flight = Some(token),
        Err(status) => {
            let reason = format!(
                "dispatch to cluster \"{}\" failed: {status:?}",
                call.cluster
            );
            report_error(sink, &reason);
            sink.shipper.on_dispatch_failed(now);
        }
    }
}

impl Default for Root {
    fn default() -> Self {
        Root::new()
    }
}

/// Logs a sink error once per distinct reason (never the token or the body sent).
fn report_error(sink: &mut SinkState, reason: &str) {
    if sink.last_error.as_deref() != Some(reason) {
        log::warn!("policy_gateway: sink {}: {reason}", sink.shipper.name());
        sink.last_error = Some(reason.to_string());
    }
}

/// Reports a sink's counters since the last report. Drops come from one counter
/// (`Stats::dropped`, whatever the cause), added to both the sink's and the global metric.
fn report_stats(m: &Metrics, sink: &mut SinkState) {
    let d = &sink.shipper.delivery;
    let (s, r) = (d.stats, sink.reported);
    let sm = &sink.metrics;
    metrics::add(sm.delivered, s.delivered.saturating_sub(r.delivered) as i64);
    metrics::add(sm.retried, s.retried.saturating_sub(r.retried) as i64);
    let dropped = s.dropped().saturating_sub(r.dropped()) as i64;
    metrics::add(sm.dropped, dropped);
    metrics::add(m.records_dropped_id(), dropped);
    sink.reported = s;
    let bytes = d.buffered_bytes() as i64;
    metrics::add(sm.buffered_bytes, bytes - sink.reported_bytes);
    sink.reported_bytes = bytes;
}

impl Context for Root {
    /// At VM shutdown, send what is buffered; the ledger keeps what is still undelivered.
    fn on_done(&mut self) -> bool {
        self.flush(true);
        if let Some(shared) = &self.shared {
            shared.stop_ledger(host::now_ms());
        }
        true
    }

    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let now = host::now_ms();
        // Raw bytes: a sink's answer headers are as untrusted as a client's.
        let answer_headers = host::call_response_headers();
        let status = answer_headers
            .get(":status")
            .text()
            .and_then(|s| s.parse::<u16>().ok());
        let headers = answer_headers.lossy_pairs();
        let body = host::buffer(BufferType::HttpCallResponseBody, body_size).unwrap_or_default();
        let timeout = Duration::from_millis(shared.config.audit.timeout_ms);
        let mut sinks = shared.sinks.borrow_mut();
        for sink in sinks.iter_mut().filter(|s| s.in_flight == Some(token_id)) {
            sink.in_flight = None;
            let answer = status.map(|st| (st, headers.as_slice(), body.as_slice()));
            match sink.shipper.on_answer(answer, now) {
                Outcome::Delivered => sink.last_error = None,
                Outcome::Retry { reason, .. } | Outcome::Drop { reason } => {
                    report_error(sink, &reason)
                }
            }
            // Multi-step sinks (presign → upload, token → ingest) continue at once.
            dispatch_next(sink, now, false, timeout);
            report_stats(&shared.metrics, sink);
        }
        drop(sinks);
        shared.write_ledger(now);
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = match host::plugin_configuration() {
            Some(b) => b,
            None => {
                log::error!("policy_gateway: invalid configuration: no plugin configuration given");
                return false;
            }
        };
        let config = match PluginConfig::from_json(&bytes) {
            Ok(c) => c,
            Err(e) => {
                log::error!("policy_gateway: invalid configuration: {e}");
                return false;
            }
        };
        // A reconfigured root context: what the old configuration's sinks still hold is left
        // in the ledger, reported by whichever VM claims it.
        if let Some(old) = self.shared.take() {
            old.stop_ledger(host::now_ms());
        }
        // The VM's number in the ledger is unique in the process: mixed into the seed, it
        // keeps two VMs' ids and S3 keys apart even if their clocks read the same.
        ledger::ensure_index(&HostStore);
        let vm = ledger::register(&HostStore, &config.instance_id, host::now_ms());
        let seed = crate::audit::id::splitmix64(
            host::now_nanos() ^ (bytes.len() as u64) << 17 ^ vm.unwrap_or(0).rotate_left(40),
        );
        let a = &config.audit;
        let limits = Limits {
            batch_max_records: a.batch_max_records,
            batch_max_bytes: a.batch_max_bytes,
            buffer_max_bytes: a.buffer_max_bytes,
            flush_interval_ms: a.flush_interval_ms,
        };
        let mut specs = Vec::new();
        if let Some(hec) = &a.splunk_hec {
            specs.push(SinkSpec::SplunkHec(hec.clone()));
        }
        if let Some(dd) = &a.datadog {
            specs.push(SinkSpec::Datadog(dd.clone()));
        }
        if let Some(es) = &a.elasticsearch {
            specs.push(SinkSpec::Elasticsearch(es.clone()));
        }
        if let Some(s3) = &a.s3 {
            specs.push(SinkSpec::S3(s3.clone()));
        }
        if let Some(az) = &a.azure_monitor {
            specs.push(SinkSpec::AzureMonitor(az.clone()));
        }
        let names: Vec<&str> = specs.iter().map(SinkSpec::name).collect();
        let metrics = Metrics::define();
        let sinks: Vec<SinkState> = specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| SinkState {
                metrics: SinkMetrics::define(spec.name()),
                shipper: Shipper::new(spec, limits, &config.instance_id, seed ^ (i as u64) << 40),
                in_flight: None,
                reported_bytes: 0,
                reported: Default::default(),
                last_error: None,
            })
            .collect();
        #[cfg(feature = "fault-injection")]
        log::warn!(
            "policy_gateway: TEST-ONLY fault-injection build ({} traps the VM): not for production",
            super::fault::HEADER
        );
        log::info!(
            "policy_gateway: configured policy {} ({} rules, rollout {}), sinks: {}",
            config.policy.policy_id,
            config.policy.rules.len(),
            config.policy.rollout.mode.name(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
        // Tick often enough to send full batches promptly; age-based flushes wait for it.
        host::set_tick_period(a.flush_interval_ms.clamp(10, 200));
        let shared = Rc::new(Shared {
            config: Rc::new(config),
            ids: RefCell::new(IdGenerator::new(seed)),
            metrics,
            sinks: RefCell::new(sinks),
            ledger: RefCell::new(VmLedger {
                vm,
                ..VmLedger::default()
            }),
        });
        // Make sure the shared "announced" value exists before any VM ticks, so the
        // compare-and-swap at the first tick is atomic (the host has no create-if-absent).
        let key = crate::audit::policy_change::Announced::key(&shared.config.instance_id);
        if host::shared_data(&key).0.is_none() {
            host::set_shared_data(&key, b"{}", None);
        }
        self.shared = Some(shared);
        self.announced = false;
        true
    }

    fn on_tick(&mut self) {
        if !self.announced {
            // On the first tick, not in on_configure: Envoy also configures VMs that never
            // tick (configuration checks on the main thread), whose records would never ship.
            self.announced = true;
            if let Some(shared) = &self.shared {
                announce_policy(shared);
            }
        }
        self.flush(false);
        if let Some(shared) = &self.shared {
            shared.tend_ledger(host::now_ms());
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        #[cfg(feature = "fault-injection")]
        return Some(Box::new(super::fault::Trap(Http::new(self.shared.clone()))));
        #[cfg(not(feature = "fault-injection"))]
        Some(Box::new(Http::new(self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
