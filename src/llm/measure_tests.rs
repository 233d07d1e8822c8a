//! [`super::measure`] against [`super::extract`]: the same number of texts, the same bytes and
//! the same caps over every format and phase, for the generated bodies and those at the caps.

use serde_json::Value;

use super::testutil::{bodies_at_the_caps, BodyGen};
use super::{extract, measure, ApiFormat, Phase, TooComplex};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const FORMATS: [ApiFormat; 6] = [
    ApiFormat::OpenaiChat,
    ApiFormat::OpenaiResponses,
    ApiFormat::OpenaiCompletions,
    ApiFormat::OpenaiEmbeddings,
    ApiFormat::AnthropicMessages,
    ApiFormat::Unknown,
];

/// Asserts both readings agree; the cap extraction stopped at, if any.
fn assert_same(format: ApiFormat, phase: Phase, body: &Value, what: &str) -> Option<TooComplex> {
    let full = extract(format, phase, body);
    let counted = measure(format, phase, body);
    match (full, counted) {
        (Ok(full), Ok(counted)) => {
            let all = full.all();
            let bytes: u64 = all.iter().map(|s| s.text.len() as u64).sum();
            assert_eq!(full.len(), all.len(), "{what}: {format:?} {phase:?}");
            assert_eq!(full.text_bytes(), bytes, "{what}: {format:?} {phase:?}");
            assert_eq!(counted.len(), all.len(), "{what}: {format:?} {phase:?}");
            assert_eq!(counted.text_bytes(), bytes, "{what}: {format:?} {phase:?}");
            assert!(counted.all().is_empty() && counted.paths.is_empty());
            None
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "{what}: {format:?} {phase:?}");
            Some(a)
        }
        (a, b) => panic!(
            "{what}: {format:?} {phase:?}: extract {:?}, measure {:?}",
            a.map(|t| t.len()),
            b.map(|t| t.len())
        ),
    }
}

#[test]
fn measure_counts_what_extract_finds_in_generated_bodies() {
    let mut g = BodyGen::new(16);
    let mut texts = 0;
    for i in 0..3000 {
        let body = g.body();
        for format in FORMATS {
            for phase in [Phase::Request, Phase::Response] {
                assert_same(format, phase, &body, &format!("body {i}: {body}"));
            }
        }
        texts += extract(ApiFormat::Unknown, Phase::Response, &body).map_or(0, |t| t.len());
    }
    assert!(texts > 10_000, "the bodies have texts: {texts}");
}

#[test]
fn measure_fails_where_extract_fails_at_the_caps() {
    let mut failed = Vec::new();
    for (i, body) in bodies_at_the_caps().iter().enumerate() {
        for format in [ApiFormat::OpenaiChat, ApiFormat::Unknown] {
            for phase in [Phase::Request, Phase::Response] {
                failed.extend(assert_same(format, phase, body, &format!("cap body {i}")));
            }
        }
    }
    for cap in [TooComplex::Texts, TooComplex::PathNodes, TooComplex::Depth] {
        assert!(failed.contains(&cap), "no body reached {cap:?}");
    }
}
