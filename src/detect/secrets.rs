//! Secret detectors: API keys and tokens with a recognisable literal prefix, PEM/PGP private
//! key blocks, JWTs, and secrets recognised by what surrounds them: a label (`password=…`,
//! `"client_secret": "…"`, `AccountKey=…`, `&sig=…`), a URL's userinfo
//! (`postgres://user:pass@host`), an HTTP `Basic`/`Bearer` credential, or an AWS key id next
//! to its secret.
//!
//! One [`super::automaton`] (built once, ASCII case-insensitive) finds every literal prefix
//! and every label keyword in a single pass; each hit is then validated by hand: the case of
//! the prefix where the provider fixes it, word boundary before the prefix, the token
//! alphabet and length after it, and detector-specific checks (see the submodules).
//!
//! A secret found by its context (label, URL, HTTP scheme, key-id proximity) that a prefixed
//! token's finding covers is dropped in favour of the token's more specific detector.
//!
//! Linear time: a hit only scans forward over its own token, and the alphabet of every
//! token is a subset of the "no boundary" set checked before a prefix, so a prefix found
//! inside a token that was already scanned is rejected in O(1). Hits starting inside an
//! accepted finding are skipped. The remaining forward scans are capped (JWT header,
//! PEM label) or consume input that no other hit scans again (see `private_key`). Context
//! scans never read before the end of the previous scan of their family (labels, URLs,
//! HTTP schemes, key-id windows) and are capped, so each byte is read by at most one scan
//! of each family.

mod aws;
mod http_auth;
mod jwt;
mod labels;
mod private_key;
mod shape;
mod tokens;
mod url;

use std::sync::OnceLock;

use super::automaton::{Automaton, MatchKind};

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
    /// GitLab token prefixes; the minimum body length.
    Gitlab(usize),
    Npm,
    Huggingface,
    Sendgrid,
    Twilio,
    Shopify,
    Digitalocean,
    /// AWS STS session tokens: base64 of their fixed binary header.
    AwsSession,
    /// A keyword that can be part of a label (`password`, `secret`, `token`, …).
    Label,
    /// A query parameter name with its `=` (`sig=`, `signature=`).
    Param,
    /// `://`: a URL that may carry `user:password@`.
    Url,
    /// `basic`, `bearer`: an HTTP authentication scheme.
    Basic,
    Bearer,
}

impl Kind {
    /// The detectors a hit of this kind can report; the hit is skipped when none is enabled.
    fn detectors(self) -> &'static [DetectorId] {
        use DetectorId as D;
        match self {
            Kind::Aws => &[D::AwsAccessKey, D::AwsSecretKey],
            Kind::GithubClassic | Kind::GithubPat => &[D::GithubToken],
            Kind::Openai => &[D::OpenaiKey],
            Kind::Anthropic => &[D::AnthropicKey],
            Kind::SlackToken | Kind::SlackWebhook => &[D::SlackToken],
            Kind::GoogleApi => &[D::GoogleApiKey],
            Kind::Stripe | Kind::StripeWebhook => &[D::StripeKey],
            Kind::PrivateKey => &[D::PrivateKey],
            Kind::Jwt => &[D::Jwt],
            Kind::Gitlab(_) => &[D::GitlabToken],
            Kind::Npm => &[D::NpmToken],
            Kind::Huggingface => &[D::HuggingfaceToken],
            Kind::Sendgrid => &[D::SendgridKey],
            Kind::Twilio => &[D::TwilioKey],
            Kind::Shopify => &[D::ShopifyToken],
            Kind::Digitalocean => &[D::DigitaloceanToken],
            Kind::AwsSession => &[D::AwsSessionToken],
            Kind::Label | Kind::Param => labels::DETECTORS,
            Kind::Url => &[D::UrlCredentials],
            Kind::Basic | Kind::Bearer => &[D::HttpAuth],
        }
    }
}

