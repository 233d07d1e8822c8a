"""Audit records to several sinks at once through a real Envoy, into strict receivers that
reject what the real services reject; faults: receiver down then back, per-item retries,
rejected batches dropped and counted once, hung receivers."""

import base64
import http.client
import json
import os
import subprocess
import threading
import time
import urllib.request

from conftest import load_policy
from harness import HEC_TOKEN, ROOT, Gateway, plugin_config

CLI = os.path.join(ROOT, "target", "release", "policy-gateway")

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


def record_of(item):
    """The audit record a receiver holds, whatever the sink's shape (HEC event, Elasticsearch
    document, Datadog log, Azure row, S3 line)."""
    if "event" in item and isinstance(item["event"], dict):
        return item["event"]
    if "_source" in item:
        return item["_source"]
    if "message" in item:
        return json.loads(item["message"])
    return item


def decisions(port, path="/_events"):
    """What a receiver got, without the gateway's one `policy_change` record."""
    return [x for x in get(port, path) if record_of(x).get("record_type") == "decision"]


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
        hec_events = wait_for(lambda: [e for e in gw.hec("/_events") if e["event"].get("request_id") in ids][4:] and
                              gw.hec("/_events"))
        assert {e["event"].get("request_id") for e in hec_events} - {None} == ids
        dd_events = wait_for(lambda: len(decisions(dd)) >= 5 and decisions(dd))
        assert {json.loads(e["message"])["request_id"] for e in dd_events} == ids
        assert all(e["ddsource"] and e["service"] == "llm-gateway" for e in dd_events)
        assert "env:test" in dd_events[0]["ddtags"]
        es_docs = wait_for(lambda: len(decisions(es)) >= 5 and decisions(es))
        assert len(es_docs) == 5
        assert all(d["_id"] == d["_source"]["record_id"] for d in es_docs), "idempotent _id"
        assert {d["_source"]["request_id"] for d in es_docs} == ids
        assert all(d["data_stream"] == "policy-audit" for d in es_docs)
        assert any(r["headers"].get("content-encoding") == "gzip" for r in gw.hec("/_requests")), "batches gzipped"
        # A sink's answer is counted after the receiver has the records: wait for it.
        def delivered(sink):
            return gw.stats().get(f"wasmcustom.policy_gateway.sink.{sink}.delivered", 0)

        for sink in ("splunk_hec", "datadog", "elasticsearch"):
            assert wait_for(lambda: delivered(sink) >= 5), (sink, delivered(sink))


def test_receiver_down_then_back_loses_nothing():
    plugin = plugin_config(load_policy("default.json"), audit=audit(elasticsearch=elasticsearch()))
    with Gateway(plugin=plugin) as gw:
        send(gw, 6, "down")          # Elasticsearch is not running yet: calls fail, records wait
        time.sleep(1.5)
        assert gw.stats().get("wasmcustom.policy_gateway.sink.elasticsearch.retried", 0) > 0
        es = gw.start_receiver("elasticsearch", "elasticsearch_receiver.py")
        docs = wait_for(lambda: len(decisions(es)) >= 6 and decisions(es), timeout=40)
        assert docs and len(docs) == 6
        assert len({d["_id"] for d in docs}) == 6


def test_bulk_item_rejections_are_retried_per_item():
    plugin = plugin_config(load_policy("default.json"), audit=audit(elasticsearch=elasticsearch()))
    with Gateway(plugin=plugin) as gw:
        es = gw.start_receiver("elasticsearch", "elasticsearch_receiver.py")
        post(es, "/_fail_items", {"status": 429, "count": 3})
        send(gw, 5, "items")
        docs = wait_for(lambda: len(decisions(es)) >= 5 and decisions(es), timeout=30)
        assert docs and len(docs) == 5, docs
        assert gw.stats()["wasmcustom.policy_gateway.sink.elasticsearch.retried"] >= 3


