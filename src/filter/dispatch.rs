//! The module's `proxy_on_*` exports (ABI 0.2.1) and its table of contexts, in place of the
//! SDK's dispatcher: that one `panic!`s on a context id or call token it does not know (a
//! trap; the shipper's singleton VM is never restarted, so one such trap loses it for good)
//! and brings ~40 KB of trait objects and maps. Here a callback for a context this VM does
//! not hold, or one that arrives while another callback runs, is logged (once per VM) and
//! answered as a no-op; the only exception is a request whose context is unknown, which is
//! refused (fail closed) rather than let through uninspected.
//!
//! The host passes `bool` as an i32: it is read as `!= 0` (a Rust `bool` parameter holding
//! any other value would be undefined behaviour), and booleans and actions go back as u32.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::abi::Action;
use super::host;
use super::http::Http;
use super::root::Root;

/// The HTTP context as built: the shipped one, or behind the fault-injection check.
#[cfg(not(feature = "fault-injection"))]
type Stream = Http;
#[cfg(feature = "fault-injection")]
type Stream = super::fault::Trap;

#[cfg(not(feature = "fault-injection"))]
fn stream(http: Http) -> Stream {
    http
}
#[cfg(feature = "fault-injection")]
fn stream(http: Http) -> Stream {
    super::fault::Trap::new(http)
}

/// The contexts of this VM by id: root contexts, and HTTP contexts (each built with its
/// root's shared state when it was created).
struct Table {
    roots: BTreeMap<u32, Root>,
    streams: BTreeMap<u32, Stream>,
    /// Streams whose `proxy_on_log` has run: their record is finished.
    logged: BTreeSet<u32>,
    /// The last streams finished at `proxy_on_delete`, whose `proxy_on_log` may still come
    /// (HTTP/3 defers the access log until the client acknowledged the last byte, after
    /// Envoy destroyed the filter); bounded, oldest out.
    finished_at_delete: VecDeque<u32>,
}

/// Streams remembered as finished at `proxy_on_delete`: a late `proxy_on_log` for one older
/// than this is ignored and counted like any unknown context.
const FINISHED_AT_DELETE: usize = 256;

thread_local! {
    static TABLE: RefCell<Table> = const {
        RefCell::new(Table {
            roots: BTreeMap::new(),
            streams: BTreeMap::new(),
            logged: BTreeSet::new(),
            finished_at_delete: VecDeque::new(),
        })
    };
    /// How many callbacks this VM has ignored.
    static IGNORED: Cell<u64> = const { Cell::new(0) };
}

/// Logs an ignored callback: the first, then each time the count reaches a power of ten, so
/// a host that keeps sending them is seen growing without flooding the log. Under Envoy none
/// arrive (it defers its callbacks until the VM returns, and creates no context it did not
/// announce); an ignored `proxy_on_log` would be a decision without its record.
fn ignored(callback: &str, context_id: u32) {
    let n = IGNORED.with(|i| {
        let n = i.get().saturating_add(1);
        i.set(n);
        n
    });
    let mut power = 1;
    while power < n {
        power = power.saturating_mul(10);
    }
    if power == n {
        log::error!(
            "policy_gateway: {callback} for context {context_id}, which this VM does not hold \
             (or during another callback): ignored ({n} so far; logged at 1, 10, 100, ...)"
        );
    }
}

/// Runs `f` on the root context `id`; `default` if there is none (or the table is busy).
fn with_root<R>(id: u32, callback: &str, default: R, f: impl FnOnce(&mut Root) -> R) -> R {
    TABLE.with(|t| {
        let Ok(mut t) = t.try_borrow_mut() else {
            ignored(callback, id);
            return default;
        };
        match t.roots.get_mut(&id) {
            Some(root) => f(root),
            None => {
                ignored(callback, id);
                default
            }
        }
    })
}

/// Why a stream callback found no context to run.
enum Miss {
    /// The id is not one this VM holds (its request was refused at its headers).
    Unknown,
    /// Another callback holds the table: a host calling back into the VM mid-callback.
    Busy,
}

/// Runs `f` on the HTTP context `id`, or says why it could not.
fn with_stream<R>(id: u32, callback: &str, f: impl FnOnce(&mut Stream) -> R) -> Result<R, Miss> {
    TABLE.with(|t| {
        let Ok(mut t) = t.try_borrow_mut() else {
            ignored(callback, id);
            return Err(Miss::Busy);
        };
        let found = t.streams.get_mut(&id).map(f);
        if found.is_none() {
            ignored(callback, id);
        }
        found.ok_or(Miss::Unknown)
    })
}

/// Refuses the stream in hand: a request the filter cannot inspect does not go through.
fn refuse() -> u32 {
    host::send_response(
        503,
        &[("content-type", "text/plain")],
        b"policy gateway: no filter context for this request\n",
    );
    Action::Pause as u32
}

/// A stream callback's answer. A context this VM does not hold lets the stream go on (its
/// request was refused at its headers, and the refusal must get out); a known stream whose
/// callback cannot run now is refused, never let through uninspected.
fn action(id: u32, callback: &str, f: impl FnOnce(&mut Stream) -> Action) -> u32 {
    match with_stream(id, callback, f) {
        Ok(a) => a as u32,
        Err(Miss::Unknown) => Action::Continue as u32,
        Err(Miss::Busy) => refuse(),
    }
}

/// What the SDK's `main!` exported: the host calls it once, before any context exists.
#[no_mangle]
pub extern "C" fn _initialize() {
    super::logger::install();
    super::host::install_panic_hook();
}

