//! SHA-256 (FIPS 180-4), ours: the audit chain hashes every record on the request worker
//! (README "The audit trail's chain"), and under V8 this costs ~20% fewer instructions per
//! block than the `sha2` crate's portable code it replaced (BENCHMARKS.md, "Sixth round: the
//! chain's hash"): the 64 rounds are unrolled with the working variables renamed instead of
//! moved, the message schedule is computed in place in 16 locals, `Σ0`/`Σ1`/`σ0`/`σ1` are
//! nested rotations (fewer temporaries, so fewer of V8's spills), and `Maj` reuses the
//! previous round's `a ^ b`. Safe Rust, no lookups indexed by the data.

/// FIPS 180-4 §4.2.2: the first 32 bits of the fractional parts of the cube roots of the
/// first 64 primes.
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// FIPS 180-4 §5.3.3: the initial hash value.
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// A SHA-256 computation fed in pieces: [`Sha256::update`] any number of times, then
/// [`Sha256::finish`]. The digest of the concatenation, however it was split.
#[derive(Clone)]
pub struct Sha256 {
    state: [u32; 8],
    /// A partial block; `pending` bytes of it are filled.
    block: [u8; 64],
    pending: usize,
    /// Message length so far, in bytes (the padding holds it in bits, modulo 2^64).
    length: u64,
}

impl Default for Sha256 {
    fn default() -> Self {
        Sha256::new()
    }
}

impl Sha256 {
    pub fn new() -> Sha256 {
        Sha256 {
            state: H0,
            block: [0; 64],
            pending: 0,
            length: 0,
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.length = self.length.wrapping_add(data.len() as u64);
        if self.pending > 0 {
            let free = self.block.get_mut(self.pending..).unwrap_or_default();
            let n = free.len().min(data.len());
            let (head, rest) = data.split_at(n);
            for (b, d) in free.iter_mut().zip(head) {
                *b = *d;
            }
            self.pending += n;
            data = rest;
            if self.pending < 64 {
                return;
            }
            compress(&mut self.state, &self.block);
            self.pending = 0;
        }
        let mut blocks = data.chunks_exact(64);
        for block in &mut blocks {
            if let Ok(block) = <&[u8; 64]>::try_from(block) {
                compress(&mut self.state, block);
            }
        }
        let tail = blocks.remainder();
        for (b, d) in self.block.iter_mut().zip(tail) {
            *b = *d;
        }
        self.pending = tail.len();
    }

    /// The digest (FIPS 180-4 §5.1.1 padding: 0x80, zeros, the length in bits big-endian).
    pub fn finish(mut self) -> [u8; 32] {
        let bits = self.length.wrapping_mul(8);
        let pending = self.pending;
        for (i, b) in self.block.iter_mut().enumerate().skip(pending) {
            *b = if i == pending { 0x80 } else { 0 };
        }
        if pending >= 56 {
            compress(&mut self.state, &self.block);
            self.block = [0; 64];
        }
        for (b, l) in self.block.iter_mut().skip(56).zip(bits.to_be_bytes()) {
            *b = l;
        }
        compress(&mut self.state, &self.block);
        let mut out = [0u8; 32];
        for (o, s) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&s.to_be_bytes());
        }
        out
    }
}

/// SHA-256 of `data`.
pub fn digest(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(data);
    h.finish()
}

/// SHA-256 of `data` in lowercase hex (64 digits).
pub fn hex_digest(data: &[u8]) -> String {
    hex(&digest(data))
}

/// The first 128 bits of SHA-256 of `data` in lowercase hex (32 digits): a one-way
/// fingerprint or an id, short enough to read.
pub fn hex_digest_128(data: &[u8]) -> String {
    let d = digest(data);
    hex(d.first_chunk::<16>().map_or(&[][..], |c| &c[..]))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0xf] {
            out.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    out
}

