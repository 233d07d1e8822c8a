//! UK National Insurance numbers (`uk_nino`).
//!
//! Two prefix letters, six digits, a suffix letter A–D, upper case, compact (`AB123456C`) or
//! spaced as HMRC prints them (`AB 12 34 56 C`, `AB 123456 C`). The prefix follows HMRC's
//! allocation rules: the first letter is not D, F, I, Q, U or V, the second not D, F, I, O, Q,
//! U or V, and BG, GB, KN, NK, NT, TN and ZZ are never issued. There is no check digit, so the
//! whole shape, upper case and the suffix are required.

use super::{at, back, exact_digits, word_at, word_before, Run};

pub(super) fn find(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let s = run.start;
    // Compact or `AB 123456 C`: six digits; `AB 12 34 56 C`: three pairs.
    let (start, digits_end) = match run.len() {
        6 if back(b, s, 1) == b' ' => (s.checked_sub(3)?, run.end),
        6 => (s.checked_sub(2)?, run.end),
        2 if back(b, s, 1) == b' ' => {
            let pairs = at(b, s + 2) == b' '
                && exact_digits(b, s + 3, 2)
                && at(b, s + 5) == b' '
                && exact_digits(b, s + 6, 2);
            if !pairs {
                return None;
            }
            (s.checked_sub(3)?, s + 8)
        }
        _ => return None,
    };
    let spaced = digits_end - start > 8;
    if !prefix_ok(at(b, start), at(b, start + 1)) || word_before(text, start) {
        return None;
    }
    let suffix = if spaced { digits_end + 1 } else { digits_end };
    let ok = (!spaced || at(b, digits_end) == b' ')
        && (b'A'..=b'D').contains(&at(b, suffix))
        && !word_at(text, suffix + 1);
    ok.then_some((start, suffix + 1))
}

fn prefix_ok(a: u8, b: u8) -> bool {
    const NEVER: [&[u8; 2]; 7] = [b"BG", b"GB", b"KN", b"NK", b"NT", b"TN", b"ZZ"];
    a.is_ascii_uppercase()
        && b.is_ascii_uppercase()
        && !b"DFIQUV".contains(&a)
        && !b"DFIOQUV".contains(&b)
        && !NEVER.contains(&&[a, b])
}

#[cfg(test)]
mod tests {
    use crate::detect::test_support::texts_of;
    use crate::detect::{numeric::scan, DetectorId, DetectorSet};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn ninos(text: &str) -> Vec<&str> {
        let set = DetectorSet::EMPTY.with(DetectorId::UkNino);
        texts_of(text, DetectorId::UkNino, |t, out| scan(t, set, out))
    }

    #[test]
    fn hmrc_shapes() {
        for (text, want) in [
            ("NI number AB123456C.", "AB123456C"),
            ("NI number AB 12 34 56 C, thanks", "AB 12 34 56 C"),
            ("NI number AB 123456 C", "AB 123456 C"),
            ("(JG 10 37 55 A)", "JG 10 37 55 A"),
        ] {
            assert_eq!(ninos(text), vec![want], "{text}");
        }
    }

    #[test]
    fn hard_negatives() {
        for text in [
            "QQ 12 34 56 C", // HMRC's example prefix, never issued
            "DA123456A",     // D never first
            "AO123456A",     // O never second
            "GB123456A",
            "ZZ123456A",
            "TN 12 34 56 B",
            "AB123456E", // suffix A-D only
            "AB123456",  // no suffix
            "ab123456c", // lower case
            "XAB123456C",
            "AB123456CD",
            "AB1234567C",
            "AB 12 34 5 C",
            "AB 12-34-56 C",
            "part AB 12 34 56 7",
        ] {
            assert!(ninos(text).is_empty(), "{text}");
        }
    }
}
