//! Profiling aid for `detect::automaton` against the aho-corasick crate's DFA (a
//! dev-dependency, the oracle of `tests/automaton.rs`): `prof_automaton ours|ac [case]
//! [iters]` runs the prefilter's overlapping search (the secret prefixes and the default
//! policy's keyword terms, ASCII case-insensitive) over the engine benchmark's bodies `iters`
//! times; `ours1|ac1` a custom pattern's one literal (`EMP-`, non-overlapping, as
//! `detect::custom` searches it); `oursu|oursus` a literal with a common first byte
//! (`user1@`, or `LITERAL` from the environment) without the memchr skip (as built) and with it forced. Run under cachegrind with 1 and N iterations and subtract,
//! so the builds are not counted.
#![allow(clippy::unwrap_used)]
use std::hint::black_box;

use aho_corasick::{AhoCorasick, AhoCorasickKind};
use policy_gateway::detect::automaton::{Automaton, MatchKind};
use policy_gateway::detect::secrets;

#[allow(dead_code)]
#[path = "../benches/support/inputs.rs"]
mod inputs;

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let only: Option<String> = std::env::args().nth(2);
    let iters: u32 = std::env::args().nth(3).map_or(1, |s| s.parse().unwrap());
    let mut patterns: Vec<&str> = secrets::prefixes().collect();
    patterns.extend(["Project Nightingale", "Codename Bluebird"]);
    let ours = Automaton::new(&patterns, MatchKind::Standard, true).unwrap();
    let ac = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .kind(Some(AhoCorasickKind::DFA))
        .build(&patterns)
        .unwrap();
    let ours1 = Automaton::new(["EMP-"], MatchKind::Standard, false).unwrap();
    let ac1 = AhoCorasick::new(["EMP-"]).unwrap();
    let lit = std::env::var("LITERAL").unwrap_or_else(|_| "user1@".into());
    let oursu = Automaton::new([lit.as_str()], MatchKind::Standard, false).unwrap();
    let oursus = oursu.clone().with_skip();
    for (name, body) in inputs::cases() {
        if only.as_deref().is_some_and(|o| name != o) {
            continue;
        }
        for _ in 0..iters {
            let text = black_box(body.as_slice());
            let hits = match which.as_str() {
                "ac" => ac
                    .find_overlapping_iter(text)
                    .map(|m| m.end())
                    .sum::<usize>(),
                "ac1" => ac1.find_iter(text).map(|m| m.end()).sum(),
                "ours1" => ours1.find_iter(text).map(|h| h.end).sum(),
                "oursu" => oursu.find_iter(text).map(|h| h.end).sum(),
                "oursus" => oursus.find_iter(text).map(|h| h.end).sum(),
                _ => ours.overlapping(text).map(|h| h.end).sum(),
            };
            black_box(hits);
        }
    }
}
