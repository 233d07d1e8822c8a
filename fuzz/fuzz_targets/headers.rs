//! Header maps of arbitrary bytes, as a proxy-wasm host hands them over, through the
//! decoder, attribution and a whole exchange:
//! - the host's serialisation is decoded without panicking, and what `encode` writes decodes
//!   to the same pairs;
//! - attribution takes the first source, in the configured order, that yields a usable id;
//!   an id is non-empty, trimmed, at most `MAX_ID_LEN` bytes, free of control characters; it
//!   is labelled with its source and verified exactly as the source is (a header only when
//!   trusted); a repeated or non-UTF-8 header a source reads is recorded as rejected; an API
//!   key never ends up in a label or an id;
//! - an exchange with these headers on the request and the response ends in one record that
//!   is JSON, under `MAX_RECORD_BYTES`, whose `request_id` is either a plain client id or the
//!   gateway's own, and whose client-chosen fields hold no control characters.
//!
//! Input: byte 0 picks the order of sources; the rest, split at NUL bytes, is `name`,
//! `value` pairs (so names and values are any bytes but NUL). The whole input is also fed to
//! the decoder as a serialised map. Pseudo-headers `jwt:<payload>.<claim>` and
//! `route:<namespace>.<key>` stand for `jwt_authn` metadata and route metadata.
#![no_main]

use std::collections::BTreeMap;
use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use policy_gateway::audit::record::MAX_RECORD_BYTES;
use policy_gateway::audit::{id, IdGenerator};
use policy_gateway::config::attribution::{self, fingerprint, RequestView, Source, MAX_ID_LEN};
use policy_gateway::config::PluginConfig;
use policy_gateway::exchange::{Exchange, Host, Side};
use policy_gateway::headers::{self, HeaderMap, Lookup};

/// A key the `api_key_map` source knows (seeds carry it).
const KNOWN_KEY: &str = "sk-proj-fuzz-known-key-0001";

struct View<'a>(&'a HeaderMap);

impl View<'_> {
    fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).text().map(str::to_string)
    }
}

impl RequestView for View<'_> {
    fn header(&self, name: &str) -> Lookup<'_> {
        self.0.get(name)
    }
    fn jwt_claim(&self, payload_in_metadata: &str, claim: &str) -> Option<String> {
        self.text(&format!("jwt:{payload_in_metadata}.{claim}"))
    }
    fn route_metadata(&self, namespace: &str, key: &str) -> Option<String> {
        self.text(&format!("route:{namespace}.{key}"))
    }
}

