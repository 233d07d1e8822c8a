//! One sink on one worker: its delivery queue and the HTTP calls that deliver a batch. The
//! filter's root context only dispatches the [`Call`]s this returns and hands back answers.

use std::ops::Range;

use super::azure_monitor::{self, AzureConfig, TokenCache};
use super::datadog_logs::{self, DatadogConfig};
use super::delivery::{Delivery, ItemResult, Limits};
use super::elasticsearch::{self, ElasticsearchConfig};
use super::s3::{self, PutOutcome, S3Config};
use super::splunk_hec::SplunkHecConfig;
use super::{
    compress, no_answer, retry_after_ms, splunk_hec, Gap, HttpRequest, Outcome, QueuedRecord,
};
use crate::audit::id::splitmix64;
use crate::audit::time::iso8601_millis;
use crate::audit::{IdGenerator, SCHEMA_VERSION};

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
#[derive(Debug, Clone)]
pub enum SinkSpec {
    SplunkHec(SplunkHecConfig),
    Datadog(DatadogConfig),
    Elasticsearch(ElasticsearchConfig),
    S3(S3Config),
    AzureMonitor(AzureConfig),
}

impl SinkSpec {
    pub fn name(&self) -> &'static str {
        match self {
            SinkSpec::SplunkHec(_) => "splunk_hec",
            SinkSpec::Datadog(_) => "datadog",
            SinkSpec::Elasticsearch(_) => "elasticsearch",
            SinkSpec::S3(_) => "s3",
            SinkSpec::AzureMonitor(_) => "azure_monitor",
        }
    }
}

/// The batch in flight and how far its delivery got.
#[derive(Debug, Default)]
enum Pending {
    #[default]
    Idle,
    /// One call answers for the whole batch.
    Single,
    /// One call answers per record (`_bulk`).
    Bulk { len: usize },
    /// A batch split over several calls (sink size limits); each covers a range of records.
    Parts {
        calls: Vec<(Call, Range<usize>)>,
        next: usize,
        results: Vec<ItemResult>,
        after_ms: Option<u64>,
    },
    /// S3: a presigned URL for `key`, then the upload; `fresh_urls` counts URL refreshes.
    S3 {
        key: String,
        presigned: Option<s3::Presigned>,
        fresh_urls: u32,
    },
    /// Azure: an Entra ID token first, then the ingestion calls.
    AzureToken,
    /// Splunk indexer acknowledgement: the batch is posted; poll until it is indexed.
    HecAck {
        ack_id: u64,
        polls: u32,
        next_ms: u64,
    },
}

/// Ack polling: every second, for at most two minutes, then the batch is sent again (its
/// records carry ids for de-duplication).
const ACK_POLL_MS: u64 = 1_000;
const MAX_ACK_POLLS: u32 = 120;

/// URL refreshes per object before backing off (a presigner handing out bad URLs).
const MAX_FRESH_URLS: u32 = 2;

/// New keys per batch after 412s on first attempts before backing off.
const MAX_NEW_KEYS: u32 = 2;

/// The S3 object of the current batch: its key stays with the batch across retries (so
/// `If-None-Match: *` makes a retry after a lost answer a no-op), and whether an earlier
/// attempt may have stored it (no answer, or a 5xx), which is what makes a 412 "ours".
#[derive(Debug, Clone)]
struct S3Object {
    batch_id: u64,
    key: String,
    maybe_stored: bool,
    new_keys: u32,
}

/// Why records were lost, as a `gap` record's `cause`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapCause {
    /// Shed from a full buffer.
    BufferFull,
    /// Held by a VM that failed (trapped) before delivering them.
    VmFailed,
    /// Held by a VM that was stopped (configuration change, shutdown) before delivering them.
    VmStopped,
}

