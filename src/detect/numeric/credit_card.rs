//! Payment card numbers (`credit_card`).
//!
//! 12–19 digits, either one contiguous run or groups split by one space or one dash (the same
//! separator throughout): `4-4-4-4`, `4-4-4-4-1..3`, `4-4-4-1..3`, `4-4-4` (12-digit Maestro),
//! `4-6-5` (Amex), `4-6-4` (Diners). The number must pass Luhn (ISO/IEC 7812-1) and its
//! issuer prefix must belong to a scheme that issues that length ([`SCHEMES`]): Visa,
//! Mastercard, Amex, JCB (also the 15-digit `1800`/`2131` numbers), Diners, Discover,
//! UnionPay, Maestro (12–19 digits), Mir, RuPay, Verve, Troy, BORICA, UzCard, Humo, Napas,
//! GPN. Not matched: UATP (airline cards, prefix `1`, 15 digits), whose one-digit prefix
//! would make every Luhn-valid 15-digit id starting with 1 a card. Dash-grouped numbers must be the whole dash-joined structure; space-grouped
//! ones may be followed by more numbers (`4111 1111 1111 1111 12/27`).

use super::{at, back, digits_at, left_clear, right_clear, Run};

const MIN_DIGITS: usize = 12;
const MAX_DIGITS: usize = 19;
const MAX_GROUPS: usize = 5;

pub(super) fn find(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    if back(b, run.start, 1) == b'+' || !left_clear(text, run.start) {
        return None;
    }
    match run.len() {
        MIN_DIGITS..=MAX_DIGITS => {
            let digits = b.get(run.start..run.end)?;
            (right_clear(text, run.end) && is_card(digits)).then_some((run.start, run.end))
        }
        4 => grouped(text, run),
        _ => None,
    }
}

fn grouped(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let sep = at(b, run.end);
    if sep != b' ' && sep != b'-' {
        return None;
    }
    let mut digits = [0u8; MAX_DIGITS];
    let mut lens = [0usize; MAX_GROUPS];
    let mut ends = [0usize; MAX_GROUPS];
    let (mut total, mut groups, mut pos) = (0, 0, run.start);
    while groups < MAX_GROUPS {
        let n = digits_at(b, pos, 7);
        if n == 0 || n > 6 || total + n > MAX_DIGITS {
            break;
        }
        digits
            .get_mut(total..total + n)?
            .copy_from_slice(b.get(pos..pos + n)?);
        total += n;
        pos += n;
        *lens.get_mut(groups)? = n;
        *ends.get_mut(groups)? = pos;
        groups += 1;
        if at(b, pos) != sep || !at(b, pos + 1).is_ascii_digit() {
            break;
        }
        pos += 1;
    }
    // Longest acceptable grouping first.
    (3..=groups).rev().find_map(|k| {
        let lens = lens.get(..k)?;
        let end = *ends.get(k - 1)?;
        let digits = digits.get(..lens.iter().sum::<usize>())?;
        (layout_ok(lens) && right_clear(text, end) && is_card(digits)).then_some((run.start, end))
    })
}

/// Group lengths printed on real cards.
fn layout_ok(lens: &[usize]) -> bool {
    match lens {
        [4, 6, 4] | [4, 6, 5] | [4, 4, 4] => true,
        [head @ .., last] if lens.len() >= 4 => {
            head.iter().all(|&g| g == 4) && (1..=4).contains(last)
        }
        _ => false,
    }
}

/// Luhn-valid, 12–19 digits, with an issuer prefix (IIN) whose scheme issues that length.
pub(super) fn is_card(digits: &[u8]) -> bool {
    (MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()) && brand_fits(digits) && luhn(digits)
}

/// Card lengths as a bit set (bit n: n digits).
const fn lens(from: u32, to: u32) -> u32 {
    (u32::MAX >> (31 - to)) & !((1 << from) - 1)
}

