//! International Bank Account Numbers (`iban`).
//!
//! Two country letters, two check digits, then the BBAN (digits and letters), compact
//! (`DE89370400440532013000`) or printed in groups of four split by single spaces
//! (`GB82 WEST 1234 5698 7654 32`), in any case: ISO 13616 prints IBANs in upper case but
//! people and forms write `gb82west…` too, and the check treats letters case-insensitively.
//! The total length must be the country's registered IBAN length and the ISO 7064 mod-97
//! remainder must be 1. Anchored on the check-digit run.

use super::{at, word_at, word_before, Run};

const MAX_LEN: usize = 34;

/// BBAN structures from the SWIFT IBAN registry (release 101): runs of `n` digits, `a`
/// letters, `c` letters or digits. The IBAN's length is 4 plus their sum.
const BBANS: [([u8; 2], &str); 89] = [
    (*b"AD", "8n12c"),
    (*b"AE", "19n"),
    (*b"AL", "8n16c"),
    (*b"AT", "16n"),
    (*b"AZ", "4a20c"),
    (*b"BA", "16n"),
    (*b"BE", "12n"),
    (*b"BG", "4a6n8c"),
    (*b"BH", "4a14c"),
    (*b"BI", "23n"),
    (*b"BR", "23n1a1c"),
    (*b"BY", "4c4n16c"),
    (*b"CH", "5n12c"),
    (*b"CR", "18n"),
    (*b"CY", "8n16c"),
    (*b"CZ", "20n"),
    (*b"DE", "18n"),
    (*b"DJ", "23n"),
    (*b"DK", "14n"),
    (*b"DO", "4c20n"),
    (*b"EE", "16n"),
    (*b"EG", "25n"),
    (*b"ES", "20n"),
    (*b"FI", "14n"),
    (*b"FK", "2a12n"),
    (*b"FO", "14n"),
    (*b"FR", "10n11c2n"),
    (*b"GB", "4a14n"),
    (*b"GE", "2a16n"),
    (*b"GI", "4a15c"),
    (*b"GL", "14n"),
    (*b"GR", "7n16c"),
    (*b"GT", "24c"),
    (*b"HN", "4a20n"),
    (*b"HR", "17n"),
    (*b"HU", "24n"),
    (*b"IE", "4a14n"),
    (*b"IL", "19n"),
    (*b"IQ", "4a15n"),
    (*b"IS", "22n"),
    (*b"IT", "1a10n12c"),
    (*b"JO", "4a4n18c"),
    (*b"KW", "4a22c"),
    (*b"KZ", "3n13c"),
    (*b"LB", "4n20c"),
    (*b"LC", "4a24c"),
    (*b"LI", "5n12c"),
    (*b"LT", "16n"),
    (*b"LU", "3n13c"),
    (*b"LV", "4a13c"),
    (*b"LY", "21n"),
    (*b"MC", "10n11c2n"),
    (*b"MD", "20c"),
    (*b"ME", "18n"),
    (*b"MK", "3n10c2n"),
    (*b"MN", "16n"),
    (*b"MR", "23n"),
    (*b"MT", "4a5n18c"),
    (*b"MU", "4a19n3a"),
    (*b"NI", "4a20n"),
    (*b"NL", "4a10n"),
    (*b"NO", "11n"),
    (*b"OM", "3n16c"),
    (*b"PK", "4a16c"),
    (*b"PL", "24n"),
    (*b"PS", "4a21c"),
    (*b"PT", "21n"),
    (*b"QA", "4a21c"),
    (*b"RO", "4a16c"),
    (*b"RS", "18n"),
    (*b"RU", "14n15c"),
    (*b"SA", "2n18c"),
    (*b"SC", "4a20n3a"),
    (*b"SD", "14n"),
    (*b"SE", "20n"),
    (*b"SI", "15n"),
    (*b"SK", "20n"),
    (*b"SM", "1a10n12c"),
    (*b"SO", "19n"),
    (*b"ST", "21n"),
    (*b"SV", "4a20n"),
    (*b"TL", "19n"),
    (*b"TN", "20n"),
    (*b"TR", "6n16c"),
    (*b"UA", "6n19c"),
    (*b"VA", "18n"),
    (*b"VG", "4a16n"),
    (*b"XK", "16n"),
    (*b"YE", "4a4n18c"),
];

