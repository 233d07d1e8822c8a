//! Anthropic Messages API (`/v1/messages`; also the same body on Bedrock and Vertex AI).
//!
//! Request texts: `system` (a string or `text` blocks, [`Role::System`]); `messages[i].content`
//! as a string or blocks: `text`, `document` (title, context, a text or content source) and
//! `search_result` (title, source, text blocks), as the message's role; `tool_use` (every
//! string inside `input`, [`Role::Assistant`]); `tool_result` (`content` string, or text,
//! document and search-result blocks, [`Role::Tool`]). Images, base64 and URL documents and
//! thinking blocks (signed: editing them would break the signature) are skipped.
//! Response texts: `content[]` `text` blocks and `tool_use` input strings ([`Role::Assistant`]).

use serde_json::Value;

use super::generic;
use super::path::{emit, idx, key, str_field};
use super::{count, PathId, Role, Texts, Usage};

pub(crate) fn extract_request<'a>(body: &'a Value, out: &mut Texts<'a>) {
    let root = PathId::ROOT;
    match body.get("system") {
        Some(Value::Array(blocks)) => {
            for (j, b) in blocks.iter().enumerate() {
                if str_field(b, "type") == Some("text") {
                    let rel = [key("system"), idx(j), key("text")];
                    emit(out, Role::System, b.get("text"), root, &rel);
                }
            }
        }
        system => emit(out, Role::System, system, root, &[key("system")]),
    }
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return;
    };
    let list = out.at(root, &[key("messages")]);
    for (i, m) in messages.iter().enumerate() {
        let role = str_field(m, "role").map_or(Role::Other, Role::from_wire);
        let base = out.index(list, i);
        content(m.get("content"), role, base, out);
    }
}

pub(crate) fn extract_response<'a>(body: &'a Value, out: &mut Texts<'a>) {
    content(body.get("content"), Role::Assistant, PathId::ROOT, out);
}

/// A message's `content` at `base`: a string, or a list of blocks.
fn content<'a>(content: Option<&'a Value>, role: Role, base: PathId, out: &mut Texts<'a>) {
    let blocks = match content {
        Some(Value::Array(blocks)) => blocks,
        c => return emit(out, role, c, base, &[key("content")]),
    };
    let list = out.at(base, &[key("content")]);
    for (j, b) in blocks.iter().enumerate() {
        match str_field(b, "type") {
            Some("text") => emit(out, role, b.get("text"), list, &[idx(j), key("text")]),
            Some("tool_use") => {
                if let Some(input) = b.get("input") {
                    let at = out.at(list, &[idx(j), key("input")]);
                    generic::collect(input, Role::Assistant, at, out);
                }
            }
            Some("tool_result") => match b.get("content") {
                Some(Value::Array(inner)) => {
                    let results = out.at(list, &[idx(j), key("content")]);
                    for (k, t) in inner.iter().enumerate() {
                        let at = out.index(results, k);
                        block_text(t, Role::Tool, at, out);
                    }
                }
                c => emit(out, Role::Tool, c, list, &[idx(j), key("content")]),
            },
            Some("document" | "search_result") => {
                let at = out.index(list, j);
                block_text(b, role, at, out);
            }
            _ => {}
        }
    }
}

