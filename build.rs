//! Compresses the injection classifier's weight file (`src/detect/injection_model.bin`, the
//! training output and source of truth) into `$OUT_DIR/injection_model.huff`, which the module
//! embeds instead: int8 weights carry ~4 bits of entropy each, so a byte-wise canonical
//! Huffman code halves them (−65 KB of module). `src/detect/huffman.rs` decodes it once per
//! VM, bit-identical (its tests compare with the raw file); the format is described there.

// Build time only: an out-of-range index here fails the build, never a request.
#![allow(clippy::indexing_slicing)]

use std::error::Error;
use std::path::PathBuf;

/// The longest code: the decoder's lookup table has 2^MAX_LEN entries.
const MAX_LEN: u8 = 12;

fn main() -> Result<(), Box<dyn Error>> {
    let src =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("src/detect/injection_model.bin");
    println!("cargo::rerun-if-changed={}", src.display());
    println!("cargo::rerun-if-changed=build.rs");
    let raw = std::fs::read(&src)?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("injection_model.huff");
    std::fs::write(out, encode(&raw)?)?;
    Ok(())
}

/// `len` u32 LE, 256 code lengths (0: the byte never occurs), then the codes of `raw`'s bytes,
/// most significant bit first, the last byte padded with zeros.
fn encode(raw: &[u8]) -> Result<Vec<u8>, Box<dyn Error>> {
    let mut freq = [0u64; 256];
    for &b in raw {
        freq[usize::from(b)] += 1;
    }
    let lens = limited_lengths(&freq);
    let codes = canonical(&lens);
    let mut out = Vec::with_capacity(raw.len() / 2 + 260);
    out.extend_from_slice(&u32::try_from(raw.len())?.to_le_bytes());
    out.extend_from_slice(&lens);
    let (mut acc, mut nbits) = (0u64, 0u32);
    for &b in raw {
        let len = u32::from(lens[usize::from(b)]);
        acc = (acc << len) | u64::from(codes[usize::from(b)]);
        nbits += len;
        while nbits >= 8 {
            nbits -= 8;
            out.push((acc >> nbits) as u8);
        }
    }
    if nbits > 0 {
        out.push((acc << (8 - nbits)) as u8);
    }
    Ok(out)
}

/// Huffman code lengths of `freq`, at most [`MAX_LEN`] bits: when the optimal code is longer,
/// the counts are halved (never below 1) and the code built again, which flattens the tail.
fn limited_lengths(freq: &[u64; 256]) -> [u8; 256] {
    let mut f = *freq;
    loop {
        let lens = huffman_lengths(&f);
        if lens.iter().all(|&l| l <= MAX_LEN) {
            return lens;
        }
        for c in f.iter_mut().filter(|c| **c > 0) {
            *c = (*c / 2).max(1);
        }
    }
}

/// Optimal code lengths (a lone symbol gets 1 bit).
fn huffman_lengths(freq: &[u64; 256]) -> [u8; 256] {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    // Nodes: leaves 0..256, then internal nodes; `parent` links them.
    let mut parent: Vec<usize> = vec![usize::MAX; 256];
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = freq
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(s, &c)| Reverse((c, s)))
        .collect();
    while heap.len() > 1 {
        let (Some(Reverse((ca, a))), Some(Reverse((cb, b)))) = (heap.pop(), heap.pop()) else {
            break;
        };
        let node = parent.len();
        parent.push(usize::MAX);
        parent[a] = node;
        parent[b] = node;
        heap.push(Reverse((ca + cb, node)));
    }
    let mut lens = [0u8; 256];
    for (s, len) in lens.iter_mut().enumerate() {
        if freq[s] == 0 {
            continue;
        }
        let (mut n, mut depth) = (s, 0u8);
        while parent[n] != usize::MAX {
            n = parent[n];
            depth += 1;
        }
        *len = depth.max(1);
    }
    lens
}

/// Canonical codes: by length, then by byte value, counting up.
fn canonical(lens: &[u8; 256]) -> [u32; 256] {
    let mut codes = [0u32; 256];
    let mut code = 0u32;
    for len in 1..=MAX_LEN {
        for s in 0..256 {
            if lens[s] == len {
                codes[s] = code;
                code += 1;
            }
        }
        code <<= 1;
    }
    codes
}
