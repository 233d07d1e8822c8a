//! Policy validation: every mistake is rejected with an error naming the rule and the field.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use policy_gateway::engine::{self, RequestInfo};
use policy_gateway::llm::Phase;
use policy_gateway::policy::Policy;
use serde_json::{json, Value};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn rule() -> Value {
    json!({"id": "r1", "category": "pii.email", "match": {"detectors": ["email"]},
           "action": "redact", "reason_code": "PII"})
}

fn doc_with_rule(r: Value) -> Value {
    json!({"id": "p", "version": "1", "rules": [rule(), r]})
}

fn error(doc: Value) -> String {
    Policy::from_value(doc).unwrap_err().to_string()
}

#[test]
fn valid_minimal_policy_compiles() {
    let p = Policy::from_value(json!({"id": "p", "version": 7, "rules": [rule()]})).unwrap();
    assert_eq!(p.policy_id, "p@7");
    assert_eq!(p.rollout.mode.name(), "enforce");
}

#[test]
fn shipped_policies_compile() {
    for (name, text) in [
        ("default", include_str!("../policies/default.json")),
        ("pii-strict", include_str!("../policies/pii-strict.json")),
        ("secrets", include_str!("../policies/secrets.json")),
        ("redact", include_str!("../policies/redact.json")),
        (
            "pseudonymise",
            include_str!("../policies/pseudonymise.json"),
        ),
        (
            "default",
            include_str!("../policies/examples/default-v2.json"),
        ),
    ] {
        let p = Policy::from_json(text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.id, name);
        assert!(p.warnings.is_empty(), "{name}: {:?}", p.warnings);
    }
}

#[test]
fn rule_errors_name_the_rule_and_the_field() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({"id": "r2", "category": "pii.x", "match": {"detectors": ["emial"]}, "action": "redact", "reason_code": "X"}),
         "rules[1] \"r2\".match.detectors[0]: unknown detector \"emial\""),
        (json!({"id": "r2", "category": "pii.x", "match": {"detectors": ["email"]}, "action": "redact", "reason_code": "X", "colour": 1}),
         "rules[1] \"r2\".colour: unknown field `colour`"),
        (json!({"id": "r2", "category": "pii.x", "match": {"detector": ["email"]}, "action": "redact", "reason_code": "X"}),
         "rules[1] \"r2\".match.detector: unknown field `detector`"),
        (json!({"id": "r2", "category": "pii.x", "match": {"detectors": ["email"]}, "action": "block", "reason_code": "X"}),
         "rules[1] \"r2\".action: unknown variant `block`"),
        (json!({"id": "r2", "category": "PII", "match": {"detectors": ["email"]}, "action": "redact", "reason_code": "X"}),
         "rules[1] \"r2\".category"),
        (json!({"id": "r2", "category": "pii.x", "match": {"detectors": ["email"]}, "action": "redact", "reason_code": "lower"}),
         "rules[1] \"r2\".reason_code"),
        (json!({"id": "r2", "category": "pii.x", "match": {}, "action": "refuse", "reason_code": "X"}),
         "rules[1] \"r2\".match: needs at least one of"),
        (json!({"id": "r2", "category": "pii.x", "match": {"patterns": [{"regex": "("}]}, "action": "refuse", "reason_code": "X"}),
         "rules[1] \"r2\".match.patterns[0]: invalid regex"),
        (json!({"id": "r2", "category": "pii.x", "match": {"detectors": ["email"], "roles": ["admin"]}, "action": "refuse", "reason_code": "X"}),
         "rules[1] \"r2\".match.roles[0]: unknown role \"admin\""),
        (json!({"id": "r2", "category": "pii.x", "match": {"detectors": ["email"]}, "action": "refuse", "reason_code": "X", "redact": {}}),
         "rules[1] \"r2\".redact: only valid with \"action\": \"redact\""),
        (json!({"id": "r2", "category": "pii.x", "match": {"models": {"deny": ["x"]}}, "action": "redact", "reason_code": "X"}),
         "rules[1] \"r2\".action: redact needs a text match"),
        (json!({"id": "r2", "category": "pii.x", "match": {"detectors": ["email"]}, "action": "redact", "reason_code": "X", "redact": {"style": "mask", "token": "fake"}}),
         "rules[1] \"r2\".redact.token: only valid with \"style\": \"pseudonym\""),
        (json!({"id": "r2", "category": "pii.x", "match": {"detectors": ["email"]}, "action": "redact", "reason_code": "X", "redact": {"restore": false}}),
         "rules[1] \"r2\".redact.restore: only valid with \"style\": \"pseudonym\""),
        (json!({"id": "r2", "category": "pii.x", "match": {"detectors": ["email"]}, "action": "redact", "reason_code": "X", "redact": {"style": "pseudonym", "token": "uuid"}}),
         "rules[1] \"r2\".redact.token: unknown variant `uuid`"),
        (json!({"id": "r2", "category": "pii.x", "match": {"models": {"deny": ["x"]}}, "action": "rewrite", "reason_code": "X"}),
         "rules[1] \"r2\".rewrite: required"),
        (json!({"id": "r2", "category": "pii.x", "match": {"models": {"deny": ["x"]}}, "action": "rewrite", "reason_code": "X", "rewrite": {}}),
         "rules[1] \"r2\".rewrite: needs at least one of"),
        (json!({"id": "r2", "category": "pii.x", "match": {"detectors": ["email"], "phase": "response"}, "action": "rewrite", "reason_code": "X", "rewrite": {"set_model": "m"}}),
         "rules[1] \"r2\".rewrite: set_model, cap_max_tokens and add_system_message rewrite requests only"),
        (json!({"id": "r2", "category": "pii.x", "match": {"models": {"deny": ["x"]}, "phase": "both"}, "action": "refuse", "reason_code": "X"}),
         "rules[1] \"r2\".match.phase"),
        (json!({"id": "r2", "category": "pii.x", "match": {"detectors": ["email"]}, "action": "refuse", "reason_code": "X", "refuse": {"status": 99}}),
         "rules[1] \"r2\".refuse.status: 99 is not an HTTP status"),
        (json!({"id": "r2", "category": "pii.x", "match": {"keywords": {"terms": []}}, "action": "refuse", "reason_code": "X"}),
         "rules[1] \"r2\".match.keywords.terms: must not be empty"),
        (json!({"id": "r2", "category": "pii.x", "match": {"keywords": {"terms": ["ok", " "]}}, "action": "refuse", "reason_code": "X"}),
         "rules[1] \"r2\".match.keywords.terms[1]: must not be blank"),
        (json!({"id": "r1", "category": "pii.x", "match": {"detectors": ["email"]}, "action": "refuse", "reason_code": "X"}),
         "rules[1] \"r1\".id: duplicate rule id"),
        (json!({"category": "pii.x", "match": {"detectors": ["email"]}, "action": "refuse", "reason_code": "X"}),
         "rules[1]: missing field `id`"),
        (json!({"id": "r2", "category": "pii.x", "match": {"detectors": ["email"]}, "action": "escalate", "reason_code": "X", "escalate": {"mode": "flag", "status": 202}}),
         "rules[1] \"r2\".escalate: status and message apply to mode \"hold\" only"),
    ];
    for (r, expected) in cases {
        let e = error(doc_with_rule(r.clone()));
        assert!(
            e.starts_with(expected),
            "for {r}\n got: {e}\nwant: {expected}…"
        );
    }
}

