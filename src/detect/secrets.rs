//! Secret detectors: API keys and tokens with a recognisable literal prefix, PEM/PGP private
//! key blocks and JWTs.
//!
//! One aho-corasick automaton (built once) finds every literal prefix in a single pass; each
//! hit is then validated by hand: word boundary before the prefix, the token alphabet and
//! length after it, and detector-specific checks (see the submodules).
//!
//! Linear time: a hit only scans forward over its own token, and the alphabet of every
//! token is a subset of the "no boundary" set checked before a prefix, so a prefix found
//! inside a token that was already scanned is rejected in O(1). Hits starting inside an
//! accepted finding are skipped. The remaining forward scans are capped (JWT header,
//! PEM label) or consume input that no other hit scans again (see `private_key`).

mod jwt;
mod private_key;
mod tokens;

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, MatchKind};

use super::{DetectorId, DetectorSet, Finding};

/// What a literal prefix announces; selects the validator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Aws,
    GithubClassic,
    GithubPat,
    Openai,
    Anthropic,
    SlackToken,
    SlackWebhook,
    GoogleApi,
    Stripe,
    StripeWebhook,
    PrivateKey,
    Jwt,
}

impl Kind {
    fn detector(self) -> DetectorId {
        match self {
            Kind::Aws => DetectorId::AwsAccessKey,
            Kind::GithubClassic | Kind::GithubPat => DetectorId::GithubToken,
            Kind::Openai => DetectorId::OpenaiKey,
            Kind::Anthropic => DetectorId::AnthropicKey,
            Kind::SlackToken | Kind::SlackWebhook => DetectorId::SlackToken,
            Kind::GoogleApi => DetectorId::GoogleApiKey,
            Kind::Stripe | Kind::StripeWebhook => DetectorId::StripeKey,
            Kind::PrivateKey => DetectorId::PrivateKey,
            Kind::Jwt => DetectorId::Jwt,
        }
    }
}

/// The detectors this module serves: if none is enabled, `scan` does nothing.
const SECRET_DETECTORS: &[DetectorId] = &[
    DetectorId::AwsAccessKey,
    DetectorId::GithubToken,
    DetectorId::OpenaiKey,
    DetectorId::AnthropicKey,
    DetectorId::SlackToken,
    DetectorId::GoogleApiKey,
    DetectorId::StripeKey,
    DetectorId::PrivateKey,
    DetectorId::Jwt,
];

/// Every literal prefix, case-sensitive.
const PREFIXES: &[(&str, Kind)] = &[
    ("AKIA", Kind::Aws),
    ("ASIA", Kind::Aws),
    ("ABIA", Kind::Aws),
    ("ACCA", Kind::Aws),
    ("AGPA", Kind::Aws),
    ("AIDA", Kind::Aws),
    ("AIPA", Kind::Aws),
    ("ANPA", Kind::Aws),
    ("ANVA", Kind::Aws),
    ("APKA", Kind::Aws),
    ("AROA", Kind::Aws),
    ("ASCA", Kind::Aws),
    ("ghp_", Kind::GithubClassic),
    ("gho_", Kind::GithubClassic),
    ("ghu_", Kind::GithubClassic),
    ("ghs_", Kind::GithubClassic),
    ("ghr_", Kind::GithubClassic),
    ("github_pat_", Kind::GithubPat),
    ("sk-", Kind::Openai),
    ("sk-ant-", Kind::Anthropic),
    ("xoxb-", Kind::SlackToken),
    ("xoxp-", Kind::SlackToken),
    ("xoxa-", Kind::SlackToken),
    ("xoxr-", Kind::SlackToken),
    ("xoxs-", Kind::SlackToken),
    ("xoxe-", Kind::SlackToken),
    ("xapp-", Kind::SlackToken),
    ("https://hooks.slack.com/services/", Kind::SlackWebhook),
    ("AIza", Kind::GoogleApi),
    ("sk_live_", Kind::Stripe),
    ("sk_test_", Kind::Stripe),
    ("rk_live_", Kind::Stripe),
    ("rk_test_", Kind::Stripe),
    ("whsec_", Kind::StripeWebhook),
    ("-----BEGIN ", Kind::PrivateKey),
    ("eyJ", Kind::Jwt),
];

