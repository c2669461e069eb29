# The two commands a new user needs: `make run` and `make test`. Both install what they need.
SWIFT ?= swift
PYTHON := .venv/bin/python
# The tests use what scripts/setup.sh installed into .venv (kubectl, python3 with pyyaml) first.
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup build run test test-swift test-python bench bench-controller fuzz clean

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build

# Standalone gateway on the guide's manifests, in front of the bundled fake provider (offline).
run: build
	@bash scripts/run-demo.sh

# Under CI=true a skipped test fails the run (tests/conftest.py; the Swift suites that need the fake
# API server run, and fail, instead of skipping).
test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	$(PYTHON) -m pytest -q tests/e2e tests/kube

# `make bench`: the data-plane benchmark (bench/run.sh; its header documents every BENCH_* knob).
# Builds the release ai-gateway and fake-provider, then, against a static nginx upstream whose cost
# is far below either proxy's: nginx (plain keep-alive reverse proxy, one worker per gateway event
# loop) vs the gateway, in alternating rounds: CPU per request (the headline), requests/s, p50/p99;
# CPU per 200-event streamed answer; latency added at a fixed 1,000 requests/s (open-loop client,
# bench/constant_rate.c); then the translation cost of the Anthropic and Bedrock routes through the
# fake provider, and the gateway's RSS with 1,000 open streams. Prints each ratio with its target;
# exits non-zero only if something failed to run. About 6 minutes on 2 cores after the build.
# Installs wrk, nginx-light and a C compiler when missing (as root).
# Optional: BENCH_SCRATCH_PATH=.build-release, BENCH_BIN_DIR=<dir with both release binaries>,
# BENCH_EVENT_LOOPS=$(nproc), BENCH_ROUNDS=5, BENCH_DURATION=5, BENCH_RATE=1000, BENCH_STREAMS=1000.
bench: setup
	bash bench/run.sh

# `make bench-controller`: the Kubernetes controller benchmark. bench/controller.py builds the
# release ai-gateway and fake-provider, starts the fake API server (testing/fake-apiserver), applies
# crds/, manifests/ and the guide's Secret, Backend and HTTPRoute with kubectl, and runs the gateway
# in Kubernetes mode in front of the fake provider. Then: 100 `kubectl apply`s of a changed route
# path, each timed to the first request served on the new path (p50/p99/max, from kubectl's start,
# its return, and the API write); 5,000 Backends + 5,000 HTTPRoutes bulk-created through the API and
# a fresh gateway: initial sync time, table decode/compile time, RSS, and (separately) the time to
# write all 10,000 statuses; then 100 route changes with those 10,000 objects loaded, timed from the
# API write to the first request served (required: p99 < 50 ms; first sync < 1 s). Prints PASS/FAIL
# against the requirements and goals (exits non-zero only if something failed to run). About 5
# minutes after the build.
# Optional: BENCH_SCRATCH_PATH=.build-release, BENCH_BIN_DIR=<dir with both release binaries>,
# BENCH_CHANGES=100, BENCH_SCALE_CHANGES=100, BENCH_BACKENDS=5000, BENCH_ROUTES=5000, BENCH_KEEP=1
# (keep logs), BENCH_PERF=<file> (perf record the scale gateway).
bench-controller: setup
	$(PYTHON) bench/controller.py

# `make fuzz`: libFuzzer on the JSON parser (differential against Foundation), the SSE parser, the
# manifest decoder and the client-facing HTTP handler, FUZZ_SECONDS (60) each; see scripts/fuzz.sh.
fuzz:
	bash scripts/fuzz.sh

clean:
	rm -rf .build .build-release .build-fuzz .fuzz-work .venv
