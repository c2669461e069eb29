"""`make bench-controller`: the Kubernetes controller's benchmark, against the fake API server
(testing/fake-apiserver) with the real kubectl and the release ai-gateway.

1. Route changes: 100 times, `kubectl apply` the guide's HTTPRoute with a new path prefix and
   poll the gateway (one keep-alive connection, a tight loop) until the new path is served;
   the latency is measured from just before kubectl starts, and from when it returned.
2. Scale: 5,000 Backends and 5,000 HTTPRoutes created through the API (HTTP keep-alive, a few
   threads), then a fresh gateway: time from process start to /readyz with every route in its
   table, of which the fake API server's own time answering the gateway's lists (its
   `/_fake/stats` listSeconds) and the gateway's CPU time to get there, the table's decode and
   compile time (its `aigw_table_*` gauges), its RSS (VmRSS and
   VmHWM from /proc) after the sync, and, separately, how long it takes to write the status of
   all 10,000 objects (with `--status`; on by default).
3. Route changes with those 10,000 objects loaded in the same gateway (issue 9's measure): 100
   times, the guide's HTTPRoute applied with a new path, timed from the API write (the moment
   the API server's watch delivered it) to the first request served on the new path.

Environment: BENCH_SCRATCH_PATH (default .build-release), BENCH_BIN_DIR (a directory with both
release binaries: skip the build), BENCH_CHANGES (100), BENCH_SCALE_CHANGES (100: changes with
the scale objects loaded), BENCH_BACKENDS (5000), BENCH_ROUTES (5000), BENCH_KEEP=1 keeps the work directory (logs), BENCH_GATEWAY_ARGS (extra flags for the
gateways, e.g. "--log-level debug"), BENCH_PERF (a file: `perf record` the scale gateway from its
start to the end into it, for `perf report`). Like `make bench`, it exits non-zero only
when something failed to run; missed requirements and goals print FAIL.
"""
from __future__ import annotations

import base64
import http.client
import json
import math
import os
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
NS = "kgateway-system"
TOKEN = "bench-token"
KUBECTL = shutil.which("kubectl")
REQUEST = json.dumps({"messages": [{"role": "user", "content": "What is kubernetes?"}]}).encode()
ROUTE_YAML = (REPO / "examples" / "model-failover" / "httproute.yaml").read_text()
BACKEND_YAML = (REPO / "examples" / "model-failover" / "backend.yaml").read_text()


def log(msg: str) -> None:
    print(f"bench-controller: {msg}", file=sys.stderr, flush=True)


