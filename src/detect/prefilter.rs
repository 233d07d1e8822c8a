//! One pass over a text for the literal anchors of a compiled policy: the secret detectors'
//! prefixes and label keywords ([`super::secrets`]) and the policy's keyword terms
//! ([`super::keywords`]), in one automaton built when the policy is compiled and never
//! changed after. Each hit goes to the detector that owns it: prefix hits to the secret
//! validators (exactly the hits their own automaton would report, in the same order), term
//! hits to the keyword rules (case and whole-word checked as [`super::keywords`] does). Before
//! this, each family read every byte of the text with its own automaton.
//!
//! The automaton is ASCII case-insensitive with overlapping (standard) semantics, as both
//! families' own automata are: a case-sensitive term is matched insensitively and its bytes
//! compared after. The secret prefixes are its first patterns, with their own ids, so a hit's
//! id is its index in [`super::secrets::prefixes`] or, past them, a term's.
//!
//! The other anchors are not in it: digit runs ([`super::numeric`], a word-at-a-time scan),
//! `@` ([`super::email`], memchr) and the decoding layer's pre-scan ([`super::decode`],
//! word-at-a-time) are each cheaper than a table lookup per byte; the prompt-injection
//! classifier reads its own normalised text; custom patterns keep their own literal
//! automata (their non-overlapping search is not what an overlapping pass reports).
//!
//! Bound: O(n + h) for a text of n bytes with h hits: one DFA transition per byte (a table
//! read), O(1) per hit for a secret prefix (the validators' own bound is in
//! [`super::secrets`]) and O(term length) per term hit (the case and word-boundary checks).
//! Overlapping hits per byte are at most the number of patterns ending there, a constant of
//! the policy.

use super::automaton::{Automaton, MatchKind};

use super::keywords::{is_whole_word, KeywordHit};
use super::secrets::{self, Anchor};

/// A keyword term of the policy, by its id in the automaton minus [`secrets::PREFIX_COUNT`].
#[derive(Debug, Clone)]
struct Term {
    tag: u32,
    whole_word: bool,
    /// The term's bytes when it is case-sensitive (the automaton matched it in any case).
    exact: Option<Box<[u8]>>,
}

/// A compiled policy's prefilter.
#[derive(Debug, Clone, Default)]
pub struct Prefilter {
    /// `None` when building failed (past [`super::automaton::MAX_HEAP_BYTES`]):
    /// callers scan per family as before.
    automaton: Option<Automaton>,
    terms: Vec<Term>,
}

/// What one pass found: the secret prefixes' hits, and the keyword hits that passed their
/// checks (case-insensitive terms' first, then case-sensitive terms', each in text order:
/// the order [`super::keywords::KeywordSet::find`] reports them in).
#[derive(Debug, Default)]
pub struct Anchors {
    secrets: Vec<Anchor>,
    insensitive: Vec<KeywordHit>,
    sensitive: Vec<KeywordHit>,
}

impl Anchors {
    /// The secret prefixes' hits, for [`secrets::scan_anchors`].
    pub(crate) fn secrets(&self) -> &[Anchor] {
        &self.secrets
    }

    /// Appends the keyword hits.
    pub fn keyword_hits(&self, out: &mut Vec<KeywordHit>) {
        out.extend_from_slice(&self.insensitive);
        out.extend_from_slice(&self.sensitive);
    }
}

impl Prefilter {
    /// Builds the automaton over the secret prefixes and `terms` (`(term, case_sensitive,
    /// whole_word, tag)`, as [`super::keywords::KeywordSetBuilder::terms`] lists them).
    pub fn build(terms: &[(&str, bool, bool, u32)]) -> Prefilter {
        let mut patterns: Vec<&str> = secrets::prefixes().collect();
        patterns.extend(terms.iter().map(|t| t.0));
        let automaton = Automaton::new(patterns, MatchKind::Standard, true).ok();
        Prefilter {
            automaton,
            terms: terms
                .iter()
                .map(|&(term, case_sensitive, whole_word, tag)| Term {
                    tag,
                    whole_word,
                    exact: case_sensitive.then(|| term.as_bytes().into()),
                })
                .collect(),
        }
    }

    /// Bytes of heap its automaton holds (one per compiled policy, in each worker VM).
    pub fn heap_bytes(&self) -> usize {
        self.automaton.as_ref().map_or(0, Automaton::heap_bytes)
    }

    /// Whether the automaton was built (else [`Prefilter::find`] always declines).
    pub fn is_ready(&self) -> bool {
        self.automaton.is_some()
    }

