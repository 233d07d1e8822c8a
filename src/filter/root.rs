//! The root context of a VM: configuration, and the host side of audit delivery: it runs
//! the outbox (`sinks::outbox`) on records, ticks, answers and stops, dispatches the calls it
//! asks for and applies what it reports (metrics, warnings).
//!
//! The same root runs in two places (`sinks::relay`): in each worker VM (the filter's root id),
//! where it hands every chained record to the shipper's queue when one resolves, or ships its
//! own records when none does; and as the singleton shipper on the main thread (root id
//! `policy_gateway_shipper`, Envoy's `envoy.bootstrap.wasm`), which registers the queue and
//! delivers what every worker hands it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use super::abi::BufferType;
use super::host;
use super::metrics::{self, Metrics, SinkMetrics};
use super::timing::{self, Callback};
use crate::audit::{AuditRecord, IdGenerator};
use crate::config::PluginConfig;
use crate::engine::text_cache::TextCache;
use crate::engine::CacheKey;
use crate::sinks::ledger::{self, Store};
use crate::sinks::outbox::Handed;
use crate::sinks::outbox::{self, Outbox, Report};
use crate::sinks::relay::{self, Mode};
use crate::sinks::shipper::GapCause;
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
        host::dispatch_http_call(&call.cluster, &headers, &req.body, self.timeout)
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
    /// The shipper's queue: the one this VM registered (shipper) or hands records to.
    queue: Cell<Option<u32>>,
    /// A worker that took over from a dead shipper: its queue, which this VM drains on each
    /// tick (records handed over before every worker noticed).
    orphaned: Cell<Option<u32>>,
    mode: Cell<Mode>,
    /// A forwarding worker: the records chained and not yet handed over, as their message
    /// and as records (shipped here if the shipper cannot take them).
    pending: RefCell<(relay::Pending, Vec<Handed>)>,
    /// The shipper: its wake-ups since the last drain (`relay::WakePacer`).
    wakes: RefCell<relay::WakePacer>,
    /// This VM's chain, named in each record it hands over.
    chain_id: String,
    /// This configuration's per-text result cache (none when off or without a random key).
    pub text_cache: Option<Rc<RefCell<TextCache>>>,
    /// `relay::audit_digest` of this VM's configuration: the shipper publishes it, a worker
    /// forwards only to a shipper that published the same.
    audit_digest: Option<String>,
    /// The ledger number and its `relay::pending_keys` (none yet: number 0, never given).
    pending_keys: RefCell<(u64, Vec<String>)>,
}

/// What a worker found when it looked for the shipper.
enum Seek {
    /// The queue, and the shipper delivers with this worker's audit configuration.
    Forwarding,
    /// No queue (yet).
    NotFound,
    /// A shipper with another audit configuration: this worker ships its own.
    Mismatch,
}

impl Shared {
    /// Adds the VM's counts (decisions, records, the text cache's) to Envoy's counters.
    fn flush_metrics(&self) {
        if let Some(cache) = self.text_cache.as_ref().and_then(|c| c.try_borrow().ok()) {
            self.metrics.text_cache(cache.stats());
        }
        self.metrics.flush();
    }

    /// Whether a record has anywhere to go: a sink of this VM's or the shipper's queue.
    pub fn keeps_records(&self) -> bool {
        !self.sink_metrics.is_empty() || self.mode.get() == Mode::Forwarding
    }

    /// Queues a finished record for every sink. Never blocks, never fails: a full buffer
    /// drops its oldest records and counts them.
    pub fn emit(&self, record: &AuditRecord, epoch_ms: u64) {
        self.metrics.record_emitted();
        self.outbox
            .borrow_mut()
            .push_record(&self.host(), record, epoch_ms);
        self.forward();
    }

    /// Queues any record, already serialized, for every sink.
    pub fn emit_json(&self, json: String, epoch_ms: u64) {
        self.metrics.record_emitted();
        self.outbox.borrow_mut().push(&self.host(), json, epoch_ms);
        self.forward();
    }

