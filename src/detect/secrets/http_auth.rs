//! HTTP authentication credentials after their scheme word, wherever they appear
//! (`Authorization: Basic …`, `-H "Authorization: Bearer …"`, `"Bearer " + …` in code):
//!
//! - `Basic`: base64 (RFC 7617) that decodes to printable `user:password` text with a
//!   password that is not a placeholder (`dXNlcjpwYXNzd29yZA==` is `user:password`). An
//!   English "basic" followed by a word almost never decodes to that.
//! - `Bearer` (RFC 6750 `token68`): at least [`MIN_BEARER`] chars (RFC 6750's own example, `mF_9.B5f-4.1JqM`, has 15) of
//!   `[A-Za-z0-9._~+/-]` (then `=` padding) with a letter and a digit, not a placeholder,
//!   and ending where a token ends (`Bearer ${TOKEN}`, `Bearer <token>`, `"Bearer " + t`
//!   and "the bearer of" are not tokens).
//!
//! The span is the credential, not the scheme word. A credential that a prefixed
//! detector also finds (`Bearer sk-…`, `Bearer eyJ…`) is reported by that detector only.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};

use super::shape::{has_digit, has_letter, is_placeholder, is_placeholder_body};

/// Shortest bearer token accepted.
pub(super) const MIN_BEARER: usize = 12;
/// Longest credential read.
const MAX_CREDENTIAL: usize = 4096;
/// Longest Basic credential decoded (into a stack buffer).
const MAX_BASIC: usize = 1024;
/// Most blanks between the scheme and the credential.
const MAX_GAP: usize = 4;

const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// `token68` characters (RFC 7235) before the `=` padding.
fn is_token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'+' | b'/' | b'-')
}

/// What may follow a credential: the end of a header value, a quote, a delimiter.
fn ends_credential(b: Option<&u8>) -> bool {
    match b {
        None => true,
        Some(&b) => {
            b.is_ascii_whitespace()
                || matches!(
                    b,
                    b'"' | b'\''
                        | b'`'
                        | b','
                        | b';'
                        | b')'
                        | b']'
                        | b'}'
                        | b'>'
                        | b'<'
                        | b'\\'
                        | b'&'
                )
        }
    }
}

/// `after` is the offset after the scheme word. Returns the credential's span, if any, and
/// where the scan stopped.
pub(super) fn validate(bytes: &[u8], after: usize, basic: bool) -> (Option<(usize, usize)>, usize) {
    let start = super::run_end_capped(bytes, after, MAX_GAP + 1, |b| b == b' ' || b == b'\t');
    if start == after || start - after > MAX_GAP {
        return (None, start);
    }
    if basic {
        let end = basic_end(bytes, start);
        (
            basic_credential(bytes, start, end).then_some((start, end)),
            end.max(start),
        )
    } else {
        match token_end(bytes, start) {
            Ok(end) => (Some((start, end)), end),
            Err(reached) => (None, reached),
        }
    }
}

/// The end of a token68 credential at `start` that passes the bearer checks
/// (`Err(where the scan stopped)` otherwise). Also used for `Authorization: <scheme> …`.
pub(super) fn token_end(bytes: &[u8], start: usize) -> Result<usize, usize> {
    let body_end = super::run_end_capped(bytes, start, MAX_CREDENTIAL + 1, is_token68);
    let end = super::run_end_capped(bytes, body_end, 2, |b| b == b'=');
    let body = bytes.get(start..body_end).unwrap_or_default();
    let ok = body.len() >= MIN_BEARER
        && body.len() <= MAX_CREDENTIAL
        && ends_credential(bytes.get(end))
        && has_digit(body)
        && has_letter(body)
        && !is_placeholder_body(body)
        && !is_placeholder(body);
    if ok {
        Ok(end)
    } else {
        Err(end)
    }
}

/// End of the base64 run (and its padding) at `start`.
fn basic_end(bytes: &[u8], start: usize) -> usize {
    let body_end = super::run_end_capped(bytes, start, MAX_BASIC + 1, |b| {
        b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
    });
    super::run_end_capped(bytes, body_end, 2, |b| b == b'=')
}

