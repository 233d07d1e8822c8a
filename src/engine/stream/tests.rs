//! Streamed responses against whole-body evaluation, byte for byte, with every split.

use std::collections::BTreeMap;

use serde_json::Value;

use super::channels::MAX_CHANNELS;
use super::*;
use crate::policy::Action;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const CARD: &str = "4111 1111 1111 1111";

fn default_policy() -> Policy {
    Policy::from_json(include_bytes!("../../../policies/default.json")).unwrap()
}

/// A small deterministic generator: `next(n)` is in `0..n`.
fn lcg(mut seed: u64) -> impl FnMut(usize) -> usize {
    move |n| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n
    }
}

/// What whole-body evaluation of `text` as an OpenAI chat response gives: the redacted
/// text (None when refused) and the redaction counts.
fn whole_body(policy: &Policy, text: &str) -> (Option<String>, BTreeMap<String, u32>) {
    let body = serde_json::json!({"id": "c", "object": "chat.completion", "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]});
    let info = super::super::RequestInfo {
        request_id: "r",
        path: Some("/v1/chat/completions"),
        ..Default::default()
    };
    let rollout = super::super::rollout(policy, &info);
    let w = super::super::evaluate(
        policy,
        &info,
        &rollout,
        Phase::Response,
        body.to_string().as_bytes(),
    );
    let shown = match &w.verdict {
        _ if w.decision == Action::Refuse => None,
        super::super::Verdict::Forward { body: Some(b), .. } => {
            let v: Value = serde_json::from_slice(b).unwrap();
            Some(
                v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        }
        _ => Some(text.to_string()),
    };
    (shown, w.redactions)
}

fn chat_event(delta: &str) -> String {
    let v = serde_json::json!({"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": null}]});
    format!("data: {v}\n\n")
}

fn chat_stream(deltas: &[&str], usage: bool) -> Vec<u8> {
    let mut s = String::new();
    for d in deltas {
        s.push_str(&chat_event(d));
    }
    s.push_str("data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    if usage {
        s.push_str("data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7,\"total_tokens\":18}}\n\n");
    }
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

/// Runs a stream through an inspector in network chunks; returns the client's bytes.
fn run(
    policy: &Policy,
    format: ApiFormat,
    enforced: bool,
    chunks: &[&[u8]],
) -> (Vec<u8>, StreamInspector) {
    let mut insp = StreamInspector::new(policy, format, enforced, StreamLimits::default());
    let mut out = Vec::new();
    for c in chunks {
        out.extend(insp.push(policy, c));
    }
    out.extend(insp.finish(policy, StreamEnd::UpstreamIncomplete));
    (out, insp)
}

/// What an SDK shows: the events' data values, `[DONE]` dropped.
fn client_events(bytes: &[u8]) -> Vec<(Option<String>, Value)> {
    let mut p = sse::Parser::new(1 << 30);
    let mut events = Vec::new();
    p.feed(bytes, &mut events).unwrap();
    assert!(p.finish().is_none(), "stream ends mid-event");
    events
        .into_iter()
        .filter_map(|e| {
            let data = e.data?;
            (data != "[DONE]").then(|| (e.name, serde_json::from_str(&data).unwrap()))
        })
        .collect()
}

fn chat_text(bytes: &[u8]) -> String {
    client_events(bytes)
        .iter()
        .filter_map(|(_, v)| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn card_split_at_every_offset_is_redacted() {
    let policy = default_policy();
    let text = format!("Your card {CARD} is on file.");
    for i in 1..text.len() {
        let (a, b) = text.split_at(i);
        let input = chat_stream(&[a, b], false);
        let (out, insp) = run(&policy, ApiFormat::OpenaiChat, true, &[&input]);
        let shown = chat_text(&out);
        assert_eq!(shown, "Your card [CREDIT_CARD] is on file.", "split at {i}");
        let o = insp.outcome(&policy, 0);
        assert_eq!(o.decision, Action::Redact, "split at {i}");
        assert_eq!(o.redactions.get("credit_card"), Some(&1), "split at {i}");
        assert_eq!(o.reason_code, "OUTPUT_PII_REDACTED");
    }
}

#[test]
fn email_split_at_the_at_sign_and_one_character_events() {
    let policy = default_policy();
    let input = chat_stream(&["Mail jane.doe", "@", "example.com today"], false);
    let (out, _) = run(&policy, ApiFormat::OpenaiChat, true, &[&input]);
    assert_eq!(chat_text(&out), "Mail [EMAIL] today");
    let text = format!("a {CARD} and bob@example.org, end");
    let chars: Vec<String> = text.chars().map(String::from).collect();
    let deltas: Vec<&str> = chars.iter().map(String::as_str).collect();
    let input = chat_stream(&deltas, false);
    // Network chunks of every size from 1 byte up, independent of events.
    for size in [1, 2, 3, 7, 64, 1000] {
        let chunks: Vec<&[u8]> = input.chunks(size).collect();
        let (out, insp) = run(&policy, ApiFormat::OpenaiChat, true, &chunks);
        assert_eq!(
            chat_text(&out),
            "a [CREDIT_CARD] and [EMAIL], end",
            "chunks of {size}"
        );
        // Every event is still there, in order.
        assert_eq!(client_events(&out).len(), deltas.len() + 1);
        assert_eq!(insp.outcome(&policy, 0).redactions.len(), 2);
    }
}

#[test]
fn unchanged_events_pass_byte_for_byte() {
    let policy = default_policy();
    let input = chat_stream(&["Nothing ", "to see ", "here."], true);
    let (out, _) = run(&policy, ApiFormat::OpenaiChat, true, &[&input]);
    assert_eq!(out, input);
}

#[test]
fn shadow_mode_judges_but_never_changes() {
    let policy = default_policy();
    let input = chat_stream(&["card ", "4111 1111 ", "1111 1111 ok"], false);
    let mut insp = StreamInspector::new(
        &policy,
        ApiFormat::OpenaiChat,
        false,
        StreamLimits::default(),
    );
    let mut out = Vec::new();
    for c in input.chunks(5) {
        let got = insp.push(&policy, c);
        assert_eq!(got, c);
        out.extend(got);
    }
    assert!(insp
        .finish(&policy, StreamEnd::UpstreamIncomplete)
        .is_empty());
    assert_eq!(out, input);
    let o = insp.outcome(&policy, 0);
    assert_eq!(o.decision, Action::Redact);
    assert_eq!(o.redactions.get("credit_card"), Some(&1));
}

#[test]
fn a_refused_streams_record_does_not_depend_on_chunking() {
    let policy = default_policy();
    let input = chat_stream(
        &[
            "Key: ",
            "AKIAIOSFODNN7EXAMPLE",
            " and then",
            " much more text",
            " after it",
        ],
        true,
    );
    let summary = |chunks: &[&[u8]]| {
        let (_, insp) = run(&policy, ApiFormat::OpenaiChat, true, chunks);
        let o = insp.outcome(&policy, 0);
        (o.stream_summary.unwrap().events, o.usage)
    };
    let whole = summary(&[&input]);
    let pieces: Vec<&[u8]> = input.split_inclusive(|&b| b == b'\n').collect();
    assert_eq!(summary(&pieces), whole);
    let bytes: Vec<&[u8]> = input.chunks(7).collect();
    assert_eq!(summary(&bytes), whole);
}

#[test]
fn secret_in_output_ends_the_stream_with_an_error_event() {
    let policy = default_policy();
    let key = "AKIAIOSFODNN7EXAMPLE";
    let input = chat_stream(
        &["Here is the key: ", &key[..6], &key[6..], " use it well"],
        false,
    );
    let (out, insp) = run(&policy, ApiFormat::OpenaiChat, true, &[&input]);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(!text.contains("AKIA"), "{text}");
    let events = client_events(&out);
    let (_, last) = events.last().unwrap();
    assert_eq!(last["error"]["code"], "SECRET_DETECTED");
    assert!(text.ends_with("data: [DONE]\n\n"));
    let o = insp.outcome(&policy, 0);
    assert_eq!(o.decision, Action::Refuse);
    assert_eq!(o.stream_summary.unwrap().end, "refused");
    // Later bytes of the upstream stream are dropped.
    let mut insp = StreamInspector::new(
        &policy,
        ApiFormat::OpenaiChat,
        true,
        StreamLimits::default(),
    );
    insp.push(&policy, &input);
    assert!(insp
        .push(&policy, &chat_stream(&["more"], false))
        .is_empty());
}

#[test]
fn usage_from_the_stream_or_estimated() {
    let policy = default_policy();
    let (_, insp) = run(
        &policy,
        ApiFormat::OpenaiChat,
        true,
        &[&chat_stream(&["hi"], true)],
    );
    let o = insp.outcome(&policy, 400);
    assert_eq!(o.usage.unwrap().prompt_tokens, Some(11));
    assert_eq!(o.usage.unwrap().total_tokens, Some(18));
    assert!(!o.usage_estimated);
    assert_eq!(o.stream_summary.unwrap().end, "complete");
    let (_, insp) = run(
        &policy,
        ApiFormat::OpenaiChat,
        true,
        &[&chat_stream(&["12345678"], false)],
    );
    let o = insp.outcome(&policy, 400);
    assert!(o.usage_estimated);
    assert_eq!(o.usage.unwrap().prompt_tokens, Some(100));
    assert_eq!(o.usage.unwrap().completion_tokens, Some(2));
    assert_eq!(o.usage.unwrap().total_tokens, Some(102));
}

fn anthropic_stream(deltas: &[&str]) -> Vec<u8> {
    let mut s = String::from("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n");
    s.push_str("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    s.push_str("event: ping\ndata: {\"type\": \"ping\"}\n\n");
    for d in deltas {
        let v = serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": d}});
        s.push_str(&format!("event: content_block_delta\ndata: {v}\n\n"));
    }
    s.push_str(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    );
    s.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n");
    s.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    s.into_bytes()
}

#[test]
fn anthropic_stream_redacted_with_usage() {
    let policy = default_policy();
    let input = anthropic_stream(&["Call +1 415", " 555 0132", " or write to a@b", ".io now"]);
    let (out, insp) = run(&policy, ApiFormat::AnthropicMessages, true, &[&input]);
    let events = client_events(&out);
    let text: String = events
        .iter()
        .filter_map(|(_, v)| v["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, "Call [PHONE] or write to [EMAIL] now");
    let names: Vec<_> = events.iter().map(|(n, _)| n.clone().unwrap()).collect();
    assert_eq!(names.first().unwrap(), "message_start");
    assert_eq!(names.last().unwrap(), "message_stop");
    let o = insp.outcome(&policy, 0);
    assert_eq!(o.usage.unwrap().prompt_tokens, Some(25));
    assert_eq!(o.usage.unwrap().completion_tokens, Some(15));
    assert!(!o.usage_estimated);
    assert_eq!(o.model.as_deref(), Some("claude-sonnet-4-5"));
}

#[test]
fn anthropic_refusal_is_an_error_event() {
    let policy = default_policy();
    let input = anthropic_stream(&["token ghp_", "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 done"]);
    let (out, _) = run(&policy, ApiFormat::AnthropicMessages, true, &[&input]);
    let events = client_events(&out);
    let (name, last) = events.last().unwrap();
    assert_eq!(name.as_deref(), Some("error"));
    assert_eq!(last["type"], "error");
    assert_eq!(last["error"]["type"], "permission_error");
    assert!(!String::from_utf8_lossy(&out).contains("ghp_"));
}

#[test]
fn responses_stream_redacts_deltas_and_whole_texts() {
    let policy = default_policy();
    let mut s = String::new();
    let mut seq = 0;
    let mut ev = |v: Value| {
        let mut v = v;
        v["sequence_number"] = seq.into();
        seq += 1;
        s.push_str(&format!(
            "event: {}\ndata: {v}\n\n",
            v["type"].as_str().unwrap()
        ));
    };
    let full = "Reach me at jo@corp.example please";
    ev(
        serde_json::json!({"type": "response.created", "response": {"id": "r", "model": "gpt-4.1", "output": []}}),
    );
    for d in ["Reach me at jo@", "corp.exam", "ple please"] {
        ev(
            serde_json::json!({"type": "response.output_text.delta", "item_id": "m", "output_index": 0, "content_index": 0, "delta": d}),
        );
    }
    ev(
        serde_json::json!({"type": "response.output_text.done", "item_id": "m", "output_index": 0, "content_index": 0, "text": full}),
    );
    ev(
        serde_json::json!({"type": "response.content_part.done", "item_id": "m", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": full}}),
    );
    ev(
        serde_json::json!({"type": "response.completed", "response": {"id": "r", "model": "gpt-4.1",
        "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": full}]}],
        "usage": {"input_tokens": 9, "output_tokens": 8, "total_tokens": 17}}}),
    );
    let (out, insp) = run(&policy, ApiFormat::OpenaiResponses, true, &[s.as_bytes()]);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(
        !text.contains("jo@") && !text.contains("corp.exam"),
        "{text}"
    );
    let events = client_events(&out);
    let seqs: Vec<u64> = events
        .iter()
        .map(|(_, v)| v["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (0..7).collect::<Vec<_>>());
    let deltas: String = events
        .iter()
        .filter(|(_, v)| v["type"] == "response.output_text.delta")
        .map(|(_, v)| v["delta"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(deltas, "Reach me at [EMAIL] please");
    let done = &events[4].1;
    assert_eq!(done["text"], "Reach me at [EMAIL] please");
    let completed = &events[6].1;
    assert_eq!(
        completed["response"]["output"][0]["content"][0]["text"],
        "Reach me at [EMAIL] please"
    );
    let o = insp.outcome(&policy, 0);
    assert_eq!(o.redactions.get("email"), Some(&1));
    assert_eq!(o.usage.unwrap().total_tokens, Some(17));
}

#[test]
fn memory_stays_bounded_on_a_long_stream() {
    let policy = default_policy();
    let limits = StreamLimits::default();
    let mut insp = StreamInspector::new(&policy, ApiFormat::OpenaiChat, true, limits);
    let sentence = "The quick brown fox, card 4111 1111 1111 1111, jumps. ";
    let mut out_len = 0;
    let mut max_held = 0;
    let mut sent = 0;
    for _ in 0..20_000 {
        let out = insp.push(&policy, chat_event(sentence).as_bytes());
        sent += 1;
        out_len += out.len();
        max_held = max_held.max(insp.held_bytes());
    }
    let tail = insp.finish(&policy, StreamEnd::UpstreamIncomplete);
    out_len += tail.len();
    assert!(sent * sentence.len() > 1_000_000);
    assert!(max_held < 4096, "held {max_held} bytes");
    assert!(out_len > 1_000_000);
    let o = insp.outcome(&policy, 0);
    assert_eq!(o.redactions.get("credit_card"), Some(&20_000));
    assert_eq!(o.stream_summary.unwrap().overflows, 0);
}

#[test]
fn a_token_longer_than_the_cap_is_released_and_counted() {
    let policy = default_policy();
    let limits = StreamLimits {
        max_holdback_bytes: 256,
        max_queued_bytes: 4096,
        ..StreamLimits::default()
    };
    let mut insp = StreamInspector::new(&policy, ApiFormat::OpenaiChat, true, limits);
    for _ in 0..2000 {
        insp.push(&policy, chat_event("x").as_bytes());
        assert!(insp.held_bytes() < 4096 + 512);
    }
    insp.finish(&policy, StreamEnd::UpstreamIncomplete);
    assert!(insp.outcome(&policy, 0).stream_summary.unwrap().overflows > 0);
}

#[test]
fn disconnects_and_malformed_events_are_recorded() {
    let policy = default_policy();
    let mut insp = StreamInspector::new(
        &policy,
        ApiFormat::OpenaiChat,
        true,
        StreamLimits::default(),
    );
    insp.push(&policy, chat_event("partial ans").as_bytes());
    insp.finish(&policy, StreamEnd::ClientDisconnected);
    let o = insp.outcome(&policy, 0);
    assert_eq!(o.reason_code, "STREAM_CLIENT_DISCONNECTED");
    assert_eq!(o.decision, Action::Allow);
    // A non-JSON data line under `on_error: refuse` ends the stream.
    let (out, insp) = run(
        &policy,
        ApiFormat::OpenaiChat,
        true,
        &[b"data: {not json\n\n"],
    );
    let events = client_events(&out);
    assert_eq!(events[0].1["error"]["code"], "RESPONSE_EVENT_MALFORMED");
    assert_eq!(insp.outcome(&policy, 0).decision, Action::Refuse);
}

/// Streamed redaction equals whole-body redaction of the same text, whatever the splits.
#[test]
fn streamed_redaction_matches_whole_body_redaction() {
    let policy = default_policy();
    let pieces = [
        "hello ",
        "world. ",
        CARD,
        " ",
        "jane.doe@example.com",
        ", ",
        "+1 415 555 0132",
        "DE89 3704 0044 0532 0130 00",
        " 123-45-6789 ",
        "192.168.1.20",
        "12",
        "34 ",
        "x@y",
        ".io",
        "\n",
        "(415) 555-0100",
        " tel ",
        "4111-1111-1111-1111",
        "\u{e9}t\u{e9} ",
        "GB82 WEST 1234 5698 7654 32",
        " and ",
        "1.2.3",
        "-",
        "@",
        "sk",
        " ",
    ];
    let mut next = lcg(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        let mut text = String::new();
        for _ in 0..(3 + next(12)) {
            text.push_str(pieces[next(pieces.len())]);
        }
        let (shown, redactions) = whole_body(&policy, &text);
        let want = shown.unwrap_or_else(|| text.clone());
        // Streamed, split at random char boundaries.
        let chars: Vec<char> = text.chars().collect();
        let mut deltas = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let n = 1 + next(6);
            deltas.push(
                chars[i..(i + n).min(chars.len())]
                    .iter()
                    .collect::<String>(),
            );
            i += n;
        }
        let refs: Vec<&str> = deltas.iter().map(String::as_str).collect();
        let input = chat_stream(&refs, false);
        let (out, insp) = run(&policy, ApiFormat::OpenaiChat, true, &[&input]);
        assert_eq!(
            chat_text(&out),
            want,
            "round {round}: {text:?} split {refs:?}"
        );
        assert_eq!(
            insp.outcome(&policy, 0).redactions,
            redactions,
            "round {round}: {text:?}"
        );
    }
}

#[test]
fn tool_call_arguments_and_interleaved_choices_are_separate_texts() {
    let policy = default_policy();
    let ev = |v: Value| format!("data: {v}\n\n");
    let mut s = String::new();
    // Two choices interleaved; choice 1 streams a tool call whose arguments carry an email.
    for (i, piece) in ["mail x", "@y.org", " ok"].iter().enumerate() {
        s.push_str(&ev(serde_json::json!({"model": "gpt-4o", "choices": [
            {"index": 0, "delta": {"content": format!("part{i} ")}, "finish_reason": null}]})));
        s.push_str(&ev(serde_json::json!({"model": "gpt-4o", "choices": [
            {"index": 1, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]},
             "finish_reason": null}]})));
    }
    s.push_str(&ev(
        serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    ));
    s.push_str(&ev(
        serde_json::json!({"choices": [{"index": 1, "delta": {}, "finish_reason": "tool_calls"}]}),
    ));
    s.push_str("data: [DONE]\n\n");
    let (out, insp) = run(&policy, ApiFormat::OpenaiChat, true, &[s.as_bytes()]);
    let events = client_events(&out);
    let args: String = events
        .iter()
        .filter_map(|(_, v)| {
            v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(args, "mail [EMAIL] ok");
    let content: String = events
        .iter()
        .filter_map(|(_, v)| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(content, "part0 part1 part2 ");
    assert_eq!(insp.outcome(&policy, 0).segments, 2);
}

#[test]
fn legacy_completions_stream() {
    let policy = default_policy();
    let mut s = String::new();
    for t in ["SSN 123-45", "-6780 noted"] {
        let v = serde_json::json!({"id": "cmpl", "object": "text_completion", "model": "gpt-3.5-turbo-instruct",
            "choices": [{"index": 0, "text": t, "finish_reason": null}]});
        s.push_str(&format!("data: {v}\n\n"));
    }
    s.push_str("data: [DONE]\n\n");
    let (out, _) = run(&policy, ApiFormat::OpenaiCompletions, true, &[s.as_bytes()]);
    let text: String = client_events(&out)
        .iter()
        .filter_map(|(_, v)| v["choices"][0]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, "SSN [US_SSN] noted");
}

// Regressions found in review.

fn ev(v: Value) -> String {
    format!("data: {v}\n\n")
}

fn chat_deltas(deltas: &[Value]) -> Vec<u8> {
    let mut s = String::new();
    for d in deltas {
        s.push_str(&ev(serde_json::json!({"model": "gpt-4o",
            "choices": [{"index": 0, "delta": d, "finish_reason": null}]})));
    }
    s.push_str("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
    s.into_bytes()
}

#[test]
fn a_refusal_never_releases_half_of_another_entity() {
    let policy = default_policy();
    let input = chat_stream(
        &["mail jane.doe@exa", "mple.com AKIAIOSFODNN7EXAMPLE"],
        false,
    );
    let (out, _) = run(&policy, ApiFormat::OpenaiChat, true, &[&input]);
    let text = String::from_utf8(out).unwrap();
    assert!(
        !text.contains("jane.doe") && !text.contains("AKIA"),
        "{text}"
    );
    assert!(text.contains("SECRET_DETECTED"));
}

#[test]
fn an_empty_delta_of_a_closed_choice_never_stalls_the_stream() {
    let policy = default_policy();
    let events = [
        ev(serde_json::json!({"choices": [{"index": 0, "delta": {"content": "hi "}}]})),
        ev(serde_json::json!({"choices": [{"index": 0, "delta": {"content": "mail bob@exa"}}]})),
        ev(
            serde_json::json!({"choices": [{"index": 1, "delta": {"content": ""}, "finish_reason": "stop"}]}),
        ),
        ev(serde_json::json!({"choices": [{"index": 0, "delta": {"content": "mple.com ok"}}]})),
        ev(serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})),
        "data: [DONE]\n\n".to_string(),
    ];
    let mut insp = StreamInspector::new(
        &policy,
        ApiFormat::OpenaiChat,
        true,
        StreamLimits::default(),
    );
    let mut out = insp.push(&policy, events[..3].concat().as_bytes());
    for e in &events[3..] {
        out.extend(insp.push(&policy, e.as_bytes()));
    }
    for _ in 0..1000 {
        out.extend(insp.push(&policy, b": keep-alive\n\n"));
    }
    assert!(insp.held_bytes() < 1024, "held {}", insp.held_bytes());
    out.extend(insp.finish(&policy, StreamEnd::UpstreamIncomplete));
    assert_eq!(chat_text(&out), "hi mail [EMAIL] ok");
    assert!(String::from_utf8(out).unwrap().contains("[DONE]"));
}

#[test]
fn unenforced_streams_stop_buffering_an_endless_event() {
    let policy = default_policy();
    let limits = StreamLimits {
        max_event_bytes: 1024,
        ..StreamLimits::default()
    };
    let mut insp = StreamInspector::new(&policy, ApiFormat::OpenaiChat, false, limits);
    insp.push(&policy, b"data: ");
    for _ in 0..1000 {
        insp.push(&policy, &[b'x'; 1024]);
    }
    assert!(insp.held_bytes() < 64 * 1024, "held {}", insp.held_bytes());
    let o = insp.outcome(&policy, 0);
    assert_eq!(
        o.decision,
        Action::Refuse,
        "what on_error: refuse would have done"
    );
}

#[test]
fn an_event_over_the_limit_ends_the_stream_with_its_reason_code() {
    let policy = default_policy();
    let limits = StreamLimits {
        max_event_bytes: 256,
        ..StreamLimits::default()
    };
    let mut insp = StreamInspector::new(&policy, ApiFormat::OpenaiChat, true, limits);
    let mut out = insp.push(&policy, chat_event("hello ").as_bytes());
    // The parser holds at most one incomplete event: the limit applies to what waits.
    let big = chat_event(&"x".repeat(300));
    for part in big.as_bytes().chunks(100) {
        out.extend(insp.push(&policy, part));
    }
    for_each_delivery_of_a_big_event(&policy, limits);
    out.extend(insp.finish(&policy, StreamEnd::UpstreamIncomplete));
    let events = client_events(&out);
    assert_eq!(
        events.last().unwrap().1["error"]["code"],
        "RESPONSE_EVENT_TOO_LARGE"
    );
    assert!(!String::from_utf8(out).unwrap().contains("xxx"));
    let o = insp.outcome(&policy, 0);
    assert_eq!(o.reason_code, "RESPONSE_EVENT_TOO_LARGE");
    assert_eq!(o.decision, Action::Refuse);
    assert_eq!(o.error.as_deref(), Some("an event exceeds the limit"));
    assert!(!o.inspected);
}

#[test]
fn giving_up_midway_loses_no_event() {
    let mut doc: Value =
        serde_json::from_slice(include_bytes!("../../../policies/default.json")).unwrap();
    doc["on_error"] = "allow".into();
    let policy = Policy::from_value(doc).unwrap();
    let mut s = String::new();
    for i in 0..(MAX_CHANNELS as u64 + 6) {
        s.push_str(&ev(
            serde_json::json!({"choices": [{"index": i, "delta": {"content": "x "}}]}),
        ));
    }
    s.push_str("data: [DONE]\n\n");
    let (out, insp) = run(&policy, ApiFormat::OpenaiChat, true, &[s.as_bytes()]);
    assert_eq!(String::from_utf8(out).unwrap(), s);
    assert!(insp.outcome(&policy, 0).error.is_some());
}

#[test]
fn every_streamed_chat_text_field_is_inspected() {
    let policy = default_policy();
    for delta in [
        serde_json::json!({"function_call": {"arguments": "{\"to\":\"bob@example.com\"}"}}),
        serde_json::json!({"tool_calls": [{"index": 0, "type": "custom", "custom": {"input": "mail bob@example.com"}}]}),
        serde_json::json!({"content": [{"type": "text", "text": "mail bob@example.com"}]}),
    ] {
        let (out, _) = run(
            &policy,
            ApiFormat::OpenaiChat,
            true,
            &[&chat_deltas(std::slice::from_ref(&delta))],
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains("bob@example.com") && text.contains("[EMAIL]"),
            "{delta}: {text}"
        );
    }
}

#[test]
fn non_utf8_event_data_is_malformed() {
    let policy = default_policy();
    let mut input = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"card 4111 1111 1111 1111 \xff\"}}]}\n\n".to_vec();
    input.extend_from_slice(b"data: [DONE]\n\n");
    let (out, insp) = run(&policy, ApiFormat::OpenaiChat, true, &[&input]);
    assert!(!String::from_utf8_lossy(&out).contains("4111 1111"));
    let o = insp.outcome(&policy, 0);
    assert_eq!(o.stream_summary.unwrap().malformed_events, 1);
    assert_eq!(o.decision, Action::Refuse);
}

#[test]
fn logprobs_of_changed_events_are_blanked() {
    let policy = default_policy();
    let mut s = String::new();
    for d in ["mail bob@", "example.com ok"] {
        s.push_str(&ev(serde_json::json!({"choices": [{"index": 0, "delta": {"content": d},
            "logprobs": {"content": [{"token": d, "logprob": -0.1, "bytes": d.as_bytes(), "top_logprobs": []}]}}]})));
    }
    s.push_str("data: [DONE]\n\n");
    let (out, _) = run(&policy, ApiFormat::OpenaiChat, true, &[s.as_bytes()]);
    let text = String::from_utf8(out).unwrap();
    assert!(
        !text.contains("example.com") && !text.contains("bob@"),
        "{text}"
    );
    assert!(text.contains("\"logprobs\":null"));
}

#[test]
fn the_error_event_follows_the_last_sequence_number_sent() {
    let policy = default_policy();
    let mut s = String::new();
    let mut seq = 0u64;
    let mut push = |v: Value, s: &mut String| {
        let mut v = v;
        v["sequence_number"] = seq.into();
        seq += 1;
        s.push_str(&format!(
            "event: {}\ndata: {v}\n\n",
            v["type"].as_str().unwrap()
        ));
    };
    push(
        serde_json::json!({"type": "response.created", "response": {"model": "gpt-4.1", "output": []}}),
        &mut s,
    );
    for d in [
        "Here: AKIA",
        "IOSFODNN7EXAMPLE",
        " and",
        " more",
        " text",
        " here",
    ] {
        push(
            serde_json::json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": d}),
            &mut s,
        );
    }
    let (out, _) = run(&policy, ApiFormat::OpenaiResponses, true, &[s.as_bytes()]);
    let seqs: Vec<u64> = client_events(&out)
        .iter()
        .filter_map(|(_, v)| v["sequence_number"].as_u64())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert_eq!(
        client_events(&out).last().unwrap().1["code"],
        "SECRET_DETECTED"
    );
}

#[test]
fn text_the_cap_forces_out_is_counted() {
    let policy = default_policy();
    let limits = StreamLimits {
        max_holdback_bytes: 64,
        ..StreamLimits::default()
    };
    let mut insp = StreamInspector::new(&policy, ApiFormat::OpenaiChat, true, limits);
    for _ in 0..60 {
        insp.push(&policy, chat_event("xxxxx").as_bytes());
    }
    insp.finish(&policy, StreamEnd::UpstreamIncomplete);
    assert!(insp.outcome(&policy, 0).stream_summary.unwrap().overflows > 0);
}

/// Two interleaved choices with random splits and network chunks: each choice's text is
/// what whole-body redaction gives, and nothing is cut off.
#[test]
fn interleaved_choices_match_whole_body_redaction() {
    let policy = default_policy();
    let pieces = [
        "hello ",
        CARD,
        " ",
        "jane.doe@mail.example.co.uk",
        ", ",
        "+44 20 7946 0958",
        "DE89 3704 0044 0532 0130 00",
        " 123-45-6780 ",
        "x@y",
        ".io",
        "\u{e9}t\u{e9} ",
        "a",
        "",
    ];
    let mut next = lcg(77);
    for round in 0..400 {
        let mut texts = [String::new(), String::new()];
        for t in &mut texts {
            for _ in 0..(1 + next(6)) {
                t.push_str(pieces[next(pieces.len())]);
            }
        }
        let chars: Vec<Vec<char>> = texts.iter().map(|t| t.chars().collect()).collect();
        let mut pos = [0usize, 0];
        let mut s = String::new();
        while pos[0] < chars[0].len() || pos[1] < chars[1].len() {
            let t = next(2);
            let e = (pos[t] + next(5)).min(chars[t].len());
            let d: String = chars[t][pos[t]..e].iter().collect();
            s.push_str(&ev(
                serde_json::json!({"choices": [{"index": t, "delta": {"content": d}}]}),
            ));
            pos[t] = e;
        }
        let first = next(2);
        for t in [first, 1 - first] {
            s.push_str(&ev(serde_json::json!({"choices": [{"index": t, "delta": {"content": ""}, "finish_reason": "stop"}]})));
        }
        s.push_str("data: [DONE]\n\n");
        let input = s.into_bytes();
        let chunks: Vec<&[u8]> = input.chunks(1 + next(400)).collect();
        let (out, _) = run(&policy, ApiFormat::OpenaiChat, true, &chunks);
        let events = client_events(&out);
        for (t, text) in texts.iter().enumerate() {
            let Some(want) = whole_body(&policy, text).0 else {
                continue;
            };
            let got: String = events
                .iter()
                .filter(|(_, v)| v["choices"][0]["index"] == t)
                .filter_map(|(_, v)| {
                    v["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(str::to_string)
                })
                .collect();
            assert_eq!(got, want, "round {round} choice {t}: {text:?}");
        }
    }
}

#[test]
fn an_event_repeating_more_texts_than_one_body_may_have_is_not_inspected_in_part() {
    // A `response.completed` repeats the whole output; over MAX_SEGMENTS texts its
    // redaction would be partial, so the stream gives up and `on_error` decides.
    let items: Vec<Value> = (0..=crate::llm::MAX_SEGMENTS)
        .map(|_| serde_json::json!({"type": "function_call", "arguments": "a"}))
        .collect();
    let completed = ev(
        serde_json::json!({"type": "response.completed", "sequence_number": 1,
        "response": {"id": "r", "model": "gpt-4.1", "output": items}}),
    );
    let limits = StreamLimits {
        max_event_bytes: 8 << 20,
        ..StreamLimits::default()
    };
    let policy = default_policy();
    let mut insp = StreamInspector::new(&policy, ApiFormat::OpenaiResponses, true, limits);
    let mut out = insp.push(&policy, completed.as_bytes());
    out.extend(insp.finish(&policy, StreamEnd::UpstreamIncomplete));
    let o = insp.outcome(&policy, 0);
    assert_eq!(o.reason_code, "RESPONSE_STREAM_TOO_COMPLEX");
    assert_eq!(o.decision, Action::Refuse);
    let events = client_events(&out);
    assert_eq!(events.len(), 1, "only the error event goes out");
    assert_eq!(events[0].1["code"], "RESPONSE_STREAM_TOO_COMPLEX");

    let mut doc: Value =
        serde_json::from_slice(include_bytes!("../../../policies/default.json")).unwrap();
    doc["on_error"] = "allow".into();
    let lenient = Policy::from_value(doc).unwrap();
    let mut insp = StreamInspector::new(&lenient, ApiFormat::OpenaiResponses, true, limits);
    let mut out = insp.push(&lenient, completed.as_bytes());
    out.extend(insp.finish(&lenient, StreamEnd::UpstreamIncomplete));
    assert_eq!(out, completed.as_bytes(), "passes as it came");
    let o = insp.outcome(&lenient, 0);
    assert_eq!(o.reason_code, "RESPONSE_STREAM_TOO_COMPLEX");
    assert_eq!(o.decision, Action::Allow);
}

// One decision for whole bodies and streams: the rule that ends a stream is the one the
// record names, the one that decides the same text as a whole body.

/// A policy of response rules on e-mail addresses and card numbers.
fn two_rule_policy(email: Value, card: Value) -> Policy {
    let rule = |id: &str, detector: &str, extra: Value| {
        let mut r = serde_json::json!({"id": id, "category": format!("test.{id}"),
            "reason_code": id.to_uppercase(),
            "match": {"detectors": [detector], "phase": "response"}});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        r
    };
    Policy::from_value(serde_json::json!({"id": "two", "version": "1", "rules": [
        rule("email_rule", "email", email),
        rule("card_rule", "credit_card", card),
    ]}))
    .unwrap()
}

#[test]
fn the_error_event_names_the_rule_the_record_names() {
    // Two refuse rules in one release: the first in policy order decides, as in whole bodies.
    let refuse = serde_json::json!({"action": "refuse"});
    let policy = two_rule_policy(refuse.clone(), refuse);
    let text = "card 4111 1111 1111 1111 or mail bob@example.com, done";
    let (out, insp) = run(
        &policy,
        ApiFormat::OpenaiChat,
        true,
        &[&chat_stream(&[text], false)],
    );
    let o = insp.outcome(&policy, 0);
    assert_eq!(o.reason_code, "EMAIL_RULE");
    assert_eq!(
        client_events(&out).last().unwrap().1["error"]["code"],
        "EMAIL_RULE"
    );
    let whole = super::super::evaluate(
        &policy,
        &super::super::RequestInfo::default(),
        &super::super::rollout(&policy, &super::super::RequestInfo::default()),
        Phase::Response,
        serde_json::json!({"model": "gpt-4o", "choices": [{"index": 0,
            "message": {"role": "assistant", "content": text}}]})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(whole.reason_code, "EMAIL_RULE");
}

#[test]
fn a_flag_that_decides_never_holds_the_stream() {
    // The flag rule comes first: it decides among the two escalations, as in whole bodies,
    // so the stream is flagged (in its record), not held; whether both entities are in one
    // release or in two.
    let policy = two_rule_policy(
        serde_json::json!({"action": "escalate", "escalate": {"mode": "flag"}}),
        serde_json::json!({"action": "escalate", "escalate": {"mode": "hold"}}),
    );
    let together = ["mail bob@example.com and card 4111 1111 1111 1111 ok"];
    let apart = [
        "mail bob@example.com ",
        "and then some more words, ",
        "card 4111 1111 1111 1111 ok",
    ];
    for deltas in [&together[..], &apart[..]] {
        let input = chat_stream(deltas, false);
        let (out, insp) = run(&policy, ApiFormat::OpenaiChat, true, &[&input]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(input).unwrap(),
            "passes unchanged"
        );
        let o = insp.outcome(&policy, 0);
        assert_eq!(o.decision, Action::Escalate);
        assert_eq!(o.reason_code, "EMAIL_RULE");
        assert_eq!(
            o.escalation,
            Some(crate::policy::document::EscalateMode::Flag)
        );
        assert_eq!(o.stream_summary.unwrap().end, "complete", "{deltas:?}");
        assert_eq!(
            whole_body(&policy, &deltas.concat()).0,
            Some(deltas.concat())
        );
    }
    // The hold rule first: it decides and ends the stream, as before.
    let policy = Policy::from_value(serde_json::json!({"id": "two", "version": "1", "rules": [
        {"id": "hold", "category": "c", "reason_code": "HOLD", "action": "escalate",
         "match": {"detectors": ["credit_card"], "phase": "response"}},
        {"id": "flag", "category": "c", "reason_code": "FLAG", "action": "escalate",
         "escalate": {"mode": "flag"},
         "match": {"detectors": ["email"], "phase": "response"}}]}))
    .unwrap();
    let (out, insp) = run(
        &policy,
        ApiFormat::OpenaiChat,
        true,
        &[&chat_stream(&together, false)],
    );
    assert_eq!(insp.outcome(&policy, 0).reason_code, "HOLD");
    assert_eq!(
        client_events(&out).last().unwrap().1["error"]["code"],
        "HOLD"
    );
}

/// The same event over the limit arriving whole, in one chunk, with an event before it.
fn for_each_delivery_of_a_big_event(policy: &Policy, limits: StreamLimits) {
    let mut insp = StreamInspector::new(policy, ApiFormat::OpenaiChat, true, limits);
    let mut whole = chat_event("hello ");
    whole.push_str(&chat_event(&"x".repeat(300)));
    let mut out = insp.push(policy, whole.as_bytes());
    out.extend(insp.finish(policy, StreamEnd::UpstreamIncomplete));
    assert!(!String::from_utf8(out).unwrap().contains("xxx"));
    assert_eq!(
        insp.outcome(policy, 0).reason_code,
        "RESPONSE_EVENT_TOO_LARGE"
    );
}

/// A stream's bytes one event per network chunk (each is judged before the next arrives).
fn per_event(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = bytes[from..].windows(2).position(|w| w == b"\n\n") {
        out.push(&bytes[from..from + i + 2]);
        from += i + 2;
    }
    if from < bytes.len() {
        out.push(&bytes[from..]);
    }
    out
}

/// A chat stream whose events carry `fields` (beside an empty `content`) in their delta.
fn chat_stream_fields(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut s = String::new();
    for (k, v) in fields {
        let mut delta = serde_json::Map::new();
        delta.insert("content".into(), "".into());
        delta.insert((*k).into(), (*v).into());
        let e = serde_json::json!({"choices": [{"delta": delta}]});
        s.push_str(&format!("data: {e}\n\n"));
    }
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

/// Everything the client got, as one string of its events' data (what a leak check reads).
fn all_data(bytes: &[u8]) -> String {
    client_events(bytes)
        .iter()
        .map(|(_, v)| v.to_string())
        .collect()
}

/// Issue 13: a value in a field no provider documents (the peer harness's `record_field`,
/// DeepSeek's `reasoning_content`) leaked whole or split, at every split.
#[test]
fn extra_delta_fields_are_inspected_at_every_split() {
    let policy = default_policy();
    for (field, value, placeholder) in [
        ("record_field", "xkcdqrst@example.com", "[EMAIL]"),
        ("reasoning_content", "4111-1111-1111-1111", "[CREDIT_CARD]"),
    ] {
        let whole = chat_stream_fields(&[("reasoning_content", "Reference: "), (field, value)]);
        let (out, insp) = run(&policy, ApiFormat::OpenaiChat, true, &per_event(&whole));
        assert!(!all_data(&out).contains(value), "{field} whole");
        assert!(all_data(&out).contains(placeholder), "{field} whole");
        assert_eq!(insp.outcome(&policy, 0).decision, Action::Redact);
        for i in 1..value.len() {
            let (a, b) = value.split_at(i);
            let input = chat_stream_fields(&[(field, "Reference: "), (field, a), (field, b)]);
            let (out, _) = run(&policy, ApiFormat::OpenaiChat, true, &per_event(&input));
            let got: String = client_events(&out)
                .iter()
                .filter_map(|(_, v)| v["choices"][0]["delta"][field].as_str().map(str::to_string))
                .collect();
            assert_eq!(
                got,
                format!("Reference: {placeholder}"),
                "{field} split at {i}"
            );
        }
    }
}

/// Strings outside a delta (a top-level field, an Anthropic citation) are texts of their
/// event alone: judged and redacted with it, never joined with the next event's.
#[test]
fn other_event_strings_are_judged_with_their_event() {
    let policy = default_policy();
    let mut s = String::new();
    for note in ["contact bob@example.com", "OpenAI", "OpenAI"] {
        let e = serde_json::json!({"id": "c1", "model": "gpt-4o", "provider": note,
            "choices": [{"index": 0, "delta": {"content": "hi "}}]});
        s.push_str(&format!("data: {e}\n\n"));
    }
    s.push_str("data: [DONE]\n\n");
    let (out, insp) = run(
        &policy,
        ApiFormat::OpenaiChat,
        true,
        &per_event(s.as_bytes()),
    );
    let events = client_events(&out);
    assert_eq!(events[0].1["provider"], "contact [EMAIL]");
    assert_eq!(events[1].1["provider"], "OpenAI");
    assert_eq!(events[0].1["id"], "c1");
    assert_eq!(chat_text(&out), "hi hi hi ");
    let o = insp.outcome(&policy, 0);
    assert_eq!(o.redactions.get("email"), Some(&1));
    let summary = o.stream_summary.unwrap();
    assert_eq!(summary.overflows, 0);

    let a = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"citations_delta\",\"citation\":{\"type\":\"char_location\",\"cited_text\":\"call 415-555-0100\",\"document_index\":0}}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let (out, _) = run(
        &policy,
        ApiFormat::AnthropicMessages,
        true,
        &per_event(a.as_bytes()),
    );
    assert!(
        !all_data(&out).contains("415-555-0100"),
        "{}",
        all_data(&out)
    );
}

/// Percent-encoded, HTML-escaped and JSON-escaped values split anywhere, even inside the
/// escape, are redacted where they were sent.
#[test]
fn escaped_values_split_inside_the_escape() {
    let policy = default_policy();
    for value in [
        "jane%40example.com",
        "jane&#64;example.com",
        "jane\\u0040example.com",
    ] {
        let text = format!("Reference record: {value} ok");
        for i in 1..text.len() {
            let (a, b) = text.split_at(i);
            let input = chat_stream(&[a, b], false);
            let (out, _) = run(&policy, ApiFormat::OpenaiChat, true, &per_event(&input));
            assert_eq!(
                chat_text(&out),
                "Reference record: [EMAIL] ok",
                "{value} split at {i}"
            );
        }
    }
    // Digit groups with NBSP, split between groups.
    let input = chat_stream(&["card 4111\u{a0}1111\u{a0}", "1111\u{a0}1111 end"], false);
    let (out, _) = run(&policy, ApiFormat::OpenaiChat, true, &per_event(&input));
    assert_eq!(chat_text(&out), "card [CREDIT_CARD] end");
}

/// Tool-call arguments stream as JSON text: an escaped entity inside them is found.
#[test]
fn escaped_entity_in_streamed_tool_arguments() {
    let policy = default_policy();
    let mut s = String::new();
    for piece in ["{\"to\":\"bob\\u00", "40example.com\"}"] {
        let e = serde_json::json!({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": piece}}]}}]});
        s.push_str(&format!("data: {e}\n\n"));
    }
    s.push_str("data: [DONE]\n\n");
    let (out, _) = run(
        &policy,
        ApiFormat::OpenaiChat,
        true,
        &per_event(s.as_bytes()),
    );
    let args: String = client_events(&out)
        .iter()
        .filter_map(|(_, v)| {
            v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(args, "{\"to\":\"[EMAIL]\"}");
}

/// A Responses API event type the inspector does not list that streams text.
#[test]
fn unlisted_responses_delta_events_stream_as_channels() {
    let policy = default_policy();
    let mut s = String::new();
    for (n, d) in ["Reach bob@exa", "mple.com soon"].iter().enumerate() {
        let e = serde_json::json!({"type": "response.reasoning_summary_text.delta",
            "item_id": "rs_1", "output_index": 0, "summary_index": 0, "delta": d, "sequence_number": n});
        s.push_str(&format!(
            "event: response.reasoning_summary_text.delta\ndata: {e}\n\n"
        ));
    }
    let done = serde_json::json!({"type": "response.reasoning_summary_text.done", "item_id": "rs_1",
        "output_index": 0, "summary_index": 0, "text": "Reach bob@example.com soon", "sequence_number": 2});
    s.push_str(&format!(
        "event: response.reasoning_summary_text.done\ndata: {done}\n\n"
    ));
    let (out, _) = run(
        &policy,
        ApiFormat::OpenaiResponses,
        true,
        &per_event(s.as_bytes()),
    );
    assert!(!all_data(&out).contains("bob@"), "{}", all_data(&out));
}

/// The events of an ordinary stream are read by their shape, never parsed into a general
/// value (issue 16 item 5), and judged the same: a card split over them is redacted; an event
/// the typed reader leaves (a repeated key) still ends the stream as malformed.
#[test]
fn ordinary_events_are_read_by_shape_and_judged_the_same() {
    let policy = default_policy();
    let pieces = ["Pay with 4111 11", "11 1111 ", "1111 today. ", "Bye."];
    let bytes = chat_stream(&pieces, true);
    let (out, insp) = run(&policy, ApiFormat::OpenaiChat, true, &[&bytes]);
    // The deltas and the finish chunk; the usage chunk is read the general way.
    assert_eq!(insp.typed_reads, pieces.len() as u64 + 1);
    let text: String = client_events(&out)
        .iter()
        .filter_map(|(_, v)| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(text, "Pay with [CREDIT_CARD] today. Bye.");
    let dup =
        b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\",\"content\":\"b\"}}]}\n\n";
    let (out, insp) = run(&policy, ApiFormat::OpenaiChat, true, &[dup]);
    assert_eq!(insp.typed_reads, 0);
    let events = client_events(&out);
    assert_eq!(events[0].1["error"]["code"], "RESPONSE_EVENT_MALFORMED");
}

/// The context kept before held text, written in place, is what it was as a fresh string:
/// the last 128 bytes of the context and the released text, from after a whitespace.
#[test]
fn context_in_place_is_the_context_as_it_was() {
    fn reference(previous: &str, released: &str) -> String {
        let joined;
        let text = if released.len() >= 128 {
            released
        } else {
            joined = format!("{previous}{released}");
            &joined
        };
        let mut from = text.len().saturating_sub(128);
        while from < text.len() && !text.is_char_boundary(from) {
            from += 1;
        }
        let tail = &text[from..];
        match tail.find(char::is_whitespace) {
            Some(i) if from > 0 => {
                let skip = tail[i..].chars().next().map_or(0, char::len_utf8);
                tail[i + skip..].to_string()
            }
            _ => tail.to_string(),
        }
    }
    let words = [
        "",
        "a",
        "word ",
        "é",
        "\u{3000}",
        "日本語 ",
        "x\u{2028}y",
        "  ",
    ];
    let mut next = lcg(7);
    let mut out = String::from("stale");
    for _ in 0..3000 {
        let mut piece = || -> String {
            (0..next(60))
                .map(|_| *words.get(next(words.len())).unwrap())
                .collect()
        };
        let (previous, released) = (reference("", &piece()), piece());
        super::channels::context_into(&mut out, &previous, &released);
        assert_eq!(
            out,
            reference(&previous, &released),
            "{previous:?} {released:?}"
        );
    }
}
