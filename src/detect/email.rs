//! Email addresses (`email`), anchored on each `@` found with memchr.
//!
//! `local@domain.tld`: the local part is `[A-Za-z0-9._%+-]` (at most 64 bytes, no trailing or
//! doubled dot; leading dots are taken as punctuation and left out), the domain is at least two
//! labels of `[A-Za-z0-9-]` (1–63 bytes, no leading or trailing hyphen, at most 253 bytes in
//! all) whose last label (the TLD) is at least two ASCII letters. Trailing dots (end of a
//! sentence) are left out of the span. Neither side may be glued to a word char or another `@`.
//!
//! Each `@` looks at most 65 bytes back and 254 bytes forward, so the scan is linear.

use super::{DetectorId, Finding};

const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 253;
const MAX_LABEL: usize = 63;

/// Appends every email address of `text` to `out`, in text order.
pub fn scan(text: &str, out: &mut Vec<Finding>) {
    let b = text.as_bytes();
    let mut resume = 0;
    for at in memchr::memchr_iter(b'@', b) {
        if at < resume {
            continue;
        }
        if let Some((start, end)) = candidate(text, at) {
            out.push(Finding {
                detector: DetectorId::Email,
                start,
                end,
            });
            resume = end;
        }
    }
}

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-')
}

/// Word chars and `@` may not touch an address.
fn glues(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '@')
}

fn candidate(text: &str, at: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let before = b.get(..at)?;
    let local_len = before
        .iter()
        .rev()
        .take(MAX_LOCAL + 1)
        .take_while(|c| is_local(**c))
        .count();
    if local_len > MAX_LOCAL {
        return None;
    }
    let run_start = at - local_len;
    if glues(text.get(..run_start)?.chars().next_back()) {
        return None;
    }
    let local = before.get(run_start..)?;
    let dots = local.iter().take_while(|c| **c == b'.').count();
    let local = local.get(dots..)?;
    if local.is_empty() || local.ends_with(b".") || local.windows(2).any(|w| w == b"..") {
        return None;
    }

    let after = b.get(at + 1..)?;
    let run_len = after
        .iter()
        .take(MAX_DOMAIN + 2)
        .take_while(|c| is_domain(**c))
        .count();
    let run_end = at + 1 + run_len;
    if glues(text.get(run_end..)?.chars().next()) {
        return None;
    }
    let domain = after.get(..run_len)?;
    let trailing = domain.iter().rev().take_while(|c| **c == b'.').count();
    let domain = domain.get(..run_len - trailing)?;
    if !domain_ok(domain) {
        return None;
    }
    Some((run_start + dots, at + 1 + domain.len()))
}

fn domain_ok(domain: &[u8]) -> bool {
    if domain.len() > MAX_DOMAIN {
        return false;
    }
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in domain.split(|c| *c == b'.') {
        let ok = !label.is_empty()
            && label.len() <= MAX_LABEL
            && !label.starts_with(b"-")
            && !label.ends_with(b"-");
        if !ok {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2 && last.len() >= 2 && last.iter().all(u8::is_ascii_alphabetic)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn emails(text: &str) -> Vec<&str> {
        crate::detect::test_support::texts_of(text, DetectorId::Email, scan)
    }

    fn spans(text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        scan(text, &mut out);
        out.iter().map(|f| (f.start, f.end)).collect()
    }

    #[test]
    fn addresses_in_sentences() {
        assert_eq!(spans("mail bob@example.com."), vec![(5, 20)]);
        assert_eq!(
            spans("Write to alice.smith@mail.example.co.uk today"),
            vec![(9, 39)]
        );
        for (text, want) in [
            (
                "<john_doe+tag@Example.COM>",
                vec!["john_doe+tag@Example.COM"],
            ),
            (
                "mailto:ops-team@corp-mail.io?subject=x",
                vec!["ops-team@corp-mail.io"],
            ),
            (
                "a@b.cd, x.y%z@sub.domain.org; q-1@x1.museum",
                vec!["a@b.cd", "x.y%z@sub.domain.org", "q-1@x1.museum"],
            ),
            ("wait... bob@example.com!", vec!["bob@example.com"]),
            ("...bob@example.com", vec!["bob@example.com"]),
            ("end bob@example.com...", vec!["bob@example.com"]),
            ("«bob@example.com»", vec!["bob@example.com"]),
            ("git@github.com:org/repo.git", vec!["git@github.com"]),
        ] {
            assert_eq!(emails(text), want, "{text}");
        }
    }

    #[test]
    fn hard_negatives() {
        for text in [
            "ping @username please",
            "@Override public void run()",
            "user@localhost",
            "foo@bar",
            "a@b.c",
            "bob@example.c0m",
            "bob@example.123",
            "bob@-example.com",
            "bob@example-.com",
            "bob@example..com",
            "bob.@example.com",
            "bo..b@example.com",
            "bob@.example.com",
            "bob@example.com_x",
            "éric@example.com",
            "bob@example.comé",
            "a@b@example.com",
            "bob@@example.com",
            "@",
            "x@",
            "user@[192.168.0.1]",
            "price 3@4.99",
        ] {
            assert!(emails(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn length_limits() {
        let ok = format!("{}@example.com", "a".repeat(64));
        assert_eq!(emails(&ok).len(), 1);
        assert!(emails(&format!("{}@example.com", "a".repeat(65))).is_empty());
        let label = format!("bob@{}.com", "d".repeat(64));
        assert!(emails(&label).is_empty());
        let long = format!("bob@{}com", "abcdefghi.".repeat(26));
        assert!(emails(&long).is_empty());
    }

    #[test]
    fn adversarial_inputs() {
        for unit in ["@", "a@", "@a", "a@b", "a@b.", ".@.", "a.", "a@b.c "] {
            let text = unit.repeat(200_000 / unit.len());
            assert!(emails(&text).is_empty(), "{unit:?}");
        }
        let text = "ab@cd.ef ".repeat(200_000 / 9);
        assert_eq!(emails(&text).len(), 200_000 / 9);
        let mut text = "a".repeat(200_000);
        text.push_str("@example.com ");
        text.push_str(&"b".repeat(200_000));
        assert!(emails(&text).is_empty());
    }
}