impl GapCause {
    pub fn name(self) -> &'static str {
        match self {
            GapCause::BufferFull => "buffer_full",
            GapCause::VmFailed => "vm_failed",
            GapCause::VmStopped => "vm_stopped",
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
    pending: Pending,
    token: TokenCache,
    /// Azure: the batch got a 401 and goes again with a token fetched after it; a second 401
    /// drops it.
    fresh_token: bool,
    s3_object: Option<S3Object>,
    /// State of the random part of S3 keys.
    key_rng: u64,
    /// The HEC request channel, when indexer acknowledgement is on.
    channel: Option<String>,
    /// `Retry-After` of the last answer, for retries the classifier left untimed.
    retry_hint: Option<u64>,
}

impl Shipper {
    pub fn new(spec: SinkSpec, limits: Limits, gateway: &str, seed: u64) -> Shipper {
        let mut ids = IdGenerator::new(seed ^ 0x5eed);
        let channel = match &spec {
            SinkSpec::SplunkHec(cfg) if cfg.ack => Some(
                cfg.channel
                    .clone()
                    .unwrap_or_else(|| ids.next(seed & 0xffff_ffff_ffff)),
            ),
            _ => None,
        };
        Shipper {
            spec,
            delivery: Delivery::new(limits, seed),
            gateway: gateway.to_string(),
            ids,
            waiting: false,
            pending: Pending::Idle,
            token: TokenCache::new(),
            fresh_token: false,
            s3_object: None,
            key_rng: splitmix64(seed ^ 0x5353_4b45_5953),
            channel,
            retry_hint: None,
        }
    }

    pub fn name(&self) -> &'static str {
        self.spec.name()
    }

    /// Whether a call is in flight.
    pub fn waiting(&self) -> bool {
        self.waiting
    }

    /// The next call to dispatch: the next part of the batch in flight, or the first call
    /// of a new batch when one is due. None while a call is in flight.
    pub fn poll(&mut self, now_ms: u64, force: bool) -> Option<Call> {
        if self.waiting {
            return None;
        }
        if let Some(call) = self.continue_batch(now_ms) {
            self.waiting = true;
            return Some(call);
        }
        if !matches!(self.pending, Pending::Idle) {
            return None;
        }
        let batch = self.delivery.next_batch(now_ms, force)?;
        let (call, pending) = match &self.spec {
            SinkSpec::SplunkHec(cfg) => (
                Call {
                    cluster: cfg.cluster.clone(),
                    request: compress(splunk_hec::build_request(
                        cfg,
                        &self.gateway,
                        self.channel.as_deref(),
                        batch,
                    )),
                },
                Pending::Single,
            ),
            SinkSpec::Elasticsearch(cfg) => (
                Call {
                    cluster: cfg.cluster.clone(),
                    request: compress(elasticsearch::build_request(cfg, batch)),
                },
                Pending::Bulk { len: batch.len() },
            ),
            SinkSpec::S3(cfg) => {
                let first_ms = batch.first().map_or(now_ms, |r| r.epoch_ms);
                let id = self.delivery.batch_id();
                let key = match &self.s3_object {
                    Some(o) if o.batch_id == id => o.key.clone(),
                    _ => {
                        let instance = cfg.instance.as_deref().unwrap_or(&self.gateway);
                        let unique = next_random(&mut self.key_rng);
                        let key = s3::object_key(&cfg.prefix, instance, first_ms, unique);
                        self.s3_object = Some(S3Object {
                            batch_id: id,
                            key: key.clone(),
                            maybe_stored: false,
                            new_keys: 0,
                        });
                        key
                    }
                };
                let call = Call {
                    cluster: cfg.presigner_cluster.clone(),
                    request: s3::presign_request(cfg, &key),
                };
                (
                    call,
                    Pending::S3 {
                        key,
                        presigned: None,
                        fresh_urls: 0,
                    },
                )
            }
            SinkSpec::AzureMonitor(cfg) => match self.token.valid(now_ms) {
                Some(token) => {
                    let calls = azure_parts(cfg, token, batch);
                    let first = calls.first().map(|(c, _)| c.clone())?;
                    let len = batch.len();
                    (
                        first,
                        Pending::Parts {
                            calls,
                            next: 0,
                            results: vec![ItemResult::Retry; len],
                            after_ms: None,
                        },
                    )
                }
                None => (
                    Call {
                        cluster: cfg.auth.token_cluster().to_string(),
                        request: azure_monitor::token_request(&cfg.auth),
                    },
                    Pending::AzureToken,
                ),
            },
            SinkSpec::Datadog(cfg) => {
                let len = batch.len();
                let calls: Vec<(Call, Range<usize>)> =
                    datadog_logs::build_requests(cfg, &self.gateway, batch)
                        .into_iter()
                        .map(|(request, range)| {
                            (
                                Call {
                                    cluster: cfg.cluster.clone(),
                                    request: compress(request),
                                },
                                range,
                            )
                        })
                        .collect();
                let first = calls.first().map(|(c, _)| c.clone())?;
                (
                    first,
                    Pending::Parts {
                        calls,
                        next: 0,
                        results: vec![ItemResult::Retry; len],
                        after_ms: None,
                    },
                )
            }
        };
        self.pending = pending;
        self.waiting = true;
        Some(call)
    }

