//! Splunk HTTP Event Collector: `POST /services/collector/event` with one JSON envelope per
//! record, concatenated (no array, no separators needed), `Authorization: Splunk <token>`.
//!
//! Answers (Splunk docs, "Troubleshoot HTTP Event Collector"): 200 `{"text":"Success","code":0}`;
//! 400 data errors (codes 5, 6, 7, 12, 13…) are not retried; 401/403 token errors are not
//! retried; 503 (code 9, server busy) and other 5xx, 408 and 429 are retried.

use super::{excerpt, HttpRequest, Outcome, QueuedRecord};
use crate::config::SplunkHecConfig;

/// Builds the request for a batch. `host` is the event host (the gateway instance).
pub fn build_request(cfg: &SplunkHecConfig, host: &str, batch: &[QueuedRecord]) -> HttpRequest {
    let mut body = String::with_capacity(batch.iter().map(|r| r.json.len() + 160).sum());
    let meta = Meta {
        host: cfg.host.as_deref().unwrap_or(host),
        source: &cfg.source,
        sourcetype: &cfg.sourcetype,
        index: cfg.index.as_deref(),
    };
    for r in batch {
        envelope(&meta, r, &mut body);
    }
    HttpRequest {
        method: "POST",
        authority: cfg.authority.clone(),
        path: cfg.path.clone(),
        headers: vec![
            ("authorization".into(), format!("Splunk {}", cfg.token)),
            ("content-type".into(), "application/json".into()),
        ],
        body: body.into_bytes(),
    }
}

struct Meta<'a> {
    host: &'a str,
    source: &'a str,
    sourcetype: &'a str,
    index: Option<&'a str>,
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
    out.push_str(&r.json);
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
        }
    }

    #[test]
    fn envelopes_are_concatenated_json_objects() {
        let batch = [
            QueuedRecord {
                json: r#"{"decision":"allow"}"#.into(),
                epoch_ms: 1_795_715_649_007,
            },
            QueuedRecord {
                json: r#"{"decision":"refuse"}"#.into(),
                epoch_ms: 1_795_715_650_120,
            },
        ];
        let req = build_request(&cfg(), "gw-1", &batch);
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
}
