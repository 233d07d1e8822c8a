//! International Bank Account Numbers (`iban`).
//!
//! Two uppercase country letters, two check digits, then the BBAN (digits and uppercase
//! letters), compact (`DE89370400440532013000`) or printed in groups of four split by single
//! spaces (`GB82 WEST 1234 5698 7654 32`). The total length must be the country's registered
//! IBAN length and the ISO 7064 mod-97 remainder must be 1. Anchored on the check-digit run.

use super::{at, word_at, word_before, Run};

const MAX_LEN: usize = 34;

/// IBAN lengths from the SWIFT IBAN registry.
const LENGTHS: [([u8; 2], usize); 89] = [
    (*b"AD", 24),
    (*b"AE", 23),
    (*b"AL", 28),
    (*b"AT", 20),
    (*b"AZ", 28),
    (*b"BA", 20),
    (*b"BE", 16),
    (*b"BG", 22),
    (*b"BH", 22),
    (*b"BI", 27),
    (*b"BR", 29),
    (*b"BY", 28),
    (*b"CH", 21),
    (*b"CR", 22),
    (*b"CY", 28),
    (*b"CZ", 24),
    (*b"DE", 22),
    (*b"DJ", 27),
    (*b"DK", 18),
    (*b"DO", 28),
    (*b"EE", 20),
    (*b"EG", 29),
    (*b"ES", 24),
    (*b"FI", 18),
    (*b"FK", 18),
    (*b"FO", 18),
    (*b"FR", 27),
    (*b"GB", 22),
    (*b"GE", 22),
    (*b"GI", 23),
    (*b"GL", 18),
    (*b"GR", 27),
    (*b"GT", 28),
    (*b"HN", 28),
    (*b"HR", 21),
    (*b"HU", 28),
    (*b"IE", 22),
    (*b"IL", 23),
    (*b"IQ", 23),
    (*b"IS", 26),
    (*b"IT", 27),
    (*b"JO", 30),
    (*b"KW", 30),
    (*b"KZ", 20),
    (*b"LB", 28),
    (*b"LC", 32),
    (*b"LI", 21),
    (*b"LT", 20),
    (*b"LU", 20),
    (*b"LV", 21),
    (*b"LY", 25),
    (*b"MC", 27),
    (*b"MD", 24),
    (*b"ME", 22),
    (*b"MK", 19),
    (*b"MN", 20),
    (*b"MR", 27),
    (*b"MT", 31),
    (*b"MU", 30),
    (*b"NI", 28),
    (*b"NL", 18),
    (*b"NO", 15),
    (*b"OM", 23),
    (*b"PK", 24),
    (*b"PL", 28),
    (*b"PS", 29),
    (*b"PT", 25),
    (*b"QA", 29),
    (*b"RO", 24),
    (*b"RS", 22),
    (*b"RU", 33),
    (*b"SA", 24),
    (*b"SC", 31),
    (*b"SD", 18),
    (*b"SE", 24),
    (*b"SI", 19),
    (*b"SK", 24),
    (*b"SM", 27),
    (*b"SO", 23),
    (*b"ST", 25),
    (*b"SV", 28),
    (*b"TL", 23),
    (*b"TN", 24),
    (*b"TR", 26),
    (*b"UA", 29),
    (*b"VA", 22),
    (*b"VG", 24),
    (*b"XK", 20),
    (*b"YE", 30),
];

fn country_length(cc: [u8; 2]) -> Option<usize> {
    LENGTHS
        .binary_search_by(|(c, _)| c.cmp(&cc))
        .ok()
        .and_then(|i| LENGTHS.get(i))
        .map(|(_, len)| *len)
}

