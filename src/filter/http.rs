//! The HTTP context: buffers request and response bodies, hands them to the engine, applies
//! the verdict, and queues the exchange's record when the stream ends.
//!
//! Envoy facts this follows: drop `content-length` when the body may change after the headers
//! have gone (with `hold_headers` it stays, corrected when the body changes); Pause in the
//! body callback until end of stream; requests ending with trailers finish in the trailers
//! callback. From the headers callbacks return Continue (a Pause there becomes StopAll and
//! the body callbacks never fire) unless `hold_headers` is on, which needs the host to honour
//! StopIteration (Envoy >= 1.35, `allow_on_headers_stop_iteration`): then headers wait for
//! the body's verdict, refused requests never reach the upstream, and a refused response
//! gets its status. Without it, headers are already upstream (or downstream) when the body
//! is judged: a refusal resets the upstream request, and a response refusal replaces the
//! body but not the status.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action as HostAction, BufferType};
use serde_json::Value;

use super::host::{self, HostRequest};
use super::root::Shared;
use crate::audit::record::{self, CandidateDecision, RecordMeta};
use crate::audit::{id, AuditRecord};
use crate::config::attribution::{self, Attributed};
use crate::config::OnUninspectable;
use crate::engine::stream::{StreamEnd, StreamInspector};
use crate::engine::{self, reply, PhaseOutcome, RequestInfo, Verdict};
use crate::headers::HeaderMap;
use crate::llm::{self, ApiFormat, Phase};
use crate::policy::rollout::{self, BucketKeys, RolloutDecision};
use crate::policy::Action;

/// Reason codes the filter itself gives (the engine's are in `engine::reason`).
mod reason {
    /// Envoy answered before the filter saw the request (431 headers too large, 400).
    pub const PROXY_REJECTED: &str = "PROXY_REJECTED";
    /// The request body never completed (client gone, Envoy's buffer limit).
    pub const REQUEST_INCOMPLETE: &str = "REQUEST_INCOMPLETE";
    /// The host did not hand over a body it said was there.
    pub const BODY_UNAVAILABLE: &str = "BODY_UNAVAILABLE";
    /// The host would not take the changed body: refused rather than forwarded unchanged.
    pub const BODY_REPLACE_FAILED: &str = "BODY_REPLACE_FAILED";
    pub const RESPONSE_UNAVAILABLE: &str = "RESPONSE_UNAVAILABLE";
    pub const RESPONSE_NOT_JSON: &str = "RESPONSE_NOT_JSON";
    pub const RESPONSE_COMPRESSED: &str = "RESPONSE_COMPRESSED";
    pub const RESPONSE_TOO_LARGE: &str = "RESPONSE_TOO_LARGE";
    pub const RESPONSE_STREAM_UNKNOWN_FORMAT: &str = "RESPONSE_STREAM_UNKNOWN_FORMAT";
}

const REQUEST_NOT_INSPECTED: &str =
    "The request body could not be inspected by the AI usage policy.";
const RESPONSE_NOT_INSPECTED: &str = "The response could not be inspected by the AI usage policy.";
const REPLACE_FAILED: &str = "The gateway could not apply the AI usage policy to this message.";

pub struct Http {
    shared: Option<Rc<Shared>>,
    started_ms: u64,
    /// The request headers reached the filter. Envoy answers some requests itself before
    /// that (431 for oversized headers) and still calls `on_log`.
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
    request: Option<PhaseOutcome>,
    response: Option<PhaseOutcome>,
    /// The request body is not inspected (uninspectable and allowed).
    skip_request_body: bool,
    request_body_size: usize,
    inspect_response: bool,
    /// Bytes of response body buffered so far (the trailers callback has no size).
    response_body_size: usize,
    /// A response refused before its body was complete: what the upstream sends is dropped
    /// and this body goes out at the end.
    response_replacement: Option<Vec<u8>>,
    request_headers_held: bool,
    response_headers_held: bool,
    responded_locally: bool,
    http_status: Option<u16>,
    /// The inspection of a streamed (SSE) response.
    stream: Option<StreamInspector>,
    /// The upstream ended the response (end of stream reached the body callback).
    response_ended: bool,
    /// The candidate policy's shadow evaluation of the same exchange.
    candidate_request: Option<PhaseOutcome>,
    candidate_response: Option<PhaseOutcome>,
    candidate_stream: Option<StreamInspector>,
}

