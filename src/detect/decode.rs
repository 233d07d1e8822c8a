//! Normalise, then detect, then map back: the text detectors read is the text a model would
//! understand, and every finding in it maps back to the original bytes, so a redaction
//! replaces what was really sent.
//!
//! [`decode`] makes, in one left-to-right pass over the text:
//! - **invisible characters removed**: zero-width space/joiners, soft hyphen, word joiner and
//!   invisible operators, BOM, bidirectional marks and embeddings, variation selectors, tag
//!   characters (U+E0020–U+E007E, "ASCII smuggling", become the ASCII they encode);
//! - **compatibility forms folded**: fullwidth ASCII (`４１１１`, `＠`), the digits of other
//!   scripts, super/subscript digits, NBSP and the other Unicode spaces (U+202F, thin spaces)
//!   to a space, Unicode hyphens and minus to `-`, ideographic and small full stops to `.`,
//!   letters with diacritics to their base letter (`bøb` → `bob`), and common Cyrillic and
//!   Greek look-alikes of Latin letters;
//! - **escapes decoded**, one level: percent-encoding (`jane%40example.com`, UTF-8
//!   sequences too), HTML character references (`&#64;`, `&#x40;`, `&commat;`, `&shy;`…),
//!   JSON and JavaScript string escapes (`\u0040`, surrogate pairs, `\x40`, `\n`, `\"`) —
//!   so JSON text nested in a string (`{"to":"bob\u0040example.com"}` in tool-call
//!   arguments) reads as its strings do. A decoded character is folded like any other.
//!
//! Each replaced piece is recorded (its normalised and original spans): [`Decoded::original`]
//! maps a span of the normalised text to the original bytes it came from (widened to whole
//! replaced pieces), always on character boundaries.
//!
//! Separately, **base64 runs** of [`MIN_BASE64`] characters or more (standard or URL-safe
//! alphabet) in the normalised text are decoded once; a run that decodes to UTF-8 text
//! ([`is_text`]) is kept as a hidden text ([`Decoded::hidden`]) whose findings redact the
//! whole run.
//!
//! Bound: every step is linear in the text. The pass reads each byte once and writes at most
//! 4 bytes per character it reads (the fold's longest output is 2 bytes per 2-byte letter;
//! a decoded escape is never longer than its escape), so the normalised text is at most as
//! long as the original and the map has at most one record per original character; each
//! base64 run is read once to find and once to decode (3/4 of its length), never decoded
//! again, and hidden texts together are at most 3/4 of the text. Mapping a span back is a
//! binary search in the map. A text with nothing to decode (ASCII without `%`, `&`, `\` and
//! without a 24-character word) is recognised by a word-at-a-time scan and not copied.

use std::borrow::Cow;

use base64::Engine as _;

/// Shortest run of base64 characters that is decoded: 18 bytes, less than any key the secret
/// detectors know (an AWS key id is 20 characters, 28 in base64).
pub const MIN_BASE64: usize = 24;

/// One replaced piece: `norm` in the normalised text came from `orig` of the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    norm_start: usize,
    norm_end: usize,
    orig_start: usize,
    orig_end: usize,
}

/// A base64 run that decodes to text: findings in `text` redact `start..end` (original
/// offsets) whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hidden {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// A text as detectors read it, and the way back to the original.
#[derive(Debug, Clone)]
pub struct Decoded<'t> {
    text: Cow<'t, str>,
    map: Vec<Piece>,
    hidden: Vec<Hidden>,
}

impl Decoded<'_> {
    /// The normalised text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the normalised text is the original (offsets need no mapping).
    pub fn is_identity(&self) -> bool {
        self.map.is_empty()
    }

    /// Base64 runs that decode to text.
    pub fn hidden(&self) -> &[Hidden] {
        &self.hidden
    }

    /// The original span of the normalised span `start..end`: a span that starts or ends
    /// inside a replaced piece takes the whole piece; invisible characters just before the
    /// start or just after the end are left out.
    pub fn original(&self, start: usize, end: usize) -> (usize, usize) {
        (
            self.map_start(start),
            self.map_end(end).max(self.map_start(start)),
        )
    }

    fn map_start(&self, n: usize) -> usize {
        let i = self.map.partition_point(|p| p.norm_start <= n);
        match i.checked_sub(1).and_then(|i| self.map.get(i)) {
            None => n,
            Some(p) if n < p.norm_end => p.orig_start,
            Some(p) => p.orig_end + (n - p.norm_end),
        }
    }

    fn map_end(&self, n: usize) -> usize {
        let i = self.map.partition_point(|p| p.norm_start < n);
        match i.checked_sub(1).and_then(|i| self.map.get(i)) {
            None => n,
            Some(p) if n <= p.norm_end => p.orig_end,
            Some(p) => p.orig_end + (n - p.norm_end),
        }
    }
}

