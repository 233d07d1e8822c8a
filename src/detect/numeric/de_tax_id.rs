//! German tax identification numbers (`de_tax_id`, Steuer-IdNr).
//!
//! Eleven digits, the first not 0; among the first ten exactly one digit occurs twice or
//! three times (never three in a row) and no other repeats; the last is the ISO 7064
//! MOD 11,10 check digit (BZSt). Grouped 2-3-3-3 as on the tax office's letters
//! (`65 929 970 489`) it stands alone; compact (`65929970489`), eleven digits are also
//! phone numbers, so a tax word ([`CONTEXT`]) must appear in the [`CONTEXT_BYTES`] before it.

use super::{
    back, context_before, digit_values, layout_at, left_clear, right_clear, spaced_alone, Run,
};

const CONTEXT_BYTES: usize = 48;
const CONTEXT: &[&str] = &["steuer*", "idnr*", "identifikationsnummer*", "tax*", "tin"];

pub(super) fn find(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let s = run.start;
    if !matches!(run.len(), 2 | 11) || back(b, s, 1) == b'+' || !left_clear(text, s) {
        return None;
    }
    let mut d = [0u8; 11];
    let (end, compact) = layout_at(b, s, &[2, 3, 3, 3], b" ", &mut d)?;
    let ok = valid(&digit_values(&d))
        && right_clear(text, end)
        && spaced_alone(b, s, end)
        && (!compact || context_before(b, s, CONTEXT_BYTES, CONTEXT));
    ok.then_some((s, end))
}

fn valid(d: &[u32; 11]) -> bool {
    let [first, .., check] = *d;
    let body = d.get(..10).unwrap_or_default();
    let mut counts = [0u8; 10];
    for &v in body {
        if let Some(c) = counts.get_mut(v as usize) {
            *c += 1;
        }
    }
    let repeated: Vec<u8> = counts.iter().copied().filter(|&c| c > 1).collect();
    let triple_in_a_row = body
        .windows(3)
        .any(|w| w.first() == w.get(1) && w.get(1) == w.get(2));
    let mut product = 10;
    for &v in body {
        let mut sum = (v + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = sum * 2 % 11;
    }
    let expected = (11 - product) % 10;
    first != 0 && matches!(repeated.as_slice(), [2] | [3]) && !triple_in_a_row && check == expected
}

#[cfg(test)]
mod tests {
    use crate::detect::test_support::texts_of;
    use crate::detect::{numeric::scan, DetectorId, DetectorSet};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn ids(text: &str) -> Vec<&str> {
        texts_of(text, DetectorId::DeTaxId, |t, out| {
            scan(t, DetectorSet::EMPTY.with(DetectorId::DeTaxId), out)
        })
    }

    #[test]
    fn grouped_alone_compact_with_a_tax_word() {
        for (text, want) in [
            ("IdNr. 96 220 152 341", "96 220 152 341"),
            ("Ihre Steuer-ID: 59640521573", "59640521573"),
            ("tax id 62820321759.", "62820321759"),
            ("Nummer 59 640 521 573", "59 640 521 573"),
            // A digit three times, never three in a row.
            ("IdNr 65 929 970 489", "65 929 970 489"),
        ] {
            assert_eq!(ids(text), vec![want], "{text}");
        }
    }

    #[test]
    fn hard_negatives() {
        for text in [
            "call 59640521573",      // compact without a tax word
            "Steuer-ID 59640521574", // check digit
            "Steuer-ID 09640521573", // leading 0
            "Steuer-ID 12345678903", // no repeated digit
            "Steuer-ID 11123456789", // a digit three times in a row
            "Steuer-ID 59 640 521 573 1",
            "Steuer-ID 59-640-521-573",
        ] {
            assert!(ids(text).is_empty(), "{text}");
        }
    }
}
