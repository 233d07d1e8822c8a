//! Placeholder: being written.
use super::Finding;

pub fn scan(_text: &str, _out: &mut Vec<Finding>) {}