/// The detectors this module serves: if none is enabled, `scan` does nothing.
pub(crate) const SECRET_DETECTORS: &[DetectorId] = &[
    DetectorId::AwsAccessKey,
    DetectorId::GithubToken,
    DetectorId::OpenaiKey,
    DetectorId::AnthropicKey,
    DetectorId::SlackToken,
    DetectorId::GoogleApiKey,
    DetectorId::StripeKey,
    DetectorId::PrivateKey,
    DetectorId::Jwt,
    DetectorId::GitlabToken,
    DetectorId::NpmToken,
    DetectorId::HuggingfaceToken,
    DetectorId::SendgridKey,
    DetectorId::TwilioKey,
    DetectorId::MailgunKey,
    DetectorId::ShopifyToken,
    DetectorId::DigitaloceanToken,
    DetectorId::AwsSecretKey,
    DetectorId::AwsSessionToken,
    DetectorId::AzureStorageKey,
    DetectorId::GcpServiceAccount,
    DetectorId::UrlSignature,
    DetectorId::UrlCredentials,
    DetectorId::HttpAuth,
    DetectorId::SecretAssignment,
];

/// Whether a prefix must appear in the given case (the provider fixes it, or a different
/// case is something else: `asia` is a word, `AKIA` a key id) or may appear in any case (the
/// provider's tokens are case-insensitive, or an upper-cased key is still that key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Exact,
    Any,
}

use Case::{Any, Exact};

