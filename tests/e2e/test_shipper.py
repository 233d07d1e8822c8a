"""Audit batches off the request workers (issue 16 item 4): envoy/envoy.yaml runs one shipper VM
(Envoy's envoy.bootstrap.wasm, singleton, on the main thread) that takes every worker's chained
records off a shared queue and delivers them; workers only chain and hand records over. Here:
the records of several worker chains delivered by the one shipper verify with `trail verify`;
a worker VM torn down with records not yet shipped loses none (they are in the host's queue,
not in the VM); and without the bootstrap extension each worker ships its own (the fallback)."""

import http.client
import json
import os
import time

from conftest import load_policy
from harness import FAULT_WASM, Gateway, plugin_config
from test_sinks import audit, hec, send, wait_for
from test_trail import findings, settled, trail, verify

N = 16


def mode_lines(gw):
    out = gw.envoy.output()
    return {mode: out.count(f"audit mode {mode}") for mode in ("shipper", "forwarding", "per_worker")}


def chains(events, record_type="decision"):
    return {e["chain"]["id"] for e in events if e.get("record_type") == record_type}


def test_every_workers_chain_delivered_by_the_one_shipper_verifies(tmp_path):
    plugin = plugin_config(load_policy("default.json"), instance_id="gw-shipper",
                           audit=trail(splunk_hec=hec()))
    with Gateway(plugin=plugin, shipper=True) as gw:
        # Fresh connections: both workers (--concurrency 2) take some.
        send(gw, N, "shipped")
        assert wait_for(lambda: settled([e["event"] for e in gw.hec("/_events")], N), timeout=30)
        items = gw.hec("/_events")
        stats = gw.stats()
        modes = mode_lines(gw)
    events = [i["event"] for i in items]
    assert modes["shipper"] >= 1 and modes["forwarding"] >= 2 and modes["per_worker"] == 0, modes
    # Every record went through the queue: what the workers handed over, the shipper took.
    forwarded = stats["wasmcustom.policy_gateway.records.forwarded"]
    assert forwarded == stats["wasmcustom.policy_gateway.records.relayed"] >= N, stats
    assert stats["wasmcustom.policy_gateway.sink.splunk_hec.delivered"] >= forwarded
    assert len(chains(events)) >= 2, "decision records of two worker chains"
    path = os.path.join(str(tmp_path), "hec.jsonl")
    with open(path, "w") as f:
        for i in items:
            f.write(json.dumps(i) + "\n")
    code, rep = verify(path, str(tmp_path), "--sink", "splunk_hec")
    assert code == 0 and not rep["tampered"], rep
    verified = [c for c in rep["chains"] if c["chain"] in chains(events)]
    assert len(verified) == len(chains(events)), rep
    for c in verified:
        assert c["missing"] == 0 and c["altered"] == 0, c
        assert c["checkpoints_verified"] >= 1 and c["signed_through"] == c["last_seq"], c


def test_a_loss_in_the_shipper_is_a_gap_record_per_worker_chain(tmp_path):
    plugin = plugin_config(load_policy("default.json"), instance_id="gw-shipper",
                           audit=trail(splunk_hec=hec()))
    with Gateway(plugin=plugin, shipper=True) as gw:
        send(gw, 2, "before")
        gw.records(2)
        # The next batch (records of both workers, sent before the shipper's next flush) is
        # refused for good.
        gw.hec_control("/_fail", {"status": 400, "count": 1})
        send(gw, 8, "lost")
        gaps = wait_for(lambda: [e["event"] for e in gw.hec("/_events")
                                 if e["event"].get("record_type") == "gap"], timeout=30)
        send(gw, 2, "after")
        assert wait_for(lambda: settled([e["event"] for e in gw.hec("/_events")], 4), timeout=30)
        items = gw.hec("/_events")
    events = [i["event"] for i in items]
    shipper_chains = chains(events, "gap")
    assert len(shipper_chains) == 1, "chained in the shipper's own chain"
    for g in gaps:
        assert g["cause"] == "rejected" and g["to_seq"] >= g["from_seq"] >= 1, g
        assert g["lost_chain"] not in shipper_chains, "a worker's chain"
    assert len({g["lost_chain"] for g in gaps}) == len(gaps), "one gap record per chain"
    path = os.path.join(str(tmp_path), "hec.jsonl")
    with open(path, "w") as f:
        for i in items:
            f.write(json.dumps(i) + "\n")
    # The export holds every chain from its start: the refused batch may hold a worker chain's
    # first records (workers hand records over 16 at a time, or on their tick).
    code, rep = verify(path, str(tmp_path), "--sink", "splunk_hec", "--whole-chains")
    assert code == 0, rep
    assert findings(rep, "missing_explained"), rep


