//! The engine microbenchmark under V8: `policy_gateway`'s pure engine built as a bare
//! wasm32-unknown-unknown cdylib (no wasm-bindgen, no imports), driven by `run.mjs` under node.
//!
//! The inputs are built inside wasm exactly as `benches/engine.rs` builds them natively (same
//! text, same sizes, same JSON), so native and V8 numbers compare case by case. Each `run_*`
//! export does `iters` iterations of one kind of work over the current input, entirely inside
//! wasm, and returns a value derived from every iteration so nothing is optimised away:
//!
//! - `run_evaluate(0, n)`: `engine::evaluate` with `policies/default.json` (the number measured);
//! - `run_evaluate(1, n)`: the same with an empty policy (parse, format detection, no detectors);
//! - `run_parse(n)`: `engine::parse_body` alone (serde_json into a `Value`);
//! - `run_memchr(n)`: count the `@` bytes with `memchr::memchr_iter` (a scan floor);
//! - `run_memcpy(n)`: `copy_from_slice` of the input into a buffer (a copy floor).
//!
//! Strings for the driver (case names, descriptions, errors) go through `text_ptr`/`text_len`;
//! the input bytes through `input_ptr`/`input_len`. `alloc(len)` gives the driver a buffer of
//! its own to fill with any input, `free` drops it; `load_policy` compiles such a buffer as the
//! policy to measure instead of the default one.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::hint::black_box;

use policy_gateway::engine::{self, RequestInfo};
use policy_gateway::llm::Phase;
use policy_gateway::policy::rollout::RolloutDecision;
use policy_gateway::policy::Policy;

const DEFAULT_POLICY: &[u8] = include_bytes!("../../../policies/default.json");
const EMPTY_POLICY: &[u8] =
    br#"{"id": "empty", "version": "1", "rollout": {"mode": "enforce"}, "rules": []}"#;

// ---- inputs: the native benchmark's, from the same file ----

#[path = "../../../benches/support/inputs.rs"]
mod inputs;

#[path = "../../../benches/support/conversation.rs"]
mod conversation;

/// The cases of the native benchmark, in its order: (name, body).
fn case(index: u32) -> Option<(String, Vec<u8>)> {
    inputs::cases().into_iter().nth(index as usize)
}

const CASES: u32 = 11;

// ---- state ----

struct Compiled {
    policy: Policy,
    rollout: RolloutDecision,
}

#[derive(Default)]
struct State {
    /// Default policy, then the empty policy; empty until `init` succeeds.
    policies: Vec<Compiled>,
    input: Vec<u8>,
    scratch: Vec<u8>,
    text: String,
    /// The 20 requests of `conversation::requests`, built on first use.
    conversation: Vec<Vec<u8>>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Runs `f` on the state; `fallback` if it is already borrowed (cannot happen: single thread,
/// no re-entry) — so no panic path.
fn with_state<R>(fallback: R, f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut state) => f(&mut state),
        Err(_) => fallback,
    })
}

fn info() -> RequestInfo<'static> {
    RequestInfo {
        request_id: "bench",
        path: Some("/v1/chat/completions"),
        user: Some("alice"),
        project: Some("p"),
    }
}

fn compile(json: &[u8]) -> Result<Compiled, String> {
    let policy = Policy::from_json(json).map_err(|e| format!("{e:?}"))?;
    let rollout = engine::rollout(&policy, &info());
    Ok(Compiled { policy, rollout })
}

// ---- exports ----

/// Compiles the default and the empty policy. Returns the number of cases, or -1 (the error
/// is in `text`).
#[no_mangle]
pub extern "C" fn init() -> i32 {
    with_state(-1, |s| {
        match (compile(DEFAULT_POLICY), compile(EMPTY_POLICY)) {
            (Ok(default), Ok(empty)) => {
                s.policies = vec![default, empty];
                s.text = "ok".to_string();
                CASES as i32
            }
            (Err(e), _) | (_, Err(e)) => {
                s.text = e;
                -1
            }
        }
    })
}

