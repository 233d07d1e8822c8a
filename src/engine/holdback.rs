//! How much streamed output text must wait before it is released, so that an entity split
//! across events is seen whole before any of it reaches the client.
//!
//! Only what the policy's response rules can match is held, and only where it can still be
//! growing, so ordinary prose waits for about one word:
//! - token-shaped entities (email, IPv6, API keys, JWTs) never contain whitespace, so only the
//!   trailing run of non-whitespace text can still grow into one;
//! - cards, phones, SSNs and IPv4 addresses are digits and separators: the trailing run of
//!   such characters waits (at most [`NUMERIC_WINDOW`] bytes); IBANs are upper-case letters,
//!   digits and single spaces from a two-letter country code: from such a start;
//! - a PEM private key block waits from `-----BEGIN` until its `-----END ...-----` line;
//! - prompt-injection phrases ([`PROMPT_INJECTION_WINDOW`]), keyword terms and custom patterns
//!   (their longest match) can contain anything: the last that many bytes wait.
//!
//! Whatever the rules, no more than `cap` bytes wait: an entity longer than that (a JWT or a
//! key block beyond the cap) is released in part and the record counts the overflow.

use crate::detect::{DetectorId, DetectorSet};
use crate::llm::{stream, Phase};
use crate::policy::Policy;

/// Longest card, phone, SSN, IBAN (34 characters in groups) or IPv4 span, plus the two
/// characters after it the numeric validators look at.
pub const NUMERIC_WINDOW: usize = 64;
/// A trigger word plus the prompt-injection scanner's 160-byte look-ahead.
pub const PROMPT_INJECTION_WINDOW: usize = 200;
/// What starts a PEM block.
const PEM_BEGIN: &str = "-----BEGIN";
/// Room after a keyword or pattern match for the whole-word check (one UTF-8 character).
const BOUNDARY: usize = 4;

const TOKEN_DETECTORS: &[DetectorId] = &[
    DetectorId::Email,
    DetectorId::Ipv6,
    DetectorId::AwsAccessKey,
    DetectorId::GithubToken,
    DetectorId::OpenaiKey,
    DetectorId::AnthropicKey,
    DetectorId::SlackToken,
    DetectorId::GoogleApiKey,
    DetectorId::StripeKey,
    DetectorId::Jwt,
];

const NUMERIC_DETECTORS: &[DetectorId] = &[
    DetectorId::CreditCard,
    DetectorId::Phone,
    DetectorId::UsSsn,
    DetectorId::Ipv4,
];

/// The hold-back rule of a policy's response phase, computed once per policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holdback {
    /// Trailing bytes that always wait.
    window: usize,
    /// The trailing non-whitespace run waits.
    tokens: bool,
    /// The trailing run of digits and separators waits.
    numeric: bool,
    /// A trailing IBAN-shaped run waits.
    iban: bool,
    /// An unterminated PEM block waits.
    pem: bool,
    /// Most bytes that ever wait.
    cap: usize,
    /// Whether any response rule inspects streamed text at all.
    inspects: bool,
}

impl Holdback {
    /// The hold-back the response rules of `policy` need for streamed output text.
    pub fn for_policy(policy: &Policy, cap: usize) -> Holdback {
        let detectors: DetectorSet = policy.detectors_for(Phase::Response, stream::ROLE);
        let rules = policy
            .rules
            .iter()
            .filter(|r| r.applies_to(Phase::Response) && r.roles.contains(stream::ROLE));
        let mut window = 0;
        let mut keywords = false;
        let mut patterns = false;
        for rule in rules {
            keywords |= rule.has_keywords;
            for p in &rule.patterns {
                patterns = true;
                window = window.max(p.max_len() + BOUNDARY);
            }
        }
        if keywords {
            window = window.max(policy.keywords.max_term_len() + BOUNDARY);
        }
        let any = |set: &[DetectorId]| set.iter().any(|d| detectors.contains(*d));
        if detectors.contains(DetectorId::PromptInjection) {
            window = window.max(PROMPT_INJECTION_WINDOW);
        }
        Holdback {
            window: window.min(cap),
            tokens: any(TOKEN_DETECTORS),
            numeric: any(NUMERIC_DETECTORS),
            iban: detectors.contains(DetectorId::Iban),
            pem: detectors.contains(DetectorId::PrivateKey),
            cap,
            inspects: !detectors.is_empty() || keywords || patterns,
        }
    }

