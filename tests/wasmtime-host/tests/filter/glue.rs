//! Glue-level cases that need no Envoy: header bytes that are not UTF-8 on every map the
//! filter reads, trailers on both sides, a host that refuses a changed body, a VM that
//! traps and a fresh one after it, host properties, sink answers, disconnects, metrics.

use serde_json::{json, Value};
use wasmtime_host::abi::{self, status};
use wasmtime_host::sink::hec_success;
use wasmtime_host::{Answer, Exchange, Message, Options, Teardown, VmError};

use crate::common::*;

const CARD_PROMPT: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Refund card 4111 1111 1111 1111 please."}]}"#;
const EMAIL_ANSWER: &str = r#"{"id":"c1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Write to jane.doe@example.com for that."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":8,"total_tokens":17}}"#;

fn chat(request_id: &str, body: &str) -> Message {
    Message::request(
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("x-request-id", request_id),
            ("x-user-id", "alice"),
            ("x-project-id", "proj-support"),
        ],
        body.as_bytes(),
    )
}

fn json_answer(body: &str) -> Message {
    Message::response(
        200,
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
}

/// Header values that are not UTF-8 in the request, the response and the sink's answer:
/// no trap, the identity header is rejected (and recorded as such), and the record ships.
#[test]
fn header_bytes_that_are_not_utf8_never_trap() {
    for hold in [true, false] {
        let mut vm = start(&plugin_config(hold));
        let mut request = Message::request(
            "POST",
            "/v1/chat/completions",
            &[
                ("content-type", "application/json"),
                ("x-request-id", "latin1"),
            ],
            CARD_PROMPT.as_bytes(),
        )
        .header(b"x-user-id", b"j\xf6rg")
        .header(b"x-project-id", b"proj-\xff\xfe")
        .header(b"x-client-note", b"\x80\x81\xc3");
        request.headers.push((b"x-\xe9".to_vec(), b"\xe9".to_vec()));
        let response = json_answer(EMAIL_ANSWER)
            .header(b"x-upstream-note", b"caf\xe9")
            .header(b"server", b"\xff");
        let out = vm.exchange(&Exchange::new(request, response));
        assert_clean(&vm, &out, "latin-1 headers");
        assert_eq!(out.client.status(), Some(200));
        assert_eq!(out.client.header("x-policy-decision"), Some("redact"));
        // The upstream got the headers it was sent, bytes unchanged, and the body redacted.
        let up = out.upstream.headers.as_ref().unwrap();
        assert_eq!(abi::get(up, "x-client-note"), Some(&b"\x80\x81\xc3"[..]));
        assert!(!String::from_utf8_lossy(&out.upstream.body).contains("4111 1111"));
        // The client's answer: redacted, the upstream's own odd header passed as it was.
        assert_eq!(
            abi::get(out.client.headers.as_ref().unwrap(), "x-upstream-note"),
            Some(&b"caf\xe9"[..])
        );
        assert!(String::from_utf8_lossy(&out.client.body).contains("[EMAIL]"));
        // The sink answers with bytes that are not UTF-8 in its headers too.
        let odd_answer = Answer::Http {
            headers: vec![
                raw(":status", b"200"),
                raw("x-splunk-note", b"\xff\xfe\xfd"),
                (b"\xc0".to_vec(), b"\xc1".to_vec()),
            ],
            body: br#"{"text":"Success","code":0}"#.to_vec(),
            trailers: vec![raw("x-trailer", b"\xff")],
        };
        vm.ship(1_000, |_| odd_answer.clone()).unwrap();
        assert!(vm.trap().is_none());
        let records = vm.records().unwrap();
        let r = records
            .iter()
            .find(|r| r["request_id"] == "latin1")
            .unwrap();
        assert_eq!(
            (r["decision"].as_str(), r["reason_code"].as_str()),
            (Some("redact"), Some("PII_CARD_REDACTED"))
        );
        assert_eq!(r["policy_user"], Value::Null, "{r}");
        let rejected: Vec<&str> = r["attribution_rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            rejected,
            [
                "header:x-user-id: x-user-id not UTF-8",
                "header:x-project-id: x-project-id not UTF-8"
            ]
        );
    }
}

/// A request and a JSON response that end with trailers (HTTP/2, gRPC-web): both are
/// judged in the trailers callback, changed, and go on with their trailers.
#[test]
fn request_and_json_response_ending_with_trailers_are_inspected() {
    for hold in [true, false] {
        let mut vm = start(&plugin_config(hold));
        let request = chat("trailers", CARD_PROMPT)
            .chunked(16)
            .trailers(text_pairs(&[("x-request-checksum", "abc")]));
        let response = json_answer(EMAIL_ANSWER)
            .chunked(32)
            .trailers(text_pairs(&[("grpc-status", "0")]));
        let out = vm.exchange(&Exchange::new(request, response));
        assert_clean(&vm, &out, "trailers");
        let sent: Value = serde_json::from_slice(&out.upstream.body).unwrap();
        assert_eq!(
            sent["messages"][0]["content"],
            "Refund card **** **** **** 1111 please."
        );
        assert_eq!(
            out.upstream.trailers,
            Some(text_pairs(&[("x-request-checksum", "abc")]))
        );
        let got: Value = serde_json::from_slice(&out.client.body).unwrap();
        assert_eq!(
            got["choices"][0]["message"]["content"],
            "Write to [EMAIL] for that."
        );
        assert_eq!(
            out.client.trailers,
            Some(text_pairs(&[("grpc-status", "0")]))
        );
        let r = record_of(&mut vm, "trailers");
        assert_eq!(r["decision"], "redact");
        assert_eq!(r["request"]["inspected"], true);
        assert_eq!(r["response"]["inspected"], true);
        assert_eq!(r["redactions"], json!({"credit_card": 1, "email": 1}));
    }
}

/// The host will not take a changed body: the request is refused with
/// `BODY_REPLACE_FAILED`, the upstream never gets the unredacted body; a response whose
/// change is refused is never shown either (the stream is reset).
#[test]
fn a_host_that_refuses_the_changed_body_fails_closed() {
    for refusal in [status::NOT_FOUND, status::BAD_ARGUMENT] {
        for hold in [true, false] {
            let what = format!("status {refusal}, hold_headers {hold}");
            let options = Options {
                refuse_set_buffer: Some(refusal),
                ..Options::default()
            };
            let mut vm = runtime()
                .proxy()
                .vm_with(plugin_config(hold).to_string().as_bytes(), options)
                .unwrap();
            let out = vm.exchange(&Exchange::new(
                chat("replace-req", CARD_PROMPT),
                json_answer(EMAIL_ANSWER),
            ));
            assert_clean(&vm, &out, &what);
            assert!(out.local_reply, "{what}");
            assert_eq!(out.client.status(), Some(500), "{what}");
            assert_eq!(
                out.client.header("x-policy-reason"),
                Some("BODY_REPLACE_FAILED"),
                "{what}"
            );
            assert!(
                out.upstream.body.is_empty() && !out.upstream.complete,
                "{what}"
            );
            let r = record_of(&mut vm, "replace-req");
            assert_eq!(
                (r["decision"].as_str(), r["reason_code"].as_str()),
                (Some("refuse"), Some("BODY_REPLACE_FAILED")),
                "{what}: {r}"
            );

            // A clean request whose answer must be redacted.
            let out = vm.exchange(&Exchange::new(
                chat("replace-resp", r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Who handles refunds?"}]}"#),
                json_answer(EMAIL_ANSWER),
            ));
            assert_eq!(out.trap, None, "{what}");
            assert!(out.upstream.complete, "{what}");
            let shown = String::from_utf8_lossy(&out.client.body);
            assert!(
                !shown.contains("jane.doe"),
                "{what}: the client saw {shown}"
            );
            let r = record_of(&mut vm, "replace-resp");
            assert_eq!(
                (r["decision"].as_str(), r["reason_code"].as_str()),
                (Some("refuse"), Some("BODY_REPLACE_FAILED")),
                "{what}: {r}"
            );
        }
    }
}

/// A VM that panics (the test-only module's `x-policy-gateway-fault: panic`, as a bug
/// would), whose panic hook logs where but not what; a fresh VM in the same proxy then
/// works, and does not announce the same policy a second time.
#[test]
fn a_fresh_vm_after_a_trap_keeps_working() {
    let proxy = fault_runtime().proxy();
    let config = plugin_config(true).to_string();
    let mut vm = proxy.vm(config.as_bytes()).unwrap();
    let out = vm.exchange(&Exchange::new(
        chat("before", CARD_PROMPT),
        json_answer(EMAIL_ANSWER),
    ));
    assert_clean(&vm, &out, "before");
    vm.ship(1_000, |_| hec_success()).unwrap();
    let first = vm.records().unwrap();
    let changes = |records: &[Value]| {
        records
            .iter()
            .filter(|r| r["record_type"] == "policy_change")
            .count()
    };
    assert_eq!(changes(&first), 1, "{first:?}");
    assert!(first.iter().any(|r| r["request_id"] == "before"));

    let panicked = vm.exchange(&Exchange::new(
        chat("panic", CARD_PROMPT).header(b"x-policy-gateway-fault", b"panic"),
        json_answer(EMAIL_ANSWER),
    ));
    assert!(panicked.trap.is_some());
    let critical: Vec<_> = vm.state().logs.iter().filter(|l| l.level == 5).collect();
    assert_eq!(critical.len(), 1, "{critical:?}");
    assert!(
        critical[0].message.contains("message withheld"),
        "{critical:?}"
    );
    assert!(
        vm.state()
            .logs
            .iter()
            .all(|l| !l.message.contains("must never be logged")),
        "the panic's message was logged"
    );
    let dead = vm.exchange(&Exchange::new(
        chat("dead", CARD_PROMPT),
        json_answer(EMAIL_ANSWER),
    ));
    assert!(dead.trap.is_some());

    let mut fresh = proxy.vm(config.as_bytes()).unwrap();
    let out = fresh.exchange(&Exchange::new(
        chat("after", CARD_PROMPT),
        json_answer(EMAIL_ANSWER),
    ));
    assert_clean(&fresh, &out, "after");
    assert_eq!(out.client.header("x-policy-decision"), Some("redact"));
    fresh.ship(1_000, |_| hec_success()).unwrap();
    let second = fresh.records().unwrap();
    assert_eq!(changes(&second), 0, "announced again: {second:?}");
    let r = second.iter().find(|r| r["request_id"] == "after").unwrap();
    assert_eq!(r["reason_code"], "PII_CARD_REDACTED");
}

/// Callbacks for a context or a call token the VM does not hold (review #10: the SDK's
/// dispatcher `panic!`ed on each, and the shipper's VM is never restarted) are ignored and
/// logged once; a request whose context is unknown is refused, not let through; the VM
/// then works as before.
#[test]
fn unknown_contexts_and_tokens_never_trap() {
    let mut vm = start(&plugin_config(true));
    vm.answer(4_242, hec_success()).unwrap();
    vm.call_context::<(i32, i32, i32, i32, i32), ()>(
        77,
        "proxy_on_http_call_response",
        (77, 1, 0, 0, 0),
    )
    .unwrap();
    vm.call_context::<i32, ()>(77, "proxy_on_tick", 77).unwrap();
    vm.call_context::<(i32, i32), ()>(77, "proxy_on_queue_ready", (77, 3))
        .unwrap();
    vm.call_context::<(i32, i32), i32>(77, "proxy_on_configure", (77, 0))
        .unwrap();
    vm.call_context::<(i32, i32), ()>(78, "proxy_on_context_create", (78, 77))
        .unwrap();
    let refused = vm
        .call_context::<(i32, i32, i32), i32>(78, "proxy_on_request_headers", (78, 0, 1))
        .unwrap();
    assert_eq!(
        refused, 1,
        "an unknown request must be paused (refused), not let through"
    );
    for export in ["proxy_on_response_trailers", "proxy_on_request_trailers"] {
        let a = vm
            .call_context::<(i32, i32), i32>(78, export, (78, 0))
            .unwrap();
        assert_eq!(a, 0, "{export}");
    }
    vm.call_context::<i32, ()>(78, "proxy_on_log", 78).unwrap();
    assert_eq!(
        vm.call_context::<i32, i32>(78, "proxy_on_done", 78)
            .unwrap(),
        1
    );
    vm.call_context::<i32, ()>(78, "proxy_on_delete", 78)
        .unwrap();
    // A root that was never configured has nothing to inspect with: its requests are
    // refused too, not let through.
    vm.call_context::<(i32, i32), ()>(90, "proxy_on_context_create", (90, 0))
        .unwrap();
    vm.call_context::<(i32, i32), ()>(91, "proxy_on_context_create", (91, 90))
        .unwrap();
    let refused = vm
        .call_context::<(i32, i32, i32), i32>(91, "proxy_on_request_headers", (91, 0, 1))
        .unwrap();
    assert_eq!(
        refused, 1,
        "a request under an unconfigured root must be refused"
    );
    assert!(vm.trap().is_none(), "{:?}", vm.trap());
    let errors: Vec<_> = vm
        .state()
        .logs
        .iter()
        .filter(|l| l.message.contains("does not hold"))
        .collect();
    // 13 callbacks ignored: logged at the 1st and the 10th, not each time.
    assert_eq!(errors.len(), 2, "logged at 1 and 10: {errors:?}");
    assert!(errors[1].message.contains("(10 so far"), "{errors:?}");

    let out = vm.exchange(&Exchange::new(
        chat("after-unknown", CARD_PROMPT),
        json_answer(EMAIL_ANSWER),
    ));
    assert_clean(&vm, &out, "after unknown callbacks");
    assert_eq!(out.client.header("x-policy-decision"), Some("redact"));
}

/// At shutdown the root sends what it holds and says not done (`proxy_on_done` false) while
/// a call is out: Envoy would otherwise delete it and cancel the call. It calls `proxy_done`
/// once the answer is in, or once it waited two sink timeouts (what is left stays in the
/// ledger, as held).
#[test]
fn the_shutdown_flush_is_waited_for_not_cancelled() {
    let config = plugin_config(true);
    let timeout_ms = config["audit"]["timeout_ms"].as_u64().unwrap_or(5_000);
    let mut vm = start(&config);
    let out = vm.exchange(&Exchange::new(
        chat("at-stop", CARD_PROMPT),
        json_answer(EMAIL_ANSWER),
    ));
    assert_clean(&vm, &out, "at-stop");
    assert!(!vm.done().unwrap(), "a call is out: not done yet");
    let pending = vm.pending_calls();
    assert_eq!(pending.len(), 1);
    assert_eq!(vm.state().done_calls, 0);
    vm.answer(pending[0], hec_success()).unwrap();
    assert_eq!(vm.state().done_calls, 1, "done once the answer is in");
    let records = vm.records().unwrap();
    assert_eq!(
        records
            .iter()
            .filter(|r| r["request_id"] == "at-stop")
            .count(),
        1
    );

    // A sink that never answers: done after the bounded wait, on a tick.
    let mut vm = start(&config);
    let _ = vm.exchange(&Exchange::new(
        chat("never-answered", CARD_PROMPT),
        json_answer(EMAIL_ANSWER),
    ));
    assert!(!vm.done().unwrap());
    vm.advance_ms(timeout_ms);
    vm.tick().unwrap();
    assert_eq!(vm.state().done_calls, 0, "still waiting");
    vm.advance_ms(timeout_ms);
    vm.tick().unwrap();
    assert_eq!(vm.state().done_calls, 1);
    assert!(vm
        .state()
        .logs
        .iter()
        .any(|l| l.message.contains("stopped with 1 sink calls unanswered")));
    assert!(vm.trap().is_none(), "{:?}", vm.trap());
    assert!(vm.state().unsupported.is_empty());
}

/// Every order in which Envoy ends a stream gives its record exactly once: logged then
/// deleted (HTTP/1, HTTP/2), deleted then logged (HTTP/3's deferred access log), deleted and
/// never logged (an HTTP/3 connection gone before the acknowledgement); the late log of a
/// stream finished at its delete is expected, not an unknown context.
#[test]
fn each_stream_has_one_record_whichever_order_it_ends_in() {
    let mut vm = start(&plugin_config(true));
    let orders = [
        ("log-then-delete", Teardown::LogThenDelete),
        ("delete-then-log", Teardown::DeleteThenLog),
        ("delete-only", Teardown::DeleteOnly),
    ];
    for (id, teardown) in orders {
        let mut ex = Exchange::new(chat(id, CARD_PROMPT), json_answer(EMAIL_ANSWER));
        ex.teardown = teardown;
        let out = vm.exchange(&ex);
        assert_clean(&vm, &out, id);
    }
    for (id, _) in orders {
        let r = record_of(&mut vm, id);
        assert_eq!(r["reason_code"], "PII_CARD_REDACTED", "{id}: {r}");
    }
    assert!(vm.trap().is_none(), "{:?}", vm.trap());
    let ignored: Vec<_> = vm
        .state()
        .logs
        .iter()
        .filter(|l| l.message.contains("does not hold"))
        .collect();
    assert!(ignored.is_empty(), "{ignored:?}");
    // A log for a context never seen is still ignored and counted.
    vm.call_context::<i32, ()>(4_000, "proxy_on_log", 4_000)
        .unwrap();
    assert!(vm.trap().is_none());
    assert!(vm
        .state()
        .logs
        .iter()
        .any(|l| l.message.contains("proxy_on_log for context 4000")));
}

/// Attribution from host properties: a claim `jwt_authn` verified (dynamic metadata) and
/// the route's metadata, each request with its own.
#[test]
fn attribution_reads_per_request_host_properties() {
    let mut config = plugin_config(true);
    config["attribution"] = json!({
        "user": [{ "source": "jwt_authn", "payload_in_metadata": "jwt_payload", "claim": "sub" },
                 { "source": "header", "name": "x-user-id" }],
        "project": [{ "source": "route_metadata", "namespace": "policy_gateway", "key": "project" }]
    });
    let mut vm = start(&config);
    let jwt = [
        "metadata",
        "filter_metadata",
        "envoy.filters.http.jwt_authn",
        "jwt_payload",
        "sub",
    ];
    let route = [
        "xds",
        "route_metadata",
        "filter_metadata",
        "policy_gateway",
        "project",
    ];
    let ex = Exchange::new(chat("props-1", CARD_PROMPT), json_answer(EMAIL_ANSWER))
        .property(&jwt, b"user-7")
        .property(&route, b"proj-routes");
    let out = vm.exchange(&ex);
    assert_clean(&vm, &out, "properties");
    // No claim on the second request: the header is next, and it is not verified.
    let ex = Exchange::new(chat("props-2", CARD_PROMPT), json_answer(EMAIL_ANSWER));
    let out = vm.exchange(&ex);
    assert_clean(&vm, &out, "no properties");
    let records = vm.shipped_decisions().unwrap();
    let r1 = records
        .iter()
        .find(|r| r["request_id"] == "props-1")
        .unwrap();
    assert_eq!(
        (
            &r1["policy_user"],
            &r1["policy_user_verified"],
            &r1["policy_project_id"]
        ),
        (&json!("user-7"), &json!(true), &json!("proj-routes")),
        "{r1}"
    );
    let r2 = records
        .iter()
        .find(|r| r["request_id"] == "props-2")
        .unwrap();
    assert_eq!(
        (
            &r2["policy_user"],
            &r2["policy_user_verified"],
            &r2["policy_project_id"]
        ),
        (&json!("alice"), &json!(false), &Value::Null),
        "{r2}"
    );
}

/// The client goes away midway through a stream: the host says so in
/// `response.code_details`, and the record says how the stream ended.
#[test]
fn a_client_leaving_a_stream_is_recorded() {
    let mut vm = start(&plugin_config(true));
    let line = lines("streams.jsonl")
        .into_iter()
        .find(|l| l.request_id == "stream-005")
        .unwrap();
    let mut ex = exchange_of(&line);
    ex.client_leaves_after = Some(2);
    let out = vm.exchange(&ex);
    assert_clean(&vm, &out, "client leaves");
    assert!(!out.client.complete);
    let r = record_of(&mut vm, "stream-005");
    assert_eq!(r["reason_code"], "STREAM_CLIENT_DISCONNECTED", "{r}");
    assert_eq!(r["response"]["stream"]["end"], "client_disconnected", "{r}");
}

/// A sink that fails (no answer, then 503) gets the batch again later; it is delivered
/// once, and the metrics count decisions, deliveries and retries.
#[test]
fn sink_failures_are_retried_and_metrics_count() {
    let proxy = runtime().proxy();
    let mut vm = proxy
        .vm(plugin_config(true).to_string().as_bytes())
        .unwrap();
    for id in ["m-1", "m-2"] {
        let out = vm.exchange(&Exchange::new(
            chat(id, CARD_PROMPT),
            json_answer(EMAIL_ANSWER),
        ));
        assert_clean(&vm, &out, id);
    }
    let mut answers = vec![
        Answer::Failed,
        Answer::status(503, br#"{"text":"Server is busy","code":9}"#),
    ];
    vm.ship(1_000, |_| {
        if answers.is_empty() {
            hec_success()
        } else {
            answers.remove(0)
        }
    })
    .unwrap();
    let records = vm.records().unwrap();
    for id in ["m-1", "m-2"] {
        assert_eq!(
            records.iter().filter(|r| r["request_id"] == id).count(),
            1,
            "{id}"
        );
    }
    let shared = proxy.shared();
    let metric = |name: &str| shared.metrics.get(name).map(|(_, v)| *v);
    assert_eq!(metric("policy_gateway.decisions.redact.enforce"), Some(2));
    assert_eq!(metric("policy_gateway.decisions.allow.enforce"), Some(0));
    // Counted in records: the batch (the policy change and two decisions) went back twice.
    assert_eq!(metric("policy_gateway.sink.splunk_hec.retried"), Some(6));
    assert_eq!(metric("policy_gateway.sink.splunk_hec.delivered"), Some(3));
    assert_eq!(
        metric("policy_gateway.sink.splunk_hec.buffered_bytes"),
        Some(0)
    );
}

/// An invalid configuration: `proxy_on_configure` says no, with one log line naming the
/// field (Envoy then rejects the configuration).
#[test]
fn an_invalid_configuration_is_rejected_with_its_reason() {
    let mut config = plugin_config(true);
    config["policy"]["rules"][0]["match"]["detectors"][0] = json!("e-mail");
    let proxy = runtime().proxy();
    let Some(VmError::Rejected(at, logs)) = proxy.vm(config.to_string().as_bytes()).err() else {
        panic!("configured");
    };
    assert_eq!(at, "proxy_on_configure");
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(
        logs[0].starts_with(
            r#"policy_gateway: invalid configuration: policy.rules[0] "block-credentials".match.detectors[0]: unknown detector "e-mail""#
        ),
        "{logs:?}"
    );
}

/// `hold_headers` on a host that stops everything on a headers Pause: the request hangs, as
/// the README warns.
#[test]
fn hold_headers_needs_a_host_that_stops_only_the_headers() {
    let options = Options {
        headers_stop_iteration: false,
        ..Options::default()
    };
    let mut vm = runtime()
        .proxy()
        .vm_with(plugin_config(true).to_string().as_bytes(), options)
        .unwrap();
    let out = vm.exchange(&Exchange::new(
        chat("hang", CARD_PROMPT),
        json_answer(EMAIL_ANSWER),
    ));
    assert!(
        out.stalled
            .as_deref()
            .is_some_and(|s| s.contains("StopAllIteration")),
        "{out:?}"
    );
    assert!(out.upstream.headers.is_none());
}

/// The VMs of one proxy (one per worker) share data: of three configured alike, one
/// announces the policy; a reload with a new version announces it once, naming the old.
#[test]
fn the_vms_of_one_proxy_announce_a_policy_once() {
    let proxy = runtime().proxy();
    let config = plugin_config(true).to_string();
    let changes = |vm: &mut wasmtime_host::Vm| -> Vec<Value> {
        vm.ship(1_000, |_| hec_success()).unwrap();
        vm.records()
            .unwrap()
            .into_iter()
            .filter(|r| r["record_type"] == "policy_change")
            .collect()
    };
    let mut vms: Vec<_> = (0..3)
        .map(|_| proxy.vm(config.as_bytes()).unwrap())
        .collect();
    let announced: Vec<Value> = vms.iter_mut().flat_map(changes).collect();
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0]["policy_id"], "default@1");

    let mut reload = plugin_config(true);
    reload["policy"]["version"] = json!("2");
    let mut vm = proxy.vm(reload.to_string().as_bytes()).unwrap();
    let announced = changes(&mut vm);
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(
        (
            &announced[0]["policy_id"],
            &announced[0]["previous_policy_id"]
        ),
        (&json!("default@2"), &json!("default@1"))
    );
}

/// Nothing leaks across exchanges: after a warm-up, the module's memory stays the same
/// size over a thousand more exchanges and their records (Envoy keeps a VM for days).
#[test]
fn memory_stays_flat_over_many_exchanges() {
    let mut vm = start(&plugin_config(true));
    let traffic = lines("traffic.jsonl");
    let streams = lines("streams.jsonl");
    let round = |vm: &mut wasmtime_host::Vm| {
        for line in traffic.iter().chain(&streams) {
            let out = vm.exchange(&exchange_of(line));
            assert_clean(vm, &out, &line.request_id);
        }
        vm.ship(1_000, |_| hec_success()).unwrap();
    };
    for _ in 0..5 {
        round(&mut vm);
    }
    let warm = vm.memory_bytes();
    for _ in 0..60 {
        round(&mut vm);
    }
    assert_eq!(vm.memory_bytes(), warm, "the module's memory grew");
}

/// A response the policy refuses (a credential in the model's output): with headers held
/// the client gets the refusal's status and policy headers; without, the headers have gone
/// and only the body is replaced. The credential never reaches the client either way.
#[test]
fn a_refused_response_never_reaches_the_client() {
    let secret = r#"{"id":"c2","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Use ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 to log in."},"finish_reason":"stop"}]}"#;
    for hold in [true, false] {
        let mut vm = start(&plugin_config(hold));
        let response = json_answer(secret).chunked(40);
        let out = vm.exchange(&Exchange::new(
            chat(
                "secret-out",
                r#"{"model":"gpt-4o","messages":[{"role":"user","content":"How do I log in?"}]}"#,
            ),
            response,
        ));
        assert_clean(&vm, &out, "secret in output");
        let body = String::from_utf8_lossy(&out.client.body);
        assert!(!body.contains("ghp_"), "hold_headers {hold}: {body}");
        let err: Value = serde_json::from_slice(&out.client.body).unwrap();
        assert_eq!(
            err["error"]["code"], "SECRET_DETECTED",
            "hold_headers {hold}"
        );
        if hold {
            assert_eq!(out.client.status(), Some(403));
            assert_eq!(
                out.client.header("x-policy-reason"),
                Some("SECRET_DETECTED")
            );
            let length = out.client.header("content-length").map(str::to_string);
            assert_eq!(length, Some(out.client.body.len().to_string()));
        } else {
            assert_eq!(out.client.status(), Some(200));
            assert_eq!(out.client.header("content-length"), None);
        }
        let r = record_of(&mut vm, "secret-out");
        assert_eq!(
            (
                r["decision"].as_str(),
                r["reason_code"].as_str(),
                r["phase"].as_str()
            ),
            (Some("refuse"), Some("SECRET_DETECTED"), Some("response")),
            "{r}"
        );
    }
}

/// A response over `max_body_bytes`, arriving in chunks: refused (502) with
/// `RESPONSE_TOO_LARGE`, and not one byte of it reaches the client, with headers held or
/// not.
#[test]
fn a_response_too_large_to_inspect_is_replaced_whole() {
    let mut big =
        String::from(r#"{"choices":[{"index":0,"message":{"role":"assistant","content":""#);
    while big.len() < 6_000 {
        big.push_str("Call jane.doe@example.com. ");
    }
    big.push_str(r#""}}]}"#);
    for hold in [true, false] {
        let mut config = plugin_config(hold);
        config["max_body_bytes"] = json!(2_048);
        let mut vm = start(&config);
        let out = vm.exchange(&Exchange::new(
            chat(
                "too-large",
                r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}"#,
            ),
            json_answer(&big).chunked(500),
        ));
        assert_clean(&vm, &out, "too large");
        let body = String::from_utf8_lossy(&out.client.body);
        assert!(!body.contains("jane.doe"), "hold_headers {hold}: {body}");
        let err: Value = serde_json::from_slice(&out.client.body).unwrap();
        assert_eq!(
            err["error"]["code"], "RESPONSE_TOO_LARGE",
            "hold_headers {hold}"
        );
        assert_eq!(out.client.status(), Some(if hold { 502 } else { 200 }));
        let r = record_of(&mut vm, "too-large");
        assert_eq!(
            (r["decision"].as_str(), r["reason_code"].as_str()),
            (Some("refuse"), Some("RESPONSE_TOO_LARGE")),
            "{r}"
        );
    }
}

fn chat_as(user: &str, request_id: &str, body: &Value) -> Message {
    Message::request(
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("x-request-id", request_id),
            ("x-user-id", user),
            ("x-project-id", "proj-support"),
        ],
        body.to_string().as_bytes(),
    )
}

/// Issue 16: the module keys its text cache with the host's WASI `random_get` (once per VM);
/// a conversation's next turn takes its earlier turn from the cache, another user's
/// identical request does not, and the decisions are those of an uncached judgement. A host
/// that gives no randomness: the cache is off, with one warning, and nothing else changes.
#[test]
fn the_text_cache_is_keyed_by_the_host_and_scoped_by_user() {
    let first = "Refund card 4111 1111 1111 1111 please, it was charged twice.";
    let turn1 = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": first}]});
    let turn2 = json!({"model": "gpt-4o", "messages": [
        {"role": "user", "content": first},
        {"role": "assistant", "content": "Done."},
        {"role": "user", "content": "Thanks. Now the one from March, also 4111 1111 1111 1111."}]});
    for random_errno in [None, Some(52)] {
        let proxy = runtime().proxy();
        let mut config = plugin_config(false);
        config["text_cache"] = json!({"min_text_bytes": 16});
        let options = Options {
            random_errno,
            ..Options::default()
        };
        let mut vm = proxy
            .vm_with(config.to_string().as_bytes(), options)
            .unwrap();
        assert_eq!(vm.state().random_calls, 1, "asked once per VM");
        for (user, id, body) in [
            ("alice", "tc-1", &turn1),
            ("alice", "tc-2", &turn2),
            ("bob", "tc-3", &turn2),
        ] {
            let out = vm.exchange(&Exchange::new(
                chat_as(user, id, body),
                json_answer(EMAIL_ANSWER),
            ));
            assert_clean(&vm, &out, id);
            assert_eq!(
                out.client.header("x-policy-decision"),
                Some("redact"),
                "{id}"
            );
            assert!(
                !String::from_utf8_lossy(&out.upstream.body).contains("4111"),
                "{id}"
            );
        }
        vm.tick().unwrap();
        let warned = vm
            .state()
            .logs
            .iter()
            .filter(|l| l.message.contains("text cache off"))
            .count();
        let shared = proxy.shared();
        let metric = |name: &str| shared.metrics.get(name).map(|(_, v)| *v);
        match random_errno {
            None => {
                assert_eq!(warned, 0);
                // alice's second turn: her first turn and the same answer again from the
                // cache; bob's identical request: nothing of hers.
                assert_eq!(metric("policy_gateway.text_cache.hits"), Some(2));
                assert!(metric("policy_gateway.text_cache.misses") > Some(3));
            }
            Some(_) => {
                assert_eq!(warned, 1);
                assert_eq!(metric("policy_gateway.text_cache.hits").unwrap_or(0), 0);
                assert_eq!(metric("policy_gateway.text_cache.misses").unwrap_or(0), 0);
            }
        }
    }
}

/// A forwarding worker claims a dead VM's ledger entry, writes the gap record of what that VM
/// left in its sink's buffer (the claim then says adopted: no later claimer writes it again),
/// and dies as it takes over the records the VM had copied to shared data for the shipper
/// (the test-only module traps on `FORWARDER_TRAP_ID`'s record). The gap record was only in the
/// worker's memory: it must reach the sink all the same, here through the shipper, which
/// claims the dead worker's entry in turn.
#[test]
fn a_dead_vms_gap_record_outlives_the_forwarding_worker_that_wrote_it() {
    // `FORWARDER_TRAP_ID` in src/filter/fault.rs.
    const TRAP_ID: &str = "policy-gateway-fault-trap-forwarder";
    let proxy = fault_runtime().proxy();
    let config = plugin_config(true).to_string();
    let vm_stale_ms = 10_000;

    // A worker with no shipper yet ships its own: the policy change and a decision wait in
    // its sink's buffer (a call out, never answered), so its ledger entry holds them.
    let mut dead = proxy.vm(config.as_bytes()).unwrap();
    let out = dead.exchange(&Exchange::new(
        chat("fwdgap-buffered", CARD_PROMPT),
        json_answer(EMAIL_ANSWER),
    ));
    assert_clean(&dead, &out, "buffered");
    dead.advance_ms(200);
    dead.tick().unwrap();
    // The shipper starts; the worker finds it and forwards from now on: a record copied to
    // shared data (`relay::pending_key`), not handed over yet when the worker dies.
    let shipper_options = Options::default().property("plugin_root_id", b"policy_gateway_shipper");
    let mut shipper = proxy.vm_with(config.as_bytes(), shipper_options).unwrap();
    dead.advance_ms(200);
    dead.tick().unwrap();
    let out = dead.exchange(&Exchange::new(
        chat(TRAP_ID, CARD_PROMPT),
        json_answer(EMAIL_ANSWER),
    ));
    assert_clean(&dead, &out, "copied");
    let forwarding = |vm: &wasmtime_host::Vm| {
        vm.state()
            .logs
            .iter()
            .any(|l| l.message.contains("audit mode forwarding"))
    };
    assert!(forwarding(&dead), "{:?}", dead.state().logs);
    drop(dead);

    // A forwarding worker finds it dead, claims it, queues its gap record, and traps taking
    // over its copied record. On the same tick it takes a note of what another dead VM of its
    // configuration lost where it could not be delivered (`relay::orphaned_key`, rows `vm
    // chain dropped from_ms to_ms from_seq to_seq`): that gap record too is only in its memory
    // once the note is taken.
    let mut claimer = proxy.vm(config.as_bytes()).unwrap();
    assert!(forwarding(&claimer));
    {
        let mut shared = proxy.shared();
        let digest = shared.data("policy_gateway.shipper.audit_digest").unwrap();
        let key = format!(
            "policy_gateway.orphaned.{}",
            String::from_utf8(digest).unwrap()
        );
        let t0 = Options::default().start_ms;
        shared.set_data(&key, format!("77 - 3 {t0} {t0} 0 0\n").as_bytes());
    }
    claimer.advance_ms(vm_stale_ms + 1_000);
    let trapped = claimer.tick();
    assert!(matches!(trapped, Err(VmError::Trap(_))), "{trapped:?}");
    let logs: Vec<&str> = claimer
        .state()
        .logs
        .iter()
        .map(|l| l.message.as_str())
        .collect();
    assert!(
        logs.iter().any(|l| l.contains("gap record queued")),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("trapping a forwarding worker")),
        "{logs:?}"
    );

    // The shipper finds the claimer dead too: it finishes the first claim (the records) and
    // takes over what the claimer left.
    shipper.advance_ms(2 * (vm_stale_ms + 1_000));
    shipper.tick().unwrap();
    shipper.ship(1_000, |_| hec_success()).unwrap();
    assert!(shipper.trap().is_none(), "{:?}", shipper.trap());
    assert!(
        shipper.state().unsupported.is_empty(),
        "{:?}",
        shipper.state().unsupported
    );
    let records = shipper.records().unwrap();
    let gaps: Vec<&Value> = records
        .iter()
        .filter(|r| r["record_type"] == "gap" && r["cause"] == "vm_failed")
        .collect();
    assert_eq!(gaps.len(), 2, "the dead VMs' gap records: {records:?}");
    let claimed = gaps.iter().find(|g| g["vm"] != 77).unwrap();
    assert_eq!(
        (&claimed["sink"], &claimed["dropped"]),
        (&json!("splunk_hec"), &json!(2)),
        "{claimed}"
    );
    let noted = gaps.iter().find(|g| g["vm"] == 77).unwrap();
    assert_eq!(noted["dropped"], 3, "{noted}");
    let taken_over = records
        .iter()
        .filter(|r| r["request_id"] == TRAP_ID)
        .count();
    assert_eq!(taken_over, 1, "{records:?}");
}
