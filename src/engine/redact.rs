//! Applying text edits (redactions and replacements) to one text.
//!
//! Spans are the original text's (findings are mapped back from the decoded text detectors
//! read, see [`crate::detect::decode`]): a redaction replaces the bytes that were sent, escapes
//! included. Masks are drawn from the decoded span (`jane%40example.com` masks as
//! `****@*******.***`). A text that is itself JSON (tool-call arguments) stays JSON: a span
//! inside a string is written JSON-escaped, and a number or literal a span touches becomes a
//! JSON string holding the replacement.

use crate::detect::decode;

/// What replaces an edited span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replacement {
    /// Every letter and digit becomes `*`; separators stay, so the shape remains.
    Mask,
    /// Like `Mask`, but the last four letters or digits stay visible.
    KeepLast4,
    /// A fixed text: a typed placeholder (`[EMAIL]`) or a rule's `replace_with`.
    Text(String),
    /// A fixed text known when the module was built (a detector's placeholder): the same as
    /// `Text` of it, without an allocation per hit.
    Static(&'static str),
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
    let merged = merge(text, edits);
    if merged.is_empty() {
        return text.to_string();
    }
    if let Some(tokens) = json_tokens(text) {
        return splice(text, json_cuts(&render(text, &merged), &tokens));
    }
    // Each replacement written straight into the new text: no string per span.
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for &(start, end, edit) in &merged {
        out.push_str(text.get(pos..start).unwrap_or_default());
        replacement_into(text.get(start..end).unwrap_or_default(), edit, &mut out);
        pos = end;
    }
    out.push_str(text.get(pos..).unwrap_or_default());
    out
}

/// `text` with each span of `cuts` (in order, not overlapping) replaced by its text.
fn splice(text: &str, cuts: Vec<(usize, usize, String)>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (start, end, replacement) in cuts {
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
    render(text, &merge(text, edits))
}

/// The merged spans of `edits` over `text`, in order, each with its best-ranked edit.
fn merge<'e>(text: &str, edits: &'e mut [Edit]) -> Vec<(usize, usize, &'e Edit)> {
    // By start, the longest first: a packed key (start, then the end's complement) when
    // offsets fit in 32 bits, else the comparison.
    let packed = |e: &Edit| {
        let (start, end) = (u32::try_from(e.start).ok()?, u32::try_from(e.end).ok()?);
        Some(u128::from(start) << 32 | u128::from(u32::MAX - end))
    };
    if !crate::sort::sort_by_packed(edits, &packed) {
        crate::sort::sort_by(edits, &|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    }
    merge_sorted(text, edits)
}

/// [`merge`] of edits already sorted by start, the longest first.
fn merge_sorted<'e>(text: &str, edits: &'e [Edit]) -> Vec<(usize, usize, &'e Edit)> {
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
}

/// Each merged span with its replacement text.
fn render(text: &str, merged: &[(usize, usize, &Edit)]) -> Vec<(usize, usize, String)> {
    merged
        .iter()
        .map(|&(start, end, edit)| {
            let mut out = String::new();
            replacement_into(text.get(start..end).unwrap_or_default(), edit, &mut out);
            (start, end, out)
        })
        .collect()
}

/// Appends what replaces `original` (the span's text as sent) under `edit` to `out`.
fn replacement_into(original: &str, edit: &Edit, out: &mut String) {
    match &edit.replacement {
        Replacement::Text(t) => out.push_str(t),
        Replacement::Static(t) => out.push_str(t),
        Replacement::Mask => mask_into(&decode::normalized(original), 0, out),
        Replacement::KeepLast4 => mask_into(&decode::normalized(original), 4, out),
    }
}

/// A value token of a JSON text: a string (quotes included) or a number or literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Token {
    start: usize,
    end: usize,
    string: bool,
}

/// The value tokens of `text` when it is a JSON object or array (None otherwise), in order.
fn json_tokens(text: &str) -> Option<Vec<Token>> {
    let first = text.trim_start().as_bytes().first()?;
    if !matches!(first, b'{' | b'[')
        || serde_json::from_slice::<serde::de::IgnoredAny>(text.as_bytes()).is_err()
    {
        return None;
    }
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                let start = i;
                i += 1;
                while let Some(&c) = bytes.get(i) {
                    i += if c == b'\\' { 2 } else { 1 };
                    if c == b'"' {
                        break;
                    }
                }
                tokens.push(Token {
                    start,
                    end: i.min(bytes.len()),
                    string: true,
                });
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                let start = i;
                while bytes.get(i).is_some_and(|c| {
                    !matches!(c, b',' | b'}' | b']' | b':') && !c.is_ascii_whitespace()
                }) {
                    i += 1;
                }
                tokens.push(Token {
                    start,
                    end: i,
                    string: false,
                });
            }
            _ => i += 1,
        }
    }
    Some(tokens)
}

