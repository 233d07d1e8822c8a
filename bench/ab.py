#!/usr/bin/env python3
"""The floor filter against one or more gateway modules, alternating, at one body size: CPU µs
per request above the floor and req/s against it, medians. For bisecting the gateway's fixed
cost (BENCHMARKS.md, "Time inside the callbacks"): build scratch modules that skip one piece
each and compare them in one run, under the same load.

Usage: .venv/bin/python bench/ab.py NAME=PATH.wasm[:CONFIG] ... [--reps 5] [--duration 4]
CONFIG: `min` (empty policy, no audit; the default), `noaudit` (default policy, no audit),
`full` (as shipped: default policy, audit to HEC through the shipper, which runs the same
module), or a JSON object of plugin settings merged into `min`'s.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402


def timing(admin):
    """The callback-timing build's counters (ns per callback), empty for other modules."""
    stats = run.admin_stats(admin, "wasmcustom.policy_gateway.timing")
    return {k.split("timing.", 1)[1]: v for k, v in stats.items()}


def variant_config(path, spec, port, admin, up_port):
    if spec == "full":
        cfg = run.proxy_config(True, port, admin, up_port, up_port)
    elif spec in ("min", "noaudit"):
        cfg = run.proxy_config(True, port, admin, up_port, up_port, minimal=spec == "min",
                               audit=False)
    else:
        cfg = run.proxy_config(True, port, admin, up_port, up_port, minimal=True, audit=False)
        fc = run.harness._filter_config(cfg)
        pc = json.loads(fc["configuration"]["value"])
        extra = json.loads(spec)
        # Scratch builds read `_skip` (pieces to skip) from the plugin's name.
        if "_skip" in extra:
            fc["name"] = f"{fc['name']};skip={extra.pop('_skip')}"
        pc.update(extra)
        fc["configuration"]["value"] = json.dumps(pc)
    run.harness._filter_config(cfg)["vm_config"]["code"]["local"]["filename"] = path
    return cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="+", help="NAME=PATH.wasm[:CONFIG]")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--duration", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--stream", action="store_true")
    args = ap.parse_args()
    variants = {}
    for v in args.variants:
        name, rest = v.split("=", 1)
        path, _, spec = rest.partition(":")
        variants[name] = (os.path.abspath(path), spec or "min")
    wrk, envoy = run.ensure_wrk(), run.envoy_binary()
    tmp = tempfile.mkdtemp(prefix="pg-ab-")
    fp = run.harness.free_port
    up_port, up_admin = fp(), fp()
    run.build_filter(run.FLOOR_FILTER_DIR)
    try:
        run.start_envoy(envoy, run.upstream_config(up_port, up_admin), "upstream", tmp, up_admin)
        names = ["floor", *variants]
        ports, procs, admins = {}, {}, {}
        for name in names:
            port, admin = fp(), fp()
            if name == "floor":
                cfg = run.proxy_config(True, port, admin, up_port, up_port, module=run.FLOOR_WASM)
            else:
                cfg = variant_config(*variants[name], port, admin, up_port)
            ports[name] = port
            admins[name] = admin
            procs[name] = run.start_envoy(envoy, cfg, name, tmp, admin)
        body = run.chat_body(args.size, args.stream)
        path = os.path.join(tmp, "body.json")
        with open(path, "wb") as f:
            f.write(body)
        out = os.path.join(tmp, "wrk-out.json")
        lua = os.path.join(tmp, "post.lua")
        with open(lua, "w") as f:
            f.write(run.WRK_LUA % {"body": path, "out": out, "extra_headers":
                                   'wrk.headers["x-bench-stream"] = "1"' if args.stream else ""})
        for name in names:
            status, _, resp = run.post_once(ports[name], body, args.stream)
            if status != 200 or b"chatcmpl-bench" not in resp:
                raise RuntimeError(f"{name}: {status} {resp[:200]}")
        raw = {n: [] for n in names}
        for rep in range(args.reps):
            order = names if rep % 2 == 0 else names[::-1]
            for name in order:
                if args.warmup:
                    run.run_wrk(wrk, ports[name], lua, args.warmup, args.connections, out)
                t0 = timing(admins[name])
                cpu0 = run.cpu_seconds(procs[name].pid)
                r = run.run_wrk(wrk, ports[name], lua, args.duration, args.connections, out)
                cpu1 = run.cpu_seconds(procs[name].pid)
                n = max(r["requests"], 1)
                # A tick (200 ms) so the run's callback times reach the counters.
                t1 = timing(admins[name]) if t0 else {}
                if t0:
                    time.sleep(0.3)
                    t1 = timing(admins[name])
                raw[name].append({"rps": r["requests"] / (r["duration_us"] / 1e6),
                                  "cpu": (cpu1 - cpu0) * 1e6 / n, "load": run.loadavg(),
                                  "timing": {k: (t1.get(k, 0) - v) / 1e3 / n
                                             for k, v in t0.items() if k.endswith(".ns")}})
            fl = raw["floor"][-1]
            print(f"rep {rep + 1}: " + "  ".join(
                f"{n} {raw[n][-1]['cpu'] - fl['cpu']:+.1f}us {raw[n][-1]['rps'] / fl['rps']:.1%}"
                for n in names[1:]) + f"  (floor {fl['cpu']:.1f} us, {fl['rps']:.0f}/s,"
                f" load {fl['load']:.1f})", file=sys.stderr, flush=True)
        print(f"| variant | CPU µs/req | above floor (median of per-rep) | req/s | / floor |")
        print("|---|---:|---:|---:|---:|")
        for name in names:
            cpu = statistics.median(x["cpu"] for x in raw[name])
            above = statistics.median(x["cpu"] - f["cpu"] for x, f in zip(raw[name], raw["floor"]))
            rps = statistics.median(x["rps"] for x in raw[name])
            ratio = statistics.median(x["rps"] / f["rps"] for x, f in zip(raw[name], raw["floor"]))
            print(f"| {name} | {cpu:.1f} | {above:+.1f} | {rps:,.0f} | {ratio:.1%} |")
        for name in names:
            keys = sorted({k for x in raw[name] for k in x["timing"]})
            if keys:
                print(f"{name} in-VM µs/req: " + "  ".join(
                    f"{k[:-3]} {statistics.median(x['timing'].get(k, 0) for x in raw[name]):.1f}"
                    for k in keys) + "  total " + f"{statistics.median(sum(x['timing'].values()) for x in raw[name]):.1f}")
    finally:
        run.stop_all()


if __name__ == "__main__":
    main()
