//! Phone numbers (`phone`).
//!
//! - International: `+`, a country code not starting with 0, then 8–15 digits in total, in groups
//!   split by single spaces, dashes or dots, with at most one parenthesised group of 1–4 digits
//!   (`+44 (0)20 7946 0958`, `+1 (415) 555-0100`, `+14155550100`). At most two single-digit
//!   groups (keeps `+1.2.3.4.5.6.7.8` out). Country code 1 must be a valid 11-digit NANP number.
//! - North American without `+`: `(415) 555-0100`, `415-555-0100`, `415.555.0100`,
//!   `415 555 0100`, optionally led by `1` and a separator (`1-800-555-0199`,
//!   `1 (800) 555-0199`). The two separators of `NXX-NXX-XXXX` are the same; area code and
//!   exchange start with 2–9. Plain 10-digit runs are not phones.

use super::{
    at, back, digits_at, exact_digits, left_clear, right_clear, spaced_alone, word_before, Run,
};

const MAX_DIGITS: usize = 15;
const MIN_INTERNATIONAL_DIGITS: usize = 8;

pub(super) fn find(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let prev = run.start.checked_sub(1);
    match (back(b, run.start, 1), prev) {
        (b'+', Some(plus)) => international(text, plus),
        (b'(', Some(open)) => {
            if word_before(text, open) {
                return None;
            }
            let (end, sep) = nanp_paren(b, open)?;
            finish(text, open, end, sep)
        }
        _ => north_american(text, run),
    }
}

fn is_sep(c: u8) -> bool {
    matches!(c, b' ' | b'-' | b'.')
}

/// NANP area codes and exchanges start with 2–9.
fn nanp_ok(area: u8, exchange: u8) -> bool {
    (b'2'..=b'9').contains(&area) && (b'2'..=b'9').contains(&exchange)
}

fn international(text: &str, plus: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    if word_before(text, plus) {
        return None;
    }
    let mut digits = [0u8; MAX_DIGITS];
    let (mut n, mut singles, mut paren, mut pos) = (0, 0, false, plus + 1);
    loop {
        let g = digits_at(b, pos, MAX_DIGITS + 1);
        if g == 0 || n + g > MAX_DIGITS {
            return None;
        }
        digits
            .get_mut(n..n + g)?
            .copy_from_slice(b.get(pos..pos + g)?);
        n += g;
        pos += g;
        if g == 1 {
            singles += 1;
        }
        let c = at(b, pos);
        if is_sep(c) && at(b, pos + 1).is_ascii_digit() {
            pos += 1;
            continue;
        }
        let open = if is_sep(c) { pos + 1 } else { pos };
        if !paren && at(b, open) == b'(' {
            if let Some((len, next)) = paren_group(b, open) {
                if n + len > MAX_DIGITS {
                    return None;
                }
                digits
                    .get_mut(n..n + len)?
                    .copy_from_slice(b.get(open + 1..open + 1 + len)?);
                n += len;
                paren = true;
                pos = next;
                continue;
            }
        }
        break;
    }
    let d = digits.get(..n)?;
    let plausible = match d.first() {
        Some(b'1') => n == 11 && nanp_ok(at(d, 1), at(d, 4)),
        Some(b'2'..=b'9') => n >= MIN_INTERNATIONAL_DIGITS,
        _ => false,
    };
    (plausible && singles <= 2 && right_clear(text, pos)).then_some((plus, pos))
}

/// `(` 1–4 digits `)` at `open`, followed by a digit group (directly or after one separator):
/// the digit count and where that next group starts.
fn paren_group(b: &[u8], open: usize) -> Option<(usize, usize)> {
    let len = digits_at(b, open + 1, 5);
    if !(1..=4).contains(&len) || at(b, open + 1 + len) != b')' {
        return None;
    }
    let q = open + 2 + len;
    if at(b, q).is_ascii_digit() {
        Some((len, q))
    } else if is_sep(at(b, q)) && at(b, q + 1).is_ascii_digit() {
        Some((len, q + 1))
    } else {
        None
    }
}

fn north_american(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let s = run.start;
    if !left_clear(text, s) {
        return None;
    }
    let (end, sep) = if run.len() == 1 && at(b, s) == b'1' && is_sep(at(b, run.end)) {
        let lead = at(b, run.end);
        let p = run.end + 1;
        if at(b, p) == b'(' {
            if lead == b'.' {
                return None;
            }
            nanp_paren(b, p)?
        } else {
            let (end, sep) = nanp_plain(b, p)?;
            if sep != lead {
                return None;
            }
            (end, sep)
        }
    } else if run.len() == 3 {
        nanp_plain(b, s)?
    } else {
        return None;
    };
    finish(text, s, end, sep)
}

