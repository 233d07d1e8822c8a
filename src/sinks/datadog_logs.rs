//! Datadog Logs: `POST https://http-intake.logs.<site>/api/v2/logs` with a JSON array of log
//! entries, `DD-API-KEY: <key>` (sent as the lowercase `dd-api-key`, as HTTP/2 requires).
//!
//! Limits (Datadog API reference, "Send logs"): 5 MB uncompressed per request, 1 MB per log,
//! 1000 entries per array; a log over 1 MB is accepted but truncated by Datadog (still 2xx).
//! [`build_requests`] splits a batch to stay under the first two limits (counted
//! conservatively: 5,000,000 and 1,000,000 bytes), and instead of letting Datadog cut a record
//! in the middle it replaces an oversized entry's `message` with a marker and keeps its
//! attributes (the record is then only partly in Datadog: decision, reason, policy, user...).
//!
//! Entry mapping (one per record):
//! - `message`: the whole record JSON, as a string, so nothing is lost (Datadog's JSON
//!   preprocessing may also extract it into attributes; the values are the same);
//! - `ddsource`, `service`, `ddtags` (`k:v,k2:v2`), `hostname` (config, else the gateway
//!   instance), `timestamp` (epoch milliseconds, a reserved attribute);
//! - `status` (the reserved log level): `warn` for `refuse` and `escalate`, else `info`;
//! - facets at top level, copied from the record when present: `record_id`, `request_id`,
//!   `decision`, `reason_code`, `policy_id`, `policy_project_id`, `rollout_mode`, `enforced`,
//!   `phase`, `provider`, `api_format`, `model`, `response_model`, `escalation`,
//!   `triggered_rules`, `triggered_categories`;
//! - Datadog standard attributes: `usr.id` (`policy_user`), `http.status_code`
//!   (`http_status`), `duration` (nanoseconds, from `duration_ms`).
//!
//! Answers: 202 accepted (any 2xx is delivered); 408, 429 and 5xx are retried; 413 (payload
//! too large) is dropped, which the builder's limits should make impossible; 400, 401, 403 and
//! other 4xx are dropped with the service's `{"errors": [...]}` text.

use std::fmt;
use std::ops::Range;

use serde_json::{Map, Value};

use super::config::SinkConfig;
use super::format::RecordFormat;
use super::parts::Parts;
use super::{
    compress, excerpt, no_answer, Answer, Batch, Call, HttpRequest, Outcome, QueuedRecord, Sink,
    Step,
};
use crate::config::read::{self, Fields, Path, ReadError};
use crate::error::ConfigError;

/// Datadog sites whose log intake is `http-intake.logs.<site>`.
pub const KNOWN_SITES: &[&str] = &[
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "datadoghq.eu",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "uk1.datadoghq.com",
    "ddog-gov.com",
    "us2.ddog-gov.com",
];

/// At most this many entries per request (Datadog: 1000).
pub const MAX_ENTRIES: usize = 1000;
/// At most this many bytes of uncompressed body per request (Datadog: 5 MB).
pub const MAX_REQUEST_BYTES: usize = 5_000_000;
/// An entry larger than this loses its `message` (Datadog truncates logs over 1 MB).
pub const MAX_ENTRY_BYTES: usize = 1_000_000;

/// The record attributes copied to the top level of each entry (facets).
const FACETS: &[&str] = &[
    "record_id",
    "request_id",
    "decision",
    "reason_code",
    "policy_id",
    "policy_project_id",
    "rollout_mode",
    "enforced",
    "phase",
    "provider",
    "api_format",
    "model",
    "response_model",
    "escalation",
    "triggered_rules",
    "triggered_categories",
];

