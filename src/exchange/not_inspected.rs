//! Why a request or response was not inspected: one enum, each case with its reason code,
//! the detail recorded (never content) and the status a refusal gets.

use crate::engine::Refusal;

/// The reason codes and statuses are documented in the README's reason code table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotInspected {
    /// A request without a body (`GET /v1/models`): nothing to inspect, allowed.
    NoBody,
    BodyTooLarge,
    BodyCompressed,
    BodyNotJson,
    /// The host did not hand over a body it announced.
    BodyUnavailable,
    /// The request body never completed (client gone, Envoy's buffer limit).
    RequestIncomplete,
    /// Envoy answered before the filter saw the request (431 headers too large, 400).
    ProxyRejected,
    ResponseCompressed,
    ResponseNotJson,
    ResponseTooLarge,
    ResponseStreamUnknownFormat,
    ResponseUnavailable,
}

impl NotInspected {
    pub fn reason_code(self) -> &'static str {
        match self {
            NotInspected::NoBody => "NO_BODY",
            NotInspected::BodyTooLarge => "BODY_TOO_LARGE",
            NotInspected::BodyCompressed => "BODY_COMPRESSED",
            NotInspected::BodyNotJson => "BODY_NOT_JSON",
            NotInspected::BodyUnavailable => "BODY_UNAVAILABLE",
            NotInspected::RequestIncomplete => "REQUEST_INCOMPLETE",
            NotInspected::ProxyRejected => "PROXY_REJECTED",
            NotInspected::ResponseCompressed => "RESPONSE_COMPRESSED",
            NotInspected::ResponseNotJson => "RESPONSE_NOT_JSON",
            NotInspected::ResponseTooLarge => "RESPONSE_TOO_LARGE",
            NotInspected::ResponseStreamUnknownFormat => "RESPONSE_STREAM_UNKNOWN_FORMAT",
            NotInspected::ResponseUnavailable => "RESPONSE_UNAVAILABLE",
        }
    }

    pub fn detail(self) -> &'static str {
        match self {
            NotInspected::NoBody => "request has no body",
            NotInspected::BodyTooLarge => "body exceeds max_body_bytes",
            NotInspected::BodyCompressed => "content-encoding is not identity",
            NotInspected::BodyNotJson => "content-type is not JSON",
            NotInspected::BodyUnavailable => "the host returned no request body",
            NotInspected::RequestIncomplete => "the request body never completed",
            NotInspected::ProxyRejected => "the proxy answered before the filter ran",
            NotInspected::ResponseCompressed => "content-encoding is not identity",
            NotInspected::ResponseNotJson => "content-type is not JSON",
            NotInspected::ResponseTooLarge => "response exceeds max_body_bytes",
            NotInspected::ResponseStreamUnknownFormat => {
                "streamed output of an API this filter does not know"
            }
            NotInspected::ResponseUnavailable => "the host returned no response body",
        }
    }

    /// The status of a refusal for this reason (`on_uninspectable: refuse`).
    pub fn status(self) -> u16 {
        match self {
            NotInspected::BodyTooLarge => 413,
            NotInspected::BodyCompressed | NotInspected::BodyNotJson => 415,
            NotInspected::BodyUnavailable => 500,
            NotInspected::NoBody
            | NotInspected::RequestIncomplete
            | NotInspected::ProxyRejected => 0,
            NotInspected::ResponseCompressed
            | NotInspected::ResponseNotJson
            | NotInspected::ResponseTooLarge
            | NotInspected::ResponseStreamUnknownFormat
            | NotInspected::ResponseUnavailable => 502,
        }
    }

    pub fn message(self) -> &'static str {
        if self.status() == 502 {
            "The response could not be inspected by the AI usage policy."
        } else {
            "The request body could not be inspected by the AI usage policy."
        }
    }

    /// The local reply of a refusal for this reason (`on_uninspectable: refuse`).
    pub fn refusal(self) -> Refusal {
        Refusal {
            status: self.status(),
            message: self.message().into(),
            reason_code: self.reason_code().into(),
            held: false,
        }
    }
}

/// The host would not take a changed (redacted, rewritten) body: refused, never forwarded as
/// it was.
pub const BODY_REPLACE_FAILED: &str = "BODY_REPLACE_FAILED";
pub const REPLACE_FAILED_MESSAGE: &str =
    "The gateway could not apply the AI usage policy to this message.";
