"""The peer's harness, pii-leak-benchmark 0.6.0 (PyPI, Apache-2.0), through the real Envoy with
the shipped policy that redacts (policies/redact.json): the harness starts its own capture
server as our upstream, sends valid synthetic values and reads what reached the capture and
what came back to the client.

- `pii-leak-benchmark ci` for both profiles (`pii-v1`: e-mail, US SSN in the 900-999 area,
  card; `pii-secrets-v1`: the same plus AWS, GitHub and Slack specimens) must say CLEAN.
  `--duty anonymize`: the gateway masks one way, it does not put the caller's values back
  (response fidelity belongs to the pseudonymisation issue).
- `pii-leak-benchmark-v2 --exhaustive-splits`: values the upstream injects into a streamed
  response, whole and cut at every internal offset, in the documented and in non-standard
  fields; none may reach the client, and nothing may leak on the request path.

What it covers and what not: README.md, "The peer's leak harness"."""

import json
import os
import subprocess

import pytest

from conftest import load_policy
from harness import ROOT, Gateway, free_port

BIN = os.path.join(ROOT, ".venv", "bin")
# Each harness run is a few hundred requests through Envoy; a hung gateway must fail, not stall.
RUN_TIMEOUT = 900


@pytest.fixture(scope="module")
def gateway():
    capture = free_port()
    with Gateway(policy=load_policy("redact.json"), upstream=False,
                 cluster_ports={"llm_upstream": capture}) as gw:
        gw.capture_port = capture
        yield gw


def run(args, cwd):
    return subprocess.run([os.path.join(BIN, args[0]), *args[1:]], cwd=cwd, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT, env={**os.environ, "NO_COLOR": "1"})


@pytest.mark.parametrize("profile", ["pii-v1", "pii-secrets-v1"])
def test_ci_is_clean(gateway, tmp_path, profile):
    out = tmp_path / profile
    r = run(["pii-leak-benchmark", "ci", "--target-base-url", f"http://127.0.0.1:{gateway.port}/v1",
             "--capture-port", str(gateway.capture_port), "--profile", profile,
             "--duty", "anonymize", "--out", str(out)], tmp_path)
    current = json.loads((out / "current.json").read_text())
    detail = f"{r.stdout[-4000:]}\n{r.stderr[-2000:]}"
    assert current["verdict"] == "CLEAN", detail
    assert r.returncode == 0, detail
    # Every value type was measured and contained, none skipped.
    assert current["entities"] and set(current["entities"].values()) == {"contained"}, current["entities"]
    if profile == "pii-secrets-v1":
        assert {"AWS_ACCESS_KEY_ID", "GITHUB_TOKEN", "SLACK_TOKEN"} <= set(current["entities"])


def test_v2_response_split_exhaustive(gateway, tmp_path):
    summary = tmp_path / "summary.json"
    r = run(["pii-leak-benchmark-v2", "--out", str(tmp_path / "v2"), "--only", "policy-gateway",
             "--gateway-url", f"http://127.0.0.1:{gateway.port}/v1/chat/completions",
             "--upstream-port", str(gateway.capture_port), "--exhaustive-splits",
             "--json-out", str(summary)], tmp_path)
    detail = f"{r.stdout[-4000:]}\n{r.stderr[-2000:]}"
    assert r.returncode == 0, detail
    (row,) = json.loads(summary.read_text())["rows"]
    # Scored, not skipped: a refused or unanswered case is inconclusive and out of the rates.
    assert row["cases_applicable"] > 0 and row["inconclusive"] == 0, (row, detail)
    assert row["leak_single_chunk"] == 0, (row, detail)
    assert row["leak_adversarial"] == 0, (row, detail)
    assert row["request_path_leak"] == [], (row, detail)