#[test]
fn document_errors_name_the_field() {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"id": "", "version": "1", "rules": []}),
            "id: must not be empty",
        ),
        (
            json!({"id": "a b", "version": "1", "rules": []}),
            "id: \"a b\" must be",
        ),
        (
            json!({"id": "p", "version": "1", "rules": [], "extra": 1}),
            "unknown field `extra`",
        ),
        (json!({"id": "p", "rules": []}), "missing field `version`"),
        (
            json!({"id": "p", "version": "1", "rules": [], "rollout": {"mode": "canary"}}),
            "rollout.canary_percent: required when mode is \"canary\"",
        ),
        (
            json!({"id": "p", "version": "1", "rules": [], "rollout": {"mode": "canary", "canary_percent": 101}}),
            "rollout.canary_percent: 101 is not between 0 and 100",
        ),
        (
            json!({"id": "p", "version": "1", "rules": [], "rollout": {"mode": "enforce", "canary_percent": 5}}),
            "rollout.canary_percent: only valid when mode is \"canary\"",
        ),
        (
            json!({"id": "p", "version": "1", "rules": [], "rollout": {"mode": "dark"}}),
            "unknown variant `dark`",
        ),
        (
            json!({"id": "p", "version": "1", "rules": [], "on_error": "ignore"}),
            "unknown variant `ignore`",
        ),
    ];
    for (doc, expected) in cases {
        let e = error(doc.clone());
        assert!(
            e.contains(expected),
            "for {doc}\n got: {e}\nwant: {expected}"
        );
    }
}

#[test]
fn unfiltered_patterns_compile_with_a_warning() {
    let doc = json!({"id": "p", "version": "1", "rules": [
        {"id": "r", "category": "c.x", "match": {"patterns": [{"regex": "EMP-\\d+"}]}, "action": "refuse", "reason_code": "X"}
    ]});
    let p = Policy::from_value(doc).unwrap();
    assert_eq!(p.warnings.len(), 1);
    assert!(p.warnings[0].contains("rules[0] \"r\".match.patterns[0]"));
}

