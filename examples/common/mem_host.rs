//! The profiling examples' in-memory proxy-wasm host (`prof_exchange`, `prof_ttft`): headers
//! and bodies as given, nothing recorded, so the count is the exchange's own work. A response
//! body the filter replaces becomes the chunk in hand, as the host would let it out.

use std::hint::black_box;

use policy_gateway::exchange::{Host, Side};
use policy_gateway::headers::HeaderMap;

pub struct MemHost {
    pub request: Vec<(Vec<u8>, Vec<u8>)>,
    pub response: Vec<(Vec<u8>, Vec<u8>)>,
    pub request_body: Vec<u8>,
    /// The chunk of the response body in hand, replaced by what the filter lets out.
    pub response_body: Vec<u8>,
}

impl Host for MemHost {
    fn headers(&self, side: Side) -> HeaderMap {
        HeaderMap::from_pairs(match side {
            Side::Request => self.request.clone(),
            Side::Response => self.response.clone(),
        })
    }
    fn set_header(&mut self, _side: Side, name: &str, value: Option<&str>) {
        black_box((name, value));
    }
    fn body(&self, side: Side, size: usize) -> Option<Vec<u8>> {
        let b = match side {
            Side::Request => &self.request_body,
            Side::Response => &self.response_body,
        };
        Some(b[..size.min(b.len())].to_vec())
    }
    fn replace_body(&mut self, side: Side, _old: usize, body: &[u8]) -> bool {
        if side == Side::Response {
            self.response_body = body.to_vec();
        }
        true
    }
    fn send_response(&mut self, _s: u16, _h: &[(&str, &str)], _b: &[u8]) -> bool {
        true
    }
    fn reset_response(&mut self) {}
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        (path == ["response", "code_details"]).then(|| b"via_upstream".to_vec())
    }
}

/// Header pairs as the host holds them.
pub fn pairs(p: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    p.iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}