/// The ABI version marker the host looks for.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, root_context_id: u32) {
    TABLE.with(|t| {
        let Ok(mut t) = t.try_borrow_mut() else {
            return ignored("proxy_on_context_create", context_id);
        };
        if root_context_id == 0 {
            if t.roots.contains_key(&context_id) {
                return ignored("proxy_on_context_create (again)", context_id);
            }
            t.roots.insert(context_id, Root::new());
            return;
        }
        // A root without a configuration (none yet, or refused) has nothing to inspect
        // with: its requests are refused at their headers, as an unknown one's are.
        let Some(shared) = t.roots.get(&root_context_id).and_then(Root::shared) else {
            return ignored(
                "proxy_on_context_create (unknown or unconfigured root)",
                context_id,
            );
        };
        if t.streams.contains_key(&context_id) {
            return ignored("proxy_on_context_create (again)", context_id);
        }
        t.streams
            .insert(context_id, stream(Http::new(Some(shared))));
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(context_id: u32, _vm_configuration_size: usize) -> u32 {
    with_root(context_id, "proxy_on_vm_start", false, |_| true) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(context_id: u32, _plugin_configuration_size: usize) -> u32 {
    with_root(context_id, "proxy_on_configure", false, Root::on_configure) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(context_id: u32) {
    with_root(context_id, "proxy_on_tick", (), Root::on_tick)
}

#[no_mangle]
pub extern "C" fn proxy_on_queue_ready(context_id: u32, queue_id: u32) {
    with_root(context_id, "proxy_on_queue_ready", (), |r| {
        r.on_queue_ready(queue_id)
    })
}

/// A sink's answer, routed by the context that dispatched the call (always a root here); the
/// outbox ignores a token none of its calls has.
#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    context_id: u32,
    token_id: u32,
    _num_headers: usize,
    body_size: usize,
    _num_trailers: usize,
) {
    with_root(context_id, "proxy_on_http_call_response", (), |r| {
        r.on_http_call_response(token_id, body_size)
    })
}

/// A request whose context this VM does not hold is refused here (fail closed).
#[no_mangle]
pub extern "C" fn proxy_on_request_headers(
    context_id: u32,
    _num_headers: usize,
    end_of_stream: u32,
) -> u32 {
    let eos = end_of_stream != 0;
    let answer = with_stream(context_id, "proxy_on_request_headers", |s| {
        s.on_http_request_headers(eos)
    });
    match answer {
        Ok(a) => a as u32,
        Err(_) => refuse(),
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_request_body(
    context_id: u32,
    body_size: usize,
    end_of_stream: u32,
) -> u32 {
    action(context_id, "proxy_on_request_body", |s| {
        s.on_http_request_body(body_size, end_of_stream != 0)
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_request_trailers(context_id: u32, _num_trailers: usize) -> u32 {
    action(context_id, "proxy_on_request_trailers", |s| {
        s.on_http_request_trailers()
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(
    context_id: u32,
    _num_headers: usize,
    end_of_stream: u32,
) -> u32 {
    action(context_id, "proxy_on_response_headers", |s| {
        s.on_http_response_headers(end_of_stream != 0)
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_response_body(
    context_id: u32,
    body_size: usize,
    end_of_stream: u32,
) -> u32 {
    action(context_id, "proxy_on_response_body", |s| {
        s.on_http_response_body(body_size, end_of_stream != 0)
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_response_trailers(context_id: u32, _num_trailers: usize) -> u32 {
    action(context_id, "proxy_on_response_trailers", |s| {
        s.on_http_response_trailers()
    })
}

/// A stream's record is finished at its first `proxy_on_log`, or at `proxy_on_delete` if
/// none came before (exactly once either way): Envoy logs HTTP/1 and HTTP/2 streams before it
/// destroys the filter (`proxy_on_done`, `proxy_on_delete`), HTTP/3 streams after, once the
/// client acknowledged the response, or never if the connection goes first.
#[no_mangle]
pub extern "C" fn proxy_on_log(context_id: u32) {
    // Roots have nothing to log; a stream logs once; a stream finished at its delete expects
    // this late call. Only an id that is none of these is reported.
    let skip = TABLE.with(|t| {
        t.try_borrow_mut().is_ok_and(|mut t| {
            t.roots.contains_key(&context_id)
                || (t.streams.contains_key(&context_id) && !t.logged.insert(context_id))
                || t.finished_at_delete.contains(&context_id)
        })
    });
    if !skip {
        // An unknown id is counted and logged by `with_stream`; nothing else can be done.
        let _ = with_stream(context_id, "proxy_on_log", Stream::on_log);
    }
}

/// A root context finishes (closes its chain, sends what it holds); an HTTP context is done
/// at once.
#[no_mangle]
pub extern "C" fn proxy_on_done(context_id: u32) -> u32 {
    let is_stream = TABLE.with(|t| {
        t.try_borrow()
            .is_ok_and(|t| t.streams.contains_key(&context_id))
    });
    if is_stream {
        return 1;
    }
    with_root(context_id, "proxy_on_done", true, Root::on_done) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    let removed = TABLE.with(|t| {
        let Ok(mut t) = t.try_borrow_mut() else {
            return None;
        };
        let stream = t.streams.remove(&context_id);
        let logged = t.logged.remove(&context_id);
        if stream.is_some() && !logged {
            if t.finished_at_delete.len() >= FINISHED_AT_DELETE {
                t.finished_at_delete.pop_front();
            }
            t.finished_at_delete.push_back(context_id);
        }
        let root = t.roots.remove(&context_id);
        Some((stream.map(|s| (s, logged)), root))
    });
    // Finished (a stream never logged) and dropped here, outside the table's borrow.
    match removed {
        Some((None, None)) | None => ignored("proxy_on_delete", context_id),
        Some((Some((mut stream, false)), _)) => stream.on_log(),
        Some(_) => {}
    }
}
