//! Phone numbers (`phone`).
//!
//! One bounded parse reads the number's shape from the digit run (or the `+` or `(` just
//! before it): groups of digits split by one space, dash, dot or slash, at most one group in
//! parentheses, at most [`MAX_GROUPS`] groups and [`MAX_DIGITS`] digits, then an optional
//! extension (`x123`, `ext. 12`, `extension 4`). The shape is then judged against numbering
//! plans (ITU-T E.164 and the national plans of the largest economies):
//!
//! - International, no context needed: `+`, `00` or a separate `011` (the international
//!   prefixes of most of the world and of North America) then an assigned E.164 country code
//!   and 8–15 digits in all, a `(0)` trunk group allowed (`+44 (0)20 7946 0958`,
//!   `0049 30 12345678`, `001-415-555-0100`, `011 44 20 7946 0958`). Country code 1 must be a
//!   valid 10-digit NANP number after it. At most two one-digit groups.
//! - North American, no context needed: `(415) 555-0100`, `415-555-0100`, `415.555.0100`,
//!   `415 555 0100`, led by `1` or not; the two separators the same, area code and exchange
//!   starting with 2–9.
//! - National with a trunk prefix, no context needed: a first group (or parenthesised area
//!   code) of 2–5 digits starting `0` then 1–9, 9–12 digits in 2–5 groups (UK `07700 900123`,
//!   France `01 23 45 67 89`, Germany `030 12345678`, Japan `03-1234-5678`, Korea
//!   `010-1234-5678`, Australia `(02) 9876 5432`, Turkey `0212 345 67 89`, India
//!   `022 2345 6789`...); Russia's `8 (495) 123-45-67`; Latin American area codes in
//!   parentheses `(11) 91234-5678`, `(55) 1234 5678`.
//! - Any other grouping of 7–12 digits (Spain `612 34 56 78`, China `138 0013 8000`, local
//!   `555 0199`, Danish `60 56 85 91`), and compact runs of 7–12 digits that are no NANP or
//!   international number, are phones only with a phone word ([`CONTEXT`]) in the
//!   [`CONTEXT_BYTES`] before, or a label (`office`, `fax`, `mobile`...) right after: alone such
//!   shapes are as often amounts in locales that group thousands with spaces, ids or counts.
//!
//! Never phones: dates in any order (`2026-11-26`, `26.11.2026 10 30`), US ZIP+4 and Brazilian
//! CEP (`94105-1234`, `01310-100`), one-digit groups outside the forms above (versions, ISBNs),
//! mixed dots (`0.5-1.5`), anything glued to a word character or continued by `<sep><digit>`
//! beyond the group limits (longer digit structures, lists).

use super::{at, back, context_before, left_clear, right_clear, word_at, word_before, Run};

/// Most digits read: E.164's 15 plus a `011` prefix.
const MAX_DIGITS: usize = 18;
const MAX_GROUPS: usize = 8;
/// Longest digit group read (a compact international number with its prefix).
const MAX_GROUP: usize = 18;
const MIN_INTERNATIONAL_DIGITS: usize = 8;
const MAX_INTERNATIONAL_DIGITS: usize = 15;
/// How far before an ambiguous shape a phone word may start.
const CONTEXT_BYTES: usize = 48;
/// Words that make an ambiguous digit group a phone number when they precede it: phone
/// nouns and the verbs of reaching someone by phone, in the languages of the largest
/// economies. A trailing `*` admits any letters after (`phones`, `calling`, `messages`).
const CONTEXT: &[&str] = &[
    "phone*",
    "telephone*",
    "tel",
    "tel.",
    "tele",
    "mobile*",
    "mob",
    "cell",
    "cellphone*",
    "cellular",
    "fax",
    "call*",
    "dial",
    "dialed",
    "dialled",
    "ring",
    "text",
    "texted",
    "texting",
    "sms",
    "message*",
    "whatsapp*",
    "contact*",
    "reach*",
    "answer*",
    "hotline*",
    "helpline*",
    "landline*",
    "voicemail*",
    "ph",
    "ph.",
    "tlf",
    "t\u{e9}l",
    "t\u{e9}l\u{e9}phone*",
    "portable",
    "telefon*",
    "handy",
    "tel\u{e9}fono*",
    "m\u{f3}vil",
    "celular*",
    "telefone*",
    "telefono*",
    "cellulare",
    "telefoon*",
    "mobiel",
    "\u{442}\u{435}\u{43b}",
    "\u{442}\u{435}\u{43b}\u{435}\u{444}\u{43e}\u{43d}*",
    "\u{422}\u{435}\u{43b}\u{435}\u{444}\u{43e}\u{43d}*",
    "\u{422}\u{435}\u{43b}",
    "\u{96fb}\u{8a71}*",
    "\u{7535}\u{8bdd}*",
    "\u{624b}\u{673a}*",
    "\u{643a}\u{5e2f}*",
    "\u{c804}\u{d654}*",
    "\u{d734}\u{b300}\u{d3f0}*",
    "telepon*",
    "ponsel",
    "hp",
];
/// Labels that make an ambiguous shape a phone when they follow it (`555 0199 office`).
const LABELS: &[&str] = &[
    "office", "fax", "mobile", "cell", "home", "phone", "tel", "landline", "direct",
];