/// Every literal prefix and keyword; matched ASCII case-insensitively, then checked against
/// its [`Case`].
const PREFIXES: &[(&str, Kind, Case)] = &[
    ("AKIA", Kind::Aws, Exact),
    ("ASIA", Kind::Aws, Exact),
    ("ABIA", Kind::Aws, Exact),
    ("ACCA", Kind::Aws, Exact),
    ("AGPA", Kind::Aws, Exact),
    ("AIDA", Kind::Aws, Exact),
    ("AIPA", Kind::Aws, Exact),
    ("ANPA", Kind::Aws, Exact),
    ("ANVA", Kind::Aws, Exact),
    ("APKA", Kind::Aws, Exact),
    ("AROA", Kind::Aws, Exact),
    ("ASCA", Kind::Aws, Exact),
    ("ghp_", Kind::GithubClassic, Any),
    ("gho_", Kind::GithubClassic, Any),
    ("ghu_", Kind::GithubClassic, Any),
    ("ghs_", Kind::GithubClassic, Any),
    ("ghr_", Kind::GithubClassic, Any),
    ("github_pat_", Kind::GithubPat, Any),
    ("sk-", Kind::Openai, Any),
    ("sk-ant-", Kind::Anthropic, Any),
    ("xoxb-", Kind::SlackToken, Any),
    ("xoxp-", Kind::SlackToken, Any),
    ("xoxa-", Kind::SlackToken, Any),
    ("xoxr-", Kind::SlackToken, Any),
    ("xoxs-", Kind::SlackToken, Any),
    ("xoxe-", Kind::SlackToken, Any),
    ("xapp-", Kind::SlackToken, Any),
    ("https://hooks.slack.com/services/", Kind::SlackWebhook, Any),
    ("AIza", Kind::GoogleApi, Any),
    ("sk_live_", Kind::Stripe, Any),
    ("sk_test_", Kind::Stripe, Any),
    ("rk_live_", Kind::Stripe, Any),
    ("rk_test_", Kind::Stripe, Any),
    ("whsec_", Kind::StripeWebhook, Any),
    ("-----BEGIN ", Kind::PrivateKey, Exact),
    ("eyJ", Kind::Jwt, Exact),
    ("glpat-", Kind::Gitlab(20), Any),
    ("gldt-", Kind::Gitlab(20), Any),
    ("glrt-", Kind::Gitlab(20), Any),
    ("glcbt-", Kind::Gitlab(20), Any),
    ("glptt-", Kind::Gitlab(40), Any),
    ("glft-", Kind::Gitlab(20), Any),
    ("glimt-", Kind::Gitlab(25), Any),
    ("glagent-", Kind::Gitlab(50), Any),
    ("gloas-", Kind::Gitlab(64), Any),
    ("glsoat-", Kind::Gitlab(20), Any),
    ("glffct-", Kind::Gitlab(20), Any),
    ("GR1348941", Kind::Gitlab(20), Any),
    ("npm_", Kind::Npm, Any),
    ("hf_", Kind::Huggingface, Any),
    ("api_org_", Kind::Huggingface, Any),
    ("SG.", Kind::Sendgrid, Any),
    // `SK` and the first hex digit of a Twilio SID: `sk` alone would hit every "risks"
    // and "asks" (the automaton is case-insensitive); the validator checks the `SK`.
    ("SK0", Kind::Twilio, Any),
    ("SK1", Kind::Twilio, Any),
    ("SK2", Kind::Twilio, Any),
    ("SK3", Kind::Twilio, Any),
    ("SK4", Kind::Twilio, Any),
    ("SK5", Kind::Twilio, Any),
    ("SK6", Kind::Twilio, Any),
    ("SK7", Kind::Twilio, Any),
    ("SK8", Kind::Twilio, Any),
    ("SK9", Kind::Twilio, Any),
    ("SKa", Kind::Twilio, Any),
    ("SKb", Kind::Twilio, Any),
    ("SKc", Kind::Twilio, Any),
    ("SKd", Kind::Twilio, Any),
    ("SKe", Kind::Twilio, Any),
    ("SKf", Kind::Twilio, Any),
    ("shpat_", Kind::Shopify, Any),
    ("shpca_", Kind::Shopify, Any),
    ("shppa_", Kind::Shopify, Any),
    ("shpss_", Kind::Shopify, Any),
    ("dop_v1_", Kind::Digitalocean, Any),
    ("doo_v1_", Kind::Digitalocean, Any),
    ("dor_v1_", Kind::Digitalocean, Any),
    ("IQoJb3JpZ2lu", Kind::AwsSession, Exact),
    ("FwoGZXIvYXdz", Kind::AwsSession, Exact),
    ("FQoGZXIvYXdz", Kind::AwsSession, Exact),
    ("AQoDYXdz", Kind::AwsSession, Exact),
    ("password", Kind::Label, Any),
    ("passwd", Kind::Label, Any),
    ("passphrase", Kind::Label, Any),
    ("pass", Kind::Label, Any),
    ("pwd", Kind::Label, Any),
    ("secret", Kind::Label, Any),
    ("token", Kind::Label, Any),
    ("apikey", Kind::Label, Any),
    ("api_key", Kind::Label, Any),
    ("api-key", Kind::Label, Any),
    ("accesskey", Kind::Label, Any),
    ("access_key", Kind::Label, Any),
    ("access-key", Kind::Label, Any),
    ("accountkey", Kind::Label, Any),
    ("account_key", Kind::Label, Any),
    ("storage_key", Kind::Label, Any),
    ("privatekey", Kind::Label, Any),
    ("private_key", Kind::Label, Any),
    ("credential", Kind::Label, Any),
    ("auth", Kind::Label, Any),
    ("mailgun", Kind::Label, Any),
    ("sig=", Kind::Param, Any),
    ("signature=", Kind::Param, Any),
    ("://", Kind::Url, Exact),
    ("basic", Kind::Basic, Any),
    ("bearer", Kind::Bearer, Any),
];

/// The prefix automaton, built on first use. `None` only if building failed, which the
/// tests rule out; detection is then skipped rather than panicking in the data path.
fn automaton() -> Option<&'static Automaton> {
    static AC: OnceLock<Option<Automaton>> = OnceLock::new();
    AC.get_or_init(|| {
        // Overlapping search, which keeps a short prefix (`sk-`) from hiding a longer one at
        // the same spot (`sk-ant-`).
        Automaton::new(
            PREFIXES.iter().map(|(p, _, _)| p),
            MatchKind::Standard,
            true,
        )
        .ok()
    })
    .as_ref()
}

/// Where each family of context scans has read up to (see the module docs).
#[derive(Default)]
struct Reach {
    /// End of the last accepted prefixed-token finding.
    covered: usize,
    labels: usize,
    urls: usize,
    auth: usize,
    aws_window: usize,
}

