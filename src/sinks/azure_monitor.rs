//! Azure Monitor Logs Ingestion API: `POST https://{DCE or DCR ingestion endpoint}
//! /dataCollectionRules/{dcr-immutable-id}/streams/{Custom-Stream}?api-version=2023-01-01`
//! with `Authorization: Bearer <Entra ID token for https://monitor.azure.com>`, a gzipped JSON
//! array of objects matching the DCR's stream declaration: each record's fields plus
//! `TimeGenerated` (ISO 8601 UTC from the record's time).
//!
//! Tokens come from the Microsoft identity platform (client credentials: `POST
//! https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`, form `client_id`,
//! `client_secret`, `scope=https://monitor.azure.com/.default`,
//! `grant_type=client_credentials`) or from the instance metadata service (managed identity:
//! `GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01
//! &resource=https://monitor.azure.com` with `Metadata: true`). [`TokenCache`] keeps one and
//! asks for a new one 5 minutes before it expires (at half its life for short-lived tokens).
//!
//! Limits (Azure Monitor service limits): 1 MB per call and 64 KB per field value. Batches
//! are split so each call's *uncompressed* JSON is at most [`MAX_CALL_BYTES`] (1,000,000
//! bytes). A top-level field whose JSON is over [`MAX_FIELD_BYTES`] (65,536 bytes) has its
//! content replaced by a string marker `"[policy-gateway: field omitted, N bytes over the
//! 65536-byte Azure field limit]"`; if a record is still too big for one call, its largest
//! fields are replaced (largest first) by `"[policy-gateway: field omitted, N bytes, record
//! over the 1 MB Azure call limit]"` until it fits. Columns stay present, so queries can find
//! the markers.
//!
//! Answers: 204 (any 2xx) delivered; 429 and 5xx retried honouring `Retry-After` (seconds);
//! 401 wrong audience or cloud for the token, 403 the identity lacks the "Monitoring Metrics
//! Publisher" role on the DCR, 404 wrong endpoint, DCR or stream, 400 and 413 bad data: dropped.

use std::fmt;
use std::ops::Range;

use serde_json::{Map, Value};

use super::config::SinkConfig;
use super::gzip::gzip;
use super::parts::Parts;
use super::{
    excerpt, no_answer, percent_encode, retry_after_ms, Answer, Batch, Call, HttpRequest, Outcome,
    QueuedRecord, Sink, Step,
};
use crate::audit::time::iso8601_millis;
use crate::config::read::{self, Fields, Path, ReadError};
use crate::error::ConfigError;

pub const API_VERSION: &str = "2023-01-01";
/// Uncompressed JSON per call (the service's limit is 1 MB).
pub const MAX_CALL_BYTES: usize = 1_000_000;
/// JSON of one field value (the service's limit is 64 KB).
pub const MAX_FIELD_BYTES: usize = 64 * 1024;
pub const IMDS_AUTHORITY: &str = "169.254.169.254";
const RESOURCE: &str = "https://monitor.azure.com";
const SCOPE: &str = "https://monitor.azure.com/.default";
/// Refresh this long before expiry (when the token lives at least twice as long).
const REFRESH_BEFORE_MS: u64 = 5 * 60 * 1000;

/// The Azure Monitor sink's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureConfig {
    /// The Envoy cluster that reaches the ingestion endpoint.
    pub cluster: String,
    /// Host of the DCE (or of the DCR's logs ingestion endpoint), e.g.
    /// `my-dce-a1b2.westeurope-1.ingest.monitor.azure.com`.
    pub endpoint_authority: String,
    /// `dcr-…` (the DCR's immutable id, not its resource name).
    pub dcr_immutable_id: String,
    /// `Custom-…` (the stream declared in the DCR).
    pub stream: String,
    pub auth: AzureAuth,
}

/// How the filter gets its Entra ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AzureAuth {
    ClientCredentials(ClientCredentials),
    ManagedIdentity(ManagedIdentity),
}

/// An app registration's client secret (OAuth 2.0 client credentials grant).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The Envoy cluster that reaches the token authority.
    pub token_cluster: String,
    pub token_authority: String,
    pub tenant_id: String,
    pub client_id: String,
    /// Never logged.
    pub client_secret: String,
}

fn default_token_authority() -> String {
    "login.microsoftonline.com".into()
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_cluster", &self.token_cluster)
            .field("token_authority", &self.token_authority)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// The managed identity of the VM / node, through IMDS (169.254.169.254).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedIdentity {
    /// The Envoy cluster that reaches 169.254.169.254:80.
    pub token_cluster: String,
    /// A user-assigned identity's client id; the system-assigned identity when absent.
    pub client_id: Option<String>,
}

crate::deserialize_by_hand!(AzureConfig);

