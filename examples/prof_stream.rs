//! Profiling aid for streamed responses (issue 16 item 5): `prof_stream [case] [iters]` runs
//! recorded-shape streams (OpenAI chat as `make bench` serves it, Anthropic messages, the
//! Responses API, legacy completions, 4-byte chat deltas) through a `StreamInspector` under the
//! default policy, one event per network chunk, and prints µs per event; with `iters` it runs
//! exactly that many streams silently (for callgrind: instructions per event are the
//! difference between two counts over the difference in events).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
use std::hint::black_box;
use std::time::Instant;

use policy_gateway::engine::stream::{StreamEnd, StreamInspector, StreamLimits};
use policy_gateway::llm::ApiFormat;
use policy_gateway::policy::Policy;
use serde_json::json;

const PROSE: &str = "The quick brown fox jumps over the lazy dog while the team reviews the \
    quarterly roadmap and drafts a friendly summary of the meeting for everyone who missed it. ";

/// 100 words of benign prose, each with its trailing space.
fn words() -> Vec<String> {
    PROSE
        .repeat(10)
        .split(' ')
        .filter(|w| !w.is_empty())
        .take(100)
        .map(|w| format!("{w} "))
        .collect()
}

fn event(v: &serde_json::Value) -> Vec<u8> {
    format!("data: {v}\n\n").into_bytes()
}

fn typed(kind: &str, v: &serde_json::Value) -> Vec<u8> {
    format!("event: {kind}\ndata: {v}\n\n").into_bytes()
}

/// The stream `bench/run.py` serves: role chunk, 100 word deltas, finish, usage, `[DONE]`.
fn chat() -> Vec<Vec<u8>> {
    let chunk = |choices: serde_json::Value| {
        json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
               "model": "gpt-4o-2024-08-06", "choices": choices})
    };
    let mut out = vec![event(&chunk(json!([{"index": 0,
        "delta": {"role": "assistant", "content": ""}, "finish_reason": null}])))];
    for w in words() {
        out.push(event(&chunk(
            json!([{"index": 0, "delta": {"content": w}, "finish_reason": null}]),
        )));
    }
    out.push(event(&chunk(
        json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
    )));
    let mut usage = chunk(json!([]));
    usage["usage"] = json!({"prompt_tokens": 250, "completion_tokens": 100, "total_tokens": 350});
    out.push(event(&usage));
    out.push(b"data: [DONE]\n\n".to_vec());
    out
}