/// Findings of one scan: prefixed tokens, and context findings a token may supersede.
struct Found<'o> {
    out: &'o mut Vec<Finding>,
    /// Index in `out` of the latest context finding.
    last_context: Option<usize>,
    /// Context findings covered by a token finding, to drop.
    superseded: Vec<usize>,
}

impl Found<'_> {
    fn token(&mut self, detector: DetectorId, start: usize, end: usize) {
        if let Some(i) = self.last_context.take() {
            if self
                .out
                .get(i)
                .is_some_and(|c| start <= c.start && c.end <= end)
            {
                self.superseded.push(i);
            }
        }
        self.out.push(Finding {
            detector,
            start,
            end,
        });
    }

    fn context(&mut self, detector: DetectorId, start: usize, end: usize) {
        self.last_context = Some(self.out.len());
        self.out.push(Finding {
            detector,
            start,
            end,
        });
    }

    fn finish(self) {
        for i in self.superseded.into_iter().rev() {
            if i < self.out.len() {
                self.out.remove(i);
            }
        }
    }
}

/// Whether any detector of this module is enabled (else `scan` does nothing).
pub(crate) fn any_enabled(enabled: DetectorSet) -> bool {
    SECRET_DETECTORS.iter().any(|d| enabled.contains(*d))
}

/// The literal prefixes and keywords, in pattern-id order: a prefilter that puts them first
/// in its own automaton (same ids, same matching: ASCII case-insensitive, overlapping) can
/// hand its hits to [`scan_anchors`]. Public only for `examples/prof_automaton`.
#[doc(hidden)]
pub fn prefixes() -> impl Iterator<Item = &'static str> {
    PREFIXES.iter().map(|(p, _, _)| *p)
}

/// How many patterns [`prefixes`] yields.
pub(crate) const PREFIX_COUNT: usize = PREFIXES.len();

/// One automaton hit of a prefix: its pattern id (index in [`prefixes`]) and span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Anchor {
    pub(crate) pattern: usize,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Appends a finding for every secret of an enabled kind in `text`.
pub fn scan(text: &str, enabled: DetectorSet, out: &mut Vec<Finding>) {
    if !any_enabled(enabled) {
        return;
    }
    let Some(ac) = automaton() else {
        return;
    };
    scan_anchors(
        text,
        enabled,
        &mut ac.overlapping(text.as_bytes()).map(|h| Anchor {
            pattern: h.pattern,
            start: h.start,
            end: h.end,
        }),
        out,
    );
}