/// One round (FIPS 180-4 §6.2.2 step 3) with the variables renamed: the new `a` is written
/// to `h` and the new `e` to `d`, so the caller rotates the names instead of moving eight
/// values. `Ch(e, f, g) = g ^ (e & (f ^ g))`; `Maj(a, b, c) = b ^ ((a ^ b) & (b ^ c))`, where
/// `b ^ c` is the previous round's `a ^ b` (`$ab` carries it). `Σ1(e) = ROTR6(ROTR5(ROTR14(e) ^
/// e) ^ e)` is `ROTR6 ^ ROTR11 ^ ROTR25` with one temporary; likewise `Σ0` (2, 13, 22).
macro_rules! round {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $w:ident, $i:expr, $ab:ident) => {
        let t1 = $h
            .wrapping_add(((($e.rotate_right(14) ^ $e).rotate_right(5)) ^ $e).rotate_right(6))
            .wrapping_add($g ^ ($e & ($f ^ $g)))
            .wrapping_add(K[$i])
            .wrapping_add($w);
        let ab = $a ^ $b;
        let t2 = ((($a.rotate_right(9) ^ $a).rotate_right(11) ^ $a).rotate_right(2))
            .wrapping_add($b ^ (ab & $ab));
        $ab = ab;
        $d = $d.wrapping_add(t1);
        $h = t1.wrapping_add(t2);
    };
}

/// The message schedule in place (§6.2.2 step 1):
/// `w[t] = σ1(w[t-2]) + w[t-7] + σ0(w[t-15]) + w[t-16]`, `w[t-16]` being the local `w[t]`
/// overwrites; `σ1(x) = ROTR17(ROTR2(x) ^ x) ^ SHR10(x)` and
/// `σ0(x) = ROTR7(ROTR11(x) ^ x) ^ SHR3(x)`.
macro_rules! schedule {
    ($w:ident, $w2:ident, $w7:ident, $w15:ident) => {
        $w = $w
            .wrapping_add(($w2.rotate_right(2) ^ $w2).rotate_right(17) ^ ($w2 >> 10))
            .wrapping_add($w7)
            .wrapping_add(($w15.rotate_right(11) ^ $w15).rotate_right(7) ^ ($w15 >> 3));
    };
}

