//! The filter's plugin configuration: parsed into typed structs and validated once, at
//! configure time, with errors that name the field. Invalid configuration is rejected
//! (`on_configure` returns false) rather than half-applied.

pub mod attribution;
mod json_path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::ConfigError;
use crate::policy::{Policy, PolicyError};
use crate::sinks::config::AuditConfig;
use attribution::Source;

/// What to do with bodies the filter cannot inspect (too large, compressed, not JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUninspectable {
    /// Answer 413/415 locally; the record says why.
    #[default]
    Refuse,
    /// Forward untouched; the record says the body was not inspected and why.
    Allow,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttributionDoc {
    #[serde(default = "default_user_sources")]
    user: Vec<Source>,
    #[serde(default = "default_project_sources")]
    project: Vec<Source>,
}

impl Default for AttributionDoc {
    fn default() -> Self {
        AttributionDoc {
            user: default_user_sources(),
            project: default_project_sources(),
        }
    }
}

fn default_user_sources() -> Vec<Source> {
    vec![Source::Header {
        name: "x-user-id".into(),
        trusted: false,
    }]
}

fn default_project_sources() -> Vec<Source> {
    vec![Source::Header {
        name: "x-project-id".into(),
        trusted: false,
    }]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginDoc {
    policy: Value,
    /// A second policy evaluated in shadow on the same traffic; records carry its decision.
    #[serde(default)]
    candidate_policy: Option<Value>,
    #[serde(default)]
    attribution: AttributionDoc,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: usize,
    #[serde(default)]
    on_uninspectable: OnUninspectable,
    /// Overrides `on_uninspectable` for responses (compressed, not JSON, too large).
    #[serde(default)]
    on_uninspectable_response: Option<OnUninspectable>,
    #[serde(default = "yes")]
    inspect_responses: bool,
    /// Hold headers until the body is inspected, so refused requests never reach the
    /// upstream and refused responses get their status. Needs Envoy >= 1.35 with
    /// `allow_on_headers_stop_iteration: true` in the Wasm plugin config: without it Envoy
    /// turns the pause into StopAll and requests hang.
    #[serde(default)]
    hold_headers: bool,
    /// Names this gateway in records and sink metadata (`host`).
    #[serde(default)]
    instance_id: Option<String>,
    #[serde(default)]
    audit: AuditConfig,
    #[serde(default)]
    streaming: StreamingDoc,
}

/// Limits of streamed (SSE) response inspection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct StreamingDoc {
    /// Most output text held back per text while an entity may still be arriving.
    max_holdback_bytes: usize,
    /// Most bytes of events waiting behind held text before everything is released.
    max_queued_bytes: usize,
}

impl Default for StreamingDoc {
    fn default() -> Self {
        let d = crate::engine::stream::StreamLimits::default();
        StreamingDoc {
            max_holdback_bytes: d.max_holdback_bytes,
            max_queued_bytes: d.max_queued_bytes,
        }
    }
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}
fn yes() -> bool {
    true
}

/// The validated plugin configuration.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    pub policy: Policy,
    pub user_sources: Vec<Source>,
    pub project_sources: Vec<Source>,
    pub max_body_bytes: usize,
    pub on_uninspectable: OnUninspectable,
    /// What a response the filter cannot inspect gets (`on_uninspectable` unless overridden).
    pub on_uninspectable_response: OnUninspectable,
    pub inspect_responses: bool,
    pub hold_headers: bool,
    pub instance_id: String,
    pub audit: AuditConfig,
    /// Limits of streamed response inspection (the largest event is `max_body_bytes`).
    pub stream_limits: crate::engine::stream::StreamLimits,
    /// SHA-256 (hex) of the policy document, keys sorted: `policy_change` records carry it.
    pub policy_sha256: String,
    /// The candidate policy, always evaluated in shadow.
    pub candidate: Option<Policy>,
    pub candidate_sha256: Option<String>,
    /// How much streamed output each policy holds back, computed once here.
    pub stream_holdback: crate::engine::holdback::Holdback,
    pub candidate_holdback: Option<crate::engine::holdback::Holdback>,
}

