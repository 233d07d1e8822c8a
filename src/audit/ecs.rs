//! The audit record in Elastic Common Schema (ECS) field names, for Elasticsearch sinks with
//! `ecs: true`. The full original record is kept under `policy_gateway` so nothing is lost;
//! the ECS fields are a searchable projection of it.
//!
//! Mapping (ECS 8.x field reference):
//! - `@timestamp` ← `timestamp`; `ecs.version` = [`ECS_VERSION`];
//! - `event.kind`: `alert` when a rule decided anything but `allow` (a notable event raised by
//!   a detection rule outside the Elastic Stack), else `event`;
//!   `event.category: ["intrusion_detection"]`; `event.type`: `["denied"]` when the gateway
//!   stopped the traffic (an enforced `refuse`, or an enforced `escalate` in `hold` mode),
//!   else `["allowed"]` (shadow-mode and canary-control decisions did not stop anything);
//! - `event.action` ← `decision`, `event.reason` ← `reason_code`, `event.id` ← `record_id`,
//!   `event.module` = `policy_gateway`, `event.dataset` = `policy_gateway.<record_type>`,
//!   `event.duration` (ns) ← `duration_ms`;
//! - `event.outcome`: `failure` when the client got an HTTP status ≥ 400 or the gateway
//!   stopped the request, `success` for a status < 400, else `unknown`;
//! - `rule.ruleset` ← `policy_id` (`<id>@<version>`); `rule.id` and `rule.name` ←
//!   `triggered_rules` (the record carries rule ids only); `rule.category` ←
//!   `triggered_categories` (ECS fields may hold arrays);
//! - `user.id` ← `policy_user`; `labels.project_id` ← `policy_project_id`,
//!   `labels.rollout_mode`, `labels.enforced` (`"true"`/`"false"`: labels are keywords),
//!   `labels.phase`;
//! - `observer.type` = `proxy`, `observer.product` = `policy-gateway`, `observer.name` ←
//!   `gateway` (the instance id);
//! - `http.request.id` ← `request_id`, `http.response.status_code` ← `http_status`;
//! - `gen_ai.system` ← `provider`, `gen_ai.request.model` ← `model`,
//!   `gen_ai.response.model` ← `response_model`, `gen_ai.usage.input_tokens` /
//!   `output_tokens` ← `usage.prompt_tokens` / `completion_tokens` (ECS gen_ai fields, beta);
//! - `message`: a one-line summary (decision, reason, policy) without user or content;
//! - `policy_gateway`: the original record, unchanged.

use serde_json::{json, Map, Value};

/// The ECS version whose field names [`to_ecs`] uses.
pub const ECS_VERSION: &str = "8.17.0";

