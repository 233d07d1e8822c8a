//! Reversible pseudonymisation: the request's values become tokens the model can reason about
//! (`[EMAIL_1]`, `[EMAIL_2]`: the same value is the same token everywhere in the request), and
//! the tokens the model writes back are restored in the response, so the model never sees a
//! value and the client still gets it.
//!
//! The [`Vault`] belongs to one exchange: the request fills it, the response reads it, it is
//! dropped with the exchange. It is never serialised and its `Debug` prints counts only.
//! It is bounded (entries and bytes); a value past the bound is redacted one way (the plain
//! placeholder) and counted as `overflow`.
//!
//! Tokens (`redact.token`):
//! - `placeholder` (default): `[EMAIL_1]`, `[CREDIT_CARD_2]`, `[REDACTED_1]` for keywords and
//!   patterns, numbered per kind in order of first appearance;
//! - `fake`: a value of the same shape: e-mail addresses become `user1@example.invalid`,
//!   values with at least four digits keep their separators and letters' positions with the
//!   digits replaced by the token's number (`4111 1111 1111 1111` → `0000 0000 0000 0001`),
//!   letters by `x`/`X`; other values get the placeholder.
//!
//! Collision rule: a token is never a text that occurs anywhere in the request (so never one
//! of its real values, nor text the client wrote, such as a literal `[EMAIL_1]`) and never
//! another token of the exchange; a number whose token collides is skipped. In a response, a
//! fake is only a token where it stands alone (no letter or digit on either side).
//!
//! Restoring ([`Vault::find`]) matches every token of the vault in one pass (leftmost-longest);
//! a stream holds back the longest end of its text that could still become a token
//! ([`Vault::pending`]), so a token split across events is restored exactly.

use std::collections::BTreeMap;

use crate::detect::automaton::{Automaton, MatchKind};

use super::hits::Source;
use crate::policy::document::PseudonymToken;

/// The rule index of a restored token among a stream's findings (no rule of the policy).
pub(super) const RESTORE_RULE: usize = usize::MAX;

/// Bounds of one exchange's vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaultLimits {
    /// Distinct values held.
    pub max_entries: usize,
    /// Bytes of values and tokens held.
    pub max_bytes: usize,
}

impl Default for VaultLimits {
    fn default() -> Self {
        VaultLimits {
            max_entries: 256,
            max_bytes: 32 << 10,
        }
    }
}

/// How a rule pseudonymises: the token's shape, and whether the response restores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PseudonymOptions {
    pub token: PseudonymToken,
    pub restore: bool,
}

/// Counts for the record: never values, never tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PseudonymCounts {
    /// Spans of the request replaced by a token, by detector.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pseudonymised: BTreeMap<String, u32>,
    /// Tokens of the response given back as their values, by detector.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub restored: BTreeMap<String, u32>,
    /// Values redacted one way because the vault was full, by detector.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub overflow: BTreeMap<String, u32>,
}

impl PseudonymCounts {
    pub fn is_empty(&self) -> bool {
        self.pseudonymised.is_empty() && self.restored.is_empty() && self.overflow.is_empty()
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &PseudonymCounts) {
        for (mine, theirs) in [
            (&mut self.pseudonymised, &other.pseudonymised),
            (&mut self.restored, &other.restored),
            (&mut self.overflow, &other.overflow),
        ] {
            for (k, v) in theirs {
                *mine.entry(k.clone()).or_insert(0) += v;
            }
        }
    }
}

struct Entry {
    source: Source,
    value: String,
    token: String,
    restore: bool,
    fake: bool,
}

/// A token of the vault found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found {
    pub(super) start: usize,
    pub(super) end: usize,
    /// What the span becomes: the value, or the token itself when the rule keeps it.
    pub(super) replacement: String,
    pub(super) source: Source,
}

/// Whether `start..end` lies inside one of `found` (sorted, non-overlapping).
pub(super) fn covers(found: &[Found], start: usize, end: usize) -> bool {
    let i = found.partition_point(|f| f.end < end);
    found
        .get(i)
        .is_some_and(|f| f.start <= start && end <= f.end)
}

/// One exchange's values and their tokens.
#[derive(Default)]
pub struct Vault {
    limits: VaultLimits,
    entries: Vec<Entry>,
    /// Index of `entries` by (kind, value).
    by_value: BTreeMap<(Source, String), usize>,
    /// Next number per token label.
    next: BTreeMap<&'static str, u32>,
    bytes: usize,
    counts: PseudonymCounts,
    /// Every token, built once the request is done ([`Vault::seal`]).
    matcher: Option<Automaton>,
    /// Entry indices in token order, built with the matcher (prefix look-ups).
    sorted: Vec<usize>,
    longest: usize,
}

impl std::fmt::Debug for Vault {
    /// Counts only: a vault's values must never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("entries", &self.entries.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

/// The label of a kind's tokens: `EMAIL` from `[EMAIL]`.
fn label(source: Source) -> &'static str {
    let p = source.placeholder();
    p.strip_prefix('[')
        .and_then(|p| p.strip_suffix(']'))
        .unwrap_or(p)
}