/// [`scan`] given the prefix hits in `text`: every overlapping hit of every prefix, in the
/// order an overlapping search reports them (by end, longer patterns first at the same end).
/// (`dyn`: one compiled copy of the validators' loop for both callers.)
pub(crate) fn scan_anchors(
    text: &str,
    enabled: DetectorSet,
    hits: &mut dyn Iterator<Item = Anchor>,
    out: &mut Vec<Finding>,
) {
    if !any_enabled(enabled) {
        return;
    }
    let bytes = text.as_bytes();
    let mut reach = Reach::default();
    let mut found = Found {
        out,
        last_context: None,
        superseded: Vec::new(),
    };
    for hit in hits {
        let Some(&(prefix, kind, case)) = PREFIXES.get(hit.pattern) else {
            continue;
        };
        let (start, body) = (hit.start, hit.end);
        if start < reach.covered
            || (case == Exact && !same_bytes(bytes, start, prefix))
            || !kind.detectors().iter().any(|d| enabled.contains(*d))
        {
            continue;
        }
        match kind {
            Kind::Label | Kind::Param => {
                if start < reach.labels {
                    continue;
                }
                let (result, reached) = labels::validate(
                    bytes,
                    start,
                    body,
                    kind == Kind::Param,
                    reach.labels,
                    enabled,
                );
                reach.labels = reached;
                if let Some((d, s, e)) = result {
                    if s >= reach.covered {
                        found.context(d, s, e);
                    }
                }
                continue;
            }
            Kind::Url => {
                if start < reach.urls {
                    continue;
                }
                let (result, reached) = url::validate(bytes, start, body, reach.urls);
                reach.urls = reached;
                if let Some((s, e)) = result {
                    found.context(DetectorId::UrlCredentials, s, e);
                }
                continue;
            }
            Kind::Basic | Kind::Bearer => {
                if start < reach.auth || !boundary_before_word(bytes, start) {
                    continue;
                }
                let (result, reached) = http_auth::validate(bytes, body, kind == Kind::Basic);
                reach.auth = reached;
                if let Some((s, e)) = result {
                    found.context(DetectorId::HttpAuth, s, e);
                }
                continue;
            }
            _ => {}
        }
        let gitlab_instance_prefix =
            matches!(kind, Kind::Gitlab(_)) && instance_prefix_before(bytes, start);
        if kind != Kind::PrivateKey && !boundary_before(bytes, start) && !gitlab_instance_prefix {
            continue;
        }
        let end = match kind {
            Kind::Aws => tokens::aws(bytes, body),
            Kind::GithubClassic => tokens::github_classic(bytes, body),
            Kind::GithubPat => tokens::github_pat(bytes, body),
            Kind::Openai => tokens::openai(bytes, body, same_bytes(bytes, start, prefix)),
            Kind::Anthropic => tokens::anthropic(bytes, body),
            Kind::SlackToken => tokens::slack_token(bytes, body),
            Kind::SlackWebhook => tokens::slack_webhook(bytes, body),
            Kind::GoogleApi => tokens::google_api(bytes, body),
            Kind::Stripe => tokens::stripe(bytes, body),
            Kind::StripeWebhook => tokens::stripe_webhook(bytes, body),
            Kind::PrivateKey => private_key::validate(bytes, body),
            Kind::Jwt => jwt::validate(bytes, start),
            Kind::Gitlab(min) => tokens::gitlab(bytes, body, min),
            Kind::Npm => tokens::npm(bytes, body),
            Kind::Huggingface => tokens::huggingface(bytes, body),
            Kind::Sendgrid => tokens::sendgrid(bytes, body),
            Kind::Twilio => tokens::twilio(bytes, start),
            Kind::Shopify => tokens::hex_exact(bytes, body, 32),
            Kind::Digitalocean => tokens::hex_exact(bytes, body, 64),
            Kind::AwsSession => tokens::aws_session(bytes, body),
            Kind::Label | Kind::Param | Kind::Url | Kind::Basic | Kind::Bearer => None,
        };
        let Some(end) = end else {
            continue;
        };
        if kind == Kind::Aws {
            if enabled.contains(DetectorId::AwsSecretKey) {
                let near = aws::secret_near(bytes, start, end, reach.aws_window);
                reach.aws_window = near.reached;
                for (s, e) in near.before.into_iter().chain(near.after) {
                    if s >= reach.covered {
                        found.context(DetectorId::AwsSecretKey, s, e);
                    }
                }
            }
            if !enabled.contains(DetectorId::AwsAccessKey) {
                continue;
            }
        }
        let Some(&detector) = kind.detectors().first() else {
            continue;
        };
        found.token(detector, start, end);
        reach.covered = end;
    }
    found.finish();
}

