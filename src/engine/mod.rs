//! Evaluation of one exchange: parse a body, find what each rule matches, decide, and
//! produce what the traffic gets (forward as is, forward changed, or answer locally).
//!
//! The filter and the CLI call [`rollout`] once per request, then [`evaluate`] for the
//! request body and, when there is one, the response body; [`crate::audit::AuditRecord`]
//! turns the outcomes into the record.

pub mod holdback;
#[cfg(test)]
mod linearity_tests;
pub mod redact;
pub mod reply;
pub mod stream;
mod work;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::detect::{self, DetectorId, DetectorSet, Finding};
use crate::llm::{self, ApiFormat, Phase, Usage};
use crate::policy::compile::{Reply, Rule};
use crate::policy::document::{EscalateMode, OnError, OnUnknownFormat, RedactStyle};
use crate::policy::rollout::{self, BucketKeys, RolloutDecision};
use crate::policy::{Action, Policy};
use redact::{Edit, Replacement};

/// Reason codes the engine itself assigns (rules bring their own).
pub mod reason {
    pub const NO_RULE_MATCHED: &str = "NO_RULE_MATCHED";
    pub const BODY_EMPTY: &str = "BODY_EMPTY";
    pub const BODY_UNPARSEABLE: &str = "BODY_UNPARSEABLE";
    pub const BODY_NOT_UTF8: &str = "BODY_NOT_UTF8";
    /// An object in the body names a key twice: parsers disagree on which copy counts.
    pub const BODY_DUPLICATE_KEY: &str = "BODY_DUPLICATE_KEY";
    pub const UNSUPPORTED_FORMAT: &str = "UNSUPPORTED_FORMAT";
    /// A request's output-token bound is no token count (negative, `"lots"`, `true`…).
    pub const MAX_TOKENS_INVALID: &str = "MAX_TOKENS_INVALID";
    /// A `set_model` rewrite applies but the request path names the model (Azure deployment,
    /// Bedrock, Vertex AI), which a body rewrite cannot change.
    pub const MODEL_NOT_REWRITABLE: &str = "MODEL_NOT_REWRITABLE";
    /// More texts, path steps or nesting than one body may have (`llm::MAX_SEGMENTS`, …).
    pub const BODY_TOO_COMPLEX: &str = "BODY_TOO_COMPLEX";
}

/// Per-request attributes, already attributed by the caller (trusted sources only).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestInfo<'a> {
    pub request_id: &'a str,
    /// The request path (`/v1/chat/completions`), which names the API when present.
    pub path: Option<&'a str>,
    pub user: Option<&'a str>,
    pub project: Option<&'a str>,
}

/// What the traffic gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Pass on; `body` holds the new bytes when the body was changed.
    Forward {
        body: Option<Vec<u8>>,
        flagged: bool,
    },
    /// Answer locally: refused, or held for review.
    Respond {
        status: u16,
        message: String,
        held: bool,
    },
}

/// One redacted text for records of policies with `include_content`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContentItem {
    pub role: &'static str,
    pub text: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// The evaluation of one phase (request or response) of an exchange.
#[derive(Debug, Clone)]
pub struct PhaseOutcome {
    pub phase: Phase,
    pub decision: Action,
    pub reason_code: String,
    /// Ids of the rules that matched, in policy order.
    pub triggered_rules: Vec<String>,
    /// Their categories, de-duplicated, in policy order.
    pub triggered_categories: Vec<String>,
    pub verdict: Verdict,
    pub format: ApiFormat,
    /// The model the phase's model rules judged: in a request, the one the path names when it
    /// names one (see [`llm::route`]), else the body's `model`; in a response, the body's.
    pub model: Option<String>,
    /// The request body's `model` when the path named the model (the upstream ignores it).
    pub body_model: Option<String>,
    /// Whether `model` came from the request path.
    pub model_in_path: bool,
    pub stream: bool,
    /// Whether the body's text was inspected at all.
    pub inspected: bool,
    pub segments: u32,
    pub body_bytes: u64,
    /// Entities found by the rules that matched, by detector (`keyword`, `pattern` for custom).
    pub detections: BTreeMap<String, u32>,
    /// Spans redacted (or that would be, when not enforced), by detector.
    pub redactions: BTreeMap<String, u32>,
    /// Body rewrites applied (or that would be): `set_model`, `cap_max_tokens`, ...
    pub rewrites: Vec<&'static str>,
    pub escalation: Option<EscalateMode>,
    pub usage: Option<Usage>,
    pub content: Option<Vec<ContentItem>>,
    /// Why a body could not be inspected, without any of its content.
    pub error: Option<String>,
    /// Bytes of inspected text (estimates tokens when a stream reports no usage).
    pub text_bytes: u64,
    /// `usage` is (partly) estimated from text length.
    pub usage_estimated: bool,
    /// How a streamed response went.
    pub stream_summary: Option<stream::StreamSummary>,
    /// The highest prompt-injection score of the texts a prompt-injection rule inspected.
    pub injection_score: Option<f64>,
}