/// The text of a `text`, `document` or `search_result` block at `at`, as `role`: a text
/// block's `text`; a document's `title`, `context` and text source (`source.data` of a
/// `text` source, or the `text` blocks of a `content` source); a search result's `title`,
/// `source` and `text` blocks. Base64 and URL sources carry no text.
fn block_text<'a>(b: &'a Value, role: Role, at: PathId, out: &mut Texts<'a>) {
    match str_field(b, "type") {
        Some("text") => emit(out, role, b.get("text"), at, &[key("text")]),
        Some("document") => {
            emit(out, role, b.get("title"), at, &[key("title")]);
            emit(out, role, b.get("context"), at, &[key("context")]);
            let source = b.get("source");
            match source.and_then(|s| str_field(s, "type")) {
                Some("text") => {
                    emit(
                        out,
                        role,
                        source.and_then(|s| s.get("data")),
                        at,
                        &[key("source"), key("data")],
                    );
                }
                Some("content") => {
                    if let Some(Value::Array(blocks)) = source.and_then(|s| s.get("content")) {
                        let list = out.at(at, &[key("source"), key("content")]);
                        for (k, t) in blocks.iter().enumerate() {
                            if str_field(t, "type") == Some("text") {
                                emit(out, role, t.get("text"), list, &[idx(k), key("text")]);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Some("search_result") => {
            emit(out, role, b.get("title"), at, &[key("title")]);
            emit(out, role, b.get("source"), at, &[key("source")]);
            if let Some(Value::Array(blocks)) = b.get("content") {
                let list = out.at(at, &[key("content")]);
                for (k, t) in blocks.iter().enumerate() {
                    if str_field(t, "type") == Some("text") {
                        emit(out, role, t.get("text"), list, &[idx(k), key("text")]);
                    }
                }
            }
        }
        _ => {}
    }
}

pub(crate) fn set_max_tokens(body: &mut Value, n: u64) {
    super::set_count(body, "max_tokens", n);
}

/// Prepends to `system`: a string is joined with a blank line, blocks get a text block first,
/// an absent (or null, or empty) system is set.
pub(crate) fn add_system_message(body: &mut Value, text: &str) -> bool {
    super::prepend_instructions(body, "system", text, true)
}

/// `input_tokens` plus cache writes and reads (billed input Anthropic reports apart), and
/// `output_tokens`.
pub(crate) fn usage(u: &Value) -> Option<Usage> {
    let input = u.get("input_tokens").and_then(count);
    let cache_write = u.get("cache_creation_input_tokens").and_then(count);
    let cache_read = u.get("cache_read_input_tokens").and_then(count);
    let prompt = match (input, cache_write, cache_read) {
        (None, None, None) => None,
        (a, b, c) => Some(
            a.unwrap_or(0)
                .saturating_add(b.unwrap_or(0))
                .saturating_add(c.unwrap_or(0)),
        ),
    };
    Some(Usage {
        prompt_tokens: prompt,
        completion_tokens: u.get("output_tokens").and_then(count),
        total_tokens: u.get("total_tokens").and_then(count),
    })
}

/// Anthropic-only markers in a `messages` request: a top-level `system` or `anthropic_version`
/// (Bedrock, Vertex), or content blocks OpenAI chat does not have.
pub(crate) fn looks_like_request(body: &Value, messages: &[Value]) -> bool {
    if body.get("system").is_some() || body.get("anthropic_version").is_some() {
        return true;
    }
    messages.iter().any(|m| {
        m.get("content")
            .and_then(Value::as_array)
            .is_some_and(|blocks| blocks.iter().any(is_anthropic_block))
    })
}

fn is_anthropic_block(b: &Value) -> bool {
    match str_field(b, "type") {
        Some("tool_use" | "tool_result" | "thinking" | "redacted_thinking") => true,
        Some("image" | "document") => b.get("source").is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::testutil::{assert_round_trip, segs, texts};
    use crate::llm::{self, ApiFormat, Phase};
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const F: ApiFormat = ApiFormat::AnthropicMessages;

    fn request() -> Value {
        // As in Anthropic's Messages API docs: system blocks with cache control, an image,
        // a tool_use turn and its tool_result (string and block forms), a thinking block.
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": [
                {"type": "text", "text": "You are an AI assistant tasked with analyzing literary works."},
                {"type": "text", "text": "<the entire contents of Pride and Prejudice>",
                 "cache_control": {"type": "ephemeral"}}
            ],
            "tools": [{"name": "get_weather", "description": "Get the current weather in a given location",
                       "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}],
            "messages": [
                {"role": "user", "content": "What's the weather like in San Francisco?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Let me check.", "signature": "EqQBCgIYAhIM"},
                    {"type": "text", "text": "I'll check the weather for you."},
                    {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
                     "input": {"days": 3, "location": "San Francisco, CA", "tags": ["now", "later"], "unit": "celsius"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": false, "content": [
                        {"type": "text", "text": "Sunny"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
                    ]},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc text"}},
                    {"type": "text", "text": "Describe this image."}
                ]}
            ]
        })
    }

    fn response() -> Value {
        json!({
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [
                {"type": "text", "text": "Hi! My name is Claude."},
                {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"query": "weather SF"}}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {"input_tokens": 2095, "output_tokens": 503,
                      "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000}
        })
    }

    #[test]
    fn detects_by_path_and_shape() {
        assert_eq!(llm::detect_format(Some("/v1/messages"), &Value::Null), F);
        assert_eq!(
            llm::detect_format(Some("/anthropic/v1/messages?beta=true"), &Value::Null),
            F
        );
        assert_eq!(
            llm::detect_format(Some("/v1/messages/count_tokens"), &Value::Null),
            F
        );
        assert_ne!(
            llm::detect_format(Some("/v1/threads/thread_abc/messages"), &Value::Null),
            F,
            "OpenAI Assistants thread messages"
        );
        assert_eq!(llm::detect_format(None, &request()), F);
        assert_eq!(llm::detect_format(None, &response()), F);
        // Bedrock: anthropic_version, no model, messages only.
        let bedrock = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
                             "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(
            llm::detect_format(Some("/model/anthropic.claude-3/invoke"), &bedrock),
            F
        );
        let with_system = json!({"system": "s", "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(llm::detect_format(None, &with_system), F);
        let with_tool_result = json!({"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": "x"}]}]});
        assert_eq!(llm::detect_format(None, &with_tool_result), F);
        let with_image = json!({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]});
        assert_eq!(llm::detect_format(None, &with_image), F);
        // Without any marker, a messages body is OpenAI chat.
        let plain = json!({"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(llm::detect_format(None, &plain), ApiFormat::OpenaiChat);
        assert_eq!(llm::detect_format(Some("/v1/messages"), &plain), F);
    }

    #[test]
    fn extracts_request_texts_with_roles() {
        let body = request();
        let got = segs(F, Phase::Request, &body);
        assert_eq!(
            texts(&got),
            vec![
                (
                    Role::System,
                    "You are an AI assistant tasked with analyzing literary works."
                ),
                (Role::System, "<the entire contents of Pride and Prejudice>"),
                (Role::User, "What's the weather like in San Francisco?"),
                (Role::Assistant, "I'll check the weather for you."),
                (Role::Assistant, "San Francisco, CA"),
                (Role::Assistant, "now"),
                (Role::Assistant, "later"),
                (Role::Assistant, "celsius"),
                (Role::Tool, "15 degrees"),
                (Role::Tool, "Sunny"),
                // A document with a text source (issue 13: never read before).
                (Role::User, "doc text"),
                (Role::User, "Describe this image."),
            ]
        );
        assert_eq!(got[1].path, vec![key("system"), idx(1), key("text")]);
        assert_eq!(
            got[5].path,
            vec![
                key("messages"),
                idx(1),
                key("content"),
                idx(2),
                key("input"),
                key("tags"),
                idx(0)
            ]
        );
        assert_eq!(
            got[9].path,
            vec![
                key("messages"),
                idx(2),
                key("content"),
                idx(1),
                key("content"),
                idx(0),
                key("text")
            ]
        );
        assert!(
            !got.iter().any(|s| s.text == "Let me check."),
            "signed thinking is skipped"
        );
    }

    #[test]
    fn string_system() {
        let body = json!({"model": "claude-3-5-haiku-latest", "max_tokens": 10, "system": "Be terse.",
                          "messages": [{"role": "user", "content": "Hello, Claude"}]});
        let got = segs(F, Phase::Request, &body);
        assert_eq!(
            texts(&got),
            vec![(Role::System, "Be terse."), (Role::User, "Hello, Claude")]
        );
        assert_eq!(got[0].path, vec![key("system")]);
    }

    #[test]
    fn extracts_response_texts() {
        let body = response();
        let got = segs(F, Phase::Response, &body);
        assert_eq!(
            texts(&got),
            vec![
                (Role::Assistant, "Hi! My name is Claude."),
                (Role::Assistant, "weather SF")
            ]
        );
        assert_eq!(got[0].path, vec![key("content"), idx(0), key("text")]);
        assert_eq!(
            got[1].path,
            vec![key("content"), idx(1), key("input"), key("query")]
        );
    }

    #[test]
    fn round_trip() {
        assert_round_trip(F, Phase::Request, &request(), 12);
        assert_round_trip(F, Phase::Response, &response(), 2);
    }

    #[test]
    fn usage_adds_cache_tokens_into_prompt() {
        let u = llm::usage(F, &response()).unwrap();
        assert_eq!(u.prompt_tokens, Some(3195));
        assert_eq!(u.completion_tokens, Some(503));
        assert_eq!(u.total_tokens, Some(3698));
        let u = llm::usage(
            F,
            &json!({"usage": {"input_tokens": 10, "output_tokens": 5}}),
        )
        .unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (Some(10), Some(5), Some(15))
        );
        let u = llm::usage(F, &json!({"usage": {"output_tokens": 5}})).unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (None, Some(5), None)
        );
        let u = llm::usage(F, &json!({"usage": {"input_tokens": u64::MAX, "cache_read_input_tokens": 5, "output_tokens": 1}})).unwrap();
        assert_eq!(u.prompt_tokens, Some(u64::MAX), "saturates");
        assert_eq!(u.total_tokens, Some(u64::MAX));
        assert_eq!(
            llm::usage(F, &json!({"usage": {"service_tier": "standard"}})),
            None
        );
    }

    #[test]
    fn add_system_message_variants() {
        let mut s = json!({"system": "Be terse.", "messages": []});
        assert!(llm::add_system_message(F, &mut s, "Policy."));
        assert_eq!(s["system"], "Policy.\n\nBe terse.");

        let mut blocks = request();
        assert!(llm::add_system_message(F, &mut blocks, "Policy."));
        let sys = blocks["system"].as_array().unwrap();
        assert_eq!(sys.len(), 3);
        assert_eq!(sys[0], json!({"type": "text", "text": "Policy."}));
        assert_eq!(sys[1..], request()["system"].as_array().unwrap()[..]);
        assert_eq!(blocks["messages"], request()["messages"]);

        let mut absent = json!({"messages": [{"role": "user", "content": "x"}]});
        assert!(llm::add_system_message(F, &mut absent, "Policy."));
        assert_eq!(absent["system"], "Policy.");

        let mut odd = json!({"system": 5, "messages": []});
        assert!(!llm::add_system_message(F, &mut odd, "Policy."));
        assert_eq!(odd["system"], 5);
    }

    #[test]
    fn model_and_max_tokens() {
        let mut body = request();
        assert_eq!(llm::max_tokens(F, &body), Some(1024));
        llm::set_max_tokens(F, &mut body, 100);
        assert_eq!(body["max_tokens"], 100);
        assert!(body.get("max_completion_tokens").is_none());
        llm::set_model(&mut body, "claude-haiku-4-5");
        assert_eq!(llm::model(&body), Some("claude-haiku-4-5"));
        // Bedrock/Vertex bodies name the model in the URL; adding one would be rejected.
        let mut bedrock = json!({"anthropic_version": "bedrock-2023-05-31", "messages": []});
        assert!(!llm::try_set_model(&mut bedrock, "claude"));
        assert!(bedrock.get("model").is_none());
    }

    #[test]
    fn hostile_shapes_do_not_panic() {
        for b in [
            json!(null),
            json!({"system": 5, "messages": 5}),
            json!({"system": [null, 1, {"type": "text"}, {"type": "text", "text": 3}], "messages": [null, 3, {}]}),
            json!({"messages": [{"role": "user", "content": null}, {"role": "user", "content": 5}, {"role": "user", "content": {"type": "text", "text": "x"}}]}),
            json!({"messages": [{"role": "user", "content": [null, 1, "s", {"type": "tool_use"}, {"type": "tool_use", "input": 5}, {"type": "tool_result"}, {"type": "tool_result", "content": [null, {"type": "text"}]}]}]}),
            json!({"content": "not blocks but a string"}),
            json!({"content": {"type": "text", "text": "x"}}),
            json!({"max_tokens": null, "usage": 5}),
        ] {
            for phase in [Phase::Request, Phase::Response] {
                let got = segs(F, phase, &b);
                assert!(
                    got.iter().all(|s| s.text == "not blocks but a string"),
                    "{b}: {got:?}"
                );
            }
            assert_eq!(llm::max_tokens(F, &b), None);
            assert_eq!(llm::usage(F, &b), None);
            let mut m = b.clone();
            let _ = llm::add_system_message(F, &mut m, "x");
            llm::set_max_tokens(F, &mut m, 1);
        }
    }
}
