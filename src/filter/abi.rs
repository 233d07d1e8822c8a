//! The proxy-wasm ABI (0.2.1), called directly: the only `unsafe` in the crate.
//!
//! The SDK's `hostcalls` wrappers `panic!` on any status they do not expect (a body replaced
//! in a phase where the host says no, a header set after it went out, a missing property),
//! and their map getters `unwrap` UTF-8; a panic is a trap that kills the worker's VM. These
//! wrappers return the host's status as an error instead, and hand over bytes, never text.
//! Every function follows one memory contract: buffers the host returns were allocated
//! through our exported [`proxy_on_memory_allocate`] (the allocation of a `Vec<u8>` with
//! capacity equal to its length) and become ours.
#![allow(unsafe_code)]

use std::ptr::{null, null_mut};

/// A host status other than Ok (1 NotFound, 2 BadArgument, 7 Empty, 8 CasMismatch, …).
pub type Status = u32;

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;
const BAD_ARGUMENT: u32 = 2;
const EMPTY: u32 = 7;
const INTERNAL_FAILURE: u32 = 10;

/// The ABI's enums, by value (`proxy-wasm` 0.2.1 spec), for the calls this module makes.
#[derive(Clone, Copy)]
pub enum BufferType {
    HttpRequestBody = 0,
    HttpResponseBody = 1,
    HttpCallResponseBody = 4,
    PluginConfiguration = 7,
}

#[derive(Clone, Copy)]
#[allow(clippy::enum_variant_names)] // the maps the ABI names
pub enum MapType {
    RequestHeaders = 0,
    ResponseHeaders = 2,
    CallResponseHeaders = 6,
}

#[derive(Clone, Copy)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
}

/// What a stream callback tells the host: go on, or hold the stream.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Action {
    Continue = 0,
    Pause = 1,
}

/// Why the host refused a call to a sink (`proxy_http_call`): Envoy answers BadArgument
/// (no such cluster, bad headers) or InternalFailure (the request could not start); any
/// other status is kept as it came, never a trap.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CallRefused {
    BadArgument,
    InternalFailure,
    Other(u32),
}

impl CallRefused {
    fn of(status: u32) -> CallRefused {
        match status {
            BAD_ARGUMENT => CallRefused::BadArgument,
            INTERNAL_FAILURE => CallRefused::InternalFailure,
            s => CallRefused::Other(s),
        }
    }
}

/// The host allocates the buffers it hands us through this export (Envoy looks up
/// `malloc`, then `proxy_on_memory_allocate`): `size` bytes of the global allocator, not
/// zeroed (the host overwrites them all before a call reports Ok: [`take`]), which [`take`]
/// turns into a `Vec`; null when the allocator has none (the host then fails the call).
/// Named `malloc` only in the wasm32 module: a native build must not replace the C
/// library's.
#[cfg_attr(
    all(target_arch = "wasm32", target_os = "unknown"),
    export_name = "malloc"
)]
#[cfg_attr(not(all(target_arch = "wasm32", target_os = "unknown")), no_mangle)]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let Ok(layout) = std::alloc::Layout::array::<u8>(size) else {
        return null_mut();
    };
    if size == 0 {
        // What an empty `Vec` holds; `alloc` must not be asked for zero bytes.
        return std::ptr::NonNull::<u8>::dangling().as_ptr();
    }
    // SAFETY: `layout` is not zero-sized (above).
    unsafe { std::alloc::alloc(layout) }
}

