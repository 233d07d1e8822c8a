//! Issue 14's bars on the held-out split of the training corpus (`training/injection/data`,
//! rows with `"split": "test"`: never fitted, never used for the operating point), scored by
//! the shipped detector at the default `min_score`. A retrained model or a changed phrase tier
//! that drops below a bar fails here, not only in `make eval-injection`'s table. Native only:
//! it reads the corpus from disk.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use policy_gateway::detect::prompt_injection::{self, DEFAULT_MIN_SCORE};
use serde_json::Value;

/// The languages the issue names besides English.
const NAMED: [&str; 10] = ["es", "fr", "de", "it", "pt", "nl", "ru", "zh", "ja", "ko"];

struct Scored {
    hit: bool,
    row: Value,
}

fn held_out() -> Vec<Scored> {
    common::corpus::held_out()
        .into_iter()
        .map(|row| {
            let mut found = Vec::new();
            let score = prompt_injection::assess(row["text"].as_str().unwrap(), &mut found);
            Scored {
                hit: score >= DEFAULT_MIN_SCORE,
                row,
            }
        })
        .collect()
}

/// Share of `rows` matching `pick` that the detector flags, and how many matched.
fn rate(rows: &[Scored], pick: impl Fn(&Value) -> bool) -> (f64, usize) {
    let picked: Vec<_> = rows.iter().filter(|s| pick(&s.row)).collect();
    let hits = picked.iter().filter(|s| s.hit).count();
    (hits as f64 / picked.len().max(1) as f64, picked.len())
}

#[test]
fn held_out_recall_and_false_alarms_meet_the_issue_bars() {
    let rows = held_out();
    let attack = |v: &Value| v["label"] == 1;
    let bars = [
        (
            "direct English",
            0.85,
            rate(&rows, |v| {
                attack(v) && v["lang"] == "en" && v["category"] == "direct"
            }),
        ),
        (
            "indirect",
            0.70,
            rate(&rows, |v| attack(v) && v["category"] == "indirect"),
        ),
        (
            "obfuscated",
            0.70,
            rate(&rows, |v| attack(v) && v["category"] == "obfuscated"),
        ),
        (
            "the ten named languages",
            0.70,
            rate(&rows, |v| {
                attack(v) && NAMED.contains(&v["lang"].as_str().unwrap())
            }),
        ),
    ];
    for (name, bar, (recall, n)) in bars {
        assert!(n > 30, "{name}: only {n} held-out attacks");
        assert!(recall >= bar, "{name}: recall {recall:.3} of {n} < {bar}");
    }
    let (false_alarms, n) = rate(&rows, |v| v["label"] == 0);
    assert!(n >= 2000, "only {n} benign held-out texts");
    assert!(
        false_alarms <= 0.01,
        "false alarms {false_alarms:.4} of {n} > 1%"
    );
}
