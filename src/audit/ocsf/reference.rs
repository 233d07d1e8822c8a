//! The mapping as it was written first, with `json!` trees and one `insert` per field: the
//! reference the compact mapping must match byte for byte (tests only).
#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use serde_json::{json, Map, Value};

use super::{epoch_ms, OCSF_VERSION};

/// Maps a record (its canonical JSON, as chained) to an OCSF event. Text that is not a JSON
/// object is kept as `raw_data` of an Event Log Activity event.
pub fn to_ocsf(json: &str) -> Value {
    let parsed = serde_json::from_str::<Value>(json).ok();
    let empty = Map::new();
    let rec = parsed.as_ref().and_then(Value::as_object).unwrap_or(&empty);
    let mut ev = match rec.get("record_type").and_then(Value::as_str) {
        Some("decision") => decision(rec),
        Some("policy_change") => policy_change(rec),
        other => log_activity(rec, other.unwrap_or("unparseable")),
    };
    let s = |k: &str| rec.get(k).and_then(Value::as_str);
    let mut metadata = Map::new();
    metadata.insert("version".into(), OCSF_VERSION.into());
    metadata.insert(
        "product".into(),
        json!({"name": "Policy Gateway", "vendor_name": "Policy Gateway",
               "version": env!("CARGO_PKG_VERSION")}),
    );
    metadata.insert(
        "log_name".into(),
        format!(
            "policy_gateway.{}",
            s("record_type").unwrap_or("unparseable")
        )
        .into(),
    );
    metadata.insert("log_provider".into(), "policy-gateway".into());
    for (key, field) in [
        ("uid", "record_id"),
        ("correlation_uid", "request_id"),
        ("original_time", "timestamp"),
        ("log_version", "schema_version"),
    ] {
        if let Some(v) = s(field) {
            metadata.insert(key.into(), v.into());
        }
    }
    if let Some(seq) = rec
        .get("chain")
        .and_then(|c| c.get("seq"))
        .and_then(Value::as_u64)
    {
        metadata.insert("sequence".into(), seq.into());
    }
    if let Some(ev) = ev.as_object_mut() {
        // A decision's `action_id`, `disposition_id` and `policy` come with the
        // `security_control` profile; events name the profiles they use.
        if ev.get("class_uid").and_then(Value::as_u64) == Some(2006) {
            metadata.insert("profiles".into(), json!(["security_control"]));
        }
        ev.insert("metadata".into(), Value::Object(metadata));
        ev.insert(
            "time".into(),
            s("timestamp").and_then(epoch_ms).unwrap_or(0).into(),
        );
        if let Some(gateway) = s("gateway") {
            // Entity Management has no `device`: there the gateway is the actor that applied
            // the change.
            if ev.get("class_uid").and_then(Value::as_u64) == Some(3004) {
                ev.insert(
                    "actor".into(),
                    json!({"app_name": "Policy Gateway", "app_uid": gateway}),
                );
            } else {
                ev.insert(
                    "device".into(),
                    json!({"type_id": 99, "type": "Other", "name": gateway}),
                );
            }
        }
        ev.insert("raw_data".into(), json.into());
    }
    ev
}

/// The class, category and activity fields of an event.
fn class(uid: u32, name: &str, category: (u32, &str), activity: (u32, &str)) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("class_uid".into(), uid.into());
    m.insert("class_name".into(), name.into());
    m.insert("category_uid".into(), category.0.into());
    m.insert("category_name".into(), category.1.into());
    m.insert("activity_id".into(), activity.0.into());
    m.insert("activity_name".into(), activity.1.into());
    m.insert(
        "type_uid".into(),
        (u64::from(uid) * 100 + u64::from(activity.0)).into(),
    );
    m.insert("type_name".into(), format!("{name}: {}", activity.1).into());
    m
}

fn severity(m: &mut Map<String, Value>, id: u32) {
    let name = match id {
        1 => "Informational",
        2 => "Low",
        3 => "Medium",
        4 => "High",
        _ => "Unknown",
    };
    m.insert("severity_id".into(), id.into());
    m.insert("severity".into(), name.into());
}

