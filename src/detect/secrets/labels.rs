//! Secrets named by a label: `password=…`, `DB_PASSWORD: …`, `"client_secret": "…"`,
//! `aws_secret_access_key = …`, `AccountKey=…;`, `&sig=…`, `X-Amz-Signature=…`,
//! `Authorization: Token …`, `<password>…</password>`.
//!
//! A keyword found by the automaton (`password`, `secret`, `token`, `api_key`, …) is
//! widened to the identifier around it (`[A-Za-z0-9_.-]`, at most [`MAX_IDENT`] bytes),
//! which is split into words at `_`, `.`, `-` and camelCase humps. The words decide the
//! label's class ([`Class`]); a label whose last keyword is followed by a word that names
//! something else (`token_url`, `password_length`, `secret_name`) or preceded by one that
//! makes it a count or a cursor (`max_tokens`, `next_page_token`) is not a label, nor is a
//! plural (`tokens`, `passwords`).
//!
//! Then an assignment: an optional closing quote, `=`, `:`, `:=`, `=>`, `==`, `?=` (or the
//! `>` of `<password>`), an optional quote (also backslash-escaped, as in JSON text inside
//! a string), and the value: up to the closing quote, or for an unquoted value up to a
//! blank or a delimiter (`,;&)]}<>` and quotes). The value must fit its class:
//!
//! - passwords: at least 4 chars, no blank, not a placeholder; unquoted, not code (an
//!   identifier or dotted path of words: `password = user_input`) and with a digit or a
//!   symbol;
//! - other secrets (`secret`, `token`, `api_key`, `access_key`, `private_key`, `credential`,
//!   `auth`): at least 8 chars with a letter and a digit, no blank, not a placeholder, not a
//!   path or URL; unquoted, not code;
//! - provider labels take the provider's shape, and fall back to the class above when the
//!   value does not fit it: AWS secret access keys (40 chars, [`super::aws`]), AWS session
//!   and security tokens (base64, >= 100 chars), Azure `AccountKey`/`SharedAccessKey`
//!   (base64 of 32 or 64 bytes), a GCP service account's `private_key_id` (40 hex; the key
//!   block itself is `private_key`'s), Mailgun (`key-` + 32 hex or `32-8-8` hex);
//! - URL query signatures (after `?`, `&` or `;`): `X-Amz-Signature` (64 hex),
//!   `X-Goog-Signature` (hex), Azure SAS `sig` (base64 of 32 bytes, percent-encoded or not),
//!   `Signature` (SigV2, CloudFront: >= 27 base64 chars);
//! - `Authorization`: a credential after a scheme other than `Basic`/`Bearer` (those have
//!   their own anchors), with the bearer checks.
//!
//! The span is the value, inside its quotes.
//!
//! Linear: an identifier is not read back past the end of the previous label's scan, and
//! a label's scan (identifier, operator, value, all capped) ends where the next may start.

use super::shape::{
    contains_ci, eq_ci, has_digit, has_letter, is_code_reference, is_placeholder,
    is_placeholder_body,
};
use super::{aws, http_auth, tokens, DetectorId, DetectorSet};

/// The detectors a label can report.
pub(super) const DETECTORS: &[DetectorId] = &[
    DetectorId::MailgunKey,
    DetectorId::AwsSecretKey,
    DetectorId::AwsSessionToken,
    DetectorId::AzureStorageKey,
    DetectorId::GcpServiceAccount,
    DetectorId::UrlSignature,
    DetectorId::HttpAuth,
    DetectorId::SecretAssignment,
];

/// Longest identifier.
const MAX_IDENT: usize = 64;
/// Most words in an identifier.
const MAX_WORDS: usize = 12;
/// Longest value read (session tokens run to ~1,000 chars).
const MAX_VALUE: usize = 4096;
/// Shortest value any class accepts (a password).
const MIN_VALUE: usize = 4;
/// How far [`no_value`] looks.
const PEEK: usize = 64;
/// Longest password and generic secret value.
const MAX_SECRET: usize = 256;
/// Most blanks around an operator.
const MAX_BLANKS: usize = 8;

/// What a label names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Password,
    Secret,
    AwsSecret,
    AwsSession,
    Azure,
    GcpKeyId,
    Mailgun,
    Authorization,
    /// A URL query signature: `X-Amz-Signature`, `X-Goog-Signature`, `sig`, `Signature`.
    Signature(Sig),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sig {
    Amz,
    Goog,
    Sas,
    Other,
}

/// `[A-Za-z0-9_.-]`.
fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// The words of an identifier: at most [`MAX_WORDS`] byte ranges, trailing digits dropped
/// (`password2`), each with its length and lower-cased first byte so that most comparisons
/// against a table word end after one check (every keyword hit compares against dozens).
struct Words<'a> {
    ident: &'a [u8],
    spans: [(usize, usize); MAX_WORDS],
    heads: [(usize, u8); MAX_WORDS],
    len: usize,
}

