//! Issue 13, items 1 and 2: every text that reaches the model is inspected (fields the known
//! formats did not read, unknown keys, object keys, long numbers), and what a client does to
//! hide an entity (invisible characters, compatibility forms, escapes, nested JSON, base64)
//! is undone before detection, with redaction on the bytes that were sent. Each case is one
//! of the outside review's. Runs natively and under a wasm runtime.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::Engine as _;
use policy_gateway::engine::{self, PhaseOutcome, RequestInfo, Verdict};
use policy_gateway::llm::Phase;
use policy_gateway::policy::{Action, Policy};
use serde_json::{json, Value};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Redacts e-mail, phone, card and SSN with placeholders, refuses keys, flags a keyword.
fn policy() -> Policy {
    Policy::from_value(json!({"id": "t", "version": "1", "rules": [
        {"id": "pii", "category": "pii.personal_data",
         "match": {"detectors": ["email", "phone", "credit_card", "us_ssn", "iban"], "phase": "both"},
         "action": "redact", "reason_code": "PII"},
        {"id": "keys", "category": "secrets.credential",
         "match": {"detectors": ["aws_access_key", "openai_key", "github_token"], "phase": "both"},
         "action": "refuse", "reason_code": "SECRET"},
        {"id": "kw", "category": "data.confidential",
         "match": {"keywords": {"terms": ["project nightingale"]}},
         "action": "escalate", "reason_code": "CONFIDENTIAL", "escalate": {"mode": "flag"}}
    ]}))
    .unwrap()
}

fn run_at(path: &str, phase: Phase, body: &Value) -> PhaseOutcome {
    let p = policy();
    let i = RequestInfo {
        request_id: "r",
        path: Some(path),
        user: None,
        project: None,
    };
    let r = engine::rollout(&p, &i);
    engine::evaluate(&p, &i, &r, phase, &serde_json::to_vec(body).unwrap())
}

fn run(path: &str, body: &Value) -> PhaseOutcome {
    run_at(path, Phase::Request, body)
}

/// The forwarded body, which must be JSON.
fn forwarded(o: &PhaseOutcome) -> Value {
    match &o.verdict {
        Verdict::Forward { body: Some(b), .. } => serde_json::from_slice(b).unwrap(),
        v => panic!(
            "expected a changed forward, got {v:?} ({:?})",
            o.reason_code
        ),
    }
}

fn chat(text: &str) -> Value {
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": text}]})
}

const CHAT: &str = "/v1/chat/completions";

