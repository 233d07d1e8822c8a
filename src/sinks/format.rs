//! How a sink writes each record (`format` in the sink's configuration): the record as it is
//! (`native`, the default), in ECS field names (`ecs`, with the record under
//! `policy_gateway`) or as an OCSF event (`ocsf`, with the record as `raw_data`). Every format
//! keeps the whole chained record, so `trail verify` checks any of them.

use std::borrow::Cow;

use serde_json::Value;

use crate::config::read::{self, Path, ReadError};

use crate::audit::{ecs, ocsf};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecordFormat {
    #[default]
    Native,
    Ecs,
    Ocsf,
}

crate::deserialize_by_hand!(RecordFormat);

impl RecordFormat {
    /// `"native"`, `"ecs"` or `"ocsf"`.
    pub fn read(v: Value, path: Path<'_>) -> Result<RecordFormat, ReadError> {
        Ok(match read::variant(v, path, &["native", "ecs", "ocsf"])? {
            0 => RecordFormat::Native,
            1 => RecordFormat::Ecs,
            _ => RecordFormat::Ocsf,
        })
    }

    /// The record's JSON (one line) as this format writes it.
    pub fn render(self, json: &str) -> Cow<'_, str> {
        match self {
            RecordFormat::Native => Cow::Borrowed(json),
            RecordFormat::Ecs => {
                let record = serde_json::from_slice::<Value>(json.as_bytes())
                    .unwrap_or_else(|_| Value::String(json.to_string()));
                Cow::Owned(serde_json::to_string(&ecs::to_ecs(&record)).unwrap_or_default())
            }
            RecordFormat::Ocsf => {
                Cow::Owned(serde_json::to_string(&ocsf::to_ocsf(json)).unwrap_or_default())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn every_format_keeps_the_whole_record() {
        let json = r#"{"decision":"allow","record_id":"r","record_type":"decision"}"#;
        assert_eq!(RecordFormat::Native.render(json), json);
        let ecs: Value = serde_json::from_str(&RecordFormat::Ecs.render(json)).unwrap();
        assert_eq!(ecs["policy_gateway"]["record_id"], "r");
        let ocsf: Value = serde_json::from_str(&RecordFormat::Ocsf.render(json)).unwrap();
        assert_eq!(ocsf["raw_data"], json);
        assert_eq!(ocsf["class_uid"], 2006);
        let f: RecordFormat = serde_json::from_str("\"ocsf\"").unwrap();
        assert_eq!(f, RecordFormat::Ocsf);
        assert!(serde_json::from_str::<RecordFormat>("\"OCSF\"").is_err());
    }

    fn gunzip(body: &[u8]) -> Vec<u8> {
        let body = body.get(10..body.len() - 8).unwrap_or(body);
        miniz_oxide::inflate::decompress_to_vec(body).unwrap()
    }

    /// What each sink with `"format": "ocsf"` sends for one record.
    #[test]
    fn every_sink_with_format_ocsf_sends_ocsf_events() {
        use crate::sinks::{datadog_logs, elasticsearch, s3, splunk_hec, QueuedRecord};
        let json = r#"{"decision":"refuse","record_id":"r1","record_type":"decision","timestamp":"2026-11-26T10:00:00.000Z"}"#;
        let batch = [QueuedRecord::new(json.into(), 1_000)];
        let ocsf = |v: &Value| {
            assert_eq!(v["class_uid"], 2006, "{v}");
            assert_eq!(v["raw_data"], json, "{v}");
        };
        let hec: splunk_hec::SplunkHecConfig = serde_json::from_value(serde_json::json!({
            "cluster": "hec", "authority": "h", "token": "t", "format": "ocsf"}))
        .unwrap();
        let body = splunk_hec::build_request(&hec, "gw", None, &batch).body;
        let v: Value = serde_json::from_slice(&body).unwrap();
        ocsf(&v["event"]);
        let line = gunzip(&s3::object_body(&batch, RecordFormat::Ocsf));
        ocsf(&serde_json::from_slice(&line).unwrap());
        let es: elasticsearch::ElasticsearchConfig = serde_json::from_value(serde_json::json!({
            "cluster": "es", "authority": "es:9200", "index": "audit", "format": "ocsf",
            "auth": {"api_key": "k"}}))
        .unwrap();
        let body = String::from_utf8(elasticsearch::build_request(&es, &batch).body).unwrap();
        let doc: Value = serde_json::from_str(body.lines().nth(1).unwrap()).unwrap();
        ocsf(&doc);
        assert_eq!(doc["@timestamp"], "1970-01-01T00:00:01.000Z");
        assert!(body.contains(r#""_id":"r1""#), "{body}");
        let dd: datadog_logs::DatadogConfig = serde_json::from_value(serde_json::json!({
            "cluster": "dd", "api_key": "k", "format": "ocsf"}))
        .unwrap();
        let (req, _) = datadog_logs::build_requests(&dd, "gw", &batch).remove(0);
        let entries: Value = serde_json::from_slice(&req.body).unwrap();
        let message: Value = serde_json::from_str(entries[0]["message"].as_str().unwrap()).unwrap();
        ocsf(&message);
        assert_eq!(entries[0]["decision"], "refuse", "facets from the record");
        // ecs: true and another format conflict.
        let both: elasticsearch::ElasticsearchConfig = serde_json::from_value(serde_json::json!({
            "cluster": "es", "authority": "es:9200", "index": "audit", "format": "ocsf",
            "ecs": true, "auth": {"api_key": "aWQ6a2V5"}}))
        .unwrap();
        use crate::sinks::config::SinkConfig as _;
        assert!(both.validate().unwrap_err().to_string().contains("format"));
    }
}
