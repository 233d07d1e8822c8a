//! The root context of a VM: configuration, and the host side of audit delivery: it runs
//! the outbox (`sinks::outbox`) on records, ticks, answers and stops, dispatches the calls it
//! asks for and applies what it reports (metrics, warnings).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::host;
use super::http::Http;
use super::metrics::{self, Metrics, SinkMetrics};
use super::timing::{self, Callback};
use crate::audit::{AuditRecord, IdGenerator};
use crate::config::PluginConfig;
use crate::sinks::ledger::{self, Store};
use crate::sinks::outbox::{self, Outbox, Report};
use crate::sinks::Call;

/// The host as delivery uses it: shared data (the ledger) and calls to sinks.
struct DeliveryHost {
    timeout: Duration,
}

impl Store for DeliveryHost {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        host::shared_data(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        host::set_shared_data(key, value, cas)
    }
}

impl outbox::Host for DeliveryHost {
    fn dispatch(&self, call: &Call) -> Result<u32, String> {
        let req = &call.request;
        let mut headers: Vec<(&str, &str)> = vec![
            (":method", req.method),
            (":path", &req.path),
            (":authority", &req.authority),
        ];
        headers.extend(req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        host::dispatch_http_call(&call.cluster, headers, &req.body, self.timeout)
            .map_err(|status| format!("{status:?}"))
    }
}

/// State shared by the root context and the HTTP contexts of one VM.
pub struct Shared {
    pub config: Rc<PluginConfig>,
    pub ids: RefCell<IdGenerator>,
    pub metrics: Metrics,
    /// Per sink, in the order of `Outbox::names`.
    sink_metrics: Vec<SinkMetrics>,
    outbox: RefCell<Outbox>,
}

impl Shared {
    /// Queues a finished record for every sink. Never blocks, never fails: a full buffer
    /// drops its oldest records and counts them.
    pub fn emit(&self, record: &AuditRecord, epoch_ms: u64) {
        self.metrics.record_emitted();
        self.outbox
            .borrow_mut()
            .push_members(&self.host(), record.to_members(), epoch_ms);
    }

    /// Queues any record, already serialized, for every sink.
    pub fn emit_json(&self, json: String, epoch_ms: u64) {
        self.metrics.record_emitted();
        self.outbox.borrow_mut().push(&self.host(), json, epoch_ms);
    }

    fn host(&self) -> DeliveryHost {
        DeliveryHost {
            timeout: Duration::from_millis(self.config.audit.timeout_ms),
        }
    }

    /// Applies what delivery reports: metric moves, warnings.
    fn apply(&self, report: Report) {
        for warning in &report.warnings {
            log::warn!("policy_gateway: {warning}");
        }
        metrics::add(self.metrics.records_dropped_id(), report.dropped);
        for (m, c) in self.sink_metrics.iter().zip(&report.sinks) {
            metrics::add(m.delivered, c.delivered);
            metrics::add(m.retried, c.retried);
            metrics::add(m.dropped, c.dropped);
            metrics::add(m.buffered_bytes, c.buffered_bytes);
        }
    }

    /// Sends every due batch (all of them when `force`).
    fn flush(&self, force: bool) {
        let report = self
            .outbox
            .borrow_mut()
            .flush(&self.host(), host::now_ms(), force);
        self.apply(report);
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
}

impl Default for Root {
    fn default() -> Self {
        Root::new()
    }
}

impl Context for Root {
    /// At VM shutdown, close the chain (a signed checkpoint), send what is buffered; the
    /// ledger keeps what is still undelivered.
    fn on_done(&mut self) -> bool {
        if let Some(shared) = &self.shared {
            shared
                .outbox
                .borrow_mut()
                .close(&shared.host(), host::now_ms());
            shared.flush(true);
            shared
                .outbox
                .borrow_mut()
                .stop(&shared.host(), host::now_ms());
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
        let _t = timing::span(Callback::CallResponse);
        let now = host::now_ms();
        // Raw bytes: a sink's answer headers are as untrusted as a client's.
        let answer_headers = host::call_response_headers();
        let status = answer_headers
            .get(":status")
            .text()
            .and_then(|s| s.parse::<u16>().ok());
        let headers = answer_headers.lossy_pairs();
        let body = host::buffer(BufferType::HttpCallResponseBody, body_size).unwrap_or_default();
        let answer = status.map(|st| (st, headers.as_slice(), body.as_slice()));
        let report = shared
            .outbox
            .borrow_mut()
            .on_answer(&shared.host(), token_id, answer, now);
        shared.apply(report);
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
            old.outbox.borrow_mut().stop(&old.host(), host::now_ms());
        }
        // The VM's number in the ledger is unique in the process: mixed into the seed, it
        // keeps two VMs' ids and S3 keys apart even if their clocks read the same.
        let store = DeliveryHost {
            timeout: Duration::from_millis(config.audit.timeout_ms),
        };
        ledger::ensure_index(&store);
        let vm = ledger::register(&store, &config.instance_id, host::now_ms());
        let seed = crate::audit::id::splitmix64(
            host::now_nanos() ^ (bytes.len() as u64) << 17 ^ vm.unwrap_or(0).rotate_left(40),
        );
        let outbox = Outbox::new(&config.audit, &config.instance_id, seed, vm, host::now_ms());
        let names = outbox.names();
        let metrics = Metrics::define();
        let sink_metrics = names.iter().map(|name| SinkMetrics::define(name)).collect();
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
        host::set_tick_period(config.audit.flush_interval_ms.clamp(10, 200));
        let shared = Rc::new(Shared {
            config: Rc::new(config),
            ids: RefCell::new(IdGenerator::new(seed)),
            metrics,
            sink_metrics,
            outbox: RefCell::new(outbox),
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
        let Some(shared) = &self.shared else {
            return;
        };
        timing::flush();
        let _t = timing::span(Callback::Tick);
        if !self.announced {
            // On the first tick, not in on_configure: Envoy also configures VMs that never
            // tick (configuration checks on the main thread), whose records would never ship.
            self.announced = true;
            announce_policy(shared);
        }
        shared.flush(false);
        let report = shared
            .outbox
            .borrow_mut()
            .tend(&shared.host(), host::now_ms());
        shared.apply(report);
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
