//! The audit record: one per exchange, carrying the request decision and, when the response
//! was inspected, the response decision. It holds no prompt or output text unless the policy
//! opts in with `include_content`, and then only redacted text.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::stream::StreamSummary;
use crate::engine::{ContentItem, PhaseOutcome, RequestInfo};
use crate::llm::Usage;
use crate::policy::document::EscalateMode;
use crate::policy::rollout::RolloutDecision;
use crate::policy::{Action, Policy};

/// Bumped on any change a consumer could notice (renamed or retyped field).
pub const SCHEMA_VERSION: &str = "1.0";

/// The decision of one phase, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseRecord {
    pub decision: &'static str,
    pub reason_code: String,
    pub triggered_rules: Vec<String>,
    /// False when the body was not inspected (unparseable, unsupported format).
    pub inspected: bool,
    pub segments: u32,
    pub body_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A streamed response: how it ended, events, hold-back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamSummary>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UsageRecord {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
}

impl From<Usage> for UsageRecord {
    fn from(u: Usage) -> Self {
        UsageRecord {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
        }
    }
}

/// One audit record. Field order is the serialized order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub schema_version: &'static str,
    pub record_type: &'static str,
    pub record_id: String,
    pub request_id: String,
    /// ISO 8601 UTC with milliseconds.
    pub timestamp: String,
    /// The most severe decision of the exchange.
    pub decision: &'static str,
    pub reason_code: String,
    /// `<policy id>@<version>`.
    pub policy_id: String,
    pub policy_user: Option<String>,
    pub policy_project_id: Option<String>,
    /// Where `policy_user` came from (`header:x-user-id`, `jwt_authn:sub`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_user_source: Option<String>,
    /// False when the user came from a source the client controls (unverified JWT, body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_user_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_project_source: Option<String>,
    pub rollout_mode: &'static str,
    /// Whether the decision was applied to the traffic (false in shadow and canary control).
    pub enforced: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_bucket: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_key: Option<&'static str>,
    pub triggered_categories: Vec<String>,
    pub triggered_rules: Vec<String>,
    /// The phase whose decision is `decision`: `request` or `response`.
    pub phase: &'static str,
    pub provider: &'static str,
    pub api_format: &'static str,
    /// The model the client asked for: the one the request path names (Azure deployment,
    /// Bedrock or Vertex AI model id) when it names one, else the body's `model`.
    pub model: Option<String>,
    /// The body's `model` when the path named the model (the upstream serves the path's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_model: Option<String>,
    /// The model the upstream says it served, when the response was inspected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_model: Option<String>,
    pub stream: bool,
    pub request: PhaseRecord,
    /// Absent when there was no response to inspect (answered locally, or not yet seen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<PhaseRecord>,
    /// Entities found by matching rules, by detector (`keyword` and `pattern` for lists and
    /// custom regexes). Counts only; never the entities.
    pub detections: BTreeMap<String, u32>,
    /// Spans redacted (or, when not enforced, that would have been), by detector.
    pub redactions: BTreeMap<String, u32>,
    /// Body rewrites applied (or that would have been).
    pub rewrites: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageRecord>,
    /// True when `usage` is (partly) estimated from text length: the stream reported none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_estimated: Option<bool>,
    /// The HTTP status the client got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Time from request headers to the end of the exchange at the gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The gateway instance that decided (`instance_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The candidate policy's shadow decision, when one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<CandidateDecision>,
    /// Redacted inspected text; only with `include_content`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ContentItem>>,
}

fn phase_record(o: &PhaseOutcome) -> PhaseRecord {
    PhaseRecord {
        decision: o.decision.name(),
        reason_code: o.reason_code.clone(),
        triggered_rules: o.triggered_rules.clone(),
        inspected: o.inspected,
        segments: o.segments,
        body_bytes: o.body_bytes,
        error: o.error.clone(),
        stream: o.stream_summary.clone(),
    }
}

fn escalation_name(mode: EscalateMode) -> &'static str {
    match mode {
        EscalateMode::Hold => "hold",
        EscalateMode::Flag => "flag",
    }
}

/// The candidate policy's shadow decision on the same exchange (never enforced).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateDecision {
    pub policy_id: String,
    pub decision: &'static str,
    pub reason_code: String,
    pub triggered_categories: Vec<String>,
    pub triggered_rules: Vec<String>,
}

