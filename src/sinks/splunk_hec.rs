//! Splunk HTTP Event Collector: `POST /services/collector/event` with one JSON envelope per
//! record, concatenated (no array, no separators needed), `Authorization: Splunk <token>`.
//!
//! Answers (Splunk docs, "Troubleshoot HTTP Event Collector"): 200 `{"text":"Success","code":0}`;
//! 400 data errors (codes 5, 6, 7, 12, 13…) are not retried; 401/403 token errors are not
//! retried; 503 (code 9, server busy) and other 5xx, 408 and 429 are retried.
//!
//! With indexer acknowledgement (`ack`), a post that answers an `ackId` is not delivered yet:
//! the sink polls `/services/collector/ack` every second until Splunk says it is indexed.

use std::fmt;

use super::config::SinkConfig;
use super::format::RecordFormat;
use super::{
    compress, excerpt, no_answer, Answer, Batch, Call, HttpRequest, Outcome, QueuedRecord, Sink,
    Step,
};
use crate::audit::IdGenerator;
use crate::config::read::{self, Fields, Path, ReadError};
use crate::error::ConfigError;

/// Splunk HTTP Event Collector sink. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct SplunkHecConfig {
    /// The Envoy cluster that reaches the collector.
    pub cluster: String,
    /// `:authority` of the collector (host[:port]).
    pub authority: String,
    /// HEC token; never logged, never recorded.
    pub token: String,
    pub path: String,
    pub index: Option<String>,
    pub source: String,
    pub sourcetype: String,
    /// `host` of events; defaults to the gateway's instance id.
    pub host: Option<String>,
    /// Indexer acknowledgement: batches count as delivered only once Splunk acks them.
    pub ack: bool,
    /// The `X-Splunk-Request-Channel` (a GUID); one is generated per worker when unset.
    pub channel: Option<String>,
    /// Each event's record: as it is, in ECS or as an OCSF event.
    pub format: RecordFormat,
}

crate::deserialize_by_hand!(SplunkHecConfig);

impl SplunkHecConfig {
    /// `audit.splunk_hec` (unknown fields refused).
    pub fn read(v: serde_json::Value, path: Path<'_>) -> Result<SplunkHecConfig, ReadError> {
        let mut f = Fields::new(
            v,
            path,
            "struct SplunkHecConfig",
            &[
                "cluster",
                "authority",
                "token",
                "path",
                "index",
                "source",
                "sourcetype",
                "host",
                "ack",
                "channel",
                "format",
            ],
        )?;
        Ok(SplunkHecConfig {
            cluster: f.req("cluster", read::string)?,
            authority: f.req("authority", read::string)?,
            token: f.req("token", read::string)?,
            path: f.or("path", read::string, default_path())?,
            index: f.opt("index", read::string)?,
            source: f.or("source", read::string, default_source())?,
            sourcetype: f.or("sourcetype", read::string, default_sourcetype())?,
            host: f.opt("host", read::string)?,
            ack: f.or("ack", read::boolean, false)?,
            channel: f.opt("channel", read::string)?,
            format: f.or("format", RecordFormat::read, RecordFormat::default())?,
        })
    }
}

fn default_path() -> String {
    "/services/collector/event".into()
}
fn default_source() -> String {
    "policy-gateway".into()
}
fn default_sourcetype() -> String {
    "policy_gateway:decision".into()
}

impl SinkConfig for SplunkHecConfig {
    fn name(&self) -> &'static str {
        "splunk_hec"
    }

    /// Checks the fields; errors name the field (never the token's value).
    fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("cluster", &self.cluster),
            ("authority", &self.authority),
            ("token", &self.token),
        ] {
            if value.trim().is_empty() {
                return Err(ConfigError::field(field, "must not be empty"));
            }
        }
        if !self.path.starts_with('/') {
            return Err(ConfigError::field("path", "must start with '/'"));
        }
        Ok(())
    }

    fn build(&self, gateway: &str, seed: u64) -> Box<dyn Sink> {
        let channel = self.ack.then(|| {
            self.channel.clone().unwrap_or_else(|| {
                IdGenerator::new(seed ^ CHANNEL_SEED).next(seed & 0xffff_ffff_ffff)
            })
        });
        Box::new(SplunkHec {
            cfg: self.clone(),
            gateway: gateway.to_string(),
            channel,
            ack: None,
        })
    }
}

