//! Decoder of the canonical Huffman code `build.rs` compresses the classifier's weight file
//! with (int8 weights of ~4 bits of entropy each: half the bytes in the module). The format:
//! the decoded length (u32 LE), 256 code lengths (one per byte value, 0 when it never occurs,
//! at most [`MAX_LEN`]), then the codes, most significant bit first, the last byte padded
//! with zeros. Canonical: codes are assigned by length, then by byte value, counting up, so
//! the lengths alone define them. Decoding is one lookup per byte in a table of 2^[`MAX_LEN`]
//! entries indexed by the next [`MAX_LEN`] bits.

/// The longest code (`build.rs` limits its codes to this).
pub const MAX_LEN: u32 = 12;
const HEADER: usize = 4 + 256;

/// Why a packed file does not decode (a build error; tests rule it out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HuffmanError {
    /// Shorter than its header.
    Truncated,
    /// A code length above [`MAX_LEN`], or more codes than the lengths allow.
    BadLengths,
    /// Bits that are no code (an incomplete code), or the bits ran out.
    BadCode,
}

/// Decodes `packed` (see the module doc) into the original bytes.
pub fn decode(packed: &[u8]) -> Result<Vec<u8>, HuffmanError> {
    let (Some(len), Some(lens), Some(bits)) =
        (packed.get(..4), packed.get(4..HEADER), packed.get(HEADER..))
    else {
        return Err(HuffmanError::Truncated);
    };
    let mut n = [0u8; 4];
    n.copy_from_slice(len);
    let n = u32::from_le_bytes(n) as usize;
    let table = table(lens)?;
    let mut out = Vec::with_capacity(n);
    // The next bits, most significant first; `have` of them are valid.
    let (mut acc, mut have) = (0u64, 0u32);
    let mut next = bits.iter();
    while out.len() < n {
        while have <= 56 {
            let Some(&b) = next.next() else { break };
            acc |= u64::from(b) << (56 - have);
            have += 8;
        }
        let entry = table
            .get((acc >> (64 - MAX_LEN)) as usize)
            .copied()
            .unwrap_or(0);
        let used = u32::from(entry >> 8);
        if used == 0 || used > have {
            return Err(HuffmanError::BadCode);
        }
        out.push(entry as u8);
        acc <<= used;
        have -= used;
    }
    Ok(out)
}

/// The lookup table: per [`MAX_LEN`]-bit prefix, `length << 8 | byte` of the code it starts
/// with (0: none).
fn table(lens: &[u8]) -> Result<Vec<u16>, HuffmanError> {
    let mut table = vec![0u16; 1 << MAX_LEN];
    let mut code = 0u32;
    for len in 1..=MAX_LEN {
        for (byte, _) in lens
            .iter()
            .enumerate()
            .filter(|(_, &l)| u32::from(l) == len)
        {
            let span = 1usize << (MAX_LEN - len);
            let first = (code as usize) << (MAX_LEN - len);
            let entry = (len << 8) as u16 | byte as u16;
            table
                .get_mut(first..first + span)
                .ok_or(HuffmanError::BadLengths)?
                .fill(entry);
            code += 1;
        }
        code <<= 1;
    }
    if lens.iter().any(|&l| u32::from(l) > MAX_LEN) {
        return Err(HuffmanError::BadLengths);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Lengths for bytes `a`=1, `b`=2, `c`=2 bits: codes 0, 10, 11.
    fn packed(n: u32, bits: &[u8]) -> Vec<u8> {
        let mut lens = [0u8; 256];
        lens[usize::from(b'a')] = 1;
        lens[usize::from(b'b')] = 2;
        lens[usize::from(b'c')] = 2;
        [&n.to_le_bytes()[..], &lens, bits].concat()
    }

    #[test]
    fn decodes_canonical_codes() {
        // a b c a c = 0 10 11 0 11 -> 0101 1011 | padding
        assert_eq!(decode(&packed(5, &[0b0101_1011])).unwrap(), b"abcac");
    }

    #[test]
    fn refuses_what_is_not_a_code() {
        assert_eq!(decode(b"\x01\x00"), Err(HuffmanError::Truncated));
        // The bits run out before the fourth byte.
        assert_eq!(
            decode(&packed(9, &[0b0101_1011])),
            Err(HuffmanError::BadCode)
        );
        // Two 1-bit codes and one of 2 bits: more codes than lengths allow.
        let mut over = packed(1, &[0]);
        over[4 + usize::from(b'b')] = 1;
        assert_eq!(decode(&over), Err(HuffmanError::BadLengths));
        let mut long = packed(1, &[0]);
        long[4 + usize::from(b'z')] = 13;
        assert_eq!(decode(&long), Err(HuffmanError::BadLengths));
        // Only `a` (code 0): bits starting with 1 are no code.
        let mut lens = [0u8; 256];
        lens[usize::from(b'a')] = 1;
        let incomplete = [&1u32.to_le_bytes()[..], &lens, &[0x80]].concat();
        assert_eq!(decode(&incomplete), Err(HuffmanError::BadCode));
    }
}
