//! What a released event carries to the client: its bytes as they came, or its `data`
//! re-serialized with its corrected pieces of text (a redacted span's replacement where the
//! span starts, its later pieces empty) and its `logprobs` blanked; and the texts an event
//! repeats whole (Responses API `.done` and `response.completed`), redacted as a whole.

use std::collections::BTreeMap;

use serde_json::Value;

use super::channels::{ChannelText, Channels, Found};
use crate::engine::edits::{plan_edits, RESTORE_RANK};
use crate::engine::hits::{find_hits, rule_mask, Hit};
use crate::engine::pseudonym::{Vault, RESTORE_RULE};
use crate::engine::{redact, work};
use crate::llm::stream::{self, Channel, Whole};
use crate::llm::{path, sse, PathId, Phase, TooComplex};
use crate::policy::Policy;

/// A released span of a channel's text and its replacement, in channel offsets.
pub(super) type Span = (u64, u64, String);

/// The replacement spans of each channel's final findings up to where its text is released
/// (`ends`), from the edits of the triggered `rules`. Spans of a channel are sorted and
/// disjoint.
pub(super) fn replacement_spans(
    policy: &Policy,
    vault: &Vault,
    rules: &[usize],
    final_hits: &BTreeMap<Channel, Vec<Found>>,
    ends: &BTreeMap<Channel, u64>,
    channels: &Channels,
) -> BTreeMap<Channel, Vec<Span>> {
    let mut spans = BTreeMap::new();
    for (c, fs) in final_hits {
        let Some(ch) = channels.get(c) else {
            continue;
        };
        // Findings are sorted: the first starts earliest.
        let origin = fs.first().map_or(ch.base, |f| f.start);
        let to = ends.get(c).copied().unwrap_or(origin);
        let hits: Vec<Hit> = fs
            .iter()
            .map(|f| Hit {
                segment: 0,
                start: (f.start - origin) as usize,
                end: (f.end - origin) as usize,
                ..f.hit
            })
            .collect();
        let text = ch.slice(origin, to);
        let mut plan = plan_edits(policy, &rule_mask(policy, rules), &hits, None);
        let mut edits = plan.take_segment(0);
        // Restored tokens: what the vault gives back for the token's text.
        for h in hits.iter().filter(|h| h.rule == RESTORE_RULE) {
            let token = text.get(h.start..h.end).unwrap_or_default();
            if let Some(back) = vault.replacement(token) {
                edits.push(redact::Edit {
                    start: h.start,
                    end: h.end,
                    rank: RESTORE_RANK,
                    replacement: redact::Replacement::Text(back.to_string()),
                });
            }
        }
        let resolved = redact::resolve(text, &mut edits);
        spans.insert(
            *c,
            resolved
                .into_iter()
                .map(|(s, e, r)| (origin + s as u64, origin + e as u64, r))
                .collect(),
        );
    }
    spans
}

/// The new text of one event's piece `start..end` of a channel, or None when unchanged:
/// a span's replacement goes where the span starts; the span's later pieces become empty.
/// `spans` are sorted and disjoint.
pub(super) fn rewrite_piece(
    ch: &ChannelText,
    start: u64,
    end: u64,
    spans: &[Span],
) -> Option<String> {
    // The spans that end after `start`, up to the first that starts at or after `end`.
    let first = spans.partition_point(|(_, e, _)| *e <= start);
    let touching = spans
        .get(first..)
        .unwrap_or_default()
        .iter()
        .take_while(|(s, _, _)| *s < end);
    let mut out = String::new();
    let mut pos = start;
    let mut any = false;
    for (s, e, replacement) in touching {
        work::add(1);
        any = true;
        if *s > pos {
            out.push_str(ch.slice(pos, *s));
        }
        if *s >= start {
            out.push_str(replacement);
        }
        pos = (*e).min(end).max(pos);
    }
    if !any {
        return None;
    }
    if pos < end {
        out.push_str(ch.slice(pos, end));
    }
    (out != ch.slice(start, end)).then_some(out)
}

/// The event's JSON no longer parses (cannot happen: the same bytes parsed when it arrived).
#[derive(Debug)]
pub(super) struct Unreadable;

/// Writes a released event whose text changed: `changed` is its JSON when it was already
/// redacted on arrival, `pieces` the new texts at their paths. Its data is re-serialized and
/// its `logprobs` blanked when anything changed; otherwise its bytes go as they came.
pub(super) fn write_changed(
    raw: &[u8],
    changed: Option<Value>,
    pieces: Vec<(&[stream::Step], String)>,
    out: &mut Vec<u8>,
) -> Result<(), Unreadable> {
    let mut any = changed.is_some();
    let Some(mut value) = changed.or_else(|| event_json(raw)) else {
        return Err(Unreadable);
    };
    for (at, new) in pieces {
        any |= path::replace(&mut value, &stream::as_path(at), new);
    }
    if any {
        // Token log-probabilities spell the original text out: they go too.
        crate::llm::blank_logprobs(&mut value);
        let data = serde_json::to_string(&value).unwrap_or_default();
        sse::rewrite_data(raw, &data, out);
    } else {
        out.extend_from_slice(raw);
    }
    Ok(())
}

/// The JSON `data` of one whole event block.
fn event_json(raw: &[u8]) -> Option<Value> {
    let mut parser = sse::Parser::new(usize::MAX);
    let mut events = Vec::new();
    parser.feed(raw, &mut events).ok()?;
    let data = events.into_iter().next()?.data?;
    serde_json::from_slice(data.as_bytes()).ok()
}

/// Redacts texts an event repeats whole (Responses API `.done` and `response.completed`)
/// with the rules' edits; whether any changed, or the cap the event exceeds. Counted already
/// as they streamed.
pub(super) fn redact_whole(
    policy: &Policy,
    vault: &Vault,
    value: &mut Value,
    whole: &[Whole],
) -> Result<bool, TooComplex> {
    let (changes, paths) = {
        let texts = stream::whole_texts(value, whole)?;
        let hits = find_hits(policy, Phase::Response, &texts.segments);
        let mut rules: Vec<usize> = hits.iter().map(|h| h.rule).collect();
        crate::sort::sort_by(&mut rules, &Ord::cmp);
        rules.dedup();
        let mut plan = plan_edits(policy, &rule_mask(policy, &rules), &hits, None);
        for (si, seg) in texts.segments.iter().enumerate() {
            let edits = vault
                .find(seg.text)
                .into_iter()
                .map(|f| redact::Edit {
                    start: f.start,
                    end: f.end,
                    rank: RESTORE_RANK,
                    replacement: redact::Replacement::Text(f.replacement),
                })
                .collect();
            plan.add_edits(si, edits);
        }
        let changes: Vec<(PathId, String)> = plan
            .text_changes(&texts.segments)
            .into_iter()
            .filter_map(|(si, t)| texts.segments.get(si).map(|s| (s.path, t)))
            .collect();
        (changes, texts.paths)
    };
    let mut changed = false;
    for (p, text) in changes {
        changed |= paths.replace(value, p, text);
    }
    Ok(changed)
}
