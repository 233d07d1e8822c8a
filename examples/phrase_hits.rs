//! For the classifier experiments (`training/injection/feature_experiment.py`): prints, for
//! every held-out row of `training/injection/data` (files in name order, rows in file order),
//! 1 when the phrase tier alone flags it, else 0, one per line.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use policy_gateway::detect::prompt_injection::phrases_found;

#[path = "../tests/common/corpus.rs"]
mod corpus;

fn main() {
    for row in corpus::held_out() {
        println!("{}", u8::from(phrases_found(row["text"].as_str().unwrap())));
    }
}
