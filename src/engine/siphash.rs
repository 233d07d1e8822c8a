//! SipHash-2-4 with its 128-bit output (Aumasson and Bernstein, "SipHash: a fast short-input
//! PRF", 2012, and the reference implementation's 128-bit variant), written from the
//! specification: the text cache's keyed tag of a text. Checked against the reference
//! implementation's published vectors (`vectors.h` of github.com/veorq/SipHash).
//!
//! A PRF, not a plain hash: without the 128-bit key, nobody can predict a tag or make two
//! texts share one, so a tag can stand for its text. Incremental, so a text is tagged where
//! it lies, without copying it next to its scope.

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

/// An incremental SipHash-2-4-128: [`Sip128::write`] any number of times, then
/// [`Sip128::finish`]. The tag of the concatenation of everything written.
#[derive(Clone)]
pub struct Sip128 {
    v: [u64; 4],
    /// Bytes written and not yet compressed (the low `tail_len` bytes, little-endian).
    tail: u64,
    tail_len: usize,
    /// All bytes written, modulo 256 (the last block's top byte).
    len: u64,
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

impl Sip128 {
    pub fn new(k: Key) -> Sip128 {
        Sip128 {
            v: [
                k.0 ^ 0x736f_6d65_7073_6575,
                // The 128-bit variant marks its output length in v1.
                k.1 ^ 0x646f_7261_6e64_6f6d ^ 0xee,
                k.0 ^ 0x6c79_6765_6e65_7261,
                k.1 ^ 0x7465_6462_7974_6573,
            ],
            tail: 0,
            tail_len: 0,
            len: 0,
        }
    }

    #[inline(always)]
    fn compress(&mut self, m: u64) {
        let [_, _, _, v3] = &mut self.v;
        *v3 ^= m;
        round(&mut self.v);
        round(&mut self.v);
        let [v0, _, _, _] = &mut self.v;
        *v0 ^= m;
    }

    pub fn write(&mut self, mut bytes: &[u8]) {
        self.len = self.len.wrapping_add(bytes.len() as u64);
        // Fill the pending word first.
        while self.tail_len > 0 && self.tail_len < 8 {
            let Some((&b, rest)) = bytes.split_first() else {
                return;
            };
            self.tail |= u64::from(b) << (8 * self.tail_len);
            self.tail_len += 1;
            bytes = rest;
        }
        if self.tail_len == 8 {
            let m = self.tail;
            self.compress(m);
            self.tail = 0;
            self.tail_len = 0;
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.compress(u64::from_le_bytes(b));
        }
        for (i, &b) in words.remainder().iter().enumerate() {
            self.tail |= u64::from(b) << (8 * i);
        }
        self.tail_len = words.remainder().len();
    }

    /// Writes `n` as 8 little-endian bytes (a length prefix keeps fields apart).
    pub fn write_u64(&mut self, n: u64) {
        self.write(&n.to_le_bytes());
    }

    /// The 128-bit tag, as the reference's 16 output bytes read as two little-endian words.
    pub fn finish(mut self) -> (u64, u64) {
        let m = self.tail | (self.len << 56);
        self.compress(m);
        let [_, _, v2, _] = &mut self.v;
        *v2 ^= 0xee;
        for _ in 0..4 {
            round(&mut self.v);
        }
        let [v0, v1, v2, v3] = self.v;
        let first = v0 ^ v1 ^ v2 ^ v3;
        let [_, v1, _, _] = &mut self.v;
        *v1 ^= 0xdd;
        for _ in 0..4 {
            round(&mut self.v);
        }
        let [v0, v1, v2, v3] = self.v;
        (first, v0 ^ v1 ^ v2 ^ v3)
    }
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

