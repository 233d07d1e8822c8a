//! The floor of inline body inspection: the cheapest proxy-wasm HTTP filter that can do the
//! gateway's job at all. It holds the request headers until the request body is complete,
//! copies each whole body (request and response) into the VM, touches every byte once, then
//! lets it go on; no policy, no record. What it costs is what inspecting bodies inline costs
//! on this host before any of our own work, so the gateway's overhead is measured against it
//! (`bench/run.py`, BENCHMARKS.md).

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::<Floor>::default())
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

#[derive(Default)]
struct Floor {
    /// A streamed (SSE) response: each chunk is read as it passes, as the gateway does.
    streamed: bool,
}

impl Context for Floor {}

/// Reads the whole buffered body into the VM and reads each byte once (a sum the optimiser
/// cannot drop), as any inspection must.
fn touch(kind: BufferType, size: usize) {
    if let Ok(Some(body)) = proxy_wasm::hostcalls::get_buffer(kind, 0, size) {
        let sum = body.iter().fold(0u32, |acc, &b| acc.wrapping_add(u32::from(b)));
        std::hint::black_box(sum);
    }
}

impl HttpContext for Floor {
    /// Held until the body is complete (needs `allow_on_headers_stop_iteration`, as the
    /// gateway's `hold_headers` does); a request without a body goes on at once.
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        touch(BufferType::HttpRequestBody, body_size);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.streamed = self
            .get_http_response_header_bytes("content-type")
            .is_some_and(|v| v.starts_with(b"text/event-stream"));
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.streamed {
            touch(BufferType::HttpResponseBody, body_size);
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        touch(BufferType::HttpResponseBody, body_size);
        Action::Continue
    }
}
