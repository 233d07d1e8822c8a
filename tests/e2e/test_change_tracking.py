"""Policy change tracking through the real Envoy: a candidate policy evaluated in shadow beside
the active one, one `policy_change` record per configuration (not one per worker VM), and the
`policy-gateway` trail / chargeback / compare commands run over the records the HEC receiver
got, exactly as exported."""

import json
import os
import subprocess
import time

from conftest import load_policy
from harness import HEC_TOKEN, ROOT, Gateway, plugin_config

FAST_AUDIT = {"flush_interval_ms": 100, "splunk_hec": {
    "cluster": "splunk_hec", "authority": "set-by-harness", "token": HEC_TOKEN, "index": "ai_audit"}}
CLI = os.path.join(ROOT, "target", "release", "policy-gateway")


def events(gw, count, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = gw.hec("/_events")
        if len(got) >= count:
            return got
        time.sleep(0.1)
    raise TimeoutError(f"expected {count} events, got {len(gw.hec('/_events'))}")


def cli(*args):
    out = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def traffic(gw, tag):
    gw.chat("What is the capital of France?", user="alice", project="proj-a",
            headers={"x-request-id": f"{tag}-benign"})
    gw.chat("Launch checklist for Project Nightingale?", user="heidi", project="proj-b",
            headers={"x-request-id": f"{tag}-confidential"})
    gw.chat("Pay DE89 3704 0044 0532 0130 00 today", user="bob", project="proj-a",
            headers={"x-request-id": f"{tag}-iban"})
    gw.chat("My key is AKIAIOSFODNN7EXAMPLE", user="carol", project="proj-b",
            headers={"x-request-id": f"{tag}-secret"})


def test_candidate_shadow_decisions_policy_change_and_the_cli(tmp_path):
    v1, v2 = load_policy("default.json"), load_policy(os.path.join("examples", "default-v2.json"))
    with Gateway(plugin=plugin_config(v1, candidate_policy=v2, instance_id="gw-change",
                                      audit=FAST_AUDIT)) as gw:
        traffic(gw, "v1")
        first = events(gw, 5)
        time.sleep(0.5)
        first = gw.hec("/_events")
    changes = [e["event"] for e in first if e["event"]["record_type"] == "policy_change"]
    assert len(changes) == 1, changes
    change = changes[0]
    assert change["policy_id"] == "default@1" and change["candidate_policy_id"] == "default@2"
    assert change["previous_policy_id"] is None and len(change["policy_sha256"]) == 64
    assert change["rule_count"] == 10 and change["gateway"] == "gw-change"
    decisions = {e["event"]["request_id"]: e["event"] for e in first
                 if e["event"]["record_type"] == "decision"}
    conf = decisions["v1-confidential"]
    assert conf["decision"] == "escalate" and conf["enforced"] is True
    assert conf["candidate"] == {
        "policy_id": "default@2", "decision": "refuse", "reason_code": "CONFIDENTIAL_PROJECT_REFUSED",
        "triggered_categories": ["data.confidential"], "triggered_rules": ["confidential-projects"]}
    iban = decisions["v1-iban"]
    assert iban["triggered_rules"] == ["redact-personal-data"]
    assert iban["candidate"]["triggered_rules"] == ["redact-payment-cards"]
    assert decisions["v1-benign"]["candidate"]["decision"] == "allow"
    assert decisions["v1-secret"]["candidate"]["reason_code"] == "SECRET_DETECTED"

    # The candidate becomes the active policy: a second gateway enforces default@2.
    with Gateway(plugin=plugin_config(v2, instance_id="gw-change", audit=FAST_AUDIT)) as gw:
        traffic(gw, "v2")
        events(gw, 5)
        time.sleep(0.5)
        second = gw.hec("/_events")

    # What the HEC receiver got, as exported from Splunk: {"event": record} lines.
    export = tmp_path / "hec-export.json"
    export.write_text("".join(json.dumps(e) + "\n" for e in first + second))
    changes = cli("trail", "--type", "policy_change", str(export)).splitlines()
    assert [json.loads(c)["policy_id"] for c in changes] == ["default@1", "default@2"]
    refused = cli("trail", "--decision", "refuse", "--format", "csv", str(export)).splitlines()
    assert refused[0].startswith("timestamp,request_id,user,project,decision")
    assert sorted(r.split(",")[1] for r in refused[1:]) == ["v1-secret", "v2-confidential", "v2-secret"]
    heidi = [json.loads(line) for line in cli("trail", "--user", "heidi", str(export)).splitlines()]
    assert [r["decision"] for r in heidi] == ["escalate", "refuse"]
    csv = cli("chargeback", "--by", "project", str(export)).splitlines()
    assert csv[0] == "project,requests,refused,prompt_tokens,completion_tokens,total_tokens," \
                     "estimated_requests,estimated_tokens"
    rows = {r.split(",")[0]: r.split(",") for r in csv[1:]}
    # proj-a: benign + IBAN under both policies, all answered by the mock (20 + 5 tokens).
    assert rows["proj-a"][1:4] == ["4", "0", "80"]
    assert rows["proj-b"][1:3] == ["4", "3"]
    shadow = json.loads(cli("compare", "--candidate", "--format", "json", str(export)))
    assert shadow["records"] == 4
    moves = {(t["active"], t["candidate"]): t for t in shadow["transitions"]}
    assert moves[("escalate", "refuse")]["examples"] == ["v1-confidential"]
    assert moves[("redact", "redact")]["count"] == 1
    cmp = json.loads(cli("compare", "--format", "json", str(export)))
    assert cmp["before"]["policy_id"] == "default@1" and cmp["after"]["policy_id"] == "default@2"
    rate = {r["metric"]: r["change_points"] for r in cmp["rates_percent"]}
    assert rate["decision refuse"] == 25.0 and rate["decision escalate"] == -25.0