/// The BBAN structure registered for country `cc`.
fn bban_format(cc: [u8; 2]) -> Option<&'static str> {
    BBANS
        .binary_search_by(|(c, _)| c.cmp(&cc))
        .ok()
        .and_then(|i| BBANS.get(i))
        .map(|(_, f)| *f)
}

/// The classes of a BBAN structure, one per character: `(count, class)` runs.
fn runs(format: &str) -> impl Iterator<Item = (usize, u8)> + '_ {
    format
        .split_inclusive(|c: char| c.is_ascii_alphabetic())
        .filter_map(|run| {
            let (n, class) = run.split_at(run.len().checked_sub(1)?);
            Some((n.parse().ok()?, *class.as_bytes().first()?))
        })
}

/// The registered IBAN length of country `cc`.
fn country_length(cc: [u8; 2]) -> Option<usize> {
    bban_format(cc).map(|f| 4 + runs(f).map(|(n, _)| n).sum::<usize>())
}

/// The BBAN (upper-cased) fits the registered structure.
fn bban_fits(format: &str, bban: &[u8]) -> bool {
    let mut chars = bban.iter();
    runs(format).all(|(n, class)| {
        chars.by_ref().take(n).all(|c| match class {
            b'n' => c.is_ascii_digit(),
            b'a' => c.is_ascii_uppercase(),
            _ => c.is_ascii_alphanumeric(),
        })
    }) && chars.next().is_none()
}

pub(super) fn find(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let s = run.start.checked_sub(2)?;
    let cc = [
        at(b, s).to_ascii_uppercase(),
        at(b, s + 1).to_ascii_uppercase(),
    ];
    if !cc.iter().all(u8::is_ascii_uppercase) || run.len() < 2 || word_before(text, s) {
        return None;
    }
    let format = bban_format(cc)?;
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
        if !c.is_ascii_alphanumeric() {
            return None;
        }
        *slot = c.to_ascii_uppercase();
        pos += 1;
    }
    if word_at(text, pos) {
        return None;
    }
    let iban = chars.get(..len)?;
    let check = iban.get(2..4)?;
    let check = check.iter().fold(0, |v, c| v * 10 + c.wrapping_sub(b'0'));
    let fits = bban_fits(format, iban.get(4..)?);
    (fits && (2..=98).contains(&check) && mod97(iban) == 1).then_some((s, pos))
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
        assert!(BBANS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(BBANS
            .iter()
            .all(|(cc, _)| (15..=MAX_LEN).contains(&country_length(*cc).unwrap())));
        assert_eq!(country_length(*b"GB"), Some(22));
        assert_eq!(country_length(*b"LC"), Some(32));
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
            (
                "lower case gb82west12345698765432 too",
                "gb82west12345698765432",
            ),
            (
                "iban: gb82 west 1234 5698 7654 32",
                "gb82 west 1234 5698 7654 32",
            ),
            ("Konto De89370400440532013000.", "De89370400440532013000"),
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
            "de89370400440532013001",
            "gb82west1234569876543",
            "US89370400440532013000",
            "ABC123 XY12 ZZ99 QQ77",
            "ISO 9001 and HTTP2 and AB12CD34",
            "GB00WEST12345698765432",
            // Check digits right, but the BBAN breaks the registered structure (GB: 4 letters
            // then 14 digits; DE: 18 digits).
            "GB98123412345678901234",
            "GB98 1234 1234 5678 9012 34",
            "DE973704004405320130A0",
        ] {
            assert!(ibans(text).is_empty(), "{text}");
        }
    }
}
