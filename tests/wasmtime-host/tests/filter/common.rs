//! What the tests share: the runtime (the module compiled once), plugin configurations
//! around the shipped policy, the shared expectations, and readers for what clients see.

use std::sync::OnceLock;

use serde_json::{json, Value};
use wasmtime_host::{abi, Exchange, Message, Outcome, Runtime, Vm};

/// The repository root.
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let path = wasmtime_host::module_path();
        let wasm = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run `make wasm` first)", path.display()));
        Runtime::load(&wasm).unwrap()
    })
}

/// The test-only module of `make wasm-fault` (`src/filter/fault.rs`): the shipped filter plus
/// request headers that make its VM trap or panic.
pub fn fault_runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let path = format!("{ROOT}/target/policy_gateway_fault.wasm");
        let wasm = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{path}: {e} (run `make wasm-fault` first)"));
        Runtime::load(&wasm).unwrap()
    })
}

pub fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{rel}")).unwrap()
}

pub fn default_policy() -> Value {
    serde_json::from_str(&read("policies/default.json")).unwrap()
}

/// A plugin configuration as `envoy/envoy.yaml` writes it (trusted identity headers, one
/// Splunk HEC sink), around the shipped default policy.
pub fn plugin_config(hold_headers: bool) -> Value {
    json!({
        "instance_id": "gateway-wasmtime",
        "max_body_bytes": 1_048_576,
        "on_uninspectable": "refuse",
        "hold_headers": hold_headers,
        "attribution": {
            "user": [{ "source": "header", "name": "x-user-id", "trusted": true }],
            "project": [{ "source": "header", "name": "x-project-id", "trusted": true }]
        },
        "audit": {
            "flush_interval_ms": 100,
            "splunk_hec": {
                "cluster": "splunk_hec",
                "authority": "hec.example.com:8088",
                "token": "00000000-0000-4000-8000-000000000001",
                "index": "ai_audit"
            }
        },
        "policy": default_policy()
    })
}

pub fn start(config: &Value) -> Vm {
    runtime().proxy().vm(config.to_string().as_bytes()).unwrap()
}

/// The expectations of `policies/examples/expected.json` for one example file.
pub fn expected(file: &str) -> Vec<Value> {
    let all: Value = serde_json::from_str(&read("policies/examples/expected.json")).unwrap();
    all[file].as_array().unwrap().clone()
}

/// One line of an example file (`traffic.jsonl`, `streams.jsonl`).
pub struct Line {
    pub request_id: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The request body as sent: a JSON value serialised, or a raw string as it is.
    pub body: Vec<u8>,
    pub response: Option<Vec<u8>>,
    /// SSE frames, each written by the upstream at once.
    pub stream: Option<Vec<String>>,
}

pub fn lines(file: &str) -> Vec<Line> {
    read(&format!("policies/examples/{file}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let raw = |v: &Value| match v {
                Value::String(s) => s.as_bytes().to_vec(),
                other => serde_json::to_vec(other).unwrap(),
            };
            let headers: Vec<(String, String)> = v["headers"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap().to_string()))
                .collect();
            Line {
                request_id: v["headers"]["x-request-id"].as_str().unwrap().to_string(),
                path: v["path"].as_str().unwrap().to_string(),
                headers,
                body: raw(&v["request"]),
                response: v.get("response").map(raw),
                stream: v.get("stream").map(|s| {
                    s.as_array()
                        .unwrap()
                        .iter()
                        .map(|f| f.as_str().unwrap().to_string())
                        .collect()
                }),
            }
        })
        .collect()
}

