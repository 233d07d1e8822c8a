//! Who made a request (user) and for which project, from sources in a configured order.
//!
//! Trust matters: `policy_user` drives chargeback, investigation and canary buckets. A value
//! is recorded as verified only when the configuration says a client cannot forge it: claims
//! of a JWT that Envoy's `jwt_authn` filter verified, route metadata, an API-key map, or a
//! header marked `"trusted": true` (set by an earlier filter, with client copies stripped at
//! the edge). Anything else (a plain header, an unverified bearer JWT, the body's `user`
//! field) is recorded as unverified and never places a request in a canary bucket.
//!
//! A header that is repeated or not UTF-8 yields nothing (the next source is tried) and the
//! rejection is recorded: with two copies there is no telling which one the trusted filter
//! set.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

use super::read::{boolean, invalid_type, string, Fields, Path, ReadError};
use crate::headers::Lookup;

/// One place a user or project id may come from: an object whose `source` names the variant
/// (`{"source": "header", "name": "x-user-id"}`), read by hand ([`Source::read`]): serde's
/// derive of an internally tagged enum was 26 KB of the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A request header; verified only when `trusted` (an earlier filter sets it and the
    /// edge strips client copies).
    Header { name: String, trusted: bool },
    /// A claim of the payload `jwt_authn` stored in dynamic metadata (`payload_in_metadata`).
    JwtAuthn {
        payload_in_metadata: String,
        claim: String,
    },
    /// A claim decoded, NOT verified, from `Authorization: Bearer <jwt>`.
    BearerJwtUnverified { claim: String },
    /// A field of the request body (`user` for OpenAI, `metadata.user_id` for Anthropic).
    BodyField { pointer: String },
    /// A project from the route's metadata (`filter_metadata.<namespace>.<key>`).
    RouteMetadata { namespace: String, key: String },
    /// A project looked up by the fingerprint of the API key the client sent; the key itself
    /// is never recorded.
    ApiKeyMap {
        header: String,
        /// fingerprint (see [`fingerprint`]) → project id.
        map: BTreeMap<String, String>,
    },
}

/// The `source` names, for errors.
const SOURCES: &[&str] = &[
    "header",
    "jwt_authn",
    "bearer_jwt_unverified",
    "body_field",
    "route_metadata",
    "api_key_map",
];

crate::deserialize_by_hand!(Source);

impl Source {
    /// A source from its object, with serde's errors (missing and unknown fields, unknown
    /// variants) and the path of the value at fault.
    pub(crate) fn read(v: Value, path: Path<'_>) -> Result<Source, ReadError> {
        let tag = match &v {
            Value::Object(m) => match m.get("source") {
                Some(Value::String(t)) => t.clone(),
                Some(other) => return Err(invalid_type(other, "a string", path.key("source"))),
                None => return Err(path.error("missing field `source`".into())),
            },
            other => return Err(invalid_type(other, "a map", path)),
        };
        let known: &'static [&'static str] = match tag.as_str() {
            "header" => &["source", "name", "trusted"],
            "jwt_authn" => &["source", "payload_in_metadata", "claim"],
            "bearer_jwt_unverified" => &["source", "claim"],
            "body_field" => &["source", "pointer"],
            "route_metadata" => &["source", "namespace", "key"],
            "api_key_map" => &["source", "header", "map"],
            _ => {
                return Err(path.key("source").error(format!(
                    "unknown variant `{tag}`, expected one of `{}`",
                    SOURCES.join("`, `")
                )))
            }
        };
        let mut f = Fields::new(v, path, "a map", known)?;
        Ok(match tag.as_str() {
            "header" => Source::Header {
                name: f.req("name", string)?,
                trusted: f.or("trusted", boolean, false)?,
            },
            "jwt_authn" => Source::JwtAuthn {
                payload_in_metadata: f.req("payload_in_metadata", string)?,
                claim: f.req("claim", string)?,
            },
            "bearer_jwt_unverified" => Source::BearerJwtUnverified {
                claim: f.req("claim", string)?,
            },
            "body_field" => Source::BodyField {
                pointer: f.req("pointer", string)?,
            },
            "route_metadata" => Source::RouteMetadata {
                namespace: f.req("namespace", string)?,
                key: f.req("key", string)?,
            },
            _ => Source::ApiKeyMap {
                header: f.req("header", string)?,
                map: f.req("map", string_map)?,
            },
        })
    }
}

/// An object whose values are strings.
fn string_map(v: Value, path: Path<'_>) -> Result<BTreeMap<String, String>, ReadError> {
    match v {
        // Filled by `insert`: `collect` into a map compiles a stable sort for this type alone.
        Value::Object(entries) => {
            let mut map = BTreeMap::new();
            for (k, v) in entries {
                let value = string(v, path.key(&k))?;
                map.insert(k, value);
            }
            Ok(map)
        }
        other => Err(invalid_type(&other, "a map", path)),
    }
}

