"""The guide's flow in Kubernetes mode: the real kubectl against the fake API server, the
gateway watching it (--kubeconfig), and the fake provider behind --provider-endpoint."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from test_fake_apiserver import KUBECTL, NS, REPO, FakeServer

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

GUIDE_REQUEST = json.dumps({"messages": [{"role": "user", "content": "What is kubernetes?"}]}).encode()


def bin_dir() -> Path:
    """Where the built binaries are: AIGW_BIN_DIR if set (a build with its own --scratch-path),
    else `swift build --show-bin-path`."""
    if os.environ.get("AIGW_BIN_DIR"):
        return Path(os.environ["AIGW_BIN_DIR"])
    out = subprocess.run(["swift", "build", "--show-bin-path"], cwd=REPO, check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(check, timeout: float = 15.0):
    """Polls `check` until it returns a truthy value; fails with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


class Gateway:
    def __init__(self, workdir: Path, kubeconfig: Path, *extra: str, name: str = "gateway", env: dict | None = None):
        bins = bin_dir()
        self.provider = subprocess.Popen([str(bins / "fake-provider"), "--port", "0"], stdout=subprocess.PIPE, text=True)
        line = self.provider.stdout.readline().strip()
        self.provider_url = line.rsplit(" ", 1)[1]
        self.port, self.admin = free_port(), free_port()
        self.log_path = workdir / f"{name}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(bins / "ai-gateway"), "run", "--kubeconfig", str(kubeconfig), "--host", "127.0.0.1",
             "--port", str(self.port), "--admin-port", str(self.admin),
             "--provider-endpoint", f"openai={self.provider_url}", "--log-format", "json", *extra],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})

    def metric(self, name: str) -> float | None:
        """A label-less metric from /metrics, None when absent or unreachable."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return None
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    def log_lines(self) -> list:
        """The gateway's JSON log lines (decoded)."""
        self.log.flush()
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def request(self):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/model", data=GUIDE_REQUEST,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, dict(r.headers), json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), json.loads(e.read() or b"null")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/readyz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def fault(self, model: str, spec: str):
        urllib.request.urlopen(urllib.request.Request(f"{self.provider_url}/_fake/faults/{model}", data=spec.encode(), method="PUT"), timeout=5).read()

    def provider_requests(self) -> list:
        with urllib.request.urlopen(f"{self.provider_url}/_fake/requests", timeout=5) as r:
            return json.loads(r.read())

    def stop(self):
        for p in (self.proc, self.provider):
            p.terminate()
        for p in (self.proc, self.provider):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.log.close()


@pytest.fixture
def stack(tmp_path):
    server = FakeServer(tmp_path / "api")
    gateway = None
    try:
        server.kubectl("apply", "-f", str(REPO / "crds"))
        server.kubectl("wait", "--for=condition=established", "crd", "--all", "--timeout=30s")
        server.kubectl("apply", "-k", str(REPO / "manifests"))
        gateway = Gateway(tmp_path, server.kubeconfig)
        eventually(gateway.ready, timeout=30)
        yield server, gateway
    finally:
        if gateway:
            gateway.stop()
        server.stop()


