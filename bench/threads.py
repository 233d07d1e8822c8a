#!/usr/bin/env python3
"""Where the audit's CPU goes, per Envoy thread: the main thread (where the audit shipper runs
and where every enqueue's wake-up lands) against the request worker.

Starts the upstream of `bench/run.py` and one gateway Envoy (`--concurrency 1`) per variant
(`shipper`: envoy.yaml as shipped; `per-worker`: without the shipper; `noaudit`: no audit
sink), drives each with wrk (1 KiB chat bodies, 8 connections), alternating the variants, and
reads utime+stime of each thread (/proc/<pid>/task/*/stat) around the measured run: CPU µs per
request by thread name (`envoy` is the main thread, `wrk:worker_0` the request worker). With
`--module` the gateway runs another build (a scratch variant, or the timing build, whose
callback counters are then printed per request too); a variant may name its own build
(`shipper@/tmp/before.wasm`), so two builds alternate in one run.

Usage: .venv/bin/python bench/threads.py [--variants shipper,per-worker,noaudit] [--reps 3]
       [--duration 5] [--module target/policy_gateway_timing.wasm]
       [--variants shipper@/tmp/before.wasm,shipper,per-worker]
       [--sink-delay-ms 20 --audit '{"batch_max_records": 10}' --connections 32]
With `--sink-delay-ms` the HEC route answers each batch that much later (Envoy's fault
filter): with `--audit` settings it measures the records/s one call in flight per sink delivers.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the benchmark's Envoy configs, wrk driver and process handling)


def thread_cpu(pid):
    """{thread name: CPU seconds} of a process, threads of the same name summed."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                head, rest = f.read().rsplit(")", 1)
        except OSError:
            continue
        name = head.split("(", 1)[1]
        fields = rest.split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / run.CLK_TCK
    return out


def delay_hec(cfg, ms):
    """The upstream's HEC route answers `ms` later (fault filter, on that route only)."""
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    fault = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
    hcm["http_filters"].insert(0, {"name": "envoy.filters.http.fault",
                                   "typed_config": {"@type": fault}})
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]
    assert route["match"]["prefix"] == "/services/collector"
    route["typed_per_filter_config"] = {"envoy.filters.http.fault": {
        "@type": fault, "delay": {"fixed_delay": f"{ms / 1000:.3f}s",
                                  "percentage": {"numerator": 100}}}}
    return cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="shipper,per-worker,noaudit")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--module", default="", help="the gateway's .wasm (default: make wasm's)")
    ap.add_argument("--sink-delay-ms", type=int, default=0)
    ap.add_argument("--audit", default="{}", help="JSON of audit settings to override")
    args = ap.parse_args()
    module = os.path.abspath(args.module) if args.module else run.WASM
    wrk, envoy = run.ensure_wrk(), run.envoy_binary()
    tmp = tempfile.mkdtemp(prefix="pg-threads-")
    fp = run.harness.free_port
    try:
        up_port, up_admin = fp(), fp()
        upstream = run.upstream_config(up_port, up_admin)
        if args.sink_delay_ms:
            delay_hec(upstream, args.sink_delay_ms)
        run.start_envoy(envoy, upstream, "upstream", tmp, up_admin)
        variants = [v.strip() for v in args.variants.split(",") if v.strip()]
        proxies = {}
        for v in variants:
            kind, _, own = v.partition("@")
            run.SHIPPER["on"] = kind == "shipper"
            port, admin = fp(), fp()
            cfg = run.proxy_config(True, port, admin, up_port, up_port, audit=kind != "noaudit")
            fc = run.harness._filter_config(cfg)
            fc["vm_config"]["code"]["local"]["filename"] = os.path.abspath(own) if own else module
            plugin = json.loads(fc["configuration"]["value"])
            if "audit" in plugin:
                plugin["audit"].update(json.loads(args.audit))
                fc["configuration"]["value"] = json.dumps(plugin)
                for ext in cfg.get("bootstrap_extensions", []):
                    # The shipper delivers with its own copy of the configuration.
                    ext["typed_config"]["config"]["configuration"]["value"] = json.dumps(plugin)
            proxies[v] = (run.start_envoy(envoy, cfg, f"proxy{len(proxies)}", tmp, admin), port, admin)
        body = run.chat_body(1024)
        path = os.path.join(tmp, "body.json")
        with open(path, "wb") as f:
            f.write(body)
        out = os.path.join(tmp, "wrk-out.json")
        lua = os.path.join(tmp, "post.lua")
        with open(lua, "w") as f:
            f.write(run.WRK_LUA % {"body": path, "out": out, "extra_headers": ""})
        results = {v: [] for v in variants}
        for rep in range(args.reps):
            for v in variants if rep % 2 == 0 else variants[::-1]:
                child, port, admin = proxies[v]
                run.run_wrk(wrk, port, lua, 1, args.connections, out)
                time.sleep(0.3)
                t0 = thread_cpu(child.pid)
                c0 = run.admin_stats(admin, "wasmcustom.policy_gateway")
                load = run.loadavg()
                r = run.run_wrk(wrk, port, lua, args.duration, args.connections, out)
                time.sleep(0.3)  # the shipper's last wake-ups and a tick
                t1 = thread_cpu(child.pid)
                c1 = run.admin_stats(admin, "wasmcustom.policy_gateway")
                n = max(r["requests"], 1)
                per = {k: (t1.get(k, 0) - t0.get(k, 0)) * 1e6 / n for k in t1}
                counters = {k.split("policy_gateway.", 1)[1]: (c1.get(k, 0) - c0.get(k, 0)) / n
                            for k in c1 if ("timing." in k or "records." in k
                                            or k.endswith((".delivered", ".dropped")))}
                rps = r["requests"] / (r["duration_us"] / 1e6)
                results[v].append((per, counters, rps, load))
                print(f"{v:>10} rep {rep + 1}: {rps:7.0f} req/s  load {load:4.1f}  " + "  ".join(
                    f"{k} {x:.1f}" for k, x in sorted(per.items()) if x >= 0.05),
                    file=sys.stderr, flush=True)
        print("\n| variant | req/s | CPU µs/req total | main thread (`envoy`) | worker (`wrk:worker_0`) "
              "| other threads | load |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for v in variants:
            rs = results[v]
            med = lambda f: statistics.median(f(x) for x in rs)  # noqa: E731
            total = med(lambda x: sum(x[0].values()))
            main_t = med(lambda x: x[0].get("envoy", 0))
            worker = med(lambda x: sum(c for k, c in x[0].items() if k.startswith("wrk:")))
            other = med(lambda x: sum(c for k, c in x[0].items()
                                      if k != "envoy" and not k.startswith("wrk:")))
            print(f"| {v} | {med(lambda x: x[2]):,.0f} | {total:.1f} | {main_t:.1f} | {worker:.1f} "
                  f"| {other:.1f} | {med(lambda x: x[3]):.1f} |")
        for v in variants:
            keys = sorted({k for x in results[v] for k in x[1]})
            if keys:
                print(f"\n{v}, per request (median): " + ", ".join(
                    f"{k} {statistics.median(x[1].get(k, 0) for x in results[v]):.3f}"
                    for k in keys))
    finally:
        run.stop_all()


if __name__ == "__main__":
    main()
