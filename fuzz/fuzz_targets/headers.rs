//! Request header maps of arbitrary bytes (names and values, read lossily as the filter reads
//! the host's byte maps) through attribution and API detection:
//! - no panic;
//! - attribution takes the first source, in the configured order, that yields a usable id,
//!   and an id is usable only when it is non-empty, trimmed, at most `MAX_ID_LEN` bytes and
//!   free of control characters, whatever the bytes were;
//! - the id is labelled with its source and trusted exactly as that source is;
//! - a project looked up by API key is one of the configured projects, and neither the label
//!   nor the id ever holds the key; fingerprints are `sha256:` + 32 hex digits.
//!
//! Input: byte 0 picks the order of sources; the rest, split at NUL bytes, is the `:path`
//! then `name`, `value` pairs. Pseudo-headers `jwt:<payload>.<claim>` and
//! `route:<namespace>.<key>` stand for `jwt_authn` metadata and route metadata, `body` for
//! the request body.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use policy_gateway::config::attribution::{self, fingerprint, RequestView, Source, MAX_ID_LEN};
use policy_gateway::llm;
use serde_json::Value;

/// A key the `api_key_map` source knows (seeds carry it).
const KNOWN_KEY: &str = "sk-proj-fuzz-known-key-0001";

struct View(Vec<(String, String)>);

impl View {
    /// The first value, as Envoy's maps are read.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl RequestView for View {
    fn header(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }
    fn jwt_claim(&self, payload_in_metadata: &str, claim: &str) -> Option<String> {
        self.header(&format!("jwt:{payload_in_metadata}.{claim}"))
    }
    fn route_metadata(&self, namespace: &str, key: &str) -> Option<String> {
        self.header(&format!("route:{namespace}.{key}"))
    }
}

fn sources() -> Vec<Source> {
    let mut map = BTreeMap::new();
    map.insert(fingerprint(KNOWN_KEY), "proj-keyed".to_string());
    map.insert(fingerprint("other"), " \u{1b}[31m".to_string());
    vec![
        Source::Header {
            name: "x-user-id".into(),
        },
        Source::JwtAuthn {
            payload_in_metadata: "jwt_payload".into(),
            claim: "sub".into(),
        },
        Source::BearerJwtUnverified {
            claim: "sub".into(),
        },
        Source::BodyField {
            pointer: "/user".into(),
        },
        Source::RouteMetadata {
            namespace: "policy_gateway".into(),
            key: "project".into(),
        },
        Source::ApiKeyMap {
            header: "authorization".into(),
            map,
        },
    ]
}

fn is_fingerprint(f: &str) -> bool {
    f.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut fields = rest.split(|&b| b == 0).map(String::from_utf8_lossy);
    let path = fields.next().map(|p| p.into_owned());
    let mut pairs = Vec::new();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        pairs.push((name.into_owned(), value.into_owned()));
    }
    let view = View(pairs);
    let body: Option<Value> = view.get("body").and_then(|b| serde_json::from_str(b).ok());

    let mut order = sources();
    let n = order.len();
    order.rotate_left(usize::from(selector) % n);
    if selector & 0x80 != 0 {
        order.reverse();
    }
    order.truncate(1 + usize::from(selector >> 3) % n);

    let got = attribution::resolve(&order, &view, body.as_ref());
    let first = order.iter().find_map(|s| {
        attribution::resolve(std::slice::from_ref(s), &view, body.as_ref()).map(|a| (s, a))
    });
    assert_eq!(
        got,
        first.as_ref().map(|(_, a)| a.clone()),
        "not the first source"
    );
    if let Some((source, a)) = &first {
        assert!(!a.value.is_empty() && a.value.len() <= MAX_ID_LEN);
        assert_eq!(a.value, a.value.trim());
        assert!(!a.value.chars().any(char::is_control), "{:?}", a.value);
        assert_eq!(a.source, source.label());
        assert_eq!(a.verified, source.verified());
        if let Source::ApiKeyMap { header, map } = source {
            assert!(map.values().any(|p| p == &a.value));
            if let Some(key) = view.get(header).filter(|k| k.trim().len() >= 8) {
                assert!(!a.source.contains(key.trim()) && !a.value.contains(key.trim()));
            }
        }
    }
    for (_, value) in &view.0 {
        assert!(is_fingerprint(&fingerprint(value)));
    }
    let _ = llm::detect_format(path.as_deref(), body.as_ref().unwrap_or(&Value::Null));
    if let Some(p) = &path {
        let _ = llm::format_from_path(p);
    }
});
