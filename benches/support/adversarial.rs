//! Inputs aimed at the engine's resource bounds (issue 11, items 5-7), each at doubling sizes
//! so a run shows whether the cost grows linearly: bodies full of entities to redact, bodies of
//! deeply nested arrays of short strings, streams of tiny events, streams of many choices.

use serde_json::json;

/// An OpenAI chat body whose user message is `a@b.co ` repeated to `target` bytes: one
/// e-mail redaction per 7 bytes.
pub fn emails(target: usize) -> Vec<u8> {
    let mut content = "a@b.co ".repeat(target / 7 + 1);
    content.truncate(target);
    serde_json::to_vec(&json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": content}]
    }))
    .unwrap_or_default()
}

/// Arrays nested `depth` deep, the innermost holding `"a"` strings up to `target` bytes: a
/// body of unknown shape whose every string sits at the end of a long path.
pub fn nested_arrays(depth: usize, target: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(target + 2 * depth);
    body.extend(std::iter::repeat_n(b'[', depth));
    body.extend_from_slice(b"\"a\"");
    while body.len() + depth + 4 <= target {
        body.extend_from_slice(b",\"a\"");
    }
    body.extend(std::iter::repeat_n(b']', depth));
    body
}

/// One OpenAI chat chunk event carrying `text` for choice `index`.
fn chat_event(index: usize, text: &str) -> Vec<u8> {
    let v = json!({"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o",
        "choices": [{"index": index, "delta": {"content": text}, "finish_reason": null}]});
    format!("data: {v}\n\n").into_bytes()
}

/// The closing events of a chat stream of `choices` choices.
fn chat_end(choices: usize, out: &mut Vec<Vec<u8>>) {
    for i in 0..choices {
        let v = json!({"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o",
            "choices": [{"index": i, "delta": {}, "finish_reason": "stop"}]});
        out.push(format!("data: {v}\n\n").into_bytes());
    }
    out.push(b"data: [DONE]\n\n".to_vec());
}

/// A chat stream of 4-byte deltas without a space (`text_bytes` of text in all), one event
/// per network chunk: the whole text is one growing word.
pub fn tiny_events(text_bytes: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..text_bytes / 4).map(|_| chat_event(0, "abcd")).collect();
    chat_end(1, &mut out);
    out
}

/// A chat stream of `choices` choices (`n` > 1), `rounds` words each, interleaved: every event
/// carries the next word of the next choice, one event per network chunk.
pub fn interleaved_choices(choices: usize, rounds: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(choices * rounds + choices + 1);
    for _ in 0..rounds {
        for i in 0..choices {
            out.push(chat_event(i, "word "));
        }
    }
    chat_end(choices, &mut out);
    out
}
