//! HTTP header maps as a proxy-wasm host hands them over: raw bytes, names that may repeat,
//! values that need not be UTF-8 (HTTP allows obs-text, so a latin-1 byte is legal on the
//! wire). Every byte here comes from a client, an upstream or a sink, so decoding is
//! bounds-checked and never panics, and a value is handed out as text only when it is valid
//! UTF-8. Callers decide per header what a repeated or non-text value means (see the
//! README's "Headers the filter reads"); this module only tells them which case they have.

/// One header's value as a caller asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    Absent,
    /// Exactly one value, valid UTF-8.
    One(&'a str),
    /// One value that is not valid UTF-8.
    NotText,
    /// The name appears more than once (how many times).
    Repeated(usize),
}

impl<'a> Lookup<'a> {
    /// The value when there is exactly one and it is text.
    pub fn text(self) -> Option<&'a str> {
        match self {
            Lookup::One(v) => Some(v),
            _ => None,
        }
    }

    /// Why a value that exists cannot be used as one text (for records), if it cannot.
    pub fn problem(self) -> Option<&'static str> {
        match self {
            Lookup::NotText => Some("not UTF-8"),
            Lookup::Repeated(_) => Some("repeated"),
            Lookup::Absent | Lookup::One(_) => None,
        }
    }
}

/// A header map: (name, value) pairs in the host's order, names as the host gave them
/// (Envoy lower-cases them; lookups here ignore ASCII case anyway). The pairs stay where the
/// host's serialisation put them: one buffer and one list of spans, not two allocations
/// per header (a request's headers are read on every request).
#[derive(Debug, Clone, Default)]
pub struct HeaderMap {
    bytes: Vec<u8>,
    /// Each pair's name and value, as ranges of `bytes`.
    spans: Vec<(Span, Span)>,
}

/// A range of a map's bytes.
type Span = (usize, usize);

impl PartialEq for HeaderMap {
    /// The same pairs in the same order, wherever they sit in the buffer.
    fn eq(&self, other: &HeaderMap) -> bool {
        self.len() == other.len() && self.pairs().eq(other.pairs())
    }
}

impl Eq for HeaderMap {}

impl HeaderMap {
    pub fn from_pairs(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> HeaderMap {
        let mut map = HeaderMap::default();
        for (k, v) in pairs {
            let name = (map.bytes.len(), map.bytes.len() + k.len());
            map.bytes.extend_from_slice(&k);
            let value = (map.bytes.len(), map.bytes.len() + v.len());
            map.bytes.extend_from_slice(&v);
            map.spans.push((name, value));
        }
        map
    }

    /// Decodes the proxy-wasm serialisation of a header map: a little-endian u32 count, a
    /// (name length, value length) u32 pair per header, then each name and value followed by
    /// a NUL. `None` when the bytes do not hold what they declare (a host bug, never trusted
    /// to be impossible); an empty input is an empty map.
    pub fn decode(bytes: &[u8]) -> Option<HeaderMap> {
        HeaderMap::decode_vec(bytes.to_vec())
    }

    /// [`HeaderMap::decode`] of bytes the map keeps (no copy of names and values).
    pub fn decode_vec(bytes: Vec<u8>) -> Option<HeaderMap> {
        if bytes.is_empty() {
            return Some(HeaderMap::default());
        }
        let count = read_u32(&bytes, 0)?;
        // Each header needs 8 bytes of lengths and 2 NULs: a count the input cannot hold
        // is rejected before anything is allocated for it.
        if count.checked_mul(10)? > bytes.len() {
            return None;
        }
        let mut spans = Vec::with_capacity(count);
        let mut data = 4 + count * 8;
        for n in 0..count {
            let name_len = read_u32(&bytes, 4 + n * 8)?;
            let value_len = read_u32(&bytes, 8 + n * 8)?;
            let (name, next) = field(&bytes, data, name_len)?;
            let (value, next) = field(&bytes, next, value_len)?;
            data = next;
            spans.push((name, value));
        }
        Some(HeaderMap { bytes, spans })
    }

    /// Every (name, value) pair, in order.
    fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let at = |(a, b): Span| self.bytes.get(a..b).unwrap_or_default();
        self.spans.iter().map(move |(k, v)| (at(*k), at(*v)))
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Every value of `name`, raw.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        let at = |(a, b): Span| self.bytes.get(a..b).unwrap_or_default();
        // Names of another length are passed over without touching their bytes.
        self.spans
            .iter()
            .filter(move |((a, b), _)| b.saturating_sub(*a) == name.len())
            .filter(move |(k, _)| at(*k).eq_ignore_ascii_case(name.as_bytes()))
            .map(move |(_, v)| at(*v))
    }

