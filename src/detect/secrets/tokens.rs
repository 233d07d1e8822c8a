//! Validators for prefixed API keys and tokens.
//!
//! Each takes the text and the offset right after the literal prefix (the boundary before
//! the prefix is already checked) and returns the end of the token, or `None`.

use super::{is_token_byte, is_word_byte, run_end, run_end_capped};

/// `[A-Z2-7]`: the base32 alphabet of AWS key ids.
fn is_base32(b: u8) -> bool {
    b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)
}

/// `[A-Za-z0-9-]`: Slack token bodies.
fn is_slack_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

fn has_digit(s: &[u8]) -> bool {
    s.iter().any(u8::is_ascii_digit)
}

fn has_letter(s: &[u8]) -> bool {
    s.iter().any(u8::is_ascii_alphabetic)
}

/// AWS access key id: prefix + exactly 16 base32 chars, not followed by a word char.
pub(super) fn aws(bytes: &[u8], body: usize) -> Option<usize> {
    let end = run_end_capped(bytes, body, 17, is_base32);
    if end - body != 16 || bytes.get(end).is_some_and(|&b| is_word_byte(b)) {
        return None;
    }
    Some(end)
}

/// `ghp_` & co: at least 36 alphanumerics.
pub(super) fn github_classic(bytes: &[u8], body: usize) -> Option<usize> {
    let end = run_end(bytes, body, |b| b.is_ascii_alphanumeric());
    (end - body >= 36).then_some(end)
}

/// `github_pat_`: 22 alnum + `_` + 59 alnum; accepted as >= 70 chars of `[A-Za-z0-9_]`.
pub(super) fn github_pat(bytes: &[u8], body: usize) -> Option<usize> {
    let end = run_end(bytes, body, is_word_byte);
    (end - body >= 70).then_some(end)
}

/// `sk-` (also `sk-proj-`, `sk-svcacct-`, `sk-admin-`): >= 20 chars of `[A-Za-z0-9_-]`
/// with a digit, a letter and a run of >= 10 alphanumerics (rules out hyphenated words such
/// as `sk-learn-is-a-library-v2`). `sk-ant-` is Anthropic's.
pub(super) fn openai(bytes: &[u8], body: usize) -> Option<usize> {
    if bytes
        .get(body..)
        .is_some_and(|rest| rest.starts_with(b"ant-"))
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
    (token.len() >= 20 && has_digit(token) && has_letter(token) && longest_alnum >= 10)
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
    if end - body < 16 || bytes.get(end) == Some(&b'_') {
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
}
