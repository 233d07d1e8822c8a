//! OpenAI Responses API (`/v1/responses`).
//!
//! Request texts: `instructions` ([`Role::System`]); `input` as a string ([`Role::User`]) or a
//! list of items: messages (`role`, `content` string or parts typed `input_text` /
//! `output_text` / `refusal`; images and files skipped), `function_call.arguments` and
//! `custom_tool_call.input` ([`Role::Assistant`]), `function_call_output.output` and
//! `custom_tool_call_output.output` (string, or parts with text; [`Role::Tool`]). Other items
//! (reasoning, item references, built-in tool calls) are not text to inspect.
//! Response texts: `output[]` items: message parts `output_text.text` and `refusal.refusal`,
//! `function_call.arguments`, `custom_tool_call.input`, all [`Role::Assistant`].

use serde_json::Value;

use super::path::{emit, idx, key, str_field};
use super::{PathId, Role, Texts};

pub(crate) fn extract_request<'a>(body: &'a Value, out: &mut Texts<'a>) {
    let root = PathId::ROOT;
    emit(
        out,
        Role::System,
        body.get("instructions"),
        root,
        &[key("instructions")],
    );
    match body.get("input") {
        Some(Value::Array(items)) => {
            let list = out.at(root, &[key("input")]);
            for (i, item) in items.iter().enumerate() {
                let base = out.index(list, i);
                input_item(item, base, out);
            }
        }
        input => emit(out, Role::User, input, root, &[key("input")]),
    }
}

pub(crate) fn extract_response<'a>(body: &'a Value, out: &mut Texts<'a>) {
    extract_response_at(body, PathId::ROOT, out);
}

/// The response texts of a response body found at `base` (streams: `response.completed`).
pub(crate) fn extract_response_at<'a>(body: &'a Value, base: PathId, out: &mut Texts<'a>) {
    let Some(items) = body.get("output").and_then(Value::as_array) else {
        return;
    };
    let list = out.at(base, &[key("output")]);
    for (i, item) in items.iter().enumerate() {
        let at = out.index(list, i);
        output_item(item, at, out);
    }
}

/// The texts of one `output[]` item (also carried alone by streamed `output_item.done`).
pub(crate) fn output_item<'a>(item: &'a Value, base: PathId, out: &mut Texts<'a>) {
    match str_field(item, "type") {
        Some("message") => {
            content_field(item.get("content"), "content", Role::Assistant, base, out)
        }
        Some(kind) => tool_call(item, kind, base, out),
        None => {}
    }
}

fn input_item<'a>(item: &'a Value, base: PathId, out: &mut Texts<'a>) {
    match str_field(item, "type") {
        // `type` is optional on messages in input lists (EasyInputMessage).
        Some("message") | None => {
            let role = match str_field(item, "role") {
                Some(name) => Role::from_wire(name),
                None if item.get("content").is_some() => Role::Other,
                None => return,
            };
            content_field(item.get("content"), "content", role, base, out);
        }
        Some("function_call_output" | "custom_tool_call_output") => {
            content_field(item.get("output"), "output", Role::Tool, base, out);
        }
        Some(kind) => tool_call(item, kind, base, out),
    }
}

/// `function_call.arguments`, `custom_tool_call.input`.
fn tool_call<'a>(item: &'a Value, kind: &str, base: PathId, out: &mut Texts<'a>) {
    let field = match kind {
        "function_call" => "arguments",
        "custom_tool_call" => "input",
        _ => return,
    };
    emit(out, Role::Assistant, item.get(field), base, &[key(field)]);
}

/// `field` of an item (a message's `content`, a tool output's `output`): a string, or a
/// list of content parts.
fn content_field<'a>(
    value: Option<&'a Value>,
    field: &'static str,
    role: Role,
    base: PathId,
    out: &mut Texts<'a>,
) {
    match value {
        Some(Value::Array(parts)) => {
            let list = out.at(base, &[key(field)]);
            for (j, part) in parts.iter().enumerate() {
                let text_field = match str_field(part, "type") {
                    Some("input_text" | "output_text" | "text") => "text",
                    Some("refusal") => "refusal",
                    _ => continue,
                };
                emit(
                    out,
                    role,
                    part.get(text_field),
                    list,
                    &[idx(j), key(text_field)],
                );
            }
        }
        v => emit(out, role, v, base, &[key(field)]),
    }
}

pub(crate) fn set_max_tokens(body: &mut Value, n: u64) {
    super::set_count(body, "max_output_tokens", n);
}

