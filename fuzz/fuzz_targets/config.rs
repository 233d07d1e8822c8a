//! The plugin configuration parser (`PluginConfig::from_json`, run by `on_configure`) on
//! arbitrary bytes:
//! - no panic;
//! - an accepted configuration holds every documented bound (the filter relies on them);
//! - a rejected one says where: the error names the field (JSON syntax errors, which have
//!   no field, their position);
//! - no sink's secret shows in the configuration's `Debug` output (logs print it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use policy_gateway::config::attribution::Source;
use policy_gateway::config::PluginConfig;
use policy_gateway::sinks::azure_monitor::AzureAuth;
use policy_gateway::sinks::elasticsearch::ElasticsearchAuth;

/// Where every validation error starts: the field it is about (each of the configuration's
/// top-level keys, then its path within it).
const FIELDS: [&str; 13] = [
    "policy",
    "candidate_policy",
    "max_body_bytes",
    "audit",
    "attribution",
    "streaming",
    "instance_id",
    "hold_headers",
    "inspect_responses",
    "max_holdback_bytes",
    "max_queued_bytes",
    "on_uninspectable",
    "on_uninspectable_response",
];

/// Whether `e` starts with `field` as a whole path segment (`audit.`, `audit:`, `policy[`).
fn names(e: &str, field: &str) -> bool {
    e.strip_prefix(field)
        .is_some_and(|rest| rest.starts_with(['.', ':', '[', ' ']))
}

/// Stands in for each secret in turn: it must never show in `Debug`.
const SENTINEL: &str = "FUZZ-SENTINEL-SECRET-5c1e";

fn assert_hidden(config: &PluginConfig, what: &str, set: impl FnOnce(&mut PluginConfig)) {
    let mut c = config.clone();
    set(&mut c);
    let shown = format!("{c:?}");
    assert!(!shown.contains(SENTINEL), "Debug shows {what}");
}

fuzz_target!(|data: &[u8]| {
    let config = match PluginConfig::from_json(data) {
        Ok(c) => c,
        Err(e) => {
            let e = e.to_string();
            // JSON's syntax errors have no field, only a position; an error about a value
            // (a wrong type, an unknown variant) must say which field holds it.
            let message = e.strip_prefix("plugin configuration: ");
            let about_value = message.is_some_and(|m| {
                ["invalid type", "invalid value", "invalid length"]
                    .iter()
                    .any(|k| m.contains(k))
            });
            // A document that is not an object at all has no field to name: it is the whole.
            let whole = message.is_some_and(|m| m.contains("expected struct PluginDoc"));
            let named = whole
                || FIELDS.iter().any(|f| names(&e, f))
                || message.is_some_and(|m| {
                    !about_value
                        && (m.contains('`') || m.contains(" at line ") || m.contains("EOF"))
                });
            assert!(named, "error names no field: {e}");
            return;
        }
    };
    assert!((1..=64 << 20).contains(&config.max_body_bytes));
    let a = &config.audit;
    assert!((10..=60_000).contains(&a.flush_interval_ms));
    assert!((1..=10_000).contains(&a.batch_max_records));
    assert!(a.batch_max_bytes >= 1024 && a.buffer_max_bytes >= a.batch_max_bytes);
    assert!((1..=60_000).contains(&a.timeout_ms));
    let s = &config.stream_limits;
    assert_eq!(s.max_event_bytes, config.max_body_bytes);
    assert!((64..=1 << 20).contains(&s.max_holdback_bytes));
    assert!(s.max_queued_bytes >= 2 * s.max_holdback_bytes && s.max_queued_bytes <= 64 << 20);
    for source in config.user_sources.iter().chain(&config.project_sources) {
        if let Source::Header { name, .. } = source {
            assert!(!name.is_empty() && !name.chars().any(|c| c.is_ascii_uppercase()));
        }
    }
    for sha in std::iter::once(&config.policy_sha256).chain(&config.candidate_sha256) {
        assert!(sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_eq!(
        config.candidate.is_some(),
        config.candidate_sha256.is_some()
    );

    if config.audit.splunk_hec.is_some() {
        assert_hidden(&config, "audit.splunk_hec.token", |c| {
            if let Some(h) = &mut c.audit.splunk_hec {
                h.token = SENTINEL.into();
            }
        });
    }
    if config.audit.datadog.is_some() {
        assert_hidden(&config, "audit.datadog.api_key", |c| {
            if let Some(d) = &mut c.audit.datadog {
                d.api_key = SENTINEL.into();
            }
        });
    }
    if config.audit.elasticsearch.is_some() {
        assert_hidden(&config, "audit.elasticsearch.auth", |c| {
            if let Some(es) = &mut c.audit.elasticsearch {
                match &mut es.auth {
                    ElasticsearchAuth::Basic(b) => b.password = SENTINEL.into(),
                    ElasticsearchAuth::ApiKey(k) => *k = SENTINEL.into(),
                }
            }
        });
    }
    if config.audit.s3.is_some() {
        assert_hidden(&config, "audit.s3.presigner_token", |c| {
            if let Some(s3) = &mut c.audit.s3 {
                s3.presigner_token = Some(SENTINEL.into());
            }
        });
    }
    if let Some(az) = &config.audit.azure_monitor {
        if matches!(az.auth, AzureAuth::ClientCredentials(_)) {
            assert_hidden(&config, "audit.azure_monitor client_secret", |c| {
                if let Some(az) = &mut c.audit.azure_monitor {
                    if let AzureAuth::ClientCredentials(cc) = &mut az.auth {
                        cc.client_secret = SENTINEL.into();
                    }
                }
            });
        }
    }
});