/// A number's shape as read from its first character.
#[derive(Default)]
struct Shape {
    digits: [u8; MAX_DIGITS],
    n: usize,
    /// Length of each group, in order.
    groups: [usize; MAX_GROUPS],
    g: usize,
    /// Index of the parenthesised group.
    paren: Option<usize>,
    /// Separators seen: bit 0 space, 1 dash, 2 dot, 3 slash; `slashes` counts slashes.
    seps: u8,
    slashes: usize,
    /// The separator after each group but the last (0 for none, as after `)`).
    after: [u8; MAX_GROUPS],
    plus: bool,
    end: usize,
}

impl Shape {
    fn lens(&self) -> &[usize] {
        self.groups.get(..self.g).unwrap_or_default()
    }

    fn digits(&self) -> &[u8] {
        self.digits.get(..self.n).unwrap_or_default()
    }

    /// The digits of groups `from..`.
    fn digits_from(&self, from: usize) -> &[u8] {
        let skip: usize = self.lens().iter().take(from).sum();
        self.digits().get(skip..).unwrap_or_default()
    }

    fn group(&self, i: usize) -> usize {
        self.groups.get(i).copied().unwrap_or(0)
    }

    /// All separators are one kind (`)` joins count as none).
    fn uniform(&self) -> bool {
        self.seps.count_ones() <= 1
    }
}

fn sep_bit(c: u8) -> u8 {
    match c {
        b' ' => 1,
        b'-' => 2,
        b'.' => 4,
        b'/' => 8,
        _ => 0,
    }
}

pub(super) fn find(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let start = match back(b, run.start, 1) {
        b'+' | b'(' => run.start - 1,
        _ => run.start,
    };
    let clear = if start < run.start {
        !word_before(text, start) && !(back(b, start, 1).is_ascii_digit())
    } else {
        left_clear(text, start)
    };
    // Not one piece of a space-separated number list.
    if !clear || (back(b, start, 1) == b' ' && back(b, start, 2).is_ascii_digit()) {
        return None;
    }
    let shape = parse(b, start)?;
    let end = extension(text, shape.end).unwrap_or(shape.end);
    let listed = at(b, end) == b' ' && at(b, end + 1).is_ascii_digit();
    if !right_clear(text, end) || listed {
        return None;
    }
    let ok = international(&shape)
        || north_american(&shape)
        || trunk_national(&shape)
        || (ambiguous(&shape)
            && !other_number(b, start, end)
            && (context_before(b, start, CONTEXT_BYTES, CONTEXT) || labelled(b, end)));
    ok.then_some((start, end))
}

