//! OpenAI Chat Completions (`/v1/chat/completions`), also spoken by most OpenAI-compatible
//! servers (Azure OpenAI, vLLM, Ollama, LiteLLM, OpenRouter…).
//!
//! Request texts: `messages[i].content` (string, or parts typed `text`, `input_text`,
//! `output_text`, untyped `{"text": …}` or `refusal`; image,
//! audio and file parts are skipped), an assistant's `refusal`, `tool_calls[j].function.arguments`
//! (and `custom.input` of custom tools) and the legacy `function_call.arguments`, those three
//! as [`Role::Assistant`]. `name` fields are identifiers, not text.
//! Response texts: the same fields of `choices[k].message` (or `choices[k].delta` in a
//! streamed chunk), all as [`Role::Assistant`].

use serde_json::{json, Value};

use super::path::{emit, idx, key};
use super::{PathId, Role, Texts};

/// The role of a chat message, by [`Role::from_wire`]; none (or not a string) is `other`.
pub(crate) fn message_role(m: &Value) -> Role {
    m.get("role")
        .and_then(Value::as_str)
        .map_or(Role::Other, Role::from_wire)
}

pub(crate) fn extract_request<'a>(body: &'a Value, out: &mut Texts<'a>) {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return;
    };
    let list = out.at(PathId::ROOT, &[key("messages")]);
    for (i, m) in messages.iter().enumerate() {
        if m.is_object() {
            let base = out.index(list, i);
            message(m, message_role(m), base, out);
        }
    }
}

pub(crate) fn extract_response<'a>(body: &'a Value, out: &mut Texts<'a>) {
    let Some(choices) = body.get("choices").and_then(Value::as_array) else {
        return;
    };
    let list = out.at(PathId::ROOT, &[key("choices")]);
    for (k, c) in choices.iter().enumerate() {
        for field in ["message", "delta"] {
            if let Some(m) = c.get(field).filter(|m| m.is_object()) {
                let base = out.at(list, &[idx(k), key(field)]);
                message(m, Role::Assistant, base, out);
            }
        }
    }
}

/// The texts of one message object at `base`.
fn message<'a>(m: &'a Value, role: Role, base: PathId, out: &mut Texts<'a>) {
    match m.get("content") {
        Some(Value::Array(parts)) => {
            let list = out.at(base, &[key("content")]);
            for (j, part) in parts.iter().enumerate() {
                // `input_text`/`output_text` parts as the Responses API writes them, and
                // untyped `{"text": …}` parts (Bedrock- and Gemini-style clients), are read as
                // the message's text too.
                let field = match part.get("type").and_then(Value::as_str) {
                    Some("text" | "input_text" | "output_text") => "text",
                    Some("refusal") => "refusal",
                    None if part.get("type").is_none() && part.get("text").is_some() => "text",
                    _ => continue,
                };
                emit(out, role, part.get(field), list, &[idx(j), key(field)]);
            }
        }
        content => emit(out, role, content, base, &[key("content")]),
    }
    emit(out, role, m.get("refusal"), base, &[key("refusal")]);
    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
        let list = out.at(base, &[key("tool_calls")]);
        for (j, call) in calls.iter().enumerate() {
            for (outer, inner) in [("function", "arguments"), ("custom", "input")] {
                let v = call.get(outer).and_then(|f| f.get(inner));
                emit(
                    out,
                    Role::Assistant,
                    v,
                    list,
                    &[idx(j), key(outer), key(inner)],
                );
            }
        }
    }
    let legacy = m.get("function_call").and_then(|f| f.get("arguments"));
    let rel = [key("function_call"), key("arguments")];
    emit(out, Role::Assistant, legacy, base, &rel);
}

/// Model families that reject `max_tokens` and only take `max_completion_tokens`
/// (OpenAI's reasoning models), by the model name after any `provider/` prefix.
fn needs_max_completion_tokens(model: Option<&str>) -> bool {
    let Some(model) = model else {
        return false;
    };
    let name = model.rsplit('/').next().unwrap_or(model);
    let b = name.as_bytes();
    let o_series = matches!(b, [b'o' | b'O', b'1' | b'3' | b'4', rest @ ..] if matches!(rest.first(), None | Some(b'-')));
    o_series || b.get(..5).is_some_and(|p| p.eq_ignore_ascii_case(b"gpt-5"))
}

