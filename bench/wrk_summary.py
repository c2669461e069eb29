#!/usr/bin/env python3
"""Reads `wrk --latency` output on stdin; prints shell assignments for bench/run.sh.

RPS, P50_MS, P99_MS, REQUESTS, NON2XX, SOCK_CONNECT, SOCK_READ, SOCK_WRITE, SOCK_TIMEOUT.
Exits 1 if the output has no Requests/sec or latency distribution (wrk did not really run).
"""
import re
import sys

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unparseable latency {text!r}")
    return float(m.group(1)) * UNITS_MS[m.group(2)]


def main() -> int:
    out = sys.stdin.read()
    values = {}
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", out, re.M)
    if m:
        values["RPS"] = m.group(1)
    for pct, key in (("50", "P50_MS"), ("99", "P99_MS")):
        m = re.search(rf"^\s+{pct}%\s+(\S+)\s*$", out, re.M)
        if m:
            values[key] = f"{to_ms(m.group(1)):.3f}"
    m = re.search(r"^\s+(\d+) requests in", out, re.M)
    if m:
        values["REQUESTS"] = m.group(1)
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    values["NON2XX"] = m.group(1) if m else "0"
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    for i, key in enumerate(("SOCK_CONNECT", "SOCK_READ", "SOCK_WRITE", "SOCK_TIMEOUT")):
        values[key] = m.group(i + 1) if m else "0"
    missing = [k for k in ("RPS", "P50_MS", "P99_MS", "REQUESTS") if k not in values]
    for k, v in values.items():
        print(f"{k}={v}")
    if missing:
        print(f"wrk_summary: missing {', '.join(missing)} in wrk output", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