/// Anthropic messages: start, a text block of 100 word deltas, stop, message delta and stop.
fn anthropic() -> Vec<Vec<u8>> {
    let mut out = vec![
        typed(
            "message_start",
            &json!({"type": "message_start", "message": {"id": "msg_1",
            "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5",
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 250, "output_tokens": 1}}}),
        ),
        typed(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for w in words() {
        out.push(typed(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": w}}),
        ));
    }
    out.push(typed(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    out.push(typed(
        "message_delta",
        &json!({"type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": null},
        "usage": {"output_tokens": 100}}),
    ));
    out.push(typed("message_stop", &json!({"type": "message_stop"})));
    out
}

/// The Responses API: created, 100 text deltas, the `.done` events repeating the text, completed.
fn responses() -> Vec<Vec<u8>> {
    let text: String = words().concat();
    let mut seq = 0u64;
    let mut next = || {
        seq += 1;
        seq
    };
    let mut out = vec![typed(
        "response.created",
        &json!({"type": "response.created",
        "sequence_number": next(), "response": {"id": "resp_1", "object": "response",
        "status": "in_progress", "model": "gpt-4o-2024-08-06", "output": []}}),
    )];
    for w in words() {
        out.push(typed(
            "response.output_text.delta",
            &json!({"type": "response.output_text.delta", "sequence_number": next(),
                "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": w}),
        ));
    }
    out.push(typed(
        "response.output_text.done",
        &json!({"type": "response.output_text.done",
        "sequence_number": next(), "item_id": "msg_1", "output_index": 0, "content_index": 0,
        "text": text}),
    ));
    let item = json!({"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}]});
    out.push(typed(
        "response.output_item.done",
        &json!({"type": "response.output_item.done",
        "sequence_number": next(), "output_index": 0, "item": item}),
    ));
    out.push(typed(
        "response.completed",
        &json!({"type": "response.completed",
        "sequence_number": next(), "response": {"id": "resp_1", "object": "response",
        "status": "completed", "model": "gpt-4o-2024-08-06", "output": [item],
        "usage": {"input_tokens": 250, "output_tokens": 100, "total_tokens": 350}}}),
    ));
    out
}

/// Legacy completions: 100 `choices[].text` deltas, finish, `[DONE]`.
fn completions() -> Vec<Vec<u8>> {
    let chunk = |choices: serde_json::Value| {
        json!({"id": "cmpl-1", "object": "text_completion", "created": 1700000000,
               "model": "gpt-3.5-turbo-instruct", "choices": choices})
    };
    let mut out: Vec<Vec<u8>> = words()
        .into_iter()
        .map(|w| {
            event(&chunk(
                json!([{"index": 0, "text": w, "logprobs": null, "finish_reason": null}]),
            ))
        })
        .collect();
    out.push(event(&chunk(
        json!([{"index": 0, "text": "", "logprobs": null, "finish_reason": "stop"}]),
    )));
    out.push(b"data: [DONE]\n\n".to_vec());
    out
}

/// 1,000 chat deltas of 4 bytes without a space (one growing word), as the engine bench's.
fn tiny() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..1000)
        .map(|_| {
            event(
                &json!({"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o",
                "choices": [{"index": 0, "delta": {"content": "abcd"}, "finish_reason": null}]}),
            )
        })
        .collect();
    out.push(event(
        &json!({"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    ));
    out.push(b"data: [DONE]\n\n".to_vec());
    out
}

fn run(policy: &Policy, format: ApiFormat, chunks: &[Vec<u8>]) -> usize {
    let mut insp = StreamInspector::new(policy, format, true, StreamLimits::default());
    let mut out = 0;
    for c in chunks {
        out += insp.push(policy, black_box(c)).len();
    }
    out + insp.finish(policy, StreamEnd::UpstreamIncomplete).len()
}

fn main() {
    let only: Option<String> = std::env::args().nth(1);
    let iters: Option<u32> = std::env::args().nth(2).map(|s| s.parse().unwrap());
    let policy = Policy::from_json(include_bytes!("../policies/default.json")).unwrap();
    let cases = [
        ("chat", ApiFormat::OpenaiChat, chat()),
        ("anthropic", ApiFormat::AnthropicMessages, anthropic()),
        ("responses", ApiFormat::OpenaiResponses, responses()),
        ("completions", ApiFormat::OpenaiCompletions, completions()),
        ("tiny", ApiFormat::OpenaiChat, tiny()),
    ];
    for (name, format, chunks) in &cases {
        if only.as_deref().is_some_and(|o| o != "all" && o != *name) {
            continue;
        }
        // Every byte goes out: nothing in these streams is redacted or refused.
        let total: usize = chunks.iter().map(Vec::len).sum();
        assert_eq!(run(&policy, *format, chunks), total, "{name}");
        if let Some(n) = iters {
            for _ in 0..n {
                black_box(run(&policy, *format, chunks));
            }
            continue;
        }
        let t = Instant::now();
        let mut streams = 0u32;
        while t.elapsed().as_millis() < 300 {
            black_box(run(&policy, *format, chunks));
            streams += 1;
        }
        let per_event = t.elapsed().as_secs_f64() / f64::from(streams) / chunks.len() as f64;
        println!(
            "{name:<12} {:>4} events {:>7} B  {:>7.2} µs/event",
            chunks.len(),
            total,
            per_event * 1e6
        );
    }
}