    /// The same for the 64-bit output (`vectors_sip64`).
    const VECTORS_64: [&str; 64] = [
        "310e0edd47db6f72",
        "fd67dc93c539f874",
        "5a4fa9d909806c0d",
        "2d7efbd796666785",
        "b7877127e09427cf",
        "8da699cd64557618",
        "cee3fe586e46c9cb",
        "37d1018bf50002ab",
        "6224939a79f5f593",
        "b0e4a90bdf82009e",
        "f3b9dd94c5bb5d7a",
        "a7ad6b22462fb3f4",
        "fbe50e86bc8f1e75",
        "903d84c02756ea14",
        "eef27a8e90ca23f7",
        "e545be4961ca29a1",
        "db9bc2577fcc2a3f",
        "9447be2cf5e99a69",
        "9cd38d96f0b3c14b",
        "bd6179a71dc96dbb",
        "98eea21af25cd6be",
        "c7673b2eb0cbf2d0",
        "883ea3e395675393",
        "c8ce5ccd8c030ca8",
        "94af49f6c650adb8",
        "eab8858ade92e1bc",
        "f315bb5bb835d817",
        "adcf6b0763612e2f",
        "a5c91da7acaa4dde",
        "716595876650a2a6",
        "28ef495c53a387ad",
        "42c341d8fa92d832",
        "ce7cf2722f512771",
        "e37859f94623f3a7",
        "381205bb1ab0e012",
        "ae97a10fd434e015",
        "b4a31508beff4d31",
        "81396229f0907902",
        "4d0cf49ee5d4dcca",
        "5c73336a76d8bf9a",
        "d0a704536ba93e0e",
        "925958fcd6420cad",
        "a915c29bc8067318",
        "952b79f3bc0aa6d4",
        "f21df2e41d4535f9",
        "87577519048f53a9",
        "10a56cf5dfcd9adb",
        "eb75095ccd986cd0",
        "51a9cb9ecba312e6",
        "96afadfc2ce666c7",
        "72fe52975a4364ee",
        "5a1645b276d592a1",
        "b274cb8ebf87870a",
        "6f9bb4203de7b381",
        "eaecb2a30b22a87f",
        "9924a43cc1315724",
        "bd838d3aafbf8db7",
        "0b1a2a3265d51aea",
        "135079a3231ce660",
        "932b2846e4d70666",
        "e1915f5cb1eca46c",
        "f325965ca16d629f",
        "575ff28e60381be5",
        "724506eb4c328a95",
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
            let mut h = Sip128::new(reference_key());
            h.write(&msg[..i]);
            let (a, b) = h.finish();
            assert_eq!(hex(a, b), *want, "message of {i} bytes");
        }
    }

    /// Written in any pieces, the tag is that of the whole message.
    #[test]
    fn pieces_give_the_tag_of_the_whole() {
        let msg: Vec<u8> = (0..64u8).collect();
        for i in 0..64 {
            for cut1 in 0..=i {
                for cut2 in cut1..=i {
                    let mut h = Sip128::new(reference_key());
                    h.write(&msg[..cut1]);
                    h.write(&msg[cut1..cut2]);
                    h.write(&msg[cut2..i]);
                    let (a, b) = h.finish();
                    assert_eq!(hex(a, b), VECTORS_128[i], "{i} cut at {cut1}, {cut2}");
                }
            }
        }
    }

    /// The 64-bit vectors share the rounds: the reference's `vectors_sip64` checked with the
    /// 64-bit initialisation and finalisation, so a wrong round shows twice.
    #[test]
    fn the_rounds_give_the_64_bit_vectors_too() {
        let msg: Vec<u8> = (0..64u8).collect();
        let k = reference_key();
        for (i, want) in VECTORS_64.iter().enumerate() {
            let mut h = Sip128::new(k);
            h.v[1] ^= 0xee; // undo the 128-bit mark
            h.write(&msg[..i]);
            let m = h.tail | (h.len << 56);
            h.compress(m);
            h.v[2] ^= 0xff;
            for _ in 0..4 {
                round(&mut h.v);
            }
            let [v0, v1, v2, v3] = h.v;
            let got: String = (v0 ^ v1 ^ v2 ^ v3)
                .to_le_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(got, *want, "message of {i} bytes");
        }
    }

    #[test]
    fn a_key_is_never_printed() {
        assert_eq!(format!("{:?}", Key(1, 2)), "Key(..)");
    }
}
