#!/usr/bin/env node
// The engine microbenchmark under V8: node runs the wasm32 build of the policy engine
// (bench/v8, a bare cdylib: no wasm-bindgen, no imports) on the inputs of benches/engine.rs.
//
//   cargo build --release --target wasm32-unknown-unknown --manifest-path bench/v8/Cargo.toml
//   node bench/v8/run.mjs              # ~40 s; a markdown table on stdout
//   node bench/v8/run.mjs --smoke      # each case once, checks the outcomes, times nothing
//   node bench/v8/run.mjs --chain      # only the audit chain's cost per record (~5 s)
//   node bench/v8/run.mjs --conversation  # only the 20-turn conversation, cached and not (~5 s)
//
// Options: --breakdown (also the empty policy and JSON parsing alone, ~+10 s),
// --eval-ms N (minimum length of one timed evaluate batch, default 500),
// --floor-ms N (the same for memchr/memcpy/breakdown batches, default 100),
// --reps N (timed batches per measurement, default 5; the median is reported),
// --policy FILE (measure this policy instead of policies/default.json),
// --wasm PATH (default: bench/v8/target/wasm32-unknown-unknown/release/engine_v8_bench.wasm).
//
// Every timed call runs `iters` iterations inside wasm, so the JS-to-wasm hop is amortised.
// MB/s is 10^6 bytes of input per second, as in benches/engine.rs.

