//! Keyword lists from policies, matched all at once with one [`super::automaton`] per
//! case mode, so a policy with hundreds of terms still scans each text once. The engine finds
//! the terms in the policy's prefilter pass instead ([`super::prefilter`]: the secret prefixes
//! and these terms in one automaton), which reports the same hits in the same order; these
//! automata are its fallback.

use super::automaton::{Automaton, MatchKind};

/// One term occurrence; `tag` is the caller's (the rule index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeywordHit {
    pub tag: u32,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, Copy)]
struct TermMeta {
    tag: u32,
    whole_word: bool,
}

#[derive(Debug, Default)]
struct Group {
    terms: Vec<String>,
    meta: Vec<TermMeta>,
}

/// Collects terms before building the automata.
#[derive(Debug, Default)]
pub struct KeywordSetBuilder {
    insensitive: Group,
    sensitive: Group,
}

impl KeywordSetBuilder {
    pub fn add(&mut self, term: &str, case_sensitive: bool, whole_word: bool, tag: u32) {
        let group = if case_sensitive {
            &mut self.sensitive
        } else {
            &mut self.insensitive
        };
        group.terms.push(term.to_string());
        group.meta.push(TermMeta { tag, whole_word });
    }

    /// Every term added, as `(term, case_sensitive, whole_word, tag)`: the case-insensitive
    /// ones first, then the case-sensitive ones, each in the order added (the order in which
    /// [`KeywordSet::find`] reports hits at the same spot), for the policy's prefilter.
    pub fn terms(&self) -> Vec<(&str, bool, bool, u32)> {
        fn of(g: &Group, cs: bool) -> impl Iterator<Item = (&str, bool, bool, u32)> + '_ {
            g.terms
                .iter()
                .zip(&g.meta)
                .map(move |(t, m)| (t.as_str(), cs, m.whole_word, m.tag))
        }
        of(&self.insensitive, false)
            .chain(of(&self.sensitive, true))
            .collect()
    }

    pub fn build(self) -> Result<KeywordSet, String> {
        Ok(KeywordSet {
            insensitive: Matcher::build(self.insensitive, true)?,
            sensitive: Matcher::build(self.sensitive, false)?,
        })
    }
}

#[derive(Debug, Clone)]
struct Matcher {
    automaton: Automaton,
    meta: Vec<TermMeta>,
    max_term_len: usize,
}

impl Matcher {
    fn build(group: Group, ascii_case_insensitive: bool) -> Result<Option<Matcher>, String> {
        if group.terms.is_empty() {
            return Ok(None);
        }
        let automaton = Automaton::new(&group.terms, MatchKind::Standard, ascii_case_insensitive)
            .map_err(|e| format!("keyword automaton: {e}"))?;
        let max_term_len = group.terms.iter().map(String::len).max().unwrap_or(0);
        Ok(Some(Matcher {
            max_term_len,
            automaton,
            meta: group.meta,
        }))
    }

    fn find(&self, text: &str, out: &mut Vec<KeywordHit>) {
        for m in self.automaton.overlapping(text.as_bytes()) {
            let Some(meta) = self.meta.get(m.pattern) else {
                continue;
            };
            if meta.whole_word && !is_whole_word(text, m.start, m.end) {
                continue;
            }
            out.push(KeywordHit {
                tag: meta.tag,
                start: m.start,
                end: m.end,
            });
        }
    }
}

/// The compiled keyword terms of a policy.
#[derive(Debug, Clone, Default)]
pub struct KeywordSet {
    insensitive: Option<Matcher>,
    sensitive: Option<Matcher>,
}

impl KeywordSet {
    pub fn builder() -> KeywordSetBuilder {
        KeywordSetBuilder::default()
    }

    pub fn is_empty(&self) -> bool {
        self.insensitive.is_none() && self.sensitive.is_none()
    }

    /// The longest term in bytes: streamed text holds back this much to see a split term.
    pub fn max_term_len(&self) -> usize {
        let len = |m: &Option<Matcher>| m.as_ref().map_or(0, |m| m.max_term_len);
        len(&self.insensitive).max(len(&self.sensitive))
    }

    /// Appends every occurrence of every term (overlapping ones too).
    pub fn find(&self, text: &str, out: &mut Vec<KeywordHit>) {
        if let Some(m) = &self.insensitive {
            m.find(text, out);
        }
        if let Some(m) = &self.sensitive {
            m.find(text, out);
        }
    }
}

/// True when the match is not glued to a letter, digit or `_` on either side.
/// Terms that themselves start or end with punctuation only need the boundary there.
pub(crate) fn is_whole_word(text: &str, start: usize, end: usize) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let first_is_word = text
        .get(start..)
        .and_then(|s| s.chars().next())
        .is_some_and(word);
    let last_is_word = text
        .get(..end)
        .and_then(|s| s.chars().next_back())
        .is_some_and(word);
    let before = text.get(..start).and_then(|s| s.chars().next_back());
    let after = text.get(end..).and_then(|s| s.chars().next());
    !(first_is_word && before.is_some_and(word) || last_is_word && after.is_some_and(word))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn set(terms: &[(&str, bool, bool, u32)]) -> KeywordSet {
        let mut b = KeywordSet::builder();
        for (t, cs, ww, tag) in terms {
            b.add(t, *cs, *ww, *tag);
        }
        b.build().unwrap()
    }

    fn spans(set: &KeywordSet, text: &str) -> Vec<(u32, usize, usize)> {
        let mut out = Vec::new();
        set.find(text, &mut out);
        let mut v: Vec<_> = out.iter().map(|h| (h.tag, h.start, h.end)).collect();
        v.sort();
        v
    }

    #[test]
    fn case_insensitive_whole_words() {
        let s = set(&[("project falcon", false, true, 0)]);
        assert_eq!(spans(&s, "About Project Falcon: launch"), vec![(0, 6, 20)]);
        assert!(spans(&s, "myproject falcons").is_empty());
    }

    #[test]
    fn case_sensitive_terms_keep_case() {
        let s = set(&[("ACME", true, true, 1)]);
        assert_eq!(spans(&s, "ACME and acme"), vec![(1, 0, 4)]);
    }

    #[test]
    fn substring_terms_when_whole_word_is_off() {
        let s = set(&[("secret", false, false, 2)]);
        assert_eq!(spans(&s, "topsecretplan"), vec![(2, 3, 9)]);
    }

    #[test]
    fn overlapping_terms_of_different_rules_all_reported() {
        let s = set(&[
            ("falcon", false, true, 0),
            ("project falcon", false, true, 1),
        ]);
        assert_eq!(spans(&s, "project falcon"), vec![(0, 8, 14), (1, 0, 14)]);
    }

    #[test]
    fn unicode_neighbours_are_word_chars() {
        let s = set(&[("falcon", false, true, 0)]);
        assert!(spans(&s, "éfalcon").is_empty());
        assert_eq!(spans(&s, "«falcon»"), vec![(0, 2, 8)]);
    }

    #[test]
    fn empty_set_finds_nothing() {
        let s = KeywordSet::builder().build().unwrap();
        assert!(s.is_empty());
        assert!(spans(&s, "anything").is_empty());
    }
}