/// Normalises `text` for detection (see the module documentation).
pub fn decode(text: &str) -> Decoded<'_> {
    let (special, long_word) = prescan(text.as_bytes());
    let mut decoded = if special {
        let mut out = String::with_capacity(text.len());
        let mut map = Vec::new();
        normalize(text, &mut out, &mut map);
        if map.is_empty() {
            Decoded {
                text: Cow::Borrowed(text),
                map,
                hidden: Vec::new(),
            }
        } else {
            Decoded {
                text: Cow::Owned(out),
                map,
                hidden: Vec::new(),
            }
        }
    } else {
        Decoded {
            text: Cow::Borrowed(text),
            map: Vec::new(),
            hidden: Vec::new(),
        }
    };
    if long_word || special {
        decoded.hidden = base64_runs(&decoded);
    }
    decoded
}

/// The normalised text alone (keyword terms are folded with it, so they match what
/// detection reads).
pub fn normalized(text: &str) -> Cow<'_, str> {
    let d = decode(text);
    match d.text {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(s) => Cow::Owned(s),
    }
}

const HI: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;

/// Non-zero exactly when some byte of `v` is zero (which one is not told: a borrow can flag
/// the bytes above it too).
#[inline(always)]
fn has_zero(v: u64) -> u64 {
    v.wrapping_sub(ONES) & !v & HI
}

/// Eight bytes at a time: whether any byte needs the slow pass (non-ASCII, `%`, `&`, `\\`),
/// and whether a word of [`MIN_BASE64`] bytes without whitespace or control characters occurs
/// (a base64 run may be there). Such a word covers two whole consecutive 8-byte words, so
/// only where two clean words follow each other is the word measured (at most 7 bytes back,
/// and forward to its end; once per run of clean words, so each byte is read at most twice).
fn prescan(bytes: &[u8]) -> (bool, bool) {
    let mut clean = 0u32;
    let mut long = false;
    let mut chunks = bytes.chunks_exact(8);
    for (k, c) in (&mut chunks).enumerate() {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        let w = u64::from_le_bytes(a);
        if (w & HI)
            | has_zero(w ^ (ONES * u64::from(b'%')))
            | has_zero(w ^ (ONES * u64::from(b'&')))
            | has_zero(w ^ (ONES * u64::from(b'\\')))
            != 0
        {
            return (true, long);
        }
        // Exact as all bytes are ASCII here: zero when no byte is a space, tab, newline or
        // other control character.
        if w.wrapping_sub(ONES * 0x21) & !w & HI == 0 {
            clean += 1;
            if clean == 2 && !long {
                long = word_len(bytes, (k - 1) * 8) >= MIN_BASE64;
            }
        } else {
            clean = 0;
        }
    }
    let special = chunks
        .remainder()
        .iter()
        .any(|&b| b >= 0x80 || matches!(b, b'%' | b'&' | b'\\'));
    (special, long)
}

/// Length of the word of bytes above a space around `at`.
fn word_len(bytes: &[u8], at: usize) -> usize {
    let word = |b: &&u8| **b > b' ';
    let before = bytes
        .get(..at)
        .map_or(0, |h| h.iter().rev().take_while(word).count());
    let after = bytes
        .get(at..)
        .map_or(0, |t| t.iter().take_while(word).count());
    before + after
}

/// Whether detection reads `c` as something else (a space, a dash, a digit, nothing…).
pub fn folds(c: char) -> bool {
    !matches!(fold(c), Fold::Keep)
}

