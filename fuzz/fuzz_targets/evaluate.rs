//! Body parsing and evaluation on arbitrary bytes, under every shipped policy, both phases
//! and every API path: no panic, and every changed body is valid JSON.
#![no_main]

#[path = "policies.rs"]
mod policies;

use libfuzzer_sys::fuzz_target;
use policy_gateway::audit::record::RecordMeta;
use policy_gateway::audit::AuditRecord;
use policy_gateway::engine::{self, RequestInfo, Verdict};
use policy_gateway::llm::Phase;

const PATHS: [Option<&str>; 6] = [
    None,
    Some("/v1/chat/completions"),
    Some("/v1/responses"),
    Some("/v1/completions"),
    Some("/v1/embeddings"),
    Some("/v1/messages"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let policies = policies::shipped();
    let policy = &policies[usize::from(selector) % policies.len()];
    let phase = if selector & 0x80 != 0 {
        Phase::Response
    } else {
        Phase::Request
    };
    let info = RequestInfo {
        request_id: "fuzz",
        path: PATHS[usize::from(selector >> 2) % PATHS.len()],
        user: Some("fuzzer"),
        project: None,
    };
    let rollout = engine::rollout(policy, &info);
    let outcome = engine::evaluate(policy, &info, &rollout, phase, body);
    if let Verdict::Forward {
        body: Some(changed),
        ..
    } = &outcome.verdict
    {
        assert!(serde_json::from_slice::<serde_json::Value>(changed).is_ok());
    }
    let record = AuditRecord::build(
        policy,
        &info,
        &rollout,
        &outcome,
        None,
        RecordMeta {
            record_id: "r",
            epoch_ms: 0,
        },
    );
    let _ = record.to_json();
});
