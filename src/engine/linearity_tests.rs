//! The per-request path costs O(1) amortised per hit, segment and byte: doubling the input at
//! most about doubles the work [`super::work`] counts (deterministic, no timings). Each case
//! also checks the outcome, so the cheaper path still redacts and counts the same.

use serde_json::json;

use super::{evaluate, rollout, work, PhaseOutcome, RequestInfo, Verdict};
use crate::llm::Phase;
use crate::policy::Policy;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Most growth of the work counter allowed when the input doubles: linear, with room for the
/// log factor of merging a policy-bounded number of sorted runs.
const MAX_RATIO: f64 = 2.25;

fn default_policy() -> Policy {
    Policy::from_json(include_bytes!("../../policies/default.json")).unwrap()
}

/// Two redact rules that both find every e-mail (one also by keyword), records with content.
fn overlapping_policy() -> Policy {
    Policy::from_value(json!({
        "id": "overlap", "version": "1", "include_content": true,
        "rules": [
            {"id": "mask", "category": "pii.a", "reason_code": "A", "action": "redact",
             "match": {"detectors": ["email", "phone"]}, "redact": {"style": "mask"}},
            {"id": "placeholder", "category": "pii.b", "reason_code": "B", "action": "redact",
             "match": {"detectors": ["email"], "keywords": {"terms": ["a@b.co"], "whole_word": false}}}
        ]
    }))
    .unwrap()
}

fn chat(messages: Vec<serde_json::Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"model": "gpt-4o", "messages": messages})).unwrap()
}

fn evaluate_counted(policy: &Policy, body: &[u8]) -> (u64, PhaseOutcome) {
    let info = RequestInfo {
        request_id: "r",
        path: Some("/v1/chat/completions"),
        ..Default::default()
    };
    let rollout = rollout(policy, &info);
    work::take();
    let out = evaluate(policy, &info, &rollout, Phase::Request, body);
    (work::take(), out)
}

/// Evaluates `make(n)` for doubling `n` from `from`; every doubling at most [`MAX_RATIO`] times
/// the work. `check` looks at each outcome.
fn assert_linear(
    name: &str,
    policy: &Policy,
    from: usize,
    make: impl Fn(usize) -> Vec<u8>,
    check: impl Fn(usize, &PhaseOutcome),
) {
    let mut previous: Option<u64> = None;
    for n in [from, 2 * from, 4 * from] {
        let (units, out) = evaluate_counted(policy, &make(n));
        check(n, &out);
        eprintln!("{name}: n={n}: {units} units");
        if let Some(p) = previous {
            let ratio = units as f64 / p as f64;
            assert!(
                ratio <= MAX_RATIO,
                "{name}: work grew {ratio:.2}x from n={} to n={n} ({p} -> {units} units)",
                n / 2
            );
        }
        previous = Some(units);
    }
}

fn redacted_body(out: &PhaseOutcome) -> serde_json::Value {
    match &out.verdict {
        Verdict::Forward { body: Some(b), .. } => serde_json::from_slice(b).unwrap(),
        v => panic!("not forwarded changed: {v:?}"),
    }
}

#[test]
fn redactions_in_one_text_cost_linear_work() {
    // Issue 11 item 5: one `Vec::contains` per hit made a 1 MiB body of `a@b.co ` take 3.3 s.
    let policy = default_policy();
    assert_linear(
        "a@b.co in one message",
        &policy,
        1000,
        |n| {
            chat(vec![
                json!({"role": "user", "content": "a@b.co ".repeat(n)}),
            ])
        },
        |n, out| {
            assert_eq!(out.redactions.get("email"), Some(&(n as u32)));
            assert_eq!(out.detections.get("email"), Some(&(n as u32)));
            let body = redacted_body(out);
            let text = body["messages"][0]["content"].as_str().unwrap();
            assert_eq!(text, "[EMAIL] ".repeat(n));
        },
    );
}

#[test]
fn redactions_over_many_texts_with_content_cost_linear_work() {
    // Many segments with hits: records with content, overlapping rules, keyword hits.
    let policy = overlapping_policy();
    assert_linear(
        "a@b.co in many messages",
        &policy,
        500,
        |n| {
            chat(
                (0..n)
                    .map(|i| json!({"role": "user", "content": format!("to a@b.co and {i}")}))
                    .collect(),
            )
        },
        |n, out| {
            // Each address is one entity, however many rules and sources found it.
            assert_eq!(out.redactions.get("email"), Some(&(n as u32)));
            assert_eq!(out.detections.get("email"), Some(&(n as u32)));
            assert_eq!(out.detections.get("keyword"), Some(&(n as u32)));
            let content = out.content.as_ref().unwrap();
            assert_eq!(content.len(), n);
            assert!(content
                .iter()
                .all(|c| c.text.starts_with("to [EMAIL] and ")));
            let body = redacted_body(out);
            assert_eq!(
                body["messages"][n - 1]["content"],
                format!("to *@*.** and {}", n - 1)
            );
        },
    );
}

// ---- streamed responses (issue 11 item 7) ----

use super::stream::{StreamEnd, StreamInspector, StreamLimits};
use crate::llm::ApiFormat;

/// One OpenAI chat chunk event with `text` for choice `index`.
fn chat_event(index: usize, text: &str) -> Vec<u8> {
    let v = json!({"object": "chat.completion.chunk", "model": "gpt-4o",
        "choices": [{"index": index, "delta": {"content": text}, "finish_reason": null}]});
    format!("data: {v}\n\n").into_bytes()
}