def eventually(check, timeout: float, what: str, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"bench-controller: timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list, p: float) -> float:
    """Nearest rank: the smallest value with at least p% of the values at or below it (the 99th
    of 100 for p99). `round(x + 0.5)` here before rounded half to even, which made p99 of 100
    values the largest one while p50 was the 50th; the maximum is reported on its own."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered) - 1e-9) - 1))
    return ordered[k]


class APIServer:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.kubeconfig = workdir / "kubeconfig"
        out = workdir / "apiserver.out"
        # No --state-dir: nothing is persisted, so 10,000 writes stay linear.
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "testing" / "fake-apiserver" / "fake_apiserver.py"), "--port", "0", "--tls",
             "--token", TOKEN, "--kubeconfig-out", str(self.kubeconfig), "--history-size", "50000"],
            stdout=open(out, "w"), stderr=open(workdir / "apiserver.err", "w"), stdin=subprocess.DEVNULL)
        text = eventually(lambda: "listening on " in out.read_text() and out.read_text(), 30, "the fake API server")
        url = text.split("listening on ", 1)[1].split()[0]
        self.host, port = url.removeprefix("https://").split(":")
        self.port = int(port)
        cluster = yaml.safe_load(self.kubeconfig.read_text())["clusters"][0]["cluster"]
        self.ssl = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        self.env = {**os.environ, "KUBECACHEDIR": str(workdir / "kube-cache"), "HOME": str(workdir)}

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        r = subprocess.run([KUBECTL, "--kubeconfig", str(self.kubeconfig), *args], input=input, capture_output=True,
                           text=True, env=self.env, timeout=120)
        if r.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)} failed: {r.stderr}")
        return r

    def connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.ssl, timeout=60)

    def request(self, conn, method: str, path: str, body=None):
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if data.strip() else None)

    def stats(self) -> dict:
        conn = self.connect()
        try:
            return self.request(conn, "GET", "/_fake/stats")[1]
        finally:
            conn.close()

    def create_all(self, objects: list, threads: int = 4) -> None:
        """POSTs every (path, object), `threads` keep-alive connections in parallel."""
        errors = []

        def work(chunk):
            conn = self.connect()
            try:
                for path, obj in chunk:
                    status, body = self.request(conn, "POST", path, obj)
                    if status != 201:
                        errors.append((status, body))
                        return
            finally:
                conn.close()

        workers = [threading.Thread(target=work, args=(objects[i::threads],)) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if errors:
            raise SystemExit(f"bench-controller: create failed: {errors[0]}")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Process:
    def __init__(self, args: list, log_path: Path):
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def pid(self) -> int:
        """The process's id; under a wrapper (perf record), its child's."""
        pid = self.proc.pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        try:
            return int(children.read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return pid

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.pid()}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def proc_status(self) -> dict:
        out = {}
        for line in Path(f"/proc/{self.pid()}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024  # MiB
        return out

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid(), signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Gateway(Process):
    def __init__(self, bins: Path, api: APIServer, provider_url: str, log_path: Path, wrap: list = []):
        self.port, self.admin = free_port(), free_port()
        super().__init__([*wrap, str(bins / "ai-gateway"), "run", "--kubeconfig", str(api.kubeconfig), "--host", "127.0.0.1",
                          "--port", str(self.port), "--admin-port", str(self.admin),
                          "--provider-endpoint", f"openai={provider_url}", "--log-format", "json",
                          *os.environ.get("BENCH_GATEWAY_ARGS", "").split()], log_path)

    def get(self, path: str):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""
        except OSError:
            return None, ""

    def ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def metrics(self) -> dict:
        status, text = self.get("/metrics")
        out = {}
        for m in re.finditer(r"^(aigw_[a-z_]+) (\S+)$", text if status == 200 else "", re.M):
            out[m.group(1)] = float(m.group(2))
        return out


class Poller:
    """One keep-alive connection to the gateway, sending the guide's request."""

    def __init__(self, port: int):
        self.port = port
        self.conn = None

    def status(self, path: str) -> int:
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                self.conn.request("POST", path, body=REQUEST, headers={"content-type": "application/json"})
                r = self.conn.getresponse()
                r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status
            except (OSError, http.client.HTTPException):
                if self.conn:
                    self.conn.close()
                self.conn = None
        return 0


def build(scratch: str) -> Path:
    if os.environ.get("BENCH_BIN_DIR"):
        return Path(os.environ["BENCH_BIN_DIR"])
    # One product per call: SwiftPM keeps only the last --product when given several.
    for product in ("ai-gateway", "fake-provider"):
        log(f"building {product} (release, --scratch-path {scratch})")
        subprocess.run(["swift", "build", "-c", "release", "--scratch-path", scratch, "--product", product],
                       cwd=REPO, check=True)
    out = subprocess.run(["swift", "build", "-c", "release", "--scratch-path", scratch, "--show-bin-path"], cwd=REPO,
                         check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def route_with_path(path: str, name: str = "model-failover") -> str:
    text = ROUTE_YAML.replace("value: /model", f"value: {path}")
    assert text != ROUTE_YAML
    return text.replace("name: model-failover\n  namespace", f"name: {name}\n  namespace", 1)


class RouteWatch:
    """Watches the guide's HTTPRoute and notes when each path value first arrived: the moment
    the API server made the change visible to watchers (the gateway's watch sees it then too)."""

    def __init__(self, api: APIServer):
        self.api = api
        self.arrivals: dict = {}
        self.cond = threading.Condition()
        self.conn = api.connect()
        path = (f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes?watch=true"
                "&fieldSelector=metadata.name%3Dmodel-failover&timeoutSeconds=3600")
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
        self.response = self.conn.getresponse()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        buffer = b""
        try:
            while True:
                data = self.response.read1(65536)
                if not data:
                    return
                now = time.perf_counter()
                buffer += data
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    event = json.loads(line)
                    if event.get("type") not in ("ADDED", "MODIFIED"):
                        continue
                    for rule in event["object"]["spec"].get("rules", []):
                        for match in rule.get("matches", []):
                            value = (match.get("path") or {}).get("value")
                            with self.cond:
                                self.arrivals.setdefault(value, now)
                                self.cond.notify_all()
        except (OSError, http.client.HTTPException, ValueError, AttributeError):
            return  # closed

    def arrival(self, value: str, timeout: float = 10) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: value in self.arrivals, timeout):
                raise SystemExit(f"bench-controller: the watch did not see {value}")
            return self.arrivals[value]

    def close(self):
        self.conn.close()


def route_changes(api: APIServer, gw: Gateway, count: int, prefix: str = "bench",
                  timeline: list | None = None) -> tuple[list, list, list]:
    """Returns the latencies from kubectl's start, from its return (0 when served before it
    returned), and from the API write (the watch event) to the first request served."""
    poller = Poller(gw.port)
    watch = RouteWatch(api)
    from_start, from_return, from_write = [], [], []
    for i in range(count):
        path = f"/{prefix}-{i}"
        manifest = route_with_path(path)
        started = time.perf_counter()
        kubectl = subprocess.Popen([KUBECTL, "--kubeconfig", str(api.kubeconfig), "apply", "-f", "-"],
                                   stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   env=api.env, text=True)
        kubectl.stdin.write(manifest)
        kubectl.stdin.close()
        returned = None
        deadline = started + 30
        while True:
            if returned is None and kubectl.poll() is not None:
                returned = time.perf_counter()
            code = poller.status(path)
            if code == 200:
                served = time.perf_counter()
                break
            if time.perf_counter() > deadline:
                raise SystemExit(f"bench-controller: route change {i} not served within 30 s (last status {code})")
        if kubectl.wait(timeout=60) != 0:
            raise SystemExit(f"bench-controller: kubectl apply failed: {kubectl.stderr.read()}")
        if returned is None:
            returned = time.perf_counter()
        from_start.append(served - started)
        from_return.append(max(0.0, served - returned))
        from_write.append(max(0.0, served - watch.arrival(path)))
        if timeline is not None:  # wall clock, to line up with the gateway's log
            timeline.append({"path": path, "write": time.time() - (time.perf_counter() - watch.arrival(path)),
                             "served": time.time() - (time.perf_counter() - served)})
    watch.close()
    return from_start, from_return, from_write


def scale_objects(backends: int, routes: int) -> list:
    base = f"/apis/gateway.kgateway.dev/v1alpha1/namespaces/{NS}/backends"
    rbase = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes"
    objects = []
    for i in range(backends):
        objects.append((base, {
            "apiVersion": "gateway.kgateway.dev/v1alpha1", "kind": "Backend",
            "metadata": {"name": f"scale-{i}", "namespace": NS, "labels": {"app": "bench-scale"}},
            "spec": {"type": "AI", "ai": {"multipool": {"priorities": [
                {"pool": [{"provider": {"openai": {"model": "gpt-4o", "authToken": {
                    "kind": "SecretRef", "secretRef": {"name": "openai-secret"}}}}}]},
                {"pool": [{"provider": {"openai": {"model": "gpt-3.5-turbo", "authToken": {
                    "kind": "SecretRef", "secretRef": {"name": "openai-secret"}}}}}]},
            ]}}},
        }))
    for i in range(routes):
        objects.append((rbase, {
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": f"scale-{i}", "namespace": NS, "labels": {"app": "bench-scale"}},
            "spec": {
                "parentRefs": [{"name": "ai-gateway", "namespace": NS}],
                "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": f"/scale/{i}"}}],
                    "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {
                        "type": "ReplaceFullPath", "replaceFullPath": "/v1/chat/completions"}}}],
                    "backendRefs": [{"name": f"scale-{i % max(1, backends)}", "namespace": NS,
                                     "group": "gateway.kgateway.dev", "kind": "Backend"}],
                }],
            },
        }))
    return objects


