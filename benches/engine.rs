//! Engine microbenchmark: the default policy over chat bodies, natively.
//!
//! `make bench-engine` (or `cargo bench --bench engine`). No dependency: each case runs in
//! timed batches and the median batch is reported, because the machine is shared and noisy.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::Instant;

use policy_gateway::engine::{self, RequestInfo};
use policy_gateway::llm::Phase;
use policy_gateway::policy::Policy;

#[path = "support/inputs.rs"]
mod inputs;

fn bench(name: &str, policy: &Policy, body: &[u8], smoke: bool) {
    let info = RequestInfo {
        request_id: "bench",
        path: Some("/v1/chat/completions"),
        user: Some("alice"),
        project: Some("p"),
    };
    let rollout = engine::rollout(policy, &info);
    let run = || {
        black_box(engine::evaluate(
            policy,
            &info,
            &rollout,
            Phase::Request,
            black_box(body),
        ))
    };
    if smoke {
        // `cargo test` runs benches once, unoptimised: check they work, time nothing.
        assert!(run().inspected, "{name}: body not inspected");
        return;
    }
    // Calibrate a batch to ~20 ms.
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed().as_millis() < 20 {
        run();
        n += 1;
    }
    let mut per_op: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                run();
            }
            t.elapsed().as_secs_f64() / f64::from(n)
        })
        .collect();
    per_op.sort_by(f64::total_cmp);
    let median = per_op[per_op.len() / 2];
    println!(
        "{name:<34} {:>8} B  {:>9.2} µs/op  {:>8.1} MB/s  (min {:.2} µs, max {:.2} µs)",
        body.len(),
        median * 1e6,
        body.len() as f64 / median / 1e6,
        per_op[0] * 1e6,
        per_op[per_op.len() - 1] * 1e6,
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not (smoke run).
    let smoke = !std::env::args().any(|a| a == "--bench");
    let policy = Policy::from_json(include_bytes!("../policies/default.json")).unwrap();
    if smoke {
        println!("engine benchmark: smoke run (each case once; `make bench-engine` measures)");
    } else {
        println!(
            "default policy ({}), native, median of 15 batches",
            policy.policy_id
        );
    }
    for (name, body) in inputs::cases() {
        bench(&name, &policy, &body, smoke);
    }
}