/// Compiles the current input (filled through `alloc`) as a policy and puts it in the default
/// policy's slot (index 0), so `run_evaluate(0, n)` measures it. Returns 0, or -1 (the error is
/// in `text`).
#[no_mangle]
pub extern "C" fn load_policy() -> i32 {
    with_state(-1, |s| match compile(&s.input) {
        Ok(compiled) if !s.policies.is_empty() => {
            s.text = compiled.policy.policy_id.clone();
            if let Some(slot) = s.policies.first_mut() {
                *slot = compiled;
            }
            0
        }
        Ok(_) => {
            s.text = "call init first".to_string();
            -1
        }
        Err(e) => {
            s.text = e;
            -1
        }
    })
}

/// Makes case `index` the current input (its name goes to `text`). Returns its length, or -1.
#[no_mangle]
pub extern "C" fn prepare(index: u32) -> i32 {
    with_state(-1, |s| match case(index) {
        Some((name, body)) => {
            s.text = name;
            s.scratch = vec![0; body.len()];
            s.input = body;
            i32::try_from(s.input.len()).unwrap_or(-1)
        }
        None => -1,
    })
}

/// Replaces the current input with `len` zero bytes for the driver to fill; returns their
/// address in linear memory.
#[no_mangle]
pub extern "C" fn alloc(len: usize) -> usize {
    with_state(0, |s| {
        s.input = vec![0; len];
        s.scratch = vec![0; len];
        s.text = format!("custom {len}");
        s.input.as_ptr() as usize
    })
}

/// Drops the current input.
#[no_mangle]
pub extern "C" fn free() {
    with_state((), |s| {
        s.input = Vec::new();
        s.scratch = Vec::new();
    });
}

#[no_mangle]
pub extern "C" fn input_ptr() -> usize {
    with_state(0, |s| s.input.as_ptr() as usize)
}

#[no_mangle]
pub extern "C" fn input_len() -> usize {
    with_state(0, |s| s.input.len())
}

#[no_mangle]
pub extern "C" fn text_ptr() -> usize {
    with_state(0, |s| s.text.as_ptr() as usize)
}

#[no_mangle]
pub extern "C" fn text_len() -> usize {
    with_state(0, |s| s.text.len())
}

/// Evaluates the current input once with policy 0 (default) or 1 (empty) and describes the
/// outcome in `text`. Returns 1 if the body was inspected, 0 if not, -1 on a bad policy index.
#[no_mangle]
pub extern "C" fn describe(policy: u32) -> i32 {
    with_state(-1, |s| {
        let Some(c) = usize::try_from(policy).ok().and_then(|i| s.policies.get(i)) else {
            return -1;
        };
        let out = engine::evaluate(&c.policy, &info(), &c.rollout, Phase::Request, &s.input);
        let mut text = format!(
            "decision={:?} reason={} inspected={} segments={} rules={:?}",
            out.decision, out.reason_code, out.inspected, out.segments, out.triggered_rules
        );
        if !out.redactions.is_empty() {
            let _ = write!(text, " redactions={:?}", out.redactions);
        }
        let inspected = i32::from(out.inspected);
        s.text = text;
        inspected
    })
}

/// Evaluates the current input once with policy 0 (default) or 1 (empty) at `path` (0: the
/// chat completions path, 1: a path of no known API, so the body's shape decides). Returns
/// the number of segments, or -1 when not inspected (the reason is in `text`). `memory.mjs`
/// reads how far one call grew linear memory.
#[no_mangle]
pub extern "C" fn evaluate_once(policy: u32, path: u32) -> i32 {
    with_state(-1, |s| {
        let Some(c) = usize::try_from(policy).ok().and_then(|i| s.policies.get(i)) else {
            return -1;
        };
        let info = RequestInfo {
            path: Some(if path == 0 {
                "/v1/chat/completions"
            } else {
                "/v1/other"
            }),
            ..info()
        };
        let out = engine::evaluate(&c.policy, &info, &c.rollout, Phase::Request, &s.input);
        s.text = out.reason_code.clone();
        if out.inspected {
            i32::try_from(out.segments).unwrap_or(i32::MAX)
        } else {
            -1
        }
    })
}

