//! Evaluation end to end on real API bodies: decisions, precedence, rollout, body changes,
//! bad input. Runs natively and under a wasm runtime (`make test-wasm`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use policy_gateway::audit::record::RecordMeta;
use policy_gateway::audit::AuditRecord;
use policy_gateway::engine::{self, reason, PhaseOutcome, RequestInfo, Verdict};
use policy_gateway::llm::Phase;
use policy_gateway::policy::{Action, Policy};
use serde_json::{json, Value};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn policy(rules: Value) -> Policy {
    policy_with(json!({}), rules)
}

fn policy_with(extra: Value, rules: Value) -> Policy {
    let mut doc = json!({"id": "t", "version": "1", "rules": rules});
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    Policy::from_value(doc).unwrap()
}

fn info(user: &str) -> RequestInfo<'_> {
    RequestInfo {
        request_id: "req-1",
        path: Some("/v1/chat/completions"),
        user: Some(user),
        project: Some("proj"),
    }
}

fn run(p: &Policy, body: &Value) -> PhaseOutcome {
    run_at(p, "/v1/chat/completions", Phase::Request, body)
}

/// Evaluates `body` for user alice at `path` in `phase`.
fn run_at(p: &Policy, path: &str, phase: Phase, body: &Value) -> PhaseOutcome {
    let i = RequestInfo {
        path: Some(path),
        ..info("alice")
    };
    let r = engine::rollout(p, &i);
    engine::evaluate(p, &i, &r, phase, &serde_json::to_vec(body).unwrap())
}

fn forwarded(o: &PhaseOutcome) -> Value {
    match &o.verdict {
        Verdict::Forward { body: Some(b), .. } => serde_json::from_slice(b).unwrap(),
        v => panic!("expected a changed forward, got {v:?}"),
    }
}

fn chat(text: &str) -> Value {
    json!({"model": "gpt-4o", "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": text}
    ]})
}

fn pii_rules() -> Value {
    json!([
        {"id": "redact-email", "category": "pii.email", "match": {"detectors": ["email"]},
         "action": "redact", "reason_code": "PII_EMAIL"},
        {"id": "card", "category": "pii.credit_card", "match": {"detectors": ["credit_card"]},
         "action": "redact", "reason_code": "PII_CARD", "redact": {"style": "keep_last_4"}},
        {"id": "keys", "category": "secrets.api_key", "match": {"detectors": ["openai_key"]},
         "action": "refuse", "reason_code": "SECRET", "refuse": {"status": 451, "message": "no keys"}},
        {"id": "gov", "category": "governance.model", "match": {"models": {"deny": ["gpt-3.5*"]}},
         "action": "rewrite", "reason_code": "MODEL", "rewrite": {"set_model": "gpt-4o-mini"}},
        {"id": "review", "category": "data.confidential",
         "match": {"keywords": {"terms": ["project falcon"]}},
         "action": "escalate", "reason_code": "CONFIDENTIAL", "escalate": {"mode": "flag"}}
    ])
}

#[test]
fn benign_request_is_allowed_unchanged() {
    let o = run(
        &policy(pii_rules()),
        &chat("What is the capital of France?"),
    );
    assert_eq!(o.decision, Action::Allow);
    assert_eq!(o.reason_code, reason::NO_RULE_MATCHED);
    assert!(o.triggered_rules.is_empty());
    assert_eq!(
        o.verdict,
        Verdict::Forward {
            body: None,
            flagged: false
        }
    );
    assert!(o.inspected);
    assert_eq!(o.segments, 2);
}

