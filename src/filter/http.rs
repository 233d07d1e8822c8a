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
use crate::audit::record::{CandidateDecision, RecordMeta};
use crate::audit::AuditRecord;
use crate::config::attribution::{self, Attributed};
use crate::config::OnUninspectable;
use crate::engine::stream::{StreamEnd, StreamInspector};
use crate::engine::{self, reply, PhaseOutcome, RequestInfo, Verdict};
use crate::llm::{self, ApiFormat, Phase};
use crate::policy::rollout::RolloutDecision;
use crate::policy::Action;

pub struct Http {
    shared: Option<Rc<Shared>>,
    started_ms: u64,
    request_id: String,
    path: Option<String>,
    format: ApiFormat,
    user: Option<Attributed>,
    project: Option<Attributed>,
    rollout: Option<RolloutDecision>,
    request: Option<PhaseOutcome>,
    response: Option<PhaseOutcome>,
    /// The request body is not inspected (uninspectable and allowed).
    skip_request_body: bool,
    request_body_size: usize,
    inspect_response: bool,
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
            request_id: String::new(),
            path: None,
            format: ApiFormat::Unknown,
            user: None,
            project: None,
            rollout: None,
            request: None,
            response: None,
            skip_request_body: false,
            request_body_size: 0,
            inspect_response: false,
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

