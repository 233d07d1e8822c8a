//! US Social Security numbers (`us_ssn`).
//!
//! `AAA-GG-SSSS` or `AAA GG SSSS` anywhere; a plain 9-digit run only when `ssn`, `ss#`,
//! `social security` or `itin` (any case) appears in the 32 bytes before it. Area 000 and 666, group 00,
//! serial 0000 and the well-known invalid numbers (078-05-1120, 219-09-9999, 123-45-6789) are
//! rejected. Areas 900–999 are accepted: the IRS issues ITINs (individual taxpayer
//! identification numbers) there, in the same shape, and they identify a person as much. A space-separated one must not be part of a longer list of
//! space-separated numbers.

use super::{
    at, back, context_before, exact_digits, left_clear, right_clear, spaced_alone, value, Run,
};

/// How far before a plain 9-digit run a context word may start.
const CONTEXT_BYTES: usize = 32;
/// Words that make a plain 9-digit run an SSN or ITIN (stems: `SSNs`, `ITIN:` too).
const CONTEXT_WORDS: [&str; 4] = ["ssn*", "ss#*", "social security*", "itin*"];

pub(super) fn find(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let s = run.start;
    if back(b, s, 1) == b'+' || !left_clear(text, s) {
        return None;
    }
    match run.len() {
        3 => {
            let sep = at(b, run.end);
            let g = run.end + 1;
            let shaped = (sep == b'-' || sep == b' ')
                && exact_digits(b, g, 2)
                && at(b, g + 2) == sep
                && exact_digits(b, g + 3, 4);
            let end = g + 7;
            let ok = shaped
                && right_clear(text, end)
                && (sep == b'-' || spaced_alone(b, s, end))
                && valid(value(b, s, 3), value(b, g, 2), value(b, g + 3, 4));
            ok.then_some((s, end))
        }
        9 => {
            let ok = right_clear(text, run.end)
                && context_before(b, s, CONTEXT_BYTES, &CONTEXT_WORDS)
                && valid(value(b, s, 3), value(b, s + 3, 2), value(b, s + 5, 4));
            ok.then_some((s, run.end))
        }
        _ => None,
    }
}

fn valid(area: u32, group: u32, serial: u32) -> bool {
    area != 0
        && area != 666
        && group != 0
        && serial != 0
        && !matches!(
            (area, group, serial),
            (78, 5, 1120) | (219, 9, 9999) | (123, 45, 6789)
        )
}

#[cfg(test)]
mod tests {
    use super::super::scan;
    use crate::detect::{DetectorId, DetectorSet};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn ssns(text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        scan(text, DetectorSet::all(), &mut out);
        out.iter()
            .filter(|f| f.detector == DetectorId::UsSsn)
            .map(|f| (f.start, f.end))
            .collect()
    }

    fn ssn_texts(text: &str) -> Vec<&str> {
        ssns(text).into_iter().map(|(s, e)| &text[s..e]).collect()
    }

    #[test]
    fn dashed_and_spaced() {
        assert_eq!(ssns("My SSN is 536-22-1234."), vec![(10, 21)]);
        assert_eq!(ssn_texts("ssn: 536 22 1234, thanks"), vec!["536 22 1234"]);
        assert_eq!(
            ssn_texts("Employee 001-01-0001 and 899-99-9999"),
            vec!["001-01-0001", "899-99-9999"]
        );
        // ITINs (areas 900-999) are taxpayer ids in the same shape.
        assert_eq!(
            ssn_texts("ITIN 912-70-1234 and 999-88-7777; ssn 900701234"),
            vec!["912-70-1234", "999-88-7777", "900701234"]
        );
        // No context word needed for the separated shapes.
        assert_eq!(ssn_texts("(536-22-1234)"), vec!["536-22-1234"]);
    }

    #[test]
    fn plain_nine_digits_need_context() {
        assert_eq!(ssn_texts("SSN: 536221234"), vec!["536221234"]);
        assert_eq!(ssn_texts("ss# 536221234"), vec!["536221234"]);
        assert_eq!(
            ssn_texts("Social Security number 536221234."),
            vec!["536221234"]
        );
        assert!(ssn_texts("invoice 536221234").is_empty());
        assert!(ssn_texts("ssn was mentioned long long ago, then 536221234").is_empty());
        assert!(ssn_texts("classname 536221234").is_empty());
        assert!(ssn_texts("ssn 5362212345").is_empty());
    }

    #[test]
    fn invalid_numbers() {
        for text in [
            "000-12-3456",
            "666-12-3456",
            "900-00-3456",
            "999-12-0000",
            "536-00-1234",
            "536-22-0000",
            "078-05-1120",
            "219-09-9999",
            "123-45-6789",
            "ssn 123456789",
            "ssn 666221234",
        ] {
            assert!(ssns(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn hard_negatives() {
        for text in [
            "x536-22-1234",
            "536-22-1234x",
            "1-536-22-1234",
            "536-22-1234-5",
            "536-22-12345",
            "5536-22-1234",
            "536-22 1234",
            "536 22-1234",
            "536--22--1234",
            "values 7 536 22 1234",
            "values 536 22 1234 7",
            "on 2026-11-26",
            "+536-22-1234",
            "536.22.1234",
        ] {
            assert!(ssns(text).is_empty(), "{text}");
        }
    }
}
