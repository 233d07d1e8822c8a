//! The prompt-injection classifier: hashed character trigrams, words and word bigrams of the
//! normalised text ([`super::normalize`]) into a logistic regression with int8 weights,
//! compiled into the module as data (`injection_model.bin`, 128 KiB, written by
//! `training/injection/train.py`).
//!
//! The text is cut into blocks of [`BLOCK`] bytes of normalised text; a window is two adjacent
//! blocks (a short text is one window), so an injection of up to one block always sits whole
//! in some window however much text surrounds it. A window's logit is
//! `bias + scale * sum(weights) / sqrt(features)`; the text's score is the sigmoid of its
//! highest window. One pass over the text: each feature costs a hash and a table read, the
//! running sums of two blocks are all the state, and nothing is allocated per byte.
//!
//! The bias is set at training so that a score of 0.5 is the operating point chosen on
//! validation data (false alarms at most ~1%); higher scores are more certain.

use std::sync::OnceLock;

/// Bytes of normalised text per block (a window is two).
pub const BLOCK: usize = 128;

const MODEL: &[u8] = include_bytes!("injection_model.bin");
const HEADER: usize = 20;

/// The parsed weight file.
#[derive(Debug)]
pub struct Model {
    bits: u32,
    scale: f64,
    bias: f64,
    weights: &'static [u8],
}

/// Why the embedded weight file was not usable (a build error; tests catch it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelError {
    BadMagic,
    BadVersion,
    BadBlock,
    WrongLength,
}

impl Model {
    /// Parses a weight file: `PGIM`, version u16 = 1, hash bits u8, 0, block u32, scale f32,
    /// bias f32 (little endian), then 2^bits int8 weights.
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
        if bytes.len() < HEADER || field(4, 2) != [1, 0] {
            return Err(ModelError::BadVersion);
        }
        let bits = u32::from(field(6, 1).first().copied().unwrap_or(0));
        if u32::from_le_bytes(u32_at(8)) as usize != BLOCK {
            return Err(ModelError::BadBlock);
        }
        let scale = f64::from(f32::from_le_bytes(u32_at(12)));
        let bias = f64::from(f32::from_le_bytes(u32_at(16)));
        let weights = bytes.get(HEADER..).unwrap_or_default();
        if !(1..=24).contains(&bits) || weights.len() != 1 << bits {
            return Err(ModelError::WrongLength);
        }
        Ok(Model {
            bits,
            scale,
            bias,
            weights,
        })
    }

    /// The embedded model (parsed once).
    pub fn embedded() -> Option<&'static Model> {
        static M: OnceLock<Option<Model>> = OnceLock::new();
        M.get_or_init(|| Model::parse(MODEL).ok()).as_ref()
    }

    fn weight(&self, h: u32) -> i32 {
        let idx = (finalize(h) >> (32 - self.bits)) as usize;
        i32::from(self.weights.get(idx).copied().unwrap_or(0) as i8)
    }

    /// Scores normalised text: the best window's score and where it lies (byte range of
    /// `normalized`).
    pub fn score(&self, normalized: &str) -> Scored {
        let mut w = Windows::new(self);
        let mut prev_word: Option<u32> = None;
        let mut word: Option<(u32, usize)> = None; // running FNV hash, offset of last char
        let mut c1: u32 = 0;
        let mut c2: u32 = 0;
        for (k, (off, c)) in normalized.char_indices().enumerate() {
            let is_word = is_word_char(c);
            if is_word {
                let h = word.map_or(FNV_BASIS, |(h, _)| h);
                word = Some((fnv1a(h, c), off));
            } else if let Some((h, last)) = word.take() {
                w.feature(last, self.word_feature(h, &mut prev_word));
            }
            let cp = c as u32;
            if k >= 2 {
                let h = c2.wrapping_mul(0x9E37_79B1)
                    ^ c1.wrapping_mul(0x85EB_CA77)
                    ^ cp.wrapping_mul(0xC2B2_AE3D);
                w.feature(off, self.weight(h));
            }
            c2 = c1;
            c1 = cp;
        }
        if let Some((h, last)) = word.take() {
            w.feature(last, self.word_feature(h, &mut prev_word));
        }
        w.finish()
    }

    /// The weights of a word and of its bigram with the word before, summed, as one
    /// feature count of 1 or 2.
    fn word_feature(&self, h: u32, prev: &mut Option<u32>) -> (i32, u32) {
        let mut sum = self.weight(h ^ 0x5BD1_E995);
        let mut n = 1;
        if let Some(p) = *prev {
            sum += self.weight(p.wrapping_mul(0x0100_0193) ^ h ^ 0x27D4_EB2F);
            n = 2;
        }
        *prev = Some(h);
        (sum, n)
    }
}

