//! The prompt-injection classifier: hashed character n-grams, words and word bigrams of the
//! normalised text ([`super::normalize`]) into a logistic regression with int8 weights,
//! compiled into the module as data (`injection_model.bin`, written by
//! `training/injection/train.py`; its header says which features it was trained on).
//!
//! The text is cut into blocks of [`BLOCK`] bytes of normalised text; a window is two adjacent
//! blocks (a short text is one window), so an injection of up to one block always sits whole
//! in some window however much text surrounds it. A window's logit is
//! `bias + scale * sum(weights) / sqrt(features)` over its distinct features (each counts
//! once per window, so repeating a benign sentence adds no evidence); the text's score is the
//! sigmoid of its highest window. One pass over the bytes: each feature costs a few
//! multiplications and one table read (its weight, beside the stamp of the block that last
//! counted it); its weight is added to its block's running sum, and the part also in the
//! block before is kept apart so a window of the two counts it once (buffers reused across
//! texts: one entry per block, a stamp and a weight per table entry), and nothing is
//! allocated per byte.
//!
//! The bias is set at training so that a score of 0.5 is the operating point chosen on
//! validation data (false alarms at most ~1%); higher scores are more certain.

use std::sync::OnceLock;

/// Bytes of normalised text per block (a window is two).
pub const BLOCK: usize = 128;

/// The weight file as `build.rs` packs it (a canonical Huffman code of
/// `injection_model.bin`: half the bytes), decoded once per VM by [`Model::embedded`].
const PACKED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/injection_model.huff"));
/// The raw file, the source of truth, which the packed one must decode to.
#[cfg(test)]
const MODEL: &[u8] = include_bytes!("injection_model.bin");
const HEADER: usize = 20;
/// 3: features count once per window (2 counted repeats).
const VERSION: [u8; 2] = [3, 0];

/// Feature kinds, the bits of the header's flags byte.
const CHAR2: u8 = 1;
const CHAR3: u8 = 2;
const CHAR4: u8 = 4;
const WORDS: u8 = 16;
const WORD_PAIRS: u8 = 32;
/// The feature kinds of the shipped model, which get a loop of their own
/// ([`features_shipped`]: no flag tests): character trigrams, words and word pairs (bigrams
/// and 4-grams cost more than they gave, BENCHMARKS.md "Cheaper feature sets"). Any other set
/// still scores, in the general loop.
const SHIPPED: u8 = CHAR3 | WORDS | WORD_PAIRS;

const K0: u32 = 0x9E37_79B1;
const K1: u32 = 0x85EB_CA77;
const K2: u32 = 0xC2B2_AE3D;
const K3: u32 = 0x27D4_EB2F;
const SEED2: u32 = 0x3C6E_F372;
const SEED4: u32 = 0xA54F_F53A;
const WORD_SEED: u32 = 0x5BD1_E995;
const PAIR_SEED: u32 = 0x27D4_EB2F;
const FNV_BASIS: u32 = 0x811C_9DC5;
const FNV_PRIME: u32 = 0x0100_0193;

/// log2 of the number of weights (the header must say the same).
pub const BITS: u32 = 17;
const WEIGHTS: usize = 1 << BITS;

/// All-zero weights: the stand-in when the embedded file is unusable (which tests rule out),
/// so the word pass the phrase tier needs still runs.
static NO_WEIGHTS: [u8; WEIGHTS] = [0; WEIGHTS];

/// The parsed weight file.
#[derive(Debug)]
pub struct Model {
    flags: u8,
    scale: f64,
    bias: f64,
    weights: &'static [u8; WEIGHTS],
}

/// Why the embedded weight file was not usable (a build error; tests catch it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelError {
    BadMagic,
    BadVersion,
    BadBlock,
    WrongLength,
}

/// A block's distinct features: their weight sum and number, and the part of both that the
/// block before also has (a window of the two counts it once). Sum and number are packed as
/// `sum * 2^32 + count` (a feature adds `w * 2^32 + 1`): one addition counts both, and the
/// count (a few hundred at most) never carries into the sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockSum {
    all: i64,
    shared: i64,
}

/// The weight sum and number of packed features (see [`BlockSum`]).
fn unpack(packed: i64) -> (i32, u32) {
    ((packed >> 32) as i32, packed as u32)
}