def test_guide_flow_with_kubectl(stack):
    server, gw = stack
    # Nothing routed yet.
    assert gw.request()[0] == 404
    # The guide, word for word: the Secret, then the Backend and HTTPRoute (examples/ holds them verbatim).
    server.kubectl("create", "secret", "generic", "openai-secret", "-n", NS, "--from-literal=Authorization=Bearer sk-guide-key")
    for name in ("backend.yaml", "httproute.yaml"):
        server.kubectl("apply", "-f", "-", input=(REPO / "examples" / "model-failover" / name).read_text())

    status, headers, body = eventually(lambda: (r := gw.request())[0] == 200 and r)
    assert body["model"] == "gpt-4o"
    assert headers["x-aigw-attempts"] == "openai/gpt-4o=ok"
    sent = gw.provider_requests()[-1]
    assert dict(sent["headers"])["authorization"] == "Bearer sk-guide-key"

    # Status conditions, read as the guide's reader would.
    def jsonpath(kind, name, path):
        return server.kubectl("get", kind, name, "-n", NS, "-o", f"jsonpath={path}").stdout
    eventually(lambda: jsonpath("backend", "model-failover", '{.status.conditions[?(@.type=="Accepted")].status}') == "True")
    assert jsonpath("backend", "model-failover", '{.status.conditions[?(@.type=="Accepted")].observedGeneration}') == "1"
    eventually(lambda: jsonpath("httproute", "model-failover", '{.status.parents[0].conditions[?(@.type=="Accepted")].status}') == "True")
    assert jsonpath("httproute", "model-failover", '{.status.parents[0].conditions[?(@.type=="ResolvedRefs")].reason}') == "ResolvedRefs"
    assert jsonpath("httproute", "model-failover", "{.status.parents[0].controllerName}") == "kgateway.dev/kgateway"
    eventually(lambda: jsonpath("gateway", "ai-gateway", "{.status.listeners[0].attachedRoutes}") == "1")
    assert jsonpath("gateway", "ai-gateway", '{.status.conditions[?(@.type=="Programmed")].status}') == "True"

    # The first model fails: the request fails over inside the same call.
    gw.fault("gpt-4o", "status=503")
    status, headers, body = gw.request()
    assert status == 200 and body["model"] == "gpt-4.0-turbo"
    assert headers["x-aigw-attempts"] == "openai/gpt-4o=503,openai/gpt-4o=503,openai/gpt-4.0-turbo=ok"

    # Rotating the Secret with kubectl takes effect without a restart.
    rotated = server.kubectl("create", "secret", "generic", "openai-secret", "-n", NS,
                             "--from-literal=Authorization=Bearer sk-rotated", "--dry-run=client", "-o", "yaml").stdout
    server.kubectl("apply", "-f", "-", input=rotated)

    def rotated_key_used():
        gw.request()
        return dict(gw.provider_requests()[-1]["headers"])["authorization"] == "Bearer sk-rotated"
    eventually(rotated_key_used)

    # The guide's cleanup: delete by label, and the route is gone.
    server.kubectl("delete", "backend,httproute", "-n", NS, "-l", "app=model-failover")
    eventually(lambda: gw.request()[0] == 404)


def test_api_faults_under_load_lose_no_request(stack):
    """Drop the watches, compact history, fail API calls and restart the API server while requests
    flow: no request fails, and the gateway converges to the API's latest state."""
    import threading

    server, gw = stack
    server.kubectl("create", "secret", "generic", "openai-secret", "-n", NS, "--from-literal=Authorization=Bearer sk-k")
    for name in ("backend.yaml", "httproute.yaml"):
        server.kubectl("apply", "-f", "-", input=(REPO / "examples" / "model-failover" / name).read_text())
    eventually(lambda: gw.request()[0] == 200)

    failures, served, stop = [], [], threading.Event()

    def load():
        while not stop.is_set():
            status, headers, body = gw.request()
            if status != 200:
                failures.append((status, body))
            else:
                served.append(body["model"])

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        def admin(path):
            urllib.request.urlopen(urllib.request.Request(f"{server.url}/_fake/{path}", method="POST"),
                                   context=server.ssl, timeout=5).read()
        admin("drop-watches")
        admin("compact")
        admin("fail-next?count=5&code=500")
        admin("restart")
        # A change made meanwhile must still arrive: gpt-3.5-turbo first.
        backend = (REPO / "examples" / "model-failover" / "backend.yaml").read_text()
        reordered = backend.replace('"gpt-4o"', '"MODEL-A"').replace('"gpt-3.5-turbo"', '"gpt-4o"').replace('"MODEL-A"', '"gpt-3.5-turbo"')
        eventually(lambda: server.kubectl("apply", "-f", "-", input=reordered, check=False).returncode == 0)
        eventually(lambda: served and served[-1] == "gpt-3.5-turbo", timeout=30)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=15)
    assert failures == []
    assert served.count("gpt-4o") > 0 and served[-1] == "gpt-3.5-turbo"


