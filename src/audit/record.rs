//! The audit record: one per exchange, carrying the request decision and, when the response
//! was inspected, the response decision. It holds no prompt or output text unless the policy
//! opts in with `include_content`, and then only redacted text.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::pseudonym::PseudonymCounts;
use crate::engine::stream::StreamSummary;
use crate::engine::{ContentItem, PhaseOutcome, RequestInfo};
use crate::llm::Usage;
use crate::policy::document::EscalateMode;
use crate::policy::rollout::RolloutDecision;
use crate::policy::{Action, Policy};

/// Bumped on any change a consumer could notice. 1.1: `model` is the model served (the
/// path's, for Azure deployments and Bedrock), the body's is `body_model`; new fields
/// `attribution_rejected` and `truncated`; gap records carry `cause` and `vm`. 1.2: every
/// record carries `chain` and ships in canonical form (RFC 8785); `checkpoint` records; gap
/// records name the sequence range lost (`lost_chain`, `from_seq`, `to_seq`). 1.3:
/// `pseudonyms` (counts of values pseudonymised, restored and past the vault's bound);
/// phase records carry `prompt_injection_score`.
pub const SCHEMA_VERSION: &str = "1.3";

/// Longest value kept of a field a client chooses (model names, ids, error details).
pub const MAX_FIELD_BYTES: usize = 256;

/// Largest serialized record: a record over it loses its `content` (and says so), so one
/// exchange cannot crowd other records out of a sink buffer or a batch.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// A client-chosen value made safe for a SIEM: control characters (C0, DEL, C1, which a
/// terminal or a log viewer may interpret) and bidirectional overrides (which make a
/// viewer show text in another order) removed; cut to `max` bytes on a character boundary,
/// ending in `…` when cut (when `max` has room for it).
pub fn clip(value: &str, max: usize) -> String {
    // Printable ASCII within the bound (ids, models, names): nothing to remove or cut, so no
    // walk character by character (~750 instructions for a request id).
    if value.len() <= max && value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return value.to_owned();
    }
    clip_chars(value, max)
}

/// [`clip`] character by character.
fn clip_chars(value: &str, max: usize) -> String {
    let bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let mut out = String::with_capacity(value.len().min(max));
    for c in value.chars().filter(|&c| !c.is_control() && !bidi(c)) {
        if out.len() + c.len_utf8() > max {
            // Marked when the mark fits at all (then the loop ends at the latest on empty).
            if '…'.len_utf8() <= max {
                while out.len() + '…'.len_utf8() > max {
                    out.pop();
                }
                out.push('…');
            }
            break;
        }
        out.push(c);
    }
    out
}

fn clip_field(value: &str) -> String {
    clip(value, MAX_FIELD_BYTES)
}

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
    /// The highest prompt-injection score (0–1, two decimals) of the texts a
    /// prompt-injection rule inspected; absent when none did. Never any text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_injection_score: Option<f64>,
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
    /// Identity sources that were present but unusable (`header:x-user-id: x-user-id
    /// repeated`): a sign that a client tried to set an identity the edge should strip.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attribution_rejected: Vec<String>,
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
    /// Reversible pseudonymisation, by detector: values of the request replaced by tokens
    /// (`pseudonymised`), tokens of the response given back (`restored`), values redacted one
    /// way because the exchange's vault was full (`overflow`). Counts only; absent when none.
    #[serde(skip_serializing_if = "PseudonymCounts::is_empty")]
    pub pseudonyms: PseudonymCounts,
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
    /// True when `content` was dropped to keep the record under [`MAX_RECORD_BYTES`].
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