#[test]
fn redaction_changes_only_the_entity_and_keeps_the_schema() {
    let body = chat("Mail jane.doe@example.com, card 4111 1111 1111 1111 please");
    let o = run(&policy(pii_rules()), &body);
    assert_eq!(o.decision, Action::Redact);
    assert_eq!(o.reason_code, "PII_EMAIL");
    assert_eq!(o.triggered_rules, ["redact-email", "card"]);
    assert_eq!(o.triggered_categories, ["pii.email", "pii.credit_card"]);
    assert_eq!(o.redactions["email"], 1);
    assert_eq!(o.redactions["credit_card"], 1);
    let out = forwarded(&o);
    assert_eq!(
        out["messages"][1]["content"],
        "Mail [EMAIL], card **** **** **** 1111 please"
    );
    let mut expected = body.clone();
    expected["messages"][1]["content"] = out["messages"][1]["content"].clone();
    assert_eq!(out, expected);
}

#[test]
fn most_severe_action_decides_and_every_match_is_listed() {
    let body = json!({"model": "gpt-3.5-turbo", "messages": [
        {"role": "user", "content": "project falcon: key sk-proj-abcDEF1234567890ghijKLMN5678 mail a@example.org"}
    ]});
    let o = run(&policy(pii_rules()), &body);
    assert_eq!(o.decision, Action::Refuse);
    assert_eq!(o.reason_code, "SECRET");
    assert_eq!(o.triggered_rules, ["redact-email", "keys", "gov", "review"]);
    assert_eq!(
        o.verdict,
        Verdict::Respond {
            status: 451,
            message: "no keys".into(),
            held: false
        }
    );
}

#[test]
fn precedence_order_is_refuse_escalate_redact_rewrite_allow() {
    let rules = |actions: &[&str]| {
        let rules: Vec<Value> = actions
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let mut r = json!({"id": format!("r{i}"), "category": "c.x",
                    "match": {"keywords": {"terms": ["trigger"]}},
                    "action": a, "reason_code": format!("R{i}")});
                if *a == "rewrite" {
                    r["rewrite"] = json!({"replace_with": "x"});
                }
                r
            })
            .collect();
        policy(Value::Array(rules))
    };
    let order = ["allow", "rewrite", "redact", "escalate", "refuse"];
    for hi in 1..order.len() {
        for lo in 0..hi {
            // Lower-severity rule first in the policy, then reversed: order must not matter.
            for pair in [[order[lo], order[hi]], [order[hi], order[lo]]] {
                let o = run(&rules(&pair), &chat("a trigger word"));
                assert_eq!(o.decision.name(), order[hi], "{pair:?}");
                assert_eq!(o.triggered_rules.len(), 2);
            }
        }
    }
}

