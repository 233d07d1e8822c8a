//! One exchange, from the first request header to its audit record: attribution, rollout,
//! what is inspected and what is not (and why), the active policy's and the candidate's
//! judgements (one [`Lane`] each), what the traffic gets, and the record. The filter drives it
//! from proxy-wasm callbacks, `simulate` from a recorded exchange, tests from a fake host; all
//! three run this code.
//!
//! Host facts this follows (Envoy): drop `content-length` when the body may change after the
//! headers have gone (with `hold_headers` it stays, corrected when the body changes); Pause in
//! the body callback until end of stream; requests and responses ending with trailers finish
//! in the trailers callback. Headers Pause only with `hold_headers` (the host must honour
//! StopIteration: Envoy >= 1.35, `allow_on_headers_stop_iteration`): then headers wait for
//! the body's verdict, refused requests never reach the upstream, and a refused response gets
//! its status.
//!
//! Fail closed: a body the policy changed but the host would not take is refused, not
//! forwarded as it was; a response the filter cannot inspect (compressed, not JSON, too large)
//! gets `on_uninspectable_response`; Envoy's own responses (a 503 for a dead upstream) are
//! not upstream output and pass as they are.

pub mod host;
pub mod not_inspected;
pub mod replay;

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::Value;

use crate::audit::record::{self, CandidateDecision, RecordMeta};
use crate::audit::{id, AuditRecord, IdGenerator};
use crate::config::attribution::{self, Attributed, RequestView, Source};
use crate::config::{OnUninspectable, PluginConfig};
use crate::engine::pseudonym::Vault;
use crate::engine::stream::{StreamEnd, StreamInspector};
use crate::engine::text_cache::{self, Cached, Identity, TextCache};
use crate::engine::{self, ParsedBody, PhaseOutcome, Refusal, RequestInfo, VaultUse, Verdict};
use crate::headers::{HeaderMap, Lookup};
use crate::llm::{self, ApiFormat, Phase};
use crate::policy::rollout::{self, BucketKeys, RolloutDecision};
use crate::policy::{Action, Policy, RolloutMode};

pub use host::{Flow, Host, Side};
pub use not_inspected::NotInspected;
use not_inspected::{BODY_REPLACE_FAILED, REPLACE_FAILED_MESSAGE};

/// The candidate policy is always evaluated in shadow: judged, never enforced.
const SHADOW: RolloutDecision = RolloutDecision {
    mode: RolloutMode::Shadow,
    enforced: false,
    bucket: None,
    bucket_key: None,
};

/// One policy's view of the exchange: its phase outcomes and, for a streamed response, its
/// stream inspector.
#[derive(Default)]
struct Lane {
    request: Option<PhaseOutcome>,
    response: Option<PhaseOutcome>,
    stream: Option<StreamInspector>,
}

/// What an exchange leaves behind when it ends.
pub struct Finished {
    pub record: AuditRecord,
    /// The exchange's decision and rollout mode, for metrics.
    pub decision: Action,
    pub mode: RolloutMode,
    /// Bodies the policy could not inspect (empty, malformed, unavailable), for metrics.
    pub inspection_errors: u32,
}

/// An exchange's ending without its record ([`Exchange::finish_unrecorded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub decision: Action,
    pub mode: RolloutMode,
    pub inspection_errors: u32,
}

/// What [`Exchange::conclude`] leaves for the record.
struct Concluded {
    rollout: RolloutDecision,
    request: PhaseOutcome,
    response: Option<PhaseOutcome>,
    end: StreamEnd,
}

