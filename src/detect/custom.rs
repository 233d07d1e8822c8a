//! Custom regex patterns from policies (regex-lite).
//!
//! regex-lite scans at a few MB/s under V8, slower than the proxy itself, so a pattern that
//! declares `literals` runs only on windows of `max_len` bytes around literal hits found by
//! [`super::automaton`] (standard non-overlapping search); a pattern without literals scans the whole text (and `check` warns).

use super::automaton::{Automaton, MatchKind};
use regex_lite::Regex;

/// Window radius when a pattern does not say how long its matches get.
pub const DEFAULT_MAX_LEN: usize = 256;

#[derive(Debug, Clone)]
pub struct CustomPattern {
    regex: Regex,
    literals: Option<Automaton>,
    max_len: usize,
}

impl CustomPattern {
    pub fn new(pattern: &str, literals: &[String], max_len: Option<usize>) -> Result<Self, String> {
        let regex = Regex::new(pattern).map_err(|e| format!("invalid regex: {e}"))?;
        if literals.iter().any(String::is_empty) {
            return Err("literals must not be empty strings".into());
        }
        let literals = if literals.is_empty() {
            None
        } else {
            Some(
                Automaton::new(literals, MatchKind::Standard, false)
                    .map_err(|e| format!("literals: {e}"))?,
            )
        };
        let max_len = max_len.unwrap_or(DEFAULT_MAX_LEN);
        if max_len == 0 {
            return Err("max_len must be at least 1".into());
        }
        Ok(CustomPattern {
            regex,
            literals,
            max_len,
        })
    }

    /// How long a match may get: the prefilter window, or the default for unfiltered patterns.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Whether the pattern scans whole texts (no literal prefilter).
    pub fn is_unfiltered(&self) -> bool {
        self.literals.is_none()
    }

    /// Appends the byte ranges of matches in `text`.
    pub fn find(&self, text: &str, out: &mut Vec<(usize, usize)>) {
        let Some(literals) = &self.literals else {
            out.extend(self.regex.find_iter(text).map(|m| (m.start(), m.end())));
            return;
        };
        let mut window: Option<(usize, usize)> = None;
        for hit in literals.find_iter(text.as_bytes()) {
            let start = floor_boundary(text, hit.start.saturating_sub(self.max_len));
            let end = ceil_boundary(text, hit.end.saturating_add(self.max_len));
            window = match window {
                Some((ws, we)) if start <= we => Some((ws, we.max(end))),
                Some(done) => {
                    self.find_in(text, done, out);
                    Some((start, end))
                }
                None => Some((start, end)),
            };
        }
        if let Some(done) = window {
            self.find_in(text, done, out);
        }
    }

    fn find_in(&self, text: &str, (start, end): (usize, usize), out: &mut Vec<(usize, usize)>) {
        if let Some(slice) = text.get(start..end) {
            out.extend(
                self.regex
                    .find_iter(slice)
                    .map(|m| (start + m.start(), start + m.end())),
            );
        }
    }
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn find(p: &CustomPattern, text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        p.find(text, &mut out);
        out
    }

    #[test]
    fn unfiltered_pattern_scans_everything() {
        let p = CustomPattern::new(r"EMP-\d{6}", &[], None).unwrap();
        assert!(p.is_unfiltered());
        assert_eq!(
            find(&p, "id EMP-123456 and EMP-654321"),
            vec![(3, 13), (18, 28)]
        );
    }

    #[test]
    fn literal_windows_find_the_same_matches() {
        let text = format!(
            "{}EMP-123456{}EMP-654321 EMP-1",
            "x".repeat(1000),
            "y".repeat(2000)
        );
        let filtered = CustomPattern::new(r"EMP-\d{6}", &["EMP-".into()], Some(16)).unwrap();
        let whole = CustomPattern::new(r"EMP-\d{6}", &[], None).unwrap();
        assert_eq!(find(&filtered, &text), find(&whole, &text));
        assert_eq!(find(&filtered, &text).len(), 2);
    }

    #[test]
    fn close_literals_share_one_window_without_duplicates() {
        let p = CustomPattern::new(r"EMP-\d{6}", &["EMP-".into()], Some(32)).unwrap();
        assert_eq!(find(&p, "EMP-111111 EMP-222222").len(), 2);
    }

    #[test]
    fn windows_respect_char_boundaries() {
        let p = CustomPattern::new(r"K\d", &["K".into()], Some(1)).unwrap();
        assert_eq!(find(&p, "ééK1éé"), vec![(4, 6)]);
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(CustomPattern::new("(", &[], None).is_err());
        assert!(CustomPattern::new("a", &["".into()], None).is_err());
        assert!(CustomPattern::new("a", &[], Some(0)).is_err());
    }
}
