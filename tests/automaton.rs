//! Oracle tests: `detect::automaton` against the aho-corasick crate (a dev-dependency only),
//! hit for hit (pattern, start, end, order) in every mode the detectors use, on thousands of
//! generated pattern sets and texts. Runs natively and under a wasm runtime (32-bit `usize`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use aho_corasick::{AhoCorasick, AhoCorasickKind};
use common::Rng;
use policy_gateway::detect::automaton::{Automaton, BuildError, MatchKind, MAX_HEAP_BYTES};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Bytes the generated patterns and texts draw from: a few letters in both cases (so
/// patterns overlap and nest often), a digit, punctuation, non-ASCII bytes, and now and then
/// any byte at all.
fn byte(rng: &mut Rng, alphabet: &[u8]) -> u8 {
    if rng.below(50) == 0 {
        rng.next() as u8
    } else {
        alphabet[rng.below(alphabet.len())]
    }
}

const ALPHABETS: [&[u8]; 4] = [
    b"abAB",
    b"abcABC-_ ",
    b"aAzZ09\xc3\xa9\xff\x80@[`{",
    b"sk-ANTxyzXYZ_1",
];

fn flip_case(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|&b| {
            if rng.below(2) == 0 {
                b.to_ascii_uppercase()
            } else {
                b.to_ascii_lowercase()
            }
        })
        .collect()
}

fn patterns(rng: &mut Rng, alphabet: &[u8]) -> Vec<Vec<u8>> {
    let count = 1 + rng.below(12);
    let mut out: Vec<Vec<u8>> = Vec::new();
    while out.len() < count {
        let p = match (rng.below(5), out.is_empty()) {
            // A prefix, suffix or middle of an earlier pattern, or a copy (case flipped).
            (0, false) => {
                let q = out[rng.below(out.len())].clone();
                let a = rng.below(q.len());
                let b = a + 1 + rng.below(q.len() - a);
                match rng.below(4) {
                    0 => q[..b].to_vec(),
                    1 => q[a..].to_vec(),
                    2 => q[a..b].to_vec(),
                    _ => flip_case(rng, &q),
                }
            }
            // An earlier pattern extended.
            (1, false) => {
                let mut q = out[rng.below(out.len())].clone();
                for _ in 0..1 + rng.below(3) {
                    if rng.below(2) == 0 {
                        q.push(byte(rng, alphabet));
                    } else {
                        q.insert(0, byte(rng, alphabet));
                    }
                }
                q
            }
            _ => {
                let max = if rng.below(3) == 0 { 2 } else { 7 };
                let len = 1 + rng.below(max);
                (0..len).map(|_| byte(rng, alphabet)).collect()
            }
        };
        out.push(p);
    }
    out
}

fn text(rng: &mut Rng, alphabet: &[u8], patterns: &[Vec<u8>]) -> Vec<u8> {
    let max = if rng.below(4) == 0 { 8 } else { 200 };
    let len = rng.below(max);
    let mut out = Vec::new();
    while out.len() < len {
        if rng.below(3) == 0 {
            let p = &patterns[rng.below(patterns.len())];
            out.extend(flip_case(rng, p));
        } else {
            out.push(byte(rng, alphabet));
        }
    }
    out
}

type Triple = (usize, usize, usize);

fn ours_overlapping(a: &Automaton, text: &[u8]) -> Vec<Triple> {
    a.overlapping(text)
        .map(|h| (h.pattern, h.start, h.end))
        .collect()
}

fn ours_find(a: &Automaton, text: &[u8]) -> Vec<Triple> {
    a.find_iter(text)
        .map(|h| (h.pattern, h.start, h.end))
        .collect()
}

fn oracle(patterns: &[Vec<u8>], kind: aho_corasick::MatchKind, ci: bool, dfa: bool) -> AhoCorasick {
    AhoCorasick::builder()
        .match_kind(kind)
        .ascii_case_insensitive(ci)
        .kind(dfa.then_some(AhoCorasickKind::DFA))
        .build(patterns)
        .unwrap()
}

