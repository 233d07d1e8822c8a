//! Evaluation of one exchange: parse a body, find what each rule matches, decide, and
//! produce what the traffic gets (forward as is, forward changed, or answer locally).
//!
//! The filter and the CLI call [`rollout`] once per request, then [`evaluate`] for the
//! request body and, when there is one, the response body; [`crate::audit::AuditRecord`]
//! turns the outcomes into the record.

mod decide;
mod edits;
mod hits;
pub mod holdback;
#[cfg(test)]
mod linearity_tests;
#[cfg(test)]
mod measure_tests;
pub mod pseudonym;
pub mod redact;
pub mod reply;
mod siphash;
pub mod stream;
pub mod text_cache;
#[cfg(test)]
mod text_cache_tests;
mod work;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::detect::{self, DetectorId, DetectorSet};
use crate::llm::{self, ApiFormat, Phase, Usage};
use crate::policy::document::{EscalateMode, OnError, OnUnknownFormat};
use crate::policy::rollout::{self, BucketKeys, RolloutDecision};
use crate::policy::{Action, Policy};
use decide::{decide, rule_triggers};
use edits::{plan_edits, EditPlan, Pseudo, RESTORE_RANK};
use hits::{count_detections, find_hits_scored, rule_mask, rules_hit, Hit};
use pseudonym::{PseudonymCounts, Vault};
use redact::{Edit, Replacement};
pub use reply::Refusal;
pub use siphash::Key as CacheKey;
use text_cache::Cached;

/// What an evaluation does with the exchange's pseudonym vault.
#[derive(Debug)]
pub enum VaultUse<'v> {
    None,
    /// A request: `pseudonym` rules put their values in it and forward tokens.
    Fill(&'v mut Vault),
    /// A response: its tokens are given back as their values.
    Restore(&'v Vault),
}

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
    Respond(Refusal),
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
    /// Values pseudonymised (request) and restored (response), by detector.
    pub pseudonyms: PseudonymCounts,
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
    /// Texts whose result came from the text cache (not in the record: the same outcome).
    pub cached_texts: u32,
}