impl<'a> Words<'a> {
    /// Splits at `_`, `.`, `-` and camelCase humps (`dbPassword`, `APIKey`); `None` when
    /// there are too many words.
    fn split(ident: &'a [u8]) -> Option<Words<'a>> {
        let mut w = Words {
            ident,
            spans: [(0, 0); MAX_WORDS],
            heads: [(0, 0); MAX_WORDS],
            len: 0,
        };
        let mut start = None;
        for (i, &b) in ident.iter().enumerate() {
            if !b.is_ascii_alphanumeric() {
                if let Some(s) = start.take() {
                    w.push(s, i)?;
                }
                continue;
            }
            let prev = i.checked_sub(1).and_then(|p| ident.get(p)).copied();
            let next = ident.get(i + 1).copied();
            let hump = b.is_ascii_uppercase()
                && prev.is_some_and(|p| {
                    p.is_ascii_lowercase()
                        || p.is_ascii_digit()
                        || (p.is_ascii_uppercase() && next.is_some_and(|n| n.is_ascii_lowercase()))
                });
            match start {
                Some(s) if hump => {
                    w.push(s, i)?;
                    start = Some(i);
                }
                Some(_) => {}
                None => start = Some(i),
            }
        }
        if let Some(s) = start {
            w.push(s, ident.len())?;
        }
        Some(w)
    }

    fn push(&mut self, s: usize, e: usize) -> Option<()> {
        let w = self.ident.get(s..e)?;
        let digits = w.iter().rev().take_while(|b| b.is_ascii_digit()).count();
        let e = e - digits;
        let head = (e - s, self.ident.get(s).map_or(0, u8::to_ascii_lowercase));
        *self.spans.get_mut(self.len)? = (s, e);
        *self.heads.get_mut(self.len)? = head;
        self.len += 1;
        Some(())
    }

    /// Word `i`, trailing digits dropped.
    fn word(&self, i: usize) -> &'a [u8] {
        let Some(&(s, e)) = self.spans.get(i) else {
            return &[];
        };
        self.ident.get(s..e).unwrap_or_default()
    }

    fn is(&self, i: usize, lower: &[u8]) -> bool {
        self.heads.get(i) == Some(&(lower.len(), lower.first().copied().unwrap_or(0)))
            && eq_ci(self.word(i), lower)
    }

    /// Whether the words from `i` are `seq`.
    fn seq(&self, i: usize, seq: &[&[u8]]) -> bool {
        seq.iter()
            .enumerate()
            .all(|(k, w)| i + k < self.len && self.is(i + k, w))
    }

    fn has(&self, lower: &[u8]) -> bool {
        (0..self.len).any(|i| self.is(i, lower))
    }

    fn has_seq(&self, seq: &[&[u8]]) -> bool {
        (0..self.len).any(|i| self.seq(i, seq))
    }
}

/// Keyword word sequences; the first are password words.
const PASSWORD_KEYWORDS: &[&[&[u8]]] = &[
    &[b"password"],
    &[b"passwd"],
    &[b"passphrase"],
    &[b"pwd"],
    &[b"pass"],
];
const SECRET_KEYWORDS: &[&[&[u8]]] = &[
    &[b"secret"],
    &[b"token"],
    &[b"apikey"],
    &[b"api", b"key"],
    &[b"accesskey"],
    &[b"access", b"key"],
    &[b"privatekey"],
    &[b"private", b"key"],
    &[b"accountkey"],
    &[b"account", b"key"],
    &[b"storagekey"],
    &[b"storage", b"key"],
    &[b"credential"],
    &[b"credentials"],
    &[b"auth"],
];

/// Words that may follow the last keyword (`secret_key`, `password_hash`, `token_value`).
const ALLOWED_AFTER: &[&[u8]] = &[
    b"key",
    b"value",
    b"val",
    b"text",
    b"plain",
    b"plaintext",
    b"raw",
    b"b64",
    b"base64",
    b"base",
    b"encoded",
    b"hash",
    b"hex",
    b"str",
    b"literal",
    b"confirm",
    b"confirmation",
];

/// Words that, just before the first keyword, make it a count, a cursor or a tokenizer
/// setting rather than a secret.
const DENIED_BEFORE: &[&[u8]] = &[
    b"max",
    b"min",
    b"num",
    b"total",
    b"input",
    b"output",
    b"prompt",
    b"completion",
    b"reasoning",
    b"cached",
    b"page",
    b"next",
    b"prev",
    b"previous",
    b"continuation",
    b"cursor",
    b"pagination",
    b"bos",
    b"eos",
    b"pad",
    b"unk",
    b"sep",
    b"cls",
    b"mask",
    b"special",
    b"stop",
    b"start",
    b"end",
    b"is",
    b"has",
    b"show",
    b"hide",
    b"use",
    b"enable",
    b"disable",
    b"require",
    b"requires",
    b"forgot",
    b"no",
    b"public",
    b"csrf",
    b"xsrf",
];

/// Finds keyword sequences in `words`: (first start index, last end index) if any.
fn keyword_bounds(words: &Words<'_>, table: &[&[&[u8]]]) -> Option<(usize, usize)> {
    let mut first = None;
    let mut last = None;
    for i in 0..words.len {
        let Some(&(len, first_byte)) = words.heads.get(i) else {
            continue;
        };
        for seq in table {
            // The first word's length and first byte rule out most entries in one check.
            if !seq
                .first()
                .is_some_and(|w| w.len() == len && w.first() == Some(&first_byte))
            {
                continue;
            }
            // `pass` alone is a verdict (`"pass": "PASSED"`); `db_pass`, `SMTP_PASS` are
            // passwords.
            if words.seq(i, seq) && !(i == 0 && seq == &[b"pass".as_slice()]) {
                first.get_or_insert(i);
                last = Some(last.map_or(i + seq.len(), |l: usize| l.max(i + seq.len())));
            }
        }
    }
    first.zip(last)
}