impl AzureConfig {
    /// `audit.azure_monitor` (unknown fields refused).
    pub fn read(v: Value, path: Path<'_>) -> Result<AzureConfig, ReadError> {
        let mut f = Fields::new(
            v,
            path,
            "struct AzureConfig",
            &[
                "cluster",
                "endpoint_authority",
                "dcr_immutable_id",
                "stream",
                "auth",
            ],
        )?;
        Ok(AzureConfig {
            cluster: f.req("cluster", read::string)?,
            endpoint_authority: f.req("endpoint_authority", read::string)?,
            dcr_immutable_id: f.req("dcr_immutable_id", read::string)?,
            stream: f.req("stream", read::string)?,
            auth: f.req("auth", AzureAuth::read)?,
        })
    }
}

impl AzureAuth {
    /// `{"client_credentials": {…}}` or `{"managed_identity": {…}}`.
    fn read(v: Value, path: Path<'_>) -> Result<AzureAuth, ReadError> {
        let (i, content, name) =
            read::tagged(v, path, &["client_credentials", "managed_identity"])?;
        let path = path.key(name);
        if i == 0 {
            let mut f = Fields::new(
                content,
                path,
                "struct ClientCredentials",
                &[
                    "token_cluster",
                    "token_authority",
                    "tenant_id",
                    "client_id",
                    "client_secret",
                ],
            )?;
            return Ok(AzureAuth::ClientCredentials(ClientCredentials {
                token_cluster: f.req("token_cluster", read::string)?,
                token_authority: f.or(
                    "token_authority",
                    read::string,
                    default_token_authority(),
                )?,
                tenant_id: f.req("tenant_id", read::string)?,
                client_id: f.req("client_id", read::string)?,
                client_secret: f.req("client_secret", read::string)?,
            }));
        }
        let mut f = Fields::new(
            content,
            path,
            "struct ManagedIdentity",
            &["token_cluster", "client_id"],
        )?;
        Ok(AzureAuth::ManagedIdentity(ManagedIdentity {
            token_cluster: f.req("token_cluster", read::string)?,
            client_id: f.opt("client_id", read::string)?,
        }))
    }
}

impl AzureAuth {
    /// The Envoy cluster for token requests.
    pub fn token_cluster(&self) -> &str {
        match self {
            AzureAuth::ClientCredentials(c) => &c.token_cluster,
            AzureAuth::ManagedIdentity(m) => &m.token_cluster,
        }
    }
}

fn err<T>(field: &str, msg: &str) -> Result<T, ConfigError> {
    Err(ConfigError::field(field, msg))
}

fn is_host(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

impl SinkConfig for AzureConfig {
    fn name(&self) -> &'static str {
        "azure_monitor"
    }

    /// Checks the fields; errors name the field and never quote the secret.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.cluster.trim().is_empty() {
            return err("cluster", "must not be empty");
        }
        if !is_host(&self.endpoint_authority) {
            return err(
                "endpoint_authority",
                "must be the ingestion endpoint's host[:port], without https:// or a path",
            );
        }
        if !self
            .dcr_immutable_id
            .strip_prefix("dcr-")
            .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return err(
                "dcr_immutable_id",
                "must be the DCR's immutable id, 'dcr-' followed by letters and digits",
            );
        }
        if !self.stream.strip_prefix("Custom-").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }) {
            return err(
                "stream",
                "must be 'Custom-' followed by letters, digits, '_' or '-'",
            );
        }
        match &self.auth {
            AzureAuth::ClientCredentials(c) => {
                let f = "auth.client_credentials";
                if c.token_cluster.trim().is_empty() {
                    return err(&format!("{f}.token_cluster"), "must not be empty");
                }
                if !is_host(&c.token_authority) {
                    return err(
                        &format!("{f}.token_authority"),
                        "must be host[:port], without https:// or a path",
                    );
                }
                if !c
                    .tenant_id
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '.')
                    || c.tenant_id.is_empty()
                {
                    return err(
                        &format!("{f}.tenant_id"),
                        "must be the tenant id (GUID) or domain name",
                    );
                }
                if !is_id(&c.client_id) {
                    return err(
                        &format!("{f}.client_id"),
                        "must be the application (client) id",
                    );
                }
                if c.client_secret.trim().is_empty() {
                    return err(&format!("{f}.client_secret"), "must not be empty");
                }
            }
            AzureAuth::ManagedIdentity(m) => {
                let f = "auth.managed_identity";
                if m.token_cluster.trim().is_empty() {
                    return err(&format!("{f}.token_cluster"), "must not be empty");
                }
                if m.client_id.as_deref().is_some_and(|id| !is_id(id)) {
                    return err(
                        &format!("{f}.client_id"),
                        "must be the user-assigned identity's client id",
                    );
                }
            }
        }
        Ok(())
    }

    fn build(&self, _gateway: &str, _seed: u64) -> Box<dyn Sink> {
        Box::new(AzureMonitor {
            cfg: self.clone(),
            token: TokenCache::new(),
            fresh_token: false,
            parts: None,
        })
    }
}

