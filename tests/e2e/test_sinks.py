"""Audit records to several sinks at once through a real Envoy, into strict receivers that
reject what the real services reject; faults: receiver down then back, per-item retries,
rejected batches dropped and counted once, hung receivers."""

import base64
import json
import time
import urllib.request

from conftest import load_policy
from harness import HEC_TOKEN, Gateway, plugin_config

DD_KEY = "0123456789abcdef0123456789abcdef"
ES_API_KEY = base64.b64encode(b"pg:secret-key").decode()


def audit(gw_ports=None, **sinks):
    base = {"flush_interval_ms": 100, "timeout_ms": 1000}
    base.update(sinks)
    return base


def hec():
    return {"cluster": "splunk_hec", "authority": "set-by-harness", "token": HEC_TOKEN, "index": "ai_audit"}


def datadog(key=DD_KEY):
    return {"cluster": "datadog", "authority": "http-intake.logs.datadoghq.com", "api_key": key,
            "service": "llm-gateway", "tags": ["env:test", "team:security"]}


def elasticsearch(ecs=False):
    return {"cluster": "elasticsearch", "authority": "es.internal:9200", "index": "policy-audit",
            "auth": {"api_key": ES_API_KEY}, "ecs": ecs}


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.loads(r.read())


def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read()


def wait_for(fn, timeout=20.0):
    deadline = time.time() + timeout
    value = fn()
    while not value and time.time() < deadline:
        time.sleep(0.1)
        value = fn()
    return value


def send(gw, n, prefix):
    for i in range(n):
        status, _, _ = gw.chat("hello", headers={"x-request-id": f"{prefix}-{i}"})
        assert status == 200


def test_three_sinks_at_once():
    plugin = plugin_config(load_policy("default.json"),
                           audit=audit(splunk_hec=hec(), datadog=datadog(), elasticsearch=elasticsearch()))
    with Gateway(plugin=plugin) as gw:
        dd = gw.start_receiver("datadog", "datadog_receiver.py")
        es = gw.start_receiver("elasticsearch", "elasticsearch_receiver.py")
        send(gw, 5, "multi")
        ids = {f"multi-{i}" for i in range(5)}
        hec_events = wait_for(lambda: [e for e in gw.hec("/_events") if e["event"]["request_id"] in ids][4:] and
                              gw.hec("/_events"))
        assert {e["event"]["request_id"] for e in hec_events} == ids
        dd_events = wait_for(lambda: len(get(dd, "/_events")) >= 5 and get(dd, "/_events"))
        assert {json.loads(e["message"])["request_id"] for e in dd_events} == ids
        assert all(e["ddsource"] and e["service"] == "llm-gateway" for e in dd_events)
        assert "env:test" in dd_events[0]["ddtags"]
        es_docs = wait_for(lambda: len(get(es, "/_events")) >= 5 and get(es, "/_events"))
        assert len(es_docs) == 5
        assert all(d["_id"] == d["_source"]["record_id"] for d in es_docs), "idempotent _id"
        assert {d["_source"]["request_id"] for d in es_docs} == ids
        assert all(d["data_stream"] == "policy-audit" for d in es_docs)
        stats = gw.stats()
        for sink in ("splunk_hec", "datadog", "elasticsearch"):
            assert stats.get(f"wasmcustom.policy_gateway.sink.{sink}.delivered", 0) >= 5, sink


def test_receiver_down_then_back_loses_nothing():
    plugin = plugin_config(load_policy("default.json"), audit=audit(elasticsearch=elasticsearch()))
    with Gateway(plugin=plugin) as gw:
        send(gw, 6, "down")          # Elasticsearch is not running yet: calls fail, records wait
        time.sleep(1.5)
        assert gw.stats().get("wasmcustom.policy_gateway.sink.elasticsearch.retried", 0) > 0
        es = gw.start_receiver("elasticsearch", "elasticsearch_receiver.py")
        docs = wait_for(lambda: len(get(es, "/_events")) >= 6 and get(es, "/_events"), timeout=40)
        assert docs and len(docs) == 6
        assert len({d["_id"] for d in docs}) == 6


def test_bulk_item_rejections_are_retried_per_item():
    plugin = plugin_config(load_policy("default.json"), audit=audit(elasticsearch=elasticsearch()))
    with Gateway(plugin=plugin) as gw:
        es = gw.start_receiver("elasticsearch", "elasticsearch_receiver.py")
        post(es, "/_fail_items", {"status": 429, "count": 3})
        send(gw, 5, "items")
        docs = wait_for(lambda: len(get(es, "/_events")) >= 5 and get(es, "/_events"), timeout=30)
        assert docs and len(docs) == 5, docs
        assert gw.stats()["wasmcustom.policy_gateway.sink.elasticsearch.retried"] >= 3


def test_rejected_batches_are_dropped_and_counted_once():
    plugin = plugin_config(load_policy("default.json"), audit=audit(datadog=datadog(key="f" * 32)))
    with Gateway(plugin=plugin) as gw:
        dd = gw.start_receiver("datadog", "datadog_receiver.py")
        send(gw, 4, "bad-key")
        dropped = wait_for(lambda: gw.stats().get("wasmcustom.policy_gateway.sink.datadog.dropped", 0) >= 4)
        assert dropped
        time.sleep(0.5)
        assert gw.stats()["wasmcustom.policy_gateway.sink.datadog.dropped"] == 4
        assert get(dd, "/_events") == []
        statuses = [r["status"] for r in get(dd, "/_requests")]
        assert statuses and set(statuses) == {403}
        log = gw.envoy.output()
        # Once per distinct error per worker VM (the test Envoy runs 2 workers).
        assert 1 <= log.count("sink datadog: ") <= 2
        assert "f" * 32 not in log


def test_hung_receiver_does_not_slow_clients():
    plugin = plugin_config(load_policy("default.json"), audit=audit(splunk_hec=hec()))
    with Gateway(plugin=plugin) as gw:
        gw.hec_control("/_hang", {"count": 2})
        start = time.time()
        send(gw, 10, "hang")
        assert time.time() - start < 5
        events = wait_for(lambda: len([e for e in gw.hec("/_events") if e["event"]["request_id"].startswith("hang-")]) >= 10,
                          timeout=30)
        assert events
