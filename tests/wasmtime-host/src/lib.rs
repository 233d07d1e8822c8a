//! A small proxy-wasm host on wasmtime that runs the shipped filter module
//! (`target/policy_gateway.wasm`, from `make wasm`) outside Envoy.
//!
//! PyPI's Envoy runs V8 only, while other proxy-wasm hosts (APISIX, Kong's ngx_wasm_module,
//! MOSN) run wasmtime or WAMR-class runtimes. This host is a second runtime and a second
//! implementation of the ABI (0.2.1), written from the spec: it implements the imports the
//! filter calls ([`host::IMPLEMENTED`]) and answers any other with a status that tests
//! fail on. Since it needs no Envoy, it also reaches what Envoy cannot be made to do on
//! demand: header bytes that are not UTF-8 everywhere, trailers on both sides, a host that
//! refuses a changed body, a VM that traps and a fresh one after it.
//!
//! Layout: [`abi`] (numbers and map serialisation), [`host`] (host functions, VMs, calls,
//! ticks), [`exchange`] (one HTTP exchange with Envoy's buffering semantics), [`sink`] (the
//! harness as the Splunk HEC sink).
//!
//! Cranelift to native code, not Pulley (the same Cranelift, then an interpreter): measured
//! on the 2-core machine, Pulley built as long, compiled the module slower and ran the
//! tests 40 times slower (numbers in Cargo.toml).

pub mod abi;
pub mod exchange;
pub mod host;
pub mod sink;

pub use exchange::{Exchange, Message, Outcome, Received, Teardown};
pub use host::{Answer, Call, Options, Proxy, Runtime, Vm, VmError};

/// The shipped module: `POLICY_GATEWAY_WASM`, else `target/policy_gateway.wasm` of the
/// repository this crate sits in.
pub fn module_path() -> std::path::PathBuf {
    match std::env::var_os("POLICY_GATEWAY_WASM") {
        Some(p) => p.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/policy_gateway.wasm"),
    }
}
