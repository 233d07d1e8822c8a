//! Digit-anchored detectors: `credit_card`, `phone`, `us_ssn`, `iban`, `ipv4` and the
//! national identifiers (`uk_nino`, `ca_sin`, `in_aadhaar`, `in_pan`, `fr_nir`, `de_tax_id`,
//! `es_dni_nie`, `it_fiscal_code`, `br_cpf`, `au_tfn`), which all hold digits: those that
//! start with letters look back a bounded number of bytes from their first digit run.
//!
//! One linear pass visits every maximal run of ASCII digits once. At a run start each enabled
//! validator tries a bounded parse: it reads at most a few dozen bytes past the run start and
//! gives up as soon as a group is too long, so the pass stays O(n) on adversarial input such as
//! megabytes of digits, `1.1.1.1...` or `1-1-1-1...`. The first validator that accepts wins
//! (order: [`VALIDATORS`]: checksummed and specific shapes before phones, whose ambiguous
//! shapes come last) and the pass resumes after its span, so one entity yields one finding.
//! Validators that need a context word read at most a fixed window before the run, and only
//! once its shape passed.
//!
//! Shared boundary rules: a span is never glued to a word character (alphanumeric or `_`) on
//! either side, and (except where a validator says otherwise) never continued by a numeric
//! separator joined to another digit (`7-`, `.5`, `/2`, `:3`), which keeps dates, versions,
//! times and longer digit structures out.

mod au_tfn;
mod br_cpf;
mod ca_sin;
mod credit_card;
mod de_tax_id;
mod es_dni_nie;
mod fr_nir;
mod iban;
mod in_aadhaar;
mod in_pan;
mod ipv4;
mod it_fiscal_code;
mod phone;
mod uk_nino;
mod us_ssn;

use super::{DetectorId, DetectorSet, Finding};

/// A maximal run of ASCII digits, `start..end`.
#[derive(Debug, Clone, Copy)]
struct Run {
    start: usize,
    end: usize,
}

impl Run {
    fn len(self) -> usize {
        self.end - self.start
    }
}

/// Validators in priority order; each returns the span it accepts at a run start.
type Validator = fn(&str, Run) -> Option<(usize, usize)>;

const VALIDATORS: [(DetectorId, Validator); 15] = [
    (DetectorId::Iban, iban::find),
    (DetectorId::Ipv4, ipv4::find),
    (DetectorId::UsSsn, us_ssn::find),
    (DetectorId::CreditCard, credit_card::find),
    (DetectorId::FrNir, fr_nir::find),
    (DetectorId::BrCpf, br_cpf::find),
    (DetectorId::EsDniNie, es_dni_nie::find),
    (DetectorId::InPan, in_pan::find),
    (DetectorId::UkNino, uk_nino::find),
    (DetectorId::ItFiscalCode, it_fiscal_code::find),
    (DetectorId::InAadhaar, in_aadhaar::find),
    (DetectorId::CaSin, ca_sin::find),
    (DetectorId::AuTfn, au_tfn::find),
    (DetectorId::DeTaxId, de_tax_id::find),
    (DetectorId::Phone, phone::find),
];

