//! Policy Gateway: inline policy enforcement and audit records for LLM API traffic.
//!
//! The crate is a pure core that knows nothing about proxy-wasm:
//! - [`policy`]: the policy document, its validation and compilation, evaluation into a decision;
//! - [`detect`]: built-in detectors (PII, secrets, prompt injection), keyword and custom matchers;
//! - [`llm`]: LLM API body formats (OpenAI, Anthropic): text extraction and write-back;
//! - [`engine`]: one body judged (hits, one `decide()`, edits, the verdict or a `Refusal`),
//!   and streamed responses inspected as they pass;
//! - [`audit`]: the audit record schema, record ids and timestamps;
//! - [`config`] and [`error`]: the plugin configuration, checked once, and its one error type;
//! - [`sinks`]: audit delivery: each sink's configuration and protocol, batching and retries,
//!   a VM's outbox and its ledger;
//! - [`headers`]: header maps as the host hands them over (raw bytes, repeated names);
//! - [`exchange`]: one exchange from first header to audit record, over a small host trait;
//! - [`sort`]: the one stable sort the module compiles (size).
//!
//! The proxy-wasm glue and the native CLI sit on top of this core and only move bytes.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable
    )
)]

pub mod audit;
#[cfg(all(feature = "cli", not(target_arch = "wasm32")))]
pub mod cli;
pub mod config;
pub mod detect;
pub mod engine;
pub mod error;
pub mod exchange;
#[cfg(feature = "filter")]
pub mod filter;
pub mod headers;
pub mod llm;
pub mod policy;
pub mod sha256;
pub mod sinks;
pub mod sort;
#[cfg(test)]
mod test_rng;
