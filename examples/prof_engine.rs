//! Profiling aid for the engine: `prof_engine [case] [iters]` runs `engine::evaluate` with
//! `policies/default.json` over the inputs of the engine benchmark (one case when named),
//! exactly `iters` times (default 1) with no output, for callgrind/cachegrind instruction
//! counts: run with 1 and with N iterations and subtract, so setup is not counted.
#![allow(clippy::unwrap_used)]
use std::hint::black_box;

use policy_gateway::engine::{self, RequestInfo};
use policy_gateway::llm::Phase;
use policy_gateway::policy::Policy;

// Shared with the benchmarks, which use more of it (the audit record) than this aid does.
#[allow(dead_code)]
#[path = "../benches/support/inputs.rs"]
mod inputs;

fn main() {
    let only: Option<String> = std::env::args().nth(1);
    let iters: u32 = std::env::args().nth(2).map_or(1, |s| s.parse().unwrap());
    let policy = Policy::from_json(include_bytes!("../policies/default.json")).unwrap();
    let info = RequestInfo {
        request_id: "prof",
        path: Some("/v1/chat/completions"),
        user: Some("alice"),
        project: Some("p"),
    };
    let rollout = engine::rollout(&policy, &info);
    for (name, body) in inputs::cases() {
        if only.as_deref().is_some_and(|o| name != o) {
            continue;
        }
        for _ in 0..iters {
            black_box(engine::evaluate(
                &policy,
                &info,
                &rollout,
                Phase::Request,
                black_box(&body),
            ));
        }
    }
}
