//! Spanish DNI and NIE numbers (`es_dni_nie`): the NIF of residents.
//!
//! DNI: eight digits and a control letter (`12345678Z`, `12345678-Z`); NIE: `X`, `Y` or `Z`,
//! seven digits and a control letter (`X1234567L`, `X-1234567-L`); no space before the letter
//! (a lone capital after a number is too often a word). The letter is
//! `TRWAGMYFPDXBNJZSQVHLCKE` indexed by the number mod 23 (the NIE's initial counting as 0, 1,
//! 2), Ministerio del Interior; upper case. One random letter in 23 passes and the shape
//! (digits glued to a letter) is rare in prose: no context needed.

use super::{at, back, left_clear, value, word_at, word_before, Run};

const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

pub(super) fn find(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let s = run.start;
    let (start, lead) = match run.len() {
        8 if left_clear(text, s) && back(b, s, 1) != b'+' => (s, 0),
        7 => {
            // `X1234567`, `X-1234567`.
            let dash = usize::from(back(b, s, 1) == b'-');
            let i = s.checked_sub(1 + dash)?;
            let lead = match at(b, i) {
                b'X' => 0,
                b'Y' => 1,
                b'Z' => 2,
                _ => return None,
            };
            if word_before(text, i) {
                return None;
            }
            (i, lead)
        }
        _ => return None,
    };
    let number = lead * 10_000_000 + value(b, s, run.len());
    let mut p = run.end;
    if at(b, p) == b'-' {
        p += 1;
    }
    let letter = LETTERS.get((number % 23) as usize)?;
    (at(b, p) == *letter && !word_at(text, p + 1)).then_some((start, p + 1))
}

#[cfg(test)]
mod tests {
    use crate::detect::test_support::texts_of;
    use crate::detect::{numeric::scan, DetectorId, DetectorSet};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn ids(text: &str) -> Vec<&str> {
        texts_of(text, DetectorId::EsDniNie, |t, out| {
            scan(t, DetectorSet::EMPTY.with(DetectorId::EsDniNie), out)
        })
    }

    #[test]
    fn dni_and_nie() {
        for (text, want) in [
            // The Ministry's example: 12345678 mod 23 = 14, Z.
            ("DNI 12345678Z.", "12345678Z"),
            ("DNI 83501180-W", "83501180-W"),
            ("NIF 90498120C", "90498120C"),
            ("NIE Z4872623D", "Z4872623D"),
            ("NIE X-1835664-B", "X-1835664-B"),
            ("(Y0000000Z)", "Y0000000Z"),
        ] {
            assert_eq!(ids(text), vec![want], "{text}");
        }
    }

    #[test]
    fn hard_negatives() {
        for text in [
            "12345678A",  // wrong letter
            "12345678z",  // lower case
            "12345678ZA", // glued to more letters
            "112345678Z",
            "A1234567L", // NIE starts X, Y or Z
            "AX1234567L",
            "X12345678L",
            "1234567Z",
            "12345678-",
            "12345678 Z", // a lone letter after a number is too often a word
        ] {
            assert!(ids(text).is_empty(), "{text}");
        }
    }
}
