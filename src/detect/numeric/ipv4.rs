//! IPv4 addresses (`ipv4`).
//!
//! A dotted quad of octets 0–255 without leading zeros (a lone `0` is fine). Not part of a
//! longer dotted sequence (`1.2.3.4.5`, `a.1.2.3.4`), not glued to a word char, not a version
//! (`v1.2.3.4`, `version 1.2.3.4`, `release 2.14.0.1`) and not the IPv4 tail of an IPv6
//! address (`::ffff:1.2.3.4`, left to the `ipv6` detector). A `:port`, a range dash or a
//! sentence-final dot may follow and is not part of the span.

use super::{at, back, digits_at, value, word_at, word_before, Run};

/// How far back to look for the colons of an IPv6 address ending in this IPv4.
const IPV6_LOOKBACK: usize = 40;

const VERSION_WORDS: [&[u8]; 7] = [
    b"v",
    b"ver",
    b"version",
    b"release",
    b"build",
    b"rev",
    b"revision",
];

pub(super) fn find(text: &str, run: Run) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let s = run.start;
    if run.len() > 3 || at(b, run.end) != b'.' || !left_ok(text, s) {
        return None;
    }
    let mut pos = s;
    for octet in 0..4 {
        let len = digits_at(b, pos, 4);
        if !(1..=3).contains(&len) || (len > 1 && at(b, pos) == b'0') || value(b, pos, len) > 255 {
            return None;
        }
        pos += len;
        if octet < 3 {
            if at(b, pos) != b'.' {
                return None;
            }
            pos += 1;
        }
    }
    let continues = at(b, pos) == b'.' && at(b, pos + 1).is_ascii_alphanumeric();
    (!continues && !word_at(text, pos)).then_some((s, pos))
}

fn left_ok(text: &str, s: usize) -> bool {
    let b = text.as_bytes();
    if word_before(text, s) || after_version_word(b, s) {
        return false;
    }
    match back(b, s, 1) {
        b'.' => !back(b, s, 2).is_ascii_alphanumeric(),
        b':' => !ipv6_tail(b, s - 1),
        _ => true,
    }
}

/// The colon at `colon` ends a run of hex digits and colons holding at least two colons.
fn ipv6_tail(b: &[u8], colon: usize) -> bool {
    let from = colon.saturating_sub(IPV6_LOOKBACK);
    let colons = b
        .get(from..=colon)
        .unwrap_or_default()
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_hexdigit() || **c == b':')
        .filter(|c| **c == b':')
        .count();
    colons >= 2
}

/// A version-ish word (`v`, `ver`, `version`, `release`, `build`, `rev`, `revision`, any case),
/// then up to two spaces, colons or `=`, just before `s`.
fn after_version_word(b: &[u8], s: usize) -> bool {
    let mut i = s;
    for _ in 0..2 {
        if matches!(back(b, i, 1), b' ' | b':' | b'=') {
            i -= 1;
        }
    }
    let letters = (1..=8)
        .take_while(|k| back(b, i, *k).is_ascii_alphabetic())
        .count();
    if letters == 0 || back(b, i, letters + 1).is_ascii_alphanumeric() {
        return false;
    }
    let word = b.get(i - letters..i).unwrap_or_default();
    VERSION_WORDS.iter().any(|w| word.eq_ignore_ascii_case(w))
}

#[cfg(test)]
mod tests {
    use super::super::scan;
    use crate::detect::{DetectorId, DetectorSet};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn ips(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        scan(text, DetectorSet::all(), &mut out);
        out.iter()
            .filter(|f| f.detector == DetectorId::Ipv4)
            .map(|f| &text[f.start..f.end])
            .collect()
    }

    fn ip_spans(text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        scan(text, DetectorSet::EMPTY.with(DetectorId::Ipv4), &mut out);
        out.iter().map(|f| (f.start, f.end)).collect()
    }

    #[test]
    fn addresses_in_sentences() {
        assert_eq!(ip_spans("ssh to 192.168.1.10 now"), vec![(7, 19)]);
        assert_eq!(ip_spans("gateway 10.0.0.1."), vec![(8, 16)]);
        assert_eq!(ip_spans("http://192.168.1.10:8080/x"), vec![(7, 19)]);
        for (text, want) in [
            (
                "gw=0.0.0.0, mask 255.255.255.0",
                vec!["0.0.0.0", "255.255.255.0"],
            ),
            ("range 10.0.0.1-10.0.0.9", vec!["10.0.0.1", "10.0.0.9"]),
            ("(8.8.8.8)", vec!["8.8.8.8"]),
            ("host:10.1.2.3", vec!["10.1.2.3"]),
            ("subnet 172.16.0.0/12", vec!["172.16.0.0"]),
            ("end 1.2.3.4.\nnext", vec!["1.2.3.4"]),
            ("... 1.2.3.4", vec!["1.2.3.4"]),
            (
                "reversed 1.2.3.4 and server 10.0.0.1",
                vec!["1.2.3.4", "10.0.0.1"],
            ),
        ] {
            assert_eq!(ips(text), want, "{text}");
        }
    }

    #[test]
    fn hard_negatives() {
        for text in [
            "seq 1.2.3.4.5",
            "seq 10.0.0.1.2",
            "v1.2.3.4",
            "V1.2.3.4",
            "version 1.2.3.4",
            "Version: 10.0.0.1",
            "ver 10.0.0.1",
            "Release 2.14.0.1 shipped",
            "build=10.0.19045.3",
            "rev: 1.0.0.7",
            "a.1.2.3.4",
            "1.2.3.4.com",
            "x10.0.0.1",
            "10.0.0.1x",
            "10.0.0.1_",
            "256.1.1.1",
            "1.1.1.256",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3",
            "1..2.3.4",
            "1.2.3.1234",
            "::ffff:192.0.2.128",
            "2001:db8::10.0.0.1",
            "version 1.2.3",
        ] {
            assert!(ips(text).is_empty(), "{text}");
        }
    }
}
