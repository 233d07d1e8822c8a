//! What an exchange needs from the proxy it runs in. The filter implements it over
//! proxy-wasm calls (`filter/host.rs`), `simulate` over a recorded exchange, tests over maps.
//! Time is not here: every call that needs it takes `now_ms`.

use crate::headers::HeaderMap;

/// Which direction of the exchange a header or body call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// What the host should do after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Pass on what the host holds.
    Continue,
    /// Keep holding: headers until the body is judged, body until it is complete.
    Pause,
}

pub trait Host {
    fn headers(&self, side: Side) -> HeaderMap;
    /// Sets (or, with `None`, removes) a header not yet sent.
    fn set_header(&mut self, side: Side, name: &str, value: Option<&str>);
    /// The body buffered so far, up to `size` bytes; `None` when the host has none.
    fn body(&self, side: Side, size: usize) -> Option<Vec<u8>>;
    /// Replaces the first `old_size` bytes of the buffered body; false when the host says no.
    fn replace_body(&mut self, side: Side, old_size: usize, body: &[u8]) -> bool;
    /// Answers the request locally; false when the host says no.
    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> bool;
    /// Ends the response with a reset: when nothing safe can be sent any more.
    fn reset_response(&mut self);
    /// A host attribute (`["response", "code_details"]`, dynamic metadata, route metadata).
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
}