/// What one character of the original becomes.
enum Fold {
    Keep,
    Drop,
    Char(char),
    Str(&'static str),
}

/// The slow pass: copies runs that need nothing, replaces the rest and records each piece.
fn normalize(text: &str, out: &mut String, map: &mut Vec<Piece>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(0);
        if b < 0x80 && !matches!(b, b'%' | b'&' | b'\\') {
            i += 1;
            continue;
        }
        // The decoded character and the length of its source.
        let (c, len) = if b < 0x80 {
            match decode_escape(text, i) {
                Some(found) => found,
                None => {
                    i += 1;
                    continue;
                }
            }
        } else {
            match text.get(i..).and_then(|t| t.chars().next()) {
                Some(c) => (c, c.len_utf8()),
                None => break,
            }
        };
        let escaped = b < 0x80;
        let fold = fold(c);
        if matches!(fold, Fold::Keep) && !escaped {
            i += len;
            continue;
        }
        out.push_str(text.get(copied..i).unwrap_or_default());
        let norm_start = out.len();
        match fold {
            Fold::Keep => out.push(c),
            Fold::Drop => {}
            Fold::Char(f) => out.push(f),
            Fold::Str(s) => out.push_str(s),
        }
        map.push(Piece {
            norm_start,
            norm_end: out.len(),
            orig_start: i,
            orig_end: i + len,
        });
        i += len;
        copied = i;
    }
    out.push_str(text.get(copied..).unwrap_or_default());
}

/// The character an escape at `at` (`%`, `&` or `\`) stands for, and the escape's length;
/// None when it is no escape (then the byte stays as it is). Control characters other than
/// whitespace are never produced.
fn decode_escape(text: &str, at: usize) -> Option<(char, usize)> {
    let rest = text.as_bytes().get(at..)?;
    let (c, len) = match rest.first()? {
        b'%' => percent(rest)?,
        b'&' => entity(rest)?,
        _ => backslash(rest)?,
    };
    (!c.is_control() || c.is_whitespace()).then_some((c, len))
}

fn hex(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

/// `%XX`, or the `%XX` sequence of one UTF-8 character.
fn percent(rest: &[u8]) -> Option<(char, usize)> {
    let byte = |k: usize| -> Option<u8> {
        let at = rest.get(k * 3..k * 3 + 3)?;
        match at {
            [b'%', h, l] => Some((hex(*h)? * 16 + hex(*l)?) as u8),
            _ => None,
        }
    };
    let first = byte(0)?;
    let n = match first {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let mut buf = [0u8; 4];
    for (k, slot) in buf.iter_mut().enumerate().take(n) {
        *slot = byte(k)?;
    }
    let s = std::str::from_utf8(buf.get(..n)?).ok()?;
    Some((s.chars().next()?, n * 3))
}

/// Named references a text would use to hide an entity's characters.
const ENTITIES: &[(&str, char)] = &[
    ("amp", '&'),
    ("lt", '<'),
    ("gt", '>'),
    ("quot", '"'),
    ("apos", '\''),
    ("nbsp", ' '),
    ("commat", '@'),
    ("period", '.'),
    ("hyphen", '-'),
    ("dash", '-'),
    ("ndash", '-'),
    ("mdash", '-'),
    ("minus", '-'),
    ("plus", '+'),
    ("lpar", '('),
    ("rpar", ')'),
    ("colon", ':'),
    ("sol", '/'),
    ("num", '#'),
    ("lowbar", '_'),
    ("percnt", '%'),
    ("shy", '\u{ad}'),
    ("zwsp", '\u{200b}'),
    ("zwj", '\u{200d}'),
    ("zwnj", '\u{200c}'),
    ("thinsp", ' '),
    ("ensp", ' '),
    ("emsp", ' '),
];

/// `&#DDD;`, `&#xHHH;` (the `;` may be missing, as browsers allow) or a named reference.
fn entity(rest: &[u8]) -> Option<(char, usize)> {
    if rest.get(1) == Some(&b'#') {
        let (radix, digits_at) = match rest.get(2) {
            Some(b'x' | b'X') => (16, 3),
            _ => (10, 2),
        };
        let digits = rest
            .iter()
            .skip(digits_at)
            .take(8)
            .take_while(|b| (**b as char).is_digit(radix))
            .count();
        if digits == 0 {
            return None;
        }
        let s = std::str::from_utf8(rest.get(digits_at..digits_at + digits)?).ok()?;
        let c = char::from_u32(u32::from_str_radix(s, radix).ok()?)?;
        let semi = usize::from(rest.get(digits_at + digits) == Some(&b';'));
        return Some((c, digits_at + digits + semi));
    }
    let name_len = rest
        .iter()
        .skip(1)
        .take(8)
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    if rest.get(1 + name_len) != Some(&b';') {
        return None;
    }
    let name = rest.get(1..1 + name_len)?;
    let c = ENTITIES
        .iter()
        .find(|(n, _)| n.as_bytes() == name)
        .map(|(_, c)| *c)?;
    Some((c, name_len + 2))
}

/// `\uXXXX` (a surrogate pair as one character), `\xHH`, and the short JSON escapes.
fn backslash(rest: &[u8]) -> Option<(char, usize)> {
    let hex4 = |from: usize| -> Option<u32> {
        let h = rest.get(from..from + 4)?;
        h.iter().try_fold(0u32, |acc, b| Some(acc * 16 + hex(*b)?))
    };
    match rest.get(1)? {
        b'u' => {
            let hi = hex4(2)?;
            if (0xd800..0xdc00).contains(&hi) {
                if rest.get(6..8) != Some(b"\\u") {
                    return None;
                }
                let lo = hex4(8)?;
                if !(0xdc00..0xe000).contains(&lo) {
                    return None;
                }
                let c = char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00))?;
                Some((c, 12))
            } else {
                Some((char::from_u32(hi)?, 6))
            }
        }
        b'x' => {
            let h = rest.get(2..4)?;
            let v = hex(*h.first()?)? * 16 + hex(*h.get(1)?)?;
            (v < 0x80).then_some((char::from_u32(v)?, 4))
        }
        b'n' | b'r' | b't' => Some((' ', 2)),
        b'"' => Some(('"', 2)),
        b'\\' => Some(('\\', 2)),
        b'/' => Some(('/', 2)),
        b'\'' => Some(('\'', 2)),
        _ => None,
    }
}

