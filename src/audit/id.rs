//! Record ids: UUID version 7 (time-ordered, RFC 9562), so ids sort by time in every sink
//! and stay unique across workers and instances without coordination.

/// Whether a client's `x-request-id` is kept as the record's `request_id`: 1–128 visible
/// ASCII characters (no spaces, controls or other bytes a SIEM view could misread);
/// anything else is replaced by an id the gateway generates.
pub fn acceptable_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Generates UUIDv7 strings from the caller's clock, a per-instance seed and a counter.
///
/// wasm32 has no entropy source, so the host seeds it (the filter mixes its VM start time,
/// worker identity and the first request ids); the 74 random bits come from SplitMix64 over
/// seed and counter, so two generators with different seeds never collide in practice and
/// one generator never repeats.
#[derive(Debug, Clone)]
pub struct IdGenerator {
    seed: u64,
    counter: u64,
}

impl IdGenerator {
    pub fn new(seed: u64) -> IdGenerator {
        IdGenerator { seed, counter: 0 }
    }

    /// A new UUIDv7 for time `epoch_ms`.
    pub fn next(&mut self, epoch_ms: u64) -> String {
        self.counter = self.counter.wrapping_add(1);
        let a = splitmix64(self.seed ^ self.counter.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let b = splitmix64(a ^ self.counter);
        let ms = epoch_ms & 0xffff_ffff_ffff;
        // 48-bit ms | ver 7 | 12 random bits | variant 10 | 62 bits: counter-derived randomness.
        let hi: u64 = (ms << 16) | 0x7000 | (a & 0x0fff);
        let lo: u64 = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        let mut out = String::with_capacity(36);
        push_hex(&mut out, hi >> 32, 8);
        out.push('-');
        push_hex(&mut out, (hi >> 16) & 0xffff, 4);
        out.push('-');
        push_hex(&mut out, hi & 0xffff, 4);
        out.push('-');
        push_hex(&mut out, lo >> 48, 4);
        out.push('-');
        push_hex(&mut out, lo & 0xffff_ffff_ffff, 12);
        out
    }
}

/// The low `digits` nibbles of `v`, lowercase hex, as `{:0digits$x}` writes a value that
/// fits them (without `format!`'s machinery: two ids per exchange).
fn push_hex(out: &mut String, v: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        let nibble = (v >> (4 * i)) & 0xf;
        out.push(char::from(
            HEX.get(nibble as usize).copied().unwrap_or(b'0'),
        ));
    }
}

/// SplitMix64 finaliser: a bijection on u64 with good avalanche.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn only_plain_request_ids_are_kept() {
        assert!(acceptable_request_id("e2e-benign"));
        assert!(acceptable_request_id(&"a".repeat(128)));
        for bad in [
            "",
            "a b",
            "id\u{1b}[2J",
            "caf\u{e9}",
            "a\tb",
            &"a".repeat(129),
        ] {
            assert!(!acceptable_request_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn uuid_v7_layout() {
        let id = IdGenerator::new(42).next(1_795_715_649_123);
        assert_eq!(id.len(), 36);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        // 1_795_715_649_123 ms = 0x01a2_18fe_4e63
        assert_eq!(&id[..13], "01a218fe-4e63");
        assert!(parts[2].starts_with('7'));
        assert!(matches!(
            parts[3].chars().next(),
            Some('8' | '9' | 'a' | 'b')
        ));
    }

    #[test]
    fn unique_within_and_across_generators() {
        let mut seen = HashSet::new();
        for seed in 0..4 {
            let mut g = IdGenerator::new(seed);
            for _ in 0..25_000 {
                assert!(seen.insert(g.next(1_000)));
            }
        }
    }

    /// The hand-written hex is what `format!` wrote before.
    #[test]
    fn ids_are_formats_hex() {
        let mut g = IdGenerator::new(3);
        for i in 0..5_000u64 {
            let epoch_ms = splitmix64(i) >> (i % 64);
            let (seed, counter) = (g.seed, g.counter.wrapping_add(1));
            let id = g.next(epoch_ms);
            let a = splitmix64(seed ^ counter.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let b = splitmix64(a ^ counter);
            let hi: u64 = ((epoch_ms & 0xffff_ffff_ffff) << 16) | 0x7000 | (a & 0x0fff);
            let lo: u64 = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
            let want = format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                hi >> 32,
                (hi >> 16) & 0xffff,
                hi & 0xffff,
                lo >> 48,
                lo & 0xffff_ffff_ffff
            );
            assert_eq!(id, want, "{epoch_ms}");
        }
    }

    #[test]
    fn ids_sort_by_time() {
        let mut g = IdGenerator::new(7);
        let a = g.next(1_000);
        let b = g.next(2_000);
        assert!(a < b);
    }
}
