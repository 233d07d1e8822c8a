//! The text edits of the triggered rules' hits: redactions and `replace_with` rewrites, per
//! segment, ranked so a span both redact and rewrite rules matched is redacted.

use std::collections::BTreeMap;

use super::hits::{in_mask, sort_counted, Hit, Source};
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

/// The edits of the triggered rules' hits. `hits` come grouped by segment, in segment order
/// (as [`find_hits`] gives them); each hit costs O(1) amortised, plus the merge of sorted runs
/// that de-duplicates the redaction count.
pub(super) fn plan_edits(policy: &Policy, triggered: &[bool], hits: &[Hit]) -> EditPlan {
    let mut plan = EditPlan {
        per_segment: Vec::new(),
        redacted: BTreeMap::new(),
    };
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
                    RedactStyle::Placeholder => Replacement::Text(h.source.placeholder().into()),
                },
                h.rule as u32,
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
    sort_counted(&mut counted, |&(si, start, end, _)| (si, start, end));
    counted.dedup_by_key(|&mut (si, start, end, _)| (si, start, end));
    for (_, _, _, source) in counted {
        *plan.redacted.entry(source).or_insert(0) += 1;
    }
    plan
}