fn theirs_overlapping(ac: &AhoCorasick, text: &[u8]) -> Vec<Triple> {
    ac.find_overlapping_iter(text)
        .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
        .collect()
}

fn theirs_find(ac: &AhoCorasick, text: &[u8]) -> Vec<Triple> {
    ac.find_iter(text)
        .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
        .collect()
}

/// How a test builds: the form and skip the size and start bytes pick, always sparse, or
/// with the memchr skip whenever one to three bytes start the patterns.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Form {
    Auto,
    Sparse,
    Skip,
}

fn build(pats: &[Vec<u8>], kind: MatchKind, ci: bool, form: Form) -> Automaton {
    match form {
        Form::Auto => Automaton::new(pats, kind, ci).unwrap(),
        Form::Sparse => Automaton::new_sparse(pats, kind, ci).unwrap(),
        Form::Skip => Automaton::new(pats, kind, ci).unwrap().with_skip(),
    }
}

/// Every mode in every form (dense, sparse, skipping) on one pattern set and its texts; returns how
/// many hits were compared.
fn compare(rng: &mut Rng, pats: &[Vec<u8>], alphabet: &[u8], texts: usize) -> usize {
    let mut compared = 0;
    let forms = [Form::Auto, Form::Sparse, Form::Skip];
    for (ci, form) in forms.iter().flat_map(|&f| [(false, f), (true, f)]) {
        let sparse = form == Form::Sparse;
        let dfa = rng.below(2) == 0;
        let std_over = build(pats, MatchKind::Standard, ci, form);
        let ll = build(pats, MatchKind::LeftmostLongest, ci, form);
        if sparse {
            assert!(std_over.is_sparse() && ll.is_sparse());
        }
        let ac_std = oracle(pats, aho_corasick::MatchKind::Standard, ci, dfa);
        let ac_ll = oracle(pats, aho_corasick::MatchKind::LeftmostLongest, ci, dfa);
        for _ in 0..texts {
            let t = text(rng, alphabet, pats);
            let want = theirs_overlapping(&ac_std, &t);
            assert_eq!(
                ours_overlapping(&std_over, &t),
                want,
                "overlapping, ci {ci}, form {form:?}, patterns {pats:?}, text {t:?}"
            );
            compared += want.len();
            let want = theirs_find(&ac_std, &t);
            assert_eq!(
                ours_find(&std_over, &t),
                want,
                "standard, ci {ci}, form {form:?}, patterns {pats:?}, text {t:?}"
            );
            compared += want.len();
            let want = theirs_find(&ac_ll, &t);
            assert_eq!(
                ours_find(&ll, &t),
                want,
                "leftmost-longest, ci {ci}, form {form:?}, patterns {pats:?}, text {t:?}"
            );
            compared += want.len();
        }
    }
    compared
}

#[test]
fn every_mode_matches_aho_corasick_on_generated_sets() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut compared = 0;
    for round in 0..4000 {
        let alphabet = ALPHABETS[round % ALPHABETS.len()];
        let pats = patterns(&mut rng, alphabet);
        compared += compare(&mut rng, &pats, alphabet, 8);
    }
    // The generator must produce plenty of hits, or the comparison says little.
    assert!(compared > 200_000, "{compared} hits compared");
}

#[test]
fn large_sets_use_wide_ids_and_still_match() {
    let mut rng = Rng(7);
    let alphabet: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let pats: Vec<Vec<u8>> = (0..600)
        .map(|_| {
            (0..3 + rng.below(8))
                .map(|_| byte(&mut rng, alphabet))
                .collect()
        })
        .collect();
    let a = Automaton::new(&pats, MatchKind::Standard, true).unwrap();
    assert!(a.is_wide() && !a.is_sparse());
    compare(&mut rng, &pats, alphabet, 50);
}