def test_missing_secret_is_reported_in_the_backend_status(stack):
    server, gw = stack
    for name in ("backend.yaml", "httproute.yaml"):
        server.kubectl("apply", "-f", "-", input=(REPO / "examples" / "model-failover" / name).read_text())

    def condition():
        out = server.kubectl("get", "backend", "model-failover", "-n", NS, "-o",
                             'jsonpath={.status.conditions[?(@.type=="Accepted")].status}/{.status.conditions[?(@.type=="Accepted")].message}').stdout
        return out
    status = eventually(lambda: (c := condition()).startswith("False/") and c)
    assert "Secret kgateway-system/openai-secret not found" in status
    code, _, body = gw.request()
    assert code == 503 and "openai-secret" in json.dumps(body)
    server.kubectl("create", "secret", "generic", "openai-secret", "-n", NS, "--from-literal=Authorization=Bearer sk-late")
    eventually(lambda: condition().startswith("True/"))
    eventually(lambda: gw.request()[0] == 200)


def test_a_secret_made_before_its_backend_is_read_when_the_backend_references_it(tmp_path):
    """The gateway keeps the data of referenced Secrets only, so a Secret that was there before
    any Backend named it is held without its data; applying the Backend makes the gateway read
    that one Secret (a GET), and the request goes out with its key. The Secret list and watch
    ask the API server for the key-holding types only."""
    from urllib.parse import parse_qs, urlsplit

    from test_fake_apiserver import GATEWAY_SECRET_SELECTOR, secret

    server = FakeServer(tmp_path / "api", "--verbose")
    gateway = None
    try:
        server.kubectl("apply", "-f", str(REPO / "crds"))
        server.kubectl("wait", "--for=condition=established", "crd", "--all", "--timeout=30s")
        server.kubectl("apply", "-k", str(REPO / "manifests"))
        server.kubectl("create", "secret", "generic", "openai-secret", "-n", NS,
                       "--from-literal=Authorization=Bearer sk-made-first")
        server.kubectl("apply", "-f", "-", input=json.dumps(secret("serving-cert", NS, "kubernetes.io/tls",
                                                                   {"tls.crt": "c", "tls.key": "private"})))
        gateway = Gateway(tmp_path, server.kubeconfig)
        eventually(gateway.ready, timeout=30)

        def secret_gets():
            stats = server.ok("GET", "/_fake/stats")
            return stats["byResource"].get("secrets", {}).get("get", 0)
        before = secret_gets()  # kubectl apply read one; the gateway, with nothing referenced, none

        for name in ("backend.yaml", "httproute.yaml"):
            server.kubectl("apply", "-f", "-", input=(REPO / "examples" / "model-failover" / name).read_text())
        status, headers, body = eventually(lambda: (r := gateway.request())[0] == 200 and r)
        assert dict(gateway.provider_requests()[-1]["headers"])["authorization"] == "Bearer sk-made-first"
        assert secret_gets() == before + 1

        # Every Secret list and watch the gateway sent carried the type selector.
        # (Not line by line: the server's threads can interleave their log lines.)
        gateway_reads = re.findall(r'"GET (/api/v1/secrets\S*) HTTP/1\.1"', server.err_path.read_text())
        assert gateway_reads, "the gateway listed no Secrets"
        for path in gateway_reads:
            assert parse_qs(urlsplit(path).query)["fieldSelector"] == [GATEWAY_SECRET_SELECTOR], path
    finally:
        if gateway:
            gateway.stop()
        server.stop()


# --- The install: kustomize base and namespaced overlay, and the RBAC each grants --------------

SERVICE_ACCOUNT = (NS, "ai-gateway")


