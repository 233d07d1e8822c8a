//! A decision record's canonical form (RFC 8785), written straight from the typed record with
//! its `chain` member, members in the canonical (UTF-16 = byte, the keys being ASCII) order.
//! The same bytes as building the record's members as a JSON map and canonicalising that
//! (`AuditRecord::to_members` then `chain::canonical`, kept as the tests' oracle) without the
//! map: a decision record's ~40 members each cost a `String` key, a `Value` and a tree insert
//! there (issue 16 item 3).
//!
//! Adding a field to [`AuditRecord`] (or to a type it holds) means adding it here too, in its
//! sorted place: the oracle test in this module fails until then.

use std::collections::BTreeMap;

use super::chain::{write_number, write_string};
use super::record::{AuditRecord, CandidateDecision, PhaseRecord, UsageRecord, MAX_RECORD_BYTES};
use crate::engine::pseudonym::PseudonymCounts;
use crate::engine::stream::StreamSummary;
use crate::engine::ContentItem;

/// The `chain` member a record is linked with.
#[derive(Debug, Clone, Copy)]
pub struct Link<'a> {
    pub id: &'a str,
    pub seq: u64,
    pub prev: &'a str,
}

/// An object being written: members are given in canonical order, keys are ASCII literals
/// needing no escape.
struct Obj<'o> {
    out: &'o mut String,
    first: bool,
}

impl<'o> Obj<'o> {
    fn open(out: &'o mut String) -> Obj<'o> {
        out.push('{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(k);
        self.out.push_str("\":");
        self.out
    }

    fn str(&mut self, k: &str, v: &str) {
        write_string(v, self.key(k));
    }

    fn opt_str(&mut self, k: &str, v: Option<&str>) {
        match v {
            Some(v) => self.str(k, v),
            None => self.key(k).push_str("null"),
        }
    }

    fn u64(&mut self, k: &str, v: u64) {
        write_u64(v, self.key(k));
    }

    fn opt_u64(&mut self, k: &str, v: Option<u64>) {
        match v {
            Some(v) => self.u64(k, v),
            None => self.key(k).push_str("null"),
        }
    }

    fn bool(&mut self, k: &str, v: bool) {
        self.key(k).push_str(if v { "true" } else { "false" });
    }

    fn strs(&mut self, k: &str, v: &[String]) {
        let out = self.key(k);
        out.push('[');
        for (i, s) in v.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_string(s, out);
        }
        out.push(']');
    }

    fn counts(&mut self, k: &str, v: &BTreeMap<String, u32>) {
        write_counts(v, self.key(k));
    }

    fn close(self) {
        self.out.push('}');
    }
}

fn write_u64(mut v: u64, out: &mut String) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    for d in digits.get(i..).unwrap_or_default() {
        out.push(char::from(*d));
    }
}

/// A map of counts by name: byte order is the canonical order unless a key has characters
/// beyond the BMP and others at U+E000 and above (as `chain::canonical` sorts them).
fn write_counts(v: &BTreeMap<String, u32>, out: &mut String) {
    out.push('{');
    let put = |i: usize, k: &str, n: u32, out: &mut String| {
        if i > 0 {
            out.push(',');
        }
        write_string(k, out);
        out.push(':');
        write_u64(u64::from(n), out);
    };
    if v.keys().all(|k| k.is_ascii()) {
        for (i, (k, n)) in v.iter().enumerate() {
            put(i, k, *n, out);
        }
    } else {
        let mut members: Vec<(&String, &u32)> = v.iter().collect();
        crate::sort::sort_by(&mut members, &|a, b| {
            a.0.encode_utf16().cmp(b.0.encode_utf16())
        });
        for (i, (k, n)) in members.into_iter().enumerate() {
            put(i, k, *n, out);
        }
    }
    out.push('}');
}

/// A float as `serde_json::to_value` then `chain::canonical` write it (not finite: null).
fn write_f64(v: f64, out: &mut String) {
    match serde_json::Number::from_f64(v) {
        Some(n) => write_number(&n, out),
        None => out.push_str("null"),
    }
}

fn write_link(link: &Link<'_>, out: &mut String) {
    let mut o = Obj::open(out);
    o.str("id", link.id);
    o.str("prev", link.prev);
    o.u64("seq", link.seq);
    o.close();
}

fn write_phase(p: &PhaseRecord, out: &mut String) {
    let mut o = Obj::open(out);
    o.u64("body_bytes", p.body_bytes);
    o.str("decision", p.decision);
    if let Some(e) = &p.error {
        o.str("error", e);
    }
    o.bool("inspected", p.inspected);
    if let Some(s) = p.prompt_injection_score {
        write_f64(s, o.key("prompt_injection_score"));
    }
    o.str("reason_code", &p.reason_code);
    o.u64("segments", u64::from(p.segments));
    if let Some(s) = &p.stream {
        write_stream(s, o.key("stream"));
    }
    o.strs("triggered_rules", &p.triggered_rules);
    o.close();
}

