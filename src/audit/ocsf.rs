//! The audit record as an OCSF event (Open Cybersecurity Schema Framework, [`OCSF_VERSION`]),
//! for sinks with `"format": "ocsf"` (Amazon Security Lake, Splunk, SIEMs that ingest OCSF).
//! README "OCSF output" has the field table and why these classes.
//!
//! - Decision records: **Data Security Finding** (class 2006, category Findings): the gateway
//!   is a DLP gateway for LLM traffic and each record is its verdict on data in transit
//!   (`data_security.detection_system_id` 2 "DLP Gateway", `data_lifecycle_state_id` 2 "Data
//!   in-Transit"), with what it did (`action_id`, `disposition_id`), the policy and the rule.
//!   The `ai_operation` profile (model, token counts) is defined in OCSF 1.8 only for API,
//!   Datastore and Process Activity, whose required fields the record cannot fill (the client
//!   endpoint); the model goes to `resources`, token counts to `unmapped`.
//! - `policy_change` records: **Entity Management** (3004), activity Update (Create for the
//!   first), on a managed entity of type Policy: `entity` the policy replaced, `entity_result`
//!   the policy now enforced.
//! - `gap` and `checkpoint` records: **Event Log Activity** (1008), activity Other: the audit
//!   log itself lost records, or was checkpointed.
//!
//! Every event carries the record it maps, in its canonical form, as `raw_data`: readers
//! (`trail`, `trail verify`, `chargeback`, `compare`) use that, and the chain's hash is over
//! those bytes.

use serde_json::{Map, Value};

use super::fields::{one, strs, Obj};

/// The OCSF version of the events.
pub const OCSF_VERSION: &str = "1.8.0";

/// Maps a record (its canonical JSON, as chained) to an OCSF event. Text that is not a JSON
/// object is kept as `raw_data` of an Event Log Activity event. (Built through [`Obj`], one
/// call per field; the first version, with `json!`, is the tests' reference.)
pub fn to_ocsf(json: &str) -> Value {
    let parsed = serde_json::from_slice::<Value>(json.as_bytes()).ok();
    let empty = Map::new();
    let rec = parsed.as_ref().and_then(Value::as_object).unwrap_or(&empty);
    let s = |k: &str| rec.get(k).and_then(Value::as_str);
    let (mut ev, class_uid) = match s("record_type") {
        Some("decision") => (decision(rec), 2006),
        Some("policy_change") => (policy_change(rec), 3004),
        other => (log_activity(rec, other.unwrap_or("unparseable")), 1008),
    };
    let mut metadata = Obj::new();
    let mut product = Obj::new();
    product
        .str("name", "Policy Gateway")
        .str("vendor_name", "Policy Gateway")
        .str("version", env!("CARGO_PKG_VERSION"));
    metadata
        .str("version", OCSF_VERSION)
        .put("product", product.done())
        .str(
            "log_name",
            &format!(
                "policy_gateway.{}",
                s("record_type").unwrap_or("unparseable")
            ),
        )
        .str("log_provider", "policy-gateway");
    for (key, field) in [
        ("uid", "record_id"),
        ("correlation_uid", "request_id"),
        ("original_time", "timestamp"),
        ("log_version", "schema_version"),
    ] {
        if let Some(v) = s(field) {
            metadata.str(key, v);
        }
    }
    if let Some(seq) = rec
        .get("chain")
        .and_then(|c| c.get("seq"))
        .and_then(Value::as_u64)
    {
        metadata.num("sequence", seq);
    }
    // A decision's `action_id`, `disposition_id` and `policy` come with the
    // `security_control` profile; events name the profiles they use.
    if class_uid == 2006 {
        metadata.put("profiles", strs(&["security_control"]));
    }
    ev.put("metadata", metadata.done())
        .num("time", s("timestamp").and_then(epoch_ms).unwrap_or(0));
    if let Some(gateway) = s("gateway") {
        // Entity Management has no `device`: there the gateway is the actor that applied
        // the change.
        let mut who = Obj::new();
        if class_uid == 3004 {
            who.str("app_name", "Policy Gateway")
                .str("app_uid", gateway);
            ev.put("actor", who.done());
        } else {
            who.num("type_id", 99)
                .str("type", "Other")
                .str("name", gateway);
            ev.put("device", who.done());
        }
    }
    ev.str("raw_data", json);
    ev.done()
}

