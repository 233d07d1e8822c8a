//! Indian Permanent Account Numbers (`in_pan`).
//!
//! Ten characters, upper case: five letters, four digits, a letter (`ABCPE1234F`); the fourth
//! letter is the holder's type as the Income Tax Department assigns it (P person, C company,
//! H Hindu undivided family, F firm, A association of persons, T trust, B body of
//! individuals, L local authority, J artificial juridical person, G government). The last
//! letter is a check character whose algorithm is not published, so it is not verified; the
//! shape alone is distinctive enough in text.

use super::{at, word_at, word_before, Run};

const HOLDER_TYPES: &[u8] = b"PCHFATBLJG";

pub(super) fn find(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    if run.len() != 4 {
        return None;
    }
    let start = run.start.checked_sub(5)?;
    let letters = b.get(start..run.start)?;
    let ok = letters.iter().all(u8::is_ascii_uppercase)
        && letters.get(3).is_some_and(|t| HOLDER_TYPES.contains(t))
        && !word_before(text, start)
        && at(b, run.end).is_ascii_uppercase()
        && !word_at(text, run.end + 1);
    ok.then_some((start, run.end + 1))
}

#[cfg(test)]
mod tests {
    use crate::detect::test_support::texts_of;
    use crate::detect::{numeric::scan, DetectorId, DetectorSet};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn pans(text: &str) -> Vec<&str> {
        texts_of(text, DetectorId::InPan, |t, out| {
            scan(t, DetectorSet::EMPTY.with(DetectorId::InPan), out)
        })
    }

    #[test]
    fn pan_shapes() {
        for (text, want) in [
            ("PAN ABCPE1234F.", "ABCPE1234F"),
            ("company AAACR5055K, filed", "AAACR5055K"),
            ("(BNZAA2318J)", "BNZAA2318J"),
        ] {
            assert_eq!(pans(text), vec![want], "{text}");
        }
    }

    #[test]
    fn hard_negatives() {
        for text in [
            "ABCDE1234F", // D is no holder type
            "abcpe1234f", // lower case
            "XABCPE1234F",
            "ABCPE1234FG",
            "ABCPE12345F",
            "ABCPE123F",
            "ABCP1234F",
            "ABCPE1234",
            "ABCPE-1234-F",
        ] {
            assert!(pans(text).is_empty(), "{text}");
        }
    }
}
