use serde_json::Value;

use super::read;
use crate::llm::stream::{as_path, interpret};
use crate::llm::{json, path, ApiFormat};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use ApiFormat::{
    AnthropicMessages as A, OpenaiChat as C, OpenaiCompletions as L, OpenaiResponses as R,
};

/// What the general way makes of `data`: the event's meaning and each delta's text, or None
/// when it is not strict JSON.
fn general(format: ApiFormat, data: &str) -> Option<(crate::llm::stream::EventInfo, Vec<String>)> {
    let value: Value = json::from_slice(data.as_bytes()).ok()?;
    let info = interpret(format, &value);
    let texts = info
        .deltas
        .iter()
        .map(|d| {
            path::get(&value, &as_path(&d.path))
                .and_then(Value::as_str)
                .unwrap_or("<none>")
                .to_string()
        })
        .collect();
    Some((info, texts))
}

/// Events the typed reader reads: exactly what the general way gives.
const KNOWN: &[(ApiFormat, &str)] = &[
    (C, r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","system_fingerprint":null,"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}"#),
    (C, r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hello \"you\"\n"},"finish_reason":null}]}"#),
    (C, r#"{"id":"c","model":"gpt-4o","choices":[{"index":3,"delta":{"content":"x"}},{"delta":{"refusal":"no"}}]}"#),
    (C, r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#),
    (C, r#"{"id":"c","choices":[],"obfuscation":"abc","service_tier":"default"}"#),
    (C, r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}}]}"#),
    (C, r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":2,"function":{"arguments":"{\"a\":"}},{"function":{"arguments":"1}"}}]}}]}"#),
    (C, r#"{"choices":[{"index":0,"delta":{"function_call":{"name":"f","arguments":"{}"}}}]}"#),
    (C, r#"{"choices":[{"index":0,"text":"legacy in a chat stream"}]}"#),
    (C, r#"{"choices":[{"index":0,"text":null}]}"#),
    (C, "  {\"choices\":[{\"delta\":{\"content\":\"\\u00e9t\\u00e9 \u{1F600}\"}}]}\n"),
    (L, r#"{"id":"cmpl","object":"text_completion","created":1,"model":"gpt-3.5-turbo-instruct","choices":[{"text":" word","index":0,"logprobs":null,"finish_reason":null}]}"#),
    (L, r#"{"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}]}"#),
    (L, r#"{"choices":[{"index":0}]}"#),
    (A, r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
    (A, r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hi there"}}"#),
    (A, r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"q\": \"x"}}"#),
    (A, r#"{"type":"content_block_stop","index":1}"#),
    (A, r#"{"type":"message_stop"}"#),
    (A, r#"{"type":"ping"}"#),
    (R, r#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":1,"content_index":2,"delta":"Hi","logprobs":[],"obfuscation":"x"}"#),
    (R, r#"{"type":"response.refusal.delta","sequence_number":5,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"no"}"#),
    (R, r#"{"type":"response.function_call_arguments.delta","sequence_number":6,"item_id":"fc_1","output_index":1,"delta":"{\"a\""}"#),
    (R, r#"{"type":"response.custom_tool_call_input.delta","sequence_number":7,"output_index":2,"delta":"x","logprobs":null}"#),
    (C, r#"{"choices":[{"delta":{"content":"\" \\ \/ \b \f \n \r \t \u0041 \ud83d\ude00 \u00E9 \uFFFF end"}}]}"#),
    (C, " \t\r\n{ \"choices\" :\n[ { \"index\" : 0 ,\r\n\"delta\" : { \"content\" : \"a\" } } ] ,\"created\":0 } \n"),
    (C, r#"{"choices":[{"index":18446744073709551615,"delta":{"content":"a"}}]}"#),
    (C, r#"{"choices":[{"index":0,"delta":null,"finish_reason":"stop"}],"model":null,"id":null}"#),
    (C, r#"{"choices":null}"#),
    (C, r#"{}"#),
    (C, r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":null}],"function_call":null}}]}"#),
    (C, r#"{"choices":[{"index":0,"delta":{"tool_calls":null,"content":null,"refusal":null,"role":null}}]}"#),
    (A, r#"{"type":"content_block_start","index":null,"content_block":{"type":"text","text":"a\nb"}}"#),
    (A, r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x","partial_json":null}}"#),
    (R, r#"{"type":"response.output_text.delta","output_index":0,"delta":"x","logprobs":[null]}"#),
    (R, r#"{"type":"response.output_text.delta","output_index":0,"delta":null}"#),
];

/// Events the typed reader leaves to the general way: unknown fields, usage, repeated text,
/// hostile or malformed JSON. Their outcome is the general way's.
const GENERAL: &[(ApiFormat, &str)] = &[
    // Numbers `as_u64` reads differently or serde_json refuses.
    (C, r#"{"choices":[{"index":01,"delta":{"content":"a"}}]}"#),
    (
        C,
        r#"{"choices":[{"index":18446744073709551616,"delta":{"content":"a"}}]}"#,
    ),
    (C, r#"{"choices":[{"index":1e0,"delta":{"content":"a"}}]}"#),
    (C, r#"{"choices":[{"index":1E0,"delta":{"content":"a"}}]}"#),
    (C, r#"{"choices":[{"index":1.0,"delta":{"content":"a"}}]}"#),
    (C, r#"{"choices":[{"index":-0,"delta":{"content":"a"}}]}"#),
    (C, r#"{"choices":[{"index":+1,"delta":{"content":"a"}}]}"#),
    (C, r#"{"choices":[{"index":1x,"delta":{"content":"a"}}]}"#),
    // Escapes serde_json refuses, and escaped keys.
    (C, r#"{"choices":[{"delta":{"content":"\udc00"}}]}"#),
    (C, r#"{"choices":[{"delta":{"content":"\ud800\u0041"}}]}"#),
    (C, r#"{"choices":[{"delta":{"content":"\ud800"}}]}"#),
    (C, r#"{"choices":[{"delta":{"content":"\x41"}}]}"#),
    (C, r#"{"choices":[{"delta":{"content":"\u00g1"}}]}"#),
    (C, r#"{"choices":[{"delta":{"content":"\u00"}}]}"#),
    (C, r#"{"choices":[{"delta":{"content":"a\"}}]}"#),
    (C, r#"{"choices":[{"delta":{"\u0063ontent":"a"}}]}"#),
    (C, "{\"choices\":[{\"delta\":{\"content\":\"a\u{1}b\"}}]}"),
    (
        C,
        "{\"choices\":[{\"delta\":{\"content\":\"a\\n\u{1f}\"}}]}",
    ),
    (C, r#"{"choices":[{"delta":{"content":"a"}}]"#),
    (C, r#"{"choices":[{"delta":{"content":"a"}},]}"#),
    (C, r#"{"choices":[{"delta":{"content":"a"}}] "model":"m"}"#),
    (C, r#"{"choices":[{"delta":{"content":"a"}}]}{}"#),
    (C, r#"{"choices":[{"delta":{"content":"a",}}]}"#),
    (C, r#"{"choices":nul}"#),
    (C, r#"{"choices":[{"delta":{"content":true}}]}"#),
    (A, r#"{"type":null}"#),
    (
        A,
        r#"{"type":"content_block_start","index":0,"content_block":{"text":"a"}}"#,
    ),
    (
        A,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":"a","type":"text"}}"#,
    ),
    (R, r#"{"output_index":0,"delta":"x"}"#),
    (
        R,
        r#"{"type":"response.output_text.delta","output_index":0,"delta":"x","logprobs":[[]]}"#,
    ),
    // Usage, errors, log-probabilities, parts, vendor fields: read the general way.
    (
        C,
        r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
    ),
    (C, r#"{"choices":[],"error":{"message":"boom"}}"#),
    (
        C,
        r#"{"choices":[{"index":0,"delta":{"content":"a"},"logprobs":{"content":[{"token":"a"}]}}]}"#,
    ),
    (
        C,
        r#"{"choices":[{"index":0,"delta":{"content":[{"type":"text","text":"a"}]}}]}"#,
    ),
    (
        C,
        r#"{"choices":[{"index":0,"delta":{"reasoning_content":"think","content":"a"}}]}"#,
    ),
    (
        C,
        r#"{"choices":[{"index":0,"delta":{"content":"a"}}],"x_vendor":"text"}"#,
    ),
    (
        C,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"custom":{"input":"x"}}]}}]}"#,
    ),
    (
        C,
        r#"{"choices":[{"index":0,"text":"a","delta":{"content":"b"}}]}"#,
    ),
    (C, r#"{"sequence_number":1,"choices":[]}"#),
    // An identifier that is not a string: its strings would be texts.
    (C, r#"{"id":{"note":"text"},"choices":[]}"#),
    (C, r#"{"choices":[{"index":-1,"delta":{"content":"a"}}]}"#),
    (C, r#"{"choices":[{"index":1.5,"delta":{"content":"a"}}]}"#),
    // Repeated keys (also after unescaping), at any depth: refused by the general way.
    (
        C,
        r#"{"choices":[{"index":0,"delta":{"content":"safe","content":"secret"}}]}"#,
    ),
    (
        C,
        r#"{"choices":[{"index":0,"delta":{"content":"safe","\u0063ontent":"secret"}}]}"#,
    ),
    (C, r#"{"model":"a","model":"b","choices":[]}"#),
    (C, r#"{"choices":[],"choices":[{"delta":{"content":"a"}}]}"#),
    // Not JSON, or JSON serde_json refuses.
    (C, r#"{"choices":[{"delta":{"content":"a"}}]} trailing"#),
    (C, r#"{"choices":[{"delta":{"content":"\ud800"}}]}"#),
    (C, r#"{"choices":[{"delta":{"content":"a"}}],}"#),
    (C, r#"{"created":1e400,"choices":[]}"#),
    (C, "{\"choices\":[{\"delta\":{\"content\":\"a\tb\"}}]}"),
    (C, r#"[DONE]"#),
    (C, r#""#),
    (
        L,
        r#"{"choices":[{"text":"a","index":0,"delta":{"content":"b"}}]}"#,
    ),
    (
        A,
        r#"{"type":"message_start","message":{"id":"m","model":"claude","usage":{"input_tokens":3}}}"#,
    ),
    (
        A,
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}"#,
    ),
    (
        A,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#,
    ),
    (
        A,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"thinking","thinking":""}}"#,
    ),
    (
        A,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"hm"}}"#,
    ),
    (
        A,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"a","partial_json":"b"}}"#,
    ),
    (
        A,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta"}}"#,
    ),
    (
        A,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"a","text":"b"}}"#,
    ),
    (
        A,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ),
    (
        A,
        r#"{"type":"content_block_stop","index":0,"note":"text"}"#,
    ),
    (A, r#"{"index":0}"#),
    (
        R,
        r#"{"type":"response.output_text.done","output_index":0,"content_index":0,"text":"whole"}"#,
    ),
    (
        R,
        r#"{"type":"response.created","sequence_number":0,"response":{"model":"gpt-4o"}}"#,
    ),
    (
        R,
        r#"{"type":"response.reasoning_summary_text.delta","output_index":0,"delta":"x"}"#,
    ),
    (
        R,
        r#"{"type":"response.output_text.delta","output_index":0,"delta":"x","logprobs":[{"token":"x"}]}"#,
    ),
    (
        R,
        r#"{"type":"response.output_text.delta","output_index":0,"delta":"x","delta":"y"}"#,
    ),
    (
        R,
        r#"{"type":"response.output_text.delta","output_index":0,"delta":"x","annotations":["t"]}"#,
    ),
];

#[test]
fn known_shapes_read_as_the_general_way_reads_them() {
    for (format, data) in KNOWN {
        let read = read(*format, data).unwrap_or_else(|| panic!("not read: {data}"));
        let (info, texts) = general(*format, data).unwrap();
        assert_eq!(read.info, info, "{data}");
        assert_eq!(read.texts, texts, "{data}");
    }
}

#[test]
fn other_events_are_left_to_the_general_way() {
    for (format, data) in GENERAL {
        assert!(read(*format, data).is_none(), "read: {data}");
    }
}

#[test]
fn unknown_formats_and_embeddings_are_left_to_the_general_way() {
    let data = r#"{"choices":[{"index":0,"delta":{"content":"a"}}]}"#;
    assert!(read(ApiFormat::Unknown, data).is_none());
    assert!(read(ApiFormat::OpenaiEmbeddings, data).is_none());
}

/// Every prefix of a known event (what a truncated stream leaves) is not read.
#[test]
fn truncated_known_events_are_not_read() {
    for (format, data) in KNOWN {
        let data = data.trim();
        for cut in 0..data.len() {
            if let Some(prefix) = data.get(..cut) {
                assert!(read(*format, prefix).is_none(), "read: {prefix}");
            }
        }
    }
}

/// A known event read under another provider's format is that format's reading or none.
#[test]
fn events_under_another_format_read_as_the_general_way_or_not_at_all() {
    for (_, data) in KNOWN.iter().chain(GENERAL) {
        for format in [C, L, A, R] {
            if let Some(read) = read(format, data) {
                let (info, texts) = general(format, data).unwrap();
                assert_eq!(read.info, info, "{format:?} {data}");
                assert_eq!(read.texts, texts, "{format:?} {data}");
            }
        }
    }
}

/// Chat deltas whose text has escapes, quotes and raw control characters at every offset up
/// to 96 bytes in: read as the general way reads them, or not at all when it is not JSON.
#[test]
fn texts_with_stops_at_every_offset_read_as_the_general_way() {
    for len in 0..96 {
        for inside in [
            "\\\"",
            "\\\\",
            "\\n",
            "\\u00e9",
            "\\ud83d\\ude00",
            "\u{1}",
            "\n",
            "\u{1f}",
            "é",
            "\\ud800",
            "\\x",
        ] {
            let text = format!("{}{inside}{}", "w".repeat(len), "v".repeat(len % 7));
            for data in [
                format!(
                    r#"{{"id":"c","model":"gpt-4o","choices":[{{"index":0,"delta":{{"content":"{text}"}},"finish_reason":null}}]}}"#
                ),
                format!(
                    r#"{{"id":"{text}","model":"gpt-4o","choices":[{{"index":0,"delta":{{"content":"a"}}}}]}}"#
                ),
                format!(
                    r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{text}"}}}}"#
                ),
            ] {
                for format in [C, A] {
                    match (read(format, &data), general(format, &data)) {
                        (Some(read), Some((info, texts))) => {
                            assert_eq!(read.info, info, "{data:?}");
                            assert_eq!(read.texts, texts, "{data:?}");
                        }
                        (Some(_), None) => panic!("read what is not JSON: {data:?}"),
                        (None, _) => {}
                    }
                }
            }
        }
    }
}
