//! One HTTP exchange through the VM, with the Envoy semantics the filter depends on:
//!
//! - A Pause from a body callback buffers: the next body callback's `body_size` is all that
//!   is buffered, and `proxy_get/set_buffer_bytes` act on all of it; a Continue sends it on.
//! - A Pause from a headers callback holds the headers until a later Continue (Envoy >= 1.35
//!   with `allow_on_headers_stop_iteration`; see [`Options::headers_stop_iteration`]).
//! - A message that ends with trailers never gives end of stream to a body callback; the
//!   buffered body is still there in the trailers callback.
//! - `proxy_send_local_response` ends the request (an upstream that got part of it is
//!   reset), and the local reply then passes the filter's own response callbacks, as
//!   Envoy's local replies pass the encoder filters.
//! - `proxy_close_stream` resets the response: the client gets what it got so far.
//! - A callback left paused at the end of a message stalls the exchange (Envoy would wait
//!   for a `proxy_continue_stream` that never comes); the outcome says where.
//!
//! Then `proxy_on_log`, `proxy_on_done`, `proxy_on_delete` (or another order: [`Teardown`]),
//! with `response.code` and `response.code_details` set as Envoy sets them.

use crate::abi::{self, Action, Pairs};
use crate::host::{Options, Vm, VmError};

/// A request or response as it travels: headers (pseudo-headers included), the body in the
/// chunks it arrives in, trailers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub headers: Pairs,
    pub body: Vec<Vec<u8>>,
    pub trailers: Option<Pairs>,
}

impl Message {
    /// A request with a body in one chunk (none when empty) and its `content-length`.
    pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Message {
        let mut h = abi::pairs(&[
            (":method", method),
            (":path", path),
            (":authority", "llm.example.com"),
            (":scheme", "http"),
        ]);
        h.extend(abi::pairs(headers));
        Message::with_body(h, body)
    }

    /// A response with a body in one chunk (none when empty) and its `content-length`.
    pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Message {
        let mut h = abi::pairs(&[(":status", &status.to_string())]);
        h.extend(abi::pairs(headers));
        Message::with_body(h, body)
    }

    fn with_body(mut headers: Pairs, body: &[u8]) -> Message {
        if !body.is_empty() && abi::get(&headers, "content-length").is_none() {
            headers.push((
                b"content-length".to_vec(),
                body.len().to_string().into_bytes(),
            ));
        }
        Message {
            headers,
            body: if body.is_empty() {
                Vec::new()
            } else {
                vec![body.to_vec()]
            },
            trailers: None,
        }
    }

    /// The body in these chunks instead, without `content-length` (chunked). An empty list
    /// of chunks ends the message with its headers; one empty chunk is an empty body.
    pub fn chunks<I: IntoIterator<Item = Vec<u8>>>(mut self, chunks: I) -> Message {
        abi::remove(&mut self.headers, b"content-length");
        self.body = chunks.into_iter().collect();
        self
    }

    /// The body cut into chunks of `n` bytes.
    pub fn chunked(self, n: usize) -> Message {
        let all = self.body.concat();
        let chunks: Vec<Vec<u8>> = all.chunks(n.max(1)).map(<[u8]>::to_vec).collect();
        self.chunks(chunks)
    }

    /// Ends the message with these trailers (as HTTP/2 and gRPC do).
    pub fn trailers(mut self, trailers: Pairs) -> Message {
        abi::remove(&mut self.headers, b"content-length");
        self.trailers = Some(trailers);
        self
    }

    /// Adds a header with raw bytes.
    pub fn header(mut self, name: &[u8], value: &[u8]) -> Message {
        self.headers.push((name.to_vec(), value.to_vec()));
        self
    }
}

/// What one side received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    /// `None`: nothing reached this side.
    pub headers: Option<Pairs>,
    pub body: Vec<u8>,
    pub trailers: Option<Pairs>,
    /// The message ended (end of stream reached this side).
    pub complete: bool,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        abi::get_str(self.headers.as_deref()?, name)
    }

    pub fn status(&self) -> Option<u16> {
        self.header(":status")?.parse().ok()
    }
}

/// One exchange to run.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    pub request: Message,
    /// What the upstream answers once it has the whole request.
    pub response: Option<Message>,
    /// Host properties for this request (route metadata, JWT claims), by path segments.
    pub properties: Vec<(Vec<String>, Vec<u8>)>,
    /// The client goes away after this many response body chunks.
    pub client_leaves_after: Option<usize>,
    /// The order of the callbacks that end the stream.
    pub teardown: Teardown,
}

