"""Seed corpora for the fuzz targets (`make fuzz` runs it): real inputs the fuzzer mutates.

usage: python seed.py TARGET...   (from the repository root; writes fuzz/corpus/<target>/)
"""

import json
import os
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLICIES = ["policies/default.json", "policies/pii-strict.json", "policies/secrets.json",
            "policies/examples/default-v2.json"]


def path(*parts):
    return os.path.join(ROOT, *parts)


def write(target, name, data):
    os.makedirs(path("fuzz", "corpus", target), exist_ok=True)
    with open(path("fuzz", "corpus", target, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def traffic():
    with open(path("policies/examples/traffic.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def evaluate():
    # The first byte picks the policy, phase and API path (see evaluate.rs).
    for i, ex in enumerate(traffic()):
        req = ex["request"]
        body = req if isinstance(req, str) else json.dumps(req)
        for s in (4, 133, 22):
            write("evaluate", "%02d-%d" % (i, s), bytes([s]) + body.encode())


def stream():
    sys.path.insert(0, path("tests/e2e/receivers"))
    import mock_llm  # noqa: E402  (the e2e suite's mock LLM frames real provider streams)
    texts = ["Card 4111 11", "11 1111 1111 to a@b", ".io ", "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"]
    for p, s in (("/v1/chat/completions", 0), ("/v1/responses", 8), ("/v1/messages", 12)):
        events = mock_llm.stream_events(p, {"model": "gpt-4o", "stream_options": {"include_usage": True}}, texts)
        body = b"".join(mock_llm.frame(n, d, "\n") for n, d in events)
        for c in (1, 7, 64):
            write("stream", "%s-%d" % (p.strip("/").replace("/", "-"), c), bytes([s, c]) + body)
    # A long text in one block: what is held must not grow with it (the bound in stream.rs).
    long = ["%04d lorem ipsum dolor sit amet, consectetur adipiscing elit " % i for i in range(64)]
    events = mock_llm.stream_events("/v1/messages", {"model": "claude"}, long)
    write("stream", "long-messages", bytes([12, 64]) + b"".join(mock_llm.frame(n, d, "\n") for n, d in events))


def plugin_configs():
    """The shipped plugin configuration, with each sink's audit block and each policy."""
    with open(path("envoy/envoy.yaml")) as f:
        text = f.read()
    found = []

    def walk(v):
        if isinstance(v, dict):
            if isinstance(v.get("value"), str) and '"policy"' in v["value"]:
                found.append(json.loads(v["value"]))
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(yaml.safe_load(text))
    base = found[0]
    yield "envoy", base
    sinks_dir = path("envoy/sinks")
    for name in sorted(os.listdir(sinks_dir)):
        if not name.endswith(".yaml"):
            continue
        with open(os.path.join(sinks_dir, name)) as f:
            block = yaml.safe_load(f).get("plugin_audit_block")
        if block:
            block = "\n".join(l for l in block.splitlines() if not l.lstrip().startswith("#"))
            yield "sink-" + name[:-5], dict(base, audit=json.loads("{" + block + "}")["audit"])
    for p in POLICIES:
        with open(path(p)) as f:
            policy = json.load(f)
        stem = os.path.basename(p)[:-5]
        yield "policy-" + stem, dict(base, policy=policy)
        yield "candidate-" + stem, dict(base, candidate_policy=policy)
    yield "attribution", dict(base, attribution={
        "user": [{"source": "jwt_authn", "payload_in_metadata": "jwt_payload", "claim": "sub"},
                 {"source": "bearer_jwt_unverified", "claim": "sub"},
                 {"source": "body_field", "pointer": "/user"}],
        "project": [{"source": "route_metadata", "namespace": "policy_gateway", "key": "project"},
                    {"source": "api_key_map", "header": "authorization", "map": {"sha256:0": "p"}}]})
    yield "streaming", dict(base, streaming={"max_holdback_bytes": 64, "max_queued_bytes": 128})


def config():
    for name, doc in plugin_configs():
        write("config", name, json.dumps(doc, indent=1))


def sinks():
    # which, status (big endian, high bit clear: 100 + n % 500), n, header lines, NUL, body.
    def answer(which, status, n, body, headers=b""):
        return bytes([which]) + (status - 100).to_bytes(2, "big") + bytes([n]) + headers + b"\0" + body
    es_items = json.dumps({"errors": True, "items": [
        {"create": {"status": 201}}, {"create": {"status": 409}}, {"create": {"status": 429}},
        {"create": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "bad"}}}]})
    seeds = {
        "hec-ok": answer(0, 200, 0, b'{"text":"Success","code":0}'),
        "hec-ack": answer(0, 200, 0, b'{"text":"Success","code":0,"ackId":7}'),
        "hec-503": answer(0, 503, 0, b'{"text":"Server is busy","code":9}'),
        "hec-ack-poll": answer(1, 200, 7, b'{"acks":{"7":true}}'),
        "dd-413": answer(2, 413, 0, b'{"errors":["Payload too large"]}'),
        "es-items": answer(3, 200, 4, es_items.encode()),
        "es-ok": answer(3, 200, 2, b'{"errors":false,"items":[]}'),
        "s3-expired": answer(4, 403, 0, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"),
        "s3-412": answer(4, 412, 0, b"<Error><Code>PreconditionFailed</Code></Error>"),
        "presign": answer(5, 200, 0, json.dumps({
            "url": "https://bucket.s3.eu-west-1.amazonaws.com/k.jsonl.gz?X-Amz-Signature=0123456789abcdef0123",
            "headers": {"Content-Type": "application/x-ndjson", "content-encoding": "gzip"},
            "expires_at": 1795716549}).encode()),
        "azure-429": answer(6, 429, 0, b'{"error":{"code":"TooManyRequests"}}', b"retry-after: 30\nx-ms-error-code: x"),
        "token": answer(7, 200, 0, b'{"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOi","expires_in":3599}'),
        "token-400": answer(7, 400, 0, b'{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret"}'),
    }
    for name, data in seeds.items():
        write("sinks", name, data)


def headers():
    # selector, then NUL-separated :path, name, value, name, value...
    def req(selector, p, pairs):
        return bytes([selector]) + b"\0".join([p] + [x for kv in pairs for x in kv])
    jwt = b"Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.sig"
    seeds = {
        "header": req(0, b"/v1/chat/completions", [(b"x-user-id", b"alice"), (b"x-user-id", b"mallory")]),
        "latin1": req(0, b"/v1/messages", [(b"x-user-id", b"caf\xe9"), (b"x-note", b"\xff\xfe")]),
        "jwt": req(2, b"/openai/deployments/gpt-4o/chat/completions?api-version=1", [(b"authorization", jwt)]),
        "claims": req(1, b"/v1/responses", [(b"jwt:jwt_payload.sub", b"bob"), (b"route:policy_gateway.project", b"p")]),
        "body": req(3, b"/v1/completions", [(b"body", b'{"user": " carol "}')]),
        "api-key": req(5, b"/model/anthropic.claude-3/invoke", [(b"authorization", b"Bearer sk-proj-fuzz-known-key-0001")]),
    }
    for name, data in seeds.items():
        write("headers", name, data)


if __name__ == "__main__":
    for target in sys.argv[1:]:
        globals()[target]()
