//! The filter's plugin configuration: parsed into typed structs and validated once, at
//! configure time, with errors that name the field. Invalid configuration is rejected
//! (`on_configure` returns false) rather than half-applied.

pub mod attribution;
mod json_path;
pub mod read;

use serde_json::Value;

use crate::engine::text_cache::Limits as TextCacheLimits;
use crate::error::ConfigError;
use crate::policy::{Policy, PolicyError};
use crate::sinks::config::AuditConfig;
use attribution::Source;
use read::{Fields, Path, ReadError};

/// What to do with bodies the filter cannot inspect (too large, compressed, not JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnUninspectable {
    /// Answer 413/415 locally; the record says why.
    #[default]
    Refuse,
    /// Forward untouched; the record says the body was not inspected and why.
    Allow,
}

impl OnUninspectable {
    fn read(v: Value, path: Path<'_>) -> Result<OnUninspectable, ReadError> {
        Ok(match read::variant(v, path, &["refuse", "allow"])? {
            0 => OnUninspectable::Refuse,
            _ => OnUninspectable::Allow,
        })
    }
}

#[derive(Debug, Clone)]
struct AttributionDoc {
    user: Vec<Source>,
    project: Vec<Source>,
}

impl AttributionDoc {
    fn read(v: Value, path: Path<'_>) -> Result<AttributionDoc, ReadError> {
        let mut f = Fields::new(v, path, "struct AttributionDoc", &["user", "project"])?;
        fn sources(v: Value, path: Path<'_>) -> Result<Vec<Source>, ReadError> {
            read::array(v, path, Source::read)
        }
        Ok(AttributionDoc {
            user: f.or("user", sources, default_user_sources())?,
            project: f.or("project", sources, default_project_sources())?,
        })
    }
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

/// The plugin configuration as written, before its parts are checked and compiled.
#[derive(Debug, Clone)]
struct PluginDoc {
    policy: Value,
    /// A second policy evaluated in shadow on the same traffic; records carry its decision.
    candidate_policy: Option<Value>,
    attribution: AttributionDoc,
    max_body_bytes: usize,
    on_uninspectable: OnUninspectable,
    /// Overrides `on_uninspectable` for responses (compressed, not JSON, too large).
    on_uninspectable_response: Option<OnUninspectable>,
    inspect_responses: bool,
    /// Hold headers until the body is inspected, so refused requests never reach the
    /// upstream and refused responses get their status. Needs Envoy >= 1.35 with
    /// `allow_on_headers_stop_iteration: true` in the Wasm plugin config: without it Envoy
    /// turns the pause into StopAll and requests hang.
    hold_headers: bool,
    /// Names this gateway in records and sink metadata (`host`).
    instance_id: Option<String>,
    audit: AuditConfig,
    streaming: StreamingDoc,
    text_cache: TextCacheLimits,
}

impl PluginDoc {
    fn read(v: Value, path: Path<'_>) -> Result<PluginDoc, ReadError> {
        let mut f = Fields::new(
            v,
            path,
            "struct PluginDoc",
            &[
                "policy",
                "candidate_policy",
                "attribution",
                "max_body_bytes",
                "on_uninspectable",
                "on_uninspectable_response",
                "inspect_responses",
                "hold_headers",
                "instance_id",
                "audit",
                "streaming",
                "text_cache",
            ],
        )?;
        fn json(v: Value, _: Path<'_>) -> Result<Value, ReadError> {
            Ok(v)
        }
        Ok(PluginDoc {
            policy: f.req("policy", json)?,
            candidate_policy: f.opt("candidate_policy", json)?,
            attribution: f.or(
                "attribution",
                AttributionDoc::read,
                AttributionDoc::default(),
            )?,
            max_body_bytes: f.or("max_body_bytes", read::usize, default_max_body_bytes())?,
            on_uninspectable: f.or(
                "on_uninspectable",
                OnUninspectable::read,
                Default::default(),
            )?,
            on_uninspectable_response: f.opt("on_uninspectable_response", OnUninspectable::read)?,
            inspect_responses: f.or("inspect_responses", read::boolean, true)?,
            hold_headers: f.or("hold_headers", read::boolean, false)?,
            instance_id: f.opt("instance_id", read::string)?,
            audit: f.or("audit", AuditConfig::read, AuditConfig::default())?,
            streaming: f.or("streaming", StreamingDoc::read, StreamingDoc::default())?,
            text_cache: f.or("text_cache", read_text_cache, TextCacheLimits::default())?,
        })
    }
}

/// Limits of streamed (SSE) response inspection.
#[derive(Debug, Clone)]
struct StreamingDoc {
    /// Most output text held back per text while an entity may still be arriving.
    max_holdback_bytes: usize,
    /// Most bytes of events waiting behind held text before everything is released.
    max_queued_bytes: usize,
}

impl StreamingDoc {
    fn read(v: Value, path: Path<'_>) -> Result<StreamingDoc, ReadError> {
        let mut f = Fields::new(
            v,
            path,
            "struct StreamingDoc",
            &["max_holdback_bytes", "max_queued_bytes"],
        )?;
        let d = StreamingDoc::default();
        Ok(StreamingDoc {
            max_holdback_bytes: f.or("max_holdback_bytes", read::usize, d.max_holdback_bytes)?,
            max_queued_bytes: f.or("max_queued_bytes", read::usize, d.max_queued_bytes)?,
        })
    }
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

/// `text_cache`: the per-text result cache's bounds (`engine::text_cache`).
fn read_text_cache(v: Value, path: Path<'_>) -> Result<TextCacheLimits, ReadError> {
    let mut f = Fields::new(
        v,
        path,
        "struct TextCache",
        &[
            "max_entries",
            "max_bytes",
            "min_text_bytes",
            "max_hits",
            "unverified_users",
        ],
    )?;
    let d = TextCacheLimits::default();
    Ok(TextCacheLimits {
        max_entries: f.or("max_entries", read::usize, d.max_entries)?,
        max_bytes: f.or("max_bytes", read::usize, d.max_bytes)?,
        min_text_bytes: f.or("min_text_bytes", read::usize, d.min_text_bytes)?,
        max_hits: f.or("max_hits", read::usize, d.max_hits)?,
        unverified_users: f.or("unverified_users", read::boolean, d.unverified_users)?,
    })
}

/// The checks of `text_cache`'s fields, each error naming its field.
fn check_text_cache(c: &TextCacheLimits) -> Result<(), ConfigError> {
    if c.max_entries > 1 << 20 {
        return bad(
            "text_cache.max_entries",
            "must be at most 1048576 (0 turns the cache off)",
        );
    }
    if c.max_bytes < 4096 || c.max_bytes > 256 << 20 {
        return bad("text_cache.max_bytes", "must be between 4096 and 268435456");
    }
    if c.min_text_bytes == 0 || c.min_text_bytes > 1 << 20 {
        return bad("text_cache.min_text_bytes", "must be between 1 and 1048576");
    }
    if c.max_hits > 4096 {
        return bad("text_cache.max_hits", "must be at most 4096");
    }
    Ok(())
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}

/// Parses a document once, refusing an object that names a key twice (two `token`s or two
/// `mode`s must not silently resolve to one): the same strict parser request bodies go
/// through. A repeated key is named by its path.
pub(crate) fn parse_strict(bytes: &[u8]) -> Result<Value, ConfigError> {
    crate::llm::json::from_slice(bytes).map_err(|e| match e {
        crate::llm::json::JsonError::DuplicateKey(message) => {
            match json_path::repeated_key(bytes) {
                Some((at, line, column)) => ConfigError::field(
                    &at,
                    &format!(
                    "duplicate field (named twice in its object) at line {line} column {column}"
                ),
                ),
                None => ConfigError::Document(message),
            }
        }
        crate::llm::json::JsonError::Invalid(message) => ConfigError::Document(message),
    })
}

/// A policy read on its own (`Policy::from_json`) reports the same errors.
impl From<ConfigError> for PolicyError {
    fn from(e: ConfigError) -> PolicyError {
        match e {
            ConfigError::Document(message) => PolicyError {
                at: String::new(),
                message,
            },
            ConfigError::Field { at, message } => PolicyError { at, message },
        }
    }
}

/// A reading error of the document `bytes`, with the line and column of the value at fault
/// (an error about the document itself is not about a field).
pub(crate) fn located(bytes: &[u8], e: ReadError) -> ConfigError {
    let message = match json_path::locate(bytes, &e.steps) {
        Some((line, column)) => format!("{} at line {line} column {column}", e.message),
        None => e.message.clone(),
    };
    let at = e.at();
    if at.is_empty() {
        ConfigError::Document(message)
    } else {
        ConfigError::field(&at, &message)
    }
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
    /// Bounds of the per-text result cache (`max_entries` 0: off).
    pub text_cache: TextCacheLimits,
}

/// SHA-256 (hex) of a JSON document in canonical form (object keys sorted, no whitespace).
fn document_sha256(doc: &Value) -> String {
    crate::sha256::hex_digest(&serde_json::to_vec(doc).unwrap_or_default())
}

fn bad<T>(field: &str, message: &str) -> Result<T, ConfigError> {
    Err(ConfigError::field(field, message))
}

impl PluginConfig {
    pub fn from_json(bytes: &[u8]) -> Result<PluginConfig, ConfigError> {
        let doc =
            PluginDoc::read(parse_strict(bytes)?, Path::Root("")).map_err(|e| located(bytes, e))?;
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
        check_text_cache(&doc.text_cache)?;
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
            text_cache: doc.text_cache,
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

    /// A key named twice is refused wherever it is, naming where: a second `token` or `mode`
    /// must not silently replace the first.
    #[test]
    fn repeated_keys_are_refused() {
        let p = r#"{"id": "p", "version": "1", "rules": []}"#;
        for (doc, at) in [
            (format!(r#"{{"policy": {p}, "policy": {p}}}"#), "policy: "),
            (
                format!(
                    r#"{{"policy": {p}, "audit": {{"splunk_hec": {{"cluster": "c", "authority": "a", "token": "t", "token": "u"}}}}}}"#
                ),
                "audit.splunk_hec.token: ",
            ),
            (
                r#"{"policy": {"id": "p", "version": "1", "rules": [],
                   "rollout": {"mode": "shadow", "mode": "enforce"}}}"#
                    .to_string(),
                "policy.rollout.mode: ",
            ),
            (
                format!(r#"{{"policy": {p}, "max_body_bytes": 10, "max_body_bytes": 20}}"#),
                "max_body_bytes: ",
            ),
        ] {
            let e = PluginConfig::from_json(doc.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(at) && e.contains("duplicate"), "{doc}: {e}");
        }
    }

    /// Errors about a value carry its line and column in the document, as serde's did.
    #[test]
    fn errors_give_the_line_and_column() {
        let doc = "{\n  \"policy\": {\"id\": \"p\", \"version\": \"1\", \"rules\": []},\n  \"streaming\": {\"max_queued_bytes\": \"5\"}\n}";
        let e = PluginConfig::from_json(doc.as_bytes())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "streaming.max_queued_bytes: invalid type: string \"5\", expected usize at line 3 column 37"
        );
        let e = PluginConfig::from_json(b"{\"hold_headers\": true}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "plugin configuration: missing field `policy` at line 1 column 1"
        );
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
    fn the_text_cache_is_configured_and_checked() {
        let c = parse(json!({"policy": policy()})).unwrap();
        assert_eq!(c.text_cache, TextCacheLimits::default());
        assert!(!c.text_cache.unverified_users, "safe by default");
        let c = parse(json!({"policy": policy(), "text_cache": {"max_entries": 0}})).unwrap();
        assert_eq!(c.text_cache.max_entries, 0, "0 turns it off");
        let c = parse(
            json!({"policy": policy(), "text_cache": {"max_entries": 100,
            "max_bytes": 65536, "min_text_bytes": 64, "max_hits": 8, "unverified_users": true}}),
        )
        .unwrap();
        assert_eq!(
            c.text_cache,
            TextCacheLimits {
                max_entries: 100,
                max_bytes: 65536,
                min_text_bytes: 64,
                max_hits: 8,
                unverified_users: true
            }
        );
        for (doc, want) in [
            (
                json!({"max_entries": 2_000_000}),
                "text_cache.max_entries: ",
            ),
            (json!({"max_bytes": 100}), "text_cache.max_bytes: "),
            (json!({"max_bytes": 1u64 << 30}), "text_cache.max_bytes: "),
            (json!({"min_text_bytes": 0}), "text_cache.min_text_bytes: "),
            (json!({"max_hits": 5000}), "text_cache.max_hits: "),
            (json!({"max_entries": -1}), "text_cache.max_entries: "),
            (
                json!({"unverified_users": "yes"}),
                "text_cache.unverified_users: ",
            ),
            (json!({"size": 1}), "unknown field `size`"),
        ] {
            let e = parse(json!({"policy": policy(), "text_cache": doc}))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{doc}: {e}");
        }
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