/// Mixed into the worker's seed for its generated request channel.
const CHANNEL_SEED: u64 = 0xc4a7_5eed;

/// Ack polling: every second, for at most two minutes, then the batch is sent again (its
/// records carry ids for de-duplication).
const ACK_POLL_MS: u64 = 1_000;
const MAX_ACK_POLLS: u32 = 120;

/// The HEC sink of one worker.
struct SplunkHec {
    cfg: SplunkHecConfig,
    /// Events' `host` unless configured.
    gateway: String,
    /// The request channel: set when indexer acknowledgement is on.
    channel: Option<String>,
    /// The batch is posted: its ack id and the polls so far.
    ack: Option<(u64, u32)>,
}

impl SplunkHec {
    /// Asks, in a second, whether `ack_id` is indexed.
    fn poll_ack(&mut self, ack_id: u64, polls: u32, now_ms: u64) -> Step {
        let Some(channel) = self.channel.as_deref() else {
            return Step::Settle(no_answer());
        };
        let request = ack_request(&self.cfg, channel, ack_id);
        self.ack = Some((ack_id, polls));
        Step::Call {
            call: Call {
                cluster: self.cfg.cluster.clone(),
                request,
            },
            at_ms: now_ms + ACK_POLL_MS,
            seen: Outcome::Delivered,
        }
    }
}

impl Sink for SplunkHec {
    fn start(&mut self, batch: &Batch<'_>, _now_ms: u64) -> Step {
        self.ack = None;
        let request = build_request(
            &self.cfg,
            &self.gateway,
            self.channel.as_deref(),
            batch.records,
        );
        Step::call(&self.cfg.cluster, compress(request))
    }

    fn on_answer(&mut self, answer: Answer<'_>, _batch: &Batch<'_>, now_ms: u64) -> Step {
        let outcome = match (self.ack.take(), answer) {
            (Some((ack_id, polls)), answer) => {
                let status = match answer {
                    Some((status, _, body)) => ack_status(status, body, ack_id),
                    None => AckStatus::Pending,
                };
                match status {
                    AckStatus::Indexed => Outcome::Delivered,
                    AckStatus::Pending if polls + 1 < MAX_ACK_POLLS => {
                        return self.poll_ack(ack_id, polls + 1, now_ms)
                    }
                    AckStatus::Pending => Outcome::Retry {
                        reason: format!("HEC ack {ack_id} not indexed after {MAX_ACK_POLLS} polls"),
                        after_ms: None,
                    },
                    AckStatus::Failed(o) => o,
                }
            }
            (None, Some((status, _, body))) => {
                if self.channel.is_some() && (200..300).contains(&status) {
                    if let Some(ack_id) = ack_id(body) {
                        // Posted, not yet indexed: delivered only once acknowledged.
                        return self.poll_ack(ack_id, 0, now_ms);
                    }
                }
                classify(status, body)
            }
            (None, None) => no_answer(),
        };
        Step::Settle(outcome)
    }
}

impl fmt::Debug for SplunkHecConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplunkHecConfig")
            .field("cluster", &self.cluster)
            .field("authority", &self.authority)
            .field("token", &"<redacted>")
            .field("path", &self.path)
            .field("index", &self.index)
            .field("source", &self.source)
            .field("sourcetype", &self.sourcetype)
            .field("host", &self.host)
            .field("ack", &self.ack)
            .field("channel", &self.channel)
            .finish()
    }
}