/// The class of a label's identifier, if it is one.
fn classify(words: &Words<'_>, param: bool) -> Option<Class> {
    let n = words.len;
    if param {
        return match n {
            1 if words.is(0, b"sig") => Some(Class::Signature(Sig::Sas)),
            1 if words.is(0, b"signature") => Some(Class::Signature(Sig::Other)),
            3 if words.seq(0, &[b"x", b"amz", b"signature"]) => Some(Class::Signature(Sig::Amz)),
            3 if words.seq(0, &[b"x", b"goog", b"signature"]) => Some(Class::Signature(Sig::Goog)),
            _ => None,
        };
    }
    if words.has_seq(&[b"authorization"]) && words.is(n.checked_sub(1)?, b"authorization") {
        return Some(Class::Authorization);
    }
    let password = keyword_bounds(words, PASSWORD_KEYWORDS);
    let secret = keyword_bounds(words, SECRET_KEYWORDS);
    let mailgun = words.has(b"mailgun");
    let (first, last) = match (password, secret) {
        (Some(p), Some(s)) => (p.0.min(s.0), p.1.max(s.1)),
        (Some(b), None) | (None, Some(b)) => b,
        (None, None) if mailgun => (n, n),
        (None, None) => return None,
    };
    // `private_key_id` names the key; the suffix rule would refuse it.
    if words.has_seq(&[b"private", b"key", b"id"]) || words.has(b"privatekeyid") {
        return Some(Class::GcpKeyId);
    }
    if (last..n).any(|i| !ALLOWED_AFTER.iter().any(|w| words.is(i, w))) {
        return None;
    }
    if first > 0 && DENIED_BEFORE.iter().any(|w| words.is(first - 1, w)) {
        return None;
    }
    // A keyword alone as the last word, but only `auth` exactly (not `oauth`).
    Some(if mailgun {
        Class::Mailgun
    } else if words.has_seq(&[b"session", b"token"])
        || words.has_seq(&[b"security", b"token"])
        || words.has(b"sessiontoken")
        || words.has(b"securitytoken")
    {
        Class::AwsSession
    } else if words.has_seq(&[b"secret", b"access", b"key"])
        || words.has(b"secretaccesskey")
        || (words.has(b"aws") && words.has(b"secret"))
    {
        Class::AwsSecret
    } else if words.has_seq(&[b"account", b"key"])
        || words.has(b"accountkey")
        || words.has_seq(&[b"shared", b"access", b"key"])
        || words.has(b"sharedaccesskey")
        || words.has_seq(&[b"storage", b"key"])
        || words.has(b"storagekey")
    {
        Class::Azure
    } else if password.is_some_and(|p| secret.is_none_or(|s| p.1 >= s.1)) {
        Class::Password
    } else {
        Class::Secret
    })
}

/// `kw_start..kw_end` is the keyword the automaton found (with its `=` for a query
/// parameter); nothing before `floor` is read. Returns the finding, if any, and where the
/// scan stopped.
pub(super) fn validate(
    bytes: &[u8],
    kw_start: usize,
    kw_end: usize,
    param: bool,
    floor: usize,
    enabled: DetectorSet,
) -> (Option<(DetectorId, usize, usize)>, usize) {
    // A query parameter's keyword ends with its `=`.
    let kw_end = if param { kw_end - 1 } else { kw_end };
    let mut start = kw_start;
    while start > floor && kw_start - start <= MAX_IDENT {
        match bytes.get(start - 1) {
            Some(&b) if is_ident_byte(b) => start -= 1,
            _ => break,
        }
    }
    let end = super::run_end_capped(bytes, kw_end, MAX_IDENT + 1, is_ident_byte);
    let reached = end;
    let cut_short = start
        .checked_sub(1)
        .and_then(|i| bytes.get(i))
        .is_some_and(|&b| is_ident_byte(b));
    if end - start > MAX_IDENT || cut_short {
        return (None, reached);
    }
    // A trailing `.` or `-` is punctuation (`the password.`), not part of the name.
    let mut name_end = end;
    while name_end > kw_end && matches!(bytes.get(name_end - 1), Some(b'.' | b'-')) {
        name_end -= 1;
    }
    let Some(ident) = bytes.get(start..name_end) else {
        return (None, reached);
    };
    let Some(op) = operator(bytes, start, name_end) else {
        return (None, reached);
    };
    let Some(words) = Words::split(ident) else {
        return (None, reached);
    };
    let authorization = words
        .len
        .checked_sub(1)
        .is_some_and(|last| words.is(last, b"authorization"));
    if !param && !authorization && no_value(bytes, op) {
        return (None, reached);
    }
    let Some(class) = classify(&words, param) else {
        return (None, reached);
    };
    if let Class::Signature(_) = class {
        let query = start
            .checked_sub(1)
            .and_then(|i| bytes.get(i))
            .is_some_and(|b| matches!(b, b'?' | b'&' | b';'));
        if !query || bytes.get(name_end) != Some(&b'=') {
            return (None, reached);
        }
    }
    let Some(value) = assignment(bytes, op, class) else {
        return (None, reached);
    };
    let reached = reached.max(value.scanned);
    let found = judge(bytes, &value, class, enabled);
    (found.map(|d| (d, value.start, value.end)), reached)
}

/// Whether the unquoted value after `op` is, within [`PEEK`] bytes, a call, an index or a
/// tuple (`get_token(user)`, `env['KEY']`, `auth=(user, pw)`) or shorter than any class
/// accepts (`token=abc`): most keyword hits in code, rejected before the label is
/// classified. [`assignment`] rejects the same values for every class of a plain label (a
/// query signature, only in a query, and `Authorization` read their values otherwise);
/// quoted values are left to it.
fn no_value(bytes: &[u8], op: Operator) -> bool {
    let Operator::Assign(pos) = op else {
        return false;
    };
    let pos = skip_blanks(bytes, pos);
    if quote_at(bytes, pos).is_some() {
        return false;
    }
    let end = super::run_end_capped(bytes, pos, PEEK, |b| !is_value_stop(b));
    end - pos < PEEK
        && (matches!(bytes.get(end), Some(b'(' | b'[' | b'{')) || end - pos < MIN_VALUE)
}

