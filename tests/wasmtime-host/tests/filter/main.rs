//! The shipped filter module (`target/policy_gateway.wasm`) under wasmtime: the shared
//! scenario table and stream cases, then glue-level cases Envoy cannot be made to produce.
//! One test binary, so the module is compiled once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
mod glue;
mod scenarios;