    /// The next call of a batch already in flight (next part, upload after presign).
    fn continue_batch(&self, now_ms: u64) -> Option<Call> {
        match (&self.pending, &self.spec) {
            (
                Pending::HecAck {
                    ack_id, next_ms, ..
                },
                SinkSpec::SplunkHec(cfg),
            ) => {
                let channel = self.channel.as_deref()?;
                (now_ms >= *next_ms).then(|| Call {
                    cluster: cfg.cluster.clone(),
                    request: splunk_hec::ack_request(cfg, channel, *ack_id),
                })
            }
            (Pending::Parts { calls, next, .. }, _) => calls.get(*next).map(|(c, _)| c.clone()),
            (
                Pending::S3 {
                    key,
                    presigned: None,
                    ..
                },
                SinkSpec::S3(cfg),
            ) => Some(Call {
                cluster: cfg.presigner_cluster.clone(),
                request: s3::presign_request(cfg, key),
            }),
            (
                Pending::S3 {
                    presigned: Some(p), ..
                },
                SinkSpec::S3(cfg),
            ) => {
                let batch = self.delivery.in_flight()?;
                Some(Call {
                    cluster: cfg.s3_cluster.clone(),
                    request: s3::put_request(p, s3::object_body(batch)),
                })
            }
            _ => None,
        }
    }

