//! The policy document as written in `policies/*.json`: plain types read by hand from a
//! parsed `Value` (`config::read`: serde's messages, the path of the value at fault), unknown
//! fields refused. Nothing here is evaluated; [`super::compile`] validates and compiles it.

use serde_json::Value;

use crate::config::read::{self, array, boolean, string, strings, Fields, Path, ReadError};

/// A policy file. `policy_id` in records is `<id>@<version>`.
#[derive(Debug, Clone)]
pub struct PolicyDoc {
    pub id: String,
    pub version: Version,
    pub description: String,
    pub rollout: RolloutDoc,
    /// What to do with a body that cannot be parsed (malformed JSON, not UTF-8, empty).
    pub on_error: OnError,
    /// What to do with JSON of a shape no known LLM API uses.
    pub on_unknown_format: OnUnknownFormat,
    /// Opt-in: records carry the inspected text, always redacted by every built-in detector.
    pub include_content: bool,
    /// Rules are kept as raw JSON here so that their errors can name the rule.
    pub rules: Vec<Value>,
}

/// Policy versions may be written as strings (`"2024-06-01"`) or integers (`3`).
#[derive(Debug, Clone)]
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

#[derive(Debug, Clone, Default)]
pub struct RolloutDoc {
    pub mode: RolloutMode,
    /// Share of traffic enforced in canary mode, 0–100 (two decimals are honoured).
    pub canary_percent: Option<f64>,
    pub canary_key: CanaryKey,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnError {
    #[default]
    Refuse,
    Allow,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnUnknownFormat {
    /// Inspect every string value of the body with the request-phase rules.
    #[default]
    Inspect,
    /// Allow without inspection, reason_code `UNSUPPORTED_FORMAT`.
    Allow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Allow,
    Rewrite,
    Redact,
    Escalate,
    Refuse,
}

#[derive(Debug, Clone)]
pub struct RuleDoc {
    pub id: String,
    pub description: String,
    pub category: String,
    pub matcher: MatchDoc,
    pub action: Action,
    pub reason_code: String,
    pub redact: Option<RedactDoc>,
    pub rewrite: Option<RewriteDoc>,
    pub refuse: Option<RefuseDoc>,
    pub escalate: Option<EscalateDoc>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PhaseDoc {
    #[default]
    Request,
    Response,
    Both,
}

#[derive(Debug, Clone, Default)]
pub struct MatchDoc {
    pub detectors: Vec<String>,
    pub keywords: Option<KeywordsDoc>,
    pub patterns: Vec<PatternDoc>,
    pub models: Option<ModelsDoc>,
    pub max_tokens: Option<MaxTokensDoc>,
    /// Roles whose text is inspected; empty means every role.
    pub roles: Vec<String>,
    pub phase: PhaseDoc,
    /// `prompt_injection` only: the score (0–1) a text needs for the rule to match.
    pub min_score: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct KeywordsDoc {
    pub terms: Vec<String>,
    pub case_sensitive: bool,
    /// Only match terms not glued to letters or digits on either side.
    pub whole_word: bool,
}

#[derive(Debug, Clone)]
pub struct PatternDoc {
    /// A regex-lite pattern.
    pub regex: String,
    /// Literals every match contains; the regex then runs only on windows around them.
    pub literals: Vec<String>,
    /// Longest match expected, in bytes: the window radius around a literal.
    pub max_len: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct ModelsDoc {
    /// The rule matches when the model is not in this list (`*` suffix = prefix match).
    pub allow: Vec<String>,
    /// The rule matches when the model is in this list.
    pub deny: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct MaxTokensDoc {
    /// The rule matches when the request asks for more output tokens than this.
    pub max: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RedactStyle {
    /// `jane@example.com` → `****************`
    Mask,
    /// `jane@example.com` → `[EMAIL]`
    #[default]
    Placeholder,
    /// `4111 1111 1111 1111` → `**** **** **** 1111`
    KeepLast4,
    /// `jane@example.com` → `[EMAIL_1]`, the same token for the same value everywhere in the
    /// request, given back in the response (`engine::pseudonym`).
    Pseudonym,
}

/// The shape of a pseudonym's token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PseudonymToken {
    /// `[EMAIL_1]`
    #[default]
    Placeholder,
    /// A value of the same shape: `user1@example.invalid`, `0000 0000 0000 0001`.
    Fake,
}

#[derive(Debug, Clone, Default)]
pub struct RedactDoc {
    pub style: RedactStyle,
    /// `pseudonym` only: the token's shape.
    pub token: Option<PseudonymToken>,
    /// `pseudonym` only: give the value back in the response (default) or keep the token.
    pub restore: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct RewriteDoc {
    pub set_model: Option<String>,
    pub cap_max_tokens: Option<u64>,
    pub add_system_message: Option<String>,
    /// Replaces each matched text with this string.
    pub replace_with: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct RefuseDoc {
    pub status: Option<u16>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EscalateMode {
    /// Do not forward; answer "held for review".
    #[default]
    Hold,
    /// Forward (with any redactions) and flag the request and its record.
    Flag,
}

#[derive(Debug, Clone, Default)]
pub struct EscalateDoc {
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

/// A unit variant by name; `values` in the order of `names`.
fn choice<T: Copy>(v: Value, path: Path<'_>, names: &[&str], values: &[T]) -> Result<T, ReadError> {
    let i = read::variant(v, path, names)?;
    values
        .get(i)
        .copied()
        .ok_or_else(|| path.error("unknown variant".into()))
}

impl PolicyDoc {
    /// A policy document (unknown fields refused); its rules stay raw JSON.
    pub fn read(v: Value, path: Path<'_>) -> Result<PolicyDoc, ReadError> {
        let mut f = Fields::new(
            v,
            path,
            "struct PolicyDoc",
            &[
                "id",
                "version",
                "description",
                "rollout",
                "on_error",
                "on_unknown_format",
                "include_content",
                "rules",
            ],
        )?;
        fn raw(v: Value, path: Path<'_>) -> Result<Vec<Value>, ReadError> {
            array(v, path, |item, _| Ok(item))
        }
        Ok(PolicyDoc {
            id: f.req("id", string)?,
            version: f.req("version", Version::read)?,
            description: f.or("description", string, String::new())?,
            rollout: f.or("rollout", RolloutDoc::read, RolloutDoc::default())?,
            on_error: f.or(
                "on_error",
                |v, p| {
                    choice(
                        v,
                        p,
                        &["refuse", "allow"],
                        &[OnError::Refuse, OnError::Allow],
                    )
                },
                OnError::default(),
            )?,
            on_unknown_format: f.or(
                "on_unknown_format",
                |v, p| {
                    choice(
                        v,
                        p,
                        &["inspect", "allow"],
                        &[OnUnknownFormat::Inspect, OnUnknownFormat::Allow],
                    )
                },
                OnUnknownFormat::default(),
            )?,
            include_content: f.or("include_content", boolean, false)?,
            rules: f.req("rules", raw)?,
        })
    }
}

impl Version {
    fn read(v: Value, path: Path<'_>) -> Result<Version, ReadError> {
        match v {
            Value::String(s) => Ok(Version::Text(s)),
            Value::Number(n) if n.is_u64() => Ok(Version::Number(n.as_u64().unwrap_or(0))),
            other => Err(read::invalid_type(
                &other,
                "a string or a non-negative integer",
                path,
            )),
        }
    }
}

impl RolloutDoc {
    fn read(v: Value, path: Path<'_>) -> Result<RolloutDoc, ReadError> {
        let mut f = Fields::new(
            v,
            path,
            "struct RolloutDoc",
            &["mode", "canary_percent", "canary_key"],
        )?;
        Ok(RolloutDoc {
            mode: f.or(
                "mode",
                |v, p| {
                    choice(
                        v,
                        p,
                        &["shadow", "canary", "enforce"],
                        &[
                            RolloutMode::Shadow,
                            RolloutMode::Canary,
                            RolloutMode::Enforce,
                        ],
                    )
                },
                RolloutMode::default(),
            )?,
            canary_percent: f.opt("canary_percent", read::f64)?,
            canary_key: f.or(
                "canary_key",
                |v, p| {
                    choice(
                        v,
                        p,
                        &["user", "project", "request_id"],
                        &[CanaryKey::User, CanaryKey::Project, CanaryKey::RequestId],
                    )
                },
                CanaryKey::default(),
            )?,
        })
    }
}

impl RuleDoc {
    /// One rule (unknown fields refused); `path` is the rule's (`rules[2] "r"`).
    pub fn read(v: Value, path: Path<'_>) -> Result<RuleDoc, ReadError> {
        let mut f = Fields::new(
            v,
            path,
            "struct RuleDoc",
            &[
                "id",
                "description",
                "category",
                "match",
                "action",
                "reason_code",
                "redact",
                "rewrite",
                "refuse",
                "escalate",
            ],
        )?;
        let action = |v, p: Path<'_>| {
            choice(
                v,
                p,
                &["allow", "rewrite", "redact", "escalate", "refuse"],
                &[
                    Action::Allow,
                    Action::Rewrite,
                    Action::Redact,
                    Action::Escalate,
                    Action::Refuse,
                ],
            )
        };
        Ok(RuleDoc {
            id: f.req("id", string)?,
            description: f.or("description", string, String::new())?,
            category: f.req("category", string)?,
            matcher: f.req("match", MatchDoc::read)?,
            action: f.req("action", action)?,
            reason_code: f.req("reason_code", string)?,
            redact: f.opt("redact", RedactDoc::read)?,
            rewrite: f.opt("rewrite", RewriteDoc::read)?,
            refuse: f.opt("refuse", RefuseDoc::read)?,
            escalate: f.opt("escalate", EscalateDoc::read)?,
        })
    }
}

impl MatchDoc {
    fn read(v: Value, path: Path<'_>) -> Result<MatchDoc, ReadError> {
        let mut f = Fields::new(
            v,
            path,
            "struct MatchDoc",
            &[
                "detectors",
                "keywords",
                "patterns",
                "models",
                "max_tokens",
                "roles",
                "phase",
                "min_score",
            ],
        )?;
        fn patterns(v: Value, path: Path<'_>) -> Result<Vec<PatternDoc>, ReadError> {
            array(v, path, PatternDoc::read)
        }
        Ok(MatchDoc {
            detectors: f.or("detectors", strings, Vec::new())?,
            keywords: f.opt("keywords", KeywordsDoc::read)?,
            patterns: f.or("patterns", patterns, Vec::new())?,
            models: f.opt("models", ModelsDoc::read)?,
            max_tokens: f.opt("max_tokens", MaxTokensDoc::read)?,
            roles: f.or("roles", strings, Vec::new())?,
            phase: f.or(
                "phase",
                |v, p| {
                    choice(
                        v,
                        p,
                        &["request", "response", "both"],
                        &[PhaseDoc::Request, PhaseDoc::Response, PhaseDoc::Both],
                    )
                },
                PhaseDoc::default(),
            )?,
            min_score: f.opt("min_score", read::f64)?,
        })
    }
}

impl KeywordsDoc {
    fn read(v: Value, path: Path<'_>) -> Result<KeywordsDoc, ReadError> {
        let mut f = Fields::new(
            v,
            path,
            "struct KeywordsDoc",
            &["terms", "case_sensitive", "whole_word"],
        )?;
        Ok(KeywordsDoc {
            terms: f.req("terms", strings)?,
            case_sensitive: f.or("case_sensitive", boolean, false)?,
            whole_word: f.or("whole_word", boolean, true)?,
        })
    }
}

impl PatternDoc {
    fn read(v: Value, path: Path<'_>) -> Result<PatternDoc, ReadError> {
        let mut f = Fields::new(
            v,
            path,
            "struct PatternDoc",
            &["regex", "literals", "max_len"],
        )?;
        Ok(PatternDoc {
            regex: f.req("regex", string)?,
            literals: f.or("literals", strings, Vec::new())?,
            max_len: f.opt("max_len", read::usize)?,
        })
    }
}

impl ModelsDoc {
    fn read(v: Value, path: Path<'_>) -> Result<ModelsDoc, ReadError> {
        let mut f = Fields::new(v, path, "struct ModelsDoc", &["allow", "deny"])?;
        Ok(ModelsDoc {
            allow: f.or("allow", strings, Vec::new())?,
            deny: f.or("deny", strings, Vec::new())?,
        })
    }
}

impl MaxTokensDoc {
    fn read(v: Value, path: Path<'_>) -> Result<MaxTokensDoc, ReadError> {
        let mut f = Fields::new(v, path, "struct MaxTokensDoc", &["max"])?;
        Ok(MaxTokensDoc {
            max: f.req("max", read::u64)?,
        })
    }
}

impl RedactDoc {
    fn read(v: Value, path: Path<'_>) -> Result<RedactDoc, ReadError> {
        let mut f = Fields::new(v, path, "struct RedactDoc", &["style", "token", "restore"])?;
        Ok(RedactDoc {
            style: f.or(
                "style",
                |v, p| {
                    choice(
                        v,
                        p,
                        &["mask", "placeholder", "keep_last_4", "pseudonym"],
                        &[
                            RedactStyle::Mask,
                            RedactStyle::Placeholder,
                            RedactStyle::KeepLast4,
                            RedactStyle::Pseudonym,
                        ],
                    )
                },
                RedactStyle::default(),
            )?,
            token: f.opt("token", |v, p| {
                choice(
                    v,
                    p,
                    &["placeholder", "fake"],
                    &[PseudonymToken::Placeholder, PseudonymToken::Fake],
                )
            })?,
            restore: f.opt("restore", boolean)?,
        })
    }
}

impl RewriteDoc {
    fn read(v: Value, path: Path<'_>) -> Result<RewriteDoc, ReadError> {
        let mut f = Fields::new(
            v,
            path,
            "struct RewriteDoc",
            &[
                "set_model",
                "cap_max_tokens",
                "add_system_message",
                "replace_with",
            ],
        )?;
        Ok(RewriteDoc {
            set_model: f.opt("set_model", string)?,
            cap_max_tokens: f.opt("cap_max_tokens", read::u64)?,
            add_system_message: f.opt("add_system_message", string)?,
            replace_with: f.opt("replace_with", string)?,
        })
    }
}

impl RefuseDoc {
    fn read(v: Value, path: Path<'_>) -> Result<RefuseDoc, ReadError> {
        let mut f = Fields::new(v, path, "struct RefuseDoc", &["status", "message"])?;
        Ok(RefuseDoc {
            status: f.opt("status", read::u16)?,
            message: f.opt("message", string)?,
        })
    }
}

impl EscalateDoc {
    fn read(v: Value, path: Path<'_>) -> Result<EscalateDoc, ReadError> {
        let mut f = Fields::new(
            v,
            path,
            "struct EscalateDoc",
            &["mode", "status", "message"],
        )?;
        Ok(EscalateDoc {
            mode: f.or(
                "mode",
                |v, p| {
                    choice(
                        v,
                        p,
                        &["hold", "flag"],
                        &[EscalateMode::Hold, EscalateMode::Flag],
                    )
                },
                EscalateMode::default(),
            )?,
            status: f.opt("status", read::u16)?,
            message: f.opt("message", string)?,
        })
    }
}
