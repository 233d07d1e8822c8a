//! `policy-gateway chargeback`: requests and tokens per project, user and model from exported
//! records, as CSV for finance systems.
//!
//! Every decision record counts once (de-duplicated by `record_id`: delivery is at least
//! once). Tokens come from `usage`; records whose usage was estimated (streams without usage)
//! are counted apart so finance can tell measured from estimated tokens. Refused requests are
//! counted (they cost gateway time, not tokens).

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::Value;

use super::records::{self, str_of, Filter};
use super::{Exit, Failure};

/// Requests, refusals and tokens per project, user and model, as CSV
///
/// Every decision record counts once (de-duplicated by record_id). Tokens come from the
/// provider's usage; records whose usage was estimated (streams without usage) are also
/// counted in estimated_requests and estimated_tokens; refused counts enforced refusals.
#[derive(Debug, Clone, clap::Args)]
#[command(
    verbatim_doc_comment,
    after_help = "\
Examples:
  policy-gateway chargeback --from 2026-11-01 --to 2026-12-01 --by project,model audit-export/ \\
      > chargeback.csv
  policy-gateway chargeback --by user --format table audit-trail.jsonl

Exit status: 0 done, 2 usage error, or records that cannot be read."
)]
pub struct Args {
    /// Group by these keys, comma-separated, in this order
    #[arg(
        long,
        value_name = "KEYS",
        value_delimiter = ',',
        default_value = "project,user,model",
        value_parser = Trimmed(clap::builder::EnumValueParser::<Key>::new()),
    )]
    pub by: Vec<Key>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
    #[command(flatten)]
    pub inputs: records::Inputs,
    #[command(flatten, next_help_heading = "Filters")]
    pub filter: Filter,
}

/// A key to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Key {
    /// policy_project_id
    Project,
    /// policy_user
    User,
    /// The served model (response_model), else the requested one
    Model,
}

impl Key {
    pub fn name(self) -> &'static str {
        match self {
            Key::Project => "project",
            Key::User => "user",
            Key::Model => "model",
        }
    }
}

/// A value parser that ignores spaces around each value (`--by "project, model"`).
#[derive(Debug, Clone)]
struct Trimmed<P>(P);

impl<P: clap::builder::TypedValueParser> clap::builder::TypedValueParser for Trimmed<P> {
    type Value = P::Value;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        match value.to_str() {
            Some(v) => self.0.parse_ref(cmd, arg, std::ffi::OsStr::new(v.trim())),
            None => self.0.parse_ref(cmd, arg, value),
        }
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        self.0.possible_values()
    }
}

/// What `chargeback` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// RFC 4180 CSV, for finance systems
    Csv,
    /// A table for people
    Table,
    /// A JSON array of groups
    Json,
}

pub fn run(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> Result<Exit, Failure> {
    run_inner(args, out, err)?;
    Ok(Exit::Ok)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub requests: u64,
    pub refused: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Requests whose tokens are estimated (`usage_estimated`), and their tokens.
    pub estimated_requests: u64,
    pub estimated_tokens: u64,
}

/// Aggregates records by the chosen keys, in the order given.
pub fn aggregate(records: &[&Value], by: &[Key]) -> BTreeMap<Vec<String>, Totals> {
    let mut groups: BTreeMap<Vec<String>, Totals> = BTreeMap::new();
    for r in records {
        let key: Vec<String> = by
            .iter()
            .map(|k| {
                let v = match k {
                    Key::Project => str_of(r, "policy_project_id"),
                    Key::User => str_of(r, "policy_user"),
                    Key::Model => str_of(r, "response_model").or(str_of(r, "model")),
                };
                v.unwrap_or("(none)").to_string()
            })
            .collect();
        let t = groups.entry(key).or_default();
        t.requests += 1;
        if str_of(r, "decision") == Some("refuse") && r.get("enforced") == Some(&Value::Bool(true))
        {
            t.refused += 1;
        }
        let usage = r.get("usage");
        let n = |k: &str| {
            usage
                .and_then(|u| u.get(k))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        let total = usage
            .and_then(|u| u.get("total_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(n("prompt_tokens") + n("completion_tokens"));
        t.prompt_tokens += n("prompt_tokens");
        t.completion_tokens += n("completion_tokens");
        t.total_tokens += total;
        if r.get("usage_estimated") == Some(&Value::Bool(true)) {
            t.estimated_requests += 1;
            t.estimated_tokens += total;
        }
    }
    groups
}

fn run_inner(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), String> {
    let (by, format) = (&args.by, args.format);
    let sel = records::select(&args.inputs.records, &args.filter)?;
    let found: Vec<&Value> = sel.records.iter().collect();
    let groups = aggregate(&found, by);
    let mut header: Vec<&str> = by.iter().map(|k| k.name()).collect();
    header.extend([
        "requests",
        "refused",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "estimated_requests",
        "estimated_tokens",
    ]);
    let w = |e: std::io::Error| e.to_string();
    if format == Format::Json {
        let rows: Vec<Value> = groups
            .iter()
            .map(|(k, t)| {
                let mut o = serde_json::Map::new();
                for (key, v) in by.iter().zip(k) {
                    o.insert(key.name().into(), v.clone().into());
                }
                for (name, v) in header.iter().skip(by.len()).zip(numbers(t)) {
                    o.insert((*name).into(), v.into());
                }
                Value::Object(o)
            })
            .collect();
        writeln!(out, "{}", super::table::json(&Value::Array(rows))).map_err(w)?;
    } else {
        let rows: Vec<Vec<String>> = groups
            .iter()
            .map(|(k, t)| {
                let mut row = k.clone();
                row.extend(numbers(t).iter().map(u64::to_string));
                row
            })
            .collect();
        let text = if format == Format::Csv {
            super::table::csv(&header, &rows)
        } else {
            super::table::render(&header, &rows)
        };
        write!(out, "{text}").map_err(w)?;
    }
    let _ = writeln!(
        err,
        "chargeback: {} records in {} groups ({} files, {} lines skipped)",
        found.len(),
        groups.len(),
        sel.files,
        sel.skipped
    );
    Ok(())
}

fn numbers(t: &Totals) -> [u64; 7] {
    [
        t.requests,
        t.refused,
        t.prompt_tokens,
        t.completion_tokens,
        t.total_tokens,
        t.estimated_requests,
        t.estimated_tokens,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sums_per_group_and_separates_estimates() {
        let recs = [
            json!({"policy_project_id": "p1", "policy_user": "a", "model": "gpt-4o", "decision": "allow",
                   "enforced": true, "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}),
            json!({"policy_project_id": "p1", "policy_user": "a", "model": "gpt-4o", "response_model": "gpt-4o",
                   "decision": "allow", "usage": {"prompt_tokens": 1, "completion_tokens": 2}, "usage_estimated": true}),
            json!({"policy_project_id": "p1", "policy_user": "b", "model": "gpt-4o", "decision": "refuse", "enforced": true}),
        ];
        let refs: Vec<&Value> = recs.iter().collect();
        let g = aggregate(&refs, &[Key::Project, Key::User]);
        let a = g[&vec!["p1".to_string(), "a".to_string()]];
        assert_eq!(
            (
                a.requests,
                a.total_tokens,
                a.estimated_requests,
                a.estimated_tokens
            ),
            (2, 18, 1, 3)
        );
        let b = g[&vec!["p1".to_string(), "b".to_string()]];
        assert_eq!((b.requests, b.refused, b.total_tokens), (1, 1, 0));
        let g = aggregate(&refs, &[Key::Model]);
        assert_eq!(g.len(), 1);
    }
}
