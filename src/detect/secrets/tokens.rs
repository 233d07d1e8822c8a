//! Validators for prefixed API keys and tokens.
//!
//! Each takes the text and the offset right after the literal prefix (the boundary before
//! the prefix is already checked) and returns the end of the token, or `None`.

use super::shape::{has_digit, has_letter, is_placeholder_body, is_random_mix};
use super::{is_token_byte, is_word_byte, run_end, run_end_capped};

/// `[A-Z2-7]`: the base32 alphabet of AWS key ids.
fn is_base32(b: u8) -> bool {
    b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)
}

/// `[A-Za-z0-9-]`: Slack token bodies.
fn is_slack_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// AWS access key id: prefix + exactly 16 base32 chars, not followed by a word char.
pub(super) fn aws(bytes: &[u8], body: usize) -> Option<usize> {
    let end = run_end_capped(bytes, body, 17, is_base32);
    if end - body != 16 || bytes.get(end).is_some_and(|&b| is_word_byte(b)) {
        return None;
    }
    Some(end)
}

/// `ghp_` & co: at least 36 alphanumerics, not a placeholder (`ghp_xxxx…`).
pub(super) fn github_classic(bytes: &[u8], body: usize) -> Option<usize> {
    let end = run_end(bytes, body, |b| b.is_ascii_alphanumeric());
    (end - body >= 36 && !is_placeholder_body(bytes.get(body..end)?)).then_some(end)
}

/// `github_pat_`: 22 alnum + `_` + 59 alnum; accepted as >= 70 chars of `[A-Za-z0-9_]`.
pub(super) fn github_pat(bytes: &[u8], body: usize) -> Option<usize> {
    let end = run_end(bytes, body, is_word_byte);
    (end - body >= 70 && !is_placeholder_body(bytes.get(body..end)?)).then_some(end)
}

/// `sk-` (also `sk-proj-`, `sk-svcacct-`, `sk-admin-`): >= 20 chars of `[A-Za-z0-9_-]`
/// with a digit, a letter and a run of >= 10 alphanumerics (rules out hyphenated words such
/// as `sk-learn-is-a-library-v2`). `sk-ant-` is Anthropic's. In another case (`SK-PROJ-…`,
/// an upper-cased key) at least 40 chars: short `SK-` codes are product references.
pub(super) fn openai(bytes: &[u8], body: usize, canonical: bool) -> Option<usize> {
    if bytes
        .get(body..body + 4)
        .is_some_and(|rest| rest.eq_ignore_ascii_case(b"ant-"))
    {
        return None;
    }
    let end = run_end(bytes, body, is_token_byte);
    let token = bytes.get(body..end)?;
    let longest_alnum = token
        .split(|b| !b.is_ascii_alphanumeric())
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    (token.len() >= if canonical { 20 } else { 40 }
        && has_digit(token)
        && has_letter(token)
        && longest_alnum >= 10
        && !is_placeholder_body(token))
    .then_some(end)
}

/// `sk-ant-`: >= 32 chars of `[A-Za-z0-9_-]` with a digit (real keys start `api03-`).
pub(super) fn anthropic(bytes: &[u8], body: usize) -> Option<usize> {
    let end = run_end(bytes, body, is_token_byte);
    let token = bytes.get(body..end)?;
    (token.len() >= 32 && has_digit(token)).then_some(end)
}

/// `xox?-` and `xapp-`: >= 10 chars of `[A-Za-z0-9-]` with a digit (real tokens carry
/// numeric team/user ids; this keeps `xoxb-your-token-here` out).
pub(super) fn slack_token(bytes: &[u8], body: usize) -> Option<usize> {
    let end = run_end(bytes, body, is_slack_byte);
    let token = bytes.get(body..end)?;
    (token.len() >= 10 && has_digit(token)).then_some(end)
}

/// `https://hooks.slack.com/services/T…/B…/…`: `T` and `B` ids of >= 6 `[A-Z0-9]`, then a
/// secret of >= 16 alphanumerics; the span is the whole URL.
pub(super) fn slack_webhook(bytes: &[u8], body: usize) -> Option<usize> {
    let id = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    let team_end = id_segment(bytes, body, b'T', id)?;
    let bot_end = id_segment(bytes, team_end, b'B', id)?;
    let end = run_end(bytes, bot_end, |b| b.is_ascii_alphanumeric());
    (end - bot_end >= 16).then_some(end)
}

