//! The native `policy-gateway` command line, over the same core the filter runs.

pub mod chargeback;
pub mod check;
pub mod compare;
pub mod diff;
pub mod records;
pub mod simulate;
pub mod table;
pub mod trail;

use std::io::Write;

pub const USAGE: &str = "\
policy-gateway: check policies, simulate and diff traffic, and report over audit trails

USAGE:
    policy-gateway check FILE...
        Validate policy files; prints one line per file, exits 1 if any is invalid.

    policy-gateway simulate --policy FILE --input TRAFFIC.jsonl [--format json|table] [--seed N]
        Evaluate each input line and print one audit record per line (json, the default)
        or a table for people. A line is a request body, or an object
        {\"request\": <body>, \"headers\": {...}, \"response\": <body>, \"path\": \"/v1/...\"}.
        Headers used: x-request-id, x-user-id, x-project-id. --input - reads stdin.

    policy-gateway diff --from OLD.json --to NEW.json --input TRAFFIC.jsonl [--format table|json|csv]
        Replay traffic through both policies: decision transitions (allow->refuse, ...)
        with counts, the rules that start or stop matching, example request ids.

    policy-gateway trail [FILTERS] [--format jsonl|table|csv] RECORDS...
        The matching decision records, in time order, de-duplicated by record_id.

    policy-gateway chargeback [FILTERS] [--by project,user,model] [--format csv|table|json] RECORDS...
        Requests, refusals and tokens per group (estimated tokens counted apart), as CSV.

    policy-gateway compare [FILTERS] [--before POLICY_ID --after POLICY_ID] [--format table|json] RECORDS...
        How decision, rule and reason rates changed across a policy change (by default the
        last two policy ids in time order).
    policy-gateway compare --candidate [FILTERS] [--format table|json] RECORDS...
        On the same requests: the active decision against the candidate policy's shadow
        decision (records of a gateway configured with candidate_policy).

RECORDS: exported audit records: files or directories (recursively), JSON lines or a JSON
array, gzip or not, as any sink delivered them (S3 objects, Splunk HEC events or search
exports, Datadog logs, Elasticsearch documents, Azure Monitor rows); - reads stdin.
FILTERS: --from TIME (inclusive) --to TIME (exclusive) (ISO 8601, e.g. 2026-11-26 or
2026-11-26T09:30:00Z), --user, --project, --reason REASON_CODE, --decision, --policy POLICY_ID,
--rule RULE_ID, --type decision|policy_change|gap (default decision).
";

/// Runs the CLI; returns the process exit code.
pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let Some(cmd) = args.first() else {
        let _ = write!(err, "{USAGE}");
        return 2;
    };
    let rest = args.get(1..).unwrap_or_default();
    match cmd.as_str() {
        "check" => check::run(rest, out, err),
        "simulate" => simulate::run(rest, out, err),
        "trail" => trail::run(rest, out, err),
        "chargeback" => chargeback::run(rest, out, err),
        "compare" => compare::run(rest, out, err),
        "diff" => diff::run(rest, out, err),
        "help" | "--help" | "-h" => {
            let _ = write!(out, "{USAGE}");
            0
        }
        other => {
            let _ = writeln!(err, "unknown command \"{other}\"\n\n{USAGE}");
            2
        }
    }
}

/// Takes `--format` out of `args`: one of `allowed`, the first being the default.
pub(crate) fn take_format(args: &mut Vec<String>, allowed: &[&str]) -> Result<String, String> {
    let default = allowed.first().copied().unwrap_or_default();
    let format = take_flag(args, "--format")?.unwrap_or_else(|| default.to_string());
    if !allowed.contains(&format.as_str()) {
        return Err(format!(
            "--format {format}: expected {}",
            allowed.join(", ")
        ));
    }
    Ok(format)
}

/// Takes `--name VALUE` out of `args`; error if the flag is present without a value.
pub(crate) fn take_flag(args: &mut Vec<String>, name: &str) -> Result<Option<String>, String> {
    let Some(i) = args.iter().position(|a| a == name) else {
        return Ok(None);
    };
    if i + 1 >= args.len() {
        return Err(format!("{name} needs a value"));
    }
    let value = args.remove(i + 1);
    args.remove(i);
    Ok(Some(value))
}