/// Buffers the feature pass reuses across texts: one [`BlockSum`] per block, and per table
/// entry the stamp of the block that last counted it (stamps run on across blocks and texts,
/// so nothing is cleared per block) beside the entry's weight, so that a feature reads one
/// place of memory, not two (512 KiB, made when a model with features first runs).
#[derive(Debug, Default)]
pub struct Scratch {
    blocks: Vec<BlockSum>,
    /// Per table entry: `[stamp, weight]` (the weight as i16 bits).
    table: Option<Box<[Entry; WEIGHTS]>>,
    /// The weights the table holds.
    of: Option<&'static [u8; WEIGHTS]>,
    /// The last stamp used.
    stamp: u16,
}

/// A table entry: the stamp of the block that last counted it, and its weight (i16 bits).
type Entry = [u16; 2];

/// Where the feature pass puts features: [`Acc`] counts them, [`NoFeatures`] (the null
/// model, which has none) drops them, so its word pass needs no table.
trait Sink {
    fn add(&mut self, h: u32);
    /// The current block's sums (which start again from 0).
    fn take(&mut self) -> BlockSum;
    /// The next block starts.
    fn next_block(&mut self);
}

/// The running sums of the current block, and the stamps that make each feature count once.
struct Acc<'a> {
    block: BlockSum,
    table: &'a mut [Entry; WEIGHTS],
    /// The current block's stamp; the block before has `cur - 1` (never below 1).
    cur: u16,
}

impl Sink for Acc<'_> {
    /// Adds the feature of hash `h` (its top bits index the table) to the current block,
    /// unless the block has it already.
    #[inline(always)]
    fn add(&mut self, h: u32) {
        let idx = (h >> (32 - BITS)) as usize;
        let Some(slot) = self.table.get_mut(idx) else {
            return;
        };
        let [last, w] = *slot;
        if last == self.cur {
            return;
        }
        *slot = [self.cur, w];
        let w = i64::from(w as i16);
        let packed = (w << 32) + 1;
        self.block.all += packed;
        // All ones when the block before counted it too.
        self.block.shared += packed & -i64::from(last == self.cur - 1);
    }

    fn take(&mut self) -> BlockSum {
        std::mem::take(&mut self.block)
    }

    /// When stamps run out, the block just ended becomes 1 and every other entry 0 (once
    /// every 65,533 blocks: 8 MiB of text).
    fn next_block(&mut self) {
        if self.cur == u16::MAX {
            for [s, _] in self.table.iter_mut() {
                *s = u16::from(*s == u16::MAX);
            }
            self.cur = 1;
        }
        self.cur += 1;
    }
}

/// The sink of a model without features.
struct NoFeatures;

impl Sink for NoFeatures {
    #[inline(always)]
    fn add(&mut self, _: u32) {}
    fn take(&mut self) -> BlockSum {
        BlockSum::default()
    }
    fn next_block(&mut self) {}
}

/// A word of the normalised text, for the phrase tier: its hash ([`word_hash`] of its
/// bytes) and byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word {
    pub hash: u32,
    pub start: usize,
    pub end: usize,
}