    /// Takes the answer to the call in flight; returns the outcome (for logs and metrics).
    pub fn on_answer(&mut self, answer: Answer<'_>, now_ms: u64) -> Outcome {
        self.waiting = false;
        self.retry_hint = answer.and_then(|(_, headers, _)| retry_after_ms(headers));
        let outcome = match std::mem::take(&mut self.pending) {
            Pending::Idle => return no_answer(),
            Pending::HecAck { ack_id, polls, .. } => {
                let status = match answer {
                    Some((status, _, body)) => splunk_hec::ack_status(status, body, ack_id),
                    None => splunk_hec::AckStatus::Pending,
                };
                let outcome = match status {
                    splunk_hec::AckStatus::Indexed => Outcome::Delivered,
                    splunk_hec::AckStatus::Pending if polls + 1 < MAX_ACK_POLLS => {
                        self.pending = Pending::HecAck {
                            ack_id,
                            polls: polls + 1,
                            next_ms: now_ms + ACK_POLL_MS,
                        };
                        return Outcome::Delivered;
                    }
                    splunk_hec::AckStatus::Pending => Outcome::Retry {
                        reason: format!("HEC ack {ack_id} not indexed after {MAX_ACK_POLLS} polls"),
                        after_ms: None,
                    },
                    splunk_hec::AckStatus::Failed(o) => o,
                };
                self.settle(outcome, now_ms)
            }
            Pending::Single => {
                if let (SinkSpec::SplunkHec(cfg), Some((200..=299, _, body))) = (&self.spec, answer)
                {
                    if cfg.ack {
                        if let Some(ack_id) = splunk_hec::ack_id(body) {
                            // Posted, not yet indexed: delivered only once acknowledged.
                            self.pending = Pending::HecAck {
                                ack_id,
                                polls: 0,
                                next_ms: now_ms + ACK_POLL_MS,
                            };
                            return Outcome::Delivered;
                        }
                    }
                }
                // Only HEC posts a batch in one call.
                let outcome = match answer {
                    Some((status, _, body)) => splunk_hec::classify(status, body),
                    None => no_answer(),
                };
                self.settle(outcome, now_ms)
            }
            Pending::Bulk { len } => match answer {
                None => self.settle(no_answer(), now_ms),
                Some((status, _, body)) => {
                    let b = elasticsearch::classify(status, body, len);
                    let mut results = vec![ItemResult::Retry; len];
                    for &i in &b.delivered {
                        if let Some(r) = results.get_mut(i) {
                            *r = ItemResult::Delivered;
                        }
                    }
                    for (i, _) in &b.dropped {
                        if let Some(r) = results.get_mut(*i) {
                            *r = ItemResult::Dropped;
                        }
                    }
                    self.delivery
                        .settle_items(&results, self.retry_hint, now_ms);
                    match (b.dropped.first(), b.retry.is_empty()) {
                        (Some((_, reason)), _) => Outcome::Drop {
                            reason: format!(
                                "{} of {len} records rejected: {reason}",
                                b.dropped.len()
                            ),
                        },
                        (None, false) => Outcome::Retry {
                            reason: format!("{} of {len} records to retry", b.retry.len()),
                            after_ms: None,
                        },
                        (None, true) => Outcome::Delivered,
                    }
                }
            },
            Pending::S3 {
                key,
                presigned: None,
                fresh_urls,
            } => match answer.map(|(status, _, body)| s3::parse_presign_response(status, body)) {
                Some(Ok(p)) => {
                    // The upload follows at once (`poll` builds it from the batch in flight).
                    self.pending = Pending::S3 {
                        key,
                        presigned: Some(p),
                        fresh_urls,
                    };
                    return Outcome::Delivered;
                }
                Some(Err(outcome)) => self.settle(outcome, now_ms),
                None => self.settle(no_answer(), now_ms),
            },
            Pending::S3 {
                key,
                presigned: Some(_),
                fresh_urls,
            } => {
                let put = match answer {
                    Some((status, _, body)) => s3::classify_put(status, body),
                    None => PutOutcome::Retry("no response (timeout or connection failure)".into()),
                };
                // An attempt that got no answer, or a 5xx, may still have stored the object.
                if answer.is_none_or(|(status, _, _)| status >= 500) {
                    if let Some(o) = self.s3_object.as_mut() {
                        o.maybe_stored = true;
                    }
                }
                let outcome = match put {
                    PutOutcome::Stored => Outcome::Delivered,
                    PutOutcome::Exists(_)
                        if self.s3_object.as_ref().is_some_and(|o| o.maybe_stored) =>
                    {
                        // An earlier attempt of this very batch stored it; its answer was lost.
                        Outcome::Delivered
                    }
                    PutOutcome::Exists(reason) => {
                        // Nothing of this batch can have been stored: the key is another
                        // writer's. Never counted delivered; the batch goes under a new key.
                        let reason = format!("{reason} (key {key} held by another writer)");
                        match self.rotate_key() {
                            Some(new_key) => {
                                self.pending = Pending::S3 {
                                    key: new_key,
                                    presigned: None,
                                    fresh_urls: 0,
                                };
                                return Outcome::Retry {
                                    reason,
                                    after_ms: Some(0),
                                };
                            }
                            None => Outcome::Retry {
                                reason,
                                after_ms: None,
                            },
                        }
                    }
                    PutOutcome::Retry(reason) => Outcome::Retry {
                        reason,
                        after_ms: None,
                    },
                    PutOutcome::NewUrl(reason) if fresh_urls < MAX_FRESH_URLS => {
                        // Same object, fresh URL: back to the presigner at once.
                        self.pending = Pending::S3 {
                            key,
                            presigned: None,
                            fresh_urls: fresh_urls + 1,
                        };
                        return Outcome::Retry {
                            reason,
                            after_ms: Some(0),
                        };
                    }
                    PutOutcome::NewUrl(reason) => Outcome::Retry {
                        reason,
                        after_ms: None,
                    },
                    PutOutcome::Drop(reason) => Outcome::Drop { reason },
                };
                self.settle(outcome, now_ms)
            }
            Pending::AzureToken => {
                let parsed = answer.map(|(status, _, body)| {
                    azure_monitor::parse_token_response(status, body, now_ms)
                });
                match (parsed, &self.spec) {
                    (Some(Ok(token)), SinkSpec::AzureMonitor(cfg)) => {
                        let calls = match self.delivery.in_flight() {
                            Some(batch) => azure_parts(cfg, token.access_token(), batch),
                            None => Vec::new(),
                        };
                        self.token.set(token);
                        let len = self.delivery.in_flight().map_or(0, <[_]>::len);
                        if !calls.is_empty() {
                            self.pending = Pending::Parts {
                                calls,
                                next: 0,
                                results: vec![ItemResult::Retry; len],
                                after_ms: None,
                            };
                            return Outcome::Delivered;
                        }
                        self.settle(no_answer(), now_ms)
                    }
                    (Some(Err(outcome)), _) => self.settle(outcome, now_ms),
                    _ => self.settle(no_answer(), now_ms),
                }
            }
            Pending::Parts {
                calls,
                next,
                mut results,
                mut after_ms,
            } => {
                let azure = matches!(self.spec, SinkSpec::AzureMonitor(_));
                let outcome = match (&self.spec, answer) {
                    (SinkSpec::Datadog(_), Some((status, _, body))) => {
                        datadog_logs::classify(status, body)
                    }
                    (SinkSpec::AzureMonitor(_), Some((status, headers, body))) => {
                        if status == 401 {
                            // A token the service no longer takes: get a new one.
                            self.token.clear();
                        }
                        azure_monitor::classify(status, headers, body)
                    }
                    _ => no_answer(),
                };
                let status = answer.map(|(status, _, _)| status);
                if azure && status.is_some_and(|s| (200..300).contains(&s)) {
                    self.fresh_token = false;
                }
                if let (true, Some(401), false, Outcome::Drop { reason }) =
                    (azure, status, self.fresh_token, &outcome)
                {
                    // Refused token (revoked, or expired early): this part and those after
                    // it go again at once with a fresh token. Only a fresh token's refusal
                    // drops records.
                    self.fresh_token = true;
                    let reason = format!("{reason}; retrying with a fresh token");
                    self.delivery.settle_items(&results, Some(0), now_ms);
                    return Outcome::Retry {
                        reason,
                        after_ms: Some(0),
                    };
                }
                if let Outcome::Retry {
                    after_ms: Some(a), ..
                } = &outcome
                {
                    after_ms = Some(after_ms.map_or(*a, |b| b.max(*a)));
                }
                let fate = match &outcome {
                    Outcome::Delivered => ItemResult::Delivered,
                    Outcome::Retry { .. } => ItemResult::Retry,
                    Outcome::Drop { .. } => ItemResult::Dropped,
                };
                if let Some((_, range)) = calls.get(next) {
                    for i in range.clone() {
                        if let Some(r) = results.get_mut(i) {
                            *r = fate;
                        }
                    }
                }
                if next + 1 < calls.len() {
                    self.pending = Pending::Parts {
                        calls,
                        next: next + 1,
                        results,
                        after_ms,
                    };
                    return outcome;
                }
                self.delivery
                    .settle_items(&results, after_ms.or(self.retry_hint), now_ms);
                self.fresh_token = false;
                if results.iter().all(|r| *r == ItemResult::Delivered) {
                    Outcome::Delivered
                } else {
                    outcome
                }
            }
        };
        if outcome == Outcome::Delivered {
            self.report_gap(now_ms);
        }
        outcome
    }