/// Maps an audit record (as JSON) to an ECS document. A value that is not an object is kept
/// under `policy_gateway` alone.
pub fn to_ecs(record: &Value) -> Value {
    let Some(rec) = record.as_object() else {
        return json!({ "ecs": { "version": ECS_VERSION }, "policy_gateway": record });
    };
    let s = |k: &str| rec.get(k).and_then(Value::as_str);
    let present = |k: &str| rec.get(k).filter(|v| !v.is_null()).cloned();

    let decision = s("decision");
    let enforced = rec
        .get("enforced")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let stopped = enforced
        && match decision {
            Some("refuse") => true,
            Some("escalate") => s("escalation") != Some("flag"),
            _ => false,
        };
    let http_status = rec.get("http_status").and_then(Value::as_u64);
    let outcome = match http_status {
        Some(code) if code >= 400 => "failure",
        _ if stopped => "failure",
        Some(_) => "success",
        None => "unknown",
    };
    let flagged = matches!(decision, Some(d) if d != "allow");

    let mut doc = Map::new();
    if let Some(ts) = present("timestamp") {
        doc.insert("@timestamp".into(), ts);
    }
    doc.insert("ecs".into(), json!({ "version": ECS_VERSION }));

    let mut event = Map::new();
    event.insert(
        "kind".into(),
        if flagged { "alert" } else { "event" }.into(),
    );
    event.insert("category".into(), json!(["intrusion_detection"]));
    event.insert(
        "type".into(),
        json!([if stopped { "denied" } else { "allowed" }]),
    );
    event.insert("outcome".into(), outcome.into());
    event.insert("module".into(), "policy_gateway".into());
    event.insert(
        "dataset".into(),
        format!("policy_gateway.{}", s("record_type").unwrap_or("decision")).into(),
    );
    if let Some(v) = present("decision") {
        event.insert("action".into(), v);
    }
    if let Some(v) = present("reason_code") {
        event.insert("reason".into(), v);
    }
    if let Some(v) = present("record_id") {
        event.insert("id".into(), v);
    }
    if let Some(ms) = rec.get("duration_ms").and_then(Value::as_u64) {
        event.insert("duration".into(), ms.saturating_mul(1_000_000).into());
    }
    doc.insert("event".into(), Value::Object(event));

    let mut rule = Map::new();
    if let Some(v) = present("policy_id") {
        rule.insert("ruleset".into(), v);
    }
    if let Some(v) = present("triggered_rules").filter(non_empty) {
        rule.insert("id".into(), v.clone());
        rule.insert("name".into(), v);
    }
    if let Some(v) = present("triggered_categories").filter(non_empty) {
        rule.insert("category".into(), v);
    }
    if !rule.is_empty() {
        doc.insert("rule".into(), Value::Object(rule));
    }

    if let Some(v) = present("policy_user") {
        doc.insert("user".into(), json!({ "id": v }));
    }

    let mut labels = Map::new();
    if let Some(v) = present("policy_project_id") {
        labels.insert("project_id".into(), keyword(v));
    }
    if let Some(v) = present("rollout_mode") {
        labels.insert("rollout_mode".into(), keyword(v));
    }
    if let Some(v) = present("enforced") {
        labels.insert("enforced".into(), keyword(v));
    }
    if let Some(v) = present("phase") {
        labels.insert("phase".into(), keyword(v));
    }
    if !labels.is_empty() {
        doc.insert("labels".into(), Value::Object(labels));
    }

    let mut observer = Map::new();
    observer.insert("type".into(), "proxy".into());
    observer.insert("product".into(), "policy-gateway".into());
    if let Some(v) = present("gateway") {
        observer.insert("name".into(), v);
    }
    doc.insert("observer".into(), Value::Object(observer));

    let mut http = Map::new();
    if let Some(v) = present("request_id") {
        http.insert("request".into(), json!({ "id": v }));
    }
    if let Some(code) = http_status {
        http.insert("response".into(), json!({ "status_code": code }));
    }
    if !http.is_empty() {
        doc.insert("http".into(), Value::Object(http));
    }

    let mut gen_ai = Map::new();
    if let Some(v) = present("provider") {
        gen_ai.insert("system".into(), v);
    }
    if let Some(v) = present("model") {
        gen_ai.insert("request".into(), json!({ "model": v }));
    }
    if let Some(v) = present("response_model") {
        gen_ai.insert("response".into(), json!({ "model": v }));
    }
    if let Some(usage) = rec.get("usage").and_then(Value::as_object) {
        let mut u = Map::new();
        if let Some(v) = usage.get("prompt_tokens").filter(|v| v.is_number()) {
            u.insert("input_tokens".into(), v.clone());
        }
        if let Some(v) = usage.get("completion_tokens").filter(|v| v.is_number()) {
            u.insert("output_tokens".into(), v.clone());
        }
        if !u.is_empty() {
            gen_ai.insert("usage".into(), Value::Object(u));
        }
    }
    if !gen_ai.is_empty() {
        doc.insert("gen_ai".into(), Value::Object(gen_ai));
    }

    doc.insert(
        "message".into(),
        format!(
            "policy decision {} ({}) by policy {}",
            decision.unwrap_or("unknown"),
            s("reason_code").unwrap_or("-"),
            s("policy_id").unwrap_or("-")
        )
        .into(),
    );
    doc.insert("policy_gateway".into(), record.clone());
    Value::Object(doc)
}

fn non_empty(v: &Value) -> bool {
    v.as_array().is_none_or(|a| !a.is_empty())
}

