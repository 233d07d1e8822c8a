//! The policy's prefilter (one automaton for the secret prefixes and the keyword terms)
//! decides exactly what the per-family scans decided: every shipped policy over the shipped
//! example traffic, the bypass attempts and the benchmark's bodies, evaluated once with the
//! prefilter and once with an unbuilt one (which falls back to each family's own automaton).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use policy_gateway::detect::prefilter::Prefilter;
use policy_gateway::engine::{self, RequestInfo};
use policy_gateway::llm::Phase;
use policy_gateway::policy::Policy;
use serde_json::Value;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[allow(dead_code)]
#[path = "../benches/support/inputs.rs"]
mod inputs;

const POLICIES: &[&[u8]] = &[
    include_bytes!("../policies/default.json"),
    include_bytes!("../policies/secrets.json"),
    include_bytes!("../policies/pii-strict.json"),
    include_bytes!("../policies/redact.json"),
    include_bytes!("../policies/pseudonymise.json"),
    include_bytes!("../policies/examples/default-v2.json"),
];

/// Request and response bodies of the example files (a body given as a string is sent as is).
fn bodies() -> Vec<(Phase, Vec<u8>)> {
    let mut out = Vec::new();
    for file in [
        include_str!("../policies/examples/traffic.jsonl"),
        include_str!("../policies/examples/bypass-attempts.jsonl"),
    ] {
        for line in file.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap();
            for (key, phase) in [("request", Phase::Request), ("response", Phase::Response)] {
                match v.get(key) {
                    Some(Value::String(s)) => out.push((phase, s.as_bytes().to_vec())),
                    Some(b) => out.push((phase, serde_json::to_vec(b).unwrap())),
                    None => {}
                }
            }
        }
    }
    let keywords = "Project Nightingale, project nightingal, PROJECT NIGHTINGALE and \
                    Codename Bluebird; token=abc12345xyz, sk-ant-api03-x, password: hunter2!";
    for (_, body) in inputs::cases() {
        out.push((Phase::Request, body));
    }
    out.push((Phase::Request, inputs::chat_body(keywords, 4096)));
    out.push((Phase::Response, inputs::chat_body(keywords, 2048)));
    out
}

#[test]
fn decisions_are_those_of_the_per_family_scans() {
    let info = RequestInfo {
        request_id: "prefilter",
        path: Some("/v1/chat/completions"),
        user: Some("alice"),
        project: Some("p"),
    };
    let bodies = bodies();
    let mut compared = 0;
    for doc in POLICIES {
        let with = Policy::from_json(doc).unwrap();
        assert!(with.prefilter.is_ready(), "{}", with.policy_id);
        let mut without = with.clone();
        without.prefilter = Prefilter::default();
        let rollout = engine::rollout(&with, &info);
        for (phase, body) in &bodies {
            let a = engine::evaluate(&with, &info, &rollout, *phase, body);
            let b = engine::evaluate(&without, &info, &rollout, *phase, body);
            assert_eq!(
                format!("{a:?}"),
                format!("{b:?}"),
                "{} on {}",
                with.policy_id,
                String::from_utf8_lossy(body)
            );
            compared += 1;
        }
    }
    assert!(compared > 100);
}

/// The default policy's prefilter heap (one per compiled policy, in each worker VM; 43,888 B
/// before the output links, 4 B more per match state): pinned so
/// a change to the automaton's layout shows here.
#[test]
fn default_policy_prefilter_heap() {
    let p = Policy::from_json(POLICIES[0]).unwrap();
    assert_eq!(p.prefilter.heap_bytes(), 44_316);
}
