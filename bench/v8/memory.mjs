#!/usr/bin/env node
// How far one evaluation grows the wasm linear memory under V8 (issue 11 item 6): wasm memory
// never shrinks, so what one request needs at its peak stays with the VM for good. Each input
// is evaluated once in a fresh instance of the engine (bench/v8, built as for run.mjs); the
// growth of `memory.buffer.byteLength` over that call is reported, beside the input size.
//
//   cargo build --release --target wasm32-unknown-unknown --manifest-path bench/v8/Cargo.toml
//   node bench/v8/memory.mjs            # a markdown table on stdout, a few seconds
//   node bench/v8/memory.mjs --wasm PATH

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const i = args.indexOf("--wasm");
const wasmPath =
  i >= 0
    ? args[i + 1]
    : fileURLToPath(new URL("./target/wasm32-unknown-unknown/release/engine_v8_bench.wasm", import.meta.url));
const module = new WebAssembly.Module(readFileSync(wasmPath));
const decoder = new TextDecoder();
const MiB = 1 << 20;

/// Arrays nested `depth` deep around `"a"` strings up to `target` bytes (benches/support/adversarial.rs).
function nestedArrays(depth, target) {
  let inner = '"a"';
  const parts = ['"a"'];
  let len = 2 * depth + inner.length;
  while (len + 4 <= target) {
    parts.push('"a"');
    len += 4;
  }
  return "[".repeat(depth) + parts.join(",") + "]".repeat(depth);
}

/// An OpenAI chat body whose user message is `a@b.co ` repeated to `target` bytes.
function emails(target) {
  const content = "a@b.co ".repeat(Math.floor(target / 7) + 1).slice(0, target);
  return JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content }] });
}

const cases = [
  ["nested arrays depth 120, 256 KiB", nestedArrays(120, 256 << 10), 1],
  ["nested arrays depth 120, 384 KiB", nestedArrays(120, 384 << 10), 1],
  ["nested arrays depth 120, 1 MiB", nestedArrays(120, 1 << 20), 1],
  ["a@b.co chat body, 256 KiB", emails(256 << 10), 0],
  ["a@b.co chat body, 1 MiB", emails(1 << 20), 0],
];

console.log("| input | bytes | segments (or reason) | wasm memory growth | per body byte |");
console.log("|---|---:|---|---:|---:|");
for (const [name, body, path] of cases) {
  const w = new WebAssembly.Instance(module, {}).exports;
  if (w.init() < 0) throw new Error("init failed");
  const bytes = new TextEncoder().encode(body);
  const ptr = w.alloc(bytes.length); // may grow memory: read `buffer` after it
  new Uint8Array(w.memory.buffer, ptr, bytes.length).set(bytes);
  const before = w.memory.buffer.byteLength;
  const segments = w.evaluate_once(0, path);
  const after = w.memory.buffer.byteLength;
  const reason = decoder.decode(new Uint8Array(w.memory.buffer, w.text_ptr(), w.text_len()));
  const grew = after - before;
  console.log(
    `| ${name} | ${bytes.length} | ${segments >= 0 ? segments : reason} | ` +
      `${(grew / MiB).toFixed(1)} MiB | ${(grew / bytes.length).toFixed(1)} |`,
  );
}