    /// The one value of `name`, telling apart absent, repeated and non-text.
    pub fn get(&self, name: &str) -> Lookup<'_> {
        let mut first: Option<&[u8]> = None;
        let mut count = 0;
        let at = |(a, b): Span| self.bytes.get(a..b).unwrap_or_default();
        for &(k, v) in &self.spans {
            if k.1.saturating_sub(k.0) == name.len() && at(k).eq_ignore_ascii_case(name.as_bytes())
            {
                count += 1;
                first = first.or(Some(at(v)));
            }
        }
        let Some(first) = first else {
            return Lookup::Absent;
        };
        if count > 1 {
            return Lookup::Repeated(count);
        }
        match std::str::from_utf8(first) {
            Ok(v) => Lookup::One(v),
            Err(_) => Lookup::NotText,
        }
    }

    /// The first value of `name` as text with invalid bytes replaced (U+FFFD): only for
    /// values that are recorded or routed on, never for values that decide trust.
    pub fn lossy(&self, name: &str) -> Option<String> {
        self.all(name)
            .next()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every pair as lossy text, for consumers that only look for a few known headers.
    pub fn lossy_pairs(&self) -> Vec<(String, String)> {
        self.pairs()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    /// Whether the body these headers describe is JSON as far as the headers say: no
    /// `content-type` (clients often omit it), or every value naming JSON
    /// (`application/json`, `application/problem+json`, …). A value that is not text, or
    /// any value that is not JSON, makes it not JSON: an upstream parser could take either.
    pub fn declares_json(&self) -> bool {
        self.all("content-type").all(|v| {
            std::str::from_utf8(v).is_ok_and(|s| ends_with_ignore_case(bare_type(s), "json"))
        })
    }

    /// Whether the content type is `text/event-stream` (one value, text).
    pub fn declares_event_stream(&self) -> bool {
        self.get("content-type")
            .text()
            .is_some_and(|s| bare_type(s).eq_ignore_ascii_case("text/event-stream"))
    }

    /// Whether the body is (or may be) encoded: any `content-encoding` value other than
    /// `identity`, including lists (`gzip, identity`) and values that are not text.
    pub fn encoded(&self) -> bool {
        self.all("content-encoding").any(|v| {
            std::str::from_utf8(v).map_or(true, |s| {
                s.split(',')
                    .map(str::trim)
                    .any(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"))
            })
        })
    }
}

/// The media type of a `content-type` value without parameters, as written (compared
/// ignoring ASCII case: no lower-case copy per request).
fn bare_type(value: &str) -> &str {
    value.split(';').next().unwrap_or_default().trim()
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len()
        .checked_sub(suffix.len())
        .and_then(|at| s.as_bytes().get(at..))
        .is_some_and(|end| end.eq_ignore_ascii_case(suffix.as_bytes()))
}

/// `len` bytes at `at` and their NUL terminator: their span, and the offset after it.
fn field(bytes: &[u8], at: usize, len: usize) -> Option<(Span, usize)> {
    let end = at.checked_add(len)?;
    bytes.get(at..end)?;
    (*bytes.get(end)? == 0).then_some(((at, end), end + 1))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    let arr: [u8; 4] = b.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(arr)).ok()
}

/// The proxy-wasm serialisation of pairs (the inverse of [`HeaderMap::decode`]), for tests
/// and fuzzing.
pub fn encode(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The readings before names were filtered by length and types compared without a
    /// lower-case copy, as the oracle for the ones now.
    mod oracle {
        pub fn all<'a>(pairs: &'a [(&[u8], &[u8])], name: &str) -> Vec<&'a [u8]> {
            pairs
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| *v)
                .collect()
        }
        pub fn media_type(value: &str) -> String {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        }
    }

    #[test]
    fn lookups_read_what_the_scan_of_every_pair_read() {
        let names: [&[u8]; 8] = [
            b"content-type",
            b"Content-Type",
            b"CONTENT-TYPE ",
            b"content-typ",
            b"x-user-id",
            b"content-encoding",
            b"",
            b"content-t\xc3\xa9pe",
        ];
        let values: [&[u8]; 12] = [
            b"application/json",
            b"Application/JSON; charset=utf-8",
            b" text/event-stream ",
            b"TEXT/Event-Stream;x=1",
            b"json",
            b"jso",
            b"application/jsonx",
            b"\xff\xfe",
            b"",
            b"gzip, identity",
            b"IDENTITY",
            b"text/plain;json",
        ];
        let mut seed = 7u64;
        for _ in 0..3000 {
            let mut pairs: Vec<(&[u8], &[u8])> = Vec::new();
            for _ in 0..(seed % 5) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let n = names[(seed >> 33) as usize % names.len()];
                let v = values[(seed >> 17) as usize % values.len()];
                pairs.push((n, v));
            }
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let map = HeaderMap::decode(&encode(&pairs)).unwrap();
            for name in [
                "content-type",
                "Content-Encoding",
                "x-user-id",
                "",
                "content-t\u{e9}pe",
            ] {
                let want = oracle::all(&pairs, name);
                assert_eq!(map.all(name).collect::<Vec<_>>(), want, "{pairs:?} {name}");
                let got = map.get(name);
                match want.as_slice() {
                    [] => assert_eq!(got, Lookup::Absent),
                    [one] => assert_eq!(
                        got,
                        std::str::from_utf8(one).map_or(Lookup::NotText, Lookup::One)
                    ),
                    many => assert_eq!(got, Lookup::Repeated(many.len())),
                }
            }
            let types = oracle::all(&pairs, "content-type");
            let json = types.iter().all(|v| {
                std::str::from_utf8(v).is_ok_and(|s| oracle::media_type(s).ends_with("json"))
            });
            assert_eq!(map.declares_json(), json, "{pairs:?}");
            let sse = match types.as_slice() {
                [one] => std::str::from_utf8(one)
                    .is_ok_and(|s| oracle::media_type(s) == "text/event-stream"),
                _ => false,
            };
            assert_eq!(map.declares_event_stream(), sse, "{pairs:?}");
        }
    }
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn map(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let pairs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (k.as_bytes(), *v)).collect();
        HeaderMap::decode(&encode(&pairs)).unwrap()
    }

    /// A map decoded from the host's bytes (kept in place) equals one built from pairs: the
    /// same pairs in the same order, wherever they sit.
    #[test]
    fn decoded_and_built_maps_compare_by_their_pairs() {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b":path".to_vec(), b"/v1".to_vec()),
            (b"x-a".to_vec(), b"1".to_vec()),
            (b"x-a".to_vec(), b"caf\xe9".to_vec()),
            (b"".to_vec(), b"".to_vec()),
        ];
        let refs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        let decoded = HeaderMap::decode_vec(encode(&refs)).unwrap();
        assert_eq!(decoded, HeaderMap::from_pairs(pairs.clone()));
        assert_eq!(decoded.lossy_pairs().len(), 4);
        assert_eq!(decoded.get("X-A"), Lookup::Repeated(2));
        let mut fewer = pairs;
        fewer.pop();
        assert_ne!(decoded, HeaderMap::from_pairs(fewer));
        assert_eq!(
            HeaderMap::decode_vec(Vec::new()),
            Some(HeaderMap::default())
        );
    }

    #[test]
    fn decodes_what_encode_writes_including_non_utf8_bytes() {
        let m = map(&[
            (":path", b"/v1/chat/completions"),
            ("x-note", b"caf\xe9"),
            ("x-empty", b""),
        ]);
        assert_eq!(m.len(), 3);
        assert_eq!(m.get(":path"), Lookup::One("/v1/chat/completions"));
        assert_eq!(m.get("x-note"), Lookup::NotText);
        assert_eq!(m.lossy("x-note").as_deref(), Some("caf\u{fffd}"));
        assert_eq!(m.get("x-empty"), Lookup::One(""));
        assert_eq!(m.get("X-Missing"), Lookup::Absent);
    }

    #[test]
    fn repeated_names_are_reported_whatever_their_case() {
        let m = map(&[("x-user-id", b"mallory"), ("X-User-Id", b"alice")]);
        assert_eq!(m.get("x-user-id"), Lookup::Repeated(2));
        assert_eq!(m.get("x-user-id").text(), None);
        assert_eq!(m.get("x-user-id").problem(), Some("repeated"));
    }

    #[test]
    fn malformed_serialisations_are_rejected_not_trusted() {
        let good = encode(&[(b"a", b"b")]);
        for cut in 1..good.len() {
            assert_eq!(HeaderMap::decode(&good[..cut]), None, "cut at {cut}");
        }
        // A count far larger than the input: no allocation, no panic.
        assert_eq!(HeaderMap::decode(&u32::MAX.to_le_bytes()), None);
        let mut lying = good.clone();
        lying[4] = 200; // name length past the end
        assert_eq!(HeaderMap::decode(&lying), None);
        assert_eq!(HeaderMap::decode(&[]), Some(HeaderMap::default()));
    }

    #[test]
    fn json_and_encoding_gates_fail_closed() {
        assert!(map(&[]).declares_json());
        assert!(map(&[("content-type", b"application/json; charset=utf-8")]).declares_json());
        assert!(map(&[("content-type", b"Application/Problem+JSON")]).declares_json());
        assert!(!map(&[("content-type", b"text/plain")]).declares_json());
        assert!(!map(&[("content-type", b"text/plain; x=json")]).declares_json());
        assert!(!map(&[("content-type", b"application/json\xff")]).declares_json());
        assert!(!map(&[
            ("content-type", b"application/json"),
            ("content-type", b"text/html")
        ])
        .declares_json());
        assert!(!map(&[]).encoded());
        assert!(!map(&[("content-encoding", b"Identity")]).encoded());
        assert!(map(&[("content-encoding", b"gzip")]).encoded());
        assert!(map(&[("content-encoding", b"identity, br")]).encoded());
        assert!(map(&[
            ("content-encoding", b"identity"),
            ("content-encoding", b"gzip")
        ])
        .encoded());
        assert!(map(&[("content-encoding", b"\xe9")]).encoded());
        assert!(
            map(&[("content-type", b"text/event-stream; charset=utf-8")]).declares_event_stream()
        );
    }
}