/// Labels are keywords: strings stay, other scalars become their JSON text.
fn keyword(v: Value) -> Value {
    match v {
        Value::String(_) => v,
        other => Value::String(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn record() -> Value {
        json!({
            "schema_version": "1.0",
            "record_type": "decision",
            "record_id": "0196a1b2-0000-7000-8000-000000000001",
            "request_id": "req-1",
            "timestamp": "2026-11-26T17:00:00.000Z",
            "decision": "refuse",
            "reason_code": "SECRET_AWS_KEY",
            "policy_id": "acme@3",
            "policy_user": "alice",
            "policy_project_id": "proj-7",
            "rollout_mode": "enforce",
            "enforced": true,
            "triggered_categories": ["secrets"],
            "triggered_rules": ["no-aws-keys", "no-jwt"],
            "phase": "request",
            "provider": "openai",
            "api_format": "openai_chat",
            "model": "gpt-4o",
            "stream": false,
            "request": {"decision": "refuse", "reason_code": "SECRET_AWS_KEY",
                        "triggered_rules": ["no-aws-keys"], "inspected": true,
                        "segments": 2, "body_bytes": 512},
            "detections": {"aws_access_key": 1},
            "redactions": {},
            "rewrites": [],
            "http_status": 403,
            "duration_ms": 7,
            "gateway": "gw-eu-1",
        })
    }

    #[test]
    fn maps_core_fields_to_ecs_names() {
        let d = to_ecs(&record());
        assert_eq!(d["@timestamp"], "2026-11-26T17:00:00.000Z");
        assert_eq!(d["ecs"]["version"], ECS_VERSION);
        assert_eq!(d["event"]["kind"], "alert");
        assert_eq!(d["event"]["category"], json!(["intrusion_detection"]));
        assert_eq!(d["event"]["type"], json!(["denied"]));
        assert_eq!(d["event"]["outcome"], "failure");
        assert_eq!(d["event"]["action"], "refuse");
        assert_eq!(d["event"]["reason"], "SECRET_AWS_KEY");
        assert_eq!(d["event"]["id"], "0196a1b2-0000-7000-8000-000000000001");
        assert_eq!(d["event"]["duration"], 7_000_000u64);
        assert_eq!(d["event"]["dataset"], "policy_gateway.decision");
        assert_eq!(d["rule"]["ruleset"], "acme@3");
        assert_eq!(d["rule"]["id"], json!(["no-aws-keys", "no-jwt"]));
        assert_eq!(d["rule"]["name"], json!(["no-aws-keys", "no-jwt"]));
        assert_eq!(d["rule"]["category"], json!(["secrets"]));
        assert_eq!(d["user"]["id"], "alice");
        assert_eq!(d["labels"]["project_id"], "proj-7");
        assert_eq!(d["labels"]["enforced"], "true");
        assert_eq!(d["labels"]["rollout_mode"], "enforce");
        assert_eq!(d["observer"]["name"], "gw-eu-1");
        assert_eq!(d["observer"]["type"], "proxy");
        assert_eq!(d["http"]["request"]["id"], "req-1");
        assert_eq!(d["http"]["response"]["status_code"], 403);
        assert_eq!(d["gen_ai"]["system"], "openai");
        assert_eq!(d["gen_ai"]["request"]["model"], "gpt-4o");
        let msg = d["message"].as_str().unwrap();
        assert!(msg.contains("refuse") && msg.contains("acme@3") && !msg.contains("alice"));
    }

    #[test]
    fn keeps_the_whole_record_under_policy_gateway() {
        let r = record();
        assert_eq!(to_ecs(&r)["policy_gateway"], r);
    }

    #[test]
    fn shadow_refusals_are_alerts_but_allowed_traffic() {
        let mut r = record();
        r["rollout_mode"] = "shadow".into();
        r["enforced"] = false.into();
        r["http_status"] = 200.into();
        let d = to_ecs(&r);
        assert_eq!(d["event"]["kind"], "alert");
        assert_eq!(d["event"]["type"], json!(["allowed"]));
        assert_eq!(d["event"]["outcome"], "success");
        assert_eq!(d["labels"]["enforced"], "false");
    }

    #[test]
    fn escalation_hold_is_denied_and_flag_is_allowed() {
        let mut r = record();
        r["decision"] = "escalate".into();
        r["escalation"] = "hold".into();
        r.as_object_mut().unwrap().remove("http_status");
        assert_eq!(to_ecs(&r)["event"]["type"], json!(["denied"]));
        assert_eq!(to_ecs(&r)["event"]["outcome"], "failure");
        r["escalation"] = "flag".into();
        let d = to_ecs(&r);
        assert_eq!(d["event"]["type"], json!(["allowed"]));
        assert_eq!(d["event"]["outcome"], "unknown");
    }

    #[test]
    fn allow_without_rules_is_a_plain_event_with_usage() {
        let r = json!({
            "timestamp": "2026-11-26T17:00:00.000Z",
            "decision": "allow",
            "reason_code": "OK",
            "policy_id": "acme@3",
            "policy_user": null,
            "policy_project_id": null,
            "enforced": true,
            "triggered_rules": [],
            "triggered_categories": [],
            "response_model": "gpt-4o-2024-08-06",
            "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
            "http_status": 200,
        });
        let d = to_ecs(&r);
        assert_eq!(d["event"]["kind"], "event");
        assert_eq!(d["event"]["type"], json!(["allowed"]));
        assert_eq!(d["event"]["outcome"], "success");
        assert!(d.get("user").is_none());
        assert!(d["rule"].get("id").is_none());
        assert_eq!(d["rule"]["ruleset"], "acme@3");
        assert!(d.get("labels").unwrap().get("project_id").is_none());
        assert_eq!(d["gen_ai"]["usage"]["input_tokens"], 10);
        assert_eq!(d["gen_ai"]["usage"]["output_tokens"], 20);
        assert_eq!(d["gen_ai"]["response"]["model"], "gpt-4o-2024-08-06");
    }

    #[test]
    fn a_non_object_is_kept_as_is() {
        let d = to_ecs(&json!("oops"));
        assert_eq!(d["policy_gateway"], "oops");
        assert!(d.get("@timestamp").is_none());
    }
}