/// The cuts that write `spans` into a JSON text and keep it JSON: the part of each string a
/// span covers gets the replacement JSON-escaped; a number or literal a span touches becomes
/// the replacement as a JSON string; structure stays.
fn json_cuts(spans: &[(usize, usize, String)], tokens: &[Token]) -> Vec<(usize, usize, String)> {
    let mut cuts: Vec<(usize, usize, String)> = Vec::new();
    for (s, e, replacement) in spans {
        let quoted = serde_json::to_string(replacement).unwrap_or_default();
        let escaped = quoted
            .get(1..quoted.len().saturating_sub(1))
            .unwrap_or_default();
        let first = tokens.partition_point(|t| t.end <= *s);
        for t in tokens
            .get(first..)
            .unwrap_or_default()
            .iter()
            .take_while(|t| t.start < *e)
        {
            let cut = if t.string {
                let (a, b) = ((*s).max(t.start + 1), (*e).min(t.end.saturating_sub(1)));
                if a >= b {
                    continue;
                }
                (a, b, escaped.to_string())
            } else {
                (t.start, t.end, quoted.clone())
            };
            if cuts.last().is_some_and(|last| cut.0 < last.1) {
                continue;
            }
            cuts.push(cut);
        }
    }
    cuts
}

fn mask_into(original: &str, keep_last: usize, out: &mut String) {
    if original.is_ascii() {
        // A byte is a char: the same test (`char::is_alphanumeric` on ASCII is
        // `is_ascii_alphanumeric`), without decoding.
        let b = original.as_bytes();
        let total = b.iter().filter(|c| c.is_ascii_alphanumeric()).count();
        let mut seen = 0;
        out.reserve(b.len());
        for &c in b {
            if c.is_ascii_alphanumeric() {
                seen += 1;
                out.push(if total - seen < keep_last {
                    char::from(c)
                } else {
                    '*'
                });
            } else {
                out.push(char::from(c));
            }
        }
        return;
    }
    mask_chars_into(original, keep_last, out);
}

