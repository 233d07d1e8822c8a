//! OpenAI legacy Completions (`/v1/completions`) and Embeddings (`/v1/embeddings`).
//!
//! Completions request texts: `prompt` (a string or a list of strings) and `suffix`, as
//! [`Role::User`]; token-id prompts (numbers, lists of numbers) are not text. Response texts:
//! `choices[k].text` ([`Role::Assistant`]).
//! Embeddings request texts: `input` (a string or a list of strings, [`Role::User`]); token-id
//! inputs are not text. Embedding responses (vectors) have no text.

use serde_json::Value;

use super::path::{emit, idx, key};
use super::{PathId, Role, Texts};

/// A string, or each string of a list (other items, such as token arrays, skipped).
fn strings<'a>(body: &'a Value, field: &'static str, out: &mut Texts<'a>) {
    match body.get(field) {
        Some(Value::Array(items)) => {
            let list = out.at(PathId::ROOT, &[key(field)]);
            for (i, item) in items.iter().enumerate() {
                emit(out, Role::User, Some(item), list, &[idx(i)]);
            }
        }
        v => emit(out, Role::User, v, PathId::ROOT, &[key(field)]),
    }
}

pub(crate) fn extract_completions_request<'a>(body: &'a Value, out: &mut Texts<'a>) {
    strings(body, "prompt", out);
    emit(
        out,
        Role::User,
        body.get("suffix"),
        PathId::ROOT,
        &[key("suffix")],
    );
}

pub(crate) fn extract_completions_response<'a>(body: &'a Value, out: &mut Texts<'a>) {
    let Some(choices) = body.get("choices").and_then(Value::as_array) else {
        return;
    };
    let list = out.at(PathId::ROOT, &[key("choices")]);
    for (k, c) in choices.iter().enumerate() {
        emit(
            out,
            Role::Assistant,
            c.get("text"),
            list,
            &[idx(k), key("text")],
        );
    }
}

pub(crate) fn extract_embeddings_request<'a>(body: &'a Value, out: &mut Texts<'a>) {
    strings(body, "input", out);
}

pub(crate) fn set_max_tokens(body: &mut Value, n: u64) {
    super::set_count(body, "max_tokens", n);
}