/// The candidate policy is always evaluated in shadow: judged, never enforced.
const SHADOW: RolloutDecision = RolloutDecision {
    mode: crate::policy::RolloutMode::Shadow,
    enforced: false,
    bucket: None,
    bucket_key: None,
};

impl Http {
    pub fn new(shared: Option<Rc<Shared>>) -> Http {
        Http {
            shared,
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
            request: None,
            response: None,
            skip_request_body: false,
            request_body_size: 0,
            inspect_response: false,
            response_body_size: 0,
            response_replacement: None,
            request_headers_held: false,
            response_headers_held: false,
            responded_locally: false,
            http_status: None,
            stream: None,
            response_ended: false,
            candidate_request: None,
            candidate_response: None,
            candidate_stream: None,
        }
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
    fn rollout(&mut self, shared: &Shared) -> RolloutDecision {
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
        let policy = &shared.config.policy;
        let r = rollout::decide(&policy.id, &policy.rollout, &keys);
        self.rollout = Some(r);
        r
    }

    fn resolve(
        &mut self,
        sources: &[attribution::Source],
        body: Option<&Value>,
    ) -> Option<Attributed> {
        let r = attribution::resolve(sources, &HostRequest(&self.headers), body);
        for why in r.rejected {
            if !self.attribution_rejected.contains(&why) {
                self.attribution_rejected.push(why);
            }
        }
        r.found
    }

    /// Attribution from the body, for sources that read it, when headers gave nothing.
    fn attribute_from_body(&mut self, shared: &Shared, body: Option<&Value>) {
        let cfg = &shared.config;
        let reads_body = |sources: &[attribution::Source]| {
            sources
                .iter()
                .any(|s| matches!(s, attribution::Source::BodyField { .. }))
        };
        let need_user = self.user.is_none() && reads_body(&cfg.user_sources);
        let need_project = self.project.is_none() && reads_body(&cfg.project_sources);
        if !(need_user || need_project) {
            return;
        }
        if need_user {
            self.user = self.resolve(&cfg.user_sources, body);
        }
        if need_project {
            self.project = self.resolve(&cfg.project_sources, body);
        }
    }

    /// Answers locally with a provider-shaped error body and the policy headers.
    fn respond(
        &mut self,
        status: u16,
        message: &str,
        reason_code: &str,
        decision: &str,
        held: bool,
    ) {
        let body = reply::error_body(self.format, status, message, reason_code, held);
        let headers = [
            ("content-type", "application/json"),
            ("x-policy-decision", decision),
            ("x-policy-reason", reason_code),
        ];
        if host::send_response(status, &headers, &body) {
            self.responded_locally = true;
            self.http_status = Some(status);
        }
    }

    /// A request body the filter will not inspect: refused (413/415) or allowed and flagged.
    fn uninspectable(
        &mut self,
        shared: &Shared,
        code: &str,
        detail: &str,
        status: u16,
    ) -> HostAction {
        let rollout = self.rollout(shared);
        let refuse = shared.config.on_uninspectable == OnUninspectable::Refuse;
        let message = REQUEST_NOT_INSPECTED;
        let mut outcome = engine::uninspected(
            &rollout,
            Phase::Request,
            self.request_body_size,
            code,
            detail,
            refuse.then_some((status, message)),
        );
        outcome.format = self.format;
        let respond = matches!(outcome.verdict, Verdict::Respond { .. });
        self.request = Some(outcome);
        if respond {
            self.respond(status, message, code, Action::Refuse.name(), false);
            return HostAction::Pause;
        }
        self.skip_request_body = true;
        HostAction::Continue
    }

    fn finish_request(&mut self, shared: &Shared) -> HostAction {
        // An empty body (a chunked request with no data) is judged as empty (`BODY_EMPTY`):
        // the host hands over no buffer for it.
        let body = match host::buffer(BufferType::HttpRequestBody, self.request_body_size) {
            Some(body) => body,
            None if self.request_body_size == 0 => Vec::new(),
            None => {
                shared.metrics.inspection_error();
                return self.uninspectable(
                    shared,
                    reason::BODY_UNAVAILABLE,
                    "the host returned no request body",
                    500,
                );
            }
        };
        // Parsed once: body attribution and the evaluation share it.
        let parsed = engine::parse_body(&body);
        self.attribute_from_body(shared, parsed.json());
        let rollout = self.rollout(shared);
        // The candidate judges a copy of the same parse (cheaper than parsing again).
        let candidate_parsed = shared.config.candidate.as_ref().map(|_| parsed.clone());
        self.candidate_request = self.judge_candidate(shared, Phase::Request, candidate_parsed);
        let outcome = engine::evaluate_parsed(
            &shared.config.policy,
            &self.info(),
            &rollout,
            Phase::Request,
            parsed,
        );
        if !outcome.inspected {
            shared.metrics.inspection_error();
        }
        let mut outcome = outcome;
        let action = match &outcome.verdict {
            Verdict::Forward {
                body: Some(new_body),
                ..
            } => {
                if host::replace_buffer(BufferType::HttpRequestBody, body.len(), new_body) {
                    if self.request_headers_held {
                        host::set_request_header(
                            "content-length",
                            Some(&new_body.len().to_string()),
                        );
                    }
                    HostAction::Continue
                } else {
                    // Forwarding the original would pass what the policy removed.
                    log::warn!("policy_gateway: the host refused the changed request body");
                    fail_closed(&mut outcome, 500);
                    self.format = outcome.format;
                    self.respond(
                        500,
                        REPLACE_FAILED,
                        reason::BODY_REPLACE_FAILED,
                        "refuse",
                        false,
                    );
                    HostAction::Pause
                }
            }
            Verdict::Forward { body: None, .. } => HostAction::Continue,
            Verdict::Respond {
                status,
                message,
                held,
            } => {
                let (status, message, held) = (*status, message.clone(), *held);
                let reason = outcome.reason_code.clone();
                self.format = outcome.format;
                self.respond(status, &message, &reason, outcome.decision.name(), held);
                HostAction::Pause
            }
        };
        if outcome.format != ApiFormat::Unknown {
            self.format = outcome.format;
        }
        self.request = Some(outcome);
        action
    }

    fn finish_response(&mut self, shared: &Shared, size: usize) -> HostAction {
        self.inspect_response = false;
        let body = match host::buffer(BufferType::HttpResponseBody, size) {
            Some(body) => body,
            None if size == 0 => Vec::new(),
            None => {
                return self.response_uninspectable(
                    shared,
                    reason::RESPONSE_UNAVAILABLE,
                    "the host returned no response body",
                    self.response_headers_held,
                    size,
                )
            }
        };
        let parsed = engine::parse_body(&body);
        let candidate_parsed = shared.config.candidate.as_ref().map(|_| parsed.clone());
        self.candidate_response = self.judge_candidate(shared, Phase::Response, candidate_parsed);
        let rollout = self.rollout(shared);
        let mut outcome = engine::evaluate_parsed(
            &shared.config.policy,
            &self.info(),
            &rollout,
            Phase::Response,
            parsed,
        );
        let replacement = match &outcome.verdict {
            Verdict::Forward {
                body: Some(new_body),
                ..
            } => Some((new_body.clone(), None)),
            Verdict::Respond {
                status,
                message,
                held,
            } => {
                let err =
                    reply::error_body(self.format, *status, message, &outcome.reason_code, *held);
                Some((err, Some(*status)))
            }
            Verdict::Forward { body: None, .. } => None,
        };
        if let Some((new_body, status)) = replacement {
            if host::replace_buffer(BufferType::HttpResponseBody, body.len(), &new_body) {
                if self.response_headers_held {
                    host::set_response_header("content-length", Some(&new_body.len().to_string()));
                    if let Some(status) = status {
                        // Headers are still here: the client gets the refusal's status too.
                        self.refusal_headers(status, &outcome.reason_code, outcome.decision.name());
                    }
                }
            } else {
                log::warn!("policy_gateway: the host refused the changed response body");
                fail_closed(&mut outcome, 502);
                let err = reply::error_body(
                    self.format,
                    502,
                    REPLACE_FAILED,
                    reason::BODY_REPLACE_FAILED,
                    false,
                );
                if !host::replace_buffer(BufferType::HttpResponseBody, body.len(), &err) {
                    // Nothing safe can go out: end the exchange instead.
                    host::reset_response();
                } else if self.response_headers_held {
                    host::set_response_header("content-length", Some(&err.len().to_string()));
                    self.refusal_headers(502, reason::BODY_REPLACE_FAILED, "refuse");
                }
            }
        }
        self.response = Some(outcome);
        HostAction::Continue
    }

    /// Status and policy headers of a response refused while its headers are held.
    fn refusal_headers(&mut self, status: u16, reason_code: &str, decision: &str) {
        host::set_response_header(":status", Some(&status.to_string()));
        host::set_response_header("content-type", Some("application/json"));
        host::set_response_header("content-encoding", None);
        host::set_response_header("x-policy-decision", Some(decision));
        host::set_response_header("x-policy-reason", Some(reason_code));
        self.http_status = Some(status);
    }

    /// A response the filter cannot inspect: `on_uninspectable_response` decides. Refused,
    /// its bytes are dropped as they come and the error body goes out at the end; the status
    /// changes too while the headers are still here (`headers_here`).
    fn response_uninspectable(
        &mut self,
        shared: &Shared,
        code: &str,
        detail: &str,
        headers_here: bool,
        body_bytes: usize,
    ) -> HostAction {
        self.inspect_response = false;
        let rollout = self.rollout(shared);
        let refuse = shared.config.on_uninspectable_response == OnUninspectable::Refuse;
        let mut outcome = engine::uninspected(
            &rollout,
            Phase::Response,
            body_bytes,
            code,
            detail,
            refuse.then_some((502, RESPONSE_NOT_INSPECTED)),
        );
        outcome.format = self.format;
        if let Verdict::Respond { status, .. } = outcome.verdict {
            let err = reply::error_body(self.format, status, RESPONSE_NOT_INSPECTED, code, false);
            if headers_here {
                host::set_response_header("content-length", Some(&err.len().to_string()));
                self.refusal_headers(status, code, Action::Refuse.name());
            }
            self.response_replacement = Some(err);
        }
        self.response = Some(outcome);
        if self.response_replacement.is_some() {
            // Whatever is buffered so far goes; the rest is dropped as it comes.
            if body_bytes > 0 {
                host::replace_buffer(BufferType::HttpResponseBody, body_bytes, b"");
            }
            self.response_body_size = 0;
            return HostAction::Pause;
        }
        HostAction::Continue
    }

    /// The candidate policy's shadow judgement of a body, when one is configured.
    fn judge_candidate(
        &self,
        shared: &Shared,
        phase: Phase,
        parsed: Option<engine::ParsedBody>,
    ) -> Option<PhaseOutcome> {
        let candidate = shared.config.candidate.as_ref()?;
        Some(engine::evaluate_parsed(
            candidate,
            &self.info(),
            &SHADOW,
            phase,
            parsed?,
        ))
    }
}

/// Whether Envoy itself produced this response (a 503 for a dead upstream, a 504 timeout)
/// rather than the upstream: it carries no model output, so there is nothing to inspect and
/// its status must reach the client as it is. Envoy says `via_upstream` for upstream
/// responses; a host that does not say is treated as upstream (inspected).
fn proxy_generated() -> bool {
    host::response_code_details().is_some_and(|d| !d.is_empty() && d != "via_upstream")
}

/// A changed body the host would not take: the exchange is refused instead (fail closed).
fn fail_closed(outcome: &mut PhaseOutcome, status: u16) {
    outcome.decision = Action::Refuse;
    outcome.reason_code = reason::BODY_REPLACE_FAILED.into();
    outcome.error = Some("the host did not accept the changed body".into());
    outcome.verdict = Verdict::Respond {
        status,
        message: REPLACE_FAILED.into(),
        held: false,
    };
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> HostAction {
        let Some(shared) = self.shared.clone() else {
            return HostAction::Continue;
        };
        self.saw_request = true;
        self.started_ms = host::now_ms();
        self.record_id = shared.ids.borrow_mut().next(self.started_ms);
        self.headers = host::request_headers();
        self.path = self.headers.lossy(":path");
        self.format = llm::detect_format(self.path.as_deref(), &Value::Null);
        self.request_id = match self.headers.get("x-request-id").text() {
            Some(id) if id::acceptable_request_id(id) => id.to_string(),
            _ => self.record_id.clone(),
        };
        self.user = self.resolve(&shared.config.user_sources, None);
        self.project = self.resolve(&shared.config.project_sources, None);
        if shared.config.inspect_responses {
            // A compressed response cannot be inspected: ask the upstream for plain bytes
            // (clients' `gzip` defaults would otherwise carry output past every rule).
            host::set_request_header("accept-encoding", Some("identity"));
        }
        if end_of_stream {
            let rollout = self.rollout(&shared);
            let mut o = engine::uninspected(
                &rollout,
                Phase::Request,
                0,
                "NO_BODY",
                "request has no body",
                None,
            );
            o.format = self.format;
            self.request = Some(o);
            return HostAction::Continue;
        }
        if !self.headers.declares_json() {
            return self.uninspectable(&shared, "BODY_NOT_JSON", "content-type is not JSON", 415);
        }
        if self.headers.encoded() {
            return self.uninspectable(
                &shared,
                "BODY_COMPRESSED",
                "content-encoding is not identity",
                415,
            );
        }
        let declared = self
            .headers
            .get("content-length")
            .text()
            .and_then(|v| v.trim().parse::<usize>().ok());
        if declared.is_some_and(|n| n > shared.config.max_body_bytes) {
            self.request_body_size = declared.unwrap_or(0);
            return self.uninspectable(
                &shared,
                "BODY_TOO_LARGE",
                "body exceeds max_body_bytes",
                413,
            );
        }
        if shared.config.hold_headers {
            // Nothing reaches the upstream before the body is judged; `content-length` stays
            // (re-chunking every request costs both hops) and is corrected if the body changes.
            self.request_headers_held = true;
            return HostAction::Pause;
        }
        // The body may change length after the headers have gone.
        host::set_request_header("content-length", None);
        HostAction::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> HostAction {
        let Some(shared) = self.shared.clone() else {
            return HostAction::Continue;
        };
        if self.skip_request_body || self.request.is_some() {
            return HostAction::Continue;
        }
        self.request_body_size = body_size;
        if body_size > shared.config.max_body_bytes {
            return self.uninspectable(
                &shared,
                "BODY_TOO_LARGE",
                "body exceeds max_body_bytes",
                413,
            );
        }
        if !end_of_stream {
            return HostAction::Pause;
        }
        self.finish_request(&shared)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> HostAction {
        let Some(shared) = self.shared.clone() else {
            return HostAction::Continue;
        };
        if self.skip_request_body || self.request.is_some() {
            return HostAction::Continue;
        }
        self.finish_request(&shared)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> HostAction {
        let Some(shared) = self.shared.clone() else {
            return HostAction::Continue;
        };
        if self.responded_locally {
            return HostAction::Continue;
        }
        let headers = host::response_headers();
        self.http_status = headers.get(":status").text().and_then(|s| s.parse().ok());
        if let (Some(req), Some(rollout)) = (&self.request, &self.rollout) {
            if rollout.enforced && req.decision != Action::Allow {
                host::set_response_header("x-policy-decision", Some(req.decision.name()));
                host::set_response_header("x-policy-reason", Some(&req.reason_code));
            }
        }
        if !shared.config.inspect_responses || end_of_stream || proxy_generated() {
            return HostAction::Continue;
        }
        let sse = headers.declares_event_stream();
        let unknown_stream = matches!(
            self.format,
            ApiFormat::Unknown | ApiFormat::OpenaiEmbeddings
        );
        let problem = if headers.encoded() {
            Some((
                reason::RESPONSE_COMPRESSED,
                "content-encoding is not identity",
            ))
        } else if !sse && !headers.declares_json() {
            Some((reason::RESPONSE_NOT_JSON, "content-type is not JSON"))
        } else if sse && unknown_stream {
            Some((
                reason::RESPONSE_STREAM_UNKNOWN_FORMAT,
                "streamed output of an API this filter does not know",
            ))
        } else {
            None
        };
        if let Some((code, detail)) = problem {
            // The headers are still here whatever `hold_headers` says: this callback has
            // not returned yet.
            return match self.response_uninspectable(&shared, code, detail, true, 0) {
                // Refused: headers now carry the refusal; go on with them.
                HostAction::Pause => HostAction::Continue,
                action => action,
            };
        }
        if sse {
            // Streams are inspected as they pass: headers go on at once (no added time
            // to first byte beyond the hold-back of text).
            let rollout = self.rollout(&shared);
            let cfg = &shared.config;
            self.stream = Some(StreamInspector::with_holdback(
                cfg.stream_holdback,
                self.format,
                rollout.enforced,
                cfg.stream_limits,
            ));
            self.candidate_stream = cfg.candidate_holdback.map(|hold| {
                StreamInspector::with_holdback(hold, self.format, false, cfg.stream_limits)
            });
            host::set_response_header("content-length", None);
            return HostAction::Continue;
        }
        self.inspect_response = true;
        if shared.config.hold_headers {
            // `content-length` stays, corrected if the body changes.
            self.response_headers_held = true;
            return HostAction::Pause;
        }
        host::set_response_header("content-length", None);
        HostAction::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> HostAction {
        let Some(shared) = self.shared.clone() else {
            return HostAction::Continue;
        };
        if let Some(err) = &self.response_replacement {
            // A refused response: drop what the upstream sends, the refusal goes out last.
            if end_of_stream {
                host::replace_buffer(BufferType::HttpResponseBody, body_size, err);
                self.response_replacement = None;
                return HostAction::Continue;
            }
            host::replace_buffer(BufferType::HttpResponseBody, body_size, b"");
            return HostAction::Pause;
        }
        if let Some(stream) = self.stream.as_mut() {
            let policy = &shared.config.policy;
            let chunk = host::buffer(BufferType::HttpResponseBody, body_size).unwrap_or_default();
            let mut out = stream.push(policy, &chunk);
            if end_of_stream {
                self.response_ended = true;
                out.extend(stream.finish(policy, StreamEnd::UpstreamIncomplete));
            }
            if let (Some(c), Some(candidate)) =
                (self.candidate_stream.as_mut(), &shared.config.candidate)
            {
                // The candidate sees what the upstream sent; its output goes nowhere.
                c.push(candidate, &chunk);
                if end_of_stream {
                    c.finish(candidate, StreamEnd::UpstreamIncomplete);
                }
            }
            if out != chunk
                && !host::replace_buffer(BufferType::HttpResponseBody, chunk.len(), &out)
            {
                // What went unchanged would carry what the policy held back or removed.
                log::warn!("policy_gateway: the host refused a changed stream chunk");
                host::reset_response();
            }
            return HostAction::Continue;
        }
        if !self.inspect_response {
            return HostAction::Continue;
        }
        self.response_body_size = body_size;
        if body_size > shared.config.max_body_bytes {
            let held = self.response_headers_held;
            return self.response_uninspectable(
                &shared,
                reason::RESPONSE_TOO_LARGE,
                "response exceeds max_body_bytes",
                held,
                body_size,
            );
        }
        if !end_of_stream {
            return HostAction::Pause;
        }
        self.finish_response(&shared, body_size)
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> HostAction {
        let Some(shared) = self.shared.clone() else {
            return HostAction::Continue;
        };
        if let Some(err) = self.response_replacement.take() {
            host::replace_buffer(BufferType::HttpResponseBody, self.response_body_size, &err);
            return HostAction::Continue;
        }
        if self.inspect_response {
            // An upstream that ends with trailers (HTTP/2) never delivers end of stream to
            // the body callback: the body is complete now, and still buffered.
            let size = self.response_body_size;
            return self.finish_response(&shared, size);
        }
        // A stream: text still held cannot be sent any more (no body callback follows); the
        // record says how the stream ended.
        if self.stream.is_some() {
            self.response_ended = true;
        }
        HostAction::Continue
    }

    fn on_log(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let now = host::now_ms();
        if !self.saw_request {
            // Envoy answered this request itself (431 headers too large, a codec error)
            // before any filter ran: still one record, with a gateway id.
            self.started_ms = now;
            self.record_id = shared.ids.borrow_mut().next(now);
            self.request_id = self.record_id.clone();
        }
        if self.http_status.is_none() {
            self.http_status = host::property_int(&["response", "code"])
                .and_then(|c| u16::try_from(c).ok())
                .filter(|&c| c > 0);
        }
        let rollout = self.rollout(&shared);
        let request = match self.request.take() {
            Some(r) => r,
            None => {
                let details = host::response_code_details().unwrap_or_default();
                let (code, what) = if self.saw_request {
                    (
                        reason::REQUEST_INCOMPLETE,
                        "the request body never completed",
                    )
                } else {
                    (
                        reason::PROXY_REJECTED,
                        "the proxy answered before the filter ran",
                    )
                };
                let detail = if details.is_empty() {
                    what.to_string()
                } else {
                    format!("{what} ({})", record::clip(&details, 128))
                };
                // Nothing the policy could judge reached the upstream: refused, whoever
                // ended it.
                let mut o = engine::uninspected(
                    &rollout,
                    Phase::Request,
                    self.request_body_size,
                    code,
                    &detail,
                    Some((self.http_status.unwrap_or(0), what)),
                );
                o.format = self.format;
                o
            }
        };
        let mut response = self.response.take();
        let streamed = self.stream.is_some() || self.candidate_stream.is_some();
        // Only a stream asks how the response ended (one host call, not on every request).
        let end = if self.response_ended || !streamed {
            StreamEnd::UpstreamIncomplete
        } else if host::response_code_details()
            .unwrap_or_default()
            .contains("downstream")
        {
            StreamEnd::ClientDisconnected
        } else {
            StreamEnd::UpstreamDisconnected
        };
        if let Some(mut stream) = self.stream.take() {
            let policy = &shared.config.policy;
            stream.finish(policy, end);
            response = Some(stream.outcome(policy, request.text_bytes));
        }
        let record_id = self.record_id.clone();
        let policy = &shared.config.policy;
        let mut record = AuditRecord::build(
            policy,
            &self.info(),
            &rollout,
            &request,
            response.as_ref(),
            RecordMeta {
                record_id: &record_id,
                epoch_ms: now,
            },
        );
        record.policy_user_source = self.user.as_ref().map(|a| a.source.clone());
        record.policy_user_verified = self.user.as_ref().map(|a| a.verified);
        record.policy_project_source = self.project.as_ref().map(|a| a.source.clone());
        record.attribution_rejected = std::mem::take(&mut self.attribution_rejected);
        record.http_status = self.http_status;
        record.duration_ms = Some(now.saturating_sub(self.started_ms));
        record.gateway = Some(shared.config.instance_id.clone());
        if let Some(candidate) = &shared.config.candidate {
            // Where the candidate had nothing of its own to judge (no body, uninspectable,
            // answered locally), it saw what the active policy saw.
            let c_request = self
                .candidate_request
                .take()
                .unwrap_or_else(|| request.clone());
            let c_response = match self.candidate_stream.take() {
                Some(mut s) => {
                    s.finish(candidate, end);
                    Some(s.outcome(candidate, request.text_bytes))
                }
                // A response the active policy did not inspect (not JSON, compressed, too
                // large) was not inspected for the candidate either.
                None => self
                    .candidate_response
                    .take()
                    .or_else(|| response.as_ref().filter(|r| !r.inspected).cloned()),
            };
            let c_record = AuditRecord::build(
                candidate,
                &self.info(),
                &SHADOW,
                &c_request,
                c_response.as_ref(),
                RecordMeta {
                    record_id: &record_id,
                    epoch_ms: now,
                },
            );
            record.candidate = Some(CandidateDecision::of(&c_record));
        }
        let decision = response
            .as_ref()
            .filter(|r| r.decision > request.decision)
            .map_or(request.decision, |r| r.decision);
        shared.metrics.decision(decision, rollout.mode);
        shared.emit(&record, now);
    }
}