    /// Adds what the outbox chained to the records pending for the shipper (a forwarding
    /// worker), and copies them to shared data in the same callback (`relay::pending_key`:
    /// a VM that dies loses none); hands them over once there are
    /// `relay::RECORDS_PER_MESSAGE` (one wake-up of the shipper for so many), or at once
    /// when there is nowhere to copy them.
    fn forward(&self) {
        let (Mode::Forwarding, Some(queue)) = (self.mode.get(), self.queue.get()) else {
            return;
        };
        let records = self.outbox.borrow_mut().take_forwarded();
        if records.is_empty() {
            return;
        }
        let vm = self.outbox.borrow().vm();
        let copied = {
            let (pending, held) = &mut *self.pending.borrow_mut();
            let mut copied = true;
            for h in records {
                let r = &h.record;
                let announces = r.gap.map(|gap| (h.sink, gap));
                pending.push(r.epoch_ms, &self.chain_id, r.seq, &r.json, announces);
                held.push(h);
                // Only this record's slot: the others hold theirs already.
                copied = copied
                    && pending.len() < relay::RECORDS_PER_MESSAGE
                    && vm.is_some_and(|vm| {
                        let copy = relay::encode_copy(self.audit_digest.as_deref(), pending.last());
                        let keys = self.pending_keys(vm);
                        keys.get(pending.len() - 1)
                            .is_some_and(|key| host::set_shared_data(key, &copy, None))
                    });
            }
            copied
        };
        if !copied {
            self.hand_over(queue);
        }
    }

    /// Hands the pending records to the shipper's queue in one message, then empties their
    /// copy in shared data (in this order: a VM that dies between the two hands them over
    /// twice, never none). If the host refuses the message, this VM ships them and
    /// everything after them itself, from now on.
    fn hand_over(&self, queue: u32) {
        let (message, held) = {
            let (pending, held) = &mut *self.pending.borrow_mut();
            if pending.is_empty() {
                return;
            }
            (pending.take(), std::mem::take(held))
        };
        if host::enqueue(queue, &message) {
            self.metrics.records_forwarded(held.len());
            self.clear_pending_copy(held.len());
            return;
        }
        log::warn!(
            "policy_gateway: the audit shipper's queue refused a message: this worker ships \
             its own records from now on"
        );
        self.mode.set(Mode::PerWorker);
        self.outbox
            .borrow_mut()
            .ship_here(&self.host(), held, host::now_ms());
        self.clear_pending_copy(relay::RECORDS_PER_MESSAGE);
    }

    /// Empties the copies of the first `records` records of the batch (slots past
    /// `relay::RECORDS_PER_MESSAGE` were never written).
    fn clear_pending_copy(&self, records: usize) {
        if let Some(vm) = self.outbox.borrow().vm() {
            for key in self.pending_keys(vm).iter().take(records) {
                host::set_shared_data(key, b"", None);
            }
        }
    }