def rbac_grants(docs: list) -> list:
    """(namespace or None for cluster-wide, rule) for every rule bound to the gateway's
    ServiceAccount by the rendered install."""
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d.get("rules") or []
             for d in docs if d["kind"] in ("Role", "ClusterRole")}
    grants = []
    for d in docs:
        if d["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s.get("kind") == "ServiceAccount" and (s.get("namespace"), s["name"]) == SERVICE_ACCOUNT
                   for s in d.get("subjects") or []):
            continue
        scope = d["metadata"].get("namespace") if d["kind"] == "RoleBinding" else None
        ref = d["roleRef"]
        rules = roles[(ref["kind"], scope if ref["kind"] == "Role" else None, ref["name"])]
        grants += [(scope, rule) for rule in rules]
    return grants


def allowed(grants: list, verb: str, group: str, resource: str, namespace: str | None) -> bool:
    return any((scope is None or scope == namespace)
               and any(g in ("*", group) for g in rule["apiGroups"])
               and any(r in ("*", resource) for r in rule["resources"])
               and any(v in ("*", verb) for v in rule["verbs"])
               for scope, rule in grants)


def request_attributes(method: str, target: str):
    """(verb, group, resource[/subresource], namespace) of an API request as RBAC sees it; None
    for a non-resource path."""
    from urllib.parse import parse_qs, urlsplit
    url = urlsplit(target)
    segs = [s for s in url.path.split("/") if s]
    if segs[:1] == ["api"] and len(segs) > 2:
        group, rest = "", segs[2:]
    elif segs[:1] == ["apis"] and len(segs) > 3:
        group, rest = segs[1], segs[3:]
    else:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    if method == "GET":
        watch = parse_qs(url.query).get("watch", [""])[0] in ("1", "true")
        verb = "watch" if watch else ("get" if len(rest) > 1 else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
    return verb, group, resource, namespace


@pytest.mark.parametrize("install", ["manifests", "overlays/namespaced"])
def test_each_install_grants_every_request_the_gateway_makes(tmp_path, install):
    """Both installs render with `kubectl kustomize` and apply with `kubectl apply -k`; the
    gateway, run as the rendered Deployment runs it (its args, POD_NAMESPACE), serves the guide's
    flow and writes status, and every API request it made is allowed by the RBAC that install
    binds to its ServiceAccount. The namespaced overlay grants nothing cluster-wide but
    GatewayClasses."""
    rendered = subprocess.run([KUBECTL, "kustomize", str(REPO / install)], capture_output=True, text=True,
                              check=True).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    assert (hpa["metadata"]["namespace"], hpa["spec"]["scaleTargetRef"]) == (
        deployment["metadata"]["namespace"], {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]})
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
    args = deployment["spec"]["template"]["spec"]["containers"][0].get("args") or []
    flags = args[1:] if args[:1] == ["run"] else args
    grants = rbac_grants(docs)
    cluster_wide = {r for scope, rule in grants if scope is None for r in rule["resources"]}
    if install == "manifests":
        assert flags == [] and "secrets" in cluster_wide
    else:
        assert flags == [f"--watch-namespace={NS}"]
        assert cluster_wide == {"gatewayclasses", "gatewayclasses/status"}

    server = FakeServer(tmp_path / "api", "--verbose")
    gateway = None
    try:
        server.kubectl("apply", "-f", str(REPO / "crds"))
        server.kubectl("wait", "--for=condition=established", "crd", "--all", "--timeout=30s")
        applied = server.kubectl("apply", "-k", str(REPO / install)).stdout
        assert "deployment.apps/ai-gateway created" in applied
        assert "horizontalpodautoscaler.autoscaling/ai-gateway created" in applied
        for kind, name in (("role", "ai-gateway-leader-election"), ("clusterrole", "ai-gateway")):
            server.kubectl("get", kind, name, *(["-n", NS] if kind == "role" else []))
        server.kubectl("create", "secret", "generic", "openai-secret", "-n", NS,
                       "--from-literal=Authorization=Bearer sk-install")
        for name in ("backend.yaml", "httproute.yaml"):
            server.kubectl("apply", "-f", "-", input=(REPO / "examples" / "model-failover" / name).read_text())
        # From here on, the API requests in the server's log are the gateway's (the test only
        # reads /_fake/stats, which is not an API path).
        start = len(server.err_path.read_text())
        gateway = Gateway(tmp_path, server.kubeconfig, *flags,
                          env={"POD_NAME": "ai-gateway-test", "POD_NAMESPACE": deployment["metadata"]["namespace"]})
        eventually(gateway.ready, timeout=30)
        eventually(lambda: gateway.request()[0] == 200)
        assert dict(gateway.provider_requests()[-1]["headers"])["authorization"] == "Bearer sk-install"

        def status_written():
            by_resource = server.ok("GET", "/_fake/stats")["byResource"]
            return all(by_resource.get(r, {}).get("patch", 0) + by_resource.get(r, {}).get("update", 0) > 0
                       for r in ("backends.gateway.kgateway.dev", "httproutes.gateway.networking.k8s.io",
                                 "gateways.gateway.networking.k8s.io", "gatewayclasses.gateway.networking.k8s.io"))
        eventually(status_written, timeout=30)
    finally:
        if gateway:
            gateway.stop()
        server.stop()

    requests = set()
    # Not line by line: the server's threads can interleave their log lines.
    for m in re.finditer(r'"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.1"', server.err_path.read_text()[start:]):
        if not m.group(2).startswith("/_fake/") and (attrs := request_attributes(*m.groups())):
            requests.add(attrs)
    verbs = {(verb, resource) for verb, _, resource, _ in requests}
    assert {("list", "secrets"), ("watch", "secrets"), ("get", "secrets"), ("patch", "backends/status"),
            ("create", "leases")} <= verbs, verbs
    denied = sorted(r for r in requests if not allowed(grants, *r))
    assert denied == [], f"{install} does not allow: {denied}"
    if install != "manifests":
        assert {ns for _, _, resource, ns in requests if not resource.startswith("gatewayclasses")} == {NS}