/// `iters` evaluations of the current input with policy 0 (default) or 1 (empty).
#[no_mangle]
pub extern "C" fn run_evaluate(policy: u32, iters: u32) -> u32 {
    with_state(0, |s| {
        let Some(c) = usize::try_from(policy).ok().and_then(|i| s.policies.get(i)) else {
            return 0;
        };
        let info = info();
        let mut acc = 0u32;
        for _ in 0..iters {
            let out = black_box(engine::evaluate(
                &c.policy,
                &info,
                &c.rollout,
                Phase::Request,
                black_box(s.input.as_slice()),
            ));
            acc = acc
                .wrapping_add(out.segments)
                .wrapping_add(u32::from(out.inspected))
                .wrapping_add(out.detections.values().sum::<u32>())
                .wrapping_add(out.reason_code.len() as u32);
        }
        acc
    })
}

/// `iters` parses of the current input (`engine::parse_body`: serde_json into a `Value`).
#[no_mangle]
pub extern "C" fn run_parse(iters: u32) -> u32 {
    with_state(0, |s| {
        let mut acc = 0u32;
        for _ in 0..iters {
            let parsed = black_box(engine::parse_body(black_box(s.input.as_slice())));
            acc = acc.wrapping_add(u32::from(parsed.json().is_some()));
        }
        acc
    })
}

/// `iters` counts of `@` in the current input with memchr.
#[no_mangle]
pub extern "C" fn run_memchr(iters: u32) -> u32 {
    with_state(0, |s| {
        let mut acc = 0u32;
        for _ in 0..iters {
            let n = memchr::memchr_iter(b'@', black_box(s.input.as_slice())).count();
            acc = acc.wrapping_add(n as u32);
        }
        acc
    })
}

/// `iters` copies of the current input into a buffer of the same length.
#[no_mangle]
pub extern "C" fn run_memcpy(iters: u32) -> u32 {
    with_state(0, |s| {
        let State { input, scratch, .. } = s;
        if scratch.len() != input.len() {
            *scratch = vec![0; input.len()];
        }
        let mut acc = 0u32;
        for i in 0..iters {
            black_box(&mut *scratch).copy_from_slice(black_box(input.as_slice()));
            let probe = (i as usize).checked_rem(scratch.len()).unwrap_or(0);
            acc = acc.wrapping_add(u32::from(
                black_box(&*scratch).get(probe).copied().unwrap_or(0),
            ));
        }
        acc
    })
}

/// `iters` prompt-injection assessments (`detect::prompt_injection::assess`: phrase tier,
/// decoding layer and classifier) of the current input read as one text.
#[no_mangle]
pub extern "C" fn run_injection(iters: u32) -> u32 {
    with_state(0, |s| {
        let text = std::str::from_utf8(&s.input).unwrap_or_default();
        let mut found = Vec::new();
        let mut acc = 0u32;
        for _ in 0..iters {
            found.clear();
            let score = policy_gateway::detect::prompt_injection::assess(black_box(text), &mut found);
            acc = acc.wrapping_add((score * 1000.0) as u32).wrapping_add(found.len() as u32);
        }
        acc
    })
}

/// `iters` links of a typical decision record into an audit chain (parse, canonical form,
/// SHA-256: what the filter does once per record); `with_checkpoint`: each followed by a
/// signed checkpoint (HMAC-SHA-256).
#[no_mangle]
pub extern "C" fn run_chain(iters: u32, with_checkpoint: u32) -> u32 {
    use policy_gateway::audit::chain::{Chain, TrailConfig};
    let record = inputs::audit_record();
    let config = TrailConfig {
        checkpoint_records: 0,
        checkpoint_interval_ms: 0,
        key_id: Some("k".into()),
        hmac_key: Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into()),
    };
    let mut chain = Chain::new(&config, "gw", 1, 0);
    let mut acc = 0u32;
    for _ in 0..iters {
        let linked = black_box(chain.link(black_box(&record)));
        acc = acc.wrapping_add(linked.json.len() as u32);
        if with_checkpoint != 0 {
            let cp = chain.checkpoint(1, false);
            acc = acc.wrapping_add(cp.map_or(0, |c| c.json.len() as u32));
        }
    }
    acc
}