/// The upstream's answer when an example has none: a plain answer in the API's shape.
pub fn default_answer(path: &str) -> Vec<u8> {
    let text = "This is a mock answer.";
    let v = if path.ends_with("/v1/messages") {
        json!({"id": "msg_mock", "type": "message", "role": "assistant",
               "content": [{"type": "text", "text": text}],
               "usage": {"input_tokens": 10, "output_tokens": 5}})
    } else if path.ends_with("/v1/responses") {
        json!({"id": "resp_mock", "object": "response", "status": "completed",
               "output": [{"type": "message", "role": "assistant",
                           "content": [{"type": "output_text", "text": text}]}]})
    } else if path.ends_with("/v1/embeddings") {
        json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}]})
    } else {
        json!({"id": "chatcmpl-mock", "object": "chat.completion",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop"}]})
    };
    serde_json::to_vec(&v).unwrap()
}

/// The exchange of an example line, the upstream answering with its response (JSON) or
/// its stream (each SSE frame one chunk).
pub fn exchange_of(line: &Line) -> Exchange {
    let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
    headers.extend(line.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let request = Message::request("POST", &line.path, &headers, &line.body);
    let response = match &line.stream {
        Some(frames) => Message::response(200, &[("content-type", "text/event-stream")], b"")
            .chunks(frames.iter().map(|f| f.as_bytes().to_vec())),
        None => {
            let body = line
                .response
                .clone()
                .unwrap_or_else(|| default_answer(&line.path));
            Message::response(200, &[("content-type", "application/json")], &body)
        }
    };
    Exchange::new(request, response)
}

/// What the client got, in the words of the expectations table.
pub fn client_view(out: &Outcome, sent_body: &[u8]) -> String {
    let status = out.client.status().unwrap_or(0);
    let decision = out.client.header("x-policy-decision");
    if out.local_reply {
        return if decision == Some("escalate") {
            format!("{status} held for review")
        } else {
            format!("{status} refused")
        };
    }
    if status >= 400 && out.client.header("x-policy-reason").is_some() {
        return format!("response: {status} refused");
    }
    let changed = out.upstream.body != sent_body;
    let flagged = decision == Some("escalate");
    format!(
        "forwarded{}{}",
        if changed { " changed" } else { "" },
        if flagged { ", flagged" } else { "" }
    )
}

/// Whether `actual` holds every field of `want`, recursively.
pub fn contains(actual: &Value, want: &Value) -> bool {
    match (actual, want) {
        (Value::Object(a), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| contains(av, v))),
        _ => actual == want,
    }
}

/// The decision record of one request id among those shipped.
pub fn record_of(vm: &mut Vm, request_id: &str) -> Value {
    let records = vm.shipped_decisions().unwrap();
    let mut found: Vec<Value> = records
        .into_iter()
        .filter(|r| r["request_id"] == request_id)
        .collect();
    assert_eq!(found.len(), 1, "records of {request_id}: {found:?}");
    found.pop().unwrap()
}

/// Nothing the harness would hide: no trap, no stall, no import it does not implement, no
/// panic logged, no header written after it went out.
pub fn assert_clean(vm: &Vm, out: &Outcome, what: &str) {
    assert_eq!(out.trap, None, "{what}: trapped");
    assert_eq!(out.stalled, None, "{what}: stalled");
    assert!(
        out.late_writes.is_empty(),
        "{what}: late header writes {:?}",
        out.late_writes
    );
    let s = vm.state();
    assert!(
        s.unsupported.is_empty(),
        "{what}: unsupported host calls {:?}",
        s.unsupported
    );
    let panics: Vec<_> = s
        .logs
        .iter()
        .filter(|l| l.message.contains("panic"))
        .collect();
    assert!(panics.is_empty(), "{what}: {panics:?}");
}

/// Events of an SSE body by the WHATWG event-stream rules: (event name, data).
pub fn sse_events(raw: &[u8]) -> Vec<(Option<String>, String)> {
    let text = String::from_utf8(raw.to_vec()).expect("the client got UTF-8");
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let (mut events, mut name, mut data) = (Vec::new(), None, Vec::<String>::new());
    for line in text.split('\n') {
        if line.is_empty() {
            if !data.is_empty() {
                events.push((name.take(), data.join("\n")));
            }
            name = None;
            data.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => data.push(value.to_string()),
            "event" => name = Some(value.to_string()),
            _ => {}
        }
    }
    events
}

/// The text a client SDK shows of a stream: the concatenated deltas of the API.
pub fn shown_text(path: &str, raw: &[u8]) -> String {
    let mut out = String::new();
    for (_, data) in sse_events(raw) {
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(&data).unwrap();
        if path.ends_with("/v1/messages") {
            if v["type"] == "content_block_delta" {
                out += v["delta"]["text"].as_str().unwrap_or("");
            }
        } else if path.ends_with("/v1/responses") {
            if v["type"] == "response.output_text.delta" {
                out += v["delta"].as_str().unwrap_or("");
            }
        } else {
            for c in v["choices"].as_array().into_iter().flatten() {
                out += c["delta"]["content"].as_str().unwrap_or("");
            }
        }
    }
    out
}

/// A header pair with raw bytes.
pub fn raw(name: &str, value: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (name.as_bytes().to_vec(), value.to_vec())
}

pub fn text_pairs(p: &[(&str, &str)]) -> abi::Pairs {
    abi::pairs(p)
}
