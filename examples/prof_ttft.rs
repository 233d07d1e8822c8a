//! Profiling aid for streamed time to first text (issue 16): what the exchange does from the
//! request to the first text byte released to the client, phase by phase, with the default
//! policy and the plugin configuration `bench/run.py` uses for its streamed latency (no audit
//! sink, text cache off), through an in-memory host (Envoy's side of each host call is not in
//! the count).
//!
//! `prof_ttft <shape> <upto> <n>` runs `n` exchanges silently, each stopped after phase `upto`
//! (for valgrind: the instructions of a phase are the count up to it minus the count up to the
//! phase before, over `n`; run with `n` and `2n` so set-up cancels out). Phases, in order:
//! `none` (the exchange created), `request` (request headers and body: what the filter adds
//! before the upstream is asked), `headers` (the response headers), `first` (every chunk up to
//! and including the one whose output carries the first text byte), `all` (the rest of the
//! stream, its end and the record). Shapes:
//! - `mock`: what `bench/run.py --stream-requests` measures: the Python mock's chat stream
//!   (role chunk, the 32 words of its story, finish, `[DONE]`: 35 events), one event per chunk;
//! - `whole`: the stream `make bench` serves (role chunk, 100 word deltas, finish, usage,
//!   `[DONE]`, 20,784 bytes) in one chunk with the end of the stream, as Envoy's
//!   `direct_response` delivers it.
//!
//! Without arguments: µs per phase of each shape (wall clock, informative only).
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
use std::time::Instant;

use mem_host::{pairs, MemHost};
use policy_gateway::audit::IdGenerator;
use policy_gateway::config::PluginConfig;
use policy_gateway::exchange::Exchange;

/// `bench/run.py`'s `STORY`: the mock streams it word by word, each with a trailing space.
const STORY: &str = "Once upon a time a small team built a gateway that read every answer as it \
    streamed and kept secrets out of it without making anyone wait for the words to appear";

const PROSE: &str = "The quick brown fox jumps over the lazy dog while the team reviews the \
    quarterly roadmap and drafts a friendly summary of the meeting for everyone who missed it. ";

/// One chat chunk as Python's `json.dumps` writes it (the mock's framing).
fn chat_event(model: &str, choices: &str, usage: &str) -> String {
    format!(
        "data: {{\"id\": \"chatcmpl-mock\", \"object\": \"chat.completion.chunk\", \"created\": \
         1764000000, \"model\": \"{model}\", \"choices\": {choices}{usage}}}\n\n"
    )
}

fn stream(model: &str, words: &[String], usage: bool) -> Vec<String> {
    let mut out = vec![chat_event(
        model,
        "[{\"index\": 0, \"delta\": {\"role\": \"assistant\", \"content\": \"\"}, \
         \"finish_reason\": null}]",
        "",
    )];
    for w in words {
        out.push(chat_event(
            model,
            &format!(
                "[{{\"index\": 0, \"delta\": {{\"content\": \"{w}\"}}, \"finish_reason\": null}}]"
            ),
            "",
        ));
    }
    out.push(chat_event(
        model,
        "[{\"index\": 0, \"delta\": {}, \"finish_reason\": \"stop\"}]",
        "",
    ));
    if usage {
        out.push(chat_event(
            model,
            "[]",
            ", \"usage\": {\"prompt_tokens\": 250, \"completion_tokens\": 100, \
             \"total_tokens\": 350}",
        ));
    }
    out.push("data: [DONE]\n\n".into());
    out
}

/// The chunks of a shape, and the text whose first byte is the first text released.
fn shape(name: &str) -> (Vec<Vec<u8>>, &'static str) {
    match name {
        "mock" => {
            let words: Vec<String> = STORY.split(' ').map(|w| format!("{w} ")).collect();
            let events = stream("gpt-4o", &words, false);
            (events.into_iter().map(String::into_bytes).collect(), "Once")
        }
        "whole" => {
            let words: Vec<String> = PROSE
                .repeat(10)
                .split(' ')
                .filter(|w| !w.is_empty())
                .take(100)
                .map(|w| format!("{w} "))
                .collect();
            let all: String = stream("gpt-4o-2024-08-06", &words, true).concat();
            (vec![all.into_bytes()], "The")
        }
        other => panic!("unknown shape {other}"),
    }
}

const PHASES: [&str; 5] = ["none", "request", "headers", "first", "all"];

