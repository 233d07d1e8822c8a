//! Elasticsearch `_bulk`: `POST /<index>/_bulk` with NDJSON, one `create` action line and one
//! document line per record, the body ending with `\n` (Elasticsearch reference, "Bulk API").
//!
//! - `create` works for indices and data streams (data streams accept only `create`), and the
//!   `_id` is the record's `record_id`, so a retried batch cannot duplicate: a document that
//!   was already indexed answers 409 (version conflict), which counts as delivered. Records
//!   without a usable `record_id` get `sha256-<32 hex>` of their JSON.
//! - Documents carry `@timestamp` (data streams require it): the record's own fields are
//!   kept as they are and `@timestamp` is added from the queue time, unless `ecs: true`, where
//!   the document is [`crate::audit::ecs::to_ecs`] of the record.
//! - Authorization: `ApiKey <base64 id:key>` (the API key's `encoded` value) or
//!   `Basic base64(user:password)`.
//!
//! Answers: a whole-request 408, 429 or 5xx retries every record; other non-2xx statuses
//! (400, 401, 403, 404, 413 = over `http.max_content_length`...) drop every record with the
//! service's error. A 2xx with `"errors": false` delivers all; with `"errors": true` each
//! `items[i].create.status` decides: 2xx and 409 delivered, 429 and 5xx retried, other 4xx
//! dropped with `error.type: error.reason`. Items missing or malformed are retried, never
//! dropped silently.

use std::fmt;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::config::SinkConfig;
use super::delivery::ItemResult;
use super::format::RecordFormat;
use super::{
    compress, excerpt, no_answer, percent_encode, Answer, Batch, HttpRequest, Outcome,
    QueuedRecord, Sink, Step,
};
use crate::audit::ecs::to_ecs;
use crate::audit::time::iso8601_millis;
use crate::config::read::{self, Fields, Path, ReadError};
use crate::error::ConfigError;

/// Credentials for the cluster.
#[derive(Clone)]
pub enum ElasticsearchAuth {
    /// The API key's `encoded` value: base64 of `id:api_key`.
    ApiKey(String),
    Basic(BasicAuth),
}

#[derive(Clone)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl ElasticsearchAuth {
    /// `{"api_key": "<encoded>"}` or `{"basic": {"username": …, "password": …}}`.
    fn read(v: Value, path: Path<'_>) -> Result<ElasticsearchAuth, ReadError> {
        let (i, content, name) = read::tagged(v, path, &["api_key", "basic"])?;
        let path = path.key(name);
        if i == 0 {
            return Ok(ElasticsearchAuth::ApiKey(read::string(content, path)?));
        }
        let mut f = Fields::new(content, path, "struct BasicAuth", &["username", "password"])?;
        Ok(ElasticsearchAuth::Basic(BasicAuth {
            username: f.req("username", read::string)?,
            password: f.req("password", read::string)?,
        }))
    }
}

