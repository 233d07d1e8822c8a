//! What the integration tests share (Cargo's layout for it: a folder, so it is no test of
//! its own). Each test uses part of it.
#![allow(dead_code, unused_imports)]

/// Native only: it reads from disk.
#[cfg(not(target_arch = "wasm32"))]
pub mod corpus;

#[path = "../../src/test_rng.rs"]
mod test_rng;

pub use test_rng::*;
