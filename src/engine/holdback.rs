//! How much streamed output text must wait before it is released, so that an entity split
//! across events is seen whole before any of it reaches the client.
//!
//! Only what the policy's response rules can match is held, and only where it can still be
//! growing, so ordinary prose waits for about one word:
//! - token-shaped entities (email, IPv6, API keys, JWTs) never contain whitespace, so only the
//!   trailing run of non-whitespace text can still grow into one; secrets found by their
//!   context (a label's value, a URL's password, a `Basic`/`Bearer` credential, an AWS secret
//!   next to its key id) are token-shaped too: their context ends before the value, or is in
//!   the value's run (a URL), and the text released before the held run is still read, as
//!   the stream's context, when the run is judged;
//! - cards, phones, SSNs, IPv4 addresses and the digit-only national ids are digits and
//!   separators: the trailing run of such characters waits (at most [`NUMERIC_WINDOW`] bytes);
//! - IBANs, phone extensions and the national ids with letters (NINO, PAN, NIE, codice
//!   fiscale, a Corsican NIR) mix letters, digits and separators: the trailing run of such
//!   characters waits from the first word that could begin one (a word with a digit, an
//!   upper-case prefix, a last word still arriving) as long as every word after it could be
//!   part of one ([`trailing_alnum_start`]);
//! - a PEM private key block waits from `-----BEGIN` until its `-----END ...-----` line;
//! - prompt injection (the classifier's window, [`PROMPT_INJECTION_WINDOW`]), keyword terms and custom patterns
//!   (their longest match) can contain anything: the last that many bytes wait.
//!
//! Whatever the rules, no more than `cap` bytes wait: an entity longer than that (a JWT or a
//! key block beyond the cap) is released in part and the record counts the overflow. When the
//! cap decides, the text waiting drops to half the cap, so text that keeps reaching the cap is
//! judged once per half cap, not once per event.
//!
//! A stream asks again after every event; [`Progress`] remembers what was read of the text
//! (where its last whitespace ends, where an unterminated PEM block begins), so each call reads
//! only the bytes added since the last one plus a bounded window ([`NUMERIC_WINDOW`], the
//! length of a PEM marker): the cost of a text's hold-back is linear in its length.

use crate::detect::{secrets, DetectorId, DetectorSet};
use crate::llm::{stream, Phase};
use crate::policy::Policy;

/// Longest card, phone, SSN, IBAN (34 characters in groups) or IPv4 span, plus the two
/// characters after it the numeric validators look at, with room for the escapes and
/// invisible characters the decoder reads through (`4111%201111…`, `\u0034`).
pub const NUMERIC_WINDOW: usize = 128;
/// The prompt-injection classifier's window (two blocks of normalised text) with room for
/// text the normaliser shortens (whitespace runs, invisible characters), which also covers a
/// phrase rule's trigger word and its 160-byte look-ahead: streamed text is judged with at
/// least one whole window after it.
pub const PROMPT_INJECTION_WINDOW: usize = 4 * crate::detect::injection_model::BLOCK;
/// What starts a PEM block.
const PEM_BEGIN: &str = "-----BEGIN";
/// What starts its end line, and what ends that line.
const PEM_END: &str = "-----END";
const PEM_DASHES: &str = "-----";
/// Room after a keyword or pattern match for the whole-word check (one UTF-8 character).
const BOUNDARY: usize = 4;

/// Token-shaped entities besides the secrets: every secret detector but `private_key` is
/// token-shaped too ([`crate::detect::secrets::SECRET_DETECTORS`], so a new one is held without
/// a second list to keep in step).
const TOKEN_DETECTORS: &[DetectorId] = &[DetectorId::Email, DetectorId::Ipv6];

const NUMERIC_DETECTORS: &[DetectorId] = &[
    DetectorId::CreditCard,
    DetectorId::Phone,
    DetectorId::UsSsn,
    DetectorId::Ipv4,
    DetectorId::CaSin,
    DetectorId::InAadhaar,
    DetectorId::FrNir,
    DetectorId::DeTaxId,
    DetectorId::BrCpf,
    DetectorId::AuTfn,
    DetectorId::EsDniNie,
];

/// Detectors whose entities hold letters as well as digits.
const ALNUM_DETECTORS: &[DetectorId] = &[
    DetectorId::Iban,
    DetectorId::Phone,
    DetectorId::UkNino,
    DetectorId::InPan,
    DetectorId::FrNir,
    DetectorId::EsDniNie,
    DetectorId::ItFiscalCode,
];

