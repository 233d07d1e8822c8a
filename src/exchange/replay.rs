//! Replaying an exchange from a recorded traffic line through the filter's own [`Exchange`],
//! driven the way Envoy drives it: request headers, the whole request body, then (unless
//! answered locally) the upstream's response headers and body, whole or chunk by chunk. Used
//! by `policy-gateway simulate` and `diff`, and by the scenario table's tests natively and
//! under wasm, so every runner judges the same way.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::{json, Value};

use super::{Exchange, Host, Side};
use crate::audit::{AuditRecord, IdGenerator};
use crate::config::PluginConfig;
use crate::headers::HeaderMap;

/// One exchange of simulated traffic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traffic {
    pub request: Vec<u8>,
    /// Request headers (names lower case), as the client sent them.
    pub headers: BTreeMap<String, String>,
    pub path: Option<String>,
    /// The upstream's answer: a whole body...
    pub response: Option<Vec<u8>>,
    /// ...or a streamed one, in the chunks it arrived in.
    pub stream: Option<Vec<Vec<u8>>>,
    /// The upstream's response headers (default: `:status` 200 and a content type that
    /// fits the body).
    pub response_headers: BTreeMap<String, String>,
}

const WRAPPER_KEYS: &[&str] = &[
    "request",
    "headers",
    "response",
    "path",
    "stream",
    "response_headers",
];

/// Reads one traffic line: a request body, or a `{"request", "headers", "path", "response" |
/// "stream", "response_headers"}` wrapper. A wrapper's `request`/`response` may be a JSON
/// string holding a raw body, to simulate malformed bodies; `stream` is a list of raw chunks
/// of a streamed (SSE) response; a line that is not JSON at all is itself a (malformed) body.
pub fn parse_line(line: &str) -> Traffic {
    let raw = || Traffic {
        request: line.as_bytes().to_vec(),
        ..Traffic::default()
    };
    let Ok(value) = serde_json::from_str::<Value>(line) else {
        return raw();
    };
    let is_wrapper = value.as_object().is_some_and(|o| {
        o.contains_key("request") && o.keys().all(|k| WRAPPER_KEYS.contains(&k.as_str()))
    });
    if !is_wrapper {
        return raw();
    }
    let body = |v: Option<&Value>| -> Option<Vec<u8>> {
        match v? {
            Value::String(raw) => Some(raw.as_bytes().to_vec()),
            other => serde_json::to_vec(other).ok(),
        }
    };
    let map = |v: Option<&Value>| -> BTreeMap<String, String> {
        v.and_then(Value::as_object)
            .map(|h| {
                // Inserted one by one: `collect` would sort first (one more sort compiled).
                let mut m = BTreeMap::new();
                for (k, v) in h {
                    if let Some(v) = v.as_str() {
                        m.insert(k.to_ascii_lowercase(), v.to_string());
                    }
                }
                m
            })
            .unwrap_or_default()
    };
    let stream = value.get("stream").and_then(Value::as_array).map(|chunks| {
        chunks
            .iter()
            .filter_map(Value::as_str)
            .map(|c| c.as_bytes().to_vec())
            .collect()
    });
    Traffic {
        request: body(value.get("request")).unwrap_or_default(),
        headers: map(value.get("headers")),
        path: value
            .get("path")
            .and_then(Value::as_str)
            .map(str::to_string),
        response: body(value.get("response")),
        stream,
        response_headers: map(value.get("response_headers")),
    }
}

/// The plugin configuration `--policy` stands for: the policy, headers held (as the shipped
/// `envoy/envoy.yaml`), users from `x-user-id` or the body's `user`, projects from
/// `x-project-id` (all unverified: a traffic file is what a client sent).
pub fn config_for_policy(policy: &[u8]) -> Result<Rc<PluginConfig>, String> {
    let policy: Value = serde_json::from_slice(policy).map_err(|e| e.to_string())?;
    let doc = json!({
        "policy": policy,
        "hold_headers": true,
        "attribution": {
            "user": [{"source": "header", "name": "x-user-id"},
                     {"source": "body_field", "pointer": "/user"}],
            "project": [{"source": "header", "name": "x-project-id"}]
        }
    });
    let bytes = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
    PluginConfig::from_json(&bytes)
        .map(Rc::new)
        .map_err(|e| e.to_string())
}

