//! `policy-gateway compare`: how decisions changed across a policy change in recorded traffic.
//!
//! Records are split by `policy_id`: the traffic before a change and after it are different
//! requests, so the comparison is of rates: the share of each decision, each rule's trigger
//! rate and the reason codes, before and after, with the change in percentage points.
//!
//! With `--candidate`, the same requests are compared instead: each record's active decision
//! against the decision of the candidate policy evaluated beside it in shadow, as transitions
//! (like `diff`, but on live traffic).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde_json::{json, Value};

use super::records::{self, rules_of, str_of, Filter};
use super::{Exit, Failure};

/// How decision, rule and reason rates changed across a policy change
///
/// Records are split by policy_id (by default the last two in time order; --before and
/// --after pick others) and compared as rates, with the change in percentage points. With
/// --candidate, on the same requests instead: each record's active decision against the
/// shadow decision of the candidate policy (records of a gateway configured with
/// candidate_policy).
#[derive(Debug, Clone, clap::Args)]
#[command(
    verbatim_doc_comment,
    after_help = "\
Examples:
  policy-gateway compare audit-export/
  policy-gateway compare --before default@1 --after default@2 --format json audit-export/
  policy-gateway compare --candidate --from 2026-11-26 audit-trail.jsonl

Exit status: 0 done, 2 usage error, records that cannot be read, or no policy change (or no
candidate decision) in them."
)]
pub struct Args {
    /// Compare each record's active decision with its candidate policy's shadow decision
    #[arg(long, conflicts_with_all = ["before", "after"])]
    pub candidate: bool,
    /// The policy before the change [default: the second last policy id in time order]
    #[arg(long, value_name = "POLICY_ID")]
    pub before: Option<String>,
    /// The policy after the change [default: the last policy id in time order]
    #[arg(long, value_name = "POLICY_ID")]
    pub after: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub inputs: records::Inputs,
    #[command(flatten, next_help_heading = "Filters")]
    pub filter: Filter,
}

/// What `compare` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people
    Table,
    /// One JSON document
    Json,
}

pub fn run(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> Result<Exit, Failure> {
    if args.filter.policy_id.is_some() {
        return Err(super::usage_error(
            "compare",
            "--policy does not apply: use --before and --after",
        ));
    }
    run_inner(args, out, err)?;
    Ok(Exit::Ok)
}

const DECISIONS: [&str; 5] = ["allow", "rewrite", "redact", "escalate", "refuse"];

/// Counts of one policy version's traffic.
#[derive(Debug, Default)]
pub struct Profile {
    pub requests: u64,
    pub first: String,
    pub last: String,
    pub decisions: BTreeMap<String, u64>,
    pub rules: BTreeMap<String, u64>,
    pub reasons: BTreeMap<String, u64>,
}

/// Profiles of every policy id, and the ids in order of first appearance.
pub fn profiles(records: &[&Value]) -> (BTreeMap<String, Profile>, Vec<String>) {
    let mut sorted: Vec<&&Value> = records.iter().collect();
    sorted.sort_by(|a, b| str_of(a, "timestamp").cmp(&str_of(b, "timestamp")));
    let mut by: BTreeMap<String, Profile> = BTreeMap::new();
    let mut order = Vec::new();
    for r in sorted {
        let id = str_of(r, "policy_id").unwrap_or("(none)").to_string();
        if !by.contains_key(&id) {
            order.push(id.clone());
        }
        let p = by.entry(id).or_default();
        let ts = str_of(r, "timestamp").unwrap_or_default().to_string();
        if p.requests == 0 {
            p.first = ts.clone();
        }
        p.last = ts;
        p.requests += 1;
        *p.decisions
            .entry(str_of(r, "decision").unwrap_or("-").into())
            .or_default() += 1;
        *p.reasons
            .entry(str_of(r, "reason_code").unwrap_or("-").into())
            .or_default() += 1;
        for rule in rules_of(r) {
            *p.rules.entry(rule.into()).or_default() += 1;
        }
    }
    (by, order)
}

fn share(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 * 100.0 / total as f64
    }
}

