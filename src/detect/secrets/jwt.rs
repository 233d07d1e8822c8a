//! JSON Web Tokens (JWS compact serialization): `header.payload.signature`.
//!
//! Accepted: three base64url segments where the header and the payload start with `eyJ`
//! (base64url of `{"`), the header is at most [`MAX_HEADER`] chars and decodes (no
//! padding needed) to a JSON object text containing `"alg"`, and the payload is at least
//! [`MIN_PAYLOAD`] chars. The signature may be empty only when `alg` is `none`; the span
//! then includes the trailing dot. Only the header is decoded, into a stack buffer.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};

use super::{is_token_byte, run_end, run_end_capped};

/// Longest header segment decoded; longer ones are rejected (real headers are < 300).
const MAX_HEADER: usize = 1024;

/// Shortest payload segment (`{"a":1}` is 10 chars).
const MIN_PAYLOAD: usize = 8;

const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// `start` is the offset of the header's `eyJ` (the boundary before it is checked).
pub(super) fn validate(bytes: &[u8], start: usize) -> Option<usize> {
    let header_end = run_end_capped(bytes, start, MAX_HEADER + 1, is_token_byte);
    if header_end - start > MAX_HEADER || bytes.get(header_end) != Some(&b'.') {
        return None;
    }
    let payload_start = header_end + 1;
    if !bytes.get(payload_start..)?.starts_with(b"eyJ") {
        return None;
    }
    let payload_end = run_end(bytes, payload_start, is_token_byte);
    if payload_end - payload_start < MIN_PAYLOAD || bytes.get(payload_end) != Some(&b'.') {
        return None;
    }
    let signature_start = payload_end + 1;
    let end = run_end(bytes, signature_start, is_token_byte);
    let alg_none = header_alg_is_none(bytes.get(start..header_end)?)?;
    if end == signature_start && !alg_none {
        return None;
    }
    Some(end)
}

/// Decodes the header: `None` if it is not a JSON object with `"alg"`, else whether the
/// algorithm is `none` (any case, as attackers vary it).
fn header_alg_is_none(header: &[u8]) -> Option<bool> {
    let mut buf = [0u8; MAX_HEADER];
    let n = BASE64URL.decode_slice(header, &mut buf).ok()?;
    let json = buf.get(..n)?;
    let first = json.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    let at = memchr::memmem::find(json, b"\"alg\"")?;
    let rest = json.get(at + 5..)?;
    let rest = trim_start(rest);
    let rest = trim_start(rest.strip_prefix(b":")?);
    Some(
        rest.get(..6)
            .is_some_and(|v| v.eq_ignore_ascii_case(b"\"none\"")),
    )
}

fn trim_start(s: &[u8]) -> &[u8] {
    let skip = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    s.get(skip..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{scan, DetectorId, DetectorSet, Finding};
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn b64(s: &str) -> String {
        BASE64URL.encode(s)
    }

    fn jwt(header: &str, payload: &str, sig: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), sig)
    }

    fn jwts(text: &str) -> Vec<&str> {
        let mut out: Vec<Finding> = Vec::new();
        scan(text, DetectorSet::all(), &mut out);
        out.iter()
            .inspect(|f| assert_eq!(f.detector, DetectorId::Jwt))
            .map(|f| &text[f.start..f.end])
            .collect()
    }

    const PAYLOAD: &str = r#"{"sub":"1234567890","name":"Test User","iat":1516239022}"#;

    #[test]
    fn signed_tokens() {
        for (i, header) in [
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"typ":"JWT","alg":"RS256","kid":"k1"}"#,
            r#"{"alg" : "ES384" }"#,
        ]
        .iter()
        .enumerate()
        {
            let tok = jwt(header, PAYLOAD, &fake(i as u64, 43, B64URL));
            for text in [
                format!("Authorization: Bearer {tok}\r\n"),
                format!("{{\"id_token\":\"{tok}\"}}"),
                format!("token={tok}. Done"),
                tok.clone(),
            ] {
                assert_eq!(jwts(&text), vec![&tok[..]], "{text}");
            }
        }
    }

    #[test]
    fn unsigned_only_with_alg_none() {
        let none = jwt(r#"{"alg":"none","typ":"JWT"}"#, PAYLOAD, "");
        let text = format!("cookie: session={none}; path=/");
        assert_eq!(jwts(&text), vec![&none[..]]);
        assert!(none.ends_with('.'));
        let upper = jwt(r#"{"alg":"NONE"}"#, PAYLOAD, "");
        assert_eq!(jwts(&upper), vec![&upper[..]]);
        let hs = jwt(r#"{"alg":"HS256","typ":"JWT"}"#, PAYLOAD, "");
        assert!(jwts(&hs).is_empty());
    }

    #[test]
    fn negatives() {
        let sig = fake(9, 43, B64URL);
        for text in [
            // header without "alg"
            jwt(r#"{"typ":"JWT","kid":"x"}"#, PAYLOAD, &sig),
            // payload not a JSON object
            format!(
                "{}.{}.{sig}",
                b64(r#"{"alg":"HS256"}"#),
                b64("hello world!")
            ),
            // two segments only
            format!("{}.{}", b64(r#"{"alg":"HS256"}"#), b64(PAYLOAD)),
            // preceded by a token char
            format!("x{}", jwt(r#"{"alg":"HS256"}"#, PAYLOAD, &sig)),
            // header not base64url
            format!("eyJ!!.{}.{sig}", b64(PAYLOAD)),
            // header decodes to garbage
            format!("eyJzzzz.{}.{sig}", b64(PAYLOAD)),
            // oversized header
            format!("eyJ{}.{}.{sig}", "A".repeat(2000), b64(PAYLOAD)),
            "eyJ is how base64 JSON starts".to_string(),
        ] {
            assert!(jwts(&text).is_empty(), "{text}");
        }
    }

    #[test]
    fn adjacent_tokens_and_floods() {
        let a = jwt(r#"{"alg":"HS256"}"#, PAYLOAD, &fake(10, 43, B64URL));
        let b = jwt(r#"{"alg":"RS256"}"#, PAYLOAD, &fake(11, 86, B64URL));
        let text = format!("{a}\n{b}");
        assert_eq!(jwts(&text), vec![&a[..], &b[..]]);
        let n = 200 * 1024;
        let header = b64(r#"{"alg":"HS256"}"#);
        let chained = format!("{header}.").repeat(n / (header.len() + 1));
        // Every segment is a valid header and payload start: tokens are taken three
        // segments at a time, never re-scanned from each segment.
        let found = jwts(&chained);
        assert_eq!(found.len(), n / (header.len() + 1) / 3);
        assert!(found.iter().all(|t| t.split('.').count() == 3));
        let long_payload = format!("{header}.eyJ{}", "A".repeat(n));
        assert!(jwts(&long_payload).is_empty());
        let eyj = "eyJ".repeat(n / 3);
        assert!(jwts(&eyj).is_empty());
    }
}
