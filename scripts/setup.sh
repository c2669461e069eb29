#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian machine (idempotent).
# System packages need root; Python packages go into .venv (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
[ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -f /usr/include/curl/curl.h ] || missing+=(libcurl4-openssl-dev)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: please install: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import openai, pytest, yaml' 2>/dev/null; then
    python3 -m venv --system-site-packages .venv
    .venv/bin/pip install -q --disable-pip-version-check openai pytest pyyaml
fi
