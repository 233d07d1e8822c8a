//! Thin, panic-free wrappers over proxy-wasm host calls. The SDK's trait methods `unwrap`
//! host errors (a trap that kills the worker's VM); these return Options instead. Header maps
//! are read as raw bytes through the ABI itself: the SDK's map getters, even `get_map_bytes`,
//! `unwrap` a UTF-8 conversion, so one latin-1 byte in a header would kill the VM.

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use crate::config::attribution::RequestView;
use crate::headers::{HeaderMap, Lookup};

pub fn now_ms() -> u64 {
    now_nanos() / 1_000_000
}

pub fn now_nanos() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64)
}

pub fn set_request_header(name: &str, value: Option<&str>) {
    let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value);
}

pub fn set_response_header(name: &str, value: Option<&str>) {
    let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, value);
}

pub fn buffer(kind: BufferType, size: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(kind, 0, size).ok().flatten()
}

pub fn replace_buffer(kind: BufferType, old_size: usize, body: &[u8]) -> bool {
    hostcalls::set_buffer(kind, 0, old_size, body).is_ok()
}

/// Ends the response with a reset: for when nothing safe can be sent any more.
pub fn reset_response() {
    let _ = hostcalls::reset_http_response();
}

pub fn send_response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> bool {
    hostcalls::send_http_response(u32::from(status), headers.to_vec(), Some(body)).is_ok()
}

/// Why Envoy ended the response (`response.code_details`), e.g. `downstream_remote_disconnect`.
pub fn response_code_details() -> Option<String> {
    property_string(vec!["response", "code_details"])
}

fn property_string(path: Vec<&str>) -> Option<String> {
    let bytes = hostcalls::get_property(path).ok().flatten()?;
    String::from_utf8(bytes).ok()
}

/// A value of the host's shared data (shared by every VM of the plugin) and its CAS token.
pub fn shared_data(key: &str) -> (Option<Vec<u8>>, Option<u32>) {
    hostcalls::get_shared_data(key).unwrap_or((None, None))
}

/// Sets shared data if it still has `cas` (None: unconditionally); false when another VM
/// changed it first.
pub fn set_shared_data(key: &str, value: &[u8], cas: Option<u32>) -> bool {
    hostcalls::set_shared_data(key, Some(value), cas).is_ok()
}

pub fn set_tick_period(ms: u64) {
    let _ = hostcalls::set_tick_period(Duration::from_millis(ms));
}

/// A header map read in one host call, as raw bytes (see [`raw`]); a host error or a
/// malformed answer reads as an empty map.
pub fn header_map(map: MapType) -> HeaderMap {
    raw::header_map_pairs(map as u32)
        .and_then(|bytes| HeaderMap::decode(&bytes))
        .unwrap_or_default()
}

pub fn request_headers() -> HeaderMap {
    header_map(MapType::HttpRequestHeaders)
}

pub fn response_headers() -> HeaderMap {
    header_map(MapType::HttpResponseHeaders)
}

pub fn call_response_headers() -> HeaderMap {
    header_map(MapType::HttpCallResponseHeaders)
}

/// An Envoy attribute (`response.code`, …) that is an integer.
pub fn property_int(path: Vec<&str>) -> Option<i64> {
    let bytes = hostcalls::get_property(path).ok().flatten()?;
    let arr: [u8; 8] = bytes.as_slice().try_into().ok()?;
    Some(i64::from_le_bytes(arr))
}

/// Replaces the SDK's panic hook (which logs the panic message, and a message can hold
/// request bytes: a failed UTF-8 conversion prints them) with one that logs only where.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let _ = hostcalls::log(
            proxy_wasm::types::LogLevel::Critical,
            &format!("policy_gateway: panic at {at} (message withheld: it may hold request data)"),
        );
    }));
}

/// The one place this crate calls the ABI directly.
#[allow(unsafe_code)]
mod raw {
    extern "C" {
        fn proxy_get_header_map_pairs(
            map_type: u32,
            return_map_data: *mut *mut u8,
            return_map_size: *mut usize,
        ) -> u32;
    }

    /// The serialised pairs of a header map; `None` on any host status but Ok.
    pub fn header_map_pairs(map_type: u32) -> Option<Vec<u8>> {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: the host writes a pointer it allocated through this module's
        // `proxy_on_memory_allocate` (the SDK's `Vec::with_capacity(size)`) and its size;
        // ownership passes to us, exactly as in the SDK's own `get_map_bytes`.
        let status = unsafe { proxy_get_header_map_pairs(map_type, &mut data, &mut size) };
        if status != 0 {
            return None;
        }
        if data.is_null() {
            return Some(Vec::new());
        }
        // SAFETY: see above; the allocation is `size` bytes with capacity `size`.
        Some(unsafe { Vec::from_raw_parts(data, size, size) })
    }
}

/// The current request, as attribution sees it: its header snapshot and host properties.
pub struct HostRequest<'a>(pub &'a HeaderMap);

impl RequestView for HostRequest<'_> {
    fn header(&self, name: &str) -> Lookup<'_> {
        self.0.get(name)
    }

    fn jwt_claim(&self, payload_in_metadata: &str, claim: &str) -> Option<String> {
        property_string(vec![
            "metadata",
            "filter_metadata",
            "envoy.filters.http.jwt_authn",
            payload_in_metadata,
            claim,
        ])
    }

    fn route_metadata(&self, namespace: &str, key: &str) -> Option<String> {
        property_string(vec![
            "xds",
            "route_metadata",
            "filter_metadata",
            namespace,
            key,
        ])
    }
}
