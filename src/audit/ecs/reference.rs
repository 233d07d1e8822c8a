//! The mapping as it was written first, with `json!` trees and one `insert` per field: the
//! reference the compact mapping must match byte for byte (tests only).
#![allow(clippy::indexing_slicing)]

use serde_json::{json, Map, Value};

use super::ECS_VERSION;

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
