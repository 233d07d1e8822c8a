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

pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match run_inner(args.to_vec(), out, err) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "chargeback: {}", super::table::display(&e));
            2
        }
    }
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

const KEYS: [&str; 3] = ["project", "user", "model"];

/// Aggregates records by the chosen keys (a subset of project, user, model, in that order).
pub fn aggregate(records: &[&Value], by: &[&str]) -> BTreeMap<Vec<String>, Totals> {
    let mut groups: BTreeMap<Vec<String>, Totals> = BTreeMap::new();
    for r in records {
        let key: Vec<String> = by
            .iter()
            .map(|k| {
                let v = match *k {
                    "project" => str_of(r, "policy_project_id"),
                    "user" => str_of(r, "policy_user"),
                    _ => str_of(r, "response_model").or(str_of(r, "model")),
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

fn run_inner(
    mut args: Vec<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), String> {
    let filter = Filter::from_args(&mut args)?;
    let by = super::take_flag(&mut args, "--by")?.unwrap_or_else(|| "project,user,model".into());
    let format = super::take_format(&mut args, &["csv", "table", "json"])?;
    let by: Vec<&str> = by.split(',').map(str::trim).collect();
    if let Some(bad) = by.iter().find(|k| !KEYS.contains(k)) {
        return Err(format!("--by: \"{bad}\" is not project, user or model"));
    }
    let sel = records::select(&args, &filter)?;
    let found: Vec<&Value> = sel.records.iter().collect();
    let groups = aggregate(&found, &by);
    let mut header: Vec<&str> = by.clone();
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
    if format == "json" {
        let rows: Vec<Value> = groups
            .iter()
            .map(|(k, t)| {
                let mut o = serde_json::Map::new();
                for (name, v) in by.iter().zip(k) {
                    o.insert((*name).into(), v.clone().into());
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
        let text = if format == "csv" {
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
        let g = aggregate(&refs, &["project", "user"]);
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
        let g = aggregate(&refs, &["model"]);
        assert_eq!(g.len(), 1);
    }
}
