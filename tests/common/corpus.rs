//! The held-out split of the injection training corpus (`training/injection/data`, rows with
//! `"split": "test"`: never fitted, never used for the operating point), in the order
//! `training/injection/feature_experiment.py` expects it: files in name order, rows in file
//! order. Read by `tests/injection_held_out.rs` and `examples/phrase_hits.rs` (by path).

use serde_json::Value;

pub fn held_out() -> Vec<Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/training/injection/data");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    let mut rows = Vec::new();
    for p in paths {
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            let row: Value = serde_json::from_str(line).unwrap();
            if row["split"] == "test" {
                rows.push(row);
            }
        }
    }
    rows
}
