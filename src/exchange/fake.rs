//! A host made of maps, for tests: headers and bodies as given, every change recorded, and
//! knobs to make it refuse what a real host may refuse.

use std::collections::BTreeMap;

use super::{Host, Side};
use crate::headers::HeaderMap;

/// A local reply: status, headers, body.
pub type LocalResponse = (u16, Vec<(String, String)>, Vec<u8>);

#[derive(Default)]
pub struct FakeHost {
    pub request_headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub response_headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub request_body: Vec<u8>,
    pub response_body: Vec<u8>,
    pub properties: BTreeMap<String, Vec<u8>>,
    /// The host says no to every body replacement.
    pub refuse_replace: bool,
    pub local_response: Option<LocalResponse>,
    pub reset: bool,
}

fn pairs(host: &mut FakeHost, side: Side) -> &mut Vec<(Vec<u8>, Vec<u8>)> {
    match side {
        Side::Request => &mut host.request_headers,
        Side::Response => &mut host.response_headers,
    }
}

impl FakeHost {
    pub fn header(&self, side: Side, name: &str) -> Option<String> {
        let map = match side {
            Side::Request => &self.request_headers,
            Side::Response => &self.response_headers,
        };
        map.iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn set_property(&mut self, path: &[&str], value: &[u8]) {
        self.properties.insert(path.join("."), value.to_vec());
    }
}

impl Host for FakeHost {
    fn headers(&self, side: Side) -> HeaderMap {
        HeaderMap::from_pairs(match side {
            Side::Request => self.request_headers.clone(),
            Side::Response => self.response_headers.clone(),
        })
    }

    fn set_header(&mut self, side: Side, name: &str, value: Option<&str>) {
        let map = pairs(self, side);
        map.retain(|(k, _)| k != name.as_bytes());
        if let Some(v) = value {
            map.push((name.as_bytes().to_vec(), v.as_bytes().to_vec()));
        }
    }

    fn body(&self, side: Side, size: usize) -> Option<Vec<u8>> {
        let body = match side {
            Side::Request => &self.request_body,
            Side::Response => &self.response_body,
        };
        (!body.is_empty()).then(|| body[..size.min(body.len())].to_vec())
    }

    fn replace_body(&mut self, side: Side, old_size: usize, body: &[u8]) -> bool {
        if self.refuse_replace {
            return false;
        }
        let target = match side {
            Side::Request => &mut self.request_body,
            Side::Response => &mut self.response_body,
        };
        let old = old_size.min(target.len());
        target.splice(..old, body.iter().copied());
        true
    }

    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> bool {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.local_response = Some((status, headers, body.to_vec()));
        true
    }

    fn reset_response(&mut self) {
        self.reset = true;
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.properties.get(&path.join(".")).cloned()
    }
}