impl PhaseOutcome {
    fn new(phase: Phase, body_bytes: usize) -> PhaseOutcome {
        PhaseOutcome {
            phase,
            decision: Action::Allow,
            reason_code: reason::NO_RULE_MATCHED.into(),
            triggered_rules: Vec::new(),
            triggered_categories: Vec::new(),
            verdict: Verdict::Forward {
                body: None,
                flagged: false,
            },
            format: ApiFormat::Unknown,
            model: None,
            body_model: None,
            model_in_path: false,
            stream: false,
            inspected: false,
            segments: 0,
            body_bytes: body_bytes as u64,
            detections: BTreeMap::new(),
            redactions: BTreeMap::new(),
            rewrites: Vec::new(),
            escalation: None,
            usage: None,
            content: None,
            error: None,
            text_bytes: 0,
            usage_estimated: false,
            stream_summary: None,
            injection_score: None,
        }
    }
}

/// The rollout outcome for a request: call once, share between its phases.
pub fn rollout(policy: &Policy, info: &RequestInfo<'_>) -> RolloutDecision {
    let keys = BucketKeys {
        user: info.user,
        project: info.project,
        request_id: info.request_id,
    };
    rollout::decide(&policy.id, &policy.rollout, &keys)
}

/// Longest text kept per segment in records of `include_content` policies.
pub const CONTENT_MAX_BYTES: usize = 2048;