/// One byte class plus class 0: stride 2, and `a`×L gives L + 2 states (dead, start, L).
/// 65,536 entries still fit `u16` ids, 65,538 do not.
#[test]
fn wide_ids_exactly_past_65536_entries() {
    for (len, wide) in [(32_766, false), (32_767, true)] {
        let pats = [vec![b'a'; len], b"aa".to_vec()];
        let a = Automaton::new(&pats, MatchKind::Standard, false).unwrap();
        assert_eq!(a.is_wide(), wide, "{len}");
        let text = vec![b'a'; len + 3];
        // A contiguous NFA: the crate's automatic choice would build a DFA, slow in debug.
        let ac = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(&pats)
            .unwrap();
        assert_eq!(ours_overlapping(&a, &text), theirs_overlapping(&ac, &text));
    }
}

#[test]
fn overlapping_refuses_a_leftmost_automaton() {
    let a = Automaton::new(["ab", "b", "x"], MatchKind::LeftmostLongest, false).unwrap();
    assert_eq!(ours_overlapping(&a, b"abxab"), vec![]);
    assert_eq!(
        ours_find(&a, b"abxab"),
        vec![(0, 0, 2), (2, 2, 3), (0, 3, 5)]
    );
}

#[test]
fn every_byte_value_in_patterns() {
    let mut rng = Rng(11);
    let all: Vec<u8> = (0..=255).collect();
    let mut pats: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    for _ in 0..40 {
        let len = 1 + rng.below(4);
        pats.push((0..len).map(|_| rng.next() as u8).collect());
    }
    compare(&mut rng, &pats, &all, 200);
}

#[test]
fn refuses_empty_patterns_and_oversized_sets() {
    assert_eq!(
        Automaton::new(["a", ""], MatchKind::Standard, false).unwrap_err(),
        BuildError::EmptyPattern(1)
    );
    // Past MAX_HEAP_BYTES of sparse form (13 bytes a trie state): 16-byte random terms
    // share little beyond their first bytes, so nearly every byte is a state.
    let mut rng = Rng(3);
    let pats: Vec<Vec<u8>> = (0..MAX_HEAP_BYTES / 13 / 14)
        .map(|_| (0..16).map(|_| rng.next() as u8).collect())
        .collect();
    assert_eq!(
        Automaton::new(&pats, MatchKind::Standard, false).unwrap_err(),
        BuildError::TooLarge
    );
}

/// Random 4-character words over the 3,500 most common CJK ideographs (U+4E00 up).
fn cjk_terms(rng: &mut Rng, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|_| {
            (0..4)
                .map(|_| char::from_u32(0x4e00 + rng.below(3500) as u32).unwrap())
                .collect::<String>()
                .into_bytes()
        })
        .collect()
}

/// The sizes a real keyword policy reaches: they take the sparse form, stay within a few
/// megabytes, and match as aho-corasick does.
#[test]
fn large_keyword_lists_take_the_sparse_form_and_match() {
    let mut rng = Rng(21);
    let cjk = cjk_terms(&mut rng, 10_000);
    let alphabet: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let ascii: Vec<Vec<u8>> = (0..20_000)
        .map(|_| (0..12).map(|_| alphabet[rng.below(36)]).collect())
        .collect();
    for (name, pats) in [("10k CJK", &cjk), ("20k ASCII", &ascii)] {
        let a = Automaton::new(pats, MatchKind::Standard, true).unwrap();
        assert!(a.is_sparse(), "{name}");
        println!("{name}: {} heap bytes", a.heap_bytes());
        assert!(a.heap_bytes() < 4 << 20, "{name}: {}", a.heap_bytes());
        let ac = oracle(pats, aho_corasick::MatchKind::Standard, true, false);
        for _ in 0..20 {
            let mut t = Vec::new();
            for _ in 0..30 {
                let p = &pats[rng.below(pats.len())];
                t.extend(flip_case(&mut rng, p));
                t.extend(b" x\xe4\xb8 ");
            }
            let want = theirs_overlapping(&ac, &t);
            assert!(want.len() >= 30);
            assert_eq!(ours_overlapping(&a, &t), want, "{name}");
        }
    }
}