/// The redacted user text of a chat request.
fn redacted(text: &str) -> String {
    let o = run(CHAT, &chat(text));
    assert_eq!(o.decision, Action::Redact, "{text:?}: {:?}", o.reason_code);
    forwarded(&o)["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn invisible_characters_inside_entities() {
    assert_eq!(
        redacted("card 4111\u{200b}1111\u{200b}1111\u{200b}1111 ok"),
        "card [CREDIT_CARD] ok"
    );
    assert_eq!(
        redacted("mail b\u{ad}ob@exa\u{200d}mple.com now"),
        "mail [EMAIL] now"
    );
    assert_eq!(redacted("ssn 536\u{2060}-27-6083."), "ssn [US_SSN].");
    let key = run(CHAT, &chat("AKIA\u{200b}IOSFODNN7EXAMPLE"));
    assert_eq!(key.decision, Action::Refuse);
    let kw = run(CHAT, &chat("about project night\u{ad}ingale"));
    assert_eq!(kw.decision, Action::Escalate);
}

#[test]
fn compatibility_forms_inside_entities() {
    assert_eq!(
        redacted("card ４１１１ １１１１ １１１１ １１１１"),
        "card [CREDIT_CARD]"
    );
    assert_eq!(redacted("bob＠example.com"), "[EMAIL]");
    // French digit groups: NBSP and the narrow NBSP.
    assert_eq!(
        redacted("carte 4111\u{a0}1111\u{a0}1111\u{a0}1111"),
        "carte [CREDIT_CARD]"
    );
    assert_eq!(
        redacted("carte 4111\u{202f}1111\u{202f}1111\u{202f}1111"),
        "carte [CREDIT_CARD]"
    );
    assert_eq!(redacted("write to bøb@example.com"), "write to [EMAIL]");
    assert_eq!(redacted("jrmccalx@examрle.com"), "[EMAIL]");
}

#[test]
fn escapes_are_decoded_and_redacted_where_they_were() {
    assert_eq!(redacted("to=jane%40example.com&x=1"), "to=[EMAIL]&x=1");
    assert_eq!(redacted("bob&#64;example.com"), "[EMAIL]");
    assert_eq!(redacted(r"bob\u0040example.com"), "[EMAIL]");
}

#[test]
fn base64_encoded_key_is_found() {
    let b64 =
        base64::engine::general_purpose::STANDARD.encode("aws_access_key_id=AKIAIOSFODNN7EXAMPLE");
    let o = run(CHAT, &chat(&format!("decode this: {b64}")));
    assert_eq!(o.decision, Action::Refuse);
    assert_eq!(o.reason_code, "SECRET");
}

/// JSON text inside a string (tool-call arguments): decoded, inspected, redacted, and the
/// arguments stay JSON.
#[test]
fn json_inside_tool_call_arguments() {
    let body = json!({"model": "gpt-4o", "messages": [
        {"role": "user", "content": "mail him"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "send", "arguments": "{\"to\":\"bob\\u0040example.com\",\"card\":4111111111111111}"}}]}
    ]});
    let o = run(CHAT, &body);
    assert_eq!(o.decision, Action::Redact);
    let out = forwarded(&o);
    let args = out["messages"][1]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    let args: Value = serde_json::from_str(args).expect("arguments stay JSON");
    assert_eq!(args, json!({"to": "[EMAIL]", "card": "[CREDIT_CARD]"}));

    // In a response too.
    let response = json!({"object": "chat.completion", "choices": [{"index": 0, "message": {
        "role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function",
        "function": {"name": "send", "arguments": "{\"to\": \"bob\\u0040example.com\"}"}}]}}]});
    let o = run_at(CHAT, Phase::Response, &response);
    let out = forwarded(&o);
    let args = out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(args).unwrap(),
        json!({"to": "[EMAIL]"})
    );
}

/// The serialized forwarded body contains none of `values`.
fn clean_of(o: &PhaseOutcome, values: &[&str]) {
    let out = forwarded(o).to_string();
    for v in values {
        assert!(!out.contains(v), "{v} forwarded in {out}");
    }
}

#[test]
fn openai_chat_fields_never_read_before() {
    let body = json!({"model": "gpt-4o",
        "messages": [{"role": "user", "content": [
            {"type": "input_text", "text": "mine: ann@example.com"}]}],
        "tools": [{"type": "function", "function": {"name": "lookup",
            "description": "Looks up bob@example.com records",
            "parameters": {"type": "object", "properties": {"q": {"type": "string",
                "description": "or call 415-555-0100"}}}}}],
        "prediction": {"type": "content", "content": "card 4111 1111 1111 1111"},
        "response_format": {"type": "json_schema", "json_schema": {"name": "r",
            "description": "for carol@example.com", "schema": {"type": "object"}}},
        "session_note": "ssn 536-27-6083"
    });
    let o = run(CHAT, &body);
    assert_eq!(o.decision, Action::Redact);
    clean_of(
        &o,
        &[
            "ann@",
            "bob@",
            "415-555-0100",
            "4111 1111",
            "carol@",
            "914-27-6083",
        ],
    );
    let out = forwarded(&o);
    // Structure kept: names, types and the model are not text.
    assert_eq!(out["tools"][0]["function"]["name"], "lookup");
    assert_eq!(out["tools"][0]["type"], "function");
    assert_eq!(out["model"], "gpt-4o");
}

#[test]
fn anthropic_fields_never_read_before() {
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
    "tools": [{"name": "t", "description": "Sends to dan@example.com",
               "input_schema": {"type": "object"}}],
    "messages": [
        {"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                "data": "Contract for erin@example.com"}, "title": "c"},
            {"type": "search_result", "source": "https://x.example", "title": "r",
                "content": [{"type": "text", "text": "phone 415-555-0199"}]}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "tu", "name": "t",
            "input": {"frank@example.com": "primary"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                "data": "card 4111 1111 1111 1111"}}]}]}
    ]});
    let o = run("/v1/messages", &body);
    assert_eq!(o.decision, Action::Redact);
    clean_of(
        &o,
        &["dan@", "erin@", "415-555-0199", "frank@", "4111 1111"],
    );
    let out = forwarded(&o);
    assert_eq!(
        out["messages"][1]["content"][0]["input"],
        json!({"[EMAIL]": "primary"})
    );
}