/// The Azure Monitor sink of one worker: a token when the one held is due for refresh, then
/// the batch in as many calls as the 1 MB limit needs.
struct AzureMonitor {
    cfg: AzureConfig,
    token: TokenCache,
    /// The batch got a 401 and goes again with a token fetched after it; a second 401 drops
    /// it.
    fresh_token: bool,
    /// The calls of the batch; `None` while a token is fetched.
    parts: Option<Parts>,
}

impl AzureMonitor {
    /// Starts sending `batch` with `token`.
    fn send(&mut self, token: &str, batch: &Batch<'_>) -> Step {
        let calls = build_requests(&self.cfg, token, batch.records)
            .into_iter()
            .map(|(request, range)| {
                let call = Call {
                    cluster: self.cfg.cluster.clone(),
                    request,
                };
                (call, range)
            })
            .collect();
        let (step, parts) = Parts::start(calls, batch.records.len());
        self.parts = parts;
        step
    }
}

impl Sink for AzureMonitor {
    fn start(&mut self, batch: &Batch<'_>, now_ms: u64) -> Step {
        self.parts = None;
        match self.token.valid(now_ms) {
            Some(token) => {
                let token = token.to_string();
                self.send(&token, batch)
            }
            None => Step::call(self.cfg.auth.token_cluster(), token_request(&self.cfg.auth)),
        }
    }

    fn on_answer(&mut self, answer: Answer<'_>, batch: &Batch<'_>, now_ms: u64) -> Step {
        let Some(parts) = self.parts.take() else {
            // The token endpoint's answer.
            return match answer.map(|(status, _, body)| parse_token_response(status, body, now_ms))
            {
                Some(Ok(token)) => {
                    let access = token.access_token().to_string();
                    self.token.set(token);
                    self.send(&access, batch)
                }
                Some(Err(outcome)) => Step::Settle(outcome),
                None => Step::Settle(no_answer()),
            };
        };
        let outcome = match answer {
            Some((status, headers, body)) => {
                if status == 401 {
                    // A token the service no longer takes: get a new one.
                    self.token.clear();
                }
                classify(status, headers, body)
            }
            None => no_answer(),
        };
        let status = answer.map(|(status, _, _)| status);
        if status.is_some_and(|s| (200..300).contains(&s)) {
            self.fresh_token = false;
        }
        if let (Some(401), false, Outcome::Drop { reason }) = (status, self.fresh_token, &outcome) {
            // Refused token (revoked, or expired early): this part and those after it go
            // again at once with a fresh token. Only a fresh token's refusal drops records.
            self.fresh_token = true;
            let reason = format!("{reason}; retrying with a fresh token");
            return Step::SettleEach {
                results: parts.results(),
                after_ms: Some(0),
                seen: Outcome::Retry {
                    reason,
                    after_ms: Some(0),
                },
            };
        }
        let (step, parts) = parts.answered(outcome);
        if parts.is_none() {
            self.fresh_token = false;
        }
        self.parts = parts;
        step
    }
}

/// The request for a new token.
pub fn token_request(auth: &AzureAuth) -> HttpRequest {
    match auth {
        AzureAuth::ClientCredentials(c) => {
            let form = format!(
                "client_id={}&client_secret={}&scope={}&grant_type=client_credentials",
                percent_encode(&c.client_id),
                percent_encode(&c.client_secret),
                percent_encode(SCOPE),
            );
            HttpRequest {
                method: "POST",
                authority: c.token_authority.clone(),
                path: format!("/{}/oauth2/v2.0/token", percent_encode(&c.tenant_id)),
                headers: vec![
                    (
                        "content-type".into(),
                        "application/x-www-form-urlencoded".into(),
                    ),
                    ("accept".into(), "application/json".into()),
                ],
                body: form.into_bytes(),
            }
        }
        AzureAuth::ManagedIdentity(m) => {
            let mut path = format!(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource={}",
                percent_encode(RESOURCE)
            );
            if let Some(id) = &m.client_id {
                path.push_str("&client_id=");
                path.push_str(&percent_encode(id));
            }
            HttpRequest {
                method: "GET",
                authority: IMDS_AUTHORITY.into(),
                path,
                headers: vec![("metadata".into(), "true".into())],
                body: Vec::new(),
            }
        }
    }
}

/// An access token and its lifetime. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    access_token: String,
    /// When it was received (caller's clock, Unix ms).
    pub obtained_ms: u64,
    /// When it expires (Unix ms).
    pub expires_ms: u64,
}