INJECTED_BACKEND = """apiVersion: gateway.kgateway.dev/v1alpha1
kind: Backend
metadata: {name: model-failover, namespace: kgateway-system}
spec:
  type: AI
  ai:
    llm:
      provider:
        openai:
          model: gpt-4o
          authToken: {kind: SecretRef, secretRef: {name: openai-secret}}
      pathOverride:
        fullPath: "/v1/chat/completions HTTP/1.1\\r\\nX-Injected: yes\\r\\nX-Pad: x"
"""


def test_a_backend_whose_path_would_add_a_header_is_not_accepted(stack):
    """The schema takes any string, so the API server stores the Backend; the gateway refuses it
    where it decodes, says why in the Backend's Accepted condition, and sends nothing of it."""
    server, gw = stack
    server.kubectl("apply", "-f", "-", input=(REPO / "examples" / "model-failover" / "httproute.yaml").read_text())
    server.kubectl("create", "secret", "generic", "openai-secret", "-n", NS, "--from-literal=Authorization=Bearer sk-x")
    server.kubectl("apply", "-f", "-", input=INJECTED_BACKEND)

    def condition():
        return server.kubectl("get", "backend", "model-failover", "-n", NS, "-o",
                              'jsonpath={.status.conditions[?(@.type=="Accepted")].status}/'
                              '{.status.conditions[?(@.type=="Accepted")].reason}/'
                              '{.status.conditions[?(@.type=="Accepted")].message}').stdout
    status = eventually(lambda: (c := condition()).startswith("False/") and c)
    assert status.startswith("False/Invalid/spec.ai.llm.pathOverride.fullPath: must be a URL path: spaces are not allowed")
    code, _, _ = gw.request()
    assert code != 200
    assert gw.provider_requests() == []
    # Fixed, it is accepted and serves.
    server.kubectl("apply", "-f", "-", input=INJECTED_BACKEND.replace(
        "/v1/chat/completions HTTP/1.1\\r\\nX-Injected: yes\\r\\nX-Pad: x", "/v1/chat/completions"))
    eventually(lambda: condition().startswith("True/"))
    eventually(lambda: gw.request()[0] == 200)


