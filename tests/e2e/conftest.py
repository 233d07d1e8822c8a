import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from harness import ROOT, WASM, ENVOY, Gateway, plugin_config  # noqa: E402


def pytest_sessionstart(session):
    missing = [p for p in (WASM, ENVOY) if not os.path.exists(p)]
    if missing:
        raise pytest.UsageError(f"missing {missing}: run the tests through `make test-e2e`")


def load_policy(name):
    with open(os.path.join(ROOT, "policies", name)) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def default_gateway():
    with Gateway(plugin=plugin_config(load_policy("default.json"), instance_id="gw-test",
                                      audit={"flush_interval_ms": 100,
                                             "splunk_hec": {"cluster": "splunk_hec",
                                                            "authority": "set-by-harness",
                                                            "token": "00000000-0000-4000-8000-000000000001",
                                                            "index": "ai_audit"}})) as gw:
        yield gw
