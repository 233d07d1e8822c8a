//! `policy-gateway simulate`: replays recorded or scripted traffic through the filter's own
//! exchange (`crate::exchange::replay`), from a plugin configuration (`--config`, the same
//! JSON the filter gets) or a policy alone (`--policy`). Attribution sources, the candidate
//! policy, `on_uninspectable`, response inspection and streamed responses all behave as in the
//! filter; only ids and times differ.

use std::io::{BufRead, Write};
use std::rc::Rc;

use super::{Exit, Failure};
use crate::audit::{AuditRecord, IdGenerator};
use crate::config::PluginConfig;
pub use crate::exchange::replay::{config_for_policy, parse_line, simulate, Simulated, Traffic};

/// Evaluate traffic through a policy: one audit record per exchange
///
/// The filter's own exchange runs each line as Envoy would run it. Each input line is a request
/// body, or an object {"request": <body>, "headers": {...}, "path": "/v1/...", "response":
/// <body>, "response_headers": {...}} or, for a streamed answer, "stream": ["<raw chunk>",
/// ...]; a request or response given as a JSON string is taken as raw bytes (to simulate
/// malformed bodies). A line without x-request-id gets sim-<line number>. Prints one audit
/// record per line (JSON), or a table for people.
#[derive(Debug, Clone, clap::Args)]
#[command(
    verbatim_doc_comment,
    group(clap::ArgGroup::new("source").required(true).args(["policy", "config"])),
    after_help = "\
Examples:
  policy-gateway simulate --policy policies/default.json --input policies/examples/traffic.jsonl
  policy-gateway simulate --config envoy-plugin.json --input traffic.jsonl --format table
  cat traffic.jsonl | policy-gateway simulate --policy p.json --input - --seed 1

Exit status: 0 done, 2 usage error, or a policy or input that cannot be read or used."
)]
pub struct Args {
    /// The policy to evaluate (JSON), with the shipped defaults around it (headers held,
    /// users from x-user-id or the body's user, projects from x-project-id, all unverified)
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub policy: Option<String>,
    /// The filter's plugin configuration (the JSON Envoy hands the filter): its policy,
    /// candidate, attribution sources, limits and on_uninspectable, exactly as the filter
    #[arg(long, value_name = "PLUGIN.json", value_hint = clap::ValueHint::FilePath)]
    pub config: Option<String>,
    /// Traffic, one exchange per line; - reads standard input
    #[arg(long, value_name = "TRAFFIC.jsonl", value_hint = clap::ValueHint::FilePath)]
    pub input: String,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Seed of the record ids, to make them reproducible (default: random)
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// What `simulate` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One audit record per line
    Json,
    /// A table for people
    Table,
}

/// Where the policy comes from: exactly one of `--policy` and `--config` (clap checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    Policy(&'a str),
    Config(&'a str),
}

impl Args {
    pub fn source(&self) -> Result<Source<'_>, Failure> {
        match (&self.policy, &self.config) {
            (Some(p), None) => Ok(Source::Policy(p)),
            (None, Some(c)) => Ok(Source::Config(c)),
            _ => Err(super::usage_error(
                "simulate",
                "give exactly one of --policy FILE and --config PLUGIN.json",
            )),
        }
    }
}

pub fn run(args: &Args, out: &mut dyn Write, _err: &mut dyn Write) -> Result<Exit, Failure> {
    let config = match args.source()? {
        Source::Policy(file) => {
            let bytes = std::fs::read(file).map_err(|e| format!("{file}: cannot read: {e}"))?;
            config_for_policy(&bytes).map_err(|e| format!("{file}: {e}"))?
        }
        Source::Config(file) => {
            let bytes = std::fs::read(file).map_err(|e| format!("{file}: cannot read: {e}"))?;
            Rc::new(PluginConfig::from_json(&bytes).map_err(|e| format!("{file}: {e}"))?)
        }
    };
    run_inner(args, &config, out)?;
    Ok(Exit::Ok)
}

fn run_inner(args: &Args, config: &Rc<PluginConfig>, out: &mut dyn Write) -> Result<(), String> {
    let input = &args.input;
    let format = args.format;
    let seed = args.seed.unwrap_or_else(default_seed);
    let reader: Box<dyn BufRead> = if input == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(input).map_err(|e| format!("{input}: {e}"))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut ids = IdGenerator::new(seed);
    let mut rows = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{input}: line {}: {e}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let sim = simulate(config, &parse_line(&line), i + 1, &mut ids, now_ms());
        if format == Format::Json {
            writeln!(out, "{}", super::table::json(&sim.record.to_json()))
                .map_err(|e| e.to_string())?;
        } else {
            rows.push(table_row(&sim));
        }
    }
    if format == Format::Table {
        let header = [
            "request_id",
            "decision",
            "enforced",
            "reason_code",
            "rules",
            "client",
            "user",
            "model",
            "injection",
        ];
        write!(out, "{}", super::table::render(&header, &rows)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn table_row(sim: &Simulated) -> Vec<String> {
    let r = &sim.record;
    vec![
        r.request_id.clone(),
        r.decision.to_string(),
        if r.enforced { "yes" } else { "no" }.into(),
        r.reason_code.clone(),
        if r.triggered_rules.is_empty() {
            "-".into()
        } else {
            r.triggered_rules.join(",")
        },
        sim.client.clone(),
        r.policy_user.clone().unwrap_or_else(|| "-".into()),
        r.model.clone().unwrap_or_else(|| "-".into()),
        injection_score(r),
    ]
}

/// The highest prompt-injection score of the exchange (request or response), or `-`.
fn injection_score(r: &AuditRecord) -> String {
    let response = r.response.as_ref().and_then(|p| p.prompt_injection_score);
    match (r.request.prompt_injection_score, response) {
        (None, None) => "-".into(),
        (a, b) => format!("{:.2}", a.unwrap_or(0.0).max(b.unwrap_or(0.0))),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn default_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    crate::audit::id::splitmix64(nanos ^ (u64::from(std::process::id()) << 32))
}