def test_insecure_skip_verify_true_is_reported_not_dropped(stack):
    """The CRD keeps the field (instead of pruning it), so the gateway sees it and says it is not
    supported: provider TLS is always verified."""
    server, gw = stack
    backend = (INJECTED_BACKEND.split("      pathOverride:")[0]
               + "      hostOverride: {host: llm.internal, port: 443, insecureSkipVerify: true}\n")
    assert "insecureSkipVerify" in backend
    server.kubectl("apply", "-f", "-", input=backend)

    def condition():
        return server.kubectl("get", "backend", "model-failover", "-n", NS, "-o",
                              'jsonpath={.status.conditions[?(@.type=="Accepted")].status}/'
                              '{.status.conditions[?(@.type=="Accepted")].message}').stdout
    status = eventually(lambda: (c := condition()).startswith("False/") and c)
    assert status == ("False/spec.ai.llm.hostOverride.insecureSkipVerify: not supported: provider TLS is always "
                      "verified (trust a private CA with --provider-ca-file)")


# --- Leader election: two replicas against one API server -------------------------------------

FAST_ELECTION = ("--leader-election-lease-duration", "2s", "--leader-election-renew-deadline", "1500ms",
                 "--leader-election-retry-period", "200ms")


@pytest.fixture
def replicas(tmp_path):
    """The install, and a function that starts two gateways on it with POD_NAME/POD_NAMESPACE as
    the Deployment sets them (and extra flags); everything is stopped afterwards."""
    server = FakeServer(tmp_path / "api")
    gateways = []

    def start(*flags: str) -> list:
        for name in ("replica-1", "replica-2"):
            gateways.append(Gateway(tmp_path, server.kubeconfig, "--log-level", "debug", *flags, name=name,
                                    env={"POD_NAME": name, "POD_NAMESPACE": NS}))
        for gw in gateways:
            eventually(gw.ready, timeout=30)
        return gateways

    try:
        server.kubectl("apply", "-f", str(REPO / "crds"))
        server.kubectl("wait", "--for=condition=established", "crd", "--all", "--timeout=30s")
        server.kubectl("apply", "-k", str(REPO / "manifests"))
        yield server, start
    finally:
        for gw in gateways:
            gw.stop()
        server.stop()


def lease(server) -> tuple[str, int]:
    """(holderIdentity, leaseTransitions) of the gateway's Lease, read with kubectl."""
    out = server.kubectl("get", "lease", "ai-gateway", "-n", NS, "-o",
                         "jsonpath={.spec.holderIdentity}/{.spec.leaseTransitions}", check=False)
    if out.returncode != 0:
        return "", -1
    holder, _, transitions = out.stdout.partition("/")
    return holder, int(transitions or 0)


def leader_of(server, gateways):
    holder = lease(server)[0]
    return next((gw for gw, name in zip(gateways, ("replica-1", "replica-2")) if holder.startswith(name + "_")), None)


def status_writes(gw, obj: str) -> int:
    return sum(1 for e in gw.log_lines() if e.get("msg") == "status written" and e.get("object") == obj)


def accepted(server, name):
    return server.kubectl("get", "backend", name, "-n", NS, "-o",
                          'jsonpath={.status.conditions[?(@.type=="Accepted")].status}').stdout == "True"


class Load:
    """Sends the guide's request to each gateway in its own thread until stopped; any answer
    other than 200 is a failure."""

    def __init__(self, gateways):
        import threading
        self.stops = {id(gw): threading.Event() for gw in gateways}
        self.failures, self.served = [], {id(gw): 0 for gw in gateways}
        self.threads = [threading.Thread(target=self.run, args=(gw,)) for gw in gateways]
        for t in self.threads:
            t.start()

    def run(self, gw):
        while not self.stops[id(gw)].is_set():
            code, _, body = gw.request()
            if code == 200:
                self.served[id(gw)] += 1
            else:
                self.failures.append((gw.log_path.name, code, body))

    def stop(self, gw=None):
        for key, event in self.stops.items():
            if gw is None or key == id(gw):
                event.set()
        if gw is None:
            for t in self.threads:
                t.join(timeout=15)