/// Base letters of U+00C0–U+00FF (`*`: not a letter with a base, kept).
const LATIN1: &[u8; 64] = b"AAAAAAACEEEEIIIIDNOOOOO*OUUUUYTsaaaaaaaceeeeiiiidnooooo*ouuuuyty";
/// Base letters of U+0100–U+017F.
const LATIN_EXT_A: &[u8; 128] = b"AaAaAaCcCcCcCcDdDdEeEeEeEeEeGgGgGgGgHhHhIiIiIiIiIiJjJjKkkLlLlLlLlLlNnNnNnnNnOoOoOoOoRrRrRrSsSsSsSsTtTtTtUuUuUuUuUuUuWwYyYZzZzZzs";

/// The digit a decimal digit of another script (or a super/subscript) stands for.
fn other_digit(cp: u32) -> Option<u32> {
    const ZEROS: &[u32] = &[
        0x0660, 0x06f0, 0x07c0, 0x0966, 0x09e6, 0x0a66, 0x0ae6, 0x0b66, 0x0be6, 0x0c66, 0x0ce6,
        0x0d66, 0x0de6, 0x0e50, 0x0ed0, 0x0f20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0,
        0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x2080, 0x2070,
    ];
    match cp {
        0xb2 => return Some(2),
        0xb3 => return Some(3),
        0xb9 => return Some(1),
        0x2071..=0x2073 => return None,
        _ => {}
    }
    ZEROS
        .iter()
        .find(|z| (**z..**z + 10).contains(&cp))
        .map(|z| cp - z)
}