fn run_inner(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), String> {
    let format = args.format;
    let sel = records::select(&args.inputs.records, &args.filter)?;
    let found: Vec<&Value> = sel.records.iter().collect();
    if args.candidate {
        return candidate_transitions(&found, format, out, err);
    }
    let (profiles, order) = profiles(&found);
    let _ = writeln!(
        err,
        "compare: {} records, policy ids in order: {} ({} files, {} lines skipped)",
        found.len(),
        super::table::display(&order.join(", ")),
        sel.files,
        sel.skipped
    );
    let pick = |given: Option<String>, fallback: Option<&String>, name: &str| {
        given
            .or_else(|| fallback.cloned())
            .ok_or_else(|| {
                format!(
                    "--{name}: the records hold policy ids {order:?}; a change needs two (give --before and --after)"
                )
            })
    };
    let n = order.len();
    let before = pick(
        args.before.clone(),
        n.checked_sub(2).and_then(|i| order.get(i)),
        "before",
    )?;
    let after = pick(
        args.after.clone(),
        n.checked_sub(1).and_then(|i| order.get(i)),
        "after",
    )?;
    let empty = Profile::default();
    let (b, a) = (
        profiles.get(&before).unwrap_or(&empty),
        profiles.get(&after).unwrap_or(&empty),
    );
    if b.requests == 0 || a.requests == 0 {
        return Err(format!(
            "no records of {} in the input (policy ids found: {order:?})",
            if b.requests == 0 { &before } else { &after }
        ));
    }
    // metric, before %, after %
    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    for d in DECISIONS {
        let get = |p: &Profile| share(p.decisions.get(d).copied().unwrap_or(0), p.requests);
        rows.push((format!("decision {d}"), get(b), get(a)));
    }
    let rules: BTreeSet<&String> = b.rules.keys().chain(a.rules.keys()).collect();
    for rule in rules {
        let get = |p: &Profile| share(p.rules.get(rule).copied().unwrap_or(0), p.requests);
        rows.push((format!("rule {rule}"), get(b), get(a)));
    }
    let reasons: BTreeSet<&String> = b.reasons.keys().chain(a.reasons.keys()).collect();
    for reason in reasons {
        let get = |p: &Profile| share(p.reasons.get(reason).copied().unwrap_or(0), p.requests);
        rows.push((format!("reason {reason}"), get(b), get(a)));
    }
    let w = |e: std::io::Error| e.to_string();
    if format == Format::Json {
        let doc = json!({
            "before": {"policy_id": before, "requests": b.requests, "from": b.first, "to": b.last},
            "after": {"policy_id": after, "requests": a.requests, "from": a.first, "to": a.last},
            "rates_percent": rows.iter().map(|(m, x, y)| json!({
                "metric": m, "before": round(*x), "after": round(*y), "change_points": round(y - x)
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{}", super::table::json(&doc)).map_err(w)?;
    } else {
        let d = super::table::display;
        writeln!(
            out,
            "before: {}, {} requests, {} .. {}\nafter:  {}, {} requests, {} .. {}\n",
            d(&before),
            b.requests,
            d(&b.first),
            d(&b.last),
            d(&after),
            a.requests,
            d(&a.first),
            d(&a.last)
        )
        .map_err(w)?;
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|(m, x, y)| {
                vec![
                    m.clone(),
                    format!("{x:.1}%"),
                    format!("{y:.1}%"),
                    format!("{:+.1}", y - x),
                ]
            })
            .collect();
        write!(
            out,
            "{}",
            super::table::render(
                &["share of requests", "before", "after", "change (points)"],
                &table
            )
        )
        .map_err(w)?;
    }
    Ok(())
}

/// Active → candidate decision transitions over records that carry a candidate decision.
fn candidate_transitions(
    records: &[&Value],
    format: Format,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), String> {
    #[derive(Default)]
    struct T {
        count: u64,
        examples: Vec<String>,
    }
    let mut by: BTreeMap<(String, String, String), T> = BTreeMap::new();
    let mut with = 0;
    for r in records {
        let Some(c) = r.get("candidate").filter(|c| c.is_object()) else {
            continue;
        };
        with += 1;
        let key = (
            format!(
                "{} → {}",
                str_of(r, "policy_id").unwrap_or("-"),
                str_of(c, "policy_id").unwrap_or("-")
            ),
            str_of(r, "decision").unwrap_or("-").to_string(),
            str_of(c, "decision").unwrap_or("-").to_string(),
        );
        let t = by.entry(key).or_default();
        t.count += 1;
        if t.examples.len() < 3 {
            t.examples
                .push(str_of(r, "request_id").unwrap_or("-").to_string());
        }
    }
    let _ = writeln!(
        err,
        "compare: {with} of {} records carry a candidate decision",
        records.len()
    );
    if with == 0 {
        return Err("no record carries a candidate decision (configure candidate_policy)".into());
    }
    let w = |e: std::io::Error| e.to_string();
    if format == Format::Json {
        let rows: Vec<Value> = by
            .iter()
            .map(|((p, a, c), t)| json!({"policies": p, "active": a, "candidate": c, "count": t.count, "examples": t.examples}))
            .collect();
        writeln!(
            out,
            "{}",
            super::table::json(&json!({"records": with, "transitions": rows}))
        )
        .map_err(w)?;
    } else {
        let rows: Vec<Vec<String>> = by
            .iter()
            .map(|((p, a, c), t)| {
                vec![
                    p.clone(),
                    format!("{a}→{c}"),
                    t.count.to_string(),
                    format!("{:.1}%", share(t.count, with)),
                    t.examples.join(" "),
                ]
            })
            .collect();
        write!(
            out,
            "{}",
            super::table::render(
                &[
                    "active → candidate",
                    "decision",
                    "count",
                    "share",
                    "examples"
                ],
                &rows
            )
        )
        .map_err(w)?;
    }
    Ok(())
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_split_by_policy_in_time_order() {
        let recs = [
            json!({"timestamp": "2026-11-26T10:00:01Z", "policy_id": "p@2", "decision": "refuse", "reason_code": "X", "triggered_rules": ["r"]}),
            json!({"timestamp": "2026-11-26T09:00:00Z", "policy_id": "p@1", "decision": "allow", "reason_code": "NO_RULE_MATCHED", "triggered_rules": []}),
            json!({"timestamp": "2026-11-26T09:30:00Z", "policy_id": "p@1", "decision": "allow", "reason_code": "NO_RULE_MATCHED", "triggered_rules": []}),
        ];
        let refs: Vec<&Value> = recs.iter().collect();
        let (p, order) = profiles(&refs);
        assert_eq!(order, ["p@1", "p@2"]);
        assert_eq!(p["p@1"].requests, 2);
        assert_eq!(p["p@1"].first, "2026-11-26T09:00:00Z");
        assert_eq!(p["p@2"].rules["r"], 1);
    }
}
