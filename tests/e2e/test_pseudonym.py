"""Reversible pseudonymisation through a real Envoy (issue 15): the upstream sees tokens, the
client gets its values back, for the four APIs, JSON and SSE; and the peer's harness
(pii-leak-benchmark 0.6.0) run against the gateway: `ci --duty restore` in both profiles, and
the v2 response-split profile with every split of the injected values."""

import json
import os
import subprocess
import sys
import tempfile

import pytest

from conftest import load_policy
from harness import ROOT, Gateway, free_port, plugin_config

EMAIL_A = "jane@corp.example"
EMAIL_B = "ravi@corp.example"
CARD = "4111 1111 1111 1111"
PROMPT = f"Email {EMAIL_A} and {EMAIL_B} about card {CARD}; cc {EMAIL_A}."
SEEN = "Email [EMAIL_1] and [EMAIL_2] about card [CREDIT_CARD_1]; cc [EMAIL_1]."
MADE_UP = "ops@model.example"
BENCH = os.path.join(ROOT, ".venv", "bin")


def gateway_plugin():
    return plugin_config(load_policy("pseudonymise.json"), instance_id="gw-pseudo",
                         audit={"flush_interval_ms": 100,
                                "splunk_hec": {"cluster": "splunk_hec",
                                               "authority": "set-by-harness",
                                               "token": "00000000-0000-4000-8000-000000000001",
                                               "index": "ai_audit"}})


@pytest.fixture(scope="module")
def gw():
    with Gateway(plugin=gateway_plugin()) as g:
        yield g


APIS = {
    "chat": ("/v1/chat/completions",
             lambda p: {"model": "gpt-4o", "messages": [{"role": "user", "content": p}]}),
    "responses": ("/v1/responses", lambda p: {"model": "gpt-4o", "input": p}),
    "anthropic": ("/v1/messages",
                  lambda p: {"model": "claude-sonnet-4", "max_tokens": 100,
                             "messages": [{"role": "user", "content": p}]}),
    "completions": ("/v1/completions",
                    lambda p: {"model": "gpt-3.5-turbo-instruct", "prompt": p}),
}


def whole_text(api, body):
    if api == "chat":
        return body["choices"][0]["message"]["content"]
    if api == "responses":
        return body["output"][0]["content"][0]["text"]
    if api == "anthropic":
        return body["content"][0]["text"]
    return body["choices"][0]["text"]


def streamed_text(api, raw):
    """The text an SDK rebuilds from the stream's deltas, and every whole text it repeats."""
    text, repeated = "", []
    for block in raw.decode().replace("\r\n", "\n").split("\n\n"):
        data = "".join(line[5:].lstrip(" ") for line in block.split("\n") if line.startswith("data:"))
        if not data or data == "[DONE]":
            continue
        event = json.loads(data)
        if api == "chat":
            text += (event.get("choices") or [{}])[0].get("delta", {}).get("content") or ""
        elif api == "completions":
            text += (event.get("choices") or [{}])[0].get("text") or ""
        elif api == "anthropic":
            text += (event.get("delta") or {}).get("text") or ""
        else:
            if event.get("type") == "response.output_text.delta":
                text += event["delta"]
            if event.get("type") == "response.output_text.done":
                repeated.append(event["text"])
    return text, repeated


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("api", sorted(APIS))
def test_the_model_sees_tokens_and_the_client_gets_the_values(gw, api, stream):
    path, make = APIS[api]
    body = make(PROMPT)
    if stream:
        body["stream"] = True
    rid = f"pseudo-{api}-{'sse' if stream else 'json'}"
    # The mock model repeats what it received, in 3-character deltas (tokens split across
    # events), and adds an address of its own.
    headers = {"x-request-id": rid, "x-mock-reply": "You said: {prompt} Write to " + MADE_UP,
               "x-mock-chunk-chars": "3"}
    status, _, raw = gw.post(path, body, headers)
    assert status == 200, raw
    upstream = [r for r in gw.upstream_received() if rid in json.dumps(r["headers"])][-1]
    assert SEEN in upstream["body"]
    for value in (EMAIL_A, EMAIL_B, CARD):
        assert value not in upstream["body"]
    want = f"You said: {PROMPT} Write to [EMAIL]"
    if stream:
        text, repeated = streamed_text(api, raw)
        assert text == want
        assert all(r == want for r in repeated)
    else:
        assert whole_text(api, json.loads(raw)) == want
    record = gw.record_for(rid)
    assert record["pseudonyms"]["pseudonymised"] == {"email": 3, "credit_card": 1}
    assert record["pseudonyms"]["restored"] == {"email": 3, "credit_card": 1}
    for value in (EMAIL_A, EMAIL_B, CARD, "[EMAIL_1]"):
        assert value not in json.dumps(record)


def benchmark_gateway(capture_port):
    """The gateway with the pseudonymising policy, its upstream the harness's capture."""
    return Gateway(plugin=gateway_plugin(), upstream=False,
                   cluster_ports={"llm_upstream": capture_port})


@pytest.mark.parametrize("profile", ["pii-v1", "pii-secrets-v1"])
def test_peer_harness_ci_restore_is_clean(profile):
    capture = free_port()
    with benchmark_gateway(capture) as g, tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        run = subprocess.run(
            [os.path.join(BENCH, "pii-leak-benchmark"), "ci",
             "--target-base-url", f"http://127.0.0.1:{g.port}/v1",
             "--capture-port", str(capture), "--duty", "restore", "--profile", profile,
             "--out", out],
            capture_output=True, text=True, timeout=300)
        with open(os.path.join(out, "current.json")) as f:
            current = json.load(f)
        assert current["verdict"] == "CLEAN", run.stdout[-3000:]
        assert run.returncode == 0
        assert all(current["required_checks"].values())
        assert set(current["entities"].values()) == {"contained"}


def test_peer_harness_v2_every_split_fidelity_one_and_no_leak():
    """The v2 profile also puts the values in keys no API defines and in tool descriptions (the
    request), and injects values in unknown delta fields and percent-encoded (the response):
    it passes with the inspection of every string of a body and an event and the decoding
    detectors (issue 13, branch `coverage`); without them it measured FidelityRate 0.5 and
    LeakRate 0.3125, every failure in those sites."""
    capture = free_port()
    with benchmark_gateway(capture) as g, tempfile.TemporaryDirectory() as tmp:
        summary = os.path.join(tmp, "summary.json")
        run = subprocess.run(
            [os.path.join(BENCH, "pii-leak-benchmark-v2"), "--out", tmp, "--only", "policy-gateway",
             "--gateway-url", f"http://127.0.0.1:{g.port}/v1/chat/completions",
             "--upstream-port", str(capture), "--exhaustive-splits", "--json-out", summary],
            capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        with open(summary) as f:
            row = json.load(f)["rows"][0]
        print(json.dumps(row, indent=1), file=sys.stderr)
        assert row["cases_applicable"] > 0, run.stdout
        assert row["fidelity_rate"] == 1.0, run.stdout
        assert row["leak_single_chunk"] == 0.0, run.stdout
        assert row["leak_adversarial"] == 0.0, run.stdout
        assert row["request_path_leak"] == [], run.stdout