    /// Settles the batch in flight with `outcome` and returns it.
    /// A retry the service timed with `Retry-After` waits that long, not the backoff.
    fn settle(&mut self, outcome: Outcome, now_ms: u64) -> Outcome {
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

    /// After a failed dispatch (the host refused the call).
    pub fn on_dispatch_failed(&mut self, now_ms: u64) -> Outcome {
        self.on_answer(None, now_ms)
    }

    /// Once delivery works again, a gap record says what a full buffer cost.
    fn report_gap(&mut self, now_ms: u64) {
        let Some(gap) = self.delivery.take_gap() else {
            return;
        };
        let gateway = self.gateway.clone();
        self.announce(gap, GapCause::BufferFull, None, &gateway, now_ms);
    }

    /// Queues, ahead of everything else, a `gap` record announcing `gap`: records lost for
    /// `cause` (by this worker, or by VM `vm` of gateway `gateway`). Until it is delivered,
    /// the records it announces stay in this worker's ledger.
    pub fn announce(
        &mut self,
        gap: Gap,
        cause: GapCause,
        vm: Option<u64>,
        gateway: &str,
        now_ms: u64,
    ) {
        let gateway = serde_json::to_string(gateway).unwrap_or_else(|_| "null".into());
        let vm = vm.map_or(String::new(), |vm| format!(",\"vm\":{vm}"));
        // Written by hand (the json! macro costs the module kilobytes); every value is a
        // number, a fixed word, an id or time of ours, or `gateway`, escaped above.
        let record = format!(
            "{{\"schema_version\":\"{SCHEMA_VERSION}\",\"record_type\":\"gap\",\"record_id\":\"{}\",\
             \"timestamp\":\"{}\",\"sink\":\"{}\",\"gateway\":{gateway},\"cause\":\"{}\"{vm},\
             \"dropped\":{},\"from\":\"{}\",\"to\":\"{}\"}}",
            self.ids.next(now_ms),
            iso8601_millis(now_ms),
            self.name(),
            cause.name(),
            gap.dropped,
            iso8601_millis(gap.from_ms),
            iso8601_millis(gap.to_ms),
        );
        self.delivery.push_front(QueuedRecord {
            json: record,
            epoch_ms: now_ms,
            gap: Some(gap),
        });
    }

    /// Settles a 412 on a first attempt: a new key for the same batch, unless this batch has
    /// had too many (then it backs off, and still goes under a new key).
    fn rotate_key(&mut self) -> Option<String> {
        let SinkSpec::S3(cfg) = &self.spec else {
            return None;
        };
        let first_ms = self
            .delivery
            .in_flight()
            .and_then(|b| b.first())
            .map_or(0, |r| r.epoch_ms);
        let instance = cfg.instance.as_deref().unwrap_or(&self.gateway);
        let key = s3::object_key(
            &cfg.prefix,
            instance,
            first_ms,
            next_random(&mut self.key_rng),
        );
        let o = self.s3_object.as_mut()?;
        o.key = key.clone();
        o.maybe_stored = false;
        o.new_keys += 1;
        (o.new_keys <= MAX_NEW_KEYS).then_some(key)
    }
}

/// 64 random bits: SplitMix64 over a Weyl sequence (seeded per VM and sink).
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    splitmix64(*state)
}