/// A host made of one traffic line: what the exchange sets and sends is kept, so the run
/// can say what the upstream and the client got.
struct SimHost {
    request_headers: Vec<(Vec<u8>, Vec<u8>)>,
    response_headers: Vec<(Vec<u8>, Vec<u8>)>,
    request_body: Vec<u8>,
    /// The response body buffered (whole bodies) or the current chunk (streams).
    response_body: Vec<u8>,
    local: Option<(u16, Vec<(String, String)>)>,
    reset: bool,
    /// Envoy's `response.code_details`: set once the upstream answered.
    upstream_answered: bool,
}

impl SimHost {
    fn side(&mut self, side: Side) -> &mut Vec<(Vec<u8>, Vec<u8>)> {
        match side {
            Side::Request => &mut self.request_headers,
            Side::Response => &mut self.response_headers,
        }
    }

    fn response_header(&self, name: &str) -> Option<String> {
        HeaderMap::from_pairs(self.response_headers.clone()).lossy(name)
    }
}

impl Host for SimHost {
    fn headers(&self, side: Side) -> HeaderMap {
        HeaderMap::from_pairs(match side {
            Side::Request => self.request_headers.clone(),
            Side::Response => self.response_headers.clone(),
        })
    }

    fn set_header(&mut self, side: Side, name: &str, value: Option<&str>) {
        let map = self.side(side);
        map.retain(|(k, _)| !k.eq_ignore_ascii_case(name.as_bytes()));
        if let Some(v) = value {
            map.push((name.as_bytes().to_vec(), v.as_bytes().to_vec()));
        }
    }

    fn body(&self, side: Side, size: usize) -> Option<Vec<u8>> {
        let body = match side {
            Side::Request => &self.request_body,
            Side::Response => &self.response_body,
        };
        (!body.is_empty()).then(|| body.iter().take(size).copied().collect())
    }

    fn replace_body(&mut self, side: Side, old_size: usize, body: &[u8]) -> bool {
        let target = match side {
            Side::Request => &mut self.request_body,
            Side::Response => &mut self.response_body,
        };
        let old = old_size.min(target.len());
        target.splice(..old, body.iter().copied());
        true
    }

    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> bool {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.local = Some((status, headers));
        self.response_body = body.to_vec();
        true
    }

    fn reset_response(&mut self) {
        self.reset = true;
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        match path {
            ["response", "code_details"] if self.upstream_answered => {
                Some(b"via_upstream".to_vec())
            }
            _ => None,
        }
    }
}

/// The result of simulating one exchange.
#[derive(Debug, Clone)]
pub struct Simulated {
    pub record: AuditRecord,
    /// What the client got, in words: `forwarded`, `forwarded changed`, `403 refused`,
    /// `202 held for review`, `response: 403 refused`, with `, flagged` when flagged.
    pub client: String,
    /// The request body as forwarded upstream (None when answered locally).
    pub forwarded: Option<Vec<u8>>,
    /// The response body the client got (local reply, changed or unchanged upstream answer,
    /// or the stream's bytes as sent).
    pub client_body: Vec<u8>,
}

