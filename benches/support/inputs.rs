//! The engine benchmark's inputs, shared by the native benchmark (`benches/engine.rs`) and the
//! V8 one (`bench/v8`), so both measure the same bytes: typical chat bodies of growing size, a
//! body the default policy redacts, and adversarial bodies aimed at each detector family.

use serde_json::json;

pub const TYPICAL: &str = "Our quarterly planning meeting covered the roadmap for the next two \
releases, the hiring plan for the platform team, and the migration of the billing service to \
the new cluster. Please draft a summary for the leadership update, highlighting risks around \
the data migration timeline and the dependencies on the identity team. Keep it under three \
hundred words and use a neutral tone. ";

/// A contact sheet: nearly every word is an entity some detector must find (phones in
/// national and international formats, cards, IBANs, SSNs, national ids, e-mails, IPs), the
/// worst case for the validators rather than the anchors.
pub const PII_DENSE: &str = "Phone: 07700 900123, +44 20 7946 0958, (415) 555-0100 x12, \
0049 30 12345678, 01 23 45 67 89, 090-1234-5678, (11) 91234-5678; card 4111 1111 1111 1111, \
5018 0000 0009, 3530111333300000; IBAN GB82 WEST 1234 5698 7654 32, de89370400440532013000; \
SSN 536-22-1234, 912-70-1234; NINO QQ 12 34 56 C; PAN ABCPE1234F; NIE X1234567L; \
mail jane.doe@example.com; host 10.20.30.40; CPF 123.456.789-09; ";

/// An OpenAI chat body whose user message is `text` repeated to `target` bytes.
pub fn chat_body(text: &str, target: usize) -> Vec<u8> {
    let mut content = String::new();
    while content.len() < target {
        content.push_str(text);
    }
    content.truncate(target);
    serde_json::to_vec(&json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant for ACME Corp."},
            {"role": "user", "content": content}
        ]
    }))
    .unwrap_or_default()
}

/// Every case, in report order: (name, body).
pub fn cases() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = [1024, 4096, 16384, 131072]
        .iter()
        .map(|&size| (format!("typical chat {size}"), chat_body(TYPICAL, size)))
        .collect();
    let pii = format!(
        "{TYPICAL} Contact jane.doe@example.com or +1 415-555-0100, card 4111 1111 1111 1111. "
    );
    out.push(("chat with PII 4096 (redacts)".into(), chat_body(&pii, 4096)));
    out.push(("PII-dense 4096".into(), chat_body(PII_DENSE, 4096)));
    let adversarial: [(&str, String); 5] = [
        ("digits", "1234567890 ".repeat(10)),
        ("at-signs", "a@b@c@d@e@ ".repeat(10)),
        ("base64-ish", "eyJhbGciOiJIUzI1NiJ9AKIAsk-ghp_ ".repeat(4)),
        (
            "near-miss keywords",
            "ignore the previous email, project nightingal ".repeat(3),
        ),
        ("colons", "a:b:c::d:e:f:1:2:3 ".repeat(6)),
    ];
    for (name, text) in adversarial {
        out.push((format!("adversarial {name} 16384"), chat_body(&text, 16384)));
    }
    out
}

/// A typical decision record as the filter emits it before chaining (the README's example: a
/// redaction of an Anthropic request, both phases inspected, usage): what the audit chain
/// links, hashes and ships once per exchange.
pub fn audit_record() -> String {
    json!({
        "schema_version": "1.2", "record_type": "decision",
        "record_id": "01a2193e-0715-7f98-a837-1c40719f3cc7", "request_id": "enf-07",
        "timestamp": "2026-11-26T19:03:45.173Z", "decision": "redact",
        "reason_code": "PII_REDACTED", "policy_id": "default@1", "policy_user": "grace",
        "policy_project_id": "proj-demo", "policy_user_source": "header:x-user-id",
        "policy_user_verified": true, "policy_project_source": "header:x-project-id",
        "rollout_mode": "enforce", "enforced": true,
        "triggered_categories": ["pii.personal_data"], "triggered_rules": ["redact-personal-data"],
        "phase": "request", "provider": "anthropic", "api_format": "anthropic_messages",
        "model": "claude-sonnet-4-5", "response_model": "claude-sonnet-4-5", "stream": false,
        "request": {"decision": "redact", "reason_code": "PII_REDACTED",
                    "triggered_rules": ["redact-personal-data"], "inspected": true,
                    "segments": 1, "body_bytes": 159},
        "response": {"decision": "allow", "reason_code": "NO_RULE_MATCHED", "triggered_rules": [],
                     "inspected": true, "segments": 1, "body_bytes": 231},
        "detections": {"phone": 1, "us_ssn": 1}, "redactions": {"phone": 1, "us_ssn": 1},
        "rewrites": [], "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
        "http_status": 200, "duration_ms": 45, "gateway": "demo-gateway"
    })
    .to_string()
}