#[test]
fn rewrite_rules_set_model_cap_tokens_and_add_system_message() {
    let p = policy(json!([
        {"id": "m", "category": "gov.model", "match": {"models": {"allow": ["gpt-4o*"]}},
         "action": "rewrite", "reason_code": "MODEL", "rewrite": {"set_model": "gpt-4o-mini"}},
        {"id": "t", "category": "cost.tokens", "match": {"max_tokens": {"max": 1000}},
         "action": "rewrite", "reason_code": "TOKENS",
         "rewrite": {"cap_max_tokens": 1000, "add_system_message": "Answer briefly."}}
    ]));
    let body = json!({"model": "o1-preview", "max_tokens": 9000,
        "messages": [{"role": "user", "content": "hi"}]});
    let o = run(&p, &body);
    assert_eq!(o.decision, Action::Rewrite);
    assert_eq!(
        o.rewrites,
        ["set_model", "cap_max_tokens", "add_system_message"]
    );
    let out = forwarded(&o);
    assert_eq!(out["model"], "gpt-4o-mini");
    assert_eq!(out["max_tokens"], 1000);
    assert_eq!(
        out["messages"][0],
        json!({"role": "system", "content": "Answer briefly."})
    );
    assert_eq!(out["messages"][1]["content"], "hi");

    // Within bounds and on an allowed model: nothing triggers.
    let ok = json!({"model": "gpt-4o", "max_tokens": 500, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(run(&p, &ok).decision, Action::Allow);
}

#[test]
fn replace_with_rewrites_matched_text() {
    let p = policy(json!([
        {"id": "codename", "category": "data.codename",
         "match": {"keywords": {"terms": ["Bluebird"], "case_sensitive": true}},
         "action": "rewrite", "reason_code": "CODENAME", "rewrite": {"replace_with": "the project"}}
    ]));
    let o = run(&p, &chat("Status of Bluebird? and bluebird"));
    assert_eq!(
        forwarded(&o)["messages"][1]["content"],
        "Status of the project? and bluebird"
    );
    assert_eq!(o.rewrites, ["replace_text"]);
}

#[test]
fn escalate_hold_answers_locally_and_flag_forwards_redacted() {
    let hold = policy(json!([
        {"id": "h", "category": "c.h", "match": {"keywords": {"terms": ["merger"]}},
         "action": "escalate", "reason_code": "HOLD"}
    ]));
    let o = run(&hold, &chat("about the merger"));
    assert!(matches!(
        o.verdict,
        Verdict::Respond {
            status: 202,
            held: true,
            ..
        }
    ));

    let o = run(
        &policy(pii_rules()),
        &chat("project falcon owner: bob@example.com"),
    );
    assert_eq!(o.decision, Action::Escalate);
    assert!(matches!(
        o.verdict,
        Verdict::Forward {
            flagged: true,
            body: Some(_)
        }
    ));
    assert_eq!(
        forwarded(&o)["messages"][1]["content"],
        "project falcon owner: [EMAIL]"
    );
}

#[test]
fn roles_limit_what_a_rule_inspects() {
    let p = policy(json!([
        {"id": "u", "category": "pii.email", "match": {"detectors": ["email"], "roles": ["user"]},
         "action": "redact", "reason_code": "E"}
    ]));
    let body = json!({"model": "gpt-4o", "messages": [
        {"role": "system", "content": "Support address: help@example.com"},
        {"role": "user", "content": "hello"}
    ]});
    assert_eq!(run(&p, &body).decision, Action::Allow);
}

#[test]
fn shadow_mode_records_but_never_changes_traffic() {
    let p = policy_with(json!({"rollout": {"mode": "shadow"}}), pii_rules());
    for text in [
        "mail a@example.com",
        "key sk-proj-abcDEF1234567890ghijKLMN5678",
        "project falcon",
    ] {
        let o = run(&p, &chat(text));
        assert_ne!(o.decision, Action::Allow, "{text}");
        assert_eq!(
            o.verdict,
            Verdict::Forward {
                body: None,
                flagged: false
            },
            "{text}"
        );
    }
    let o = run(&p, &chat("mail a@example.com"));
    assert_eq!(
        o.redactions["email"], 1,
        "shadow records what would be redacted"
    );
}

#[test]
fn canary_enforces_the_configured_share_by_user() {
    let p = policy_with(
        json!({"rollout": {"mode": "canary", "canary_percent": 30, "canary_key": "user"}}),
        pii_rules(),
    );
    let body = serde_json::to_vec(&chat("mail a@example.com")).unwrap();
    let mut enforced = 0;
    for u in 0..4000 {
        let user = format!("user-{u}");
        let i = info(&user);
        let r = engine::rollout(&p, &i);
        let o = engine::evaluate(&p, &i, &r, Phase::Request, &body);
        assert_eq!(o.decision, Action::Redact);
        match o.verdict {
            Verdict::Forward { body: Some(_), .. } => {
                assert!(r.enforced);
                enforced += 1;
            }
            Verdict::Forward { body: None, .. } => assert!(!r.enforced),
            v => panic!("{v:?}"),
        }
        // The same user lands in the same bucket every time.
        assert_eq!(engine::rollout(&p, &i), r);
    }
    // 30% of 4000 = 1200, sd ≈ 29: allow ±4 sd.
    assert!((1084..=1316).contains(&enforced), "{enforced}");
}

#[test]
fn bad_bodies_get_the_on_error_decision_and_a_reason() {
    let refuse = policy(pii_rules());
    let allow = policy_with(json!({"on_error": "allow"}), pii_rules());
    let i = info("alice");
    let r = engine::rollout(&refuse, &i);
    let deep = "[".repeat(100_000);
    let cases: Vec<(&[u8], &str)> = vec![
        (b"", reason::BODY_EMPTY),
        (b"  \n", reason::BODY_EMPTY),
        (
            b"{\"model\": \"gpt-4o\", \"messages\": [",
            reason::BODY_UNPARSEABLE,
        ),
        (b"not json", reason::BODY_UNPARSEABLE),
        (b"{\"a\": \"\xff\xfe\"}", reason::BODY_NOT_UTF8),
        (deep.as_bytes(), reason::BODY_UNPARSEABLE),
    ];
    for (body, code) in cases {
        let o = engine::evaluate(&refuse, &i, &r, Phase::Request, body);
        assert_eq!(o.reason_code, code);
        assert_eq!(o.decision, Action::Refuse);
        assert!(matches!(o.verdict, Verdict::Respond { status: 400, .. }));
        assert!(!o.inspected);
        let o = engine::evaluate(&allow, &i, &r, Phase::Request, body);
        assert_eq!(o.decision, Action::Allow);
        assert_eq!(o.reason_code, code);
        assert_eq!(
            o.verdict,
            Verdict::Forward {
                body: None,
                flagged: false
            }
        );
    }
}

#[test]
fn very_long_strings_and_odd_json_are_handled() {
    let p = policy(pii_rules());
    let long = format!("{} a@example.com", "x".repeat(2_000_000));
    let o = run(&p, &chat(&long));
    assert_eq!(o.decision, Action::Redact);
    // JSON that is valid but not an API shape (at a path that names no API), under both
    // on_unknown_format settings.
    let odd =
        serde_json::to_vec(&json!({"foo": ["a@example.com", {"bar": 3}], "n": null})).unwrap();
    let i = RequestInfo {
        path: Some("/internal/tool"),
        ..info("alice")
    };
    let r = engine::rollout(&p, &i);
    let o = engine::evaluate(&p, &i, &r, Phase::Request, &odd);
    assert_eq!(o.decision, Action::Redact);
    assert_eq!(forwarded(&o)["foo"][0], "[EMAIL]");
    let skip = policy_with(json!({"on_unknown_format": "allow"}), pii_rules());
    let o = engine::evaluate(&skip, &i, &r, Phase::Request, &odd);
    assert_eq!(o.decision, Action::Allow);
    assert_eq!(o.reason_code, reason::UNSUPPORTED_FORMAT);
    for v in [
        json!(42),
        json!("str"),
        json!(null),
        json!([1, 2]),
        json!({}),
    ] {
        let _ = run(&p, &v);
    }
}

#[test]
fn response_phase_redacts_output_and_reads_usage() {
    let p = policy(json!([
        {"id": "out", "category": "pii.output", "match": {"detectors": ["email"], "phase": "response"},
         "action": "redact", "reason_code": "OUT"}
    ]));
    let resp = json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "Write to ceo@example.com"}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}});
    let o = run_at(&p, "/v1/chat/completions", Phase::Response, &resp);
    assert_eq!(o.decision, Action::Redact);
    assert_eq!(
        forwarded(&o)["choices"][0]["message"]["content"],
        "Write to [EMAIL]"
    );
    let u = o.usage.unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (Some(12), Some(7), Some(19))
    );
    assert_eq!(o.model.as_deref(), Some("gpt-4o-2024-08-06"));
    // The request phase ignores response-only rules.
    assert_eq!(run(&p, &chat("ceo@example.com")).decision, Action::Allow);
}