    /// `relay::pending_keys` of ledger number `vm`, formatted once, not per record (the number
    /// changes only when this VM registers again).
    fn pending_keys(&self, vm: u64) -> std::cell::Ref<'_, Vec<String>> {
        if self.pending_keys.borrow().0 != vm {
            *self.pending_keys.borrow_mut() = (vm, relay::pending_keys(vm));
        }
        std::cell::Ref::map(self.pending_keys.borrow(), |(_, keys)| keys)
    }

    /// A forwarding worker: hands over what is pending (a tick, a stop).
    fn hand_over_pending(&self) {
        if let (Mode::Forwarding, Some(queue)) = (self.mode.get(), self.queue.get()) {
            self.forward();
            self.hand_over(queue);
        }
    }

    /// Takes over the records that VMs whose ledger entries this VM claimed (dead) had
    /// not handed to the shipper (`relay::pending_key`). Records of this VM's audit
    /// configuration are handed over as they are when this VM forwards, else taken in here as
    /// the shipper takes them off its queue. Records of another configuration (this VM ships
    /// its own, to other sinks) go to the shipper's queue if the shipper delivers with that
    /// configuration and is alive; else nothing reachable from here can deliver them: they are
    /// counted in `records.dropped` and logged as lost, never sent to this VM's sinks.
    ///
    /// A claim is finished (`ledger::finish_claim`) only after this: a VM that dies in between
    /// leaves the claim to the next VM that finds it dead. The records of a VM whose claimers
    /// died at them `ledger::CLAIM_TRIES` times are not taken in again: counted lost, logged,
    /// and noted for a gap record of their configuration (count only).
    fn recover_pending(&self, claimed: &[outbox::Claimed]) {
        for c in claimed {
            let vm = &c.vm;
            let keys = relay::pending_keys(*vm);
            if !c.recover {
                for (digest, records) in relay::discard_left(&self.host(), &keys) {
                    metrics::add(self.metrics.records_dropped_id(), records as i64);
                    let now = host::now_ms();
                    let row = relay::OrphanRow {
                        vm: *vm,
                        chain: String::new(),
                        gap: crate::sinks::Gap {
                            dropped: records as u64,
                            from_ms: now,
                            to_ms: now,
                            from_seq: 0,
                            to_seq: 0,
                        },
                    };
                    relay::note_orphaned(&self.host(), &digest, &[row]);
                    log::error!(
                        "policy_gateway: VM {vm} left {records} records it had not handed to the \
                         audit shipper, and {} VMs that claimed it died before they had taken \
                         them over: not taken in again, lost",
                        c.tries.saturating_sub(1)
                    );
                }
                self.outbox.borrow().finish_claim(&self.host(), *vm);
                continue;
            }
            relay::recover_left(&self.host(), &keys, |left| {
                #[cfg(feature = "fault-injection")]
                if self.mode.get() == Mode::Forwarding {
                    super::fault::trap_forwarder_if_asked(&left.message);
                }
                let shipper = self.live_shipper_digest();
                let route = relay::route_left(
                    self.audit_digest.as_deref(),
                    left.digest,
                    shipper.as_ref().map(|(_, d)| d.as_slice()),
                    shipper.is_some(),
                );
                // What the records were, for their configuration's gap record.
                let rows = if route == relay::Route::Lost {
                    relay::orphan_rows(*vm, &left, host::now_ms())
                } else {
                    Vec::new()
                };
                let sent = match route {
                    relay::Route::Here => {
                        let handed = match (self.mode.get(), self.queue.get()) {
                            (Mode::Forwarding, Some(queue)) => host::enqueue(queue, &left.message),
                            _ => false,
                        };
                        if !handed {
                            let mut drained = relay::Drained::default();
                            drained.take_in(left.message);
                            self.take_in(drained);
                        }
                        true
                    }
                    relay::Route::Shipper => shipper
                        .as_ref()
                        .is_some_and(|(queue, _)| host::enqueue(*queue, &left.message)),
                    relay::Route::Lost => false,
                };
                if sent {
                    self.metrics.records_forwarded(left.records);
                    log::warn!(
                        "policy_gateway: VM {vm} left {} records it had not handed to the audit \
                         shipper: taken over",
                        left.records
                    );
                } else {
                    metrics::add(self.metrics.records_dropped_id(), left.records as i64);
                    // Announced in the right chain by the next VM of that configuration.
                    let noted = relay::note_orphaned(&self.host(), left.digest, &rows);
                    log::error!(
                        "policy_gateway: VM {vm} left {} records it had not handed to the audit \
                         shipper, of another audit configuration than this VM's, and no live \
                         shipper delivers with it: lost ({})",
                        left.records,
                        if noted {
                            "a VM of that configuration will write their gap record"
                        } else {
                            "and no gap record will name them"
                        }
                    );
                }
            });
            self.outbox.borrow().finish_claim(&self.host(), *vm);
        }
    }

    /// Turns what dead VMs of this VM's audit configuration left undelivered elsewhere
    /// (`relay::orphaned_key`) into gap records in this VM's chain, before `tend` writes the
    /// ledger (which then holds them; a forwarding worker's copies in shared data hold them).
    fn adopt_orphaned(&self) {
        let Some(digest) = self.audit_digest.as_deref() else {
            return;
        };
        let orphaned = relay::take_orphaned(&self.host(), digest);
        if orphaned.rows.is_empty() {
            return;
        }
        let report = self
            .outbox
            .borrow_mut()
            .adopt_orphaned(&orphaned, host::now_ms());
        self.apply(report);
        // A forwarding worker: the rows are gone from shared data, so their gap records go
        // there at once (`tend` does not write them to this VM's ledger).
        self.forward();
    }

    /// The live shipper's queue and published audit digest, if a shipper resolves and its
    /// heartbeat is not stale.
    fn live_shipper_digest(&self) -> Option<(u32, Vec<u8>)> {
        let vm_id = host::property_text(&["plugin_vm_id"]).unwrap_or_default();
        let queue = host::resolve_queue(&vm_id, relay::QUEUE)?;
        let beat = host::shared_data(relay::BEAT_KEY).0;
        if relay::shipper_dead(
            beat.as_deref(),
            host::now_ms(),
            self.config.audit.vm_stale_ms,
        ) {
            return None;
        }
        Some((queue, host::shared_data(relay::AUDIT_DIGEST_KEY).0?))
    }

    /// A worker: looks for the shipper's queue (the shipper may start after the workers);
    /// once found, hands every record to it if the shipper delivers with this worker's audit
    /// configuration (else it would send them to sinks, or with credentials, this
    /// configuration does not name).
    fn resolve_shipper(&self, vm_id: &str) -> Seek {
        let Some(queue) = host::resolve_queue(vm_id, relay::QUEUE) else {
            return Seek::NotFound;
        };
        let published = host::shared_data(relay::AUDIT_DIGEST_KEY).0;
        if relay::handover(self.audit_digest.as_deref(), published.as_deref())
            == relay::Handover::ConfigMismatch
        {
            self.metrics.shipper_config_mismatch();
            log::warn!(
                "policy_gateway: the audit shipper (queue {} of vm_id {vm_id}) delivers with \
                 another audit configuration (sinks, credentials or instance_id) than this \
                 filter's, or is another module version that cannot read this one's messages: \
                 this worker ships its own records (audit mode per_worker)",
                relay::QUEUE
            );
            return Seek::Mismatch;
        }
        self.queue.set(Some(queue));
        self.mode.set(Mode::Forwarding);
        self.outbox.borrow_mut().forward_to_shipper();
        log::info!(
            "policy_gateway: audit mode forwarding: this worker hands its records to the \
             shipper (queue {} of vm_id {vm_id})",
            relay::QUEUE
        );
        Seek::Forwarding
    }

    /// A forwarding worker, on tick: if the shipper's heartbeat stood still too long
    /// (`relay::shipper_dead`), ships its own records from now on and drains the shipper's
    /// queue itself (Envoy never restarts a singleton and keeps its queue while any VM of the
    /// `vm_id` lives, so enqueueing still works and would lose every record).
    fn check_shipper(&self) {
        let (Mode::Forwarding, Some(queue)) = (self.mode.get(), self.queue.get()) else {
            return;
        };
        let beat = host::shared_data(relay::BEAT_KEY).0;
        if !relay::shipper_dead(
            beat.as_deref(),
            host::now_ms(),
            self.config.audit.vm_stale_ms,
        ) {
            return;
        }
        log::warn!(
            "policy_gateway: the audit shipper's heartbeat stopped: this worker took over (audit \
             mode per_worker): it ships its own records and those left in the shipper's queue"
        );
        self.mode.set(Mode::PerWorker);
        self.queue.set(None);
        self.orphaned.set(Some(queue));
        let (_, mut unsent) = std::mem::take(&mut *self.pending.borrow_mut());
        unsent.extend(self.outbox.borrow_mut().take_forwarded());
        self.outbox
            .borrow_mut()
            .ship_here(&self.host(), unsent, host::now_ms());
        self.clear_pending_copy(relay::RECORDS_PER_MESSAGE);
    }

    /// The shipper (or a worker that took over): takes up to `relay::DRAIN_CHUNK` records
    /// off the queue (the rest on the next wake-up or tick; the sinks' buffers are bounded and
    /// shed their oldest records into gap records when full) and sends the batches that are
    /// full.
    fn drain(&self, queue: u32) {
        self.wakes.borrow_mut().drained();
        let drained = relay::drain(|| host::dequeue(queue), relay::DRAIN_CHUNK);
        if drained.capped {
            self.metrics.drain_capped();
        }
        self.take_in(drained);
    }

    /// The shipper (or a worker that took over from a dead one), stopping: takes in what
    /// the queue still holds before the last flush, so it is sent now (or left in the ledger,
    /// reported by its claimer) instead of waiting in a queue nobody may drain again. Chunk by
    /// chunk, at most `relay::DRAIN_CHUNK` × 16 records.
    fn drain_at_stop(&self) {
        let queue = match self.mode.get() {
            Mode::Shipper => self.queue.get(),
            _ => self.orphaned.get(),
        };
        let Some(queue) = queue else {
            return;
        };
        for _ in 0..16 {
            let drained = relay::drain(|| host::dequeue(queue), relay::DRAIN_CHUNK);
            let capped = drained.capped;
            self.take_in(drained);
            if !capped {
                return;
            }
        }
    }

    /// Queues records taken off the queue (or left by a dead worker) for this VM's sinks,
    /// counts and reports those it cannot read, and sends the batches that are full.
    fn take_in(&self, drained: relay::Drained) {
        let relay::Drained {
            records,
            undecodable: foreign,
            ..
        } = drained;
        if records.is_empty() && foreign == 0 {
            return;
        }
        let refused = self.outbox.borrow_mut().refuse_relayed(
            GapCause::Undecodable,
            foreign as u64,
            host::now_ms(),
        );
        self.apply(refused);
        self.metrics.records_relayed(records.len());
        #[cfg(feature = "fault-injection")]
        let trap = records.clone();
        let report = self
            .outbox
            .borrow_mut()
            .relay(&self.host(), records, host::now_ms());
        self.apply(report);
        // After the intake, so the ledger holds the records the dead shipper leaves.
        #[cfg(feature = "fault-injection")]
        super::fault::trap_shipper_if_asked(&trap);
        self.flush(false);
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
        // Interval checkpoints are chained on a tick.
        self.forward();
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
    /// A worker's `vm_id`, under which it looks for the shipper's queue until it finds it;
    /// `None` once found, given up, or for the shipper itself.
    seek_shipper: Option<String>,
    /// Whether the first tick said which mode this worker is in.
    mode_logged: bool,
    /// Stopping (`on_done` said not yet): when to stop waiting for the sinks' answers (Unix
    /// ms), and whether `proxy_done` has been called.
    stopping: Option<(u64, bool)>,
    /// The VM's secret text cache key, asked of the host once (`None` inside: it gave none).
    cache_key: Option<Option<CacheKey>>,
}