impl Token {
    pub fn new(access_token: String, obtained_ms: u64, expires_ms: u64) -> Token {
        Token {
            access_token,
            obtained_ms,
            expires_ms,
        }
    }

    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// When to get a new one: 5 minutes before expiry, or at half-life for tokens living
    /// less than 10 minutes.
    pub fn refresh_at_ms(&self) -> u64 {
        let life = self.expires_ms.saturating_sub(self.obtained_ms);
        if life >= 2 * REFRESH_BEFORE_MS {
            self.expires_ms - REFRESH_BEFORE_MS
        } else {
            self.obtained_ms + life / 2
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &"<redacted>")
            .field("obtained_ms", &self.obtained_ms)
            .field("expires_ms", &self.expires_ms)
            .finish()
    }
}

/// Seconds as a JSON number or a string of digits (IMDS sends strings, Entra ID numbers).
fn seconds(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads a token endpoint's answer (Entra ID or IMDS). Errors never quote the token.
pub fn parse_token_response(status: u16, body: &[u8], now_ms: u64) -> Result<Token, Outcome> {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    if status != 200 {
        let error = v
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        // Only the documented error fields are quoted, never the body: an endpoint that
        // answers an error status with a token in it must not put the token in a log line.
        let description = v
            .as_ref()
            .and_then(|v| v.get("error_description"))
            .and_then(Value::as_str)
            .map_or_else(
                || "(no error_description)".to_string(),
                |d| excerpt(d.as_bytes()),
            );
        let retryable_error = error == "temporarily_unavailable";
        let error = excerpt(error.as_bytes());
        let reason = format!("token endpoint {status} {error}: {description}");
        // IMDS: 404 while it is updating, 410 while it starts; both documented as retryable.
        return Err(
            if matches!(status, 404 | 408 | 410 | 429 | 500..=599) || retryable_error {
                Outcome::Retry {
                    reason,
                    after_ms: None,
                }
            } else {
                Outcome::Drop { reason }
            },
        );
    }
    let bad = |what: &str| Outcome::Retry {
        reason: format!("token endpoint 200 without {what}"),
        after_ms: None,
    };
    let v = v.ok_or_else(|| bad("a JSON body"))?;
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| bad("a usable access_token"))?;
    // Prefer the relative lifetime: it does not depend on our clock agreeing with theirs.
    let expires_ms = if let Some(s) = seconds(v.get("expires_in")) {
        now_ms.saturating_add(s.saturating_mul(1000))
    } else if let Some(s) = seconds(v.get("expires_on")) {
        s.saturating_mul(1000)
    } else {
        return Err(bad("expires_in or expires_on"));
    };
    if expires_ms <= now_ms {
        return Err(bad("an unexpired lifetime (clock skew?)"));
    }
    Ok(Token::new(token.to_string(), now_ms, expires_ms))
}

/// The current token, if any.
#[derive(Debug, Clone, Default)]
pub struct TokenCache {
    token: Option<Token>,
}

impl TokenCache {
    pub fn new() -> TokenCache {
        TokenCache::default()
    }

    /// The token, while it is not due for refresh.
    pub fn valid(&self, now_ms: u64) -> Option<&str> {
        self.token
            .as_ref()
            .filter(|t| now_ms < t.refresh_at_ms())
            .map(Token::access_token)
    }

    pub fn set(&mut self, token: Token) {
        self.token = Some(token);
    }

    /// Forgets the token (e.g. after a 401).
    pub fn clear(&mut self) {
        self.token = None;
    }
}

fn json_len(v: &Value) -> usize {
    serde_json::to_string(v).map_or(0, |s| s.len())
}

/// The object sent for one record: its fields plus `TimeGenerated`, with oversized fields
/// replaced by markers (see the module doc). A record that is not a JSON object is sent as
/// `RawData` (a string).
fn azure_object(r: &QueuedRecord) -> String {
    let mut map = match serde_json::from_slice::<Value>(r.json.as_bytes()) {
        Ok(Value::Object(map)) => map,
        _ => {
            let mut m = Map::new();
            m.insert("RawData".into(), Value::String(r.json.clone()));
            m
        }
    };
    map.insert(
        "TimeGenerated".into(),
        Value::String(iso8601_millis(r.epoch_ms)),
    );
    for value in map.values_mut() {
        let n = json_len(value);
        if n > MAX_FIELD_BYTES {
            *value = Value::String(format!(
                "[policy-gateway: field omitted, {n} bytes over the {MAX_FIELD_BYTES}-byte Azure field limit]"
            ));
        }
    }
    // Room for the array brackets of a call holding only this record.
    let budget = MAX_CALL_BYTES - 2;
    let mut json = Value::Object(map);
    let mut text = serde_json::to_string(&json).unwrap_or_default();
    while text.len() > budget {
        let Value::Object(map) = &mut json else { break };
        let largest = map
            .iter_mut()
            .filter(|(k, _)| k.as_str() != "TimeGenerated")
            .map(|(_, v)| (json_len(v), v))
            .max_by_key(|(n, _)| *n);
        let Some((n, value)) = largest else { break };
        let marker = Value::String(format!(
            "[policy-gateway: field omitted, {n} bytes, record over the 1 MB Azure call limit]"
        ));
        if json_len(&marker) >= n {
            break;
        }
        *value = marker;
        text = serde_json::to_string(&json).unwrap_or_default();
    }
    text
}

