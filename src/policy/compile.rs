//! Validation and compilation of a [`PolicyDoc`] into an immutable [`Policy`].
//!
//! Everything that can be wrong with a policy is found here, once, at configure time, with
//! an error that names the rule and the field; evaluation never re-checks.

use std::fmt;

use super::document::*;
use crate::config::read::{float_text, Path};
use crate::detect::custom::CustomPattern;
use crate::detect::keywords::{KeywordSet, KeywordSetBuilder};
use crate::detect::prefilter::Prefilter;
use crate::detect::{DetectorId, DetectorSet};
use crate::llm::Role;

/// A policy error: where (`rules[2] "block-secrets".match.detectors[0]`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub at: String,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.at, self.message)
        }
    }
}

impl std::error::Error for PolicyError {}

fn err<T>(at: impl Into<String>, message: impl Into<String>) -> Result<T, PolicyError> {
    Err(PolicyError {
        at: at.into(),
        message: message.into(),
    })
}

/// Roles a rule inspects, as a bit set over [`Role`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleSet(u8);

impl RoleSet {
    pub const ALL: RoleSet = RoleSet(0xff);

    pub fn contains(self, role: Role) -> bool {
        self.0 & (1 << role as u8) != 0
    }

    fn with(self, role: Role) -> RoleSet {
        RoleSet(self.0 | (1 << role as u8))
    }
}

/// A model name pattern: exact, or a prefix when written with a trailing `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelPattern {
    Exact(String),
    Prefix(String),
}

impl ModelPattern {
    fn parse(s: &str) -> ModelPattern {
        match s.strip_suffix('*') {
            Some(prefix) => ModelPattern::Prefix(prefix.to_string()),
            None => ModelPattern::Exact(s.to_string()),
        }
    }

    pub fn matches(&self, model: &str) -> bool {
        match self {
            ModelPattern::Exact(m) => m == model,
            ModelPattern::Prefix(p) => model.starts_with(p.as_str()),
        }
    }

    /// Like [`ModelPattern::matches`], in any ASCII case: some upstreams (and Azure deployment
    /// routes) do not care about case, so a deny list must not either.
    pub fn matches_any_case(&self, model: &str) -> bool {
        match self {
            ModelPattern::Exact(m) => m.eq_ignore_ascii_case(model),
            ModelPattern::Prefix(p) => model
                .get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p)),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ModelMatch {
    pub allow: Vec<ModelPattern>,
    pub deny: Vec<ModelPattern>,
}

impl ModelMatch {
    /// Whether a request for `model` triggers the rule: denied (in any case), or not on a
    /// non-empty allow list (exactly).
    pub fn triggers(&self, model: Option<&str>) -> bool {
        let Some(model) = model else {
            return !self.allow.is_empty();
        };
        self.deny.iter().any(|p| p.matches_any_case(model))
            || (!self.allow.is_empty() && !self.allow.iter().any(|p| p.matches(model)))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrite {
    pub set_model: Option<String>,
    pub cap_max_tokens: Option<u64>,
    pub add_system_message: Option<String>,
    pub replace_with: Option<String>,
}

/// The local reply for refuse and escalate-hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub message: String,
}

pub const DEFAULT_REFUSE_STATUS: u16 = 403;
pub const DEFAULT_REFUSE_MESSAGE: &str =
    "This request was blocked by the organisation's AI usage policy.";
pub const DEFAULT_HOLD_STATUS: u16 = 202;
pub const DEFAULT_HOLD_MESSAGE: &str =
    "This request was held for review under the organisation's AI usage policy.";

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub category: String,
    pub action: Action,
    pub reason_code: String,
    pub on_request: bool,
    pub on_response: bool,
    pub roles: RoleSet,
    pub detectors: DetectorSet,
    /// The prompt-injection score a text needs (`match.min_score`, default 0.5).
    pub min_score: f64,
    pub has_keywords: bool,
    pub patterns: Vec<CustomPattern>,
    pub models: Option<ModelMatch>,
    pub max_tokens: Option<u64>,
    pub redact_style: RedactStyle,
    /// How a `pseudonym` redaction tokenises and restores.
    pub pseudonym: crate::engine::pseudonym::PseudonymOptions,
    pub rewrite: Rewrite,
    pub refuse: Reply,
    pub escalate_mode: EscalateMode,
    pub hold: Reply,
}

impl Rule {
    /// Whether the rule looks at text (detectors, keywords or patterns).
    pub fn has_content_match(&self) -> bool {
        !self.detectors.is_empty() || self.has_keywords || !self.patterns.is_empty()
    }