/// Those of them whose entities may start with a digit (a phone and its extension, a NIR, a
/// DNI and its letter); the others start with letters.
const DIGIT_LED_ALNUM_DETECTORS: &[DetectorId] =
    &[DetectorId::Phone, DetectorId::FrNir, DetectorId::EsDniNie];

/// What [`Holdback::release_point_from`] has read of one text, in offsets of that text (a
/// channel's offsets: they keep counting when the front of the text is released).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Offset up to which the text was read.
    read: u64,
    /// Offset just after the last whitespace read.
    after_space: Option<u64>,
    /// Offset of the last `-----BEGIN` read.
    pem_begin: Option<u64>,
    /// Offset of the first `-----END` after it.
    pem_end: Option<u64>,
    /// A `-----` followed that `-----END`: the block has ended.
    pem_closed: bool,
}

/// The hold-back rule of a policy's response phase, computed once per policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holdback {
    /// Trailing bytes that always wait.
    window: usize,
    /// The trailing non-whitespace run waits.
    tokens: bool,
    /// The trailing run of digits and separators waits.
    numeric: bool,
    /// A trailing run of letters, digits and separators that could hold an entity waits.
    alnum: bool,
    /// ... including from a word that starts with a digit.
    alnum_digits: bool,
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
            tokens: any(TOKEN_DETECTORS)
                || secrets::SECRET_DETECTORS
                    .iter()
                    .any(|d| *d != DetectorId::PrivateKey && detectors.contains(*d)),
            numeric: any(NUMERIC_DETECTORS),
            alnum: any(ALNUM_DETECTORS),
            alnum_digits: any(DIGIT_LED_ALNUM_DETECTORS),
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
        self.release_point_from(text, 0, &mut Progress::default())
    }

    /// [`Holdback::release_point_capped`] of `text`, which starts at offset `offset` of a text
    /// that only grows at its end and loses its front; `progress` is what earlier calls read of
    /// it (a fresh one for a new text). Only the bytes added since the last call are read, plus
    /// a bounded window.
    pub fn release_point_from(
        &self,
        text: &str,
        offset: u64,
        progress: &mut Progress,
    ) -> (usize, bool) {
        let len = text.len();
        self.read(text, offset, progress);
        // An offset of the whole text as a position in `text` (0 when before it).
        let here = |at: u64| at.saturating_sub(offset).min(len as u64) as usize;
        let mut from = len.saturating_sub(self.window);
        if self.tokens {
            // The trailing run of non-whitespace, looking back at most `cap` bytes.
            let token = progress.after_space.map_or(0, here);
            from = from.min(token.max(len.saturating_sub(self.cap)));
        }
        if self.numeric {
            // The run waits from where an entity could start: a digit, `+` or `(`.
            let run = trailing_run_start(text, NUMERIC_WINDOW, is_numeric_char);
            let start = text
                .get(run..)
                .and_then(|tail| tail.find(starts_numeric))
                .map_or(text.len(), |i| run + i);
            from = from.min(start);
        }
        if self.alnum {
            from = from.min(trailing_alnum_start(text, self.alnum_digits));
        }
        if self.pem {
            // A block whose start already went out is no longer held (as for a fresh text).
            let open = progress
                .pem_begin
                .filter(|b| *b >= offset && !progress.pem_closed);
            if let Some(begin) = open {
                from = from.min(here(begin));
            }
            from = from.min(partial_suffix_start(text, PEM_BEGIN));
        }
        let floor = len.saturating_sub(self.cap);
        // The token rule looks back at most `cap` bytes, so reaching the floor means the cap
        // decided (there is held text before it that the rules would still keep); then half
        // the cap goes at once.
        if floor > 0 && from <= floor {
            let half = len.saturating_sub(self.cap / 2);
            (floor_boundary(text, half), true)
        } else {
            (floor_boundary(text, from), false)
        }
    }

    /// Reads what was added to the text since `progress.read`: whitespace, PEM markers.
    fn read(&self, text: &str, offset: u64, progress: &mut Progress) {
        let end = offset + text.len() as u64;
        if progress.read < offset || progress.read > end {
            // Not the text `progress` was reading: start over.
            *progress = Progress::default();
        }
        let new_from = progress.read.max(offset);
        let here = |at: u64| (at - offset) as usize;
        if self.tokens {
            // Appended text starts on a character boundary.
            let added = text.get(here(new_from)..).unwrap_or_default();
            if let Some((i, c)) = added.char_indices().rev().find(|(_, c)| c.is_whitespace()) {
                progress.after_space = Some(new_from + (i + c.len_utf8()) as u64);
            }
        }
        if self.pem {
            read_pem(text, offset, new_from, progress);
        }
        progress.read = end;
    }
}