fn decision(rec: &Map<String, Value>) -> Value {
    let s = |k: &str| rec.get(k).and_then(Value::as_str);
    let strings = |k: &str| -> Vec<String> {
        rec.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let decision = s("decision").unwrap_or("allow");
    let enforced = rec
        .get("enforced")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let hold = decision == "escalate" && s("escalation") != Some("flag");
    let mut m = class(
        2006,
        "Data Security Finding",
        (2, "Findings"),
        (1, "Create"),
    );
    severity(
        &mut m,
        match decision {
            "refuse" => 4,
            "escalate" => 3,
            "redact" => 2,
            _ => 1,
        },
    );
    let (action, disposition) = match decision {
        _ if !enforced => ((3, "Observed"), (15, "Detected")),
        "refuse" => ((2, "Denied"), (2, "Blocked")),
        "escalate" if hold => ((2, "Denied"), (14, "Delayed")),
        "escalate" => ((1, "Allowed"), (18, "Tagged")),
        "redact" | "rewrite" => ((4, "Modified"), (11, "Corrected")),
        _ => ((1, "Allowed"), (1, "Allowed")),
    };
    m.insert("action_id".into(), action.0.into());
    m.insert("action".into(), action.1.into());
    m.insert("disposition_id".into(), disposition.0.into());
    m.insert("disposition".into(), disposition.1.into());
    m.insert("is_alert".into(), (decision != "allow").into());
    m.insert("status_id".into(), 1.into());
    m.insert("status".into(), "New".into());
    let reason = s("reason_code").unwrap_or("-");
    let policy_id = s("policy_id").unwrap_or("-");
    let rules = strings("triggered_rules");
    let categories = strings("triggered_categories");
    let mut info = Map::new();
    info.insert("uid".into(), s("record_id").unwrap_or("-").into());
    info.insert("title".into(), reason.into());
    info.insert(
        "desc".into(),
        format!("policy decision {decision} ({reason}) by policy {policy_id}").into(),
    );
    if !categories.is_empty() {
        info.insert("types".into(), categories.clone().into());
    }
    if let Some(rule) = rules.first() {
        info.insert(
            "analytic".into(),
            json!({"type_id": 1, "type": "Rule", "uid": rule, "name": rule}),
        );
    }
    m.insert("finding_info".into(), Value::Object(info));
    let policy = policy_object(policy_id, Some(enforced));
    m.insert("policy".into(), policy.clone());
    let mut data = Map::new();
    data.insert("detection_system_id".into(), 2.into());
    data.insert("detection_system".into(), "DLP Gateway".into());
    data.insert("data_lifecycle_state_id".into(), 2.into());
    data.insert("data_lifecycle_state".into(), "Data in-Transit".into());
    data.insert("policy".into(), policy);
    if let Some(d) = rec.get("detections").and_then(Value::as_object) {
        if !d.is_empty() {
            let names: Vec<&str> = d.keys().map(String::as_str).collect();
            data.insert("detection_pattern".into(), names.join(",").into());
            let total: u64 = d.values().filter_map(Value::as_u64).sum();
            data.insert("total".into(), total.into());
        }
    }
    m.insert("data_security".into(), Value::Object(data));
    if let Some(user) = s("policy_user") {
        m.insert(
            "actor".into(),
            json!({"user": {"uid": user, "type_id": 1, "type": "User"}}),
        );
    }
    let mut resources = Vec::new();
    if let Some(model) = s("model") {
        let mut r = json!({"type": "AI Model", "name": model, "role_id": 1, "role": "Target"});
        if let (Some(provider), Some(o)) = (s("provider"), r.as_object_mut()) {
            o.insert("labels".into(), json!([format!("provider:{provider}")]));
        }
        resources.push(r);
    }
    if let Some(project) = s("policy_project_id") {
        resources
            .push(json!({"type": "Project", "name": project, "role_id": 4, "role": "Related"}));
    }
    if !resources.is_empty() {
        m.insert("resources".into(), resources.into());
    }
    if let Some(status) = rec.get("http_status").and_then(Value::as_u64) {
        m.insert("status_code".into(), status.to_string().into());
    }
    if let Some(ms) = rec.get("duration_ms").and_then(Value::as_u64) {
        m.insert("duration".into(), ms.into());
    }
    m.insert(
        "message".into(),
        format!("policy decision {decision} ({reason}) by policy {policy_id}").into(),
    );
    let mut unmapped = Map::new();
    for key in ["usage", "rollout_mode", "phase", "api_format", "redactions"] {
        if let Some(v) = rec.get(key).filter(|v| !v.is_null()) {
            unmapped.insert(key.into(), v.clone());
        }
    }
    m.insert("unmapped".into(), Value::Object(unmapped));
    Value::Object(m)
}

/// `<id>@<version>` as an OCSF policy object.
fn policy_object(policy_id: &str, applied: Option<bool>) -> Value {
    let (name, version) = policy_id.split_once('@').unwrap_or((policy_id, ""));
    let mut p = Map::new();
    p.insert("uid".into(), policy_id.into());
    p.insert("name".into(), name.into());
    if !version.is_empty() {
        p.insert("version".into(), version.into());
    }
    if let Some(a) = applied {
        p.insert("is_applied".into(), a.into());
    }
    Value::Object(p)
}

fn managed_policy(policy_id: &str, sha256: Option<&str>) -> Value {
    let (name, version) = policy_id.split_once('@').unwrap_or((policy_id, ""));
    let mut e = Map::new();
    e.insert("type_id".into(), 5.into());
    e.insert("type".into(), "Policy".into());
    e.insert("name".into(), name.into());
    e.insert("uid".into(), policy_id.into());
    if !version.is_empty() {
        e.insert("version".into(), version.into());
    }
    let mut policy = policy_object(policy_id, None);
    if let (Some(sha), Some(p)) = (sha256, policy.as_object_mut()) {
        p.insert("desc".into(), format!("sha256:{sha}").into());
    }
    e.insert("policy".into(), policy);
    Value::Object(e)
}

fn policy_change(rec: &Map<String, Value>) -> Value {
    let s = |k: &str| rec.get(k).and_then(Value::as_str);
    let now = s("policy_id").unwrap_or("-");
    let before = s("previous_policy_id");
    let activity = if before.is_some() {
        (3, "Update")
    } else {
        (1, "Create")
    };
    let mut m = class(
        3004,
        "Entity Management",
        (3, "Identity & Access Management"),
        activity,
    );
    severity(&mut m, 1);
    m.insert("status_id".into(), 1.into());
    m.insert("status".into(), "Success".into());
    let result = managed_policy(now, s("policy_sha256"));
    let entity = match before {
        Some(b) => managed_policy(b, s("previous_policy_sha256")),
        None => result.clone(),
    };
    m.insert("entity".into(), entity);
    m.insert("entity_result".into(), result);
    m.insert(
        "message".into(),
        format!(
            "policy {now} now enforced{}",
            before.map_or(String::new(), |b| format!(", replacing {b}"))
        )
        .into(),
    );
    let mut unmapped = Map::new();
    for key in [
        "rollout_mode",
        "canary_percent",
        "candidate_policy_id",
        "rule_count",
    ] {
        if let Some(v) = rec.get(key).filter(|v| !v.is_null()) {
            unmapped.insert(key.into(), v.clone());
        }
    }
    m.insert("unmapped".into(), Value::Object(unmapped));
    Value::Object(m)
}

fn log_activity(rec: &Map<String, Value>, record_type: &str) -> Value {
    let s = |k: &str| rec.get(k).and_then(Value::as_str);
    let gap = record_type == "gap";
    let mut m = class(
        1008,
        "Event Log Activity",
        (1, "System Activity"),
        (99, if gap { "Records Lost" } else { "Checkpoint" }),
    );
    severity(&mut m, if gap { 4 } else { 1 });
    m.insert("status_id".into(), if gap { 2 } else { 1 }.into());
    m.insert(
        "status".into(),
        if gap { "Failure" } else { "Success" }.into(),
    );
    m.insert("log_type_id".into(), 2.into());
    m.insert("log_type".into(), "Application".into());
    m.insert("log_name".into(), "policy_gateway audit trail".into());
    m.insert("log_provider".into(), "policy-gateway".into());
    let message = match record_type {
        "gap" => format!(
            "{} audit records lost by sink {} ({})",
            rec.get("dropped").and_then(Value::as_u64).unwrap_or(0),
            s("sink").unwrap_or("-"),
            s("cause").unwrap_or("-")
        ),
        "checkpoint" => format!(
            "audit trail checkpoint signed with key {}",
            s("key_id").unwrap_or("-")
        ),
        other => format!("audit record of type {other}"),
    };
    m.insert("message".into(), message.into());
    if let Some(n) = rec.get("dropped").and_then(Value::as_u64) {
        m.insert("count".into(), n.into());
        m.insert("disposition_id".into(), 6.into());
        m.insert("disposition".into(), "Dropped".into());
    }
    let mut unmapped = Map::new();
    for key in [
        "sink",
        "cause",
        "lost_chain",
        "from_seq",
        "to_seq",
        "from",
        "to",
        "key_id",
        "records",
    ] {
        if let Some(v) = rec.get(key).filter(|v| !v.is_null()) {
            unmapped.insert(key.into(), v.clone());
        }
    }
    m.insert("unmapped".into(), Value::Object(unmapped));
    Value::Object(m)
}

/// Records with every field any mapping reads, of every record type, decision and
/// escalation, enforced or not, then each with one field left out and one field null.
pub(crate) fn sample_records() -> Vec<Value> {
    let mut full = json!({
        "schema_version": "1.2", "record_type": "decision",
        "record_id": "0196a1b2-0000-7000-8000-000000000001", "request_id": "req-1",
        "timestamp": "2026-11-26T17:54:09.123Z", "decision": "refuse",
        "escalation": "hold", "reason_code": "SECRET_DETECTED", "policy_id": "acme@3",
        "policy_user": "alice", "policy_project_id": "proj-7", "rollout_mode": "enforce",
        "enforced": true, "triggered_categories": ["secrets.credential", "pii"],
        "triggered_rules": ["block-credentials", "redact"], "phase": "request",
        "provider": "openai", "api_format": "openai_chat", "model": "gpt-4o",
        "response_model": "gpt-4o-2024-08-06", "gateway": "gw-eu-1",
    });
    let more = json!({
        "detections": {"aws_access_key": 2, "email": 1}, "redactions": {"email": 1},
        "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
        "http_status": 403, "duration_ms": 7, "chain": {"seq": 42, "prev": "ab"},
        "previous_policy_id": "acme@2", "policy_sha256": "00ff",
        "previous_policy_sha256": "11ee", "canary_percent": 12.5,
        "candidate_policy_id": "acme@4", "rule_count": 9,
    });
    let gap = json!({
        "dropped": 17, "sink": "hec", "cause": "overflow", "lost_chain": "c1",
        "from_seq": 3, "to_seq": 19, "from": "2026-11-26T17:00:00Z",
        "to": "2026-11-26T18:00:00Z", "key_id": "k1", "records": 1000,
    });
    for part in [more, gap] {
        for (k, v) in part.as_object().unwrap() {
            full[k.as_str()] = v.clone();
        }
    }
    let mut out = Vec::new();
    let types = [
        Some("decision"),
        Some("policy_change"),
        Some("gap"),
        Some("checkpoint"),
        Some("other"),
        None,
    ];
    for record_type in types {
        for decision in ["allow", "refuse", "escalate", "redact", "rewrite", "odd"] {
            for (enforced, escalation) in [(true, "hold"), (true, "flag"), (false, "hold")] {
                let mut r = full.clone();
                r["record_type"] = record_type.map_or(Value::Null, Value::from);
                r["decision"] = decision.into();
                r["enforced"] = enforced.into();
                r["escalation"] = escalation.into();
                out.push(r);
            }
        }
    }
    for base in out.clone().iter().step_by(3) {
        for key in full.as_object().unwrap().keys() {
            let mut without = base.clone();
            without.as_object_mut().unwrap().remove(key);
            out.push(without);
            let mut null = base.clone();
            null[key.as_str()] = Value::Null;
            out.push(null);
        }
    }
    let mut odd = full.clone();
    odd["policy_id"] = "no-version".into();
    odd["triggered_rules"] = json!([]);
    odd["triggered_categories"] = json!([]);
    odd["detections"] = json!({});
    odd["usage"] = json!({"prompt_tokens": "x"});
    odd["http_status"] = 200.into();
    odd["enforced"] = "yes".into();
    out.push(odd);
    out
}
