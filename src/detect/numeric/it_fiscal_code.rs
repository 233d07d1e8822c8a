//! Italian fiscal codes (`it_fiscal_code`, codice fiscale).
//!
//! Sixteen characters (DM 23/12/1976): three surname and three name letters, two year digits,
//! a month letter (`ABCDEHLMPRST`), two day digits (01–31, 41–71 for women), the municipality
//! (a letter and three digits), then a check letter computed from the fifteen before it. Any
//! digit may be replaced by a letter of `LMNPQRSTUV` (omocodia, for codes that would clash).
//! Any case. The check letter passes one random code in 26 and the shape is strict: no context
//! needed. Anchored on the first digit run, so a code whose every digit was replaced is not
//! found.

use super::{at, word_at, word_before, Run};

/// Where a code's first digit run can start, counted from the code's start.
const DIGIT_POSITIONS: [usize; 7] = [6, 7, 9, 10, 12, 13, 14];
const MONTHS: &[u8] = b"ABCDEHLMPRST";
const OMOCODIA: &[u8] = b"LMNPQRSTUV";
/// Values of characters in odd positions (first, third...), for 0–9 and A–Z alike.
const ODD: [u32; 26] = [
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
];

pub(super) fn find(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    // Year, day and municipality digits: no run in a code is longer than three.
    if run.len() > 3 {
        return None;
    }
    DIGIT_POSITIONS.iter().find_map(|&k| {
        let start = run.start.checked_sub(k)?;
        let code = b.get(start..start + 16)?;
        if !code.first().is_some_and(u8::is_ascii_alphabetic) || word_before(text, start) {
            return None;
        }
        let mut c = [0u8; 16];
        for (slot, ch) in c.iter_mut().zip(code) {
            *slot = ch.to_ascii_uppercase();
        }
        // The run must be the code's first digits: nothing before it in the code is a digit.
        let first_digits = code.get(..k)?.iter().all(|ch| !ch.is_ascii_digit());
        let ok = first_digits
            && valid(&c)
            && !word_before(text, start)
            && !word_at(text, start + 16)
            && at(b, start + 16) != b'-';
        ok.then_some((start, start + 16))
    })
}

fn valid(c: &[u8; 16]) -> bool {
    let letter = |i: usize| c.get(i).is_some_and(u8::is_ascii_uppercase);
    // A digit, or its omocodia letter: the digit's value.
    let digit = |i: usize| {
        let ch = c.get(i).copied().unwrap_or(0);
        if ch.is_ascii_digit() {
            Some(u32::from(ch - b'0'))
        } else {
            OMOCODIA.iter().position(|&o| o == ch).map(|v| v as u32)
        }
    };
    let numeric_ok = [6, 7, 9, 10, 12, 13, 14]
        .iter()
        .all(|&i| digit(i).is_some());
    let day = digit(9).unwrap_or(0) * 10 + digit(10).unwrap_or(0);
    let shape = (0..6).all(letter)
        && numeric_ok
        && c.get(8).is_some_and(|m| MONTHS.contains(m))
        && ((1..=31).contains(&day) || (41..=71).contains(&day))
        && letter(11)
        && letter(15);
    shape && check_letter(c) == c.get(15).copied()
}

fn check_letter(c: &[u8; 16]) -> Option<u8> {
    let mut sum = 0;
    for (i, &ch) in c.iter().take(15).enumerate() {
        let v = if ch.is_ascii_digit() {
            ch - b'0'
        } else {
            ch.checked_sub(b'A')?
        };
        sum += if i % 2 == 0 {
            *ODD.get(usize::from(v))?
        } else {
            u32::from(v)
        };
    }
    Some(b'A' + (sum % 26) as u8)
}

#[cfg(test)]
mod tests {
    use crate::detect::test_support::texts_of;
    use crate::detect::{numeric::scan, DetectorId, DetectorSet};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn codes(text: &str) -> Vec<&str> {
        texts_of(text, DetectorId::ItFiscalCode, |t, out| {
            scan(t, DetectorSet::EMPTY.with(DetectorId::ItFiscalCode), out)
        })
    }

    #[test]
    fn codes_in_text() {
        for (text, want) in [
            ("CF RSSMRA85T10A562S.", "RSSMRA85T10A562S"),
            ("codice fiscale: MRTMTT91D08F205J", "MRTMTT91D08F205J"),
            ("(BNZVCN32S10E573Z)", "BNZVCN32S10E573Z"),
            ("lower case rssmra85t10a562s too", "rssmra85t10a562s"),
            // Omocodia: the last digit, or the year, replaced by letters.
            ("CF MRTMTT91D08F20RE", "MRTMTT91D08F20RE"),
            ("CF MRTMTTVLD08F205I", "MRTMTTVLD08F205I"),
        ] {
            assert_eq!(codes(text), vec![want], "{text}");
        }
    }

    #[test]
    fn hard_negatives() {
        for text in [
            "RSSMRA85T10A562T", // check letter
            "RSSMRA85Z10A562S", // Z is no month
            "RSSMRA85T32A562S", // day 32
            "XRSSMRA85T10A562S",
            "RSSMRA85T10A562SX",
            "RSSMR185T10A562S",
            "MRTMTTVLDLUFRLRZ", // every digit replaced: no anchor (documented)
        ] {
            assert!(codes(text).is_empty(), "{text}");
        }
    }
}