#[test]
fn anthropic_and_responses_bodies_are_inspected_with_roles() {
    let p = policy(pii_rules());
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 1024,
        "system": [{"type": "text", "text": "Escalations go to ops@example.com"}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]});
    let o = run_at(&p, "/v1/messages", Phase::Request, &body);
    assert_eq!(o.decision, Action::Redact);
    assert_eq!(
        forwarded(&o)["system"][0]["text"],
        "Escalations go to [EMAIL]"
    );

    let body = json!({"model": "gpt-4.1", "instructions": "Be brief.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "card 4111-1111-1111-1111"}]}]});
    let o = run_at(&p, "/v1/responses", Phase::Request, &body);
    assert_eq!(
        forwarded(&o)["input"][0]["content"][0]["text"],
        "card ****-****-****-1111"
    );
}

#[test]
fn records_carry_the_schema_and_no_prompt_text() {
    let p = policy(pii_rules());
    let i = info("alice");
    let r = engine::rollout(&p, &i);
    let body = serde_json::to_vec(&chat("secret plan: mail jane.doe@example.com now")).unwrap();
    let o = engine::evaluate(&p, &i, &r, Phase::Request, &body);
    let rec = AuditRecord::build(
        &p,
        &i,
        &r,
        &o,
        None,
        RecordMeta {
            record_id: "id-1",
            epoch_ms: 1_795_715_649_123,
        },
    );
    let text = rec.to_json();
    assert!(!text.contains("jane"), "{text}");
    assert!(!text.contains("secret plan"), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    for key in [
        "schema_version",
        "record_id",
        "request_id",
        "timestamp",
        "decision",
        "reason_code",
        "policy_id",
        "policy_user",
        "policy_project_id",
        "rollout_mode",
        "enforced",
        "triggered_categories",
        "triggered_rules",
        "phase",
        "provider",
        "model",
        "redactions",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["timestamp"], "2026-11-26T17:54:09.123Z");
    assert_eq!(v["policy_id"], "t@1");
    assert_eq!(v["decision"], "redact");
    assert_eq!(v["enforced"], true);
    assert_eq!(v["provider"], "openai");
    assert_eq!(v["redactions"], json!({"email": 1}));
    assert!(v.get("content").is_none());
}

#[test]
fn include_content_records_only_redacted_text() {
    let p = policy_with(
        json!({"include_content": true}),
        json!([{"id": "k", "category": "c.k", "match": {"keywords": {"terms": ["falcon"]}},
                "action": "allow", "reason_code": "SEEN"}]),
    );
    let o = run(
        &p,
        &chat("falcon: call +1 415-555-0100 or mail x@example.com, key AKIAIOSFODNN7EXAMPLE"),
    );
    let content = o.content.unwrap();
    let user = &content[1];
    assert_eq!(user.role, "user");
    assert_eq!(
        user.text,
        "[REDACTED]: call [PHONE] or mail [EMAIL], key [AWS_ACCESS_KEY]"
    );
}

#[test]
fn exchange_record_takes_the_more_severe_phase() {
    let p = policy(json!([
        {"id": "in", "category": "pii.email", "match": {"detectors": ["email"]},
         "action": "redact", "reason_code": "IN"},
        {"id": "out", "category": "secrets.key", "match": {"detectors": ["aws_access_key"], "phase": "response"},
         "action": "refuse", "reason_code": "OUT"}
    ]));
    let i = info("alice");
    let r = engine::rollout(&p, &i);
    let req = engine::evaluate(
        &p,
        &i,
        &r,
        Phase::Request,
        &serde_json::to_vec(&chat("a@example.com")).unwrap(),
    );
    let resp = json!({"object": "chat.completion", "model": "gpt-4o",
        "choices": [{"message": {"role": "assistant", "content": "use AKIAIOSFODNN7EXAMPLE"}}]});
    let res = engine::evaluate(
        &p,
        &i,
        &r,
        Phase::Response,
        &serde_json::to_vec(&resp).unwrap(),
    );
    let rec = AuditRecord::build(
        &p,
        &i,
        &r,
        &req,
        Some(&res),
        RecordMeta {
            record_id: "x",
            epoch_ms: 0,
        },
    );
    assert_eq!(rec.decision, "refuse");
    assert_eq!(rec.phase, "response");
    assert_eq!(rec.reason_code, "OUT");
    assert_eq!(rec.triggered_rules, ["in", "out"]);
    assert_eq!(rec.request.decision, "redact");
    assert_eq!(rec.response.as_ref().unwrap().decision, "refuse");
}
