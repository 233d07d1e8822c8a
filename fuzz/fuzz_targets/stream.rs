//! Streamed (SSE) responses on arbitrary bytes cut into arbitrary chunks, for every API and
//! shipped policy:
//! - no panic;
//! - what is held after every chunk stays within the limits alone (never a function of how
//!   much was streamed): one partial event, the queue, the text of queued events, and a little
//!   context per open text;
//! - every event the client gets is an event of the upstream, in order, with its fields, its
//!   data unchanged or (rewritten) still JSON where the upstream's was; nothing is lost: when
//!   the policy does not stop the stream the client gets as many events as the upstream sent,
//!   and when it does, the upstream's first events then the provider's error event(s) only;
//! - shadow streams (not enforced) pass byte for byte.
#![no_main]

#[path = "policies.rs"]
mod policies;

use libfuzzer_sys::fuzz_target;
use policy_gateway::engine::stream::{StreamEnd, StreamInspector, StreamLimits};
use policy_gateway::llm::{sse, ApiFormat};
use serde_json::Value;

const FORMATS: [ApiFormat; 4] = [
    ApiFormat::OpenaiChat,
    ApiFormat::OpenaiCompletions,
    ApiFormat::OpenaiResponses,
    ApiFormat::AnthropicMessages,
];

/// Small limits (the least the configuration allows, about), so that inputs of a few KiB
/// reach them.
const LIMITS: StreamLimits = StreamLimits {
    max_event_bytes: 2048,
    max_holdback_bytes: 64,
    max_queued_bytes: 512,
};

/// Released text kept per open text as context for detectors (`CONTEXT_BYTES` in
/// `engine::stream`), and the most texts one stream may open (`MAX_CHANNELS`).
const CONTEXT_BYTES: usize = 128;
const MAX_CHANNELS: usize = 1024;

/// Bytes held with no text open: a partial event, the queue, and the text of queued events
/// (decoded JSON strings are never longer than their bytes in the event).
const HELD_BOUND: usize = LIMITS.max_event_bytes + 2 * LIMITS.max_queued_bytes;

/// The events of a whole byte stream that carry something (blank and comment-only blocks
/// carry nothing a client reads).
fn events(bytes: &[u8]) -> Vec<sse::Event> {
    let mut parser = sse::Parser::new(usize::MAX);
    let mut out = Vec::new();
    let fed = parser.feed(bytes, &mut out);
    assert!(fed.is_ok());
    out.extend(parser.finish());
    out.retain(|e| e.data.is_some() || e.data_invalid || e.name.is_some() || e.id.is_some());
    out
}

fn is_json(data: Option<&str>) -> bool {
    data.is_some_and(|d| serde_json::from_str::<Value>(d).is_ok())
}

/// The client's event is the upstream's, or the upstream's with its JSON data rewritten.
fn same_event(upstream: &sse::Event, client: &sse::Event) -> bool {
    upstream.name == client.name
        && upstream.id == client.id
        && upstream.data_invalid == client.data_invalid
        && (upstream.data == client.data
            || (is_json(upstream.data.as_deref()) && is_json(client.data.as_deref())))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((&cut, body)) = rest.split_first() else {
        return;
    };
    let shipped = policies::shipped();
    let policy = &shipped[usize::from(selector) % shipped.len()];
    let format = FORMATS[usize::from(selector >> 2) % FORMATS.len()];
    let enforced = selector & 0x80 == 0;
    let mut insp = StreamInspector::new(policy, format, enforced, LIMITS);
    let mut out = Vec::new();
    for chunk in body.chunks(usize::from(cut).max(1)) {
        out.extend(insp.push(policy, chunk));
        let held = insp.held_bytes();
        if held > HELD_BOUND {
            // Only then ask how many texts were opened (`segments` counts every one seen).
            let texts = (insp.outcome(policy, 0).segments as usize).min(MAX_CHANNELS);
            assert!(
                held <= HELD_BOUND + texts * CONTEXT_BYTES,
                "held {held} bytes with {texts} texts"
            );
        }
    }
    out.extend(insp.finish(policy, StreamEnd::UpstreamIncomplete));
    let outcome = insp.outcome(policy, 10);
    if !enforced {
        assert_eq!(out, body);
        return;
    }
    let refused = outcome.stream_summary.as_ref().map(|s| s.end) == Some("refused");
    let upstream = events(body);
    let client = events(&out);
    let same = upstream
        .iter()
        .zip(&client)
        .take_while(|(u, c)| same_event(u, c))
        .count();
    if refused {
        // Then only the provider's error event, and `[DONE]` for OpenAI (which may look like
        // the upstream's next events: both are JSON).
        let tail = client.get(same..).unwrap_or_default();
        let ending =
            |e: &sse::Event| is_json(e.data.as_deref()) || e.data.as_deref() == Some("[DONE]");
        assert!(
            tail.len() <= 2 && tail.iter().all(ending) && client.last().is_some_and(ending),
            "refused stream: {} upstream events, {} client events, {same} alike",
            upstream.len(),
            client.len()
        );
    } else {
        assert_eq!(
            (same, client.len()),
            (upstream.len(), upstream.len()),
            "events lost, added or changed"
        );
    }
});
