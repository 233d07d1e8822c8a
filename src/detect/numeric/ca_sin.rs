//! Canadian Social Insurance Numbers (`ca_sin`).
//!
//! Nine digits, compact or grouped 3-3-3 by spaces or dashes (`046 454 286`), Luhn-valid, not
//! starting with 8 (the business numbers of the same register). The Luhn check passes one random
//! nine-digit number in ten and the 3-3-3 grouping is also that of phone numbers and amounts,
//! so a SIN word ([`CONTEXT`]) must appear in the [`CONTEXT_BYTES`] before it.

use super::{back, context_before, layout_at, left_clear, right_clear, spaced_alone, Run};

const CONTEXT_BYTES: usize = 48;
const CONTEXT: &[&str] = &[
    "sin",
    "sin#",
    "social insurance*",
    "nas",
    "assurance sociale*",
    "num\u{e9}ro d'assurance*",
];

pub(super) fn find(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let s = run.start;
    if !matches!(run.len(), 3 | 9) || back(b, s, 1) == b'+' || !left_clear(text, s) {
        return None;
    }
    let mut d = [0u8; 9];
    let (end, _) = layout_at(b, s, &[3, 3, 3], b" -", &mut d)?;
    let ok = d.first() != Some(&b'8')
        && super::credit_card::luhn(&d)
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

    fn sins(text: &str) -> Vec<&str> {
        texts_of(text, DetectorId::CaSin, |t, out| {
            scan(t, DetectorSet::EMPTY.with(DetectorId::CaSin), out)
        })
    }

    #[test]
    fn with_a_sin_word() {
        for (text, want) in [
            // The Government of Canada's example number.
            ("SIN: 046 454 286", "046 454 286"),
            ("my social insurance number is 615-947-892.", "615-947-892"),
            ("NAS 377824321", "377824321"),
            (
                "Num\u{e9}ro d'assurance sociale : 645 749 466",
                "645 749 466",
            ),
        ] {
            assert_eq!(sins(text), vec![want], "{text}");
        }
    }

    #[test]
    fn hard_negatives() {
        for text in [
            "call 615 947 892",      // no SIN word
            "SIN: 615 947 893",      // Luhn
            "SIN: 815 947 892",      // 8: business numbers
            "SIN: 615 947-892",      // mixed separators
            "SIN: 615 947 892 1",    // part of a longer list
            "sine wave 615 947 892", // not the word SIN
            "SIN: 2026-11-26",
        ] {
            assert!(sins(text).is_empty(), "{text}");
        }
    }
}
