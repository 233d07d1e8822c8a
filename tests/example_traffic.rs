//! The shipped example traffic through the shipped default policy: each exchange gets the
//! decision the policy promises, and the forwarded bodies carry the promised changes, as
//! `policies/examples/expected.json` says (the table the wasmtime harness checks too).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use policy_gateway::audit::IdGenerator;
use policy_gateway::cli::simulate::{parse_line, simulate, Simulated};
use policy_gateway::policy::Policy;
use serde_json::Value;

fn run_all() -> Vec<Simulated> {
    let policy = Policy::from_json(include_bytes!("../policies/default.json")).unwrap();
    let mut ids = IdGenerator::new(1);
    include_str!("../policies/examples/traffic.jsonl")
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| simulate(&policy, &parse_line(l), i + 1, &mut ids, 1_795_715_649_000))
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