/// Configuration of the Datadog Logs sink.
#[derive(Clone)]
pub struct DatadogConfig {
    /// The Envoy cluster that reaches the intake.
    pub cluster: String,
    /// Datadog site (`datadoghq.com`, `datadoghq.eu`, `us3.datadoghq.com`...).
    pub site: String,
    /// `:authority` override (a proxy, a private link); when set, `site` is not used.
    pub authority: Option<String>,
    /// API key; never logged (the `Debug` output hides it).
    pub api_key: String,
    pub service: String,
    pub ddsource: String,
    /// Tags, each `key:value` (or a bare value), joined into `ddtags`.
    pub tags: Vec<String>,
    /// Entry `hostname`; defaults to the gateway's instance id.
    pub hostname: Option<String>,
    /// Each entry's `message`: the record as it is, in ECS or as an OCSF event (facets come
    /// from the record whatever the format).
    pub format: RecordFormat,
}

crate::deserialize_by_hand!(DatadogConfig);

impl DatadogConfig {
    /// `audit.datadog` (unknown fields refused).
    pub fn read(v: Value, path: Path<'_>) -> Result<DatadogConfig, ReadError> {
        let mut f = Fields::new(
            v,
            path,
            "struct DatadogConfig",
            &[
                "cluster",
                "site",
                "authority",
                "api_key",
                "service",
                "ddsource",
                "tags",
                "hostname",
                "format",
            ],
        )?;
        Ok(DatadogConfig {
            cluster: f.req("cluster", read::string)?,
            site: f.or("site", read::string, default_site())?,
            authority: f.opt("authority", read::string)?,
            api_key: f.req("api_key", read::string)?,
            service: f.or("service", read::string, default_name())?,
            ddsource: f.or("ddsource", read::string, default_name())?,
            tags: f.or("tags", read::strings, Vec::new())?,
            hostname: f.opt("hostname", read::string)?,
            format: f.or("format", RecordFormat::read, RecordFormat::default())?,
        })
    }
}

fn default_site() -> String {
    "datadoghq.com".into()
}
fn default_name() -> String {
    "policy-gateway".into()
}

impl fmt::Debug for DatadogConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatadogConfig")
            .field("cluster", &self.cluster)
            .field("site", &self.site)
            .field("authority", &self.authority)
            .field("api_key", &"<redacted>")
            .field("service", &self.service)
            .field("ddsource", &self.ddsource)
            .field("tags", &self.tags)
            .field("hostname", &self.hostname)
            .finish()
    }
}

fn is_header_safe(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic())
}

impl SinkConfig for DatadogConfig {
    fn name(&self) -> &'static str {
        "datadog"
    }

    /// Checks the configuration; the error names the field (never the key's value).
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &str, message: &str| Err(ConfigError::field(field, message));
        if self.cluster.trim().is_empty() {
            return bad("cluster", "must not be empty");
        }
        match &self.authority {
            Some(a) => {
                if !is_header_safe(a) || a.contains('/') {
                    return bad(
                        "authority",
                        &format!("{a:?} is not a host[:port] (no scheme, path or spaces)"),
                    );
                }
            }
            None => {
                if !KNOWN_SITES.contains(&self.site.as_str()) {
                    return bad(
                        "site",
                        &format!(
                            "unknown site {:?} (known: {}; or set datadog.authority)",
                            self.site,
                            KNOWN_SITES.join(", ")
                        ),
                    );
                }
            }
        }
        if !is_header_safe(&self.api_key) {
            return bad(
                "api_key",
                "must be non-empty printable ASCII without spaces",
            );
        }
        if self.service.trim().is_empty() {
            return bad("service", "must not be empty");
        }
        if self.ddsource.trim().is_empty() {
            return bad("ddsource", "must not be empty");
        }
        for t in &self.tags {
            if t.trim().is_empty() || t.contains(',') || t.chars().any(char::is_whitespace) {
                return bad(
                    "tags",
                    &format!("{t:?} must be non-empty, without commas or spaces"),
                );
            }
        }
        if let Some(h) = &self.hostname {
            if h.trim().is_empty() {
                return bad("hostname", "must not be empty when set");
            }
        }
        Ok(())
    }

    fn build(&self, gateway: &str, _seed: u64) -> Box<dyn Sink> {
        Box::new(Datadog {
            cfg: self.clone(),
            gateway: gateway.to_string(),
            parts: None,
        })
    }
}

