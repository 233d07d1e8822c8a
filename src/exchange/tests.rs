//! The exchange against a fake host, driven the way Envoy drives the filter.

use std::rc::Rc;

use serde_json::{json, Value};

use super::fake::FakeHost;
use super::*;

fn config(extra: Value) -> Rc<PluginConfig> {
    let policy: Value = serde_json::from_str(include_str!("../../policies/default.json")).unwrap();
    let mut doc = json!({"policy": policy, "hold_headers": true});
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    Rc::new(PluginConfig::from_json(&serde_json::to_vec(&doc).unwrap()).unwrap())
}

fn chat(text: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}))
        .unwrap()
}

fn answer(text: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"model": "gpt-4o", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}))
    .unwrap()
}

fn h(pairs: &[(&str, &[u8])]) -> Vec<(Vec<u8>, Vec<u8>)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.to_vec()))
        .collect()
}

/// One exchange as Envoy runs it: request headers, the whole body, then (unless answered
/// locally) the upstream's response headers and body. Returns the host afterwards (what
/// the upstream and the client got) and the record.
struct Run {
    host: FakeHost,
    /// The request body the upstream got; `None` when it got nothing.
    upstream: Option<Vec<u8>>,
    finished: Finished,
}

fn run(
    cfg: &Rc<PluginConfig>,
    request_headers: &[(&str, &[u8])],
    request_body: &[u8],
    response_headers: &[(&str, &[u8])],
    response_body: &[u8],
) -> Run {
    let (mut ex, host, upstream, mut ids) = drive(
        cfg,
        request_headers,
        request_body,
        response_headers,
        response_body,
    );
    let finished = ex.finish(&host, &mut ids, 1_005);
    Run {
        host,
        upstream,
        finished,
    }
}

/// [`run`] up to the end of the exchange, before it is finished.
fn drive(
    cfg: &Rc<PluginConfig>,
    request_headers: &[(&str, &[u8])],
    request_body: &[u8],
    response_headers: &[(&str, &[u8])],
    response_body: &[u8],
) -> (Exchange, FakeHost, Option<Vec<u8>>, IdGenerator) {
    let mut host = FakeHost::default();
    let mut ids = IdGenerator::new(7);
    let mut ex = Exchange::new(Rc::clone(cfg));
    let mut headers = h(&[(":path", b"/v1/chat/completions")]);
    headers.extend(h(request_headers));
    host.request_headers = headers;
    ex.on_request_headers(&mut host, request_body.is_empty(), &mut ids, 1_000);
    if host.local_response.is_none() && !request_body.is_empty() {
        host.request_body = request_body.to_vec();
        ex.on_request_body(&mut host, request_body.len(), true);
    }
    let upstream = host
        .local_response
        .is_none()
        .then(|| host.request_body.clone());
    if host.local_response.is_none() {
        let mut headers = h(&[(":status", b"200")]);
        headers.extend(h(response_headers));
        host.response_headers = headers;
        host.set_property(&["response", "code_details"], b"via_upstream");
        ex.on_response_headers(&mut host, response_body.is_empty());
        host.response_body = response_body.to_vec();
        ex.on_response_body(&mut host, response_body.len(), true);
    }
    (ex, host, upstream, ids)
}

/// Without a record (no sink), an exchange still ends with the decision, mode and count of
/// uninspected bodies its record would carry, for the metrics.
#[test]
fn an_exchange_finished_without_its_record_tallies_as_with_it() {
    let sse: (&str, &[u8]) = ("content-type", b"text/event-stream");
    let stream = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"mail a@b.io\"}}]}\n\ndata: [DONE]\n\n";
    type Case<'a> = (Value, &'a [u8], (&'a str, &'a [u8]), &'a [u8]);
    let cases: [Case; 7] = [
        (json!({}), &chat("hello"), JSON, &answer("ok")),
        (json!({}), &chat("mail a@b.io"), JSON, &answer("ok")),
        (
            json!({}),
            &chat("key AKIAIOSFODNN7EXAMPLE"),
            JSON,
            &answer("ok"),
        ),
        (
            json!({}),
            &chat("hello"),
            JSON,
            &answer("key AKIAIOSFODNN7EXAMPLE"),
        ),
        (json!({}), b"not json", JSON, &answer("ok")),
        (json!({}), &chat("hello"), sse, stream),
        (json!({"on_uninspectable": "allow"}), b"{", JSON, b"<html>"),
    ];
    let mut decisions = Vec::new();
    for (extra, body, response_type, response) in cases {
        let cfg = config(extra);
        let args = (&[JSON][..], body, &[response_type][..], response);
        let (mut a, host_a, _, mut ids_a) = drive(&cfg, args.0, args.1, args.2, args.3);
        let (mut b, host_b, _, mut ids_b) = drive(&cfg, args.0, args.1, args.2, args.3);
        let finished = a.finish(&host_a, &mut ids_a, 1_005);
        let tally = b.finish_unrecorded(&host_b, &mut ids_b, 1_005);
        assert_eq!(
            tally,
            Tally {
                decision: finished.decision,
                mode: finished.mode,
                inspection_errors: finished.inspection_errors,
            }
        );
        decisions.push(tally.decision);
    }
    // The cases cover more than allow.
    assert!(decisions.contains(&Action::Redact) && decisions.contains(&Action::Refuse));
}

