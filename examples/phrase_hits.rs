//! For the classifier experiments (`training/injection/feature_experiment.py`): prints, for
//! every held-out row of `training/injection/data` (files in name order, rows in file order),
//! 1 when the phrase tier alone flags it, else 0, one per line.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use policy_gateway::detect::prompt_injection::phrases_found;
fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/training/injection/data");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    for p in paths {
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            if row["split"] == "test" {
                println!("{}", u8::from(phrases_found(row["text"].as_str().unwrap())));
            }
        }
    }
}