/// [`mask_into`] char by char, for any text.
fn mask_chars_into(original: &str, keep_last: usize, out: &mut String) {
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

    /// A JSON text stays JSON: strings get escaped replacements, numbers become strings, a
    /// span across structure replaces each value it touches and keeps the structure.
    #[test]
    fn json_texts_stay_json() {
        let text = r#"{"a": "x 4111", "n": 4111111111111111, "l": ["ignore all", "prior"]}"#;
        let at = |s: &str| text.find(s).unwrap();
        let quote = Replacement::Text("say \"no\"".into());
        let mut edits = [
            edit(at("4111\""), at("4111\"") + 4, 0, quote),
            edit(at("4111111"), at("4111111") + 16, 0, Replacement::KeepLast4),
            edit(
                at("ignore"),
                at("prior") + 5,
                0,
                Replacement::Text("[X]".into()),
            ),
        ];
        let out = apply(text, &mut edits);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": "x say \"no\"", "n": "************1111", "l": ["[X]", "[X]"]})
        );
        // Not JSON: as it is.
        assert_eq!(
            apply("{oops 4111", &mut [edit(6, 10, 0, Replacement::Mask)]),
            "{oops ****"
        );
    }

    /// The edits' spans, merges and replacements as they were computed before replacements
    /// were written straight into the text: the standard stable sort by (start, longest
    /// first), the merge (unchanged), then a string per merged span masked char by char (no
    /// ASCII path), then the splice.
    fn reference_resolve(text: &str, edits: &mut [Edit]) -> Vec<(usize, usize, String)> {
        edits.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        merge_sorted(text, edits)
            .into_iter()
            .map(|(start, end, edit)| {
                let original = &text[start..end];
                let mut out = String::new();
                match &edit.replacement {
                    Replacement::Text(t) => out.push_str(t),
                    Replacement::Static(t) => out.push_str(t),
                    Replacement::Mask => {
                        mask_chars_into(&decode::normalized(original), 0, &mut out)
                    }
                    Replacement::KeepLast4 => {
                        mask_chars_into(&decode::normalized(original), 4, &mut out)
                    }
                }
                (start, end, out)
            })
            .collect()
    }

    fn reference_apply(text: &str, edits: &mut [Edit]) -> String {
        let spans = reference_resolve(text, edits);
        if spans.is_empty() {
            return text.to_string();
        }
        let spans = match json_tokens(text) {
            Some(tokens) => json_cuts(&spans, &tokens),
            None => spans,
        };
        let mut out = String::new();
        let mut pos = 0;
        for (start, end, replacement) in spans {
            out.push_str(&text[pos..start]);
            out.push_str(&replacement);
            pos = end;
        }
        out.push_str(&text[pos..]);
        out
    }

    /// `apply` and `resolve` give what the reference gives, byte for byte, and leave the
    /// edits in the same order: generated texts (ASCII, letters and digits beyond ASCII,
    /// escapes the decoder reads, JSON texts), dense edits with equal spans, equal ranks,
    /// nested and touching spans, spans off char boundaries and past the end.
    #[test]
    fn apply_and_resolve_are_the_reference_byte_for_byte() {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            "7",
            "0",
            " ",
            "-",
            ".",
            "@",
            "_",
            "é",
            "ß",
            "中",
            "😀",
            "٣",
            "%40",
            "\\n",
            "&amp;",
            "\"",
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            "4111 1111",
            "jane@x.io",
            "+44 20",
        ];
        let mut seed = 0x0ddc_0ffe_e0dd_f00d_u64;
        let mut next = move |n: usize| (crate::test_rng::xorshift64(&mut seed) % n as u64) as usize;
        let replacements = |k: usize, r: usize| match k {
            0 => Replacement::Mask,
            1 => Replacement::KeepLast4,
            2 => Replacement::Static(if r % 2 == 0 { "[EMAIL]" } else { "[PHONE]" }),
            _ => Replacement::Text(["[X]", "say \"no\"", "", "é\\"][r % 4].to_string()),
        };
        for case in 0..6000 {
            let text: String = if case % 5 == 0 {
                // A JSON text: strings, numbers and literals the spans may touch.
                let mut t = String::from("{\"a\": \"");
                for _ in 0..next(8) {
                    t.push_str(PIECES[next(14)]);
                }
                t.push_str("\", \"n\": 4111111111111111, \"l\": [true, \"x é 7\"]}");
                t
            } else {
                (0..next(40)).map(|_| PIECES[next(PIECES.len())]).collect()
            };
            let n = next(12);
            let mut edits: Vec<Edit> = (0..n)
                .map(|_| {
                    let start = next(text.len() + 3);
                    let end = if next(4) == 0 {
                        start
                    } else {
                        start + next(12)
                    };
                    edit(start, end, next(3) as u32, replacements(next(4), next(8)))
                })
                .collect();
            // Copies of one span with other ranks and replacements: ties the sort must keep.
            if let Some(e) = edits.first().cloned() {
                for _ in 0..next(3) {
                    let mut d = e.clone();
                    d.replacement = replacements(next(4), next(8));
                    edits.push(d);
                }
            }
            let mut reference_edits = edits.clone();
            let want = reference_apply(&text, &mut reference_edits);
            let mut mine = edits.clone();
            assert_eq!(apply(&text, &mut mine), want, "{text:?} {edits:?}");
            assert_eq!(mine, reference_edits, "{text:?}");
            let mut reference_edits = edits.clone();
            let mut mine = edits.clone();
            assert_eq!(
                resolve(&text, &mut mine),
                reference_resolve(&text, &mut reference_edits),
                "{text:?} {edits:?}"
            );
            assert_eq!(mine, reference_edits);
        }
    }

    #[test]
    fn masks_are_drawn_from_the_decoded_span() {
        let t = "to jane%40example.com";
        assert_eq!(
            apply(t, &mut [edit(3, t.len(), 0, Replacement::Mask)]),
            "to ****@*******.***"
        );
    }

    #[test]
    fn unicode_masking_keeps_char_count() {
        assert_eq!(
            apply("Zoë 1234", &mut [edit(0, 9, 0, Replacement::KeepLast4)]),
            "*** 1234"
        );
    }
}