/// The class, category and activity fields of an event.
fn class(uid: u32, name: &str, category: (u32, &str), activity: (u32, &str)) -> Obj {
    let mut m = Obj::new();
    m.num("class_uid", uid.into())
        .str("class_name", name)
        .num("category_uid", category.0.into())
        .str("category_name", category.1)
        .num("activity_id", activity.0.into())
        .str("activity_name", activity.1)
        .num("type_uid", u64::from(uid) * 100 + u64::from(activity.0))
        .str("type_name", &format!("{name}: {}", activity.1));
    m
}

fn severity(m: &mut Obj, id: u32) {
    let name = match id {
        1 => "Informational",
        2 => "Low",
        3 => "Medium",
        4 => "High",
        _ => "Unknown",
    };
    m.num("severity_id", id.into()).str("severity", name);
}

/// Copies the fields `keys` of `rec` that are there and not null into an object.
fn unmapped(rec: &Map<String, Value>, keys: &[&str]) -> Value {
    let mut o = Obj::new();
    for &key in keys {
        o.opt(key, rec.get(key).filter(|v| !v.is_null()).cloned());
    }
    o.done()
}

fn decision(rec: &Map<String, Value>) -> Obj {
    let s = |k: &str| rec.get(k).and_then(Value::as_str);
    let strings = |k: &str| -> Vec<&str> {
        rec.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
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
    let reason = s("reason_code").unwrap_or("-");
    let policy_id = s("policy_id").unwrap_or("-");
    let message = format!("policy decision {decision} ({reason}) by policy {policy_id}");
    m.num("action_id", action.0)
        .str("action", action.1)
        .num("disposition_id", disposition.0)
        .str("disposition", disposition.1)
        .put("is_alert", (decision != "allow").into())
        .num("status_id", 1)
        .str("status", "New");
    let rules = strings("triggered_rules");
    let categories = strings("triggered_categories");
    let mut info = Obj::new();
    info.str("uid", s("record_id").unwrap_or("-"))
        .str("title", reason)
        .str("desc", &message);
    if !categories.is_empty() {
        info.put("types", strs(&categories));
    }
    if let Some(rule) = rules.first() {
        let mut analytic = Obj::new();
        analytic
            .num("type_id", 1)
            .str("type", "Rule")
            .str("uid", rule)
            .str("name", rule);
        info.put("analytic", analytic.done());
    }
    m.put("finding_info", info.done());
    let policy = policy_object(policy_id, Some(enforced));
    m.put("policy", policy.clone());
    let mut data = Obj::new();
    data.num("detection_system_id", 2)
        .str("detection_system", "DLP Gateway")
        .num("data_lifecycle_state_id", 2)
        .str("data_lifecycle_state", "Data in-Transit")
        .put("policy", policy);
    if let Some(d) = rec.get("detections").and_then(Value::as_object) {
        if !d.is_empty() {
            let names: Vec<&str> = d.keys().map(String::as_str).collect();
            let total: u64 = d.values().filter_map(Value::as_u64).sum();
            data.str("detection_pattern", &names.join(","))
                .num("total", total);
        }
    }
    m.put("data_security", data.done());
    if let Some(user) = s("policy_user") {
        let mut u = Obj::new();
        u.str("uid", user).num("type_id", 1).str("type", "User");
        m.put("actor", one("user", u.done()));
    }
    let mut resources = Vec::new();
    if let Some(model) = s("model") {
        let mut r = Obj::new();
        r.str("type", "AI Model")
            .str("name", model)
            .num("role_id", 1)
            .str("role", "Target");
        if let Some(provider) = s("provider") {
            r.put("labels", strs(&[&format!("provider:{provider}")]));
        }
        resources.push(r.done());
    }
    if let Some(project) = s("policy_project_id") {
        let mut r = Obj::new();
        r.str("type", "Project")
            .str("name", project)
            .num("role_id", 4)
            .str("role", "Related");
        resources.push(r.done());
    }
    if !resources.is_empty() {
        m.put("resources", Value::Array(resources));
    }
    if let Some(status) = rec.get("http_status").and_then(Value::as_u64) {
        m.str("status_code", &status.to_string());
    }
    if let Some(ms) = rec.get("duration_ms").and_then(Value::as_u64) {
        m.num("duration", ms);
    }
    m.str("message", &message).put(
        "unmapped",
        unmapped(
            rec,
            &["usage", "rollout_mode", "phase", "api_format", "redactions"],
        ),
    );
    m
}

/// `<id>@<version>` as an OCSF policy object.
fn policy_object(policy_id: &str, applied: Option<bool>) -> Value {
    policy_fields(policy_id, applied, None).done()
}

/// The fields of [`policy_object`], and `desc` the policy's digest when there is one.
fn policy_fields(policy_id: &str, applied: Option<bool>, sha256: Option<&str>) -> Obj {
    let (name, version) = policy_id.split_once('@').unwrap_or((policy_id, ""));
    let mut p = Obj::new();
    p.str("uid", policy_id).str("name", name);
    if !version.is_empty() {
        p.str("version", version);
    }
    if let Some(a) = applied {
        p.put("is_applied", a.into());
    }
    if let Some(sha) = sha256 {
        p.str("desc", &format!("sha256:{sha}"));
    }
    p
}

fn managed_policy(policy_id: &str, sha256: Option<&str>) -> Value {
    let (name, version) = policy_id.split_once('@').unwrap_or((policy_id, ""));
    let mut e = Obj::new();
    e.num("type_id", 5)
        .str("type", "Policy")
        .str("name", name)
        .str("uid", policy_id);
    if !version.is_empty() {
        e.str("version", version);
    }
    e.put("policy", policy_fields(policy_id, None, sha256).done());
    e.done()
}

fn policy_change(rec: &Map<String, Value>) -> Obj {
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
    m.num("status_id", 1).str("status", "Success");
    let result = managed_policy(now, s("policy_sha256"));
    let entity = match before {
        Some(b) => managed_policy(b, s("previous_policy_sha256")),
        None => result.clone(),
    };
    m.put("entity", entity)
        .put("entity_result", result)
        .str(
            "message",
            &format!(
                "policy {now} now enforced{}",
                before.map_or(String::new(), |b| format!(", replacing {b}"))
            ),
        )
        .put(
            "unmapped",
            unmapped(
                rec,
                &[
                    "rollout_mode",
                    "canary_percent",
                    "candidate_policy_id",
                    "rule_count",
                ],
            ),
        );
    m
}

fn log_activity(rec: &Map<String, Value>, record_type: &str) -> Obj {
    let s = |k: &str| rec.get(k).and_then(Value::as_str);
    let gap = record_type == "gap";
    let mut m = class(
        1008,
        "Event Log Activity",
        (1, "System Activity"),
        (99, if gap { "Records Lost" } else { "Checkpoint" }),
    );
    severity(&mut m, if gap { 4 } else { 1 });
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
    m.num("status_id", if gap { 2 } else { 1 })
        .str("status", if gap { "Failure" } else { "Success" })
        .num("log_type_id", 2)
        .str("log_type", "Application")
        .str("log_name", "policy_gateway audit trail")
        .str("log_provider", "policy-gateway")
        .str("message", &message);
    if let Some(n) = rec.get("dropped").and_then(Value::as_u64) {
        m.num("count", n)
            .num("disposition_id", 6)
            .str("disposition", "Dropped");
    }
    m.put(
        "unmapped",
        unmapped(
            rec,
            &[
                "sink",
                "cause",
                "lost_chain",
                "from_seq",
                "to_seq",
                "from",
                "to",
                "key_id",
                "records",
            ],
        ),
    );
    m
}

/// Unix ms of `YYYY-MM-DDThh:mm:ss[.sss]Z` (the records' one format).
pub fn epoch_ms(ts: &str) -> Option<u64> {
    let b = ts.as_bytes();
    let num =
        |from: usize, len: usize| -> Option<i64> { ts.get(from..from + len)?.parse::<i64>().ok() };
    if b.get(4) != Some(&b'-') || b.get(10) != Some(&b'T') {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let ms = if b.get(19) == Some(&b'.') {
        num(20, 3).unwrap_or(0)
    } else {
        0
    };
    // Days from civil (H. Hinnant), the inverse of `time::civil_from_days`.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let total = ((days * 24 + h) * 60 + mi) * 60 + sec;
    u64::try_from(total * 1000 + ms).ok()
}

#[cfg(test)]
pub(super) mod reference;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// The compact mapping writes exactly what the first one (`json!` trees) wrote.
    #[test]
    fn output_is_byte_identical_to_the_first_mapping() {
        let mut texts: Vec<String> = reference::sample_records()
            .iter()
            .map(Value::to_string)
            .collect();
        texts.extend(["[1]", "\"text\"", "not json", ""].map(String::from));
        for json in &texts {
            assert_eq!(
                to_ocsf(json).to_string(),
                reference::to_ocsf(json).to_string(),
                "{json}"
            );
        }
    }

    fn record() -> Value {
        json!({
            "schema_version": "1.2", "record_type": "decision",
            "record_id": "0196a1b2-0000-7000-8000-000000000001", "request_id": "req-1",
            "timestamp": "2026-11-26T17:54:09.123Z", "decision": "refuse",
            "reason_code": "SECRET_DETECTED", "policy_id": "acme@3", "policy_user": "alice",
            "policy_project_id": "proj-7", "rollout_mode": "enforce", "enforced": true,
            "triggered_categories": ["secrets.credential"], "triggered_rules": ["block-credentials"],
            "phase": "request", "provider": "openai", "api_format": "openai_chat",
            "model": "gpt-4o", "stream": false, "detections": {"aws_access_key": 1},
            "redactions": {}, "rewrites": [], "http_status": 403, "duration_ms": 7,
            "gateway": "gw-eu-1", "usage": {"prompt_tokens": 3, "completion_tokens": null, "total_tokens": 3},
            "chain": {"id": "c", "seq": 9, "prev": crate::audit::chain::GENESIS},
        })
    }

    #[test]
    fn decisions_are_data_security_findings_carrying_the_record() {
        let json = crate::audit::chain::canonical(&record());
        let e = to_ocsf(&json);
        assert_eq!(
            (e["class_uid"].as_u64(), e["type_uid"].as_u64()),
            (Some(2006), Some(200601))
        );
        assert_eq!(e["time"], 1_795_715_649_123u64);
        assert_eq!(
            (e["action_id"].as_u64(), e["disposition_id"].as_u64()),
            (Some(2), Some(2))
        );
        assert_eq!(e["severity_id"], 4);
        assert_eq!(e["is_alert"], true);
        assert_eq!(
            e["finding_info"]["uid"],
            "0196a1b2-0000-7000-8000-000000000001"
        );
        assert_eq!(e["finding_info"]["title"], "SECRET_DETECTED");
        assert_eq!(e["finding_info"]["analytic"]["uid"], "block-credentials");
        assert_eq!(e["policy"]["uid"], "acme@3");
        assert_eq!(e["policy"]["version"], "3");
        assert_eq!(e["data_security"]["detection_pattern"], "aws_access_key");
        assert_eq!(e["actor"]["user"]["uid"], "alice");
        assert_eq!(e["resources"][0]["name"], "gpt-4o");
        assert_eq!(e["metadata"]["sequence"], 9);
        assert_eq!(e["metadata"]["profiles"], json!(["security_control"]));
        assert_eq!(e["metadata"]["correlation_uid"], "req-1");
        assert_eq!(e["device"]["name"], "gw-eu-1");
        assert_eq!(e["raw_data"], json.as_str(), "the record, byte for byte");
        assert_eq!(e["unmapped"]["usage"]["prompt_tokens"], 3);
    }

    #[test]
    fn actions_and_dispositions_follow_what_the_gateway_did() {
        let cases = [
            ("allow", None, true, (1, 1)),
            ("redact", None, true, (4, 11)),
            ("rewrite", None, true, (4, 11)),
            ("escalate", Some("hold"), true, (2, 14)),
            ("escalate", Some("flag"), true, (1, 18)),
            ("refuse", None, false, (3, 15)),
        ];
        for (decision, escalation, enforced, want) in cases {
            let mut r = record();
            r["decision"] = decision.into();
            r["enforced"] = enforced.into();
            if let Some(e) = escalation {
                r["escalation"] = e.into();
            }
            let e = to_ocsf(&r.to_string());
            let got = (
                e["action_id"].as_u64().unwrap(),
                e["disposition_id"].as_u64().unwrap(),
            );
            assert_eq!(got, want, "{decision} {escalation:?} {enforced}");
        }
    }

    #[test]
    fn policy_changes_are_entity_management_updates() {
        let r = json!({"schema_version": "1.2", "record_type": "policy_change", "record_id": "p1",
            "timestamp": "2026-11-26T00:00:00.000Z", "policy_id": "default@2",
            "previous_policy_id": "default@1", "policy_sha256": "ab", "previous_policy_sha256": "cd",
            "rule_count": 3, "rollout_mode": "enforce", "candidate_policy_id": null, "gateway": "gw"});
        let e = to_ocsf(&r.to_string());
        assert_eq!(
            (e["class_uid"].as_u64(), e["activity_id"].as_u64()),
            (Some(3004), Some(3))
        );
        assert_eq!(e["entity"]["uid"], "default@1");
        assert_eq!(e["entity_result"]["uid"], "default@2");
        assert_eq!(e["entity_result"]["type_id"], 5);
        // Entity Management (OCSF 1.8.0) has no `device`: the gateway is the actor.
        assert!(e.get("device").is_none(), "{e}");
        assert_eq!(e["actor"]["app_uid"], "gw");
        let mut first = r.clone();
        first["previous_policy_id"] = Value::Null;
        assert_eq!(to_ocsf(&first.to_string())["type_uid"], 300401);
    }

    #[test]
    fn gaps_and_checkpoints_are_event_log_activity() {
        let gap = json!({"record_type": "gap", "timestamp": "1970-01-01T00:00:01.000Z", "sink": "s3",
            "cause": "buffer_full", "dropped": 4, "lost_chain": "c", "from_seq": 1, "to_seq": 4});
        let e = to_ocsf(&gap.to_string());
        assert_eq!(
            (e["class_uid"].as_u64(), e["activity_id"].as_u64()),
            (Some(1008), Some(99))
        );
        assert_eq!(
            (e["count"].as_u64(), e["status_id"].as_u64()),
            (Some(4), Some(2))
        );
        assert_eq!(e["unmapped"]["to_seq"], 4);
        assert_eq!(e["time"], 1000);
        let e = to_ocsf("not json");
        assert_eq!(e["raw_data"], "not json");
    }

    #[test]
    fn epoch_ms_inverts_iso8601() {
        for ms in [0, 951_782_400_000, 1_735_689_599_999, 1_795_715_649_123] {
            assert_eq!(epoch_ms(&crate::audit::time::iso8601_millis(ms)), Some(ms));
        }
        assert_eq!(epoch_ms("2026-11-26T17:54:09Z"), Some(1_795_715_649_000));
        assert_eq!(epoch_ms("yesterday"), None);
    }
}
