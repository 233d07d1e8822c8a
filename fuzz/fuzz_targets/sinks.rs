//! Every sink's answer classifier on an arbitrary status, headers and body (what a sink, a
//! proxy in front of it, or an attacker on its path may answer):
//! - no panic;
//! - nothing counts as delivered (or indexed, stored, a usable URL or token) unless the
//!   status says success: a record is never lost as "delivered" on an error answer;
//! - Elasticsearch: every record of the batch gets exactly one fate, and none is delivered on
//!   a non-2xx answer;
//! - reasons (logged) are one line and short, whatever the answer holds;
//! - a wait asked for by `Retry-After` is capped;
//! - secrets in an answer (a token, a presigned URL's signature) never show in reasons or
//!   `Debug`.
//!
//! Input: byte 0 picks the classifier; bytes 1-2 the status (half the time 100..=599);
//! byte 3 the batch length or ack id; then header lines (`name: value`, lossy UTF-8 as the
//! host's byte maps are read) up to a NUL byte; the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use policy_gateway::sinks::{azure_monitor, datadog_logs, elasticsearch, s3, splunk_hec, Outcome};

/// Longest reason a classifier may give (a log line), in characters.
const MAX_REASON_CHARS: usize = 512;
/// `Retry-After` cap (`MAX_RETRY_AFTER_MS` in `sinks`).
const MAX_RETRY_AFTER_MS: u64 = 3600 * 1000;

fn success(status: u16) -> bool {
    (200..300).contains(&status)
}

fn check_reason(reason: &str) {
    assert!(
        !reason.chars().any(char::is_control),
        "reason has control characters: {reason:?}"
    );
    assert!(
        reason.chars().count() <= MAX_REASON_CHARS,
        "reason of {} chars",
        reason.chars().count()
    );
}

fn check(outcome: &Outcome, status: u16) {
    match outcome {
        Outcome::Delivered => assert!(success(status), "delivered on {status}"),
        Outcome::Retry { reason, after_ms } => {
            check_reason(reason);
            assert!(after_ms.is_none_or(|ms| ms <= MAX_RETRY_AFTER_MS));
        }
        Outcome::Drop { reason } => check_reason(reason),
    }
}

/// JSON string values of `key` anywhere in the body.
fn strings_of(body: &[u8], key: &str) -> Vec<String> {
    fn walk(v: &serde_json::Value, key: &str, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if let (true, Some(s)) = (k == key, v.as_str()) {
                        out.push(s.to_string());
                    }
                    walk(v, key, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, key, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_slice(body) {
        walk(&v, key, &mut out);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [which, hi, lo, n, rest @ ..] = data else {
        return;
    };
    let raw = u16::from_be_bytes([*hi, *lo]);
    let status = if raw & 0x8000 == 0 {
        100 + raw % 500
    } else {
        raw & 0x7fff
    };
    let (head, body) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (
            rest.get(..i).unwrap_or_default(),
            rest.get(i + 1..).unwrap_or_default(),
        ),
        None => (&[][..], rest),
    };
    let headers: Vec<(String, String)> = head
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let i = line.iter().position(|&b| b == b':')?;
            let (name, value) = line.split_at(i);
            Some((
                String::from_utf8_lossy(name).to_ascii_lowercase(),
                String::from_utf8_lossy(value.get(1..).unwrap_or_default()).into_owned(),
            ))
        })
        .collect();
    match which % 8 {
        0 => check(&splunk_hec::classify(status, body), status),
        1 => {
            let ack = u64::from(*n);
            match splunk_hec::ack_status(status, body, ack) {
                splunk_hec::AckStatus::Indexed => assert!(success(status)),
                splunk_hec::AckStatus::Pending => assert!(success(status)),
                splunk_hec::AckStatus::Failed(o) => {
                    assert_ne!(o, Outcome::Delivered);
                    check(&o, status);
                }
            }
            let _ = splunk_hec::ack_id(body);
        }
        2 => check(&datadog_logs::classify(status, body), status),
        3 => {
            let len = usize::from(*n);
            let b = elasticsearch::classify(status, body, len);
            let mut fates = vec![0u8; len];
            let dropped = b.dropped.iter().map(|(i, _)| i);
            for &i in b.delivered.iter().chain(&b.retry).chain(dropped) {
                assert!(i < len, "item {i} of a batch of {len}");
                if let Some(f) = fates.get_mut(i) {
                    *f += 1;
                }
            }
            assert!(fates.iter().all(|&f| f == 1), "fates {fates:?}");
            if !success(status) {
                assert!(b.delivered.is_empty());
            }
            for (_, reason) in &b.dropped {
                check_reason(reason);
            }
            if let Some(whole) = &b.whole {
                check(whole, status);
            }
        }
        4 => match s3::classify_put(status, body) {
            s3::PutOutcome::Stored => assert!(success(status)),
            // 412: `If-None-Match: *` found an object under the key; the shipper decides
            // whether it is this batch's (an earlier attempt) or another writer's.
            s3::PutOutcome::Exists(r) => {
                assert_eq!(status, 412);
                check_reason(&r)
            }
            s3::PutOutcome::Retry(r) | s3::PutOutcome::NewUrl(r) | s3::PutOutcome::Drop(r) => {
                check_reason(&r)
            }
        },
        5 => match s3::parse_presign_response(status, body) {
            Ok(p) => {
                assert_eq!(status, 200);
                assert!(!p.authority.is_empty() && !p.authority.contains('@'));
                assert!(p.path_and_query.starts_with('/'));
                for (name, value) in &p.headers {
                    assert!(!name.is_empty() && !name.bytes().any(|b| b.is_ascii_uppercase()));
                    assert!(!value.chars().any(|c| c.is_control() && c != '\t'));
                }
                let shown = format!("{p:?}");
                if let Some((_, query)) = p.path_and_query.split_once('?') {
                    if query.len() >= 16 {
                        assert!(!shown.contains(query), "Debug shows the URL's signature");
                    }
                }
            }
            Err(o) => {
                assert_ne!(o, Outcome::Delivered);
                check(&o, status);
            }
        },
        6 => {
            check(&azure_monitor::classify(status, &headers, body), status);
            let wait = policy_gateway::sinks::retry_after_ms(&headers);
            assert!(wait.is_none_or(|ms| ms <= MAX_RETRY_AFTER_MS));
        }
        _ => {
            let now_ms = 1_795_715_649_007u64.wrapping_add(u64::from(*n) << 30);
            let tokens = strings_of(body, "access_token");
            match azure_monitor::parse_token_response(status, body, now_ms) {
                Ok(t) => {
                    assert_eq!(status, 200);
                    assert!(t.expires_ms > now_ms && !t.access_token().is_empty());
                    let shown = format!("{t:?}");
                    if !t.access_token().bytes().all(|b| b.is_ascii_digit()) {
                        assert!(!shown.contains(t.access_token()), "Debug shows the token");
                    }
                }
                Err(o) => {
                    check(&o, status);
                    if let Outcome::Retry { reason, .. } | Outcome::Drop { reason } = &o {
                        let real =
                            |t: &&String| t.len() >= 16 && t.bytes().all(|b| b.is_ascii_graphic());
                        for t in tokens.iter().filter(real) {
                            assert!(!reason.contains(t.as_str()), "the reason quotes a token");
                        }
                    }
                }
            }
        }
    }
});