/// Reads groups from `start` (at `+`, `(` or a digit); None past the group or digit limits.
fn parse(b: &[u8], start: usize) -> Option<Shape> {
    let mut s = Shape::default();
    let mut pos = start;
    if at(b, pos) == b'+' {
        s.plus = true;
        pos += 1;
    }
    loop {
        let open = at(b, pos) == b'(';
        let first = if open { pos + 1 } else { pos };
        let len = super::digits_at(b, first, MAX_GROUP + 1);
        if len == 0 || len > MAX_GROUP || s.n + len > MAX_DIGITS || s.g == MAX_GROUPS {
            return None;
        }
        if open {
            if s.paren.is_some() || len > 5 || at(b, first + len) != b')' {
                return None;
            }
            s.paren = Some(s.g);
        }
        s.digits
            .get_mut(s.n..s.n + len)?
            .copy_from_slice(b.get(first..first + len)?);
        s.n += len;
        *s.groups.get_mut(s.g)? = len;
        s.g += 1;
        pos = first + len + usize::from(open);
        s.end = pos;
        let c = at(b, pos);
        let next = |p: usize| at(b, p).is_ascii_digit() || (s.paren.is_none() && paren_at(b, p));
        if sep_bit(c) != 0 && next(pos + 1) {
            // The separator after a parenthesis is not part of the number's own grouping.
            if !open {
                s.seps |= sep_bit(c);
            }
            s.slashes += usize::from(c == b'/');
            *s.after.get_mut(s.g - 1)? = c;
            pos += 1;
        } else if (open && at(b, pos).is_ascii_digit()) || (!open && c == b'(' && next(pos)) {
            // `(415)555-0100`, `+44(0)20...`: a parenthesis joins without a separator.
        } else {
            break;
        }
    }
    Some(s)
}

/// `(` 1–5 digits `)` at `p`.
fn paren_at(b: &[u8], p: usize) -> bool {
    let n = super::digits_at(b, p + 1, 6);
    at(b, p) == b'(' && (1..=5).contains(&n) && at(b, p + 1 + n) == b')'
}

/// `x123`, ` x 123`, ` ext. 12`, `, ext 12`, ` extension 4` after `end`: the extension's end.
fn extension(text: &str, end: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut p = end;
    if at(b, p) == b',' {
        p += 1;
    }
    if at(b, p) == b' ' {
        p += 1;
    }
    let word = |w: &[u8], p: usize| {
        b.get(p..p + w.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(w))
    };
    if word(b"extension", p) {
        p += 9;
    } else if word(b"ext", p) {
        p += 3;
        if at(b, p) == b'.' {
            p += 1;
        }
    } else if matches!(at(b, p), b'x' | b'X') {
        p += 1;
    } else {
        return None;
    }
    if at(b, p) == b' ' {
        p += 1;
    }
    let n = super::digits_at(b, p, 7);
    ((1..=6).contains(&n) && !word_at(text, p + n)).then_some(p + n)
}

/// The length of the E.164 country code `d` starts with, if that code is assigned.
fn country_code(d: &[u8]) -> Option<usize> {
    /// Two-digit country codes.
    const TWO: [u8; 44] = [
        20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55,
        56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98,
    ];
    /// First two digits of the three-digit country codes.
    const THREE: [u8; 23] = [
        21, 22, 23, 24, 25, 26, 29, 35, 37, 38, 42, 50, 59, 67, 68, 69, 80, 85, 87, 88, 96, 97, 99,
    ];
    if !d.get(..2).is_some_and(|p| p.iter().all(u8::is_ascii_digit)) {
        return None;
    }
    let two = u8::try_from(super::value(d, 0, 2)).unwrap_or(0);
    match at(d, 0) {
        b'1' | b'7' => Some(1),
        _ if TWO.contains(&two) => Some(2),
        _ if THREE.contains(&two) => Some(3),
        _ => None,
    }
}

/// NANP area codes and exchanges start with 2–9.
fn nanp_ok(d: &[u8]) -> bool {
    d.len() == 10 && matches!(at(d, 0), b'2'..=b'9') && matches!(at(d, 3), b'2'..=b'9')
}