impl PhaseOutcome {
    pub(crate) fn new(phase: Phase, body_bytes: usize) -> PhaseOutcome {
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
            pseudonyms: PseudonymCounts::default(),
            rewrites: Vec::new(),
            escalation: None,
            usage: None,
            content: None,
            error: None,
            text_bytes: 0,
            usage_estimated: false,
            stream_summary: None,
            injection_score: None,
            cached_texts: 0,
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
    evaluate_with_vault(policy, info, rollout, phase, body, VaultUse::None)
}

/// [`evaluate_parsed`] with the exchange's pseudonym vault: a request fills it, a response
/// restores from it.
pub fn evaluate_with_vault(
    policy: &Policy,
    info: &RequestInfo<'_>,
    rollout: &RolloutDecision,
    phase: Phase,
    body: ParsedBody,
    vault: VaultUse<'_>,
) -> PhaseOutcome {
    evaluate_cached(policy, info, rollout, phase, body, vault, None)
}

/// [`evaluate_with_vault`], with the texts this cache has judged in this scope taken from it
/// (the same outcome, bit for bit: [`text_cache`]).
pub fn evaluate_cached(
    policy: &Policy,
    info: &RequestInfo<'_>,
    rollout: &RolloutDecision,
    phase: Phase,
    body: ParsedBody,
    vault: VaultUse<'_>,
    cache: Option<Cached<'_>>,
) -> PhaseOutcome {
    let out = PhaseOutcome::new(phase, body.len);
    match body.json {
        Ok(value) => {
            let texts = if reads_texts(policy, phase, &vault) {
                TextWork::Judged(cache)
            } else {
                TextWork::Counted
            };
            evaluate_json(policy, info, rollout, out, value, vault, texts)
        }
        Err((code, detail)) => on_error(policy, rollout, out, code, detail),
    }
}

/// What [`evaluate_json`] does with the body's texts.
enum TextWork<'c> {
    /// Nothing reads them ([`reads_texts`]): only their number and bytes are recorded.
    Counted,
    /// Judged, through the text cache when there is one.
    Judged(Option<Cached<'c>>),
}

fn evaluate_json(
    policy: &Policy,
    info: &RequestInfo<'_>,
    rollout: &RolloutDecision,
    mut out: PhaseOutcome,
    mut value: Value,
    mut vault: VaultUse<'_>,
    texts: TextWork<'_>,
) -> PhaseOutcome {
    let (reads_texts, mut cache) = match texts {
        TextWork::Counted => (false, None),
        TextWork::Judged(cache) => (true, cache),
    };
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
    // Texts nothing reads (a response under a policy without response rules) are counted,
    // not collected: the record's `segments` and `text_bytes` and the caps are the same.
    let extracted = if reads_texts {
        llm::extract(out.format, phase, &value)
    } else {
        llm::measure(out.format, phase, &value)
    };
    let texts = match extracted {
        Ok(texts) => texts,
        Err(too) => {
            return on_error(policy, rollout, out, reason::BODY_TOO_COMPLEX, too.detail());
        }
    };
    out.inspected = true;
    let all = texts.all();
    let segments = &all;
    out.segments = texts.len() as u32;
    out.text_bytes = texts.text_bytes();

    let mut hits = find_hits_scored(
        policy,
        phase,
        segments,
        &mut out.injection_score,
        cache.as_mut(),
    );
    out.cached_texts = cache.map_or(0, |c| c.hits);
    // Restored tokens are the client's own values: no rule judges them (a fake token has the
    // shape a response rule looks for).
    let restored: Vec<Vec<pseudonym::Found>> = match &vault {
        VaultUse::Restore(v) if v.restores() => segments.iter().map(|s| v.find(s.text)).collect(),
        _ => Vec::new(),
    };
    if !restored.is_empty() {
        hits.retain(|h| {
            !restored
                .get(h.segment)
                .is_some_and(|fs| pseudonym::covers(fs, h.start, h.end))
        });
    }
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

    let decision = decide(policy, triggered.iter().copied());
    decision.record(&mut out);
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
    count_detections(&hits, &triggered_mask, &mut out.detections);

    // Plan the edits whatever the rollout, so shadow records say what would have changed.
    let mut plan = match &mut vault {
        VaultUse::Fill(v) if phase == Phase::Request => {
            let pseudo = Pseudo { vault: v, segments };
            let plan = plan_edits(policy, &triggered_mask, &hits, Some(pseudo));
            out.pseudonyms.merge(v.counts());
            plan
        }
        _ => plan_edits(policy, &triggered_mask, &hits, None),
    };
    for (si, found) in restored.into_iter().enumerate() {
        let edits = restore_edits(found, &mut out.pseudonyms);
        plan.add_edits(si, edits);
    }
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
    let refusal = if model_stuck {
        Some(Refusal {
            status: 403,
            message: "The model is named by the request path and the AI usage policy cannot \
                      change it. Use an approved model."
                .into(),
            reason_code: reason::MODEL_NOT_REWRITABLE.into(),
            held: false,
        })
    } else {
        decision.refusal()
    };
    out.verdict = match refusal {
        Some(refusal) => Verdict::Respond(refusal),
        None => {
            let flagged = out.decision == Action::Escalate;
            let mut changes: Vec<(llm::PathId, llm::Slot, String)> = plan
                .text_changes(segments)
                .into_iter()
                .filter_map(|(si, t)| segments.get(si).map(|s| (s.path, s.slot, t)))
                .collect();
            // Keys last, the latest first: a renamed key is never on the path of a text
            // written after it (a key comes before what is under it, and after its elders).
            let values = changes.iter().filter(|c| c.1 != llm::Slot::Key).count();
            crate::sort::sort_by(&mut changes, &|a, b| {
                (a.1 == llm::Slot::Key).cmp(&(b.1 == llm::Slot::Key))
            });
            if let Some(keys) = changes.get_mut(values..) {
                keys.reverse();
            }
            drop(all);
            // The texts borrow the body; their path tree does not.
            let paths = texts.paths;
            let mut changed = false;
            for (path, slot, text) in changes {
                changed |= paths.write(&mut value, path, slot, text);
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

/// Whether the evaluation of `phase` reads any text itself: a rule for the phase, content in
/// records, or tokens to restore. Otherwise no text can yield a hit, an edit or a restore, and
/// only their number and bytes are recorded.
fn reads_texts(policy: &Policy, phase: Phase, vault: &VaultUse<'_>) -> bool {
    policy.include_content
        || matches!(vault, VaultUse::Restore(v) if v.restores())
        || policy.rules.iter().any(|r| r.applies_to(phase))
}

/// The outcome for a body the host decided not to inspect (too large, compressed, not JSON,
/// no body at all), recorded with `reason_code`. `refuse` is the local reply when the filter
/// refuses such bodies (its reason code is `reason_code`); rollout still applies, so shadow
/// mode never refuses.
pub fn uninspected(
    rollout: &RolloutDecision,
    phase: Phase,
    body_bytes: usize,
    reason_code: &str,
    detail: &str,
    refuse: Option<Refusal>,
) -> PhaseOutcome {
    let mut out = PhaseOutcome::new(phase, body_bytes);
    out.reason_code = reason_code.into();
    out.error = Some(detail.into());
    if let Some(refusal) = refuse {
        out.decision = Action::Refuse;
        if rollout.enforced {
            out.verdict = Verdict::Respond(refusal);
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
            out.verdict = Verdict::Respond(Refusal {
                status: 400,
                message: "The request body could not be inspected by the AI usage policy.".into(),
                reason_code: code.into(),
                held: false,
            });
        }
    }
    out
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

/// The edits giving back the vault's tokens `found` in a text, counted as restored.
fn restore_edits(found: Vec<pseudonym::Found>, counts: &mut PseudonymCounts) -> Vec<Edit> {
    found
        .into_iter()
        .map(|f| {
            *counts
                .restored
                .entry(f.source.name().to_string())
                .or_insert(0) += 1;
            Edit {
                start: f.start,
                end: f.end,
                rank: RESTORE_RANK,
                replacement: Replacement::Text(f.replacement),
            }
        })
        .collect()
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
            hits::scan_decoded(&detect::decode::decode(seg.text), all, &mut findings);
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
                    replacement: Replacement::Static(f.detector.placeholder()),
                })
                .chain(mine.iter().skip(skip).map(|h| Edit {
                    start: h.start,
                    end: h.end,
                    rank: 1,
                    replacement: Replacement::Static(h.source.placeholder()),
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
