//! `policy-gateway check FILE...`: validate policy files. What a file says (its id, the names
//! an error quotes) is shown through [`display`]: a policy under review may be hostile.

use std::io::Write;

use super::table::display;
use super::{Exit, Failure};
use crate::policy::Policy;

/// Validate policy files
///
/// Prints one line per valid file on standard output (its policy id, rule count and rollout)
/// and each error or warning on standard error, naming the rule and field.
#[derive(Debug, Clone, clap::Args)]
#[command(
    verbatim_doc_comment,
    after_help = "\
Examples:
  policy-gateway check policies/*.json
  policy-gateway check candidate.json || exit 1    # in CI: stop on an invalid policy

Exit status: 0 every policy is valid, 1 a policy is invalid or cannot be read, 2 usage error."
)]
pub struct Args {
    /// Policy files (JSON)
    #[arg(value_name = "FILE", required = true, value_hint = clap::ValueHint::FilePath)]
    pub files: Vec<String>,
}

pub fn run(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> Result<Exit, Failure> {
    let mut failed = false;
    for file in &args.files {
        match load(file) {
            Ok(policy) => {
                let _ = writeln!(
                    out,
                    "{file}: ok: {} ({} rules, rollout {})",
                    display(&policy.policy_id),
                    policy.rules.len(),
                    policy.rollout.mode.name()
                );
                for w in &policy.warnings {
                    let _ = writeln!(err, "{file}: warning: {}", display(w));
                }
            }
            Err(e) => {
                failed = true;
                let _ = writeln!(err, "{file}: error: {}", display(&e));
            }
        }
    }
    Ok(if failed { Exit::Invalid } else { Exit::Ok })
}

/// Reads and compiles a policy file; the error names the file's problem.
pub fn load(file: &str) -> Result<Policy, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
    Policy::from_json(&bytes).map_err(|e| e.to_string())
}