/// `+`, `00` or a separate `011`, a country code, 8–15 digits (a `(0)` trunk group aside).
fn international(s: &Shape) -> bool {
    let d = s.digits();
    let prefix = if s.plus {
        0
    } else if d.starts_with(b"00") && s.group(0) >= 2 {
        2
    } else if d.starts_with(b"011") && s.group(0) == 3 && s.g > 1 {
        3
    } else {
        return false;
    };
    let trunk_zero = s
        .paren
        .filter(|&p| p > 0 && s.group(p) == 1 && s.digits_from(p).first() == Some(&b'0'));
    let mut number = [0u8; MAX_DIGITS];
    let mut len = 0;
    let mut offset = 0;
    for (i, &g) in s.lens().iter().enumerate() {
        if Some(i) != trunk_zero {
            let Some(part) = d.get(offset..offset + g) else {
                return false;
            };
            if let Some(slot) = number.get_mut(len..len + g) {
                slot.copy_from_slice(part);
            }
            len += g;
        }
        offset += g;
    }
    let number = number.get(prefix..len).unwrap_or_default();
    let singles = s.lens().iter().filter(|&&g| g == 1).count() - usize::from(trunk_zero.is_some());
    let Some(cc) = country_code(number) else {
        return false;
    };
    let plausible = if cc == 1 && at(number, 0) == b'1' {
        nanp_ok(number.get(1..).unwrap_or_default())
    } else {
        (MIN_INTERNATIONAL_DIGITS..=MAX_INTERNATIONAL_DIGITS).contains(&number.len())
    };
    // Without `+`, a compact run needs more digits (`0041234567` is as likely an id), and a
    // parenthesis is only a trunk `(0)`.
    let bare_ok =
        s.plus || ((s.g > 1 || number.len() >= 11) && (s.paren.is_none() || trunk_zero.is_some()));
    plausible && singles <= 2 && s.paren.is_none_or(|p| p > 0) && bare_ok
}

/// NANP: `NXX<s>NXX<s>XXXX` (one separator twice), `(NXX) NXX<s>XXXX`, either led by `1`.
fn north_american(s: &Shape) -> bool {
    let lens = s.lens();
    let lead = usize::from(lens.first() == Some(&1) && s.digits().first() == Some(&b'1'));
    let rest = lens.get(lead..).unwrap_or_default();
    if rest != [3, 3, 4] || s.plus || !nanp_ok(s.digits_from(lead)) {
        return false;
    }
    let sep = |i: usize| s.after.get(i).copied().unwrap_or(0);
    match s.paren {
        // `(415) 555-0100`, `(415)555-0100`, `1 (800) 555-0199`: no dot after the area code.
        Some(p) if p == lead => {
            matches!(sep(lead), 0 | b' ' | b'-')
                && matches!(sep(lead + 1), b' ' | b'-' | b'.')
                && (lead == 0 || matches!(sep(0), b' ' | b'-'))
        }
        Some(_) => false,
        None => {
            let same = sep(lead) == sep(lead + 1) && matches!(sep(lead), b' ' | b'-' | b'.');
            same && (lead == 0 || sep(0) == sep(lead))
        }
    }
}

/// A national number with a trunk prefix: `0` then 1–9 leading 2–5 digits (or such an area
/// code in parentheses), 9–12 digits in 2–5 groups; Russia's `8 (495) 123-45-67`; Latin
/// American area codes in parentheses (`(11) 91234-5678`).
fn trunk_national(s: &Shape) -> bool {
    let d = s.digits();
    let lens = s.lens();
    if s.plus || date_like(s) || !dots_uniform(s) || s.slashes > 1 {
        return false;
    }
    let first = s.group(0);
    let zero_led = at(d, 0) == b'0' && matches!(at(d, 1), b'1'..=b'9') && (2..=5).contains(&first);
    if zero_led && s.paren.is_none_or(|p| p == 0) {
        let rest_ok = lens.iter().skip(1).all(|g| (2..=8).contains(g));
        return (9..=12).contains(&s.n) && (2..=5).contains(&s.g) && rest_ok;
    }
    let sep = |i: usize| s.after.get(i).copied().unwrap_or(0);
    // Russia and Kazakhstan: trunk 8, a parenthesised 3–5 digit area code, 11 digits.
    if lens.first() == Some(&1) && at(d, 0) == b'8' && s.paren == Some(1) {
        let area = s.group(1);
        return (3..=5).contains(&area)
            && s.n == 11
            && lens.iter().skip(2).all(|g| (2..=4).contains(g))
            && sep(0) == b' ';
    }
    // Brazil, Mexico, Argentina: `(DD)` then 4–5 and 4 digits.
    s.paren == Some(0)
        && first == 2
        && at(d, 0) != b'0'
        && matches!(lens, [2, 4, 4] | [2, 5, 4])
        && matches!(sep(1), b' ' | b'-')
}