/// Whether an embeddings `input` list holds only strings and token ids (no message items).
pub(crate) fn is_embedding_input_list(items: &[Value]) -> bool {
    !items.is_empty()
        && items.iter().all(|v| match v {
            Value::String(_) | Value::Number(_) => true,
            Value::Array(tokens) => tokens.iter().all(Value::is_number),
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::testutil::{assert_round_trip, segs, texts};
    use crate::llm::{self, ApiFormat, Phase};
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const C: ApiFormat = ApiFormat::OpenaiCompletions;
    const E: ApiFormat = ApiFormat::OpenaiEmbeddings;

    fn completion_request() -> Value {
        json!({
            "model": "gpt-3.5-turbo-instruct",
            "prompt": "Say this is a test",
            "suffix": "\n-- end",
            "max_tokens": 7,
            "temperature": 0
        })
    }

    fn completion_response() -> Value {
        json!({
            "id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7",
            "object": "text_completion",
            "created": 1589478378,
            "model": "gpt-3.5-turbo-instruct",
            "system_fingerprint": "fp_44709d6fcb",
            "choices": [
                {"text": "\n\nThis is indeed a test", "index": 0, "logprobs": null, "finish_reason": "length"},
                {"text": "", "index": 1, "logprobs": null, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
        })
    }

    fn embeddings_request() -> Value {
        json!({
            "input": ["The food was delicious and the waiter...", [1212, 318, 257], "Second text"],
            "model": "text-embedding-3-small",
            "encoding_format": "float"
        })
    }

    #[test]
    fn detects_by_path_and_shape() {
        assert_eq!(llm::detect_format(Some("/v1/completions"), &Value::Null), C);
        assert_eq!(
            llm::detect_format(Some("/v1/completions/"), &Value::Null),
            C
        );
        assert_eq!(
            llm::detect_format(
                Some("/openai/deployments/d/completions?api-version=1"),
                &Value::Null
            ),
            C
        );
        assert_eq!(llm::detect_format(None, &completion_request()), C);
        assert_eq!(llm::detect_format(None, &json!({"prompt": ["a", "b"]})), C);
        assert_eq!(llm::detect_format(None, &json!({"prompt": [1, 2, 3]})), C);
        assert_eq!(llm::detect_format(None, &completion_response()), C);

        assert_eq!(llm::detect_format(Some("/v1/embeddings"), &Value::Null), E);
        assert_eq!(
            llm::detect_format(Some("/v1/embeddings?x"), &Value::Null),
            E
        );
        assert_eq!(llm::detect_format(None, &embeddings_request()), E);
        assert_eq!(
            llm::detect_format(None, &json!({"input": "x", "dimensions": 256})),
            E
        );
        assert_eq!(
            llm::detect_format(
                None,
                &json!({"input": "x", "model": "text-embedding-ada-002"})
            ),
            E,
            "embedding model name"
        );
        assert_eq!(llm::detect_format(None, &json!({"input": ["a", "b"]})), E);
        assert_eq!(
            llm::detect_format(None, &json!({"input": [[1, 2], [3]]})),
            E
        );
        assert_eq!(
            llm::detect_format(
                None,
                &json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}]})
            ),
            E
        );
        // Path wins over shape.
        assert_eq!(
            llm::detect_format(
                Some("/v1/embeddings"),
                &json!({"input": [{"role": "user", "content": "x"}]})
            ),
            E
        );
    }

    #[test]
    fn extracts_completions() {
        let body = completion_request();
        let got = segs(C, Phase::Request, &body);
        assert_eq!(
            texts(&got),
            vec![(Role::User, "Say this is a test"), (Role::User, "\n-- end")]
        );
        let list = json!({"prompt": ["first", [1, 2], 3, "second"]});
        let got = segs(C, Phase::Request, &list);
        assert_eq!(
            texts(&got),
            vec![(Role::User, "first"), (Role::User, "second")]
        );
        assert_eq!(got[1].path, vec![key("prompt"), idx(3)]);
        assert!(segs(C, Phase::Request, &json!({"prompt": [1, 2, 3]})).is_empty());

        let resp = completion_response();
        let got = segs(C, Phase::Response, &resp);
        assert_eq!(
            texts(&got),
            vec![(Role::Assistant, "\n\nThis is indeed a test")]
        );
        assert_eq!(got[0].path, vec![key("choices"), idx(0), key("text")]);
    }

    #[test]
    fn extracts_embeddings() {
        let body = embeddings_request();
        let got = segs(E, Phase::Request, &body);
        assert_eq!(
            texts(&got),
            vec![
                (Role::User, "The food was delicious and the waiter..."),
                (Role::User, "Second text")
            ]
        );
        assert_eq!(got[1].path, vec![key("input"), idx(2)]);
        let single = json!({"input": "one", "model": "text-embedding-3-large"});
        assert_eq!(
            texts(&segs(E, Phase::Request, &single)),
            vec![(Role::User, "one")]
        );
        let resp = json!({"object": "list", "data": [{"object": "embedding", "embedding": [0.0023, -0.0093], "index": 0}],
                          "model": "text-embedding-3-small", "usage": {"prompt_tokens": 8, "total_tokens": 8}});
        assert!(segs(E, Phase::Response, &resp).is_empty());
    }

    #[test]
    fn round_trip() {
        assert_round_trip(C, Phase::Request, &completion_request(), 2);
        assert_round_trip(
            C,
            Phase::Request,
            &json!({"prompt": ["a", [1], "b"], "model": "m"}),
            2,
        );
        assert_round_trip(C, Phase::Response, &completion_response(), 1);
        assert_round_trip(E, Phase::Request, &embeddings_request(), 2);
    }

    #[test]
    fn usage() {
        let u = llm::usage(C, &completion_response()).unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (Some(5), Some(7), Some(12))
        );
        let u = llm::usage(
            E,
            &json!({"usage": {"prompt_tokens": 8, "total_tokens": 8}}),
        )
        .unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (Some(8), None, Some(8))
        );
    }

    #[test]
    fn rewrites() {
        let mut body = completion_request();
        assert!(
            !llm::add_system_message(C, &mut body, "x"),
            "completions have no system slot"
        );
        assert_eq!(body, completion_request());
        assert_eq!(llm::max_tokens(C, &body), Some(7));
        llm::set_max_tokens(C, &mut body, 3);
        assert_eq!(body["max_tokens"], 3);
        llm::set_model(&mut body, "babbage-002");
        assert_eq!(llm::model(&body), Some("babbage-002"));
        let mut bare = json!({"prompt": "x"});
        llm::set_max_tokens(C, &mut bare, 9);
        assert_eq!(bare["max_tokens"], 9);

        let mut emb = embeddings_request();
        assert!(!llm::add_system_message(E, &mut emb, "x"));
        assert_eq!(llm::max_tokens(E, &emb), None);
        llm::set_max_tokens(E, &mut emb, 3);
        assert_eq!(emb, embeddings_request(), "embeddings have no output bound");
        llm::set_model(&mut emb, "text-embedding-3-large");
        assert_eq!(llm::model(&emb), Some("text-embedding-3-large"));
    }

    #[test]
    fn hostile_shapes_do_not_panic() {
        for b in [
            json!(null),
            json!({"prompt": null, "suffix": 3}),
            json!({"prompt": {"a": "b"}}),
            json!({"prompt": [null, {}, [[["x"]]], true]}),
            json!({"choices": [null, {"text": 5}, "text"]}),
            json!({"choices": {"text": "x"}}),
            json!({"input": {"x": "y"}}),
            json!({"max_tokens": 1.5}),
            json!({"max_tokens": -1}),
        ] {
            for f in [C, E] {
                for phase in [Phase::Request, Phase::Response] {
                    assert!(segs(f, phase, &b).is_empty(), "{b}");
                }
                if f == E || b.get("max_tokens").is_none() {
                    assert_eq!(llm::max_tokens(f, &b), None);
                }
                let mut m = b.clone();
                llm::set_max_tokens(f, &mut m, 1);
                let _ = llm::usage(f, &b);
            }
        }
        let big = json!({"input": (0..30_000).map(|i| format!("t{i}")).collect::<Vec<_>>()});
        let got = segs(E, Phase::Request, &big);
        assert_eq!(got.len(), 30_000);
        assert_eq!(got[29_999].text, "t29999");
    }
}