/// Runs `events` (one network chunk each) through an enforced inspector: the work counted,
/// and the text each choice shows the client.
fn stream_counted(policy: &Policy, limits: StreamLimits, events: &[Vec<u8>]) -> (u64, Vec<String>) {
    let mut insp = StreamInspector::new(policy, ApiFormat::OpenaiChat, true, limits);
    let mut out = Vec::new();
    work::take();
    for e in events {
        out.extend(insp.push(policy, e));
    }
    out.extend(insp.finish(policy, StreamEnd::UpstreamIncomplete));
    let units = work::take();
    let mut parser = crate::llm::sse::Parser::new(usize::MAX);
    let mut parsed = Vec::new();
    parser.feed(&out, &mut parsed).unwrap();
    let mut texts: Vec<String> = Vec::new();
    for e in parsed {
        let v: serde_json::Value = serde_json::from_str(e.data.as_deref().unwrap()).unwrap();
        let choice = &v["choices"][0];
        let i = choice["index"].as_u64().unwrap() as usize;
        if texts.len() <= i {
            texts.resize(i + 1, String::new());
        }
        texts[i].push_str(choice["delta"]["content"].as_str().unwrap());
    }
    (units, texts)
}

/// Streams `make(n)` for doubling `n` from `from`; every doubling at most [`MAX_RATIO`] times
/// the work. `check` gets `n` and each choice's text.
fn assert_stream_linear(
    name: &str,
    limits: StreamLimits,
    from: usize,
    make: impl Fn(usize) -> Vec<Vec<u8>>,
    check: impl Fn(usize, &[String]),
) {
    let policy = default_policy();
    let mut previous: Option<u64> = None;
    for n in [from, 2 * from, 4 * from] {
        let (units, texts) = stream_counted(&policy, limits, &make(n));
        check(n, &texts);
        eprintln!("{name}: n={n}: {units} units");
        if let Some(p) = previous {
            let ratio = units as f64 / p as f64;
            assert!(
                ratio <= MAX_RATIO,
                "{name}: work grew {ratio:.2}x from n={} to n={n} ({p} -> {units} units)",
                n / 2
            );
        }
        previous = Some(units);
    }
}

#[test]
fn a_growing_word_in_tiny_events_costs_linear_work() {
    // 4-byte events without a space: the whole text is one word that may still become a
    // token, so it waits; it used to be rescanned whole on every event.
    assert_stream_linear(
        "4-byte events below the cap",
        StreamLimits::default(),
        256,
        |n| (0..n).map(|_| chat_event(0, "abcd")).collect(),
        |n, texts| assert_eq!(texts[0], "abcd".repeat(n)),
    );
}

#[test]
fn a_word_longer_than_the_cap_costs_no_more_with_a_larger_cap() {
    // Past the cap, text goes out as it stands (an overflow); the work per byte must not grow
    // with the cap (it used to be one rescan of the whole cap per 4-byte event).
    let policy = default_policy();
    let events: Vec<Vec<u8>> = (0..4096).map(|_| chat_event(0, "abcd")).collect();
    let mut previous: Option<u64> = None;
    for cap in [512, 1024, 2048] {
        let limits = StreamLimits {
            max_holdback_bytes: cap,
            ..StreamLimits::default()
        };
        let (units, texts) = stream_counted(&policy, limits, &events);
        assert_eq!(texts[0], "abcd".repeat(4096));
        eprintln!("cap {cap}: {units} units");
        if let Some(p) = previous {
            let ratio = units as f64 / p as f64;
            assert!(
                ratio <= 1.25,
                "cap {cap}: work grew {ratio:.2}x ({p} -> {units})"
            );
        }
        previous = Some(units);
    }
}

#[test]
fn interleaved_choices_cost_linear_work() {
    // Every event carries the next word of the next choice: each event used to rescan every
    // choice and walk every queued event.
    assert_stream_linear(
        "interleaved choices",
        StreamLimits::default(),
        64,
        |choices| {
            let mut events = Vec::new();
            for round in 0..4 {
                for i in 0..choices {
                    let word = if round == 2 { "a@b.co " } else { "word " };
                    events.push(chat_event(i, word));
                }
            }
            events
        },
        |choices, texts| {
            assert_eq!(texts.len(), choices);
            assert!(
                texts.iter().all(|t| t == "word word [EMAIL] word "),
                "{texts:?}"
            );
        },
    );
}

#[test]
fn text_queued_behind_a_waiting_choice_costs_linear_work() {
    // Choice 0 starts a word and stops; choice 1's events queue behind it (order is kept), and
    // its held text used to be rescanned whole on every event.
    assert_stream_linear(
        "queued behind a waiting choice",
        StreamLimits::default(),
        200,
        |n| {
            let mut events = vec![chat_event(0, "waiting")];
            events.extend(
                (0..n).map(|i| chat_event(1, if i % 10 == 5 { "a@b.co " } else { "word " })),
            );
            events
        },
        |n, texts| {
            assert_eq!(texts[0], "waiting");
            let want: String = (0..n)
                .map(|i| if i % 10 == 5 { "[EMAIL] " } else { "word " })
                .collect();
            assert_eq!(texts[1], want);
        },
    );
}