/// Whether `start..end` is base64 of printable `user:password` with a real password.
fn basic_credential(bytes: &[u8], start: usize, end: usize) -> bool {
    let Some(b64) = bytes.get(start..end) else {
        return false;
    };
    if b64.len() < 8 || b64.len() > MAX_BASIC || !ends_credential(bytes.get(end)) {
        return false;
    }
    let mut buf = [0u8; MAX_BASIC];
    let Ok(n) = BASE64.decode_slice(b64, &mut buf) else {
        return false;
    };
    let Some(decoded) = buf.get(..n) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(decoded) else {
        return false;
    };
    if text.chars().any(char::is_control) {
        return false;
    }
    match text.split_once(':') {
        Some((_, password)) => !password.is_empty() && !is_placeholder(password.as_bytes()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{scan, DetectorId, DetectorSet};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn all(text: &str) -> Vec<(DetectorId, &str)> {
        crate::detect::test_support::found(text, |t, out| scan(t, DetectorSet::all(), out))
    }

    #[test]
    fn basic_credentials() {
        // RFC 7617's example (`Aladdin:open sesame`) has a real credential's shape.
        for (text, value) in [
            (
                "Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
                "QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            ),
            (
                "curl -H \"Authorization: Basic Ym9iOmh1bnRlcjI=\" https://x",
                "Ym9iOmh1bnRlcjI=",
            ),
            ("authorization: basic Ym9iOmh1bnRlcjI", "Ym9iOmh1bnRlcjI"),
            (
                "headers = {'Authorization': 'Basic c3ZjOlN1cDNyUzNjcmV0IQ=='}",
                "c3ZjOlN1cDNyUzNjcmV0IQ==",
            ),
            (
                "Proxy-Authorization: Basic OlN1cDNyIQ==\r\n",
                "OlN1cDNyIQ==",
            ),
        ] {
            assert_eq!(all(text), vec![(DetectorId::HttpAuth, value)], "{text}");
        }
        for text in [
            // `user:password`, `username:password`: placeholders.
            "Authorization: Basic dXNlcjpwYXNzd29yZA==",
            "Authorization: Basic dXNlcm5hbWU6cGFzc3dvcmQ=",
            "Authorization: Basic <base64(user:pass)>",
            "Authorization: Basic $CREDS",
            // English.
            "basic understanding of HTTP",
            "Basic auth is insecure without TLS",
            "a basic HTML page and basic Python skills",
            "BASIC programs from 1985",
            // No `:` once decoded.
            "Basic aGVsbG8gd29ybGQ=",
        ] {
            assert!(all(text).is_empty(), "{text}: {:?}", all(text));
        }
    }

    #[test]
    fn bearer_tokens() {
        let opaque = fake(400, 40, B64URL);
        for text in [
            format!("Authorization: Bearer {opaque}\r\n"),
            format!("curl -H 'Authorization: Bearer {opaque}' https://api"),
            format!("{{\"Authorization\": \"Bearer {opaque}\"}}"),
            format!("bearer {opaque}"),
        ] {
            assert_eq!(
                all(&text),
                vec![(DetectorId::HttpAuth, &opaque[..])],
                "{text}"
            );
        }
        // RFC 6750's example.
        let rfc = "Authorization: Bearer mF_9.B5f-4.1JqM";
        assert_eq!(all(rfc), vec![(DetectorId::HttpAuth, "mF_9.B5f-4.1JqM")]);
        // Other schemes after `Authorization:`.
        let drf = "Authorization: Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b";
        assert_eq!(
            all(drf),
            vec![(
                DetectorId::HttpAuth,
                "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"
            )]
        );
        // A scheme shorter than any label value (the label peek must not end it).
        let mac = "Authorization: MAC kDZvddkndxvhGRXZhvuDjEWhGeE9fQ2a";
        assert_eq!(
            all(mac),
            vec![(DetectorId::HttpAuth, "kDZvddkndxvhGRXZhvuDjEWhGeE9fQ2a")]
        );
        // A bearer value with a known prefix is that detector's.
        let sk = format!("sk-proj-{}", fake(401, 60, B64URL));
        assert_eq!(
            all(&format!("Authorization: Bearer {sk}")),
            vec![(DetectorId::OpenaiKey, &sk[..])]
        );
        for text in [
            "Authorization: Bearer ${TOKEN}",
            "Authorization: Bearer $OPENAI_API_KEY",
            "Authorization: Bearer <token>",
            "Authorization: Bearer YOUR_ACCESS_TOKEN",
            "Authorization: Bearer {{token}}",
            "headers={\"Authorization\": f\"Bearer {api_key}\"}",
            "\"Bearer \" + token",
            "Bearer abc123",
            "Bearer abc123def456ghi789",
            "the bearer of bad news",
            "bearer bonds issued in 1999",
            "Bearer tokens are defined in RFC 6750",
            "Authorization: Bearer xxxxxxxxxxxxxxxxxxxxxxxx",
        ] {
            assert!(all(text).is_empty(), "{text}: {:?}", all(text));
        }
    }
}