def statuses_written(api: APIServer, backends: int, routes: int) -> bool:
    """Whether every scale object has our status (Backend Accepted, HTTPRoute parents)."""
    conn = api.connect()
    try:
        done = 0
        for plural, group in (("backends", "gateway.kgateway.dev/v1alpha1"), ("httproutes", "gateway.networking.k8s.io/v1")):
            token = ""
            while True:
                q = f"?labelSelector=app%3Dbench-scale&limit=2000" + (f"&continue={token}" if token else "")
                status, body = api.request(conn, "GET", f"/apis/{group}/namespaces/{NS}/{plural}{q}")
                for item in body["items"]:
                    st = item.get("status") or {}
                    if st.get("conditions") or st.get("parents"):
                        done += 1
                token = (body.get("metadata") or {}).get("continue") or ""
                if not token:
                    break
        return done >= backends + routes
    finally:
        conn.close()


def main() -> int:
    if KUBECTL is None:
        raise SystemExit("bench-controller: kubectl is not installed")
    scratch = os.environ.get("BENCH_SCRATCH_PATH", ".build-release")
    changes = int(os.environ.get("BENCH_CHANGES", "100"))
    scale_changes = int(os.environ.get("BENCH_SCALE_CHANGES", "100"))
    n_backends = int(os.environ.get("BENCH_BACKENDS", "5000"))
    n_routes = int(os.environ.get("BENCH_ROUTES", "5000"))
    bins = build(scratch)
    workdir = Path(tempfile.mkdtemp(prefix="bench-controller-"))
    log(f"work directory {workdir}")
    api = APIServer(workdir)
    procs = []
    results = {}
    try:
        api.kubectl("apply", "-f", str(REPO / "crds"))
        api.kubectl("wait", "--for=condition=established", "crd", "--all", "--timeout=60s")
        api.kubectl("apply", "-k", str(REPO / "manifests"))
        api.kubectl("create", "secret", "generic", "openai-secret", "-n", NS, "--from-literal=Authorization=Bearer sk-bench")
        api.kubectl("apply", "-f", "-", input=BACKEND_YAML)
        api.kubectl("apply", "-f", "-", input=ROUTE_YAML)

        provider = Process([str(bins / "fake-provider"), "--port", "0", "--no-record"], workdir / "provider.log")
        procs.append(provider)
        provider_url = eventually(
            lambda: (m := re.search(r"listening on (\S+)", (workdir / "provider.log").read_text())) and m.group(1), 30,
            "the fake provider")

        # 1. Route changes.
        gw = Gateway(bins, api, provider_url, workdir / "gateway-1.log")
        procs.append(gw)
        eventually(gw.ready, 60, "the gateway to be ready")
        eventually(lambda: Poller(gw.port).status("/model") == 200, 30, "the guide's route")
        log(f"route changes: {changes} x kubectl apply, polling for the new path")
        results["changes"] = route_changes(api, gw, changes)
        gw.stop()

        # 2. Scale.
        log(f"creating {n_backends} Backends and {n_routes} HTTPRoutes through the API")
        objects = scale_objects(n_backends, n_routes)
        t = time.perf_counter()
        api.create_all(objects)
        results["load"] = time.perf_counter() - t
        stats = api.stats()
        patches_before = (stats.get("requests") or {}).get("patch", 0)
        lists_before = (stats.get("listSeconds", 0.0), (stats.get("requests") or {}).get("list", 0))

        log("starting a fresh gateway")
        started = time.perf_counter()
        perf = os.environ.get("BENCH_PERF")
        wrap = ["perf", "record", "-e", "cpu-clock", "-F", "1999", "-g", "-o", perf, "--"] if perf else []
        gw2 = Gateway(bins, api, provider_url, workdir / "gateway-2.log", wrap=wrap)
        procs.append(gw2)
        total_routes = n_routes + 1
        eventually(lambda: gw2.ready() and gw2.metrics().get("aigw_table_routes", 0) >= total_routes, 300,
                   "the initial sync")
        results["sync"] = time.perf_counter() - started
        results["sync_cpu"] = gw2.cpu_seconds()
        stats = api.stats()
        # The fake API server's own part: its time answering the gateway's lists during the sync.
        results["server_lists"] = (stats.get("listSeconds", 0.0) - lists_before[0],
                                   (stats.get("requests") or {}).get("list", 0) - lists_before[1])
        metrics = gw2.metrics()
        results["decode"] = metrics.get("aigw_table_decode_seconds", float("nan"))
        results["compile"] = metrics.get("aigw_table_compile_seconds", float("nan"))
        results["objects"] = metrics.get("aigw_table_objects", 0)
        results["rss_sync"] = gw2.proc_status()
        # One of the new routes answers.
        results["scale_route_ok"] = Poller(gw2.port).status(f"/scale/{n_routes - 1}") == 200

        # Status of all 10,000 objects (reported separately: bound by the fake API server).
        log("waiting for the status of every scale object")
        eventually(lambda: statuses_written(api, n_backends, n_routes), 900, "every status", interval=2)
        results["status"] = time.perf_counter() - started
        stats = api.stats()
        results["patches"] = (stats.get("requests") or {}).get("patch", 0) - patches_before
        results["rss_status"] = gw2.proc_status()

        # Route changes with the scale objects loaded.
        log(f"route changes with {n_backends + n_routes} objects loaded: {scale_changes} x kubectl apply")
        timeline = []
        results["scale_changes"] = route_changes(api, gw2, scale_changes, prefix="scale-change", timeline=timeline)
        (workdir / "scale-changes.json").write_text(json.dumps(timeline, indent=1))
    finally:
        for p in reversed(procs):
            p.stop()
        api.stop()
        if os.environ.get("BENCH_KEEP") == "1":
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    return report(results, changes, n_backends, n_routes)