/// Builds the request for a batch. `host` is the event host (the gateway instance);
/// `channel` is sent with indexer acknowledgement.
pub fn build_request(
    cfg: &SplunkHecConfig,
    host: &str,
    channel: Option<&str>,
    batch: &[QueuedRecord],
) -> HttpRequest {
    let mut body = String::with_capacity(batch.iter().map(|r| r.json.len() + 160).sum());
    let meta = Meta {
        host: cfg.host.as_deref().unwrap_or(host),
        source: &cfg.source,
        sourcetype: &cfg.sourcetype,
        index: cfg.index.as_deref(),
        format: cfg.format,
    };
    for r in batch {
        envelope(&meta, r, &mut body);
    }
    let mut headers = vec![
        ("authorization".into(), format!("Splunk {}", cfg.token)),
        ("content-type".into(), "application/json".into()),
    ];
    if let Some(channel) = channel {
        headers.push(("x-splunk-request-channel".into(), channel.to_string()));
    }
    HttpRequest {
        method: "POST",
        authority: cfg.authority.clone(),
        path: cfg.path.clone(),
        headers,
        body: body.into_bytes(),
    }
}

/// The `ackId` of a successful post to an ack-enabled token.
pub fn ack_id(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get("ackId")?
        .as_u64()
}

/// `POST /services/collector/ack` asking whether `ack_id` is indexed.
pub fn ack_request(cfg: &SplunkHecConfig, channel: &str, ack_id: u64) -> HttpRequest {
    HttpRequest {
        method: "POST",
        authority: cfg.authority.clone(),
        path: "/services/collector/ack".into(),
        headers: vec![
            ("authorization".into(), format!("Splunk {}", cfg.token)),
            ("content-type".into(), "application/json".into()),
            ("x-splunk-request-channel".into(), channel.to_string()),
        ],
        body: format!("{{\"acks\":[{ack_id}]}}").into_bytes(),
    }
}

/// What an ack poll says about one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckStatus {
    Indexed,
    Pending,
    Failed(Outcome),
}

/// Reads `{"acks": {"<id>": true|false}}`.
pub fn ack_status(status: u16, body: &[u8], ack_id: u64) -> AckStatus {
    if !(200..300).contains(&status) {
        return AckStatus::Failed(classify(status, body));
    }
    let indexed = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("acks")?.get(ack_id.to_string())?.as_bool());
    match indexed {
        Some(true) => AckStatus::Indexed,
        Some(false) => AckStatus::Pending,
        None => AckStatus::Failed(Outcome::Retry {
            reason: format!("HEC ack answer without ack {ack_id}: {}", excerpt(body)),
            after_ms: None,
        }),
    }
}

struct Meta<'a> {
    host: &'a str,
    source: &'a str,
    sourcetype: &'a str,
    index: Option<&'a str>,
    format: RecordFormat,
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// `{"time":<epoch s.ms>,"host":…,"source":…,"sourcetype":…,"index":…,"event":<record>}`
fn envelope(meta: &Meta<'_>, r: &QueuedRecord, out: &mut String) {
    out.push_str(&format!(
        "{{\"time\":{}.{:03},\"host\":{},\"source\":{},\"sourcetype\":{}",
        r.epoch_ms / 1000,
        r.epoch_ms % 1000,
        json_str(meta.host),
        json_str(meta.source),
        json_str(meta.sourcetype)
    ));
    if let Some(index) = meta.index {
        out.push_str(",\"index\":");
        out.push_str(&json_str(index));
    }
    out.push_str(",\"event\":");
    out.push_str(&meta.format.render(&r.json));
    out.push_str("}\n");
}