impl Model {
    /// Parses a weight file: `PGIM`, version u16 = 2, hash bits u8 (= [`BITS`]), feature
    /// flags u8, block u32, scale f32, bias f32 (little endian), then 2^bits int8 weights.
    pub fn parse(bytes: &'static [u8]) -> Result<Model, ModelError> {
        let field = |at: usize, len: usize| bytes.get(at..at + len).unwrap_or_default();
        if field(0, 4) != b"PGIM" {
            return Err(ModelError::BadMagic);
        }
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(field(at, 4));
            b
        };
        if bytes.len() < HEADER || field(4, 2) != VERSION {
            return Err(ModelError::BadVersion);
        }
        let bits = u32::from(field(6, 1).first().copied().unwrap_or(0));
        let flags = field(7, 1).first().copied().unwrap_or(0);
        if u32::from_le_bytes(u32_at(8)) as usize != BLOCK {
            return Err(ModelError::BadBlock);
        }
        let scale = f64::from(f32::from_le_bytes(u32_at(12)));
        let bias = f64::from(f32::from_le_bytes(u32_at(16)));
        let weights = bytes.get(HEADER..).unwrap_or_default();
        let weights: &'static [u8; WEIGHTS] = match weights.try_into() {
            Ok(w) if bits == BITS => w,
            _ => return Err(ModelError::WrongLength),
        };
        Ok(Model {
            flags,
            scale,
            bias,
            weights,
        })
    }

    /// The embedded model (decoded and parsed once per VM, at first use).
    pub fn embedded() -> Option<&'static Model> {
        static FILE: OnceLock<Option<Vec<u8>>> = OnceLock::new();
        static M: OnceLock<Option<Model>> = OnceLock::new();
        M.get_or_init(|| {
            let file = FILE.get_or_init(|| super::huffman::decode(PACKED).ok());
            Model::parse(file.as_deref()?).ok()
        })
        .as_ref()
    }

    /// A model that scores everything 0 (its word pass still runs).
    pub fn null() -> &'static Model {
        static M: Model = Model {
            flags: 0,
            scale: 0.0,
            bias: f64::NEG_INFINITY,
            weights: &NO_WEIGHTS,
        };
        &M
    }

    /// Scores normalised text (UTF-8 bytes): the best window's score and where it lies.
    /// `blocks` is a buffer the caller keeps (one pair per block); `on_word` sees every word
    /// (a run of [`is_word_cp`] characters), in order.
    pub fn score(&self, text: &[u8], scratch: &mut Scratch, on_word: impl FnMut(Word)) -> Scored {
        scratch.blocks.clear();
        scratch
            .blocks
            .resize(text.len() / BLOCK + 1, BlockSum::default());
        let used = self.features(text, scratch, on_word);
        self.best_window(scratch.blocks.get(..used).unwrap_or_default(), text.len())
    }

    /// The window with the highest logit among `blocks`.
    fn best_window(&self, blocks: &[BlockSum], len: usize) -> Scored {
        let logit = |s: i32, n: u32| {
            if n == 0 {
                self.bias
            } else {
                self.bias + self.scale * f64::from(s) / f64::from(n).sqrt()
            }
        };
        let first = unpack(blocks.first().copied().unwrap_or_default().all);
        let mut best = (logit(first.0, first.1), 0);
        for (k, pair) in blocks.windows(2).enumerate() {
            if let [a, b] = pair {
                let (s, n) = unpack(a.all + b.all - b.shared);
                let l = logit(s, n);
                if k == 0 || l > best.0 {
                    best = (l, k);
                }
            }
        }
        let (logit, k) = best;
        Scored {
            score: 1.0 / (1.0 + (-logit).exp()),
            window: (k * BLOCK, ((k + 2) * BLOCK).min(len)),
        }
    }

    /// The feature pass: sums every feature's weight into its block; returns the number of
    /// blocks used. One loop over the bytes, decoding UTF-8 on the way; a loop of its own for
    /// the [`SHIPPED`] feature kinds ([`features_shipped`]).
    #[inline(never)]
    fn features(&self, text: &[u8], scratch: &mut Scratch, on_word: impl FnMut(Word)) -> usize {
        let Scratch {
            blocks,
            table,
            of,
            stamp,
        } = scratch;
        // A model without features (the null one) needs no table: `add` finds none.
        if self.flags != 0 && table.is_none() {
            *table = vec![[0u16; 2]; WEIGHTS].into_boxed_slice().try_into().ok();
        }
        // The table holds this model's weights (filled again when the scratch goes to another
        // model, with every stamp 0).
        if let Some(t) = table.as_deref_mut().filter(|_| self.flags != 0) {
            if !of.is_some_and(|w| std::ptr::eq(w, self.weights)) {
                for (e, &w) in t.iter_mut().zip(self.weights.iter()) {
                    *e = [0, w as i8 as i16 as u16];
                }
                *of = Some(self.weights);
                *stamp = 0;
            }
        }
        // The first block's stamp is two past any entry's, so no entry reads as the block
        // before it; when the stamps run short, every entry starts again from 0.
        if *stamp >= u16::MAX - 2 {
            if let Some(t) = table.as_deref_mut() {
                for [s, _] in t.iter_mut() {
                    *s = 0;
                }
            }
            *stamp = 0;
        }
        let Some(table) = table.as_deref_mut().filter(|_| self.flags != 0) else {
            return self.features_with(text, blocks, &mut NoFeatures, on_word);
        };
        let mut acc = Acc {
            block: BlockSum::default(),
            table,
            cur: *stamp + 2,
        };
        let used = if self.flags == SHIPPED {
            features_shipped(text, blocks, &mut acc, on_word)
        } else {
            self.features_with(text, blocks, &mut acc, on_word)
        };
        *stamp = acc.cur;
        used
    }
    /// The general loop: any set of feature kinds, tested per character (other models, and
    /// the null model's word pass).
    #[inline(always)]
    fn features_with(
        &self,
        text: &[u8],
        blocks: &mut [BlockSum],
        acc: &mut impl Sink,
        mut on_word: impl FnMut(Word),
    ) -> usize {
        let flags = self.flags;
        let has = |f: u8| flags & f != 0;
        let (m2, m3, m4) = (has(CHAR2), has(CHAR3), has(CHAR4));
        // The current block, and where the next one starts (characters start in order, so
        // a character starts a new block exactly when it starts at or past this).
        let (mut block, mut next) = (0usize, BLOCK);
        // The last three characters, newest first, and how many there were (up to 3).
        let (mut c1, mut c2, mut c3, mut seen) = (0u32, 0u32, 0u32, 0u32);
        // The word being read: its hash and start (usize::MAX: none).
        let (mut word, mut word_start) = (FNV_BASIS, usize::MAX);
        let mut prev_word: Option<u32> = None;
        let (mut cp, mut need, mut start) = (0u32, 0u32, 0usize);
        for (off, &byte) in text.iter().enumerate() {
            let is_word = if byte < 0x80 {
                cp = u32::from(byte);
                start = off;
                let w = WORD_BYTE.get(usize::from(byte)).copied().unwrap_or(false);
                if w {
                    word = (word ^ cp).wrapping_mul(FNV_PRIME);
                }
                w
            } else {
                if byte >= 0xC0 {
                    (cp, need) = match byte {
                        0xF0.. => (u32::from(byte & 0x07), 3),
                        0xE0.. => (u32::from(byte & 0x0F), 2),
                        _ => (u32::from(byte & 0x1F), 1),
                    };
                    start = off;
                    continue;
                }
                cp = cp << 6 | u32::from(byte & 0x3F);
                need = need.saturating_sub(1);
                if need > 0 {
                    continue;
                }
                let w = is_word_cp(cp);
                if w {
                    for &x in text.get(start..=off).unwrap_or_default() {
                        word = (word ^ u32::from(x)).wrapping_mul(FNV_PRIME);
                    }
                }
                w
            };
            if start >= next {
                let ended = acc.take();
                if let Some(b) = blocks.get_mut(block) {
                    *b = ended;
                }
                acc.next_block();
                block = start / BLOCK;
                next = (block + 1) * BLOCK;
            }
            if is_word {
                if word_start == usize::MAX {
                    word_start = start;
                }
            } else if word_start != usize::MAX {
                // The word ends here; its features count in this character's block.
                on_word(Word {
                    hash: word,
                    start: word_start,
                    end: start,
                });
                self.word_features(word, &mut prev_word, flags, acc);
                (word, word_start) = (FNV_BASIS, usize::MAX);
            }
            let p2 = cp.wrapping_mul(K2);
            let h2 = c1.wrapping_mul(K1) ^ p2;
            let h3 = c2.wrapping_mul(K0) ^ h2;
            let h4 = c3.wrapping_mul(K3) ^ h3;
            // The n-grams that fit (the first characters have fewer before them).
            if seen >= 1 && m2 {
                acc.add(h2 ^ SEED2);
            }
            if seen >= 2 && m3 {
                acc.add(h3);
            }
            if seen >= 3 && m4 {
                acc.add(h4 ^ SEED4);
            }
            seen = (seen + 1).min(3);
            (c3, c2, c1) = (c2, c1, cp);
        }
        if word_start != usize::MAX {
            on_word(Word {
                hash: word,
                start: word_start,
                end: text.len(),
            });
            self.word_features(word, &mut prev_word, flags, acc);
        }
        if let Some(b) = blocks.get_mut(block) {
            *b = acc.take();
        }
        block + 1
    }

    /// A word ended: its feature and its pair with the word before.
    #[inline(always)]
    fn word_features(&self, h: u32, prev: &mut Option<u32>, flags: u8, acc: &mut impl Sink) {
        if flags & WORDS != 0 {
            acc.add(finalize(h ^ WORD_SEED));
        }
        if let (Some(p), true) = (*prev, flags & WORD_PAIRS != 0) {
            acc.add(finalize(p.wrapping_mul(FNV_PRIME) ^ h ^ PAIR_SEED));
        }
        *prev = Some(h);
    }
}

