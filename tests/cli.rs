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