/// Where an unquoted value ends.
fn is_value_stop(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'"' | b'\''
                | b'`'
                | b','
                | b';'
                | b'&'
                | b')'
                | b']'
                | b'}'
                | b'<'
                | b'>'
                | b'\\'
                | b'('
                | b'['
                | b'{'
        )
}

/// A value after an operator.
struct Value {
    start: usize,
    end: usize,
    quoted: bool,
    /// Where reading stopped (past a closing quote).
    scanned: usize,
}

/// Backslashes (an escaped quote in JSON text) then a quote at `pos`: (quote, its end).
fn quote_at(bytes: &[u8], pos: usize) -> Option<(u8, usize, usize)> {
    let slashes = super::run_end_capped(bytes, pos, 4, |b| b == b'\\') - pos;
    match bytes.get(pos + slashes) {
        Some(&q @ (b'"' | b'\'' | b'`')) => Some((q, slashes, pos + slashes + 1)),
        _ => None,
    }
}

fn skip_blanks(bytes: &[u8], pos: usize) -> usize {
    super::run_end_capped(bytes, pos, MAX_BLANKS, |b| b == b' ' || b == b'\t')
}

/// Where an operator after the identifier `start..end` leaves off.
#[derive(Debug, Clone, Copy)]
enum Operator {
    /// `<password>`: the value runs to the next `<`.
    Xml(usize),
    /// `=`, `:` & co: the value starts after blanks.
    Assign(usize),
}

/// The operator after the identifier `start..end`, if any: checked before the identifier is
/// classified, since most keywords in prose are followed by none.
fn operator(bytes: &[u8], start: usize, end: usize) -> Option<Operator> {
    let mut pos = end;
    let xml = start.checked_sub(1).and_then(|i| bytes.get(i)) == Some(&b'<')
        && bytes.get(end) == Some(&b'>');
    if xml {
        return Some(Operator::Xml(pos + 1));
    }
    // The closing quote of a quoted key (`"password": …`).
    if let Some((q, _, after)) = quote_at(bytes, pos) {
        let opened = (1..=5)
            .filter_map(|k| start.checked_sub(k))
            .filter_map(|i| bytes.get(i))
            .take_while(|&&b| b == q || b == b'\\')
            .any(|&b| b == q);
        if !opened {
            return None;
        }
        pos = after;
    }
    pos = skip_blanks(bytes, pos);
    let after = match (bytes.get(pos), bytes.get(pos + 1), bytes.get(pos + 2)) {
        (Some(b'='), Some(b'='), Some(b'=')) => pos + 3,
        (Some(b'='), Some(b'=' | b'>'), _) => pos + 2,
        (Some(b':'), Some(b'='), _) => pos + 2,
        (Some(b'?'), Some(b'='), _) => pos + 2,
        (Some(b':'), Some(b':'), _) => return None,
        (Some(b'=' | b':'), _, _) => pos + 1,
        _ => return None,
    };
    Some(Operator::Assign(after))
}

/// The value after `op`, read as `class` wants it.
fn assignment(bytes: &[u8], op: Operator, class: Class) -> Option<Value> {
    let mut pos = match op {
        Operator::Xml(pos) => {
            let stop =
                super::run_end_capped(bytes, pos, MAX_SECRET + 1, |b| b != b'<' && b != b'\n');
            return (bytes.get(stop) == Some(&b'<')).then_some(Value {
                start: pos,
                end: stop,
                quoted: true,
                scanned: stop,
            });
        }
        Operator::Assign(pos) => pos,
    };
    if matches!(class, Class::Signature(_)) {
        // `name=value` exactly.
        let value_end = query_value_end(bytes, pos);
        return Some(Value {
            start: pos,
            end: value_end,
            quoted: false,
            scanned: value_end,
        });
    }
    pos = skip_blanks(bytes, pos);
    if class == Class::Authorization {
        return authorization_value(bytes, pos);
    }
    if let Some((q, slashes, after)) = quote_at(bytes, pos) {
        let mut i = after;
        let cap = after + MAX_VALUE;
        while i < cap {
            match bytes.get(i) {
                None | Some(b'\n' | b'\r') => return None,
                Some(&b) if b == q => {
                    let escape =
                        super::run_end_capped(bytes, i.saturating_sub(slashes), slashes, |c| {
                            c == b'\\'
                        });
                    let value_end = i - slashes;
                    if escape == i && value_end >= after {
                        return Some(Value {
                            start: after,
                            end: value_end,
                            quoted: true,
                            scanned: i + 1,
                        });
                    }
                    i += 1;
                }
                Some(_) => i += 1,
            }
        }
        return None;
    }
    let value_end = super::run_end_capped(bytes, pos, MAX_VALUE + 1, |b| !is_value_stop(b));
    // A call or an index (`get_password()`, `env["X"]`) is code.
    if matches!(bytes.get(value_end), Some(b'(' | b'[' | b'{')) {
        return None;
    }
    // A sentence's full stop is not part of the value.
    let mut end = value_end;
    while end > pos && bytes.get(end - 1) == Some(&b'.') {
        end -= 1;
    }
    Some(Value {
        start: pos,
        end,
        quoted: false,
        scanned: value_end,
    })
}

/// `Authorization: <scheme> <credential>` or `Authorization: <credential>`; `Basic` and
/// `Bearer` are left to their own anchors.
fn authorization_value(bytes: &[u8], pos: usize) -> Option<Value> {
    let pos = match quote_at(bytes, pos) {
        Some((_, _, after)) => after,
        None => pos,
    };
    let word_end =
        super::run_end_capped(bytes, pos, 21, |b| b.is_ascii_alphanumeric() || b == b'-');
    let word = bytes.get(pos..word_end)?;
    let start = if bytes.get(word_end) == Some(&b' ') && word.len() <= 20 {
        if eq_ci(word, b"basic") || eq_ci(word, b"bearer") {
            return None;
        }
        word_end + 1
    } else {
        pos
    };
    let end = http_auth::token_end(bytes, start).ok()?;
    Some(Value {
        start,
        end,
        quoted: true,
        scanned: end,
    })
}

