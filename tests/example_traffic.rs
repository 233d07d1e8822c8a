//! The shipped example traffic through the shipped default policy: each exchange gets the
//! decision the policy promises, and the forwarded bodies carry the promised changes, as
//! `policies/examples/expected.json` says (the table the wasmtime harness checks too).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use policy_gateway::audit::IdGenerator;
use policy_gateway::exchange::replay::{config_for_policy, parse_line, simulate, Simulated};
use serde_json::Value;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn run_all() -> Vec<Simulated> {
    run_file(include_str!("../policies/examples/traffic.jsonl"))
}

fn run_file(lines: &str) -> Vec<Simulated> {
    let config = config_for_policy(include_bytes!("../policies/default.json")).unwrap();
    let mut ids = IdGenerator::new(1);
    lines
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| simulate(&config, &parse_line(l), i + 1, &mut ids, 1_795_715_649_000))
        .collect()
}

fn by_id<'a>(sims: &'a [Simulated], id: &str) -> &'a Simulated {
    sims.iter().find(|s| s.record.request_id == id).unwrap()
}

fn forwarded_json(s: &Simulated) -> Value {
    serde_json::from_slice(s.forwarded.as_ref().unwrap()).unwrap()
}

/// The expectations every runner shares (policies/examples/expected.json).
fn expected() -> Vec<Value> {
    let all: Value =
        serde_json::from_str(include_str!("../policies/examples/expected.json")).unwrap();
    all["traffic.jsonl"].as_array().unwrap().clone()
}

/// Whether `actual` holds every field of `want`, recursively.
fn contains(actual: &Value, want: &Value) -> bool {
    match (actual, want) {
        (Value::Object(a), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| contains(av, v))),
        _ => actual == want,
    }
}

#[test]
fn each_example_gets_its_decision() {
    let sims = run_all();
    let expected = expected();
    assert_eq!(sims.len(), expected.len());
    for e in &expected {
        let id = e["request_id"].as_str().unwrap();
        let s = by_id(&sims, id);
        assert_eq!(
            (
                s.record.decision,
                s.record.reason_code.as_str(),
                s.client.as_str()
            ),
            (
                e["decision"].as_str().unwrap(),
                e["reason_code"].as_str().unwrap(),
                e["client"].as_str().unwrap()
            ),
            "{id}: {:?}",
            s.record
        );
    }
}

#[test]
fn forwarded_bodies_carry_the_changes() {
    let sims = run_all();
    for e in &expected() {
        let s = by_id(&sims, e["request_id"].as_str().unwrap());
        if let Some(fields) = e.get("forwarded").and_then(Value::as_object) {
            let body = forwarded_json(s);
            for (pointer, want) in fields {
                assert_eq!(body.pointer(pointer), Some(want), "{}", e["request_id"]);
            }
        }
        if let Some(want) = e.get("record") {
            let record: Value = serde_json::from_str(&s.record.to_json()).unwrap();
            assert!(contains(&record, want), "{record} lacks {want}");
        }
        // Requests answered locally forward nothing.
        if e["client"].as_str().unwrap().ends_with("refused") {
            assert!(s.forwarded.is_none(), "{}", e["request_id"]);
        }
    }
}