/// The Datadog sink of one worker: a batch goes in as many calls as the intake's limits need.
struct Datadog {
    cfg: DatadogConfig,
    /// Entries' `hostname` unless configured.
    gateway: String,
    parts: Option<Parts>,
}

impl Sink for Datadog {
    fn start(&mut self, batch: &Batch<'_>, _now_ms: u64) -> Step {
        let calls = build_requests(&self.cfg, &self.gateway, batch.records)
            .into_iter()
            .map(|(request, range)| {
                let call = Call {
                    cluster: self.cfg.cluster.clone(),
                    request: compress(request),
                };
                (call, range)
            })
            .collect();
        let (step, parts) = Parts::start(calls, batch.records.len());
        self.parts = parts;
        step
    }

    fn on_answer(&mut self, answer: Answer<'_>, _batch: &Batch<'_>, _now_ms: u64) -> Step {
        let Some(parts) = self.parts.take() else {
            return Step::Settle(no_answer());
        };
        let outcome = match answer {
            Some((status, _, body)) => classify(status, body),
            None => no_answer(),
        };
        let (step, parts) = parts.answered(outcome);
        self.parts = parts;
        step
    }
}

impl DatadogConfig {
    /// The intake's `:authority`.
    pub fn intake_authority(&self) -> String {
        match &self.authority {
            Some(a) => a.clone(),
            None => format!("http-intake.logs.{}", self.site),
        }
    }
}

/// Builds the requests for a batch, each with the range of batch indexes it carries (in
/// order, covering the whole batch). `host` is the gateway instance (default `hostname`).
/// An empty batch gives no request.
pub fn build_requests(
    cfg: &DatadogConfig,
    host: &str,
    batch: &[QueuedRecord],
) -> Vec<(HttpRequest, Range<usize>)> {
    let common = Common {
        ddsource: &cfg.ddsource,
        ddtags: cfg.tags.join(","),
        service: &cfg.service,
        hostname: cfg.hostname.as_deref().unwrap_or(host),
        format: cfg.format,
    };
    let mut out = Vec::new();
    let mut body = String::from("[");
    let mut start = 0;
    let mut count = 0;
    for (i, r) in batch.iter().enumerate() {
        let e = entry(&common, r);
        let would_be = body.len() + usize::from(count > 0) + e.len() + 1;
        if count > 0 && (count >= MAX_ENTRIES || would_be > MAX_REQUEST_BYTES) {
            out.push((finish(cfg, std::mem::take(&mut body)), start..i));
            body.push('[');
            start = i;
            count = 0;
        }
        if count > 0 {
            body.push(',');
        }
        body.push_str(&e);
        count += 1;
    }
    if count > 0 {
        out.push((finish(cfg, body), start..batch.len()));
    }
    out
}

fn finish(cfg: &DatadogConfig, mut body: String) -> HttpRequest {
    body.push(']');
    HttpRequest {
        method: "POST",
        authority: cfg.intake_authority(),
        path: "/api/v2/logs".into(),
        headers: vec![
            ("dd-api-key".into(), cfg.api_key.clone()),
            ("content-type".into(), "application/json".into()),
        ],
        body: body.into_bytes(),
    }
}

struct Common<'a> {
    ddsource: &'a str,
    ddtags: String,
    service: &'a str,
    hostname: &'a str,
    format: RecordFormat,
}

/// `{key: value}`, built directly: `json!` with a `Value` inside would link `Value`'s
/// serialiser into `serde_json::value::Serializer` for these two objects alone.
fn one(key: &str, value: Value) -> Value {
    let mut m = Map::new();
    m.insert(key.into(), value);
    Value::Object(m)
}