/// How the host ends a stream (Envoy's `conn_manager_impl.cc`, `doDeferredStreamDestroy`):
/// HTTP/1 and HTTP/2 streams are logged, then their filters destroyed (`proxy_on_done`,
/// `proxy_on_delete`); HTTP/3 defers the access log to the client's acknowledgement
/// (`quic_defer_logging_to_ack_listener`), after the filters are gone, or never.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Teardown {
    #[default]
    LogThenDelete,
    DeleteThenLog,
    DeleteOnly,
}

impl Exchange {
    pub fn new(request: Message, response: Message) -> Exchange {
        Exchange {
            request,
            response: Some(response),
            ..Exchange::default()
        }
    }

    pub fn property(mut self, path: &[&str], value: &[u8]) -> Exchange {
        self.properties
            .push((path.iter().map(|s| s.to_string()).collect(), value.to_vec()));
        self
    }
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub upstream: Received,
    pub client: Received,
    /// The module answered the request itself.
    pub local_reply: bool,
    /// The module reset the response.
    pub reset: bool,
    /// Where the exchange stalled, if a callback left it paused for good.
    pub stalled: Option<String>,
    /// The VM trapped during the exchange.
    pub trap: Option<String>,
    /// Writes to headers already on the wire.
    pub late_writes: Vec<String>,
}

/// How a half of the exchange ended.
enum End {
    /// The message reached the other side whole.
    Through,
    /// The module answered (request half) or reset the stream.
    Stopped,
    Stalled(String),
}

impl Vm {
    /// Runs one exchange and its `on_log`. A trap ends it early: the outcome says so, and
    /// the VM is dead from then on.
    pub fn exchange(&mut self, ex: &Exchange) -> Outcome {
        let mut out = Outcome::default();
        if let Err(e) = self.run(ex, &mut out) {
            out.trap = Some(match e {
                VmError::Trap(t) | VmError::Dead(t) => t,
                other => other.to_string(),
            });
        }
        out
    }

    fn run(&mut self, ex: &Exchange, out: &mut Outcome) -> Result<(), VmError> {
        let ctx = self.new_context()?;
        {
            let st = self.stream(ctx);
            for (path, value) in &ex.properties {
                st.properties
                    .insert(path.join("\0").into_bytes(), value.clone());
            }
        }
        match self.request_half(ctx, &ex.request, out)? {
            End::Through => match &ex.response {
                Some(response) => {
                    self.set_property(ctx, "response.code_details", b"via_upstream");
                    match self.response_half(ctx, response, ex.client_leaves_after, out)? {
                        End::Stalled(at) => out.stalled = Some(at),
                        End::Through | End::Stopped => {}
                    }
                }
                None => out.stalled = Some("no upstream answer".into()),
            },
            End::Stopped => {
                if let Some(reply) = self.stream(ctx).local_reply.take() {
                    out.local_reply = true;
                    self.local_reply(ctx, reply, out)?;
                }
            }
            End::Stalled(at) => out.stalled = Some(at),
        }
        out.reset |= self.stream(ctx).reset;
        if let Some(code) = out.client.status() {
            self.set_property(ctx, "response.code", &i64::from(code).to_le_bytes());
        }
        let c = ctx as i32;
        if ex.teardown == Teardown::LogThenDelete {
            self.call_context::<i32, ()>(ctx, "proxy_on_log", c)?;
        }
        self.call_context::<i32, i32>(ctx, "proxy_on_done", c)?;
        self.call_context::<i32, ()>(ctx, "proxy_on_delete", c)?;
        if ex.teardown == Teardown::DeleteThenLog {
            self.call_context::<i32, ()>(ctx, "proxy_on_log", c)?;
        }
        if let Some(stream) = self.state_mut().streams.remove(&ctx) {
            out.late_writes = stream.late_writes;
        }
        Ok(())
    }

    pub(crate) fn stream(&mut self, ctx: u32) -> &mut crate::host::Stream {
        self.state_mut().streams.entry(ctx).or_default()
    }

    fn set_property(&mut self, ctx: u32, dotted: &str, value: &[u8]) {
        let key = dotted.replace('.', "\0").into_bytes();
        self.stream(ctx).properties.insert(key, value.to_vec());
    }

