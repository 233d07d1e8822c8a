//! Engine microbenchmark: the default policy over chat bodies, natively; then the resource
//! cases of issue 11 (bodies full of redactions, nested arrays of short strings, streams of
//! tiny events and of many interleaved choices) at doubling sizes, so linear growth shows as
//! a constant cost per byte. Beside each case: the peak heap one run allocates.
//!
//! `make bench-engine` (or `cargo bench --bench engine`). No dependency: each case runs in
//! timed batches and the median batch is reported, because the machine is shared and noisy.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    // The counting allocator below: GlobalAlloc is an unsafe trait.
    unsafe_code
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use policy_gateway::engine::stream::{StreamEnd, StreamInspector, StreamLimits};
use policy_gateway::engine::{self, RequestInfo};
use policy_gateway::llm::{ApiFormat, Phase};
use policy_gateway::policy::Policy;

#[path = "support/inputs.rs"]
mod inputs;

#[path = "support/adversarial.rs"]
mod adversarial;

/// The system allocator, keeping the current and the peak number of bytes allocated.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap bytes at the peak of one call of `f`, above what was allocated before it.
fn peak_of<R>(f: impl FnOnce() -> R) -> usize {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    black_box(f());
    PEAK.load(Ordering::Relaxed).saturating_sub(base)
}

/// Times `run` (median of repeated batches) and prints one line; `bytes` is the input size.
fn measure<R>(name: &str, bytes: usize, mut run: impl FnMut() -> R) {
    let peak = peak_of(&mut run);
    // Calibrate a batch to ~20 ms (one call when a call takes longer).
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed().as_millis() < 20 {
        black_box(run());
        n += 1;
    }
    let single = start.elapsed().as_secs_f64() / f64::from(n);
    // Slow cases (the quadratic ones before issue 11) get fewer batches.
    let batches = if single > 0.5 { 3 } else { 15 };
    let mut per_op: Vec<f64> = (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                black_box(run());
            }
            t.elapsed().as_secs_f64() / f64::from(n)
        })
        .collect();
    per_op.sort_by(f64::total_cmp);
    let median = per_op[per_op.len() / 2];
    println!(
        "{name:<40} {:>8} B  {:>10.2} µs/op  {:>8.1} MB/s  peak heap {:>7.2} MiB  (min {:.2} µs, max {:.2} µs)",
        bytes,
        median * 1e6,
        bytes as f64 / median / 1e6,
        peak as f64 / (1 << 20) as f64,
        per_op[0] * 1e6,
        per_op[per_op.len() - 1] * 1e6,
    );
}