/// The detector that reports `value` under a label of `class`, if the value fits.
fn judge(bytes: &[u8], value: &Value, class: Class, enabled: DetectorSet) -> Option<DetectorId> {
    let v = bytes.get(value.start..value.end)?;
    if v.is_empty() || v.len() > MAX_VALUE {
        return None;
    }
    let on = |d: DetectorId| enabled.contains(d).then_some(d);
    let specific = match class {
        Class::Password | Class::Secret => None,
        Class::AwsSecret => aws::is_secret_shape(v).then_some(DetectorId::AwsSecretKey),
        Class::AwsSession => is_session_token(v).then_some(DetectorId::AwsSessionToken),
        Class::Azure => is_azure_key(v).then_some(DetectorId::AzureStorageKey),
        Class::GcpKeyId => {
            return (v.len() == 40
                && v.iter()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)))
            .then_some(DetectorId::GcpServiceAccount)
            .and_then(on);
        }
        Class::Mailgun => is_mailgun_key(v).then_some(DetectorId::MailgunKey),
        Class::Authorization => return on(DetectorId::HttpAuth),
        Class::Signature(sig) => {
            return is_signature(v, sig)
                .then_some(DetectorId::UrlSignature)
                .and_then(on);
        }
    };
    if let Some(d) = specific.and_then(on) {
        return Some(d);
    }
    let password = class == Class::Password;
    let fits = if password {
        is_password(v, value.quoted)
    } else {
        is_secret_value(v, value.quoted)
    };
    fits.then_some(DetectorId::SecretAssignment).and_then(on)
}

fn is_password(v: &[u8], quoted: bool) -> bool {
    v.len() >= 4
        && v.len() <= MAX_SECRET
        && !v.iter().any(u8::is_ascii_whitespace)
        && !is_placeholder(v)
        && (quoted
            || (!is_code_reference(v)
                && (has_digit(v) || v.iter().any(|b| !b.is_ascii_alphanumeric() && *b != b'_'))))
}

/// `2024-01-15…`, `2024/01/15`, `v1.2.3`, `1.2.3-beta4`: dates, times and versions.
fn is_date_or_version(v: &[u8]) -> bool {
    let date = v.len() >= 10
        && v.iter().take(4).all(u8::is_ascii_digit)
        && matches!(v.get(4), Some(b'-' | b'/' | b'.'))
        && v.get(5..7)
            .is_some_and(|m| m.iter().all(u8::is_ascii_digit));
    let version = v.strip_prefix(b"v").or(v.strip_prefix(b"V")).unwrap_or(v);
    let dotted = version.first().is_some_and(u8::is_ascii_digit)
        && version
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b'.')
            .filter(|b| **b == b'.')
            .count()
            >= 2;
    date || dotted
}

fn is_secret_value(v: &[u8], quoted: bool) -> bool {
    v.len() >= 8
        && !is_date_or_version(v)
        && v.len() <= MAX_VALUE
        && !v.iter().any(u8::is_ascii_whitespace)
        && has_digit(v)
        && has_letter(v)
        && !is_placeholder(v)
        && !is_placeholder_body(v)
        && !(v.starts_with(b"/") || contains_ci(v, b"://"))
        && (quoted || !is_code_reference(v))
}

/// Base64 (possibly `%XX`-escaped), at least 100 chars: an STS session token.
fn is_session_token(v: &[u8]) -> bool {
    v.len() >= 100 && tokens::base64_or_escaped_end(v, 0) == v.len()
}

/// Base64 of a 32-byte (`SharedAccessKey`) or 64-byte (`AccountKey`) key, padded.
fn is_azure_key(v: &[u8]) -> bool {
    let body = v
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'+' || **b == b'/')
        .count();
    let pad = v.len() - body;
    let ok_len = (v.len() == 44 && pad == 1) || (v.len() == 88 && pad == 2);
    ok_len
        && v.get(body..).is_some_and(|p| p.iter().all(|b| *b == b'='))
        && has_digit(v)
        && !is_placeholder_body(v)
}