fn host() -> MemHost {
    let body = br#"{"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "Tell me a story."}]}"#;
    let chunks: Vec<String> = STORY.split(' ').map(|w| format!("{w} ")).collect();
    let mock_chunks = serde_json::to_string(&chunks).unwrap();
    let len = body.len().to_string();
    MemHost {
        request: pairs(&[
            (":authority", "bench"),
            (":path", "/v1/chat/completions"),
            (":method", "POST"),
            (":scheme", "http"),
            ("content-type", "application/json"),
            ("x-user-id", "bench"),
            ("x-mock-chunks", &mock_chunks),
            ("x-mock-delay-ms", "5"),
            ("content-length", &len),
            ("x-forwarded-proto", "http"),
            ("x-request-id", "4b6f3c1e-6f4e-4a8e-9d57-1b2f3c4d5e6f"),
        ]),
        response: pairs(&[
            (":status", "200"),
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            ("date", "Wed, 02 Dec 2026 00:00:00 GMT"),
            ("server", "envoy"),
        ]),
        request_body: body.to_vec(),
        response_body: Vec::new(),
    }
}

/// One exchange up to phase `upto` (an index into [`PHASES`]); `at` gets the time each phase
/// ended. Panics if the first text is not released where phase `first` ends.
fn exchange(
    config: &Rc<PluginConfig>,
    ids: &mut IdGenerator,
    chunks: &[Vec<u8>],
    first_text: &str,
    upto: usize,
    at: &mut [Option<Instant>; 5],
) {
    let mut host = host();
    let mut ex = Exchange::new(Rc::clone(config));
    at[0] = Some(Instant::now());
    if upto < 1 {
        drop(black_box(ex));
        return;
    }
    let now = 1_700_000_000_000;
    ex.on_request_headers(&mut host, false, ids, now);
    let len = host.request_body.len();
    ex.on_request_body(&mut host, len, true);
    at[1] = Some(Instant::now());
    if upto < 2 {
        drop(black_box(ex));
        return;
    }
    ex.on_response_headers(&mut host, false);
    at[2] = Some(Instant::now());
    if upto < 3 {
        drop(black_box(ex));
        return;
    }
    let mut rest = chunks.iter().enumerate();
    let mut released = false;
    for (i, c) in rest.by_ref() {
        host.response_body = c.clone();
        ex.on_response_body(&mut host, c.len(), i + 1 == chunks.len());
        if memchr::memmem::find(&host.response_body, first_text.as_bytes()).is_some() {
            released = true;
            break;
        }
    }
    assert!(released, "the first text never went out");
    at[3] = Some(Instant::now());
    if upto < 4 {
        drop(black_box(ex));
        return;
    }
    for (i, c) in rest {
        host.response_body = c.clone();
        ex.on_response_body(&mut host, c.len(), i + 1 == chunks.len());
        black_box(&host.response_body);
    }
    black_box(ex.finish(&host, ids, now));
    at[4] = Some(Instant::now());
}

fn main() {
    let policy: serde_json::Value =
        serde_json::from_slice(include_bytes!("../policies/default.json")).unwrap();
    let plugin = serde_json::json!({
        "instance_id": "gateway-local", "max_body_bytes": 1048576, "on_uninspectable": "refuse",
        "hold_headers": true,
        "attribution": {"user": [{"source": "header", "name": "x-user-id", "trusted": true}],
                        "project": [{"source": "header", "name": "x-project-id", "trusted": true}]},
        "text_cache": {"max_entries": 0},
        "policy": policy,
    });
    let config = Rc::new(PluginConfig::from_json(&serde_json::to_vec(&plugin).unwrap()).unwrap());
    let mut ids = IdGenerator::new(7);
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [name, upto, n] = args.as_slice() {
        let (chunks, first) = shape(name);
        let upto = PHASES.iter().position(|p| p == upto).expect("phase");
        for _ in 0..n.parse::<u32>().unwrap() {
            exchange(&config, &mut ids, &chunks, first, upto, &mut [None; 5]);
        }
        return;
    }
    for name in ["mock", "whole"] {
        let (chunks, first) = shape(name);
        let mut per: Vec<Vec<f64>> = vec![Vec::new(); 4];
        for _ in 0..2000 {
            let mut at = [None; 5];
            exchange(&config, &mut ids, &chunks, first, 4, &mut at);
            let at: Vec<Instant> = at.iter().map(|t| t.unwrap()).collect();
            for (k, p) in per.iter_mut().enumerate() {
                p.push((at[k + 1] - at[k]).as_secs_f64() * 1e6);
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let m: Vec<f64> = per.iter_mut().map(median).collect();
        println!(
            "{name:<6} request {:>7.2} µs  headers {:>6.2} µs  first {:>7.2} µs  rest {:>8.2} µs",
            m[0], m[1], m[2], m[3]
        );
    }
}
