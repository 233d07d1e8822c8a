//! The cheapest possible proxy-wasm HTTP filter: every callback returns at once. Measured
//! beside bare Envoy and Policy Gateway, it shows what any V8-hosted filter costs before it
//! does any work (`bench/run.py --floor`).

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Null))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Null;

impl Context for Null {}

impl HttpContext for Null {}