/// Processes one 64-byte block into `state`.
// The last round's `a ^ b` is carried for a next round there is not.
#[allow(unused_assignments)]
fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    let mut w = [0u32; 16];
    for (w, c) in w.iter_mut().zip(block.chunks_exact(4)) {
        if let [b0, b1, b2, b3] = *c {
            *w = u32::from_be_bytes([b0, b1, b2, b3]);
        }
    }
    let [mut w0, mut w1, mut w2, mut w3, mut w4, mut w5, mut w6, mut w7, mut w8, mut w9, mut w10, mut w11, mut w12, mut w13, mut w14, mut w15] =
        w;
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    // `Maj`'s `b ^ c` of the first round.
    let mut ab = b ^ c;
    round!(a, b, c, d, e, f, g, h, w0, 0, ab);
    round!(h, a, b, c, d, e, f, g, w1, 1, ab);
    round!(g, h, a, b, c, d, e, f, w2, 2, ab);
    round!(f, g, h, a, b, c, d, e, w3, 3, ab);
    round!(e, f, g, h, a, b, c, d, w4, 4, ab);
    round!(d, e, f, g, h, a, b, c, w5, 5, ab);
    round!(c, d, e, f, g, h, a, b, w6, 6, ab);
    round!(b, c, d, e, f, g, h, a, w7, 7, ab);
    round!(a, b, c, d, e, f, g, h, w8, 8, ab);
    round!(h, a, b, c, d, e, f, g, w9, 9, ab);
    round!(g, h, a, b, c, d, e, f, w10, 10, ab);
    round!(f, g, h, a, b, c, d, e, w11, 11, ab);
    round!(e, f, g, h, a, b, c, d, w12, 12, ab);
    round!(d, e, f, g, h, a, b, c, w13, 13, ab);
    round!(c, d, e, f, g, h, a, b, w14, 14, ab);
    round!(b, c, d, e, f, g, h, a, w15, 15, ab);
    schedule!(w0, w14, w9, w1);
    round!(a, b, c, d, e, f, g, h, w0, 16, ab);
    schedule!(w1, w15, w10, w2);
    round!(h, a, b, c, d, e, f, g, w1, 17, ab);
    schedule!(w2, w0, w11, w3);
    round!(g, h, a, b, c, d, e, f, w2, 18, ab);
    schedule!(w3, w1, w12, w4);
    round!(f, g, h, a, b, c, d, e, w3, 19, ab);
    schedule!(w4, w2, w13, w5);
    round!(e, f, g, h, a, b, c, d, w4, 20, ab);
    schedule!(w5, w3, w14, w6);
    round!(d, e, f, g, h, a, b, c, w5, 21, ab);
    schedule!(w6, w4, w15, w7);
    round!(c, d, e, f, g, h, a, b, w6, 22, ab);
    schedule!(w7, w5, w0, w8);
    round!(b, c, d, e, f, g, h, a, w7, 23, ab);
    schedule!(w8, w6, w1, w9);
    round!(a, b, c, d, e, f, g, h, w8, 24, ab);
    schedule!(w9, w7, w2, w10);
    round!(h, a, b, c, d, e, f, g, w9, 25, ab);
    schedule!(w10, w8, w3, w11);
    round!(g, h, a, b, c, d, e, f, w10, 26, ab);
    schedule!(w11, w9, w4, w12);
    round!(f, g, h, a, b, c, d, e, w11, 27, ab);
    schedule!(w12, w10, w5, w13);
    round!(e, f, g, h, a, b, c, d, w12, 28, ab);
    schedule!(w13, w11, w6, w14);
    round!(d, e, f, g, h, a, b, c, w13, 29, ab);
    schedule!(w14, w12, w7, w15);
    round!(c, d, e, f, g, h, a, b, w14, 30, ab);
    schedule!(w15, w13, w8, w0);
    round!(b, c, d, e, f, g, h, a, w15, 31, ab);
    schedule!(w0, w14, w9, w1);
    round!(a, b, c, d, e, f, g, h, w0, 32, ab);
    schedule!(w1, w15, w10, w2);
    round!(h, a, b, c, d, e, f, g, w1, 33, ab);
    schedule!(w2, w0, w11, w3);
    round!(g, h, a, b, c, d, e, f, w2, 34, ab);
    schedule!(w3, w1, w12, w4);
    round!(f, g, h, a, b, c, d, e, w3, 35, ab);
    schedule!(w4, w2, w13, w5);
    round!(e, f, g, h, a, b, c, d, w4, 36, ab);
    schedule!(w5, w3, w14, w6);
    round!(d, e, f, g, h, a, b, c, w5, 37, ab);
    schedule!(w6, w4, w15, w7);
    round!(c, d, e, f, g, h, a, b, w6, 38, ab);
    schedule!(w7, w5, w0, w8);
    round!(b, c, d, e, f, g, h, a, w7, 39, ab);
    schedule!(w8, w6, w1, w9);
    round!(a, b, c, d, e, f, g, h, w8, 40, ab);
    schedule!(w9, w7, w2, w10);
    round!(h, a, b, c, d, e, f, g, w9, 41, ab);
    schedule!(w10, w8, w3, w11);
    round!(g, h, a, b, c, d, e, f, w10, 42, ab);
    schedule!(w11, w9, w4, w12);
    round!(f, g, h, a, b, c, d, e, w11, 43, ab);
    schedule!(w12, w10, w5, w13);
    round!(e, f, g, h, a, b, c, d, w12, 44, ab);
    schedule!(w13, w11, w6, w14);
    round!(d, e, f, g, h, a, b, c, w13, 45, ab);
    schedule!(w14, w12, w7, w15);
    round!(c, d, e, f, g, h, a, b, w14, 46, ab);
    schedule!(w15, w13, w8, w0);
    round!(b, c, d, e, f, g, h, a, w15, 47, ab);
    schedule!(w0, w14, w9, w1);
    round!(a, b, c, d, e, f, g, h, w0, 48, ab);
    schedule!(w1, w15, w10, w2);
    round!(h, a, b, c, d, e, f, g, w1, 49, ab);
    schedule!(w2, w0, w11, w3);
    round!(g, h, a, b, c, d, e, f, w2, 50, ab);
    schedule!(w3, w1, w12, w4);
    round!(f, g, h, a, b, c, d, e, w3, 51, ab);
    schedule!(w4, w2, w13, w5);
    round!(e, f, g, h, a, b, c, d, w4, 52, ab);
    schedule!(w5, w3, w14, w6);
    round!(d, e, f, g, h, a, b, c, w5, 53, ab);
    schedule!(w6, w4, w15, w7);
    round!(c, d, e, f, g, h, a, b, w6, 54, ab);
    schedule!(w7, w5, w0, w8);
    round!(b, c, d, e, f, g, h, a, w7, 55, ab);
    schedule!(w8, w6, w1, w9);
    round!(a, b, c, d, e, f, g, h, w8, 56, ab);
    schedule!(w9, w7, w2, w10);
    round!(h, a, b, c, d, e, f, g, w9, 57, ab);
    schedule!(w10, w8, w3, w11);
    round!(g, h, a, b, c, d, e, f, w10, 58, ab);
    schedule!(w11, w9, w4, w12);
    round!(f, g, h, a, b, c, d, e, w11, 59, ab);
    schedule!(w12, w10, w5, w13);
    round!(e, f, g, h, a, b, c, d, w12, 60, ab);
    schedule!(w13, w11, w6, w14);
    round!(d, e, f, g, h, a, b, c, w13, 61, ab);
    schedule!(w14, w12, w7, w15);
    round!(c, d, e, f, g, h, a, b, w14, 62, ab);
    schedule!(w15, w13, w8, w0);
    round!(b, c, d, e, f, g, h, a, w15, 63, ab);
    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = s.wrapping_add(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::hmac_sha256;
    use crate::test_rng::Rng;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn oracle(data: &[u8]) -> [u8; 32] {
        use sha2::Digest as _;
        sha2::Sha256::digest(data).into()
    }

    /// FIPS 180-4's examples (NIST CSRC "Example Algorithms", SHA-256) and the empty message.
    #[test]
    fn nist_examples() {
        let cases: [(&[u8], &str); 4] = [
            (
                b"",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                b"abc",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            ),
            (
                b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
                "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
            ),
        ];
        for (message, want) in cases {
            assert_eq!(hex(&digest(message)), want, "{message:?}");
        }
        let mut h = Sha256::new();
        for _ in 0..1000 {
            h.update(&[b'a'; 1000]);
        }
        assert_eq!(
            hex(&h.finish()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    /// Every length from 0 to 4096 (each padding case: 55, 56, 63, 64 bytes into a block),
    /// whole and split at random points, against the `sha2` crate.
    #[test]
    fn same_as_sha2_for_every_length_and_split() {
        let mut rng = Rng(0x5a25_6000_0000_001d);
        let data: Vec<u8> = (0..4096).map(|_| rng.below(256) as u8).collect();
        for len in 0..=4096 {
            let message = &data[..len];
            let want = oracle(message);
            assert_eq!(digest(message), want, "length {len}");
            let mut h = Sha256::new();
            let mut rest = message;
            while !rest.is_empty() {
                let n = rng.below(rest.len() + 1);
                let (piece, tail) = rest.split_at(n);
                h.update(piece);
                rest = tail;
            }
            assert_eq!(h.finish(), want, "length {len}, split");
        }
    }

    /// Hostile shapes: long runs of one byte, every byte value, bytes that are not UTF-8, and
    /// updates one byte at a time.
    #[test]
    fn same_as_sha2_on_runs_and_single_byte_updates() {
        for byte in [0u8, 0x80, 0xff, b'"', b'\\'] {
            for len in [1, 63, 64, 65, 1000, 65_537] {
                let message = vec![byte; len];
                assert_eq!(digest(&message), oracle(&message), "{byte} x {len}");
            }
        }
        let all: Vec<u8> = (0..=255u8).cycle().take(3 * 256 + 7).collect();
        let mut h = Sha256::new();
        for b in &all {
            h.update(std::slice::from_ref(b));
        }
        assert_eq!(h.finish(), oracle(&all));
    }

    /// RFC 4231 §4.2-4.7 (test case 5's output is truncated to 128 bits there).
    #[test]
    fn hmac_rfc_4231() {
        let long_key = [0xaa; 131];
        let cases: [(&[u8], &[u8], &str); 6] = [
            (&[0x0b; 20], b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            (&[0xaa; 20], &[0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            (
                &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25],
                &[0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (&long_key, b"Test Using Larger Than Block-Size Key - Hash Key First", "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
            (
                &long_key,
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, message, want) in cases {
            assert_eq!(hex(&hmac_sha256(key, message)), want);
        }
        let truncated = hex(&hmac_sha256(&[0x0c; 20], b"Test With Truncation"));
        assert_eq!(&truncated[..32], "a3b6167473100ee06e0c796c2955552b");
    }
}