/// Patterns `a`×L and every `a`×k for k ≤ j: each of the L states matches up to j patterns
/// through its suffixes. The match lists must not be copied per state (that grew to 16 MB here,
/// 400 times the pattern bytes): memory stays linear, hits as aho-corasick's.
#[test]
fn nested_suffix_matches_take_linear_memory() {
    let mut pats: Vec<Vec<u8>> = vec![vec![b'a'; 20_000]];
    pats.extend((1..=200).map(|k| vec![b'a'; k]));
    let bytes: usize = pats.iter().map(Vec::len).sum();
    for form in [Form::Auto, Form::Sparse, Form::Skip] {
        let a = build(&pats, MatchKind::Standard, true, form);
        println!(
            "{form:?}: {} heap bytes for {bytes} pattern bytes",
            a.heap_bytes()
        );
        assert!(a.heap_bytes() < 16 * bytes, "{form:?}: {}", a.heap_bytes());
        let ac = oracle(&pats, aho_corasick::MatchKind::Standard, true, false);
        let text = [&[b'A'; 300][..], b"xa", &[b'a'; 250][..]].concat();
        assert_eq!(ours_overlapping(&a, &text), theirs_overlapping(&ac, &text));
        assert_eq!(ours_find(&a, &text), theirs_find(&ac, &text));
    }
}

/// The memchr skip only when the bytes leaving the start state are rare in typical text: on a
/// common one memchr would stop every few bytes and cost more than the table.
#[test]
fn skip_only_for_rare_start_bytes() {
    let common: [&[&str]; 5] = [&["e"], &[" "], &["the"], &["é"], &["#", "e"]];
    for pats in common {
        assert!(
            !Automaton::new(pats, MatchKind::Standard, false)
                .unwrap()
                .skips(),
            "{pats:?}"
        );
    }
    let rare: [&[&str]; 5] = [
        &["EMP-"],
        &["#", "$"],
        &["[REDACTED"],
        &["user1@example.com"],
        &["0"],
    ];
    for pats in rare {
        assert!(
            Automaton::new(pats, MatchKind::Standard, false)
                .unwrap()
                .skips(),
            "{pats:?}"
        );
    }
}

/// The skip after a long run outside the start state lands on the right byte: a partial match
/// held for 50 bytes, then a miss, then the pattern (review mutant: a skip one byte late after
/// 40 bytes passed every generated set); and a 60-byte literal among near misses.
#[test]
fn skip_after_long_partial_matches() {
    let long: Vec<u8> = (0..60).map(|i| b'A' + (i % 26) as u8).collect();
    let mut near = Vec::new();
    for cut in [1, 30, 59] {
        near.extend_from_slice(&long[..cut]);
        near.push(b'!');
    }
    near.extend_from_slice(&long);
    let cases: [(Vec<Vec<u8>>, Vec<u8>); 2] = [
        (vec![b"ab".to_vec()], [&[b'a'; 50][..], b"xab"].concat()),
        (vec![long.clone()], near),
    ];
    for (pats, text) in cases {
        let ac = oracle(&pats, aho_corasick::MatchKind::Standard, false, false);
        let want = theirs_find(&ac, &text);
        assert_eq!(want.len(), 1);
        for form in [Form::Auto, Form::Skip, Form::Sparse] {
            let a = build(&pats, MatchKind::Standard, false, form);
            assert_eq!(ours_find(&a, &text), want, "{form:?}");
            assert_eq!(ours_overlapping(&a, &text), want, "{form:?}");
        }
    }
}

#[test]
fn no_patterns_finds_nothing() {
    let none: [&str; 0] = [];
    for kind in [MatchKind::Standard, MatchKind::LeftmostLongest] {
        let a = Automaton::new(none, kind, true).unwrap();
        assert_eq!(a.overlapping(b"abc").count(), 0);
        assert_eq!(a.find_iter(b"abc").count(), 0);
    }
}
