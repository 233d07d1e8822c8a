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
mod logger;
mod metrics;
mod root;
mod timing;

// `main!` expands to the `#[no_mangle] _initialize` export the host calls.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        // Not the SDK's logger (`proxy_wasm::set_log_level`): it traps on a refused log call.
        super::logger::install();
        // Replaces the SDK's panic hook, whose message could carry request bytes.
        super::host::install_panic_hook();
        proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
            Box::new(super::root::Root::new())
        });
    }}
}