/// Writes the bound into whichever of the two fields the request uses (both when it sets
/// both). When it uses neither, `max_tokens` is added: every OpenAI-compatible server and
/// older Azure API versions understand it, while `max_completion_tokens` is newer and some
/// compatible servers reject or ignore it. Exception: OpenAI reasoning models (o1/o3/o4,
/// gpt-5…) reject `max_tokens`, so for those models `max_completion_tokens` is added.
pub(crate) fn set_max_tokens(body: &mut Value, n: u64) {
    let reasoning = needs_max_completion_tokens(super::model(body));
    let Some(obj) = body.as_object_mut() else {
        return;
    };
    let in_use = |k: &str| obj.get(k).is_some_and(|v| !v.is_null());
    let (new_field, old_field) = (in_use("max_completion_tokens"), in_use("max_tokens"));
    let fields: &[&str] = match (new_field, old_field) {
        (true, true) => &["max_completion_tokens", "max_tokens"],
        (true, false) => &["max_completion_tokens"],
        (false, true) => &["max_tokens"],
        (false, false) if reasoning || obj.contains_key("max_completion_tokens") => {
            &["max_completion_tokens"]
        }
        (false, false) => &["max_tokens"],
    };
    for f in fields {
        obj.insert((*f).to_owned(), Value::from(n));
    }
}