/// Issuer ranges of ISO/IEC 7812 card schemes, from the schemes' published IIN tables:
/// (prefix digits, first, last, lengths). A number is a card when any range holds its prefix
/// and that range's scheme issues its length.
const SCHEMES: [(u32, u32, u32, u32); 26] = [
    (1, 4, 4, 1 << 13 | 1 << 16 | 1 << 19), // Visa
    (2, 51, 55, 1 << 16),                   // Mastercard
    (4, 2221, 2720, 1 << 16),               // Mastercard 2-series
    (2, 34, 34, 1 << 15),                   // American Express
    (2, 37, 37, 1 << 15),                   // American Express
    // JCB issues from 3528-3589 (RuPay-JCB 353, 356 within); the rest of the 35 block is
    // assigned to no other scheme, and number generators and older IIN tables give JCB all of
    // it: a Luhn-valid 16-19 digit number there is a card number either way.
    (2, 35, 35, lens(16, 19)),                    // JCB
    (4, 1800, 1800, 1 << 15),                     // JCB, 15-digit numbers
    (4, 2131, 2131, 1 << 15),                     // JCB, 15-digit numbers
    (3, 300, 305, lens(14, 19)),                  // Diners Club International
    (4, 3095, 3095, lens(14, 19)),                // Diners Club International
    (2, 36, 36, lens(14, 19)),                    // Diners Club International
    (2, 38, 39, lens(14, 19)),                    // Diners Club International
    (4, 6011, 6011, lens(16, 19)),                // Discover
    (3, 644, 649, lens(16, 19)),                  // Discover
    (2, 62, 62, lens(16, 19)),                    // UnionPay (and Discover 622126-622925)
    (2, 81, 81, lens(16, 19)),                    // UnionPay 81, RuPay 81
    (2, 82, 82, 1 << 16),                         // RuPay
    (4, 2200, 2204, lens(16, 19)),                // Mir
    (4, 2205, 2205, 1 << 16),                     // BORICA
    (4, 9792, 9792, 1 << 16),                     // Troy
    (4, 8600, 8600, 1 << 16),                     // UzCard
    (4, 9860, 9860, 1 << 16),                     // Humo
    (4, 9704, 9704, 1 << 16 | 1 << 19),           // Napas
    (4, 1946, 1946, 1 << 16 | 1 << 18 | 1 << 19), // GPN
    // Maestro's range (50, 56-69, Mastercard's rules: 12-19 digits); within it Discover 65,
    // RuPay 60, 65, 508, Verve 506099-507964 and 650002-650027, InterPayment 636,
    // InstaPayment 637-639, UkrCard 604001-604200, Dankort 5019 issue 16-19 digits. Twelve
    // digits only from Maestro's own published IINs (below): a 12-digit Luhn-valid number
    // starting 5 or 6 is otherwise an account id or an order number as often as a card.
    (2, 50, 50, lens(13, 19)),
    (2, 56, 69, lens(13, 19)),
];

/// Maestro's published IINs, whose cards may have 12 digits.
const MAESTRO_12: [u32; 9] = [5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763];

fn brand_fits(d: &[u8]) -> bool {
    let prefix = |k: u32| {
        d.iter()
            .take(k as usize)
            .fold(0u32, |v, c| v * 10 + u32::from(c.wrapping_sub(b'0')))
    };
    let len = d.len() as u32;
    if len == 12 {
        return MAESTRO_12.contains(&prefix(4));
    }
    SCHEMES
        .iter()
        .any(|&(k, lo, hi, lengths)| (lo..=hi).contains(&prefix(k)) && lengths & (1 << len) != 0)
}

