//! Prints the prompt-injection score of each line of standard input (a development aid).
#![allow(clippy::unwrap_used)]
use std::io::BufRead;
fn main() {
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap().replace("\\n", "\n");
        let mut out = Vec::new();
        let s = policy_gateway::detect::prompt_injection::assess(&line, &mut out);
        println!("{s:.3}\t{}", line.chars().take(80).collect::<String>());
    }
}
