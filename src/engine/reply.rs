//! Local replies (refuse, hold) in the error shape the client's API uses, so SDKs surface
//! the policy's message instead of failing to parse.

use crate::llm::ApiFormat;

/// The JSON body of a local reply.
///
/// OpenAI: `{"error": {"message", "type", "param", "code"}}`.
/// Anthropic: `{"type": "error", "error": {"type", "message"}}`.
pub fn error_body(
    format: ApiFormat,
    status: u16,
    message: &str,
    reason_code: &str,
    held: bool,
) -> Vec<u8> {
    let value = if format == ApiFormat::AnthropicMessages {
        let kind = match status {
            400 | 413 | 415 | 422 => "invalid_request_error",
            401 => "authentication_error",
            403 | 451 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            _ if held => "permission_error",
            _ => "api_error",
        };
        serde_json::json!({"type": "error", "error": {"type": kind, "message": message}})
    } else {
        let kind = if held {
            "policy_hold"
        } else {
            "policy_violation"
        };
        serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": reason_code}})
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

/// A refusal or hold, as a local reply or a stream's error event carries it.
#[derive(Debug, Clone, Copy)]
pub struct Refusal<'a> {
    pub status: u16,
    pub message: &'a str,
    pub reason_code: &'a str,
    pub held: bool,
}

/// The event that ends a stream the policy refuses (or holds) midway, in the provider's
/// error shape, so SDKs raise the policy's message: OpenAI chat and completions get
/// `data: {"error": ...}` then `data: [DONE]`; the Responses API an `error` event with the
/// next `sequence_number`; Anthropic an `error` event like its own overload errors.
pub fn stream_error_event(
    format: ApiFormat,
    refusal: &Refusal<'_>,
    sequence_number: Option<u64>,
    newline: &str,
    out: &mut Vec<u8>,
) {
    use crate::llm::{sse, stream};
    let Refusal {
        status,
        message,
        reason_code,
        held,
    } = *refusal;
    match format {
        ApiFormat::AnthropicMessages => {
            let data = error_body(format, status, message, reason_code, held);
            let data = String::from_utf8_lossy(&data);
            sse::write_event(Some("error"), None, &data, newline, out);
        }
        ApiFormat::OpenaiResponses => {
            let data = serde_json::json!({
                "type": "error", "code": reason_code, "message": message, "param": null,
                "sequence_number": sequence_number.map_or(0, |n| n.saturating_add(1)),
            });
            sse::write_event(Some("error"), None, &data.to_string(), newline, out);
        }
        _ => {
            let data = error_body(format, status, message, reason_code, held);
            let data = String::from_utf8_lossy(&data);
            sse::write_event(None, None, &data, newline, out);
            sse::write_event(None, None, stream::DONE, newline, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn openai_and_anthropic_shapes() {
        let v: serde_json::Value = serde_json::from_slice(&error_body(
            ApiFormat::OpenaiChat,
            403,
            "no",
            "SECRET",
            false,
        ))
        .unwrap();
        assert_eq!(v["error"]["message"], "no");
        assert_eq!(v["error"]["code"], "SECRET");
        assert_eq!(v["error"]["type"], "policy_violation");
        let v: serde_json::Value = serde_json::from_slice(&error_body(
            ApiFormat::AnthropicMessages,
            403,
            "no",
            "SECRET",
            false,
        ))
        .unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "permission_error");
        assert_eq!(v["error"]["message"], "no");
    }
}