const JSON: (&str, &[u8]) = ("content-type", b"application/json");

#[test]
fn a_redacted_exchange_forwards_the_changed_body_and_records_it() {
    let cfg = config(json!({}));
    let r = run(
        &cfg,
        &[JSON, ("x-request-id", b"r-1")],
        &chat("mail a@b.io"),
        &[JSON],
        &answer("ok"),
    );
    let sent: Value = serde_json::from_slice(r.upstream.as_ref().unwrap()).unwrap();
    assert_eq!(sent["messages"][0]["content"], "mail [EMAIL]");
    let len = r.host.header(Side::Request, "content-length");
    assert_eq!(len, Some(r.upstream.unwrap().len().to_string()));
    let rec = &r.finished.record;
    assert_eq!((rec.decision, rec.request_id.as_str()), ("redact", "r-1"));
    assert_eq!(rec.usage.unwrap().total_tokens, Some(7));
    assert_eq!(r.finished.decision, Action::Redact);
}

#[test]
fn non_utf8_headers_are_survived_and_identity_from_them_is_rejected() {
    let cfg = config(json!({"attribution": {"user": [{"source": "header", "name": "x-user-id"}]}}));
    let r = run(
        &cfg,
        &[
            JSON,
            ("x-note", b"caf\xe9"),
            ("x-user-id", b"jos\xe9"),
            ("x-request-id", b"\xff"),
        ],
        &chat("hi"),
        &[JSON, ("x-upstream", b"\xe9\xe9")],
        &answer("ok"),
    );
    let rec = &r.finished.record;
    assert_eq!(rec.decision, "allow");
    assert_eq!(rec.policy_user, None);
    assert_eq!(
        rec.attribution_rejected,
        ["header:x-user-id: x-user-id not UTF-8"]
    );
    // An unusable x-request-id is replaced by the gateway's id.
    assert_eq!(rec.request_id, rec.record_id);
}

#[test]
fn a_trusted_header_sent_twice_is_not_believed() {
    let cfg = config(json!({"attribution": {"user": [
        {"source": "header", "name": "x-user-id", "trusted": true}]}}));
    let r = run(
        &cfg,
        &[JSON, ("x-user-id", b"ceo"), ("x-user-id", b"alice")],
        &chat("hi"),
        &[JSON],
        &answer("ok"),
    );
    assert_eq!(r.finished.record.policy_user, None);
    let one = run(
        &cfg,
        &[JSON, ("x-user-id", b"alice")],
        &chat("hi"),
        &[JSON],
        &answer("ok"),
    );
    let rec = &one.finished.record;
    assert_eq!(
        (rec.policy_user.as_deref(), rec.policy_user_verified),
        (Some("alice"), Some(true))
    );
}

#[test]
fn canary_buckets_ignore_what_the_client_sends() {
    let mut policy: Value =
        serde_json::from_str(include_str!("../../policies/default.json")).unwrap();
    policy["rollout"] = json!({"mode": "canary", "canary_percent": 50, "canary_key": "user"});
    let cfg = config(json!({"policy": policy,
        "attribution": {"user": [{"source": "header", "name": "x-user-id"}]}}));
    let mut buckets = std::collections::BTreeSet::new();
    let mut ids = IdGenerator::new(99);
    for _ in 0..16 {
        let mut host = FakeHost {
            request_headers: h(&[
                (":path", b"/v1/chat/completions"),
                JSON,
                ("x-request-id", b"pick-me"),
                ("x-user-id", b"untrusted-bob"),
            ]),
            ..Default::default()
        };
        let mut ex = Exchange::new(Rc::clone(&cfg));
        ex.on_request_headers(&mut host, true, &mut ids, 5);
        let rec = ex.finish(&host, &mut ids, 6).record;
        // An unverified user does not choose the bucket either.
        assert_eq!(rec.canary_key, Some("request_id"));
        buckets.insert(rec.canary_bucket.unwrap());
    }
    assert!(buckets.len() > 8, "{buckets:?}");
}