impl fmt::Debug for ElasticsearchAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElasticsearchAuth::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            ElasticsearchAuth::Basic(b) => f
                .debug_struct("Basic")
                .field("username", &b.username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

impl ElasticsearchAuth {
    /// The `authorization` header value.
    pub fn header_value(&self) -> String {
        match self {
            ElasticsearchAuth::ApiKey(k) => format!("ApiKey {k}"),
            ElasticsearchAuth::Basic(b) => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", b.username, b.password))
            ),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match self {
            ElasticsearchAuth::ApiKey(k) => {
                let decoded = base64::engine::general_purpose::STANDARD.decode(k.trim());
                let ok = !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_graphic())
                    && decoded.is_ok_and(|d| d.contains(&b':'));
                if ok {
                    Ok(())
                } else {
                    Err(ConfigError::field(
                        "auth.api_key",
                        "must be the key's `encoded` value (base64 of id:api_key)",
                    ))
                }
            }
            ElasticsearchAuth::Basic(b) => {
                if b.username.is_empty() || b.username.contains(':') {
                    return Err(ConfigError::field(
                        "auth.basic.username",
                        "must be non-empty, without ':'",
                    ));
                }
                if b.username
                    .chars()
                    .chain(b.password.chars())
                    .any(char::is_control)
                {
                    return Err(ConfigError::field(
                        "auth.basic",
                        "no control characters allowed",
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Configuration of the Elasticsearch sink.
#[derive(Debug, Clone)]
pub struct ElasticsearchConfig {
    /// The Envoy cluster that reaches Elasticsearch.
    pub cluster: String,
    /// `:authority` (host[:port]).
    pub authority: String,
    /// Index, alias or data stream name.
    pub index: String,
    pub auth: ElasticsearchAuth,
    /// Documents in ECS field names ([`crate::audit::ecs`]) instead of the record as is; the
    /// same as `"format": "ecs"`.
    pub ecs: bool,
    /// Documents: the record as it is, in ECS or as an OCSF event (with `@timestamp` added).
    pub format: RecordFormat,
    /// Ingest pipeline (`?pipeline=`).
    pub pipeline: Option<String>,
}

crate::deserialize_by_hand!(ElasticsearchConfig);

impl ElasticsearchConfig {
    /// `audit.elasticsearch` (unknown fields refused).
    pub fn read(v: Value, path: Path<'_>) -> Result<ElasticsearchConfig, ReadError> {
        let mut f = Fields::new(
            v,
            path,
            "struct ElasticsearchConfig",
            &[
                "cluster",
                "authority",
                "index",
                "auth",
                "ecs",
                "format",
                "pipeline",
            ],
        )?;
        Ok(ElasticsearchConfig {
            cluster: f.req("cluster", read::string)?,
            authority: f.req("authority", read::string)?,
            index: f.req("index", read::string)?,
            auth: f.req("auth", ElasticsearchAuth::read)?,
            ecs: f.or("ecs", read::boolean, false)?,
            format: f.or("format", RecordFormat::read, RecordFormat::default())?,
            pipeline: f.opt("pipeline", read::string)?,
        })
    }
}

/// Checks an index or data stream name against Elasticsearch's rules.
pub fn validate_index_name(name: &str) -> Result<(), String> {
    const FORBIDDEN: &[char] = &['\\', '/', '*', '?', '"', '<', '>', '|', ',', '#', ':', ' '];
    if name.is_empty() || name.len() > 255 {
        return Err("must be 1 to 255 bytes".into());
    }
    if name == "." || name == ".." {
        return Err("must not be '.' or '..'".into());
    }
    if name.starts_with(['-', '_', '+']) {
        return Err("must not start with '-', '_' or '+'".into());
    }
    if name.chars().any(char::is_uppercase) {
        return Err("must be lowercase".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| FORBIDDEN.contains(c) || c.is_whitespace() || c.is_control())
    {
        return Err(format!("must not contain {c:?}"));
    }
    Ok(())
}

impl ElasticsearchConfig {
    /// `format`, with the older `ecs: true` read as `"format": "ecs"`.
    pub fn record_format(&self) -> RecordFormat {
        if self.ecs {
            RecordFormat::Ecs
        } else {
            self.format
        }
    }
}

impl SinkConfig for ElasticsearchConfig {
    fn name(&self) -> &'static str {
        "elasticsearch"
    }

    /// Checks the configuration; the error names the field (never a secret's value).
    fn validate(&self) -> Result<(), ConfigError> {
        if self.cluster.trim().is_empty() {
            return Err(ConfigError::field("cluster", "must not be empty"));
        }
        if self.authority.is_empty()
            || self.authority.contains('/')
            || !self.authority.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(ConfigError::field(
                "authority",
                &format!(
                    "{:?} is not a host[:port] (no scheme, path or spaces)",
                    self.authority
                ),
            ));
        }
        validate_index_name(&self.index)
            .map_err(|e| ConfigError::field("index", &format!("{:?} {e}", self.index)))?;
        self.auth.validate()?;
        if self.ecs && self.format != RecordFormat::Native && self.format != RecordFormat::Ecs {
            return Err(ConfigError::field(
                "format",
                "conflicts with ecs: true (use \"format\": \"ecs\" alone)",
            ));
        }
        if let Some(p) = &self.pipeline {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_graphic()) {
                return Err(ConfigError::field(
                    "pipeline",
                    &format!("{p:?} must be non-empty, without spaces"),
                ));
            }
        }
        Ok(())
    }

    fn build(&self, _gateway: &str, _seed: u64) -> Box<dyn Sink> {
        Box::new(Elasticsearch { cfg: self.clone() })
    }
}

/// The Elasticsearch sink of one worker: one `_bulk` call per batch, answered per record.
struct Elasticsearch {
    cfg: ElasticsearchConfig,
}

impl Sink for Elasticsearch {
    fn start(&mut self, batch: &Batch<'_>, _now_ms: u64) -> Step {
        let request = build_request(&self.cfg, batch.records);
        Step::call(&self.cfg.cluster, compress(request))
    }

    fn on_answer(&mut self, answer: Answer<'_>, batch: &Batch<'_>, _now_ms: u64) -> Step {
        let Some((status, _, body)) = answer else {
            return Step::Settle(no_answer());
        };
        let len = batch.records.len();
        let b = classify(status, body, len);
        let mut results = vec![ItemResult::Retry; len];
        for &i in &b.delivered {
            if let Some(r) = results.get_mut(i) {
                *r = ItemResult::Delivered;
            }
        }
        for (i, _) in &b.dropped {
            if let Some(r) = results.get_mut(*i) {
                *r = ItemResult::Dropped;
            }
        }
        let seen = match (b.dropped.first(), b.retry.is_empty()) {
            (Some((_, reason)), _) => Outcome::Drop {
                reason: format!("{} of {len} records rejected: {reason}", b.dropped.len()),
            },
            (None, false) => Outcome::Retry {
                reason: format!("{} of {len} records to retry", b.retry.len()),
                after_ms: None,
            },
            (None, true) => Outcome::Delivered,
        };
        Step::SettleEach {
            results,
            after_ms: None,
            seen,
        }
    }
}

impl ElasticsearchConfig {
    /// The request path: `/<index>/_bulk`, with `?pipeline=` when set.
    pub fn bulk_path(&self) -> String {
        let mut path = format!("/{}/_bulk", percent_encode(&self.index));
        if let Some(p) = &self.pipeline {
            path.push_str("?pipeline=");
            path.push_str(&percent_encode(p));
        }
        path
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Builds the `_bulk` request for a batch.
pub fn build_request(cfg: &ElasticsearchConfig, batch: &[QueuedRecord]) -> HttpRequest {
    let index = json_str(&cfg.index);
    let mut body = String::with_capacity(batch.iter().map(|r| r.json.len() + 160).sum());
    for r in batch {
        let (id, doc) = document(cfg.record_format(), r);
        body.push_str("{\"create\":{\"_index\":");
        body.push_str(&index);
        body.push_str(",\"_id\":");
        body.push_str(&json_str(&id));
        body.push_str("}}\n");
        body.push_str(&doc);
        body.push('\n');
    }
    HttpRequest {
        method: "POST",
        authority: cfg.authority.clone(),
        path: cfg.bulk_path(),
        headers: vec![
            ("authorization".into(), cfg.auth.header_value()),
            ("content-type".into(), "application/x-ndjson".into()),
        ],
        body: body.into_bytes(),
    }
}

/// The `_id` of a record: its `record_id` when usable (1 to 512 bytes), else a hash of its JSON.
pub fn document_id(record: Option<&Value>, json: &str) -> String {
    if let Some(id) = record
        .and_then(|v| v.get("record_id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.len() <= 512)
    {
        return id.to_string();
    }
    format!("sha256-{}", crate::sha256::hex_digest_128(json.as_bytes()))
}

/// The `_id` and the document line (no newline inside) of a record.
fn document(format: RecordFormat, r: &QueuedRecord) -> (String, String) {
    let parsed = serde_json::from_slice::<Value>(r.json.as_bytes())
        .ok()
        .filter(Value::is_object);
    let id = document_id(parsed.as_ref(), &r.json);
    let timestamp = iso8601_millis(r.epoch_ms);
    if format == RecordFormat::Ocsf {
        let mut doc = crate::audit::ocsf::to_ocsf(&r.json);
        if let Some(m) = doc.as_object_mut() {
            m.insert("@timestamp".into(), timestamp.into());
        }
        return (id, serde_json::to_string(&doc).unwrap_or_default());
    }
    if format == RecordFormat::Ecs {
        let source = parsed.unwrap_or_else(|| Value::String(r.json.clone()));
        let mut doc = to_ecs(&source);
        if let Some(m) = doc.as_object_mut() {
            m.entry("@timestamp").or_insert_with(|| timestamp.into());
        }
        return (id, serde_json::to_string(&doc).unwrap_or_default());
    }
    let Some(mut rec) = parsed else {
        // Not a JSON object: index it as text rather than let it break the NDJSON framing.
        let mut m = Map::new();
        m.insert("@timestamp".into(), timestamp.into());
        m.insert("policy_gateway_unparsed".into(), r.json.as_str().into());
        return (
            id,
            serde_json::to_string(&Value::Object(m)).unwrap_or_default(),
        );
    };
    let has_timestamp = rec.get("@timestamp").is_some();
    if r.json.contains(['\n', '\r']) {
        // Pretty-printed: re-serialize on one line.
        if let Some(m) = rec.as_object_mut() {
            m.entry("@timestamp").or_insert_with(|| timestamp.into());
        }
        return (id, serde_json::to_string(&rec).unwrap_or_default());
    }
    if has_timestamp {
        return (id, r.json.trim().to_string());
    }
    // Keep the record's bytes and field order; add `@timestamp` first.
    let rest = r.json.trim().strip_prefix('{').unwrap_or_default();
    let sep = if rest.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    (
        id,
        format!("{{\"@timestamp\":{}{sep}{rest}", json_str(&timestamp)),
    )
}

/// The fate of each record of a `_bulk` batch (indexes into the batch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    pub delivered: Vec<usize>,
    pub retry: Vec<usize>,
    pub dropped: Vec<(usize, String)>,
    /// Set when one outcome covers the whole batch (a whole-request status, or
    /// `"errors": false`); `None` when items were classified one by one.
    pub whole: Option<Outcome>,
}

impl BulkOutcome {
    fn all(outcome: Outcome, batch_len: usize) -> BulkOutcome {
        let mut o = BulkOutcome::default();
        match &outcome {
            Outcome::Delivered => o.delivered = (0..batch_len).collect(),
            Outcome::Retry { .. } => o.retry = (0..batch_len).collect(),
            Outcome::Drop { reason } => {
                o.dropped = (0..batch_len).map(|i| (i, reason.clone())).collect()
            }
        }
        o.whole = Some(outcome);
        o
    }
}

/// `type: reason` of an Elasticsearch `error` object (or the error string).
fn error_text(error: Option<&Value>) -> Option<String> {
    let error = error?;
    if let Some(s) = error.as_str() {
        return Some(s.to_string());
    }
    let t = error.get("type").and_then(Value::as_str);
    let r = error.get("reason").and_then(Value::as_str);
    match (t, r) {
        (Some(t), Some(r)) => Some(format!("{t}: {r}")),
        (Some(x), None) | (None, Some(x)) => Some(x.to_string()),
        (None, None) => serde_json::to_string(error).ok(),
    }
}

fn whole_reason(status: u16, body: &[u8]) -> String {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let text = error_text(parsed.as_ref().and_then(|v| v.get("error")))
        .map(|t| excerpt(t.as_bytes()))
        .unwrap_or_else(|| excerpt(body));
    match status {
        413 => format!("Elasticsearch 413: request too large (http.max_content_length): {text}"),
        _ => format!("Elasticsearch {status}: {text}"),
    }
}

/// Classifies the answer to a `_bulk` request of `batch_len` records.
pub fn classify(status: u16, body: &[u8], batch_len: usize) -> BulkOutcome {
    match status {
        200..=299 => {}
        408 | 429 | 500..=599 => {
            return BulkOutcome::all(
                Outcome::Retry {
                    reason: whole_reason(status, body),
                    after_ms: None,
                },
                batch_len,
            )
        }
        _ => {
            return BulkOutcome::all(
                Outcome::Drop {
                    reason: whole_reason(status, body),
                },
                batch_len,
            )
        }
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return BulkOutcome::all(
            Outcome::Retry {
                reason: format!("Elasticsearch {status}: unreadable bulk response"),
                after_ms: None,
            },
            batch_len,
        );
    };
    if parsed.get("errors").and_then(Value::as_bool) == Some(false) {
        return BulkOutcome::all(Outcome::Delivered, batch_len);
    }
    let items = parsed.get("items").and_then(Value::as_array);
    let mut out = BulkOutcome::default();
    for i in 0..batch_len {
        let result = items
            .and_then(|items| items.get(i))
            .and_then(Value::as_object)
            .and_then(|item| item.get("create").or_else(|| item.values().next()));
        let code = result.and_then(|r| r.get("status")).and_then(Value::as_u64);
        match code {
            Some(200..=299 | 409) => out.delivered.push(i),
            Some(429 | 500..=599) | None => out.retry.push(i),
            Some(c @ 400..=499) => {
                let text = error_text(result.and_then(|r| r.get("error")))
                    .unwrap_or_else(|| "no error detail".into());
                out.dropped.push((
                    i,
                    format!("Elasticsearch item {c}: {}", excerpt(text.as_bytes())),
                ));
            }
            Some(_) => out.retry.push(i),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    // base64("VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw")
    const ENCODED: &str = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==";

    fn cfg() -> ElasticsearchConfig {
        serde_json::from_value(serde_json::json!({
            "cluster": "es",
            "authority": "es.internal:9200",
            "index": "policy-audit",
            "auth": {"api_key": ENCODED},
        }))
        .unwrap()
    }

    fn record(i: usize) -> QueuedRecord {
        QueuedRecord {
            json: serde_json::json!({
                "schema_version": "1.0",
                "record_type": "decision",
                "record_id": format!("0196a1b2-0000-7000-8000-{i:012x}"),
                "timestamp": "2026-11-26T17:00:00.000Z",
                "decision": "redact",
                "reason_code": "PII_EMAIL",
                "policy_id": "acme@3",
                "policy_user": "alice",
                "enforced": true,
                "triggered_rules": ["no-email"],
            })
            .to_string(),
            epoch_ms: 1_795_712_400_000,
            gap: None,
            seq: 0,
        }
    }

    /// Splits an NDJSON body into (action, document) pairs, checking the framing.
    fn pairs(body: &[u8]) -> Vec<(Value, Value)> {
        let text = std::str::from_utf8(body).unwrap();
        assert!(text.ends_with('\n'), "bulk body must end with a newline");
        let lines: Vec<&str> = text.trim_end_matches('\n').split('\n').collect();
        assert_eq!(lines.len() % 2, 0, "{text}");
        lines
            .chunks(2)
            .map(|c| {
                (
                    serde_json::from_str(c[0]).unwrap(),
                    serde_json::from_str(c[1]).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn bulk_body_is_create_action_and_document_pairs() {
        let batch = [record(1), record(2)];
        let req = build_request(&cfg(), &batch);
        assert_eq!(req.method, "POST");
        assert_eq!(req.authority, "es.internal:9200");
        assert_eq!(req.path, "/policy-audit/_bulk");
        assert!(req
            .headers
            .contains(&("content-type".into(), "application/x-ndjson".into())));
        assert!(req
            .headers
            .contains(&("authorization".into(), format!("ApiKey {ENCODED}"))));
        let ps = pairs(&req.body);
        assert_eq!(ps.len(), 2);
        for ((action, doc), r) in ps.iter().zip(&batch) {
            let original: Value = serde_json::from_str(&r.json).unwrap();
            assert_eq!(
                *action,
                serde_json::json!({"create": {"_index": "policy-audit", "_id": original["record_id"]}})
            );
            assert_eq!(doc["@timestamp"], "2026-11-26T17:00:00.000Z");
            let mut without_ts = doc.clone();
            without_ts.as_object_mut().unwrap().remove("@timestamp");
            assert_eq!(without_ts, original, "the record is indexed as is");
        }
    }

    #[test]
    fn ecs_documents_use_ecs_names_and_keep_the_record() {
        let mut c = cfg();
        c.ecs = true;
        c.pipeline = Some("policy gw".into());
        let req = build_request(&c, &[record(3)]);
        assert_eq!(req.path, "/policy-audit/_bulk?pipeline=policy%20gw");
        let ps = pairs(&req.body);
        let (action, doc) = &ps[0];
        assert_eq!(
            action["create"]["_id"],
            "0196a1b2-0000-7000-8000-000000000003"
        );
        assert_eq!(doc["@timestamp"], "2026-11-26T17:00:00.000Z");
        assert_eq!(doc["event"]["action"], "redact");
        assert_eq!(doc["user"]["id"], "alice");
        assert_eq!(doc["rule"]["ruleset"], "acme@3");
        assert_eq!(
            doc["policy_gateway"],
            serde_json::from_str::<Value>(&record(3).json).unwrap()
        );
    }

    #[test]
    fn records_without_an_id_get_a_stable_hash_id() {
        let r = QueuedRecord {
            json: r#"{"decision":"allow"}"#.into(),
            epoch_ms: 0,
            gap: None,
            seq: 0,
        };
        let a = pairs(&build_request(&cfg(), std::slice::from_ref(&r)).body);
        let b = pairs(&build_request(&cfg(), &[r]).body);
        let id = a[0].0["create"]["_id"].as_str().unwrap().to_string();
        assert!(id.starts_with("sha256-") && id.len() == 7 + 32, "{id}");
        assert_eq!(b[0].0["create"]["_id"], id.as_str());
        assert_eq!(a[0].1["@timestamp"], "1970-01-01T00:00:00.000Z");
        let other = QueuedRecord {
            json: r#"{"decision":"refuse"}"#.into(),
            epoch_ms: 0,
            gap: None,
            seq: 0,
        };
        let c = pairs(&build_request(&cfg(), &[other]).body);
        assert_ne!(c[0].0["create"]["_id"], id.as_str());
    }

    #[test]
    fn newlines_and_garbage_never_break_the_framing() {
        let batch = [
            QueuedRecord {
                json: "{\n  \"record_id\": \"pretty\",\n  \"decision\": \"allow\"\n}".into(),
                epoch_ms: 1,
                gap: None,
                seq: 0,
            },
            QueuedRecord {
                json: "not json\n{\"create\":{}}".into(),
                epoch_ms: 2,
                gap: None,
                seq: 0,
            },
            QueuedRecord {
                json: "{}".into(),
                epoch_ms: 3,
                gap: None,
                seq: 0,
            },
            QueuedRecord {
                json: r#"{"@timestamp":"2020-01-01T00:00:00.000Z","record_id":"t"}"#.into(),
                epoch_ms: 4,
                gap: None,
                seq: 0,
            },
        ];
        let ps = pairs(&build_request(&cfg(), &batch).body);
        assert_eq!(ps.len(), 4);
        assert_eq!(ps[0].0["create"]["_id"], "pretty");
        assert_eq!(ps[0].1["decision"], "allow");
        assert_eq!(ps[1].1["policy_gateway_unparsed"], batch[1].json);
        assert_eq!(ps[2].1["@timestamp"], "1970-01-01T00:00:00.003Z");
        assert_eq!(ps[3].1["@timestamp"], "2020-01-01T00:00:00.000Z");
    }

    #[test]
    fn basic_auth_header_and_redacted_debug() {
        let c: ElasticsearchConfig = serde_json::from_value(serde_json::json!({
            "cluster": "es",
            "authority": "es:9200",
            "index": "logs-policy_gateway-default",
            "auth": {"basic": {"username": "elastic", "password": "s3cr3t-pw"}},
            "ecs": true,
        }))
        .unwrap();
        assert!(c.validate().is_ok());
        let req = build_request(&c, &[record(0)]);
        // base64("elastic:s3cr3t-pw")
        assert!(req.headers.contains(&(
            "authorization".into(),
            "Basic ZWxhc3RpYzpzM2NyM3QtcHc=".into()
        )));
        assert!(!String::from_utf8_lossy(&req.body).contains("s3cr3t"));
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr3t") && dbg.contains("elastic"), "{dbg}");
        let dbg = format!("{:?}", cfg());
        assert!(!dbg.contains(ENCODED), "{dbg}");
    }

    #[test]
    fn config_validation_names_the_field() {
        assert!(cfg().validate().is_ok());
        assert!(
            serde_json::from_value::<ElasticsearchConfig>(serde_json::json!({
                "cluster": "es", "authority": "es:9200", "index": "a",
                "auth": {"bearer": "x"},
            }))
            .is_err()
        );
        assert!(
            serde_json::from_value::<ElasticsearchConfig>(serde_json::json!({
                "cluster": "es", "authority": "es:9200", "index": "a",
                "auth": {"api_key": ENCODED}, "type": "_doc",
            }))
            .is_err()
        );
        for bad in [
            "Policy",
            "policy audit",
            "a/b",
            "a\\b",
            "a*",
            "a?",
            "a\"",
            "a<",
            "a>",
            "a|",
            "a,b",
            "a#",
            "-a",
            "_a",
            "+a",
            "",
            ".",
            "..",
            "a:b",
        ] {
            let mut c = cfg();
            c.index = bad.into();
            let e = c
                .validate()
                .unwrap_err()
                .within("elasticsearch")
                .to_string();
            assert!(e.starts_with("elasticsearch.index"), "{bad}: {e}");
        }
        for good in [
            "policy-audit",
            "logs-policy_gateway-default",
            ".ds-x",
            "a.b+c",
        ] {
            assert!(validate_index_name(good).is_ok(), "{good}");
        }
        let mut c = cfg();
        c.auth = ElasticsearchAuth::ApiKey("ui2lp2axTNmsyakw9tvNnw".into());
        let e = c
            .validate()
            .unwrap_err()
            .within("elasticsearch")
            .to_string();
        assert!(
            e.starts_with("elasticsearch.auth.api_key") && !e.contains("ui2lp"),
            "{e}"
        );
        c.auth = ElasticsearchAuth::Basic(BasicAuth {
            username: "a:b".into(),
            password: "p".into(),
        });
        assert!(c
            .validate()
            .unwrap_err()
            .within("elasticsearch")
            .to_string()
            .starts_with("elasticsearch.auth.basic.username"));
        let mut c = cfg();
        c.authority = "https://es:9200".into();
        assert!(c
            .validate()
            .unwrap_err()
            .within("elasticsearch")
            .to_string()
            .starts_with("elasticsearch.authority"));
        let mut c = cfg();
        c.pipeline = Some(String::new());
        assert!(c
            .validate()
            .unwrap_err()
            .within("elasticsearch")
            .to_string()
            .starts_with("elasticsearch.pipeline"));
    }

    #[test]
    fn whole_request_statuses() {
        let o = classify(429, br#"{"error":{"type":"es_rejected_execution_exception","reason":"rejected execution"},"status":429}"#, 3);
        assert_eq!(o.retry, vec![0, 1, 2]);
        assert!(o.delivered.is_empty() && o.dropped.is_empty());
        assert!(matches!(o.whole, Some(Outcome::Retry { .. })));
        for s in [408, 500, 502, 503] {
            assert_eq!(classify(s, b"", 2).retry, vec![0, 1], "{s}");
        }
        let o = classify(
            401,
            br#"{"error":{"root_cause":[{"type":"security_exception","reason":"unable to authenticate with provided credentials"}],"type":"security_exception","reason":"unable to authenticate with provided credentials"},"status":401}"#,
            2,
        );
        assert_eq!(o.dropped.len(), 2);
        assert_eq!(
            o.dropped[0].1,
            "Elasticsearch 401: security_exception: unable to authenticate with provided credentials"
        );
        for s in [400, 403, 404] {
            let o = classify(s, br#"{"error":"x"}"#, 1);
            assert_eq!(o.dropped.len(), 1, "{s}");
            assert!(matches!(o.whole, Some(Outcome::Drop { .. })));
        }
        let o = classify(413, b"", 1);
        assert!(
            o.dropped[0].1.contains("request too large"),
            "{:?}",
            o.dropped
        );
    }

    #[test]
    fn ok_without_errors_delivers_all() {
        let body = br#"{"took":30,"errors":false,"items":[
            {"create":{"_index":"policy-audit","_id":"a","_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"status":201,"_seq_no":0,"_primary_term":1}},
            {"create":{"_index":"policy-audit","_id":"b","_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"status":201,"_seq_no":1,"_primary_term":1}}]}"#;
        let o = classify(200, body, 2);
        assert_eq!(o.delivered, vec![0, 1]);
        assert_eq!(o.whole, Some(Outcome::Delivered));
    }

    #[test]
    fn per_item_errors() {
        let body = br#"{"took":486,"errors":true,"items":[
            {"create":{"_index":"policy-audit","_id":"a","status":201,"result":"created"}},
            {"create":{"_index":"policy-audit","_id":"b","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[b]: version conflict, document already exists (current version [1])","index":"policy-audit","shard":"0"}}},
            {"create":{"_index":"policy-audit","_id":"c","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"}}},
            {"create":{"_index":"policy-audit","_id":"d","status":400,"error":{"type":"document_parsing_exception","reason":"[1:15] failed to parse field [decision] of type [long]"}}},
            {"create":{"_index":"policy-audit","_id":"e","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}}
        ]}"#;
        let o = classify(200, body, 5);
        assert_eq!(o.delivered, vec![0, 1]);
        assert_eq!(o.retry, vec![2, 4]);
        assert_eq!(o.dropped.len(), 1);
        assert_eq!(o.dropped[0].0, 3);
        assert_eq!(
            o.dropped[0].1,
            "Elasticsearch item 400: document_parsing_exception: [1:15] failed to parse field [decision] of type [long]"
        );
        assert_eq!(o.whole, None);
    }

    #[test]
    fn malformed_or_short_answers_retry_what_is_unaccounted() {
        let body = br#"{"errors":true,"items":[{"create":{"status":201}},{"create":{}}]}"#;
        let o = classify(200, body, 4);
        assert_eq!(o.delivered, vec![0]);
        assert_eq!(o.retry, vec![1, 2, 3]);
        let o = classify(200, b"<html>proxy</html>", 2);
        assert_eq!(o.retry, vec![0, 1]);
        assert!(matches!(o.whole, Some(Outcome::Retry { .. })));
        let o = classify(200, br#"{"took":1}"#, 2);
        assert_eq!(o.retry, vec![0, 1]);
        // `index` results are read too, should an item answer under another action name.
        let body = br#"{"errors":true,"items":[{"index":{"status":200}},{"create":{"status":400,"error":{"type":"x","reason":"y"}}}]}"#;
        let o = classify(200, body, 2);
        assert_eq!(o.delivered, vec![0]);
        assert_eq!(o.dropped, vec![(1, "Elasticsearch item 400: x: y".into())]);
    }
}
