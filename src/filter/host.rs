//! Thin, panic-free wrappers over the host, on top of [`super::abi`]: the SDK's own
//! `hostcalls` panic on statuses they do not expect and `unwrap` UTF-8 in header maps, so
//! nothing here goes through them. Failures become `None`/`false` for the caller to decide.

use std::time::Duration;

use super::abi::{self, BufferType, CallRefused, MapType, MetricType};
use crate::exchange::{Host, Side};
use crate::headers::{self, HeaderMap};

pub fn now_ms() -> u64 {
    now_nanos() / 1_000_000
}

pub fn now_nanos() -> u64 {
    abi::current_time_nanos().unwrap_or(0)
}

/// A secret random key for this VM's text caches, from the host's CSPRNG (WASI
/// `random_get`); `None`, with a warning, when the host gives none: then nothing is cached
/// (never a fixed or time-derived key, which would let tags be predicted).
pub fn random_cache_key() -> Option<crate::engine::CacheKey> {
    match abi::random_16() {
        Ok(bytes) if bytes != [0; 16] => Some(crate::engine::CacheKey::from_bytes(bytes)),
        _ => {
            log::warn!("policy_gateway: the host's random_get failed: text cache off");
            None
        }
    }
}

fn set_header(map: MapType, name: &str, value: Option<&str>) {
    let _ = match value {
        Some(v) => abi::replace_header(map as u32, name, v.as_bytes()),
        None => abi::remove_header(map as u32, name),
    };
}

pub fn buffer(kind: BufferType, size: usize) -> Option<Vec<u8>> {
    abi::get_buffer(kind as u32, 0, size).ok().flatten()
}

/// Replaces the first `old_size` bytes of a buffer; false when the host said no.
pub fn replace_buffer(kind: BufferType, old_size: usize, body: &[u8]) -> bool {
    abi::set_buffer(kind as u32, 0, old_size, body).is_ok()
}

/// Ends the response with a reset: for when nothing safe can be sent any more.
pub fn reset_response() {
    let _ = abi::reset_response();
}

pub fn send_response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> bool {
    let pairs: Vec<(&[u8], &[u8])> = headers
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect();
    abi::send_local_response(u32::from(status), &headers::encode(&pairs), body).is_ok()
}

/// Dispatches a call from the root context; the token its answer will carry (routed to that
/// root context by `super::dispatch`). A refusal is an error, never a trap.
pub fn dispatch_http_call(
    cluster: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<u32, CallRefused> {
    let pairs: Vec<(&[u8], &[u8])> = headers
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect();
    let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    abi::http_call(cluster, &headers::encode(&pairs), body, timeout_ms)
}

/// The plugin configuration as the host holds it.
pub fn plugin_configuration() -> Option<Vec<u8>> {
    abi::get_buffer(BufferType::PluginConfiguration as u32, 0, usize::MAX)
        .ok()
        .flatten()
}

pub fn define_metric(kind: MetricType, name: &str) -> Result<u32, abi::Status> {
    abi::define_metric(kind as u32, name)
}

pub fn increment_metric(id: u32, delta: i64) {
    let _ = abi::increment_metric(id, delta);
}

/// A value of the host's shared data (shared by every VM of the plugin) and its CAS token.
pub fn shared_data(key: &str) -> (Option<Vec<u8>>, Option<u32>) {
    abi::get_shared_data(key).unwrap_or((None, None))
}

/// Sets shared data if it still has `cas` (None: unconditionally); false when another VM
/// changed it first.
pub fn set_shared_data(key: &str, value: &[u8], cas: Option<u32>) -> bool {
    abi::set_shared_data(key, value, cas.unwrap_or(0)).is_ok()
}

/// A host property as text (`plugin_root_id`, `plugin_vm_id`); `None` when absent or not UTF-8.
pub fn property_text(path: &[&str]) -> Option<String> {
    abi::get_property(path)
        .ok()
        .flatten()
        .and_then(|v| String::from_utf8(v).ok())
}

/// Registers this VM's shared queue `name`: `None` when the host has no queues.
pub fn register_queue(name: &str) -> Option<u32> {
    abi::register_queue(name).ok()
}

/// The shared queue `name` of VM id `vm_id`, if a VM registered it.
pub fn resolve_queue(vm_id: &str, name: &str) -> Option<u32> {
    abi::resolve_queue(vm_id, name).ok().flatten()
}

/// Enqueues a message; false when the host refused it (the queue is gone).
pub fn enqueue(queue: u32, value: &[u8]) -> bool {
    abi::enqueue(queue, value).is_ok()
}

/// The queue's oldest message; `None` when it is empty (or gone).
pub fn dequeue(queue: u32) -> Option<Vec<u8>> {
    abi::dequeue(queue).ok().flatten()
}

/// The root context in hand is done (after its `proxy_on_done` said not yet); false when
/// the host did not expect it.
pub fn done() -> bool {
    abi::done().is_ok()
}

pub fn set_tick_period(ms: u64) {
    let _ = abi::set_tick_period_ms(u32::try_from(ms).unwrap_or(u32::MAX));
}

/// A header map read in one host call, as raw bytes; a host error or a malformed answer
/// reads as an empty map.
pub fn header_map(map: MapType) -> HeaderMap {
    abi::header_map_pairs(map as u32)
        .ok()
        .and_then(HeaderMap::decode_vec)
        .unwrap_or_default()
}

pub fn call_response_headers() -> HeaderMap {
    header_map(MapType::CallResponseHeaders)
}

/// A panic hook that logs only where (a panic message can hold request bytes: a failed
/// UTF-8 conversion prints them), not the default one, which writes the message to stderr.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message =
            format!("policy_gateway: panic at {at} (message withheld: it may hold request data)");
        let _ = abi::log(5, &message);
    }));
}

/// The exchange's view of the host: the current HTTP context's headers, bodies and
/// properties, through the calls above.
pub struct ProxyHost;

fn map_of(side: Side) -> (MapType, BufferType) {
    match side {
        Side::Request => (MapType::RequestHeaders, BufferType::HttpRequestBody),
        Side::Response => (MapType::ResponseHeaders, BufferType::HttpResponseBody),
    }
}

impl Host for ProxyHost {
    fn headers(&self, side: Side) -> HeaderMap {
        header_map(map_of(side).0)
    }

    fn set_header(&mut self, side: Side, name: &str, value: Option<&str>) {
        set_header(map_of(side).0, name, value);
    }

    fn body(&self, side: Side, size: usize) -> Option<Vec<u8>> {
        buffer(map_of(side).1, size)
    }

    fn replace_body(&mut self, side: Side, old_size: usize, body: &[u8]) -> bool {
        let ok = replace_buffer(map_of(side).1, old_size, body);
        if !ok {
            log::warn!("policy_gateway: the host refused a changed body");
        }
        ok
    }

    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> bool {
        send_response(status, headers, body)
    }

    fn reset_response(&mut self) {
        reset_response();
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        abi::get_property(path).ok().flatten()
    }
}
