"""Hostile bytes and odd endings through a real Envoy: header values that are not UTF-8 in
every direction, compressed and uninspectable responses, HTTP/2 trailers, identity a client
tries to forge, requests Envoy rejects itself, empty and unfinished bodies. Each case names
what the client gets, what the upstream gets and what the record says."""

import gzip
import http.client
import json
import os
import socket
import sys
import time

import pytest

from conftest import load_policy
from harness import HEC_TOKEN, RECEIVERS, Gateway, Process, identity, plugin_config

sys.path.insert(0, os.path.dirname(__file__))
import h2client  # noqa: E402

FAST_AUDIT = {"flush_interval_ms": 100, "splunk_hec": {
    "cluster": "splunk_hec", "authority": "set-by-harness", "token": HEC_TOKEN, "index": "ai_audit"}}
CHAT = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Capital of France?"}]}).encode()


def raw_post(gw, path, body, headers, chunked=False):
    """POST with header values as raw bytes (urllib only sends latin-1 text)."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.putrequest("POST", path, skip_accept_encoding=True)
    for name, value in headers:
        conn.putheader(name, value)
    if chunked:
        conn.putheader("transfer-encoding", "chunked")
    else:
        conn.putheader("content-length", str(len(body)))
    conn.endheaders()
    if chunked:
        if body:
            conn.send(b"%x\r\n%s\r\n" % (len(body), body))
        conn.send(b"0\r\n\r\n")
    else:
        conn.send(body)
    r = conn.getresponse()
    out = r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    conn.close()
    return out


def no_panic(gw):
    log = gw.envoy.output()
    assert "panic" not in log.lower(), log[-2000:]
    assert "vm failed" not in log.lower() and "Wasm VM failed" not in log, log[-2000:]


@pytest.fixture(scope="module")
def gw():
    # The shipped envoy.yaml (FAIL_RELOAD, jwt_authn, edge header stripping) with the default
    # policy, plus one untrusted header source to show rejections.
    plugin = plugin_config(load_policy("default.json"), audit=FAST_AUDIT, attribution={
        "user": [{"source": "header", "name": "x-user-id", "trusted": True},
                 {"source": "header", "name": "x-client-user"}],
        "project": [{"source": "header", "name": "x-project-id", "trusted": True},
                    {"source": "header", "name": "x-team", "trusted": True}]})
    with Gateway(plugin=plugin) as g:
        yield g


def test_non_utf8_request_headers_never_kill_the_vm_and_good_requests_keep_flowing(gw):
    good, bad = 0, 0
    for i in range(10):
        s, _, _ = raw_post(gw, "/v1/chat/completions", CHAT, [
            ("content-type", "application/json"), ("x-request-id", f"latin1-{i}"),
            ("x-note", b"caf\xe9"), ("x-client-user", b"jos\xe9"),
            ("authorization", b"Bearer sk-proj-\xffSECRETKEY0123456789abcdef")])
        bad += s == 200
        s, _, _ = raw_post(gw, "/v1/chat/completions", CHAT, [
            ("content-type", "application/json"), ("x-request-id", f"plain-{i}")])
        good += s == 200
    assert (good, bad) == (10, 10)
    rec = gw.record_for("latin1-3")
    assert rec["decision"] == "allow" and rec["http_status"] == 200
    assert rec["policy_user"] is None
    assert rec["attribution_rejected"] == ["header:x-client-user: x-client-user not UTF-8"]
    gw.record_for("plain-9")
    no_panic(gw)
    assert "SECRETKEY" not in gw.envoy.output()


def test_a_non_utf8_content_type_is_not_json(gw):
    s, h, _ = raw_post(gw, "/v1/chat/completions", CHAT, [
        ("content-type", b"application/json\xe9"), ("x-request-id", "ct-latin1")])
    assert s == 415 and h["x-policy-reason"] == "BODY_NOT_JSON"
    no_panic(gw)


def test_non_utf8_upstream_response_header_passes_through(gw):
    s, h, body = raw_post(gw, "/v1/chat/completions", CHAT, [
        ("content-type", "application/json"), ("x-request-id", "resp-latin1"),
        ("x-mock-latin1-header", "x-upstream-note")])
    assert s == 200 and json.loads(body)["choices"]
    assert h["x-upstream-note"].encode("latin-1") == b"caf\xe9"
    assert gw.record_for("resp-latin1")["response"]["inspected"]
    no_panic(gw)


def test_a_sink_answering_with_non_utf8_headers_still_gets_every_record(gw):
    gw.hec_control("/_latin1", {"name": "x-splunk-note"})
    for i in range(3):
        gw.chat("hello", headers={"x-request-id": f"sink-latin1-{i}"})
    for i in range(3):
        gw.record_for(f"sink-latin1-{i}")
    # A second round goes out only if the first answer did not kill the VM.
    gw.chat("hello", headers={"x-request-id": "sink-latin1-after"})
    gw.record_for("sink-latin1-after")
    no_panic(gw)


def test_clients_asking_for_gzip_get_inspected_plain_responses(gw):
    reply = "Mail jane.doe@example.com or call (415) 555-0100."
    s, h, body = gw.post("/v1/chat/completions", json.loads(CHAT), {
        "accept-encoding": "gzip, deflate", "x-mock-reply": reply, "x-request-id": "gzip-client"})
    assert s == 200 and "content-encoding" not in {k.lower() for k in h}
    assert json.loads(body)["choices"][0]["message"]["content"] == "Mail [EMAIL] or call [PHONE]."
    assert gw.upstream_received()[-1]["headers"].get("accept-encoding") == "identity"
    rec = gw.record_for("gzip-client")
    assert rec["decision"] == "redact" and rec["response"]["inspected"]
    assert rec["usage"]["completion_tokens"] == len(reply.split())  # the mock counts words


def test_uninspectable_responses_are_refused_by_default(gw):
    cases = [({"x-mock-gzip": "always"}, "RESPONSE_COMPRESSED"),
             ({"x-mock-content-type": "text/plain"}, "RESPONSE_NOT_JSON")]
    for i, (headers, code) in enumerate(cases):
        rid = f"uninspectable-{i}"
        s, h, body = gw.post("/v1/chat/completions", json.loads(CHAT), {
            **headers, "x-mock-reply": "Mail jane.doe@example.com", "x-request-id": rid})
        assert s == 502, (code, s, body)
        assert h.get("x-policy-reason") == code
        assert b"jane.doe" not in body and json.loads(body)["error"]["code"] == code
        rec = gw.record_for(rid)
        assert (rec["decision"], rec["reason_code"], rec["http_status"]) == ("refuse", code, 502)
        assert rec["response"]["inspected"] is False


def test_on_uninspectable_response_allow_passes_and_records_why():
    plugin = plugin_config(load_policy("default.json"), audit=FAST_AUDIT, on_uninspectable_response="allow",
                           max_body_bytes=4096)
    with Gateway(plugin=plugin) as g:
        s, h, body = g.post("/v1/chat/completions", json.loads(CHAT), {
            "x-mock-gzip": "always", "x-request-id": "allow-gzip"})
        assert s == 200 and gzip.decompress(body)
        rec = g.record_for("allow-gzip")
        assert (rec["decision"], rec["reason_code"]) == ("allow", "RESPONSE_COMPRESSED")
        # Requests still follow on_uninspectable (refuse): too large is 413.
        s, h, _ = g.post("/v1/chat/completions", {"model": "gpt-4o", "messages": [
            {"role": "user", "content": "x" * 8000}]}, {"x-request-id": "big-request"})
        assert s == 413 and h.get("x-policy-reason") == "BODY_TOO_LARGE"


def test_a_response_over_max_body_bytes_is_refused():
    plugin = plugin_config(load_policy("default.json"), audit=FAST_AUDIT, max_body_bytes=4096)
    with Gateway(plugin=plugin) as g:
        s, h, body = g.post("/v1/chat/completions", json.loads(CHAT), {
            "x-mock-reply": "jane.doe@example.com " * 400, "x-request-id": "big-response"})
        assert s == 502 and h.get("x-policy-reason") == "RESPONSE_TOO_LARGE"
        assert b"jane.doe" not in body
        rec = g.record_for("big-response")
        assert (rec["decision"], rec["reason_code"]) == ("refuse", "RESPONSE_TOO_LARGE")


def test_http2_trailers_on_both_sides_are_judged(tmp_path):
    log = tmp_path / "h2.jsonl"
    h2_cluster = {"typed_extension_protocol_options": {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}}}
    g = Gateway(plugin=plugin_config(load_policy("default.json"), audit=FAST_AUDIT), upstream=False,
                cluster_options={"llm_upstream": h2_cluster})
    g.procs.insert(0, Process([sys.executable, os.path.join(RECEIVERS, "h2_upstream.py"),
                               str(g.llm_port), str(log)], "h2_upstream", g.dir))
    with g:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", g.llm_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        body = json.dumps({"model": "gpt-4o", "messages": [
            {"role": "user", "content": "Refund jane.doe@example.com please"}]}).encode()
        status, headers, data, trailers = h2client.request(
            g.port, "/v1/chat/completions", body,
            headers=[("content-type", "application/json"), ("x-request-id", "h2-trailers"),
                     ("x-mock-reply", "Sure, I will write to jane.doe@example.com.")],
            trailers=[("x-client-trailer", "end")])
        assert status == 200
        # The request ended with trailers: judged there, redacted before the upstream.
        sent = json.loads(log.read_text().splitlines()[-1])
        assert json.loads(sent["body"])["messages"][0]["content"] == "Refund [EMAIL] please"
        assert sent["trailers"] == {"x-client-trailer": "end"}
        # The response ended with trailers: judged there, not released uninspected.
        assert json.loads(data)["choices"][0]["message"]["content"] == "Sure, I will write to [EMAIL]."
        assert trailers.get("x-upstream-trailer") == "done"
        rec = g.record_for("h2-trailers")
        assert rec["response"]["inspected"] and rec["response"]["decision"] == "redact"
        assert rec["redactions"] == {"email": 2} and rec["usage"]["total_tokens"] == 25
        no_panic(g)


def test_identity_a_client_sends_is_not_trusted(gw):
    # Stripped at the edge (envoy.yaml): no token, no identity, whatever the headers say.
    gw.chat("hello", user=None, headers={"x-request-id": "spoof-1", "x-user-id": "ceo@example.com",
                                         "x-project-id": "proj-finance"})
    rec = gw.record_for("spoof-1")
    assert rec["policy_user"] is None and rec["policy_project_id"] is None
    # With a verified token the token's identity wins over the forged headers.
    gw.chat("hello", user="alice", project="proj-a", headers={
        "x-request-id": "spoof-2", "x-user-id": "ceo@example.com", "x-project-id": "proj-finance"})
    rec = gw.record_for("spoof-2")
    assert (rec["policy_user"], rec["policy_user_verified"], rec["policy_project_id"]) == ("alice", True, "proj-a")
    # A header source the configuration does not trust is recorded as unverified.
    gw.chat("hello", user=None, headers={"x-request-id": "spoof-3", "x-client-user": "ceo@example.com"})
    rec = gw.record_for("spoof-3")
    assert (rec["policy_user"], rec["policy_user_verified"]) == ("ceo@example.com", False)
    # A trusted header sent twice: neither copy is believed, and the record says why.
    raw_post(gw, "/v1/chat/completions", CHAT, [
        ("content-type", "application/json"), ("x-request-id", "spoof-4"),
        ("x-team", "proj-finance"), ("x-team", "proj-a")])
    rec = gw.record_for("spoof-4")
    assert rec["policy_project_id"] is None
    assert rec["attribution_rejected"] == ["header:x-team: x-team repeated"]


def test_a_client_cannot_pick_its_canary_bucket():
    policy = load_policy("default.json")
    policy["rollout"] = {"mode": "canary", "canary_percent": 50, "canary_key": "user"}
    with Gateway(plugin=plugin_config(policy, audit=FAST_AUDIT)) as g:
        for i in range(12):
            # The same x-request-id every time: it must not decide the bucket.
            g.post("/v1/chat/completions", json.loads(CHAT), {"x-request-id": "pick-my-bucket",
                                                              "x-mock-reply": f"r{i}"})
        recs = g.records(12)
        assert {r["canary_key"] for r in recs} == {"request_id"}
        assert len({r["canary_bucket"] for r in recs}) > 1
        assert {r["enforced"] for r in recs} == {True, False}


def test_a_request_envoy_rejects_itself_gets_a_true_record(gw):
    s, _, _ = raw_post(gw, "/v1/chat/completions", CHAT, [
        ("content-type", "application/json"), ("x-request-id", "too-big-headers"), ("x-pad", "a" * 100_000)])
    assert s == 431
    deadline = time.time() + 15
    while time.time() < deadline:
        recs = [e["event"] for e in gw.hec("/_events") if e["event"].get("reason_code") == "PROXY_REJECTED"]
        if recs:
            break
        time.sleep(0.1)
    assert recs, "no record for the rejected request"
    rec = recs[-1]
    assert rec["decision"] == "refuse" and rec["http_status"] == 431
    assert rec["request_id"] and rec["request_id"] == rec["record_id"]
    assert rec["request"]["inspected"] is False


def test_an_empty_chunked_body_is_body_empty(gw):
    s, h, body = raw_post(gw, "/v1/chat/completions", b"", [
        ("content-type", "application/json"), ("x-request-id", "empty-chunked")], chunked=True)
    assert s == 400 and h["x-policy-reason"] == "BODY_EMPTY"
    rec = gw.record_for("empty-chunked")
    assert (rec["decision"], rec["reason_code"], rec["http_status"]) == ("refuse", "BODY_EMPTY", 400)


def test_a_request_whose_body_never_completes_is_recorded(gw):
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                 b"x-request-id: half-body\r\ncontent-length: 1000\r\n\r\n{\"model\": \"gpt-4o\"")
    time.sleep(0.3)
    sock.close()
    rec = gw.record_for("half-body")
    assert (rec["decision"], rec["reason_code"]) == ("refuse", "REQUEST_INCOMPLETE")
    assert len(gw.upstream_received()) == 0 or all(
        r["headers"].get("x-request-id") != "half-body" for r in gw.upstream_received())
