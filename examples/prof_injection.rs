//! Profiling aid for the prompt-injection detector: `prof_injection [case] [iters]` runs
//! `prompt_injection::assess` over the inputs of the engine benchmark (one case when named),
//! printing MB/s, or exactly `iters` times with no output (for callgrind/perf).
#![allow(clippy::unwrap_used)]
use std::hint::black_box;
use std::time::Instant;
// Shared with the benchmarks, which use more of it (the audit record) than this aid does.
#[allow(dead_code)]
#[path = "../benches/support/inputs.rs"]
mod inputs;
fn main() {
    let only: Option<String> = std::env::args().nth(1);
    let iters: Option<u32> = std::env::args().nth(2).map(|s| s.parse().unwrap());
    for (name, body) in inputs::cases() {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let text = std::str::from_utf8(&body).unwrap();
        let mut found = Vec::new();
        if let Some(n) = iters {
            for _ in 0..n {
                found.clear();
                black_box(policy_gateway::detect::prompt_injection::assess(
                    black_box(text),
                    &mut found,
                ));
            }
            continue;
        }
        let t = Instant::now();
        let mut total = 0usize;
        while t.elapsed().as_millis() < 300 {
            found.clear();
            black_box(policy_gateway::detect::prompt_injection::assess(
                black_box(text),
                &mut found,
            ));
            total += text.len();
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{name:40} {:8} B {:8.1} MB/s",
            text.len(),
            total as f64 / s / 1e6
        );
    }
}