/// `NXX<sep>NXX<sep>XXXX` at `p`, the same separator twice: its end and separator.
fn nanp_plain(b: &[u8], p: usize) -> Option<(usize, u8)> {
    let sep = at(b, p + 3);
    let ok = exact_digits(b, p, 3)
        && is_sep(sep)
        && exact_digits(b, p + 4, 3)
        && at(b, p + 7) == sep
        && exact_digits(b, p + 8, 4)
        && nanp_ok(at(b, p), at(b, p + 4));
    ok.then_some((p + 12, sep))
}

/// `(NXX)` at `open`, an optional space or dash, then `NXX<sep>XXXX`: its end and `sep`.
fn nanp_paren(b: &[u8], open: usize) -> Option<(usize, u8)> {
    if !exact_digits(b, open + 1, 3) || at(b, open + 4) != b')' {
        return None;
    }
    let mut q = open + 5;
    if matches!(at(b, q), b' ' | b'-') {
        q += 1;
    }
    let sep = at(b, q + 3);
    let ok = exact_digits(b, q, 3)
        && is_sep(sep)
        && exact_digits(b, q + 4, 4)
        && nanp_ok(at(b, open + 1), at(b, q));
    ok.then_some((q + 8, sep))
}

fn finish(text: &str, s: usize, end: usize, sep: u8) -> Option<(usize, usize)> {
    let ok = right_clear(text, end) && (sep != b' ' || spaced_alone(text.as_bytes(), s, end));
    ok.then_some((s, end))
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

    #[test]
    fn north_american_shapes() {
        assert_eq!(phone_spans("Call (415) 555-0100 now."), vec![(5, 19)]);
        for (text, want) in [
            ("call 415-555-0100 today", "415-555-0100"),
            ("call 415.555.0100.", "415.555.0100"),
            ("call 415 555 0100, ok", "415 555 0100"),
            ("call (415)555-0100", "(415)555-0100"),
            ("call (415) 555 0100", "(415) 555 0100"),
            ("toll free 1-800-555-0199!", "1-800-555-0199"),
            ("toll free 1 800 555 0199", "1 800 555 0199"),
            ("toll free 1.800.555.0199", "1.800.555.0199"),
            ("toll free 1 (800) 555-0199", "1 (800) 555-0199"),
            ("tel:415-555-0100", "415-555-0100"),
        ] {
            assert_eq!(phones(text), vec![want], "{text}");
        }
    }

    #[test]
    fn international_shapes() {
        for (text, want) in [
            ("call +1 415 555 0100.", "+1 415 555 0100"),
            ("call +1-415-555-0100", "+1-415-555-0100"),
            ("call +1 (415) 555-0100", "+1 (415) 555-0100"),
            ("call +14155550100 now", "+14155550100"),
            ("London +44 20 7946 0958", "+44 20 7946 0958"),
            ("Berlin +49 (0)30 12345678", "+49 (0)30 12345678"),
            ("Paris +33 1 23 45 67 89.", "+33 1 23 45 67 89"),
            ("Tokyo +81.3.1234.5678", "+81.3.1234.5678"),
            ("(+442079460958)", "+442079460958"),
            ("+44 20 7946 0958 (office)", "+44 20 7946 0958"),
        ] {
            assert_eq!(phones(text), vec![want], "{text}");
        }
    }

    #[test]
    fn hard_negatives() {
        for text in [
            "call 4155550100 now",
            "call 415-555-01000",
            "call 415-555-0100-2",
            "call 415-555.0100",
            "call 015-555-0100",
            "call 115-555-0100",
            "call 415-055-0100",
            "call 415-155-0100",
            "call (015) 555-0100",
            "x415-555-0100",
            "415-555-0100x",
            "f(415) 555-0100",
            "9.415.555.0100",
            "415.555.0100.7",
            "list 7 415 555 0100",
            "list 415 555 0100 7",
            "ssn 536-22-1234",
            "on 2026-11-26 and 26.11.2026",
            "at 12:30:45",
            "version 1.2.3",
            "ip 192.168.1.10",
            "card 4111 1111 1111 1111",
            "id 123e4567-e89b-12d3-a456-426614174000",
            "numbers 1 2 3 4 5 6 7 8 9 10",
            "+1234567",
            "+0 415 555 0100",
            "+1 415 555 01000",
            "+1 115 555 0100",
            "+1234567890123456",
            "+1.2.3.4.5.6.7.8",
            "5+14155550100",
            "a+14155550100",
            "+44 20 7946 0958-1234-5678",
        ] {
            assert!(phones(text).is_empty(), "{text}");
        }
    }
}
