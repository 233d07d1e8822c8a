//! SipHash-2-4 with its 128-bit output (Aumasson and Bernstein, "SipHash: a fast short-input
//! PRF", 2012, and the reference implementation's 128-bit variant), written from the
//! specification: the text cache's keyed tag of a text. Checked against the reference
//! implementation's published vectors (`vectors.h` of github.com/veorq/SipHash).
//!
//! A PRF, not a plain hash: without the 128-bit key, nobody can predict a tag or make two
//! texts share one, so a tag can stand for its text. A text is tagged where it lies:
//! fixed-size fields as whole words before it, no copy.

/// A SipHash key: two little-endian 64-bit halves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key(pub u64, pub u64);

impl std::fmt::Debug for Key {
    /// A key is a secret: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// The key from 16 bytes (`k0` the first 8, little-endian, as the reference reads them).
    pub fn from_bytes(b: [u8; 16]) -> Key {
        let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7] = b;
        Key(
            u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
        )
    }
}

#[inline(always)]
fn round(v: &mut [u64; 4]) {
    let [v0, v1, v2, v3] = v;
    *v0 = v0.wrapping_add(*v1);
    *v1 = v1.rotate_left(13) ^ *v0;
    *v0 = v0.rotate_left(32);
    *v2 = v2.wrapping_add(*v3);
    *v3 = v3.rotate_left(16) ^ *v2;
    *v0 = v0.wrapping_add(*v3);
    *v3 = v3.rotate_left(21) ^ *v0;
    *v2 = v2.wrapping_add(*v1);
    *v1 = v1.rotate_left(17) ^ *v2;
    *v2 = v2.rotate_left(32);
}

/// `n` rounds: one copy of the round in the module (a few instructions of call per 8 bytes,
/// against ~118 per byte of judging a text).
#[inline(never)]
fn rounds(v: &mut [u64; 4], n: usize) {
    for _ in 0..n {
        round(v);
    }
}

/// One message word, two rounds (the "2" of SipHash-2-4).
fn compress(v: &mut [u64; 4], m: u64) {
    let [_, _, _, v3] = v;
    *v3 ^= m;
    rounds(v, 2);
    let [v0, _, _, _] = v;
    *v0 ^= m;
}

fn xor(v: &[u64; 4]) -> u64 {
    let [v0, v1, v2, v3] = *v;
    v0 ^ v1 ^ v2 ^ v3
}

