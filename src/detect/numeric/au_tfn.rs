//! Australian Tax File Numbers (`au_tfn`).
//!
//! Nine digits, compact or grouped 3-3-3 by spaces or dashes (`123 456 782`), whose weighted
//! sum (weights 1, 4, 3, 7, 5, 8, 6, 9, 10) is divisible by 11. That check passes one random
//! number in eleven and the grouping is that of phone numbers, so a TFN word ([`CONTEXT`])
//! must appear in the [`CONTEXT_BYTES`] before it. Older eight-digit TFNs are not matched.

use super::{
    back, context_before, digit_values, layout_at, left_clear, right_clear, spaced_alone, Run,
};

const CONTEXT_BYTES: usize = 48;
const CONTEXT: &[&str] = &["tfn*", "tax file*"];
const WEIGHTS: [u32; 9] = [1, 4, 3, 7, 5, 8, 6, 9, 10];

pub(super) fn find(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let s = run.start;
    if !matches!(run.len(), 3 | 9) || back(b, s, 1) == b'+' || !left_clear(text, s) {
        return None;
    }
    let mut d = [0u8; 9];
    let (end, _) = layout_at(b, s, &[3, 3, 3], b" -", &mut d)?;
    let sum: u32 = digit_values(&d)
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| d * w)
        .sum();
    let ok = sum % 11 == 0
        && right_clear(text, end)
        && spaced_alone(b, s, end)
        && context_before(b, s, CONTEXT_BYTES, CONTEXT);
    ok.then_some((s, end))
}

#[cfg(test)]
mod tests {
    use crate::detect::test_support::texts_of;
    use crate::detect::{numeric::scan, DetectorId, DetectorSet};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn tfns(text: &str) -> Vec<&str> {
        texts_of(text, DetectorId::AuTfn, |t, out| {
            scan(t, DetectorSet::EMPTY.with(DetectorId::AuTfn), out)
        })
    }

    #[test]
    fn with_a_tfn_word() {
        for (text, want) in [
            // The ATO's published example number.
            ("TFN: 123 456 782", "123 456 782"),
            ("my tax file number is 297839335.", "297839335"),
            ("TFN 779-960-584", "779-960-584"),
        ] {
            assert_eq!(tfns(text), vec![want], "{text}");
        }
    }

    #[test]
    fn hard_negatives() {
        for text in [
            "phone 123 456 782",
            "TFN: 123 456 783",
            "TFN: 123 456-782",
            "TFN: 123 456 782 5",
            "TFN: 12345678",
        ] {
            assert!(tfns(text).is_empty(), "{text}");
        }
    }
}
