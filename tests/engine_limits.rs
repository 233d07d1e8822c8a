//! What one body may cost the engine (issue 11 item 6): memory proportional to the body, and
//! caps on texts, path steps and nesting whose excess is refused (`on_error`), never inspected
//! in part. Memory is measured with a counting allocator (deterministic, no timings; native
//! only, the cap tests also run under a wasm runtime).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
// The counting allocator: GlobalAlloc is an unsafe trait.
#![cfg_attr(not(target_arch = "wasm32"), allow(unsafe_code))]

use policy_gateway::engine::{self, reason, PhaseOutcome, Refusal, RequestInfo, Verdict};
use policy_gateway::llm::{Phase, MAX_SEGMENTS};
use policy_gateway::policy::{Action, Policy};
use serde_json::{json, Value};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn default_policy() -> Policy {
    Policy::from_json(include_bytes!("../policies/default.json")).unwrap()
}

fn evaluate(policy: &Policy, path: &str, body: &[u8]) -> PhaseOutcome {
    let info = RequestInfo {
        request_id: "r",
        path: Some(path),
        ..Default::default()
    };
    let rollout = engine::rollout(policy, &info);
    engine::evaluate(policy, &info, &rollout, Phase::Request, body)
}

/// Arrays nested `depth` deep around `n` strings `"a"` (a body of unknown shape).
fn nested_strings(depth: usize, n: usize) -> Vec<u8> {
    let mut body = "[".repeat(depth).into_bytes();
    body.extend_from_slice(vec!["\"a\""; n].join(",").as_bytes());
    body.extend_from_slice("]".repeat(depth).as_bytes());
    body
}

#[test]
fn a_body_with_more_texts_than_the_cap_is_refused_not_inspected_in_part() {
    let policy = default_policy();
    // At the cap: inspected whole.
    let at_cap = nested_strings(3, MAX_SEGMENTS);
    let out = evaluate(&policy, "/v1/other", &at_cap);
    assert!(out.inspected);
    assert_eq!(out.segments as usize, MAX_SEGMENTS);
    assert!(out.error.is_none());

    // One more text: on_error decides (refuse, 400), the record says why.
    let over = nested_strings(3, MAX_SEGMENTS + 1);
    let out = evaluate(&policy, "/v1/other", &over);
    assert!(!out.inspected);
    assert_eq!(out.reason_code, reason::BODY_TOO_COMPLEX);
    assert_eq!(out.decision, Action::Refuse);
    assert!(matches!(
        out.verdict,
        Verdict::Respond(Refusal { status: 400, .. })
    ));
    assert!(out.error.unwrap().contains("texts"));

    // The same in a known format: a chat request with too many messages.
    let messages: Vec<Value> = (0..=MAX_SEGMENTS)
        .map(|_| json!({"role": "user", "content": "hi"}))
        .collect();
    let body = serde_json::to_vec(&json!({"model": "gpt-4o", "messages": messages})).unwrap();
    let out = evaluate(&policy, "/v1/chat/completions", &body);
    assert_eq!(out.reason_code, reason::BODY_TOO_COMPLEX);
    assert_eq!(out.decision, Action::Refuse);

    // on_error: allow forwards it untouched, recorded as not inspected.
    let mut doc: Value =
        serde_json::from_slice(include_bytes!("../policies/default.json")).unwrap();
    doc["on_error"] = json!("allow");
    let lenient = Policy::from_value(doc).unwrap();
    let out = evaluate(&lenient, "/v1/other", &over);
    assert!(!out.inspected);
    assert_eq!(out.reason_code, reason::BODY_TOO_COMPLEX);
    assert_eq!(out.decision, Action::Allow);
    assert_eq!(
        out.verdict,
        Verdict::Forward {
            body: None,
            flagged: false
        }
    );
}

#[cfg(not(target_arch = "wasm32"))]
mod memory {
    use super::*;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// The system allocator, counting this thread's live and peak bytes (tests run in
    /// parallel threads; each measures its own).
    struct Counting;

