//! The native `policy-gateway` command line, over the same core the filter runs.

pub mod check;
pub mod simulate;
pub mod table;

use std::io::Write;

pub const USAGE: &str = "\
policy-gateway: check policies and simulate traffic through them

USAGE:
    policy-gateway check FILE...
        Validate policy files; prints one line per file, exits 1 if any is invalid.

    policy-gateway simulate --policy FILE --input TRAFFIC.jsonl [--format json|table] [--seed N]
        Evaluate each input line and print one audit record per line (json, the default)
        or a table for people. A line is a request body, or an object
        {\"request\": <body>, \"headers\": {...}, \"response\": <body>, \"path\": \"/v1/...\"}.
        Headers used: x-request-id, x-user-id, x-project-id. --input - reads stdin.
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