/// Follows the PEM blocks of the bytes added from `new_from` (markers may straddle it): the
/// last `-----BEGIN`, the first `-----END` after it, and a `-----` after that, which ends the
/// block (the line of `-----END ...-----`).
fn read_pem(text: &str, offset: u64, new_from: u64, progress: &mut Progress) {
    let bytes = text.as_bytes();
    let at = |abs: u64| (abs.saturating_sub(offset) as usize).min(bytes.len());
    // A marker that ends in the new bytes starts at most its length - 1 before them.
    let look = |marker: &str, not_before: u64| {
        let from = at(new_from
            .saturating_sub(marker.len() as u64 - 1)
            .max(not_before));
        (from, bytes.get(from..).unwrap_or_default())
    };
    let (from, region) = look(PEM_BEGIN, offset);
    if let Some(i) = memchr::memmem::rfind(region, PEM_BEGIN.as_bytes()) {
        progress.pem_begin = Some(offset + (from + i) as u64);
        progress.pem_end = None;
        progress.pem_closed = false;
    }
    let Some(begin) = progress.pem_begin else {
        return;
    };
    if progress.pem_end.is_none() {
        let (from, region) = look(PEM_END, begin);
        if let Some(i) = memchr::memmem::find(region, PEM_END.as_bytes()) {
            progress.pem_end = Some(offset + (from + i) as u64);
        }
    }
    if let (Some(end), false) = (progress.pem_end, progress.pem_closed) {
        let after = end + PEM_END.len() as u64;
        let (_, region) = look(PEM_DASHES, after);
        progress.pem_closed = memchr::memmem::find(region, PEM_DASHES.as_bytes()).is_some();
    }
}

/// Characters of digit entities: digits and the separators cards, phones, SSNs and IPv4 use
/// (and those their validators look at just after an entity).
/// Also what the decoder reads as digits and separators ([`crate::detect::decode`]): any
/// character it folds (other scripts' and fullwidth digits, Unicode spaces and dashes,
/// invisible characters) and the characters of escapes (`%34`, `&#x34;`, `\u0034`).
fn is_numeric_char(c: char) -> bool {
    c.is_ascii_hexdigit()
        || matches!(
            c,
            ' ' | '-'
                | '.'
                | '('
                | ')'
                | '+'
                | '/'
                | ':'
                | ','
                | '%'
                | '&'
                | '#'
                | ';'
                | '\\'
                | 'u'
                | 'x'
        )
        || (!c.is_ascii() && crate::detect::decode::folds(c))
}