// WASI's `random_get`: proxy-wasm hosts implement it for every runtime (Envoy's
// `proxy-wasm-cpp-host` fills it with BoringSSL's `RAND_bytes`, at most 64 KiB a call),
// returning a WASI errno (0 success).
#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    fn random_get(buf: *mut u8, buf_len: usize) -> u32;
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_done() -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_close_stream(stream_type: u32) -> u32;
    fn proxy_http_call(
        upstream_data: *const u8,
        upstream_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        body_data: *const u8,
        body_size: usize,
        trailers_data: *const u8,
        trailers_size: usize,
        timeout_ms: u32,
        return_token: *mut u32,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_register_shared_queue(
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_resolve_shared_queue(
        vm_id_data: *const u8,
        vm_id_size: usize,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_enqueue_shared_queue(queue_id: u32, value_data: *const u8, value_size: usize) -> u32;
    fn proxy_dequeue_shared_queue(
        queue_id: u32,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
}

fn status(s: u32) -> Result<(), Status> {
    if s == OK {
        Ok(())
    } else {
        Err(s)
    }
}

/// Takes ownership of bytes the host allocated for us (null: none).
///
/// SAFETY (of callers): `data` and `size` come from a host call that reported Ok.
unsafe fn take(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        None
    } else {
        // SAFETY: `data` was allocated by `proxy_on_memory_allocate` for `size` bytes with
        // the global allocator and `Layout::array::<u8>(size)` (dangling for 0), the layout
        // a `Vec<u8>` of capacity `size` frees with. Every byte is initialised: the host
        // reports Ok only after writing all `size` bytes it asked for (Envoy's `Buffer::copyTo`
        // for bodies: `copyOut` of `length` bytes into an allocation of `length`, the size it
        // reports; proxy-wasm-cpp-host's `copyToPointerSize` memcpys exactly `size` bytes
        // into the buffer it allocated of `size`, for properties, header values, shared data
        // and queue messages;
        // `getHeaderMapPairs` fails the call unless `marshalPairs` filled the buffer to its
        // last byte, `pos == end`). A failed call leaves the buffer untaken, as before.
        Some(unsafe { Vec::from_raw_parts(data, size, size) })
    }
}

pub fn current_time_nanos() -> Result<u64, Status> {
    let mut t = 0u64;
    // SAFETY: the host writes one u64.
    status(unsafe { proxy_get_current_time_nanoseconds(&mut t) })?;
    Ok(t)
}

pub fn set_tick_period_ms(ms: u32) -> Result<(), Status> {
    // SAFETY: no pointers.
    status(unsafe { proxy_set_tick_period_milliseconds(ms) })
}

/// 16 bytes from the host's CSPRNG; the WASI errno when it failed.
pub fn random_16() -> Result<[u8; 16], u32> {
    let mut buf = [0u8; 16];
    // SAFETY: the host writes exactly `buf.len()` bytes into `buf`.
    match unsafe { random_get(buf.as_mut_ptr(), buf.len()) } {
        0 => Ok(buf),
        errno => Err(errno),
    }
}

/// Tells the host the effective root context, which answered `proxy_on_done` with false,
/// is done now (it may delete it).
pub fn done() -> Result<(), Status> {
    // SAFETY: no pointers.
    status(unsafe { proxy_done() })
}

/// Up to `max` bytes of a buffer from `start`; `Ok(None)` when the host has none.
pub fn get_buffer(kind: u32, start: usize, max: usize) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the host writes a pointer it allocated and its size.
    let s = unsafe { proxy_get_buffer_bytes(kind, start, max, &mut data, &mut size) };
    match s {
        // SAFETY: an Ok answer.
        OK => Ok(unsafe { take(data, size) }),
        NOT_FOUND => Ok(None),
        s => Err(s),
    }
}

/// Replaces `size` bytes from `start` of a buffer with `value`.
pub fn set_buffer(kind: u32, start: usize, size: usize, value: &[u8]) -> Result<(), Status> {
    // SAFETY: `value` outlives the call; the host copies it.
    status(unsafe { proxy_set_buffer_bytes(kind, start, size, value.as_ptr(), value.len()) })
}

/// The serialised pairs of a header map (see `crate::headers::HeaderMap::decode`).
pub fn header_map_pairs(map: u32) -> Result<Vec<u8>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: as `get_buffer`.
    status(unsafe { proxy_get_header_map_pairs(map, &mut data, &mut size) })?;
    // SAFETY: an Ok answer.
    Ok(unsafe { take(data, size) }.unwrap_or_default())
}

pub fn replace_header(map: u32, name: &str, value: &[u8]) -> Result<(), Status> {
    // SAFETY: both slices outlive the call; the host copies them.
    status(unsafe {
        proxy_replace_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    })
}

pub fn remove_header(map: u32, name: &str) -> Result<(), Status> {
    // SAFETY: as `replace_header`.
    status(unsafe { proxy_remove_header_map_value(map, name.as_ptr(), name.len()) })
}

/// A host property (`["response", "code"]`); `Ok(None)` when it is not there.
pub fn get_property(path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
    let serialized = path.join("\0");
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: as `get_buffer`.
    let s =
        unsafe { proxy_get_property(serialized.as_ptr(), serialized.len(), &mut data, &mut size) };
    match s {
        // SAFETY: an Ok answer.
        OK => Ok(unsafe { take(data, size) }),
        NOT_FOUND => Ok(None),
        s => Err(s),
    }
}