/// What one character becomes for detection.
fn fold(c: char) -> Fold {
    let cp = c as u32;
    if cp < 0x80 {
        return Fold::Keep;
    }
    let to = |b: u8| Fold::Char(b as char);
    match cp {
        // Invisible: soft hyphen, combining grapheme joiner, Arabic letter mark, Mongolian
        // vowel separator, zero-width space/joiners, bidi marks, embeddings and isolates,
        // word joiner and invisible operators, variation selectors, BOM.
        0xad
        | 0x34f
        | 0x61c
        | 0x180e
        | 0x200b..=0x200f
        | 0x202a..=0x202e
        | 0x2060..=0x2064
        | 0x2066..=0x2069
        | 0xfe00..=0xfe0f
        | 0xfeff => Fold::Drop,
        // Tags: the ASCII they encode; the rest of the block goes.
        0xe0020..=0xe007e => Fold::Char(char::from_u32(cp - 0xe0000).unwrap_or(' ')),
        0xe0000..=0xe007f | 0xe0100..=0xe01ef => Fold::Drop,
        // Spaces.
        0xa0 | 0x1680 | 0x2000..=0x200a | 0x2028 | 0x2029 | 0x202f | 0x205f | 0x3000 => to(b' '),
        // Hyphens, dashes, minus.
        0x2010..=0x2015 | 0x2043 | 0x2212 | 0xfe58 | 0xfe63 => to(b'-'),
        0x3002 | 0xff61 | 0xfe52 => to(b'.'),
        0xfe6b => to(b'@'),
        0xff01..=0xff5e => Fold::Char(char::from_u32(cp - 0xfee0).unwrap_or(c)),
        0xdf => Fold::Str("ss"),
        0xc6 => Fold::Str("AE"),
        0xe6 => Fold::Str("ae"),
        0x152 => Fold::Str("OE"),
        0x153 => Fold::Str("oe"),
        0x132 => Fold::Str("IJ"),
        0x133 => Fold::Str("ij"),
        0xc0..=0xff => match LATIN1.get((cp - 0xc0) as usize) {
            Some(b'*') | None => Fold::Keep,
            Some(b) => to(*b),
        },
        0x100..=0x17f => LATIN_EXT_A
            .get((cp - 0x100) as usize)
            .map_or(Fold::Keep, |b| to(*b)),
        _ => match confusable(cp) {
            Some(b) => to(b),
            None => match other_digit(cp) {
                Some(d) => to(b'0' + d as u8),
                None => Fold::Keep,
            },
        },
    }
}

/// Cyrillic and Greek letters drawn like Latin ones (UTS #39's most common prototypes).
fn confusable(cp: u32) -> Option<u8> {
    Some(match cp {
        0x430 => b'a',
        0x435 => b'e',
        0x43e => b'o',
        0x440 => b'p',
        0x441 => b'c',
        0x443 => b'y',
        0x445 => b'x',
        0x455 => b's',
        0x456 => b'i',
        0x458 => b'j',
        0x4cf => b'l',
        0x501 => b'd',
        0x261 => b'g',
        0x410 => b'A',
        0x412 => b'B',
        0x415 => b'E',
        0x41a => b'K',
        0x41c => b'M',
        0x41d => b'H',
        0x41e => b'O',
        0x420 => b'P',
        0x421 => b'C',
        0x422 => b'T',
        0x423 => b'Y',
        0x425 => b'X',
        0x405 => b'S',
        0x406 => b'I',
        0x408 => b'J',
        0x3bf => b'o',
        0x3b1 => b'a',
        0x3bd => b'v',
        0x3c1 => b'p',
        0x3b9 => b'i',
        0x3ba => b'k',
        0x391 => b'A',
        0x392 => b'B',
        0x395 => b'E',
        0x396 => b'Z',
        0x397 => b'H',
        0x399 => b'I',
        0x39a => b'K',
        0x39c => b'M',
        0x39d => b'N',
        0x39f => b'O',
        0x3a1 => b'P',
        0x3a4 => b'T',
        0x3a5 => b'Y',
        0x3a7 => b'X',
        _ => return None,
    })
}

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

/// Whether decoded bytes read as text: UTF-8 with at least 90% of its characters printable
/// (or whitespace). Random bytes almost never pass; an encoded key, e-mail or sentence does.
pub fn is_text(raw: &[u8]) -> Option<&str> {
    let t = std::str::from_utf8(raw).ok()?;
    let (mut n, mut good) = (0usize, 0usize);
    for c in t.chars() {
        n += 1;
        if !c.is_control() || matches!(c, '\n' | '\t' | '\r') {
            good += 1;
        }
    }
    (n > 0 && good * 10 >= n * 9).then_some(t)
}

