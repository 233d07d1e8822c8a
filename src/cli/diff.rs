//! `policy-gateway diff`: replays traffic through two policy versions and reports what changes:
//! decision transitions (allow→refuse, redact→allow, …) with their counts, the rules that
//! start or stop matching on them, and example request ids.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use serde_json::json;

use std::rc::Rc;

use super::simulate::{config_for_policy, parse_line, simulate};
use super::{Exit, Failure};
use crate::audit::IdGenerator;
use crate::config::PluginConfig;

/// Replay traffic through two policies and show what changes
///
/// Decision transitions (allow→refuse, redact→allow, ...) with their counts, the rules that
/// start or stop matching on them, and example request ids. Traffic lines are as for
/// `simulate`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    verbatim_doc_comment,
    after_help = "\
Examples:
  policy-gateway diff --from policies/default.json --to policies/examples/default-v2.json \\
      --input policies/examples/traffic.jsonl
  policy-gateway diff --from old.json --to new.json --input traffic.jsonl --format csv > diff.csv

Exit status: 0 done (whether or not decisions changed), 2 usage error, or a policy or input
that cannot be read or used."
)]
pub struct Args {
    /// The policy in force (JSON)
    #[arg(long, value_name = "OLD.json", value_hint = clap::ValueHint::FilePath)]
    pub from: String,
    /// The policy to compare it with
    #[arg(long, value_name = "NEW.json", value_hint = clap::ValueHint::FilePath)]
    pub to: String,
    /// Traffic, one exchange per line (as for simulate); - reads standard input
    #[arg(long, value_name = "TRAFFIC.jsonl", value_hint = clap::ValueHint::FilePath)]
    pub input: String,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// What `diff` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A summary line and a table for people
    Table,
    /// One JSON document
    Json,
    /// RFC 4180 CSV
    Csv,
}

pub fn run(args: &Args, out: &mut dyn Write, _err: &mut dyn Write) -> Result<Exit, Failure> {
    run_inner(args, out)?;
    Ok(Exit::Ok)
}

/// Examples kept per transition.
const EXAMPLES: usize = 3;

/// One transition between the old and the new decision.
#[derive(Debug, Default)]
pub struct Transition {
    pub count: u64,
    /// Exchanges whose decision or matching rules differ.
    pub changed: u64,
    /// Rules matching under the new policy only, and under the old only, with counts.
    pub rules_added: BTreeMap<String, u64>,
    pub rules_removed: BTreeMap<String, u64>,
    pub examples: Vec<String>,
}

/// Every (old decision, new decision) pair seen, changed or not, and the exchanges replayed.
pub fn diff(
    old: &Rc<PluginConfig>,
    new: &Rc<PluginConfig>,
    lines: &[String],
) -> (BTreeMap<(String, String), Transition>, u64) {
    let mut ids = IdGenerator::new(1);
    let mut out: BTreeMap<(String, String), Transition> = BTreeMap::new();
    let mut n = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        n += 1;
        let ex = parse_line(line);
        let a = simulate(old, &ex, i + 1, &mut ids, 0).record;
        let b = simulate(new, &ex, i + 1, &mut ids, 0).record;
        let t = out
            .entry((a.decision.to_string(), b.decision.to_string()))
            .or_default();
        t.count += 1;
        for rule in b
            .triggered_rules
            .iter()
            .filter(|r| !a.triggered_rules.contains(r))
        {
            *t.rules_added.entry(rule.clone()).or_default() += 1;
        }
        for rule in a
            .triggered_rules
            .iter()
            .filter(|r| !b.triggered_rules.contains(r))
        {
            *t.rules_removed.entry(rule.clone()).or_default() += 1;
        }
        if a.decision != b.decision || a.triggered_rules != b.triggered_rules {
            t.changed += 1;
            if t.examples.len() < EXAMPLES {
                t.examples.push(a.request_id.clone());
            }
        }
    }
    (out, n)
}

fn run_inner(args: &Args, out: &mut dyn Write) -> Result<(), String> {
    let (from, to, input, format) = (&args.from, &args.to, &args.input, args.format);
    let load = |file: &str| {
        let bytes = std::fs::read(file).map_err(|e| format!("{file}: cannot read: {e}"))?;
        config_for_policy(&bytes).map_err(|e| format!("{file}: {e}"))
    };
    let (old, new) = (load(from)?, load(to)?);
    let reader: Box<dyn BufRead> = if input == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(input).map_err(|e| format!("{input}: {e}"))?;
        Box::new(std::io::BufReader::new(f))
    };
    let lines: Vec<String> = reader
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{input}: {e}"))?;
    let (transitions, total) = diff(&old, &new, &lines);
    let rules = |m: &BTreeMap<String, u64>| {
        m.iter()
            .map(|(r, n)| format!("{r} ({n})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let w = |e: std::io::Error| e.to_string();
    let changed: u64 = transitions.values().map(|t| t.changed).sum();
    match format {
        Format::Json => {
            let doc = json!({
                "from": old.policy.policy_id, "to": new.policy.policy_id, "exchanges": total,
                "changed": changed,
                "transitions": transitions.iter().map(|((a, b), t)| json!({
                    "from": a, "to": b, "count": t.count, "changed": t.changed,
                    "rules_added": t.rules_added, "rules_removed": t.rules_removed,
                    "examples": t.examples,
                })).collect::<Vec<_>>(),
            });
            writeln!(out, "{}", super::table::json(&doc)).map_err(w)?;
        }
        Format::Table | Format::Csv => {
            let header = [
                "transition",
                "count",
                "changed",
                "rules added",
                "rules removed",
                "examples",
            ];
            let rows: Vec<Vec<String>> = transitions
                .iter()
                .map(|((a, b), t)| {
                    vec![
                        format!("{a}→{b}"),
                        t.count.to_string(),
                        t.changed.to_string(),
                        rules(&t.rules_added),
                        rules(&t.rules_removed),
                        t.examples.join(" "),
                    ]
                })
                .collect();
            if format == Format::Csv {
                write!(out, "{}", super::table::csv(&header, &rows)).map_err(w)?;
            } else {
                writeln!(
                    out,
                    "{} → {}: {total} exchanges replayed, {changed} with a different decision or rules\n",
                    super::table::display(&old.policy.policy_id),
                    super::table::display(&new.policy.policy_id)
                )
                .map_err(w)?;
                write!(out, "{}", super::table::render(&header, &rows)).map_err(w)?;
            }
        }
    }
    Ok(())
}