fn info(path: Option<&'static str>) -> RequestInfo<'static> {
    RequestInfo {
        request_id: "bench",
        path,
        user: Some("alice"),
        project: Some("p"),
    }
}

/// One request body through `engine::evaluate`.
fn bench_body(name: &str, policy: &Policy, path: Option<&'static str>, body: &[u8], smoke: bool) {
    let info = info(path);
    let rollout = engine::rollout(policy, &info);
    let run = || engine::evaluate(policy, &info, &rollout, Phase::Request, black_box(body));
    if smoke {
        // `cargo test` runs benches once, unoptimised: check they work, time nothing.
        let out = run();
        assert!(out.inspected || out.error.is_some(), "{name}: {out:?}");
        return;
    }
    measure(name, body.len(), run);
}

/// One streamed response, chunk by chunk, through a `StreamInspector`.
fn bench_stream(name: &str, policy: &Policy, chunks: &[Vec<u8>], smoke: bool) {
    let bytes: usize = chunks.iter().map(Vec::len).sum();
    let run = || {
        let mut insp =
            StreamInspector::new(policy, ApiFormat::OpenaiChat, true, StreamLimits::default());
        let mut out = 0;
        for c in chunks {
            out += insp.push(policy, black_box(c)).len();
        }
        out += insp.finish(policy, StreamEnd::UpstreamIncomplete).len();
        out
    };
    if smoke {
        assert!(run() > 0, "{name}: nothing came out");
        return;
    }
    measure(name, bytes, run);
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not (smoke run).
    let smoke = !std::env::args().any(|a| a == "--bench");
    // `cargo bench --bench engine -- resources` runs only the resource cases.
    let only_resources = std::env::args().any(|a| a == "resources");
    // `cargo bench --bench engine -- chain`: only the audit chain's cases.
    if std::env::args().any(|a| a == "chain") {
        bench_chain(smoke);
        return;
    }
    let policy = Policy::from_json(include_bytes!("../policies/default.json")).unwrap();
    if smoke {
        println!("engine benchmark: smoke run (each case once; `make bench-engine` measures)");
    } else {
        println!(
            "default policy ({}), native, median of 15 batches (3 when a call takes > 0.5 s)",
            policy.policy_id
        );
    }
    let chat = Some("/v1/chat/completions");
    if !only_resources {
        for (name, body) in inputs::cases() {
            bench_body(&name, &policy, chat, &body, smoke);
        }
    }
    // Resource cases at doubling sizes (smoke: the smallest only).
    let sizes: &[usize] = if smoke {
        &[64 << 10]
    } else {
        &[256 << 10, 512 << 10, 1 << 20]
    };
    for &n in sizes {
        let body = adversarial::emails(n);
        bench_body(
            &format!("a@b.co body {}K", n >> 10),
            &policy,
            chat,
            &body,
            smoke,
        );
    }
    let sizes: &[usize] = if smoke {
        &[16 << 10]
    } else {
        &[128 << 10, 256 << 10, 512 << 10, 1 << 20]
    };
    for &n in sizes {
        let body = adversarial::nested_arrays(120, n);
        let name = format!("nested arrays depth 120, {}K", n >> 10);
        bench_body(&name, &policy, Some("/v1/other"), &body, smoke);
    }
    let sizes: &[usize] = if smoke {
        &[4 << 10]
    } else {
        &[32 << 10, 64 << 10, 128 << 10]
    };
    for &n in sizes {
        let chunks = adversarial::tiny_events(n);
        let name = format!("stream 4-byte events, {}K of text", n >> 10);
        bench_stream(&name, &policy, &chunks, smoke);
    }
    bench_chain(smoke);
    let choices: &[usize] = if smoke { &[8] } else { &[250, 500, 1000] };
    for &c in choices {
        let chunks = adversarial::interleaved_choices(c, 8);
        let name = format!("stream {c} interleaved choices x 8 words");
        bench_stream(&name, &policy, &chunks, smoke);
    }
}

/// The audit chain's cost per record (issue 17): linking a typical decision record (parse,
/// canonical form, SHA-256), the SHA-256 alone, and a signed checkpoint; then the same in CPU
/// time, which on a shared machine is the worker's cost where wall time also counts waiting.
fn bench_chain(smoke: bool) {
    use policy_gateway::audit::chain::{Chain, TrailConfig};
    let record = inputs::audit_record();
    let config = TrailConfig {
        checkpoint_records: 0,
        checkpoint_interval_ms: 0,
        key_id: Some("k".into()),
        hmac_key: Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into()),
    };
    let mut c = Chain::new(&config, "gw", 1, 0);
    let linked = c.link(&record);
    if smoke {
        assert!(c.checkpoint(1, false).is_some());
        return;
    }
    let canonical = linked.json.clone();
    let hash = || policy_gateway::sha256::digest(canonical.as_bytes())[0];
    let mut link = || c.link(&record).seq;
    measure("chain: link one decision record", record.len(), &mut link);
    measure(
        "chain: SHA-256 of its canonical form",
        linked.json.len(),
        hash,
    );
    let mut c2 = Chain::new(&config, "gw", 1, 0);
    let mut link_cp = || {
        c2.link(&record);
        c2.checkpoint(1, false).map(|l| l.seq)
    };
    measure(
        "chain: link + signed checkpoint",
        record.len(),
        &mut link_cp,
    );
    let Some(_) = cpu_ns() else {
        println!("(no /proc/thread-self/schedstat: CPU time not measured)");
        return;
    };
    for (name, run) in [
        ("link", &mut link as &mut dyn FnMut() -> u64),
        ("SHA-256", &mut || u64::from(hash())),
        ("link + signed checkpoint", &mut || link_cp().unwrap_or(0)),
    ] {
        let (median, min) = cpu_per_op(run);
        println!("chain: {name}: CPU {median:.2} µs/op (min {min:.2} µs)");
    }
}

/// This thread's CPU time in ns (Linux: /proc/thread-self/schedstat, first field).
fn cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// CPU µs per call of `run`: median and minimum of 15 batches of >= 100 ms of CPU each.
fn cpu_per_op(run: &mut dyn FnMut() -> u64) -> (f64, f64) {
    let cpu = || cpu_ns().unwrap_or(0);
    let start = cpu();
    let mut n = 0u64;
    while cpu() - start < 100_000_000 {
        for _ in 0..100 {
            black_box(run());
        }
        n += 100;
    }
    let mut per_op: Vec<f64> = (0..15)
        .map(|_| {
            let t = cpu();
            for _ in 0..n {
                black_box(run());
            }
            (cpu() - t) as f64 / n as f64 / 1e3
        })
        .collect();
    per_op.sort_by(f64::total_cmp);
    (per_op[per_op.len() / 2], per_op[0])
}