    /// Finds every anchor in `text` into `anchors` (cleared first): secret prefixes only when
    /// `secrets` is set. False when it could not search (no automaton, or the search failed):
    /// the caller then runs each family's own scan, so nothing is missed.
    pub fn find(&self, text: &str, secrets: bool, anchors: &mut Anchors) -> bool {
        anchors.secrets.clear();
        anchors.insensitive.clear();
        anchors.sensitive.clear();
        let Some(automaton) = &self.automaton else {
            return false;
        };
        let bytes = text.as_bytes();
        for hit in automaton.overlapping(bytes) {
            let (pattern, start, end) = (hit.pattern, hit.start, hit.end);
            let Some(term) = pattern
                .checked_sub(secrets::PREFIX_COUNT)
                .map(|i| self.terms.get(i))
            else {
                if secrets {
                    anchors.secrets.push(Anchor {
                        pattern,
                        start,
                        end,
                    });
                }
                continue;
            };
            let Some(term) = term else { continue };
            if let Some(exact) = &term.exact {
                if bytes.get(start..end) != Some(exact.as_ref()) {
                    continue;
                }
            }
            if term.whole_word && !is_whole_word(text, start, end) {
                continue;
            }
            let hit = KeywordHit {
                tag: term.tag,
                start,
                end,
            };
            if term.exact.is_some() {
                anchors.sensitive.push(hit);
            } else {
                anchors.insensitive.push(hit);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::keywords::KeywordSet;
    use crate::detect::secrets::test_support::{fake, ALNUM};
    use crate::detect::{DetectorSet, Finding};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Terms that overlap each other, a secret prefix (`token`, `sk-`), and the same term in
    /// both case modes.
    const TERMS: &[(&str, bool, bool, u32)] = &[
        ("Project Nightingale", false, true, 0),
        ("nightingale", false, false, 1),
        ("ACME", true, true, 2),
        ("acme", false, true, 3),
        ("token", false, false, 4),
        ("sk-", true, false, 5),
        ("Bluebird", true, false, 6),
        ("é-bird", false, true, 7),
    ];

    /// Pieces the generated texts are made of: secret prefixes and labels, tokens, terms in
    /// several cases, separators and non-ASCII.
    fn pieces() -> Vec<String> {
        let mut p: Vec<String> = [
            "project nightingale",
            "PROJECT NIGHTINGALE",
            "Project Nightingale",
            "nightingales",
            "ACME",
            "acme",
            "Acme",
            "ACMEs",
            "token",
            "TOKEN=",
            "password: ",
            "passwd=",
            "secret",
            "Bearer ",
            "basic ",
            "://",
            "user:pw@",
            "sig=",
            "sk-",
            "SK-",
            "sk-ant-",
            "AKIA",
            "akia",
            "ghp_",
            "eyJ",
            "-----BEGIN ",
            "Bluebird",
            "bluebird",
            "é-bird",
            "É-bird",
            " ",
            "\n",
            "_",
            "-",
            ".",
            "\"",
            "é",
            "日本",
            "xoxb-",
            "hf_",
            "AIza",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for seed in 0..6 {
            p.push(fake(seed, 12 + seed as usize * 7, ALNUM));
        }
        p.push(format!("ghp_{}", fake(9, 36, ALNUM)));
        p.push(format!(
            "AKIA{}",
            fake(10, 16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        ));
        p.push(format!("sk-{}", fake(11, 48, ALNUM)));
        p
    }

    /// Deterministic texts of 1 to 40 pieces.
    fn texts() -> Vec<String> {
        let pieces = pieces();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        (0..600)
            .map(|_| {
                let n = 1 + next(40);
                (0..n)
                    .map(|_| pieces[next(pieces.len())].as_str())
                    .collect()
            })
            .collect()
    }

    fn keyword_set() -> KeywordSet {
        let mut b = KeywordSet::builder();
        for &(t, cs, ww, tag) in TERMS {
            b.add(t, cs, ww, tag);
        }
        b.build().unwrap()
    }

    fn prefilter() -> Prefilter {
        let mut b = KeywordSet::builder();
        for &(t, cs, ww, tag) in TERMS {
            b.add(t, cs, ww, tag);
        }
        Prefilter::build(&b.terms())
    }

    #[test]
    fn one_pass_finds_what_each_family_finds_in_the_same_order() {
        let (pf, kw) = (prefilter(), keyword_set());
        assert!(pf.is_ready());
        let mut anchors = Anchors::default();
        let (mut secrets_hits, mut keywords_hits) = (0, 0);
        for text in texts() {
            assert!(pf.find(&text, true, &mut anchors));
            let mut want: Vec<Finding> = Vec::new();
            secrets::scan(&text, DetectorSet::all(), &mut want);
            let mut got: Vec<Finding> = Vec::new();
            secrets::scan_anchors(
                &text,
                DetectorSet::all(),
                &mut anchors.secrets().iter().copied(),
                &mut got,
            );
            assert_eq!(got, want, "secrets in {text:?}");
            secrets_hits += want.len();
            let mut want = Vec::new();
            kw.find(&text, &mut want);
            let mut got = Vec::new();
            anchors.keyword_hits(&mut got);
            assert_eq!(got, want, "keywords in {text:?}");
            keywords_hits += want.len();
        }
        // The corpus exercises both families.
        assert!(
            secrets_hits > 200 && keywords_hits > 500,
            "{secrets_hits} {keywords_hits}"
        );
    }

    #[test]
    fn secret_prefixes_are_left_out_when_not_asked_for() {
        let pf = prefilter();
        let mut anchors = Anchors::default();
        assert!(pf.find("token sk-abc AKIA ACME", false, &mut anchors));
        assert!(anchors.secrets().is_empty());
        let mut kw = Vec::new();
        anchors.keyword_hits(&mut kw);
        let tags: Vec<u32> = kw.iter().map(|h| h.tag).collect();
        // Case-insensitive terms' hits first (`token`, `acme`), then case-sensitive ones.
        assert_eq!(tags, vec![4, 3, 5, 2]);
    }

    #[test]
    fn a_policy_without_terms_still_finds_secret_prefixes() {
        let pf = Prefilter::build(&[]);
        let mut anchors = Anchors::default();
        let text = format!("key ghp_{} and password=hunter22", fake(3, 36, ALNUM));
        assert!(pf.find(&text, true, &mut anchors));
        let (mut got, mut want) = (Vec::new(), Vec::new());
        secrets::scan_anchors(
            &text,
            DetectorSet::all(),
            &mut anchors.secrets().iter().copied(),
            &mut got,
        );
        secrets::scan(&text, DetectorSet::all(), &mut want);
        assert_eq!(got, want);
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn an_unbuilt_prefilter_declines() {
        let mut anchors = Anchors::default();
        assert!(!Prefilter::default().find("token", true, &mut anchors));
    }
}
