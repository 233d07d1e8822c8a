//! Where the rules match a body's texts: every detector, keyword and pattern hit of every
//! rule, by segment, and the counts the record gets. Whole bodies and streams both use it.

use std::collections::BTreeMap;

use super::text_cache::Cached;
use super::work;
use crate::detect::decode::{self, Decoded};
use crate::detect::prefilter::Anchors;
use crate::detect::secrets::{self, Anchor};
use crate::detect::{self, DetectorId, DetectorSet, Finding};
use crate::llm::{self, Phase};
use crate::policy::Policy;

/// Where a hit came from, for detection and redaction counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Source {
    Detector(DetectorId),
    Keyword,
    Pattern,
}

impl Source {
    pub(super) fn name(self) -> &'static str {
        match self {
            Source::Detector(d) => d.name(),
            Source::Keyword => "keyword",
            Source::Pattern => "pattern",
        }
    }

    /// A number in the order of `Source`'s `Ord` (detectors by id, then keywords, patterns),
    /// for packed sort keys.
    fn rank(self) -> u128 {
        match self {
            Source::Detector(d) => d as u128,
            Source::Keyword => 1 << 7,
            Source::Pattern => (1 << 7) + 1,
        }
    }

    pub(super) fn placeholder(self) -> &'static str {
        match self {
            Source::Detector(d) => d.placeholder(),
            Source::Keyword | Source::Pattern => "[REDACTED]",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Hit {
    pub(super) rule: usize,
    pub(super) segment: usize,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) source: Source,
}