import { readFileSync, statSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const value = args[i + 1];
  if (value === undefined) throw new Error(`${name} needs a value`);
  return value;
};
const known = new Set(["--smoke", "--chain", "--conversation", "--breakdown", "--eval-ms", "--floor-ms", "--reps", "--wasm", "--policy", "--help"]);
for (const [i, a] of args.entries()) {
  const prev = args[i - 1];
  if (a.startsWith("--") && !known.has(a)) throw new Error(`unknown option ${a}`);
  if (!a.startsWith("--") && !["--eval-ms", "--floor-ms", "--reps", "--wasm", "--policy"].includes(prev)) {
    throw new Error(`unexpected argument ${a}`);
  }
}
if (flag("--help")) {
  console.log(readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n").slice(1, 19).join("\n"));
  process.exit(0);
}

const smoke = flag("--smoke");
const breakdown = flag("--breakdown");
const evalMs = Number(option("--eval-ms", "500"));
const floorMs = Number(option("--floor-ms", "100"));
const reps = Number(option("--reps", "5"));
const policyPath = option("--policy", null);
const wasmPath = option(
  "--wasm",
  fileURLToPath(new URL("./target/wasm32-unknown-unknown/release/engine_v8_bench.wasm", import.meta.url)),
);

let bytes;
try {
  bytes = readFileSync(wasmPath);
} catch (e) {
  console.error(`cannot read ${wasmPath}: ${e.message}`);
  console.error("build it: cargo build --release --target wasm32-unknown-unknown --manifest-path bench/v8/Cargo.toml");
  process.exit(2);
}
const { instance } = await WebAssembly.instantiate(bytes, {});
const w = instance.exports;
const decoder = new TextDecoder();
const text = () => decoder.decode(new Uint8Array(w.memory.buffer, w.text_ptr(), w.text_len()));

const cases = w.init();
if (cases < 0) {
  console.error(`init failed: ${text()}`);
  process.exit(1);
}

let policyName = "policies/default.json";
if (policyPath !== null) {
  const json = readFileSync(policyPath);
  new Uint8Array(w.memory.buffer, w.alloc(json.length), json.length).set(json);
  if (w.load_policy() < 0) {
    console.error(`${policyPath}: ${text()}`);
    process.exit(1);
  }
  policyName = `${policyPath} (${text()})`;
  w.free();
}

// The work kinds: each a function of an iteration count, run entirely inside wasm.
const kinds = {
  evaluate: (n) => w.run_evaluate(0, n),
  empty: (n) => w.run_evaluate(1, n),
  parse: (n) => w.run_parse(n),
  memchr: (n) => w.run_memchr(n),
  memcpy: (n) => w.run_memcpy(n),
  injection: (n) => w.run_injection(n),
};

let sink = 0; // every result goes here, and is printed, so nothing is dead code
const now = () => process.hrtime.bigint();
const secondsOf = (fn, n) => {
  const t = now();
  sink = (sink + fn(n)) | 0;
  return Number(now() - t) / 1e9;
};

// The process's CPU seconds (user + system): what a record costs the worker, where wall time on
// a shared machine also counts waiting for a core.
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

// Seconds per call: calibrate a batch to >= minMs (which also warms V8's tiers up), then the
// median of `reps` batches.
function measure(fn, minMs) {
  const min = minMs / 1000;
  let n = 1;
  let t = secondsOf(fn, n);
  while (t < min / 10) {
    n *= 2;
    t = secondsOf(fn, n);
  }
  n = Math.max(1, Math.ceil((n * min * 1.1) / t));
  const perCall = [];
  for (let r = 0; r < reps; r++) perCall.push(secondsOf(fn, n) / n);
  perCall.sort((a, b) => a - b);
  return { median: perCall[Math.floor(perCall.length / 2)], min: perCall[0], max: perCall[perCall.length - 1], n };
}

const fmt = (x, digits) =>
  x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const mbps = (len, seconds) => fmt(len / seconds / 1e6, 1);

const header = [
  "# Engine microbenchmark under V8 (node, wasm32-unknown-unknown)",
  "",
  `- date: ${new Date().toISOString()}`,
  `- node ${process.version}, V8 ${process.versions.v8}, ${cpus()[0]?.model ?? "unknown CPU"} (${cpus().length} CPUs)`,
  `- module: ${wasmPath.replace(process.cwd() + "/", "")} (${statSync(wasmPath).size.toLocaleString("en-US")} B)`,
];

// The audit chain, once per record (issue 17): link a typical decision record, then also a
// signed checkpoint after each; CPU µs per call (median of `reps` batches of >= 1 s each).
function chainReport() {
  const recordLen = w.chain_record_len();
  const until = Date.now() + 300;
  while (Date.now() < until) sink = (sink + w.run_chain(8, 1)) | 0;
  const cpuPerCall = (fn) => {
    const n = measure(fn, 1000).n;
    const perCall = [];
    for (let r = 0; r < reps; r++) {
      const t = cpuSeconds();
      sink = (sink + fn(n)) | 0;
      perCall.push((cpuSeconds() - t) / n);
    }
    perCall.sort((a, b) => a - b);
    return { median: perCall[Math.floor(perCall.length / 2)], min: perCall[0] };
  };
  const link = cpuPerCall((n) => w.run_chain(n, 0));
  const linkCp = cpuPerCall((n) => w.run_chain(n, 1));
  // For scale, in the same conditions: the default policy over the first case (1 KiB chat).
  w.prepare(0);
  const name = text();
  const ev = cpuPerCall(kinds.evaluate);
  const us = (x) => fmt(x * 1e6, 2);
  console.log("");
  console.log(`Audit chain, a ${recordLen}-byte decision record, CPU per call (median, min of ${reps}): ` +
    `link ${us(link.median)} µs (${us(link.min)}); link + signed checkpoint ${us(linkCp.median)} µs (${us(linkCp.min)}); ` +
    `for scale, evaluate ${name}: ${us(ev.median)} µs (${us(ev.min)})`);
}

// A conversation replayed turn by turn (issue 16): the 20 requests of
// benches/support/conversation.rs, each the whole history, without and with the text cache.
function conversationReport() {
  const convBytes = w.conversation_bytes();
  const conv = [0, 1].map((cached) => measure((n) => w.run_conversation(cached, n), evalMs));
  console.log(`A conversation re-judged only where it changed (20 requests, ${fmt(convBytes, 0)} B of bodies together, default policy):`);
  console.log("");
  console.log("| | µs per conversation | µs per request (mean) | MB/s of bodies |");
  console.log("|---|---:|---:|---:|");
  for (const [label, m] of [["uncached", conv[0]], ["text cache", conv[1]]]) {
    console.log(`| ${label} | ${fmt(m.median * 1e6, 0)} | ${fmt((m.median * 1e6) / 20, 1)} | ${mbps(convBytes, m.median)} |`);
  }
  console.log(`| ratio | ${fmt(conv[0].median / conv[1].median, 2)}x | | |`);
  console.log("");
}

if (flag("--conversation")) {
  console.log(header.join("\n"));
  console.log("");
  conversationReport();
  console.log(`(checksum ${sink})`);
  process.exit(0);
}

if (flag("--chain")) {
  console.log(header.join("\n"));
  chainReport();
  console.log(`(checksum ${sink})`);
  process.exit(0);
}

if (smoke) {
  // Each case once through every export; the default policy must inspect every body.
  console.log("engine V8 benchmark: smoke run (each case once; times nothing)");
  let failed = 0;
  sink = (sink + w.run_chain(2, 1)) | 0;
  for (let c = 0; c < cases; c++) {
    const len = w.prepare(c);
    const name = text();
    for (const fn of Object.values(kinds)) sink = (sink + fn(1)) | 0;
    const inspected = w.describe(0);
    const outcome = text();
    console.log(`${name} (${len} B): ${outcome}`);
    if (len <= 0 || inspected !== 1) failed++;
  }
  // The driver's own input, through alloc/free.
  const body = new TextEncoder().encode(
    JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "mail me at jane.doe@example.com" }] }),
  );
  const ptr = w.alloc(body.length);
  new Uint8Array(w.memory.buffer, ptr, body.length).set(body);
  const inspected = w.describe(0);
  console.log(`custom (${body.length} B): ${text()}`);
  if (inspected !== 1 || !text().includes("redactions")) failed++;
  w.free();
  if (failed) {
    console.error(`${failed} case(s) failed`);
    process.exit(1);
  }
  console.log(`ok (${sink})`);
  process.exit(0);
}