/// The fake of shape `value` numbered `n`, when the kind has fakes.
fn fake(source: Source, value: &str, n: u32) -> Option<String> {
    if source == Source::Detector(crate::detect::DetectorId::Email) {
        return Some(format!("user{n}@example.invalid"));
    }
    let digits = value.chars().filter(char::is_ascii_digit).count();
    if digits < 4 {
        return None;
    }
    // The number's digits, right-aligned in the value's digit positions.
    let number = format!("{n:0>digits$}");
    let mut number = number.chars().skip(number.len().saturating_sub(digits));
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        out.push(match c {
            '0'..='9' => number.next().unwrap_or('0'),
            c if c.is_ascii_uppercase() => 'X',
            c if c.is_ascii_lowercase() => 'x',
            c => c,
        });
    }
    Some(out)
}

fn is_word(c: Option<char>) -> bool {
    c.is_some_and(char::is_alphanumeric)
}

/// Most numbers tried for one token before the value is redacted one way instead.
const MAX_TRIES: u32 = 64;

impl Vault {
    pub fn new(limits: VaultLimits) -> Vault {
        Vault {
            limits,
            ..Vault::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether any token is given back in the response.
    pub fn restores(&self) -> bool {
        !self.entries.is_empty()
    }

    /// Forgets every value (the request was not forwarded as pseudonymised).
    pub fn clear(&mut self) {
        *self = Vault::new(self.limits);
    }

    /// What the request's pseudonymisation counted (`pseudonymised`, `overflow`).
    pub fn counts(&self) -> &PseudonymCounts {
        &self.counts
    }

    /// The token of `value` of kind `source`, made on first sight: a new number unless the
    /// vault holds the value already. `request` is every text of the request (the collision
    /// rule). None when the vault is full or no collision-free token was found: the caller
    /// redacts one way.
    pub(super) fn token_for(
        &mut self,
        source: Source,
        value: &str,
        options: PseudonymOptions,
        request: &[&str],
    ) -> Option<&str> {
        let key = (source, value.to_string());
        if let Some(&i) = self.by_value.get(&key) {
            *self
                .counts
                .pseudonymised
                .entry(source.name().into())
                .or_insert(0) += 1;
            return self.entries.get(i).map(|e| e.token.as_str());
        }
        let made = self.make(source, value, options, request);
        let Some((token, fake)) = made else {
            *self
                .counts
                .overflow
                .entry(source.name().into())
                .or_insert(0) += 1;
            return None;
        };
        self.bytes += value.len() + token.len();
        self.longest = self.longest.max(token.len());
        self.by_value.insert(key, self.entries.len());
        self.entries.push(Entry {
            source,
            value: value.to_string(),
            token,
            restore: options.restore,
            fake,
        });
        self.matcher = None;
        *self
            .counts
            .pseudonymised
            .entry(source.name().into())
            .or_insert(0) += 1;
        self.entries.last().map(|e| e.token.as_str())
    }

    /// The token of `value` of kind `source`, when the vault holds it.
    pub(super) fn token_of(&self, source: Source, value: &str) -> Option<&str> {
        let i = *self.by_value.get(&(source, value.to_string()))?;
        self.entries.get(i).map(|e| e.token.as_str())
    }

    /// A new token for `value`, within the bounds and the collision rule.
    fn make(
        &mut self,
        source: Source,
        value: &str,
        options: PseudonymOptions,
        request: &[&str],
    ) -> Option<(String, bool)> {
        if self.entries.len() >= self.limits.max_entries {
            return None;
        }
        let label = label(source);
        let counter = self.next.entry(label).or_insert(1);
        for _ in 0..MAX_TRIES {
            let n = *counter;
            *counter = counter.saturating_add(1);
            let (token, is_fake) = match options.token {
                PseudonymToken::Fake => match fake(source, value, n) {
                    Some(f) => (f, true),
                    None => (format!("[{label}_{n}]"), false),
                },
                PseudonymToken::Placeholder => (format!("[{label}_{n}]"), false),
            };
            if self.bytes + value.len() + token.len() > self.limits.max_bytes {
                return None;
            }
            let taken = self.entries.iter().any(|e| e.token == token)
                || request.iter().any(|t| t.contains(token.as_str()));
            if !taken {
                return Some((token, is_fake));
            }
        }
        None
    }

    /// What the token `token` becomes in a response: its value, or itself when kept.
    pub(super) fn replacement(&self, token: &str) -> Option<&str> {
        let e = self.entries.iter().find(|e| e.token == token)?;
        Some(if e.restore { &e.value } else { &e.token })
    }

    /// Builds the matcher over every token: call once the request is done.
    pub fn seal(&mut self) {
        if self.entries.is_empty() {
            self.matcher = None;
            return;
        }
        let mut sorted: Vec<usize> = (0..self.entries.len()).collect();
        crate::sort::sort_by(&mut sorted, &|&a, &b| self.token(a).cmp(self.token(b)));
        self.sorted = sorted;
        let tokens = self.entries.iter().map(|e| e.token.as_str());
        // Cannot fail: tokens are never empty, and `VaultLimits::max_bytes` (32 KiB of values
        // and tokens) keeps the trie under 32 Ki states, ~0.4 MiB even in the sparse form,
        // far below `automaton::MAX_HEAP_BYTES` (16 MiB). Raising that limit past ~1 MiB of
        // tokens would make `.ok()` drop restoration: keep it far below
        // (`tests::a_full_vault_still_builds_its_matcher`).
        self.matcher = Automaton::new(tokens, MatchKind::LeftmostLongest, false).ok();
    }

    /// The vault's tokens in `text`, in order, non-overlapping; each with what it becomes.
    pub(super) fn find(&self, text: &str) -> Vec<Found> {
        self.find_after(text, None)
    }

    /// [`Vault::find`] in a text that follows the character `before`.
    pub(super) fn find_after(&self, text: &str, before: Option<char>) -> Vec<Found> {
        let Some(m) = &self.matcher else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for hit in m.find_iter(text.as_bytes()) {
            let Some(e) = self.entries.get(hit.pattern) else {
                continue;
            };
            if e.fake {
                let before = match text.get(..hit.start).and_then(|t| t.chars().next_back()) {
                    None => before,
                    c => c,
                };
                let after = text.get(hit.end..).and_then(|t| t.chars().next());
                if is_word(before) || is_word(after) {
                    continue;
                }
            }
            out.push(Found {
                start: hit.start,
                end: hit.end,
                replacement: if e.restore {
                    e.value.clone()
                } else {
                    e.token.clone()
                },
                source: e.source,
            });
        }
        out
    }

    /// How many bytes at the end of `text` could still become a token (or, for a fake, be
    /// one that the next character could still make no token): they wait for more text.
    pub(super) fn pending(&self, text: &str) -> usize {
        // From the earliest start that could be a token's (the longest wait) on.
        let from = text.len().saturating_sub(self.longest);
        for (p, _) in text.char_indices().filter(|(p, _)| *p >= from) {
            let Some(end) = text.get(p..) else {
                continue;
            };
            // The tokens starting with `end` are together in token order.
            let first = self.sorted.partition_point(|&i| self.token(i) < end);
            let waits = self
                .sorted
                .get(first..)
                .unwrap_or_default()
                .iter()
                .filter_map(|&i| self.entries.get(i))
                .take_while(|e| e.token.starts_with(end))
                .any(|e| e.fake || e.token.len() > end.len());
            if waits {
                return text.len() - p;
            }
        }
        0
    }

    fn token(&self, i: usize) -> &str {
        self.entries.get(i).map_or("", |e| e.token.as_str())
    }

    /// Text with every token restored (what a whole body gets), and the counts by kind.
    pub fn restore(&self, text: &str) -> (String, BTreeMap<String, u32>) {
        self.restore_after(text, None)
    }

    fn restore_after(&self, text: &str, before: Option<char>) -> (String, BTreeMap<String, u32>) {
        let mut out = String::with_capacity(text.len());
        let mut counts = BTreeMap::new();
        let mut pos = 0;
        for f in self.find_after(text, before) {
            out.push_str(text.get(pos..f.start).unwrap_or_default());
            out.push_str(&f.replacement);
            *counts.entry(f.source.name().to_string()).or_insert(0) += 1;
            pos = f.end;
        }
        out.push_str(text.get(pos..).unwrap_or_default());
        (out, counts)
    }
}

/// Restores a text that arrives in pieces, holding back what could still become a token: the
/// concatenation of what [`Restorer::push`] and [`Restorer::finish`] return is what
/// [`Vault::restore`] gives for the whole text.
pub struct Restorer<'v> {
    vault: &'v Vault,
    held: String,
    /// The last character released: a fake is a token only where it stands alone.
    before: Option<char>,
}

impl<'v> Restorer<'v> {
    pub fn new(vault: &'v Vault) -> Restorer<'v> {
        Restorer {
            vault,
            held: String::new(),
            before: None,
        }
    }

    /// Takes the next piece; returns the text that may go now.
    pub fn push(&mut self, piece: &str) -> String {
        self.held.push_str(piece);
        let found = self.vault.find_after(&self.held, self.before);
        let mut cut = self.held.len() - self.vault.pending(&self.held);
        // Never cut through a token found in what is held.
        for f in &found {
            if f.start < cut && cut < f.end {
                cut = f.start;
            }
        }
        let mut out = String::with_capacity(cut);
        let mut pos = 0;
        for f in found.iter().filter(|f| f.end <= cut) {
            out.push_str(self.held.get(pos..f.start).unwrap_or_default());
            out.push_str(&f.replacement);
            pos = f.end;
        }
        out.push_str(self.held.get(pos..cut).unwrap_or_default());
        self.before = self
            .held
            .get(..cut)
            .and_then(|t| t.chars().next_back())
            .or(self.before);
        self.held = self.held.split_off(cut);
        out
    }

    /// The end of the text: everything held goes.
    pub fn finish(&mut self) -> String {
        let held = std::mem::take(&mut self.held);
        self.vault.restore_after(&held, self.before).0
    }
}

#[cfg(test)]
mod tests;