def report(r: dict, changes: int, n_backends: int, n_routes: int) -> int:
    ms = lambda s: f"{s * 1000:.0f} ms"
    from_start, from_return, from_write = r["changes"]
    s_start, s_return, s_write = r["scale_changes"]
    p99 = percentile(from_start, 99)
    rss = r["rss_sync"]
    rows = []
    failed = False

    def row(what, value, requirement=None, goal=None):
        nonlocal failed
        req = "" if requirement is None else ("PASS" if requirement[0] else "FAIL") + f" ({requirement[1]})"
        if requirement is not None and not requirement[0]:
            failed = True
        g = "" if goal is None else ("PASS" if goal[0] else "FAIL") + f" ({goal[1]})"
        rows.append((what, value, req, g))

    n = len(from_start)
    row(f"route change -> served, from kubectl start: p50 ({n} changes)", ms(percentile(from_start, 50)))
    row("  p99", ms(p99), (p99 < 1.0, "< 1 s"), (p99 < 0.1, "< 100 ms"))
    row("  max", ms(max(from_start)))
    row("route change -> served, from kubectl's return: p50 / p99 / max",
        f"{ms(percentile(from_return, 50))} / {ms(percentile(from_return, 99))} / {ms(max(from_return))}")
    row("route change -> served, from the API write (watch event): p50 / p99 / max",
        f"{ms(percentile(from_write, 50))} / {ms(percentile(from_write, 99))} / {ms(max(from_write))}")
    row(f"load {n_backends} Backends + {n_routes} HTTPRoutes into the fake API (info)", f"{r['load']:.1f} s")
    total = n_backends + n_routes
    row(f"initial sync of {total} objects (start -> ready, all routes in the table)", f"{r['sync']:.2f} s",
        (r["sync"] < 1, "< 1 s"))
    server_seconds, server_lists = r["server_lists"]
    row(f"  of which the fake API server answering the gateway's {server_lists} lists (its own time)",
        ms(server_seconds))
    row("  gateway CPU (user + system) from start to ready", ms(r["sync_cpu"]))
    row("  objects in the table / a scale route answers", f"{r['objects']:.0f} / {'yes' if r['scale_route_ok'] else 'NO'}",
        (r["scale_route_ok"], "served"))
    row("table decode (caches -> resources)", ms(r["decode"]))
    row("table compile (+ swap)", ms(r["compile"]), None, (r["compile"] < 1.0, "< 1 s"))
    row("RSS after sync (VmRSS / VmHWM)", f"{rss['VmRSS']:.0f} MiB / {rss['VmHWM']:.0f} MiB",
        (rss["VmHWM"] * 1.048576 < 300, "< 300 MB"), (rss["VmHWM"] * 1.048576 < 150, "< 150 MB"))
    rs = r["rss_status"]
    row(f"status of all {total} objects written (from start; {r['patches']} patches) (separate)", f"{r['status']:.1f} s")
    row("RSS after status writing (VmRSS / VmHWM)", f"{rs['VmRSS']:.0f} MiB / {rs['VmHWM']:.0f} MiB")
    row(f"route change with {total} objects loaded, from kubectl start: p50 / p99 / max ({len(s_start)})",
        f"{ms(percentile(s_start, 50))} / {ms(percentile(s_start, 99))} / {ms(max(s_start))}")
    row(f"route change with {total} objects loaded -> served, from the API write: p50", ms(percentile(s_write, 50)))
    s_p99 = percentile(s_write, 99)
    row("  p99 / max", f"{ms(s_p99)} / {ms(max(s_write))}", (s_p99 < 0.05, "< 50 ms"))

    width = max(len(w) for w, *_ in rows)
    vwidth = max(len(v) for _, v, *_ in rows)
    print()
    print(f"{'measure'.ljust(width)}  {'value'.ljust(vwidth)}  {'requirement'.ljust(18)}  goal")
    for what, value, req, goal in rows:
        print(f"{what.ljust(width)}  {value.ljust(vwidth)}  {req.ljust(18)}  {goal}")
    print()
    print("requirements: " + ("FAIL" if failed else "PASS"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
