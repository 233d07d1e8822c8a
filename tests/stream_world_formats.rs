//! Streamed output redacts the world formats of issue 13 item 3 when the entity arrives split
//! across events at any offset, exactly as whole-body evaluation does: the hold-back
//! (`engine::holdback`) must keep every piece until the entity is complete.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use policy_gateway::engine::stream::{StreamEnd, StreamInspector, StreamLimits};
use policy_gateway::llm::ApiFormat;
use policy_gateway::policy::Policy;
use serde_json::{json, Value};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Every world-format detector redacts output with its placeholder.
fn policy() -> Policy {
    let doc = json!({
        "id": "world", "version": "1",
        "rules": [{"id": "r", "category": "pii", "reason_code": "PII", "action": "redact",
                   "redact": {"style": "placeholder"},
                   "match": {"phase": "response", "detectors": [
                       "phone", "credit_card", "iban", "us_ssn", "uk_nino", "ca_sin",
                       "in_aadhaar", "in_pan", "fr_nir", "de_tax_id", "es_dni_nie",
                       "it_fiscal_code", "br_cpf", "au_tfn"]}}]
    });
    Policy::from_value(doc).unwrap()
}

fn chat_stream(deltas: &[&str]) -> Vec<u8> {
    let mut s = String::new();
    for d in deltas {
        let v = json!({"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"content": d}, "finish_reason": null}]});
        s.push_str(&format!("data: {v}\n\n"));
    }
    s.push_str("data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

/// The text a client reads from the stream's bytes.
fn shown(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| {
            let v: Value = serde_json::from_str(d).unwrap();
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

fn stream(policy: &Policy, deltas: &[&str]) -> String {
    let mut insp =
        StreamInspector::new(policy, ApiFormat::OpenaiChat, true, StreamLimits::default());
    // Each event its own network chunk, so the inspector decides after every one.
    let bytes = chat_stream(deltas);
    let mut out = Vec::new();
    for event in bytes.split_inclusive(|&c| c == b'\n') {
        out.extend(insp.push(policy, event));
    }
    out.extend(insp.finish(policy, StreamEnd::Complete));
    shown(&out)
}

#[test]
fn ids_split_at_every_offset_are_redacted() {
    let policy = policy();
    for (entity, placeholder) in [
        ("07700 900 123", "[PHONE]"),
        ("+1-212-555-0147x12345", "[PHONE]"),
        ("(212) 555-0147 ext. 12", "[PHONE]"),
        ("0049 30 12345678", "[PHONE]"),
        ("180000000000002", "[CREDIT_CARD]"),
        ("5018 0000 0009", "[CREDIT_CARD]"),
        ("gb82 west 1234 5698 7654 32", "[IBAN]"),
        ("912-70-1234", "[US_SSN]"),
        ("AB 12 34 56 C", "[UK_NINO]"),
        ("ABCPE1234F", "[IN_PAN]"),
        ("1 84 12 2A 451 089 33", "[FR_NIR]"),
        ("96 220 152 341", "[DE_TAX_ID]"),
        ("X-1835664-B", "[ES_DNI_NIE]"),
        ("12345678Z", "[ES_DNI_NIE]"),
        ("RSSMRA85T10A562S", "[IT_FISCAL_CODE]"),
        ("154.303.387-37", "[BR_CPF]"),
    ] {
        let text = format!("Your id is {entity} and that is all.");
        let want = format!("Your id is {placeholder} and that is all.");
        assert_eq!(stream(&policy, &[&text]), want, "whole");
        for i in 1..text.len() {
            let (a, b) = text.split_at(i);
            assert_eq!(stream(&policy, &[a, b]), want, "{entity} split at {i}");
        }
        // One character per event.
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let deltas: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(stream(&policy, &deltas), want, "{entity} char by char");
    }
}

#[test]
fn context_word_ids_split_at_every_offset_are_redacted() {
    let policy = policy();
    for (text, want) in [
        ("SIN: 046 454 286 ok.", "SIN: [CA_SIN] ok."),
        ("Aadhaar 6423 2322 1832 ok.", "Aadhaar [IN_AADHAAR] ok."),
        ("TFN 123 456 782 ok.", "TFN [AU_TFN] ok."),
        ("Phone: 612 34 56 78 ok.", "Phone: [PHONE] ok."),
    ] {
        for i in 1..text.len() {
            let (a, b) = text.split_at(i);
            assert_eq!(stream(&policy, &[a, b]), want, "{text} split at {i}");
        }
    }
}