def test_without_the_shipper_each_worker_ships_its_own():
    plugin = plugin_config(load_policy("default.json"), instance_id="gw-fallback",
                           audit=audit(splunk_hec=hec()))
    with Gateway(plugin=plugin, shipper=False) as gw:
        send(gw, N, "fallback")
        records = gw.records(N)
        assert wait_for(lambda: mode_lines(gw)["per_worker"] >= 2, timeout=10), gw.envoy.output()[-2000:]
        modes = mode_lines(gw)
        stats = gw.stats()
    assert {r["request_id"] for r in records} >= {f"fallback-{i}" for i in range(N)}
    assert modes["shipper"] == 0 and modes["forwarding"] == 0, modes
    assert stats.get("wasmcustom.policy_gateway.records.forwarded", 0) == 0, stats
    assert stats.get("wasmcustom.policy_gateway.records.relayed", 0) == 0, stats


def test_a_shipper_with_another_audit_configuration_is_not_used():
    """The shipper delivers with its own `audit` section: a worker whose section differs (here
    the shipper has no sinks at all) ships its own records, says so once and counts it."""
    plugin = plugin_config(load_policy("default.json"), instance_id="gw-mismatch",
                           audit=audit(splunk_hec=hec()))
    shipper_plugin = plugin_config(load_policy("default.json"), instance_id="gw-mismatch",
                                   audit={})
    with Gateway(plugin=plugin, shipper=True, shipper_plugin=shipper_plugin) as gw:
        send(gw, N, "mismatch")
        records = gw.records(N)
        # The idle shipper does not take the policy_change record for itself: a worker ships it.
        changes = wait_for(lambda: [e for e in gw.hec("/_events")
                                    if e["event"].get("record_type") == "policy_change"], timeout=10)
        stats = gw.stats()
        out = gw.envoy.output()
    assert changes, "the policy_change record"
    assert {r["request_id"] for r in records} >= {f"mismatch-{i}" for i in range(N)}
    assert stats.get("wasmcustom.policy_gateway.records.forwarded", 0) == 0, stats
    assert stats["wasmcustom.policy_gateway.sink.splunk_hec.delivered"] >= N, stats
    assert "does not register the queue" in out, out[-3000:]


def test_workers_whose_audit_configuration_differs_ship_their_own():
    """A shipper with sinks, but not the filter's (another token: a rotation the bootstrap
    extension, never reloaded, did not see): the workers do not hand it their records."""
    plugin = plugin_config(load_policy("default.json"), instance_id="gw-mismatch",
                           audit=audit(splunk_hec=hec()))
    theirs = audit(splunk_hec=hec())
    theirs["splunk_hec"]["token"] = "stale-token"
    shipper_plugin = plugin_config(load_policy("default.json"), instance_id="gw-mismatch",
                                   audit=theirs)
    with Gateway(plugin=plugin, shipper=True, shipper_plugin=shipper_plugin) as gw:
        send(gw, N, "rotated")
        records = gw.records(N)
        stats = gw.stats()
        out = gw.envoy.output()
    assert {r["request_id"] for r in records} >= {f"rotated-{i}" for i in range(N)}
    assert stats.get("wasmcustom.policy_gateway.records.forwarded", 0) == 0, stats
    assert stats.get("wasmcustom.policy_gateway.shipper.config_mismatch", 0) >= 2, stats
    assert out.count("delivers with another audit configuration") >= 2, out[-3000:]


def test_a_healthy_shipper_is_not_taken_over():
    """Well past three times vm_stale_ms, a shipper that ticks keeps every worker forwarding."""
    plugin = plugin_config(load_policy("default.json"), instance_id="gw-healthy", audit={
        "flush_interval_ms": 100, "vm_stale_ms": 1000, "splunk_hec": hec()})
    with Gateway(plugin=plugin, shipper=True) as gw:
        send(gw, 4, "early")
        time.sleep(4.5)
        send(gw, 4, "late")
        records = gw.records(8)
        stats = gw.stats()
        out = gw.envoy.output()
    assert {r["request_id"] for r in records} >= {f"{p}-{i}" for p in ("early", "late") for i in range(4)}
    assert "took over" not in out, out[-3000:]
    assert stats["wasmcustom.policy_gateway.records.forwarded"] == \
        stats["wasmcustom.policy_gateway.records.relayed"] >= 8, stats


def request(conn, request_id, headers=None):
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]})
    h = {"content-type": "application/json", "x-request-id": request_id}
    h.update(headers or {})
    try:
        conn.request("POST", "/v1/chat/completions", body=body, headers=h)
        r = conn.getresponse()
        r.read()
        return r.status
    except (OSError, http.client.HTTPException):
        return None


