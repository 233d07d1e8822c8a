//! AWS secret access keys: 40 chars of `[A-Za-z0-9+/]` with no prefix of their own, so they
//! are only taken next to what names them: within [`WINDOW`] bytes of an access key id
//! (before or after it: `AKIA…,wJalr…` in a credentials CSV, `key AKIA… secret wJalr…` in
//! prose), or after a label (`aws_secret_access_key`, `SecretAccessKey`; see `labels`).
//!
//! The shape check asks for upper case, lower case and a digit, which a random 40-char key
//! has all but always and a 40-hex git SHA never has.
//!
//! Linear: the windows of consecutive key ids never overlap (each starts where the last
//! stopped reading), and a candidate run is read at most 41 bytes past the window.

/// Bytes between a key id and its secret.
pub(super) const WINDOW: usize = 80;

/// Length of a secret access key.
const LEN: usize = 40;

/// `[A-Za-z0-9+/]`.
fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// Bytes that may not touch a secret (it would be part of a longer token); `=` only after
/// it (padding: a longer base64 value), since `name=secret` is an assignment.
fn is_glued(b: u8, after: bool) -> bool {
    is_key_byte(b) || matches!(b, b'_' | b'-') || (after && b == b'=')
}

/// Whether `token` (a whole run) has a secret access key's shape.
pub(super) fn is_secret_shape(token: &[u8]) -> bool {
    use super::shape::{has_digit, has_lower, has_upper, is_placeholder_body};
    token.len() == LEN
        && token.iter().all(|&b| is_key_byte(b))
        && has_upper(token)
        && has_lower(token)
        && has_digit(token)
        && !is_placeholder_body(token)
}

/// Secrets found around one key id, and where the scan stopped.
pub(super) struct Near {
    pub before: Option<(usize, usize)>,
    pub after: Option<(usize, usize)>,
    pub reached: usize,
}

/// Looks for a secret access key in the [`WINDOW`] bytes before `key_start` (not before
/// `floor`) and after `key_end`.
pub(super) fn secret_near(bytes: &[u8], key_start: usize, key_end: usize, floor: usize) -> Near {
    let lo = key_start.saturating_sub(WINDOW).max(floor);
    let before = candidates(bytes, lo, key_start).last();
    let hi = (key_end + WINDOW).min(bytes.len());
    let after_from = key_end.max(floor);
    let after = candidates(bytes, after_from, hi).next();
    // Past a secret found after the key, the next key id's windows read on; with none
    // found, the whole window was read.
    let reached = after.map_or(hi, |(_, e)| e);
    Near {
        before,
        after,
        reached,
    }
}

/// Secret-shaped runs starting in `from..to` (a run may end past `to`), skipping a run that
/// started before `from`.
fn candidates(bytes: &[u8], from: usize, to: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut pos = from;
    if from
        .checked_sub(1)
        .and_then(|i| bytes.get(i))
        .is_some_and(|&b| is_key_byte(b))
    {
        pos = super::run_end_capped(bytes, from, to.saturating_sub(from), is_key_byte);
    }
    std::iter::from_fn(move || {
        while pos < to {
            if !bytes.get(pos).is_some_and(|&b| is_key_byte(b)) {
                pos += 1;
                continue;
            }
            let start = pos;
            let end = super::run_end_capped(bytes, start, LEN + 1, is_key_byte);
            // A run longer than a key is skipped whole (its rest is not a new start), up to
            // the window's end.
            pos = if end - start > LEN {
                super::run_end_capped(bytes, end, to.saturating_sub(end), is_key_byte)
            } else {
                end
            };
            let glued = |i: Option<usize>, after: bool| {
                i.and_then(|i| bytes.get(i))
                    .is_some_and(|&b| is_glued(b, after))
            };
            if end - start == LEN
                && !glued(start.checked_sub(1), false)
                && !glued(Some(end), true)
                && bytes.get(start..end).is_some_and(is_secret_shape)
            {
                return Some((start, end));
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{scan, DetectorId, DetectorSet};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn secrets(text: &str) -> Vec<&str> {
        crate::detect::test_support::found(text, |t, out| scan(t, DetectorSet::all(), out))
            .into_iter()
            .filter(|(d, _)| *d == DetectorId::AwsSecretKey)
            .map(|(_, s)| s)
            .collect()
    }

    #[test]
    fn secret_next_to_its_key_id() {
        // AWS's documented example pair has the real shapes, so it is found (see `shape`).
        for text in [
            format!("User name,Password,Access key ID,Secret access key\nbob,,{KEY_ID},{SECRET}\n"),
            format!("key {KEY_ID} secret {SECRET}"),
            format!("{KEY_ID}:{SECRET}"),
            format!("{SECRET} / {KEY_ID}"),
            format!("[default]\naws_access_key_id={KEY_ID}\nsomething_else={SECRET}"),
        ] {
            assert_eq!(secrets(&text), vec![SECRET], "{text}");
        }
        let other = fake(500, 40, B64);
        let text = format!("{KEY_ID}\n{other}");
        let want = if super::is_secret_shape(other.as_bytes()) {
            vec![&other[..]]
        } else {
            vec![]
        };
        assert_eq!(secrets(&text), want);
    }

    #[test]
    fn not_secrets() {
        let far = format!("{KEY_ID}{}{SECRET}", " x".repeat(60));
        let sha = "9fceb02d0ae598e95dc970b74767f19372d61af8";
        for text in [
            // Too far from the key id; no key id at all.
            far,
            SECRET.to_string(),
            // A git SHA (no upper case), a 41-char run, a 40-char run inside a longer token.
            format!("{KEY_ID} {sha}"),
            format!("{KEY_ID} {SECRET}Q"),
            format!("{KEY_ID} x-{SECRET}"),
            format!("{KEY_ID} {SECRET}=="),
            // The 40 chars must have upper, lower and digit.
            format!("{KEY_ID} {}", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"),
        ] {
            assert!(secrets(&text).is_empty(), "{text}");
        }
    }

    #[test]
    fn windows_of_many_key_ids_stay_linear() {
        let n = 200 * 1024;
        let text = format!("{KEY_ID} {SECRET} ").repeat(n / 62);
        assert_eq!(secrets(&text).len(), n / 62);
        let ids = format!("{KEY_ID} ").repeat(n / 21);
        assert!(secrets(&ids).is_empty());
    }
}