/// `<lead>` + >= 6 id chars + `/`; returns the offset after the slash.
fn id_segment(bytes: &[u8], from: usize, lead: u8, id: impl Fn(u8) -> bool) -> Option<usize> {
    if bytes.get(from) != Some(&lead) {
        return None;
    }
    let end = run_end(bytes, from + 1, id);
    (end - from > 6 && bytes.get(end) == Some(&b'/')).then_some(end + 1)
}

/// `AIza` + exactly 35 chars of `[A-Za-z0-9_-]`.
pub(super) fn google_api(bytes: &[u8], body: usize) -> Option<usize> {
    let end = run_end_capped(bytes, body, 36, is_token_byte);
    (end - body == 35).then_some(end)
}

/// `sk_live_`, `sk_test_`, `rk_live_`, `rk_test_`: >= 16 alphanumerics.
pub(super) fn stripe(bytes: &[u8], body: usize) -> Option<usize> {
    let end = run_end(bytes, body, |b| b.is_ascii_alphanumeric());
    if end - body < 16
        || bytes.get(end) == Some(&b'_')
        || is_placeholder_body(bytes.get(body..end)?)
    {
        return None;
    }
    Some(end)
}

/// `whsec_`: >= 16 chars of `[A-Za-z0-9+/=]` (Stripe uses alphanumerics, Svix-style
/// secrets are base64), at least 16 of them alphanumeric.
pub(super) fn stripe_webhook(bytes: &[u8], body: usize) -> Option<usize> {
    let end = run_end(bytes, body, |b| {
        b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
    });
    let token = bytes.get(body..end)?;
    (token.iter().filter(|b| b.is_ascii_alphanumeric()).count() >= 16
        && bytes.get(end) != Some(&b'_'))
    .then_some(end)
}

/// GitLab (`glpat-`, `gldt-`, `glrt-`, … and `GR1348941` runner registration tokens): at
/// least `min` chars of `[A-Za-z0-9_-]` that are not prose (a digit or both cases), then,
/// for routable tokens, `.` and 9 alphanumerics (the length and CRC part).
pub(super) fn gitlab(bytes: &[u8], body: usize, min: usize) -> Option<usize> {
    let run = run_end(bytes, body, is_token_byte);
    if run - body < min {
        return None;
    }
    let mut end = run;
    if bytes.get(run) == Some(&b'.') {
        let crc_end = run_end_capped(bytes, run + 1, 10, |b| b.is_ascii_alphanumeric());
        if crc_end - run == 10 && !bytes.get(crc_end).is_some_and(|&b| is_word_byte(b)) {
            end = crc_end;
        }
    }
    let token = bytes.get(body..end)?;
    (is_random_mix(token) && !is_placeholder_body(token)).then_some(end)
}

/// Exactly `len` alphanumerics, not followed by a word char, not prose, not a placeholder.
fn alnum_exact(bytes: &[u8], body: usize, len: usize) -> Option<usize> {
    let end = run_end_capped(bytes, body, len + 1, |b| b.is_ascii_alphanumeric());
    let token = bytes.get(body..end)?;
    (token.len() == len
        && !bytes.get(end).is_some_and(|&b| is_word_byte(b))
        && is_random_mix(token)
        && !is_placeholder_body(token))
    .then_some(end)
}

/// `npm_` + 36 alphanumerics (npm's tokens are case-insensitive).
pub(super) fn npm(bytes: &[u8], body: usize) -> Option<usize> {
    alnum_exact(bytes, body, 36)
}

/// `hf_` (user access tokens) and `api_org_` (organisation tokens) + 34 alphanumerics.
pub(super) fn huggingface(bytes: &[u8], body: usize) -> Option<usize> {
    alnum_exact(bytes, body, 34)
}

/// `SG.` + 22 chars of `[A-Za-z0-9_-]` (the key id) + `.` + 43 (the secret).
pub(super) fn sendgrid(bytes: &[u8], body: usize) -> Option<usize> {
    let id_end = run_end_capped(bytes, body, 23, is_token_byte);
    if id_end - body != 22 || bytes.get(id_end) != Some(&b'.') {
        return None;
    }
    let end = run_end_capped(bytes, id_end + 1, 44, is_token_byte);
    if end - id_end - 1 != 43
        || bytes
            .get(end)
            .is_some_and(|&b| is_token_byte(b) || b == b'.')
    {
        return None;
    }
    is_random_mix(bytes.get(body..end)?).then_some(end)
}

