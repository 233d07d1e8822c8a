//! Payment card numbers (`credit_card`).
//!
//! 13–19 digits, either one contiguous run or groups split by one space or one dash (the same
//! separator throughout): `4-4-4-4`, `4-4-4-4-1..3`, `4-4-4-1..3`, `4-6-5` (Amex), `4-6-4`
//! (Diners). The number must pass Luhn and start with a plausible issuer prefix whose usual
//! length matches. Dash-grouped numbers must be the whole dash-joined structure; space-grouped
//! ones may be followed by more numbers (`4111 1111 1111 1111 12/27`).

use super::{at, back, digits_at, left_clear, right_clear, Run};

const MAX_DIGITS: usize = 19;
const MAX_GROUPS: usize = 5;

pub(super) fn find(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    if back(b, run.start, 1) == b'+' || !left_clear(text, run.start) {
        return None;
    }
    match run.len() {
        13..=MAX_DIGITS => {
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
        [4, 6, 4] | [4, 6, 5] => true,
        [head @ .., last] if lens.len() >= 4 => {
            head.iter().all(|&g| g == 4) && (1..=4).contains(last)
        }
        _ => false,
    }
}

/// Luhn-valid, 13–19 digits, with an issuer prefix matching the length.
pub(super) fn is_card(digits: &[u8]) -> bool {
    (13..=MAX_DIGITS).contains(&digits.len()) && brand_fits(digits) && luhn(digits)
}

fn brand_fits(d: &[u8]) -> bool {
    let prefix = |k: usize| {
        d.iter()
            .take(k)
            .fold(0u32, |v, c| v * 10 + u32::from(c.wrapping_sub(b'0')))
    };
    let (p1, p2, p3, p4) = (prefix(1), prefix(2), prefix(3), prefix(4));
    let len = d.len();
    if p1 == 4 {
        // Visa
        matches!(len, 13 | 16 | 19)
    } else if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) {
        // Mastercard
        len == 16
    } else if p2 == 34 || p2 == 37 {
        // American Express
        len == 15
    } else if (3528..=3589).contains(&p4) {
        // JCB
        len >= 16
    } else if (300..=305).contains(&p3) || matches!(p2, 36 | 38 | 39) {
        // Diners Club
        len >= 14
    } else if p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || p2 == 62 {
        // Discover, UnionPay
        len >= 16
    } else {
        // Maestro (50, 56–58, 6x): 12–19 digits
        p1 == 6 || p2 == 50 || (56..=58).contains(&p2)
    }
}

fn luhn(digits: &[u8]) -> bool {
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
        ] {
            assert!(is_card(n.as_bytes()), "{n}");
        }
        for n in [
            "4111111111111112",  // Luhn
            "3782822463100052",  // Luhn-valid, but Amex has 15 digits
            "5555555555554",     // Luhn-valid, but Mastercard has 16 digits
            "35301113333000",    // Luhn-valid, but JCB has 16-19 digits
            "3000000000007",     // Luhn-valid, but Diners has 14-19 digits
            "1234567812345670",  // Luhn-valid, no issuer starts with 1
            "9999999999999995",  // Luhn-valid, no issuer starts with 9
            "0000000000000000",  // Luhn-valid zeros
            "41111111111111113", // Luhn-valid, but Visa has 13, 16 or 19 digits
            "411111111111",      // too short
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
        ] {
            assert!(cards(text).is_empty(), "{text}");
        }
    }
}