#[test]
fn a_body_the_host_will_not_take_is_refused_not_forwarded() {
    let cfg = config(json!({}));
    let mut host = FakeHost {
        request_headers: h(&[(":path", b"/v1/chat/completions"), JSON]),
        refuse_replace: true,
        ..Default::default()
    };
    let mut ids = IdGenerator::new(1);
    let mut ex = Exchange::new(Rc::clone(&cfg));
    ex.on_request_headers(&mut host, false, &mut ids, 1);
    host.request_body = chat("card 4111 1111 1111 1111");
    let flow = {
        let n = host.request_body.len();
        ex.on_request_body(&mut host, n, true)
    };
    assert_eq!(flow, Flow::Pause);
    let (status, headers, _) = host.local_response.clone().unwrap();
    assert_eq!(status, 500);
    assert!(headers.contains(&("x-policy-reason".into(), "BODY_REPLACE_FAILED".into())));
    let rec = ex.finish(&host, &mut ids, 2).record;
    assert_eq!(
        (rec.decision, rec.reason_code.as_str()),
        ("refuse", "BODY_REPLACE_FAILED")
    );
}

#[test]
fn a_response_the_host_will_not_change_is_reset() {
    let cfg = config(json!({}));
    let mut host = FakeHost {
        request_headers: h(&[(":path", b"/v1/chat/completions"), JSON]),
        ..Default::default()
    };
    let mut ids = IdGenerator::new(1);
    let mut ex = Exchange::new(Rc::clone(&cfg));
    ex.on_request_headers(&mut host, false, &mut ids, 1);
    host.request_body = chat("hello");
    {
        let n = host.request_body.len();
        ex.on_request_body(&mut host, n, true)
    };
    host.response_headers = h(&[(":status", b"200"), JSON]);
    ex.on_response_headers(&mut host, false);
    host.refuse_replace = true;
    host.response_body = answer("write to jane@corp.example.com");
    {
        let n = host.response_body.len();
        ex.on_response_body(&mut host, n, true)
    };
    assert!(host.reset, "the unredacted answer must not go out");
    let rec = ex.finish(&host, &mut ids, 2).record;
    assert_eq!(
        (rec.decision, rec.reason_code.as_str()),
        ("refuse", "BODY_REPLACE_FAILED")
    );
}

#[test]
fn an_empty_chunked_body_is_body_empty() {
    let cfg = config(json!({}));
    let mut host = FakeHost {
        request_headers: h(&[(":path", b"/v1/chat/completions"), JSON]),
        ..Default::default()
    };
    let mut ids = IdGenerator::new(1);
    let mut ex = Exchange::new(Rc::clone(&cfg));
    ex.on_request_headers(&mut host, false, &mut ids, 1);
    ex.on_request_body(&mut host, 0, true);
    assert_eq!(host.local_response.as_ref().unwrap().0, 400);
    let rec = ex.finish(&host, &mut ids, 2).record;
    assert_eq!(rec.reason_code, "BODY_EMPTY");
}

#[test]
fn uninspectable_responses_follow_on_uninspectable_response() {
    for (headers, code) in [
        (
            vec![JSON, ("content-encoding", &b"gzip"[..])],
            "RESPONSE_COMPRESSED",
        ),
        (
            vec![("content-type", &b"text/html"[..])],
            "RESPONSE_NOT_JSON",
        ),
    ] {
        let r = run(
            &config(json!({})),
            &[JSON],
            &chat("hi"),
            &headers,
            &answer("a@b.io"),
        );
        assert_eq!(
            r.host.header(Side::Response, ":status").as_deref(),
            Some("502")
        );
        assert_eq!(
            r.host.header(Side::Response, "x-policy-reason").as_deref(),
            Some(code)
        );
        let err: Value = serde_json::from_slice(&r.host.response_body).unwrap();
        assert_eq!(err["error"]["code"], code);
        assert_eq!(
            (r.finished.record.decision, r.finished.record.http_status),
            ("refuse", Some(502))
        );
        let allow = config(json!({"on_uninspectable_response": "allow"}));
        let r = run(&allow, &[JSON], &chat("hi"), &headers, &answer("a@b.io"));
        assert_eq!(r.host.response_body, answer("a@b.io"));
        assert_eq!(r.finished.record.reason_code, code);
    }
}

#[test]
fn a_response_over_max_body_bytes_is_refused() {
    let cfg = config(json!({"max_body_bytes": 512}));
    let r = run(
        &cfg,
        &[JSON],
        &chat("hi"),
        &[JSON],
        &answer(&"a@b.io ".repeat(200)),
    );
    let err: Value = serde_json::from_slice(&r.host.response_body).unwrap();
    assert_eq!(err["error"]["code"], "RESPONSE_TOO_LARGE");
}

