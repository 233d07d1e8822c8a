#!/usr/bin/env node
// SHA-256 under V8, for instruction counts (BENCHMARKS.md, "Sixth round: the chain's hash"):
//
//   node --no-liftoff --single-threaded bench/v8/sha.mjs LEN ITERS [sha|hmac|sha2] [--wasm PATH]
//
// runs `run_sha256(LEN, ITERS)` once after a warm-up of the same call (so TurboFan's code is
// what is counted). Under `valgrind --tool=cachegrind`, the difference between two ITERS over
// the difference in blocks is the cost per 64-byte block (set-up and compilation cancel out).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const i = args.indexOf("--wasm");
const wasmPath = i >= 0 ? args.splice(i, 2)[1] :
  fileURLToPath(new URL("./target/wasm32-unknown-unknown/release/engine_v8_bench.wasm", import.meta.url));
const [len, iters, mode] = [Number(args[0] ?? 1024), Number(args[1] ?? 1000), { hmac: 1, sha2: 2 }[args[2]] ?? 0];
const { instance } = await WebAssembly.instantiate(readFileSync(wasmPath), {});
const w = instance.exports;
w.run_sha256(len, 1000, mode);
console.log(w.run_sha256(len, iters, mode));