/// Appends the findings of the digit-anchored detectors in `text` (only those enabled) to
/// `out`, in text order.
pub fn scan(text: &str, enabled: DetectorSet, out: &mut Vec<Finding>) {
    if !VALIDATORS.iter().any(|(id, _)| enabled.contains(*id)) {
        return;
    }
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(start) = next_digit(b, i) {
        let run = Run {
            start,
            end: start + digits_at(b, start, usize::MAX),
        };
        i = run.end;
        let found = VALIDATORS
            .iter()
            .filter(|(id, _)| enabled.contains(*id))
            .find_map(|(id, validate)| validate(text, run).map(|span| (*id, span)));
        if let Some((detector, (start, end))) = found {
            out.push(Finding {
                detector,
                start,
                end,
            });
            i = i.max(end);
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that is an ASCII digit, and no other bit. Exact: every
/// byte's arithmetic stays within the byte (7-bit values, no carry or borrow out of it).
#[inline(always)]
fn digit_bytes(w: u64) -> u64 {
    let low = w & (ONES * 0x7f);
    // 0x80 + (0x39 - low) keeps the high bit for low <= '9'; low + (0x80 - '0') sets it for
    // low >= '0'; bytes >= 0x80 are out by `!w`.
    (ONES * (0x80 + 0x39) - low) & (low + ONES * (0x80 - 0x30)) & !w & HIGH
}

/// The first ASCII digit at or after `from`, eight bytes at a time (the search that finds
/// each run start reads every byte of text between runs).
fn next_digit(b: &[u8], from: usize) -> Option<usize> {
    let rest = b.get(from..)?;
    let mut chunks = rest.chunks_exact(8);
    let mut base = from;
    for c in &mut chunks {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        let m = digit_bytes(u64::from_le_bytes(a));
        if m != 0 {
            return Some(base + (m.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(u8::is_ascii_digit)
        .map(|k| base + k)
}

/// The byte at `i`, or 0 past either end (0 is never a digit, letter or separator).
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// The byte `k` positions before `i`, or 0 before the start.
fn back(b: &[u8], i: usize, k: usize) -> u8 {
    i.checked_sub(k).map_or(0, |j| at(b, j))
}

/// How many ASCII digits start at `i`, counting at most `limit`.
fn digits_at(b: &[u8], i: usize, limit: usize) -> usize {
    b.get(i..).map_or(0, |rest| {
        rest.iter()
            .take(limit)
            .take_while(|c| c.is_ascii_digit())
            .count()
    })
}

/// Exactly `n` digits start at `i` (and no more).
fn exact_digits(b: &[u8], i: usize, n: usize) -> bool {
    digits_at(b, i, n + 1) == n
}

/// The decimal value of the `n` (at most 9) digits at `i`.
fn value(b: &[u8], i: usize, n: usize) -> u32 {
    b.get(i..i + n).map_or(0, |ds| {
        ds.iter()
            .fold(0, |v, c| v * 10 + u32::from(c.wrapping_sub(b'0')))
    })
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// An ASCII byte is a word char (the same as [`is_word`] on it).
fn ascii_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The char before byte offset `i` is a word char (`i` must be a char boundary). An ASCII
/// byte before is that char, read without decoding.
fn word_before(text: &str, i: usize) -> bool {
    match i.checked_sub(1).and_then(|j| text.as_bytes().get(j)) {
        Some(&c) if c.is_ascii() => ascii_word(c),
        _ => text
            .get(..i)
            .and_then(|s| s.chars().next_back())
            .is_some_and(is_word),
    }
}

/// The char at byte offset `i` is a word char (`i` must be a char boundary).
fn word_at(text: &str, i: usize) -> bool {
    match text.as_bytes().get(i) {
        Some(&c) if c.is_ascii() => ascii_word(c),
        _ => text
            .get(i..)
            .and_then(|s| s.chars().next())
            .is_some_and(is_word),
    }
}

fn is_numeric_joint(c: u8) -> bool {
    matches!(c, b'.' | b'-' | b'/' | b':')
}

/// A span may start at `s`: not glued to a word char nor to `<digit><joint>` (`1-`, `3.`).
fn left_clear(text: &str, s: usize) -> bool {
    let b = text.as_bytes();
    let glued_joint = is_numeric_joint(back(b, s, 1)) && back(b, s, 2).is_ascii_digit();
    !word_before(text, s) && !glued_joint
}

/// A span may end at `e`: not glued to a word char nor to `<joint><digit>` (`-1`, `.5`).
fn right_clear(text: &str, e: usize) -> bool {
    let b = text.as_bytes();
    let glued_joint = is_numeric_joint(at(b, e)) && at(b, e + 1).is_ascii_digit();
    !word_at(text, e) && !glued_joint
}

/// A number laid out as `layout` groups at `s`: one run of exactly their total digits
/// (compact), or the groups split by one separator from `seps`, the same throughout, each
/// group exactly its length. Its digits go to `out` (at least the total long); returns the
/// end and whether it was compact.
fn layout_at(
    b: &[u8],
    s: usize,
    layout: &[usize],
    seps: &[u8],
    out: &mut [u8],
) -> Option<(usize, bool)> {
    let total: usize = layout.iter().sum();
    if exact_digits(b, s, total) {
        out.get_mut(..total)?.copy_from_slice(b.get(s..s + total)?);
        return Some((s + total, true));
    }
    let sep = at(b, s + *layout.first()?);
    if !seps.contains(&sep) {
        return None;
    }
    let (mut pos, mut n) = (s, 0);
    for (i, &g) in layout.iter().enumerate() {
        if i > 0 {
            if at(b, pos) != sep {
                return None;
            }
            pos += 1;
        }
        if !exact_digits(b, pos, g) {
            return None;
        }
        out.get_mut(n..n + g)?.copy_from_slice(b.get(pos..pos + g)?);
        (pos, n) = (pos + g, n + g);
    }
    Some((pos, false))
}

/// Digit values of ASCII digits.
fn digit_values<const N: usize>(ascii: &[u8; N]) -> [u32; N] {
    ascii.map(|c| u32::from(c.wrapping_sub(b'0')))
}

/// One of `words` (ASCII case-insensitive) starts at a word start within `window` bytes
/// before `start`. A word ending in `*` is a stem (any letters may follow it); any other must
/// not run on into letters. Bounded: `window * words` byte comparisons.
fn context_before(b: &[u8], start: usize, window: usize, words: &[&str]) -> bool {
    let from = start.saturating_sub(window);
    let hay = b.get(from..start).unwrap_or_default();
    words.iter().any(|word| {
        let (w, stem) = word.strip_suffix('*').map_or((*word, false), |w| (w, true));
        let w = w.as_bytes();
        hay.windows(w.len()).enumerate().any(|(i, s)| {
            let at_start = !back(b, from + i, 1).is_ascii_alphanumeric();
            let ends = stem || !at(b, from + i + w.len()).is_ascii_alphabetic();
            at_start && ends && s.eq_ignore_ascii_case(w)
        })
    })
}

/// A space-separated span `s..e` is not one piece of a longer space-separated number list.
fn spaced_alone(b: &[u8], s: usize, e: usize) -> bool {
    let number_before = back(b, s, 1) == b' ' && back(b, s, 2).is_ascii_digit();
    let number_after = at(b, e) == b' ' && at(b, e + 1).is_ascii_digit();
    !number_before && !number_after
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn all() -> DetectorSet {
        DetectorSet::all()
    }

    /// (detector, matched text) for every finding, in order.
    fn found(text: &str, enabled: DetectorSet) -> Vec<(DetectorId, &str)> {
        crate::detect::test_support::found(text, |t, out| scan(t, enabled, out))
    }

    #[test]
    fn the_word_at_a_time_search_finds_the_first_digit() {
        // Every byte value, alone among non-digits and before a later digit, at every offset
        // of a 8-byte word and in the tail.
        for b in 0..=255u8 {
            for at in 0..20 {
                let mut text = vec![b'x'; 21];
                text[at] = b;
                let want = |t: &[u8], from: usize| {
                    t[from..]
                        .iter()
                        .position(u8::is_ascii_digit)
                        .map(|k| from + k)
                };
                for from in [0, at.saturating_sub(3), at] {
                    assert_eq!(next_digit(&text, from), want(&text, from), "{b} at {at}");
                }
                text[20] = b'7';
                for from in [0, at, 20] {
                    assert_eq!(next_digit(&text, from), want(&text, from), "{b} at {at}");
                }
            }
        }
        assert_eq!(next_digit(b"", 0), None);
        assert_eq!(next_digit(b"12", 5), None);
    }

    /// The byte-level word tests are the char-level ones at every offset (char boundaries
    /// or not, past the end) of texts with letters, digits, marks and punctuation of every
    /// UTF-8 length.
    #[test]
    fn word_tests_read_as_the_char_tests_do() {
        let reference_before = |t: &str, i: usize| {
            t.get(..i)
                .and_then(|s| s.chars().next_back())
                .is_some_and(is_word)
        };
        let reference_at = |t: &str, i: usize| {
            t.get(i..)
                .and_then(|s| s.chars().next())
                .is_some_and(is_word)
        };
        const PIECES: &[&str] = &[
            "a", "Z", "5", "_", " ", "-", ".", "é", "ß", "١", "—", "«", "中", "😀", "\u{300}",
            "\u{0}", "\u{7f}", "\u{a0}", "Ⅻ",
        ];
        let mut seed = 0x1234_5678_9abc_def0_u64;
        let mut next = move |n: usize| (crate::test_rng::xorshift64(&mut seed) % n as u64) as usize;
        for _ in 0..3000 {
            let text: String = (0..next(12)).map(|_| PIECES[next(PIECES.len())]).collect();
            for i in 0..text.len() + 3 {
                assert_eq!(
                    word_before(&text, i),
                    reference_before(&text, i),
                    "{text:?} {i}"
                );
                assert_eq!(word_at(&text, i), reference_at(&text, i), "{text:?} {i}");
            }
        }
    }

    fn spans(text: &str) -> Vec<(DetectorId, usize, usize)> {
        let mut out = Vec::new();
        scan(text, all(), &mut out);
        out.iter().map(|f| (f.detector, f.start, f.end)).collect()
    }

    #[test]
    fn mixed_sentence_exact_spans() {
        let text = "Card 4111 1111 1111 1111, SSN 536-22-1234, call (415) 555-0100, \
                    IBAN DE89370400440532013000, host 192.168.1.10:8080.";
        assert_eq!(
            spans(text),
            vec![
                (DetectorId::CreditCard, 5, 24),
                (DetectorId::UsSsn, 30, 41),
                (DetectorId::Phone, 48, 62),
                (DetectorId::Iban, 69, 91),
                (DetectorId::Ipv4, 98, 110),
            ]
        );
    }

    #[test]
    fn only_enabled_detectors_run() {
        let text = "4111111111111111 and 10.0.0.1 and 536-22-1234";
        let only_ip = DetectorSet::EMPTY.with(DetectorId::Ipv4);
        assert_eq!(found(text, only_ip), vec![(DetectorId::Ipv4, "10.0.0.1")]);
        assert!(found(text, DetectorSet::EMPTY.with(DetectorId::Email)).is_empty());
        assert_eq!(found(text, all()).len(), 3);
    }

    #[test]
    fn non_ascii_neighbours() {
        // A non-ASCII letter glues; non-ASCII punctuation does not.
        assert!(found("é4111111111111111", all()).is_empty());
        assert_eq!(
            found("«4111111111111111» — 10.0.0.1…", all()),
            vec![
                (DetectorId::CreditCard, "4111111111111111"),
                (DetectorId::Ipv4, "10.0.0.1")
            ]
        );
    }

    #[test]
    fn uuids_dates_versions_times_are_not_matched() {
        for text in [
            "id 123e4567-e89b-12d3-a456-426614174000 ok",
            "on 2026-11-26 at 12:30:45",
            "on 26.11.2026 or 11/26/2026",
            "version 1.2.3 and v1.2.3.4 and 1.2.3.4.5",
            "order 1234567890 and 12345678901234567890",
            "values 1, 2, 3, 42, 1000, 99.5%",
        ] {
            assert!(found(text, all()).is_empty(), "{text}");
        }
    }

    fn big(unit: &str) -> String {
        unit.repeat(200_000 / unit.len())
    }

    #[test]
    fn adversarial_inputs_are_linear_and_quiet() {
        for unit in [
            "1", "1.", "1-", "1 ", "1 1-", "12.", "123-", "1234 ", "4111 ", "(1", "+1 ", "+1",
            "1.1 ", "DE89", "DE", "1:", "1/",
        ] {
            let text = big(unit);
            assert!(found(&text, all()).is_empty(), "{unit:?}");
        }
    }

    #[test]
    fn adversarial_repeated_valid_entities_are_all_found() {
        let text = big("10.0.0.1 ");
        assert_eq!(found(&text, all()).len(), text.len() / 9);
        let text = big("4111111111111111, ");
        assert_eq!(found(&text, all()).len(), text.len() / 18);
        let text = big("a 415-555-0100;");
        assert_eq!(found(&text, all()).len(), text.len() / 15);
    }

    /// Random texts over the characters the validators read: no panic (arithmetic included:
    /// tests run with overflow checks), spans on char boundaries, findings in order.
    #[test]
    fn random_shapes_never_panic() {
        const ALPHABET: &[&str] = &[
            "0",
            "1",
            "2",
            "4",
            "7",
            "8",
            "9",
            "00",
            "011",
            " ",
            "-",
            ".",
            "/",
            ":",
            "+",
            "(",
            ")",
            "x",
            "ext. ",
            "A",
            "B",
            "X",
            "Z",
            "GB",
            "gb",
            "é",
            ",",
            "\n",
            "Phone: ",
            "SIN ",
            "TFN ",
            "Aadhaar ",
            "CPF ",
            "Steuer-ID ",
            "2A",
        ];
        let mut seed = 13u64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as usize) % n
        };
        for _ in 0..20_000 {
            let len = 1 + next(40);
            let text: String = (0..len).map(|_| ALPHABET[next(ALPHABET.len())]).collect();
            let got = spans(&text);
            for w in got.windows(2) {
                assert!(w[0].2 <= w[1].1, "{text:?}: {got:?}");
            }
            for (_, s, e) in got {
                assert!(s < e && text.is_char_boundary(s) && text.is_char_boundary(e));
            }
        }
    }

    #[test]
    fn adversarial_long_digit_run_then_entity() {
        let mut text = "9".repeat(200_000);
        text.push_str(" 10.0.0.1 ");
        text.push_str(&"7".repeat(200_000));
        assert_eq!(found(&text, all()), vec![(DetectorId::Ipv4, "10.0.0.1")]);
    }
}