const columns = ["case", "input bytes", "µs per call", "evaluate MB/s"];
if (breakdown) columns.push("empty policy MB/s", "parse only MB/s");
columns.push("memchr MB/s", "memcpy MB/s");
const right = columns.map((_, i) => (i === 0 ? "---" : "---:"));

// Warm V8 up (Liftoff to TurboFan) on every kind of work before the first measurement.
w.prepare(2);
for (const fn of Object.values(kinds)) {
  const until = Date.now() + (fn === kinds.evaluate ? 300 : 50);
  while (Date.now() < until) sink = (sink + fn(8)) | 0;
}

const rows = [];
const outcomes = [];
let worst = { mbps: Infinity, name: "" };
const started = Date.now();
for (let c = 0; c < cases; c++) {
  const len = w.prepare(c);
  const name = text();
  w.describe(0);
  outcomes.push(`${name}: ${text()}`);
  const ev = measure(kinds.evaluate, evalMs);
  const row = [name, fmt(len, 0), fmt(ev.median * 1e6, 2), mbps(len, ev.median)];
  if (breakdown) {
    row.push(mbps(len, measure(kinds.empty, floorMs).median), mbps(len, measure(kinds.parse, floorMs).median));
  }
  row.push(mbps(len, measure(kinds.memchr, floorMs).median), mbps(len, measure(kinds.memcpy, floorMs).median));
  rows.push(row);
  const rate = len / ev.median / 1e6;
  if (rate < worst.mbps) worst = { mbps: rate, name };
  process.stderr.write(`${name}: ${fmt(rate, 1)} MB/s (${ev.n} calls per batch, min ${fmt(ev.min * 1e6, 2)} µs, max ${fmt(ev.max * 1e6, 2)} µs)\n`);
}

console.log(header.join("\n"));
console.log(
  `- policy: ${policyName}, Phase::Request; median of ${reps} batches, each batch >= ${evalMs} ms for evaluate, >= ${floorMs} ms for the others; MB = 10^6 B`,
);
console.log("- memchr: count of `@` with memchr::memchr_iter; memcpy: copy_from_slice into a buffer; both over the same input");
console.log("");
console.log(`| ${columns.join(" | ")} |`);
console.log(`|${right.join("|")}|`);
for (const row of rows) console.log(`| ${row.join(" | ")} |`);
console.log("");
console.log(`Slowest case for the policy: ${worst.name}, ${fmt(worst.mbps, 1)} MB/s (target: >= 100 MB/s).`);
chainReport();
console.log("");
console.log("Outcomes (one evaluation each):");
for (const o of outcomes) console.log(`- ${o}`);
console.log("");

// The prompt-injection detector alone (phrase tier, decoding layer, classifier) over each
// input read as one text: issue 14 asks >= 50 MB/s under V8. Besides wall time, the process's
// CPU time over the same batches: on a shared machine the wall clock counts the time other
// processes had the core, the CPU time does not (it also counts V8's helper threads, so it
// errs on the slow side).
const cpuOf = (fn, n) => {
  const t = process.cpuUsage();
  sink = (sink + fn(n)) | 0;
  const d = process.cpuUsage(t);
  return (d.user + d.system) / 1e6;
};
const inj = [];
for (let c = 0; c < cases; c++) {
  const len = w.prepare(c);
  const name = text();
  const m = measure(kinds.injection, floorMs * 2);
  // CPU time has microsecond resolution: batches of at least 50 ms.
  const n = Math.max(m.n, Math.ceil(0.05 / m.median));
  const cpu = [];
  for (let r = 0; r < reps; r++) cpu.push(cpuOf(kinds.injection, n) / n);
  cpu.sort((a, b) => a - b);
  const cpuMedian = cpu[Math.floor(cpu.length / 2)];
  inj.push([name, fmt(len, 0), fmt(m.median * 1e6, 2), mbps(len, m.median), mbps(len, cpuMedian)]);
}
conversationReport();
console.log("Prompt-injection detector alone (`prompt_injection::assess` on the input as one text):");
console.log("");
console.log("| case | input bytes | µs per call | MB/s (wall) | MB/s (CPU time) |");
console.log("|---|---:|---:|---:|---:|");
for (const row of inj) console.log(`| ${row.join(" | ")} |`);
console.log("");
console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s; checksum ${sink})`);
