#!/usr/bin/env python3
"""A fake Kubernetes API server for the project's tests.

It speaks enough of the real wire protocol that the real `kubectl` (1.32) and the
project's Swift client work against it unchanged:

* discovery (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`) in the legacy
  format (clients that ask for aggregated discovery get the legacy content type
  and fall back), and OpenAPI v3 (`/openapi/v3`, `/openapi/v3/apis/<g>/<v>`) with
  the PATCH operations kubectl inspects to learn that the server does field
  validation. OpenAPI v2 answers 404 (kubectl only uses it as a fallback);
* generic storage of any kind, namespaced or cluster-scoped: create, get, list
  (label/field selectors, limit/continue paging, consistent snapshots), update
  (resourceVersion preconditions), patch (JSON merge, strategic merge, JSON patch,
  a simplified server-side apply), delete (finalizers, collections), `/status`
  subresources with the real generation/status rules;
* CustomResourceDefinitions: registering one serves its kind; custom resources are
  pruned, defaulted and validated against the structural schema, including the
  `x-kubernetes-validations` CEL rules this repository's CRDs use (recognised by
  their exact text, see CEL_RULES in fakeapi/cel.py);
* watches with resourceVersion replay, bookmarks, label/field filtering,
  `sendInitialEvents`, 410 Expired after compaction, and server-side timeouts;
* Table output for `kubectl get` (printer columns);
* a fault-injection API under `/_fake/` (no authentication).

Gateway API kinds are NOT built in: apply `crds/` first, as on a real cluster.

Only the standard library and PyYAML are needed; TLS material comes from the
`cryptography` package when present, else from the `openssl` command.

This file is the entry point; the server itself is the `fakeapi` package beside it,
split by concern (see fakeapi/__init__.py).

Run:  python3 fake_apiserver.py --port 0 --tls --token T --state-dir DIR \
          [--kubeconfig-out PATH]
It prints `fake-apiserver listening on https://127.0.0.1:PORT` once ready.
"""

from __future__ import annotations

import argparse
import os
import signal
import ssl
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fakeapi.cel import CEL_RULES  # noqa: E402  (re-exported: tests/kube checks the CRDs' rules)
from fakeapi.handler import FakeAPIServer  # noqa: E402
from fakeapi.store import Store  # noqa: E402
from fakeapi.tls import make_certs, write_kubeconfig  # noqa: E402

__all__ = ["CEL_RULES", "FakeAPIServer", "Store", "main", "make_certs", "write_kubeconfig"]


def main(argv: list | None = None) -> None:
    p = argparse.ArgumentParser(description="A fake Kubernetes API server for tests.")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--tls", action="store_true", help="serve HTTPS with a throwaway CA")
    p.add_argument("--token", required=True, help="the bearer token clients must send")
    p.add_argument("--state-dir", help="keeps TLS material and state.json (data survives a process restart)")
    p.add_argument("--kubeconfig-out", help="write a kubeconfig for this server here")
    p.add_argument("--watch-timeout-max", type=float, default=300, help="cap (and default) for timeoutSeconds")
    p.add_argument("--bookmark-interval", type=float, default=1.0, help="seconds between BOOKMARK events")
    p.add_argument("--history-size", type=int, default=10000, help="watch events kept before compaction")
    p.add_argument("--auto-create-namespaces", action="store_true",
                   help="create missing namespaces on demand instead of answering 404 as a real server does")
    p.add_argument("--loadbalancer-ip", default="127.0.0.1",
                   help="address given to LoadBalancer Services (empty: leave them pending)")
    p.add_argument("--cert-tool", choices=("auto", "cryptography", "openssl"), default="auto")
    p.add_argument("--keep-running-without-parent", action="store_true",
                   help="by default the server exits when the process that started it is gone")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = p.parse_args(argv)

    state_dir = args.state_dir
    if state_dir:
        os.makedirs(state_dir, exist_ok=True)
    store = Store(state_dir, args.history_size, args.auto_create_namespaces, args.loadbalancer_ip or None)
    ctx, ca = None, None
    if args.tls:
        cert_dir = state_dir or tempfile.mkdtemp(prefix="fake-apiserver-")
        ca, crt, key = make_certs(cert_dir, args.cert_tool)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        ctx.set_alpn_protocols(["http/1.1"])
    server = FakeAPIServer((args.host, args.port), store, args.token, ctx, args.bookmark_interval,
                           args.watch_timeout_max, args.verbose)
    url = f"{'https' if args.tls else 'http'}://{args.host}:{server.server_address[1]}"
    if args.kubeconfig_out:
        write_kubeconfig(args.kubeconfig_out, url, args.token, ca)

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not args.keep_running_without_parent:
        # A test runner that dies without stopping us must not leave a server behind.
        parent = os.getppid()

        def watch_parent():
            while os.getppid() == parent:
                time.sleep(1)
            stop()

        threading.Thread(target=watch_parent, daemon=True).start()
    print(f"fake-apiserver listening on {url}", flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()


if __name__ == "__main__":
    main()