/// A shared-data value and its compare-and-swap token; `(None, None)` when absent.
pub fn get_shared_data(key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), Status> {
    let (mut data, mut size, mut cas) = (null_mut(), 0usize, 0u32);
    // SAFETY: as `get_buffer`, plus one u32.
    let s =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    match s {
        // SAFETY: an Ok answer. A token of 0 means none.
        OK => Ok((unsafe { take(data, size) }, (cas != 0).then_some(cas))),
        NOT_FOUND => Ok((None, None)),
        s => Err(s),
    }
}

/// Sets shared data if its token is still `cas` (0: unconditionally).
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
    // SAFETY: both slices outlive the call.
    status(unsafe {
        proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    })
}

/// Resets the HTTP response stream (the client sees the exchange fail).
pub fn reset_response() -> Result<(), Status> {
    // SAFETY: no pointers. 1 = StreamType::HttpResponse.
    status(unsafe { proxy_close_stream(1) })
}

/// Answers the request locally; `headers` serialised as a header map.
pub fn send_local_response(status_code: u32, headers: &[u8], body: &[u8]) -> Result<(), Status> {
    // SAFETY: all slices outlive the call; the host copies them.
    status(unsafe {
        proxy_send_local_response(
            status_code,
            null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    })
}

/// 0 counter, 1 gauge, 2 histogram.
pub fn define_metric(kind: u32, name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    // SAFETY: `name` outlives the call; the host writes one u32.
    status(unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_metric(id: u32, offset: i64) -> Result<(), Status> {
    // SAFETY: no pointers.
    status(unsafe { proxy_increment_metric(id, offset) })
}

/// 0 trace … 5 critical.
pub fn log(level: u32, message: &str) -> Result<(), Status> {
    // SAFETY: `message` outlives the call.
    status(unsafe { proxy_log(level, message.as_ptr(), message.len()) })
}

/// Registers (or takes over) this VM's queue `name`; its `on_queue_ready` comes to this VM.
pub fn register_queue(name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    // SAFETY: `name` outlives the call; the host writes one u32.
    status(unsafe { proxy_register_shared_queue(name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

/// The queue `name` that a VM of `vm_id` registered; `Ok(None)` when none has.
pub fn resolve_queue(vm_id: &str, name: &str) -> Result<Option<u32>, Status> {
    let mut id = 0u32;
    // SAFETY: both slices outlive the call; the host writes one u32.
    let s = unsafe {
        proxy_resolve_shared_queue(
            vm_id.as_ptr(),
            vm_id.len(),
            name.as_ptr(),
            name.len(),
            &mut id,
        )
    };
    match s {
        OK if id != 0 => Ok(Some(id)),
        OK | NOT_FOUND => Ok(None),
        s => Err(s),
    }
}

pub fn enqueue(queue: u32, value: &[u8]) -> Result<(), Status> {
    // SAFETY: `value` outlives the call; the host copies it.
    status(unsafe { proxy_enqueue_shared_queue(queue, value.as_ptr(), value.len()) })
}

/// The queue's oldest message; `Ok(None)` when it is empty.
pub fn dequeue(queue: u32) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: as `get_buffer`.
    let s = unsafe { proxy_dequeue_shared_queue(queue, &mut data, &mut size) };
    match s {
        // SAFETY: an Ok answer; an empty message is still a message.
        OK => Ok(Some(unsafe { take(data, size) }.unwrap_or_default())),
        EMPTY => Ok(None),
        s => Err(s),
    }
}

/// Calls `cluster` with serialised `headers` and `body`; the token its answer will carry
/// (to `proxy_on_http_call_response` of the calling root context).
pub fn http_call(
    cluster: &str,
    headers: &[u8],
    body: &[u8],
    timeout_ms: u32,
) -> Result<u32, CallRefused> {
    let mut token = 0u32;
    // SAFETY: all slices outlive the call; the host copies them and writes one u32. No
    // trailers: an empty map is four zero bytes.
    let trailers = [0u8; 4];
    let s = unsafe {
        proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            headers.as_ptr(),
            headers.len(),
            body.as_ptr(),
            body.len(),
            trailers.as_ptr(),
            trailers.len(),
            timeout_ms,
            &mut token,
        )
    };
    match s {
        OK => Ok(token),
        s => Err(CallRefused::of(s)),
    }
}