/// Inserts a separate `system` message first; the user's own messages are left as they are.
pub(crate) fn add_system_message(body: &mut Value, text: &str) -> bool {
    match body.get_mut("messages").and_then(Value::as_array_mut) {
        Some(messages) => {
            messages.insert(0, json!({"role": "system", "content": text}));
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::testutil::{assert_round_trip, segs, texts};
    use crate::llm::{self, ApiFormat, Phase};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const F: ApiFormat = ApiFormat::OpenaiChat;

    fn request() -> Value {
        // As in OpenAI's chat completions reference: developer message, content parts with an
        // image, an assistant turn with tool calls, tool results, a legacy function turn.
        json!({
            "model": "gpt-4.1",
            "messages": [
                {"role": "developer", "content": "You are a helpful assistant."},
                {"role": "user", "name": "alice", "content": [
                    {"type": "text", "text": "What's in this image?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    {"type": "text", "text": "And what's the weather in Boston?"}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_abc123", "type": "function",
                     "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Boston, MA\"}"}},
                    {"id": "call_def456", "type": "custom",
                     "custom": {"name": "code_exec", "input": "print('hi')"}}
                ]},
                {"role": "tool", "tool_call_id": "call_abc123", "content": "{\"temperature\": \"22\", \"unit\": \"celsius\"}"},
                {"role": "tool", "tool_call_id": "call_def456", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help with that."}]},
                {"role": "assistant", "content": "Old style.", "function_call": {"name": "f", "arguments": "{\"a\":1}"}},
                {"role": "function", "name": "f", "content": "result of f"},
                {"role": "system", "content": "Be brief."},
                {"role": "critic", "content": "unknown role text"},
                {"content": "no role at all"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_current_weather",
                "description": "Get the current weather", "parameters": {"type": "object",
                "properties": {"location": {"type": "string"}}}}}],
            "max_tokens": 300,
            "stream": false
        })
    }

    #[test]
    fn detects_by_path_and_shape() {
        let body = request();
        assert_eq!(llm::detect_format(Some("/v1/chat/completions"), &body), F);
        assert_eq!(
            llm::detect_format(Some("/v1/chat/completions"), &Value::Null),
            F
        );
        assert_eq!(
            llm::detect_format(Some("/openai/v1/chat/completions?x=1"), &Value::Null),
            F
        );
        assert_eq!(
            llm::detect_format(
                Some("/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21"),
                &Value::Null
            ),
            F
        );
        assert_eq!(llm::detect_format(None, &body), F);
        assert_eq!(llm::detect_format(Some("/proxy"), &body), F);
        assert_eq!(
            llm::detect_format(
                None,
                &json!({"messages": [{"role": "user", "content": "hi"}]})
            ),
            F
        );
    }

    #[test]
    fn detects_responses_by_shape() {
        let resp = json!({"id": "chatcmpl-1", "object": "chat.completion", "choices": []});
        assert_eq!(llm::detect_format(None, &resp), F);
        let chunk = json!({"object": "chat.completion.chunk", "choices": []});
        assert_eq!(llm::detect_format(None, &chunk), F);
    }

    #[test]
    fn extracts_request_texts_with_roles() {
        let body = request();
        let got = segs(F, Phase::Request, &body);
        let expected: Vec<(Role, &str)> = vec![
            (Role::Developer, "You are a helpful assistant."),
            (Role::User, "What's in this image?"),
            (Role::User, "And what's the weather in Boston?"),
            (Role::Assistant, "{\"location\": \"Boston, MA\"}"),
            (Role::Assistant, "print('hi')"),
            (
                Role::Tool,
                "{\"temperature\": \"22\", \"unit\": \"celsius\"}",
            ),
            (Role::Tool, "hi"),
            (Role::Assistant, "I can't help with that."),
            (Role::Assistant, "Old style."),
            (Role::Assistant, "{\"a\":1}"),
            (Role::Tool, "result of f"),
            (Role::System, "Be brief."),
            (Role::Other, "unknown role text"),
            (Role::Other, "no role at all"),
        ];
        assert_eq!(texts(&got), expected);
        assert_eq!(
            got[2].path,
            vec![key("messages"), idx(1), key("content"), idx(3), key("text")]
        );
        assert_eq!(
            got[3].path,
            vec![
                key("messages"),
                idx(2),
                key("tool_calls"),
                idx(0),
                key("function"),
                key("arguments")
            ]
        );
        assert_eq!(
            got[9].path,
            vec![
                key("messages"),
                idx(6),
                key("function_call"),
                key("arguments")
            ]
        );
        assert!(
            !got.iter()
                .any(|s| s.text == "alice" || s.text.contains("example.com")),
            "names and image urls are not text"
        );
    }

    #[test]
    fn round_trip_request_and_response() {
        assert_round_trip(F, Phase::Request, &request(), 14);
        assert_round_trip(F, Phase::Response, &response(), 3);
    }

    fn response() -> Value {
        json!({
            "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
            "object": "chat.completion",
            "created": 1741569952,
            "model": "gpt-4.1-2025-04-14",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Hello! How can I assist you today?",
                  "refusal": null, "annotations": []}, "logprobs": null, "finish_reason": "stop"},
                {"index": 1, "message": {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}
                ]}, "finish_reason": "tool_calls"},
                {"index": 2, "message": {"role": "assistant", "content": null, "refusal": "I can't do that."}}
            ],
            "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}},
            "service_tier": "default"
        })
    }

    #[test]
    fn extracts_response_texts() {
        let mut body = response();
        body["choices"]
            .as_array_mut()
            .unwrap()
            .push(json!({"index": 3, "delta": {"content": "streamed"}}));
        let got = segs(F, Phase::Response, &body);
        assert_eq!(
            texts(&got),
            vec![
                (Role::Assistant, "Hello! How can I assist you today?"),
                (Role::Assistant, "{\"q\":\"x\"}"),
                (Role::Assistant, "I can't do that."),
                (Role::Assistant, "streamed"),
            ]
        );
        assert_eq!(
            got[0].path,
            vec![key("choices"), idx(0), key("message"), key("content")]
        );
        assert_eq!(
            got[3].path,
            vec![key("choices"), idx(3), key("delta"), key("content")]
        );
        // Request texts are not response texts and vice versa.
        assert!(segs(F, Phase::Response, &request()).is_empty());
        assert!(segs(F, Phase::Request, &body).is_empty());
    }

    #[test]
    fn usage_from_response() {
        let u = llm::usage(F, &response()).unwrap();
        assert_eq!(u.prompt_tokens, Some(19));
        assert_eq!(u.completion_tokens, Some(10));
        assert_eq!(u.total_tokens, Some(29));
        let u = llm::usage(
            F,
            &json!({"usage": {"prompt_tokens": 5, "completion_tokens": 7}}),
        )
        .unwrap();
        assert_eq!(u.total_tokens, Some(12), "total computed when missing");
        assert_eq!(llm::usage(F, &json!({"usage": null})), None);
        assert_eq!(llm::usage(F, &json!({"choices": []})), None);
    }

    #[test]
    fn add_system_message_inserts_a_separate_first_message() {
        let mut body = json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "User's own system prompt."},
            {"role": "user", "content": "hi"}
        ]});
        assert!(llm::add_system_message(F, &mut body, "Policy: be safe."));
        assert_eq!(
            body["messages"],
            json!([
                {"role": "system", "content": "Policy: be safe."},
                {"role": "system", "content": "User's own system prompt."},
                {"role": "user", "content": "hi"}
            ])
        );
        let mut no_messages = json!({"model": "gpt-4o"});
        assert!(!llm::add_system_message(F, &mut no_messages, "x"));
        assert_eq!(no_messages, json!({"model": "gpt-4o"}));
        let mut bad = json!({"messages": "not an array"});
        assert!(!llm::add_system_message(F, &mut bad, "x"));
    }

    #[test]
    fn set_model() {
        let mut body = request();
        assert_eq!(llm::model(&body), Some("gpt-4.1"));
        llm::set_model(&mut body, "gpt-4o-mini");
        assert_eq!(llm::model(&body), Some("gpt-4o-mini"));
        assert_eq!(body["messages"], request()["messages"]);
    }

    #[test]
    fn max_tokens_reads_and_writes_the_field_in_use() {
        let mut body = json!({"model": "gpt-4o", "messages": [], "max_tokens": 300});
        assert_eq!(llm::max_tokens(F, &body), Some(300));
        llm::set_max_tokens(F, &mut body, 100);
        assert_eq!(body["max_tokens"], 100);
        assert!(body.get("max_completion_tokens").is_none());

        let mut body = json!({"model": "gpt-4o", "messages": [], "max_completion_tokens": 500});
        assert_eq!(llm::max_tokens(F, &body), Some(500));
        llm::set_max_tokens(F, &mut body, 100);
        assert_eq!(body["max_completion_tokens"], 100);
        assert!(body.get("max_tokens").is_none());

        // Both: the larger, since servers differ on which one wins.
        let mut both = json!({"messages": [], "max_completion_tokens": 500, "max_tokens": 400});
        assert_eq!(llm::max_tokens(F, &both), Some(500));
        llm::set_max_tokens(F, &mut both, 50);
        assert_eq!(both["max_completion_tokens"], 50);
        assert_eq!(both["max_tokens"], 50);

        // Neither: max_tokens, which every compatible server understands.
        let mut none = json!({"model": "gpt-4o", "messages": []});
        assert_eq!(llm::max_tokens(F, &none), None);
        llm::set_max_tokens(F, &mut none, 64);
        assert_eq!(none["max_tokens"], 64);
        assert!(none.get("max_completion_tokens").is_none());

        // …except reasoning models, which reject max_tokens.
        for m in [
            "o1",
            "o3-mini",
            "o4-mini-2025-04-16",
            "gpt-5",
            "openai/gpt-5-mini",
            "O3",
        ] {
            let mut r = json!({"model": m, "messages": []});
            llm::set_max_tokens(F, &mut r, 64);
            assert_eq!(r["max_completion_tokens"], 64, "{m}");
            assert!(r.get("max_tokens").is_none(), "{m}");
            let mut r = json!({"model": m, "messages": [], "max_tokens": null});
            llm::set_max_tokens(F, &mut r, 64);
            assert_eq!(r["max_completion_tokens"], 64, "{m}");
        }
        for m in ["o10-custom", "omni", "gpt-4o", "gpt-4.1"] {
            assert!(!needs_max_completion_tokens(Some(m)), "{m}");
        }

        // null counts as absent for reading; a null field present is the one written.
        let mut nulls = json!({"model": "gpt-4o", "messages": [], "max_completion_tokens": null});
        assert_eq!(llm::max_tokens(F, &nulls), None);
        llm::set_max_tokens(F, &mut nulls, 10);
        assert_eq!(nulls["max_completion_tokens"], 10);
        assert!(nulls.get("max_tokens").is_none());
    }

    #[test]
    fn hostile_shapes_do_not_panic() {
        let bodies = [
            json!(null),
            json!([]),
            json!("messages"),
            json!({"messages": null}),
            json!({"messages": {"0": {"role": "user", "content": "x"}}}),
            json!({"messages": [null, 1, "s", [], {"role": 5, "content": 7}]}),
            json!({"messages": [{"role": "user", "content": {"text": "obj"}}]}),
            json!({"messages": [{"role": "user", "content": [null, 1, {"type": 3, "text": "x"}, {"type": "text", "text": 4}, {"type": "text"}]}]}),
            json!({"messages": [{"role": "assistant", "tool_calls": [null, {"function": null}, {"function": {"arguments": {"a": 1}}}]}]}),
            json!({"messages": [{"role": "assistant", "tool_calls": {"function": {"arguments": "x"}}}]}),
            json!({"choices": [null, {"message": "str"}, {"message": {"content": 3}}, {"delta": []}]}),
            json!({"choices": "x"}),
        ];
        for b in &bodies {
            for phase in [Phase::Request, Phase::Response] {
                assert!(segs(F, phase, b).is_empty(), "{b}");
            }
            assert_eq!(llm::max_tokens(F, b), None, "{b}");
            let _ = llm::usage(F, b);
            let _ = llm::detect_format(None, b);
            let mut m = b.clone();
            llm::set_max_tokens(F, &mut m, 1);
            let mut m = b.clone();
            let _ = llm::add_system_message(F, &mut m, "x");
            let mut m = b.clone();
            llm::set_model(&mut m, "x");
        }
    }

    #[test]
    fn huge_conversation() {
        let messages: Vec<Value> = (0..20_000)
            .map(|i| json!({"role": if i % 2 == 0 {"user"} else {"assistant"}, "content": format!("m{i}")}))
            .collect();
        let body = json!({"model": "gpt-4o", "messages": messages});
        let got = segs(F, Phase::Request, &body);
        assert_eq!(got.len(), 20_000);
        assert_eq!(got[19_999].text, "m19999");
        assert_eq!(got[19_999].role, Role::Assistant);
        assert_eq!(got[19_998].role, Role::User);
    }
}
