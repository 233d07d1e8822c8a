//! The text edits of the triggered rules' hits: redactions and `replace_with` rewrites, per
//! segment, ranked so a span both redact and rewrite rules matched is redacted.

use std::collections::BTreeMap;

use super::hits::{in_mask, sort_packed, span_key, Hit, Source};
use super::pseudonym::Vault;
use super::redact::{self, Edit, Replacement};
use super::work;
use crate::llm;
use crate::policy::document::RedactStyle;
use crate::policy::{Action, Policy};

/// Text edits per segment, from triggered redact rules and `replace_with` rewrites.
pub(super) struct EditPlan {
    /// (segment index, its edits), in segment order.
    pub(super) per_segment: Vec<(usize, Vec<Edit>)>,
    pub(super) redacted: BTreeMap<Source, u32>,
}

impl EditPlan {
    /// The new texts of the segments whose edits change them, by segment index.
    pub(super) fn text_changes(&mut self, segments: &[llm::Segment<'_>]) -> Vec<(usize, String)> {
        let mut changes = Vec::new();
        for (si, edits) in self.per_segment.iter_mut() {
            let Some(seg) = segments.get(*si) else {
                continue;
            };
            work::add(edits.len());
            let new_text = redact::apply(seg.text, edits);
            if new_text != seg.text {
                changes.push((*si, new_text));
            }
        }
        changes
    }

    /// The edits of segment `si`, taken out of the plan.
    pub(super) fn take_segment(&mut self, si: usize) -> Vec<Edit> {
        self.per_segment
            .iter_mut()
            .find(|(s, _)| *s == si)
            .map(|(_, edits)| std::mem::take(edits))
            .unwrap_or_default()
    }

    /// Adds edits to segment `si` (restored tokens).
    pub(super) fn add_edits(&mut self, si: usize, edits: Vec<Edit>) {
        if edits.is_empty() {
            return;
        }
        match self.per_segment.iter_mut().find(|(s, _)| *s == si) {
            Some((_, mine)) => mine.extend(edits),
            None => self.per_segment.push((si, edits)),
        }
    }

    pub(super) fn replaces_text(&self) -> bool {
        self.per_segment
            .iter()
            .flat_map(|(_, edits)| edits)
            .any(|e| e.rank >= REPLACE_RANK)
    }
}

/// Redactions rank before replacements, so a span both redact and rewrite rules matched is
/// redacted.
pub(super) const REPLACE_RANK: u32 = 1 << 20;

/// A restored token ranks before everything: a fake that a response rule also matches is
/// the exchange's own value coming back, not output to redact.
pub(super) const RESTORE_RANK: u32 = 0;

/// The request being pseudonymised: the exchange's vault and the request's texts (the
/// values, and the collision rule).
pub(super) struct Pseudo<'v, 's, 't> {
    pub(super) vault: &'v mut Vault,
    pub(super) segments: &'s [llm::Segment<'t>],
}

/// The edits of the triggered rules' hits. `hits` come grouped by segment, in segment order
/// (as [`find_hits`] gives them); each hit costs O(1) amortised, plus the merge of sorted runs
/// that de-duplicates the redaction count.
/// `pseudo`: the request's vault, filled with the values `pseudonym` rules replace; without
/// it (responses) those rules redact with the placeholder.
pub(super) fn plan_edits(
    policy: &Policy,
    triggered: &[bool],
    hits: &[Hit],
    mut pseudo: Option<Pseudo<'_, '_, '_>>,
) -> EditPlan {
    let mut plan = EditPlan {
        per_segment: Vec::new(),
        redacted: BTreeMap::new(),
    };
    if let Some(p) = pseudo.as_mut() {
        assign_tokens(policy, triggered, hits, p);
    }
    // Redacted spans, each counted once (for the first hit, in hit order, that redacts it).
    let mut counted: Vec<(usize, usize, usize, Source)> = Vec::new();
    for h in hits.iter().filter(|h| in_mask(triggered, h.rule)) {
        work::add(1);
        let Some(rule) = policy.rules.get(h.rule) else {
            continue;
        };
        let (replacement, rank) = match (rule.action, &rule.rewrite.replace_with) {
            (Action::Redact, _) => (
                match rule.redact_style {
                    RedactStyle::Mask => Replacement::Mask,
                    RedactStyle::KeepLast4 => Replacement::KeepLast4,
                    RedactStyle::Placeholder => Replacement::Static(h.source.placeholder()),
                    RedactStyle::Pseudonym => Replacement::Text(
                        pseudo
                            .as_ref()
                            .and_then(|p| p.token(h))
                            .unwrap_or(h.source.placeholder())
                            .into(),
                    ),
                },
                h.rule as u32 + 1,
            ),
            (Action::Rewrite, Some(text)) => (
                Replacement::Text(text.clone()),
                REPLACE_RANK + h.rule as u32,
            ),
            _ => continue,
        };
        if rule.action == Action::Redact {
            counted.push((h.segment, h.start, h.end, h.source));
        }
        let edit = Edit {
            start: h.start,
            end: h.end,
            rank,
            replacement,
        };
        match plan.per_segment.last_mut() {
            Some((si, edits)) if *si == h.segment => edits.push(edit),
            _ => plan.per_segment.push((h.segment, vec![edit])),
        }
    }
    // Stable: among hits on the same span the first in hit order stays.
    sort_packed(
        &mut counted,
        |&(si, start, end, _)| span_key(si, start, end),
        |&(si, start, end, _)| (si, start, end),
    );
    counted.dedup_by_key(|&mut (si, start, end, _)| (si, start, end));
    for (_, _, _, source) in counted {
        *plan.redacted.entry(source).or_insert(0) += 1;
    }
    plan
}

impl Pseudo<'_, '_, '_> {
    /// The text `h` covers.
    fn value(&self, h: &Hit) -> Option<&str> {
        self.segments.get(h.segment)?.text.get(h.start..h.end)
    }

    /// The token the vault holds for `h`'s value (None after an overflow).
    fn token(&self, h: &Hit) -> Option<&str> {
        self.vault.token_of(h.source, self.value(h)?)
    }
}

/// Gives every value a `pseudonym` rule replaces its token, in order of appearance (segment,
/// then offset), so numbers read in the order the model reads them.
fn assign_tokens(policy: &Policy, triggered: &[bool], hits: &[Hit], p: &mut Pseudo<'_, '_, '_>) {
    let mut spans: Vec<&Hit> = hits
        .iter()
        .filter(|h| in_mask(triggered, h.rule))
        .filter(|h| {
            policy.rules.get(h.rule).is_some_and(|r| {
                r.action == Action::Redact && r.redact_style == RedactStyle::Pseudonym
            })
        })
        .collect();
    sort_packed(
        &mut spans,
        |h| span_key(h.segment, h.start, h.end),
        |h| (h.segment, h.start, h.end),
    );
    spans.dedup_by_key(|h| (h.segment, h.start, h.end));
    let texts: Vec<&str> = p.segments.iter().map(|s| s.text).collect();
    for h in spans {
        work::add(1);
        let (Some(rule), Some(value)) = (policy.rules.get(h.rule), p.value(h)) else {
            continue;
        };
        let value = value.to_string();
        p.vault.token_for(h.source, &value, rule.pseudonym, &texts);
    }
}