pub(super) fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let v = u32::from(c.wrapping_sub(b'0'));
            match (i % 2 == 1, v * 2) {
                (false, _) => v,
                (true, d) if d > 9 => d - 9,
                (true, d) => d,
            }
        })
        .sum();
    sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use super::super::scan;
    use super::*;
    use crate::detect::{DetectorId, DetectorSet};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn cards(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        scan(text, DetectorSet::all(), &mut out);
        out.iter()
            .filter(|f| f.detector == DetectorId::CreditCard)
            .map(|f| &text[f.start..f.end])
            .collect()
    }

    fn only_cards(text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        scan(
            text,
            DetectorSet::EMPTY.with(DetectorId::CreditCard),
            &mut out,
        );
        out.iter().map(|f| (f.start, f.end)).collect()
    }

    #[test]
    fn luhn_and_brands() {
        for n in [
            "4111111111111111",
            "4012888888881881",
            "4222222222222",
            "5555555555554444",
            "2223003122003222",
            "378282246310005",
            "371449635398431",
            "6011111111111117",
            "3530111333300000",
            "30569309025904",
            "6200000000000005",
            "6759649826438453",
            // Numbers built for these tests from each scheme's IIN and length, Luhn digit last.
            "3590111333300007",    // JCB's 35 block, outside 3528-3589
            "180000000000002",     // JCB 15
            "213100000000001",     // JCB 15
            "501800000009",        // Maestro 12
            "630400000000",        // Maestro 12
            "675900000000",        // Maestro UK 12
            "5000000000005",       // Maestro 13
            "2200000000000004",    // Mir
            "2204123456789012343", // Mir 19
            "9792000000000003",    // Troy
            "8600000000000007",    // UzCard
            "9860000000000000",    // Humo
            "9704000000000000",    // Napas
            "1946000000000005",    // GPN
            "8100000000000002",    // UnionPay / RuPay 81
            "8200000000000001",    // RuPay 82
            "506099000000000008",  // Verve 18
            "622126000000000000",  // UnionPay 18
            "30000000000004",      // Diners 14
        ] {
            assert!(is_card(n.as_bytes()), "{n}");
        }
        for n in [
            "4111111111111112",    // Luhn
            "3782822463100052",    // Luhn-valid, but Amex has 15 digits
            "5555555555554",       // Luhn-valid, but Mastercard has 16 digits
            "35301113333000",      // Luhn-valid, but JCB has 16-19 digits
            "35901113333007",      // Luhn-valid, the 35 block has 16-19 digits
            "3000000000007",       // Luhn-valid, but Diners has 14-19 digits
            "1234567812345670",    // Luhn-valid, no issuer starts with 1
            "9999999999999995",    // Luhn-valid, no issuer starts with 9
            "0000000000000000",    // Luhn-valid zeros
            "41111111111111113",   // Luhn-valid, but Visa has 13, 16 or 19 digits
            "411111111111",        // too short
            "123456789015",        // Luhn-valid 12 digits, not a Maestro IIN (an AWS account id)
            "600000000007",        // Luhn-valid 12 digits in Maestro's range, not a 12-digit IIN
            "360000000008",        // Luhn-valid, but Diners has 14-19 digits
            "1800000000000002",    // Luhn-valid, but JCB 1800 numbers have 15 digits
            "100000000000009",     // Luhn-valid 15 digits from 1: UATP is not matched
            "9792000000000000003", // Luhn-valid, but Troy has 16 digits
            "7000000000000005",    // Luhn-valid, no scheme starts with 7
        ] {
            assert!(!is_card(n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn contiguous_and_grouped_in_sentences() {
        let text = "Please charge 4111111111111111 today.";
        assert_eq!(only_cards(text), vec![(14, 30)]);
        assert_eq!(
            cards("Visa 4111 1111 1111 1111 exp 12/27"),
            vec!["4111 1111 1111 1111"]
        );
        assert_eq!(
            cards("card: 5555-5555-5555-4444."),
            vec!["5555-5555-5555-4444"]
        );
        assert_eq!(
            cards("amex 3782 822463 10005, thanks"),
            vec!["3782 822463 10005"]
        );
        assert_eq!(cards("diners 3056-930902-5904"), vec!["3056-930902-5904"]);
        assert_eq!(
            cards("maestro 6759 6498 2643 8453 7 ok"),
            vec!["6759 6498 2643 8453"]
        );
        // 4-4-4-4-1 is taken whole when the 17 digits are themselves a valid card.
        assert_eq!(
            cards("maestro 6759 6498 2643 8453 3 ok"),
            vec!["6759 6498 2643 8453 3"]
        );
        assert_eq!(
            cards("(4111111111111111)\n4012888888881881"),
            vec!["4111111111111111", "4012888888881881"]
        );
        assert_eq!(
            cards("list: 4111111111111111,4012888888881881"),
            vec!["4111111111111111", "4012888888881881"]
        );
        assert_eq!(
            cards("card 4111 1111 1111 1111 1111 ok"),
            vec!["4111 1111 1111 1111"]
        );
        assert_eq!(cards("maestro 5018 0000 0009."), vec!["5018 0000 0009"]);
        assert_eq!(cards("jcb 1800 0000 0000 002"), vec!["1800 0000 0000 002"]);
        assert_eq!(cards("jcb 180000000000002."), vec!["180000000000002"]);
    }

    #[test]
    fn hard_negatives() {
        for text in [
            "card 4111 1111 1111 1112 declined",
            "card 4111111111111112 declined",
            "x4111111111111111",
            "4111111111111111x",
            "_4111111111111111",
            "94111111111111111111 is one long run",
            "ref 4111-1111-1111-1111-7",
            "ref 9-4111-1111-1111-1111",
            "mixed 4111 1111-1111 1111",
            "double  4111  1111  1111  1111",
            "order #1234567890123456",
            "amount 4111111111111111.50",
            "+4111111111111111",
            "call +1 415 555 0100 or 415-555-0100",
            "on 2026-11-26 12:30",
            "tracking 1Z999AA10123456784",
            "3782-822463-10005-1",
            // Luhn-valid 4-4-4 groups outside Maestro's 12-digit IINs.
            "ref 1234 5678 9015",
            "ref 6000 0000 0007",
            // A 13-digit Unix millisecond timestamp, an AWS account id.
            "at 1764000000000 ms",
            "account 123456789015",
        ] {
            assert!(cards(text).is_empty(), "{text}");
        }
    }
}