/// The calls for a batch, each with the range of batch records it carries. Each call's
/// uncompressed JSON array is at most [`MAX_CALL_BYTES`].
pub fn build_requests(
    cfg: &AzureConfig,
    token: &str,
    batch: &[QueuedRecord],
) -> Vec<(HttpRequest, Range<usize>)> {
    let path = format!(
        "/dataCollectionRules/{}/streams/{}?api-version={API_VERSION}",
        cfg.dcr_immutable_id, cfg.stream
    );
    let request = |array: &str| HttpRequest {
        method: "POST",
        authority: cfg.endpoint_authority.clone(),
        path: path.clone(),
        headers: vec![
            ("authorization".into(), format!("Bearer {token}")),
            ("content-type".into(), "application/json".into()),
            ("content-encoding".into(), "gzip".into()),
        ],
        body: gzip(array.as_bytes()),
    };
    let mut calls = Vec::new();
    let mut array = String::from("[");
    let mut start = 0;
    for (i, record) in batch.iter().enumerate() {
        let obj = azure_object(record);
        // +1 for the comma, +1 for the closing bracket.
        if i > start && array.len() + 1 + obj.len() + 1 > MAX_CALL_BYTES {
            array.push(']');
            calls.push((request(&array), start..i));
            array = String::from("[");
            start = i;
        }
        if i > start {
            array.push(',');
        }
        array.push_str(&obj);
    }
    if start < batch.len() {
        array.push(']');
        calls.push((request(&array), start..batch.len()));
    }
    calls
}

