//! What the integration tests share (Cargo's layout for it: a folder, so it is no test of
//! its own). Each test uses part of it.
#![allow(dead_code)]

#[path = "../../src/test_rng.rs"]
mod test_rng;

pub use test_rng::*;