fn write_stream(s: &StreamSummary, out: &mut String) {
    let mut o = Obj::open(out);
    o.str("end", s.end);
    o.u64("events", s.events);
    if s.malformed_events != 0 {
        o.u64("malformed_events", u64::from(s.malformed_events));
    }
    o.u64("max_held_bytes", s.max_held_bytes);
    if s.overflows != 0 {
        o.u64("overflows", u64::from(s.overflows));
    }
    o.close();
}

fn write_pseudonyms(p: &PseudonymCounts, out: &mut String) {
    let mut o = Obj::open(out);
    if !p.overflow.is_empty() {
        o.counts("overflow", &p.overflow);
    }
    if !p.pseudonymised.is_empty() {
        o.counts("pseudonymised", &p.pseudonymised);
    }
    if !p.restored.is_empty() {
        o.counts("restored", &p.restored);
    }
    o.close();
}

fn write_usage(u: &UsageRecord, out: &mut String) {
    let mut o = Obj::open(out);
    o.opt_u64("completion_tokens", u.completion_tokens);
    o.opt_u64("prompt_tokens", u.prompt_tokens);
    o.opt_u64("total_tokens", u.total_tokens);
    o.close();
}

fn write_candidate(c: &CandidateDecision, out: &mut String) {
    let mut o = Obj::open(out);
    o.str("decision", c.decision);
    o.str("policy_id", &c.policy_id);
    o.str("reason_code", &c.reason_code);
    o.strs("triggered_categories", &c.triggered_categories);
    o.strs("triggered_rules", &c.triggered_rules);
    o.close();
}

fn write_content(items: &[ContentItem], out: &mut String) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut o = Obj::open(out);
        o.str("role", item.role);
        o.str("text", &item.text);
        if item.truncated {
            o.bool("truncated", true);
        }
        o.close();
    }
    out.push(']');
}

/// Writes `r` with `link` as its `chain`; `drop_content`: as `to_members` bounds a record,
/// without `content` and with `truncated`. Returns the length of the `chain` member written
/// (with its separating comma), so the caller can measure the record without it.
fn write_record(r: &AuditRecord, link: &Link<'_>, drop_content: bool, out: &mut String) -> usize {
    let content = if drop_content {
        None
    } else {
        r.content.as_deref()
    };
    let truncated = r.truncated || drop_content;
    let mut o = Obj::open(out);
    o.str("api_format", r.api_format);
    if !r.attribution_rejected.is_empty() {
        o.strs("attribution_rejected", &r.attribution_rejected);
    }
    if let Some(m) = &r.body_model {
        o.str("body_model", m);
    }
    if let Some(b) = r.canary_bucket {
        o.u64("canary_bucket", u64::from(b));
    }
    if let Some(k) = r.canary_key {
        o.str("canary_key", k);
    }
    if let Some(c) = &r.candidate {
        write_candidate(c, o.key("candidate"));
    }
    let before = o.out.len();
    write_link(link, o.key("chain"));
    let chain_len = o.out.len() - before;
    if let Some(items) = content {
        write_content(items, o.key("content"));
    }
    o.str("decision", r.decision);
    o.counts("detections", &r.detections);
    if let Some(d) = r.duration_ms {
        o.u64("duration_ms", d);
    }
    o.bool("enforced", r.enforced);
    if let Some(e) = r.escalation {
        o.str("escalation", e);
    }
    if let Some(g) = &r.gateway {
        o.str("gateway", g);
    }
    if let Some(s) = r.http_status {
        o.u64("http_status", u64::from(s));
    }
    o.opt_str("model", r.model.as_deref());
    o.str("phase", r.phase);
    o.str("policy_id", &r.policy_id);
    o.opt_str("policy_project_id", r.policy_project_id.as_deref());
    if let Some(s) = &r.policy_project_source {
        o.str("policy_project_source", s);
    }
    o.opt_str("policy_user", r.policy_user.as_deref());
    if let Some(s) = &r.policy_user_source {
        o.str("policy_user_source", s);
    }
    if let Some(v) = r.policy_user_verified {
        o.bool("policy_user_verified", v);
    }
    o.str("provider", r.provider);
    if !r.pseudonyms.is_empty() {
        write_pseudonyms(&r.pseudonyms, o.key("pseudonyms"));
    }
    o.str("reason_code", &r.reason_code);
    o.str("record_id", &r.record_id);
    o.str("record_type", r.record_type);
    o.counts("redactions", &r.redactions);
    write_phase(&r.request, o.key("request"));
    o.str("request_id", &r.request_id);
    if let Some(p) = &r.response {
        write_phase(p, o.key("response"));
    }
    if let Some(m) = &r.response_model {
        o.str("response_model", m);
    }
    {
        let out = o.key("rewrites");
        out.push('[');
        for (i, s) in r.rewrites.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_string(s, out);
        }
        out.push(']');
    }
    o.str("rollout_mode", r.rollout_mode);
    o.str("schema_version", r.schema_version);
    o.bool("stream", r.stream);
    o.str("timestamp", &r.timestamp);
    o.strs("triggered_categories", &r.triggered_categories);
    o.strs("triggered_rules", &r.triggered_rules);
    if truncated {
        o.bool("truncated", true);
    }
    if let Some(u) = &r.usage {
        write_usage(u, o.key("usage"));
    }
    if let Some(e) = r.usage_estimated {
        o.bool("usage_estimated", e);
    }
    o.close();
    // `"chain":` and the comma before it (the chain is never the first member).
    chain_len + "\"chain\":".len() + 1
}