    fn options(&self) -> Options {
        self.state().options.clone()
    }

    /// Whether the module ended the stream in the last callback.
    fn stopped(&mut self, ctx: u32) -> bool {
        let st = self.stream(ctx);
        st.local_reply.is_some() || st.reset
    }

    fn request_half(&mut self, ctx: u32, req: &Message, out: &mut Outcome) -> Result<End, VmError> {
        let c = ctx as i32;
        let ends_with_headers = req.body.is_empty() && req.trailers.is_none();
        self.stream(ctx).request_headers = Some(req.headers.clone());
        let action = Action::from_wasm(self.call_context::<(i32, i32, i32), i32>(
            ctx,
            "proxy_on_request_headers",
            (c, len(req.headers.len()), i32::from(ends_with_headers)),
        )?);
        if self.stopped(ctx) {
            return Ok(End::Stopped);
        }
        let mut held = action == Action::Pause;
        if held && !self.options().headers_stop_iteration {
            return Ok(End::Stalled(
                "request headers paused (StopAllIteration: no body callback follows)".into(),
            ));
        }
        if !held {
            self.send_request_headers(ctx, out);
            if ends_with_headers {
                out.upstream.complete = true;
                return Ok(End::Through);
            }
        } else if ends_with_headers {
            return Ok(End::Stalled(
                "request headers paused at end of stream".into(),
            ));
        }
        let mut paused = false;
        for (i, chunk) in req.body.iter().enumerate() {
            let last = i + 1 == req.body.len() && req.trailers.is_none();
            let size = {
                let body = self.stream(ctx).request_body.get_or_insert_with(Vec::new);
                body.extend_from_slice(chunk);
                body.len()
            };
            let action = Action::from_wasm(self.call_context::<(i32, i32, i32), i32>(
                ctx,
                "proxy_on_request_body",
                (c, len(size), i32::from(last)),
            )?);
            if self.stopped(ctx) {
                return Ok(End::Stopped);
            }
            paused = action == Action::Pause;
            if !paused {
                if held {
                    self.send_request_headers(ctx, out);
                    held = false;
                }
                let body = self.stream(ctx).request_body.take().unwrap_or_default();
                out.upstream.body.extend_from_slice(&body);
            }
        }
        let Some(trailers) = &req.trailers else {
            if paused {
                return Ok(End::Stalled("request body paused at end of stream".into()));
            }
            out.upstream.complete = true;
            return Ok(End::Through);
        };
        self.stream(ctx).request_trailers = Some(trailers.clone());
        let action = Action::from_wasm(self.call_context::<(i32, i32), i32>(
            ctx,
            "proxy_on_request_trailers",
            (c, len(trailers.len())),
        )?);
        if self.stopped(ctx) {
            return Ok(End::Stopped);
        }
        if action == Action::Pause {
            return Ok(End::Stalled("request trailers paused".into()));
        }
        if held {
            self.send_request_headers(ctx, out);
        }
        let st = self.stream(ctx);
        let body = st.request_body.take().unwrap_or_default();
        let trailers = st.request_trailers.clone();
        out.upstream.body.extend_from_slice(&body);
        out.upstream.trailers = trailers;
        out.upstream.complete = true;
        Ok(End::Through)
    }

    fn send_request_headers(&mut self, ctx: u32, out: &mut Outcome) {
        let st = self.stream(ctx);
        st.request_headers_sent = true;
        out.upstream.headers = st.request_headers.clone();
    }

    fn send_response_headers(&mut self, ctx: u32, out: &mut Outcome) {
        let st = self.stream(ctx);
        st.response_headers_sent = true;
        out.client.headers = st.response_headers.clone();
    }