/// Parser differentials and relabelled roles (issue 11, items 9-12): the shipped default
/// policy on `bypass-attempts.jsonl`. Each line is a way around the policy that worked before.
#[test]
fn bypass_attempts_are_caught() {
    let sims = run_file(include_str!("../policies/examples/bypass-attempts.jsonl"));
    let expected = [
        ("byp-01", "refuse", "BODY_DUPLICATE_KEY", "400 refused"),
        ("byp-02", "refuse", "BODY_DUPLICATE_KEY", "400 refused"),
        ("byp-03", "refuse", "MODEL_NOT_APPROVED", "403 refused"),
        ("byp-04", "allow", "NO_RULE_MATCHED", "forwarded"),
        (
            "byp-05",
            "rewrite",
            "MAX_TOKENS_CAPPED",
            "forwarded changed",
        ),
        (
            "byp-06",
            "rewrite",
            "MAX_TOKENS_CAPPED",
            "forwarded changed",
        ),
        ("byp-07", "refuse", "MAX_TOKENS_INVALID", "400 refused"),
        ("byp-08", "refuse", "PROMPT_INJECTION", "400 refused"),
        ("byp-09", "refuse", "PROMPT_INJECTION", "400 refused"),
        ("byp-10", "refuse", "PROMPT_INJECTION", "400 refused"),
        (
            "byp-11",
            "escalate",
            "INDIRECT_PROMPT_INJECTION",
            "forwarded, flagged",
        ),
        ("byp-12", "refuse", "SECRET_DETECTED", "403 refused"),
        (
            "byp-13",
            "escalate",
            "CONFIDENTIAL_PROJECT",
            "forwarded, flagged",
        ),
    ];
    assert_eq!(sims.len(), expected.len());
    for (id, decision, reason, client) in expected {
        let s = by_id(&sims, id);
        assert_eq!(
            (
                s.record.decision,
                s.record.reason_code.as_str(),
                s.client.as_str()
            ),
            (decision, reason, client),
            "{id}: {:?}",
            s.record
        );
    }
    // The record names the model the path served and the one the body claimed.
    let r = &by_id(&sims, "byp-03").record;
    assert_eq!(r.model.as_deref(), Some("llama-3-70b-uncensored"));
    assert_eq!(r.body_model.as_deref(), Some("gpt-4o"));
    assert_eq!(
        by_id(&sims, "byp-12").record.model.as_deref(),
        Some("anthropic.claude-3-5-sonnet-20240620-v1:0")
    );
    // Bounds as a string or past u64 go upstream as the cap, a JSON integer.
    for id in ["byp-05", "byp-06"] {
        assert_eq!(forwarded_json(by_id(&sims, id))["max_tokens"], 4096, "{id}");
    }
}

/// The text a client SDK shows of a streamed answer, and the code of an error event.
fn stream_view(body: &[u8]) -> (String, Option<String>) {
    let text = String::from_utf8_lossy(body)
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let (mut shown, mut error) = (String::new(), None);
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(data.trim_start()) else {
            continue;
        };
        if let Some(code) = v
            .pointer("/error/code")
            .or_else(|| v.get("code"))
            .and_then(Value::as_str)
        {
            error = Some(code.to_string());
        }
        let piece = v
            .pointer("/choices/0/delta/content")
            .or_else(|| v.pointer("/delta/text"))
            .or_else(|| (v["type"] == "response.output_text.delta").then(|| &v["delta"]))
            .and_then(Value::as_str);
        shown.push_str(piece.unwrap_or_default());
    }
    (shown, error)
}

#[test]
fn streams_get_what_the_table_promises() {
    let sims = run_file(include_str!("../policies/examples/streams.jsonl"));
    let all: Value =
        serde_json::from_str(include_str!("../policies/examples/expected.json")).unwrap();
    let expected = all["streams.jsonl"].as_array().unwrap();
    assert_eq!(sims.len(), expected.len());
    for e in expected {
        let id = e["request_id"].as_str().unwrap();
        let s = by_id(&sims, id);
        let got = (
            s.record.decision,
            s.record.reason_code.as_str(),
            s.client.as_str(),
        );
        let want = (
            e["decision"].as_str().unwrap(),
            e["reason_code"].as_str().unwrap(),
            e["client"].as_str().unwrap(),
        );
        assert_eq!(got, want, "{id}");
        let (shown, error) = stream_view(&s.client_body);
        assert_eq!(shown, e["client_text"].as_str().unwrap(), "{id}");
        assert_eq!(error.as_deref(), e["error_code"].as_str(), "{id}");
        let raw = String::from_utf8_lossy(&s.client_body);
        for absent in e["absent"].as_array().into_iter().flatten() {
            assert!(!raw.contains(absent.as_str().unwrap()), "{id}: {absent}");
        }
        let record: Value = serde_json::from_str(&s.record.to_json()).unwrap();
        assert!(
            contains(&record, &e["record"]),
            "{record} lacks {}",
            e["record"]
        );
    }
}
