//! The `policy-gateway` binary: check and simulate, as a user runs them.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_policy-gateway"))
}

fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn tmp_file(name: &str, content: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pg-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn check_accepts_the_shipped_policies() {
    let out = run(&[
        "check",
        "policies/default.json",
        "policies/pii-strict.json",
        "policies/secrets.json",
        "policies/redact.json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("policies/default.json: ok: default@1"));
    assert_eq!(stdout.lines().count(), 4);
}

#[test]
fn check_fails_with_the_rule_and_field_named() {
    let bad = tmp_file(
        "bad.json",
        r#"{"id": "p", "version": "1", "rules": [
            {"id": "r", "category": "pii.x", "match": {"detectors": ["e-mail"]}, "action": "redact", "reason_code": "X"}]}"#,
    );
    let out = run(&["check", "policies/default.json", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("rules[0] \"r\".match.detectors[0]: unknown detector \"e-mail\""),
        "{stderr}"
    );
    let missing = run(&["check", "does-not-exist.json"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}

#[test]
fn simulate_prints_one_record_per_input_line() {
    let out = run(&[
        "simulate",
        "--policy",
        "policies/default.json",
        "--input",
        "policies/examples/traffic.jsonl",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let input = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/examples/traffic.jsonl"
    ))
    .unwrap();
    let records: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        records.len(),
        input.lines().filter(|l| !l.trim().is_empty()).count()
    );
    let ids: HashSet<&str> = records
        .iter()
        .map(|r| r["record_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), records.len(), "record ids are unique");
    for r in &records {
        assert_eq!(r["policy_id"], "default@1");
        assert_eq!(r["schema_version"], policy_gateway::audit::SCHEMA_VERSION);
    }
    // No prompt text leaks into records.
    for secret in [
        "jane.doe",
        "4111 1111",
        "sk-proj-",
        "Ignore all previous",
        "123-45-6780",
        "French Revolution",
    ] {
        assert!(!stdout.contains(secret), "record leaks {secret}");
    }
}

#[test]
fn simulate_reads_stdin_and_bare_bodies() {
    let mut child = bin()
        .args([
            "simulate",
            "--policy",
            "policies/default.json",
            "--input",
            "-",
            "--seed",
            "1",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n\nnot json at all\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["decision"], "allow");
    assert_eq!(lines[0]["request_id"], "sim-1");
    assert_eq!(lines[1]["reason_code"], "BODY_UNPARSEABLE");
    assert_eq!(lines[1]["decision"], "refuse");
}

#[test]
fn simulate_table_and_usage_errors() {
    let out = run(&[
        "simulate",
        "--policy",
        "policies/default.json",
        "--input",
        "policies/examples/traffic.jsonl",
        "--format",
        "table",
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("request_id"));
    assert!(stdout.contains("req-007"));

    let out = run(&["simulate", "--policy", "policies/default.json"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("required arguments were not provided:\n  --input <TRAFFIC.jsonl>"));
    assert!(
        stderr.contains("\nUsage: policy-gateway simulate "),
        "{stderr}"
    );
    let out = run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Every command: `--help` (and `-h`, `help COMMAND`) on stdout, exit 0, with its usage line,
/// examples and exit status.
#[test]
fn every_command_has_help_with_examples() {
    for command in [
        "",
        "check",
        "simulate",
        "diff",
        "trail",
        "chargeback",
        "compare",
        "completions",
    ] {
        let mut ways = vec![vec![command, "--help"], vec![command, "-h"]];
        if !command.is_empty() {
            ways.push(vec!["help", command]);
        }
        for args in ways {
            let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
            let out = run(&args);
            let help = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "{args:?}: {help}");
            assert!(out.stderr.is_empty(), "{args:?}");
            let usage = format!("Usage: policy-gateway {command}")
                .trim_end()
                .to_string();
            assert!(help.contains(&usage), "{args:?}: {help}");
            assert!(
                help.contains("\nExamples:\n  policy-gateway "),
                "{args:?}: {help}"
            );
            assert!(help.contains("Exit status"), "{args:?}: {help}");
        }
    }
    let top = stdout(&run(&["--help"]));
    for line in [
        "  0  success (check: every policy is valid)",
        "  1  check: a policy is invalid or cannot be read",
        "  2  usage error (the usage line is shown), or input that cannot be read or used",
    ] {
        assert!(top.contains(line), "{top}");
    }
    // Bare: the help, as a usage error.
    let bare = run(&[]);
    assert_eq!(bare.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bare.stderr).contains("Usage: policy-gateway <COMMAND>"));
}

#[test]
fn version() {
    for flag in ["--version", "-V"] {
        let out = stdout(&run(&[flag]));
        assert_eq!(
            out,
            format!("policy-gateway {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

/// A usage error: exit 2, nothing on stdout, the problem and the usage line on stderr.
fn assert_usage_error(args: &[&std::ffi::OsStr], usage: &str, says: &str) {
    let out = bin()
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}");
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    assert!(stderr.contains(says), "{args:?}: {stderr}");
    assert!(
        stderr.contains(&format!("\nUsage: policy-gateway {usage}")),
        "{args:?}: {stderr}"
    );
}

#[test]
fn usage_errors_show_the_usage_line_and_exit_2() {
    let os = |args: &[&str]| -> Vec<std::ffi::OsString> { args.iter().map(Into::into).collect() };
    for (args, usage, says) in [
        (&["check"][..], "check <FILE>...", "<FILE>..."),
        (
            &["frobnicate"],
            "<COMMAND>",
            "unrecognized subcommand 'frobnicate'",
        ),
        (
            &["trial", "x"],
            "<COMMAND>",
            "a similar subcommand exists: 'trail'",
        ),
        (
            &["trail", "--frm", "2026-11-26", "x"],
            "trail",
            "a similar argument exists: '--from'",
        ),
        (
            &["trail", "x", "--decision", "deny"],
            "trail [OPTIONS] <RECORDS>...",
            "[possible values: allow, rewrite, redact, escalate, refuse]",
        ),
        (
            &["trail", "--from", "yesterday", "x"],
            "trail [OPTIONS] <RECORDS>...",
            "not an ISO 8601 time",
        ),
        (
            &["trail", "--type", "policy-change", "x"],
            "trail [OPTIONS] <RECORDS>...",
            "policy_change",
        ),
        (
            &["trail", "--user"],
            "trail [OPTIONS] <RECORDS>...",
            "a value is required for '--user <USER>'",
        ),
        (
            &["chargeback", "--by", "team", "x"],
            "chargeback [OPTIONS] <RECORDS>...",
            "[possible values: project, user, model]",
        ),
        (
            &["compare", "--policy", "default@1", "x"],
            "compare [OPTIONS] <RECORDS>...",
            "--policy does not apply: use --before and --after",
        ),
        (
            &["compare", "--candidate", "--after", "default@2", "x"],
            "compare",
            "cannot be used with",
        ),
        (
            &["diff", "--from", "policies/default.json", "--input", "x"],
            "diff",
            "--to <NEW.json>",
        ),
        (
            &[
                "diff", "--from", "a", "--to", "b", "--input", "c", "--format", "xml",
            ],
            "diff [OPTIONS]",
            "[possible values: table, json, csv]",
        ),
        (
            &["simulate", "--input", "x"],
            "simulate",
            "<--policy <FILE>|--config <PLUGIN.json>>",
        ),
        (
            &["simulate", "--policy", "a", "--config", "b", "--input", "c"],
            "simulate",
            "'--policy <FILE>' cannot be used with '--config <PLUGIN.json>'",
        ),
        (
            &["simulate", "--policy", "a", "--input", "c", "--seed", "x"],
            "simulate [OPTIONS]",
            "invalid value 'x' for '--seed <N>'",
        ),
        (
            &["completions", "tcsh"],
            "completions <SHELL>",
            "[possible values: bash, elvish, fish, powershell, zsh]",
        ),
    ] {
        let args = os(args);
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        assert_usage_error(&refs, usage, says);
    }
}

/// An argument that is not UTF-8 is a usage error, not a crash.
#[cfg(unix)]
#[test]
fn arguments_that_are_not_utf8_are_usage_errors() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"policy\xff.json");
    assert_usage_error(&["check".as_ref(), bad], "check <FILE>...", "invalid UTF-8");
    assert_usage_error(
        &["trail".as_ref(), "--user".as_ref(), bad, "x".as_ref()],
        "trail [OPTIONS] <RECORDS>...",
        "invalid UTF-8",
    );
}

#[test]
fn completions_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _policy__gateway"),
        ("zsh", "#compdef policy-gateway"),
        ("fish", "complete -c policy-gateway"),
        ("powershell", "Register-ArgumentCompleter"),
        (
            "elvish",
            "set edit:completion:arg-completer[policy-gateway]",
        ),
    ] {
        let script = stdout(&run(&["completions", shell]));
        assert!(script.contains(marker), "{shell}: {script}");
        for word in ["simulate", "chargeback", "candidate"] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
    }
}

/// What bash completes after `words` (the last one being completed), with the script
/// `completions bash` prints loaded; None without bash.
fn bash_completes(words: &[&str]) -> Option<Vec<String>> {
    let script = tmp_file("completion.bash", &stdout(&run(&["completions", "bash"])));
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let n = words.len();
    let program = format!(
        "source '{}'; COMP_WORDS=(policy-gateway {}); COMP_CWORD={n}; \
         _policy__gateway policy-gateway {} {}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        quoted.last()?,
        if n > 1 {
            &quoted[n - 2]
        } else {
            "policy-gateway"
        },
    );
    let out = Command::new("bash").arg("-c").arg(program).output().ok()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

#[test]
fn bash_completes_commands_options_and_values() {
    if Command::new("bash").arg("--version").output().is_err() {
        eprintln!("no bash here: completion script not exercised");
        return;
    }
    let completes = |words: &[&str]| bash_completes(words).unwrap();
    assert_eq!(completes(&["tr"]), ["trail"]);
    assert_eq!(completes(&["compare", "--ca"]), ["--candidate"]);
    assert_eq!(
        completes(&["trail", "--decision", "re"]),
        ["rewrite", "redact", "refuse"]
    );
    assert_eq!(
        completes(&["chargeback", "--by", ""]),
        ["project", "user", "model"]
    );
    assert_eq!(completes(&["simulate", "--format", ""]), ["json", "table"]);
}

/// `policy-gateway simulate … | head -1`: the reader going away ends the command quietly, as
/// it does grep and ripgrep.
#[test]
fn a_reader_that_goes_away_is_not_an_error() {
    use std::io::{BufRead, BufReader};
    // Far more output than a pipe holds, so the writer is still writing when the reader leaves.
    let line = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n";
    let traffic = tmp_file("many.jsonl", &line.repeat(5_000));
    let mut child = bin()
        .args(["simulate", "--policy", "policies/default.json", "--input"])
        .arg(&traffic)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("\"decision\":\"allow\""), "{first}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        (Some(0), "")
    );
}

#[test]
fn simulate_takes_the_policy_from_a_plugin_configuration() {
    let policy: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies/default.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let config = tmp_file(
        "plugin.json",
        &serde_json::json!({"policy": policy, "instance_id": "gw-sim"}).to_string(),
    );
    let decisions = |source: &str, file: &str| -> Vec<(String, String)> {
        stdout(&run(&[
            "simulate",
            source,
            file,
            "--input",
            "policies/examples/traffic.jsonl",
            "--seed",
            "3",
        ]))
        .lines()
        .map(|l| {
            let r: Value = serde_json::from_str(l).unwrap();
            (r["decision"].to_string(), r["reason_code"].to_string())
        })
        .collect()
    };
    let by_config = decisions("--config", config.to_str().unwrap());
    assert_eq!(by_config.len(), 14);
    assert_eq!(by_config, decisions("--policy", "policies/default.json"));
    let broken = tmp_file("broken-plugin.json", r#"{"policy": 3}"#);
    let out = run(&[
        "simulate",
        "--config",
        broken.to_str().unwrap(),
        "--input",
        "policies/examples/traffic.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("simulate: "), "{stderr}");
    assert!(
        stderr.contains("broken-plugin.json: policy: invalid type"),
        "{stderr}"
    );
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// The shipped example traffic simulated under a policy: real records, as sinks deliver them.
fn simulated(policy: &str, seed: &str) -> String {
    stdout(&run(&[
        "simulate",
        "--policy",
        policy,
        "--input",
        "policies/examples/traffic.jsonl",
        "--seed",
        seed,
    ]))
}

#[test]
fn diff_reports_decision_transitions_with_rules_and_examples() {
    let diff = |format: &str| {
        stdout(&run(&[
            "diff",
            "--from",
            "policies/default.json",
            "--to",
            "policies/examples/default-v2.json",
            "--input",
            "policies/examples/traffic.jsonl",
            "--format",
            format,
        ]))
    };
    let out = diff("json");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["exchanges"], 14);
    assert_eq!(doc["changed"], 2);
    let t = |from: &str, to: &str| {
        doc["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["from"] == from && t["to"] == to)
            .cloned()
            .unwrap_or(Value::Null)
    };
    // The confidential project is refused instead of flagged.
    let esc = t("escalate", "refuse");
    assert_eq!(esc["count"], 1);
    assert_eq!(esc["examples"], serde_json::json!(["req-009"]));
    // The IBAN moves from the personal-data rule to the payment-card rule.
    let red = t("redact", "redact");
    assert_eq!(red["changed"], 1);
    assert_eq!(red["rules_added"]["redact-payment-cards"], 1);
    assert_eq!(red["rules_removed"]["redact-personal-data"], 1);
    let csv = diff("csv");
    assert!(csv.starts_with("transition,count,changed,rules added,rules removed,examples\r\n"));
    assert!(csv.contains("escalate→refuse,1,1,,,req-009\r\n"));
    let bad = run(&["diff", "--from", "policies/default.json", "--input", "x"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn trail_chargeback_and_compare_over_exported_records() {
    let v1 = simulated("policies/default.json", "1");
    let v2 = simulated("policies/examples/default-v2.json", "2");
    // As different sinks deliver them: plain JSONL (S3, gzip), HEC events, Datadog logs.
    let hec: String = v1
        .lines()
        .map(|l| format!("{{\"time\":1,\"event\":{l}}}\n"))
        .collect();
    let datadog: Vec<Value> = v2
        .lines()
        .map(|l| serde_json::json!({"message": l, "ddsource": "policy-gateway"}))
        .collect();
    let dir = std::env::temp_dir().join(format!("pg-cli-trail-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("dt=2026-11-26")).unwrap();
    std::fs::write(dir.join("hec.json"), &hec).unwrap();
    std::fs::write(dir.join("datadog.json"), Value::Array(datadog).to_string()).unwrap();
    // The same v1 records again, gzipped, as the S3 sink writes them: de-duplicated.
    std::fs::write(
        dir.join("dt=2026-11-26").join("gw-1.jsonl.gz"),
        policy_gateway::sinks::gzip::gzip(v1.as_bytes()),
    )
    .unwrap();
    let d = dir.display().to_string();

    let refused = stdout(&run(&[
        "trail",
        "--decision",
        "refuse",
        "--policy",
        "default@1",
        &d,
    ]));
    let ids: Vec<String> = refused
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["request_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, ["req-003", "req-004", "req-007", "req-014"]);
    let by_user = stdout(&run(&["trail", "--user", "mallory", "--format", "csv", &d]));
    assert_eq!(by_user.lines().count(), 1 + 4, "{by_user}");
    let by_rule = stdout(&run(&[
        "trail",
        "--rule",
        "redact-payment-cards",
        "--format",
        "table",
        &d,
    ]));
    assert_eq!(by_rule.lines().count(), 2 + 3, "{by_rule}");

    let cb = stdout(&run(&[
        "chargeback",
        "--policy",
        "default@1",
        "--by",
        "project",
        &d,
    ]));
    let support = cb.lines().find(|l| l.starts_with("proj-support,")).unwrap();
    // alice x2 (82 tokens), grace (69), mallory x2 refused.
    assert_eq!(support, "proj-support,5,2,104,47,151,0,0");

    let cmp = stdout(&run(&["compare", "--format", "json", &d]));
    let doc: Value = serde_json::from_str(&cmp).unwrap();
    assert_eq!(doc["before"]["policy_id"], "default@1");
    assert_eq!(doc["after"]["policy_id"], "default@2");
    assert_eq!(doc["before"]["requests"], 14);
    let rate = |m: &str| {
        doc["rates_percent"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["metric"] == m)
            .unwrap()["change_points"]
            .as_f64()
            .unwrap()
    };
    assert!((rate("decision refuse") - 7.14).abs() < 0.01);
    assert!((rate("decision escalate") + 7.14).abs() < 0.01);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Characters that must never reach a terminal or a spreadsheet as they are: controls (C0,
/// DEL, C1) and bidirectional overrides. `\n` ends lines (and `\r\n` in CSV).
fn assert_inert(what: &str, bytes: &[u8]) {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let text = text.replace("\r\n", "\n");
    for c in text.chars().filter(|&c| c != '\n') {
        assert!(
            !c.is_control() && !('\u{202a}'..='\u{202e}').contains(&c),
            "{what} writes {c:?}:\n{text}"
        );
    }
}

/// RFC 4180 fields of a CSV text; no field may start a spreadsheet formula.
fn assert_no_formula(what: &str, csv: &str) {
    for line in csv.split_terminator("\r\n") {
        let mut cells = vec![String::new()];
        let (mut quoted, mut chars) = (false, line.chars().peekable());
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    chars.next();
                    cells.last_mut().unwrap().push('"');
                }
                ('"', _) => quoted = !quoted,
                (',', false) => cells.push(String::new()),
                (c, _) => cells.last_mut().unwrap().push(c),
            }
        }
        for cell in cells.iter().filter(|c| c.as_str() != "-") {
            let first = cell.trim_start().chars().next();
            assert!(
                !matches!(first, Some('=' | '+' | '-' | '@' | '\u{ff1d}')),
                "{what}: cell {cell:?} is a formula in {line:?}"
            );
        }
    }
}

#[test]
fn hostile_record_fields_reach_no_terminal_or_spreadsheet_as_they_are() {
    let dir = std::env::temp_dir().join(format!("pg-cli-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let calc = "=cmd|' /C calc'!A0";
    let esc_model = "gpt-4o\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[31m";
    let record = |i: u32, policy: &str| {
        serde_json::json!({
            "record_type": "decision", "record_id": format!("r{i}"), "schema_version": "1.0",
            "timestamp": format!("2026-11-26T10:00:0{i}.000Z"), "request_id": format!("+{i}\u{9b}1m"),
            "policy_user": calc, "policy_project_id": "@SUM(1+1)\r\n=2", "model": esc_model,
            "response_model": if i % 2 == 0 { Value::Null } else { Value::from("-1+\u{ff1d}\u{202e}x") },
            "decision": "refuse", "enforced": true, "reason_code": "X\u{1b}[1A", "policy_id": policy,
            "triggered_rules": ["r\u{0}1"], "usage": {"prompt_tokens": 1, "completion_tokens": 2},
            "candidate": {"policy_id": "c\u{1b}", "decision": "allow"},
        })
        .to_string()
    };
    let lines: Vec<String> = (1..=4)
        .map(|i| record(i, if i < 3 { "p@1" } else { "p@2\u{1b}[8m" }))
        .collect();
    let records = dir.join("hostile.jsonl");
    std::fs::write(&records, lines.join("\n")).unwrap();
    let r = records.to_str().unwrap();

    let mut outputs: Vec<(String, Output)> = Vec::new();
    for args in [
        &["trail", "--format", "csv", r][..],
        &["trail", "--format", "table", r],
        &["chargeback", r],
        &["chargeback", "--format", "table", r],
        &["compare", r],
        &["compare", "--candidate", r],
        &["trail", "--policy", "p@\u{1b}[5m", "--format", "table", r],
    ] {
        outputs.push((args.join(" "), run(args)));
    }
    // Hostile requests through simulate and diff (request id, user, model from the client).
    // The exchange keeps only plain request ids (visible ASCII, no spaces): a formula without
    // spaces is one.
    let plain_calc = calc.replace(' ', "");
    let traffic: String = [plain_calc.as_str(), "req-a"]
        .iter()
        .map(|id| {
            serde_json::json!({
                "request": {"model": esc_model, "messages": [{"role": "user",
                            "content": "Give me the launch checklist for Project Nightingale."}]},
                "headers": {"x-request-id": id, "x-user-id": "@user\u{1b}[0m", "x-project-id": "proj-marketing"},
                "path": "/v1/chat/completions",
            })
            .to_string()
                + "\n"
        })
        .collect();
    let traffic_file = dir.join("traffic.jsonl");
    std::fs::write(&traffic_file, traffic).unwrap();
    let t = traffic_file.to_str().unwrap();
    for format in ["table", "csv"] {
        outputs.push((
            format!("diff {format}"),
            run(&[
                "diff",
                "--from",
                "policies/default.json",
                "--to",
                "policies/examples/default-v2.json",
                "--input",
                t,
                "--format",
                format,
            ]),
        ));
    }
    outputs.push((
        "simulate table".into(),
        run(&[
            "simulate",
            "--policy",
            "policies/default.json",
            "--input",
            t,
            "--format",
            "table",
        ]),
    ));
    let policy = dir.join("hostile-policy.json");
    std::fs::write(
        &policy,
        "{\"id\": \"p\\u001b[31m\", \"version\": \"1\\u001b]0;x\\u0007\", \"rules\": []}",
    )
    .unwrap();
    outputs.push(("check".into(), run(&["check", policy.to_str().unwrap()])));

    // JSON for tools: the same documents, with every hostile character escaped.
    for args in [
        &["trail", r][..],
        &["chargeback", "--format", "json", r],
        &["compare", "--format", "json", r],
        &["compare", "--candidate", "--format", "json", r],
    ] {
        outputs.push((args.join(" "), run(args)));
    }
    outputs.push((
        "simulate json".into(),
        run(&[
            "simulate",
            "--policy",
            "policies/default.json",
            "--input",
            t,
        ]),
    ));
    outputs.push((
        "diff json".into(),
        run(&[
            "diff",
            "--from",
            "policies/default.json",
            "--to",
            "policies/examples/default-v2.json",
            "--input",
            t,
            "--format",
            "json",
        ]),
    ));

    for (what, out) in &outputs {
        assert_inert(&format!("{what} (stdout)"), &out.stdout);
        assert_inert(&format!("{what} (stderr)"), &out.stderr);
        let text = String::from_utf8_lossy(&out.stdout);
        if what.contains("csv") || what.starts_with("chargeback r") || what == "chargeback" {
            assert_no_formula(what, &text);
        }
    }
    let text = |i: usize| String::from_utf8_lossy(&outputs[i].1.stdout).into_owned();
    // The hostile values are still there, readable and inert.
    assert!(text(0).contains("'=cmd|' /C calc'!A0"), "{}", text(0));
    assert!(
        text(1).contains("gpt-4o\\u{1b}]0;owned\\u{7}"),
        "{}",
        text(1)
    );
    assert_eq!(text(0).lines().count(), 1 + 4, "one line per record");
    assert_eq!(text(2).lines().count(), 1 + 2, "{}", text(2));
    assert!(text(4).contains("p@2\\u{1b}[8m"), "{}", text(4));
    assert!(text(8).contains("'=cmd|"), "{}", text(8));
    let trail: Vec<Value> = text(11)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let input: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(trail, input, "JSON output means what the records say");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `trail verify` as an auditor runs it: exit 0 on an intact HEC export, 1 once a record is
/// deleted or edited or the key is not the gateway's, in every output format.
#[test]
fn trail_verify_exits_1_on_tampering_in_every_format() {
    use policy_gateway::audit::chain::{Chain, TrailConfig};
    let key = "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=";
    let config = TrailConfig {
        checkpoint_records: 3,
        checkpoint_interval_ms: 0,
        key_id: Some("k1".into()),
        hmac_key: Some(key.into()),
    };
    let mut chain = Chain::new(&config, "gw", 9, 1_000);
    let mut events = Vec::new();
    for i in 0..7u64 {
        let r = serde_json::json!({"schema_version": "1.2", "record_type": "decision",
            "record_id": format!("r{i}"), "timestamp": "2026-11-26T10:00:00.000Z",
            "decision": "refuse", "gateway": "gw"});
        events.push(chain.link(&r.to_string()).json);
        if chain.checkpoint_due(1_000 + i) {
            events.push(chain.checkpoint(1_000 + i, false).unwrap().json);
        }
    }
    events.push(chain.checkpoint(2_000, true).unwrap().json);
    let hec = |events: &[String]| -> String {
        events
            .iter()
            .map(|e| format!("{{\"time\":1,\"event\":{e}}}\n"))
            .collect()
    };
    let intact = tmp_file("verify-intact.jsonl", &hec(&events));
    let mut cut = events.clone();
    cut.remove(1);
    let deleted = tmp_file("verify-deleted.jsonl", &hec(&cut));
    let mut edited = events.clone();
    edited[2] = edited[2].replace("\"refuse\"", "\"allow\"");
    let edited = tmp_file("verify-edited.jsonl", &hec(&edited));
    let good_key = tmp_file("verify.key", key);
    let other_key = tmp_file(
        "verify-other.key",
        "BgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgY=",
    );
    let verify = |format: &str, key: &std::path::Path, path: &std::path::Path| {
        let key = format!("k1={}", key.display());
        let out = run(&[
            "trail",
            "verify",
            "--format",
            format,
            "--key",
            &key,
            path.to_str().unwrap(),
        ]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    for format in ["table", "json", "csv"] {
        let (code, text) = verify(format, &good_key, &intact);
        assert_eq!(code, Some(0), "{format}: {text}");
        assert!(text.contains("intact"), "{format}: {text}");
        for (path, finding) in [(&deleted, "missing"), (&edited, "altered")] {
            let (code, text) = verify(format, &good_key, path);
            assert_eq!(code, Some(1), "{format}, {finding}: {text}");
            assert!(text.contains(finding), "{format}: {text}");
        }
        let (code, text) = verify(format, &other_key, &intact);
        assert_eq!(code, Some(1), "{format}, another key: {text}");
        assert!(text.contains("bad_signature"), "{format}: {text}");
    }
}