/// Where a digit entity can start: a digit (of any script), `+`, `(`, or an escape.
fn starts_numeric(c: char) -> bool {
    c.is_ascii_digit()
        || matches!(c, '+' | '(' | '%' | '&' | '\\')
        || (!c.is_ascii() && c.is_numeric())
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

/// Most words a [`NUMERIC_WINDOW`] run can hold.
const ALNUM_WORDS: usize = NUMERIC_WINDOW / 2 + 1;

/// One word of a trailing run: ASCII letters and digits.
#[derive(Clone, Copy)]
struct Word {
    start: usize,
    end: usize,
    digits: bool,
    upper: bool,
    lower: bool,
}

impl Word {
    fn len(self) -> usize {
        self.end - self.start
    }
}

/// Start of a trailing run of letters, digits and separators (at most [`NUMERIC_WINDOW`]
/// bytes) that can still grow into, or end, an entity with letters: from its first word that
/// can begin one (a word with a digit, when `digit_led` or it also has letters: `GB82`,
/// `ABCPE1234`, `X1234567`; one or two capitals before a number: `AB 12`, `X-1234567`; the
/// last word, still arriving: up to six capitals, or two letters) such that every word after
/// it can be part of one (a word with a digit, up to four capitals, up to four lower-case
/// letters after a lower-case IBAN's `gb82`, an extension's `x`/`ext` or the start of
/// `extension` at the end). The text's length when there is none.
fn trailing_alnum_start(text: &str, digit_led: bool) -> usize {
    let run = trailing_run_start(text, NUMERIC_WINDOW, |c| {
        c.is_ascii_alphanumeric() || is_numeric_char(c)
    });
    let bytes = text.as_bytes();
    let mut words: Vec<Word> = Vec::new();
    let mut i = run;
    while i < bytes.len() && words.len() < ALNUM_WORDS {
        let len = bytes
            .get(i..)
            .unwrap_or_default()
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric())
            .count();
        if len == 0 {
            i += 1;
            continue;
        }
        let w = bytes.get(i..i + len).unwrap_or_default();
        let letters = || w.iter().filter(|c| c.is_ascii_alphabetic());
        words.push(Word {
            start: i,
            end: i + len,
            digits: w.iter().any(u8::is_ascii_digit),
            upper: letters().all(u8::is_ascii_uppercase),
            lower: letters().all(u8::is_ascii_lowercase),
        });
        i += len;
    }
    let at_end = |w: Word| w.end == bytes.len();
    let lower_iban_head = |w: Word| {
        let b = bytes.get(w.start..w.end).unwrap_or_default();
        w.lower && b.len() >= 4 && b.iter().take(2).all(u8::is_ascii_alphabetic)
    };
    let part = |head: Word, w: Word| {
        let b = bytes.get(w.start..w.end).unwrap_or_default();
        let extension = b.eq_ignore_ascii_case(b"x")
            || b.eq_ignore_ascii_case(b"ext")
            || (at_end(w)
                && b"extension"
                    .get(..b.len())
                    .is_some_and(|e| e.eq_ignore_ascii_case(b)));
        w.digits
            || (w.upper && w.len() <= 4)
            || (w.lower && w.len() <= 4 && lower_iban_head(head))
            || extension
    };
    let begins = |k: usize, w: Word| {
        // A number follows after one separator, or may still (the text ends there).
        let number_next = w.end + 1 == bytes.len()
            || words.get(k + 1).is_some_and(|n| {
                n.start == w.end + 1 && bytes.get(n.start).is_some_and(u8::is_ascii_digit)
            });
        let letters_first = bytes.get(w.start).is_some_and(u8::is_ascii_alphabetic);
        (w.digits && (digit_led || letters_first))
            || (w.upper && !w.digits && w.len() <= 2 && number_next)
            || (at_end(w) && !w.digits && ((w.upper && w.len() <= 6) || w.len() <= 2))
    };
    let start = words
        .iter()
        .enumerate()
        .find(|&(k, &w)| begins(k, w) && words.iter().skip(k + 1).all(|&n| part(w, n)))
        .map_or(text.len(), |(_, w)| w.start);
    // A phone's `+` or `(` belongs to it.
    let lead = (1..=2)
        .take_while(|&k| {
            start
                .checked_sub(k)
                .and_then(|i| bytes.get(i))
                .is_some_and(|c| matches!(c, b'+' | b'('))
        })
        .count();
    start - lead
}