/// Classifies the collector's answer.
pub fn classify(status: u16, body: &[u8]) -> Outcome {
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("code").and_then(|c| c.as_i64()));
    match status {
        200..=299 if code.is_none_or(|c| c == 0) => Outcome::Delivered,
        200..=299 => Outcome::Drop {
            reason: format!("HEC {status} with error: {}", excerpt(body)),
        },
        408 | 429 | 500..=599 => Outcome::Retry {
            reason: format!("HEC {status}: {}", excerpt(body)),
            after_ms: None,
        },
        _ => Outcome::Drop {
            reason: format!("HEC {status}: {}", excerpt(body)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn cfg() -> SplunkHecConfig {
        SplunkHecConfig {
            cluster: "hec".into(),
            authority: "splunk:8088".into(),
            token: "00000000-0000-0000-0000-000000000000".into(),
            path: "/services/collector/event".into(),
            index: Some("ai_audit".into()),
            source: "policy-gateway".into(),
            sourcetype: "policy_gateway:decision".into(),
            host: None,
            ack: false,
            channel: None,
            format: RecordFormat::Native,
        }
    }

    #[test]
    fn indexer_acknowledgement() {
        let req = build_request(&cfg(), "gw", Some("ch-1"), &[]);
        assert!(req
            .headers
            .contains(&("x-splunk-request-channel".into(), "ch-1".into())));
        assert_eq!(ack_id(br#"{"text":"Success","code":0,"ackId":7}"#), Some(7));
        assert_eq!(ack_id(br#"{"text":"Success","code":0}"#), None);
        let poll = ack_request(&cfg(), "ch-1", 7);
        assert_eq!(poll.path, "/services/collector/ack");
        assert_eq!(poll.body, br#"{"acks":[7]}"#);
        assert_eq!(
            ack_status(200, br#"{"acks":{"7":true}}"#, 7),
            AckStatus::Indexed
        );
        assert_eq!(
            ack_status(200, br#"{"acks":{"7":false}}"#, 7),
            AckStatus::Pending
        );
        assert!(matches!(
            ack_status(200, br#"{"acks":{}}"#, 7),
            AckStatus::Failed(Outcome::Retry { .. })
        ));
        assert!(matches!(
            ack_status(400, br#"{"text":"Data channel is missing","code":10}"#, 7),
            AckStatus::Failed(Outcome::Drop { .. })
        ));
    }

    #[test]
    fn envelopes_are_concatenated_json_objects() {
        let batch = [
            QueuedRecord {
                json: r#"{"decision":"allow"}"#.into(),
                epoch_ms: 1_795_715_649_007,
                gap: None,
                seq: 0,
            },
            QueuedRecord {
                json: r#"{"decision":"refuse"}"#.into(),
                epoch_ms: 1_795_715_650_120,
                gap: None,
                seq: 0,
            },
        ];
        let req = build_request(&cfg(), "gw-1", None, &batch);
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/services/collector/event");
        assert_eq!(req.authority, "splunk:8088");
        assert!(req.headers.contains(&(
            "authorization".into(),
            "Splunk 00000000-0000-0000-0000-000000000000".into()
        )));
        let body = String::from_utf8(req.body).unwrap();
        let events: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&body)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["time"].as_f64(), Some(1_795_715_649.007));
        assert_eq!(events[0]["host"], "gw-1");
        assert_eq!(events[0]["index"], "ai_audit");
        assert_eq!(events[0]["sourcetype"], "policy_gateway:decision");
        assert_eq!(events[1]["event"]["decision"], "refuse");
    }

    #[test]
    fn classification_follows_the_documented_codes() {
        assert_eq!(
            classify(200, br#"{"text":"Success","code":0}"#),
            Outcome::Delivered
        );
        assert!(matches!(
            classify(400, br#"{"text":"Invalid data format","code":6}"#),
            Outcome::Drop { .. }
        ));
        assert!(matches!(
            classify(403, br#"{"text":"Invalid token","code":4}"#),
            Outcome::Drop { .. }
        ));
        assert!(matches!(
            classify(503, br#"{"text":"Server is busy","code":9}"#),
            Outcome::Retry { .. }
        ));
        assert!(matches!(classify(429, b""), Outcome::Retry { .. }));
        assert!(matches!(
            classify(200, br#"{"text":"Incorrect index","code":7}"#),
            Outcome::Drop { .. }
        ));
    }

    #[test]
    fn debug_output_hides_the_token() {
        let c = cfg();
        let shown = format!("{c:?}");
        assert!(!shown.contains(&c.token), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