fn sources() -> Vec<Source> {
    let mut map = BTreeMap::new();
    map.insert(fingerprint(KNOWN_KEY), "proj-keyed".to_string());
    map.insert(fingerprint("other"), " \u{1b}[31m".to_string());
    vec![
        Source::Header {
            name: "x-user-id".into(),
            trusted: true,
        },
        Source::Header {
            name: "x-client-user".into(),
            trusted: false,
        },
        Source::JwtAuthn {
            payload_in_metadata: "jwt_payload".into(),
            claim: "sub".into(),
        },
        Source::BearerJwtUnverified {
            claim: "sub".into(),
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

/// The exchange's host: the fuzzed map on both sides, small JSON bodies.
struct MapHost {
    map: HeaderMap,
    request_body: Vec<u8>,
    response_body: Vec<u8>,
}

impl Host for MapHost {
    fn headers(&self, _side: Side) -> HeaderMap {
        self.map.clone()
    }
    fn set_header(&mut self, _side: Side, _name: &str, _value: Option<&str>) {}
    fn body(&self, side: Side, size: usize) -> Option<Vec<u8>> {
        let b = match side {
            Side::Request => &self.request_body,
            Side::Response => &self.response_body,
        };
        b.get(..size.min(b.len())).map(<[u8]>::to_vec)
    }
    fn replace_body(&mut self, _side: Side, _old: usize, _body: &[u8]) -> bool {
        true
    }
    fn send_response(&mut self, _status: u16, _headers: &[(&str, &str)], _body: &[u8]) -> bool {
        true
    }
    fn reset_response(&mut self) {}
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.map.all(&path.join(".")).next().map(<[u8]>::to_vec)
    }
}

thread_local! {
    static CONFIG: Rc<PluginConfig> = {
        let doc = serde_json::json!({
            "policy": serde_json::from_str::<serde_json::Value>(
                include_str!("../../policies/default.json")).unwrap(),
            "attribution": {"user": sources()[..4].iter().map(source_doc).collect::<Vec<_>>(),
                            "project": [source_doc(&sources()[4]), source_doc(&sources()[5])]},
        });
        Rc::new(PluginConfig::from_json(&serde_json::to_vec(&doc).unwrap()).unwrap())
    };
}

fn source_doc(s: &Source) -> serde_json::Value {
    use serde_json::json;
    match s {
        Source::Header { name, trusted } => {
            json!({"source": "header", "name": name, "trusted": trusted})
        }
        Source::JwtAuthn {
            payload_in_metadata,
            claim,
        } => {
            json!({"source": "jwt_authn", "payload_in_metadata": payload_in_metadata, "claim": claim})
        }
        Source::BearerJwtUnverified { claim } => {
            json!({"source": "bearer_jwt_unverified", "claim": claim})
        }
        Source::BodyField { pointer } => json!({"source": "body_field", "pointer": pointer}),
        Source::RouteMetadata { namespace, key } => {
            json!({"source": "route_metadata", "namespace": namespace, "key": key})
        }
        Source::ApiKeyMap { header, map } => {
            json!({"source": "api_key_map", "header": header, "map": map})
        }
    }
}

fn clean(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

fuzz_target!(|data: &[u8]| {
    // The decoder on the raw bytes: any answer, never a panic.
    let _ = HeaderMap::decode(data);
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut fields = rest.split(|&b| b == 0);
    let mut pairs: Vec<(&[u8], &[u8])> = Vec::new();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        pairs.push((name, value));
    }
    let encoded = headers::encode(&pairs);
    let map = HeaderMap::decode(&encoded).expect("what encode writes decodes");
    assert_eq!(map.len(), pairs.len());
    let view = View(&map);

    let mut order = sources();
    let n = order.len();
    order.rotate_left(usize::from(selector) % n);
    if selector & 0x80 != 0 {
        order.reverse();
    }
    order.truncate(1 + usize::from(selector >> 3) % n);

    let got = attribution::resolve(&order, &view, None);
    let first = order.iter().find_map(|s| {
        attribution::resolve(std::slice::from_ref(s), &view, None)
            .found
            .map(|a| (s, a))
    });
    assert_eq!(
        got.found,
        first.as_ref().map(|(_, a)| a.clone()),
        "not the first source"
    );
    for why in &got.rejected {
        assert!(
            why.ends_with(" repeated") || why.ends_with(" not UTF-8"),
            "{why}"
        );
    }
    if let Some((source, a)) = &first {
        assert!(!a.value.is_empty() && a.value.len() <= MAX_ID_LEN);
        assert_eq!(a.value, a.value.trim());
        assert!(clean(&a.value), "{:?}", a.value);
        assert_eq!(a.source, source.label());
        assert_eq!(a.verified, source.verified());
        if let Source::Header { trusted, .. } = source {
            assert_eq!(a.verified, *trusted);
        }
        if let Source::ApiKeyMap { header, map } = source {
            assert!(map.values().any(|p| p == &a.value));
            if let Some(key) = view.text(header).filter(|k| k.trim().len() >= 8) {
                assert!(!a.source.contains(key.trim()) && !a.value.contains(key.trim()));
            }
        }
    }

    // A whole exchange with these headers both ways.
    let config = CONFIG.with(Rc::clone);
    let mut host = MapHost {
        map,
        request_body: br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi a@b.io"}]}"#
            .to_vec(),
        response_body:
            br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}]}"#.to_vec(),
    };
    let mut ids = IdGenerator::new(u64::from(selector));
    let mut ex = Exchange::new(config);
    ex.on_request_headers(&mut host, false, &mut ids, 1_000);
    let n = host.request_body.len();
    ex.on_request_body(&mut host, n, true);
    ex.on_response_headers(&mut host, false);
    let n = host.response_body.len();
    ex.on_response_body(&mut host, n, false);
    ex.on_response_trailers(&mut host);
    let record = ex.finish(&host, &mut ids, 1_001).record;
    let json = record.to_json();
    assert!(json.len() <= MAX_RECORD_BYTES);
    let _: serde_json::Value = serde_json::from_str(&json).expect("a record is JSON");
    assert!(record.request_id == record.record_id || id::acceptable_request_id(&record.request_id));
    for v in [
        &record.policy_user,
        &record.policy_project_id,
        &record.model,
        &record.body_model,
    ]
    .into_iter()
    .flatten()
    {
        assert!(clean(v) && v.len() <= 256, "{v:?}");
    }
});