def test_one_replica_leads_and_writes_status_and_the_peer_takes_over_on_sigterm(replicas):
    server, start = replicas
    gateways = start()
    eventually(lambda: leader_of(server, gateways))
    leader = leader_of(server, gateways)
    follower = next(gw for gw in gateways if gw is not leader)
    holder, transitions = lease(server)
    assert holder.startswith(("replica-1_", "replica-2_")) and len(holder) > len("replica-1_")
    eventually(lambda: leader.metric("aigw_leader") == 1.0)
    assert follower.metric("aigw_leader") == 0.0
    # Both are ready, whoever leads.
    assert leader.ready() and follower.ready()

    server.kubectl("create", "secret", "generic", "openai-secret", "-n", NS, "--from-literal=Authorization=Bearer sk-k")
    for name in ("backend.yaml", "httproute.yaml"):
        server.kubectl("apply", "-f", "-", input=(REPO / "examples" / "model-failover" / name).read_text())
    eventually(lambda: accepted(server, "model-failover"))
    for gw in gateways:
        eventually(lambda: gw.request()[0] == 200)
    # The status came from the leader alone (its debug log names each write).
    obj = "backends/kgateway-system/model-failover"
    eventually(lambda: status_writes(leader, obj) >= 1)
    assert status_writes(follower, obj) == 0
    assert status_writes(follower, "gateways/kgateway-system/ai-gateway") == 0

    load = Load(gateways)
    try:
        # Wait until both have served under load, then stop the leader the way Kubernetes does.
        eventually(lambda: all(load.served[id(gw)] > 0 for gw in gateways))
        load.stop(leader)
        leader.proc.send_signal(signal.SIGTERM)
        assert leader.proc.wait(timeout=40) == 0
        assert any(e.get("msg") == "lease released" for e in leader.log_lines())

        eventually(lambda: lease(server)[0].startswith(follower.log_path.stem + "_"), timeout=30)
        assert lease(server)[1] == transitions + 1
        eventually(lambda: follower.metric("aigw_leader") == 1.0)

        # Status written from now on comes from the new leader.
        served_before = load.served[id(follower)]
        second = (REPO / "examples" / "model-failover" / "backend.yaml").read_text().replace(
            "name: model-failover\n  namespace", "name: model-failover-2\n  namespace", 1)
        assert "model-failover-2" in second
        server.kubectl("apply", "-f", "-", input=second)
        eventually(lambda: accepted(server, "model-failover-2"))
        eventually(lambda: status_writes(follower, "backends/kgateway-system/model-failover-2") >= 1)
        eventually(lambda: load.served[id(follower)] > served_before)
    finally:
        load.stop()
    assert load.failures == []


def test_a_killed_leaders_lease_expires_and_the_peer_takes_over(replicas):
    server, start = replicas
    gateways = start(*FAST_ELECTION)
    eventually(lambda: leader_of(server, gateways))
    leader = leader_of(server, gateways)
    follower = next(gw for gw in gateways if gw is not leader)
    _, transitions = lease(server)
    # No release: the lease must expire (2 s here) before the peer may take it.
    leader.proc.kill()
    leader.proc.wait(timeout=10)
    eventually(lambda: lease(server)[0].startswith(follower.log_path.stem + "_"), timeout=30)
    assert lease(server)[1] == transitions + 1
    eventually(lambda: follower.metric("aigw_leader") == 1.0)
    # The new leader writes the status of what exists (the install's Gateway here).
    server.kubectl("create", "secret", "generic", "openai-secret", "-n", NS, "--from-literal=Authorization=Bearer sk-k")
    server.kubectl("apply", "-f", "-", input=(REPO / "examples" / "model-failover" / "backend.yaml").read_text())
    eventually(lambda: accepted(server, "model-failover"))
    eventually(lambda: status_writes(follower, "backends/kgateway-system/model-failover") >= 1)
