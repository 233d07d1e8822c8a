//! The shared scenario table (`policies/examples/expected.json`) through the built module:
//! every exchange of `traffic.jsonl` and every stream of `streams.jsonl`, with what the
//! client got, what the upstream got and the audit record the sink received.

use serde_json::Value;

use crate::common::*;

/// Every example of traffic.jsonl, with headers held (as `envoy/envoy.yaml` runs the
/// filter) and without (hosts without `allow_on_headers_stop_iteration`).
#[test]
fn traffic_table() {
    let expected = expected("traffic.jsonl");
    let lines = lines("traffic.jsonl");
    assert_eq!(lines.len(), expected.len(), "one expectation per example");
    for hold in [true, false] {
        let mut vm = start(&plugin_config(hold));
        let mut outcomes = Vec::new();
        for line in &lines {
            let out = vm.exchange(&exchange_of(line));
            assert_clean(&vm, &out, &line.request_id);
            outcomes.push(out);
        }
        let records = vm.shipped_decisions().unwrap();
        assert_eq!(records.len(), lines.len(), "one record per exchange");
        for e in &expected {
            let id = e["request_id"].as_str().unwrap();
            let at = lines.iter().position(|l| l.request_id == id).unwrap();
            let (line, out) = (&lines[at], &outcomes[at]);
            let what = format!("{id} (hold_headers {hold})");
            let record = records.iter().find(|r| r["request_id"] == id).unwrap();
            assert_eq!(
                (
                    record["decision"].as_str().unwrap(),
                    record["reason_code"].as_str().unwrap(),
                    client_view(out, &line.body).as_str()
                ),
                (
                    e["decision"].as_str().unwrap(),
                    e["reason_code"].as_str().unwrap(),
                    e["client"].as_str().unwrap()
                ),
                "{what}: {record}"
            );
            if let Some(want) = e.get("record") {
                assert!(contains(record, want), "{what}: {record} lacks {want}");
            }
            if e["client"].as_str().unwrap().ends_with("refused") {
                // Refused: nothing complete reached the upstream, and with headers held
                // not even the headers.
                assert!(
                    !out.upstream.complete && out.upstream.body.is_empty(),
                    "{what}"
                );
                assert_eq!(out.upstream.headers.is_none(), hold, "{what}");
                assert_eq!(
                    out.client.header("x-policy-reason"),
                    e["reason_code"].as_str(),
                    "{what}"
                );
                continue;
            }
            assert!(out.upstream.complete && out.client.complete, "{what}");
            assert_eq!(out.client.status(), Some(200), "{what}");
            let forwarded: Value = serde_json::from_slice(&out.upstream.body).unwrap();
            for (pointer, want) in e
                .get("forwarded")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                assert_eq!(forwarded.pointer(pointer), Some(want), "{what}");
            }
            // A body the upstream got changed says so in its length.
            if hold {
                let length = out.upstream.header("content-length").map(str::to_string);
                assert_eq!(length, Some(out.upstream.body.len().to_string()), "{what}");
            } else {
                assert_eq!(out.upstream.header("content-length"), None, "{what}");
            }
            // The identity headers went on; the upstream is asked for plain bytes.
            assert_eq!(
                out.upstream.header("accept-encoding"),
                Some("identity"),
                "{what}"
            );
        }
        // What the model said reached the client redacted (req-013: e-mail and phone).
        let at = lines
            .iter()
            .position(|l| l.request_id == "req-013")
            .unwrap();
        let shown: Value = serde_json::from_slice(&outcomes[at].client.body).unwrap();
        let text = shown["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(
            text.contains("[EMAIL]") && text.contains("[PHONE]"),
            "{text}"
        );
    }
}

/// Every stream of streams.jsonl, written by the upstream one event per chunk, in 7-byte
/// chunks (entities and events split anywhere), all at once, and ending with trailers
/// (HTTP/2: no body callback sees the end of the stream).
#[test]
fn stream_table() {
    let expected = expected("streams.jsonl");
    let lines = lines("streams.jsonl");
    assert_eq!(lines.len(), expected.len(), "one expectation per stream");
    for chunking in ["event", "7 bytes", "one chunk", "trailers"] {
        let mut vm = start(&plugin_config(true));
        for e in &expected {
            let id = e["request_id"].as_str().unwrap();
            let line = lines.iter().find(|l| l.request_id == id).unwrap();
            let what = format!("{id} ({chunking})");
            let mut ex = exchange_of(line);
            if let Some(resp) = ex.response.take() {
                ex.response = Some(match chunking {
                    "7 bytes" => resp.chunked(7),
                    "one chunk" => resp.chunked(usize::MAX),
                    "trailers" => resp.trailers(text_pairs(&[("x-upstream-done", "1")])),
                    _ => resp,
                });
            }
            let out = vm.exchange(&ex);
            assert_clean(&vm, &out, &what);
            assert_eq!(
                client_view(&out, &line.body),
                e["client"].as_str().unwrap(),
                "{what}"
            );
            assert_eq!(out.client.status(), Some(200), "{what}");
            assert!(out.client.complete, "{what}");
            let text = shown_text(&line.path, &out.client.body);
            assert_eq!(text, e["client_text"].as_str().unwrap(), "{what}");
            if let Some(code) = e.get("error_code") {
                // The provider's error event ends the stream, with the policy's code.
                let events = sse_events(&out.client.body);
                let last_json = events
                    .iter()
                    .rev()
                    .find_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
                    .unwrap();
                assert_eq!(&last_json["error"]["code"], code, "{what}: {events:?}");
            }
            let body = String::from_utf8_lossy(&out.client.body);
            for absent in e["absent"].as_array().into_iter().flatten() {
                assert!(
                    !body.contains(absent.as_str().unwrap()),
                    "{what}: {absent} in {body}"
                );
            }
            let record = record_of(&mut vm, id);
            assert_eq!(
                (record["decision"].as_str(), record["reason_code"].as_str()),
                (e["decision"].as_str(), e["reason_code"].as_str()),
                "{what}: {record}"
            );
            assert!(
                contains(&record, &e["record"]),
                "{what}: {record} lacks {}",
                e["record"]
            );
        }
    }
}
