//! `policy-gateway trail`: the records of an investigation, from exported trails, filtered by
//! time, user, project, reason, decision, policy and rule, in time order.

use std::io::Write;

use serde_json::Value;

use super::records::{self, rules_of, str_of, Filter};

pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match run_inner(args.to_vec(), out, err) {
        Ok(()) => 0,
        // The reader went away (`| head`): not an error.
        Err(e) if e.is_empty() => 0,
        Err(e) => {
            let _ = writeln!(err, "trail: {}", super::table::display(&e));
            2
        }
    }
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

fn run_inner(
    mut args: Vec<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), String> {
    let filter = Filter::from_args(&mut args)?;
    let format = super::take_format(&mut args, &["jsonl", "table", "csv"])?;
    let sel = records::select(&args, &filter)?;
    let found: Vec<&Value> = sel.records.iter().collect();
    let w = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            String::new()
        } else {
            e.to_string()
        }
    };
    match format.as_str() {
        "jsonl" => {
            for r in &found {
                writeln!(out, "{}", super::table::json(r)).map_err(w)?;
            }
        }
        _ => {
            let changes = filter.record_type.as_deref() == Some("policy_change");
            let (columns, rows): (&[&str], Vec<Vec<String>>) = if changes {
                (
                    &CHANGE_COLUMNS,
                    found.iter().map(|r| change_row(r)).collect(),
                )
            } else {
                (&COLUMNS, found.iter().map(|r| row(r)).collect())
            };
            let text = if format == "csv" {
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
