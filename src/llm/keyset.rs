//! A set of field names built at compile time, for the lookups done once per key or string of
//! every body ([`super::generic`]'s known keys and structural fields): a hash and one
//! comparison, where a scan of the list (or a binary search of it) compared up to ~160 names
//! (~350 instructions per lookup, a sixth of a 1 KiB exchange's evaluation).

/// Open addressing with linear probing over `N` slots (a power of two, at most three quarters
/// full: a probe always meets an empty slot, after ~4 slots on average for an absent name).
/// Each slot is 8 bytes of the module, so the table is kept that full rather than sparse.
pub(crate) struct KeySet<const N: usize> {
    slots: [Option<&'static str>; N],
}

/// A hash of the length and four bytes (first, middle, last two), multiplied and folded:
/// constant time whatever the key's length (FNV-1a over every byte was ~40% of `rest`'s
/// lookups), and a `const fn` so the table is built by the compiler with the same function
/// the lookups use. Membership is decided by the comparison, never by the hash.
const fn hash(bytes: &[u8]) -> u32 {
    let n = bytes.len();
    let x = (n as u32)
        ^ (byte(bytes, 0) << 8)
        ^ (byte(bytes, n / 2) << 16)
        ^ (byte(bytes, n.wrapping_sub(1)) << 24)
        ^ (byte(bytes, n.wrapping_sub(2)) << 3);
    let h = x.wrapping_mul(0x9e37_79b1);
    h ^ (h >> 15)
}

/// `bytes[i]`, or 0 past the end.
const fn byte(bytes: &[u8], i: usize) -> u32 {
    if i < bytes.len() {
        // In bounds: `i < bytes.len()`.
        #[allow(clippy::indexing_slicing)]
        let b = bytes[i];
        b as u32
    } else {
        0
    }
}

impl<const N: usize> KeySet<N> {
    /// The set of `names`. Evaluated at compile time: too small a table fails the build.
    // Indexing in a const fn is evaluated at compile time: an out-of-bounds index would fail
    // the build, never a request.
    #[allow(clippy::indexing_slicing)]
    pub(crate) const fn new(names: &[&'static str]) -> KeySet<N> {
        assert!(
            N.is_power_of_two() && names.len() * 4 <= N * 3,
            "table too small"
        );
        let mut slots: [Option<&'static str>; N] = [None; N];
        let mut n = 0;
        while n < names.len() {
            let name = names[n];
            let mut i = hash(name.as_bytes()) as usize & (N - 1);
            while slots[i].is_some() {
                i = (i + 1) & (N - 1);
            }
            slots[i] = Some(name);
            n += 1;
        }
        KeySet { slots }
    }

    #[inline]
    pub(crate) fn contains(&self, key: &str) -> bool {
        let mut i = hash(key.as_bytes()) as usize & (N - 1);
        // At most N probes; the table always has an empty slot, which ends the probe.
        for _ in 0..N {
            match self.slots.get(i) {
                Some(Some(name)) if *name == key => return true,
                Some(Some(_)) => i = (i + 1) & (N - 1),
                _ => return false,
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const NAMES: &[&str] = &["model", "role", "", "a", "content", "ab", "ba", "$ref"];
    static SET: KeySet<32> = KeySet::new(NAMES);

    #[test]
    fn contains_exactly_the_names() {
        for name in NAMES {
            assert!(SET.contains(name), "{name:?}");
        }
        for other in [
            "Model", "model ", "rol", "roles", "b", "aa", "$", "contents", "é",
        ] {
            assert!(!SET.contains(other), "{other:?}");
        }
    }

    #[test]
    fn a_full_probe_run_still_ends() {
        // Every name in one bucket's run: lookups of absent names walk it and stop.
        static DENSE: KeySet<4> = KeySet::new(&["a", "b", "c"]);
        for c in 0u8..=255 {
            let s = [c];
            let Ok(s) = std::str::from_utf8(&s) else {
                continue;
            };
            assert_eq!(DENSE.contains(s), ["a", "b", "c"].contains(&s), "{s:?}");
        }
    }
}