pub struct Exchange {
    config: Rc<PluginConfig>,
    started_ms: u64,
    /// The request headers reached the exchange. A proxy answers some requests itself before
    /// that (431 for oversized headers) and still ends the exchange.
    saw_request: bool,
    request_id: String,
    /// An id the gateway generated: the record's id, and the canary bucket key when the
    /// configured attribute is missing or unverified (a client cannot choose it).
    record_id: String,
    path: Option<String>,
    format: ApiFormat,
    /// The request headers, kept for attribution sources that wait for the body.
    headers: HeaderMap,
    user: Option<Attributed>,
    project: Option<Attributed>,
    attribution_rejected: Vec<String>,
    rollout: Option<RolloutDecision>,
    active: Lane,
    candidate: Lane,
    /// The request body is not inspected (uninspectable and allowed).
    skip_request_body: bool,
    request_body_size: usize,
    request_headers_held: bool,
    inspect_response: bool,
    /// Bytes of response body buffered so far (the trailers callback has no size).
    response_body_size: usize,
    /// A response refused before its body was complete: what the upstream sends is dropped
    /// and this body goes out at the end.
    response_replacement: Option<Vec<u8>>,
    response_headers_held: bool,
    responded_locally: bool,
    http_status: Option<u16>,
    /// The upstream ended the response (end of stream or trailers).
    response_ended: bool,
    inspection_errors: u32,
    /// The values the request pseudonymised and their tokens: filled by the request, read by
    /// the response, dropped with the exchange (never in a record or a log).
    vault: Vault,
    /// The configuration's per-text result cache, shared by the VM's exchanges.
    text_cache: Option<Rc<RefCell<TextCache>>>,
}

/// The request as attribution sees it: the header snapshot, and host properties for JWT
/// claims and route metadata.
struct View<'a> {
    headers: &'a HeaderMap,
    host: &'a dyn Host,
}

impl RequestView for View<'_> {
    fn header(&self, name: &str) -> Lookup<'_> {
        self.headers.get(name)
    }

    fn jwt_claim(&self, payload_in_metadata: &str, claim: &str) -> Option<String> {
        self.property_string(&[
            "metadata",
            "filter_metadata",
            "envoy.filters.http.jwt_authn",
            payload_in_metadata,
            claim,
        ])
    }

    fn route_metadata(&self, namespace: &str, key: &str) -> Option<String> {
        self.property_string(&["xds", "route_metadata", "filter_metadata", namespace, key])
    }
}

impl View<'_> {
    fn property_string(&self, path: &[&str]) -> Option<String> {
        String::from_utf8(self.host.property(path)?).ok()
    }
}