def test_a_worker_vm_torn_down_with_records_not_yet_shipped_loses_none():
    """tests/e2e/test_vm_restart.py without the shipper: there the dead VM's ten records are
    lost (and reported in a gap record). With it, they were in the host's queue."""
    assert os.path.exists(FAULT_WASM), "run through `make test-e2e` (it builds make wasm-fault)"
    plugin = plugin_config(load_policy("default.json"), instance_id="gw-restart", audit={
        "flush_interval_ms": 5000, "vm_stale_ms": 2000, "splunk_hec": hec()})
    with Gateway(plugin=plugin, wasm=FAULT_WASM, shipper=True) as gw:
        doomed = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        ok = [f"doomed-{i}" for i in range(10) if request(doomed, f"doomed-{i}") == 200]
        assert len(ok) == 10
        request(doomed, "trap", {"x-policy-gateway-fault": "trap"})
        doomed.close()
        assert wait_for(lambda: "fault injection: trapping this VM" in gw.envoy.output(), 5)
        time.sleep(1.5)
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        assert request(conn, "after-0") == 200, "the worker has a new VM"
        conn.close()

        def delivered():
            return {e["event"].get("request_id") for e in gw.hec("/_events")
                    if e["event"].get("record_type") == "decision"}

        assert wait_for(lambda: set(ok) | {"after-0"} <= delivered(), timeout=30), delivered()
        # Past the dead VM's staleness: no VM found anything of it lost.
        time.sleep(3)
        events = [e["event"] for e in gw.hec("/_events")]
        stats = gw.stats()
        output = gw.envoy.output()
    assert not [e for e in events if e.get("record_type") == "gap"], "nothing lost"
    assert stats.get("wasmcustom.policy_gateway.records.dropped", 0) == 0, stats
    # Fewer than 16 records: they were still the dead VM's pending copy, not yet in the queue.
    assert "records it had not handed to the audit shipper: taken over" in output, output[-3000:]


def test_workers_take_over_from_a_dead_shipper_and_lose_nothing_silently():
    """The shipper traps (a test-only hook: it takes the trap request's record in, then dies).
    Envoy never restarts a singleton and keeps its queue, so workers hand records into it until
    the shipper's heartbeat is stale; then they ship their own, drain what was handed over, and
    one of them reports what the dead shipper held as a gap record it delivers itself."""
    assert os.path.exists(FAULT_WASM), "run through `make test-e2e` (it builds make wasm-fault)"
    plugin = plugin_config(load_policy("default.json"), instance_id="gw-dead-shipper", audit={
        "flush_interval_ms": 5000, "vm_stale_ms": 1000, "splunk_hec": hec()})
    with Gateway(plugin=plugin, wasm=FAULT_WASM, shipper=True) as gw:
        status, _, _ = gw.chat("hello", headers={"x-request-id": "policy-gateway-fault-trap-shipper"})
        assert status == 200
        assert wait_for(lambda: "trapping the audit shipper" in gw.envoy.output(), 10), \
            (gw.stats(), gw.envoy.output()[-1500:])
        # Handed to the dead shipper's queue (its heartbeat is not stale yet), or shipped by
        # the workers once it is: delivered either way.
        send(gw, N, "orphaned")

        def events():
            return [e["event"] for e in gw.hec("/_events")]

        want = {f"orphaned-{i}" for i in range(N)}
        assert wait_for(lambda: want <= {e.get("request_id") for e in events()}, timeout=40), \
            gw.envoy.output()[-3000:]
        gaps = wait_for(lambda: [e for e in events() if e.get("record_type") == "gap"], timeout=20)
        events_seen = events()
        stats = gw.stats()
        out = gw.envoy.output()
    assert "took over" in out, out[-3000:]
    # The trap request's record was in the dead shipper only: reported lost, never silently.
    # Named in the worker chain it was in (the shipper's ledger keeps a range per chain), not
    # in the shipper's: either the reporting worker's own chain (the worker that handled the
    # trap request took over) or another worker's chain with records of its own.
    worker_chains = {e["chain"]["id"] for e in events_seen
                     if e.get("record_type") not in ("gap", "checkpoint") and "chain" in e}
    assert any(g["cause"] == "vm_failed" and g["dropped"] >= 1 and g.get("from_seq", 0) >= 1
               and (g.get("lost_chain") == g["chain"]["id"] or g.get("lost_chain") in worker_chains)
               for g in gaps), gaps
    assert stats["wasmcustom.policy_gateway.records.dropped"] >= 1, stats