/// Where a hit came from, for detection and redaction counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Detector(DetectorId),
    Keyword,
    Pattern,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Detector(d) => d.name(),
            Source::Keyword => "keyword",
            Source::Pattern => "pattern",
        }
    }

    fn placeholder(self) -> &'static str {
        match self {
            Source::Detector(d) => d.placeholder(),
            Source::Keyword | Source::Pattern => "[REDACTED]",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Hit {
    rule: usize,
    segment: usize,
    start: usize,
    end: usize,
    source: Source,
}

/// Evaluates one body of an exchange against the policy.
pub fn evaluate(
    policy: &Policy,
    info: &RequestInfo<'_>,
    rollout: &RolloutDecision,
    phase: Phase,
    body: &[u8],
) -> PhaseOutcome {
    evaluate_parsed(policy, info, rollout, phase, parse_body(body))
}

/// A body parsed once, for callers that read it before evaluating (body attribution).
#[derive(Debug, Clone)]
pub struct ParsedBody {
    len: usize,
    json: Result<Value, (&'static str, String)>,
}

impl ParsedBody {
    /// The JSON, when the body parsed.
    pub fn json(&self) -> Option<&Value> {
        self.json.as_ref().ok()
    }
}

/// Parses a body, or says why it cannot be inspected (reason code and a content-free detail).
/// Strict ([`llm::json`]): an object naming a key twice is `BODY_DUPLICATE_KEY`, because the
/// upstream may read the other copy than the one judged here.
pub fn parse_body(body: &[u8]) -> ParsedBody {
    let json = if body.iter().all(u8::is_ascii_whitespace) {
        Err((reason::BODY_EMPTY, "empty body".to_string()))
    } else {
        llm::json::from_slice(body).map_err(|e| match e {
            llm::json::JsonError::DuplicateKey(detail) => (reason::BODY_DUPLICATE_KEY, detail),
            llm::json::JsonError::Invalid(_) if std::str::from_utf8(body).is_err() => {
                (reason::BODY_NOT_UTF8, "body is not valid UTF-8".to_string())
            }
            // serde_json syntax errors carry a position, never the input's text.
            llm::json::JsonError::Invalid(e) => {
                (reason::BODY_UNPARSEABLE, format!("invalid JSON: {e}"))
            }
        })
    };
    ParsedBody {
        len: body.len(),
        json,
    }
}

/// [`evaluate`] on a body already parsed with [`parse_body`].
pub fn evaluate_parsed(
    policy: &Policy,
    info: &RequestInfo<'_>,
    rollout: &RolloutDecision,
    phase: Phase,
    body: ParsedBody,
) -> PhaseOutcome {
    let out = PhaseOutcome::new(phase, body.len);
    match body.json {
        Ok(value) => evaluate_json(policy, info, rollout, out, value),
        Err((code, detail)) => on_error(policy, rollout, out, code, detail),
    }
}

fn evaluate_json(
    policy: &Policy,
    info: &RequestInfo<'_>,
    rollout: &RolloutDecision,
    mut out: PhaseOutcome,
    mut value: Value,
) -> PhaseOutcome {
    let phase = out.phase;
    out.format = llm::detect_format(info.path, &value);
    out.model = llm::model(&value).map(str::to_string);
    if phase == Phase::Request {
        out.stream = llm::is_stream(&value);
        // The upstream serves the model the path names, whatever the body says.
        if let Some(served) = info.path.and_then(llm::route::served_model) {
            out.body_model = out.model.replace(served);
            out.model_in_path = true;
        }
    } else {
        out.usage = llm::usage(out.format, &value);
    }
    if out.format == ApiFormat::Unknown && policy.on_unknown_format == OnUnknownFormat::Allow {
        out.reason_code = reason::UNSUPPORTED_FORMAT.into();
        return out;
    }
    if phase == Phase::Request && policy.on_error == OnError::Refuse {
        // Under `on_error: allow` the body is inspected as usual, the bound read as asking for
        // everything (so caps replace it).
        if let Some(field) = llm::invalid_max_tokens(out.format, &value) {
            let detail = format!("{field} is not a token count");
            return on_error(policy, rollout, out, reason::MAX_TOKENS_INVALID, detail);
        }
    }
    let texts = match llm::extract(out.format, phase, &value) {
        Ok(texts) => texts,
        Err(too) => {
            return on_error(policy, rollout, out, reason::BODY_TOO_COMPLEX, too.detail());
        }
    };
    out.inspected = true;
    let segments = &texts.segments;
    out.segments = segments.len() as u32;
    out.text_bytes = segments.iter().map(|s| s.text.len() as u64).sum();

    let hits = find_hits_scored(policy, phase, segments, &mut out.injection_score);
    let requested_max_tokens = llm::max_tokens(out.format, &value);
    let content_hit = rules_hit(policy, &hits);
    let triggered: Vec<usize> = policy
        .rules
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            r.applies_to(phase)
                && rule_triggers(
                    r,
                    content_hit.get(*i).copied().unwrap_or(false),
                    out.model.as_deref(),
                    requested_max_tokens,
                )
        })
        .map(|(i, _)| i)
        .collect();
    let triggered_mask = rule_mask(policy, &triggered);

    let deciding = deciding_rule(policy, &triggered);
    if let Some(rule) = deciding {
        out.decision = rule.action;
        out.reason_code = rule.reason_code.clone();
        if rule.action == Action::Escalate {
            out.escalation = Some(rule.escalate_mode);
        }
    }
    // A model the path names cannot be rewritten in the body: refuse rather than forward a
    // request to the model the policy moves traffic away from.
    let model_stuck = out.model_in_path
        && out.decision != Action::Refuse
        && triggered
            .iter()
            .filter_map(|&i| policy.rules.get(i))
            .any(|r| {
                r.action == Action::Rewrite
                    && r.rewrite
                        .set_model
                        .as_ref()
                        .is_some_and(|m| out.model.as_deref() != Some(m.as_str()))
            });
    if model_stuck {
        out.decision = Action::Refuse;
        out.reason_code = reason::MODEL_NOT_REWRITABLE.into();
        out.escalation = None;
    }
    for r in triggered.iter().filter_map(|&i| policy.rules.get(i)) {
        out.triggered_rules.push(r.id.clone());
        if !out.triggered_categories.contains(&r.category) {
            out.triggered_categories.push(r.category.clone());
        }
    }
    count_detections(&hits, &triggered_mask, &mut out.detections);

    // Plan the edits whatever the rollout, so shadow records say what would have changed.
    let mut plan = plan_edits(policy, &triggered_mask, &hits);
    for (source, n) in &plan.redacted {
        *out.redactions.entry(source.name().to_string()).or_insert(0) += n;
    }

    if policy.include_content {
        out.content = Some(redacted_content(segments, &hits));
    }

    if !rollout.enforced {
        out.rewrites = would_rewrite(policy, &triggered, &out, &value, &plan);
        return out;
    }
    out.verdict = match deciding {
        _ if model_stuck => Verdict::Respond {
            status: 403,
            message: "The model is named by the request path and the AI usage policy cannot \
                      change it. Use an approved model."
                .into(),
            held: false,
        },
        Some(rule) if rule.action == Action::Refuse => respond(&rule.refuse, false),
        Some(rule)
            if rule.action == Action::Escalate && rule.escalate_mode == EscalateMode::Hold =>
        {
            respond(&rule.hold, true)
        }
        _ => {
            let flagged = out.decision == Action::Escalate;
            let changes: Vec<(llm::PathId, String)> = plan
                .text_changes(segments)
                .into_iter()
                .filter_map(|(si, t)| segments.get(si).map(|s| (s.path, t)))
                .collect();
            // The texts borrow the body; their path tree does not.
            let paths = texts.paths;
            let mut changed = false;
            for (path, text) in changes {
                changed |= paths.replace(&mut value, path, text);
            }
            if changed && phase == Phase::Response {
                // Token log-probabilities spell the original output out.
                llm::blank_logprobs(&mut value);
            }
            out.rewrites = apply_rewrites(policy, &triggered, &out, &mut value);
            if plan.replaces_text() {
                out.rewrites.push("replace_text");
            }
            let body = if changed || !out.rewrites.is_empty() {
                serde_json::to_vec(&value).ok()
            } else {
                None
            };
            Verdict::Forward { body, flagged }
        }
    };
    out
}

