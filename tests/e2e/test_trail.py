"""The tamper-evident trail through a real Envoy: records exported from real sinks (Splunk HEC
receiver, Elasticsearch receiver, S3 via s3s-fs) verify intact with `policy-gateway trail
verify`; records deleted, edited, duplicated and reordered in each export are found; OCSF
events validate against the OCSF 1.8.0 schema (ocsf-json-schema from PyPI) and verify too."""

import base64
import gzip
import json
import os
import subprocess

from conftest import load_policy
from harness import Gateway, plugin_config
from test_sinks import CLI, audit, elasticsearch, get, hec, s3_config, send, start_s3, stored_records, wait_for

KEY = bytes(range(32))
N = 12


def trail(**sinks):
    return audit(trail={"checkpoint_records": 5, "checkpoint_interval_ms": 1000, "key_id": "k1",
                        "hmac_key": base64.b64encode(KEY).decode()}, **sinks)


def verify(path, workdir, *args):
    key_file = os.path.join(workdir, "trail.key")
    with open(key_file, "w") as f:
        f.write(base64.b64encode(KEY).decode() + "\n")
    out = subprocess.run([CLI, "trail", "verify", "--format", "json", "--key", f"k1={key_file}", *args, path],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


def findings(report, kind):
    return [(f["from_seq"], f["to_seq"]) for c in report["chains"] for f in c["findings"] if f["finding"] == kind]


def chain_of(report):
    """The longest chain of a report (each worker VM has its own)."""
    return max(report["chains"], key=lambda c: c["records"])


def settled(records, decisions):
    """At least `decisions` decision records, and every chain ends with a checkpoint (the
    checkpoint interval passed after the last request)."""
    last = {}
    for r in records:
        c = r.get("chain") or {}
        if c and c["seq"] > last.get(c["id"], (0, None))[0]:
            last[c["id"]] = (c["seq"], r.get("record_type"))
    return sum(1 for r in records if r.get("record_type") == "decision") >= decisions and \
        all(t == "checkpoint" for _, t in last.values())


def seq(r):
    return r["chain"]["seq"]


def check_tampering(kind, export, write, workdir, sink):
    """`export`: the sink's records as (original line object, record) pairs in export order;
    `write(items, path)` writes them as the sink's export. Checks the intact export, then each
    kind of tampering."""
    records = [r for _, r in export]
    path = os.path.join(workdir, f"{kind}-intact")
    write([o for o, _ in export], path)
    code, rep = verify(path, workdir, "--sink", sink)
    assert code == 0 and not rep["tampered"], rep
    c = chain_of(rep)
    assert c["checkpoints_verified"] >= 2 and c["checkpoints_failed"] == 0, c
    assert c["signed_through"] == c["last_seq"], c
    assert c["missing"] == 0 and c["altered"] == 0, c
    # Two decision records in the middle of the longest chain.
    decisions = sorted((i for i, r in enumerate(records)
                        if r.get("record_type") == "decision" and r["chain"]["id"] == c["chain"]),
                       key=lambda i: seq(records[i]))
    a, b = decisions[len(decisions) // 2], decisions[len(decisions) // 2 + 1]

    # Deleted: a missing sequence number no gap record explains.
    items = [o for i, (o, _) in enumerate(export) if i != a]
    write(items, os.path.join(workdir, f"{kind}-deleted"))
    code, rep = verify(os.path.join(workdir, f"{kind}-deleted"), workdir, "--sink", sink)
    assert code == 1 and rep["tampered"]
    assert (seq(records[a]), seq(records[a])) in findings(rep, "missing"), rep

    # Edited: an allow made a refusal; its hash no longer matches the next record's prev.
    items = [o for o, _ in export]
    items[a] = edit(items[a], lambda r: r.update(decision="refuse", reason_code="SECRET_DETECTED"))
    write(items, os.path.join(workdir, f"{kind}-edited"))
    code, rep = verify(os.path.join(workdir, f"{kind}-edited"), workdir, "--sink", sink)
    assert code == 1 and (seq(records[a]), seq(records[a])) in findings(rep, "altered"), rep

    # Duplicated (at-least-once delivery): reported, not tampering.
    items = [o for o, _ in export] + [export[a][0]]
    write(items, os.path.join(workdir, f"{kind}-duplicated"))
    code, rep = verify(os.path.join(workdir, f"{kind}-duplicated"), workdir, "--sink", sink)
    assert code == 0 and (seq(records[a]), seq(records[a])) in findings(rep, "duplicate"), rep

    # Reordered lines: reported, the chain restores the order; reordered by swapping chain
    # positions (to rewrite history): both records altered.
    items = [o for o, _ in export]
    items[a], items[b] = items[b], items[a]
    if seq(records[a]) < seq(records[b]) and a < b:
        write(items, os.path.join(workdir, f"{kind}-reordered"))
        code, rep = verify(os.path.join(workdir, f"{kind}-reordered"), workdir, "--sink", sink)
        assert code == 0 and findings(rep, "reordered"), rep
    items = [o for o, _ in export]
    ca, cb = records[a]["chain"], records[b]["chain"]
    items[a] = edit(items[a], lambda r: r.update(chain=cb))
    items[b] = edit(items[b], lambda r: r.update(chain=ca))
    write(items, os.path.join(workdir, f"{kind}-swapped"))
    code, rep = verify(os.path.join(workdir, f"{kind}-swapped"), workdir, "--sink", sink)
    assert code == 1 and len(findings(rep, "altered")) >= 2, rep


def edit(item, change):
    """A copy of an exported item with its record changed, in the item's own shape."""
    item = json.loads(json.dumps(item))
    for holder, key in (("event", None), ("_source", None), (None, None)):
        target = item.get(holder) if holder else item
        if isinstance(target, dict) and "record_id" in target:
            change(target)
            return item
    raise AssertionError(f"no record in {item}")


def write_jsonl(items, path):
    with open(path, "w") as f:
        for i in items:
            f.write(json.dumps(i) + "\n")


def write_json_array(items, path):
    with open(path, "w") as f:
        json.dump(items, f)


def write_s3(items, path):
    os.makedirs(os.path.join(path, "dt=x", "hour=y"), exist_ok=True)
    with gzip.open(os.path.join(path, "dt=x", "hour=y", "object.jsonl.gz"), "wt") as g:
        for i in items:
            g.write(json.dumps(i) + "\n")


def chained(items, unwrap):
    return [(o, unwrap(o)) for o in items if "chain" in unwrap(o)]


def test_verify_finds_tampering_in_real_hec_elasticsearch_and_s3_exports(tmp_path):
    plugin = plugin_config(load_policy("default.json"), instance_id="gw-trail",
                           audit=trail(splunk_hec=hec(), elasticsearch=elasticsearch(), s3=s3_config()))
    with Gateway(plugin=plugin) as gw:
        es = gw.start_receiver("elasticsearch", "elasticsearch_receiver.py")
        bucket = start_s3(gw)
        send(gw, N, "trail")
        assert wait_for(lambda: settled([e["event"] for e in gw.hec("/_events")], N), timeout=30)
        assert wait_for(lambda: settled([d["_source"] for d in get(es, "/_events")], N), timeout=30)
        assert wait_for(lambda: settled([r for _, r in stored_records(bucket)], N), timeout=30)
        hec_items = gw.hec("/_events")
        es_items = get(es, "/_events")
        s3_items = [r for _, r in stored_records(bucket)]
    # The S3 objects as the bucket holds them verify in place.
    code, rep = verify(bucket, str(tmp_path), "--sink", "s3")
    assert code == 0, rep
    check_tampering("hec", chained(hec_items, lambda o: o["event"]), write_jsonl, str(tmp_path), "splunk_hec")
    check_tampering("es", chained(es_items, lambda o: o["_source"]), write_json_array, str(tmp_path), "elasticsearch")
    check_tampering("s3", chained(s3_items, lambda o: o), write_s3, str(tmp_path), "s3")


def test_a_sink_that_drops_a_batch_leaves_a_chained_gap_record_naming_the_range(tmp_path):
    plugin = plugin_config(load_policy("default.json"), instance_id="gw-trail",
                           audit=trail(splunk_hec=hec(), s3=s3_config()))
    with Gateway(plugin=plugin) as gw:
        bucket = start_s3(gw)
        send(gw, 3, "before")
        # Every chain so far delivered to its checkpoint: with the audit shipper one batch
        # holds records of every chain, and the refused one must not take a chain's last
        # checkpoint (the chain would end in the lost range, not hold it).
        assert wait_for(lambda: settled([e["event"] for e in gw.hec("/_events")], 3), timeout=30)
        # HEC answers 400 to the next post: that batch is dropped for good.
        gw.hec_control("/_fail", {"status": 400, "count": 1})
        send(gw, 2, "lost")
        # Enough that every worker's chain goes on past the lost range (fresh connections).
        send(gw, 10, "after")
        gaps = wait_for(lambda: [e["event"] for e in gw.hec("/_events") if e["event"].get("record_type") == "gap"],
                        timeout=30)
        assert gaps, gw.hec("/_requests")
        assert wait_for(lambda: [r for _, r in stored_records(bucket) if r.get("record_type") == "gap"], timeout=30)
        # Every chain signed to its end (the rejected batch may hold "after" records too: at
        # least the 3 before): the lost records and the gap record are then inside a chain's
        # exported range, not after its last record present.
        assert wait_for(lambda: settled([e["event"] for e in gw.hec("/_events")], 3), timeout=30)
        hec_items = gw.hec("/_events")
    gap = gaps[0]
    assert gap["sink"] == "splunk_hec" and gap["cause"] == "rejected", gap
    assert gap["to_seq"] >= gap["from_seq"] >= 1
    path = os.path.join(str(tmp_path), "hec.jsonl")
    write_jsonl(hec_items, path)
    code, rep = verify(path, str(tmp_path), "--sink", "splunk_hec")
    assert code == 0, rep
    assert findings(rep, "missing_explained"), rep
    # S3 has those records: its export has no missing ones, and the same gap record.
    code, rep = verify(bucket, str(tmp_path), "--sink", "s3")
    assert code == 0 and not findings(rep, "missing_explained"), rep
    # Without the gap record, the same export is tampering where the lost range is inside its
    # chain's present records (a chain's lost tail is seen only through the gap record: README,
    # "What a chain cannot show").
    last = {}
    for e in hec_items:
        c = e["event"].get("chain") or {}
        last[c.get("id")] = max(last.get(c.get("id"), 0), c.get("seq", 0))
    inside = [g for g in gaps if g["to_seq"] < last.get(g["lost_chain"], 0)]
    write_jsonl([e for e in hec_items if e["event"].get("record_type") != "gap"], path)
    code, rep = verify(path, str(tmp_path), "--sink", "splunk_hec")
    if inside:
        assert code == 1 and findings(rep, "missing"), rep


def ocsf_validator():
    from jsonschema import Draft202012Validator
    from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version="1.8.0"))
    cache = {}

    def validate(event):
        # The class's schema with the profiles the event names (the schema has no others).
        key = (event["class_uid"], tuple(event["metadata"].get("profiles", [])))
        if key not in cache:
            name = schema.lookup_class_name_from_uid(class_uid=key[0])
            cache[key] = Draft202012Validator(schema.get_class_schema(class_name=name, profiles=list(key[1])))
        errors = sorted(cache[key].iter_errors(event), key=str)
        assert not errors, f"{event['class_uid']}: {[e.message for e in errors][:5]}"
    return validate