/// How long a stopping root waits for the answers to its last calls: two sink timeouts (a
/// batch's call and its follow-up, as S3's presign then upload). Envoy keeps a root context
/// that answered `proxy_on_done` false, its VM and its calls until `proxy_done`; one that
/// answered true is deleted at once and its calls cancelled.
fn stop_wait_ms(timeout_ms: u64) -> u64 {
    timeout_ms.saturating_mul(2)
}

impl Root {
    pub fn new() -> Root {
        Root {
            shared: None,
            announced: false,
            seek_shipper: None,
            mode_logged: false,
            stopping: None,
            cache_key: None,
        }
    }
}

impl Default for Root {
    fn default() -> Self {
        Root::new()
    }
}

impl Root {
    /// At VM shutdown (or the configuration's removal), close the chain (a signed
    /// checkpoint), send what is buffered, and say not done yet while calls are out: their
    /// answers come in (`on_http_call_response`) until none is out or `stop_wait_ms` has
    /// passed, then `proxy_done`. The ledger keeps what is still undelivered.
    pub fn on_done(&mut self) -> bool {
        let Some(shared) = &self.shared else {
            return true;
        };
        if self.stopping.is_some() {
            return false;
        }
        shared.flush_metrics();
        shared
            .outbox
            .borrow_mut()
            .close(&shared.host(), host::now_ms());
        shared.hand_over_pending();
        shared.drain_at_stop();
        shared.flush(true);
        shared
            .outbox
            .borrow_mut()
            .stop(&shared.host(), host::now_ms());
        let out = shared.outbox.borrow().calls_out();
        if out == 0 {
            return true;
        }
        let wait = stop_wait_ms(shared.config.audit.timeout_ms);
        log::info!(
            "policy_gateway: stopping: waiting for {out} sink calls to be answered (at most \
             {wait} ms)"
        );
        self.stopping = Some((host::now_ms().saturating_add(wait), false));
        false
    }

