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

use serde_json::Value;

use super::fields::{one, strs, Obj};

/// The ECS version whose field names [`to_ecs`] uses.
pub const ECS_VERSION: &str = "8.17.0";

/// Maps an audit record (as JSON) to an ECS document. A value that is not an object is kept
/// under `policy_gateway` alone. (Built through [`Obj`], one call per field: README's field
/// table is the mapping; the first version, with `json!`, is the tests' reference.)
pub fn to_ecs(record: &Value) -> Value {
    let mut doc = Obj::new();
    let Some(rec) = record.as_object() else {
        doc.put("ecs", one("version", ECS_VERSION.into()))
            .put("policy_gateway", record.clone());
        return doc.done();
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

    doc.opt("@timestamp", present("timestamp"))
        .put("ecs", one("version", ECS_VERSION.into()));

    let mut event = Obj::new();
    event
        .str("kind", if flagged { "alert" } else { "event" })
        .put("category", strs(&["intrusion_detection"]))
        .put("type", strs(&[if stopped { "denied" } else { "allowed" }]))
        .str("outcome", outcome)
        .str("module", "policy_gateway")
        .str(
            "dataset",
            &format!("policy_gateway.{}", s("record_type").unwrap_or("decision")),
        );
    for (to, from) in [
        ("action", "decision"),
        ("reason", "reason_code"),
        ("id", "record_id"),
    ] {
        event.opt(to, present(from));
    }
    if let Some(ms) = rec.get("duration_ms").and_then(Value::as_u64) {
        event.num("duration", ms.saturating_mul(1_000_000));
    }
    doc.put("event", event.done());

    let mut rule = Obj::new();
    rule.opt("ruleset", present("policy_id"));
    if let Some(v) = present("triggered_rules").filter(non_empty) {
        rule.put("id", v.clone()).put("name", v);
    }
    rule.opt(
        "category",
        present("triggered_categories").filter(non_empty),
    );
    doc.nonempty("rule", rule);

    if let Some(v) = present("policy_user") {
        doc.put("user", one("id", v));
    }

    let mut labels = Obj::new();
    for (to, from) in [
        ("project_id", "policy_project_id"),
        ("rollout_mode", "rollout_mode"),
        ("enforced", "enforced"),
        ("phase", "phase"),
    ] {
        labels.opt(to, present(from).map(keyword));
    }
    doc.nonempty("labels", labels);

    let mut observer = Obj::new();
    observer
        .str("type", "proxy")
        .str("product", "policy-gateway")
        .opt("name", present("gateway"));
    doc.put("observer", observer.done());

    let mut http = Obj::new();
    if let Some(v) = present("request_id") {
        http.put("request", one("id", v));
    }
    if let Some(code) = http_status {
        http.put("response", one("status_code", code.into()));
    }
    doc.nonempty("http", http);

    let mut gen_ai = Obj::new();
    gen_ai.opt("system", present("provider"));
    if let Some(v) = present("model") {
        gen_ai.put("request", one("model", v));
    }
    if let Some(v) = present("response_model") {
        gen_ai.put("response", one("model", v));
    }
    if let Some(usage) = rec.get("usage").and_then(Value::as_object) {
        let mut u = Obj::new();
        for (to, from) in [
            ("input_tokens", "prompt_tokens"),
            ("output_tokens", "completion_tokens"),
        ] {
            u.opt(to, usage.get(from).filter(|v| v.is_number()).cloned());
        }
        gen_ai.nonempty("usage", u);
    }
    doc.nonempty("gen_ai", gen_ai);

    doc.str(
        "message",
        &format!(
            "policy decision {} ({}) by policy {}",
            decision.unwrap_or("unknown"),
            s("reason_code").unwrap_or("-"),
            s("policy_id").unwrap_or("-")
        ),
    )
    .put("policy_gateway", record.clone());
    doc.done()
}

fn non_empty(v: &Value) -> bool {
    v.as_array().is_none_or(|a| !a.is_empty())
}

/// Labels are keywords: strings stay, other scalars become their JSON text.
fn keyword(v: Value) -> Value {
    match v {
        Value::String(_) => v,
        other => Value::String(serde_json::to_string(&other).unwrap_or_default()),
    }
}

#[cfg(test)]
mod reference;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// The compact mapping writes exactly what the first one (`json!` trees) wrote.
    #[test]
    fn output_is_byte_identical_to_the_first_mapping() {
        let mut values = crate::audit::ocsf::reference::sample_records();
        values.extend([json!([1]), json!("text"), Value::Null, json!({})]);
        for v in &values {
            assert_eq!(
                to_ecs(v).to_string(),
                reference::to_ecs(v).to_string(),
                "{v}"
            );
        }
    }

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