def test_ocsf_events_validate_against_the_schema_and_verify(tmp_path):
    plugin = plugin_config(load_policy("default.json"), instance_id="gw-ocsf",
                           audit=trail(splunk_hec=dict(hec(), format="ocsf"), s3=dict(s3_config(), format="ocsf")))
    with Gateway(plugin=plugin) as gw:
        bucket = start_s3(gw)
        status, _, _ = gw.chat("My card is 4111 1111 1111 1111", headers={"x-request-id": "ocsf-redact"})
        assert status == 200
        status, _, _ = gw.chat("key AKIAIOSFODNN7EXAMPLE", headers={"x-request-id": "ocsf-refuse"})
        assert status == 403
        send(gw, 6, "ocsf")
        inner = lambda events: [json.loads(e["raw_data"]) for e in events]
        assert wait_for(lambda: settled(inner([e["event"] for e in gw.hec("/_events")]), 8), timeout=30)
        assert wait_for(lambda: settled(inner([r for _, r in stored_records(bucket)]), 8), timeout=30)
        hec_items = gw.hec("/_events")
        s3_events = [r for _, r in stored_records(bucket)]
    validate = ocsf_validator()
    events = [e["event"] for e in hec_items] + s3_events
    assert {e["class_uid"] for e in events} == {2006, 3004, 1008}, {e["class_uid"] for e in events}
    for e in events:
        validate(e)
    refused = [e for e in events if e["class_uid"] == 2006 and e["metadata"].get("correlation_uid") == "ocsf-refuse"]
    assert refused and refused[0]["disposition_id"] == 2 and refused[0]["action_id"] == 2
    # The readers take OCSF exports: verify, trail and chargeback.
    path = os.path.join(str(tmp_path), "hec-ocsf.jsonl")
    write_jsonl(hec_items, path)
    for export, sink in ((path, "splunk_hec"), (bucket, "s3")):
        code, rep = verify(export, str(tmp_path), "--sink", sink)
        assert code == 0 and chain_of(rep)["checkpoints_verified"] >= 1, rep
    out = subprocess.run([CLI, "trail", "--format", "csv", "--decision", "refuse", path],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "ocsf-refuse" in out.stdout, out.stderr
    out = subprocess.run([CLI, "chargeback", "--by", "model", bucket], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()[:2]
    got = dict(zip(header.split(","), row.split(",")))
    assert (got["model"], got["requests"], got["refused"]) == ("gpt-4o", "8", "1"), out.stdout