def test_rejected_batches_are_dropped_and_counted_once():
    plugin = plugin_config(load_policy("default.json"), audit=audit(datadog=datadog(key="f" * 32)))
    with Gateway(plugin=plugin) as gw:
        dd = gw.start_receiver("datadog", "datadog_receiver.py")
        send(gw, 4, "bad-key")
        # 4 decision records and the gateway's policy_change record.
        dropped = wait_for(lambda: gw.stats().get("wasmcustom.policy_gateway.sink.datadog.dropped", 0) >= 5)
        assert dropped
        time.sleep(0.5)
        assert gw.stats()["wasmcustom.policy_gateway.sink.datadog.dropped"] == 5
        assert get(dd, "/_events") == []
        statuses = [r["status"] for r in get(dd, "/_requests")]
        assert statuses and set(statuses) == {403}
        log = gw.envoy.output()
        # Once per distinct error per VM that ships: the 2 workers of the test Envoy, and the
        # main thread's VM, which sends the policy_change record. (That VM's first call can
        # go out before the receiver listens: a 503 first, a distinct error warned on its own.)
        assert 1 <= log.count("sink datadog: Datadog 403") <= 3
        assert "f" * 32 not in log


def test_hung_receiver_does_not_slow_clients():
    plugin = plugin_config(load_policy("default.json"), audit=audit(splunk_hec=hec()))
    with Gateway(plugin=plugin) as gw:
        gw.hec_control("/_hang", {"count": 2})
        start = time.time()
        send(gw, 10, "hang")
        assert time.time() - start < 5
        events = wait_for(lambda: len([e for e in gw.hec("/_events") if e["event"].get("request_id", "").startswith("hang-")]) >= 10,
                          timeout=30)
        assert events


def test_drops_while_calls_time_out_are_counted_once_in_both_metrics():
    """A small buffer and a receiver that does not answer (calls time out and their batches
    wait for a retry): every record is delivered or inside a gap record, and the global and
    the per-sink dropped metrics both count exactly the records the gap records announce."""
    plugin = plugin_config(load_policy("default.json"), audit=audit(
        splunk_hec=hec(), timeout_ms=300, buffer_max_bytes=8192, batch_max_bytes=4096))
    with Gateway(plugin=plugin) as gw:
        gw.hec_control("/_hang", {"count": 6})
        send(gw, 60, "soak")

        def tally():
            events = [e["event"] for e in gw.hec("/_events")]
            kept = [e for e in events if e.get("record_type") in ("decision", "policy_change")]
            gaps = [e for e in events if e.get("record_type") == "gap"]
            return kept, gaps

        def settled():
            kept, gaps = tally()
            emitted = gw.stats().get("wasmcustom.policy_gateway.records.emitted", 0)
            return emitted >= 61 and len(kept) + sum(g["dropped"] for g in gaps) == emitted

        assert wait_for(settled, timeout=60), tally()
        kept, gaps = tally()
        lost = sum(g["dropped"] for g in gaps)
        assert lost > 0, "the buffer was too small for the outage"
        assert {g["cause"] for g in gaps} == {"buffer_full"}
        assert len({e["record_id"] for e in kept}) == len(kept)
        stats = gw.stats()
        assert stats["wasmcustom.policy_gateway.sink.splunk_hec.dropped"] == lost
        assert stats["wasmcustom.policy_gateway.records.dropped"] == lost


# --- Amazon S3 through a real S3-compatible server that verifies SigV4 presigned URLs -------

import gzip
import os
import shutil
import subprocess
import sys

from harness import ROOT, Process, free_port, wait_http

S3_KEY, S3_SECRET, BUCKET = "pgaccesskey", "pgsecretkey0123456789", "audit"


def s3s_fs():
    path = shutil.which("s3s-fs") or os.path.expanduser("~/.cargo/bin/s3s-fs")
    assert os.path.exists(path), "s3s-fs missing: run through `make test-e2e`"
    return path


