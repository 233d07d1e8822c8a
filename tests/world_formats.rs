//! Regressions of issue 13 item 3: the shapes an outside measurement found missed, each
//! written with other digits than the report's (same shape, same checksum rules), through
//! the public scanner with every detector on.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use policy_gateway::detect::{self, DetectorId, DetectorSet, Finding};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn found(text: &str) -> Vec<(&'static str, &str)> {
    let mut out: Vec<Finding> = Vec::new();
    detect::scan(text, DetectorSet::all(), &mut out);
    out.iter()
        .map(|f| (f.detector.name(), &text[f.start..f.end]))
        .collect()
}

fn assert_found(detector: DetectorId, cases: &[(&str, &str)]) {
    for (text, want) in cases {
        let got = found(text);
        assert!(
            got.contains(&(detector.name(), *want)),
            "{text:?}: want {want:?} as {}, got {got:?}",
            detector.name()
        );
    }
}

#[test]
fn phones_missed_before() {
    assert_found(
        DetectorId::Phone,
        &[
            // UK mobile with its trunk prefix, grouped 5-3-3.
            ("Mobile 07700 900 123 after six", "07700 900 123"),
            // A 10-digit trunk-prefixed number grouped 4-2-2-2.
            ("Phone: 0491 57 01 23", "0491 57 01 23"),
            // Eight digits in dashed pairs, with a phone word.
            ("Phone:\n40-12-34-56", "40-12-34-56"),
            // A parenthesised two-digit area code and 3-3 digits, with a phone word.
            ("Phone: (98) 123-456", "(98) 123-456"),
            // NANP with `+1`, dashes and an extension.
            ("Desk: +1-212-555-0147x12345", "+1-212-555-0147x12345"),
            // `001`, an international prefix, then a NANP number.
            ("Fax: 001-212-555-0147", "001-212-555-0147"),
            // NANP with dots and an extension.
            ("Fax: 212.555.0147x123", "212.555.0147x123"),
        ],
    );
}

#[test]
fn cards_missed_before() {
    assert_found(
        DetectorId::CreditCard,
        &[
            // 15-digit JCB numbers (IINs 1800 and 2131), Luhn-valid.
            ("card 180000000000002 on file", "180000000000002"),
            ("card 213100000000001 on file", "213100000000001"),
            // 12-digit Maestro numbers (IINs 5018 and 6304), Luhn-valid.
            ("card 501800000009 on file", "501800000009"),
            ("card 630400000000 on file", "630400000000"),
        ],
    );
}

#[test]
fn lower_case_iban_missed_before() {
    assert_found(
        DetectorId::Iban,
        &[(
            "send to gb82west12345698765432 today",
            "gb82west12345698765432",
        )],
    );
}

#[test]
fn ssn_areas_900_to_999_missed_before() {
    assert_found(
        DetectorId::UsSsn,
        &[
            ("SSN 912-70-1234", "912-70-1234"),
            ("id 999-88-7777", "999-88-7777"),
        ],
    );
    // 000, 666, group 00 and serial 0000 stay rejected in every area.
    for text in ["000-12-3456", "666-12-3456", "950-00-1234", "950-12-0000"] {
        assert!(!found(text).iter().any(|(d, _)| *d == "us_ssn"), "{text}");
    }
}
