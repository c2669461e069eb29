"""The guide's flow in Kubernetes mode: the real kubectl against the fake API server, the
gateway watching it (--kubeconfig), and the fake provider behind --provider-endpoint."""
from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from test_fake_apiserver import KUBECTL, NS, REPO, FakeServer

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

GUIDE_REQUEST = json.dumps({"messages": [{"role": "user", "content": "What is kubernetes?"}]}).encode()


def bin_dir() -> Path:
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
    def __init__(self, workdir: Path, kubeconfig: Path):
        bins = bin_dir()
        self.provider = subprocess.Popen([str(bins / "fake-provider"), "--port", "0"], stdout=subprocess.PIPE, text=True)
        line = self.provider.stdout.readline().strip()
        self.provider_url = line.rsplit(" ", 1)[1]
        self.port, self.admin = free_port(), free_port()
        self.log = open(workdir / "gateway.log", "w")
        self.proc = subprocess.Popen(
            [str(bins / "ai-gateway"), "run", "--kubeconfig", str(kubeconfig), "--host", "127.0.0.1",
             "--port", str(self.port), "--admin-port", str(self.admin),
             "--provider-endpoint", f"openai={self.provider_url}", "--log-format", "json"],
            stdout=self.log, stderr=subprocess.STDOUT)

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
        server.kubectl("apply", "-f", str(REPO / "manifests"))
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
    assert headers["x-aigw-attempts"] == "gpt-4o=ok"
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
    assert headers["x-aigw-attempts"] == "gpt-4o=503,gpt-4o=503,gpt-4.0-turbo=ok"

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
