//! The model a request path names, for providers that serve the model in the path rather
//! than the body's `model`.
//!
//! - Azure OpenAI: `/openai/deployments/{deployment-id}/…` (chat, completions, embeddings,
//!   responses…) serves the deployment, whatever the body says. Its v1 surface
//!   (`/openai/v1/…`) takes `model` from the body and names none here.
//! - Amazon Bedrock: `/model/{modelId}/invoke`, `/invoke-with-response-stream`, `/converse`,
//!   `/converse-stream`, `/count-tokens`; the id may be an inference profile or an ARN,
//!   percent-encoded (`arn%3Aaws%3Abedrock%3A…%2F…`).
//! - Google Vertex AI: `…/publishers/{publisher}/models/{model}:{method}`.
//!
//! Segments are percent-decoded (one that decodes to invalid UTF-8 stays as written), then
//! `.` and `..` are resolved as RFC 3986 does and empty segments dropped, so an encoded or
//! dotted path names the model the upstream will route to (`gpt%2D35-turbo` is
//! `gpt-35-turbo`). Fixed words compare ASCII case-insensitively. When a path names a model
//! more than once, the first wins: it is the one nearest the root, which is what the upstream
//! routes on.

use std::borrow::Cow;

/// Bedrock runtime operations whose path names the model.
const BEDROCK_ACTIONS: [&str; 5] = [
    "invoke",
    "invoke-with-response-stream",
    "converse",
    "converse-stream",
    "count-tokens",
];

/// What a request path says about the model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathModel {
    /// The model the path makes the upstream serve.
    pub model: Option<String>,
    /// The path is a Bedrock Converse call (`/converse`, `/converse-stream`), whose body
    /// shape no format module reads.
    pub bedrock_converse: bool,
}

/// The model the path makes the upstream serve; None when the path does not name one.
pub fn served_model(path: &str) -> Option<String> {
    read(path).model
}

/// Whether the path is a Bedrock Converse call.
pub fn is_bedrock_converse(path: &str) -> bool {
    read(path).bedrock_converse
}

/// Reads the path once; the first place that names a model decides.
#[inline(never)]
pub fn read(path: &str) -> PathModel {
    // Every place that names a model has a segment `openai` or `model` (`models` under
    // `publishers`), and without a `%` the segments are the path's own text: most paths
    // (`/v1/chat/completions`, read for each body) are answered without splitting them.
    if names_none(path.as_bytes()) {
        return PathModel::default();
    }
    read_segments(path)
}

/// Whether `path` has no `%` and no `model` nor `openai` in any case: one pass that stops
/// only at an `m`, `o` or `%` (`/v1/chat/completions` has three), read for each body.
fn names_none(path: &[u8]) -> bool {
    !path.iter().enumerate().any(|(i, &b)| {
        let word: &[u8] = match b | 0x20 {
            b'm' => b"model",
            b'o' => b"openai",
            // `%`, or a control byte that reads as one here: then the segments decide.
            b'%' => return true,
            _ => return false,
        };
        path.get(i..i + word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    })
}

/// [`read`] by the segments, always.
fn read_segments(path: &str) -> PathModel {
    let segs = segments(path);
    let word = |i: usize, w: &str| segs.get(i).is_some_and(|s| is(s, w));
    for (k, seg) in segs.iter().enumerate() {
        let (next, after) = (segs.get(k + 1), segs.get(k + 2));
        let found = if is(seg, "openai") && word(k + 1, "deployments") {
            after.map(|d| (d.as_ref(), false))
        } else if is(seg, "model") {
            match (next, after) {
                (Some(id), Some(action)) if BEDROCK_ACTIONS.iter().any(|a| is(action, a)) => {
                    let converse = is(action, "converse") || is(action, "converse-stream");
                    Some((id.as_ref(), converse))
                }
                _ => None,
            }
        } else if is(seg, "publishers") && word(k + 2, "models") {
            segs.get(k + 3).map(|m| (vertex_model(m), false))
        } else {
            None
        };
        if let Some((model, bedrock_converse)) = found {
            return PathModel {
                model: Some(model.to_owned()),
                bedrock_converse,
            };
        }
    }
    PathModel::default()
}

/// `{model}` of Vertex AI's `{model}:{method}`.
fn vertex_model(m: &str) -> &str {
    match m.rsplit_once(':') {
        Some((name, method))
            if !method.is_empty() && method.bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            name
        }
        _ => m,
    }
}

/// ASCII case-insensitive equality (one copy, not one per call site).
#[inline(never)]
fn is(s: &str, word: &str) -> bool {
    s.eq_ignore_ascii_case(word)
}

/// The path's segments, decoded, dot segments resolved, empty ones dropped; query and
/// fragment cut.
fn segments(path: &str) -> Vec<Cow<'_, str>> {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    let mut out: Vec<Cow<'_, str>> = Vec::new();
    for raw in path.get(..end).unwrap_or(path).split('/') {
        let seg = percent_decode(raw);
        match seg.as_ref() {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(seg),
        }
    }
    out
}

