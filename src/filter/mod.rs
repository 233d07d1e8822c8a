//! The proxy-wasm glue: the only code that talks to the host. It moves bytes between Envoy
//! and the core (config, attribution, engine, audit, sinks) and never decides anything itself.
//!
//! One VM per worker: each has its root context (configuration, audit queues, sink calls on
//! tick) and one HTTP context per request, sharing per-VM state through `Rc`. The host's
//! callbacks reach them through our own exports (`dispatch`), not the proxy-wasm SDK's.

mod abi;
mod dispatch;
#[cfg(feature = "fault-injection")]
mod fault;
mod host;
mod http;
mod logger;
mod metrics;
mod root;
mod timing;