/// The rule whose action decides among the triggered ones: the most severe, the first in
/// policy order among equals.
fn deciding_rule<'p>(policy: &'p Policy, triggered: &[usize]) -> Option<&'p Rule> {
    triggered.iter().filter_map(|&i| policy.rules.get(i)).fold(
        None::<&Rule>,
        |best, r| match best {
            Some(b) if b.action >= r.action => Some(b),
            _ => Some(r),
        },
    )
}

fn respond(reply: &Reply, held: bool) -> Verdict {
    Verdict::Respond {
        status: reply.status,
        message: reply.message.clone(),
        held,
    }
}

/// The outcome for a body the host decided not to inspect (too large, compressed, not JSON,
/// no body at all). `refuse` carries the local reply when the filter refuses such bodies;
/// rollout still applies, so shadow mode never refuses.
pub fn uninspected(
    rollout: &RolloutDecision,
    phase: Phase,
    body_bytes: usize,
    reason_code: &str,
    detail: &str,
    refuse: Option<(u16, &str)>,
) -> PhaseOutcome {
    let mut out = PhaseOutcome::new(phase, body_bytes);
    out.reason_code = reason_code.into();
    out.error = Some(detail.into());
    if let Some((status, message)) = refuse {
        out.decision = Action::Refuse;
        if rollout.enforced {
            out.verdict = Verdict::Respond {
                status,
                message: message.into(),
                held: false,
            };
        }
    }
    out
}

/// A body that cannot be inspected gets the policy's `on_error` decision.
fn on_error(
    policy: &Policy,
    rollout: &RolloutDecision,
    mut out: PhaseOutcome,
    code: &str,
    detail: String,
) -> PhaseOutcome {
    out.reason_code = code.into();
    out.error = Some(detail);
    if policy.on_error == OnError::Refuse {
        out.decision = Action::Refuse;
        if rollout.enforced {
            out.verdict = Verdict::Respond {
                status: 400,
                message: "The request body could not be inspected by the AI usage policy.".into(),
                held: false,
            };
        }
    }
    out
}

