//! French social security numbers (`fr_nir`, NIR / numéro de sécurité sociale).
//!
//! Fifteen characters: sex (1, 2, or 3, 4, 7, 8 for provisional numbers), year, month (01–12,
//! or 20 and 30–99 when unknown), département (01–99, Corsica `2A`/`2B`), commune, order
//! number, then a two-digit key: 97 minus the first thirteen digits mod 97 (`2A` counting as
//! 19, `2B` as 18; INSEE). Compact (`184127645108946`) or spaced as on the carte Vitale
//! (`1 84 12 76 451 089 46`). The key passes one random number in 97: no context needed.

use super::{at, back, left_clear, right_clear, Run};

/// Group lengths of the printed form.
const LAYOUT: [usize; 7] = [1, 2, 2, 2, 3, 3, 2];

pub(super) fn find(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let s = run.start;
    // The first run: the sex digit alone (spaced), the whole number, or up to Corsica's `2`.
    if !matches!(run.len(), 1 | 6 | 15) || back(b, s, 1) == b'+' || !left_clear(text, s) {
        return None;
    }
    let spaced = at(b, s + 1) == b' ';
    let mut chars = [0u8; 15];
    let (mut pos, mut n) = (s, 0);
    for (i, &g) in LAYOUT.iter().enumerate() {
        if spaced && i > 0 {
            if at(b, pos) != b' ' {
                return None;
            }
            pos += 1;
        }
        for _ in 0..g {
            let c = at(b, pos);
            // Corsica's département is the only place a letter may stand.
            let corsica = n == 6 && at(b, pos - 1) == b'2' && matches!(c, b'A' | b'B');
            if !(c.is_ascii_digit() || corsica) {
                return None;
            }
            *chars.get_mut(n)? = c;
            (pos, n) = (pos + 1, n + 1);
        }
    }
    (right_clear(text, pos) && valid(&chars)).then_some((s, pos))
}

fn valid(c: &[u8; 15]) -> bool {
    let num = |from: usize, to: usize| {
        c.get(from..to)
            .unwrap_or_default()
            .iter()
            .fold(0u64, |v, d| v * 10 + u64::from(d.wrapping_sub(b'0')))
    };
    let month = num(3, 5);
    let mut body = num(0, 13);
    match c.get(5..7) {
        Some(b"2A") => body = num(0, 5) * 100_000_000 + 19_000_000 + num(7, 13),
        Some(b"2B") => body = num(0, 5) * 100_000_000 + 18_000_000 + num(7, 13),
        _ => {}
    }
    matches!(c.first(), Some(b'1' | b'2' | b'3' | b'4' | b'7' | b'8'))
        && ((1..=12).contains(&month) || month >= 20)
        && num(5, 7) != 0
        && num(13, 15) == 97 - body % 97
}

#[cfg(test)]
mod tests {
    use crate::detect::test_support::texts_of;
    use crate::detect::{numeric::scan, DetectorId, DetectorSet};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn nirs(text: &str) -> Vec<&str> {
        texts_of(text, DetectorId::FrNir, |t, out| {
            scan(t, DetectorSet::EMPTY.with(DetectorId::FrNir), out)
        })
    }

    #[test]
    fn compact_spaced_and_corsica() {
        for (text, want) in [
            ("NIR 211060795503274.", "211060795503274"),
            (
                "carte vitale 1 93 01 14 537 734 12",
                "1 93 01 14 537 734 12",
            ),
            ("n\u{b0} 2 11 06 81 435 165 60", "2 11 06 81 435 165 60"),
            ("Corse 184122A45108933", "184122A45108933"),
            ("Corse 1 84 12 2A 451 089 33", "1 84 12 2A 451 089 33"),
        ] {
            assert_eq!(nirs(text), vec![want], "{text}");
        }
    }

    #[test]
    fn hard_negatives() {
        for text in [
            "211060795503275", // key
            "511060795503274", // sex digit
            "211150795503274", // month 15
            "2110607955032740",
            "21106079550327",
            "1 84 12 2C 451 089 33",
            "1 84 12 76 451 08946",
            "184122B45108933", // 2A's key under 2B
            "order 100000000000000",
        ] {
            assert!(nirs(text).is_empty(), "{text}");
        }
    }
}
