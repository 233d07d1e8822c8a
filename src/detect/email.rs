//! Email addresses, anchored on `@` (memchr), expanded left over the local part and right
//! over the domain, then validated: a dotted domain with a letters-only TLD of 2+ chars.

use super::{DetectorId, Finding};

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// Longest local part (RFC 5321) and domain considered.
const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 253;

pub fn scan(text: &str, out: &mut Vec<Finding>) {
    let bytes = text.as_bytes();
    // Matches never overlap: skip `@`s inside the previous match's domain.
    let mut resume = 0;
    for at in memchr::memchr_iter(b'@', bytes) {
        if at < resume {
            continue;
        }
        let Some((start, end)) = match_at(bytes, at) else {
            continue;
        };
        out.push(Finding {
            detector: DetectorId::Email,
            start,
            end,
        });
        resume = end;
    }
}

fn match_at(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    // Local part: walk left (bounded), then trim leading dots.
    let mut start = at;
    while start > 0 && at - start < MAX_LOCAL && bytes.get(start - 1).copied().is_some_and(is_local)
    {
        start -= 1;
    }
    if start > 0 && bytes.get(start - 1).copied().is_some_and(is_local) {
        return None; // local part longer than allowed
    }
    while bytes.get(start) == Some(&b'.') {
        start += 1;
    }
    if start >= at || bytes.get(at - 1) == Some(&b'.') {
        return None;
    }
    let local = bytes.get(start..at)?;
    if local.windows(2).any(|w| w == b"..") {
        return None;
    }
    // Domain: walk right (bounded), trim trailing dots and hyphens (sentence punctuation).
    let mut end = at + 1;
    while end < bytes.len()
        && end - at <= MAX_DOMAIN
        && bytes.get(end).copied().is_some_and(is_domain)
    {
        end += 1;
    }
    while end > at + 1 && matches!(bytes.get(end - 1), Some(b'.' | b'-')) {
        end -= 1;
    }
    let domain = bytes.get(at + 1..end)?;
    let labels: Vec<&[u8]> = domain.split(|b| *b == b'.').collect();
    if labels.len() < 2 {
        return None;
    }
    for label in &labels {
        if label.is_empty()
            || label.len() > 63
            || label.first() == Some(&b'-')
            || label.last() == Some(&b'-')
        {
            return None;
        }
    }
    let tld = labels.last()?;
    if tld.len() < 2 || !tld.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    // Not glued to another `@` or word on the right (e.g. `a@b.com@c`).
    if bytes.get(end) == Some(&b'@')
        || bytes
            .get(end)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        return None;
    }
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn spans(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        scan(text, &mut out);
        out.iter().map(|f| &text[f.start..f.end]).collect()
    }

    #[test]
    fn finds_addresses_in_sentences() {
        assert_eq!(
            spans("Mail jane.doe@example.com today"),
            ["jane.doe@example.com"]
        );
        assert_eq!(spans("mail bob@example.com."), ["bob@example.com"]);
        assert_eq!(
            spans("<first.last+tag@mail.example.co.uk>"),
            ["first.last+tag@mail.example.co.uk"]
        );
        assert_eq!(
            spans("a@example.org,b@example.net"),
            ["a@example.org", "b@example.net"]
        );
        assert_eq!(
            spans("\"ops_team-1@sub-domain.example.io\""),
            ["ops_team-1@sub-domain.example.io"]
        );
    }

    #[test]
    fn hard_negatives() {
        for t in [
            "@username said hi",
            "user@localhost",
            "@Override public void run()",
            "foo@bar",
            "a@b.c",
            "x@1.2.3.4",
            "a..b@example.com",
            ".@example.com",
            "me@-bad.com",
            "me@bad-.com",
            "me@example.c0m",
            "git@@example.com",
        ] {
            assert!(spans(t).is_empty(), "{t}: {:?}", spans(t));
        }
    }

    #[test]
    fn leading_dots_are_not_part_of_the_local_part() {
        assert_eq!(spans("..jane@example.com"), ["jane@example.com"]);
    }

    #[test]
    fn unicode_around_is_fine_and_spans_are_char_boundaries() {
        let t = "écrivez à zoë.x@example.fr merci";
        let mut out = Vec::new();
        scan(t, &mut out);
        assert_eq!(out.len(), 1);
        assert!(t.is_char_boundary(out[0].start) && t.is_char_boundary(out[0].end));
        assert_eq!(&t[out[0].start..out[0].end], "x@example.fr");
    }

    #[test]
    fn adversarial_inputs_stay_linear() {
        assert!(spans(&"@".repeat(200_000)).is_empty());
        assert!(spans(&"a@".repeat(100_000)).is_empty());
        assert_eq!(spans(&"a.".repeat(100_000)).len(), 0);
        let many = "x@example.com ".repeat(10_000);
        assert_eq!(spans(&many).len(), 10_000);
        let long_local = format!("{}@example.com", "a".repeat(100_000));
        assert!(spans(&long_local).is_empty());
    }
}