    fn response_half(
        &mut self,
        ctx: u32,
        resp: &Message,
        client_leaves_after: Option<usize>,
        out: &mut Outcome,
    ) -> Result<End, VmError> {
        let c = ctx as i32;
        let ends_with_headers = resp.body.is_empty() && resp.trailers.is_none();
        self.stream(ctx).response_headers = Some(resp.headers.clone());
        let action = Action::from_wasm(self.call_context::<(i32, i32, i32), i32>(
            ctx,
            "proxy_on_response_headers",
            (c, len(resp.headers.len()), i32::from(ends_with_headers)),
        )?);
        if self.stopped(ctx) {
            return self.response_stopped(ctx, out);
        }
        let mut held = action == Action::Pause;
        if held && !self.options().headers_stop_iteration {
            return Ok(End::Stalled(
                "response headers paused (StopAllIteration: no body callback follows)".into(),
            ));
        }
        if !held {
            self.send_response_headers(ctx, out);
            if ends_with_headers {
                out.client.complete = true;
                return Ok(End::Through);
            }
        } else if ends_with_headers {
            return Ok(End::Stalled(
                "response headers paused at end of stream".into(),
            ));
        }
        let mut paused = false;
        for (i, chunk) in resp.body.iter().enumerate() {
            if client_leaves_after == Some(i) {
                self.set_property(
                    ctx,
                    "response.code_details",
                    b"downstream_remote_disconnect",
                );
                return Ok(End::Stopped);
            }
            let last = i + 1 == resp.body.len() && resp.trailers.is_none();
            let size = {
                let body = self.stream(ctx).response_body.get_or_insert_with(Vec::new);
                body.extend_from_slice(chunk);
                body.len()
            };
            let action = Action::from_wasm(self.call_context::<(i32, i32, i32), i32>(
                ctx,
                "proxy_on_response_body",
                (c, len(size), i32::from(last)),
            )?);
            if self.stopped(ctx) {
                return self.response_stopped(ctx, out);
            }
            paused = action == Action::Pause;
            if !paused {
                if held {
                    self.send_response_headers(ctx, out);
                    held = false;
                }
                let body = self.stream(ctx).response_body.take().unwrap_or_default();
                out.client.body.extend_from_slice(&body);
            }
        }
        let Some(trailers) = &resp.trailers else {
            if paused {
                return Ok(End::Stalled("response body paused at end of stream".into()));
            }
            out.client.complete = true;
            return Ok(End::Through);
        };
        self.stream(ctx).response_trailers = Some(trailers.clone());
        let action = Action::from_wasm(self.call_context::<(i32, i32), i32>(
            ctx,
            "proxy_on_response_trailers",
            (c, len(trailers.len())),
        )?);
        if self.stopped(ctx) {
            return self.response_stopped(ctx, out);
        }
        if action == Action::Pause {
            return Ok(End::Stalled("response trailers paused".into()));
        }
        if held {
            self.send_response_headers(ctx, out);
        }
        let st = self.stream(ctx);
        let body = st.response_body.take().unwrap_or_default();
        let trailers = st.response_trailers.clone();
        out.client.body.extend_from_slice(&body);
        out.client.trailers = trailers;
        out.client.complete = true;
        Ok(End::Through)
    }

    /// The module reset the response, or answered locally in the response phase: a local
    /// reply replaces the response while its headers have not gone out, else it is a reset.
    fn response_stopped(&mut self, ctx: u32, out: &mut Outcome) -> Result<End, VmError> {
        let reply = self.stream(ctx).local_reply.take();
        match reply {
            Some(reply) if out.client.headers.is_none() && !self.stream(ctx).reset => {
                out.local_reply = true;
                out.client = Default::default();
                self.local_reply(ctx, reply, out)?;
            }
            Some(_) => self.stream(ctx).reset = true,
            None => {}
        }
        Ok(End::Stopped)
    }

    /// A local reply goes to the client through the filter's own response callbacks.
    fn local_reply(
        &mut self,
        ctx: u32,
        reply: crate::host::LocalReply,
        out: &mut Outcome,
    ) -> Result<(), VmError> {
        let mut headers = abi::pairs(&[(":status", &reply.status.to_string())]);
        headers.extend(reply.headers.iter().cloned());
        if !reply.body.is_empty() {
            abi::replace(
                &mut headers,
                b"content-length",
                reply.body.len().to_string().as_bytes(),
            );
        }
        let details = if reply.details.is_empty() {
            b"wasm_local_reply".to_vec()
        } else {
            reply.details.clone()
        };
        self.set_property(ctx, "response.code_details", &details);
        let message = Message {
            headers,
            body: if reply.body.is_empty() {
                Vec::new()
            } else {
                vec![reply.body]
            },
            trailers: None,
        };
        {
            let st = self.stream(ctx);
            st.response_body = None;
        }
        match self.response_half(ctx, &message, None, out)? {
            End::Stalled(at) => out.stalled = Some(format!("local reply: {at}")),
            End::Through | End::Stopped => {}
        }
        Ok(())
    }
}

fn len(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