/// Runs the detectors, keywords and patterns the rules need over every segment, each read
/// through [`decode`] (normalised, escapes decoded); spans are the original text's.
pub(super) fn find_hits(policy: &Policy, phase: Phase, segments: &[llm::Segment<'_>]) -> Vec<Hit> {
    find_hits_scored(policy, phase, segments, &mut None, None)
}

/// [`find_hits`], and the highest prompt-injection score into `score` (when it ran). With a
/// cache, a text it has judged in this scope is not judged again: its hits and score come
/// from the cache, the same as a scan would give (see [`super::text_cache`]).
pub(super) fn find_hits_scored(
    policy: &Policy,
    phase: Phase,
    segments: &[llm::Segment<'_>],
    score: &mut Option<f64>,
    mut cache: Option<&mut Cached<'_>>,
) -> Vec<Hit> {
    let mut hits = Vec::new();
    let mut scratch = Scratch::default();
    for (si, seg) in segments.iter().enumerate() {
        // A text no rule inspects yields no hit and no score (its detectors are the union of
        // those rules'): neither decoded nor scanned, e.g. a response under a policy without
        // response rules, read only for its usage.
        if !policy
            .rules
            .iter()
            .any(|r| r.applies_to(phase) && r.roles.contains(seg.role))
        {
            work::add(1);
            continue;
        }
        let cached = cache
            .as_deref_mut()
            .filter(|c| c.cache.caches(seg.text.len()));
        let injection = match cached {
            None => judge_text(policy, phase, seg, si, &mut scratch, &mut hits),
            Some(c) => match c.cache.get(c.scope, phase, seg.role, seg.text) {
                Ok(entry) => {
                    work::add(entry.hits.len() + 1);
                    hits.extend(entry.hits.iter().map(|h| Hit { segment: si, ..*h }));
                    c.hits += 1;
                    entry.score
                }
                Err(pending) => {
                    let from = hits.len();
                    let s = judge_text(policy, phase, seg, si, &mut scratch, &mut hits);
                    c.cache.insert(pending, hits.get(from..).unwrap_or(&[]), s);
                    s
                }
            },
        };
        if let Some(s) = injection {
            *score = Some(score.map_or(s, |best: f64| best.max(s)));
        }
    }
    work::add(hits.len());
    hits
}

/// Buffers [`judge_text`] reuses from text to text (cleared by each use).
#[derive(Default)]
struct Scratch {
    findings: Vec<Finding>,
    keyword_hits: Vec<crate::detect::keywords::KeywordHit>,
    pattern_hits: Vec<(usize, usize)>,
    anchors: Anchors,
}

/// One text's hits (appended to `hits`, as segment `si`) and its injection score when the
/// classifier ran: a function of the policy, the phase, the text's role and its bytes only.
#[inline(never)] // called twice: one copy
fn judge_text(
    policy: &Policy,
    phase: Phase,
    seg: &llm::Segment<'_>,
    si: usize,
    scratch: &mut Scratch,
    hits: &mut Vec<Hit>,
) -> Option<f64> {
    let Scratch {
        findings,
        keyword_hits,
        pattern_hits,
        anchors,
    } = scratch;
    let enabled = policy.detectors_for(phase, seg.role);
    let decoded = decode::decode(seg.text);
    let text = decoded.text();
    work::add(text.len() / 64 + 1);
    // One pass for the secret prefixes and the keyword terms (the policy's prefilter).
    let want_secrets = secrets::any_enabled(enabled);
    let prefiltered = (want_secrets || !policy.keywords.is_empty())
        && policy.prefilter.find(text, want_secrets, anchors);
    scan_decoded_with(
        &decoded,
        enabled.without(DetectorId::PromptInjection),
        prefiltered.then(|| anchors.secrets()),
        findings,
    );
    // Prompt injection is scored once per text, on the text as written (the classifier
    // has its own trained normaliser); each rule compares with its min_score.
    let injection = enabled
        .contains(DetectorId::PromptInjection)
        .then(|| detect::prompt_injection::assess(seg.text, findings));
    keyword_hits.clear();
    if prefiltered {
        anchors.keyword_hits(keyword_hits);
    } else if !policy.keywords.is_empty() {
        policy.keywords.find(text, keyword_hits);
    }
    for (ri, rule) in policy.rules.iter().enumerate() {
        if !rule.applies_to(phase) || !rule.roles.contains(seg.role) {
            continue;
        }
        let scored = |f: &&Finding| {
            f.detector != DetectorId::PromptInjection
                || injection.is_some_and(|s| s >= rule.min_score)
        };
        for f in findings
            .iter()
            .filter(|f| rule.detectors.contains(f.detector))
            .filter(scored)
        {
            hits.push(Hit {
                rule: ri,
                segment: si,
                start: f.start,
                end: f.end,
                source: Source::Detector(f.detector),
            });
        }
        if rule.has_keywords {
            for k in keyword_hits.iter().filter(|k| k.tag as usize == ri) {
                let (start, end) = decoded.original(k.start, k.end);
                hits.push(Hit {
                    rule: ri,
                    segment: si,
                    start,
                    end,
                    source: Source::Keyword,
                });
            }
        }
        for p in &rule.patterns {
            pattern_hits.clear();
            p.find(text, pattern_hits);
            for &(start, end) in pattern_hits.iter() {
                let (start, end) = decoded.original(start, end);
                hits.push(Hit {
                    rule: ri,
                    segment: si,
                    start,
                    end,
                    source: Source::Pattern,
                });
            }
        }
    }
    injection
}

/// The enabled detectors' findings in a decoded text, in offsets of the original (cleared
/// first): the normalised text's, mapped back, then those of its hidden (base64) texts, each
/// covering its whole run.
pub(super) fn scan_decoded(decoded: &Decoded<'_>, enabled: DetectorSet, out: &mut Vec<Finding>) {
    scan_decoded_with(decoded, enabled, None, out);
}

/// [`scan_decoded`], with the secret prefixes' hits in the normalised text already found
/// (by the policy's prefilter) when `secret_anchors` is given.
fn scan_decoded_with(
    decoded: &Decoded<'_>,
    enabled: DetectorSet,
    secret_anchors: Option<&[Anchor]>,
    out: &mut Vec<Finding>,
) {
    out.clear();
    detect::scan_with(decoded.text(), enabled, secret_anchors, out);
    if !decoded.is_identity() {
        for f in out.iter_mut() {
            (f.start, f.end) = decoded.original(f.start, f.end);
        }
    }
    let mut inner = Vec::new();
    for h in decoded.hidden() {
        inner.clear();
        detect::scan(&h.text, enabled, &mut inner);
        work::add(h.text.len() / 64 + inner.len() + 1);
        out.extend(inner.iter().map(|f| Finding {
            detector: f.detector,
            start: h.start,
            end: h.end,
        }));
    }
}

/// Which rules have at least one hit, by rule index (one pass over the hits).
pub(super) fn rules_hit(policy: &Policy, hits: &[Hit]) -> Vec<bool> {
    let mut hit = vec![false; policy.rules.len()];
    for h in hits {
        work::add(1);
        if let Some(slot) = hit.get_mut(h.rule) {
            *slot = true;
        }
    }
    hit
}

/// `rules` (indices) as a mask over the policy's rules, for O(1) membership per hit.
pub(super) fn rule_mask(policy: &Policy, rules: &[usize]) -> Vec<bool> {
    let mut mask = vec![false; policy.rules.len()];
    for &i in rules {
        if let Some(slot) = mask.get_mut(i) {
            *slot = true;
        }
    }
    mask
}

pub(super) fn in_mask(mask: &[bool], rule: usize) -> bool {
    mask.get(rule).copied().unwrap_or(false)
}

/// Stable sort that counts its comparisons as work. Hits come as a policy-bounded number of
/// sorted runs (per rule and source), which the stable sort merges in O(n log runs).
/// (`crate::sort`: one compiled stable sort for every element type.)
pub(super) fn sort_counted<T, K: Ord>(items: &mut [T], key: impl Fn(&T) -> K) {
    crate::sort::sort_by(items, &|a, b| {
        work::add(1);
        key(a).cmp(&key(b))
    });
}

/// [`sort_counted`] by `packed`, the same order's key in at most 96 bits, when every item has
/// one ([`crate::sort::sort_by_packed`]: one sort of integers, no comparison through a
/// closure); else by `key`, as before.
pub(super) fn sort_packed<T, K: Ord>(
    items: &mut [T],
    packed: impl Fn(&T) -> Option<u128>,
    key: impl Fn(&T) -> K,
) {
    work::add(items.len());
    if !crate::sort::sort_by_packed(items, &packed) {
        sort_counted(items, key);
    }
}

/// `(segment, start, end)` as a packed sort key (32 bits each), when each fits.
pub(super) fn span_key(segment: usize, start: usize, end: usize) -> Option<u128> {
    let w = |v: usize| u32::try_from(v).ok().map(u128::from);
    Some(w(segment)? << 64 | w(start)? << 32 | w(end)?)
}

/// Counts distinct entities found by triggered rules (an entity two rules found counts once).
pub(super) fn count_detections(
    hits: &[Hit],
    triggered: &[bool],
    counts: &mut BTreeMap<String, u32>,
) {
    let mut seen: Vec<(usize, usize, usize, Source)> = hits
        .iter()
        .filter(|h| in_mask(triggered, h.rule))
        .map(|h| (h.segment, h.start, h.end, h.source))
        .collect();
    // The segment in 24 bits, the source in 8: 32 + 32 for the span.
    sort_packed(
        &mut seen,
        |&(si, start, end, source)| {
            let k = span_key(si, start, end)?;
            (si < 1 << 24).then(|| k << 8 | source.rank())
        },
        |k| *k,
    );
    seen.dedup();
    let mut per_source: BTreeMap<Source, u32> = BTreeMap::new();
    for (_, _, _, source) in seen {
        work::add(1);
        *per_source.entry(source).or_insert(0) += 1;
    }
    for (source, n) in per_source {
        *counts.entry(source.name().to_string()).or_insert(0) += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// The packed keys order sources as `Source`'s `Ord` does, and fit their eight bits.
    #[test]
    fn source_ranks_are_in_source_order() {
        let mut all: Vec<Source> = DetectorId::ALL
            .iter()
            .map(|&d| Source::Detector(d))
            .collect();
        all.extend([Source::Keyword, Source::Pattern]);
        for a in &all {
            assert!(a.rank() < 1 << 8);
            for b in &all {
                assert_eq!(a.rank().cmp(&b.rank()), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }

    /// Spans past 32 bits (or a segment index past 24, for the counts) have no packed key:
    /// they are sorted by comparison, in the same order.
    #[test]
    fn wide_spans_fall_back_to_the_comparison_sort() {
        assert_eq!(span_key(0, 0, 1), Some(1));
        assert_eq!(span_key(1, 2, 3), Some(1 << 64 | 2 << 32 | 3));
        if let Ok(too_wide) = usize::try_from(u64::from(u32::MAX) + 1) {
            assert_eq!(span_key(0, too_wide, too_wide), None);
            let mut v = vec![(0, too_wide, too_wide + 1, 2), (0, 5, 6, 1), (0, 5, 6, 0)];
            sort_packed(
                &mut v,
                |&(s, a, b, _)| span_key(s, a, b),
                |&(s, a, b, _)| (s, a, b),
            );
            assert_eq!(
                v,
                vec![(0, 5, 6, 1), (0, 5, 6, 0), (0, too_wide, too_wide + 1, 2)]
            );
        }
    }
}
