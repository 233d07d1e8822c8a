//! The engine's outcomes on text dense with personal data, pinned to what `main` gave before
//! the PII-dense speed-ups (sixth round, branch `pii6`, from ea2bf56): decisions, reason codes,
//! rules, detection and redaction counts, pseudonyms, the recorded content and the rewritten
//! body's bytes, for every shipped policy over thousands of generated bodies (every entity
//! kind the detectors know, packed, glued, repeated and split by hostile neighbours; bodies
//! not UTF-8, with duplicate keys, deep nesting, truncated, huge values, tool-call JSON
//! arguments). The fingerprint below is of `main`'s outcomes: an exact speed-up keeps it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use policy_gateway::engine::pseudonym::{Vault, VaultLimits};
use policy_gateway::engine::{self, RequestInfo, VaultUse};
use policy_gateway::llm::Phase;
use policy_gateway::policy::Policy;
use serde_json::json;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const POLICIES: &[&[u8]] = &[
    include_bytes!("../policies/default.json"),
    include_bytes!("../policies/pii-strict.json"),
    include_bytes!("../policies/redact.json"),
    include_bytes!("../policies/pseudonymise.json"),
    include_bytes!("../policies/secrets.json"),
    include_bytes!("../policies/examples/default-v2.json"),
];

/// Entities of every kind the numeric, e-mail and address detectors find, near misses
/// beside them, and the separators, escapes and characters that glue or split them.
const PIECES: &[&str] = &[
    "07700 900123",
    "+44 20 7946 0958",
    "(415) 555-0100 x12",
    "415-555-0100",
    "0049 30 12345678",
    "01 23 45 67 89",
    "090-1234-5678",
    "(11) 91234-5678",
    "call 555 0199",
    "4111 1111 1111 1111",
    "5018 0000 0009",
    "3530111333300000",
    "4111111111111112",
    "GB82 WEST 1234 5698 7654 32",
    "de89370400440532013000",
    "536-22-1234",
    "912-70-1234",
    "QQ 12 34 56 C",
    "ABCPE1234F",
    "X1234567L",
    "12345678Z",
    "RSSMRA85T10A562S",
    "2 85 12 75 108 123 45",
    "65 929 970 489",
    "SIN 046 454 286",
    "TFN 123 456 782",
    "Aadhaar 2341 2341 2346",
    "jane.doe@example.com",
    "a@b.co",
    "jane%40example.com",
    "10.20.30.40",
    "192.168.1.10:8080",
    "2001:db8::1",
    "123.456.789-09",
    "2026-11-26",
    "1.2.3.4.5",
    "Project Nightingale",
    " ",
    ", ",
    "; ",
    "-",
    ".",
    "\n",
    "\t",
    "\"",
    "\\",
    "é",
    "中文",
    "😀",
    "x",
    "_",
    "7",
    "\u{0}",
    "\u{1f}",
    "\u{7f}",
    "\u{2028}",
    "&amp;",
];

fn fnv(hash: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *hash ^= u64::from(b);
        *hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn dense_text(rng: &mut Rng, pieces: usize) -> String {
    (0..pieces)
        .map(|_| PIECES[rng.below(PIECES.len())])
        .collect()
}

/// Generated bodies: chat requests with dense texts in several messages and roles, tool-call
/// arguments that are themselves JSON, and hostile bodies.
fn bodies() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    for i in 0..2400 {
        let n = 1 + rng.below(60);
        let text = dense_text(&mut rng, n);
        let body = match i % 6 {
            0 | 1 => json!({"model": "gpt-4o", "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": text}]}),
            2 => json!({"model": "gpt-4o", "messages": [
                {"role": "user", "content": [{"type": "text", "text": text},
                                             {"type": "text", "text": dense_text(&mut rng, 8)}]},
                {"role": "assistant", "content": dense_text(&mut rng, 5)},
                {"role": "user", "content": text}]}),
            3 => {
                let args = json!({"to": text, "n": 4111111111111111u64, "ok": true,
                                  "cc": [dense_text(&mut rng, 4), 5365221234u64]})
                .to_string();
                json!({"model": "gpt-4o", "messages": [
                    {"role": "user", "content": "send it"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "c1", "type": "function",
                         "function": {"name": "mail", "arguments": args}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": text}]})
            }
            4 => json!({"model": "claude-sonnet-4-5", "max_tokens": 100000,
                        "system": dense_text(&mut rng, 6),
                        "messages": [{"role": "user", "content": text}]}),
            _ => json!({"model": "gpt-3.5-turbo", "input": text}),
        };
        let mut bytes = serde_json::to_vec(&body).unwrap();
        match i % 50 {
            // Truncated, not UTF-8, a duplicate key, a huge value, deep nesting.
            7 => bytes.truncate(bytes.len() * 2 / 3),
            17 => {
                let at = bytes.len() / 2;
                bytes.insert(at, 0xff);
            }
            27 => {
                let s = String::from_utf8(bytes).unwrap();
                bytes = s
                    .replacen("\"model\"", "\"model\": \"o3\", \"model\"", 1)
                    .into_bytes();
            }
            37 => {
                let huge = PIECES[rng.below(PIECES.len())].repeat(20_000);
                bytes = serde_json::to_vec(&json!({"model": "gpt-4o",
                    "messages": [{"role": "user", "content": huge}]}))
                .unwrap();
            }
            47 => {
                let deep = format!(
                    "{}{}{}",
                    "[".repeat(200),
                    "\"4111111111111111\"",
                    "]".repeat(200)
                );
                bytes = format!("{{\"model\": \"gpt-4o\", \"messages\": [{{\"role\": \"user\", \"content\": \"{}\"}}], \"x\": {deep}}}", text.replace(['\\', '"'], "").chars().filter(|c| !c.is_control()).collect::<String>()).into_bytes();
            }
            _ => {}
        }
        let response = json!({"id": "r", "object": "chat.completion", "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}]});
        out.push((bytes, serde_json::to_vec(&response).unwrap()));
    }
    out
}

#[test]
fn outcomes_on_dense_personal_data_are_mains() {
    let info = RequestInfo {
        request_id: "pii",
        path: Some("/v1/chat/completions"),
        user: Some("alice"),
        project: Some("p"),
    };
    let bodies = bodies();
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for json in POLICIES {
        let mut policy = Policy::from_json(json).unwrap();
        let rollout = engine::rollout(&policy, &info);
        for include_content in [false, true] {
            policy.include_content = include_content;
            for (body, response) in &bodies {
                let mut vault = Vault::new(VaultLimits::default());
                let parsed = engine::parse_body(body);
                let out = engine::evaluate_with_vault(
                    &policy,
                    &info,
                    &rollout,
                    Phase::Request,
                    parsed,
                    VaultUse::Fill(&mut vault),
                );
                fnv(&mut hash, format!("{out:?}").as_bytes());
                vault.seal();
                // The text as a response: output rules, and restoring the vault's tokens.
                let parsed = engine::parse_body(response);
                let out = engine::evaluate_with_vault(
                    &policy,
                    &info,
                    &rollout,
                    Phase::Response,
                    parsed,
                    VaultUse::Restore(&vault),
                );
                fnv(&mut hash, format!("{out:?}").as_bytes());
            }
        }
    }
    assert_eq!(hash, EXPECTED, "outcomes differ from main's: {hash:#018x}");
}

/// The fingerprint of `main`'s outcomes (ea2bf56).
const EXPECTED: u64 = 0x26b9_9488_1b02_3323;
