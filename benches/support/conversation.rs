//! A 20-turn agent conversation as a client sends it: every request carries the whole
//! history (a 2 KiB system prompt, then per turn a user message, the assistant's previous
//! answer, and every fourth turn a 4 KiB tool result), so request k resends turns 1..k-1 and
//! adds one. Shared by `examples/prof_conversation.rs` (native, cachegrind) and `bench/v8`.

use serde_json::{json, Value};

const WORDS: &[&str] = &[
    "the",
    "deployment",
    "pipeline",
    "failed",
    "after",
    "the",
    "migration",
    "of",
    "billing",
    "service",
    "to",
    "new",
    "cluster",
    "please",
    "check",
    "logs",
    "and",
    "summarise",
    "root",
    "cause",
    "for",
    "incident",
    "review",
    "timeout",
    "database",
    "connection",
    "pool",
    "retry",
    "config",
    "owner",
    "team",
    "platform",
    "release",
    "rollback",
    "metrics",
    "latency",
    "p99",
];

/// `n` bytes of prose from a fixed sequence (`seed` picks where it starts).
fn prose(seed: usize, n: usize) -> String {
    let mut s = String::new();
    let mut i = seed;
    while s.len() < n {
        i = i.wrapping_mul(31).wrapping_add(7) % 1_000_003;
        s.push_str(WORDS.get(i % WORDS.len()).copied().unwrap_or("the"));
        s.push(if matches!(i % 13, 0) { '.' } else { ' ' });
    }
    s.truncate(n);
    s
}

/// The request bodies of the conversation, turn 1 to `turns`, each the whole history.
pub fn requests(turns: usize) -> Vec<Vec<u8>> {
    let mut messages: Vec<Value> = vec![json!({"role": "system", "content": format!(
        "You are the on-call assistant of ACME's platform team. {}", prose(1, 2000))})];
    let mut out = Vec::new();
    for k in 1..=turns {
        if k > 1 {
            messages.push(json!({"role": "assistant", "content": prose(k * 17, 1200)}));
        }
        if matches!(k % 4, 0) {
            messages.push(json!({"role": "tool", "tool_call_id": format!("call_{k}"),
                "content": prose(k * 29, 4096)}));
        }
        let mut user = prose(k * 7, 400);
        if k % 5 == 3 {
            user.push_str(" Mail the summary to jane.doe@example.com.");
        }
        messages.push(json!({"role": "user", "content": user}));
        out.push(
            serde_json::to_vec(&json!({"model": "gpt-4o", "messages": messages}))
                .unwrap_or_default(),
        );
    }
    out
}