/// Start of the longest suffix of `text` that is a proper prefix of `marker`.
fn partial_suffix_start(text: &str, marker: &str) -> usize {
    (1..marker.len())
        .rev()
        .find(|&n| text.ends_with(marker.get(..n).unwrap_or_default()))
        .map_or(text.len(), |n| text.len() - n)
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

    /// Each secret detector found by context, alone in a policy, holds the run its value may
    /// still be growing in.
    #[test]
    fn context_secret_detectors_hold_the_last_word() {
        for (d, text, held) in [
            ("secret_assignment", "set password: hunt", "hunt"),
            (
                "url_credentials",
                "db is postgres://app:Sup3",
                "postgres://app:Sup3",
            ),
            ("http_auth", "Authorization: Bearer 9f8e7d", "9f8e7d"),
            (
                "aws_secret_key",
                "AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7",
                "wJalrXUtnFEMI/K7",
            ),
            ("aws_session_token", "token IQoJb3Jp", "IQoJb3Jp"),
            (
                "azure_storage_key",
                "x;AccountKey=Eby8vdM0",
                "x;AccountKey=Eby8vdM0",
            ),
            (
                "url_signature",
                "get https://h/k?X-Amz-Signature=aeee",
                "https://h/k?X-Amz-Signature=aeee",
            ),
            (
                "gcp_service_account",
                "\"private_key_id\": \"3f2b",
                "\"3f2b",
            ),
            (
                "mailgun_key",
                "MAILGUN_KEY=key-3f2b",
                "MAILGUN_KEY=key-3f2b",
            ),
            ("gitlab_token", "use glpat-abc", "glpat-abc"),
            ("npm_token", "use npm_abc", "npm_abc"),
            ("huggingface_token", "use hf_abc", "hf_abc"),
            ("sendgrid_key", "use SG.abc", "SG.abc"),
            ("twilio_key", "use SK0a1b", "SK0a1b"),
            ("shopify_token", "use shpat_0a1b", "shpat_0a1b"),
            ("digitalocean_token", "use dop_v1_0a1b", "dop_v1_0a1b"),
        ] {
            let h = Holdback::for_policy(&policy(&[d]), 8192);
            assert_eq!(h.release_point(text), text.len() - held.len(), "{d}");
        }
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
    fn ids_with_letters_hold_from_where_one_can_begin() {
        let h = Holdback::for_policy(&policy(&["uk_nino", "in_pan", "it_fiscal_code"]), 8192);
        assert_eq!(h.release_point("NI AB 12 3"), "NI ".len());
        assert_eq!(h.release_point("NI AB"), "NI ".len());
        assert_eq!(h.release_point("NI AB "), "NI ".len());
        assert_eq!(h.release_point("PAN ABCPE12"), "PAN ".len());
        assert_eq!(h.release_point("CF RSSMRA85T1"), "CF ".len());
        assert_eq!(h.release_point("CF rssmra85t1"), "CF ".len());
        // Prose goes: lower-case words, numbers that no letter-led id can begin with.
        assert_eq!(h.release_point("plain prose"), 11);
        assert_eq!(h.release_point("IBM is 12"), 9);
        assert_eq!(h.release_point("AB 12 ok then"), 13);
        let h = Holdback::for_policy(&policy(&["iban"]), 8192);
        assert_eq!(h.release_point("pay gb82 west 12"), "pay ".len());
        assert_eq!(h.release_point("pay gb"), "pay ".len());
        assert_eq!(h.release_point("pay GB82 WEST 1234 and more"), 27);
        let h = Holdback::for_policy(&policy(&["phone", "es_dni_nie", "fr_nir"]), 8192);
        assert_eq!(h.release_point("call 415-555-0100 ex"), "call ".len());
        assert_eq!(h.release_point("call 415-555-0100 x1"), "call ".len());
        assert_eq!(h.release_point("call +1-212-555-0147x"), "call ".len());
        assert_eq!(h.release_point("call (212) 555-0147 e"), "call ".len());
        assert_eq!(h.release_point("call 415-555-0100 and"), 21);
        assert_eq!(h.release_point("NIE X-12"), "NIE ".len());
        assert_eq!(h.release_point("DNI 12345678-"), "DNI ".len());
        assert_eq!(h.release_point("NIR 1 84 12 2A 45"), "NIR ".len());
        assert_eq!(h.release_point("2 of the doc"), 12);
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

    /// Asking after every piece of a growing text whose front goes out gives what asking once
    /// about the text as it stands gives: the incremental reading loses nothing.
    #[test]
    fn incremental_reading_matches_reading_the_whole_text() {
        let pieces = [
            "word ",
            "4111 ",
            "11",
            "-----BEGIN",
            " RSA PRIVATE KEY-----\nMIIE",
            "AAAA",
            "\n-----END RSA PRIV",
            "ATE KEY-----\n",
            "DE89 3704",
            "é",
            "\u{3000}",
            "-----BE",
            "GIN PRIVATE",
            " x",
            "bob@exa",
            "mple.com ",
            "+1 (415) ",
            "-",
            "--",
            "---END",
            "-----",
            "tail",
        ];
        let policy = policy(&["email", "credit_card", "iban", "private_key", "jwt"]);
        let mut seed = 7u64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as usize) % n
        };
        for cap in [16, 64, 8192] {
            let h = Holdback::for_policy(&policy, cap);
            for _ in 0..200 {
                let mut text = String::new();
                let mut offset = 0u64;
                let mut progress = Progress::default();
                for _ in 0..30 {
                    text.push_str(pieces[next(pieces.len())]);
                    let got = h.release_point_from(&text, offset, &mut progress);
                    assert_eq!(got, h.release_point_capped(&text), "{text:?} at {offset}");
                    if next(3) == 0 {
                        // The front goes out, as a stream releases it.
                        let cut = got.0;
                        text.drain(..cut);
                        offset += cut as u64;
                    }
                }
            }
        }
    }
}
