//! Indian Aadhaar numbers (`in_aadhaar`).
//!
//! Twelve digits, compact or grouped 4-4-4 by spaces or dashes (`6423 2322 1832`), first digit
//! 2–9 (UIDAI never issues 0 or 1 there), the last digit a Verhoeff check digit. Verhoeff
//! passes one random number in ten, so an Aadhaar word ([`CONTEXT`]) must appear in the
//! [`CONTEXT_BYTES`] before it.

use super::{back, context_before, layout_at, left_clear, right_clear, spaced_alone, Run};

const CONTEXT_BYTES: usize = 48;
const CONTEXT: &[&str] = &[
    "aadhaar*",
    "aadhar*",
    "adhaar*",
    "uid",
    "uidai",
    "\u{906}\u{927}\u{93e}\u{930}*",
];

/// Verhoeff's dihedral group D5 multiplication table.
const D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];

/// Verhoeff's position permutations.
const P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

/// The Verhoeff checksum of ASCII digits ending in their check digit is 0.
fn verhoeff(digits: &[u8]) -> bool {
    let c = digits.iter().rev().enumerate().fold(0u8, |c, (i, d)| {
        let p = P
            .get(i % 8)
            .and_then(|row| row.get(usize::from(d.wrapping_sub(b'0'))))
            .copied()
            .unwrap_or(0);
        D.get(usize::from(c))
            .and_then(|row| row.get(usize::from(p)))
            .copied()
            .unwrap_or(1)
    });
    c == 0
}

pub(super) fn find(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let s = run.start;
    if !matches!(run.len(), 4 | 12) || back(b, s, 1) == b'+' || !left_clear(text, s) {
        return None;
    }
    let mut d = [0u8; 12];
    let (end, _) = layout_at(b, s, &[4, 4, 4], b" -", &mut d)?;
    let ok = matches!(d.first(), Some(b'2'..=b'9'))
        && verhoeff(&d)
        && right_clear(text, end)
        && spaced_alone(b, s, end)
        && context_before(b, s, CONTEXT_BYTES, CONTEXT);
    ok.then_some((s, end))
}

#[cfg(test)]
mod tests {
    use super::verhoeff;
    use crate::detect::test_support::texts_of;
    use crate::detect::{numeric::scan, DetectorId, DetectorSet};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn ids(text: &str) -> Vec<&str> {
        texts_of(text, DetectorId::InAadhaar, |t, out| {
            scan(t, DetectorSet::EMPTY.with(DetectorId::InAadhaar), out)
        })
    }

    #[test]
    fn verhoeff_check() {
        // Verhoeff's published example: 236 with check digit 3.
        assert!(verhoeff(b"2363"));
        assert!(!verhoeff(b"2364"));
        // Every single-digit error and adjacent transposition is caught.
        let good = *b"642323221832";
        assert!(verhoeff(&good));
        for i in 0..12 {
            let mut bad = good;
            bad[i] = b'0' + (bad[i] - b'0' + 1) % 10;
            assert!(!verhoeff(&bad), "digit {i}");
            if i < 11 && good[i] != good[i + 1] {
                let mut swapped = good;
                swapped.swap(i, i + 1);
                assert!(!verhoeff(&swapped), "swap {i}");
            }
        }
    }

    #[test]
    fn with_an_aadhaar_word() {
        for (text, want) in [
            ("Aadhaar: 6423 2322 1832", "6423 2322 1832"),
            ("aadhar no. 606290421474.", "606290421474"),
            ("UID 8245-3789-6565", "8245-3789-6565"),
        ] {
            assert_eq!(ids(text), vec![want], "{text}");
        }
    }

    #[test]
    fn hard_negatives() {
        for text in [
            "ref 6423 2322 1832",      // no Aadhaar word
            "Aadhaar: 6423 2322 1833", // Verhoeff
            "Aadhaar: 1423 2322 1832", // never starts with 0 or 1
            "Aadhaar: 6423 2322-1832", // mixed separators
            "Aadhaar: 6423 2322 1832 7",
            "Aadhaar: 64232322183",
        ] {
            assert!(ids(text).is_empty(), "{text}");
        }
    }
}