/// Any other 7–12 digit grouping that needs a phone word near it: groups of 2+ digits (a
/// leading trunk `8` aside, as in Russia's `8 912 345 67 89`) split by spaces and dashes, or
/// by dots alone in three groups or more and at least nine digits (fewer are decimals and
/// versions), or one compact run that is not a NANP or international number.
fn ambiguous(s: &Shape) -> bool {
    let lens = s.lens();
    let zip = matches!(lens, [5, 4] | [5, 3]) && s.seps == sep_bit(b'-');
    let trunk_eight = s.n == 11 && lens.first() == Some(&1) && s.digits().first() == Some(&b'8');
    let groups_ok = lens
        .iter()
        .enumerate()
        .all(|(i, &g)| g >= 2 || (i == 0 && trunk_eight));
    let dots = s.seps & sep_bit(b'.') != 0;
    let seps_ok = if dots {
        s.uniform() && s.g >= 3 && s.n >= 9
    } else {
        s.slashes == 0
    };
    (7..=12).contains(&s.n) && !s.plus && groups_ok && seps_ok && !zip && !date_like(s)
}

/// The number at `start..end` reads as another kind of number: a reference (`#123...`), an
/// amount (a currency code or symbol next to it), or the word just before it names what it is
/// (`order`, `invoice`, `about`...).
fn other_number(b: &[u8], start: usize, end: usize) -> bool {
    /// Words that, just before a number, say it is not a phone number.
    const NOUNS: &[&str] = &[
        "about",
        "regarding",
        "order",
        "invoice",
        "ref",
        "reference",
        "account",
        "acct",
        "ticket",
        "case",
        "sku",
        "item",
        "product",
        "part",
        "serial",
        "id",
        "tracking",
        "booking",
        "amount",
        "total",
        "price",
        "qty",
        "quantity",
        "code",
        "pin",
        "zip",
        "postcode",
        "isbn",
        "ean",
        "version",
        "build",
        "of",
        "costs",
        "cost",
        "paid",
        "pay",
    ];
    /// ISO 4217 codes of the largest economies' currencies, and symbols.
    const MONEY: &[&str] = &[
        "eur", "usd", "gbp", "jpy", "chf", "cny", "rmb", "inr", "rub", "brl", "aud", "cad", "krw",
        "mxn", "try", "sar", "idr", "nzd", "sek", "nok", "dkk", "pln", "zar", "hkd", "sgd",
        "euro*", "dollar*", "pound*", "yen", "rupee*", "\u{20ac}", "$", "\u{a3}", "\u{a5}",
        "\u{20b9}", "\u{20bd}", "\u{20a9}", "\u{20ba}",
    ];
    if back(b, start, 1) == b'#' {
        return true;
    }
    // The word (or symbol) just before: skip one space or colon run, then read back to a
    // space.
    let mut e = start;
    while matches!(back(b, e, 1), b' ' | b':') && start - e < 3 {
        e -= 1;
    }
    let mut w = e;
    while w > 0 && e - w < 12 && !matches!(back(b, w, 1), b' ' | b'\n' | b'\t' | 0) {
        w -= 1;
    }
    let before = b.get(w..e).unwrap_or_default();
    let is = |list: &[&str], word: &[u8]| {
        list.iter().any(|item| {
            let (stem, any) = item.strip_suffix('*').map_or((*item, false), |x| (x, true));
            let stem = stem.as_bytes();
            word.len() >= stem.len()
                && word
                    .get(..stem.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(stem))
                && (any || word.len() == stem.len())
        })
    };
    // The word after: one space, then up to the next space or punctuation.
    let mut a = end;
    if at(b, a) == b' ' {
        a += 1;
    }
    let mut z = a;
    while z < b.len()
        && z - a < 12
        && !matches!(at(b, z), b' ' | b'.' | b',' | b';' | b')' | b'\n' | 0)
    {
        z += 1;
    }
    let after = b.get(a..z).unwrap_or_default();
    is(NOUNS, before) || is(MONEY, before) || is(MONEY, after)
}