pub(super) fn find(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let s = run.start.checked_sub(2)?;
    let cc = [at(b, s), at(b, s + 1)];
    if !cc.iter().all(u8::is_ascii_uppercase) || run.len() < 2 || word_before(text, s) {
        return None;
    }
    let len = country_length(cc)?;
    let grouped = at(b, s + 4) == b' ';
    let mut chars = [0u8; MAX_LEN];
    let mut pos = s;
    for (n, slot) in chars.iter_mut().enumerate().take(len) {
        if grouped && n > 0 && n % 4 == 0 {
            if at(b, pos) != b' ' {
                return None;
            }
            pos += 1;
        }
        let c = at(b, pos);
        if !(c.is_ascii_digit() || c.is_ascii_uppercase()) {
            return None;
        }
        *slot = c;
        pos += 1;
    }
    if word_at(text, pos) {
        return None;
    }
    let iban = chars.get(..len)?;
    let check = iban.get(2..4)?;
    let check = check.iter().fold(0, |v, c| v * 10 + c.wrapping_sub(b'0'));
    ((2..=98).contains(&check) && mod97(iban) == 1).then_some((s, pos))
}

/// ISO 7064 mod 97-10 of the IBAN moved to `BBAN ++ country ++ check`, letters as 10..=35,
/// computed digit by digit.
fn mod97(iban: &[u8]) -> u32 {
    let (head, bban) = iban.split_at(4.min(iban.len()));
    bban.iter().chain(head).fold(0u32, |rem, &c| {
        if c.is_ascii_digit() {
            (rem * 10 + u32::from(c - b'0')) % 97
        } else {
            (rem * 100 + u32::from(c.wrapping_sub(b'A')) + 10) % 97
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::scan;
    use super::*;
    use crate::detect::{DetectorId, DetectorSet};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn ibans(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        scan(text, DetectorSet::all(), &mut out);
        out.iter()
            .filter(|f| f.detector == DetectorId::Iban)
            .map(|f| &text[f.start..f.end])
            .collect()
    }

    #[test]
    fn table_is_sorted_and_sane() {
        assert!(LENGTHS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(LENGTHS.iter().all(|(_, l)| (15..=MAX_LEN).contains(l)));
        assert_eq!(country_length(*b"DE"), Some(22));
        assert_eq!(country_length(*b"NO"), Some(15));
        assert_eq!(country_length(*b"RU"), Some(33));
        assert_eq!(country_length(*b"US"), None);
    }

    #[test]
    fn registry_examples_validate() {
        for iban in [
            "AD1200012030200359100100",
            "BE68539007547034",
            "BR1800360305000010009795493C1",
            "CH9300762011623852957",
            "DE89370400440532013000",
            "FR1420041010050500013M02606",
            "GB29NWBK60161331926819",
            "GB82WEST12345698765432",
            "IT60X0542811101000000123456",
            "LC55HEMM000100010012001200023015",
            "MT84MALT011000012345MTLCAST001S",
            "NL91ABNA0417164300",
            "NO9386011117947",
        ] {
            assert_eq!(ibans(iban), vec![iban], "{iban}");
        }
    }

    #[test]
    fn compact_and_grouped_in_sentences() {
        let text = "Pay to DE89370400440532013000, ref 42.";
        let mut out = Vec::new();
        scan(text, DetectorSet::EMPTY.with(DetectorId::Iban), &mut out);
        assert_eq!((out[0].start, out[0].end, out.len()), (7, 29, 1));
        for (text, want) in [
            (
                "IBAN: GB82 WEST 1234 5698 7654 32 (Barclays)",
                "GB82 WEST 1234 5698 7654 32",
            ),
            (
                "Konto DE89 3704 0044 0532 0130 00.",
                "DE89 3704 0044 0532 0130 00",
            ),
            ("NL91 ABNA 0417 1643 00 EUR", "NL91 ABNA 0417 1643 00"),
            ("(BE68 5390 0754 7034)", "BE68 5390 0754 7034"),
        ] {
            assert_eq!(ibans(text), vec![want], "{text}");
        }
    }

    #[test]
    fn hard_negatives() {
        for text in [
            "DE88370400440532013000",
            "DE89370400440532013001",
            "DE8937040044053201300",
            "DE893704004405320130000",
            "DE89 3704 0044 0532 0130 0",
            "DE89 37040044 0532 0130 00",
            "DE89  3704 0044 0532 0130 00",
            "XDE89370400440532013000",
            "DE89370400440532013000X",
            "de89370400440532013000",
            "US89370400440532013000",
            "ABC123 XY12 ZZ99 QQ77",
            "ISO 9001 and HTTP2 and AB12CD34",
            "GB00WEST12345698765432",
        ] {
            assert!(ibans(text).is_empty(), "{text}");
        }
    }
}
