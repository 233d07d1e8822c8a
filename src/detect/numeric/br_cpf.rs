//! Brazilian CPF numbers (`br_cpf`).
//!
//! Eleven digits whose last two are the Receita Federal's two mod-11 check digits; not all the
//! same digit (those pass the check and are never issued). Printed `123.456.789-09` it stands
//! alone; compact, eleven digits are also phone numbers, so `CPF` must appear in the
//! [`CONTEXT_BYTES`] before it.

use super::{at, back, context_before, digit_values, exact_digits, left_clear, right_clear, Run};

const CONTEXT_BYTES: usize = 48;
const CONTEXT: &[&str] = &["cpf*", "cadastro de pessoas*"];

pub(super) fn find(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let s = run.start;
    if !matches!(run.len(), 3 | 11) || back(b, s, 1) == b'+' || !left_clear(text, s) {
        return None;
    }
    let mut d = [0u8; 11];
    let end = if run.len() == 11 {
        d.copy_from_slice(b.get(s..run.end)?);
        if !context_before(b, s, CONTEXT_BYTES, CONTEXT) {
            return None;
        }
        run.end
    } else {
        let printed = exact_digits(b, s, 3)
            && at(b, s + 3) == b'.'
            && exact_digits(b, s + 4, 3)
            && at(b, s + 7) == b'.'
            && exact_digits(b, s + 8, 3)
            && at(b, s + 11) == b'-'
            && exact_digits(b, s + 12, 2);
        if !printed {
            return None;
        }
        for (k, from) in [(0, s), (3, s + 4), (6, s + 8), (9, s + 12)] {
            let n = if k == 9 { 2 } else { 3 };
            d.get_mut(k..k + n)?.copy_from_slice(b.get(from..from + n)?);
        }
        s + 14
    };
    (right_clear(text, end) && valid(&digit_values(&d))).then_some((s, end))
}

fn valid(d: &[u32; 11]) -> bool {
    let check = |n: usize| {
        let sum: u32 = d
            .iter()
            .take(n)
            .zip((2..=n as u32 + 1).rev())
            .map(|(v, w)| v * w)
            .sum();
        sum * 10 % 11 % 10
    };
    let [first, ..] = *d;
    !d.iter().all(|&v| v == first) && d.get(9) == Some(&check(9)) && d.get(10) == Some(&check(10))
}

#[cfg(test)]
mod tests {
    use crate::detect::test_support::texts_of;
    use crate::detect::{numeric::scan, DetectorId, DetectorSet};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn cpfs(text: &str) -> Vec<&str> {
        texts_of(text, DetectorId::BrCpf, |t, out| {
            scan(t, DetectorSet::EMPTY.with(DetectorId::BrCpf), out)
        })
    }

    #[test]
    fn printed_alone_compact_with_cpf() {
        for (text, want) in [
            ("titular 154.303.387-37.", "154.303.387-37"),
            ("(396.908.019-37)", "396.908.019-37"),
            ("CPF: 28586428426", "28586428426"),
        ] {
            assert_eq!(cpfs(text), vec![want], "{text}");
        }
    }

    #[test]
    fn hard_negatives() {
        for text in [
            "ref 28586428426", // compact without CPF
            "154.303.387-38",  // second check digit
            "154.303.387-47",  // first check digit
            "111.111.111-11",  // all one digit
            "154.303.387-371",
            "154.303.387.37",
            "1.154.303.387-37",
        ] {
            assert!(cpfs(text).is_empty(), "{text}");
        }
    }
}