/// Exactly `len` hex digits (either case) with a letter and a digit, not followed by a word
/// char: Shopify (`shpat_` & co, 32), DigitalOcean (`dop_v1_` & co, 64).
pub(super) fn hex_exact(bytes: &[u8], body: usize, len: usize) -> Option<usize> {
    let end = run_end_capped(bytes, body, len + 1, |b| b.is_ascii_hexdigit());
    let token = bytes.get(body..end)?;
    (token.len() == len
        && !bytes.get(end).is_some_and(|&b| is_word_byte(b))
        && has_digit(token)
        && has_letter(token)
        && !is_placeholder_body(token))
    .then_some(end)
}

/// Twilio API key SIDs: `SK` (upper case) + 32 hex digits; `start` is the offset of `SK`.
pub(super) fn twilio(bytes: &[u8], start: usize) -> Option<usize> {
    if bytes.get(start..start + 2) != Some(b"SK".as_slice()) {
        return None;
    }
    hex_exact(bytes, start + 2, 32)
}

/// Shortest AWS STS session token body after its prefix (real ones run to 300–1,000+).
const MIN_SESSION_BODY: usize = 100;

/// AWS STS session tokens (`IQoJb3JpZ2lu…`, `FwoGZXIvYXdz…`): base64, possibly
/// percent-encoded in a URL (`%2B`, `%2F`, `%3D`), at least [`MIN_SESSION_BODY`] chars.
pub(super) fn aws_session(bytes: &[u8], body: usize) -> Option<usize> {
    let end = base64_or_escaped_end(bytes, body);
    (end - body >= MIN_SESSION_BODY).then_some(end)
}