/// The prefix automaton, built on first use. `None` only if building failed, which the
/// tests rule out; detection is then skipped rather than panicking in the data path.
fn automaton() -> Option<&'static AhoCorasick> {
    static AC: OnceLock<Option<AhoCorasick>> = OnceLock::new();
    AC.get_or_init(|| {
        AhoCorasick::builder()
            // Standard semantics are required for overlapping search, which keeps a
            // short prefix (`sk-`) from hiding a longer one at the same spot (`sk-ant-`).
            .match_kind(MatchKind::Standard)
            .build(PREFIXES.iter().map(|(p, _)| p))
            .ok()
    })
    .as_ref()
}

/// Appends a finding for every secret of an enabled kind in `text`.
pub fn scan(text: &str, enabled: DetectorSet, out: &mut Vec<Finding>) {
    if !SECRET_DETECTORS.iter().any(|d| enabled.contains(*d)) {
        return;
    }
    let Some(ac) = automaton() else {
        return;
    };
    let Ok(hits) = ac.try_find_overlapping_iter(text) else {
        return;
    };
    let bytes = text.as_bytes();
    // End of the last accepted finding: hits starting inside it are part of that secret.
    let mut covered = 0;
    for hit in hits {
        let Some(&(_, kind)) = PREFIXES.get(hit.pattern().as_usize()) else {
            continue;
        };
        let detector = kind.detector();
        let (start, body) = (hit.start(), hit.end());
        if start < covered || !enabled.contains(detector) {
            continue;
        }
        if kind != Kind::PrivateKey && !boundary_before(bytes, start) {
            continue;
        }
        let end = match kind {
            Kind::Aws => tokens::aws(bytes, body),
            Kind::GithubClassic => tokens::github_classic(bytes, body),
            Kind::GithubPat => tokens::github_pat(bytes, body),
            Kind::Openai => tokens::openai(bytes, body),
            Kind::Anthropic => tokens::anthropic(bytes, body),
            Kind::SlackToken => tokens::slack_token(bytes, body),
            Kind::SlackWebhook => tokens::slack_webhook(bytes, body),
            Kind::GoogleApi => tokens::google_api(bytes, body),
            Kind::Stripe => tokens::stripe(bytes, body),
            Kind::StripeWebhook => tokens::stripe_webhook(bytes, body),
            Kind::PrivateKey => private_key::validate(bytes, body),
            Kind::Jwt => jwt::validate(bytes, start),
        };
        if let Some(end) = end {
            out.push(Finding {
                detector,
                start,
                end,
            });
            covered = end;
        }
    }
}

/// `[A-Za-z0-9_-]`: the base64url alphabet, and the set of bytes that may not precede a
/// token prefix.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// `[A-Za-z0-9_]`.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// True when no token byte precedes `start`.
fn boundary_before(bytes: &[u8], start: usize) -> bool {
    match start.checked_sub(1) {
        None => true,
        Some(i) => !bytes.get(i).is_some_and(|&b| is_token_byte(b)),
    }
}

/// End of the maximal run of bytes satisfying `pred` starting at `from`.
fn run_end(bytes: &[u8], from: usize, pred: impl Fn(u8) -> bool) -> usize {
    match bytes.get(from..) {
        Some(rest) => from + rest.iter().position(|&b| !pred(b)).unwrap_or(rest.len()),
        None => from,
    }
}