    pub fn applies_to(&self, phase: crate::llm::Phase) -> bool {
        match phase {
            crate::llm::Phase::Request => self.on_request,
            crate::llm::Phase::Response => self.on_response,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rollout {
    pub mode: RolloutMode,
    /// Canary share in basis points (0–10000).
    pub canary_basis_points: u32,
    pub canary_key: CanaryKey,
}

/// A validated, compiled policy. Immutable; shared by every evaluation.
#[derive(Debug, Clone)]
pub struct Policy {
    pub id: String,
    pub version: String,
    /// `<id>@<version>`, as records carry it.
    pub policy_id: String,
    pub description: String,
    pub rollout: Rollout,
    pub on_error: OnError,
    pub on_unknown_format: OnUnknownFormat,
    pub include_content: bool,
    pub rules: Vec<Rule>,
    /// Every keyword term of every rule; hits are tagged with the rule index.
    pub keywords: KeywordSet,
    /// The keyword terms and the secret prefixes in one automaton: one pass over each text.
    pub prefilter: Prefilter,
    /// Non-fatal remarks for `check` (e.g. a pattern without literal prefilter).
    pub warnings: Vec<String>,
    /// Union of the detectors of the rules inspecting each role, per phase (request,
    /// response), indexed by `Role as usize`: computed once, read for every text.
    role_detectors: [[DetectorSet; 6]; 2],
}

impl Policy {
    /// Parses and compiles a policy document from JSON text: parsed once (a key named twice
    /// is refused), errors with the line and column of the value at fault.
    pub fn from_json(bytes: &[u8]) -> Result<Policy, PolicyError> {
        let value = crate::config::parse_strict(bytes).map_err(PolicyError::from)?;
        let doc = PolicyDoc::read(value, Path::Root(""))
            .map_err(|e| PolicyError::from(crate::config::located(bytes, e)))?;
        Policy::compile(doc)
    }

    /// Parses a policy from an already-parsed JSON value (e.g. embedded in a plugin config).
    pub fn from_value(value: serde_json::Value) -> Result<Policy, PolicyError> {
        let doc = PolicyDoc::read(value, Path::Root("")).map_err(|e| PolicyError {
            at: e.at(),
            message: e.message,
        })?;
        Policy::compile(doc)
    }

    pub fn compile(doc: PolicyDoc) -> Result<Policy, PolicyError> {
        check_name("id", &doc.id)?;
        let version = doc.version.as_string();
        check_name("version", &version)?;
        let rollout = compile_rollout(&doc.rollout)?;
        let mut keywords = KeywordSet::builder();
        let mut warnings = Vec::new();
        let mut rules: Vec<Rule> = Vec::with_capacity(doc.rules.len());
        for (i, raw) in doc.rules.into_iter().enumerate() {
            let at = match raw.get("id").and_then(|v| v.as_str()) {
                Some(id) => format!("rules[{i}] \"{id}\""),
                None => format!("rules[{i}]"),
            };
            let rule_doc = RuleDoc::read(raw, Path::Root(&at)).map_err(|e| PolicyError {
                at: e.at(),
                message: e.message,
            })?;
            if rules.iter().any(|r| r.id == rule_doc.id) {
                return err(format!("{at}.id"), "duplicate rule id");
            }
            let tag = u32::try_from(i).map_err(|_| PolicyError {
                at: at.clone(),
                message: "too many rules".into(),
            })?;
            let rule = compile_rule(&at, rule_doc, tag, &mut keywords, &mut warnings)?;
            rules.push(rule);
        }
        let prefilter = Prefilter::build(&keywords.terms());
        if !prefilter.is_ready() {
            warnings.push(
                "rules: keyword terms and secret prefixes too large for one prefilter automaton \
                 (16 MiB): each detector family scans the text itself"
                    .into(),
            );
        }
        let keywords = keywords.build().map_err(|m| PolicyError {
            at: "rules".into(),
            message: m,
        })?;
        let role_detectors =
            [crate::llm::Phase::Request, crate::llm::Phase::Response].map(|phase| {
                let mut sets = [DetectorSet::EMPTY; 6];
                for (slot, role) in sets.iter_mut().zip(Role::ALL) {
                    *slot = rules
                        .iter()
                        .filter(|r| r.applies_to(phase) && r.roles.contains(*role))
                        .fold(DetectorSet::EMPTY, |s, r| s.union(r.detectors));
                }
                sets
            });
        Ok(Policy {
            role_detectors,
            policy_id: format!("{}@{}", doc.id, version),
            id: doc.id,
            version,
            description: doc.description,
            rollout,
            on_error: doc.on_error,
            on_unknown_format: doc.on_unknown_format,
            include_content: doc.include_content,
            rules,
            keywords,
            prefilter,
            warnings,
        })
    }

    /// Union of the detectors of the rules that inspect `role` in `phase`.
    pub fn detectors_for(&self, phase: crate::llm::Phase, role: Role) -> DetectorSet {
        let by_phase = match phase {
            crate::llm::Phase::Request => &self.role_detectors[0],
            crate::llm::Phase::Response => &self.role_detectors[1],
        };
        by_phase.get(role as usize).copied().unwrap_or_default()
    }
}

fn check_name(field: &str, value: &str) -> Result<(), PolicyError> {
    if value.is_empty() {
        return err(field, "must not be empty");
    }
    if value.len() > 128
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return err(
            field,
            format!("\"{value}\" must be 1-128 characters of letters, digits, '.', '_' or '-'"),
        );
    }
    Ok(())
}

fn compile_rollout(doc: &RolloutDoc) -> Result<Rollout, PolicyError> {
    let canary_basis_points = match (doc.mode, doc.canary_percent) {
        (RolloutMode::Canary, None) => {
            return err("rollout.canary_percent", "required when mode is \"canary\"")
        }
        (RolloutMode::Canary, Some(p)) => {
            if !(0.0..=100.0).contains(&p) || p.is_nan() {
                return err(
                    "rollout.canary_percent",
                    format!("{} is not between 0 and 100", float_text(p)),
                );
            }
            // Two decimals are honoured: 12.34% → 1234 basis points.
            (p * 100.0).round() as u32
        }
        (_, Some(_)) => {
            return err(
                "rollout.canary_percent",
                "only valid when mode is \"canary\"",
            )
        }
        (_, None) => 0,
    };
    Ok(Rollout {
        mode: doc.mode,
        canary_basis_points,
        canary_key: doc.canary_key,
    })
}

fn check_category(at: &str, category: &str) -> Result<(), PolicyError> {
    let ok = !category.is_empty()
        && category.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
    if ok {
        Ok(())
    } else {
        err(
            format!("{at}.category"),
            format!("\"{category}\" must be dotted lowercase words, e.g. \"pii.credit_card\""),
        )
    }
}

fn check_reason_code(at: &str, code: &str) -> Result<(), PolicyError> {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        err(
            format!("{at}.reason_code"),
            format!("\"{code}\" must be 1-64 characters of A-Z, 0-9 and '_', e.g. \"PII_EMAIL\""),
        )
    }
}

fn check_status(at: String, status: u16) -> Result<(), PolicyError> {
    if (200..=599).contains(&status) {
        Ok(())
    } else {
        err(
            at,
            format!("{status} is not an HTTP status between 200 and 599"),
        )
    }
}

fn compile_rule(
    at: &str,
    doc: RuleDoc,
    tag: u32,
    keywords: &mut KeywordSetBuilder,
    warnings: &mut Vec<String>,
) -> Result<Rule, PolicyError> {
    if doc.id.is_empty() {
        return err(format!("{at}.id"), "must not be empty");
    }
    check_category(at, &doc.category)?;
    check_reason_code(at, &doc.reason_code)?;
    let m = &doc.matcher;

    let mut detectors = DetectorSet::EMPTY;
    for (j, name) in m.detectors.iter().enumerate() {
        let Some(d) = DetectorId::from_name(name) else {
            let known: Vec<&str> = DetectorId::ALL.iter().map(|d| d.name()).collect();
            return err(
                format!("{at}.match.detectors[{j}]"),
                format!("unknown detector \"{name}\" (known: {})", known.join(", ")),
            );
        };
        detectors = detectors.with(d);
    }

    let min_score = match m.min_score {
        None => crate::detect::prompt_injection::DEFAULT_MIN_SCORE,
        Some(_) if !detectors.contains(DetectorId::PromptInjection) => {
            return err(
                format!("{at}.match.min_score"),
                "applies to the prompt_injection detector only; add it to detectors",
            )
        }
        Some(s) if !(0.0..=1.0).contains(&s) => {
            return err(
                format!("{at}.match.min_score"),
                format!("{} is not between 0 and 1", float_text(s)),
            )
        }
        Some(s) => s,
    };

    let mut has_keywords = false;
    if let Some(k) = &m.keywords {
        if k.terms.is_empty() {
            return err(format!("{at}.match.keywords.terms"), "must not be empty");
        }
        for (j, term) in k.terms.iter().enumerate() {
            if term.trim().is_empty() {
                return err(
                    format!("{at}.match.keywords.terms[{j}]"),
                    "must not be blank",
                );
            }
            keywords.add(term, k.case_sensitive, k.whole_word, tag);
        }
        has_keywords = true;
    }

    let mut patterns = Vec::with_capacity(m.patterns.len());
    for (j, p) in m.patterns.iter().enumerate() {
        let compiled =
            CustomPattern::new(&p.regex, &p.literals, p.max_len).map_err(|e| PolicyError {
                at: format!("{at}.match.patterns[{j}]"),
                message: e,
            })?;
        if compiled.is_unfiltered() {
            warnings.push(format!(
                "{at}.match.patterns[{j}]: no \"literals\": the regex scans every text in full (slow under wasm)"
            ));
        }
        patterns.push(compiled);
    }

    let models = match &m.models {
        Some(md) => {
            if md.allow.is_empty() && md.deny.is_empty() {
                return err(format!("{at}.match.models"), "needs \"allow\" or \"deny\"");
            }
            Some(ModelMatch {
                allow: md.allow.iter().map(|s| ModelPattern::parse(s)).collect(),
                deny: md.deny.iter().map(|s| ModelPattern::parse(s)).collect(),
            })
        }
        None => None,
    };
    let max_tokens = m.max_tokens.as_ref().map(|t| t.max);

    let mut roles = if m.roles.is_empty() {
        RoleSet::ALL
    } else {
        RoleSet(0)
    };
    for (j, name) in m.roles.iter().enumerate() {
        let Some(role) = Role::from_name(name) else {
            let known: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
            return err(
                format!("{at}.match.roles[{j}]"),
                format!("unknown role \"{name}\" (known: {})", known.join(", ")),
            );
        };
        roles = roles.with(role);
    }

    let (on_request, on_response) = match m.phase {
        PhaseDoc::Request => (true, false),
        PhaseDoc::Response => (false, true),
        PhaseDoc::Both => (true, true),
    };
    let content = !detectors.is_empty() || has_keywords || !patterns.is_empty();
    // Clients write role labels: a request rule that reads `user` text but not the labels the
    // same text could carry instead is passed by relabelling it.
    if on_request && content && roles.contains(Role::User) {
        let unseen: Vec<&str> = [Role::System, Role::Developer, Role::Assistant, Role::Other]
            .into_iter()
            .filter(|r| !roles.contains(*r))
            .map(Role::name)
            .collect();
        if !unseen.is_empty() {
            warnings.push(format!(
                "{at}.match.roles: reads user text but not {}: a client can relabel its message to get it past this rule",
                unseen.join(", ")
            ));
        }
    }
    if !content && models.is_none() && max_tokens.is_none() {
        return err(
            format!("{at}.match"),
            "needs at least one of detectors, keywords, patterns, models, max_tokens",
        );
    }
    if on_response && (models.is_some() || max_tokens.is_some()) {
        return err(
            format!("{at}.match.phase"),
            "models and max_tokens conditions apply to requests only; use phase \"request\"",
        );
    }

    // Action parameters must belong to the action.
    let stray = [
        ("redact", doc.redact.is_some(), Action::Redact),
        ("rewrite", doc.rewrite.is_some(), Action::Rewrite),
        ("refuse", doc.refuse.is_some(), Action::Refuse),
        ("escalate", doc.escalate.is_some(), Action::Escalate),
    ];
    for (field, present, action) in stray {
        if present && doc.action != action {
            return err(
                format!("{at}.{field}"),
                format!("only valid with \"action\": \"{field}\""),
            );
        }
    }

    if let Some(r) = &doc.redact {
        if r.style != RedactStyle::Pseudonym && (r.token.is_some() || r.restore.is_some()) {
            let field = if r.token.is_some() {
                "token"
            } else {
                "restore"
            };
            return err(
                format!("{at}.redact.{field}"),
                "only valid with \"style\": \"pseudonym\"",
            );
        }
    }

    if doc.action == Action::Redact && !content {
        return err(
            format!("{at}.action"),
            "redact needs a text match (detectors, keywords or patterns)",
        );
    }

    let rewrite = match (&doc.rewrite, doc.action) {
        (Some(r), _) => Rewrite {
            set_model: r.set_model.clone(),
            cap_max_tokens: r.cap_max_tokens,
            add_system_message: r.add_system_message.clone(),
            replace_with: r.replace_with.clone(),
        },
        (None, Action::Rewrite) => {
            return err(
                format!("{at}.rewrite"),
                "required with \"action\": \"rewrite\" (set_model, cap_max_tokens, add_system_message or replace_with)",
            )
        }
        (None, _) => Rewrite::default(),
    };
    if doc.action == Action::Rewrite {
        if rewrite == Rewrite::default() {
            return err(
                format!("{at}.rewrite"),
                "needs at least one of set_model, cap_max_tokens, add_system_message, replace_with",
            );
        }
        if rewrite.replace_with.is_some() && !content {
            return err(
                format!("{at}.rewrite.replace_with"),
                "needs a text match (detectors, keywords or patterns)",
            );
        }
        if matches!(&rewrite.set_model, Some(s) if s.trim().is_empty()) {
            return err(format!("{at}.rewrite.set_model"), "must not be empty");
        }
        if rewrite.cap_max_tokens == Some(0) {
            return err(format!("{at}.rewrite.cap_max_tokens"), "must be at least 1");
        }
        let request_only = rewrite.set_model.is_some()
            || rewrite.cap_max_tokens.is_some()
            || rewrite.add_system_message.is_some();
        if request_only && on_response {
            return err(
                format!("{at}.rewrite"),
                "set_model, cap_max_tokens and add_system_message rewrite requests only; use phase \"request\"",
            );
        }
    }

    let refuse = match &doc.refuse {
        Some(r) => {
            let status = r.status.unwrap_or(DEFAULT_REFUSE_STATUS);
            check_status(format!("{at}.refuse.status"), status)?;
            Reply {
                status,
                message: r
                    .message
                    .clone()
                    .unwrap_or_else(|| DEFAULT_REFUSE_MESSAGE.into()),
            }
        }
        None => Reply {
            status: DEFAULT_REFUSE_STATUS,
            message: DEFAULT_REFUSE_MESSAGE.into(),
        },
    };
    let (escalate_mode, hold) = match &doc.escalate {
        Some(e) => {
            let status = e.status.unwrap_or(DEFAULT_HOLD_STATUS);
            check_status(format!("{at}.escalate.status"), status)?;
            if e.mode == EscalateMode::Flag && (e.status.is_some() || e.message.is_some()) {
                return err(
                    format!("{at}.escalate"),
                    "status and message apply to mode \"hold\" only",
                );
            }
            (
                e.mode,
                Reply {
                    status,
                    message: e
                        .message
                        .clone()
                        .unwrap_or_else(|| DEFAULT_HOLD_MESSAGE.into()),
                },
            )
        }
        None => (
            EscalateMode::Hold,
            Reply {
                status: DEFAULT_HOLD_STATUS,
                message: DEFAULT_HOLD_MESSAGE.into(),
            },
        ),
    };

    Ok(Rule {
        id: doc.id,
        category: doc.category,
        action: doc.action,
        reason_code: doc.reason_code,
        on_request,
        on_response,
        roles,
        detectors,
        min_score,
        has_keywords,
        patterns,
        models,
        max_tokens,
        redact_style: doc.redact.as_ref().map(|r| r.style).unwrap_or_default(),
        pseudonym: crate::engine::pseudonym::PseudonymOptions {
            token: doc
                .redact
                .as_ref()
                .and_then(|r| r.token)
                .unwrap_or_default(),
            restore: doc.redact.as_ref().and_then(|r| r.restore).unwrap_or(true),
        },
        rewrite,
        refuse,
        escalate_mode,
        hold,
    })
}