    /// Whether streamed text needs inspecting at all.
    pub fn inspects(&self) -> bool {
        self.inspects
    }

    /// Where the held tail of `text` starts: everything before may be released (a char
    /// boundary).
    pub fn release_point(&self, text: &str) -> usize {
        self.release_point_capped(text).0
    }

    /// [`Holdback::release_point`], and whether the cap (not the rules) decided it.
    pub fn release_point_capped(&self, text: &str) -> (usize, bool) {
        let len = text.len();
        let mut from = len.saturating_sub(self.window);
        if self.tokens {
            from = from.min(trailing_token_start(text, self.cap));
        }
        if self.numeric {
            // The run waits from where an entity could start: a digit, `+` or `(`.
            let run = trailing_run_start(text, NUMERIC_WINDOW, is_numeric_char);
            let start = text
                .get(run..)
                .and_then(|tail| tail.find(|c: char| c.is_ascii_digit() || c == '+' || c == '('))
                .map_or(text.len(), |i| run + i);
            from = from.min(start);
        }
        if self.iban {
            from = from.min(trailing_iban_start(text));
        }
        if self.pem {
            if let Some(begin) = open_pem_block(text) {
                from = from.min(begin);
            }
            from = from.min(partial_suffix_start(text, PEM_BEGIN));
        }
        let floor = len.saturating_sub(self.cap);
        // The token rule looks back at most `cap` bytes, so reaching the floor means the cap
        // decided (there is held text before it that the rules would still keep).
        (
            floor_boundary(text, from.max(floor)),
            floor > 0 && from <= floor,
        )
    }
}

/// Start of the trailing run of non-whitespace characters (looking back at most `cap` bytes).
fn trailing_token_start(text: &str, cap: usize) -> usize {
    let floor = floor_boundary(text, text.len().saturating_sub(cap));
    let tail = text.get(floor..).unwrap_or_default();
    match tail.char_indices().rev().find(|(_, c)| c.is_whitespace()) {
        Some((i, c)) => floor + i + c.len_utf8(),
        None => floor,
    }
}

/// Characters of digit entities: digits and the separators cards, phones, SSNs and IPv4 use
/// (and those their validators look at just after an entity).
fn is_numeric_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')' | '+' | '/' | ':' | ',')
}

/// Start of the trailing run of `member` characters (looking back at most `max` bytes);
/// the text's length when the last character is not one.
fn trailing_run_start(text: &str, max: usize, member: fn(char) -> bool) -> usize {
    let mut start = text.len();
    for (i, c) in text.char_indices().rev() {
        if !member(c) || text.len() - i > max {
            break;
        }
        start = i;
    }
    start
}

/// Start of a trailing run that can still become an IBAN: two upper-case letters, then
/// digits, upper-case letters and single spaces, started at a word boundary (a prefix of
/// that counts too: a trailing `D` or `DE` may be the country code arriving).
fn trailing_iban_start(text: &str) -> usize {
    let run = trailing_run_start(text, NUMERIC_WINDOW, |c| {
        c.is_ascii_uppercase() || c.is_ascii_digit() || c == ' '
    });
    let bytes = text.as_bytes();
    let mut i = run;
    while i < bytes.len() {
        let word_start = i == 0 || !bytes.get(i - 1).is_some_and(u8::is_ascii_alphanumeric);
        if word_start {
            let head: Vec<u8> = bytes.iter().skip(i).take(3).copied().collect();
            let could_be = match head.as_slice() {
                [a] => a.is_ascii_uppercase(),
                [a, b] => a.is_ascii_uppercase() && b.is_ascii_uppercase(),
                [a, b, c] => a.is_ascii_uppercase() && b.is_ascii_uppercase() && c.is_ascii_digit(),
                _ => false,
            };
            if could_be && (head.len() >= 3 || i + head.len() == bytes.len()) {
                return i;
            }
        }
        i += 1;
    }
    text.len()
}

/// Start of the longest suffix of `text` that is a proper prefix of `marker`.
fn partial_suffix_start(text: &str, marker: &str) -> usize {
    (1..marker.len())
        .rev()
        .find(|&n| text.ends_with(marker.get(..n).unwrap_or_default()))
        .map_or(text.len(), |n| text.len() - n)
}

