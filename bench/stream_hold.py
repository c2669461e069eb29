#!/usr/bin/env python3
"""Holds many concurrent streaming chat completions open through the gateway and measures its memory.

Opens --streams HTTP/1.1 connections to 127.0.0.1:--port, each POSTing to --path a `"stream": true` chat
completion, waits (up to --deadline seconds) until every stream has delivered its first SSE bytes,
then reads the gateway's VmRSS from /proc/--pid/status, keeps the streams open for --hold seconds
while sampling, closes them all and reads VmRSS once more.

Standard library only (asyncio streams). Human-readable progress goes to stderr; the last line on
stdout is `STREAMS key=value ...` for bench/run.sh.
"""
import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter

BODY = json.dumps(
    {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    separators=(",", ":"),
).encode()


def read_status(pid: int) -> dict:
    """VmRSS / VmHWM (kB) and thread count of a process; empty if it is gone."""
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM", "Threads"):
                    fields[key] = int(rest.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return fields


def count_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


class Tally:
    def __init__(self, n: int):
        self.n = n
        self.connected = 0
        self.first = 0          # streams that delivered their first SSE bytes
        self.open = 0           # streams past their first bytes and not yet ended
        self.failed = 0         # streams that never delivered first bytes (any reason)
        self.ended_early = 0    # streams that ended (EOF/reset) after their first bytes, before we closed them
        self.reasons = Counter()
        self.samples = []       # (reason, detail) examples
        self.ttfb = []          # seconds from start of connect to first SSE bytes
        self.closing = False

    def fail(self, reason: str, detail: str = ""):
        self.failed += 1
        self.reasons[reason] += 1
        if len(self.samples) < 5 and detail:
            self.samples.append(f"{reason}: {detail}")

    @property
    def settled(self) -> bool:
        return self.first + self.failed >= self.n


async def one_stream(i: int, args, tally: Tally, connect_gate: asyncio.Semaphore, writers: list):
    request = (
        f"POST {args.path} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{args.port}\r\n"
        f"Content-Type: application/json\r\n"
        f"Accept: text/event-stream\r\n"
        f"X-Request-Id: bench-stream-{i}\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    started = time.monotonic()
    got_first = False
    try:
        async with connect_gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", args.port, limit=1 << 16)
            writers.append(writer)
            writer.write(request)
            await writer.drain()
        tally.connected += 1
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, _, header_block = head.decode("latin-1").partition("\r\n")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        headers = {}
        for line in header_block.split("\r\n"):
            k, sep, v = line.partition(":")
            if sep:
                headers[k.strip().lower()] = v.strip()
        if status != 200:
            try:
                body = await asyncio.wait_for(reader.read(2048), 2)
            except (asyncio.TimeoutError, OSError):
                body = b""
            tally.fail(f"status {status}", body.decode("utf-8", "replace")[:300])
            return
        if "text/event-stream" not in headers.get("content-type", ""):
            tally.fail("not an event stream", f"content-type {headers.get('content-type')!r}")
            return
        seen = b""
        while b"data:" not in seen:
            chunk = await reader.read(65536)
            if not chunk:
                tally.fail("EOF before the first SSE event")
                return
            seen = (seen + chunk)[-4096:]
        got_first = True
        tally.first += 1
        tally.open += 1
        tally.ttfb.append(time.monotonic() - started)
        tail = seen[-64:]
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            tail = (tail + chunk)[-64:]
        tally.open -= 1
        if not tally.closing:
            tally.ended_early += 1
            done = b"[DONE]" in tail
            tally.reasons["ended before close" + (" (complete, [DONE])" if done else " (cut, no [DONE])")] += 1
    except asyncio.CancelledError:
        if got_first:
            tally.open -= 1
        raise
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
        if got_first:
            tally.open -= 1
            if not tally.closing:
                tally.ended_early += 1
                tally.reasons[f"broken after first bytes: {type(e).__name__}"] += 1
        else:
            tally.fail(type(e).__name__, str(e)[:200])


def mib(kb) -> str:
    return f"{kb / 1024:.1f}" if isinstance(kb, int) else "-"


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="gateway process id (for /proc/PID/status)")
    ap.add_argument("--path", default="/v1/chat/completions", help="request path (the route to the fake provider)")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--connect-concurrency", type=int, default=100)
    ap.add_argument("--deadline", type=float, default=20.0, help="seconds for all streams to deliver first bytes")
    ap.add_argument("--hold", type=float, default=2.0, help="seconds to keep all streams open while sampling RSS")
    args = ap.parse_args()

    log = lambda msg: print(f"  [streams] {msg}", file=sys.stderr, flush=True)
    tally = Tally(args.streams)
    before = read_status(args.pid)
    gate = asyncio.Semaphore(args.connect_concurrency)
    writers: list = []
    t0 = time.monotonic()
    tasks = [asyncio.create_task(one_stream(i, args, tally, gate, writers)) for i in range(args.streams)]

    deadline = t0 + args.deadline
    last_log = t0
    while not tally.settled and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if time.monotonic() - last_log >= 2:
            last_log = time.monotonic()
            log(f"{time.monotonic() - t0:5.1f}s connected={tally.connected} first-bytes={tally.first} failed={tally.failed}")
    settle_s = time.monotonic() - t0
    pending = args.streams - tally.first - tally.failed
    if pending:
        tally.reasons["no first bytes by the deadline"] += pending

    alive = bool(read_status(args.pid))
    at_measure = read_status(args.pid)
    open_at_measure = tally.open
    fds_at_measure = count_fds(args.pid)
    log(f"all settled after {settle_s:.1f}s: first-bytes={tally.first} failed={tally.failed} pending={pending} "
        f"open={open_at_measure}; gateway VmRSS {mib(at_measure.get('VmRSS'))} MiB")

    max_rss = at_measure.get("VmRSS", 0)
    hold_end = time.monotonic() + args.hold
    while time.monotonic() < hold_end:
        await asyncio.sleep(0.25)
        s = read_status(args.pid)
        max_rss = max(max_rss, s.get("VmRSS", 0))
    open_after_hold = tally.open
    hwm = read_status(args.pid).get("VmHWM")

    tally.closing = True
    for w in writers:
        try:
            w.transport.abort()
        except Exception:
            pass
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(2.0)
    after = read_status(args.pid)
    fds_after = count_fds(args.pid)

    ttfb = sorted(tally.ttfb)
    pct = lambda p: f"{ttfb[min(len(ttfb) - 1, int(p * len(ttfb)))]:.2f}" if ttfb else "-"
    for reason, n in tally.reasons.most_common():
        log(f"problem: {n} x {reason}")
    for s in tally.samples:
        log(f"example: {s}")

    fields = {
        "requested": args.streams,
        "connected": tally.connected,
        "first_bytes": tally.first,
        "failed": tally.failed + pending,
        "ended_early": tally.ended_early,
        "open_at_measure": open_at_measure,
        "open_after_hold": open_after_hold,
        "settle_s": f"{settle_s:.1f}",
        "ttfb_p50_s": pct(0.50),
        "ttfb_p99_s": pct(0.99),
        "rss_before_kb": before.get("VmRSS", -1),
        "rss_kb": at_measure.get("VmRSS", -1),
        "rss_hold_max_kb": max_rss or -1,
        "hwm_kb": hwm if hwm is not None else -1,
        "threads": at_measure.get("Threads", -1),
        "fds": fds_at_measure,
        "rss_after_close_kb": after.get("VmRSS", -1),
        "fds_after_close": fds_after,
        "alive_after_close": int(bool(after)),
        "alive_at_measure": int(alive),
    }
    print("STREAMS " + " ".join(f"{k}={v}" for k, v in fields.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