/// The base64 runs of the normalised text that decode to text, in original offsets.
fn base64_runs(d: &Decoded<'_>) -> Vec<Hidden> {
    let bytes = d.text().as_bytes();
    let mut found = Vec::new();
    let mut buf = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes.get(i).copied().is_some_and(is_b64) {
            i += 1;
            continue;
        }
        let start = i;
        while bytes.get(i).copied().is_some_and(is_b64) {
            i += 1;
        }
        let run = bytes.get(start..i).unwrap_or_default();
        let pads = bytes
            .get(i..)
            .unwrap_or_default()
            .iter()
            .take(2)
            .take_while(|b| **b == b'=')
            .count();
        if run.len() < MIN_BASE64 {
            continue;
        }
        buf.clear();
        // Either alphabet, padded or not; a run whose length leaves a lone character over
        // decodes to its whole groups.
        let url = run.iter().any(|b| matches!(b, b'-' | b'_'));
        let engine = if url {
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
        } else {
            &base64::engine::general_purpose::STANDARD_NO_PAD
        };
        let whole = run.get(..run.len() - run.len() % 4).unwrap_or_default();
        let ok = engine.decode_vec(run, &mut buf).is_ok() || {
            buf.clear();
            engine.decode_vec(whole, &mut buf).is_ok()
        };
        if ok {
            if let Some(t) = is_text(&buf) {
                let (s, e) = d.original(start, i + pads);
                found.push(Hidden {
                    start: s,
                    end: e,
                    text: t.to_string(),
                });
            }
        }
        i += pads;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// The normalised text, and the original of every normalised span given.
    fn check(original: &str, normal: &str) {
        let d = decode(original);
        assert_eq!(d.text(), normal, "{original:?}");
    }

    /// The original bytes the normalised `needle` came from.
    fn back<'a>(original: &'a str, needle: &str) -> &'a str {
        let d = decode(original);
        let at = d
            .text()
            .find(needle)
            .expect("needle in the normalised text");
        let (s, e) = d.original(at, at + needle.len());
        &original[s..e]
    }

    #[test]
    fn plain_text_is_not_copied() {
        for t in [
            "",
            "Hello, world. Call 415-555-0100 or mail bob@example.com.",
            "a short line\nanother",
        ] {
            let d = decode(t);
            assert!(d.is_identity());
            assert!(matches!(d.text, Cow::Borrowed(_)));
            assert!(d.hidden().is_empty());
            assert_eq!(d.original(2, 5), (2, 5));
        }
    }

    #[test]
    fn invisible_characters_go_and_map_back() {
        let t = "card 4111\u{200b}1111\u{ad}1111\u{2060}1111 ok\u{feff}";
        check(t, "card 4111111111111111 ok");
        assert_eq!(
            back(t, "4111111111111111"),
            "4111\u{200b}1111\u{ad}1111\u{2060}1111"
        );
        let key = "AKIA\u{200d}IOSFODNN7EXAMPLE";
        assert_eq!(back(key, "AKIAIOSFODNN7EXAMPLE"), key);
        // An invisible character before a span is not part of it.
        assert_eq!(
            back("x \u{200b}bob@example.com", "bob@example.com"),
            "bob@example.com"
        );
        // Tags spell ASCII.
        let tags: String = "bob@x.io"
            .chars()
            .map(|c| char::from_u32(0xe0000 + c as u32).unwrap())
            .collect();
        check(&format!("hi {tags}"), "hi bob@x.io");
    }

    #[test]
    fn compatibility_forms_fold() {
        check("４１１１ １１１１", "4111 1111");
        check("bob＠example．com", "bob@example.com");
        check("12\u{a0}345\u{202f}678\u{2009}9", "12 345 678 9");
        check("914\u{2011}27\u{2013}6083", "914-27-6083");
        check("bøb@exämple.com", "bob@example.com");
        check("Straße Œuvre", "Strasse OEuvre");
        check("jrmccalx@examрle.com", "jrmccalx@example.com");
        check("٤١١١ ४१११ ²", "4111 4111 2");
        assert_eq!(
            back("mail bøb@example.com now", "bob@example.com"),
            "bøb@example.com"
        );
        assert_eq!(back("n° ４１１１", "4111"), "４１１１");
        // Letters without a Latin base stay.
        check("日本語 Ωλ", "日本語 Ωλ");
    }

    #[test]
    fn escapes_decode_once() {
        check("jane%40example.com", "jane@example.com");
        check("a%20b%2Bc %zz 100% %4", "a b+c %zz 100% %4");
        check("%C3%B8%EF%BC%A0", "o@");
        check(
            "bob&#64;x.io &#x40; &commat; &amp;lt; &nosuch; &#",
            "bob@x.io @ @ &lt; &nosuch; &#",
        );
        check("4111&shy;1111", "41111111");
        check(
            "bob\\u0040example.com \\x40 \\\"q\\\" \\ud83d\\ude00",
            "bob@example.com @ \"q\" \u{1f600}",
        );
        // One level: a doubly escaped character stays escaped once.
        check("a%2540b \\\\u0040", "a%40b \\u0040");
        // No control characters come out of an escape.
        check("%00%07&#0;\\u0000", "%00%07&#0;\\u0000");
        check("line\\nnext", "line next");
        assert_eq!(
            back("to jane%40example.com.", "jane@example.com"),
            "jane%40example.com"
        );
        assert_eq!(
            back(r#"{"to":"bob\u0040example.com"}"#, "bob@example.com"),
            r"bob\u0040example.com"
        );
        // A span ending inside a replaced piece takes all of it.
        let d = decode("a%40b");
        assert_eq!(d.text(), "a@b");
        assert_eq!(d.original(0, 2), (0, 4));
        assert_eq!(d.original(1, 2), (1, 4));
        assert_eq!(d.original(2, 3), (4, 5));
    }

    #[test]
    fn base64_runs_that_are_text() {
        let secret = "AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        let t = format!("config: {b64} end");
        let d = decode(&t);
        assert!(d.is_identity());
        assert_eq!(d.hidden().len(), 1);
        let h = &d.hidden()[0];
        assert_eq!(h.text, secret);
        assert_eq!(&t[h.start..h.end], b64);
        // URL-safe, unpadded.
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode("ghp_abcdefghijklmnopqrstuvwxyz0123456789??>>");
        assert_eq!(
            decode(&url).hidden()[0].text,
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789??>>"
        );
        // Binary, identifiers and hashes are not text.
        let png = base64::engine::general_purpose::STANDARD.encode([
            0x89u8, b'P', b'N', b'G', 0, 0, 0, 13, 0xff, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
        ]);
        for t in [
            png.as_str(),
            "ThisIsAVeryLongIdentifierNameThatGoesOn",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "short c2VjcmV0",
        ] {
            assert!(decode(t).hidden().is_empty(), "{t}");
        }
    }

    #[test]
    fn prescan_agrees_with_the_slow_path() {
        let long = "x".repeat(30);
        for (t, special, long_word) in [
            ("plain words only here", false, false),
            ("café", true, false),
            ("50%", true, false),
            ("a\\b", true, false),
            ("fish & chips", true, false),
            (long.as_str(), false, true),
            ("aaaaaaaaaaaa aaaaaaaaaaaaaaaaaaaaaaaaa", false, true),
            (
                "aaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbbbb",
                false,
                false,
            ),
            ("fifteen letters fifteen letters", false, false),
            ("a tab\tor a newline\nends a word", false, false),
        ] {
            assert_eq!(prescan(t.as_bytes()), (special, long_word), "{t}");
        }
        // A word of MIN_BASE64 bytes is seen wherever it starts and ends, and only then.
        for len in 0..40 {
            for lead in 0..9 {
                for trail in 0..9 {
                    let t = format!(
                        "{} {} {}",
                        "a".repeat(lead),
                        "b".repeat(len),
                        "c".repeat(trail)
                    );
                    let longest = t.split(' ').map(str::len).max().unwrap_or(0);
                    assert_eq!(prescan(t.as_bytes()).1, longest >= MIN_BASE64, "{t:?}");
                }
            }
        }
    }

    /// Every span of the normalised text maps to char boundaries of the original, in order.
    #[test]
    fn every_span_maps_to_boundaries() {
        let t = "a\u{200b}%40b&#64;４\u{a0}\\u00e9ø\u{e0041}z%C3%A9&amp;";
        let d = decode(t);
        let n = d.text().len();
        for s in 0..=n {
            for e in s..=n {
                if !d.text().is_char_boundary(s) || !d.text().is_char_boundary(e) {
                    continue;
                }
                let (os, oe) = d.original(s, e);
                assert!(os <= oe && oe <= t.len(), "{s}..{e}");
                assert!(t.is_char_boundary(os) && t.is_char_boundary(oe), "{s}..{e}");
            }
        }
        assert_eq!(d.original(0, n), (0, t.len()));
    }
}