    /// A stopping root: once no call is out or the wait is over, the ledger keeps what is
    /// left (reported `vm_stopped` by whichever VM claims it) and the host is told it is done.
    fn finish_stop(&mut self) {
        let (Some(shared), Some((deadline, false))) = (&self.shared, self.stopping) else {
            return;
        };
        let now = host::now_ms();
        let out = shared.outbox.borrow().calls_out();
        if out > 0 && now < deadline {
            return;
        }
        shared.outbox.borrow_mut().stop(&shared.host(), now);
        shared.flush_metrics();
        if out > 0 {
            log::warn!(
                "policy_gateway: stopped with {out} sink calls unanswered: their records stay \
                 in the ledger, reported by whichever VM claims it"
            );
        }
        self.stopping = Some((deadline, true));
        if !host::done() {
            log::warn!("policy_gateway: the host refused proxy_done for this root context");
        }
    }

    pub fn on_http_call_response(&mut self, token_id: u32, body_size: usize) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let _t = timing::span(match shared.mode.get() {
            Mode::Shipper => Callback::ShipperTick,
            _ => Callback::CallResponse,
        });
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
        // Gap records and checkpoints the answer chained (a worker that forwards still
        // drains what it had queued before it found the shipper).
        shared.forward();
        self.finish_stop();
    }

    pub fn on_configure(&mut self) -> bool {
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
        let shipper =
            host::property_text(&["plugin_root_id"]).as_deref() == Some(relay::SHIPPER_ROOT_ID);
        // A reconfigured root context: what the old configuration's sinks still hold is left
        // in the ledger, reported by whichever VM claims it.
        if let Some(old) = self.shared.take() {
            old.flush_metrics();
            old.hand_over_pending();
            old.outbox.borrow_mut().stop(&old.host(), host::now_ms());
        }
        if shipper && config.audit.sinks().is_empty() {
            // Workers would hand it records it cannot deliver anywhere. It stays idle: no
            // ledger entry, no ticks' work, no policy_change record (a worker writes it).
            log::error!(
                "policy_gateway: audit shipper: no sinks configured, so it does not register \
                 the queue {}; each worker ships its own records",
                relay::QUEUE
            );
            return true;
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
        let chain_id = outbox.chain_id().to_string();
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
        // A new configuration gets a new cache: no entry is consulted under another policy.
        let text_cache = if config.text_cache.max_entries > 0 {
            let key = *self.cache_key.get_or_insert_with(host::random_cache_key);
            key.and_then(|k| TextCache::new(k, config.text_cache))
                .map(|c| Rc::new(RefCell::new(c)))
        } else {
            None
        };
        let shared = Rc::new(Shared {
            text_cache,
            config: Rc::new(config),
            ids: RefCell::new(IdGenerator::new(seed)),
            metrics,
            sink_metrics,
            outbox: RefCell::new(outbox),
            queue: Cell::new(None),
            orphaned: Cell::new(None),
            mode: Cell::new(Mode::PerWorker),
            pending: RefCell::new(Default::default()),
            wakes: RefCell::new(relay::WakePacer::default()),
            chain_id,
            audit_digest: relay::audit_digest(&bytes),
            pending_keys: RefCell::new((0, Vec::new())),
        });
        self.seek_shipper = None;
        self.mode_logged = false;
        if shipper {
            // Published before the queue exists, so a worker that finds the queue finds them.
            let digest = shared.audit_digest.clone().unwrap_or_default();
            host::set_shared_data(relay::AUDIT_DIGEST_KEY, digest.as_bytes(), None);
            let beat = relay::encode_beat(host::now_ms(), shared.outbox.borrow().vm());
            host::set_shared_data(relay::BEAT_KEY, &beat, None);
            let Some(queue) = host::register_queue(relay::QUEUE) else {
                log::error!(
                    "policy_gateway: audit shipper: the host has no shared queues, so no worker \
                     could reach this shipper; configure the filter without it"
                );
                return false;
            };
            shared.queue.set(Some(queue));
            shared.mode.set(Mode::Shipper);
            log::info!(
                "policy_gateway: audit mode shipper: this VM delivers every worker's records \
                 (queue {})",
                relay::QUEUE
            );
        } else {
            let vm_id = host::property_text(&["plugin_vm_id"]).unwrap_or_default();
            match shared.resolve_shipper(&vm_id) {
                Seek::NotFound => self.seek_shipper = Some(vm_id),
                Seek::Forwarding => {}
                Seek::Mismatch => self.mode_logged = true,
            }
        }
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

    pub fn on_tick(&mut self) {
        if self.stopping.is_some() {
            // Stopping: no new work, only the bound on the wait.
            return self.finish_stop();
        }
        let Some(shared) = &self.shared else {
            return;
        };
        timing::flush();
        shared.flush_metrics();
        if shared.mode.get() == Mode::Shipper {
            let _t = timing::span(Callback::ShipperTick);
            // What the last wake-up left on the queue.
            if let Some(queue) = shared.queue.get() {
                shared.drain(queue);
            }
            shared.flush(false);
            shared.adopt_orphaned();
            let now = host::now_ms();
            let report = shared.outbox.borrow_mut().tend(&shared.host(), now);
            let claimed = report.claimed.clone();
            shared.apply(report);
            shared.recover_pending(&claimed);
            let beat = relay::encode_beat(now, shared.outbox.borrow().vm());
            host::set_shared_data(relay::BEAT_KEY, &beat, None);
            return;
        }
        let _t = timing::span(Callback::Tick);
        if let Some(vm_id) = &self.seek_shipper {
            match shared.resolve_shipper(vm_id) {
                Seek::Forwarding => self.seek_shipper = None,
                Seek::Mismatch => {
                    self.seek_shipper = None;
                    self.mode_logged = true;
                }
                Seek::NotFound if !self.mode_logged => {
                    // Envoy starts the bootstrap extension's VM before the workers', so by the
                    // first tick a shipper that exists has its queue; keep looking all the same.
                    log::info!(
                        "policy_gateway: audit mode per_worker: no shipper's queue ({} of vm_id \
                         {vm_id}): this worker ships its own records",
                        relay::QUEUE
                    );
                }
                Seek::NotFound => {}
            }
            self.mode_logged = true;
        }
        // Before `tend`, which may claim a dead shipper's ledger entry: its gap record is then
        // shipped here, not handed to the dead shipper.
        shared.check_shipper();
        if let Some(queue) = shared.orphaned.get() {
            shared.drain(queue);
        }
        if !self.announced {
            // On the first tick, not in on_configure: Envoy also configures VMs that never
            // tick (configuration checks on the main thread), whose records would never ship.
            self.announced = true;
            announce_policy(shared);
        }
        shared.flush(false);
        shared.adopt_orphaned();
        let report = shared
            .outbox
            .borrow_mut()
            .tend(&shared.host(), host::now_ms());
        let claimed = report.claimed.clone();
        shared.apply(report);
        // The gap records `tend` wrote for the VMs it claimed, whose claims say adopted now (no
        // later claimer writes them again): copied to shared data before `recover_pending`,
        // which walks other VMs' records and may fail.
        shared.forward();
        shared.recover_pending(&claimed);
        // What waited for a full message.
        shared.hand_over_pending();
    }

    pub fn on_queue_ready(&mut self, queue_id: u32) {
        let Some(shared) = &self.shared else {
            return;
        };
        if shared.mode.get() == Mode::Shipper && shared.queue.get() == Some(queue_id) {
            let _t = timing::span(Callback::ShipperQueue);
            // Most wake-ups only count: the tick drains what they let pass.
            if shared.wakes.borrow_mut().wake() {
                shared.drain(queue_id);
            }
        }
    }

    /// What a new HTTP context of this root shares with it.
    pub fn shared(&self) -> Option<Rc<Shared>> {
        self.shared.clone()
    }
}
