# The two commands a new user needs: `make run` and `make test`. Both install what they need.
SWIFT ?= swift
PYTHON := .venv/bin/python

.PHONY: setup build run test test-swift test-python bench clean

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build

# Standalone gateway on the guide's manifests, in front of the bundled fake provider (offline).
run: build
	@bash scripts/run-demo.sh

test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	$(PYTHON) -m pytest -q tests/e2e tests/kube

# `make bench`: the data-plane benchmark. bench/run.sh builds the release ai-gateway and
# fake-provider, then runs wrk against the fake provider, nginx and the gateway, and holds 1,000
# concurrent streams through the gateway. Installs wrk and nginx-light when missing (as root).
# Optional: BENCH_SCRATCH_PATH=.build-release, BENCH_DURATION=10, BENCH_CONNECTIONS=64.
bench: setup
	bash bench/run.sh

clean:
	rm -rf .build .build-release .venv