    fn rollout(&mut self, shared: &Shared) -> RolloutDecision {
        if let Some(r) = self.rollout {
            return r;
        }
        let r = engine::rollout(&shared.config.policy, &self.info());
        self.rollout = Some(r);
        r
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
            self.user = attribution::resolve(&cfg.user_sources, &HostRequest(None), body);
        }
        if need_project {
            self.project = attribution::resolve(&cfg.project_sources, &HostRequest(None), body);
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
        let message = "The request body could not be inspected by the AI usage policy.";
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
        let Some(body) = host::buffer(BufferType::HttpRequestBody, self.request_body_size) else {
            shared.metrics.inspection_error();
            return self.uninspectable(
                shared,
                "BODY_UNAVAILABLE",
                "the host returned no request body",
                500,
            );
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
        let action = match &outcome.verdict {
            Verdict::Forward {
                body: Some(new_body),
                ..
            } => {
                if !host::replace_buffer(BufferType::HttpRequestBody, body.len(), new_body) {
                    log::warn!(
                        "policy_gateway: could not replace the request body of {}",
                        self.request_id
                    );
                } else if self.request_headers_held {
                    host::set_request_header("content-length", Some(&new_body.len().to_string()));
                }
                HostAction::Continue
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
        let Some(body) = host::buffer(BufferType::HttpResponseBody, size) else {
            return HostAction::Continue;
        };
        let parsed = engine::parse_body(&body);
        let candidate_parsed = shared.config.candidate.as_ref().map(|_| parsed.clone());
        self.candidate_response = self.judge_candidate(shared, Phase::Response, candidate_parsed);
        let rollout = self.rollout(shared);
        let outcome = engine::evaluate_parsed(
            &shared.config.policy,
            &self.info(),
            &rollout,
            Phase::Response,
            parsed,
        );
        match &outcome.verdict {
            Verdict::Forward {
                body: Some(new_body),
                ..
            } => {
                if host::replace_buffer(BufferType::HttpResponseBody, body.len(), new_body)
                    && self.response_headers_held
                {
                    host::set_response_header("content-length", Some(&new_body.len().to_string()));
                }
            }
            Verdict::Respond {
                status,
                message,
                held,
            } => {
                let err =
                    reply::error_body(self.format, *status, message, &outcome.reason_code, *held);
                host::replace_buffer(BufferType::HttpResponseBody, body.len(), &err);
                if self.response_headers_held {
                    host::set_response_header("content-length", Some(&err.len().to_string()));
                    // Headers are still here: the client gets the refusal's status too.
                    host::set_response_header(":status", Some(&status.to_string()));
                    host::set_response_header("x-policy-decision", Some(outcome.decision.name()));
                    host::set_response_header("x-policy-reason", Some(&outcome.reason_code));
                    self.http_status = Some(*status);
                }
            }
            Verdict::Forward { body: None, .. } => {}
        }
        self.response = Some(outcome);
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

    fn response_not_inspected(&mut self, shared: &Shared, code: &str, detail: &str) {
        let rollout = self.rollout(shared);
        self.response = Some(engine::uninspected(
            &rollout,
            Phase::Response,
            0,
            code,
            detail,
            None,
        ));
    }
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> HostAction {
        let Some(shared) = self.shared.clone() else {
            return HostAction::Continue;
        };
        self.started_ms = host::now_ms();
        let headers = host::Headers::request();
        self.path = headers.get(":path").map(str::to_string);
        self.format = llm::detect_format(self.path.as_deref(), &Value::Null);
        self.request_id = match headers.get("x-request-id") {
            Some(id) if !id.is_empty() && id.len() <= 128 => id.to_string(),
            _ => shared.ids.borrow_mut().next(self.started_ms),
        };
        let view = HostRequest(Some(&headers));
        self.user = attribution::resolve(&shared.config.user_sources, &view, None);
        self.project = attribution::resolve(&shared.config.project_sources, &view, None);
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
        let content_type = headers
            .get("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !content_type.is_empty() && !content_type.contains("json") {
            return self.uninspectable(&shared, "BODY_NOT_JSON", "content-type is not JSON", 415);
        }
        if let Some(enc) = headers.get("content-encoding") {
            if !enc.eq_ignore_ascii_case("identity") {
                return self.uninspectable(
                    &shared,
                    "BODY_COMPRESSED",
                    "content-encoding is not identity",
                    415,
                );
            }
        }
        let declared = headers
            .get("content-length")
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
        let headers = host::Headers::response();
        self.http_status = headers.get(":status").and_then(|s| s.parse().ok());
        if let (Some(req), Some(rollout)) = (&self.request, &self.rollout) {
            if rollout.enforced && req.decision != Action::Allow {
                host::set_response_header("x-policy-decision", Some(req.decision.name()));
                host::set_response_header("x-policy-reason", Some(&req.reason_code));
            }
        }
        if !shared.config.inspect_responses || end_of_stream {
            return HostAction::Continue;
        }
        let content_type = headers
            .get("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let sse = content_type.contains("text/event-stream");
        if !sse && !content_type.contains("json") {
            self.response_not_inspected(&shared, "RESPONSE_NOT_JSON", "content-type is not JSON");
            return HostAction::Continue;
        }
        if headers
            .get("content-encoding")
            .is_some_and(|e| !e.eq_ignore_ascii_case("identity"))
        {
            self.response_not_inspected(
                &shared,
                "RESPONSE_COMPRESSED",
                "content-encoding is not identity",
            );
            return HostAction::Continue;
        }
        if sse {
            if matches!(
                self.format,
                ApiFormat::Unknown | ApiFormat::OpenaiEmbeddings
            ) {
                self.response_not_inspected(
                    &shared,
                    "RESPONSE_STREAM_UNKNOWN_FORMAT",
                    "streamed output of an API this filter does not know",
                );
                return HostAction::Continue;
            }
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
            if out != chunk {
                host::replace_buffer(BufferType::HttpResponseBody, chunk.len(), &out);
            }
            return HostAction::Continue;
        }
        if !self.inspect_response {
            return HostAction::Continue;
        }
        if body_size > shared.config.max_body_bytes {
            self.inspect_response = false;
            self.response_not_inspected(
                &shared,
                "RESPONSE_TOO_LARGE",
                "response exceeds max_body_bytes",
            );
            return HostAction::Continue;
        }
        if !end_of_stream {
            return HostAction::Pause;
        }
        self.inspect_response = false;
        self.finish_response(&shared, body_size)
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> HostAction {
        // An upstream that ends with trailers (HTTP/2) never delivers end of stream to the
        // body callback: the response did end. Text still held cannot be sent any more (the
        // body is gone by now); the record says how the stream ended.
        if self.stream.is_some() {
            self.response_ended = true;
        }
        HostAction::Continue
    }

    fn on_log(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let rollout = self.rollout(&shared);
        let request = match self.request.take() {
            Some(r) => r,
            None => engine::uninspected(
                &rollout,
                Phase::Request,
                self.request_body_size,
                "STREAM_INCOMPLETE",
                "the stream ended before the request body was complete",
                None,
            ),
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
        let now = host::now_ms();
        let record_id = shared.ids.borrow_mut().next(now);
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
