//! The proxy-wasm ABI 0.2.1 from the host's side: the numbers of the spec
//! (github.com/proxy-wasm/spec, `abi-versions/v0.2.1`) and its header map serialisation,
//! written from the spec and not shared with the filter, so that a mistake on either side
//! shows.

/// `proxy_status_t`.
pub mod status {
    pub const OK: i32 = 0;
    pub const NOT_FOUND: i32 = 1;
    pub const BAD_ARGUMENT: i32 = 2;
    pub const INVALID_MEMORY_ACCESS: i32 = 6;
    pub const EMPTY: i32 = 7;
    pub const CAS_MISMATCH: i32 = 8;
    pub const INTERNAL_FAILURE: i32 = 10;
    pub const UNIMPLEMENTED: i32 = 12;
}

/// `proxy_action_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    Pause,
}

impl Action {
    /// Anything but 1 continues, as Envoy reads it.
    pub fn from_wasm(v: i32) -> Action {
        if v == 1 {
            Action::Pause
        } else {
            Action::Continue
        }
    }
}

/// `proxy_buffer_type_t`.
pub mod buffer {
    pub const HTTP_REQUEST_BODY: i32 = 0;
    pub const HTTP_RESPONSE_BODY: i32 = 1;
    pub const HTTP_CALL_RESPONSE_BODY: i32 = 4;
    pub const VM_CONFIGURATION: i32 = 6;
    pub const PLUGIN_CONFIGURATION: i32 = 7;
}

/// `proxy_map_type_t`.
pub mod map {
    pub const HTTP_REQUEST_HEADERS: i32 = 0;
    pub const HTTP_REQUEST_TRAILERS: i32 = 1;
    pub const HTTP_RESPONSE_HEADERS: i32 = 2;
    pub const HTTP_RESPONSE_TRAILERS: i32 = 3;
    pub const HTTP_CALL_RESPONSE_HEADERS: i32 = 6;
    pub const HTTP_CALL_RESPONSE_TRAILERS: i32 = 7;
}

/// `proxy_stream_type_t`.
pub mod stream {
    pub const HTTP_REQUEST: i32 = 0;
    pub const HTTP_RESPONSE: i32 = 1;
}

/// `proxy_metric_type_t`.
pub mod metric {
    pub const COUNTER: i32 = 0;
    pub const GAUGE: i32 = 1;
    pub const HISTOGRAM: i32 = 2;
}

/// Header (or trailer, or metadata) pairs as raw bytes: names may repeat and values need
/// not be UTF-8.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Text pairs as bytes.
pub fn pairs(text: &[(&str, &str)]) -> Pairs {
    text.iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// The spec's serialisation: a u32 count, a (name length, value length) u32 pair per entry,
/// then each name and value followed by a NUL; little-endian. An empty map is empty.
pub fn serialize(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    if pairs.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    out.extend_from_slice(&len32(pairs.len()).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&len32(k.len()).to_le_bytes());
        out.extend_from_slice(&len32(v.len()).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Reads a serialised map the module sent (local response headers, call headers); `None`
/// when the bytes do not hold what they declare.
pub fn deserialize(bytes: &[u8]) -> Option<Pairs> {
    if bytes.is_empty() || bytes == [0] {
        return Some(Vec::new());
    }
    let u32_at = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(b) as usize)
    };
    // Each (name, value) slice and the NUL after it.
    let field = |at: usize, n: usize| -> Option<(Vec<u8>, usize)> {
        let end = at.checked_add(n)?;
        Some((bytes.get(at..end)?.to_vec(), end.checked_add(1)?))
    };
    let count = u32_at(0)?;
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    let mut out = Vec::new();
    for n in 0..count {
        let (key, next) = field(data, u32_at(4 + n * 8)?)?;
        let (value, next) = field(next, u32_at(8 + n * 8)?)?;
        data = next;
        out.push((key, value));
    }
    Some(out)
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The first value of `name` (ASCII case ignored).
pub fn get<'a>(pairs: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_slice())
}

/// The first value of `name` as text, if it is UTF-8.
pub fn get_str<'a>(pairs: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a str> {
    get(pairs, name).and_then(|v| std::str::from_utf8(v).ok())
}

/// Replaces every value of `name` with one (Envoy's `setCopy`), appended where it was absent.
pub fn replace(pairs: &mut Pairs, name: &[u8], value: &[u8]) {
    let mut seen = false;
    pairs.retain_mut(|(k, v)| {
        if !k.eq_ignore_ascii_case(name) {
            return true;
        }
        if seen {
            return false;
        }
        seen = true;
        *v = value.to_vec();
        true
    });
    if !seen {
        pairs.push((name.to_ascii_lowercase(), value.to_vec()));
    }
}

/// Removes every value of `name`.
pub fn remove(pairs: &mut Pairs, name: &[u8]) {
    pairs.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn serialisation_matches_the_spec_example() {
        // The spec's example: {"a": "1"}, {"b": "22"}.
        let map = pairs(&[("a", "1"), ("b", "22")]);
        let bytes = serialize(&map);
        let want: Vec<u8> = [
            &2u32.to_le_bytes()[..],
            &1u32.to_le_bytes(),
            &1u32.to_le_bytes(),
            &1u32.to_le_bytes(),
            &2u32.to_le_bytes(),
            b"a\x001\x00b\x0022\x00",
        ]
        .concat();
        assert_eq!(bytes, want);
        assert_eq!(deserialize(&bytes), Some(map));
    }

    #[test]
    fn raw_bytes_survive_and_short_input_is_rejected() {
        let map = vec![(b"x-raw".to_vec(), vec![0xff, 0x00, 0xe9])];
        let bytes = serialize(&map);
        assert_eq!(deserialize(&bytes), Some(map));
        assert_eq!(deserialize(&bytes[..bytes.len() - 2]), None);
        assert_eq!(deserialize(&[0xff, 0xff, 0xff, 0x7f]), None);
    }

    #[test]
    fn replace_keeps_one_value_and_remove_takes_all() {
        let mut map = pairs(&[("A", "1"), ("b", "2"), ("a", "3")]);
        replace(&mut map, b"a", b"9");
        assert_eq!(map, pairs(&[("A", "9"), ("b", "2")]));
        remove(&mut map, b"A");
        assert_eq!(map, pairs(&[("b", "2")]));
    }
}