def start_s3(gw, secret=S3_SECRET, port=None):
    """s3s-fs on the `s3` cluster's port (or `port`), and the reference presigner (boto3) on
    the presigner's; `secret` is what the presigner signs with."""
    data = os.path.join(gw.dir, "s3data")
    os.makedirs(os.path.join(data, BUCKET), exist_ok=True)
    port = port or gw.cluster_ports["s3"]
    gw.procs.insert(0, Process([s3s_fs(), "--host", "127.0.0.1", "--port", str(port), "--access-key", S3_KEY,
                                "--secret-key", S3_SECRET, data], "s3s-fs", gw.dir))
    env = dict(os.environ, S3_BUCKET=BUCKET, AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID=S3_KEY,
               AWS_SECRET_ACCESS_KEY=secret, S3_ENDPOINT_URL=f"http://127.0.0.1:{port}", HOST="127.0.0.1",
               PORT=str(gw.cluster_ports["s3_presigner"]), KEY_PREFIX="policy-gateway/")
    log = open(os.path.join(gw.dir, "presigner.log"), "wb")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "envoy", "presigner", "presigner.py")],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    presigner = Process.__new__(Process)
    presigner.name, presigner.log_path, presigner.log, presigner.proc = "presigner", log.name, log, proc
    gw.procs.insert(0, presigner)
    wait_http(f"http://127.0.0.1:{port}/", 10)
    wait_http(f"http://127.0.0.1:{gw.cluster_ports['s3_presigner']}/", 10)
    return os.path.join(data, BUCKET)


def s3_config():
    return {"presigner_cluster": "s3_presigner", "presigner_authority": "presigner.internal",
            "s3_cluster": "s3", "prefix": "policy-gateway/"}


def stored_records(bucket_dir):
    out = []
    for dirpath, _, files in os.walk(bucket_dir):
        for f in files:
            if f.endswith(".jsonl.gz"):
                rel = os.path.relpath(os.path.join(dirpath, f), bucket_dir)
                with gzip.open(os.path.join(dirpath, f), "rt") as g:
                    out.extend((rel, json.loads(line)) for line in g if line.strip())
    return out


