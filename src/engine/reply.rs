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
