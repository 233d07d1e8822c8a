//! Detection and cut points: how far a channel's text is safe to release (the hold-back's
//! point, never inside a finding) and its findings up to there, which are final.

use super::channels::{context_into, ChannelText, Channels, Found};
use crate::engine::hits::{find_hits_scored, sort_counted, Hit};
use crate::engine::holdback::Holdback;
use crate::engine::pseudonym::{Vault, RESTORE_RULE};
use crate::engine::work;
use crate::llm::stream::{self, Channel};
use crate::llm::{PathId, Phase, Segment};
use crate::policy::Policy;

impl Channels {
    /// Judges the unsettled text of `changed` (all of it when every text ends); returns
    /// whether the hold-back's cap decided for any of them.
    pub(super) fn judge(
        &mut self,
        policy: &Policy,
        hold: Holdback,
        vault: &Vault,
        changed: &[Channel],
        all: bool,
    ) -> bool {
        let mut capped = false;
        for c in changed {
            if let Some(ch) = self.map.get_mut(c) {
                let score = &mut self.injection_score;
                capped |= judge(ch, policy, hold, vault, all, score, &mut self.scan);
            }
        }
        capped
    }
}

/// Judges one channel's unsettled text: how far it is safe (the hold-back's point, never
/// inside a finding) and its findings up to there, which are final. Scans only the text
/// after `settled` (with [`super::channels::CONTEXT_BYTES`] before it), and only when the
/// point moved. Returns whether the cap decided.
/// The vault's tokens are findings too (restored, never cut), and the end of the text that
/// could still become one waits. The prompt-injection score of the text scanned raises
/// `score` (the highest so far).
fn judge(
    ch: &mut ChannelText,
    policy: &Policy,
    hold: Holdback,
    vault: &Vault,
    all: bool,
    score: &mut Option<f64>,
    scan: &mut String,
) -> bool {
    ch.dirty = false;
    let from = ch.settled.saturating_sub(ch.base) as usize;
    // Borrowing the text field alone: the hold-back updates `ch.progress` meanwhile.
    let held = ch.text.get(ch.skip..).unwrap_or_default();
    let tail = held.get(from..).unwrap_or_default();
    let tail_len = tail.len();
    if tail_len == 0 {
        return false;
    }
    let (point, capped) = if all || ch.closed {
        (tail.len(), false)
    } else if tail.len() < ch.retry_at {
        return false;
    } else {
        work::add(1);
        let (point, capped) = hold.release_point_from(tail, ch.settled, &mut ch.progress);
        (point.min(tail_len - vault.pending(tail)), capped)
    };
    if point == 0 {
        // Nothing can go yet: no need to look for entities.
        return capped;
    }
    // What precedes the unsettled text, so detectors see the start of an entity.
    let before = held.get(..from).unwrap_or_default();
    context_into(scan, &ch.context, before);
    let look = scan.len();
    scan.push_str(tail);
    let scan = scan.as_str();
    work::add(scan.len());
    let origin = ch.settled - look as u64;
    let segment = Segment {
        role: stream::ROLE,
        text: scan,
        path: PathId::ROOT,
        slot: crate::llm::Slot::Value,
    };
    let segments = std::slice::from_ref(&segment);
    let mut fs: Vec<Found> = find_hits_scored(policy, Phase::Response, segments, score, None)
        .into_iter()
        .filter(|h| h.start >= look)
        .chain(
            vault
                .find(scan)
                .into_iter()
                .filter(|f| f.start >= look)
                .map(|f| Hit {
                    rule: RESTORE_RULE,
                    segment: 0,
                    start: f.start,
                    end: f.end,
                    source: f.source,
                }),
        )
        .map(|h| Found {
            hit: h,
            start: origin + h.start as u64,
            end: origin + h.end as u64,
        })
        .collect();
    // A rule's finding inside a restored token is the client's own value: not judged.
    let tokens: Vec<(u64, u64)> = fs
        .iter()
        .filter(|f| f.hit.rule == RESTORE_RULE)
        .map(|f| (f.start, f.end))
        .collect();
    if !tokens.is_empty() {
        fs.retain(|f| {
            f.hit.rule == RESTORE_RULE || !tokens.iter().any(|&(s, e)| s <= f.start && f.end <= e)
        });
    }
    sort_counted(&mut fs, |f| (f.start, f.end));
    // Never cut through a finding: from the last start back, each crossing one moves the
    // point to its start (a finding starting later cannot cross the new point).
    let mut safe = ch.settled + point as u64;
    for f in fs.iter().rev() {
        if f.start < safe && safe < f.end {
            safe = f.start;
        }
    }
    if safe == ch.settled {
        // A finding longer than the cap keeps everything: wait for more text before
        // scanning it all again.
        ch.retry_at = if capped { tail_len + tail_len / 2 } else { 0 };
        return capped;
    }
    ch.retry_at = 0;
    ch.keep(fs.into_iter().filter(|f| f.start < safe));
    ch.settled = safe;
    capped
}