/// Classifies the ingestion endpoint's answer.
pub fn classify(status: u16, headers: &[(String, String)], body: &[u8]) -> Outcome {
    let detail = excerpt(body);
    let drop = |what: &str| Outcome::Drop {
        reason: format!("Azure Monitor {status} ({what}): {detail}"),
    };
    match status {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => Outcome::Retry {
            reason: format!("Azure Monitor {status}: {detail}"),
            after_ms: retry_after_ms(headers),
        },
        401 => drop("wrong audience/cloud (token)"),
        403 => drop("missing Monitoring Metrics Publisher role on the DCR"),
        404 => drop("wrong endpoint/DCR/stream"),
        413 => drop("call over the 1 MB limit"),
        _ => drop("rejected"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const SECRET: &str = "Zx8Q~s3cr3t+/=&value";

    fn cfg() -> AzureConfig {
        serde_json::from_value(serde_json::json!({
            "cluster": "azure_dce",
            "endpoint_authority": "gw-dce-a1b2.westeurope-1.ingest.monitor.azure.com",
            "dcr_immutable_id": "dcr-00000000000000000000000000000000",
            "stream": "Custom-PolicyGatewayAudit",
            "auth": {"client_credentials": {
                "token_cluster": "entra",
                "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                "client_id": "11111111-2222-3333-4444-555555555555",
                "client_secret": SECRET,
            }},
        }))
        .unwrap()
    }

    fn mi(client_id: Option<&str>) -> AzureAuth {
        AzureAuth::ManagedIdentity(ManagedIdentity {
            token_cluster: "imds".into(),
            client_id: client_id.map(str::to_string),
        })
    }

    fn inflate(gz: &[u8]) -> Vec<u8> {
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
        miniz_oxide::inflate::decompress_to_vec(&gz[10..gz.len() - 8]).unwrap()
    }

    fn rec(json: &str, epoch_ms: u64) -> QueuedRecord {
        QueuedRecord {
            json: json.into(),
            epoch_ms,
            gap: None,
            seq: 0,
        }
    }

    #[test]
    fn config_parses_and_validates() {
        let c = cfg();
        assert_eq!(c.validate(), Ok(()));
        let AzureAuth::ClientCredentials(cc) = &c.auth else {
            panic!()
        };
        assert_eq!(cc.token_authority, "login.microsoftonline.com");
        assert_eq!(c.auth.token_cluster(), "entra");
        assert!(!format!("{c:?}").contains("s3cr3t"));

        let m: AzureConfig = serde_json::from_value(serde_json::json!({
            "cluster": "c", "endpoint_authority": "x.ingest.monitor.azure.com",
            "dcr_immutable_id": "dcr-abc", "stream": "Custom-X_CL",
            "auth": {"managed_identity": {"token_cluster": "imds"}},
        }))
        .unwrap();
        assert_eq!(m.validate(), Ok(()));
        assert_eq!(m.auth, mi(None));
        assert!(serde_json::from_value::<AzureConfig>(serde_json::json!({
            "cluster": "c", "endpoint_authority": "x", "dcr_immutable_id": "dcr-abc",
            "stream": "Custom-X", "auth": {"managed_identity": {"token_cluster": "i", "oops": 1}},
        }))
        .is_err());

        let bad = |f: fn(&mut AzureConfig), field: &str| {
            let mut c = cfg();
            f(&mut c);
            let e = c
                .validate()
                .unwrap_err()
                .within("audit.azure_monitor")
                .to_string();
            assert!(
                e.starts_with(&format!("audit.azure_monitor.{field}:")),
                "{e}"
            );
            assert!(!e.contains("s3cr3t"));
        };
        bad(|c| c.cluster.clear(), "cluster");
        bad(
            |c| c.endpoint_authority = "https://x.ingest.monitor.azure.com".into(),
            "endpoint_authority",
        );
        bad(|c| c.dcr_immutable_id = "my-dcr".into(), "dcr_immutable_id");
        bad(|c| c.dcr_immutable_id = "dcr-".into(), "dcr_immutable_id");
        bad(|c| c.stream = "PolicyGateway_CL".into(), "stream");
        bad(|c| c.stream = "Custom-a b".into(), "stream");
        let cc = |f: fn(&mut ClientCredentials)| {
            move |c: &mut AzureConfig| {
                if let AzureAuth::ClientCredentials(cc) = &mut c.auth {
                    f(cc)
                }
            }
        };
        let mut c = cfg();
        cc(|x| x.client_secret = " ".into())(&mut c);
        assert!(c
            .validate()
            .unwrap_err()
            .within("audit.azure_monitor")
            .to_string()
            .starts_with("audit.azure_monitor.auth.client_credentials.client_secret:"));
        let mut c = cfg();
        cc(|x| x.tenant_id = "a/b".into())(&mut c);
        assert!(c
            .validate()
            .unwrap_err()
            .within("audit.azure_monitor")
            .to_string()
            .contains(".tenant_id:"));
        let mut c = cfg();
        c.auth = mi(Some("x y"));
        assert!(c
            .validate()
            .unwrap_err()
            .within("audit.azure_monitor")
            .to_string()
            .starts_with("audit.azure_monitor.auth.managed_identity.client_id:"));
    }

    #[test]
    fn client_credentials_token_request_is_form_encoded() {
        let req = token_request(&cfg().auth);
        assert_eq!(req.method, "POST");
        assert_eq!(req.authority, "login.microsoftonline.com");
        assert_eq!(
            req.path,
            "/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
        );
        assert!(req.headers.contains(&(
            "content-type".into(),
            "application/x-www-form-urlencoded".into()
        )));
        assert_eq!(
            String::from_utf8(req.body).unwrap(),
            "client_id=11111111-2222-3333-4444-555555555555\
             &client_secret=Zx8Q~s3cr3t%2B%2F%3D%26value\
             &scope=https%3A%2F%2Fmonitor.azure.com%2F.default\
             &grant_type=client_credentials"
        );
    }

    #[test]
    fn managed_identity_token_request_targets_imds() {
        let req = token_request(&mi(None));
        assert_eq!(req.method, "GET");
        assert_eq!(req.authority, "169.254.169.254");
        assert_eq!(
            req.path,
            "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmonitor.azure.com"
        );
        assert_eq!(req.headers, vec![("metadata".into(), "true".into())]);
        assert!(req.body.is_empty());
        let req = token_request(&mi(Some("aaaa-bbbb")));
        assert!(req.path.ends_with("&client_id=aaaa-bbbb"));
    }

    #[test]
    fn token_answers_are_parsed() {
        let now = 1_795_715_649_000;
        // Entra ID v2.0: numbers.
        let t = parse_token_response(
            200,
            br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAiOi.abc.def"}"#,
            now,
        )
        .unwrap();
        assert_eq!(t.access_token(), "eyJ0eXAiOi.abc.def");
        assert_eq!(t.expires_ms, now + 3_599_000);
        assert!(!format!("{t:?}").contains("eyJ0"));
        // IMDS: strings, with expires_on.
        let t = parse_token_response(
            200,
            br#"{"access_token":"eyJimds","refresh_token":"","expires_in":"86399","expires_on":"1795802048","not_before":"1795715348","resource":"https://monitor.azure.com","token_type":"Bearer"}"#,
            now,
        )
        .unwrap();
        assert_eq!(t.expires_ms, now + 86_399_000);
        // expires_on alone.
        let t = parse_token_response(
            200,
            br#"{"access_token":"x","expires_on":"1795719249"}"#,
            now,
        )
        .unwrap();
        assert_eq!(t.expires_ms, 1_795_719_249_000);

        for body in [
            &br#"{"access_token":"x"}"#[..],
            br#"{"expires_in":3599}"#,
            br#"{"access_token":"","expires_in":3599}"#,
            br#"{"access_token":"x","expires_on":"1000"}"#,
            b"<html>",
        ] {
            assert!(
                matches!(
                    parse_token_response(200, body, now),
                    Err(Outcome::Retry { .. })
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let entra_400 = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.","error_codes":[7000215],"timestamp":"2026-11-26 17:54:09Z","trace_id":"t","correlation_id":"c"}"#;
        match parse_token_response(401, entra_400, now) {
            Err(Outcome::Drop { reason }) => {
                assert!(reason.contains("invalid_client") && reason.contains("AADSTS7000215"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_token_response(
                400,
                br#"{"error":"invalid_request","error_description":"Identity not found"}"#,
                now
            ),
            Err(Outcome::Drop { .. })
        ));
        for status in [404, 410, 429, 500, 503] {
            assert!(matches!(
                parse_token_response(status, b"", now),
                Err(Outcome::Retry { .. })
            ));
        }
        assert!(matches!(
            parse_token_response(400, br#"{"error":"temporarily_unavailable"}"#, now),
            Err(Outcome::Retry { .. })
        ));
    }

    #[test]
    fn cache_refreshes_five_minutes_early_or_at_half_life() {
        let mut cache = TokenCache::new();
        assert_eq!(cache.valid(0), None);
        let t0 = 1_000_000;
        cache.set(Token::new("one-hour".into(), t0, t0 + 3_600_000));
        assert_eq!(cache.valid(t0), Some("one-hour"));
        assert_eq!(cache.valid(t0 + 3_300_000 - 1), Some("one-hour"));
        assert_eq!(cache.valid(t0 + 3_300_000), None);
        cache.set(Token::new("short".into(), t0, t0 + 240_000));
        assert_eq!(cache.valid(t0 + 119_999), Some("short"));
        assert_eq!(cache.valid(t0 + 120_000), None);
        // Eight minutes: half-life (4 min), not "5 minutes before" (3 min).
        cache.set(Token::new("eight".into(), t0, t0 + 480_000));
        assert_eq!(cache.valid(t0 + 239_999), Some("eight"));
        assert_eq!(cache.valid(t0 + 240_000), None);
        cache.set(Token::new("ten".into(), t0, t0 + 600_000));
        assert_eq!(cache.valid(t0 + 299_999), Some("ten"));
        assert_eq!(cache.valid(t0 + 300_000), None);
        cache.clear();
        assert_eq!(cache.valid(t0), None);
    }

    #[test]
    fn one_call_carries_records_with_time_generated() {
        let batch = [
            rec(r#"{"decision":"allow","record_id":"a"}"#, 1_795_715_649_123),
            rec(r#"{"decision":"refuse","record_id":"b"}"#, 0),
        ];
        let calls = build_requests(&cfg(), "tok.en", &batch);
        assert_eq!(calls.len(), 1);
        let (req, range) = &calls[0];
        assert_eq!(range, &(0..2));
        assert_eq!(req.method, "POST");
        assert_eq!(
            req.authority,
            "gw-dce-a1b2.westeurope-1.ingest.monitor.azure.com"
        );
        assert_eq!(
            req.path,
            "/dataCollectionRules/dcr-00000000000000000000000000000000/streams/Custom-PolicyGatewayAudit?api-version=2023-01-01"
        );
        for h in [
            ("authorization", "Bearer tok.en"),
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ] {
            assert!(req.headers.contains(&(h.0.into(), h.1.into())), "{h:?}");
        }
        let v: Value = serde_json::from_slice(&inflate(&req.body)).unwrap();
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 2);
        assert_eq!(arr[0]["TimeGenerated"], "2026-11-26T17:54:09.123Z");
        assert_eq!(arr[0]["decision"], "allow");
        assert_eq!(arr[1]["TimeGenerated"], "1970-01-01T00:00:00.000Z");
        assert_eq!(arr[1]["record_id"], "b");
        assert!(build_requests(&cfg(), "t", &[]).is_empty());
        // Not an object: sent as RawData.
        let calls = build_requests(&cfg(), "t", &[rec("not json", 0)]);
        let v: Value = serde_json::from_slice(&inflate(&calls[0].0.body)).unwrap();
        assert_eq!(v[0]["RawData"], "not json");
    }

    #[test]
    fn batches_split_under_one_megabyte_uncompressed() {
        // 30 records of ~100 KB each (fields under 64 KB): about 3 MB in all.
        let field = "x".repeat(50_000);
        let json = format!(r#"{{"a":"{field}","b":"{field}","n":1}}"#);
        let batch: Vec<QueuedRecord> = (0..30).map(|i| rec(&json, i)).collect();
        let calls = build_requests(&cfg(), "t", &batch);
        assert!(calls.len() >= 4, "{} calls", calls.len());
        let mut next = 0;
        let mut total = 0;
        for (req, range) in &calls {
            assert_eq!(range.start, next);
            next = range.end;
            let raw = inflate(&req.body);
            assert!(raw.len() <= MAX_CALL_BYTES, "{}", raw.len());
            let v: Value = serde_json::from_slice(&raw).unwrap();
            assert_eq!(v.as_array().unwrap().len(), range.len());
            total += range.len();
        }
        assert_eq!((next, total), (30, 30));
        // Each call is as full as it can be: 9 records of ~100 KB fit, a 10th would not.
        assert_eq!(calls[0].1, 0..9);
    }

    #[test]
    fn oversized_fields_and_records_get_markers() {
        let big = "y".repeat(70_000);
        let json = format!(r#"{{"record_id":"r","content":["{big}"],"decision":"allow"}}"#);
        let calls = build_requests(&cfg(), "t", &[rec(&json, 0)]);
        let v: Value = serde_json::from_slice(&inflate(&calls[0].0.body)).unwrap();
        let content = v[0]["content"].as_str().unwrap();
        assert!(
            content.starts_with("[policy-gateway: field omitted, 70004 bytes over the 65536-byte"),
            "{content}"
        );
        assert_eq!(v[0]["record_id"], "r");
        assert_eq!(v[0]["decision"], "allow");

        // 20 fields of 60 KB: each is allowed, the record (1.2 MB) is not.
        let f = "z".repeat(60_000);
        let fields: Vec<String> = (0..20).map(|i| format!(r#""f{i:02}":"{f}""#)).collect();
        let json = format!("{{\"id\":\"big\",{}}}", fields.join(","));
        let batch = [
            rec(r#"{"id":"small"}"#, 0),
            rec(&json, 0),
            rec(r#"{"id":"after"}"#, 0),
        ];
        let calls = build_requests(&cfg(), "t", &batch);
        let mut seen = Vec::new();
        for (req, _) in &calls {
            let raw = inflate(&req.body);
            assert!(raw.len() <= MAX_CALL_BYTES);
            let v: Value = serde_json::from_slice(&raw).unwrap();
            for o in v.as_array().unwrap() {
                seen.push(o["id"].as_str().unwrap().to_string());
                if o["id"] == "big" {
                    let omitted = o
                        .as_object()
                        .unwrap()
                        .values()
                        .filter(|v| {
                            v.as_str()
                                .is_some_and(|s| s.contains("record over the 1 MB"))
                        })
                        .count();
                    assert!((4..=5).contains(&omitted), "{omitted}");
                    assert_eq!(o.as_object().unwrap().len(), 22);
                }
            }
        }
        assert_eq!(seen, ["small", "big", "after"]);
    }

    #[test]
    fn answers_are_classified_with_retry_after() {
        assert_eq!(classify(204, &[], b""), Outcome::Delivered);
        let h = |v: &str| vec![("Retry-After".to_string(), v.to_string())];
        assert_eq!(
            classify(429, &h("17"), br#"{"error":{"code":"TooManyRequests"}}"#),
            Outcome::Retry {
                reason: r#"Azure Monitor 429: {"error":{"code":"TooManyRequests"}}"#.into(),
                after_ms: Some(17_000)
            }
        );
        assert!(matches!(
            classify(503, &[("retry-after".into(), " 5 ".into())], b""),
            Outcome::Retry {
                after_ms: Some(5000),
                ..
            }
        ));
        assert!(matches!(
            classify(500, &h("Wed, 21 Oct 2026 07:28:00 GMT"), b""),
            Outcome::Retry { after_ms: None, .. }
        ));
        assert!(matches!(
            classify(429, &h("999999"), b""),
            Outcome::Retry {
                after_ms: Some(3_600_000),
                ..
            }
        ));
        for (status, needle) in [
            (401, "wrong audience/cloud"),
            (403, "Monitoring Metrics Publisher"),
            (404, "wrong endpoint/DCR/stream"),
            (413, "1 MB"),
            (400, "InvalidStream"),
        ] {
            match classify(
                status,
                &[],
                br#"{"error":{"code":"InvalidStream","message":"bad"}}"#,
            ) {
                Outcome::Drop { reason } => assert!(reason.contains(needle), "{reason}"),
                other => panic!("{status}: {other:?}"),
            }
        }
    }
}
