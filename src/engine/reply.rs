//! Local replies (refuse, hold) in the error shape the client's API uses, so SDKs surface
//! the policy's message instead of failing to parse.

use crate::llm::ApiFormat;
use crate::policy::compile::Reply;
use crate::policy::Action;

/// A refusal or hold: what a whole body's verdict, a local reply, a stream's error event and
/// the exchange all carry. `reason_code` is the record's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
    pub reason_code: String,
    /// Held for review (escalate-hold) rather than refused.
    pub held: bool,
}

impl Refusal {
    /// A rule's refuse reply (`held` false) or hold reply (`held` true).
    pub fn of_rule(reply: &Reply, reason_code: &str, held: bool) -> Refusal {
        Refusal {
            status: reply.status,
            message: reply.message.clone(),
            reason_code: reason_code.into(),
            held,
        }
    }

    /// The decision a record gives what was answered this way.
    pub fn action(&self) -> Action {
        if self.held {
            Action::Escalate
        } else {
            Action::Refuse
        }
    }

    /// The JSON body of the local reply.
    ///
    /// OpenAI: `{"error": {"message", "type", "param", "code"}}`.
    /// Anthropic: `{"type": "error", "error": {"type", "message"}}`.
    pub fn error_body(&self, format: ApiFormat) -> Vec<u8> {
        let message = self.message.as_str();
        let value = if format == ApiFormat::AnthropicMessages {
            let kind = match self.status {
                400 | 413 | 415 | 422 => "invalid_request_error",
                401 => "authentication_error",
                403 | 451 => "permission_error",
                404 => "not_found_error",
                429 => "rate_limit_error",
                _ if self.held => "permission_error",
                _ => "api_error",
            };
            serde_json::json!({"type": "error", "error": {"type": kind, "message": message}})
        } else {
            let kind = if self.held {
                "policy_hold"
            } else {
                "policy_violation"
            };
            serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": self.reason_code}})
        };
        serde_json::to_vec(&value).unwrap_or_default()
    }

    /// The event that ends a stream the policy refuses (or holds) midway, in the provider's
    /// error shape, so SDKs raise the policy's message: OpenAI chat and completions get
    /// `data: {"error": ...}` then `data: [DONE]`; the Responses API an `error` event with the
    /// next `sequence_number`; Anthropic an `error` event like its own overload errors.
    pub fn stream_error_event(
        &self,
        format: ApiFormat,
        sequence_number: Option<u64>,
        newline: &str,
        out: &mut Vec<u8>,
    ) {
        use crate::llm::{sse, stream};
        match format {
            ApiFormat::AnthropicMessages => {
                let data = self.error_body(format);
                let data = String::from_utf8_lossy(&data);
                sse::write_event(Some("error"), None, &data, newline, out);
            }
            ApiFormat::OpenaiResponses => {
                let data = serde_json::json!({
                    "type": "error", "code": self.reason_code, "message": self.message,
                    "param": null,
                    "sequence_number": sequence_number.map_or(0, |n| n.saturating_add(1)),
                });
                sse::write_event(
                    Some("error"),
                    None,
                    &serde_json::to_string(&data).unwrap_or_default(),
                    newline,
                    out,
                );
            }
            _ => {
                let data = self.error_body(format);
                let data = String::from_utf8_lossy(&data);
                sse::write_event(None, None, &data, newline, out);
                sse::write_event(None, None, stream::DONE, newline, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn refusal() -> Refusal {
        Refusal {
            status: 403,
            message: "no".into(),
            reason_code: "SECRET".into(),
            held: false,
        }
    }

    #[test]
    fn openai_and_anthropic_shapes() {
        let v: serde_json::Value =
            serde_json::from_slice(&refusal().error_body(ApiFormat::OpenaiChat)).unwrap();
        assert_eq!(v["error"]["message"], "no");
        assert_eq!(v["error"]["code"], "SECRET");
        assert_eq!(v["error"]["type"], "policy_violation");
        let v: serde_json::Value =
            serde_json::from_slice(&refusal().error_body(ApiFormat::AnthropicMessages)).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "permission_error");
        assert_eq!(v["error"]["message"], "no");
    }
}