/// How far the canonical length of a record may be from its `serde_json` length: only its two
/// phases' `prompt_injection_score` floats are written differently (`1.0` against `1`).
const FLOAT_SLACK: usize = 64;

impl AuditRecord {
    /// The record's canonical form with `link` as its `chain` member, bounded as
    /// [`Self::to_members`] bounds it: over [`MAX_RECORD_BYTES`] (as `serde_json` writes it,
    /// without the chain), `content` is dropped and `truncated` set.
    pub(crate) fn canonical_linked(&self, link: &Link<'_>) -> String {
        let mut out = String::with_capacity(1536);
        let chain_len = write_record(self, link, false, &mut out);
        if self.content.is_none() {
            return out;
        }
        let unlinked = out.len().saturating_sub(chain_len);
        let too_big = if unlinked + FLOAT_SLACK <= MAX_RECORD_BYTES {
            false
        } else {
            // Near the bound: measure it exactly as `to_members` does.
            serde_json::to_string(self).map_or(0, |s| s.len()) > MAX_RECORD_BYTES
        };
        if !too_big {
            return out;
        }
        out.clear();
        write_record(self, link, true, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::{Chain, TrailConfig};
    use crate::test_rng::Rng;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Reproducible records' parts, drawn from the shared test RNG.
    impl Rng {
        fn text(&mut self) -> String {
            const PIECES: &[&str] = &[
                "",
                "plain",
                "gpt-4o",
                "\"",
                "\\",
                "\\u00e9",
                "\\ud800",
                "\u{0}",
                "\u{1f}",
                "\n\t\r\u{8}\u{c}",
                "\u{7f}",
                "\u{85}",
                "é",
                "€",
                "😀",
                "\u{2028}",
                "\u{fb01}",
                "\u{e000}",
                "\u{ffff}",
                "日本語",
                "/",
                "'",
                "<script>",
            ];
            (0..self.below(5)).map(|_| self.pick(PIECES)).collect()
        }
        fn opt_text(&mut self) -> Option<String> {
            self.coin().then(|| self.text())
        }
        fn texts(&mut self) -> Vec<String> {
            (0..self.below(4)).map(|_| self.text()).collect()
        }
        fn number(&mut self) -> u64 {
            self.pick(&[0, 1, 9, 10, 255, 1 << 31, u64::from(u32::MAX), u64::MAX])
                .wrapping_add(self.below(3) as u64)
        }
        fn opt_number(&mut self) -> Option<u64> {
            self.coin().then(|| self.number())
        }
        fn counts(&mut self) -> BTreeMap<String, u32> {
            const KEYS: &[&str] = &["email", "keyword", "pattern", "é", "😀", "\u{fb01}", "a\"b"];
            (0..self.below(4))
                .map(|_| (self.pick(KEYS).to_string(), self.number() as u32))
                .collect()
        }
        fn score(&mut self) -> Option<f64> {
            self.coin().then(|| {
                self.pick(&[
                    0.0,
                    1.0,
                    0.57,
                    0.1,
                    0.99,
                    0.05,
                    -0.0,
                    1e21,
                    1e-7,
                    123.25,
                    f64::NAN,
                ])
            })
        }
        fn word(&mut self) -> &'static str {
            self.pick(&["allow", "redact", "refuse", "escalate", "x\"y", "é"])
        }
    }

    fn phase(g: &mut Rng) -> PhaseRecord {
        PhaseRecord {
            decision: g.word(),
            reason_code: g.text(),
            triggered_rules: g.texts(),
            inspected: g.coin(),
            segments: g.number() as u32,
            body_bytes: g.number(),
            error: g.opt_text(),
            stream: g.coin().then(|| StreamSummary {
                end: g.word(),
                events: g.number(),
                max_held_bytes: g.number(),
                overflows: if g.coin() { 0 } else { g.number() as u32 },
                malformed_events: if g.coin() { 0 } else { g.number() as u32 },
            }),
            prompt_injection_score: g.score(),
        }
    }

    fn record(g: &mut Rng) -> AuditRecord {
        AuditRecord {
            schema_version: "1.3",
            record_type: "decision",
            record_id: g.text(),
            request_id: g.text(),
            timestamp: g.text(),
            decision: g.word(),
            reason_code: g.text(),
            policy_id: g.text(),
            policy_user: g.opt_text(),
            policy_project_id: g.opt_text(),
            policy_user_source: g.opt_text(),
            policy_user_verified: g.coin().then(|| g.coin()),
            policy_project_source: g.opt_text(),
            attribution_rejected: g.texts(),
            rollout_mode: g.word(),
            enforced: g.coin(),
            canary_bucket: g.coin().then(|| g.number() as u32),
            canary_key: g.coin().then(|| g.word()),
            triggered_categories: g.texts(),
            triggered_rules: g.texts(),
            phase: g.word(),
            provider: g.word(),
            api_format: g.word(),
            model: g.opt_text(),
            body_model: g.opt_text(),
            response_model: g.opt_text(),
            stream: g.coin(),
            request: phase(g),
            response: g.coin().then(|| phase(g)),
            detections: g.counts(),
            redactions: g.counts(),
            pseudonyms: PseudonymCounts {
                pseudonymised: g.counts(),
                restored: g.counts(),
                overflow: g.counts(),
            },
            rewrites: (0..g.below(3)).map(|_| g.word()).collect(),
            escalation: g.coin().then(|| g.word()),
            usage: g.coin().then(|| UsageRecord {
                prompt_tokens: g.opt_number(),
                completion_tokens: g.opt_number(),
                total_tokens: g.opt_number(),
            }),
            usage_estimated: g.coin().then(|| g.coin()),
            http_status: g.coin().then(|| g.number() as u16),
            duration_ms: g.opt_number(),
            gateway: g.opt_text(),
            candidate: g.coin().then(|| CandidateDecision {
                policy_id: g.text(),
                decision: g.word(),
                reason_code: g.text(),
                triggered_categories: g.texts(),
                triggered_rules: g.texts(),
            }),
            content: g.coin().then(|| {
                (0..g.below(3))
                    .map(|_| ContentItem {
                        role: g.word(),
                        text: g.text(),
                        truncated: g.coin(),
                    })
                    .collect()
            }),
            truncated: g.below(8) == 0,
        }
    }

    /// Two chains of the same seed, one linking the members (the oracle), one the struct.
    fn chains() -> (Chain, Chain) {
        let c = TrailConfig::default();
        (
            Chain::new(&c, "gw", 9, 1_000),
            Chain::new(&c, "gw", 9, 1_000),
        )
    }

    #[test]
    fn the_typed_writer_writes_the_members_canonical_form() {
        let (mut oracle, mut typed) = chains();
        let mut g = Rng(0x9e37_79b9_7f4a_7c15);
        for i in 0..5000 {
            let r = record(&mut g);
            let want = oracle.link_members(r.to_members());
            let got = typed.link_record(&r);
            assert_eq!(got, want, "record {i}: {r:?}");
        }
    }

    /// Around [`MAX_RECORD_BYTES`] the record keeps or drops its content exactly as
    /// `to_members` does, floats written differently by `serde_json` (`1.0`) included.
    #[test]
    fn content_is_dropped_at_the_same_bound() {
        let (mut oracle, mut typed) = chains();
        let mut g = Rng(7);
        for score in [None, Some(1.0), Some(0.0), Some(0.57)] {
            let mut r = record(&mut g);
            r.truncated = false;
            r.request.prompt_injection_score = score;
            r.response = Some(PhaseRecord {
                prompt_injection_score: score,
                ..r.request.clone()
            });
            r.content = Some(vec![ContentItem {
                role: "user",
                text: String::new(),
                truncated: false,
            }]);
            let base = serde_json::to_string(&r).unwrap().len();
            let mut dropped = 0;
            for len in (MAX_RECORD_BYTES - base).saturating_sub(80)..=MAX_RECORD_BYTES - base + 3 {
                if let Some(items) = r.content.as_mut() {
                    items[0].text = "x".repeat(len);
                }
                let want = oracle.link_members(r.to_members());
                let got = typed.link_record(&r);
                assert_eq!(got, want, "text of {len} bytes");
                dropped += usize::from(got.json.contains("\"truncated\":true"));
            }
            assert_eq!(dropped, 3, "over the bound from one byte more");
        }
    }
}