/// `%XX` escapes decoded (malformed ones kept as they are); a segment that decodes to invalid
/// UTF-8 is kept as written.
#[inline(never)]
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = |j: usize| b.get(j).and_then(|h| (*h as char).to_digit(16));
        match (c, hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_or(Cow::Borrowed(s), Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// The shortcut for paths that name no model answers as the segments do, whatever the
    /// path: generated from the words that matter, encoded, dotted and cased.
    #[test]
    fn the_shortcut_reads_as_the_segments() {
        const PIECES: &[&str] = &[
            "/",
            "/",
            "v1",
            "chat",
            "completions",
            "openai",
            "OpenAI",
            "deployments",
            "model",
            "MODEL",
            "models",
            "mod",
            "el",
            "publishers",
            "google",
            "gpt-4o",
            "invoke",
            "converse",
            "count-tokens",
            "gemini:generateContent",
            ".",
            "..",
            "%2F",
            "%6Dodel",
            "%6F",
            "?",
            "#",
            "%",
            "%zz",
            "openai/deployments",
            "model/x/invoke",
            "mOdEl",
            "oPeNaI",
            "mode",
            "open",
            "m",
            "\u{5}",
            "\u{4d}\u{4f}",
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            let mut path = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for i in 0..(x % 9) {
                let r = x.rotate_left((i * 7) as u32);
                path.push_str(PIECES[(r % PIECES.len() as u64) as usize]);
                if r & 0x100 != 0 {
                    path.push('/');
                }
            }
            assert_eq!(read(&path), read_segments(&path), "{path:?}");
        }
    }

    #[test]
    fn azure_deployments() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21",
                Some("gpt4o-prod"),
            ),
            ("/openai/deployments/legacy/completions", Some("legacy")),
            (
                "/openai/deployments/ada/embeddings?api-version=2024-10-21",
                Some("ada"),
            ),
            ("/openai/deployments/d1/responses", Some("d1")),
            ("/azure/openai/deployments/d2/chat/completions", Some("d2")),
            ("/OpenAI/Deployments/d3/chat/completions", Some("d3")),
            ("//openai//deployments//d4//chat/completions", Some("d4")),
            (
                "/openai/deployments/gpt%2D35-turbo/chat/completions",
                Some("gpt-35-turbo"),
            ),
            (
                "/openai/deployments/x/../gpt-35/chat/completions",
                Some("gpt-35"),
            ),
            ("/openai/deployments/./x/chat/completions", Some("x")),
            ("/openai/%64eployments/y/chat/completions", Some("y")),
            // The v1 surface, and plain OpenAI paths, take the model from the body.
            ("/openai/v1/chat/completions?api-version=preview", None),
            ("/v1/chat/completions", None),
            ("/openai/deployments", None),
            ("/deployments/x/chat/completions", None),
            ("", None),
        ];
        for (p, m) in cases {
            assert_eq!(served_model(p).as_deref(), *m, "{p}");
        }
    }

    #[test]
    fn bedrock_models_and_arns() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/invoke",
                Some("anthropic.claude-3-5-sonnet-20240620-v1:0"),
            ),
            (
                "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke-with-response-stream",
                Some("anthropic.claude-3-5-sonnet-20240620-v1:0"),
            ),
            ("/model/us.meta.llama3-2-90b-instruct-v1%3A0/converse", Some("us.meta.llama3-2-90b-instruct-v1:0")),
            ("/model/amazon.nova-pro-v1%3A0/converse-stream", Some("amazon.nova-pro-v1:0")),
            ("/model/m/count-tokens", Some("m")),
            (
                "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A111122223333%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-20250514-v1%3A0/converse",
                Some("arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0"),
            ),
            ("/model/M/INVOKE", Some("M")),
            // Not a Bedrock operation: no model from the path.
            ("/model/x/describe", None),
            ("/model/invoke", None),
            ("/v1/models/gpt-4o", None),
        ];
        for (p, m) in cases {
            assert_eq!(served_model(p).as_deref(), *m, "{p}");
        }
        assert!(is_bedrock_converse("/model/x/converse"));
        assert!(is_bedrock_converse("/model/x%3A0/converse-stream"));
        assert!(!is_bedrock_converse("/model/x/invoke"));
        assert!(!is_bedrock_converse("/v1/converse"));
    }

    #[test]
    fn vertex_publisher_models() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict",
                Some("claude-sonnet-4@20250514"),
            ),
            (
                "/v1/projects/p/locations/global/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
                Some("gemini-2.0-flash"),
            ),
            ("/v1/publishers/google/models/gemini-pro", Some("gemini-pro")),
        ];
        for (p, m) in cases {
            assert_eq!(served_model(p).as_deref(), *m, "{p}");
        }
    }

    #[test]
    fn the_first_model_named_wins_and_odd_escapes_survive() {
        assert_eq!(
            served_model("/openai/deployments/a/x/model/b/invoke").as_deref(),
            Some("a")
        );
        assert_eq!(
            served_model("/model/%zz%4/invoke").as_deref(),
            Some("%zz%4")
        );
        assert_eq!(served_model("/model/%ff/invoke").as_deref(), Some("%ff"));
        assert_eq!(percent_decode("a%2Fb"), "a/b");
    }
}