/// Whether `prefix` is at `start` in this exact case. Prefixes are a few bytes: a plain loop,
/// not a `memcmp` call per automaton hit.
fn same_bytes(bytes: &[u8], start: usize, prefix: &str) -> bool {
    let p = prefix.as_bytes();
    bytes
        .get(start..start + p.len())
        .is_some_and(|s| s.iter().zip(p).all(|(a, b)| a == b))
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

/// Whether `start` follows a GitLab instance prefix (`SIE-glpat-…`): 1 to 8 alphanumerics and
/// `-`, at a boundary. Only then may a token byte precede a prefix: a prefix inside a token
/// scanned already stays rejected in O(1).
fn instance_prefix_before(bytes: &[u8], start: usize) -> bool {
    let Some(dash) = start.checked_sub(1) else {
        return false;
    };
    if bytes.get(dash) != Some(&b'-') {
        return false;
    }
    let mut i = dash;
    while i > 0 && dash - i < 9 && bytes.get(i - 1).is_some_and(u8::is_ascii_alphanumeric) {
        i -= 1;
    }
    (1..=8).contains(&(dash - i)) && boundary_before(bytes, i)
}

/// True when no word byte (`[A-Za-z0-9_]`) precedes `start`.
fn boundary_before_word(bytes: &[u8], start: usize) -> bool {
    match start.checked_sub(1) {
        None => true,
        Some(i) => !bytes.get(i).is_some_and(|&b| is_word_byte(b)),
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

    pub(crate) use crate::test_rng::{fake, ALNUM, B64, B64URL};
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

    fn all_but(d: DetectorId) -> DetectorSet {
        DetectorId::ALL
            .iter()
            .filter(|x| **x != d)
            .fold(DetectorSet::EMPTY, |s, x| s.with(*x))
    }

    fn run(text: &str, enabled: DetectorSet) -> Vec<(DetectorId, &str)> {
        crate::detect::test_support::found(text, |t, out| scan(t, enabled, out))
    }

    #[test]
    fn a_token_with_a_run_of_one_character_is_still_a_token() {
        // pii-leak-benchmark 0.6.0's fixture passed the filter as a "placeholder" (a run of
        // six zeros was enough); a body made mostly of one character still is one.
        let fixture = concat!("ghp_", "EXAMPLENOTAREALGITHUBTOKEN", "0000000000");
        assert_eq!(
            run(&format!("token: {fixture}"), all()),
            vec![(DetectorId::GithubToken, fixture)]
        );
        let docs = format!("ghp_{}", "0".repeat(36));
        assert!(run(&docs, all()).is_empty());
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

    /// The context anchors (labels, URLs, schemes, key-id windows) in floods: linear (the
    /// test would not finish otherwise), quiet, and a real secret after the flood is found.
    #[test]
    fn context_anchor_floods_stay_linear() {
        let n = 200 * 1024;
        let floods = [
            "password=".repeat(n / 9),
            "password".repeat(n / 8),
            "passpass_".repeat(n / 9),
            "token:".repeat(n / 6),
            "a_token_b_secret_c_".repeat(n / 19),
            "x".repeat(n) + "_password",
            format!("password={}", "a1".repeat(n / 2)),
            format!("password=\"{}", "a1".repeat(n / 2)),
            "\"password\": \"".repeat(n / 13),
            "<password>".repeat(n / 10),
            "basic ".repeat(n / 6),
            "Bearer ".repeat(n / 7),
            format!("Bearer {}", "a1".repeat(n / 2)),
            format!("Basic {}", "QUJD".repeat(n / 4)),
            "?sig=".repeat(n / 5),
            format!("?sig={}", "%2F".repeat(n / 3)),
            "&X-Amz-Signature=".repeat(n / 17),
            "SK".repeat(n / 2),
            "hf_".repeat(n / 3),
            "SG.".repeat(n / 3),
            "glpat-".repeat(n / 6),
            "IQoJb3JpZ2lu".repeat(n / 12),
            "AccountKey=".repeat(n / 11),
            "Authorization: ".repeat(n / 15),
            "AKIAIOSFODNN7EXAMPLE ".repeat(n / 21),
            format!("AKIAIOSFODNN7EXAMPLE {}", "aB3/".repeat(n / 4)),
        ];
        let key = format!("sk-proj-{}", fake(600, 60, B64URL));
        for text in &floods {
            let found = run(text, all());
            assert!(
                found
                    .iter()
                    .filter(|(d, _)| *d != DetectorId::AwsAccessKey)
                    .count()
                    <= 1,
                "{}",
                &text[..24]
            );
            let tail = format!("{text} {key} ");
            assert!(
                run(&tail, all()).contains(&(DetectorId::OpenaiKey, &key[..])),
                "{}",
                &text[..24]
            );
        }
    }

    /// A secret found by its context that a prefixed detector also finds is reported once,
    /// by the prefixed detector; with only the context detector enabled, by it.
    #[test]
    fn prefixed_detectors_supersede_context_ones() {
        let key = format!("sk-proj-{}", fake(601, 60, B64URL));
        for text in [
            format!("OPENAI_API_KEY={key}"),
            format!("\"api_key\": \"{key}\""),
            format!("Authorization: Bearer {key}"),
            format!("https://user:{key}@host/"),
        ] {
            assert_eq!(
                run(&text, all()),
                vec![(DetectorId::OpenaiKey, &key[..])],
                "{text}"
            );
            let context = run(&text, all_but(DetectorId::OpenaiKey));
            assert_eq!(context.len(), 1, "{text}");
            assert_eq!(context.first().map(|(_, v)| *v), Some(&key[..]), "{text}");
        }
        // A value longer than the token keeps its own finding (the token is only part of it).
        let text = format!("password=\"x{key}\"");
        let found = run(&text, all());
        assert!(
            found
                .iter()
                .any(|(d, _)| *d == DetectorId::SecretAssignment),
            "{found:?}"
        );
    }

    #[test]
    fn only_enabled_context_detectors_report() {
        let aws = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let text = format!("AKIAIOSFODNN7EXAMPLE {aws}\naws_secret_access_key={aws}");
        assert_eq!(
            run(&text, only(DetectorId::AwsSecretKey)),
            vec![
                (DetectorId::AwsSecretKey, aws),
                (DetectorId::AwsSecretKey, aws),
            ]
        );
        assert_eq!(
            run(&text, only(DetectorId::AwsAccessKey)),
            vec![(DetectorId::AwsAccessKey, "AKIAIOSFODNN7EXAMPLE"),]
        );
        let pw = "postgres://admin:Sup3rS3cret!@db/app password=hunter22 Authorization: Basic Ym9iOmh1bnRlcjI=";
        assert_eq!(
            run(pw, only(DetectorId::UrlCredentials)),
            vec![(DetectorId::UrlCredentials, "Sup3rS3cret!")]
        );
        assert_eq!(
            run(pw, only(DetectorId::SecretAssignment)),
            vec![(DetectorId::SecretAssignment, "hunter22")]
        );
        assert_eq!(
            run(pw, only(DetectorId::HttpAuth)),
            vec![(DetectorId::HttpAuth, "Ym9iOmh1bnRlcjI=")]
        );
        assert!(run(pw, only(DetectorId::Jwt)).is_empty());
    }

    /// Base64 data that is not a secret (inline images, MIME attachments wrapped at 76
    /// columns, hex digests, UUIDs, git object ids): random base64 holds every prefix and
    /// label keyword in some case, and none of it may be reported.
    #[test]
    fn base64_data_hashes_and_ids_are_not_secrets() {
        for seed in 0..8 {
            let blob = fake(700 + seed, 64 * 1024, B64);
            let image = format!("<img src=\"data:image/png;base64,{blob}==\">");
            assert!(
                run(&image, all()).is_empty(),
                "seed {seed}: {:?}",
                run(&image, all())
            );
            let wrapped: Vec<&str> = (0..blob.len())
                .step_by(76)
                .filter_map(|i| blob.get(i..(i + 76).min(blob.len())))
                .collect();
            let mime = format!(
                "Content-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
                wrapped.join("\r\n")
            );
            assert!(
                run(&mime, all()).is_empty(),
                "seed {seed}: {:?}",
                run(&mime, all())
            );
        }
        let hex = b"0123456789abcdef";
        let ids = format!(
            "sha256:{} sha1 {} md5={} commit {} object {}-{}-4{}-a{}-{} etag \"{}\"",
            fake(710, 64, hex),
            fake(711, 40, hex),
            fake(712, 32, hex),
            fake(713, 7, hex),
            fake(714, 8, hex),
            fake(715, 4, hex),
            fake(716, 3, hex),
            fake(717, 3, hex),
            fake(718, 12, hex),
            fake(719, 32, hex),
        );
        assert!(run(&ids, all()).is_empty(), "{ids}: {:?}", run(&ids, all()));
    }
}