fn pairs(map: &BTreeMap<String, String>) -> Vec<(Vec<u8>, Vec<u8>)> {
    map.iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// Runs one exchange through the filter's exchange, as Envoy would: request headers, the
/// whole request body, then (unless answered locally) the upstream's response headers and
/// its body, whole or chunk by chunk. A line without `x-request-id` gets `sim-<line>`.
pub fn simulate(
    config: &Rc<PluginConfig>,
    traffic: &Traffic,
    line_no: usize,
    ids: &mut IdGenerator,
    epoch_ms: u64,
) -> Simulated {
    let mut request_headers = BTreeMap::new();
    request_headers.insert(":method".to_string(), "POST".to_string());
    request_headers.insert(
        ":path".to_string(),
        traffic
            .path
            .clone()
            .unwrap_or_else(|| "/v1/chat/completions".into()),
    );
    request_headers.insert("content-type".to_string(), "application/json".to_string());
    request_headers.insert("x-request-id".to_string(), format!("sim-{line_no}"));
    request_headers.extend(traffic.headers.clone());
    let mut host = SimHost {
        request_headers: pairs(&request_headers),
        response_headers: Vec::new(),
        request_body: Vec::new(),
        response_body: Vec::new(),
        local: None,
        reset: false,
        upstream_answered: false,
    };
    let mut ex = Exchange::new(Rc::clone(config));
    let has_body = !traffic.request.is_empty();
    ex.on_request_headers(&mut host, !has_body, ids, epoch_ms);
    if host.local.is_none() && has_body {
        host.request_body = traffic.request.clone();
        ex.on_request_body(&mut host, traffic.request.len(), true);
    }
    let forwarded = host.local.is_none().then(|| host.request_body.clone());
    let mut client_body = Vec::new();
    if host.local.is_none() && (traffic.response.is_some() || traffic.stream.is_some()) {
        let mut headers = BTreeMap::new();
        headers.insert(":status".to_string(), "200".to_string());
        let content_type = if traffic.stream.is_some() {
            "text/event-stream"
        } else {
            "application/json"
        };
        headers.insert("content-type".to_string(), content_type.to_string());
        headers.extend(traffic.response_headers.clone());
        host.response_headers = pairs(&headers);
        host.upstream_answered = true;
        match (&traffic.stream, &traffic.response) {
            (Some(chunks), _) => {
                ex.on_response_headers(&mut host, chunks.is_empty());
                for (i, chunk) in chunks.iter().enumerate() {
                    host.response_body = chunk.clone();
                    ex.on_response_body(&mut host, chunk.len(), i + 1 == chunks.len());
                    client_body.append(&mut host.response_body);
                }
            }
            (None, Some(body)) => {
                ex.on_response_headers(&mut host, body.is_empty());
                host.response_body = body.clone();
                ex.on_response_body(&mut host, body.len(), true);
                client_body = std::mem::take(&mut host.response_body);
            }
            (None, None) => {}
        }
    } else if host.local.is_some() {
        client_body = std::mem::take(&mut host.response_body);
    }
    let record = ex.finish(&host, ids, epoch_ms).record;
    let client = client_view(&host, &record, traffic, forwarded.as_deref());
    Simulated {
        record,
        client,
        forwarded,
        client_body,
    }
}

/// What the client got, in words, for tables.
fn client_view(
    host: &SimHost,
    record: &AuditRecord,
    traffic: &Traffic,
    forwarded: Option<&[u8]>,
) -> String {
    let flagged = if record.escalation == Some("flag") {
        ", flagged"
    } else {
        ""
    };
    let held = |headers: &[(String, String)]| {
        headers
            .iter()
            .any(|(k, v)| k == "x-policy-decision" && v == "escalate")
    };
    if let Some((status, headers)) = &host.local {
        return if held(headers) {
            format!("{status} held for review")
        } else {
            format!("{status} refused")
        };
    }
    // A refused stream is not a refused response: its status went out at once, and the
    // refusal is the provider's error event at the cut (see `client_body`).
    let response_refused = record
        .response
        .as_ref()
        .is_some_and(|r| r.decision == "refuse" && record.enforced && r.stream.is_none());
    if host.reset {
        return "response: reset".into();
    }
    if response_refused {
        let status = host
            .response_header(":status")
            .unwrap_or_else(|| "200".into());
        return format!("response: {status} refused");
    }
    match forwarded {
        Some(body) if body != traffic.request.as_slice() => {
            format!("forwarded changed{flagged}")
        }
        _ => format!("forwarded{flagged}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn config(doc: Value) -> Rc<PluginConfig> {
        Rc::new(PluginConfig::from_json(&serde_json::to_vec(&doc).unwrap()).unwrap())
    }

    fn policy() -> Value {
        serde_json::from_str(include_str!("../../policies/default.json")).unwrap()
    }

    fn run(config: &Rc<PluginConfig>, line: Value) -> Simulated {
        let mut ids = IdGenerator::new(3);
        simulate(
            config,
            &parse_line(&line.to_string()),
            1,
            &mut ids,
            1_795_715_649_000,
        )
    }

    fn chat(text: &str) -> Value {
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": text}]})
    }

    #[test]
    fn attribution_follows_the_configured_sources() {
        let cfg = config(json!({"policy": policy(), "attribution": {
            "user": [{"source": "header", "name": "x-team-user", "trusted": true}],
            "project": [{"source": "body_field", "pointer": "/metadata/project"}]}}));
        let mut body = chat("hello");
        body["metadata"] = json!({"project": "proj-body"});
        let sim = run(
            &cfg,
            json!({"request": body, "headers": {
            "x-team-user": "alice", "x-user-id": "ignored"}}),
        );
        let r = &sim.record;
        assert_eq!(r.policy_user.as_deref(), Some("alice"));
        assert_eq!(r.policy_user_source.as_deref(), Some("header:x-team-user"));
        assert_eq!(r.policy_user_verified, Some(true));
        assert_eq!(r.policy_project_id.as_deref(), Some("proj-body"));
        assert_eq!(r.gateway.as_deref(), Some("policy-gateway"));
        assert!(r.duration_ms.is_some());
    }

    #[test]
    fn the_candidate_is_judged_beside_the_active_policy() {
        let v2: Value =
            serde_json::from_str(include_str!("../../policies/examples/default-v2.json")).unwrap();
        let cfg = config(json!({"policy": policy(), "candidate_policy": v2}));
        let sim = run(
            &cfg,
            json!({"request": chat("Pay DE89 3704 0044 0532 0130 00 today")}),
        );
        let c = sim.record.candidate.expect("a candidate decision");
        assert_eq!(c.policy_id, "default@2");
    }

    #[test]
    fn streamed_responses_are_inspected_chunk_by_chunk() {
        let event = |text: &str| {
            format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "delta": {"content": text}}]})
            )
        };
        let chunks = [
            event("The card is 4111 11"),
            event("11 1111 1111, mail bil"),
            event("ling@example.com."),
            "data: [DONE]\n\n".to_string(),
        ];
        let cfg = config(json!({"policy": policy()}));
        let mut request = chat("card?");
        request["stream"] = json!(true);
        let sim = run(&cfg, json!({"request": request, "stream": chunks}));
        let got = String::from_utf8(sim.client_body.clone()).unwrap();
        assert!(!got.contains("4111") && !got.contains("billing@"), "{got}");
        assert!(got.contains("[EMAIL]"), "{got}");
        assert_eq!(sim.record.decision, "redact");
        assert!(sim.record.stream);
        let stream = sim.record.response.unwrap().stream.unwrap();
        assert_eq!(stream.events, 4);
    }

    #[test]
    fn uninspectable_responses_follow_the_configuration() {
        let line = json!({"request": chat("hi"), "response": "plain text",
                          "response_headers": {"content-type": "text/plain"}});
        let sim = run(&config(json!({"policy": policy()})), line.clone());
        assert_eq!(sim.client, "response: 502 refused");
        assert_eq!(sim.record.reason_code, "RESPONSE_NOT_JSON");
        let allow = config(json!({"policy": policy(), "on_uninspectable_response": "allow"}));
        let sim = run(&allow, line);
        assert_eq!(sim.client, "forwarded");
        assert_eq!(sim.client_body, b"plain text");
    }

    #[test]
    fn the_policy_alone_means_the_shipped_defaults() {
        let cfg = config_for_policy(include_bytes!("../../policies/default.json")).unwrap();
        let mut body = chat("hi");
        body["user"] = json!("body-user");
        let sim = run(&cfg, json!({"request": body}));
        assert_eq!(sim.record.policy_user.as_deref(), Some("body-user"));
        assert_eq!(sim.record.policy_user_verified, Some(false));
        assert_eq!(sim.record.request_id, "sim-1");
    }
}