/// SHA-256 (hex) of a JSON document in canonical form (object keys sorted, no whitespace).
fn document_sha256(doc: &Value) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(serde_json::to_vec(doc).unwrap_or_default());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn bad<T>(field: &str, message: &str) -> Result<T, ConfigError> {
    Err(ConfigError::field(field, message))
}

impl PluginConfig {
    pub fn from_json(bytes: &[u8]) -> Result<PluginConfig, ConfigError> {
        let doc: PluginDoc = serde_json::from_slice(bytes).map_err(|e| {
            // A value of the wrong type is named by its path (`audit.timeout_ms`), which serde
            // does not track: found again from the error's position.
            let at = if e.classify() == serde_json::error::Category::Data && e.line() > 0 {
                crate::config::json_path::at(bytes, e.line(), e.column())
            } else {
                String::new()
            };
            if at.is_empty() {
                ConfigError::Document(e.to_string())
            } else {
                ConfigError::field(&at, &e.to_string())
            }
        })?;
        let compile = |field: &str, value: Value| {
            Policy::from_value(value)
                .map_err(|e: PolicyError| ConfigError::field(&e.at, &e.message).within(field))
        };
        let policy_sha256 = document_sha256(&doc.policy);
        let candidate_sha256 = doc.candidate_policy.as_ref().map(document_sha256);
        let policy = compile("policy", doc.policy)?;
        let candidate = match doc.candidate_policy {
            Some(c) => Some(compile("candidate_policy", c)?),
            None => None,
        };
        if doc.max_body_bytes == 0 || doc.max_body_bytes > 64 * 1024 * 1024 {
            return bad("max_body_bytes", "must be between 1 and 67108864");
        }
        doc.audit.validate().map_err(|e| e.within("audit"))?;
        for (field, sources) in [
            ("attribution.user", &doc.attribution.user),
            ("attribution.project", &doc.attribution.project),
        ] {
            for (i, s) in sources.iter().enumerate() {
                if let Source::Header { name, .. } = s {
                    if name.is_empty() || name.chars().any(|c| c.is_ascii_uppercase()) {
                        return bad(
                            &format!("{field}[{i}].name"),
                            "header names must be lowercase and non-empty",
                        );
                    }
                }
            }
        }
        let st = &doc.streaming;
        if st.max_holdback_bytes < 64 || st.max_holdback_bytes > 1 << 20 {
            return bad(
                "streaming.max_holdback_bytes",
                "must be between 64 and 1048576",
            );
        }
        if st.max_queued_bytes < 2 * st.max_holdback_bytes || st.max_queued_bytes > 64 << 20 {
            return bad(
                "streaming.max_queued_bytes",
                "must be at least twice streaming.max_holdback_bytes and at most 67108864",
            );
        }
        let stream_limits = crate::engine::stream::StreamLimits {
            max_event_bytes: doc.max_body_bytes,
            max_holdback_bytes: st.max_holdback_bytes,
            max_queued_bytes: st.max_queued_bytes,
        };
        let holdback =
            |p: &Policy| crate::engine::holdback::Holdback::for_policy(p, st.max_holdback_bytes);
        let stream_holdback = holdback(&policy);
        let candidate_holdback = candidate.as_ref().map(holdback);
        let instance_id = doc.instance_id.unwrap_or_else(|| "policy-gateway".into());
        Ok(PluginConfig {
            policy,
            user_sources: doc.attribution.user,
            project_sources: doc.attribution.project,
            max_body_bytes: doc.max_body_bytes,
            on_uninspectable: doc.on_uninspectable,
            on_uninspectable_response: doc
                .on_uninspectable_response
                .unwrap_or(doc.on_uninspectable),
            inspect_responses: doc.inspect_responses,
            hold_headers: doc.hold_headers,
            stream_limits,
            policy_sha256,
            candidate,
            candidate_sha256,
            stream_holdback,
            candidate_holdback,
            instance_id,
            audit: doc.audit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn policy() -> Value {
        json!({"id": "p", "version": "1", "rules": [
            {"id": "r", "category": "pii.email", "match": {"detectors": ["email"]}, "action": "redact", "reason_code": "E"}
        ]})
    }

    fn parse(v: Value) -> Result<PluginConfig, ConfigError> {
        PluginConfig::from_json(&serde_json::to_vec(&v).unwrap())
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(json!({"policy": policy()})).unwrap();
        assert_eq!(c.max_body_bytes, 1024 * 1024);
        assert_eq!(c.on_uninspectable, OnUninspectable::Refuse);
        assert_eq!(c.on_uninspectable_response, OnUninspectable::Refuse);
        assert_eq!(c.user_sources, default_user_sources());
        assert!(
            !c.user_sources[0].verified(),
            "a plain header is not trusted"
        );
        assert_eq!(c.audit.flush_interval_ms, 1000);
        assert!(c.audit.splunk_hec.is_none());
    }

    #[test]
    fn responses_follow_on_uninspectable_unless_overridden() {
        let c = parse(json!({"policy": policy(), "on_uninspectable": "allow"})).unwrap();
        assert_eq!(c.on_uninspectable_response, OnUninspectable::Allow);
        let c = parse(json!({"policy": policy(), "on_uninspectable": "allow",
            "on_uninspectable_response": "refuse"}))
        .unwrap();
        assert_eq!(c.on_uninspectable, OnUninspectable::Allow);
        assert_eq!(c.on_uninspectable_response, OnUninspectable::Refuse);
        let c = parse(json!({"policy": policy(), "attribution": {"user": [
            {"source": "header", "name": "x-user-id", "trusted": true}]}}))
        .unwrap();
        assert!(c.user_sources[0].verified());
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({}), "missing field `policy`"),
            (
                json!({"policy": policy(), "colour": 1}),
                "unknown field `colour`",
            ),
            (
                json!({"policy": {"id": "p", "version": "1", "rules": [{"id": "r"}]}}),
                "policy.rules[0] \"r\": missing field",
            ),
            (
                json!({"policy": policy(), "max_body_bytes": 0}),
                "max_body_bytes:",
            ),
            (
                json!({"policy": policy(), "audit": {"flush_interval_ms": 1}}),
                "audit.flush_interval_ms:",
            ),
            (
                json!({"policy": policy(), "audit": {"splunk_hec": {"cluster": "c", "authority": "a", "token": " "}}}),
                "audit.splunk_hec.token: must not be empty",
            ),
            (
                json!({"policy": policy(), "attribution": {"user": [{"source": "header", "name": "X-User"}]}}),
                "attribution.user[0].name",
            ),
            (
                json!({"policy": policy(), "attribution": {"user": [{"source": "cookie"}]}}),
                "unknown variant `cookie`",
            ),
            (
                json!({"policy": policy(), "on_uninspectable": "drop"}),
                "unknown variant `drop`",
            ),
        ];
        for (cfg, want) in cases {
            let e = parse(cfg.clone()).unwrap_err().to_string();
            assert!(e.contains(want), "{cfg}: got {e}, want {want}");
        }
    }

    #[test]
    fn full_config_parses() {
        let c = parse(json!({
            "policy": policy(),
            "instance_id": "gw-eu-1",
            "max_body_bytes": 2_000_000,
            "on_uninspectable": "allow",
            "attribution": {
                "user": [{"source": "jwt_authn", "payload_in_metadata": "jwt_payload", "claim": "sub"},
                         {"source": "body_field", "pointer": "/user"}],
                "project": [{"source": "route_metadata", "namespace": "policy_gateway", "key": "project"}]
            },
            "audit": {"flush_interval_ms": 200, "splunk_hec": {"cluster": "hec", "authority": "splunk:8088", "token": "t", "index": "ai"}}
        }))
        .unwrap();
        assert_eq!(c.instance_id, "gw-eu-1");
        assert_eq!(c.user_sources.len(), 2);
        assert!(!c.user_sources[1].verified());
        let hec = c.audit.splunk_hec.unwrap();
        assert_eq!(hec.path, "/services/collector/event");
        assert_eq!(hec.index.as_deref(), Some("ai"));
    }

    #[test]
    fn streaming_limits_default_and_validate() {
        let c =
            PluginConfig::from_json(json!({"policy": policy()}).to_string().as_bytes()).unwrap();
        assert_eq!(c.stream_limits.max_holdback_bytes, 8192);
        assert_eq!(c.stream_limits.max_event_bytes, c.max_body_bytes);
        let c = PluginConfig::from_json(
            json!({"policy": policy(), "streaming": {"max_holdback_bytes": 1024, "max_queued_bytes": 4096}})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(c.stream_limits.max_queued_bytes, 4096);
        for (doc, field) in [
            (
                json!({"max_holdback_bytes": 10}),
                "streaming.max_holdback_bytes",
            ),
            (
                json!({"max_queued_bytes": 100}),
                "streaming.max_queued_bytes",
            ),
            (json!({"max_hold": 100}), "unknown field"),
        ] {
            let e = PluginConfig::from_json(
                json!({"policy": policy(), "streaming": doc})
                    .to_string()
                    .as_bytes(),
            )
            .unwrap_err();
            assert!(e.to_string().contains(field), "{e}");
        }
    }

    #[test]
    fn candidate_policy_compiles_separately_and_errors_name_it() {
        let c = PluginConfig::from_json(
            json!({"policy": policy(), "candidate_policy": {"id": "p", "version": "2", "rules": []}})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            c.candidate.as_ref().map(|p| p.policy_id.as_str()),
            Some("p@2")
        );
        assert_eq!(c.candidate_sha256.as_ref().map(String::len), Some(64));
        assert_ne!(
            c.candidate_sha256.as_deref(),
            Some(c.policy_sha256.as_str())
        );
        // Hold-backs are computed once here, each from its own policy.
        let cap = c.stream_limits.max_holdback_bytes;
        let of = |p: &Policy| crate::engine::holdback::Holdback::for_policy(p, cap);
        assert_eq!(c.stream_holdback, of(&c.policy));
        assert_eq!(c.candidate_holdback, c.candidate.as_ref().map(of));
        let e = PluginConfig::from_json(
            json!({"policy": policy(), "candidate_policy": {"id": "p", "version": "2", "rules": [
                {"id": "r", "category": "c", "match": {"detectors": ["emial"]}, "action": "redact", "reason_code": "E"}
            ]}})
            .to_string()
            .as_bytes(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("candidate_policy.rules[0] \"r\".match.detectors[0]"),
            "{e}"
        );
    }

    #[test]
    fn the_stale_threshold_is_configured_and_checked() {
        let config = |audit: &str| {
            let doc = format!(
                r#"{{"policy": {{"id": "p", "version": "1", "rules": []}}, "audit": {audit}}}"#
            );
            PluginConfig::from_json(doc.as_bytes())
        };
        assert_eq!(config("{}").unwrap().audit.vm_stale_ms, 10_000);
        assert_eq!(
            config(r#"{"vm_stale_ms": 2000}"#)
                .unwrap()
                .audit
                .vm_stale_ms,
            2_000
        );
        for bad in ["999", "3600001"] {
            let e = config(&format!(r#"{{"vm_stale_ms": {bad}}}"#)).unwrap_err();
            assert!(e.to_string().contains("audit.vm_stale_ms"), "{e}");
        }
    }
}
