"""Starts the real pieces of an end-to-end run as child processes and reaps them: the mock
LLM upstream, the strict HEC receiver and a real Envoy (from the project's virtualenv) with
the built filter, configured from envoy/envoy.yaml with ports, policy and plugin settings
swapped in. Used by the tests and by `make demo`."""

import base64
import copy
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RECEIVERS = os.path.join(ROOT, "tests", "e2e", "receivers")
# `make wasm`: release build + wasm-opt; POLICY_GATEWAY_WASM runs the suite against another build.
WASM = os.environ.get("POLICY_GATEWAY_WASM", os.path.join(ROOT, "target", "policy_gateway.wasm"))
# `make wasm-fault`: TEST ONLY, the filter plus a header that traps the VM (src/filter/fault.rs)
FAULT_WASM = os.path.join(ROOT, "target", "policy_gateway_fault.wasm")
ENVOY = os.environ.get("ENVOY_BIN", os.path.join(ROOT, ".venv", "bin", "envoy"))
HEC_TOKEN = "00000000-0000-4000-8000-000000000001"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except urllib.error.HTTPError:
            return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout}s")


class Process:
    def __init__(self, args, name, log_dir):
        self.name = name
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def stop(self):
        """Stops the child and everything it started (its own process group)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def plugin_config(policy, **overrides):
    """The plugin configuration from envoy/envoy.yaml with the policy and settings replaced."""
    base = json.loads(_filter_config(load_envoy_yaml())["configuration"]["value"])
    base["policy"] = policy
    for key, value in overrides.items():
        base[key] = value
    return base


def load_envoy_yaml():
    with open(os.path.join(ROOT, "envoy", "envoy.yaml")) as f:
        return yaml.safe_load(f)


def _jwt_provider(cfg):
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    jwt = next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.jwt_authn")
    return jwt["typed_config"]["providers"]["gateway"]


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def identity(user=None, project=None, **claims):
    """The header a client of envoy/envoy.yaml sends to say who it is: an HS256 JWT signed
    with the demo key of the jwt_authn filter there (which turns `sub` and `project` into the
    trusted x-user-id and x-project-id headers). No user and no project: no header."""
    if user is None and project is None and not claims:
        return {}
    provider = _jwt_provider(load_envoy_yaml())
    key = json.loads(provider["local_jwks"]["inline_string"])["keys"][0]
    secret = base64.urlsafe_b64decode(key["k"] + "=" * (-len(key["k"]) % 4))
    payload = {"iss": provider["issuer"], "exp": int(time.time()) + 3600, **claims}
    if user is not None:
        payload["sub"] = user
    if project is not None:
        payload["project"] = project
    head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key["kid"]}).encode())
    body = _b64url(json.dumps(payload).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return {provider["from_headers"][0]["name"]: f"{head}.{body}.{_b64url(sig)}"}


def _filter_config(cfg):
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    wasm = next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.wasm")
    return wasm["typed_config"]["config"]


class Gateway:
    """Envoy + mock LLM + HEC receiver on free ports."""

    def __init__(self, policy=None, plugin=None, hec=True, upstream=True, raw_plugin_value=None,
                 filters_before=None, route_metadata=None, cluster_options=None, failure_policy=None,
                 wasm=None, cluster_ports=None, strip_identity=True, shipper=None,
                 shipper_plugin=None):
        """`wasm`: another module (the test-only fault-injection build, for the shipper
        too); `shipper` false: without envoy.yaml's audit shipper (each worker ships its own
        records, the fallback); `shipper_plugin`: the shipper's own plugin configuration
        (else the filter's); `shipper` None: on, unless POLICY_GATEWAY_SHIPPER=0 (to run a
        suite in the per-worker mode too); `cluster_ports`:
        ports for named clusters (e.g. two gateways writing to one S3 server);
        `cluster_options`: fields merged into named clusters (HTTP/2 upstreams)."""
        self.dir = tempfile.mkdtemp(prefix="pg-e2e-")
        self.port, self.admin, self.llm_port, self.hec_port = (free_port() for _ in range(4))
        self.procs = []
        if upstream:
            self.procs.append(Process([sys.executable, os.path.join(RECEIVERS, "mock_llm.py"),
                                       str(self.llm_port)], "mock_llm", self.dir))
        if hec:
            self.procs.append(Process([sys.executable, os.path.join(RECEIVERS, "hec_receiver.py"),
                                       str(self.hec_port)], "hec", self.dir))
        cfg = load_envoy_yaml()
        cfg["admin"]["address"]["socket_address"]["port_value"] = self.admin
        cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = self.port
        # Every cluster gets a port of this run: the mock LLM, the HEC receiver, and free ports
        # for the other sinks (tests start their receivers on self.cluster_ports[name]).
        self.cluster_ports = {"llm_upstream": self.llm_port, "splunk_hec": self.hec_port,
                              **(cluster_ports or {})}
        for cluster in cfg["static_resources"]["clusters"]:
            port = self.cluster_ports.setdefault(cluster["name"], free_port())
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
                "socket_address"]["port_value"] = port
            cluster.update((cluster_options or {}).get(cluster["name"], {}))
        if route_metadata:
            hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            hcm["route_config"]["virtual_hosts"][0]["routes"][0]["metadata"] = {"filter_metadata": route_metadata}
        if not strip_identity:
            # For tests that compare with `simulate`, which sees what the client sent.
            hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            hcm.pop("early_header_mutation_extensions", None)
            # jwt_authn also clears the headers it would set from a token.
            hcm["http_filters"] = [f for f in hcm["http_filters"]
                                   if f["name"] != "envoy.filters.http.jwt_authn"]
        if filters_before:
            hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            hcm["http_filters"][0:0] = filters_before
        if shipper is None:
            shipper = os.environ.get("POLICY_GATEWAY_SHIPPER", "1") != "0"
        if not shipper:
            cfg.pop("bootstrap_extensions", None)
        # The shipper's vm_config and configuration are the filter's (YAML anchors in
        # envoy.yaml load as the same objects), so what is set below applies to both.
        fc = _filter_config(cfg)
        fc["vm_config"]["code"]["local"]["filename"] = wasm or WASM
        if failure_policy:
            fc["failure_policy"] = failure_policy
        if raw_plugin_value is not None:
            fc["configuration"]["value"] = raw_plugin_value
        else:
            pc = plugin or plugin_config(policy)
            if "audit" in pc and "splunk_hec" in pc["audit"]:
                pc = copy.deepcopy(pc)
                pc["audit"]["splunk_hec"]["authority"] = f"127.0.0.1:{self.hec_port}"
            fc["configuration"]["value"] = json.dumps(pc)
        if shipper and shipper_plugin is not None:
            svc = cfg["bootstrap_extensions"][0]["typed_config"]["config"]
            svc["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                    "value": json.dumps(shipper_plugin)}
        self.config_path = os.path.join(self.dir, "envoy.json")
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)
        for p in self.procs:
            wait_http(f"http://127.0.0.1:{self.llm_port if p.name == 'mock_llm' else self.hec_port}/_none", 10)
        self.envoy = Process([ENVOY, "-c", self.config_path, "--concurrency", "2",
                              "--log-level", "warn", "--component-log-level", "wasm:info",
                              "--base-id", str(self.admin)], "envoy", self.dir)
        self.procs.append(self.envoy)

    def start_receiver(self, cluster, script, *args):
        """Starts tests/e2e/receivers/<script> on the port of `cluster` and waits for it."""
        port = self.cluster_ports[cluster]
        proc = Process([sys.executable, os.path.join(RECEIVERS, script), str(port), *map(str, args)],
                       cluster, self.dir)
        self.procs.insert(0, proc)
        wait_http(f"http://127.0.0.1:{port}/_none", 10)
        return port

    def wait_ready(self, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.envoy.proc.poll() is not None:
                raise RuntimeError("envoy exited:\n" + self.envoy.output()[-3000:])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise TimeoutError("envoy not ready:\n" + self.envoy.output()[-3000:])

    def stop(self):
        for p in reversed(self.procs):
            p.stop()

    def __enter__(self):
        return self.wait_ready()

    def __exit__(self, *exc):
        self.stop()

    # --- clients -----------------------------------------------------------------------

    def post(self, path, body, headers=None, timeout=10):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h = {"content-type": "application/json"}
        h.update(headers or {})
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, headers=h,
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers.items()), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers.items()), e.read()

    def chat(self, text, user="alice", model="gpt-4o", headers=None, project=None, **extra):
        body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
        h = identity(user or None, project)
        h.update(headers or {})
        return self.post("/v1/chat/completions", body, h)

    def upstream_received(self):
        return _get_json(f"http://127.0.0.1:{self.llm_port}/_received")

    def hec(self, path):
        return _get_json(f"http://127.0.0.1:{self.hec_port}{path}")

    def hec_control(self, path, body):
        req = urllib.request.Request(f"http://127.0.0.1:{self.hec_port}{path}",
                                     data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.read()

    def records(self, count, timeout=15.0):
        """Waits until the receiver holds at least `count` decision records; returns them
        (`policy_change` records are left out)."""
        deadline = time.time() + timeout
        events = []
        while time.time() < deadline:
            events = [e["event"] for e in self.hec("/_events")
                      if e["event"].get("record_type") == "decision"]
            if len(events) >= count:
                return events
            time.sleep(0.1)
        raise TimeoutError(f"expected {count} records, got {len(events)}")

    def record_for(self, request_id, timeout=15.0):
        """The decision record of one request, once the receiver has it."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for e in self.hec("/_events"):
                if e["event"].get("request_id") == request_id:
                    return e["event"]
            time.sleep(0.1)
        raise TimeoutError(f"no record for {request_id}")

    def stats(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/stats?filter=policy_gateway",
                                    timeout=5) as r:
            out = {}
            for line in r.read().decode().splitlines():
                name, _, value = line.partition(": ")
                try:
                    out[name] = int(value)
                except ValueError:
                    pass
            return out


def _get_json(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())