#[test]
fn responses_prompt_variables() {
    let body = json!({"model": "gpt-4.1", "prompt": {"id": "pmpt_1", "version": "2",
        "variables": {"customer": "gina@example.com",
                      "note": {"type": "input_text", "text": "card 4111 1111 1111 1111"}}}});
    let o = run("/v1/responses", &body);
    assert_eq!(o.decision, Action::Redact);
    clean_of(&o, &["gina@", "4111 1111"]);
    assert_eq!(forwarded(&o)["prompt"]["id"], "pmpt_1");
}

#[test]
fn bedrock_converse_and_ollama_generate() {
    let converse = json!({"messages": [{"role": "user", "content": [{"text": "hal@example.com"}]}],
        "system": [{"text": "card 4111 1111 1111 1111"}]});
    for path in [
        "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse",
        "/bedrock/any",
    ] {
        let o = run(path, &converse);
        assert_eq!(o.decision, Action::Redact, "{path}");
        assert!(o.segments >= 2, "{path}: {}", o.segments);
        clean_of(&o, &["hal@", "4111 1111"]);
    }
    let generate = json!({"model": "llama3", "prompt": "Hi", "system": "Reply to ida@example.com"});
    let o = run("/api/generate", &generate);
    assert_eq!(o.decision, Action::Redact);
    clean_of(&o, &["ida@"]);
}

#[test]
fn keys_and_numbers_of_unknown_shapes() {
    let o = run(
        "/custom/llm",
        &json!({"card": 4111111111111111u64, "jo@example.com": {"x": 1}}),
    );
    assert_eq!(o.decision, Action::Redact);
    let out = forwarded(&o);
    assert_eq!(out, json!({"card": "[CREDIT_CARD]", "[EMAIL]": {"x": 1}}));
    // Numbers too short to identify anyone, and known fields, stay.
    let o = run(
        CHAT,
        &json!({"model": "gpt-4o", "max_tokens": 4111, "temperature": 0.5,
        "messages": [{"role": "user", "content": "hi"}], "seed": 1234}),
    );
    assert_eq!(o.decision, Action::Allow);
}

/// A key two redactions would give the same name keeps both values.
#[test]
fn redacted_keys_never_collide() {
    let o = run(
        "/custom/llm",
        &json!({"a@example.com": 1, "b@example.com": 2}),
    );
    let out = forwarded(&o);
    let obj = out.as_object().unwrap();
    assert_eq!(obj.len(), 2);
    let mut values: Vec<i64> = obj.values().map(|v| v.as_i64().unwrap()).collect();
    values.sort();
    assert_eq!(values, [1, 2]);
    assert!(obj.keys().all(|k| k.starts_with("[EMAIL]")));
}

/// Binary payloads (images, audio, base64 documents) and signed thinking are not text.
#[test]
fn binary_payloads_and_signed_blocks_are_left_alone() {
    let png = base64::engine::general_purpose::STANDARD.encode([0x89u8; 300]);
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [
        {"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
            {"type": "text", "text": "what is it?"}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "mail jo@example.com",
            "signature": "EqQBCgIYAhIM"}]}]});
    let o = run("/v1/messages", &body);
    assert_eq!(o.decision, Action::Allow, "{:?}", o.triggered_rules);
    assert_eq!(o.segments, 1);
}

/// Ids are structure in the provider's stream events, but in a request the client writes
/// them: a value there is inspected like any other.
#[test]
fn ids_in_requests_are_inspected() {
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"id": "kim@example.com", "call_id": "4111 1111 1111 1111"}});
    let o = run(CHAT, &body);
    assert_eq!(o.decision, Action::Redact);
    clean_of(&o, &["kim@", "4111 1111"]);
}