/// The bytes of the record `run_chain` links, for the driver's MB/s.
#[no_mangle]
pub extern "C" fn chain_record_len() -> u32 {
    inputs::audit_record().len() as u32
}

/// `iters` replays of the 20-turn conversation (`benches/support/conversation.rs`: 20
/// requests, each the whole history so far) with policy 0, as one verified user: `cached` 1
/// through a text cache made fresh for each replay, 0 without. The cache's key is fixed here
/// (a bare module has no host randomness; the filter's comes from WASI `random_get`).
#[no_mangle]
pub extern "C" fn run_conversation(cached: u32, iters: u32) -> u32 {
    use engine::text_cache::{Cached, Identity, Lane, Limits, TextCache};
    with_state(0, |s| {
        if s.conversation.is_empty() {
            s.conversation = conversation::requests(20);
        }
        let Some(c) = s.policies.first() else {
            return 0;
        };
        let info = info();
        let identity = Identity {
            user: "alice",
            user_verified: true,
            project: Some("p"),
            project_verified: true,
        };
        let mut acc = 0u32;
        for _ in 0..iters {
            let key = engine::CacheKey(0x5eed, 0xc0ffee);
            let mut cache = TextCache::new(key, Limits::default()).filter(|_| cached == 1);
            for body in &s.conversation {
                let scoped = cache.as_mut().and_then(|t| {
                    let scope = t.scope(Some(identity), Lane::Active)?;
                    Some(Cached::new(t, scope))
                });
                let out = black_box(engine::evaluate_cached(
                    &c.policy,
                    &info,
                    &c.rollout,
                    Phase::Request,
                    engine::parse_body(black_box(body)),
                    engine::VaultUse::None,
                    scoped,
                ));
                acc = acc
                    .wrapping_add(out.segments)
                    .wrapping_add(out.cached_texts)
                    .wrapping_add(out.detections.values().sum::<u32>());
            }
        }
        acc
    })
}

/// Bytes of the conversation's 20 request bodies together.
#[no_mangle]
pub extern "C" fn conversation_bytes() -> u32 {
    with_state(0, |s| {
        if s.conversation.is_empty() {
            s.conversation = conversation::requests(20);
        }
        s.conversation.iter().map(|b| b.len() as u32).sum()
    })
}

/// `iters` SHA-256 digests (`sha256::digest`, the chain's hash) of the first `len` bytes
/// of a fixed pseudo-random buffer (at most 64 KiB), for the cost per 64-byte block under V8
/// (`sha.mjs`); `hmac` 1: HMAC-SHA-256 under a 32-byte key instead; 2: the `sha2` crate's
/// SHA-256 (the one the chain used before its own), for comparison.
#[no_mangle]
pub extern "C" fn run_sha256(len: u32, iters: u32, hmac: u32) -> u32 {
    use policy_gateway::audit::chain::hmac_sha256;
    use policy_gateway::sha256::digest as sha256;
    let mut x = 0x9e37_79b9u32;
    let data: Vec<u8> = (0..len.min(65_536))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let key = [7u8; 32];
    let mut acc = 0u32;
    for _ in 0..iters {
        let d = match hmac {
            0 => sha256(black_box(&data)),
            1 => hmac_sha256(black_box(&key), black_box(&data)),
            _ => {
                use sha2::Digest as _;
                sha2::Sha256::digest(black_box(&data)).into()
            }
        };
        acc = acc.wrapping_add(u32::from(d.first().copied().unwrap_or(0)));
    }
    acc
}