impl Source {
    /// Whether a client can choose the value this source yields.
    pub fn verified(&self) -> bool {
        match self {
            Source::Header { trusted, .. } => *trusted,
            Source::BearerJwtUnverified { .. } | Source::BodyField { .. } => false,
            Source::JwtAuthn { .. } | Source::RouteMetadata { .. } | Source::ApiKeyMap { .. } => {
                true
            }
        }
    }

    /// Short label recorded beside the value (`header:x-user-id`).
    pub fn label(&self) -> String {
        match self {
            Source::Header { name, .. } => format!("header:{name}"),
            Source::JwtAuthn { claim, .. } => format!("jwt_authn:{claim}"),
            Source::BearerJwtUnverified { claim } => format!("bearer_jwt_unverified:{claim}"),
            Source::BodyField { pointer } => format!("body:{pointer}"),
            Source::RouteMetadata { namespace, key } => format!("route_metadata:{namespace}.{key}"),
            Source::ApiKeyMap { header, .. } => format!("api_key_map:{header}"),
        }
    }
}

/// What the host can tell about a request; the filter implements it over proxy-wasm calls,
/// tests over maps.
pub trait RequestView {
    /// A request header, telling apart absent, repeated and non-UTF-8 values.
    fn header(&self, name: &str) -> Lookup<'_>;
    /// A string value in dynamic metadata `filter_metadata[namespace][key][field]`.
    fn jwt_claim(&self, payload_in_metadata: &str, claim: &str) -> Option<String>;
    fn route_metadata(&self, namespace: &str, key: &str) -> Option<String>;
}

/// An attributed value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributed {
    pub value: String,
    pub source: String,
    pub verified: bool,
}

/// Longest id kept: longer values are not ids, and records must stay small.
pub const MAX_ID_LEN: usize = 256;

/// What attribution found, and the sources it had to reject on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    pub found: Option<Attributed>,
    /// `<source label>: <why>` for each source whose header was repeated or not UTF-8.
    pub rejected: Vec<String>,
}

/// The first source in `order` that yields a usable value.
pub fn resolve(order: &[Source], view: &dyn RequestView, body: Option<&Value>) -> Resolution {
    let mut rejected = Vec::new();
    // A header the source reads: one UTF-8 value, or a rejection noted for the record.
    let mut header = |source: &Source, name: &str| -> Option<String> {
        let lookup = view.header(name);
        if let Some(why) = lookup.problem() {
            rejected.push(format!("{}: {name} {why}", source.label()));
        }
        lookup.text().map(str::to_string)
    };
    let found = order.iter().find_map(|source| {
        let value = match source {
            Source::Header { name, .. } => header(source, name),
            Source::JwtAuthn {
                payload_in_metadata,
                claim,
            } => view.jwt_claim(payload_in_metadata, claim),
            Source::BearerJwtUnverified { claim } => {
                header(source, "authorization").and_then(|h| bearer_claim(&h, claim))
            }
            Source::BodyField { pointer } => body
                .and_then(|b| b.pointer(pointer))
                .and_then(Value::as_str)
                .map(str::to_string),
            Source::RouteMetadata { namespace, key } => view.route_metadata(namespace, key),
            Source::ApiKeyMap { header: name, map } => header(source, name)
                .map(|v| fingerprint(api_key_of(&v)))
                .and_then(|fp| map.get(&fp).cloned()),
        }?;
        let value = value.trim();
        if value.is_empty() || value.len() > MAX_ID_LEN || value.chars().any(char::is_control) {
            return None;
        }
        Some(Attributed {
            value: value.to_string(),
            source: source.label(),
            verified: source.verified(),
        })
    });
    Resolution { found, rejected }
}

/// The key in `Authorization: Bearer <key>`, `x-api-key: <key>` and similar headers.
fn api_key_of(header_value: &str) -> &str {
    let v = header_value.trim();
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .unwrap_or(v)
        .trim()
}

