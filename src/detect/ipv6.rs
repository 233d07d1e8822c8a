//! IPv6 addresses (`ipv6`), anchored on each `:` found with memchr.
//!
//! Groups of 1–4 hex digits split by `:`, at most one `::`; without `::` exactly 8 groups,
//! with it at most 7. The last two groups may be written as an IPv4 dotted quad
//! (`::ffff:192.0.2.128`). A zone (`%eth0`), prefix length (`/64`), port after `]` or a
//! trailing single `:` is not part of the span.
//!
//! To keep code and prose out (`std::vector`, `Foo::bar()`, `a::b`, `12:30:45`, MAC addresses,
//! ratios, Python slices `[1::2]`): the address may not touch a word char, `.` or `:`, must
//! hold a decimal digit, and a compressed address with at most two written groups needs one
//! group of 3+ hex digits unless it is `::1` (so `fe80::1` matches, `1::2` does not).
//!
//! Each candidate is parsed once (bounded: at most 8 groups) and rejected text is skipped as a
//! whole run of hex digits, colons and dots, so the scan is linear.

use super::{DetectorId, Finding};

/// Appends every IPv6 address of `text` to `out`, in text order.
pub fn scan(text: &str, out: &mut Vec<Finding>) {
    let b = text.as_bytes();
    let mut resume = 0;
    for colon in memchr::memchr_iter(b':', b) {
        if colon < resume {
            continue;
        }
        let hex_before = (1..=5)
            .take_while(|k| colon.checked_sub(*k).is_some_and(|i| is_hex(at(b, i))))
            .count();
        let start = colon - hex_before;
        let parsed = if hex_before <= 4 && left_ok(text, start) {
            parse(b, start).filter(|end| !glued_after(text, *end))
        } else {
            None
        };
        resume = match parsed {
            Some(end) => {
                out.push(Finding {
                    detector: DetectorId::Ipv6,
                    start,
                    end,
                });
                end
            }
            None => {
                colon
                    + b.get(colon..).map_or(0, |rest| {
                        rest.iter()
                            .take_while(|c| is_hex(**c) || matches!(**c, b':' | b'.'))
                            .count()
                    })
            }
        };
    }
}

fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn left_ok(text: &str, start: usize) -> bool {
    !text
        .get(..start)
        .and_then(|s| s.chars().next_back())
        .is_some_and(|c| is_word(c) || c == ':' || c == '.')
}

fn glued_after(text: &str, end: usize) -> bool {
    let b = text.as_bytes();
    let next = text.get(end..).and_then(|s| s.chars().next());
    next.is_some_and(is_word) || (at(b, end) == b'.' && at(b, end + 1).is_ascii_alphanumeric())
}

/// Parses an address at `start`; returns its end.
fn parse(b: &[u8], start: usize) -> Option<usize> {
    let mut pos = start;
    let mut groups = 0;
    let mut compressed = false;
    let mut has_digit = false;
    let mut long_group = false;
    if at(b, pos) == b':' {
        if at(b, pos + 1) != b':' {
            return None;
        }
        compressed = true;
        pos += 2;
    }
    loop {
        let len = (0..5).take_while(|k| is_hex(at(b, pos + k))).count();
        if len == 0 || len > 4 {
            return None;
        }
        if at(b, pos + len) == b'.' && at(b, pos + len + 1).is_ascii_digit() {
            // Embedded IPv4: only after at least one colon, and it ends the address.
            pos = ipv4(b, pos)?;
            groups += 2;
            has_digit = true;
            long_group = true;
            break;
        }
        let group = b.get(pos..pos + len).unwrap_or_default();
        has_digit |= group.iter().any(u8::is_ascii_digit);
        long_group |= len >= 3;
        groups += 1;
        pos += len;
        if groups > 8 {
            return None;
        }
        if at(b, pos) != b':' {
            break;
        }
        if at(b, pos + 1) == b':' {
            if compressed || at(b, pos + 2) == b':' {
                return None;
            }
            compressed = true;
            pos += 2;
            if !is_hex(at(b, pos)) {
                break;
            }
        } else if is_hex(at(b, pos + 1)) {
            pos += 1;
        } else {
            // A trailing single colon ends the address and stays out of the span.
            break;
        }
    }
    let count_ok = if compressed { groups <= 7 } else { groups == 8 };
    let loopback = compressed && groups == 1 && pos == start + 3 && at(b, start + 2) == b'1';
    let specific = groups > 2 || !compressed || long_group || loopback;
    (groups >= 1 && count_ok && has_digit && specific).then_some(pos)
}