/// Prepends to `instructions` (joined with a blank line), or sets it when absent or null.
pub(crate) fn add_system_message(body: &mut Value, text: &str) -> bool {
    super::prepend_instructions(body, "instructions", text, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::testutil::{assert_round_trip, segs, texts};
    use crate::llm::{self, ApiFormat, Phase};
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const F: ApiFormat = ApiFormat::OpenaiResponses;

    fn request() -> Value {
        // Items as in OpenAI's Responses API reference: an easy input message, typed messages
        // with content parts and an image, a prior assistant output, a function call and its
        // output, a reasoning item and an item reference.
        json!({
            "model": "gpt-4.1",
            "instructions": "Talk like a pirate.",
            "input": [
                {"role": "developer", "content": "Prefer metric units."},
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "What is in this image?"},
                    {"type": "input_image", "image_url": "https://example.com/boat.png", "detail": "auto"},
                    {"type": "input_file", "file_id": "file-abc", "filename": "notes.pdf"}
                ]},
                {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed", "content": [
                    {"type": "output_text", "text": "A boat.", "annotations": []}
                ]},
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thinking"}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
                 "arguments": "{\"location\":\"Paris, France\"}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "{\"temperature\": 20}"},
                {"type": "function_call_output", "call_id": "call_2", "output": [
                    {"type": "input_text", "text": "part output"},
                    {"type": "input_image", "image_url": "https://example.com/x.png"}
                ]},
                {"type": "custom_tool_call", "call_id": "call_3", "name": "sql", "input": "SELECT 1"},
                {"type": "custom_tool_call_output", "call_id": "call_3", "output": "1"},
                {"type": "item_reference", "id": "msg_0"},
                {"role": "system", "content": "System item."}
            ],
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
            "max_output_tokens": 1024,
            "store": true
        })
    }

    fn response() -> Value {
        json!({
            "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
            "object": "response",
            "created_at": 1741476542,
            "status": "completed",
            "model": "gpt-4.1-2025-04-14",
            "instructions": "Talk like a pirate.",
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "message", "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b",
                 "status": "completed", "role": "assistant", "content": [
                    {"type": "output_text", "text": "In a peaceful grove beneath a silver moon...", "annotations": []},
                    {"type": "refusal", "refusal": "Arr, I won't."}
                ]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
                 "arguments": "{\"location\":\"Paris\"}", "status": "completed"},
                {"type": "web_search_call", "id": "ws_1", "status": "completed"}
            ],
            "usage": {"input_tokens": 36, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": 87, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": 123}
        })
    }

    #[test]
    fn detects_by_path_and_shape() {
        assert_eq!(llm::detect_format(Some("/v1/responses"), &Value::Null), F);
        assert_eq!(
            llm::detect_format(
                Some("/openai/v1/responses?api-version=preview"),
                &Value::Null
            ),
            F
        );
        assert_eq!(llm::detect_format(None, &request()), F);
        assert_eq!(llm::detect_format(None, &response()), F);
        assert_eq!(
            llm::detect_format(
                None,
                &json!({"model": "gpt-4.1", "input": "Tell me a three sentence bedtime story about a unicorn."})
            ),
            F
        );
        assert_eq!(
            llm::detect_format(
                None,
                &json!({"model": "gpt-4.1", "prompt": {"id": "pmpt_abc", "variables": {"city": "Paris"}}})
            ),
            F,
            "prompt template object"
        );
        assert_eq!(
            llm::detect_format(
                None,
                &json!({"previous_response_id": "resp_1", "input": [{"role": "user", "content": "and?"}]})
            ),
            F
        );
    }

    #[test]
    fn extracts_request_texts_with_roles() {
        let body = request();
        let got = segs(F, Phase::Request, &body);
        assert_eq!(
            texts(&got),
            vec![
                (Role::System, "Talk like a pirate."),
                (Role::Developer, "Prefer metric units."),
                (Role::User, "What is in this image?"),
                (Role::Assistant, "A boat."),
                (Role::Assistant, "{\"location\":\"Paris, France\"}"),
                (Role::Tool, "{\"temperature\": 20}"),
                (Role::Tool, "part output"),
                (Role::Assistant, "SELECT 1"),
                (Role::Tool, "1"),
                (Role::System, "System item."),
            ]
        );
        assert_eq!(got[0].path, vec![key("instructions")]);
        assert_eq!(
            got[2].path,
            vec![key("input"), idx(1), key("content"), idx(0), key("text")]
        );
        assert_eq!(got[4].path, vec![key("input"), idx(4), key("arguments")]);
        assert_eq!(
            got[6].path,
            vec![key("input"), idx(6), key("output"), idx(0), key("text")]
        );
    }

    #[test]
    fn string_input_is_user_text() {
        let body = json!({"model": "gpt-4.1", "input": "Write a haiku."});
        let got = segs(F, Phase::Request, &body);
        assert_eq!(texts(&got), vec![(Role::User, "Write a haiku.")]);
        assert_eq!(got[0].path, vec![key("input")]);
    }

    #[test]
    fn extracts_response_texts() {
        let body = response();
        let got = segs(F, Phase::Response, &body);
        assert_eq!(
            texts(&got),
            vec![
                (
                    Role::Assistant,
                    "In a peaceful grove beneath a silver moon..."
                ),
                (Role::Assistant, "Arr, I won't."),
                (Role::Assistant, "{\"location\":\"Paris\"}"),
            ]
        );
        assert_eq!(
            got[0].path,
            vec![key("output"), idx(1), key("content"), idx(0), key("text")]
        );
        // The echoed instructions are request text, not output.
        assert!(!got.iter().any(|s| s.text == "Talk like a pirate."));
    }

    #[test]
    fn round_trip() {
        assert_round_trip(F, Phase::Request, &request(), 10);
        assert_round_trip(F, Phase::Response, &response(), 3);
        assert_round_trip(
            F,
            Phase::Request,
            &json!({"model": "m", "input": "hello"}),
            1,
        );
    }

    #[test]
    fn usage_from_response() {
        let u = llm::usage(F, &response()).unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (Some(36), Some(87), Some(123))
        );
        let u = llm::usage(
            F,
            &json!({"usage": {"input_tokens": 1, "output_tokens": 2}}),
        )
        .unwrap();
        assert_eq!(u.total_tokens, Some(3));
        assert_eq!(llm::usage(F, &json!({"usage": {}})), None);
    }

    #[test]
    fn add_system_message_prepends_to_instructions() {
        let mut body = request();
        assert!(llm::add_system_message(F, &mut body, "Policy first."));
        assert_eq!(body["instructions"], "Policy first.\n\nTalk like a pirate.");
        assert_eq!(body["input"], request()["input"], "input untouched");

        let mut bare = json!({"model": "gpt-4.1", "input": "hi"});
        assert!(llm::add_system_message(F, &mut bare, "Policy."));
        assert_eq!(bare["instructions"], "Policy.");
        let mut null = json!({"input": "hi", "instructions": null});
        assert!(llm::add_system_message(F, &mut null, "Policy."));
        assert_eq!(null["instructions"], "Policy.");
        let mut weird = json!({"input": "hi", "instructions": ["x"]});
        assert!(!llm::add_system_message(F, &mut weird, "Policy."));
        assert_eq!(weird["instructions"], json!(["x"]));
        assert!(!llm::add_system_message(F, &mut json!("str"), "Policy."));
    }

    #[test]
    fn model_and_max_output_tokens() {
        let mut body = request();
        llm::set_model(&mut body, "gpt-4.1-mini");
        assert_eq!(llm::model(&body), Some("gpt-4.1-mini"));
        assert_eq!(llm::max_tokens(F, &body), Some(1024));
        llm::set_max_tokens(F, &mut body, 256);
        assert_eq!(body["max_output_tokens"], 256);
        assert!(body.get("max_tokens").is_none());
        let mut bare = json!({"input": "x"});
        assert_eq!(llm::max_tokens(F, &bare), None);
        llm::set_max_tokens(F, &mut bare, 5);
        assert_eq!(llm::max_tokens(F, &bare), Some(5));
    }

    #[test]
    fn hostile_shapes_do_not_panic() {
        let bodies = [
            json!(null),
            json!({"input": null, "instructions": 5}),
            json!({"input": 42}),
            json!({"input": [null, 1, "bare string", [], {}, {"type": 7}, {"role": 1, "content": "x"}]}),
            json!({"input": [{"type": "message", "role": "user", "content": {"text": "x"}}]}),
            json!({"input": [{"type": "message", "role": "user", "content": [1, null, {"type": "input_text"}, {"type": "input_text", "text": []}]}]}),
            json!({"input": [{"type": "function_call", "arguments": {"a": "b"}}, {"type": "function_call_output", "output": 3}]}),
            json!({"output": {"type": "message"}}),
            json!({"output": [null, {"type": "message", "content": "str"}, {"type": "message", "content": [{"type": "output_text", "text": null}]}]}),
        ];
        for b in &bodies {
            for phase in [Phase::Request, Phase::Response] {
                let got = segs(F, phase, b);
                assert!(
                    got.iter().all(|s| s.text == "x" || s.text == "str"),
                    "{b}: {got:?}"
                );
            }
            assert_eq!(llm::max_tokens(F, b), None);
            let _ = llm::usage(F, b);
            let mut m = b.clone();
            let _ = llm::add_system_message(F, &mut m, "x");
            llm::set_max_tokens(F, &mut m, 3);
        }
        // A message item without type or role but with content is still read (role Other);
        // a bare string in an item list is not an item.
        let b = json!({"input": [{"content": "orphan"}, "bare"]});
        assert_eq!(
            texts(&segs(F, Phase::Request, &b)),
            vec![(Role::Other, "orphan")]
        );
    }
}