/// Where the shipped pass is between two characters.
struct Pass {
    /// The next character's offset.
    i: usize,
    /// The hash of the word being read (of the characters since `gap_end`).
    word: u32,
    /// The offset after the last character that is not a word character: a word is open
    /// when it is not the current character's (a word character sets nothing).
    gap_end: usize,
    /// The hash of the word before (for the pair), once there is one.
    prev_word: Option<u32>,
    /// The next trigram's hash but for its last character's part: `c2 * K0 ^ c1 * K1` of
    /// the last two characters `c2 c1` (a rolling hash: each character's three products are
    /// computed once, when it is read).
    tri: u32,
    /// `c1 * K0`, for the trigram after the next.
    c1k0: u32,
}

/// The feature pass of the [`SHIPPED`] kinds (character trigrams, words, word pairs): what
/// [`Model::features_with`] computes for them, in a loop made for them. The loop's bound is
/// the end of the current block (no block test per character), an ASCII byte is a character
/// (no decoding state), and the first two characters, which make no trigram, are read before
/// it (no count of characters seen).
#[inline(always)]
fn features_shipped(
    text: &[u8],
    blocks: &mut [BlockSum],
    acc: &mut Acc<'_>,
    mut on_word: impl FnMut(Word),
) -> usize {
    let n = text.len();
    let mut p = Pass {
        i: 0,
        word: FNV_BASIS,
        gap_end: 0,
        prev_word: None,
        tri: 0,
        c1k0: 0,
    };
    // The first two characters lie in block 0 (they start within 8 bytes).
    for _ in 0..2 {
        if p.i >= n {
            break;
        }
        shipped_char::<false>(text, &mut p, acc, &mut on_word);
    }
    let (mut block, mut next) = (0usize, BLOCK);
    loop {
        let limit = next.min(n);
        while p.i < limit {
            shipped_char::<true>(text, &mut p, acc, &mut on_word);
        }
        if p.i >= n {
            break;
        }
        // The character at `p.i` starts the next block.
        let ended = acc.take();
        if let Some(b) = blocks.get_mut(block) {
            *b = ended;
        }
        acc.next_block();
        block = p.i / BLOCK;
        next = (block + 1) * BLOCK;
    }
    if p.gap_end < n {
        on_word(Word {
            hash: p.word,
            start: p.gap_end,
            end: n,
        });
        shipped_word_features(p.word, &mut p.prev_word, acc);
    }
    if let Some(b) = blocks.get_mut(block) {
        *b = acc.take();
    }
    block + 1
}