/// SipHash-2-4-128 under `k` of the message `head` (its words, each as 8 little-endian bytes)
/// followed by `tail`: the reference's 16 output bytes as two little-endian words. Fixed-size
/// fields go in `head`, so one text is hashed where it lies, without a copy.
pub fn sip128(k: Key, head: &[u64], tail: &[u8]) -> (u64, u64) {
    let mut v = [
        k.0 ^ 0x736f_6d65_7073_6575,
        // The 128-bit variant marks its output length in v1.
        k.1 ^ 0x646f_7261_6e64_6f6d ^ 0xee,
        k.0 ^ 0x6c79_6765_6e65_7261,
        k.1 ^ 0x7465_6462_7974_6573,
    ];
    for &m in head {
        compress(&mut v, m);
    }
    let mut words = tail.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        compress(&mut v, u64::from_le_bytes(b));
    }
    // The last block: the message length (mod 256) in its top byte, the remaining bytes below.
    let len = (head.len() as u64)
        .wrapping_mul(8)
        .wrapping_add(tail.len() as u64);
    let mut last = len << 56;
    for (i, &b) in words.remainder().iter().enumerate() {
        last |= u64::from(b) << (8 * i);
    }
    compress(&mut v, last);
    let [_, _, v2, _] = &mut v;
    *v2 ^= 0xee;
    rounds(&mut v, 4);
    let first = xor(&v);
    let [_, v1, _, _] = &mut v;
    *v1 ^= 0xdd;
    rounds(&mut v, 4);
    (first, xor(&v))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// SipHash-2-4 with 128-bit output, key 00..0f, message 00..(i-1): the reference
    /// implementation's `vectors_sip128` (github.com/veorq/SipHash, vectors.h).
    const VECTORS_128: [&str; 64] = [
        "a3817f04ba25a8e66df67214c7550293",
        "da87c1d86b99af44347659119b22fc45",
        "8177228da4a45dc7fca38bdef60affe4",
        "9c70b60c5267a94e5f33b6b02985ed51",
        "f88164c12d9c8faf7d0f6e7c7bcd5579",
        "1368875980776f8854527a07690e9627",
        "14eeca338b208613485ea0308fd7a15e",
        "a1f1ebbed8dbc153c0b84aa61ff08239",
        "3b62a9ba6258f5610f83e264f31497b4",
        "264499060ad9baabc47f8b02bb6d71ed",
        "00110dc378146956c95447d3f3d0fbba",
        "0151c568386b6677a2b4dc6f81e5dc18",
        "d626b266905ef35882634df68532c125",
        "9869e247e9c08b10d029934fc4b952f7",
        "31fcefac66d7de9c7ec7485fe4494902",
        "5493e99933b0a8117e08ec0f97cfc3d9",
        "6ee2a4ca67b054bbfd3315bf85230577",
        "473d06e8738db89854c066c47ae47740",
        "a426e5e423bf4885294da481feaef723",
        "78017731cf65fab074d5208952512eb1",
        "9e25fc833f2290733e9344a5e83839eb",
        "568e495abe525a218a2214cd3e071d12",
        "4a29b54552d16b9a469c10528eff0aae",
        "c9d184ddd5a9f5e0cf8ce29a9abf691c",
        "2db479ae78bd50d8882a8a178a6132ad",
        "8ece5f042d5e447b5051b9eacb8d8f6f",
        "9c0b53b4b3c307e87eaee08678141f66",
        "abf248af69a6eae4bfd3eb2f129eeb94",
        "0664da1668574b88b935f3027358aef4",
        "aa4b9dc4bf337de90cd4fd3c467c6ab7",
        "ea5c7f471faf6bde2b1ad7d4686d2287",
        "2939b0183223fafc1723de4f52c43d35",
        "7c3956ca5eeafc3e363e9d556546eb68",
        "77c6077146f01c32b6b69d5f4ea9ffcf",
        "37a6986cb8847edf0925f0f1309b54de",
        "a705f0e69da9a8f907241a2e923c8cc8",
        "3dc47d1f29c448461e9e76ed904f6711",
        "0d62bf01e6fc0e1a0d3c4751c5d3692b",
        "8c03468bca7c669ee4fd5e084bbee7b5",
        "528a5bb93baf2c9c4473cce5d0d22bd9",
        "df6a301e95c95dad97ae0cc8c6913bd8",
        "801189902c857f39e73591285e70b6db",
        "e617346ac9c231bb3650ae34ccca0c5b",
        "27d93437efb721aa401821dcec5adf89",
        "89237d9ded9c5e78d8b1c9b166cc7342",
        "4a6d8091bf5e7d651189fa94a250b14c",
        "0e33f96055e7ae893ffc0e3dcf492902",
        "e61c432b720b19d18ec8d84bdc63151b",
        "f7e5aef549f782cf379055a608269b16",
        "438d030fd0b7a54fa837f2ad201a6403",
        "a590d3ee4fbf04e3247e0d27f286423f",
        "5fe2c1a172fe93c4b15cd37caef9f538",
        "2c97325cbd06b36eb2133dd08b3a017c",
        "92c814227a6bca949ff0659f002ad39e",
        "dce850110bd8328cfbd50841d6911d87",
        "67f14984c7da791248e32bb5922583da",
        "1938f2cf72d54ee97e94166fa91d2a36",
        "74481e9646ed49fe0f6224301604698e",
        "57fca5de98a9d6d8006438d0583d8a1d",
        "9fecde1cefdc1cbed4763674d9575359",
        "e3040c00eb28f15366ca73cbd872e740",
        "7697009a6a831dfecca91c5993670f7a",
        "5853542321f567a005d547a4f04759bd",
        "5150d1772f50834a503e069a973fbd7c",
    ];

    fn reference_key() -> Key {
        let mut k = [0u8; 16];
        for (i, b) in k.iter_mut().enumerate() {
            *b = i as u8;
        }
        Key::from_bytes(k)
    }

    fn hex(first: u64, second: u64) -> String {
        let mut s = String::new();
        for b in first
            .to_le_bytes()
            .iter()
            .chain(second.to_le_bytes().iter())
        {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// The 64 published vectors: key 00..0f, message 00..(i-1).
    #[test]
    fn matches_the_reference_vectors() {
        let msg: Vec<u8> = (0..64u8).collect();
        for (i, want) in VECTORS_128.iter().enumerate() {
            let (a, b) = sip128(reference_key(), &[], &msg[..i]);
            assert_eq!(hex(a, b), *want, "message of {i} bytes");
        }
    }

    /// Words in `head` are the message's bytes as much as the `tail`'s are.
    #[test]
    fn head_words_are_message_bytes() {
        let msg: Vec<u8> = (0..64u8).collect();
        for i in 0..64 {
            for words in 0..=i / 8 {
                let head: Vec<u64> = msg[..8 * words]
                    .chunks_exact(8)
                    .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
                    .collect();
                let (a, b) = sip128(reference_key(), &head, &msg[8 * words..i]);
                assert_eq!(hex(a, b), VECTORS_128[i], "{i} bytes, {words} words ahead");
            }
        }
    }

    #[test]
    fn a_key_is_never_printed() {
        assert_eq!(format!("{:?}", Key(1, 2)), "Key(..)");
    }
}