fn is_lower_hex(s: &[u8]) -> bool {
    s.iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// `key-` + 32 hex (private API keys), or 32-8-8 hex (newer keys, webhook signing keys).
fn is_mailgun_key(v: &[u8]) -> bool {
    if let Some(hex) = v.strip_prefix(b"key-") {
        return hex.len() == 32 && is_lower_hex(hex);
    }
    let mut parts = v.split(|b| *b == b'-');
    let lens = [32, 8, 8];
    lens.iter().all(|&n| {
        parts
            .next()
            .is_some_and(|p| p.len() == n && is_lower_hex(p))
    }) && parts.next().is_none()
}

/// A query signature value of the given parameter.
fn is_signature(v: &[u8], sig: Sig) -> bool {
    match sig {
        Sig::Amz => v.len() == 64 && is_lower_hex(v),
        Sig::Goog => v.len() >= 64 && v.len() % 2 == 0 && is_lower_hex(v),
        Sig::Sas => {
            // Base64 of an HMAC-SHA256: 43 chars and `=`, the `=` often as `%3D`.
            let decoded = decoded_len(v);
            decoded == 44 && (v.ends_with(b"=") || v.ends_with(b"%3D") || v.ends_with(b"%3d"))
        }
        Sig::Other => decoded_len(v) >= 27 && has_digit(v) && has_letter(v),
    }
}

/// End of a query parameter value: base64 and base64url chars, `~`, `.`, `%XX` escapes.
fn query_value_end(bytes: &[u8], mut pos: usize) -> usize {
    let cap = pos + MAX_VALUE;
    while pos < cap {
        match bytes.get(pos) {
            Some(&b)
                if b.is_ascii_alphanumeric()
                    || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-' | b'~' | b'.') =>
            {
                pos += 1
            }
            Some(b'%')
                if bytes
                    .get(pos + 1..pos + 3)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
            {
                pos += 3
            }
            _ => break,
        }
    }
    pos
}

/// Length of `v` with each `%XX` escape counted as one char.
fn decoded_len(v: &[u8]) -> usize {
    v.len()
        .saturating_sub(2 * v.iter().filter(|b| **b == b'%').count())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn words(s: &str) -> Vec<String> {
        let w = Words::split(s.as_bytes()).unwrap();
        (0..w.len)
            .map(|i| {
                let (a, b) = w.spans[i];
                s[a..b].to_string()
            })
            .collect()
    }

    #[test]
    fn identifiers_split_into_words() {
        assert_eq!(words("DB_PASSWORD"), ["DB", "PASSWORD"]);
        assert_eq!(words("dbPassword"), ["db", "Password"]);
        assert_eq!(words("APIKey"), ["API", "Key"]);
        assert_eq!(words("x-api-key"), ["x", "api", "key"]);
        assert_eq!(
            words("spring.datasource.password"),
            ["spring", "datasource", "password"]
        );
        assert_eq!(
            words("aws_secret_access_key"),
            ["aws", "secret", "access", "key"]
        );
        assert_eq!(words("SecretAccessKey"), ["Secret", "Access", "Key"]);
        // Trailing digits are not part of the word compared (`password2` is a password).
        assert_eq!(words("password2"), ["password"]);
        assert_eq!(words("db2_pass"), ["db", "pass"]);
        assert!(Words::split(b"a_b_c_d_e_f_g_h_i_j_k_l_m").is_none());
    }

    fn class(s: &str) -> Option<Class> {
        classify(&Words::split(s.as_bytes()).unwrap(), false)
    }

    #[test]
    fn label_classes() {
        for s in [
            "password",
            "DB_PASSWORD",
            "dbPassword",
            "spring.datasource.password",
            "Pwd",
            "db_pass",
            "passphrase",
            "new_password",
            "password_confirmation",
            "PASSWORD2",
        ] {
            assert_eq!(class(s), Some(Class::Password), "{s}");
        }
        for s in [
            "client_secret",
            "SECRET_KEY",
            "secret_key_base",
            "api_key",
            "x-api-key",
            "apiKey",
            "access_token",
            "refresh_token",
            "auth_token",
            "GITHUB_TOKEN",
            "token",
            "auth",
            "credentials",
            "private_key",
            "accessKey",
        ] {
            assert_eq!(class(s), Some(Class::Secret), "{s}");
        }
        assert_eq!(class("aws_secret_access_key"), Some(Class::AwsSecret));
        assert_eq!(class("SecretAccessKey"), Some(Class::AwsSecret));
        assert_eq!(class("AWS_SECRET_KEY"), Some(Class::AwsSecret));
        assert_eq!(class("aws_session_token"), Some(Class::AwsSession));
        assert_eq!(class("X-Amz-Security-Token"), Some(Class::AwsSession));
        assert_eq!(class("AccountKey"), Some(Class::Azure));
        assert_eq!(class("SharedAccessKey"), Some(Class::Azure));
        assert_eq!(class("AZURE_STORAGE_KEY"), Some(Class::Azure));
        assert_eq!(class("private_key_id"), Some(Class::GcpKeyId));
        assert_eq!(class("MAILGUN_API_KEY"), Some(Class::Mailgun));
        assert_eq!(class("Authorization"), Some(Class::Authorization));
        for s in [
            "max_tokens",
            "tokens",
            "passwords",
            "token_url",
            "password_length",
            "secret_name",
            "next_page_token",
            "prompt_tokens",
            "tokenizer",
            "pad_token",
            "passport",
            "compass",
            "author",
            "oauth",
            "secretary",
            "token_type",
            "secret_id",
            "aws_access_key_id",
            "password_reset",
            "keyword",
            "is_secret",
            "public_token",
            "bypass",
        ] {
            assert_eq!(class(s), None, "{s}");
        }
    }

    fn all(text: &str) -> Vec<(DetectorId, &str)> {
        crate::detect::test_support::found(text, |t, out| {
            super::super::scan(t, DetectorSet::all(), out)
        })
    }

    fn secret(text: &str) -> Vec<&str> {
        all(text)
            .into_iter()
            .inspect(|(d, _)| assert_eq!(*d, DetectorId::SecretAssignment, "{text}"))
            .map(|(_, v)| v)
            .collect()
    }

    #[test]
    fn passwords_in_every_syntax() {
        for (text, value) in [
            ("password=Sup3rS3cret!", "Sup3rS3cret!"),
            ("DB_PASSWORD=hunter2\n", "hunter2"),
            (
                "export MYSQL_ROOT_PASSWORD='c0rrect-h0rse'",
                "c0rrect-h0rse",
            ),
            ("password: hunter2", "hunter2"),
            ("  db_pass: \"Tr0ub4dor&3\"", "Tr0ub4dor&3"),
            (r#"{"password": "letmein", "user": "bob"}"#, "letmein"),
            (r#"{"password":"p@ss w"}"#, ""),
            ("spring.datasource.password=s3cr3tPw", "s3cr3tPw"),
            (
                "Server=db;Database=app;User Id=sa;Password=Pa55word!;",
                "Pa55word!",
            ),
            ("Driver={ODBC};Uid=app;Pwd=Zx9!kq2;", "Zx9!kq2"),
            (
                "jdbc:mysql://db/app?user=app&password=Qw3rty99&ssl=true",
                "Qw3rty99",
            ),
            ("mysql --user=root --password=R00tpw", "R00tpw"),
            ("'password' => 'kE9$mQ2'", "kE9$mQ2"),
            ("Password: \"hunter22\",", "hunter22"),
            ("dbPassword := \"gH7#pLq\"", "gH7#pLq"),
            ("<password>x9Kq!2mw</password>", "x9Kq!2mw"),
            (r#"{\"password\":\"Esc4ped!\"}"#, "Esc4ped!"),
            ("if password == \"opensesame\":", "opensesame"),
            ("the password=hunter2.", "hunter2"),
            ("PASSWORD2=Sup3r!", "Sup3r!"),
        ] {
            let want: Vec<&str> = if value.is_empty() {
                vec![]
            } else {
                vec![value]
            };
            assert_eq!(secret(text), want, "{text}");
        }
    }

    #[test]
    fn secrets_and_tokens_by_label() {
        let key = "7Fjfp0ZBr1KtDRbnfVdmIw";
        for text in [
            format!("client_secret={key}"),
            format!("\"client_secret\": \"{key}\""),
            format!("SECRET_KEY = '{key}'"),
            format!("api_key: {key}"),
            format!("x-api-key: {key}\r\n"),
            format!("apiKey: \"{key}\""),
            format!("\"access_token\":\"{key}\""),
            format!("refresh_token={key}&grant_type=refresh_token"),
            format!("TWILIO_AUTH_TOKEN={key}"),
            format!("credentials: {key}"),
            format!("\"auth\": \"{key}\""),
            format!("secret_key_base: {key}"),
            format!("app.secret = \"{key}\""),
        ] {
            assert_eq!(secret(&text), vec![key], "{text}");
        }
        // RFC 6749's examples have a real token's shape: found.
        assert_eq!(
            secret(
                r#"{"access_token":"2YotnFZFEjr1zCsicMWpAA","token_type":"example","expires_in":3600,"refresh_token":"tGzv3JOkF0XG5Qx2TlKWIA"}"#
            ),
            vec!["2YotnFZFEjr1zCsicMWpAA", "tGzv3JOkF0XG5Qx2TlKWIA"]
        );
        // A label's value that a prefixed detector knows is reported by that detector.
        let gh = format!(
            "ghp_{}",
            crate::detect::secrets::test_support::fake(
                300,
                36,
                crate::detect::secrets::test_support::ALNUM
            )
        );
        assert_eq!(
            all(&format!("GITHUB_TOKEN={gh}")),
            vec![(DetectorId::GithubToken, &gh[..])]
        );
        assert_eq!(
            all(&format!("\"token\": \"{gh}\"")),
            vec![(DetectorId::GithubToken, &gh[..])]
        );
    }

    /// Placeholders, references, code, counts and prose: nothing.
    #[test]
    fn label_hard_negatives() {
        for text in [
            "password=<your-password>",
            "password: ${DB_PASSWORD}",
            "password: {{ vault_db_password }}",
            "PASSWORD=$DB_PASS",
            "password=%DB_PASS%",
            "password: ********",
            "password = \"\"",
            "password: null",
            "password=changeme",
            "POSTGRES_PASSWORD: example",
            "POSTGRES_PASSWORD=mysecretpassword",
            "POSTGRES_PASSWORD: postgres",
            "password = user_input",
            "password = self.password",
            "password = getpass.getpass()",
            "password = input(\"Password: \")",
            "password = os.environ[\"DB_PASSWORD\"]",
            "const apiKey = process.env.API_KEY;",
            "SECRET_KEY = os.environ.get('SECRET_KEY')",
            "token: ${{ secrets.GITHUB_TOKEN }}",
            "print(f\"Your password: {password}\")",
            "log.info(\"token: %s\", tok)",
            "WHERE password = ? AND user = ?",
            "password: /^(?=.*[A-Z]).{8,}$/",
            "<input type=\"password\" name=\"password\">",
            "<label for=\"password\">Password:</label>",
            "password_length: 12345678",
            "password_reset_url: https://example.com/reset",
            "secret_name: db-credentials-2024",
            "secretName: prod-db-creds-v2",
            "token_type: bearer",
            "token_url=https://oauth2.googleapis.com/token",
            "max_tokens: 4096",
            "\"max_tokens\": 1024, \"prompt_tokens\": 12, \"completion_tokens\": 7",
            "tokens: 123456789012",
            "next_page_token: CiAKGjBpNDd2Nmp2Zml2cXRwYjBpOXA",
            "pad_token: \"<pad>\", eos_token = \"</s>\"",
            "\"pass\": \"PASSED\"",
            "aws_access_key_id = AKIA",
            "secret: the answer is 42",
            "Password: must be at least 8 characters",
            "Your password: it should contain a digit",
            "secret plan: mail jane.doe@example.com now",
            "token: 2024-01-15T10:30:00Z",
            "api_version: v1.2.3-beta4",
            "token: v2.10.4-rc1",
            "secret: 48.8566,2.3522",
            "secret: $19.99",
            "kind: Secret",
            "secretKeyRef: {name: db, key: password}",
            "variable \"db_password\" { sensitive = true }",
            "passport: X1234567",
            "compass=N45",
            "author: Jane42",
            "request_id: 123e4567-e89b-12d3-a456-426614174000",
            "commit: 9fceb02d0ae598e95dc970b74767f19372d61af8",
            "authorization: required",
            "Authorization: Bearer ${TOKEN}",
            "Authorization: Basic <credentials>",
        ] {
            assert!(all(text).is_empty(), "{text}: {:?}", all(text));
        }
    }

    #[test]
    fn provider_labels() {
        use crate::detect::secrets::test_support::{fake, B64};
        let aws = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        for text in [
            format!("aws_secret_access_key = {aws}"),
            format!("AWS_SECRET_ACCESS_KEY={aws}"),
            format!("\"SecretAccessKey\": \"{aws}\","),
            format!("secret_access_key: {aws}"),
        ] {
            assert_eq!(all(&text), vec![(DetectorId::AwsSecretKey, aws)], "{text}");
        }
        let session = format!("IQoJb3JpZ2luX2VjEJr{}", fake(310, 400, B64));
        let text = format!("aws_session_token = {session}");
        assert_eq!(
            all(&text),
            vec![(DetectorId::AwsSessionToken, &session[..])]
        );
        let opaque = fake(311, 300, B64);
        let text = format!("X-Amz-Security-Token: {opaque}");
        assert_eq!(all(&text), vec![(DetectorId::AwsSessionToken, &opaque[..])]);

        // Azure storage: Azurite's published development key has a real key's shape.
        let azurite = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
        let conn = format!("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={azurite};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;");
        assert_eq!(all(&conn), vec![(DetectorId::AzureStorageKey, azurite)]);
        let sb = format!("{}=", fake(312, 43, B64));
        let conn = format!("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={sb}");
        assert_eq!(all(&conn), vec![(DetectorId::AzureStorageKey, &sb[..])]);
        let text = format!("AZURE_STORAGE_KEY=\"{azurite}\"");
        assert_eq!(all(&text), vec![(DetectorId::AzureStorageKey, azurite)]);
        // Docs placeholders are not keys.
        for text in [
            "DefaultEndpointsProtocol=https;AccountName=myaccount;AccountKey=<account-key>;EndpointSuffix=core.windows.net",
            "AccountKey=myAccountKey;",
            "SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=<key>",
        ] {
            assert!(all(text).is_empty(), "{text}");
        }

        // A GCP service account file: the key id here, the key block by `private_key`.
        let sa = r#"{"type": "service_account", "project_id": "p", "private_key_id": "3f2b1c9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a", "client_email": "x@p.iam.gserviceaccount.com"}"#;
        assert_eq!(
            all(sa),
            vec![(
                DetectorId::GcpServiceAccount,
                "3f2b1c9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a"
            )]
        );

        let mg = format!("key-{}", fake(316, 32, b"0123456789abcdef"));
        let text = format!("MAILGUN_API_KEY={mg}");
        assert_eq!(all(&text), vec![(DetectorId::MailgunKey, &mg[..])]);
        let signing = format!(
            "{}-{}-{}",
            fake(313, 32, b"0123456789abcdef"),
            fake(314, 8, b"0123456789abcdef"),
            fake(315, 8, b"0123456789abcdef")
        );
        let text = format!("mailgun_signing_key: \"{signing}\"");
        assert_eq!(all(&text), vec![(DetectorId::MailgunKey, &signing[..])]);
    }

    #[test]
    fn url_signatures() {
        // AWS's SigV4 query-string example (its documented example key id is found too).
        let s3 = "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
        assert_eq!(
            all(s3),
            vec![
                (DetectorId::AwsAccessKey, "AKIAIOSFODNN7EXAMPLE"),
                (
                    DetectorId::UrlSignature,
                    "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
                ),
            ]
        );
        // A session token in a presigned URL.
        let tok = format!("IQoJb3JpZ2luX2VjE{}", "Ab%2F9".repeat(40));
        let url = format!("https://b.s3.amazonaws.com/k?X-Amz-Security-Token={tok}&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
        let got = all(&url);
        assert!(
            got.contains(&(DetectorId::AwsSessionToken, &tok[..])),
            "{got:?}"
        );
        assert_eq!(got.len(), 2);
        // Azure's SAS example.
        let sas = "https://myaccount.blob.core.windows.net/sascontainer/sasblob.txt?sv=2019-02-02&st=2019-04-29T22%3A18%3A26Z&se=2019-04-30T02%3A23%3A26Z&sr=b&sp=rw&sip=168.1.5.60-168.1.5.70&spr=https&sig=Z%2FRHIX5Xcg0Mq2rqI3OlWTjEg2tYkboXr1P9ZUXDtkk%3D";
        assert_eq!(
            all(sas),
            vec![(
                DetectorId::UrlSignature,
                "Z%2FRHIX5Xcg0Mq2rqI3OlWTjEg2tYkboXr1P9ZUXDtkk%3D"
            )]
        );
        // GCS V4 and CloudFront.
        let goog = format!("https://storage.googleapis.com/b/o?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Signature={}", "0a1b2c3d".repeat(64));
        assert_eq!(all(&goog).len(), 1);
        let cf = "https://d111111abcdef8.cloudfront.net/image.jpg?Expires=1700000000&Signature=Nql641NHEUkUaXQHZINK1FZ~SYeUSoBJMxjdgqrzIdzV2gyEXPDNv0pYdWJkflDKJ3xIu7lbwRpSkG98NBlgPi4ZJpRRnVX4kXAJK6tdNx6FucDB7OVqzcxkxHsGFd8VCG1BkC-Afh9~lOCMIYHIaiOB6~5jt9w2EOwi6sIIqrg_&Key-Pair-Id=K2JCJMDEHXQW5F";
        assert_eq!(all(cf).len(), 1, "{:?}", all(cf));
        // Not signatures: the parameter outside a query, short values, placeholders.
        for text in [
            "The X-Amz-Signature=abc is computed over the canonical request.",
            "?sig=abc&x=1",
            "?sig=<signature>",
            "the signature=valid",
            "?Signature=short",
            "&X-Amz-Signature=<computed-signature>",
        ] {
            assert!(all(text).is_empty(), "{text}");
        }
    }
}