def test_s3_objects_land_under_hive_keys_with_valid_signatures():
    with Gateway(plugin=plugin_config(load_policy("default.json"), audit=audit(s3=s3_config()))) as gw:
        bucket = start_s3(gw)
        send(gw, 5, "s3")
        recs = wait_for(lambda: len([r for _, r in stored_records(bucket) if r.get("record_type") == "decision"]) >= 5
                        and stored_records(bucket), timeout=30)
        assert recs, open(os.path.join(gw.dir, "presigner.log")).read()[-2000:]
        assert {r.get("request_id") for _, r in recs} - {None} == {f"s3-{i}" for i in range(5)}
        # The exported objects are what `policy-gateway trail` reads (the S3 tree, gzip).
        out = subprocess.run([CLI, "trail", "--format", "csv", bucket], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert sorted(line.split(",")[1] for line in out.stdout.splitlines()[1:]) == \
            [f"s3-{i}" for i in range(5)]
        for key, _ in recs:
            parts = key.split("/")
            assert parts[0] == "policy-gateway" and parts[1].startswith("dt=") and parts[2].startswith("hour=")
        assert gw.stats().get("wasmcustom.policy_gateway.sink.s3.delivered", 0) >= 5


def test_s3_two_gateways_sharing_an_instance_id_lose_and_double_nothing():
    """The reviewer's reproduction: a mesh gives every gateway the same instance_id, and both
    write to one bucket, one record per object, at the same time. Keys used to collide (the
    second PUT got 412, counted as delivered: records lost)."""
    plugin = plugin_config(load_policy("default.json"), instance_id="mesh",
                           audit=audit(s3=s3_config(), batch_max_records=1, batch_max_bytes=1024 * 1024))
    with Gateway(plugin=plugin) as a:
        bucket = start_s3(a)
        shared = {name: a.cluster_ports[name] for name in ("s3", "s3_presigner")}
        with Gateway(plugin=plugin, cluster_ports=shared) as b:
            sent = []
            together = threading.Barrier(2)

            def run(gw, prefix):
                # One connection (one worker) per gateway, both in step: the two gateways'
                # workers write their n-th batch in the same millisecond.
                conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
                body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
                for i in range(150):
                    together.wait()
                    conn.request("POST", "/v1/chat/completions", body=body,
                                 headers={"content-type": "application/json", "x-user-id": "alice",
                                          "x-request-id": f"{prefix}-{i}"})
                    r = conn.getresponse()
                    r.read()
                    if r.status == 200:
                        sent.append(f"{prefix}-{i}")
                conn.close()

            threads = [threading.Thread(target=run, args=(gw, p)) for gw, p in ((a, "a"), (b, "b"))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(sent) == 300

            def decisions_stored():
                return [r for _, r in stored_records(bucket) if r.get("record_type") == "decision"]

            wait_for(lambda: len(decisions_stored()) >= 300, timeout=60)
            time.sleep(1)
            ids = [r["request_id"] for r in decisions_stored()]
            assert sorted(ids) == sorted(sent), (len(ids), len(set(ids)))
            delivered = sum(gw.stats().get("wasmcustom.policy_gateway.sink.s3.delivered", 0) for gw in (a, b))
            assert delivered == len(stored_records(bucket)), "delivered means stored"


def test_s3_retry_after_a_lost_answer_reuses_its_key_and_stores_once():
    """S3 stores the object but its answer is lost: the retry must PUT the same key, get 412
    (If-None-Match) and count it delivered, not store the batch a second time."""
    with Gateway(plugin=plugin_config(load_policy("default.json"), audit=audit(s3=s3_config()))) as gw:
        s3_port = free_port()
        bucket = start_s3(gw, port=s3_port)
        proxy = gw.start_receiver("s3", "lossy_proxy.py", s3_port, "PUT", 1)
        send(gw, 11, "lost")
        ids = {f"lost-{i}" for i in range(11)}
        assert wait_for(lambda: ids <= {r.get("request_id") for _, r in stored_records(bucket)}, timeout=30)

        def retried():
            # The withheld upload (maybe the policy_change record's) and its retry.
            log = get(proxy, "/_log")
            withheld = [e for e in log if e["withheld"]]
            again = [e for e in log if e["method"] == "PUT" and not e["withheld"]
                     and withheld and e["path"] == withheld[0]["path"]]
            return (withheld, again) if again else None

        found = wait_for(retried, timeout=30)
        assert found, get(proxy, "/_log")
        withheld, again = found
        assert len(withheld) == 1 and withheld[0]["status"] == 200, withheld
        assert again[0]["status"] == 412, ("the retry used the same key, which S3 had", again)
        assert wait_for(lambda: gw.stats().get("wasmcustom.policy_gateway.sink.s3.delivered", 0)
                        == len(stored_records(bucket)), timeout=20), "delivered, once each"
        stored = [r["request_id"] for _, r in stored_records(bucket) if r.get("request_id") in ids]
        assert sorted(stored) == sorted(ids), "each record stored once"
        record_ids = [r["record_id"] for _, r in stored_records(bucket)]
        assert len(record_ids) == len(set(record_ids)), "no record stored twice (policy_change included)"
        assert gw.stats().get("wasmcustom.policy_gateway.sink.s3.dropped", 0) == 0


def test_s3_rejected_signatures_fetch_fresh_urls_and_nothing_is_stored():
    with Gateway(plugin=plugin_config(load_policy("default.json"), audit=audit(s3=s3_config()))) as gw:
        bucket = start_s3(gw, secret="not-the-server-secret")
        send(gw, 2, "badsig")
        retried = wait_for(lambda: gw.stats().get("wasmcustom.policy_gateway.sink.s3.retried", 0) >= 2, timeout=20)
        assert retried
        assert stored_records(bucket) == []
        assert "SignatureDoesNotMatch" in gw.envoy.output()


# --- Azure Monitor Logs Ingestion, with its Entra ID token endpoint -------------------------

TENANT, CLIENT_ID, CLIENT_SECRET = "72f988bf-0000-0000-0000-000000000001", "pg-client", "pg-secret"
DCR, STREAM = "dcr-00000000000000000000000000000001", "Custom-PolicyGatewayAudit_CL"


def azure(secret=CLIENT_SECRET):
    return {"cluster": "azure_monitor", "endpoint_authority": "pg-dce.westeurope-1.ingest.monitor.azure.com",
            "dcr_immutable_id": DCR, "stream": STREAM,
            "auth": {"client_credentials": {"token_cluster": "azure_monitor", "tenant_id": TENANT,
                                            "client_id": CLIENT_ID, "client_secret": secret}}}


def test_azure_gets_a_token_and_ingests():
    with Gateway(plugin=plugin_config(load_policy("default.json"), audit=audit(azure_monitor=azure()))) as gw:
        az = gw.start_receiver("azure_monitor", "azure_receiver.py", 4)   # tokens live 4 s
        send(gw, 3, "az")
        rows = wait_for(lambda: len(decisions(az)) >= 3 and decisions(az), timeout=20)
        assert rows and {r["request_id"] for r in rows} == {f"az-{i}" for i in range(3)}
        assert all(r["TimeGenerated"].endswith("Z") for r in rows)
        time.sleep(4.5)                                                    # every token has expired
        send(gw, 3, "az2")
        rows = wait_for(lambda: len(decisions(az)) >= 6 and decisions(az), timeout=20)
        assert rows
        assert get(az, "/_tokens")["issued"] >= 2
        ingest = [r for r in get(az, "/_requests") if r["kind"] == "ingest"]
        assert ingest and {r["status"] for r in ingest} == {204}, "tokens refreshed before they expire"
        assert {r["api_version"] for r in ingest} == {"2023-01-01"}
        assert CLIENT_SECRET not in gw.envoy.output()


def test_azure_token_revoked_mid_run_loses_nothing():
    """A token the service stops taking (revoked, rotated credentials) gets 401: the batch goes
    again at once with a fresh token instead of being dropped."""
    with Gateway(plugin=plugin_config(load_policy("default.json"), audit=audit(azure_monitor=azure()))) as gw:
        az = gw.start_receiver("azure_monitor", "azure_receiver.py")
        send(gw, 20, "rev1")
        assert wait_for(lambda: len(decisions(az)) >= 20, timeout=20)
        post(az, "/_revoke", {})
        send(gw, 20, "rev2")
        ids = {f"rev{k}-{i}" for k in (1, 2) for i in range(20)}
        assert wait_for(lambda: ids <= {r.get("request_id") for r in decisions(az)}, timeout=30), \
            len(ids - {r.get("request_id") for r in decisions(az)})
        ingest = [r for r in get(az, "/_requests") if r["kind"] == "ingest"]
        assert 401 in {r["status"] for r in ingest}, "a revoked token was used, and refused"
        assert get(az, "/_tokens")["issued"] >= 2
        stats = gw.stats()
        assert stats.get("wasmcustom.policy_gateway.sink.azure_monitor.dropped", 0) == 0
        assert stats.get("wasmcustom.policy_gateway.records.dropped", 0) == 0


def test_azure_wrong_secret_is_reported_and_nothing_ingested():
    secret = "pg-wrong-secret-7f3a"
    with Gateway(plugin=plugin_config(load_policy("default.json"), audit=audit(azure_monitor=azure(secret)))) as gw:
        az = gw.start_receiver("azure_monitor", "azure_receiver.py")
        send(gw, 2, "azbad")
        # (Waits for the token endpoint's answer: a call made before the receiver was up
        # logs a connection failure first.)
        assert wait_for(lambda: "sink azure_monitor: token endpoint 401" in gw.envoy.output(), timeout=15)
        tokens = [r for r in get(az, "/_requests") if r["kind"] == "token"]
        assert tokens and {r["status"] for r in tokens} == {401}
        assert get(az, "/_events") == []
        assert gw.stats().get("wasmcustom.policy_gateway.sink.azure_monitor.dropped", 0) >= 1
        assert secret not in gw.envoy.output()


def test_all_five_sinks_at_once():
    plugin = plugin_config(load_policy("default.json"), audit=audit(
        splunk_hec=hec(), datadog=datadog(), elasticsearch=elasticsearch(ecs=True), s3=s3_config(),
        azure_monitor=azure()))
    with Gateway(plugin=plugin) as gw:
        dd = gw.start_receiver("datadog", "datadog_receiver.py")
        es = gw.start_receiver("elasticsearch", "elasticsearch_receiver.py")
        az = gw.start_receiver("azure_monitor", "azure_receiver.py")
        bucket = start_s3(gw)
        send(gw, 4, "five")
        ids = {f"five-{i}" for i in range(4)}
        assert wait_for(lambda: ids <= {e["event"].get("request_id") for e in gw.hec("/_events")})
        assert wait_for(lambda: ids <= {json.loads(e["message"]).get("request_id") for e in get(dd, "/_events")})
        assert wait_for(lambda: ids <= {d["_source"].get("policy_gateway", {}).get("request_id") for d in get(es, "/_events")})
        assert wait_for(lambda: ids <= {r.get("request_id") for r in get(az, "/_events")})
        assert wait_for(lambda: ids <= {r.get("request_id") for _, r in stored_records(bucket)}, timeout=30)


def test_hec_400_incorrect_index_is_dropped_and_counted():
    bad = dict(hec(), index="no_such_index")
    with Gateway(plugin=plugin_config(load_policy("default.json"), audit=audit(splunk_hec=bad))) as gw:
        send(gw, 3, "badidx")
        assert wait_for(lambda: gw.stats().get("wasmcustom.policy_gateway.sink.splunk_hec.dropped", 0) >= 3)
        assert {(r["status"], r["code"]) for r in gw.hec("/_requests")} == {(400, 7)}
        assert gw.hec("/_events") == []
        assert "Incorrect index" in gw.envoy.output()
        assert gw.stats().get("wasmcustom.policy_gateway.sink.splunk_hec.retried", 0) == 0


def test_hec_indexer_acknowledgement():
    acked = dict(hec(), token="00000000-0000-4000-8000-0000000000ac", ack=True)
    with Gateway(plugin=plugin_config(load_policy("default.json"), audit=audit(splunk_hec=acked))) as gw:
        gw.hec_control("/_ack_hold", {"hold": True})
        send(gw, 3, "ack")
        polls = lambda: [r for r in gw.hec("/_requests") if "ack_poll" in r]
        assert wait_for(lambda: len(polls()) >= 2), "the posted batch polled while not indexed"
        delivered = lambda: gw.stats().get("wasmcustom.policy_gateway.sink.splunk_hec.delivered", 0)
        assert delivered() == 0, "a batch counted delivered before its ack was true"
        gw.hec_control("/_ack_hold", {"hold": False})
        assert wait_for(lambda: delivered() >= 3)

        def unacked():
            """Posts whose ack no poll has seen true yet, and whether every posted event counts
            delivered. A later batch (records after the first three) may still be polling."""
            reqs = gw.hec("/_requests")
            posts = [r for r in reqs if "ack_poll" not in r]
            acked_true = {(p["headers"]["x-splunk-request-channel"], int(i))
                          for p in reqs if "ack_poll" in p for i, ok in p["acks"].items() if ok}
            keys = [(p["headers"].get("x-splunk-request-channel"), p.get("ack_id")) for p in posts]
            return [k for k in keys if k not in acked_true], delivered() >= sum(p["events"] for p in posts)

        assert wait_for(lambda: unacked() == ([], True)), unacked()
        posts = [r for r in gw.hec("/_requests") if "ack_poll" not in r]
        assert posts and all(r["status"] == 200 and r["headers"].get("x-splunk-request-channel") for r in posts)
        # Without a channel the ack-enabled token is refused (what the real HEC does).
    no_channel = dict(hec(), token="00000000-0000-4000-8000-0000000000ac")
    with Gateway(plugin=plugin_config(load_policy("default.json"), audit=audit(splunk_hec=no_channel))) as gw:
        send(gw, 1, "nochan")
        assert wait_for(lambda: gw.stats().get("wasmcustom.policy_gateway.sink.splunk_hec.dropped", 0) >= 1)
        assert {(r["status"], r["code"]) for r in gw.hec("/_requests")} == {(400, 10)}
