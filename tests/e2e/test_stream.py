"""Streamed (SSE) responses through the real Envoy: output redacted even when an entity is
split across events at any offset, one-character events and one-byte writes, multi-megabyte
streams with bounded hold-back, refusals ending the stream with the provider's error event,
usage for chargeback, disconnects on either side, and mixed event framing.

The client side parses the stream with its own reader written from the WHATWG event-stream
rules (not the filter's parser)."""

import json
import socket
import urllib.request

import pytest

from conftest import load_policy
from harness import HEC_TOKEN, Gateway, identity, plugin_config

FAST_AUDIT = {"flush_interval_ms": 100, "splunk_hec": {
    "cluster": "splunk_hec", "authority": "set-by-harness", "token": HEC_TOKEN, "index": "ai_audit"}}

CARD = "4111 1111 1111 1111"
PATHS = {"openai": "/v1/chat/completions", "responses": "/v1/responses", "anthropic": "/v1/messages"}


@pytest.fixture(scope="module")
def gw():
    with Gateway(plugin=plugin_config(load_policy("default.json"), audit=FAST_AUDIT)) as g:
        yield g


def body_for(api, stream=True, **extra):
    if api == "responses":
        return {"model": "gpt-4.1", "input": "Tell me something.", "stream": stream, **extra}
    if api == "anthropic":
        return {"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": stream,
                "messages": [{"role": "user", "content": "Tell me something."}], **extra}
    return {"model": "gpt-4o", "stream": stream, "messages": [{"role": "user", "content": "Tell me something."}],
            **extra}


