"""A VM that dies loses no audit record silently. With `failure_policy: FAIL_RELOAD` Envoy
replaces a VM that trapped; the records it had accepted and not delivered die with it. Each VM
keeps a ledger in the host's shared data (src/sinks/ledger.rs); another VM finds the dead one's
ledger stale, claims it once and ships a `gap` record (cause `vm_failed`) saying how many
records were lost and when. This is the fallback (each worker ships its own records, no audit
shipper: with it, a worker VM holds no records, see test_shipper.py). The VM is killed through the TEST-ONLY fault-injection build
(`make wasm-fault`, src/filter/fault.rs): the shipped module has no way to trap on purpose."""

import http.client
import json
import os
import time

from conftest import load_policy
from harness import FAULT_WASM, HEC_TOKEN, WASM, Gateway, plugin_config

FLUSH_MS, STALE_MS = 5000, 2000


def request(conn, request_id, headers=None):
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]})
    h = {"content-type": "application/json", "x-user-id": "alice", "x-request-id": request_id}
    h.update(headers or {})
    try:
        conn.request("POST", "/v1/chat/completions", body=body, headers=h)
        r = conn.getresponse()
        r.read()
        return r.status
    except (OSError, http.client.HTTPException):
        return None


def wait_for(fn, timeout):
    deadline = time.time() + timeout
    value = fn()
    while not value and time.time() < deadline:
        time.sleep(0.2)
        value = fn()
    return value


def test_the_shipped_module_cannot_trap_on_purpose():
    with open(WASM, "rb") as f:
        assert b"x-policy-gateway-fault" not in f.read()


def test_a_dead_vm_loses_no_record_silently():
    assert os.path.exists(FAULT_WASM), "run through `make test-e2e` (it builds make wasm-fault)"
    plugin = plugin_config(load_policy("default.json"), instance_id="gw-restart", audit={
        "flush_interval_ms": FLUSH_MS, "vm_stale_ms": STALE_MS,
        "splunk_hec": {"cluster": "splunk_hec", "authority": "set-by-harness", "token": HEC_TOKEN,
                       "index": "ai_audit"}})
    with Gateway(plugin=plugin, wasm=FAULT_WASM, shipper=False) as gw:
        started = time.time()
        ok = []
        # Ten records on one connection (one worker), then that worker's VM traps: they wait
        # for the flush interval in the VM that dies. Ten more on fresh connections.
        doomed = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        for i in range(10):
            if request(doomed, f"doomed-{i}") == 200:
                ok.append(f"doomed-{i}")
        for i in range(10):
            conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
            if request(conn, f"other-{i}") == 200:
                ok.append(f"other-{i}")
            conn.close()
        assert len(ok) == 20
        request(doomed, "trap", {"x-policy-gateway-fault": "trap"})
        killed = time.time()
        doomed.close()
        assert wait_for(lambda: "fault injection: trapping this VM" in gw.envoy.output(), 5)
        # The gateway goes on (a new VM for that worker).
        time.sleep(1.5)
        for i in range(5):
            conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
            if request(conn, f"after-{i}") == 200:
                ok.append(f"after-{i}")
            conn.close()

        def trail():
            events = [e["event"] for e in gw.hec("/_events")]
            gaps = [e for e in events if e.get("record_type") == "gap"]
            delivered = {e["request_id"] for e in events if e.get("record_type") == "decision"}
            changes = [e for e in events if e.get("record_type") == "policy_change"]
            return gaps, delivered, changes

        def settled():
            gaps, delivered, changes = trail()
            lost = sum(g["dropped"] for g in gaps)
            # The policy_change record may have been the dead VM's too.
            return gaps and lost == len(ok) - len(delivered & set(ok)) + 1 - len(changes)

        assert wait_for(settled, 30), trail()
        gaps, delivered, changes = trail()
        assert len(ok) >= 21
        assert delivered <= set(ok), "nothing recorded that was not sent"
        assert not any(r.startswith("doomed-") for r in delivered), "their VM died first"
        for g in gaps:
            assert (g["cause"], g["sink"], g["gateway"]) == ("vm_failed", "splunk_hec", "gw-restart")
            assert isinstance(g["vm"], int)
            assert g["from"] <= g["to"]
        lost = sum(g["dropped"] for g in gaps)
        assert lost >= 10
        stamps = [time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) for t in (started - 1, killed + 1)]
        assert all(stamps[0] <= g["from"][:19] and g["to"][:19] <= stamps[1] for g in gaps), (gaps, stamps)
        assert len(gaps) == 1, "claimed once"
        # Both dropped metrics count them, once; the dead VM's share of the gauge is taken back.
        stats = wait_for(lambda: (lambda s: s.get("wasmcustom.policy_gateway.sink.splunk_hec.buffered_bytes", 1) == 0
                                  and s)(gw.stats()), 10)
        assert stats, gw.stats()
        assert stats["wasmcustom.policy_gateway.sink.splunk_hec.dropped"] == lost
        assert stats["wasmcustom.policy_gateway.records.dropped"] == lost
        assert "presumed this VM" not in gw.envoy.output(), "no live VM was claimed"
