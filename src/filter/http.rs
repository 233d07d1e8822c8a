//! The HTTP context: maps proxy-wasm callbacks onto the exchange (`crate::exchange`), which
//! decides everything, and queues its record when the stream ends. Nothing here decides.

use std::rc::Rc;

use super::abi::Action;
use super::host::{self, ProxyHost};
use super::root::Shared;
use super::timing::{self, Callback};
use crate::exchange::{Exchange, Flow};

pub struct Http {
    shared: Option<Rc<Shared>>,
    exchange: Option<Exchange>,
}

impl Http {
    pub fn new(shared: Option<Rc<Shared>>) -> Http {
        let exchange = shared
            .as_ref()
            .map(|s| Exchange::new(Rc::clone(&s.config)).with_text_cache(s.text_cache.clone()));
        Http { shared, exchange }
    }
}

fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Pause => Action::Pause,
    }
}

impl Http {
    pub fn on_http_request_headers(&mut self, end_of_stream: bool) -> Action {
        let _t = timing::span(Callback::RequestHeaders);
        let (Some(shared), Some(ex)) = (&self.shared, self.exchange.as_mut()) else {
            return Action::Continue;
        };
        let mut ids = shared.ids.borrow_mut();
        action(ex.on_request_headers(&mut ProxyHost, end_of_stream, &mut ids, host::now_ms()))
    }

    pub fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let _t = timing::span(Callback::RequestBody);
        self.exchange.as_mut().map_or(Action::Continue, |ex| {
            action(ex.on_request_body(&mut ProxyHost, body_size, end_of_stream))
        })
    }

    pub fn on_http_request_trailers(&mut self) -> Action {
        self.exchange.as_mut().map_or(Action::Continue, |ex| {
            action(ex.on_request_trailers(&mut ProxyHost))
        })
    }

    pub fn on_http_response_headers(&mut self, end_of_stream: bool) -> Action {
        let _t = timing::span(Callback::ResponseHeaders);
        self.exchange.as_mut().map_or(Action::Continue, |ex| {
            action(ex.on_response_headers(&mut ProxyHost, end_of_stream))
        })
    }

    pub fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let _t = timing::span(Callback::ResponseBody);
        self.exchange.as_mut().map_or(Action::Continue, |ex| {
            action(ex.on_response_body(&mut ProxyHost, body_size, end_of_stream))
        })
    }

    pub fn on_http_response_trailers(&mut self) -> Action {
        self.exchange.as_mut().map_or(Action::Continue, |ex| {
            action(ex.on_response_trailers(&mut ProxyHost))
        })
    }

    pub fn on_log(&mut self) {
        let (Some(shared), Some(ex)) = (&self.shared, self.exchange.as_mut()) else {
            return;
        };
        let now = host::now_ms();
        let t = timing::span(Callback::LogFinish);
        if !shared.keeps_records() {
            // No sink and no shipper: a record would go nowhere, so none is built.
            let tally = ex.finish_unrecorded(&ProxyHost, &mut shared.ids.borrow_mut(), now);
            shared.metrics.inspection_errors(tally.inspection_errors);
            shared.metrics.decision(tally.decision, tally.mode);
            return;
        }
        let finished = ex.finish(&ProxyHost, &mut shared.ids.borrow_mut(), now);
        drop(t);
        let _t = timing::span(Callback::LogEmit);
        shared.metrics.inspection_errors(finished.inspection_errors);
        shared.metrics.decision(finished.decision, finished.mode);
        shared.emit(&finished.record, now);
    }
}
