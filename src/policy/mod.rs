//! Policies: the document model, its compilation, canary bucketing and evaluation.

pub mod compile;
pub mod document;
pub mod rollout;

pub use compile::{Policy, PolicyError, Rule};
pub use document::{Action, RolloutMode};