/// Envoy's `response.code_details`: how the response came to be.
fn code_details(host: &dyn Host) -> String {
    host.property(&["response", "code_details"])
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

/// Envoy's `response.code`: the status the client got (8 bytes, little-endian).
fn response_code(host: &dyn Host) -> Option<u16> {
    let bytes = host.property(&["response", "code"])?;
    let arr: [u8; 8] = bytes.as_slice().try_into().ok()?;
    u16::try_from(i64::from_le_bytes(arr))
        .ok()
        .filter(|&c| c > 0)
}

/// Whether the proxy itself produced this response (a 503 for a dead upstream, a 504
/// timeout) rather than the upstream: it carries no model output, so there is nothing to
/// inspect and its status must reach the client as it is. Envoy says `via_upstream` for
/// upstream responses; a host that does not say is treated as upstream (inspected).
fn proxy_generated(host: &dyn Host) -> bool {
    let d = code_details(host);
    !d.is_empty() && d != "via_upstream"
}

impl Exchange {
    pub fn new(config: Rc<PluginConfig>) -> Exchange {
        Exchange {
            config,
            started_ms: 0,
            saw_request: false,
            request_id: String::new(),
            record_id: String::new(),
            path: None,
            format: ApiFormat::Unknown,
            headers: HeaderMap::default(),
            user: None,
            project: None,
            attribution_rejected: Vec::new(),
            rollout: None,
            active: Lane::default(),
            candidate: Lane::default(),
            skip_request_body: false,
            request_body_size: 0,
            request_headers_held: false,
            inspect_response: false,
            response_body_size: 0,
            response_replacement: None,
            response_headers_held: false,
            responded_locally: false,
            http_status: None,
            response_ended: false,
            inspection_errors: 0,
            vault: Vault::default(),
            text_cache: None,
        }
    }

    /// The exchange consults and fills `cache` (made with this exchange's configuration).
    pub fn with_text_cache(mut self, cache: Option<Rc<RefCell<TextCache>>>) -> Exchange {
        self.text_cache = cache;
        self
    }

    /// Who sent the request, as the text cache scopes its entries: none without a user.
    fn identity(&self) -> Option<Identity<'_>> {
        let user = self.user.as_ref()?;
        let project = self.project.as_ref();
        Some(Identity {
            user: &user.value,
            user_verified: user.verified,
            project: project.map(|p| p.value.as_str()),
            project_verified: project.is_some_and(|p| p.verified),
        })
    }

    /// Evaluates a body with the text cache when this request has a scope in it.
    fn evaluate(
        &self,
        policy: &Policy,
        lane: text_cache::Lane,
        rollout: &RolloutDecision,
        phase: Phase,
        parsed: ParsedBody,
        vault: VaultUse<'_>,
    ) -> PhaseOutcome {
        let mut cache = self
            .text_cache
            .as_ref()
            .and_then(|c| c.try_borrow_mut().ok());
        let cached = cache.as_deref_mut().and_then(|c| {
            let scope = c.scope(self.identity(), lane)?;
            Some(Cached::new(c, scope))
        });
        engine::evaluate_cached(policy, &self.info(), rollout, phase, parsed, vault, cached)
    }

    fn info(&self) -> RequestInfo<'_> {
        RequestInfo {
            request_id: &self.request_id,
            path: self.path.as_deref(),
            user: self.user.as_ref().map(|a| a.value.as_str()),
            project: self.project.as_ref().map(|a| a.value.as_str()),
        }
    }

    /// Canary buckets use only what a client cannot choose: verified attribution, else the
    /// gateway's own id for the exchange (never the client's `x-request-id`).
    fn rollout(&mut self) -> RolloutDecision {
        if let Some(r) = self.rollout {
            return r;
        }
        fn verified(a: &Option<Attributed>) -> Option<&str> {
            a.as_ref().filter(|a| a.verified).map(|a| a.value.as_str())
        }
        let keys = BucketKeys {
            user: verified(&self.user),
            project: verified(&self.project),
            request_id: &self.record_id,
        };
        let policy = &self.config.policy;
        let r = rollout::decide(&policy.id, &policy.rollout, &keys);
        self.rollout = Some(r);
        r
    }

    fn resolve(
        &mut self,
        host: &dyn Host,
        sources: &[Source],
        body: Option<&Value>,
    ) -> Option<Attributed> {
        let view = View {
            headers: &self.headers,
            host,
        };
        let r = attribution::resolve(sources, &view, body);
        for why in r.rejected {
            if !self.attribution_rejected.contains(&why) {
                self.attribution_rejected.push(why);
            }
        }
        r.found
    }

    /// Attribution from the body, for sources that read it, when headers gave nothing.
    fn attribute_from_body(&mut self, host: &dyn Host, body: Option<&Value>) {
        let config = Rc::clone(&self.config);
        let reads_body = |sources: &[Source]| {
            sources
                .iter()
                .any(|s| matches!(s, Source::BodyField { .. }))
        };
        if self.user.is_none() && reads_body(&config.user_sources) {
            self.user = self.resolve(host, &config.user_sources, body);
        }
        if self.project.is_none() && reads_body(&config.project_sources) {
            self.project = self.resolve(host, &config.project_sources, body);
        }
    }

    /// Answers locally with a provider-shaped error body and the policy headers.
    fn respond(&mut self, host: &mut dyn Host, refusal: &Refusal) {
        let body = refusal.error_body(self.format);
        let headers = [
            ("content-type", "application/json"),
            ("x-policy-decision", refusal.action().name()),
            ("x-policy-reason", refusal.reason_code.as_str()),
        ];
        if host.send_response(refusal.status, &headers, &body) {
            self.responded_locally = true;
            self.http_status = Some(refusal.status);
        }
    }

    fn not_inspected(&mut self, phase: Phase, why: NotInspected, refuse: bool, bytes: usize) {
        let rollout = self.rollout();
        let mut outcome = engine::uninspected(
            &rollout,
            phase,
            bytes,
            why.reason_code(),
            why.detail(),
            refuse.then(|| why.refusal()),
        );
        outcome.format = self.format;
        match phase {
            Phase::Request => self.active.request = Some(outcome),
            Phase::Response => self.active.response = Some(outcome),
        }
    }

    /// A request body the filter will not inspect: refused or allowed, as configured.
    fn request_uninspectable(&mut self, host: &mut dyn Host, why: NotInspected) -> Flow {
        let refuse = self.config.on_uninspectable == OnUninspectable::Refuse;
        self.not_inspected(Phase::Request, why, refuse, self.request_body_size);
        let respond = self
            .active
            .request
            .as_ref()
            .is_some_and(|o| matches!(o.verdict, Verdict::Respond { .. }));
        if respond {
            self.respond(host, &why.refusal());
            return Flow::Pause;
        }
        self.skip_request_body = true;
        Flow::Continue
    }

    /// Status and policy headers of a response refused while its headers are still here.
    fn refusal_headers(&mut self, host: &mut dyn Host, refusal: &Refusal) {
        let side = Side::Response;
        host.set_header(side, ":status", Some(&refusal.status.to_string()));
        host.set_header(side, "content-type", Some("application/json"));
        host.set_header(side, "content-encoding", None);
        host.set_header(side, "x-policy-decision", Some(refusal.action().name()));
        host.set_header(side, "x-policy-reason", Some(&refusal.reason_code));
        self.http_status = Some(refusal.status);
    }

    /// A response the filter cannot inspect: `on_uninspectable_response` decides. Refused,
    /// its bytes are dropped as they come and the error body goes out at the end; the status
    /// changes too while the headers are still here (`headers_here`).
    fn response_uninspectable(
        &mut self,
        host: &mut dyn Host,
        why: NotInspected,
        headers_here: bool,
        buffered: usize,
    ) -> Flow {
        self.inspect_response = false;
        let refuse = self.config.on_uninspectable_response == OnUninspectable::Refuse;
        self.not_inspected(Phase::Response, why, refuse, buffered);
        let refused = self
            .active
            .response
            .as_ref()
            .is_some_and(|o| matches!(o.verdict, Verdict::Respond { .. }));
        if !refused {
            return Flow::Continue;
        }
        let refusal = why.refusal();
        let err = refusal.error_body(self.format);
        if headers_here {
            host.set_header(
                Side::Response,
                "content-length",
                Some(&err.len().to_string()),
            );
            self.refusal_headers(host, &refusal);
        }
        self.response_replacement = Some(err);
        // Whatever is buffered so far goes; the rest is dropped as it comes.
        if buffered > 0 {
            host.replace_body(Side::Response, buffered, b"");
        }
        self.response_body_size = 0;
        Flow::Pause
    }

    /// The candidate policy's shadow judgement of a body, when one is configured.
    fn judge_candidate(&mut self, phase: Phase, parsed: Option<ParsedBody>) {
        let (Some(candidate), Some(parsed)) = (self.config.candidate.as_ref(), parsed) else {
            return;
        };
        let outcome = self.evaluate(
            candidate,
            text_cache::Lane::Candidate,
            &SHADOW,
            phase,
            parsed,
            VaultUse::None,
        );
        match phase {
            Phase::Request => self.candidate.request = Some(outcome),
            Phase::Response => self.candidate.response = Some(outcome),
        }
    }

    fn finish_request(&mut self, host: &mut dyn Host) -> Flow {
        // An empty body (a chunked request with no data) is judged as empty (`BODY_EMPTY`):
        // the host hands over no buffer for it.
        let body = match host.body(Side::Request, self.request_body_size) {
            Some(body) => body,
            None if self.request_body_size == 0 => Vec::new(),
            None => {
                self.inspection_errors += 1;
                return self.request_uninspectable(host, NotInspected::BodyUnavailable);
            }
        };
        // Parsed once: body attribution and the evaluations share it.
        let parsed = engine::parse_body(&body);
        self.attribute_from_body(host, parsed.json());
        let rollout = self.rollout();
        // The candidate judges a copy of the same parse (cheaper than parsing again).
        let candidate_parsed = self.config.candidate.as_ref().map(|_| parsed.clone());
        self.judge_candidate(Phase::Request, candidate_parsed);
        let mut vault = std::mem::take(&mut self.vault);
        let mut outcome = self.evaluate(
            &self.config.policy,
            text_cache::Lane::Active,
            &rollout,
            Phase::Request,
            parsed,
            VaultUse::Fill(&mut vault),
        );
        // Only a request that goes upstream with its tokens has anything to give back.
        let forwarded = matches!(outcome.verdict, Verdict::Forward { body: Some(_), .. });
        if rollout.enforced && forwarded {
            vault.seal();
            self.vault = vault;
        }
        if !outcome.inspected {
            self.inspection_errors += 1;
        }
        if outcome.format != ApiFormat::Unknown {
            self.format = outcome.format;
        }
        let flow = match &outcome.verdict {
            Verdict::Forward {
                body: Some(new_body),
                ..
            } => {
                if host.replace_body(Side::Request, body.len(), new_body) {
                    if self.request_headers_held {
                        let len = new_body.len().to_string();
                        host.set_header(Side::Request, "content-length", Some(&len));
                    }
                    Flow::Continue
                } else {
                    // Forwarding the original would pass what the policy removed.
                    let refusal = fail_closed(&mut outcome, 500);
                    self.respond(host, &refusal);
                    Flow::Pause
                }
            }
            Verdict::Forward { body: None, .. } => Flow::Continue,
            Verdict::Respond(refusal) => {
                let refusal = refusal.clone();
                self.respond(host, &refusal);
                Flow::Pause
            }
        };
        self.active.request = Some(outcome);
        flow
    }

    fn finish_response(&mut self, host: &mut dyn Host, size: usize) -> Flow {
        self.inspect_response = false;
        let body = match host.body(Side::Response, size) {
            Some(body) => body,
            None if size == 0 => Vec::new(),
            None => {
                let held = self.response_headers_held;
                return self.response_uninspectable(
                    host,
                    NotInspected::ResponseUnavailable,
                    held,
                    size,
                );
            }
        };
        let parsed = engine::parse_body(&body);
        let candidate_parsed = self.config.candidate.as_ref().map(|_| parsed.clone());
        self.judge_candidate(Phase::Response, candidate_parsed);
        let rollout = self.rollout();
        let mut outcome = self.evaluate(
            &self.config.policy,
            text_cache::Lane::Active,
            &rollout,
            Phase::Response,
            parsed,
            VaultUse::Restore(&self.vault),
        );
        let replacement = match &outcome.verdict {
            Verdict::Forward {
                body: Some(new_body),
                ..
            } => Some((new_body.clone(), None)),
            Verdict::Respond(refusal) => {
                Some((refusal.error_body(self.format), Some(refusal.clone())))
            }
            Verdict::Forward { body: None, .. } => None,
        };
        if let Some((new_body, refusal)) = replacement {
            if host.replace_body(Side::Response, body.len(), &new_body) {
                if self.response_headers_held {
                    let len = new_body.len().to_string();
                    host.set_header(Side::Response, "content-length", Some(&len));
                    if let Some(refusal) = refusal {
                        // Headers are still here: the client gets the refusal's status too.
                        self.refusal_headers(host, &refusal);
                    }
                }
            } else {
                let refusal = fail_closed(&mut outcome, 502);
                let err = refusal.error_body(self.format);
                if !host.replace_body(Side::Response, body.len(), &err) {
                    // Nothing safe can go out: end the exchange instead.
                    host.reset_response();
                } else if self.response_headers_held {
                    let len = err.len().to_string();
                    host.set_header(Side::Response, "content-length", Some(&len));
                    self.refusal_headers(host, &refusal);
                }
            }
        }
        self.active.response = Some(outcome);
        Flow::Continue
    }

    /// The request headers arrived (`end_of_stream`: and there is no body).
    pub fn on_request_headers(
        &mut self,
        host: &mut dyn Host,
        end_of_stream: bool,
        ids: &mut IdGenerator,
        now_ms: u64,
    ) -> Flow {
        self.saw_request = true;
        self.started_ms = now_ms;
        self.record_id = ids.next(now_ms);
        self.headers = host.headers(Side::Request);
        self.path = self.headers.lossy(":path");
        self.format = llm::detect_format(self.path.as_deref(), &Value::Null);
        self.request_id = match self.headers.get("x-request-id").text() {
            Some(rid) if id::acceptable_request_id(rid) => rid.to_string(),
            _ => self.record_id.clone(),
        };
        let config = Rc::clone(&self.config);
        self.user = self.resolve(host, &config.user_sources, None);
        self.project = self.resolve(host, &config.project_sources, None);
        if config.inspect_responses {
            // A compressed response cannot be inspected: ask the upstream for plain bytes
            // (clients' `gzip` defaults would otherwise carry output past every rule).
            host.set_header(Side::Request, "accept-encoding", Some("identity"));
        }
        if end_of_stream {
            self.not_inspected(Phase::Request, NotInspected::NoBody, false, 0);
            return Flow::Continue;
        }
        if !self.headers.declares_json() {
            return self.request_uninspectable(host, NotInspected::BodyNotJson);
        }
        if self.headers.encoded() {
            return self.request_uninspectable(host, NotInspected::BodyCompressed);
        }
        let declared = self
            .headers
            .get("content-length")
            .text()
            .and_then(|v| v.trim().parse::<usize>().ok());
        if let Some(n) = declared.filter(|&n| n > config.max_body_bytes) {
            self.request_body_size = n;
            return self.request_uninspectable(host, NotInspected::BodyTooLarge);
        }
        if config.hold_headers {
            // Nothing reaches the upstream before the body is judged; `content-length` stays
            // (re-chunking every request costs both hops) and is corrected if the body changes.
            self.request_headers_held = true;
            return Flow::Pause;
        }
        // The body may change length after the headers have gone.
        host.set_header(Side::Request, "content-length", None);
        Flow::Continue
    }

    /// Request body data arrived; `size` is all of it buffered so far.
    pub fn on_request_body(
        &mut self,
        host: &mut dyn Host,
        size: usize,
        end_of_stream: bool,
    ) -> Flow {
        if self.skip_request_body || self.active.request.is_some() {
            return Flow::Continue;
        }
        self.request_body_size = size;
        if size > self.config.max_body_bytes {
            return self.request_uninspectable(host, NotInspected::BodyTooLarge);
        }
        if !end_of_stream {
            return Flow::Pause;
        }
        self.finish_request(host)
    }

    /// The request ended with trailers: its body is complete.
    pub fn on_request_trailers(&mut self, host: &mut dyn Host) -> Flow {
        if self.skip_request_body || self.active.request.is_some() {
            return Flow::Continue;
        }
        self.finish_request(host)
    }

    pub fn on_response_headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Flow {
        if self.responded_locally {
            return Flow::Continue;
        }
        let headers = host.headers(Side::Response);
        self.http_status = headers.get(":status").text().and_then(|s| s.parse().ok());
        if let (Some(req), Some(rollout)) = (&self.active.request, &self.rollout) {
            if rollout.enforced && req.decision != Action::Allow {
                let (decision, reason) = (req.decision.name(), req.reason_code.clone());
                host.set_header(Side::Response, "x-policy-decision", Some(decision));
                host.set_header(Side::Response, "x-policy-reason", Some(&reason));
            }
        }
        if !self.config.inspect_responses || end_of_stream || proxy_generated(host) {
            return Flow::Continue;
        }
        let sse = headers.declares_event_stream();
        let unknown_stream = matches!(
            self.format,
            ApiFormat::Unknown | ApiFormat::OpenaiEmbeddings
        );
        let problem = if headers.encoded() {
            Some(NotInspected::ResponseCompressed)
        } else if !sse && !headers.declares_json() {
            Some(NotInspected::ResponseNotJson)
        } else if sse && unknown_stream {
            Some(NotInspected::ResponseStreamUnknownFormat)
        } else {
            None
        };
        if let Some(why) = problem {
            // The headers are still here whatever `hold_headers` says: this callback has
            // not returned yet, so a refusal's headers go on with them.
            self.response_uninspectable(host, why, true, 0);
            return Flow::Continue;
        }
        if sse {
            // Streams are inspected as they pass: headers go on at once (no added time to
            // first byte beyond the hold-back of text).
            let rollout = self.rollout();
            let config = Rc::clone(&self.config);
            self.active.stream = Some(
                StreamInspector::with_holdback(
                    config.stream_holdback,
                    self.format,
                    rollout.enforced,
                    config.stream_limits,
                )
                .restoring(std::mem::take(&mut self.vault)),
            );
            self.candidate.stream = config.candidate_holdback.map(|hold| {
                StreamInspector::with_holdback(hold, self.format, false, config.stream_limits)
            });
            host.set_header(Side::Response, "content-length", None);
            return Flow::Continue;
        }
        self.inspect_response = true;
        if self.config.hold_headers {
            // `content-length` stays, corrected if the body changes.
            self.response_headers_held = true;
            return Flow::Pause;
        }
        host.set_header(Side::Response, "content-length", None);
        Flow::Continue
    }

    /// Response body data arrived: for a stream the new chunk is `size` bytes, otherwise
    /// `size` is all of it buffered so far.
    pub fn on_response_body(
        &mut self,
        host: &mut dyn Host,
        size: usize,
        end_of_stream: bool,
    ) -> Flow {
        if let Some(err) = &self.response_replacement {
            // A refused response: drop what the upstream sends, the refusal goes out last.
            if end_of_stream {
                host.replace_body(Side::Response, size, err);
                self.response_replacement = None;
                return Flow::Continue;
            }
            host.replace_body(Side::Response, size, b"");
            return Flow::Pause;
        }
        if self.active.stream.is_some() {
            self.stream_chunk(host, size, end_of_stream);
            return Flow::Continue;
        }
        if !self.inspect_response {
            return Flow::Continue;
        }
        self.response_body_size = size;
        if size > self.config.max_body_bytes {
            let held = self.response_headers_held;
            let flow =
                self.response_uninspectable(host, NotInspected::ResponseTooLarge, held, size);
            if end_of_stream {
                // No body callback follows: the refusal goes out now.
                if let Some(err) = self.response_replacement.take() {
                    host.replace_body(Side::Response, 0, &err);
                }
                return Flow::Continue;
            }
            return flow;
        }
        if !end_of_stream {
            return Flow::Pause;
        }
        self.finish_response(host, size)
    }

    fn stream_chunk(&mut self, host: &mut dyn Host, size: usize, end_of_stream: bool) {
        let config = Rc::clone(&self.config);
        let Some(stream) = self.active.stream.as_mut() else {
            return;
        };
        let chunk = host.body(Side::Response, size).unwrap_or_default();
        let mut out = stream.push(&config.policy, &chunk);
        if end_of_stream {
            self.response_ended = true;
            out.extend(stream.finish(&config.policy, StreamEnd::UpstreamIncomplete));
        }
        if let (Some(c), Some(candidate)) = (self.candidate.stream.as_mut(), &config.candidate) {
            // The candidate sees what the upstream sent; its output goes nowhere.
            c.push(candidate, &chunk);
            if end_of_stream {
                c.finish(candidate, StreamEnd::UpstreamIncomplete);
            }
        }
        if out != chunk && !host.replace_body(Side::Response, chunk.len(), &out) {
            // What went unchanged would carry what the policy held back or removed.
            host.reset_response();
        }
    }

    /// The response ended with trailers (HTTP/2): a buffered body is complete now.
    pub fn on_response_trailers(&mut self, host: &mut dyn Host) -> Flow {
        if let Some(err) = self.response_replacement.take() {
            host.replace_body(Side::Response, self.response_body_size, &err);
            return Flow::Continue;
        }
        if self.inspect_response {
            let size = self.response_body_size;
            return self.finish_response(host, size);
        }
        // A stream: text still held cannot be sent any more (no body callback follows); the
        // record says how the stream ended.
        if self.active.stream.is_some() {
            self.response_ended = true;
        }
        Flow::Continue
    }

    /// The exchange is over (the host logs it): its record.
    pub fn finish(&mut self, host: &dyn Host, ids: &mut IdGenerator, now_ms: u64) -> Finished {
        let Concluded {
            rollout,
            request,
            response,
            end,
        } = self.conclude(host, ids, now_ms);
        let config = Rc::clone(&self.config);
        let record_id = self.record_id.clone();
        let meta = RecordMeta {
            record_id: &record_id,
            epoch_ms: now_ms,
        };
        let mut record = AuditRecord::build(
            &config.policy,
            &self.info(),
            &rollout,
            &request,
            response.as_ref(),
            meta,
        );
        record.policy_user_source = self.user.as_ref().map(|a| a.source.clone());
        record.policy_user_verified = self.user.as_ref().map(|a| a.verified);
        record.policy_project_source = self.project.as_ref().map(|a| a.source.clone());
        record.attribution_rejected = std::mem::take(&mut self.attribution_rejected);
        record.http_status = self.http_status;
        record.duration_ms = Some(now_ms.saturating_sub(self.started_ms));
        record.gateway = Some(config.instance_id.clone());
        if let Some(candidate) = &config.candidate {
            record.candidate =
                Some(self.candidate_decision(candidate, &request, response.as_ref(), end, meta));
        }
        Finished {
            record,
            decision: decision_of(&request, response.as_ref()),
            mode: rollout.mode,
            inspection_errors: self.inspection_errors,
        }
    }

    /// [`Self::finish`] without the record, for a filter whose records go nowhere (no sink):
    /// the same decision, mode and count of uninspected bodies, for metrics.
    pub fn finish_unrecorded(
        &mut self,
        host: &dyn Host,
        ids: &mut IdGenerator,
        now_ms: u64,
    ) -> Tally {
        let c = self.conclude(host, ids, now_ms);
        Tally {
            decision: decision_of(&c.request, c.response.as_ref()),
            mode: c.rollout.mode,
            inspection_errors: self.inspection_errors,
        }
    }

    /// The exchange's outcomes as it ends: what a record is built from.
    fn conclude(&mut self, host: &dyn Host, ids: &mut IdGenerator, now_ms: u64) -> Concluded {
        if !self.saw_request {
            // The proxy answered this request itself (431 headers too large, a codec error)
            // before any filter ran: still one record, with a gateway id.
            self.started_ms = now_ms;
            self.record_id = ids.next(now_ms);
            self.request_id = self.record_id.clone();
        }
        if self.http_status.is_none() {
            self.http_status = response_code(host);
        }
        let rollout = self.rollout();
        let request = match self.active.request.take() {
            Some(r) => r,
            None => {
                // Nothing the policy could judge reached the upstream: refused, whoever
                // ended it.
                let why = if self.saw_request {
                    NotInspected::RequestIncomplete
                } else {
                    NotInspected::ProxyRejected
                };
                let details = code_details(host);
                let detail = if details.is_empty() {
                    why.detail().to_string()
                } else {
                    format!("{} ({})", why.detail(), record::clip(&details, 128))
                };
                let mut o = engine::uninspected(
                    &rollout,
                    Phase::Request,
                    self.request_body_size,
                    why.reason_code(),
                    &detail,
                    Some(Refusal {
                        status: self.http_status.unwrap_or(0),
                        message: why.detail().into(),
                        reason_code: why.reason_code().into(),
                        held: false,
                    }),
                );
                o.format = self.format;
                o
            }
        };
        let streamed = self.active.stream.is_some() || self.candidate.stream.is_some();
        // Only a stream asks how the response ended.
        let end = if self.response_ended || !streamed {
            StreamEnd::UpstreamIncomplete
        } else if code_details(host).contains("downstream") {
            StreamEnd::ClientDisconnected
        } else {
            StreamEnd::UpstreamDisconnected
        };
        let config = Rc::clone(&self.config);
        let mut response = self.active.response.take();
        if let Some(mut stream) = self.active.stream.take() {
            stream.finish(&config.policy, end);
            response = Some(stream.outcome(&config.policy, request.text_bytes));
        }
        Concluded {
            rollout,
            request,
            response,
            end,
        }
    }

    /// The candidate's decision on the exchange. Where it had nothing of its own to judge
    /// (no body, uninspectable, answered locally), it saw what the active policy saw.
    fn candidate_decision(
        &mut self,
        candidate: &Policy,
        request: &PhaseOutcome,
        response: Option<&PhaseOutcome>,
        end: StreamEnd,
        meta: RecordMeta<'_>,
    ) -> CandidateDecision {
        let c_request = self
            .candidate
            .request
            .take()
            .unwrap_or_else(|| request.clone());
        let c_response = match self.candidate.stream.take() {
            Some(mut s) => {
                s.finish(candidate, end);
                Some(s.outcome(candidate, request.text_bytes))
            }
            // A response the active policy did not inspect (not JSON, compressed, too
            // large) was not inspected for the candidate either.
            None => self
                .candidate
                .response
                .take()
                .or_else(|| response.filter(|r| !r.inspected).cloned()),
        };
        let c_record = AuditRecord::build(
            candidate,
            &self.info(),
            &SHADOW,
            &c_request,
            c_response.as_ref(),
            meta,
        );
        CandidateDecision::of(&c_record)
    }
}

/// The exchange's decision: the response's when it is more severe than the request's.
fn decision_of(request: &PhaseOutcome, response: Option<&PhaseOutcome>) -> Action {
    response
        .filter(|r| r.decision > request.decision)
        .map_or(request.decision, |r| r.decision)
}

/// A changed body the host would not take: the exchange is refused instead (fail closed).
/// Returns the refusal to send.
fn fail_closed(outcome: &mut PhaseOutcome, status: u16) -> Refusal {
    let refusal = Refusal {
        status,
        message: REPLACE_FAILED_MESSAGE.into(),
        reason_code: BODY_REPLACE_FAILED.into(),
        held: false,
    };
    outcome.decision = Action::Refuse;
    outcome.reason_code = BODY_REPLACE_FAILED.into();
    outcome.error = Some("the host did not accept the changed body".into());
    outcome.verdict = Verdict::Respond(refusal.clone());
    refusal
}

#[cfg(test)]
mod fake;
#[cfg(test)]
mod pseudonym_tests;
#[cfg(test)]
mod tests;