    thread_local! {
        static LIVE: Cell<usize> = const { Cell::new(0) };
        static PEAK: Cell<usize> = const { Cell::new(0) };
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                let _ = LIVE.try_with(|live| {
                    let now = live.get() + layout.size();
                    live.set(now);
                    let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
                });
            }
            p
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) };
            let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(layout.size())));
        }
    }

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;

    /// Peak heap bytes this thread allocates while evaluating `body`, above what it held.
    fn peak_of(policy: &Policy, path: &str, body: &[u8]) -> (usize, PhaseOutcome) {
        let base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        let out = evaluate(policy, path, body);
        (PEAK.with(Cell::get) - base, out)
    }

    /// Most heap bytes per body byte one evaluation may take: the parsed body (serde_json
    /// values, ~16 per byte of `"a",`) plus the texts and their shared paths (~14 natively).
    /// Copying each text's path cost ~740 per byte at depth 120.
    const MAX_HEAP_PER_BODY_BYTE: usize = 48;

    #[test]
    fn nested_arrays_of_short_strings_cost_memory_proportional_to_the_body() {
        let policy = default_policy();
        for (depth, n) in [(120, 30_000), (120, 60_000), (10, 60_000)] {
            let body = nested_strings(depth, n);
            let (peak, out) = peak_of(&policy, "/v1/other", &body);
            assert!(out.inspected);
            assert_eq!(out.segments as usize, n);
            let per_byte = peak / body.len();
            eprintln!("depth {depth}, {n} strings: {peak} B peak, {per_byte} B per body byte");
            assert!(
                per_byte <= MAX_HEAP_PER_BODY_BYTE,
                "depth {depth}, {n} strings: {peak} B for a {} B body ({per_byte} per byte)",
                body.len()
            );
        }
    }

    #[test]
    fn chat_bodies_cost_memory_proportional_to_the_body() {
        let policy = default_policy();
        for parts in [1, 50] {
            let messages: Vec<Value> = (0..2000)
                .map(|i| {
                    let content: Vec<Value> = (0..parts)
                        .map(|j| json!({"type": "text", "text": format!("m{i} p{j}")}))
                        .collect();
                    json!({"role": "user", "content": content})
                })
                .collect();
            let body =
                serde_json::to_vec(&json!({"model": "gpt-4o", "messages": messages})).unwrap();
            let (peak, out) = peak_of(&policy, "/v1/chat/completions", &body);
            assert_eq!(out.segments as usize, 2000 * parts);
            let per_byte = peak / body.len();
            eprintln!("chat, {parts} parts per message: {peak} B peak, {per_byte} B per body byte");
            assert!(per_byte <= MAX_HEAP_PER_BODY_BYTE, "{per_byte} per byte");
        }
    }

    #[test]
    fn a_stream_held_at_its_queue_bound_keeps_bytes_not_parsed_events() {
        use policy_gateway::engine::stream::{StreamEnd, StreamInspector, StreamLimits};
        use policy_gateway::llm::ApiFormat;
        // 4-byte deltas without a space: text waits, events queue up to max_queued_bytes.
        // A queued event kept its parsed JSON (~18 times its bytes) until released.
        let policy = default_policy();
        let limits = StreamLimits::default();
        let events: Vec<Vec<u8>> = (0..20_000)
            .map(|_| {
                let v = json!({"object": "chat.completion.chunk", "model": "gpt-4o",
                    "choices": [{"index": 0, "delta": {"content": "abcd"}, "finish_reason": null}]});
                format!("data: {v}\n\n").into_bytes()
            })
            .collect();
        let base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        let mut insp = StreamInspector::new(&policy, ApiFormat::OpenaiChat, true, limits);
        let mut out = 0;
        for e in &events {
            out += insp.push(&policy, e).len();
        }
        out += insp.finish(&policy, StreamEnd::UpstreamIncomplete).len();
        let peak = PEAK.with(Cell::get) - base;
        assert_eq!(
            out,
            events.iter().map(Vec::len).sum::<usize>(),
            "all out, unchanged"
        );
        let per_queued_byte = peak / limits.max_queued_bytes;
        eprintln!("stream: {peak} B peak, {per_queued_byte} per byte of the queue bound");
        assert!(per_queued_byte <= 6, "{peak} B at the peak");
    }
}