#[test]
fn responses_the_proxy_made_itself_pass_as_they_are() {
    let cfg = config(json!({}));
    let mut host = FakeHost {
        request_headers: h(&[(":path", b"/v1/chat/completions"), JSON]),
        ..Default::default()
    };
    let mut ids = IdGenerator::new(1);
    let mut ex = Exchange::new(Rc::clone(&cfg));
    ex.on_request_headers(&mut host, false, &mut ids, 1);
    host.request_body = chat("hello");
    {
        let n = host.request_body.len();
        ex.on_request_body(&mut host, n, true)
    };
    host.response_headers = h(&[(":status", b"503"), ("content-type", b"text/plain")]);
    host.set_property(
        &["response", "code_details"],
        b"upstream_reset_before_response_started",
    );
    assert_eq!(ex.on_response_headers(&mut host, false), Flow::Continue);
    assert_eq!(
        host.header(Side::Response, ":status").as_deref(),
        Some("503")
    );
    let rec = ex.finish(&host, &mut ids, 2).record;
    assert_eq!((rec.decision, rec.http_status), ("allow", Some(503)));
}

#[test]
fn a_json_response_ending_with_trailers_is_judged_there() {
    let cfg = config(json!({}));
    let mut host = FakeHost {
        request_headers: h(&[(":path", b"/v1/chat/completions"), JSON]),
        ..Default::default()
    };
    let mut ids = IdGenerator::new(1);
    let mut ex = Exchange::new(Rc::clone(&cfg));
    ex.on_request_headers(&mut host, false, &mut ids, 1);
    host.request_body = chat("hello");
    {
        let n = host.request_body.len();
        ex.on_request_body(&mut host, n, true)
    };
    host.response_headers = h(&[(":status", b"200"), JSON]);
    ex.on_response_headers(&mut host, false);
    host.response_body = answer("mail jane@corp.example.com");
    // The body never ends by itself: trailers end it.
    assert_eq!(
        {
            let n = host.response_body.len();
            ex.on_response_body(&mut host, n, false)
        },
        Flow::Pause
    );
    ex.on_response_trailers(&mut host);
    let out: Value = serde_json::from_slice(&host.response_body).unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], "mail [EMAIL]");
    let rec = ex.finish(&host, &mut ids, 2).record;
    assert!(rec.response.unwrap().inspected);
}

#[test]
fn requests_the_proxy_rejected_or_that_never_completed_get_true_records() {
    let cfg = config(json!({}));
    let mut ids = IdGenerator::new(1);
    let mut host = FakeHost::default();
    host.set_property(&["response", "code"], &431i64.to_le_bytes());
    host.set_property(&["response", "code_details"], b"http1.headers_too_large");
    let rec = Exchange::new(Rc::clone(&cfg))
        .finish(&host, &mut ids, 9)
        .record;
    assert_eq!(
        (rec.decision, rec.reason_code.as_str()),
        ("refuse", "PROXY_REJECTED")
    );
    assert_eq!(rec.http_status, Some(431));
    assert!(!rec.request_id.is_empty() && rec.request_id == rec.record_id);
    assert!(rec
        .request
        .error
        .unwrap()
        .contains("http1.headers_too_large"));

    let mut host = FakeHost {
        request_headers: h(&[
            (":path", b"/v1/chat/completions"),
            JSON,
            ("x-request-id", b"half"),
        ]),
        ..Default::default()
    };
    let mut ex = Exchange::new(Rc::clone(&cfg));
    ex.on_request_headers(&mut host, false, &mut ids, 1);
    ex.on_request_body(&mut host, 10, false);
    let rec = ex.finish(&host, &mut ids, 2).record;
    assert_eq!(
        (rec.request_id.as_str(), rec.reason_code.as_str()),
        ("half", "REQUEST_INCOMPLETE")
    );
}

#[test]
fn responses_are_asked_for_uncompressed() {
    let r = run(
        &config(json!({})),
        &[JSON, ("accept-encoding", b"gzip, br")],
        &chat("hi"),
        &[JSON],
        &answer("ok"),
    );
    assert_eq!(
        r.host.header(Side::Request, "accept-encoding").as_deref(),
        Some("identity")
    );
    let off = config(json!({"inspect_responses": false}));
    let r = run(
        &off,
        &[JSON, ("accept-encoding", b"gzip")],
        &chat("hi"),
        &[JSON],
        &answer("ok"),
    );
    assert_eq!(
        r.host.header(Side::Request, "accept-encoding").as_deref(),
        Some("gzip")
    );
}