/// A feature's weight (or a word's weights and how many features they are).
trait Contribution {
    fn parts(self) -> (i32, u32);
}

impl Contribution for i32 {
    fn parts(self) -> (i32, u32) {
        (self, 1)
    }
}

impl Contribution for (i32, u32) {
    fn parts(self) -> (i32, u32) {
        self
    }
}

/// The result of [`Model::score`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// Probability-like score in 0..=1 (0.5: the trained operating point).
    pub score: f64,
    /// Byte range of the normalised text covered by the best window.
    pub window: (usize, usize),
}

/// The running sums of the current block and the one before it.
struct Windows<'m> {
    model: &'m Model,
    block: usize,
    cur: (i64, u32),
    prev: (i64, u32),
    best: Option<(f64, usize)>,
    any: bool,
}

impl<'m> Windows<'m> {
    fn new(model: &'m Model) -> Windows<'m> {
        Windows {
            model,
            block: 0,
            cur: (0, 0),
            prev: (0, 0),
            best: None,
            any: false,
        }
    }

    fn feature(&mut self, offset: usize, c: impl Contribution) {
        let (sum, n) = c.parts();
        let b = offset / BLOCK;
        while b > self.block {
            if self.block >= 1 {
                self.window(self.block);
            }
            self.prev = self.cur;
            self.cur = (0, 0);
            self.block += 1;
        }
        self.cur.0 += i64::from(sum);
        self.cur.1 += n;
        self.any = true;
    }

    /// The window ending with block `last` (and the one before it, if any).
    fn window(&mut self, last: usize) {
        let (s, n) = if last == 0 {
            self.cur
        } else {
            (self.prev.0 + self.cur.0, self.prev.1 + self.cur.1)
        };
        let logit = if n == 0 {
            self.model.bias
        } else {
            self.model.bias + self.model.scale * s as f64 / f64::from(n).sqrt()
        };
        if self.best.is_none_or(|(b, _)| logit > b) {
            self.best = Some((logit, last));
        }
    }

    fn finish(mut self) -> Scored {
        if self.any {
            self.window(self.block);
        }
        let (logit, last) = self.best.unwrap_or((self.model.bias, 0));
        let start = last.saturating_sub(1) * BLOCK;
        Scored {
            score: 1.0 / (1.0 + (-logit).exp()),
            window: (start, (last + 1) * BLOCK),
        }
    }
}

const FNV_BASIS: u32 = 0x811C_9DC5;

fn fnv1a(mut h: u32, c: char) -> u32 {
    let mut buf = [0u8; 4];
    for b in c.encode_utf8(&mut buf).bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

fn finalize(x: u32) -> u32 {
    (x ^ (x >> 15)).wrapping_mul(0x2C1B_3C6D)
}

/// Word characters: ASCII letters and digits, and every other character but whitespace, the
/// Latin-1 symbols, general and CJK punctuation (a CJK sentence is one "word"; its trigrams
/// carry it).
pub fn is_word_char(c: char) -> bool {
    let cp = c as u32;
    if cp < 0x80 {
        return c.is_ascii_alphanumeric();
    }
    !(super::normalize::is_space(c)
        || (0x80..=0xbf).contains(&cp)
        || (0x2000..=0x206f).contains(&cp)
        || (0x3000..=0x303f).contains(&cp)
        || (0xff01..=0xff0f).contains(&cp))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn the_embedded_model_parses() {
        let m = Model::embedded().expect("model");
        assert_eq!(m.weights.len(), 1 << m.bits);
    }

    #[test]
    fn bad_files_are_refused() {
        assert_eq!(Model::parse(b"nope").err(), Some(ModelError::BadMagic));
        assert_eq!(
            Model::parse(b"PGIM\x02\x00").err(),
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
        let m = Model::embedded().unwrap();
        let mut n = 0;
        for line in fixture.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let text = v["text"].as_str().unwrap();
            let norm = crate::detect::normalize::normalize(text);
            assert_eq!(norm, v["normalized"].as_str().unwrap(), "{text:?}");
            let score = m.score(&norm).score;
            let want = v["score"].as_f64().unwrap();
            assert!((score - want).abs() < 1e-4, "{text:?}: {score} != {want}");
            n += 1;
        }
        assert!(n >= 150);
    }

    #[test]
    fn windows_cover_long_texts() {
        let m = Model::embedded().unwrap();
        let empty = m.score("");
        assert!(empty.score > 0.0 && empty.score < 1.0);
        let long = "the weather is fine today. ".repeat(200);
        let s = m.score(&long);
        assert!(s.window.1 - s.window.0 == 2 * BLOCK);
        assert!(s.window.1 <= long.len() + BLOCK);
    }
}
