//! The policy document as written in `policies/*.json`: plain serde types that reject unknown
//! fields. Nothing here is evaluated; [`super::compile`] validates and compiles it.

use serde::Deserialize;

/// A policy file. `policy_id` in records is `<id>@<version>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    pub id: String,
    pub version: Version,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub rollout: RolloutDoc,
    /// What to do with a body that cannot be parsed (malformed JSON, not UTF-8, empty).
    #[serde(default)]
    pub on_error: OnError,
    /// What to do with JSON of a shape no known LLM API uses.
    #[serde(default)]
    pub on_unknown_format: OnUnknownFormat,
    /// Opt-in: records carry the inspected text, always redacted by every built-in detector.
    #[serde(default)]
    pub include_content: bool,
    /// Rules are kept as raw JSON here so that their errors can name the rule.
    pub rules: Vec<serde_json::Value>,
}

/// Policy versions may be written as strings (`"2024-06-01"`) or integers (`3`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Version {
    Text(String),
    Number(u64),
}

impl Version {
    pub fn as_string(&self) -> String {
        match self {
            Version::Text(s) => s.clone(),
            Version::Number(n) => n.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutMode {
    Shadow,
    Canary,
    #[default]
    Enforce,
}

impl RolloutMode {
    pub fn name(self) -> &'static str {
        match self {
            RolloutMode::Shadow => "shadow",
            RolloutMode::Canary => "canary",
            RolloutMode::Enforce => "enforce",
        }
    }
}

/// Which request attribute places a request in a canary bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryKey {
    #[default]
    User,
    Project,
    RequestId,
}

impl CanaryKey {
    pub fn name(self) -> &'static str {
        match self {
            CanaryKey::User => "user",
            CanaryKey::Project => "project",
            CanaryKey::RequestId => "request_id",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutDoc {
    #[serde(default)]
    pub mode: RolloutMode,
    /// Share of traffic enforced in canary mode, 0–100 (two decimals are honoured).
    pub canary_percent: Option<f64>,
    #[serde(default)]
    pub canary_key: CanaryKey,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    #[default]
    Refuse,
    Allow,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnknownFormat {
    /// Inspect every string value of the body with the request-phase rules.
    #[default]
    Inspect,
    /// Allow without inspection, reason_code `UNSUPPORTED_FORMAT`.
    Allow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Allow,
    Rewrite,
    Redact,
    Escalate,
    Refuse,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    pub id: String,
    #[serde(default)]
    pub description: String,
    pub category: String,
    #[serde(rename = "match")]
    pub matcher: MatchDoc,
    pub action: Action,
    pub reason_code: String,
    pub redact: Option<RedactDoc>,
    pub rewrite: Option<RewriteDoc>,
    pub refuse: Option<RefuseDoc>,
    pub escalate: Option<EscalateDoc>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseDoc {
    #[default]
    Request,
    Response,
    Both,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchDoc {
    #[serde(default)]
    pub detectors: Vec<String>,
    pub keywords: Option<KeywordsDoc>,
    #[serde(default)]
    pub patterns: Vec<PatternDoc>,
    pub models: Option<ModelsDoc>,
    pub max_tokens: Option<MaxTokensDoc>,
    /// Roles whose text is inspected; empty means every role.
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub phase: PhaseDoc,
    /// `prompt_injection` only: the score (0–1) a text needs for the rule to match.
    pub min_score: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordsDoc {
    pub terms: Vec<String>,
    #[serde(default)]
    pub case_sensitive: bool,
    /// Only match terms not glued to letters or digits on either side.
    #[serde(default = "yes")]
    pub whole_word: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternDoc {
    /// A regex-lite pattern.
    pub regex: String,
    /// Literals every match contains; the regex then runs only on windows around them.
    #[serde(default)]
    pub literals: Vec<String>,
    /// Longest match expected, in bytes: the window radius around a literal.
    pub max_len: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsDoc {
    /// The rule matches when the model is not in this list (`*` suffix = prefix match).
    #[serde(default)]
    pub allow: Vec<String>,
    /// The rule matches when the model is in this list.
    #[serde(default)]
    pub deny: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxTokensDoc {
    /// The rule matches when the request asks for more output tokens than this.
    pub max: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactStyle {
    /// `jane@example.com` → `****************`
    Mask,
    /// `jane@example.com` → `[EMAIL]`
    #[default]
    Placeholder,
    /// `4111 1111 1111 1111` → `**** **** **** 1111`
    #[serde(rename = "keep_last_4")]
    KeepLast4,
    /// `jane@example.com` → `[EMAIL_1]`, the same token for the same value everywhere in the
    /// request, given back in the response (`engine::pseudonym`).
    Pseudonym,
}

/// The shape of a pseudonym's token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PseudonymToken {
    /// `[EMAIL_1]`
    #[default]
    Placeholder,
    /// A value of the same shape: `user1@example.invalid`, `0000 0000 0000 0001`.
    Fake,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactDoc {
    #[serde(default)]
    pub style: RedactStyle,
    /// `pseudonym` only: the token's shape.
    pub token: Option<PseudonymToken>,
    /// `pseudonym` only: give the value back in the response (default) or keep the token.
    pub restore: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteDoc {
    pub set_model: Option<String>,
    pub cap_max_tokens: Option<u64>,
    pub add_system_message: Option<String>,
    /// Replaces each matched text with this string.
    pub replace_with: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefuseDoc {
    pub status: Option<u16>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalateMode {
    /// Do not forward; answer "held for review".
    #[default]
    Hold,
    /// Forward (with any redactions) and flag the request and its record.
    Flag,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalateDoc {
    #[serde(default)]
    pub mode: EscalateMode,
    pub status: Option<u16>,
    pub message: Option<String>,
}

impl Action {
    /// Name used in records; the derived order is severity (allow < … < refuse).
    pub fn name(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Rewrite => "rewrite",
            Action::Redact => "redact",
            Action::Escalate => "escalate",
            Action::Refuse => "refuse",
        }
    }
}