fn azure_parts(
    cfg: &AzureConfig,
    token: &str,
    batch: &[QueuedRecord],
) -> Vec<(Call, Range<usize>)> {
    azure_monitor::build_requests(cfg, token, batch)
        .into_iter()
        .map(|(request, range)| {
            (
                Call {
                    cluster: cfg.cluster.clone(),
                    request,
                },
                range,
            )
        })
        .collect()
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
            ack: false,
            channel: None,
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
            gap: None,
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

    fn es() -> SinkSpec {
        SinkSpec::Elasticsearch(
            serde_json::from_value(serde_json::json!({
                "cluster": "es", "authority": "es:9200", "index": "policy-audit",
                "auth": {"basic": {"username": "elastic", "password": "changeme"}}
            }))
            .unwrap(),
        )
    }

    fn dd() -> SinkSpec {
        SinkSpec::Datadog(
            serde_json::from_value(serde_json::json!({"cluster": "dd", "api_key": "k"})).unwrap(),
        )
    }

    #[test]
    fn bulk_answers_retry_only_failed_items() {
        let mut s = Shipper::new(es(), limits(10_000), "gw", 1);
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
        let mut s = Shipper::new(dd(), big, "gw", 1);
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
        let SinkSpec::SplunkHec(mut cfg) = hec() else {
            unreachable!()
        };
        cfg.ack = true;
        let mut s = Shipper::new(SinkSpec::SplunkHec(cfg), limits(10_000), "gw", 1);
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
        let mut s = Shipper::new(hec(), limits(10_000), "gw", 1);
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

    fn s3() -> SinkSpec {
        SinkSpec::S3(
            serde_json::from_value(serde_json::json!({
                "presigner_cluster": "presigner", "presigner_authority": "presigner:8080",
                "s3_cluster": "s3",
            }))
            .unwrap(),
        )
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
            let mut s = Shipper::new(s3(), limits(10_000), "mesh", seed);
            s.delivery.push(rec(1));
            assert!(keys.insert(key_of(&s.poll(0, true).unwrap())), "{keys:?}");
        }
    }

    #[test]
    fn s3_retry_after_a_lost_answer_reuses_the_key() {
        let mut s = Shipper::new(s3(), limits(10_000), "gw", 1);
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
        assert_eq!(s3::object_body(&[rec(1), rec(2)]), put.request.body);
        // The lost answer had stored it: If-None-Match answers 412, the same batch, delivered.
        assert_eq!(
            s.on_answer(Some((412, &[], EXISTS)), 120_002),
            Outcome::Delivered
        );
        assert_eq!(s.delivery.stats.delivered, 2);
    }

    #[test]
    fn s3_412_on_a_first_attempt_is_not_a_delivery() {
        let mut s = Shipper::new(s3(), limits(10_000), "gw", 1);
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

    fn azure() -> SinkSpec {
        SinkSpec::AzureMonitor(
            serde_json::from_value(serde_json::json!({
                "cluster": "azure", "endpoint_authority": "dce.ingest.monitor.azure.com",
                "dcr_immutable_id": "dcr-0123abcd", "stream": "Custom-Audit_CL",
                "auth": {"client_credentials": {"token_cluster": "entra",
                    "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                    "client_id": "11111111-2222-3333-4444-555555555555",
                    "client_secret": "s3cr3t"}},
            }))
            .unwrap(),
        )
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
        let mut s = Shipper::new(azure(), limits(10_000), "gw", 1);
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
        let mut s = Shipper::new(azure(), limits(10_000), "gw", 1);
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
        let mut s = Shipper::new(s3(), limits(10_000), "gw", 1);
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
        let mut s = Shipper::new(s3(), limits(27), "gw", 1);
        for i in 0..3 {
            s.delivery.push(rec(i));
        }
        let key = key_of(&s.poll(0, true).unwrap());
        s.on_answer(Some((500, &[], b"")), 1);
        // The full buffer sheds the oldest record of the waiting batch: not the same batch.
        s.delivery.push(rec(3));
        assert_ne!(key_of(&s.poll(120_000, false).unwrap()), key);
    }

    #[test]
    fn gap_records_are_json_with_their_cause() {
        let mut s = Shipper::new(hec(), limits(10_000), "gw", 1);
        let gap = Gap {
            dropped: 12,
            from_ms: 1_000,
            to_ms: 2_500,
        };
        s.announce(gap, GapCause::VmFailed, Some(7), "gw \"eu\"\n1", 3_000);
        s.announce(gap, GapCause::BufferFull, None, "gw", 3_000);
        let batch = s.delivery.next_batch(3_000, true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&batch[1].json).unwrap();
        assert_eq!(v["record_type"], "gap");
        assert_eq!(v["schema_version"], SCHEMA_VERSION);
        assert_eq!(v["cause"], "vm_failed");
        assert_eq!(v["vm"], 7);
        assert_eq!(v["gateway"], "gw \"eu\"\n1");
        assert_eq!(v["sink"], "splunk_hec");
        assert_eq!(v["dropped"], 12);
        assert_eq!(v["from"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["to"], "1970-01-01T00:00:02.500Z");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:03.000Z");
        assert_eq!(v["record_id"].as_str().map(str::len), Some(36));
        let v: serde_json::Value = serde_json::from_str(&batch[0].json).unwrap();
        assert_eq!(v["cause"], "buffer_full");
        assert!(v.get("vm").is_none());
    }
}
