//! TEST-ONLY fault injection (cargo feature `fault-injection`, built by `make wasm-fault` into
//! `target/policy_gateway_fault.wasm`; never part of `make wasm`, `make demo` or a release).
//! A request carrying `x-policy-gateway-fault: trap` makes the VM trap, as a bug would (`panic`:
//! through a Rust panic, so the panic hook runs), so the
//! end-to-end tests can prove that a VM's death under `failure_policy: FAIL_RELOAD` loses no
//! audit record silently (`sinks::ledger`). A request whose id is [`SHIPPER_TRAP_ID`] makes
//! the audit shipper trap once it has taken that request's record in (it never runs request
//! code itself), for the test that workers take over from a dead shipper. A request whose id
//! is [`FORWARDER_TRAP_ID`] makes a forwarding worker trap when it takes that record over from
//! a dead VM (`Shared::recover_pending`), for the test that the dead VM's gap record survives
//! its claimer. Everything else is the shipped filter, unchanged.

use super::abi::{Action, MapType};
use super::http::Http;

pub const HEADER: &str = "x-policy-gateway-fault";

/// The `x-request-id` whose record makes the shipper trap.
pub const SHIPPER_TRAP_ID: &str = "policy-gateway-fault-trap-shipper";

/// The shipper: traps, as a bug would, if a record it took in is the trap request's.
pub fn trap_shipper_if_asked(records: &[crate::sinks::relay::Relayed]) {
    let marker = format!("\"request_id\":\"{SHIPPER_TRAP_ID}\"");
    if records.iter().any(|r| r.json.contains(&marker)) {
        log::warn!("policy_gateway: fault injection: trapping the audit shipper");
        std::process::abort();
    }
}

/// The `x-request-id` whose record makes a forwarding worker trap as it takes it over.
pub const FORWARDER_TRAP_ID: &str = "policy-gateway-fault-trap-forwarder";

/// A forwarding worker taking over what a dead VM left (`message`, a batch as
/// `relay::recover_left` hands it): traps, as a bug would, if it holds the trap request's
/// record.
pub fn trap_forwarder_if_asked(message: &[u8]) {
    let marker = format!("\"request_id\":\"{FORWARDER_TRAP_ID}\"");
    if message
        .windows(marker.len())
        .any(|w| w == marker.as_bytes())
    {
        log::warn!("policy_gateway: fault injection: trapping a forwarding worker");
        std::process::abort();
    }
}

/// The shipped HTTP context, behind a check for the fault header.
pub struct Trap(pub Http);

impl Trap {
    pub fn new(http: Http) -> Trap {
        Trap(http)
    }

    pub fn on_http_request_headers(&mut self, end_of_stream: bool) -> Action {
        let headers = super::host::header_map(MapType::RequestHeaders);
        if headers.all(HEADER).any(|v| v == b"trap") {
            log::warn!("policy_gateway: fault injection: trapping this VM");
            // A wasm `unreachable`: the VM fails, as on a panic.
            std::process::abort();
        }
        if headers.all(HEADER).any(|v| v == b"panic") {
            // A panic whose message holds request data, as a bug's might: the panic hook
            // must log where, never what (the wasmtime host's test of the hook).
            #[allow(clippy::panic)]
            {
                panic!("fault injection: request data that must never be logged");
            }
        }
        self.0.on_http_request_headers(end_of_stream)
    }

    pub fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.0.on_http_request_body(body_size, end_of_stream)
    }

    pub fn on_http_request_trailers(&mut self) -> Action {
        self.0.on_http_request_trailers()
    }

    pub fn on_http_response_headers(&mut self, end_of_stream: bool) -> Action {
        self.0.on_http_response_headers(end_of_stream)
    }

    pub fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.0.on_http_response_body(body_size, end_of_stream)
    }

    pub fn on_http_response_trailers(&mut self) -> Action {
        self.0.on_http_response_trailers()
    }

    pub fn on_log(&mut self) {
        self.0.on_log()
    }
}