/// A claim of a JWT's payload, decoded without verification.
fn bearer_claim(authorization: &str, claim: &str) -> Option<String> {
    let token = authorization.trim().strip_prefix("Bearer ")?.trim();
    let payload = token.split('.').nth(1)?;
    if payload.len() > 8192 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    match v.get(claim)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A one-way fingerprint of an API key for project maps: `sha256:` + the first 32 hex digits
/// of SHA-256 over the key, so configurations and records never hold a usable key.
pub fn fingerprint(key: &str) -> String {
    format!("sha256:{}", crate::sha256::hex_digest_128(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Every variant read from JSON text (as the plugin configuration is), and serde's
    /// errors, with the field's path, for what is not a source.
    #[test]
    fn sources_read_from_json_with_serde_errors() {
        let read = |text: &str| serde_json::from_str::<Vec<Source>>(text);
        let all = read(
            r#"[{"source": "header", "name": "x-user-id"},
                {"trusted": true, "source": "header", "name": "x-u"},
                {"source": "jwt_authn", "payload_in_metadata": "jwt_payload", "claim": "sub"},
                {"source": "bearer_jwt_unverified", "claim": "sub"},
                {"source": "body_field", "pointer": "/user"},
                {"source": "route_metadata", "namespace": "ns", "key": "project"},
                {"source": "api_key_map", "header": "authorization", "map": {"sha256:ab": "p1"}}]"#,
        )
        .unwrap();
        let map: BTreeMap<String, String> = [("sha256:ab".into(), "p1".into())].into();
        assert_eq!(
            all,
            vec![
                Source::Header {
                    name: "x-user-id".into(),
                    trusted: false
                },
                Source::Header {
                    name: "x-u".into(),
                    trusted: true
                },
                Source::JwtAuthn {
                    payload_in_metadata: "jwt_payload".into(),
                    claim: "sub".into()
                },
                Source::BearerJwtUnverified {
                    claim: "sub".into()
                },
                Source::BodyField {
                    pointer: "/user".into()
                },
                Source::RouteMetadata {
                    namespace: "ns".into(),
                    key: "project".into()
                },
                Source::ApiKeyMap {
                    header: "authorization".into(),
                    map
                },
            ]
        );
        for (text, want) in [
            (r#"[{"source": "cookie"}]"#, "unknown variant `cookie`"),
            (r#"[{"name": "x"}]"#, "missing field `source`"),
            (r#"[{"source": "header"}]"#, "missing field `name`"),
            (
                r#"[{"source": "header", "name": "x", "claim": "c"}]"#,
                "unknown field `claim`",
            ),
            (
                r#"[{"source": "header", "name": 1}]"#,
                "name: invalid type: integer `1`, expected a string",
            ),
            (
                r#"[{"source": "header", "name": "x", "trusted": "yes"}]"#,
                "trusted: invalid type: string \"yes\", expected a boolean",
            ),
            (
                r#"[{"source": "api_key_map", "header": "h", "map": {"k": 1}}]"#,
                "map.k: invalid type: integer `1`, expected a string",
            ),
            (
                r#"[{"source": "api_key_map", "header": "h"}]"#,
                "missing field `map`",
            ),
            (r#"["header"]"#, "invalid type"),
        ] {
            let e = read(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: got {e}, want {want}");
        }
    }

    #[derive(Default)]
    struct View {
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        map: crate::headers::HeaderMap,
        claims: BTreeMap<(String, String), String>,
        route: BTreeMap<(String, String), String>,
    }

    impl View {
        /// Sets a header (replacing earlier values).
        fn set(&mut self, name: &str, value: impl AsRef<[u8]>) {
            self.headers.retain(|(k, _)| k != name.as_bytes());
            self.add(name, value);
        }
        /// Adds a header value (a repeated header when one is there).
        fn add(&mut self, name: &str, value: impl AsRef<[u8]>) {
            self.headers
                .push((name.as_bytes().to_vec(), value.as_ref().to_vec()));
            self.map = crate::headers::HeaderMap::from_pairs(self.headers.clone());
        }
    }

    impl RequestView for View {
        fn header(&self, name: &str) -> Lookup<'_> {
            self.map.get(name)
        }
        fn jwt_claim(&self, p: &str, c: &str) -> Option<String> {
            self.claims.get(&(p.into(), c.into())).cloned()
        }
        fn route_metadata(&self, n: &str, k: &str) -> Option<String> {
            self.route.get(&(n.into(), k.into())).cloned()
        }
    }

    fn jwt(payload: Value) -> String {
        let enc = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
        };
        format!(
            "Bearer {}.{}.sig",
            enc(&json!({"alg": "RS256"})),
            enc(&payload)
        )
    }

    #[test]
    fn first_source_with_a_value_wins() {
        let order = vec![
            Source::Header {
                name: "x-user-id".into(),
                trusted: true,
            },
            Source::JwtAuthn {
                payload_in_metadata: "jwt".into(),
                claim: "sub".into(),
            },
        ];
        let mut v = View::default();
        v.claims
            .insert(("jwt".into(), "sub".into()), "alice".into());
        let a = resolve(&order, &v, None).found.unwrap();
        assert_eq!(
            (a.value.as_str(), a.source.as_str(), a.verified),
            ("alice", "jwt_authn:sub", true)
        );
        v.set("x-user-id", "bob");
        assert_eq!(resolve(&order, &v, None).found.unwrap().value, "bob");
    }

    #[test]
    fn unverified_sources_are_labelled() {
        let order = vec![
            Source::BearerJwtUnverified {
                claim: "sub".into(),
            },
            Source::BodyField {
                pointer: "/user".into(),
            },
        ];
        let mut v = View::default();
        let body = json!({"user": "carol"});
        let a = resolve(&order, &v, Some(&body)).found.unwrap();
        assert_eq!((a.value.as_str(), a.verified), ("carol", false));
        v.set("authorization", jwt(json!({"sub": "dave", "exp": 1})));
        let a = resolve(&order, &v, Some(&body)).found.unwrap();
        assert_eq!(
            (a.value.as_str(), a.source.as_str(), a.verified),
            ("dave", "bearer_jwt_unverified:sub", false)
        );
    }

    #[test]
    fn junk_values_are_skipped() {
        let order = vec![
            Source::Header {
                name: "x-user-id".into(),
                trusted: true,
            },
            Source::BearerJwtUnverified {
                claim: "sub".into(),
            },
        ];
        let mut v = View::default();
        v.set("x-user-id", "  ");
        v.set("authorization", "Bearer not-a-jwt");
        assert_eq!(resolve(&order, &v, None).found, None);
        v.set("x-user-id", "a\nb");
        assert_eq!(resolve(&order, &v, None).found, None);
        v.set("x-user-id", "x".repeat(300));
        assert_eq!(resolve(&order, &v, None).found, None);
    }

    #[test]
    fn projects_from_route_metadata_and_key_fingerprints() {
        let key = "sk-proj-example-key-000";
        let mut map = BTreeMap::new();
        map.insert(fingerprint(key), "proj-billing".to_string());
        let order = vec![
            Source::RouteMetadata {
                namespace: "policy_gateway".into(),
                key: "project".into(),
            },
            Source::ApiKeyMap {
                header: "authorization".into(),
                map,
            },
        ];
        let mut v = View::default();
        v.set("authorization", format!("Bearer {key}"));
        let a = resolve(&order, &v, None).found.unwrap();
        assert_eq!(a.value, "proj-billing");
        assert!(!a.source.contains(key));
        v.route.insert(
            ("policy_gateway".into(), "project".into()),
            "proj-route".into(),
        );
        assert_eq!(resolve(&order, &v, None).found.unwrap().value, "proj-route");
    }

    fn header(name: &str, trusted: bool) -> Source {
        Source::Header {
            name: name.into(),
            trusted,
        }
    }

    #[test]
    fn a_header_is_verified_only_when_the_configuration_trusts_it() {
        let mut v = View::default();
        v.set("x-user-id", "ceo@example.com");
        let a = resolve(&[header("x-user-id", false)], &v, None)
            .found
            .unwrap();
        assert_eq!((a.value.as_str(), a.verified), ("ceo@example.com", false));
        let a = resolve(&[header("x-user-id", true)], &v, None)
            .found
            .unwrap();
        assert!(a.verified);
    }

    #[test]
    fn repeated_or_non_utf8_headers_are_rejected_and_recorded() {
        let order = vec![
            header("x-user-id", true),
            Source::BodyField {
                pointer: "/user".into(),
            },
        ];
        let body = json!({"user": "carol"});
        let mut v = View::default();
        // The client's copy first, then the one the trusted filter appended.
        v.add("x-user-id", "mallory");
        v.add("x-user-id", "alice");
        let r = resolve(&order, &v, Some(&body));
        let found = r.found.unwrap();
        assert_eq!((found.value.as_str(), found.verified), ("carol", false));
        assert_eq!(r.rejected, ["header:x-user-id: x-user-id repeated"]);
        v.set("x-user-id", b"caf\xe9");
        let r = resolve(&order, &v, None);
        assert_eq!(r.found, None);
        assert_eq!(r.rejected, ["header:x-user-id: x-user-id not UTF-8"]);
        v.set("authorization", b"Bearer sk-\xff");
        let keyed = [Source::ApiKeyMap {
            header: "authorization".into(),
            map: BTreeMap::new(),
        }];
        assert_eq!(resolve(&keyed, &v, None).rejected.len(), 1);
    }

    #[test]
    fn fingerprint_is_stable() {
        // SHA-256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 b00361a3 96177a9c b410ff61 f20015ad
        assert_eq!(
            fingerprint("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223"
        );
        assert_ne!(fingerprint("a"), fingerprint("b"));
    }
}
