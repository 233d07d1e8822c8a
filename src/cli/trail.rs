//! `policy-gateway trail`: the records of an investigation, from exported trails, filtered by
//! time, user, project, reason, decision, policy and rule, in time order.

use std::io::Write;

use serde_json::Value;

use super::records::{self, rules_of, str_of, Filter};
use super::{Exit, Failure};

/// The matching audit records, in time order
///
/// Reads exported records from any sink, keeps those that pass every filter given, each once
/// (delivery is at least once: a record_id seen twice is one record), and prints them in time
/// order: the records themselves (JSON lines) for jq or a ticket, or a table or CSV for
/// people. A count of records read and matched goes to standard error.
#[derive(Debug, Clone, clap::Args)]
#[command(
    verbatim_doc_comment,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "\
Examples:
  policy-gateway trail --user mallory --format table audit-export/
  policy-gateway trail --project proj-demo --reason SECRET_DETECTED --from 2026-11-26T00:00:00Z \\
      audit-export/
  policy-gateway trail --from 2026-11-01 --to 2026-12-01 --decision refuse --format csv s3-export/
  policy-gateway trail --type policy_change --format table audit-trail.jsonl
  policy-gateway trail verify --key k2026=trail.key s3-export/

Exit status: 0 done (also when nothing matched), 2 usage error, or records that cannot be read."
)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    #[command(flatten)]
    pub inputs: records::Inputs,
    #[command(flatten, next_help_heading = "Filters")]
    pub filter: Filter,
}

/// What `trail` does besides listing records.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    Verify(super::verify::Args),
}

/// What `trail` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The records themselves, one per line
    Jsonl,
    /// A table for people
    Table,
    /// RFC 4180 CSV
    Csv,
}

pub fn run(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> Result<Exit, Failure> {
    if let Some(Action::Verify(v)) = &args.action {
        return super::verify::run(v, out, err);
    }
    run_inner(args, out, err)?;
    Ok(Exit::Ok)
}

const COLUMNS: [&str; 11] = [
    "timestamp",
    "request_id",
    "user",
    "project",
    "decision",
    "enforced",
    "reason_code",
    "rules",
    "policy_id",
    "model",
    "record_id",
];

fn run_inner(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), String> {
    let (filter, format) = (&args.filter, args.format);
    let sel = records::select(&args.inputs.records, filter)?;
    let found: Vec<&Value> = sel.records.iter().collect();
    let w = |e: std::io::Error| e.to_string();
    match format {
        Format::Jsonl => {
            for r in &found {
                writeln!(out, "{}", super::table::json(r)).map_err(w)?;
            }
        }
        Format::Table | Format::Csv => {
            let changes = filter.record_type.as_deref() == Some("policy_change");
            let (columns, rows): (&[&str], Vec<Vec<String>>) = if changes {
                (
                    &CHANGE_COLUMNS,
                    found.iter().map(|r| change_row(r)).collect(),
                )
            } else {
                (&COLUMNS, found.iter().map(|r| row(r)).collect())
            };
            let text = if format == Format::Csv {
                super::table::csv(columns, &rows)
            } else {
                super::table::render(columns, &rows)
            };
            write!(out, "{text}").map_err(w)?;
        }
    }
    let _ = writeln!(
        err,
        "trail: {} of {} records matched ({} files, {} lines skipped)",
        found.len(),
        sel.read,
        sel.files,
        sel.skipped
    );
    Ok(())
}

const CHANGE_COLUMNS: [&str; 8] = [
    "timestamp",
    "policy_id",
    "previous_policy_id",
    "policy_sha256",
    "rules",
    "rollout",
    "candidate",
    "gateway",
];

/// A `policy_change` record: which policy came into force, replacing which.
fn change_row(r: &Value) -> Vec<String> {
    let s = |k: &str| str_of(r, k).unwrap_or("-").to_string();
    let mut rollout = s("rollout_mode");
    if let Some(p) = r.get("canary_percent").and_then(Value::as_f64) {
        rollout = format!("{rollout} {p}%");
    }
    vec![
        s("timestamp"),
        s("policy_id"),
        s("previous_policy_id"),
        s("policy_sha256"),
        r.get("rule_count")
            .and_then(Value::as_u64)
            .map_or("-".into(), |n| n.to_string()),
        rollout,
        s("candidate_policy_id"),
        s("gateway"),
    ]
}

fn row(r: &Value) -> Vec<String> {
    let s = |k: &str| str_of(r, k).unwrap_or("-").to_string();
    let rules = rules_of(r);
    vec![
        s("timestamp"),
        s("request_id"),
        s("policy_user"),
        s("policy_project_id"),
        s("decision"),
        r.get("enforced")
            .and_then(Value::as_bool)
            .map_or("-", |e| if e { "yes" } else { "no" })
            .into(),
        s("reason_code"),
        if rules.is_empty() {
            "-".into()
        } else {
            rules.join(",")
        },
        s("policy_id"),
        str_of(r, "response_model")
            .or(str_of(r, "model"))
            .unwrap_or("-")
            .into(),
        s("record_id"),
    ]
}
