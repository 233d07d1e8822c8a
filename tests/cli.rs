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
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("policies/default.json: ok: default@1"));
    assert_eq!(stdout.lines().count(), 3);
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
        assert_eq!(r["schema_version"], "1.0");
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
    assert!(String::from_utf8_lossy(&out.stderr).contains("--input FILE is required"));
    let out = run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
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