/// Dots, if any, are the only separator (no `0.5-1.5`, no `12.30 45`).
fn dots_uniform(s: &Shape) -> bool {
    s.seps & sep_bit(b'.') == 0 || s.uniform()
}

/// Three consecutive groups read as a date: day and month (either order) around or before a
/// year of four digits, or a four-digit year first.
fn date_like(s: &Shape) -> bool {
    let d = s.digits();
    let mut offset = 0;
    let mut vals = [(0usize, 0u32); MAX_GROUPS];
    for (slot, &g) in vals.iter_mut().zip(s.lens()) {
        // Only groups of up to 4 digits can be a date's part.
        let v = if g <= 4 {
            super::value(d, offset, g)
        } else {
            0
        };
        *slot = (g, v);
        offset += g;
    }
    let day_month = |a: (usize, u32), b: (usize, u32)| {
        a.0 <= 2
            && b.0 <= 2
            && (1..=31).contains(&a.1)
            && (1..=31).contains(&b.1)
            && (a.1 <= 12 || b.1 <= 12)
    };
    let year = |y: (usize, u32)| y.0 == 4 && (1900..=2099).contains(&y.1);
    vals.get(..s.g)
        .unwrap_or_default()
        .windows(3)
        .any(|w| match w {
            [a, b, c] => (day_month(*a, *b) && year(*c)) || (year(*a) && day_month(*b, *c)),
            _ => false,
        })
}

/// A phone label follows `end` (after one space or an opening parenthesis).
fn labelled(b: &[u8], end: usize) -> bool {
    let mut p = end;
    if at(b, p) == b' ' {
        p += 1;
    }
    if at(b, p) == b'(' {
        p += 1;
    }
    LABELS.iter().any(|w| {
        b.get(p..p + w.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(w.as_bytes()))
            && !at(b, p + w.len()).is_ascii_alphabetic()
    })
}

#[cfg(test)]
mod tests {
    use super::super::scan;
    use crate::detect::{DetectorId, DetectorSet};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn phones(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        scan(text, DetectorSet::all(), &mut out);
        out.iter()
            .filter(|f| f.detector == DetectorId::Phone)
            .map(|f| &text[f.start..f.end])
            .collect()
    }

    fn phone_spans(text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        scan(text, DetectorSet::EMPTY.with(DetectorId::Phone), &mut out);
        out.iter().map(|f| (f.start, f.end)).collect()
    }

    fn check(cases: &[(&str, &str)]) {
        for (text, want) in cases {
            assert_eq!(phones(text), vec![*want], "{text}");
        }
    }

    #[test]
    fn north_american_shapes() {
        assert_eq!(phone_spans("Call (415) 555-0100 now."), vec![(5, 19)]);
        check(&[
            ("see 415-555-0100 today", "415-555-0100"),
            ("see 415.555.0100.", "415.555.0100"),
            ("see 415 555 0100, ok", "415 555 0100"),
            ("see (415)555-0100", "(415)555-0100"),
            ("see (415) 555 0100", "(415) 555 0100"),
            ("toll free 1-800-555-0199!", "1-800-555-0199"),
            ("toll free 1 800 555 0199", "1 800 555 0199"),
            ("toll free 1.800.555.0199", "1.800.555.0199"),
            ("toll free 1 (800) 555-0199", "1 (800) 555-0199"),
            ("tel:415-555-0100", "415-555-0100"),
        ]);
    }

    #[test]
    fn extensions() {
        check(&[
            ("desk 415-555-0100x123 ok", "415-555-0100x123"),
            ("desk 415.555.0100 x 42", "415.555.0100 x 42"),
            ("desk (415) 555-0100 ext. 12.", "(415) 555-0100 ext. 12"),
            ("desk 415-555-0100, ext 7", "415-555-0100, ext 7"),
            (
                "desk +44 20 7946 0958 extension 4",
                "+44 20 7946 0958 extension 4",
            ),
            ("desk +1-415-555-0100X9", "+1-415-555-0100X9"),
        ]);
        // An `x` that starts a word is no extension, and does not hide the number.
        assert_eq!(phones("415-555-0100 xylophone"), vec!["415-555-0100"]);
    }

