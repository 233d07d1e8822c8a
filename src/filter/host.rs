//! Thin, panic-free wrappers over proxy-wasm host calls. The SDK's trait methods `unwrap`
//! host errors (a trap that kills the worker's VM); these return Options instead.

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use crate::config::attribution::RequestView;

pub fn now_ms() -> u64 {
    now_nanos() / 1_000_000
}

pub fn now_nanos() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64)
}

pub fn request_header(name: &str) -> Option<String> {
    hostcalls::get_map_value(MapType::HttpRequestHeaders, name)
        .ok()
        .flatten()
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

pub fn call_response_header(name: &str) -> Option<String> {
    hostcalls::get_map_value(MapType::HttpCallResponseHeaders, name)
        .ok()
        .flatten()
}

pub fn call_response_headers() -> Vec<(String, String)> {
    hostcalls::get_map(MapType::HttpCallResponseHeaders).unwrap_or_default()
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

/// A header map read in one host call: each header callback reads several headers, and one
/// call returning them all costs less than a call per header.
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn request() -> Headers {
        Headers(hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default())
    }

    pub fn response() -> Headers {
        Headers(hostcalls::get_map(MapType::HttpResponseHeaders).unwrap_or_default())
    }

    /// The first value of a header (names are lower case in Envoy's maps).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The current request, as attribution sees it; headers from a snapshot when there is one.
pub struct HostRequest<'a>(pub Option<&'a Headers>);

impl RequestView for HostRequest<'_> {
    fn header(&self, name: &str) -> Option<String> {
        match self.0 {
            Some(headers) => headers.get(name).map(str::to_string),
            None => request_header(name),
        }
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