def stream_request(port, api, request_id, headers=None, body=None, timeout=30):
    """POSTs a streaming request; returns (status, headers, raw body bytes)."""
    data = json.dumps(body or body_for(api)).encode()
    h = {"content-type": "application/json", **identity("stream-user"), "x-request-id": request_id}
    h.update(headers or {})
    req = urllib.request.Request(f"http://127.0.0.1:{port}{PATHS[api]}", data=data, headers=h, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, dict(r.headers.items()), r.read()


def sse_events(raw):
    """WHATWG event-stream interpretation: (event name, data) per dispatched event."""
    text = raw.decode("utf-8")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    events, name, data = [], None, []
    for line in lines:
        if line == "":
            if data:
                events.append((name, "\n".join(data)))
            name, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    return events


def shown_text(api, raw):
    """The text an SDK shows the user: the concatenated deltas."""
    out = []
    for name, data in sse_events(raw):
        if data == "[DONE]":
            continue
        v = json.loads(data)
        if api == "openai":
            for c in v.get("choices", []):
                out.append(c.get("delta", {}).get("content") or "")
        elif api == "responses" and v.get("type") == "response.output_text.delta":
            out.append(v["delta"])
        elif api == "anthropic" and v.get("type") == "content_block_delta":
            out.append(v["delta"].get("text", ""))
    return "".join(out)


def record_for(gw, request_id, timeout=15.0):
    return gw.record_for(request_id, timeout)


@pytest.mark.parametrize("api", ["openai", "responses", "anthropic"])
def test_entities_split_at_every_offset_are_redacted(gw, api):
    cases = [(f"Card {CARD} is on file.", "Card [CREDIT_CARD] is on file."),
             ("Mail jane.doe@example.com today", "Mail [EMAIL] today")]
    n = 0
    for text, want in cases:
        for i in range(1, len(text)):
            n += 1
            chunks = [text[:i], text[i:]]
            status, headers, raw = stream_request(gw.port, api, f"split-{api}-{n}",
                                                  {"x-mock-chunks": json.dumps(chunks)})
            assert status == 200 and headers["content-type"].startswith("text/event-stream")
            assert shown_text(api, raw) == want, f"split at {i}: {chunks}"
            body = raw.decode()
            assert "4111" not in body and "jane.doe" not in body and "example.com" not in body
    rec = record_for(gw, f"split-{api}-{n}")
    assert rec["decision"] == "redact" and rec["reason_code"] == "OUTPUT_PII_REDACTED"
    assert rec["stream"] is True and rec["response"]["stream"]["end"] == "complete"
    assert rec["redactions"] == {"email": 1}


def test_one_character_events_in_one_byte_writes(gw):
    text = f"Reach a@b.io or card {CARD}, phone +1 415 555 0132. Thanks!"
    status, _, raw = stream_request(gw.port, "openai", "one-char", {
        "x-mock-chunks": json.dumps(list(text)), "x-mock-write-bytes": "1"})
    assert status == 200
    assert shown_text("openai", raw) == "Reach [EMAIL] or card [CREDIT_CARD], phone [PHONE]. Thanks!"
    # Every event is still there: role chunk, one per character, finish chunk.
    assert len([d for _, d in sse_events(raw) if d != "[DONE]"]) == len(text) + 2
    rec = record_for(gw, "one-char")
    assert rec["redactions"] == {"credit_card": 1, "email": 1, "phone": 1}


def test_unchanged_stream_passes_byte_for_byte(gw):
    headers = {"x-mock-reply": "Nothing to redact in this answer at all."}
    _, _, through = stream_request(gw.port, "anthropic", "bytes-same", headers)
    _, _, direct = stream_request(gw.llm_port, "anthropic", "bytes-direct", headers)
    assert through == direct
    assert record_for(gw, "bytes-same")["decision"] == "allow"


def test_multi_megabyte_stream_keeps_hold_back_bounded(gw):
    chunks = ["The quick brown fox jumps over the lazy dog. ", f"Card {CARD} and mail a@b.io. "]
    repeat = 50_000
    status, _, raw = stream_request(gw.port, "openai", "long-stream", {
        "x-mock-chunks": json.dumps(chunks), "x-mock-repeat": str(repeat),
        "x-mock-write-bytes": "65536"}, timeout=120)
    assert status == 200
    text = shown_text("openai", raw)
    assert len(raw) > 4_000_000
    assert text.count("[CREDIT_CARD]") == repeat and text.count("[EMAIL]") == repeat
    assert "4111" not in text and "a@b.io" not in text
    rec = record_for(gw, "long-stream", timeout=30)
    assert rec["redactions"] == {"credit_card": repeat, "email": repeat}
    stream = rec["response"]["stream"]
    assert stream["end"] == "complete" and stream["events"] == 2 * repeat + 3
    assert stream["max_held_bytes"] < 4096 and "overflows" not in stream


@pytest.mark.parametrize("newline", ["crlf", "cr", "mixed"])
def test_event_framing_with_other_line_endings(gw, newline):
    status, _, raw = stream_request(gw.port, "anthropic", f"nl-{newline}", {
        "x-mock-chunks": json.dumps(["Write to jo@", "corp.example now"]), "x-mock-newline": newline,
        "x-mock-write-bytes": "7"})
    assert status == 200
    assert shown_text("anthropic", raw) == "Write to [EMAIL] now"
    if newline != "cr":
        assert b"\r\n" in raw
    assert record_for(gw, f"nl-{newline}")["redactions"] == {"email": 1}


@pytest.mark.parametrize("api", ["openai", "responses", "anthropic"])
def test_secret_in_output_ends_the_stream_with_a_provider_error_event(gw, api):
    key = "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"
    chunks = ["Sure. Your token is ", key[:9], key[9:], " and that is all.", " More text after."]
    status, _, raw = stream_request(gw.port, api, f"refuse-{api}", {"x-mock-chunks": json.dumps(chunks)})
    assert status == 200
    assert b"ghp_" not in raw and b"More text" not in raw
    events = sse_events(raw)
    if api == "openai":
        assert events[-1] == (None, "[DONE]")
        err = json.loads(events[-2][1])["error"]
        assert err["code"] == "SECRET_DETECTED" and err["type"] == "policy_violation"
    elif api == "responses":
        name, data = events[-1]
        err = json.loads(data)
        assert name == "error" and err["type"] == "error" and err["code"] == "SECRET_DETECTED"
        seqs = [json.loads(d)["sequence_number"] for _, d in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    else:
        name, data = events[-1]
        assert name == "error" and json.loads(data)["error"]["type"] == "permission_error"
    assert shown_text(api, raw) == "Sure. Your token is "
    rec = record_for(gw, f"refuse-{api}")
    assert rec["decision"] == "refuse" and rec["reason_code"] == "SECRET_DETECTED"
    assert rec["response"]["stream"]["end"] == "refused"


def test_usage_from_the_stream_or_estimated(gw):
    stream_request(gw.port, "openai", "usage-exact",
                   body=body_for("openai", stream_options={"include_usage": True}))
    stream_request(gw.port, "openai", "usage-estimated",
                   {"x-mock-reply": "one two three four five six seven eight"})
    stream_request(gw.port, "anthropic", "usage-anthropic")
    exact = record_for(gw, "usage-exact")
    assert exact["usage"]["prompt_tokens"] == 20 and exact["usage_estimated"] is False
    est = record_for(gw, "usage-estimated")
    assert est["usage_estimated"] is True
    # 39 characters of output -> 10 tokens; 18 bytes of prompt -> 5 tokens.
    assert est["usage"] == {"prompt_tokens": 5, "completion_tokens": 10, "total_tokens": 15}
    anth = record_for(gw, "usage-anthropic")
    assert anth["usage"]["prompt_tokens"] == 20 and anth["usage_estimated"] is False


def test_client_disconnect_midway_is_recorded(gw):
    body = json.dumps(body_for("openai")).encode()
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
              b"x-request-id: client-gone\r\nx-mock-repeat: 100\r\nx-mock-delay-ms: 20\r\n"
              b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    while b"data:" not in got:
        got += s.recv(4096)
    s.close()
    rec = record_for(gw, "client-gone")
    assert rec["response"]["stream"]["end"] == "client_disconnected"
    assert rec["reason_code"] == "STREAM_CLIENT_DISCONNECTED"
    assert rec["usage_estimated"] is True


def test_upstream_disconnect_midway_is_recorded(gw):
    with pytest.raises(Exception):
        # The client sees the stream cut: no terminating chunk.
        stream_request(gw.port, "openai", "upstream-gone", {"x-mock-abort-after": "2"})
    rec = record_for(gw, "upstream-gone")
    assert rec["response"]["stream"]["end"] == "upstream_disconnected"
    assert rec["reason_code"] == "STREAM_UPSTREAM_DISCONNECTED"


def test_shadow_mode_streams_unchanged_and_records_what_would_happen():
    policy = load_policy("default.json")
    policy["rollout"] = {"mode": "shadow"}
    with Gateway(plugin=plugin_config(policy, audit=FAST_AUDIT)) as g:
        headers = {"x-mock-chunks": json.dumps(["Card 4111 11", "11 1111 1111 ok"])}
        _, _, through = stream_request(g.port, "responses", "shadow-stream", headers)
        _, _, direct = stream_request(g.llm_port, "responses", "shadow-direct", headers)
        assert through == direct
        rec = record_for(g, "shadow-stream")
        assert rec["decision"] == "redact" and rec["enforced"] is False
        assert rec["redactions"] == {"credit_card": 1}