/// One character of the shipped pass, at `p.i` (which must be in `text`): its word, and its
/// trigram when `TRIGRAM` (the third character on).
#[inline(always)]
fn shipped_char<const TRIGRAM: bool>(
    text: &[u8],
    p: &mut Pass,
    acc: &mut Acc<'_>,
    on_word: &mut impl FnMut(Word),
) {
    let start = p.i;
    let b = text.get(start).copied().unwrap_or(0);
    let (cp, is_word) = if b < 0x80 {
        p.i += 1;
        let cp = u32::from(b);
        let w = WORD_BYTE.get(usize::from(b)).copied().unwrap_or(false);
        if w {
            p.word = (p.word ^ cp).wrapping_mul(FNV_PRIME);
        }
        (cp, w)
    } else {
        let (cp, len, hashed) = multibyte(text, start, b, p.word);
        p.i += len;
        let w = is_word_cp(cp);
        if w {
            p.word = hashed;
        }
        (cp, w)
    };
    if !is_word {
        if p.gap_end != start {
            // The word ends here; its features count in this character's block.
            on_word(Word {
                hash: p.word,
                start: p.gap_end,
                end: start,
            });
            shipped_word_features(p.word, &mut p.prev_word, acc);
            p.word = FNV_BASIS;
        }
        p.gap_end = p.i;
    }
    if TRIGRAM {
        acc.add(p.tri ^ cp.wrapping_mul(K2));
    }
    p.tri = p.c1k0 ^ cp.wrapping_mul(K1);
    p.c1k0 = cp.wrapping_mul(K0);
}

/// A word ended (shipped pass): its feature and its pair with the word before.
#[inline(always)]
fn shipped_word_features(h: u32, prev: &mut Option<u32>, acc: &mut Acc<'_>) {
    acc.add(finalize(h ^ WORD_SEED));
    if let Some(p) = *prev {
        acc.add(finalize(p.wrapping_mul(FNV_PRIME) ^ h ^ PAIR_SEED));
    }
    *prev = Some(h);
}