impl CandidateDecision {
    /// The candidate's part of a record built from its own outcomes.
    pub fn of(candidate: &AuditRecord) -> CandidateDecision {
        CandidateDecision {
            policy_id: candidate.policy_id.clone(),
            decision: candidate.decision,
            reason_code: candidate.reason_code.clone(),
            triggered_categories: candidate.triggered_categories.clone(),
            triggered_rules: candidate.triggered_rules.clone(),
        }
    }
}

/// Everything a record is built from besides the policy and the outcomes.
#[derive(Debug, Clone, Copy)]
pub struct RecordMeta<'a> {
    pub record_id: &'a str,
    pub epoch_ms: u64,
}

impl AuditRecord {
    /// Builds the record of an exchange from its phase outcomes.
    pub fn build(
        policy: &Policy,
        info: &RequestInfo<'_>,
        rollout: &RolloutDecision,
        request: &PhaseOutcome,
        response: Option<&PhaseOutcome>,
        meta: RecordMeta<'_>,
    ) -> AuditRecord {
        // The response decides when it is strictly more severe than the request, or when
        // both allow and only the response has something to say (a stream cut midway, an
        // uninspected response).
        let deciding = match response {
            Some(r) if r.decision > request.decision => r,
            Some(r)
                if r.decision == request.decision
                    && request.reason_code == crate::engine::reason::NO_RULE_MATCHED
                    && r.reason_code != crate::engine::reason::NO_RULE_MATCHED =>
            {
                r
            }
            _ => request,
        };
        let mut triggered_rules = request.triggered_rules.clone();
        let mut triggered_categories = request.triggered_categories.clone();
        let mut detections = request.detections.clone();
        let mut redactions = request.redactions.clone();
        let mut rewrites = request.rewrites.clone();
        let mut content = request.content.clone();
        if let Some(r) = response {
            for id in &r.triggered_rules {
                if !triggered_rules.contains(id) {
                    triggered_rules.push(id.clone());
                }
            }
            for c in &r.triggered_categories {
                if !triggered_categories.contains(c) {
                    triggered_categories.push(c.clone());
                }
            }
            for (k, v) in &r.detections {
                *detections.entry(k.clone()).or_insert(0) += v;
            }
            for (k, v) in &r.redactions {
                *redactions.entry(k.clone()).or_insert(0) += v;
            }
            rewrites.extend(r.rewrites.iter().copied());
            if let Some(items) = &r.content {
                content
                    .get_or_insert_with(Vec::new)
                    .extend(items.iter().cloned());
            }
        }
        let escalation = (deciding.decision == Action::Escalate)
            .then_some(deciding.escalation)
            .flatten()
            .map(escalation_name);
        AuditRecord {
            schema_version: SCHEMA_VERSION,
            record_type: "decision",
            record_id: meta.record_id.to_string(),
            request_id: info.request_id.to_string(),
            timestamp: super::time::iso8601_millis(meta.epoch_ms),
            decision: deciding.decision.name(),
            reason_code: deciding.reason_code.clone(),
            policy_id: policy.policy_id.clone(),
            policy_user: info.user.map(str::to_string),
            policy_project_id: info.project.map(str::to_string),
            policy_user_source: None,
            policy_user_verified: None,
            policy_project_source: None,
            rollout_mode: rollout.mode.name(),
            enforced: rollout.enforced,
            canary_bucket: rollout.bucket,
            canary_key: rollout.bucket_key.map(|k| k.name()),
            triggered_categories,
            triggered_rules,
            phase: deciding.phase.name(),
            provider: request.format.provider(),
            api_format: request.format.name(),
            model: request.model.clone(),
            body_model: request.body_model.clone(),
            response_model: response.and_then(|r| r.model.clone()),
            stream: request.stream,
            request: phase_record(request),
            response: response.map(phase_record),
            detections,
            redactions,
            rewrites,
            escalation,
            usage: response.and_then(|r| r.usage).map(UsageRecord::from),
            usage_estimated: response
                .filter(|r| r.usage.is_some())
                .map(|r| r.usage_estimated),
            http_status: None,
            duration_ms: None,
            gateway: None,
            candidate: None,
            content,
        }
    }

    /// The record as one line of JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of strings, numbers and maps with string keys cannot
        // fail; fall back to a minimal record rather than panicking if it ever did.
        serde_json::to_string(self).unwrap_or_else(|_| {
            format!(
                "{{\"schema_version\":\"{}\",\"record_id\":\"{}\",\"error\":\"serialization\"}}",
                SCHEMA_VERSION, self.record_id
            )
        })
    }
}
