"""`policy-gateway simulate --config` and the filter in a real Envoy agree: the same plugin
configuration (attribution sources, a candidate policy), the same traffic file (the shipped
scenario table: example traffic, recorded streams, bypass attempts, plus streamed answers of
each API), the upstream replaying each line's
recorded answer byte for byte. Every record field but ids and times must match."""

import base64
import json
import os
import subprocess
import sys

from conftest import load_policy
from harness import HEC_TOKEN, RECEIVERS, ROOT, Gateway, plugin_config

sys.path.insert(0, RECEIVERS)
import mock_llm  # noqa: E402

CLI = os.path.join(ROOT, "target", "release", "policy-gateway")
AUDIT = {"flush_interval_ms": 100, "splunk_hec": {
    "cluster": "splunk_hec", "authority": "set-by-harness", "token": HEC_TOKEN, "index": "ai_audit"}}
# Fields that differ by nature between two runs: ids and times (and a canary bucket drawn
# from the gateway's own id when the request has no verified key); `chain`, the record's place
# in its VM's hash chain, exists only where records are emitted (simulate emits none).
VOLATILE = {"record_id", "timestamp", "duration_ms", "chain"}


def stream_lines():
    """Streamed answers of each provider, with a card and an e-mail split across events."""
    deltas = ["Sure. The card on file is 4111 11", "11 1111 1111; receipts go to ",
              "billing@exa", "mple.com. Anything else?"]
    out = []
    for i, (path, body) in enumerate([
        ("/v1/chat/completions", {"model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True},
                                  "messages": [{"role": "user", "content": "Which card?"}]}),
        ("/v1/responses", {"model": "gpt-4o", "stream": True, "input": "Which card?"}),
        ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": True,
                          "messages": [{"role": "user", "content": "Which card?"}]}),
    ]):
        chunks = [mock_llm.frame(n, d, "\n").decode() for n, d in mock_llm.stream_events(path, body, deltas)]
        out.append({"request": body, "path": path, "stream": chunks,
                    "headers": {"x-request-id": f"par-stream-{i}", "x-user-id": "judy"}})
    return out


def raw(line):
    """Bodies as raw strings, so Envoy and simulate read the very same bytes."""
    out = dict(line)
    if "response" not in out and "stream" not in out:
        # What the mock would answer, written down so both sides get the same bytes.
        req = out["request"] if isinstance(out["request"], dict) else {}
        out["response"] = mock_llm.reply_body(out.get("path", "/v1/chat/completions"), req,
                                              "This is a mock answer.")
    for key in ("request", "response"):
        if key in out and not isinstance(out[key], str):
            out[key] = json.dumps(out[key])
    return out


def traffic():
    lines = []
    for name in ("traffic.jsonl", "bypass-attempts.jsonl", "streams.jsonl"):
        with open(os.path.join(ROOT, "policies", "examples", name)) as f:
            lines += [json.loads(line) for line in f if line.strip()]
    return [raw(line) for line in lines + stream_lines()]


def send(gw, line):
    headers = dict(line.get("headers", {}))
    if "stream" in line:
        headers["x-mock-stream-b64"] = base64.b64encode(json.dumps(line["stream"]).encode()).decode()
    elif "response" in line:
        resp = line["response"]
        raw = resp.encode() if isinstance(resp, str) else json.dumps(resp).encode()
        headers["x-mock-body-b64"] = base64.b64encode(raw).decode()
    req = line["request"]
    body = req.encode() if isinstance(req, str) else json.dumps(req).encode()
    return gw.post(line.get("path", "/v1/chat/completions"), body, headers)


def comparable(record):
    r = {k: v for k, v in record.items() if k not in VOLATILE}
    if r.get("canary_key") == "request_id":
        r.pop("canary_bucket", None)
        r.pop("enforced", None)
    resp = r.get("response") or {}
    # How much text a stream held at most depends on how the bytes were cut into chunks.
    (resp.get("stream") or {}).pop("max_held_bytes", None)
    return r


def test_simulate_agrees_with_the_filter(tmp_path):
    plugin = plugin_config(load_policy("default.json"), audit=AUDIT, instance_id="parity",
                           candidate_policy=load_policy(os.path.join("examples", "default-v2.json")),
                           attribution={"user": [{"source": "header", "name": "x-user-id", "trusted": True},
                                                 {"source": "body_field", "pointer": "/user"}],
                                        "project": [{"source": "header", "name": "x-project-id"}]})
    lines = traffic()
    with Gateway(plugin=plugin, strip_identity=False) as gw:
        for line in lines:
            send(gw, line)
        ids = {line["headers"]["x-request-id"] for line in lines}
        envoy = {}
        for rid in sorted(ids):
            envoy[rid] = gw.record_for(rid)
    config_file, traffic_file = tmp_path / "plugin.json", tmp_path / "traffic.jsonl"
    config_file.write_text(json.dumps(plugin))
    traffic_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = subprocess.run([CLI, "simulate", "--config", str(config_file), "--input", str(traffic_file)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    simulated = {r["request_id"]: r for r in map(json.loads, out.splitlines())}
    assert set(simulated) == set(envoy)
    mismatches = {}
    for rid, rec in envoy.items():
        a, b = comparable(rec), comparable(simulated[rid])
        diff = {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
        if diff:
            mismatches[rid] = diff
    assert not mismatches, json.dumps(mismatches, indent=1)[:4000]
    # The table covers what it should: refusals, redactions, candidates, streams.
    decisions = {r["decision"] for r in envoy.values()}
    assert {"allow", "redact", "refuse", "rewrite", "escalate"} <= decisions
    assert all(r.get("candidate") for r in envoy.values())
    assert sum(1 for r in envoy.values() if r["stream"]) == sum(1 for line in lines if "stream" in line)