/// Issue 11 item 12: a rule that reads user text but not the other labels a client can put on
/// the same text is bypassed by relabelling; `check` says so.
#[test]
fn rules_reading_user_text_alone_warn() {
    let with_roles = |roles: Value, phase: &str| {
        let doc = json!({"id": "p", "version": "1", "rules": [
            {"id": "r", "category": "c.x", "match": {"detectors": ["prompt_injection"], "roles": roles, "phase": phase},
             "action": "refuse", "reason_code": "X"}
        ]});
        Policy::from_value(doc).unwrap().warnings
    };
    let w = with_roles(json!(["user"]), "request");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("rules[0] \"r\".match.roles: reads user text but not system, developer, assistant, other"),
        "{w:?}"
    );
    let w = with_roles(json!(["user", "system", "developer", "assistant"]), "both");
    assert!(w[0].contains("but not other:"), "{w:?}");
    for (roles, phase) in [
        (json!(["tool"]), "request"),
        (
            json!(["system", "developer", "user", "assistant", "other"]),
            "request",
        ),
        (json!(["user"]), "response"),
    ] {
        assert!(
            with_roles(roles.clone(), phase).is_empty(),
            "{roles} {phase}"
        );
    }
}

/// Pseudo-random terms: `count` words of `len` characters drawn from `chars`.
fn terms(count: usize, len: usize, chars: &[char]) -> Vec<String> {
    let mut x: u64 = 1;
    (0..count)
        .map(|_| {
            (0..len)
                .map(|_| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    chars[(x >> 33) as usize % chars.len()]
                })
                .collect()
        })
        .collect()
}

#[test]
fn large_keyword_lists_compile_and_match() {
    // A 10,000-term Chinese word list (4 ideographs each) and 20,000 ASCII terms of 12 bytes:
    // normal DLP lists, which a dense automaton table could not hold.
    let cjk: Vec<char> = (0x4e00..0x4e00 + 3500).filter_map(char::from_u32).collect();
    let ascii: Vec<char> = "abcdefghijklmnopqrstuvwxyz0123456789".chars().collect();
    let info = RequestInfo {
        request_id: "big",
        path: Some("/v1/chat/completions"),
        user: None,
        project: None,
    };
    for terms in [terms(10_000, 4, &cjk), terms(20_000, 12, &ascii)] {
        let r = json!({"id": "r2", "category": "secret.words",
                       "match": {"keywords": {"terms": terms, "whole_word": false}},
                       "action": "refuse", "reason_code": "WORDS"});
        let p = Policy::from_value(doc_with_rule(r)).unwrap();
        assert!(p.prefilter.is_ready());
        let rollout = engine::rollout(&p, &info);
        for (text, hit) in [
            (format!("about {} here", terms[4321]), true),
            ("nothing".into(), false),
        ] {
            let body = json!({"model": "m", "messages": [{"role": "user", "content": text}]});
            let d = engine::evaluate(
                &p,
                &info,
                &rollout,
                Phase::Request,
                body.to_string().as_bytes(),
            );
            assert_eq!(format!("{d:?}").contains("WORDS"), hit, "{text}");
        }
    }
}

#[test]
fn a_prefilter_past_the_budget_warns() {
    // Two keyword groups (case-sensitive and not) each within the 16 MiB budget, their union
    // (the prefilter) past it: ~1,000,000 trie states each at ~13 bytes a state.
    let hex: Vec<char> = "0123456789abcdef".chars().collect();
    let all = terms(100_000, 24, &hex);
    let (a, b) = all.split_at(50_000);
    let doc = json!({"id": "p", "version": "1", "rules": [rule(),
        {"id": "r2", "category": "secret.words", "match": {"keywords": {"terms": a, "case_sensitive": true}},
         "action": "refuse", "reason_code": "WORDS"},
        {"id": "r3", "category": "secret.words", "match": {"keywords": {"terms": b}},
         "action": "refuse", "reason_code": "WORDS"}]});
    let p = Policy::from_value(doc).unwrap();
    assert!(!p.prefilter.is_ready());
    assert!(
        p.warnings.iter().any(|w| w.contains("prefilter")),
        "{:?}",
        p.warnings
    );
}

/// The two range errors quote the number as core's float `Display` wrote it (whole numbers
/// without `.0`, no exponent), now from serde_json's float writer.
#[test]
fn range_errors_quote_the_number_exactly() {
    let canary = |p: Value| {
        error(json!({"id": "p", "version": "1", "rules": [],
                     "rollout": {"mode": "canary", "canary_percent": p}}))
    };
    for (p, want) in [
        (json!(100.5), "100.5"),
        (json!(-0.25), "-0.25"),
        (json!(1e3), "1000"),
        (json!(150), "150"),
    ] {
        assert_eq!(
            canary(p),
            format!("rollout.canary_percent: {want} is not between 0 and 100")
        );
    }
    let score = |s: Value| {
        error(json!({"id": "p", "version": "1", "rules": [{
            "id": "r", "category": "c", "action": "refuse", "reason_code": "R",
            "match": {"detectors": ["prompt_injection"], "min_score": s}}]}))
    };
    for (s, want) in [
        (json!(1.5), "1.5"),
        (json!(-1e-7), "-0.0000001"),
        (json!(2), "2"),
        (json!(1.0000000000000002), "1.0000000000000002"),
        (json!(12345678.875), "12345678.875"),
    ] {
        assert_eq!(
            score(s),
            format!("rules[0] \"r\".match.min_score: {want} is not between 0 and 1")
        );
    }
}