/// End of a run of base64 (`[A-Za-z0-9+/=]`) and `%XX` escapes.
pub(super) fn base64_or_escaped_end(bytes: &[u8], mut pos: usize) -> usize {
    loop {
        match bytes.get(pos) {
            Some(&b) if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=') => pos += 1,
            Some(b'%')
                if bytes
                    .get(pos + 1..pos + 3)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
            {
                pos += 3
            }
            _ => return pos,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{scan, DetectorId, DetectorSet, Finding};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

    fn spans(text: &str, d: DetectorId) -> Vec<&str> {
        let mut out: Vec<Finding> = Vec::new();
        scan(text, DetectorSet::all(), &mut out);
        out.iter()
            .filter(|f| f.detector == d)
            .map(|f| &text[f.start..f.end])
            .collect()
    }

    fn found(text: &str) -> Vec<DetectorId> {
        let mut out: Vec<Finding> = Vec::new();
        scan(text, DetectorSet::all(), &mut out);
        out.iter().map(|f| f.detector).collect()
    }

    #[test]
    fn aws_true_positives() {
        for (i, p) in [
            "AKIA", "ASIA", "AROA", "AIDA", "ANPA", "APKA", "ABIA", "ACCA",
        ]
        .iter()
        .enumerate()
        {
            let key = format!("{p}{}", fake(i as u64, 16, BASE32));
            for text in [
                key.clone(),
                format!("aws_access_key_id = {key}\n"),
                format!("\"AccessKeyId\": \"{key}\","),
                format!("(key:{key})."),
            ] {
                assert_eq!(
                    spans(&text, DetectorId::AwsAccessKey),
                    vec![&key[..]],
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn aws_negatives() {
        let body = fake(11, 16, BASE32);
        for text in [
            format!("AKIA{}", &body[..15]),         // 19 chars
            format!("AKIA{body}Q"),                 // 21 chars
            format!("AKIA{body}9"),                 // followed by a digit
            format!("AKIA{body}_x"),                // followed by `_`
            format!("XAKIA{body}"),                 // preceded by a letter
            format!("id-AKIA{body}"),               // preceded by `-`
            format!("AKIA{}", "ABCDEFGH0123ABCD"),  // 0, 1 are not base32
            format!("akia{}", body.to_lowercase()), // lower case
            format!("AKIB{body}"),                  // unknown prefix
        ] {
            assert!(spans(&text, DetectorId::AwsAccessKey).is_empty(), "{text}");
        }
    }

    #[test]
    fn github_true_positives() {
        for (i, p) in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"].iter().enumerate() {
            let tok = format!("{p}{}", fake(20 + i as u64, 36, ALNUM));
            let text = format!("git clone https://{tok}@github.com/o/r.git");
            assert_eq!(spans(&text, DetectorId::GithubToken), vec![&tok[..]]);
        }
        let pat = format!("github_pat_{}_{}", fake(30, 22, ALNUM), fake(31, 59, ALNUM));
        let text = format!("GITHUB_TOKEN={pat}\n");
        assert_eq!(spans(&text, DetectorId::GithubToken), vec![&pat[..]]);
    }

    #[test]
    fn github_negatives() {
        for text in [
            format!("ghp_{}", fake(40, 35, ALNUM)),
            format!("xghp_{}", fake(41, 40, ALNUM)),
            format!("ghx_{}", fake(42, 40, ALNUM)),
            "ghp_ is the prefix of classic tokens".to_string(),
            format!("github_pat_{}", fake(43, 60, ALNUM)),
            "github_pat_placeholder".to_string(),
        ] {
            assert!(spans(&text, DetectorId::GithubToken).is_empty(), "{text}");
        }
    }

    #[test]
    fn openai_true_positives() {
        let legacy = format!("sk-{}T3BlbkFJ{}", fake(50, 20, ALNUM), fake(51, 20, ALNUM));
        let proj = format!("sk-proj-{}", fake(52, 120, B64URL));
        let svc = format!("sk-svcacct-{}", fake(53, 80, B64URL));
        let admin = format!("sk-admin-{}", fake(54, 60, B64URL));
        for key in [&legacy, &proj, &svc, &admin] {
            let text = format!("client = OpenAI(api_key=\"{key}\")");
            assert_eq!(
                spans(&text, DetectorId::OpenaiKey),
                vec![&key[..]],
                "{text}"
            );
        }
        let short = "sk-abc123def456ghi789jk";
        assert_eq!(spans(short, DetectorId::OpenaiKey), vec![short]);
    }

    #[test]
    fn openai_negatives() {
        for text in [
            "pip install sk-learn".to_string(),
            "import sklearn; sk-learn-is-a-library-v2".to_string(),
            format!("task-sk-{}", fake(60, 40, ALNUM)),
            format!("mask-{}", fake(61, 40, ALNUM)),
            format!("risk-{}", fake(62, 40, ALNUM)),
            "check disk-space and disk-usage-report-2024".to_string(),
            "sk-abcdefghijklmnopqrstuvwxyz".to_string(), // no digit
            "sk-12345678901234567890123".to_string(),    // no letter
            "sk-abc123".to_string(),                     // too short
            format!("_sk-{}", fake(63, 40, ALNUM)),
        ] {
            assert!(spans(&text, DetectorId::OpenaiKey).is_empty(), "{text}");
        }
    }

    #[test]
    fn anthropic_is_not_openai() {
        let key = format!(
            "sk-ant-api03-{}-{}AA",
            fake(70, 86, B64URL),
            fake(71, 6, ALNUM)
        );
        let text = format!("x-api-key: {key}\r\n");
        assert_eq!(spans(&text, DetectorId::AnthropicKey), vec![&key[..]]);
        assert!(spans(&text, DetectorId::OpenaiKey).is_empty());
        assert_eq!(found(&text), vec![DetectorId::AnthropicKey]);
        // Only Anthropic enabled: still found; only OpenAI enabled: nothing.
        let mut out = Vec::new();
        scan(
            &text,
            DetectorSet::EMPTY.with(DetectorId::OpenaiKey),
            &mut out,
        );
        assert!(out.is_empty());
        scan(
            &text,
            DetectorSet::EMPTY.with(DetectorId::AnthropicKey),
            &mut out,
        );
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn anthropic_negatives() {
        for text in [
            "sk-ant-api03-short1".to_string(),
            format!("sk-ant-{}", fake(72, 40, b"abcdefghijklmnop")), // no digit
            format!("ask-ant-api03-{}", fake(73, 60, ALNUM)),
        ] {
            assert!(found(&text).is_empty(), "{text}");
        }
    }

    #[test]
    fn slack_true_positives() {
        let bot = format!(
            "xoxb-{}-{}-{}",
            fake(80, 12, b"0123456789"),
            fake(81, 13, b"0123456789"),
            fake(82, 24, ALNUM)
        );
        let user = format!(
            "xoxp-{}-{}",
            fake(83, 11, b"0123456789"),
            fake(84, 32, ALNUM)
        );
        let app = format!(
            "xapp-1-A{}-{}-{}",
            fake(85, 10, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
            fake(86, 13, b"0123456789"),
            fake(87, 64, b"0123456789abcdef")
        );
        let hook = format!(
            "https://hooks.slack.com/services/T{}/B{}/{}",
            fake(88, 8, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
            fake(89, 10, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
            fake(90, 24, ALNUM)
        );
        for tok in [&bot, &user, &app, &hook] {
            let text = format!("SLACK=\"{tok}\"");
            assert_eq!(
                spans(&text, DetectorId::SlackToken),
                vec![&tok[..]],
                "{text}"
            );
        }
        let text = format!("curl -X POST {hook}?x=1 -d '{{}}'");
        assert_eq!(spans(&text, DetectorId::SlackToken), vec![&hook[..]]);
    }

    #[test]
    fn slack_negatives() {
        for text in [
            "xoxb-your-token-here".to_string(),
            "xoxb-12345".to_string(),
            format!("axoxb-{}", fake(91, 30, ALNUM)),
            "https://hooks.slack.com/services/T000/B000/XXXX".to_string(),
            format!("https://hooks.slack.com/services/{}", fake(92, 40, ALNUM)),
            format!(
                "https://hooks.slack.com/services/TABCDEFGH/BABCDEFGH/{}",
                "short"
            ),
            format!(
                "xhttps://hooks.slack.com/services/TABCDEFGH/BABCDEFGH/{}",
                fake(93, 24, ALNUM)
            ),
        ] {
            assert!(found(&text).is_empty(), "{text}");
        }
    }

    #[test]
    fn google_api_key() {
        let key = format!("AIza{}", fake(100, 35, B64URL));
        let text = format!("https://maps.googleapis.com/maps/api/js?key={key}&callback=x");
        assert_eq!(spans(&text, DetectorId::GoogleApiKey), vec![&key[..]]);
        for bad in [
            format!("AIza{}", fake(101, 34, ALNUM)),
            format!("AIza{}", fake(102, 36, ALNUM)),
            format!("xAIza{}", fake(103, 35, ALNUM)),
        ] {
            assert!(found(&bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn stripe_keys() {
        for (i, p) in ["sk_live_", "sk_test_", "rk_live_", "rk_test_"]
            .iter()
            .enumerate()
        {
            let key = format!("{p}{}", fake(110 + i as u64, 24, ALNUM));
            let text = format!("Stripe.api_key = '{key}'");
            assert_eq!(
                spans(&text, DetectorId::StripeKey),
                vec![&key[..]],
                "{text}"
            );
        }
        let whsec = format!("whsec_{}", fake(120, 32, ALNUM));
        let text = format!("STRIPE_WEBHOOK_SECRET={whsec}");
        assert_eq!(spans(&text, DetectorId::StripeKey), vec![&whsec[..]]);
        let svix = format!("whsec_{}=", fake(121, 43, B64));
        assert_eq!(spans(&svix, DetectorId::StripeKey), vec![&svix[..]]);
        for bad in [
            format!("pk_live_{}", fake(122, 24, ALNUM)),
            format!("pk_test_{}", fake(123, 24, ALNUM)),
            format!("sk_live_{}", fake(124, 10, ALNUM)),
            format!("mask_live_{}", fake(125, 24, ALNUM)),
            "whsec_example".to_string(),
        ] {
            assert!(found(&bad).is_empty(), "{bad}");
        }
    }

    const HEX: &[u8] = b"0123456789abcdef";

    /// Each provider's token in the places it turns up: alone, in an env file, quoted in
    /// JSON, in a URL or a header.
    fn provider_tokens() -> Vec<(DetectorId, String)> {
        vec![
            (
                DetectorId::GitlabToken,
                format!("glpat-{}", fake(200, 20, B64URL)),
            ),
            (
                DetectorId::GitlabToken,
                format!(
                    "glpat-{}.01{}",
                    fake(201, 27, B64URL),
                    fake(202, 7, b"0123456789abcdefghijklmnopqrstuvwxyz")
                ),
            ),
            (
                DetectorId::GitlabToken,
                format!("gldt-{}", fake(203, 20, B64URL)),
            ),
            (
                DetectorId::GitlabToken,
                format!("glrt-{}", fake(204, 20, B64URL)),
            ),
            (
                DetectorId::GitlabToken,
                format!("glptt-{}", fake(205, 40, HEX)),
            ),
            (
                DetectorId::GitlabToken,
                format!("gloas-{}", fake(206, 64, B64URL)),
            ),
            (
                DetectorId::GitlabToken,
                format!("glcbt-64_{}", fake(207, 20, B64URL)),
            ),
            (
                DetectorId::GitlabToken,
                format!("GR1348941{}", fake(208, 20, B64URL)),
            ),
            (
                DetectorId::NpmToken,
                format!("npm_{}", fake(210, 36, ALNUM)),
            ),
            (
                DetectorId::HuggingfaceToken,
                format!("hf_{}", fake(211, 34, ALNUM)),
            ),
            (
                DetectorId::HuggingfaceToken,
                format!("api_org_{}", fake(212, 34, ALNUM)),
            ),
            (
                DetectorId::SendgridKey,
                format!("SG.{}.{}", fake(213, 22, B64URL), fake(214, 43, B64URL)),
            ),
            (DetectorId::TwilioKey, format!("SK{}", fake(215, 32, HEX))),
            (
                DetectorId::ShopifyToken,
                format!("shpat_{}", fake(216, 32, HEX)),
            ),
            (
                DetectorId::ShopifyToken,
                format!("shpss_{}", fake(217, 32, HEX)),
            ),
            (
                DetectorId::DigitaloceanToken,
                format!("dop_v1_{}", fake(218, 64, HEX)),
            ),
            (
                DetectorId::DigitaloceanToken,
                format!("doo_v1_{}", fake(219, 64, HEX)),
            ),
            (
                DetectorId::DigitaloceanToken,
                format!("dor_v1_{}", fake(220, 64, HEX)),
            ),
            (
                DetectorId::AwsSessionToken,
                format!("IQoJb3JpZ2luX2VjE{}", fake(221, 300, B64)),
            ),
            (
                DetectorId::AwsSessionToken,
                format!("FwoGZXIvYXdzE{}", fake(222, 200, B64)),
            ),
        ]
    }

    #[test]
    fn provider_tokens_in_context() {
        for (d, tok) in provider_tokens() {
            for text in [
                tok.clone(),
                format!("TOKEN={tok}\n"),
                format!("{{\"value\": \"{tok}\"}}"),
                format!("curl -H 'X-Auth: {tok}' https://api.example.com"),
                format!("see ({tok})."),
            ] {
                assert_eq!(spans(&text, d), vec![&tok[..]], "{text}");
                assert_eq!(found(&text), vec![d], "{text}");
            }
        }
    }

    /// Tokens of case-insensitive providers, and keys a user upper-cased, are still found.
    #[test]
    fn other_case_keys() {
        // Upper-cased, a token has one letter case: it needs a digit to be told from prose
        // (`GLPAT-YOUR-ACCESS-TOKEN`), which a random body all but always has.
        let mut keys: Vec<(DetectorId, String)> = provider_tokens()
            .into_iter()
            .filter(|(d, _)| !matches!(d, DetectorId::TwilioKey | DetectorId::AwsSessionToken))
            .map(|(d, t)| (d, format!("{}7", &t[..t.len() - 1]).to_uppercase()))
            .collect();
        keys.push((
            DetectorId::OpenaiKey,
            format!("sk-proj-{}", fake(230, 60, B64URL)).to_uppercase(),
        ));
        keys.push((
            DetectorId::AnthropicKey,
            format!("sk-ant-api03-{}", fake(231, 90, B64URL)).to_uppercase(),
        ));
        keys.push((
            DetectorId::GithubToken,
            format!("ghp_{}", fake(232, 36, ALNUM)).to_uppercase(),
        ));
        keys.push((
            DetectorId::StripeKey,
            format!("sk_live_{}", fake(233, 24, ALNUM)).to_uppercase(),
        ));
        keys.push((
            DetectorId::SlackToken,
            format!(
                "xoxb-{}-{}",
                fake(234, 12, b"0123456789"),
                fake(235, 24, ALNUM)
            )
            .to_uppercase(),
        ));
        keys.push((
            DetectorId::GoogleApiKey,
            format!("AIza{}", fake(236, 35, B64URL)).to_uppercase(),
        ));
        keys.push((
            DetectorId::NpmToken,
            format!("NPM_{}", fake(237, 36, ALNUM)).to_lowercase(),
        ));
        for (d, key) in keys {
            let text = format!("key: {key}\n");
            assert_eq!(spans(&text, d), vec![&key[..]], "{text}");
        }
        // Providers that fix the case keep it: AWS key ids, Twilio SIDs, JWTs.
        let aws = format!("akia{}", fake(238, 16, b"abcdefghijklmnopqrstuvwxyz234567"));
        let twilio = format!("sk{}", fake(239, 32, HEX));
        for text in [aws, twilio] {
            assert!(found(&text).is_empty(), "{text}");
        }
        // Short upper-case `SK-` codes are product references, not keys; upper-case prose
        // after a prefix is not a token.
        for text in [
            "SK-2024-ABCDEF1234567890",
            "part SK-HYNIX-0123456789ABCDEF",
            "GLPAT-YOUR-PERSONAL-ACCESS-TOKEN",
            "NPM_TOKEN_FOR_THE_REGISTRY_OF_THE_COMPANY_X",
        ] {
            assert!(found(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn provider_token_negatives() {
        for text in [
            // Wrong lengths.
            format!("glpat-{}", fake(240, 19, B64URL)),
            format!("npm_{}", fake(241, 35, ALNUM)),
            format!("npm_{}", fake(242, 37, ALNUM)),
            format!("hf_{}", fake(243, 33, ALNUM)),
            format!("SG.{}.{}", fake(244, 21, B64URL), fake(245, 43, B64URL)),
            format!("SG.{}.{}", fake(246, 22, B64URL), fake(247, 42, B64URL)),
            format!("SK{}", fake(248, 31, HEX)),
            format!("shpat_{}", fake(249, 31, HEX)),
            format!("dop_v1_{}", fake(250, 63, HEX)),
            format!("IQoJb3JpZ2luX2VjE{}", fake(251, 60, B64)),
            // Glued to a word.
            format!("xnpm_{}", fake(252, 36, ALNUM)),
            format!("ASK{}", fake(253, 32, HEX)),
            format!("myhf_{}", fake(254, 34, ALNUM)),
            // Not hex.
            format!("shpat_{}", fake(255, 32, ALNUM)),
            // Placeholders and prose from documentation.
            "glpat-xxxxxxxxxxxxxxxxxxxx".to_string(),
            "glpat-your-personal-access-token".to_string(),
            "npm_000000000000000000000000000000000000".to_string(),
            "hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".to_string(),
            "shpat_00000000000000000000000000000000".to_string(),
            "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".to_string(),
            "ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX".to_string(),
            "sk-proj-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx1".to_string(),
            "sk_test_xxxxxxxxxxxxxxxxxxxxxxxx".to_string(),
            "sk_test_...".to_string(),
            // Identifiers that share a prefix.
            "npm_config_registry npm_package_version npm_lifecycle_event".to_string(),
            "hf_hub_download(repo_id) HF_HOME HF_HUB_ENABLE_HF_TRANSFER".to_string(),
            "SG.connect() sg.Name SG.Group".to_string(),
            "SKU SKIP SK-1 SKYLINE".to_string(),
            "doo_v1_ dop_v1_abc".to_string(),
            // UUIDs, git SHAs, hashes, hex ids.
            "123e4567-e89b-12d3-a456-426614174000".to_string(),
            "commit 9fceb02d0ae598e95dc970b74767f19372d61af8".to_string(),
            "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".to_string(),
            "md5 d41d8cd98f00b204e9800998ecf8427e".to_string(),
        ] {
            assert!(found(&text).is_empty(), "{text}: {:?}", found(&text));
        }
    }

    /// GitLab instance prefixes (`SIE-glpat-…`) keep the token findable.
    #[test]
    fn gitlab_instance_prefix() {
        let tok = format!("glpat-{}", fake(260, 20, B64URL));
        let text = format!("SIE-{tok}");
        assert_eq!(spans(&text, DetectorId::GitlabToken), vec![&tok[..]]);
    }
}