/// The character of UTF-8 text whose first byte `b` (not ASCII) is at `at`: its code point,
/// its length, and the word hash `word` would become with its bytes (read once for both).
/// The normaliser writes UTF-8; on other bytes (a byte that cannot start a character, a
/// character cut short) the pass still ends, with features of no meaning.
#[inline(always)]
fn multibyte(text: &[u8], at: usize, b: u8, word: u32) -> (u32, usize, u32) {
    let word = (word ^ u32::from(b)).wrapping_mul(FNV_PRIME);
    let len = match b {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => return (u32::from(b), 1, word),
    };
    let (mut cp, mut word) = (u32::from(b) & (0x7F >> len), word);
    for k in 1..len {
        let x = text.get(at + k).copied().unwrap_or(0);
        cp = cp << 6 | u32::from(x & 0x3F);
        word = (word ^ u32::from(x)).wrapping_mul(FNV_PRIME);
    }
    (cp, len, word)
}

/// Mixes a word hash (FNV's high bits alone are weak).
fn finalize(x: u32) -> u32 {
    (x ^ (x >> 15)).wrapping_mul(0x2C1B_3C6D)
}

/// The hash [`Model::score`] gives a word: FNV-1a of its bytes.
pub fn word_hash(word: &[u8]) -> u32 {
    word.iter().fold(FNV_BASIS, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// The result of [`Model::score`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// Probability-like score in 0..=1 (0.5: the trained operating point).
    pub score: f64,
    /// Byte range of the normalised text covered by the best window.
    pub window: (usize, usize),
}

/// [`is_word_cp`] of each ASCII byte.
// Indexing in a const initialiser is evaluated at compile time: out of bounds fails the
// build, never panics at run time.
#[allow(clippy::indexing_slicing)]
const WORD_BYTE: [bool; 128] = {
    let mut t = [false; 128];
    let mut b = 0;
    while b < 128 {
        t[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    t
};

/// Word characters: ASCII letters and digits, and every other character but whitespace, the
/// Latin-1 symbols, general and CJK punctuation (a CJK sentence is one "word"; its n-grams
/// carry it).
pub fn is_word_cp(cp: u32) -> bool {
    if cp < 0x80 {
        return matches!(cp, 0x30..=0x39 | 0x41..=0x5A | 0x61..=0x7A);
    }
    // Kana, CJK and Hangul (most of the text when it is not ASCII): none of the exceptions.
    matches!(cp, 0x3040..=0x9fff | 0xac00..=0xd7a3) || is_word_beyond_ascii(cp)
}

/// [`is_word_cp`] beyond ASCII, without its shortcut.
fn is_word_beyond_ascii(cp: u32) -> bool {
    !(char::from_u32(cp).is_some_and(super::normalize::is_space)
        || (0x80..=0xbf).contains(&cp)
        || (0x2000..=0x206f).contains(&cp)
        || (0x3000..=0x303f).contains(&cp)
        || (0xff01..=0xff0f).contains(&cp))
}

#[cfg(test)]
mod reference;

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn score(text: &str) -> Scored {
        let mut n = crate::detect::normalize::Normalized::default();
        n.normalize(text);
        Model::embedded()
            .unwrap()
            .score(n.bytes(), &mut Scratch::default(), |_| {})
    }

    #[test]
    fn the_embedded_model_parses() {
        let m = Model::embedded().expect("model");
        assert_ne!(m.flags, 0);
        assert!(m.scale > 0.0 && m.bias.is_finite());
    }

    /// The packed weights decode to the raw file, byte for byte.
    #[test]
    fn the_packed_file_decodes_to_the_raw_one() {
        let decoded = crate::detect::huffman::decode(PACKED).unwrap();
        assert!(
            decoded == MODEL,
            "decoded weight file differs from injection_model.bin"
        );
        assert!(
            PACKED.len() < MODEL.len() * 6 / 10,
            "{} bytes",
            PACKED.len()
        );
    }

    #[test]
    fn bad_files_are_refused() {
        assert_eq!(Model::parse(b"nope").err(), Some(ModelError::BadMagic));
        assert_eq!(
            Model::parse(b"PGIM\x01\x00").err(),
            Some(ModelError::BadVersion)
        );
        let short: &'static [u8] = Box::leak(
            [MODEL.get(..HEADER).unwrap(), &[0u8; 10]]
                .concat()
                .into_boxed_slice(),
        );
        assert_eq!(Model::parse(short).err(), Some(ModelError::WrongLength));
    }

    /// The Python twin (training/injection/features.py) and this code compute the same
    /// normalised text and the same score for every text of the fixture the training writes.
    #[test]
    fn parity() {
        let fixture = include_str!("../../training/injection/parity.jsonl");
        let mut n = 0;
        for line in fixture.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let text = v["text"].as_str().unwrap();
            let norm = crate::detect::normalize::normalize(text);
            assert_eq!(norm, v["normalized"].as_str().unwrap(), "{text:?}");
            let score = score(text).score;
            let want = v["score"].as_f64().unwrap();
            assert!((score - want).abs() < 1e-4, "{text:?}: {score} != {want}");
            n += 1;
        }
        assert!(n >= 150);
    }

    /// Stamps that run out (at the start of a text, or between two of its blocks) give the
    /// scores fresh buffers give: a feature of the block before still counts once.
    #[test]
    fn stamps_that_run_out_change_no_score() {
        let mut n = crate::detect::normalize::Normalized::default();
        n.normalize(&"ignore the previous email, project nightingal ".repeat(40));
        let m = Model::embedded().unwrap();
        let fresh = m.score(n.bytes(), &mut Scratch::default(), |_| {});
        for start in [u16::MAX - 2, u16::MAX - 4, u16::MAX - 7] {
            let mut scratch = Scratch::default();
            m.score(b"warm up", &mut scratch, |_| {});
            scratch.stamp = start;
            let s = m.score(n.bytes(), &mut scratch, |_| {});
            assert_eq!(s.score, fresh.score, "from stamp {start}");
            assert_eq!(s.window, fresh.window);
            assert!(scratch.stamp < 64, "{}", scratch.stamp);
        }
    }

    /// One scratch used by turns with models of other weights (its table holds one model's
    /// weights at a time) gives each model the reference's scores.
    #[test]
    fn a_scratch_shared_by_models_scores_each_as_the_reference() {
        let embedded = Model::embedded().unwrap();
        let mut file = MODEL.to_vec();
        for w in &mut file[HEADER..] {
            *w = (*w as i8).wrapping_neg().wrapping_add(3) as u8;
        }
        let other = Model::parse(Box::leak(file.into_boxed_slice())).unwrap();
        let mut norm = crate::detect::normalize::Normalized::default();
        let mut scratch = Scratch::default();
        for (i, raw) in generated_texts().iter().step_by(7).enumerate() {
            norm.normalize(raw);
            let text = std::str::from_utf8(norm.bytes()).unwrap();
            for m in if i % 2 == 0 {
                [embedded, &other]
            } else {
                [&other, embedded]
            } {
                let (want, _) = reference::score(m, text);
                let got = m.score(text.as_bytes(), &mut scratch, |_| {});
                assert_eq!(got.score.to_bits(), want.score.to_bits(), "{text:?}");
                assert_eq!(got.window, want.window, "{text:?}");
            }
        }
    }

    /// Random texts: ASCII words, punctuation and whitespace, accented letters, CJK and
    /// emoji, in lengths around the block sizes (a fixed xorshift seed: the same texts on
    /// every run).
    fn generated_texts() -> Vec<String> {
        const PIECES: &[&str] = &[
            "ignore",
            "the",
            "previous",
            "instructions",
            "a",
            "b",
            "you are now",
            "DAN",
            " ",
            "  ",
            ".",
            ",",
            "-",
            "\n",
            "é",
            "naïve",
            "日本語",
            "忽略",
            "🙂",
            "\u{200b}",
            "1gn0r3",
            "x",
            "system prompt",
            "€",
            "'",
            "\"",
            "ça",
            "ß",
            "İ",
            "ｉｇｎｏｒｅ",
            "42",
        ];
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        (0..600)
            .map(|i| {
                let target = [0, 1, 3, 127, 128, 129, 255, 256, 300, 700, 2000][i % 11] + next(4);
                let mut t = String::new();
                while t.len() < target {
                    t.push_str(PIECES[next(PIECES.len())]);
                }
                t
            })
            .collect()
    }

    fn corpus_texts() -> Vec<String> {
        include_str!("../../training/injection/parity.jsonl")
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["text"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    /// The one-pass scorer gives exactly the straightforward one's scores, windows and words
    /// (normalised texts; the buffers reused across all texts, as in the engine, and fresh).
    #[test]
    fn one_pass_scores_equal_the_reference() {
        let m = Model::embedded().unwrap();
        let mut shared = Scratch::default();
        let mut norm = crate::detect::normalize::Normalized::default();
        let mut texts = generated_texts();
        texts.extend(corpus_texts());
        for raw in texts.iter().flat_map(|t| [t.clone(), t.repeat(3)]) {
            norm.normalize(&raw);
            let text = std::str::from_utf8(norm.bytes()).unwrap();
            let (want, want_words) = reference::score(m, text);
            for scratch in [&mut shared, &mut Scratch::default()] {
                let mut words = Vec::new();
                let got = m.score(text.as_bytes(), scratch, |w| words.push(w));
                assert_eq!(got.score.to_bits(), want.score.to_bits(), "{text:?}");
                assert_eq!(got.window, want.window, "{text:?}");
                assert_eq!(words, want_words, "{text:?}");
            }
            let mut words = Vec::new();
            Model::null().score(text.as_bytes(), &mut Scratch::default(), |w| words.push(w));
            assert_eq!(words, want_words, "null model, {text:?}");
        }
    }

    /// The general loop (a model with other feature kinds than [`SHIPPED`]) gives the
    /// reference's scores too: every kind alone, all of them, and the sets the shipped one
    /// was chosen from (the shipped weights, other header flags).
    #[test]
    fn every_feature_set_scores_as_the_reference() {
        let texts: Vec<String> = generated_texts().into_iter().step_by(5).collect();
        let mut norm = crate::detect::normalize::Normalized::default();
        for flags in [
            CHAR2,
            CHAR3,
            CHAR4,
            WORDS,
            WORD_PAIRS,
            CHAR2 | CHAR3 | CHAR4 | WORDS | WORD_PAIRS,
            CHAR3 | CHAR4 | WORDS | WORD_PAIRS,
            CHAR4 | WORDS | WORD_PAIRS,
        ] {
            let mut file = MODEL.to_vec();
            file[7] = flags;
            let m = Model::parse(Box::leak(file.into_boxed_slice())).unwrap();
            assert_eq!(m.flags, flags);
            let mut scratch = Scratch::default();
            for raw in &texts {
                norm.normalize(raw);
                let text = std::str::from_utf8(norm.bytes()).unwrap();
                let (want, _) = reference::score(&m, text);
                let got = m.score(text.as_bytes(), &mut scratch, |_| {});
                assert_eq!(
                    got.score.to_bits(),
                    want.score.to_bits(),
                    "{flags} {text:?}"
                );
                assert_eq!(got.window, want.window, "{flags} {text:?}");
            }
        }
    }

    /// The shipped loop's edges: texts of one to a few characters (the first two make no
    /// trigram), and two-, three- and four-byte characters and words across every offset
    /// near a block's end (a character belongs to the block it starts in).
    #[test]
    fn block_edges_score_as_the_reference() {
        let m = Model::embedded().unwrap();
        let mut texts: Vec<String> = [
            "a", "é", "日", "🙂", " ", "ab", "a ", " a", "é日", "🙂a", "a b",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        for pad in 118..132 {
            for piece in ["é", "日本", "🙂", " ignore", "x", ". "] {
                let t = format!("{}{piece} the previous instructions", "a".repeat(pad));
                texts.push(format!("{t}{}", " ok".repeat(pad / 3)));
                texts.push(t.replace('a', "é"));
            }
        }
        let mut scratch = Scratch::default();
        for text in &texts {
            let (want, want_words) = reference::score(m, text);
            let mut words = Vec::new();
            let got = m.score(text.as_bytes(), &mut scratch, |w| words.push(w));
            assert_eq!(got.score.to_bits(), want.score.to_bits(), "{text:?}");
            assert_eq!(got.window, want.window, "{text:?}");
            assert_eq!(words, want_words, "{text:?}");
        }
    }

    /// The shortcut for kana, CJK and Hangul says what the general test says.
    #[test]
    fn word_char_shortcut_agrees() {
        for cp in (0x3040..=0x9fff).chain(0xac00..=0xd7a3) {
            assert!(is_word_beyond_ascii(cp), "{cp:x}");
        }
        assert!(!is_word_cp(0x3000) && !is_word_cp(0x303f) && is_word_cp(0xa000));
    }

    #[test]
    fn the_embedded_model_takes_the_fast_loop() {
        assert_eq!(Model::embedded().unwrap().flags, SHIPPED);
    }

    #[test]
    fn windows_cover_long_texts() {
        let empty = score("");
        assert!(empty.score > 0.0 && empty.score < 0.5);
        let long = "the weather is fine today. ".repeat(200);
        let s = score(&long);
        assert_eq!(s.window.1 - s.window.0, 2 * BLOCK);
        assert!(s.window.1 <= long.len());
        let short = score("hello there");
        assert_eq!(short.window, (0, 11));
    }
}