/// One entry as JSON; over [`MAX_ENTRY_BYTES`] its `message` becomes a marker.
fn entry(common: &Common<'_>, r: &QueuedRecord) -> String {
    let record = serde_json::from_slice::<Value>(r.json.as_bytes()).ok();
    let mut m = Map::new();
    m.insert("ddsource".into(), common.ddsource.into());
    if !common.ddtags.is_empty() {
        m.insert("ddtags".into(), common.ddtags.as_str().into());
    }
    m.insert("service".into(), common.service.into());
    m.insert("hostname".into(), common.hostname.into());
    m.insert("timestamp".into(), r.epoch_ms.into());
    if let Some(rec) = record.as_ref().and_then(Value::as_object) {
        let level = match rec.get("decision").and_then(Value::as_str) {
            Some("refuse" | "escalate") => "warn",
            _ => "info",
        };
        m.insert("status".into(), level.into());
        for k in FACETS {
            if let Some(v) = rec.get(*k).filter(|v| !v.is_null()) {
                m.insert((*k).into(), v.clone());
            }
        }
        if let Some(user) = rec.get("policy_user").filter(|v| !v.is_null()) {
            m.insert("usr".into(), one("id", user.clone()));
        }
        if let Some(status) = rec.get("http_status").filter(|v| v.is_number()) {
            m.insert("http".into(), one("status_code", status.clone()));
        }
        if let Some(ms) = rec.get("duration_ms").and_then(Value::as_u64) {
            m.insert("duration".into(), ms.saturating_mul(1_000_000).into());
        }
    }
    m.insert("message".into(), common.format.render(&r.json).into());
    let full = serde_json::to_string(&Value::Object(m)).unwrap_or_default();
    if full.len() <= MAX_ENTRY_BYTES {
        return full;
    }
    // Rebuilding from the parsed entry is cheaper than keeping a copy of every record.
    let Ok(Value::Object(mut m)) = serde_json::from_slice::<Value>(full.as_bytes()) else {
        return full;
    };
    m.insert(
        "message".into(),
        format!(
            "[policy-gateway: record of {} bytes omitted, over Datadog's 1 MB per-log limit; \
             attributes kept]",
            r.json.len()
        )
        .into(),
    );
    m.insert("record_truncated".into(), true.into());
    serde_json::to_string(&Value::Object(m)).unwrap_or_default()
}

/// The error text of a Datadog answer: `{"errors": [...]}` items (strings, or objects with
/// `title`/`detail`), else an excerpt of the body.
fn error_text(body: &[u8]) -> String {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let errors = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(Value::as_array);
    let Some(errors) = errors else {
        return excerpt(body);
    };
    let parts: Vec<String> = errors
        .iter()
        .map(|e| match e {
            Value::String(s) => s.clone(),
            Value::Object(o) => {
                let field = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or_default();
                match (field("title"), field("detail")) {
                    ("", "") => serde_json::to_string(e).unwrap_or_default(),
                    (t, "") => t.to_string(),
                    ("", d) => d.to_string(),
                    (t, d) => format!("{t}: {d}"),
                }
            }
            other => serde_json::to_string(other).unwrap_or_default(),
        })
        .collect();
    if parts.is_empty() {
        return excerpt(body);
    }
    excerpt(parts.join("; ").as_bytes())
}

