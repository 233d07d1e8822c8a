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