    #[test]
    fn international_shapes() {
        check(&[
            ("call +1 415 555 0100.", "+1 415 555 0100"),
            ("call +1-415-555-0100", "+1-415-555-0100"),
            ("call +1 (415) 555-0100", "+1 (415) 555-0100"),
            ("call +14155550100 now", "+14155550100"),
            ("London +44 20 7946 0958", "+44 20 7946 0958"),
            ("Berlin +49 (0)30 12345678", "+49 (0)30 12345678"),
            ("Zurich +41 (0)44 668 18 00", "+41 (0)44 668 18 00"),
            ("Paris +33 1 23 45 67 89.", "+33 1 23 45 67 89"),
            ("Tokyo +81.3.1234.5678", "+81.3.1234.5678"),
            ("Delhi +91 98765 43210", "+91 98765 43210"),
            ("Beijing +86 138 0013 8000", "+86 138 0013 8000"),
            ("(+442079460958)", "+442079460958"),
            ("+44 20 7946 0958 (office)", "+44 20 7946 0958"),
            ("mobile +447700 900123", "+447700 900123"),
            ("Riyadh +966 50 123 4567", "+966 50 123 4567"),
        ]);
    }

    #[test]
    fn international_prefixes_without_plus() {
        check(&[
            ("from Europe 0044 20 7946 0958", "0044 20 7946 0958"),
            ("from Europe 00 49 30 12345678", "00 49 30 12345678"),
            ("from Europe 00493012345678.", "00493012345678"),
            ("from Korea 001-415-555-0100", "001-415-555-0100"),
            ("from the US 011 44 20 7946 0958", "011 44 20 7946 0958"),
            ("from the US 011-81-3-1234-5678", "011-81-3-1234-5678"),
        ]);
        for text in [
            // Too short to hold a country code (these once overflowed the code's arithmetic).
            "+1",
            "+1 and",
            "00",
            "001",
            "(+7)",
            "code 0028 1234 5678", // 28: no country code
            "code 0000 1234 5678",
            "code 001-115-555-0100", // not a NANP number after 1
            "code 00 44 12",
        ] {
            assert!(phones(text).is_empty(), "{text}");
        }
    }

    /// National formats (the ITU-T national numbering plans) of the largest economies.
    #[test]
    fn national_formats_with_trunk_prefix() {
        check(&[
            ("UK 020 7946 0958", "020 7946 0958"),
            ("UK 07700 900123", "07700 900123"),
            ("UK 0161 496 0000", "0161 496 0000"),
            ("UK (020) 7946 0958", "(020) 7946 0958"),
            ("France 01 23 45 67 89", "01 23 45 67 89"),
            ("France 06.12.34.56.78", "06.12.34.56.78"),
            ("Germany 030 12345678", "030 12345678"),
            ("Germany 0176 1234 5678", "0176 1234 5678"),
            ("Germany 030/1234567", "030/1234567"),
            ("Japan 03-1234-5678", "03-1234-5678"),
            ("Japan 090-1234-5678", "090-1234-5678"),
            ("Korea 010-1234-5678", "010-1234-5678"),
            ("Korea 02-123-4567", "02-123-4567"),
            ("India 022 2345 6789", "022 2345 6789"),
            ("China 010-12345678", "010-12345678"),
            ("Italy 06 1234 5678", "06 1234 5678"),
            ("Australia (02) 9876 5432", "(02) 9876 5432"),
            ("Australia 0412 345 678", "0412 345 678"),
            ("Netherlands 020 123 4567", "020 123 4567"),
            ("Netherlands 06-12345678", "06-12345678"),
            ("Turkey 0212 345 67 89", "0212 345 67 89"),
            ("Indonesia 0812-3456-7890", "0812-3456-7890"),
            ("Saudi Arabia 050 123 4567", "050 123 4567"),
            ("Switzerland 044 668 18 00", "044 668 18 00"),
            ("Russia 8 (495) 123-45-67", "8 (495) 123-45-67"),
            ("Brazil (11) 91234-5678", "(11) 91234-5678"),
            ("Brazil (21) 2345-6789", "(21) 2345-6789"),
            ("Mexico (55) 1234 5678", "(55) 1234 5678"),
        ]);
    }