/// Start of a `-----BEGIN` whose block has not ended yet.
fn open_pem_block(text: &str) -> Option<usize> {
    let begin = memchr::memmem::rfind(text.as_bytes(), b"-----BEGIN")?;
    let rest = text.get(begin..)?;
    let closed = memchr::memmem::find(rest.as_bytes(), b"-----END").is_some_and(|end| {
        rest.get(end + 8..)
            .is_some_and(|line| line.contains("-----"))
    });
    (!closed).then_some(begin)
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i.min(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn policy(detectors: &[&str]) -> Policy {
        let doc = serde_json::json!({
            "id": "p", "version": "1",
            "rules": [{"id": "r", "category": "c", "reason_code": "R", "action": "redact",
                       "match": {"detectors": detectors, "phase": "response"}}]
        });
        Policy::from_value(doc).unwrap()
    }

    #[test]
    fn no_response_rules_hold_nothing() {
        let doc = serde_json::json!({
            "id": "p", "version": "1",
            "rules": [{"id": "r", "category": "c", "reason_code": "R", "action": "redact",
                       "match": {"detectors": ["email"]}}]
        });
        let h = Holdback::for_policy(&Policy::from_value(doc).unwrap(), 8192);
        assert!(!h.inspects());
        assert_eq!(h.release_point("anything at all"), 15);
    }

    #[test]
    fn token_detectors_hold_only_the_last_word() {
        let h = Holdback::for_policy(&policy(&["email"]), 8192);
        assert!(h.inspects());
        assert_eq!(h.release_point("write to bob@exa"), "write to ".len());
        assert_eq!(h.release_point("write to bob@example.com "), 25);
        assert_eq!(h.release_point("no space"), 3);
        // Non-ASCII whitespace ends a word too.
        assert_eq!(h.release_point("a\u{3000}b"), "a\u{3000}".len());
    }

    #[test]
    fn numeric_detectors_hold_the_trailing_digit_run() {
        let h = Holdback::for_policy(&policy(&["credit_card", "phone"]), 8192);
        assert_eq!(h.release_point("plain prose only"), 16);
        assert_eq!(h.release_point("card 4111 11"), "card ".len());
        assert_eq!(h.release_point("call (415) 555-"), "call ".len());
        assert_eq!(h.release_point("one, two. "), 10);
        assert_eq!(h.release_point("dial +"), "dial ".len());
        assert_eq!(h.release_point("4111 1111 1111 1111 then"), 24);
        let long = "1 ".repeat(100);
        assert_eq!(h.release_point(&long), 200 - NUMERIC_WINDOW);
    }

    #[test]
    fn iban_holds_from_a_country_code() {
        let h = Holdback::for_policy(&policy(&["iban"]), 8192);
        assert_eq!(h.release_point("pay to DE89 3704 00"), "pay to ".len());
        assert_eq!(h.release_point("pay to D"), "pay to ".len());
        assert_eq!(h.release_point("pay to DE"), "pay to ".len());
        assert_eq!(h.release_point("GB82 WEST 12"), 0);
        assert_eq!(h.release_point("plain prose"), 11);
        assert_eq!(h.release_point("IBM is 12"), 9);
    }

    #[test]
    fn open_pem_block_waits_until_its_end_line() {
        let h = Holdback::for_policy(&policy(&["private_key"]), 8192);
        let head = "here: ".repeat(20);
        let open = format!(
            "{head}-----BEGIN RSA PRIVATE KEY-----\nMIIE{}",
            "A".repeat(100)
        );
        assert_eq!(h.release_point(&open), head.len());
        let half_end = format!("{open}\n-----END RSA PRIV");
        assert_eq!(h.release_point(&half_end), head.len());
        let closed = format!("{open}\n-----END RSA PRIVATE KEY-----\n{}", "z".repeat(60));
        assert_eq!(h.release_point(&closed), closed.len());
        assert_eq!(h.release_point("key: ---"), "key: ".len());
        assert_eq!(h.release_point("key: -----BEGI"), "key: ".len());
    }

    #[test]
    fn cap_bounds_every_rule_and_keeps_char_boundaries() {
        let h = Holdback::for_policy(&policy(&["jwt", "private_key"]), 16);
        let text = format!("-----BEGIN PRIVATE KEY-----{}", "é".repeat(40));
        let p = h.release_point(&text);
        assert!(text.is_char_boundary(p));
        assert!(text.len() - p <= 16);
    }
}