/// Classifies the intake's answer.
pub fn classify(status: u16, body: &[u8]) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => Outcome::Retry {
            reason: format!("Datadog {status}: {}", error_text(body)),
            after_ms: None,
        },
        413 => Outcome::Drop {
            reason: format!(
                "Datadog 413: payload too large (unexpected: requests are split under 5 MB): {}",
                error_text(body)
            ),
        },
        _ => Outcome::Drop {
            reason: format!("Datadog {status}: {}", error_text(body)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn cfg() -> DatadogConfig {
        serde_json::from_value(serde_json::json!({
            "cluster": "datadog",
            "site": "datadoghq.eu",
            "api_key": KEY,
            "tags": ["env:prod", "team:ai"],
        }))
        .unwrap()
    }

    fn record(i: usize, decision: &str) -> QueuedRecord {
        let json = serde_json::json!({
            "schema_version": "1.0",
            "record_type": "decision",
            "record_id": format!("0196a1b2-0000-7000-8000-{i:012x}"),
            "request_id": format!("req-{i}"),
            "timestamp": "2026-11-26T17:00:00.000Z",
            "decision": decision,
            "reason_code": "PII_EMAIL",
            "policy_id": "acme@3",
            "policy_user": "alice",
            "policy_project_id": "proj-7",
            "rollout_mode": "enforce",
            "enforced": true,
            "triggered_categories": ["pii"],
            "triggered_rules": ["no-email"],
            "phase": "request",
            "provider": "openai",
            "api_format": "openai_chat",
            "model": "gpt-4o",
            "stream": false,
            "http_status": 403,
            "duration_ms": 12,
        });
        QueuedRecord {
            json: json.to_string(),
            epoch_ms: 1_795_715_649_007 + i as u64,
            gap: None,
            seq: 0,
        }
    }

    fn entries(req: &HttpRequest) -> Vec<Value> {
        let v: Value = serde_json::from_slice(&req.body).unwrap();
        v.as_array().unwrap().clone()
    }

    #[test]
    fn config_defaults_and_debug_hides_the_key() {
        let c = cfg();
        assert_eq!(c.service, "policy-gateway");
        assert_eq!(c.ddsource, "policy-gateway");
        assert_eq!(c.hostname, None);
        assert!(c.validate().is_ok());
        let dbg = format!("{c:?}");
        assert!(!dbg.contains(KEY), "{dbg}");
        assert!(dbg.contains("<redacted>"));
        let default_site: DatadogConfig =
            serde_json::from_value(serde_json::json!({"cluster": "dd", "api_key": KEY})).unwrap();
        assert_eq!(
            default_site.intake_authority(),
            "http-intake.logs.datadoghq.com"
        );
    }

    #[test]
    fn config_rejects_unknown_fields_and_bad_values_naming_the_field() {
        assert!(serde_json::from_value::<DatadogConfig>(serde_json::json!({
            "cluster": "dd", "api_key": KEY, "apikey": "x"
        }))
        .is_err());
        let mut c = cfg();
        c.site = "datadoghq.org".into();
        let e = c.validate().unwrap_err().within("datadog").to_string();
        assert!(e.starts_with("datadog.site"), "{e}");
        c.authority = Some("dd-proxy.internal:8443".into());
        assert!(c.validate().is_ok());
        assert_eq!(c.intake_authority(), "dd-proxy.internal:8443");
        c.authority = Some("https://dd-proxy/".into());
        assert!(c
            .validate()
            .unwrap_err()
            .within("datadog")
            .to_string()
            .starts_with("datadog.authority"));

        let mut c = cfg();
        c.api_key = "bad key".into();
        let e = c.validate().unwrap_err().within("datadog").to_string();
        assert!(
            e.starts_with("datadog.api_key") && !e.contains("bad key"),
            "{e}"
        );
        let mut c = cfg();
        c.tags = vec!["env:prod,team:x".into()];
        assert!(c
            .validate()
            .unwrap_err()
            .within("datadog")
            .to_string()
            .starts_with("datadog.tags"));
        let mut c = cfg();
        c.cluster = String::new();
        assert!(c
            .validate()
            .unwrap_err()
            .within("datadog")
            .to_string()
            .starts_with("datadog.cluster"));
        let mut c = cfg();
        c.service = " ".into();
        assert!(c
            .validate()
            .unwrap_err()
            .within("datadog")
            .to_string()
            .starts_with("datadog.service"));
        for site in KNOWN_SITES {
            let mut c = cfg();
            c.site = (*site).into();
            assert!(c.validate().is_ok(), "{site}");
            assert_eq!(c.intake_authority(), format!("http-intake.logs.{site}"));
        }
    }

    #[test]
    fn request_is_a_json_array_of_entries_per_the_v2_intake() {
        let batch = [record(0, "refuse"), record(1, "allow")];
        let reqs = build_requests(&cfg(), "gw-1", &batch);
        assert_eq!(reqs.len(), 1);
        let (req, range) = &reqs[0];
        assert_eq!(*range, 0..2);
        assert_eq!(req.method, "POST");
        assert_eq!(req.authority, "http-intake.logs.datadoghq.eu");
        assert_eq!(req.path, "/api/v2/logs");
        assert!(req
            .headers
            .contains(&("dd-api-key".into(), KEY.to_string())));
        assert!(req
            .headers
            .contains(&("content-type".into(), "application/json".into())));
        let es = entries(req);
        assert_eq!(es.len(), 2);
        let e = &es[0];
        assert_eq!(e["ddsource"], "policy-gateway");
        assert_eq!(e["service"], "policy-gateway");
        assert_eq!(e["ddtags"], "env:prod,team:ai");
        assert_eq!(e["hostname"], "gw-1");
        assert_eq!(e["timestamp"], 1_795_715_649_007u64);
        assert_eq!(e["status"], "warn");
        assert_eq!(e["decision"], "refuse");
        assert_eq!(e["reason_code"], "PII_EMAIL");
        assert_eq!(e["policy_id"], "acme@3");
        assert_eq!(e["policy_project_id"], "proj-7");
        assert_eq!(e["usr"]["id"], "alice");
        assert_eq!(e["http"]["status_code"], 403);
        assert_eq!(e["duration"], 12_000_000u64);
        assert_eq!(e["triggered_rules"], serde_json::json!(["no-email"]));
        assert!(e.get("policy_user").is_none());
        // The message is the record itself, as a string: nothing is lost.
        let msg = e["message"].as_str().unwrap();
        assert_eq!(msg, batch[0].json);
        assert_eq!(es[1]["status"], "info");
        assert_eq!(es[1]["decision"], "allow");
    }

    #[test]
    fn configured_hostname_wins_and_null_attributes_are_left_out() {
        let mut c = cfg();
        c.hostname = Some("edge-eu-1".into());
        c.tags.clear();
        let r = QueuedRecord {
            json: r#"{"decision":"allow","policy_user":null,"model":null}"#.into(),
            epoch_ms: 5,
            gap: None,
            seq: 0,
        };
        let reqs = build_requests(&c, "gw-1", &[r]);
        let e = &entries(&reqs[0].0)[0];
        assert_eq!(e["hostname"], "edge-eu-1");
        assert!(e.get("ddtags").is_none());
        assert!(e.get("usr").is_none());
        assert!(e.get("model").is_none());
    }

    #[test]
    fn empty_batch_gives_no_request_and_unparseable_json_is_still_sent() {
        assert!(build_requests(&cfg(), "gw", &[]).is_empty());
        let r = QueuedRecord {
            json: "not json".into(),
            epoch_ms: 1,
            gap: None,
            seq: 0,
        };
        let reqs = build_requests(&cfg(), "gw", &[r]);
        let e = &entries(&reqs[0].0)[0];
        assert_eq!(e["message"], "not json");
    }

    #[test]
    fn splits_at_1000_entries() {
        let batch: Vec<QueuedRecord> = (0..2500).map(|i| record(i, "allow")).collect();
        let reqs = build_requests(&cfg(), "gw", &batch);
        let ranges: Vec<Range<usize>> = reqs.iter().map(|(_, r)| r.clone()).collect();
        assert_eq!(ranges, vec![0..1000, 1000..2000, 2000..2500]);
        for (req, range) in &reqs {
            let es = entries(req);
            assert_eq!(es.len(), range.len());
            assert_eq!(
                es[0]["record_id"],
                serde_json::from_str::<Value>(&batch[range.start].json).unwrap()["record_id"]
            );
        }
    }

    #[test]
    fn splits_under_5_mb_and_covers_every_record_once() {
        // 12 records of ~600 KB: at most 8 fit in 5,000,000 bytes.
        let pad = "x".repeat(600_000);
        let batch: Vec<QueuedRecord> = (0..12)
            .map(|i| QueuedRecord {
                json: serde_json::json!({"record_id": format!("r{i}"), "decision": "allow", "pad": pad})
                    .to_string(),
                epoch_ms: i,
                gap: None,
                seq: 0,
            })
            .collect();
        let reqs = build_requests(&cfg(), "gw", &batch);
        assert!(reqs.len() >= 2);
        let mut next = 0;
        for (req, range) in &reqs {
            assert!(req.body.len() <= MAX_REQUEST_BYTES, "{}", req.body.len());
            assert_eq!(range.start, next);
            next = range.end;
            let es = entries(req);
            assert_eq!(es.len(), range.len());
            for (e, i) in es.iter().zip(range.clone()) {
                assert_eq!(e["record_id"], format!("r{i}"));
                assert_eq!(e["message"], batch[i].json);
            }
        }
        assert_eq!(next, 12);
    }

    #[test]
    fn an_entry_over_1_mb_keeps_attributes_and_marks_the_message() {
        let big = QueuedRecord {
            json: serde_json::json!({
                "record_id": "big",
                "decision": "redact",
                "reason_code": "PII",
                "policy_user": "bob",
                "content": [{"role": "user", "text": "y".repeat(1_100_000)}],
            })
            .to_string(),
            epoch_ms: 9,
            gap: None,
            seq: 0,
        };
        let reqs = build_requests(&cfg(), "gw", &[record(0, "allow"), big]);
        assert_eq!(reqs.len(), 1);
        let es = entries(&reqs[0].0);
        let e = &es[1];
        assert!(e.to_string().len() <= MAX_ENTRY_BYTES);
        assert_eq!(e["record_id"], "big");
        assert_eq!(e["decision"], "redact");
        assert_eq!(e["usr"]["id"], "bob");
        assert_eq!(e["record_truncated"], true);
        let msg = e["message"].as_str().unwrap();
        assert!(msg.contains("omitted") && !msg.contains("yyyy"), "{msg}");
        assert!(es[0].get("record_truncated").is_none());
    }

    #[test]
    fn the_key_is_only_in_its_header() {
        let reqs = build_requests(&cfg(), "gw", &[record(0, "allow")]);
        let (req, _) = &reqs[0];
        assert!(!String::from_utf8_lossy(&req.body).contains(KEY));
        let with_key: Vec<_> = req
            .headers
            .iter()
            .filter(|(_, v)| v.contains(KEY))
            .collect();
        assert_eq!(with_key.len(), 1);
        assert_eq!(with_key[0].0, "dd-api-key");
    }

    #[test]
    fn classification_follows_the_documented_codes() {
        assert_eq!(classify(202, b"{}"), Outcome::Delivered);
        assert_eq!(classify(200, b""), Outcome::Delivered);
        for s in [408, 429, 500, 502, 503] {
            assert!(
                matches!(
                    classify(s, b"{\"errors\":[\"Service Unavailable\"]}"),
                    Outcome::Retry { .. }
                ),
                "{s}"
            );
        }
        match classify(413, br#"{"errors":["Payload too large"]}"#) {
            Outcome::Drop { reason } => assert!(reason.contains("payload too large"), "{reason}"),
            o => panic!("{o:?}"),
        }
        match classify(403, br#"{"errors":["Forbidden"]}"#) {
            Outcome::Drop { reason } => assert_eq!(reason, "Datadog 403: Forbidden"),
            o => panic!("{o:?}"),
        }
        match classify(
            400,
            br#"{"errors":[{"status":"400","title":"Bad Request","detail":"Malformed JSON"}]}"#,
        ) {
            Outcome::Drop { reason } => {
                assert_eq!(reason, "Datadog 400: Bad Request: Malformed JSON")
            }
            o => panic!("{o:?}"),
        }
        match classify(401, b"Unauthorized\n") {
            Outcome::Drop { reason } => assert_eq!(reason, "Datadog 401: Unauthorized "),
            o => panic!("{o:?}"),
        }
    }
}