/// Runs the detectors, keywords and patterns the rules need over every segment.
fn find_hits(policy: &Policy, phase: Phase, segments: &[llm::Segment<'_>]) -> Vec<Hit> {
    find_hits_scored(policy, phase, segments, &mut None)
}

/// [`find_hits`], and the highest prompt-injection score into `score` (when it ran).
fn find_hits_scored(
    policy: &Policy,
    phase: Phase,
    segments: &[llm::Segment<'_>],
    score: &mut Option<f64>,
) -> Vec<Hit> {
    let mut hits = Vec::new();
    let mut findings: Vec<Finding> = Vec::new();
    let mut keyword_hits = Vec::new();
    let mut pattern_hits = Vec::new();
    for (si, seg) in segments.iter().enumerate() {
        let enabled = policy.detectors_for(phase, seg.role);
        findings.clear();
        detect::scan(
            seg.text,
            enabled.without(DetectorId::PromptInjection),
            &mut findings,
        );
        // Prompt injection is scored once per text; each rule compares with its min_score.
        let injection = enabled
            .contains(DetectorId::PromptInjection)
            .then(|| detect::prompt_injection::assess(seg.text, &mut findings));
        if let Some(s) = injection {
            *score = Some(score.map_or(s, |best: f64| best.max(s)));
        }
        keyword_hits.clear();
        if !policy.keywords.is_empty() {
            policy.keywords.find(seg.text, &mut keyword_hits);
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
                    hits.push(Hit {
                        rule: ri,
                        segment: si,
                        start: k.start,
                        end: k.end,
                        source: Source::Keyword,
                    });
                }
            }
            for p in &rule.patterns {
                pattern_hits.clear();
                p.find(seg.text, &mut pattern_hits);
                for &(start, end) in &pattern_hits {
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
    }
    work::add(hits.len());
    hits
}

/// Which rules have at least one hit, by rule index (one pass over the hits).
fn rules_hit(policy: &Policy, hits: &[Hit]) -> Vec<bool> {
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
fn rule_mask(policy: &Policy, rules: &[usize]) -> Vec<bool> {
    let mut mask = vec![false; policy.rules.len()];
    for &i in rules {
        if let Some(slot) = mask.get_mut(i) {
            *slot = true;
        }
    }
    mask
}

fn in_mask(mask: &[bool], rule: usize) -> bool {
    mask.get(rule).copied().unwrap_or(false)
}

/// Stable sort that counts its comparisons as work. Hits come as a policy-bounded number of
/// sorted runs (per rule and source), which the stable sort merges in O(n log runs).
fn sort_counted<T, K: Ord>(items: &mut [T], key: impl Fn(&T) -> K) {
    items.sort_by(|a, b| {
        work::add(1);
        key(a).cmp(&key(b))
    });
}

/// Whether `rule` triggers: `content_hit` says whether any of its text matches was found.
fn rule_triggers(
    rule: &Rule,
    content_hit: bool,
    model: Option<&str>,
    requested_max_tokens: Option<u64>,
) -> bool {
    let content = !rule.has_content_match() || content_hit;
    let model_ok = rule.models.as_ref().is_none_or(|m| m.triggers(model));
    let tokens_ok = rule
        .max_tokens
        .is_none_or(|max| requested_max_tokens.is_some_and(|n| n > max));
    content && model_ok && tokens_ok
}

/// Counts distinct entities found by triggered rules (an entity two rules found counts once).
fn count_detections(hits: &[Hit], triggered: &[bool], counts: &mut BTreeMap<String, u32>) {
    let mut seen: Vec<(usize, usize, usize, Source)> = hits
        .iter()
        .filter(|h| in_mask(triggered, h.rule))
        .map(|h| (h.segment, h.start, h.end, h.source))
        .collect();
    sort_counted(&mut seen, |k| *k);
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

/// Text edits per segment, from triggered redact rules and `replace_with` rewrites.
struct EditPlan {
    /// (segment index, its edits), in segment order.
    per_segment: Vec<(usize, Vec<Edit>)>,
    redacted: BTreeMap<Source, u32>,
}

impl EditPlan {
    /// The new texts of the segments whose edits change them, by segment index.
    fn text_changes(&mut self, segments: &[llm::Segment<'_>]) -> Vec<(usize, String)> {
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
    fn take_segment(&mut self, si: usize) -> Vec<Edit> {
        self.per_segment
            .iter_mut()
            .find(|(s, _)| *s == si)
            .map(|(_, edits)| std::mem::take(edits))
            .unwrap_or_default()
    }

    fn replaces_text(&self) -> bool {
        self.per_segment
            .iter()
            .flat_map(|(_, edits)| edits)
            .any(|e| e.rank >= REPLACE_RANK)
    }
}

/// The body rewrites the triggered rules would apply, for records of unenforced requests.
fn would_rewrite(
    policy: &Policy,
    triggered: &[usize],
    out: &PhaseOutcome,
    value: &Value,
    plan: &EditPlan,
) -> Vec<&'static str> {
    let any_rewrite = triggered
        .iter()
        .filter_map(|&i| policy.rules.get(i))
        .any(|r| r.action == Action::Rewrite);
    if !any_rewrite {
        return Vec::new();
    }
    let mut scratch = value.clone();
    let mut names = apply_rewrites(policy, triggered, out, &mut scratch);
    if plan.replaces_text() {
        names.push("replace_text");
    }
    names
}

/// Redactions rank before replacements, so a span both redact and rewrite rules matched is
/// redacted.
const REPLACE_RANK: u32 = 1 << 20;

/// The edits of the triggered rules' hits. `hits` come grouped by segment, in segment order
/// (as [`find_hits`] gives them); each hit costs O(1) amortised, plus the merge of sorted runs
/// that de-duplicates the redaction count.
fn plan_edits(policy: &Policy, triggered: &[bool], hits: &[Hit]) -> EditPlan {
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

/// Applies request rewrites of triggered rules in policy order; returns what was done.
/// `set_model` is not done when the path names the model (see `MODEL_NOT_REWRITABLE`).
fn apply_rewrites(
    policy: &Policy,
    triggered: &[usize],
    out: &PhaseOutcome,
    value: &mut Value,
) -> Vec<&'static str> {
    let format = out.format;
    let mut done = Vec::new();
    let rules = triggered
        .iter()
        .filter_map(|&i| policy.rules.get(i))
        .filter(|r| r.action == Action::Rewrite);
    let mut model_set = out.model_in_path;
    for rule in rules {
        let rw = &rule.rewrite;
        if let Some(model) = &rw.set_model {
            if !model_set
                && llm::model(value) != Some(model.as_str())
                && llm::try_set_model(value, model)
            {
                done.push("set_model");
            }
            model_set = true;
        }
        if let Some(cap) = rw.cap_max_tokens {
            if llm::cap_max_tokens(format, value, cap) && !done.contains(&"cap_max_tokens") {
                done.push("cap_max_tokens");
            }
        }
        if let Some(text) = &rw.add_system_message {
            if llm::add_system_message(format, value, text) {
                done.push("add_system_message");
            }
        }
    }
    done
}

/// Texts for `include_content` records: every policy hit and every built-in PII or secret
/// detector redacted with placeholders, whatever the rules' actions; then truncated.
fn redacted_content(segments: &[llm::Segment<'_>], hits: &[Hit]) -> Vec<ContentItem> {
    let all = DetectorId::ALL
        .iter()
        .filter(|d| **d != DetectorId::PromptInjection)
        .fold(DetectorSet::EMPTY, |s, d| s.with(*d));
    let mut findings = Vec::new();
    // Hits come grouped by segment, in segment order: each segment takes the next run.
    let mut rest = hits;
    segments
        .iter()
        .enumerate()
        .map(|(si, seg)| {
            findings.clear();
            detect::scan(seg.text, all, &mut findings);
            let skip = rest.iter().take_while(|h| h.segment < si).count();
            let here = rest
                .iter()
                .skip(skip)
                .take_while(|h| h.segment == si)
                .count();
            let (mine, after) = rest.split_at((skip + here).min(rest.len()));
            rest = after;
            work::add(findings.len() + mine.len() + 1);
            let mut edits: Vec<Edit> = findings
                .iter()
                .map(|f| Edit {
                    start: f.start,
                    end: f.end,
                    rank: 0,
                    replacement: Replacement::Text(f.detector.placeholder().into()),
                })
                .chain(mine.iter().skip(skip).map(|h| Edit {
                    start: h.start,
                    end: h.end,
                    rank: 1,
                    replacement: Replacement::Text(h.source.placeholder().into()),
                }))
                .collect();
            let mut text = redact::apply(seg.text, &mut edits);
            let truncated = text.len() > CONTENT_MAX_BYTES;
            if truncated {
                let mut cut = CONTENT_MAX_BYTES;
                while cut > 0 && !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
            }
            ContentItem {
                role: seg.role.name(),
                text,
                truncated,
            }
        })
        .collect()
}