/// Like [`run_end`] but looks at no more than `cap` bytes.
fn run_end_capped(bytes: &[u8], from: usize, cap: usize, pred: impl Fn(u8) -> bool) -> usize {
    let stop = from.saturating_add(cap).min(bytes.len());
    match bytes.get(from..stop) {
        Some(rest) => from + rest.iter().position(|&b| !pred(b)).unwrap_or(rest.len()),
        None => from,
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Deterministic fake token material for tests (never real secrets).

    /// A deterministic pseudo-random string of `len` bytes drawn from `alphabet`.
    pub(crate) fn fake(seed: u64, len: usize, alphabet: &[u8]) -> String {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % alphabet.len() as u64) as usize] as char
            })
            .collect()
    }

    pub(crate) const ALNUM: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    pub(crate) const B64URL: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    pub(crate) const B64: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn all() -> DetectorSet {
        DetectorSet::all()
    }

    fn only(d: DetectorId) -> DetectorSet {
        DetectorSet::EMPTY.with(d)
    }

    fn run(text: &str, enabled: DetectorSet) -> Vec<(DetectorId, &str)> {
        crate::detect::test_support::found(text, |t, out| scan(t, enabled, out))
    }

    #[test]
    fn automaton_builds() {
        assert!(automaton().is_some());
    }

    #[test]
    fn empty_and_disabled() {
        assert!(run("", all()).is_empty());
        let key = format!("AKIA{}", fake(1, 16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"));
        assert!(run(&key, DetectorSet::EMPTY).is_empty());
        assert!(run(&key, only(DetectorId::Email)).is_empty());
        assert_eq!(run(&key, all()), vec![(DetectorId::AwsAccessKey, &key[..])]);
    }

    #[test]
    fn enabled_set_is_honoured_per_detector() {
        let aws = format!("AKIA{}", fake(2, 16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"));
        let gh = format!("ghp_{}", fake(3, 36, ALNUM));
        let stripe = format!("sk_live_{}", fake(4, 24, ALNUM));
        let text = format!("a={aws} b={gh} c={stripe}");
        assert_eq!(run(&text, all()).len(), 3);
        assert_eq!(
            run(&text, only(DetectorId::GithubToken)),
            vec![(DetectorId::GithubToken, &gh[..])]
        );
        assert_eq!(
            run(
                &text,
                only(DetectorId::StripeKey).with(DetectorId::AwsAccessKey)
            ),
            vec![
                (DetectorId::AwsAccessKey, &aws[..]),
                (DetectorId::StripeKey, &stripe[..])
            ]
        );
        // Other detectors' ids never come out of this module.
        assert!(run(&text, DetectorSet::EMPTY.with(DetectorId::Jwt)).is_empty());
    }

    #[test]
    fn spans_are_byte_offsets_after_multibyte_text() {
        let key = format!("AIza{}", fake(5, 35, B64URL));
        let text = format!("clé « {key} » ✓");
        let mut out = Vec::new();
        scan(&text, all(), &mut out);
        let start = text.find(&key).unwrap();
        assert_eq!(
            out,
            vec![Finding {
                detector: DetectorId::GoogleApiKey,
                start,
                end: start + key.len()
            }]
        );
    }

    #[test]
    fn mixed_realistic_config_paste() {
        let aws = format!("AKIA{}", fake(6, 16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"));
        let openai = format!("sk-proj-{}", fake(7, 60, B64URL));
        let anthropic = format!("sk-ant-api03-{}", fake(8, 80, B64URL));
        let text = format!(
            "export AWS_ACCESS_KEY_ID={aws}\nexport OPENAI_API_KEY=\"{openai}\"\n\
             ANTHROPIC_API_KEY='{anthropic}'\n"
        );
        assert_eq!(
            run(&text, all()),
            vec![
                (DetectorId::AwsAccessKey, &aws[..]),
                (DetectorId::OpenaiKey, &openai[..]),
                (DetectorId::AnthropicKey, &anthropic[..]),
            ]
        );
    }

    #[test]
    fn adversarial_prefix_floods_stay_correct() {
        let n = 200 * 1024;
        let floods = [
            "sk-".repeat(n / 3),
            "eyJ".repeat(n / 3),
            "eyJ.".repeat(n / 4),
            "-----BEGIN ".repeat(n / 11),
            "-----BEGIN PRIVATE KEY-----\n".repeat(n / 28),
            "AKIA".repeat(n / 4),
            "ghp_".repeat(n / 4),
            "xoxb-".repeat(n / 5),
            "https://hooks.slack.com/services/".repeat(n / 33),
            "whsec_/".repeat(n / 7),
            "sk-ant-".repeat(n / 7),
            "A".repeat(n),
        ];
        for text in &floods {
            assert!(run(text, all()).is_empty(), "{}", &text[..20]);
        }
        // A single long token body is scanned once and accepted once.
        let long = format!("sk-{}", fake(9, n, ALNUM));
        assert_eq!(run(&long, all()), vec![(DetectorId::OpenaiKey, &long[..])]);
        // Many valid tokens back to back, separated by spaces: all found.
        let one = format!("ghp_{}", fake(10, 36, ALNUM));
        let many = format!("{one} ").repeat(n / 41);
        assert_eq!(run(&many, all()).len(), n / 41);
    }
}
