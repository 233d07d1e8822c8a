//! Applying text edits (redactions and replacements) to one text.

/// What replaces an edited span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replacement {
    /// Every letter and digit becomes `*`; separators stay, so the shape remains.
    Mask,
    /// Like `Mask`, but the last four letters or digits stay visible.
    KeepLast4,
    /// A fixed text: a typed placeholder (`[EMAIL]`) or a rule's `replace_with`.
    Text(String),
}

/// One span of a text to replace. `rank` orders overlapping edits: lower wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub start: usize,
    pub end: usize,
    pub rank: u32,
    pub replacement: Replacement,
}

/// Returns `text` with the edits applied. Overlapping or touching-inside spans merge into one
/// span replaced by the best-ranked edit among them; spans off char boundaries are ignored.
pub fn apply(text: &str, edits: &mut [Edit]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (start, end, replacement) in resolve(text, edits) {
        out.push_str(text.get(pos..start).unwrap_or_default());
        out.push_str(&replacement);
        pos = end;
    }
    out.push_str(text.get(pos..).unwrap_or_default());
    out
}

/// The merged spans of `edits` over `text`, in order, each with its replacement text.
/// Streams use the spans directly: a span's replacement goes where the span starts even
/// when the span's text arrived in several events.
pub fn resolve(text: &str, edits: &mut [Edit]) -> Vec<(usize, usize, String)> {
    crate::sort::sort_by(edits, &|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut merged: Vec<(usize, usize, &Edit)> = Vec::with_capacity(edits.len());
    for e in edits.iter() {
        if e.start >= e.end || !text.is_char_boundary(e.start) || !text.is_char_boundary(e.end) {
            continue;
        }
        match merged.last_mut() {
            Some((_, end, best)) if e.start < *end => {
                *end = (*end).max(e.end);
                if e.rank < best.rank {
                    *best = e;
                }
            }
            _ => merged.push((e.start, e.end, e)),
        }
    }
    merged
        .into_iter()
        .map(|(start, end, edit)| {
            let original = text.get(start..end).unwrap_or_default();
            let mut out = String::new();
            match &edit.replacement {
                Replacement::Text(t) => out.push_str(t),
                Replacement::Mask => mask_into(original, 0, &mut out),
                Replacement::KeepLast4 => mask_into(original, 4, &mut out),
            }
            (start, end, out)
        })
        .collect()
}

fn mask_into(original: &str, keep_last: usize, out: &mut String) {
    let total = original.chars().filter(|c| c.is_alphanumeric()).count();
    let mut seen = 0;
    for c in original.chars() {
        if c.is_alphanumeric() {
            seen += 1;
            out.push(if total - seen < keep_last { c } else { '*' });
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn edit(start: usize, end: usize, rank: u32, r: Replacement) -> Edit {
        Edit {
            start,
            end,
            rank,
            replacement: r,
        }
    }

    #[test]
    fn styles() {
        let t = "card 4111 1111 1111 1111 ok";
        assert_eq!(
            apply(t, &mut [edit(5, 24, 0, Replacement::KeepLast4)]),
            "card **** **** **** 1111 ok"
        );
        assert_eq!(
            apply(t, &mut [edit(5, 24, 0, Replacement::Mask)]),
            "card **** **** **** **** ok"
        );
        assert_eq!(
            apply(
                t,
                &mut [edit(5, 24, 0, Replacement::Text("[CREDIT_CARD]".into()))]
            ),
            "card [CREDIT_CARD] ok"
        );
    }

    #[test]
    fn overlapping_spans_merge_and_best_rank_wins() {
        let t = "0123456789";
        let mut edits = [
            edit(2, 6, 1, Replacement::Text("[B]".into())),
            edit(4, 8, 0, Replacement::Text("[A]".into())),
        ];
        assert_eq!(apply(t, &mut edits), "01[A]89");
    }

    #[test]
    fn adjacent_spans_stay_separate_and_unsorted_input_works() {
        let t = "aaaabbbb";
        let mut edits = [
            edit(4, 8, 0, Replacement::Text("[B]".into())),
            edit(0, 4, 0, Replacement::Text("[A]".into())),
        ];
        assert_eq!(apply(t, &mut edits), "[A][B]");
    }

    #[test]
    fn bad_spans_are_ignored_not_panics() {
        let t = "é1";
        let mut edits = [
            edit(1, 3, 0, Replacement::Mask),
            edit(5, 9, 0, Replacement::Mask),
            edit(2, 2, 0, Replacement::Mask),
        ];
        assert_eq!(apply(t, &mut edits), "é1");
    }

    #[test]
    fn unicode_masking_keeps_char_count() {
        assert_eq!(
            apply("Zoë 1234", &mut [edit(0, 9, 0, Replacement::KeepLast4)]),
            "*** 1234"
        );
    }
}