/// A dotted quad at `pos` (octets 0–255, no leading zeros): its end.
fn ipv4(b: &[u8], mut pos: usize) -> Option<usize> {
    for octet in 0..4 {
        let len = (0..4)
            .take_while(|k| at(b, pos + k).is_ascii_digit())
            .count();
        let digits = b.get(pos..pos + len).unwrap_or_default();
        let value = digits
            .iter()
            .fold(0u32, |v, c| v * 10 + u32::from(c - b'0'));
        if !(1..=3).contains(&len) || (len > 1 && digits.first() == Some(&b'0')) || value > 255 {
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
    Some(pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn addrs(text: &str) -> Vec<&str> {
        crate::detect::test_support::texts_of(text, DetectorId::Ipv6, scan)
    }

    fn spans(text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        scan(text, &mut out);
        out.iter().map(|f| (f.start, f.end)).collect()
    }

    #[test]
    fn addresses_in_sentences() {
        assert_eq!(
            spans("host 2001:0db8:85a3:0000:0000:8a2e:0370:7334 is up"),
            vec![(5, 44)]
        );
        assert_eq!(spans("ping ::1."), vec![(5, 8)]);
        for (text, want) in [
            ("net 2001:db8::1, ok", vec!["2001:db8::1"]),
            (
                "link fe80::1ff:fe23:4567:890a%eth0 up",
                vec!["fe80::1ff:fe23:4567:890a"],
            ),
            ("fe80::1 and ff02::1", vec!["fe80::1", "ff02::1"]),
            ("mapped ::ffff:192.0.2.128.", vec!["::ffff:192.0.2.128"]),
            (
                "full 0:0:0:0:0:ffff:10.0.0.1",
                vec!["0:0:0:0:0:ffff:10.0.0.1"],
            ),
            ("url http://[2001:db8::1]:8080/", vec!["2001:db8::1"]),
            (
                "prefix 2001:DB8:0:0:8:800:200C:417A/64",
                vec!["2001:DB8:0:0:8:800:200C:417A"],
            ),
            ("route 2001:db8::/32 via", vec!["2001:db8::"]),
            ("addr: 2001:db8::2: down", vec!["2001:db8::2"]),
            ("«2001:db8:0:1::42»", vec!["2001:db8:0:1::42"]),
        ] {
            assert_eq!(addrs(text), want, "{text}");
        }
    }

    #[test]
    fn hard_negatives() {
        for text in [
            "at 12:30:45 or 12:30",
            "std::vector<int>::iterator",
            "a::b and ab::cd",
            "Foo::bar() and Self::new()",
            "u8::MAX, f32::consts::PI, i64::from(x), crate::f1()",
            "mac 00:1a:2b:3c:4d:5e",
            "ratio 3:2 and 16:9",
            "slice x[1::2] and y[::2] and z[::-1]",
            "2001:db8:1:2:3:4:5",
            "1:2:3:4:5:6:7:8:9",
            "2001::db8::1",
            "2001:db8:::1",
            "12345::1",
            "2001:db8::g",
            "x2001:db8::1",
            "2001:db8::1x",
            "v1.2:3::4",
            "::",
            ":::",
            "::ffff:256.1.1.1",
            "::ffff:1.2.3",
            "2001:db8::1.com",
            "1.2.3.4:80",
        ] {
            assert!(addrs(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn adversarial_inputs() {
        for unit in [
            ":", "::", "1:", "a:", "1::", "ab::", "1.", "1:1.", "ffff:", ":1:",
        ] {
            let text = unit.repeat(200_000 / unit.len());
            assert!(addrs(&text).is_empty(), "{unit:?}");
        }
        let text = "fe80::1 ".repeat(200_000 / 8);
        assert_eq!(addrs(&text).len(), 200_000 / 8);
    }
}
