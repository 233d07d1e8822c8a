//! Glue-level cases that need no Envoy.
