//! The proxy-wasm glue: the only code that talks to the host. It moves bytes between Envoy
//! and the core (config, attribution, engine, audit, sinks) and never decides anything itself.
//!
//! One VM per worker: each has its root context (configuration, audit queues, sink calls on
//! tick) and one HTTP context per request, sharing per-VM state through `Rc`.

mod abi;
#[cfg(feature = "fault-injection")]
mod fault;
mod host;
mod http;
mod metrics;
mod root;
mod timing;

use proxy_wasm::types::LogLevel;

// `main!` expands to the `#[no_mangle] _initialize` export the host calls.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(super::LogLevel::Info);
        // Replaces the SDK's panic hook, whose message could carry request bytes.
        super::host::install_panic_hook();
        proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
            Box::new(super::root::Root::new())
        });
    }}
}
