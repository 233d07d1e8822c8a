//! `policy-gateway check FILE...`: validate policy files. What a file says (its id, the names
//! an error quotes) is shown through [`display`]: a policy under review may be hostile.

use std::io::Write;

use super::table::display;
use crate::policy::Policy;

pub fn run(files: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if files.is_empty() {
        let _ = writeln!(err, "check: give at least one policy file");
        return 2;
    }
    let mut failed = false;
    for file in files {
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
    i32::from(failed)
}

/// Reads and compiles a policy file; the error names the file's problem.
pub fn load(file: &str) -> Result<Policy, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
    Policy::from_json(&bytes).map_err(|e| e.to_string())
}
