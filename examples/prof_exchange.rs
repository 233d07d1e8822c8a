//! Profiling aid for the fixed cost per request (issue 16 item 3): `prof_exchange <policy>
//! <requests>` runs `requests` whole exchanges of the benchmarks' 1 KiB chat request and its
//! 376-byte answer through the exchange (`crate::exchange`, what the filter's callbacks call),
//! the record built and chained as a forwarding worker does, with an in-memory host.
//! `<policy>`: `empty` (as `bench/run.py`'s `filter-min`) or `default` (`policies/default.json`).
//! For valgrind: run with N and 2N requests and take the difference over N, so set-up cancels
//! out. Host calls themselves (Envoy's side of each) are not in the count.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
#[path = "common/mem_host.rs"]
mod mem_host;

use std::hint::black_box;
use std::rc::Rc;

use mem_host::{pairs, MemHost};
use policy_gateway::audit::IdGenerator;
use policy_gateway::config::PluginConfig;
use policy_gateway::exchange::Exchange;
use policy_gateway::sinks::config::AuditConfig;
use policy_gateway::sinks::ledger::Store;
use policy_gateway::sinks::outbox::{self, Outbox};
use policy_gateway::sinks::Call;

const BENIGN: &str = "The quick brown fox jumps over the lazy dog while the team reviews the \
                      quarterly roadmap and drafts a friendly summary of the meeting for \
                      everyone who missed it. ";

const ANSWER: &str = r#"{"id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-2024-08-06", "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Here is a short, friendly answer about the weather and a few ideas for a walk in the park."}}], "usage": {"prompt_tokens": 250, "completion_tokens": 20, "total_tokens": 270}}"#;

/// `bench/run.py`'s `chat_body(1024)`: a benign chat body of exactly 1 KiB.
fn chat_body() -> Vec<u8> {
    let render = |text: &str| {
        serde_json::to_vec(&serde_json::json!({
            "model": "gpt-4o", "max_tokens": 256, "stream": false,
            "messages": [{"role": "system", "content": "You are a helpful assistant."},
                         {"role": "user", "content": text}]}))
        .unwrap()
    };
    let overhead = render("").len();
    let text: String = BENIGN.repeat(1024 / BENIGN.len() + 2);
    render(&text[..1024 - overhead])
}

struct NoStore;

impl Store for NoStore {
    fn get(&self, _key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        (None, None)
    }
    fn set(&self, _key: &str, value: &[u8], _cas: Option<u32>) -> bool {
        black_box(value);
        true
    }
}

impl outbox::Host for NoStore {
    fn dispatch(&self, _call: &Call) -> Result<u32, String> {
        Ok(1)
    }
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "empty".into());
    let n: u64 = std::env::args().nth(2).map_or(1000, |s| s.parse().unwrap());
    let policy: serde_json::Value = if which == "default" {
        serde_json::from_str(&std::fs::read_to_string("policies/default.json").unwrap()).unwrap()
    } else {
        serde_json::json!({"id": "empty", "version": "1", "rollout": {"mode": "enforce"}, "rules": []})
    };
    let plugin = serde_json::json!({
        "instance_id": "gateway-local", "max_body_bytes": 1048576, "on_uninspectable": "refuse",
        "hold_headers": true,
        "attribution": {"user": [{"source": "header", "name": "x-user-id", "trusted": true}],
                        "project": [{"source": "header", "name": "x-project-id", "trusted": true}]},
        "policy": policy,
    });
    let config = Rc::new(PluginConfig::from_json(&serde_json::to_vec(&plugin).unwrap()).unwrap());
    let audit: AuditConfig = serde_json::from_value(serde_json::json!({
        "splunk_hec": {"cluster": "hec", "authority": "splunk:8088", "token": "t"}
    }))
    .unwrap();
    let mut out = Outbox::new(&audit, "gateway-local", 2, Some(2), 0);
    out.forward_to_shipper();
    let body = chat_body();
    let mut host = MemHost {
        request: pairs(&[
            (":authority", "127.0.0.1:10000"),
            (":path", "/v1/chat/completions"),
            (":method", "POST"),
            (":scheme", "http"),
            ("content-length", "1024"),
            ("content-type", "application/json"),
            ("x-user-id", "bench"),
            ("x-forwarded-proto", "http"),
            ("x-request-id", "4b6f3c1e-6f4e-4a8e-9d57-1b2f3c4d5e6f"),
        ]),
        response: pairs(&[
            (":status", "200"),
            ("content-length", "376"),
            ("content-type", "application/json"),
            ("date", "Wed, 02 Dec 2026 00:00:00 GMT"),
            ("server", "envoy"),
        ]),
        request_body: body,
        response_body: ANSWER.as_bytes().to_vec(),
    };
    let mut ids = IdGenerator::new(7);
    for i in 0..n {
        let now = 1_700_000_000_000 + i;
        let mut ex = Exchange::new(Rc::clone(&config));
        ex.on_request_headers(&mut host, false, &mut ids, now);
        let len = host.request_body.len();
        ex.on_request_body(&mut host, len, false);
        ex.on_request_body(&mut host, len, true);
        ex.on_response_headers(&mut host, false);
        let len = host.response_body.len();
        ex.on_response_body(&mut host, len, false);
        ex.on_response_body(&mut host, len, true);
        let finished = ex.finish(&host, &mut ids, now);
        out.push_record(&NoStore, &finished.record, now);
        black_box(out.take_forwarded());
    }
}