    #[test]
    fn ambiguous_shapes_need_a_phone_word() {
        check(&[
            ("Phone: 612 34 56 78", "612 34 56 78"),
            ("call me on 138 0013 8000", "138 0013 8000"),
            ("mobile: 98765 43210", "98765 43210"),
            ("tel. 555 0199", "555 0199"),
            ("ring 60 56 85 91 tonight", "60 56 85 91"),
            ("Telefon: 60-56-85-91", "60-56-85-91"),
            ("texted 4155550100 twice", "4155550100"),
            ("please call 07700900123", "07700900123"),
            ("Phone:\n(99) 123-456", "(99) 123-456"),
            ("555 0199 (home)", "555 0199"),
            ("\u{7535}\u{8bdd} 138 0013 8000", "138 0013 8000"),
            ("T\u{e9}l : 612 34 56 78", "612 34 56 78"),
            ("Celular: 11 91234-5678", "11 91234-5678"),
            ("\u{422}\u{435}\u{43b}.: 8 912 345 67 89", "8 912 345 67 89"),
            ("call 01.84.17.61.18 or", "01.84.17.61.18"),
        ]);
    }

    #[test]
    fn hard_negatives() {
        for text in [
            // Ambiguous shapes next to a phone word, but read as another number: a reference,
            // an amount, a thing the word before names, a decimal or version.
            "please call about 754-271-235",
            "call me about order 612 34 56 78",
            "call: the total is 699 956 915 EUR",
            "call: it costs \u{20ac} 699 956 915",
            "call re #126065405000",
            "call me at 83.1655555, -130.25",
            "call about 11.30.169",
            "call about SKU 44-2326-55",
            "isbn 0-02-914273-3 (no international prefix split over groups)",
            // Ambiguous shapes without a phone word.
            "ref 4155550100 now",
            "we sold 612 34 56 78 units",
            "population 78 651 450",
            "amount 699 956 915 EUR",
            "ref 555 0199",
            "invoice 60-56-85-91",
            "order 13800138000",
            "0041234567",
            // NANP rules.
            "see 415-555-01000",
            "see 415-555-0100-2",
            "see 415-555.0100",
            "see 115-555-0100",
            "see 415-055-0100",
            "see 415-155-0100",
            "x415-555-0100",
            "415-555-0100x",
            "f(415) 555-0100",
            "9.415.555.0100",
            "415.555.0100.7",
            "list 7 415 555 0100",
            "list 415 555 0100 7",
            // Other digit structures.
            "ssn 536-22-1234",
            "on 2026-11-26 and 26.11.2026",
            "at 12:30:45",
            "version 1.2.3",
            "ip 192.168.1.10",
            "card 4111 1111 1111 1111",
            "id 123e4567-e89b-12d3-a456-426614174000",
            "numbers 1 2 3 4 5 6 7 8 9 10",
            "isbn 978-3-16-148410-0",
            "sha 0a1b2c3d4e5f6a7b8c9d0e1f",
            "at 51.5074, -0.1278",
            "price 0.99 or 1 299 000",
            "part 0-8493-0102-3",
            "ratio 0.5-1.5",
            "+1234567",
            "+0 415 555 0100",
            "+1 415 555 01000",
            "+1 115 555 0100",
            "+1234567890123456",
            "+1.2.3.4.5.6.7.8",
            "+28 1234 5678",
            "5+14155550100",
            "a+14155550100",
            "+44 20 7946 0958-1234-5678",
            // Dates and postal codes, even next to a phone word.
            "phone on 03 04 2023 10 30",
            "call 26.11.2026",
            "call on 2026 11 26 at 10",
            "contact: 1 Main St, SF 94105-1234",
            "contato: CEP 01310-100",
            // Trunk-prefix shapes that are too short, too long or not grouped so.
            "code 01 23",
            "code 012 345",
            "code 01 23 45 67 89 01",
            "code 0 12 345 6789",
            "code 00 12 34",
            "v0.1.2.3",
            "serial 0123456789",
        ] {
            assert!(phones(text).is_empty(), "{text}: {:?}", phones(text));
        }
    }
}