fn phase_record(o: &PhaseOutcome) -> PhaseRecord {
    PhaseRecord {
        decision: o.decision.name(),
        reason_code: o.reason_code.clone(),
        triggered_rules: o.triggered_rules.clone(),
        inspected: o.inspected,
        segments: o.segments,
        body_bytes: o.body_bytes,
        error: o.error.as_deref().map(clip_field),
        stream: o.stream_summary.clone(),
        prompt_injection_score: o.injection_score.map(|s| (s * 100.0).round() / 100.0),
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
        let mut pseudonyms = request.pseudonyms.clone();
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
            pseudonyms.merge(&r.pseudonyms);
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
            request_id: clip_field(info.request_id),
            timestamp: super::time::iso8601_millis(meta.epoch_ms),
            decision: deciding.decision.name(),
            reason_code: deciding.reason_code.clone(),
            policy_id: policy.policy_id.clone(),
            policy_user: info.user.map(clip_field),
            policy_project_id: info.project.map(clip_field),
            policy_user_source: None,
            policy_user_verified: None,
            policy_project_source: None,
            attribution_rejected: Vec::new(),
            rollout_mode: rollout.mode.name(),
            enforced: rollout.enforced,
            canary_bucket: rollout.bucket,
            canary_key: rollout.bucket_key.map(|k| k.name()),
            triggered_categories,
            triggered_rules,
            phase: deciding.phase.name(),
            provider: request.format.provider(),
            api_format: request.format.name(),
            model: request.model.as_deref().map(clip_field),
            body_model: request.body_model.as_deref().map(clip_field),
            response_model: response.and_then(|r| r.model.as_deref()).map(clip_field),
            stream: request.stream,
            request: phase_record(request),
            response: response.map(phase_record),
            detections,
            redactions,
            pseudonyms,
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
            truncated: false,
        }
    }

    /// The record as one line of JSON, at most [`MAX_RECORD_BYTES`]: over it, `content` is
    /// dropped and `truncated` set (every other field is bounded already).
    pub fn to_json(&self) -> String {
        let json = self.serialize();
        if json.len() <= MAX_RECORD_BYTES || self.content.is_none() {
            return json;
        }
        let mut smaller = self.clone();
        smaller.content = None;
        smaller.truncated = true;
        smaller.serialize()
    }

    /// The record's members, bounded as [`Self::to_json`] is: what `Chain::link_members`
    /// canonicalises, the reference the chain's typed writer (`audit::canonical`, which
    /// decision records go through) is tested against.
    pub fn to_members(&self) -> serde_json::Map<String, serde_json::Value> {
        let members = |r: &AuditRecord| match serde_json::to_value(r) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            _ => None,
        };
        let Some(m) = members(self) else {
            // As `serialize` falls back (never seen: these are plain structs), without
            // compiling the record's serialiser to text a second time into the module.
            let mut m = serde_json::Map::new();
            m.insert("schema_version".into(), SCHEMA_VERSION.into());
            m.insert("record_id".into(), self.record_id.clone().into());
            m.insert("error".into(), "serialization".into());
            return m;
        };
        let too_big = || serde_json::to_string(&m).map_or(0, |s| s.len()) > MAX_RECORD_BYTES;
        if self.content.is_none() || !too_big() {
            return m;
        }
        let mut smaller = self.clone();
        smaller.content = None;
        smaller.truncated = true;
        members(&smaller).unwrap_or_default()
    }

    fn serialize(&self) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{self, RequestInfo};
    use crate::llm::Phase;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn policy(include_content: bool) -> Policy {
        let doc = serde_json::json!({"id": "p", "version": "1", "include_content": include_content,
            "rules": [{"id": "m", "category": "model.approved", "match": {"models": {"allow": ["gpt-4o*"]}},
                "action": "refuse", "reason_code": "MODEL_NOT_APPROVED"}]});
        Policy::from_json(&serde_json::to_vec(&doc).unwrap()).unwrap()
    }

    fn record(policy: &Policy, body: &[u8], info: &RequestInfo<'_>) -> AuditRecord {
        let rollout = engine::rollout(policy, info);
        let req = engine::evaluate(policy, info, &rollout, Phase::Request, body);
        let meta = RecordMeta {
            record_id: "r",
            epoch_ms: 0,
        };
        AuditRecord::build(policy, info, &rollout, &req, None, meta)
    }

    #[test]
    fn clip_removes_controls_and_bidi_and_cuts_on_a_char_boundary() {
        assert_eq!(clip("gpt-4o\u{1b}[31m\r\n\u{202e}x", 64), "gpt-4o[31mx");
        assert_eq!(clip("ab\u{85}c", 64), "abc");
        let cut = clip(&"é".repeat(200), 11);
        assert_eq!(cut, "éééé…");
        assert!(cut.len() <= 11);
        assert_eq!(clip("short", 256), "short");
    }

    /// A bound too small for `…` cuts without it (it looped forever, popping an empty string).
    #[test]
    fn clip_below_the_marks_size_cuts_without_it() {
        assert_eq!(clip("abcdef", 2), "ab");
        assert_eq!(clip("é\u{1b}abc", 2), "é");
        assert_eq!(clip("abcdef", 0), "");
        assert_eq!(clip("abcdef", 3), "…");
    }

    #[test]
    fn clip_of_printable_ascii_is_the_walk_by_character() {
        let pieces = [
            "a", "Z", " ", "~", "\u{7f}", "\u{1f}", "\t", "\u{85}", "\u{9f}", "\u{a0}", "é",
            "\u{202e}", "\u{2066}", "\u{200e}", "…", "🙂", "gpt-4o", "-", "\u{0}",
        ];
        let mut seed = 11u64;
        for _ in 0..20_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = (seed >> 40) as usize % 12;
            let ascii_only = seed & 1 == 0;
            let mut s = String::new();
            for k in 0..n {
                let p = pieces[((seed >> (k * 5 % 30)) as usize + k) % pieces.len()];
                if !ascii_only || p.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                    s.push_str(p);
                }
            }
            let max = (seed >> 20) as usize % 43;
            assert_eq!(clip(&s, max), clip_chars(&s, max), "{s:?} {max}");
        }
    }

    #[test]
    fn a_huge_client_model_is_clipped_in_the_record() {
        let p = policy(false);
        let model = format!("gpt-4o{}\u{1b}]0;evil\u{7}", "x".repeat(900_000));
        let body = serde_json::to_vec(&serde_json::json!({"model": model,
            "messages": [{"role": "user", "content": "hi"}]}))
        .unwrap();
        let info = RequestInfo {
            request_id: "id\u{1b}[2J",
            ..Default::default()
        };
        let r = record(&p, &body, &info);
        // The rule saw the whole model (allowed by prefix); the record keeps 256 bytes.
        assert_eq!(r.decision, "allow");
        let m = r.model.as_deref().unwrap();
        assert!(m.len() <= MAX_FIELD_BYTES && m.starts_with("gpt-4oxxx") && m.ends_with('…'));
        assert_eq!(r.request_id, "id[2J");
        assert!(r.to_json().len() < 2048);
    }

    #[test]
    fn a_record_over_the_cap_drops_its_content_and_says_so() {
        let p = policy(true);
        let messages: Vec<_> = (0..100)
            .map(|i| serde_json::json!({"role": "user", "content": format!("{i} {}", "word ".repeat(500))}))
            .collect();
        let body =
            serde_json::to_vec(&serde_json::json!({"model": "gpt-4o", "messages": messages}))
                .unwrap();
        let r = record(&p, &body, &RequestInfo::default());
        assert!(r.content.as_ref().is_some_and(|c| c.len() == 100));
        let json = r.to_json();
        assert!(json.len() <= MAX_RECORD_BYTES, "{}", json.len());
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["truncated"], true);
        assert!(v.get("content").is_none());
        assert_eq!(v["record_id"], "r");
        assert_eq!(serde_json::Value::Object(r.to_members()), v);
    }

    /// The members the chain writes are the record's JSON, field for field.
    #[test]
    fn members_are_the_records_json() {
        let p = policy(true);
        let body = br#"{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}"#;
        let info = RequestInfo {
            user: Some("u"),
            ..RequestInfo::default()
        };
        let r = record(&p, body, &info);
        assert!(r.content.is_some());
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(serde_json::Value::Object(r.to_members()), v);
    }
}
