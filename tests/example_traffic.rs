//! The shipped example traffic through the shipped default policy: each exchange gets the
//! decision the policy promises, and the forwarded bodies carry the promised changes.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use policy_gateway::audit::IdGenerator;
use policy_gateway::cli::simulate::{config_for_policy, parse_line, simulate, Simulated};
use serde_json::Value;

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

#[test]
fn each_example_gets_its_decision() {
    let sims = run_all();
    let expected = [
        ("req-001", "allow", "NO_RULE_MATCHED", "forwarded"),
        (
            "req-002",
            "redact",
            "PII_CARD_REDACTED",
            "forwarded changed",
        ),
        ("req-003", "refuse", "SECRET_DETECTED", "403 refused"),
        ("req-004", "refuse", "PROMPT_INJECTION", "400 refused"),
        ("req-005", "rewrite", "MODEL_REWRITTEN", "forwarded changed"),
        (
            "req-006",
            "rewrite",
            "MAX_TOKENS_CAPPED",
            "forwarded changed",
        ),
        ("req-007", "refuse", "MODEL_NOT_APPROVED", "403 refused"),
        ("req-008", "redact", "PII_REDACTED", "forwarded changed"),
        (
            "req-009",
            "escalate",
            "CONFIDENTIAL_PROJECT",
            "forwarded, flagged",
        ),
        (
            "req-010",
            "escalate",
            "INDIRECT_PROMPT_INJECTION",
            "forwarded, flagged",
        ),
        ("req-011", "redact", "PII_REDACTED", "forwarded changed"),
        ("req-012", "redact", "PII_REDACTED", "forwarded changed"),
        ("req-013", "redact", "OUTPUT_PII_REDACTED", "forwarded"),
        ("req-014", "refuse", "BODY_UNPARSEABLE", "400 refused"),
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
}

#[test]
fn forwarded_bodies_carry_the_changes() {
    let sims = run_all();
    let b = forwarded_json(by_id(&sims, "req-002"));
    assert_eq!(
        b["messages"][0]["content"],
        "Draft a reply to [EMAIL] confirming the refund to card **** **** **** 1111."
    );
    assert_eq!(
        forwarded_json(by_id(&sims, "req-005"))["model"],
        "gpt-4o-mini"
    );
    assert_eq!(forwarded_json(by_id(&sims, "req-006"))["max_tokens"], 4096);
    let b = forwarded_json(by_id(&sims, "req-008"));
    assert_eq!(
        b["messages"][0]["content"][0]["text"],
        "The customer's phone is [PHONE] and SSN [US_SSN]; open a ticket."
    );
    let b = forwarded_json(by_id(&sims, "req-011"));
    assert_eq!(
        b["input"][0]["content"][0]["text"],
        "Pay invoice 2024-117 to IBAN [IBAN]."
    );
    let r = &by_id(&sims, "req-013").record;
    assert_eq!(r.phase, "response");
    assert_eq!(r.redactions.get("email"), Some(&1));
    assert_eq!(r.redactions.get("phone"), Some(&1));
    let usage = r.usage.unwrap();
    assert_eq!(usage.total_tokens, Some(37));
    // Requests answered locally forward nothing.
    assert!(by_id(&sims, "req-003").forwarded.is_none());
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
