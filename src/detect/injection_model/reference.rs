//! A straightforward scorer for tests: every feature listed with its block, each window's
//! distinct features collected in a set. Slow and obviously right; the one-pass scorer must
//! give exactly its scores, windows and words.

use std::collections::HashSet;

use super::{
    finalize, is_word_cp, Model, Scored, Word, BITS, BLOCK, CHAR2, CHAR3, CHAR4, FNV_PRIME, K0, K1,
    K2, K3, PAIR_SEED, SEED2, SEED4, WORDS, WORD_PAIRS, WORD_SEED,
};

/// Scores `text` (valid UTF-8) as [`Model::score`] does; also returns its words.
pub fn score(model: &Model, text: &str) -> (Scored, Vec<Word>) {
    let flags = model.flags;
    // (block, table index) of every feature, repeats included.
    let mut feats: Vec<(usize, usize)> = Vec::new();
    let mut words = Vec::new();
    let mut add = |block: usize, h: u32| feats.push((block, (h >> (32 - BITS)) as usize));
    let mut prev_word: Option<u32> = None;
    let mut word_features = |block: usize, h: u32, add: &mut dyn FnMut(usize, u32)| {
        if flags & WORDS != 0 {
            add(block, finalize(h ^ WORD_SEED));
        }
        if let (Some(p), true) = (prev_word, flags & WORD_PAIRS != 0) {
            add(block, finalize(p.wrapping_mul(FNV_PRIME) ^ h ^ PAIR_SEED));
        }
        prev_word = Some(h);
    };
    let mut before: Vec<u32> = Vec::new();
    let mut word: Option<usize> = None;
    let mut last_block = 0;
    for (start, c) in text.char_indices() {
        let block = start / BLOCK;
        last_block = block;
        let cp = c as u32;
        if is_word_cp(cp) {
            word.get_or_insert(start);
        } else if let Some(s) = word.take() {
            let hash = super::word_hash(&text.as_bytes()[s..start]);
            words.push(Word {
                hash,
                start: s,
                end: start,
            });
            word_features(block, hash, &mut add);
        }
        let n = before.len();
        let back = |k: usize| before[n - k];
        if n >= 1 && flags & CHAR2 != 0 {
            add(
                block,
                back(1).wrapping_mul(K1) ^ cp.wrapping_mul(K2) ^ SEED2,
            );
        }
        if n >= 2 && flags & CHAR3 != 0 {
            add(
                block,
                back(2).wrapping_mul(K0) ^ back(1).wrapping_mul(K1) ^ cp.wrapping_mul(K2),
            );
        }
        if n >= 3 && flags & CHAR4 != 0 {
            add(
                block,
                back(3).wrapping_mul(K3)
                    ^ back(2).wrapping_mul(K0)
                    ^ back(1).wrapping_mul(K1)
                    ^ cp.wrapping_mul(K2)
                    ^ SEED4,
            );
        }
        before.push(cp);
    }
    if let Some(s) = word {
        let hash = super::word_hash(&text.as_bytes()[s..]);
        words.push(Word {
            hash,
            start: s,
            end: text.len(),
        });
        word_features(last_block, hash, &mut add);
    }
    let window = |blocks: &[usize]| {
        let set: HashSet<usize> = feats
            .iter()
            .filter(|f| blocks.contains(&f.0))
            .map(|f| f.1)
            .collect();
        let sum: i32 = set.iter().map(|&i| i32::from(model.weights[i] as i8)).sum();
        let n = set.len() as u32;
        if n == 0 {
            model.bias
        } else {
            model.bias + model.scale * f64::from(sum) / f64::from(n).sqrt()
        }
    };
    let mut best = (window(&[0]), 0);
    for k in 0..last_block {
        let l = window(&[k, k + 1]);
        if k == 0 || l > best.0 {
            best = (l, k);
        }
    }
    let (logit, k) = best;
    let scored = Scored {
        score: 1.0 / (1.0 + (-logit).exp()),
        window: (k * BLOCK, ((k + 2) * BLOCK).min(text.len())),
    };
    (scored, words)
}
