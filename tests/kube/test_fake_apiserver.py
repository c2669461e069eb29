"""Tests of the fake Kubernetes API server (testing/fake-apiserver) and of the install
manifests (crds/, manifests/), driven over real TLS sockets by the real kubectl and by
http.client. Run: python3 -m pytest tests/kube -q
"""

from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SERVER_SCRIPT = REPO / "testing" / "fake-apiserver" / "fake_apiserver.py"
KUBECTL = shutil.which("kubectl")
TOKEN = "test-token-1234"
NS = "kgateway-system"

needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

# The guide's manifests, verbatim (docs: "Model failover", kgateway AI Gateway).
GUIDE_BACKEND = """\
apiVersion: gateway.kgateway.dev/v1alpha1
kind: Backend
metadata:
  labels:
    app: model-failover
  name: model-failover
  namespace: kgateway-system
spec:
  type: AI
  ai:
    multipool:
      priorities:
      - pool:
        - provider:
            openai:
              model: "gpt-4o"
              authToken:
                kind: SecretRef
                secretRef:
                  name: openai-secret
      - pool:
        - provider:
            openai:
              model: "gpt-4.0-turbo"
              authToken:
                kind: SecretRef
                secretRef:
                  name: openai-secret
      - pool:
        - provider:
            openai:
              model: "gpt-3.5-turbo"
              authToken:
                kind: SecretRef
                secretRef:
                  name: openai-secret
"""
GUIDE_ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: model-failover
  namespace: kgateway-system
  labels:
    app: model-failover
spec:
  parentRefs:
    - name: ai-gateway
      namespace: kgateway-system
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /model
    filters:
    - type: URLRewrite
      urlRewrite:
        path:
          type: ReplaceFullPath
          replaceFullPath: /v1/chat/completions
    backendRefs:
    - name: model-failover
      namespace: kgateway-system
      group: gateway.kgateway.dev
      kind: Backend
"""


def _load_fake_module():
    spec = importlib.util.spec_from_file_location("fake_apiserver", SERVER_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


class Watch:
    """One open watch stream, read line by line with a socket timeout."""

    def __init__(self, conn: http.client.HTTPSConnection, response: http.client.HTTPResponse):
        self.conn, self.response, self.buffer = conn, response, b""

    def next(self) -> dict | None:
        """The next event; None at a clean end. A stream cut without its last chunk raises
        IncompleteRead (read1 reports it; readline would hide it)."""
        while b"\n" not in self.buffer:
            data = self.response.read1(65536)
            if not data:
                assert not self.buffer, self.buffer
                return None
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def next_non_bookmark(self, deadline_s: float = 5) -> dict | None:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            event = self.next()
            if event is None or event["type"] != "BOOKMARK":
                return event
        raise AssertionError("no event before the deadline")

    def close(self):
        self.conn.close()


class FakeServer:
    """The fake API server in a subprocess on an ephemeral port with TLS."""

    def __init__(self, workdir: Path, *extra: str, state_dir: Path | None = None):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = workdir / "kubeconfig"
        self.state_dir = state_dir or workdir / "state"
        out, self.err_path = workdir / "stdout", workdir / "stderr"
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), "--port", "0", "--tls", "--token", TOKEN,
             "--state-dir", str(self.state_dir), "--kubeconfig-out", str(self.kubeconfig),
             "--bookmark-interval", "0.2", *extra],
            stdout=open(out, "w"), stderr=open(self.err_path, "w"), stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        self.url = None
        while self.url is None:
            text = out.read_text()
            if "listening on " in text:
                self.url = text.split("listening on ", 1)[1].split()[0]
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"fake-apiserver did not start: {self.err_path.read_text()[-2000:]}")
            else:
                time.sleep(0.02)
        self.host, port = self.url.removeprefix("https://").split(":")
        self.port = int(port)
        cluster = yaml.safe_load(self.kubeconfig.read_text())["clusters"][0]["cluster"]
        self.ssl = ssl.create_default_context(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        self.env = {**os.environ, "KUBECACHEDIR": str(workdir / "kube-cache"), "HOME": str(workdir)}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def connect(self, timeout: float = 10) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.ssl, timeout=timeout)

    def api(self, method: str, path: str, body=None, token: str | None = TOKEN,
            content_type: str = "application/json", headers: dict | None = None):
        """Returns (status, decoded JSON body, response headers)."""
        conn = self.connect()
        try:
            h = {"Content-Type": content_type, **(headers or {})}
            if token:
                h["Authorization"] = f"Bearer {token}"
            data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
            conn.request(method, path, body=data, headers=h)
            response = conn.getresponse()
            raw = response.read()
            return response.status, (json.loads(raw) if raw.strip() else None), response.headers
        finally:
            conn.close()

    def ok(self, method: str, path: str, body=None, **kw) -> dict:
        status, data, _ = self.api(method, path, body, **kw)
        assert 200 <= status < 300, (status, data)
        return data

    def watch(self, path: str, timeout: float = 10) -> Watch:
        conn = self.connect(timeout)
        conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
        response = conn.getresponse()
        assert response.status == 200, response.read()
        assert response.getheader("Transfer-Encoding") == "chunked"
        return Watch(conn, response)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([KUBECTL, "--kubeconfig", str(self.kubeconfig), *args], input=input,
                                capture_output=True, text=True, env=self.env, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result


def configmap(name: str, ns: str = "default", labels: dict | None = None, data: dict | None = None) -> dict:
    meta = {"name": name, "namespace": ns, **({"labels": labels} if labels else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {}}


def backend(name: str, token: dict | None = None) -> dict:
    token = token or {"kind": "Inline", "inline": "sk-test"}
    return {"apiVersion": "gateway.kgateway.dev/v1alpha1", "kind": "Backend",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"type": "AI", "ai": {"llm": {"openai": {"model": "gpt-4o", "authToken": token}}}}}


BACKENDS = f"/apis/gateway.kgateway.dev/v1alpha1/namespaces/{NS}/backends"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = FakeServer(tmp_path_factory.mktemp("fake-apiserver"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def cluster(server):
    """The shared server with crds/ and manifests/ applied by kubectl (`apply -k` for the
    kustomize base), or, without kubectl, by posting the documents directly."""
    if KUBECTL:
        server.kubectl("apply", "-f", str(REPO / "crds"))
        server.kubectl("apply", "-k", str(REPO / "manifests"))
    else:
        paths = sorted((REPO / "crds").glob("*.yaml")) + [REPO / "manifests" / p for p in base_resources()]
        for path in paths:
            for doc in yaml.safe_load_all(path.read_text()):
                _post_document(server, doc)
    return server


def base_resources() -> list:
    """The files manifests/kustomization.yaml lists."""
    return yaml.safe_load((REPO / "manifests" / "kustomization.yaml").read_text())["resources"]


def _post_document(server: FakeServer, doc: dict):
    group_version, kind = doc["apiVersion"], doc["kind"]
    plural = {"Namespace": "namespaces", "ServiceAccount": "serviceaccounts", "Service": "services",
              "CustomResourceDefinition": "customresourcedefinitions", "ClusterRole": "clusterroles",
              "ClusterRoleBinding": "clusterrolebindings", "Role": "roles", "RoleBinding": "rolebindings",
              "Deployment": "deployments", "PodDisruptionBudget": "poddisruptionbudgets",
              "HorizontalPodAutoscaler": "horizontalpodautoscalers",
              "GatewayClass": "gatewayclasses", "Gateway": "gateways"}[kind]
    base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    ns = doc["metadata"].get("namespace")
    server.ok("POST", f"{base}/namespaces/{ns}/{plural}" if ns else f"{base}/{plural}", doc)


# ---------------------------------------------------------------------------------------
# The repository's manifests and the CEL rules the fake knows.
# ---------------------------------------------------------------------------------------

def test_every_cel_rule_in_crds_is_implemented_by_the_fake():
    fake = _load_fake_module()
    rules = []

    def walk(node):
        if isinstance(node, dict):
            rules.extend(r["rule"] for r in node.get("x-kubernetes-validations") or [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted((REPO / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            walk(doc)
    assert len(set(rules)) >= 15
    assert sorted(set(rules) - set(fake.CEL_RULES)) == []


def test_manifests_have_the_required_shape():
    docs = [d for p in sorted((REPO / "manifests").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())]
    assert docs[0]["kind"] == "Namespace" and docs[0]["metadata"]["name"] == NS
    by_kind = {d["kind"]: d for d in docs}
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert by_kind["Deployment"]["spec"]["replicas"] == 2
    # The image's ENTRYPOINT is `ai-gateway run`: no args (test_shipped_commands.py starts it).
    assert container["image"] == "ai-gateway:latest" and "args" not in container and "command" not in container
    assert {p["containerPort"] for p in container["ports"]} == {8080, 9091}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["runAsUser"] == 65532
    assert pod["terminationGracePeriodSeconds"] == 45
    assert {e["name"] for e in container["env"]} == {"POD_NAME", "POD_NAMESPACE"}
    rules = by_kind["ClusterRole"]["rules"]
    writes = {r for rule in rules if set(rule["verbs"]) & {"update", "patch", "create", "delete"}
              for r in rule["resources"]}
    assert all(r.endswith("/status") for r in writes), writes
    assert by_kind["GatewayClass"]["spec"]["controllerName"] == "kgateway.dev/kgateway"
    assert by_kind["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    assert_hpa_scales_the_gateway(docs)


def assert_hpa_scales_the_gateway(docs: list):
    """The HorizontalPodAutoscaler scales the gateway Deployment on CPU utilization, which needs a
    CPU request on its container; it never goes below the Deployment's replicas, nor below what
    the PodDisruptionBudget needs to let a node drain."""
    hpas = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert len(hpas) == 1
    hpa, deployment = hpas[0], next(d for d in docs if d["kind"] == "Deployment")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["metadata"]["namespace"] == deployment["metadata"]["namespace"] == NS
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
    replicas = deployment["spec"]["replicas"]
    assert hpa["spec"]["minReplicas"] == replicas and hpa["spec"]["maxReplicas"] > replicas
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]
    resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    request, limit = resources["requests"]["cpu"], resources["limits"]["cpu"]
    millicores = lambda q: int(q[:-1]) if q.endswith("m") else int(float(q) * 1000)
    # The target must be reachable under the limit: 70% of the request is below the limit.
    assert 0 < millicores(request) * 70 // 100 < millicores(limit)


# ---------------------------------------------------------------------------------------
# kubectl against the fake.
# ---------------------------------------------------------------------------------------

def test_the_kustomize_base_lists_every_manifest():
    """`kubectl apply -k manifests/` must install all of it: a file left out of the
    kustomization would be silently skipped."""
    listed = base_resources()
    assert sorted(listed) == sorted(p.name for p in (REPO / "manifests").glob("*.yaml") if p.name != "kustomization.yaml")
    assert listed == sorted(listed)  # in install order (namespace first)


@needs_kubectl
def test_kubectl_applies_crds_and_manifests(cluster):
    dry = cluster.kubectl("apply", "--dry-run=client", "-k", str(REPO / "manifests"))
    # The cluster fixture applied them already: kubectl 1.37 says "unchanged", 1.32 "configured".
    assert any(f"deployment.apps/ai-gateway {verb} (dry run)" in dry.stdout
               for verb in ("created", "configured", "unchanged")), dry.stdout
    crds = cluster.kubectl("get", "crd", "-o", "name").stdout.split()
    assert "customresourcedefinition.apiextensions.k8s.io/backends.gateway.kgateway.dev" in crds
    established = cluster.kubectl(
        "get", "crd", "backends.gateway.kgateway.dev",
        "-o", "jsonpath={.status.conditions[?(@.type=='Established')].status}").stdout
    assert established == "True"
    assert cluster.kubectl("get", "deploy", "-n", NS, "ai-gateway", "-o",
                           "jsonpath={.spec.replicas}").stdout == "2"
    assert cluster.kubectl("get", "gatewayclass", "kgateway", "-o",
                           "jsonpath={.spec.controllerName}").stdout == "kgateway.dev/kgateway"
    assert any(f"horizontalpodautoscaler.autoscaling/ai-gateway {verb} (dry run)" in dry.stdout
               for verb in ("created", "configured", "unchanged")), dry.stdout
    assert cluster.kubectl("get", "hpa", "-n", NS, "ai-gateway", "-o",
                           "jsonpath={.spec.scaleTargetRef.kind}/{.spec.scaleTargetRef.name}").stdout == "Deployment/ai-gateway"
    # The guide reads the gateway address this way.
    address = cluster.kubectl("get", "svc", "-n", NS, "ai-gateway", "-o",
                              "jsonpath={.status.loadBalancer.ingress[0]['hostname','ip']}").stdout
    assert address == "127.0.0.1"
    # Applying again changes nothing (the PDB always reports "configured": its selector is
    # patchStrategy=replace, so kubectl always sends it; the server sees a no-op).
    before = cluster.ok("GET", "/_fake/stats")["resourceVersion"]
    again = cluster.kubectl("apply", "-k", str(REPO / "manifests")).stdout
    assert "deployment.apps/ai-gateway unchanged" in again
    assert cluster.ok("GET", "/_fake/stats")["resourceVersion"] == before


@needs_kubectl
def test_guide_flow_with_kubectl(cluster):
    k = cluster.kubectl
    k("create", "secret", "generic", "openai-secret", "-n", NS, "--from-literal=Authorization=Bearer sk-test")
    assert "backend.gateway.kgateway.dev/model-failover created" in k("apply", "-f-", input=GUIDE_BACKEND).stdout
    assert "httproute.gateway.networking.k8s.io/model-failover created" in k("apply", "-f-", input=GUIDE_ROUTE).stdout

    table = k("get", "backend", "-n", NS).stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "AGE"]
    assert table[1].split()[:2] == ["model-failover", "AI"]
    models = k("get", "backend", "-n", NS, "model-failover", "-o",
               "jsonpath={.spec.ai.multipool.priorities[*].pool[0].provider.openai.model}").stdout
    assert models.split() == ["gpt-4o", "gpt-4.0-turbo", "gpt-3.5-turbo"]
    # Defaults from the schema were applied to the route.
    assert k("get", "httproute", "-n", NS, "model-failover", "-o",
             "jsonpath={.spec.rules[0].backendRefs[0].weight}").stdout == "1"

    # Apply a change: client-side apply sends a JSON merge patch; generation moves.
    changed = GUIDE_BACKEND.replace('"gpt-3.5-turbo"', '"gpt-4o-mini"')
    assert "configured" in k("apply", "-f-", input=changed).stdout
    obj = json.loads(k("get", "backend", "-n", NS, "model-failover", "-o", "json").stdout)
    assert obj["metadata"]["generation"] == 2
    assert obj["spec"]["ai"]["multipool"]["priorities"][2]["pool"][0]["provider"]["openai"]["model"] == "gpt-4o-mini"
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]

    k("label", "backend", "-n", NS, "model-failover", "tier=gold")
    assert k("get", "backend", "-n", NS, "-l", "tier in (gold,silver),app=model-failover",
             "-o", "name").stdout.strip() == "backend.gateway.kgateway.dev/model-failover"
    assert k("get", "backend", "-n", NS, "-l", "tier!=gold", "-o", "name").stdout.strip() == ""

    # Secret rotation the usual way.
    rotated = k("create", "secret", "generic", "openai-secret", "-n", NS,
                "--from-literal=Authorization=Bearer sk-rotated", "--dry-run=client", "-o", "yaml").stdout
    k("apply", "-f", "-", input=rotated)
    data = k("get", "secret", "-n", NS, "openai-secret", "-o", "jsonpath={.data.Authorization}").stdout
    assert base64.b64decode(data) == b"Bearer sk-rotated"

    # The guide's cleanup.
    out = k("delete", "backend,httproute", "-n", NS, "-l", "app=model-failover").stdout
    assert 'backend.gateway.kgateway.dev "model-failover" deleted' in out
    assert 'httproute.gateway.networking.k8s.io "model-failover" deleted' in out
    gone = k("get", "backend,httproute", "-n", NS, "-o", "name").stdout
    assert gone.strip() == ""
    assert cluster.api("GET", f"{BACKENDS}/model-failover")[0] == 404


@needs_kubectl
def test_strict_validation_rejects_a_typo_naming_the_field(cluster):
    typo = GUIDE_BACKEND.replace('model: "gpt-4o"', 'modle: "gpt-4o"').replace("model-failover", "typo")
    result = cluster.kubectl("apply", "-f-", input=typo, check=False)
    assert result.returncode != 0
    assert 'strict decoding error: unknown field "spec.ai.multipool.priorities[0].pool[0].provider.openai.modle"' \
        in result.stderr
    assert cluster.api("GET", f"{BACKENDS}/typo")[0] == 404
    # Without Strict the unknown field is pruned and reported as a warning.
    status, obj, headers = cluster.api("POST", BACKENDS + "?fieldValidation=Warn",
                                       yaml.safe_load(typo.replace("name: typo", "name: typo-warn")))
    assert status == 201
    assert "modle" not in json.dumps(obj["spec"])
    assert "modle" in headers["Warning"]


@needs_kubectl
def test_cel_and_schema_violations_are_rejected(cluster):
    no_ref = GUIDE_BACKEND.replace("model-failover", "cel").replace(
        "                secretRef:\n                  name: openai-secret\n", "", 1)
    result = cluster.kubectl("apply", "-f-", input=no_ref, check=False)
    assert result.returncode != 0
    assert "spec.ai.multipool.priorities[0].pool[0].provider.openai.authToken: " \
           'Invalid value: "object": secretRef must be set when kind is SecretRef' in result.stderr

    bad_type = GUIDE_BACKEND.replace("model-failover", "bad").replace("type: AI", "type: Lambda")
    result = cluster.kubectl("apply", "-f-", input=bad_type, check=False)
    assert 'spec.type: Unsupported value: "Lambda": supported values: "AI", "AWS", "Static"' in result.stderr


def test_schema_validation_details(cluster):
    two_shapes = backend("two")
    two_shapes["spec"]["ai"]["priorityGroups"] = [{"providers": [{"name": "a", "openai": {
        "authToken": {"kind": "Passthrough"}}}]}]
    status, body, _ = cluster.api("POST", BACKENDS + "?fieldValidation=Strict", two_shapes)
    assert status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.ai", "message":
                                          'Invalid value: "object": exactly one of llm, multipool or '
                                          'priorityGroups must be set'}]

    missing = backend("missing")
    del missing["spec"]["type"]
    missing["spec"]["ai"]["llm"]["port"] = 70000
    status, body, _ = cluster.api("POST", BACKENDS, missing)
    assert status == 422
    assert body["message"].startswith('Backend.gateway.kgateway.dev "missing" is invalid: [')
    fields = {c["field"]: c["reason"] for c in body["details"]["causes"]}
    assert fields["spec.type"] == "FieldValueRequired"
    assert fields["spec.ai.llm.port"] == "FieldValueInvalid"  # maximum
    assert fields["spec.ai.llm"] == "FieldValueInvalid"  # CEL: host and port together

    dup = backend("dup")
    entry = {"name": "same", "openai": {"authToken": {"kind": "Passthrough"}}}
    dup["spec"]["ai"] = {"priorityGroups": [{"providers": [entry, dict(entry)]}]}
    status, body, _ = cluster.api("POST", BACKENDS, dup)
    assert status == 422 and body["details"]["causes"][0]["field"] == "spec.ai.priorityGroups[0].providers[1]"
    assert body["details"]["causes"][0]["reason"] == "FieldValueDuplicate"

    # A later-shape entry with host/port/path/authHeader is accepted and defaults apply.
    later = backend("later")
    later["spec"]["ai"] = {"priorityGroups": [{"providers": [
        {"name": "primary", "host": "127.0.0.1", "port": 8443, "path": {"full": "/v1/chat/completions"},
         "authHeader": {"headerName": "api-key"}, "openai": {"authToken": {"kind": "Passthrough"}}},
        {"name": "bedrock", "bedrock": {"model": "m", "auth": {"type": "Secret", "secretRef": {"name": "aws"}}}}]}]}
    created = cluster.ok("POST", BACKENDS + "?fieldValidation=Strict", later)
    assert created["spec"]["ai"]["priorityGroups"][0]["providers"][1]["bedrock"]["region"] == "us-east-1"


# ---------------------------------------------------------------------------------------
# The API directly.
# ---------------------------------------------------------------------------------------

def test_discovery_version_openapi_and_auth(server):
    assert server.ok("GET", "/version", token=None)["minor"] == "32"
    status, body, _ = server.api("GET", "/api/v1/namespaces", token=None)
    assert (status, body["kind"], body["reason"], body["code"]) == (401, "Status", "Unauthorized", 401)
    assert server.api("GET", "/api/v1/namespaces", token="wrong")[0] == 401
    groups = {g["name"] for g in server.ok("GET", "/apis")["groups"]}
    assert {"apps", "rbac.authorization.k8s.io", "apiextensions.k8s.io"} <= groups
    core = {r["name"]: r for r in server.ok("GET", "/api/v1")["resources"]}
    assert core["secrets"]["namespaced"] and "watch" in core["secrets"]["verbs"]
    assert core["namespaces/status"]["verbs"] == ["get", "patch", "update"]
    # Aggregated discovery is not served: the legacy document and content type come back.
    status, body, headers = server.api("GET", "/apis", headers={
        "Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"})
    assert status == 200 and body["kind"] == "APIGroupList" and headers["Content-Type"] == "application/json"
    index = server.ok("GET", "/openapi/v3")["paths"]
    doc = server.ok("GET", index["api/v1"]["serverRelativeURL"])
    patch = doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "ConfigMap"
    assert any(p["name"] == "fieldValidation" and p["in"] == "query" for p in patch["parameters"])


def test_crd_registration_serves_the_kind(cluster):
    resources = {r["name"]: r for r in cluster.ok("GET", "/apis/gateway.kgateway.dev/v1alpha1")["resources"]}
    assert resources["backends"]["kind"] == "Backend" and resources["backends"]["singularName"] == "backend"
    assert "backends/status" in resources
    gw = {r["name"]: r for r in cluster.ok("GET", "/apis/gateway.networking.k8s.io/v1")["resources"]}
    assert gw["gatewayclasses"]["namespaced"] is False and gw["gateways"]["shortNames"] == ["gtw"]
    grants = cluster.ok("GET", "/apis/gateway.networking.k8s.io")
    assert grants["preferredVersion"]["version"] == "v1"
    assert {v["version"] for v in grants["versions"]} == {"v1", "v1beta1"}
    table = cluster.ok("GET", BACKENDS, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Type", "Age"]


def test_namespaces_must_exist(server, tmp_path):
    status, body, _ = server.api("POST", "/api/v1/namespaces/nope/configmaps", configmap("x", "nope"))
    assert (status, body["reason"], body["message"]) == (404, "NotFound", 'namespaces "nope" not found')
    relaxed = FakeServer(tmp_path, "--auto-create-namespaces")
    try:
        relaxed.ok("POST", "/api/v1/namespaces/apps/configmaps", configmap("x", "apps"))
        assert relaxed.ok("GET", "/api/v1/namespaces/apps")["status"]["phase"] == "Active"
    finally:
        relaxed.stop()


def test_crud_conflicts_and_status_errors(server):
    created = server.ok("POST", CONFIGMAPS, configmap("crud", data={"a": "1"}))
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and int(meta["resourceVersion"]) > 0
    status, body, _ = server.api("POST", CONFIGMAPS, configmap("crud"))
    assert (status, body["reason"]) == (409, "AlreadyExists")
    assert body["message"] == 'configmaps "crud" already exists'

    updated = server.ok("PUT", f"{CONFIGMAPS}/crud", {**created, "data": {"a": "2"}})
    assert int(updated["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    status, body, _ = server.api("PUT", f"{CONFIGMAPS}/crud", {**created, "data": {"a": "3"}})
    assert (status, body["reason"]) == (409, "Conflict")
    assert "the object has been modified" in body["message"]
    # A no-op write keeps the resourceVersion.
    assert server.ok("PUT", f"{CONFIGMAPS}/crud", updated)["metadata"]["resourceVersion"] == \
        updated["metadata"]["resourceVersion"]
    # Merge patch, JSON patch, and a stale resourceVersion in a patch.
    merged = server.ok("PATCH", f"{CONFIGMAPS}/crud", {"data": {"b": "x", "a": None}},
                       content_type="application/merge-patch+json")
    assert merged["data"] == {"b": "x"}
    patched = server.ok("PATCH", f"{CONFIGMAPS}/crud", [{"op": "add", "path": "/data/c", "value": "y"}],
                        content_type="application/json-patch+json")
    assert patched["data"] == {"b": "x", "c": "y"}
    status, body, _ = server.api("PATCH", f"{CONFIGMAPS}/crud", {"metadata": {"resourceVersion": "1"}},
                                 content_type="application/merge-patch+json")
    assert status == 409
    # ConfigMaps have no status: no subresource, and the field is not part of the kind.
    assert server.api("PUT", f"{CONFIGMAPS}/crud/status", patched)[0] == 404
    status, body, _ = server.api("PUT", f"{CONFIGMAPS}/crud?fieldValidation=Strict", {**patched, "status": {}})
    assert status == 400 and 'unknown field "status"' in body["message"]

    server.ok("DELETE", f"{CONFIGMAPS}/crud")
    for method in ("GET", "DELETE"):
        status, body, _ = server.api(method, f"{CONFIGMAPS}/crud")
        assert (status, body["reason"], body["details"]["name"]) == (404, "NotFound", "crud")


def test_status_subresource_and_generation(cluster):
    body = backend("status-demo")
    body["status"] = {"conditions": []}
    created = cluster.ok("POST", BACKENDS, body)
    assert "status" not in created and created["metadata"]["generation"] == 1

    condition = {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "Backend accepted",
                 "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 1}
    attempt = json.loads(json.dumps(created))
    attempt["status"] = {"conditions": [condition]}
    attempt["spec"]["type"] = "AWS"  # ignored by a status write
    written = cluster.ok("PUT", f"{BACKENDS}/status-demo/status", attempt)
    assert written["status"]["conditions"][0]["type"] == "Accepted"
    assert written["spec"]["type"] == "AI" and written["metadata"]["generation"] == 1

    # Status writes are validated against the schema too.
    too_many = {"status": {"conditions": [dict(condition, type=f"T{i}") for i in range(9)]}}
    status, err, _ = cluster.api("PATCH", f"{BACKENDS}/status-demo/status", too_many,
                                 content_type="application/merge-patch+json")
    assert status == 422 and err["details"]["causes"][0]["reason"] == "FieldValueTooMany"

    # Main-resource writes ignore .status; only spec changes move the generation.
    relabel = cluster.ok("PATCH", f"{BACKENDS}/status-demo",
                         {"metadata": {"labels": {"x": "y"}}, "status": {"conditions": []}},
                         content_type="application/merge-patch+json")
    assert relabel["metadata"]["generation"] == 1 and len(relabel["status"]["conditions"]) == 1
    respec = cluster.ok("PATCH", f"{BACKENDS}/status-demo", {"spec": {"ai": {"llm": {"openai": {"model": "o3"}}}}},
                        content_type="application/merge-patch+json")
    assert respec["metadata"]["generation"] == 2 and respec["status"] == written["status"]

    # Custom resources need a resourceVersion on update, and strategic merge patch is refused.
    unconditional = json.loads(json.dumps(respec))
    del unconditional["metadata"]["resourceVersion"]
    status, err, _ = cluster.api("PUT", f"{BACKENDS}/status-demo", unconditional)
    assert status == 422 and err["details"]["causes"][0]["field"] == "metadata.resourceVersion"
    assert cluster.api("PATCH", f"{BACKENDS}/status-demo", {"spec": {}},
                       content_type="application/strategic-merge-patch+json")[0] == 415


def test_selectors_paging_and_delete_collection(server):
    server.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sel"}})
    base = "/api/v1/namespaces/sel/configmaps"
    for i in range(6):
        labels = {"tier": ["front", "back", "db"][i % 3]}
        if i % 2:
            labels["canary"] = "true"
        server.ok("POST", base, configmap(f"cm-{i}", "sel", labels))

    def names(query):
        return sorted(o["metadata"]["name"] for o in server.ok("GET", f"{base}?{query}")["items"])

    assert names("labelSelector=tier%3Dfront") == ["cm-0", "cm-3"]
    assert names("labelSelector=tier%3D%3Dback") == ["cm-1", "cm-4"]
    assert names("labelSelector=tier!%3Dfront") == ["cm-1", "cm-2", "cm-4", "cm-5"]
    assert names("labelSelector=tier+in+(db,back),canary") == ["cm-1", "cm-5"]
    assert names("labelSelector=tier+notin+(front),!canary") == ["cm-2", "cm-4"]
    assert names("fieldSelector=metadata.name%3Dcm-2") == ["cm-2"]
    assert server.api("GET", f"{base}?labelSelector=tier+in+front")[0] == 400
    assert server.api("GET", f"{base}?fieldSelector=data.x%3Dy")[0] == 400

    # Paging: later pages come from the snapshot of the first, even after writes.
    first = server.ok("GET", f"{base}?limit=4")
    assert len(first["items"]) == 4 and first["metadata"]["remainingItemCount"] == 2
    server.ok("POST", base, configmap("cm-9", "sel"))
    second = server.ok("GET", f"{base}?limit=4&continue={first['metadata']['continue']}")
    assert [o["metadata"]["name"] for o in second["items"]] == ["cm-4", "cm-5"]
    assert "continue" not in second["metadata"]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert "kind" not in second["items"][0]  # typed lists of built-ins carry no per-item kind

    deleted = server.ok("DELETE", f"{base}?labelSelector=canary%3Dtrue")
    assert sorted(o["metadata"]["name"] for o in deleted["items"]) == ["cm-1", "cm-3", "cm-5"]
    assert names("") == ["cm-0", "cm-2", "cm-4", "cm-9"]
    # Deleting the namespace deletes what is in it.
    server.ok("DELETE", "/api/v1/namespaces/sel")
    assert server.api("GET", "/api/v1/namespaces/sel")[0] == 404
    assert [o for o in server.ok("GET", "/api/v1/configmaps")["items"] if o["metadata"]["namespace"] == "sel"] == []



def test_lists_and_watches_serve_every_write_through_the_serialized_object_cache(cluster):
    """Lists and watches send each object's JSON text from a cache (made once per object
    version, as the real server's watch cache does); every kind of write must show in the very
    next list, watch and continued page, and an older snapshot must still show the old text."""
    server = cluster
    base = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes"
    label = "app=cache-test"

    def route(name: str, path: str) -> dict:
        return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": name, "namespace": NS, "labels": {"app": "cache-test"}},
                "spec": {"parentRefs": [{"name": "ai-gateway"}],
                         "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                                    "backendRefs": [{"name": "x", "group": "gateway.kgateway.dev",
                                                     "kind": "Backend"}]}]}}

    def paths(query: str = "") -> dict:
        body = server.ok("GET", f"{base}?labelSelector={label}{query}")
        return {o["metadata"]["name"]: o["spec"]["rules"][0]["matches"][0]["path"]["value"] for o in body["items"]}

    def hits() -> int:
        return server.ok("GET", "/_fake/stats")["serializedCache"]["hits"]

    for i in range(3):
        server.ok("POST", base, route(f"cache-{i}", f"/v0-{i}"))
    assert paths() == {"cache-0": "/v0-0", "cache-1": "/v0-1", "cache-2": "/v0-2"}
    before = hits()
    assert paths() == {"cache-0": "/v0-0", "cache-1": "/v0-1", "cache-2": "/v0-2"}
    assert hits() >= before + 3  # the second list was served from the cache

    old_rv = server.ok("GET", f"{base}?labelSelector={label}")["metadata"]["resourceVersion"]
    # PUT, merge patch, JSON patch, a status write, delete and re-create: each shows at once.
    current = server.ok("GET", f"{base}/cache-0")
    current["spec"]["rules"][0]["matches"][0]["path"]["value"] = "/v1-0"
    server.ok("PUT", f"{base}/cache-0", current)
    assert paths()["cache-0"] == "/v1-0"
    server.ok("PATCH", f"{base}/cache-1", {"metadata": {"labels": {"app": "cache-test", "x": "y"}}},
              content_type="application/merge-patch+json")
    assert server.ok("GET", f"{base}?labelSelector=x%3Dy")["items"][0]["metadata"]["labels"]["x"] == "y"
    server.ok("PATCH", f"{base}/cache-1", [{"op": "replace", "path": "/spec/rules/0/matches/0/path/value",
                                            "value": "/v1-1"}], content_type="application/json-patch+json")
    assert paths()["cache-1"] == "/v1-1"
    status = {"status": {"parents": [{"parentRef": {"name": "ai-gateway"}, "controllerName": "test/cache",
                                      "conditions": []}]}}
    server.ok("PATCH", f"{base}/cache-1/status", status, content_type="application/merge-patch+json")
    listed = {o["metadata"]["name"]: o for o in server.ok("GET", f"{base}?labelSelector={label}")["items"]}
    assert listed["cache-1"]["status"]["parents"][0]["controllerName"] == "test/cache"
    assert listed["cache-1"] == server.ok("GET", f"{base}/cache-1")
    server.ok("DELETE", f"{base}/cache-2")
    assert "cache-2" not in paths()
    server.ok("POST", base, route("cache-2", "/v2-2"))
    assert paths() == {"cache-0": "/v1-0", "cache-1": "/v1-1", "cache-2": "/v2-2"}

    # A continued page shows the current text too; a list at the old resourceVersion the old one.
    first = server.ok("GET", f"{base}?labelSelector={label}&limit=1")
    rest = server.ok("GET", f"{base}?labelSelector={label}&limit=5&continue={first['metadata']['continue']}")
    assert [o["metadata"]["name"] for o in first["items"] + rest["items"]] == ["cache-0", "cache-1", "cache-2"]
    assert rest["items"][0]["spec"]["rules"][0]["matches"][0]["path"]["value"] == "/v1-1"
    assert paths(f"&resourceVersion={old_rv}&resourceVersionMatch=Exact") == {
        "cache-0": "/v0-0", "cache-1": "/v0-1", "cache-2": "/v0-2"}

    # A watch from "now" (ADDED for every object) and from a version (the changes) agree.
    watch = server.watch(f"{base}?watch=true&labelSelector={label}&timeoutSeconds=5")
    added = {}
    for _ in range(3):
        event = watch.next_non_bookmark()
        added[event["object"]["metadata"]["name"]] = event["object"]
    assert added["cache-1"] == server.ok("GET", f"{base}/cache-1")
    current = server.ok("GET", f"{base}/cache-0")
    current["spec"]["rules"][0]["matches"][0]["path"]["value"] = "/v3-0"
    server.ok("PUT", f"{base}/cache-0", current)
    event = watch.next_non_bookmark()
    assert event["type"] == "MODIFIED" and event["object"] == server.ok("GET", f"{base}/cache-0")
    watch.close()
    assert paths()["cache-0"] == "/v3-0"
    server.ok("DELETE", f"{base}?labelSelector={label}")

# The Secret types the gateway leaves out of its list and watch (Sources/AIGatewayKubernetes/SecretScope.swift).
GATEWAY_SECRET_SELECTOR = ",".join(f"type!={t}" for t in (
    "kubernetes.io/service-account-token", "kubernetes.io/tls", "kubernetes.io/dockerconfigjson",
    "kubernetes.io/dockercfg", "kubernetes.io/basic-auth", "kubernetes.io/ssh-auth",
    "bootstrap.kubernetes.io/token", "helm.sh/release.v1"))


def secret(name: str, ns: str, type_: str | None = None, data: dict | None = None) -> dict:
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in (data or {"k": "v"}).items()}}
    if type_:
        body["type"] = type_
    return body


def test_secret_field_selectors_on_type_name_and_namespace_for_list_and_watch(server):
    """As on a real API server: Secrets select on `type` (=, ==, !=, several ANDed), and every
    kind on metadata.name and metadata.namespace, in lists and in watches."""
    from urllib.parse import quote
    server.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fsel"}})
    base = "/api/v1/namespaces/fsel/secrets"
    server.ok("POST", base, secret("key", "fsel"))  # type defaults to Opaque
    server.ok("POST", base, secret("custom", "fsel", "example.com/api-key"))
    server.ok("POST", base, secret("cert", "fsel", "kubernetes.io/tls", {"tls.crt": "c", "tls.key": "k"}))
    server.ok("POST", base, secret("token", "fsel", "kubernetes.io/service-account-token", {"token": "t"}))
    server.ok("POST", base, secret("pull", "fsel", "kubernetes.io/dockerconfigjson", {".dockerconfigjson": "{}"}))
    server.ok("POST", "/api/v1/namespaces/default/secrets", secret("elsewhere", "default"))

    def names(path, selector):
        return sorted(o["metadata"]["name"] for o in server.ok("GET", f"{path}?fieldSelector={quote(selector)}")["items"])

    assert names(base, GATEWAY_SECRET_SELECTOR) == ["custom", "key"]
    assert names(base, "type=Opaque") == ["key"]
    assert names(base, "type==kubernetes.io/tls") == ["cert"]
    assert names("/api/v1/secrets", "type=Opaque,metadata.namespace=fsel") == ["key"]
    assert names("/api/v1/secrets", "metadata.namespace!=fsel,metadata.name=elsewhere") == ["elsewhere"]
    assert names(base, "metadata.name=custom," + GATEWAY_SECRET_SELECTOR) == ["custom"]
    # `type` selects Secrets only, as on a real server.
    assert server.api("GET", f"{CONFIGMAPS}?fieldSelector=type%3DOpaque")[0] == 400

    rv = server.ok("GET", base)["metadata"]["resourceVersion"]
    w = server.watch(f"{base}?watch=1&resourceVersion={rv}&fieldSelector={quote(GATEWAY_SECRET_SELECTOR)}&timeoutSeconds=5")
    try:
        server.ok("POST", base, secret("cert-2", "fsel", "kubernetes.io/tls", {"tls.crt": "c", "tls.key": "k"}))
        server.ok("POST", base, secret("key-2", "fsel"))
        event = w.next_non_bookmark()  # the TLS Secret created first never shows
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "key-2")
        server.ok("DELETE", f"{base}/cert-2")
        server.ok("DELETE", f"{base}/key-2")
        event = w.next_non_bookmark()
        assert (event["type"], event["object"]["metadata"]["name"]) == ("DELETED", "key-2")
    finally:
        w.close()

    # From where the watch began, with initial events: only what the selector lets through.
    initial = server.watch(f"{base}?watch=1&fieldSelector={quote('type=Opaque')}&timeoutSeconds=1")
    try:
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in iter(initial.next, None)
                if e["type"] != "BOOKMARK"] == [("ADDED", "key")]
    finally:
        initial.close()


@needs_kubectl
def test_kubectl_field_selector_on_secret_type(server):
    server.kubectl("create", "namespace", "kfsel")
    server.kubectl("create", "secret", "generic", "plain", "-n", "kfsel", "--from-literal=a=b")
    server.kubectl("apply", "-f", "-", input=json.dumps(secret("cert", "kfsel", "kubernetes.io/tls",
                                                               {"tls.crt": "c", "tls.key": "k"})))
    out = server.kubectl("get", "secrets", "-n", "kfsel", "--field-selector", GATEWAY_SECRET_SELECTOR, "-o", "name").stdout
    assert out.split() == ["secret/plain"]
    out = server.kubectl("get", "secrets", "-A", "--field-selector", "type=kubernetes.io/tls,metadata.namespace=kfsel",
                         "-o", "name").stdout
    assert out.split() == ["secret/cert"]


def test_finalizers_delay_deletion(server):
    cm = configmap("final")
    cm["metadata"]["finalizers"] = ["example.com/hold"]
    server.ok("POST", CONFIGMAPS, cm)
    held = server.ok("DELETE", f"{CONFIGMAPS}/final")
    assert held["metadata"]["deletionTimestamp"]
    assert server.api("GET", f"{CONFIGMAPS}/final")[0] == 200
    server.ok("PATCH", f"{CONFIGMAPS}/final", {"metadata": {"finalizers": None}},
              content_type="application/merge-patch+json")
    assert server.api("GET", f"{CONFIGMAPS}/final")[0] == 404


def test_watch_replay_bookmarks_selectors_and_timeout(server):
    rv = server.ok("GET", CONFIGMAPS)["metadata"]["resourceVersion"]
    w = server.watch(f"{CONFIGMAPS}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true"
                     f"&labelSelector=app%3Dw&timeoutSeconds=2")
    try:
        created = server.ok("POST", CONFIGMAPS, configmap("w1", labels={"app": "w"}))
        event = w.next_non_bookmark()
        assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "w1"
        assert event["object"]["kind"] == "ConfigMap"  # watch objects carry their kind
        server.ok("PATCH", f"{CONFIGMAPS}/w1", {"metadata": {"labels": {"app": "other"}}},
                  content_type="application/merge-patch+json")
        left = w.next_non_bookmark()  # leaving the selection is a DELETED with the old content
        assert left["type"] == "DELETED" and left["object"]["metadata"]["labels"]["app"] == "w"
        server.ok("PATCH", f"{CONFIGMAPS}/w1", {"metadata": {"labels": {"app": "w"}}},
                  content_type="application/merge-patch+json")
        assert w.next_non_bookmark()["type"] == "ADDED"
        # Bookmarks carry only the resourceVersion, which moves past the events seen.
        while (event := w.next())["type"] != "BOOKMARK":
            pass
        assert set(event["object"]["metadata"]) == {"resourceVersion"}
        assert int(event["object"]["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
        # timeoutSeconds ends the stream cleanly (terminating chunk, no error).
        while w.next() is not None:
            pass
    finally:
        w.close()

    # Replay from an old resourceVersion delivers the history in order.
    replay = server.watch(f"{CONFIGMAPS}?watch=true&resourceVersion={rv}&timeoutSeconds=1")
    try:
        types = [e["type"] for e in iter(replay.next, None) if e["object"]["metadata"]["name"] == "w1"]
        assert types == ["ADDED", "MODIFIED", "MODIFIED"]
    finally:
        replay.close()

    # sendInitialEvents: the current state, then a bookmark marking its end.
    initial = server.watch(f"{CONFIGMAPS}?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
                           f"&resourceVersionMatch=NotOlderThan&fieldSelector=metadata.name%3Dw1&timeoutSeconds=1")
    try:
        assert initial.next()["type"] == "ADDED"
        marker = initial.next()
        assert marker["type"] == "BOOKMARK"
        assert marker["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    finally:
        initial.close()


def test_compaction_gives_410(tmp_path):
    s = FakeServer(tmp_path)
    try:
        rv = s.ok("GET", CONFIGMAPS)["metadata"]["resourceVersion"]
        s.ok("POST", CONFIGMAPS, configmap("c1"))
        assert s.ok("GET", f"{CONFIGMAPS}?resourceVersion={rv}&resourceVersionMatch=Exact")["items"] == []
        s.ok("POST", "/_fake/compact")
        w = s.watch(f"{CONFIGMAPS}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true")
        try:
            event = w.next()
            assert event["type"] == "ERROR"
            assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
            assert w.next() is None  # and the stream ends
        finally:
            w.close()
        status, body, _ = s.api("GET", f"{CONFIGMAPS}?resourceVersion={rv}&resourceVersionMatch=Exact")
        assert (status, body["reason"]) == (410, "Expired")
        # NotOlderThan may serve newer data, so an old version is not an error.
        fresh = s.ok("GET", f"{CONFIGMAPS}?resourceVersion={rv}&resourceVersionMatch=NotOlderThan")
        assert [o["metadata"]["name"] for o in fresh["items"]] == ["c1"]
        # A watch from the current version still works.
        current = fresh["metadata"]["resourceVersion"]
        w = s.watch(f"{CONFIGMAPS}?watch=1&resourceVersion={current}&timeoutSeconds=1")
        try:
            s.ok("POST", CONFIGMAPS, configmap("c2"))
            assert w.next()["object"]["metadata"]["name"] == "c2"
        finally:
            w.close()
    finally:
        s.stop()


def test_fault_injection(tmp_path):
    s = FakeServer(tmp_path)
    try:
        s.ok("POST", f"/_fake/fail-next?count=2&code=500&path={CONFIGMAPS}")
        assert s.ok("GET", "/api/v1/namespaces")  # other paths are untouched
        for _ in range(2):
            status, body, _ = s.api("GET", CONFIGMAPS)
            assert (status, body["kind"], body["reason"]) == (500, "Status", "InternalError")
        assert s.api("GET", CONFIGMAPS)[0] == 200
        s.ok("POST", "/_fake/fail-next?code=429")
        status, body, headers = s.api("GET", CONFIGMAPS)
        assert (status, body["reason"], headers["Retry-After"]) == (429, "TooManyRequests", "1")
        # clear-failures drops pending rules, so a test can end an outage when it chooses.
        s.ok("POST", f"/_fake/fail-next?count=1000&code=500&path={CONFIGMAPS}")
        assert s.api("GET", CONFIGMAPS)[0] == 500
        assert s.ok("POST", "/_fake/clear-failures")["cleared"] == 1
        assert s.api("GET", CONFIGMAPS)[0] == 200

        # drop-watches cuts open streams abruptly: no terminating chunk.
        w = s.watch(f"{CONFIGMAPS}?watch=1&timeoutSeconds=30")
        deadline = time.monotonic() + 5
        while s.ok("GET", "/_fake/stats")["openWatches"] != 1:
            assert time.monotonic() < deadline
        assert s.ok("POST", "/_fake/drop-watches")["droppedWatches"] == 1
        with pytest.raises((http.client.IncompleteRead, ConnectionError, ssl.SSLError)):
            while w.next() is not None:
                pass
        w.close()

        stats = s.ok("GET", "/_fake/stats")
        assert stats["requests"]["list"] >= 4 and stats["requests"]["watch"] == 1
        assert stats["injectedFailures"] == 4 and stats["byResource"]["configmaps"]["list"] >= 6
        assert stats["listSeconds"] > 0  # the benchmark reports the server's share of a sync from it

        # restart: every connection goes, the data and the resourceVersion counter stay.
        before = s.ok("POST", CONFIGMAPS, configmap("survivor"))["metadata"]["resourceVersion"]
        idle = s.connect()
        idle.request("GET", "/version")
        idle.getresponse().read()
        w = s.watch(f"{CONFIGMAPS}?watch=1&resourceVersion={before}")
        s.ok("POST", "/_fake/restart")
        with pytest.raises((http.client.IncompleteRead, ConnectionError, ssl.SSLError)):
            while w.next() is not None:
                pass
        with pytest.raises((ConnectionError, http.client.HTTPException, ssl.SSLError, OSError)):
            idle.request("GET", "/version")
            idle.getresponse().read()
        assert s.ok("GET", f"{CONFIGMAPS}/survivor")["metadata"]["resourceVersion"] == before
        after = s.ok("POST", CONFIGMAPS, configmap("after"))["metadata"]["resourceVersion"]
        assert int(after) == int(before) + 1
    finally:
        s.stop()


def test_state_survives_a_process_restart(tmp_path):
    state = tmp_path / "state"
    first = FakeServer(tmp_path / "one", state_dir=state)
    try:
        rv = first.ok("POST", CONFIGMAPS, configmap("kept"))["metadata"]["resourceVersion"]
    finally:
        first.stop()
    second = FakeServer(tmp_path / "two", state_dir=state)
    try:
        assert second.ok("GET", f"{CONFIGMAPS}/kept")["metadata"]["resourceVersion"] == rv
        assert int(second.ok("POST", CONFIGMAPS, configmap("new"))["metadata"]["resourceVersion"]) > int(rv)
        # The event history did not survive: an older watch is told to relist.
        w = second.watch(f"{CONFIGMAPS}?watch=1&resourceVersion=1")
        try:
            assert w.next()["object"]["code"] == 410
        finally:
            w.close()
    finally:
        second.stop()


@needs_kubectl
def test_strategic_merge_patch_of_a_deployment(cluster):
    manifest = (REPO / "manifests" / "30-deployment.yaml").read_text()
    changed = manifest.replace("image: ai-gateway:latest", "image: ai-gateway:v2").replace(
        "        env:\n", "        env:\n        - name: LOG_LEVEL\n          value: debug\n")
    try:
        cluster.kubectl("apply", "-f-", input=changed)
        spec = cluster.ok("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/ai-gateway")["spec"]
        containers = spec["template"]["spec"]["containers"]
        assert len(containers) == 1 and containers[0]["image"] == "ai-gateway:v2"
        assert [e["name"] for e in containers[0]["env"]] == ["LOG_LEVEL", "POD_NAME", "POD_NAMESPACE"]
        assert [p["name"] for p in containers[0]["ports"]] == ["http", "admin"]
    finally:
        cluster.kubectl("apply", "-f", str(REPO / "manifests" / "30-deployment.yaml"))
    containers = cluster.ok("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/ai-gateway")[
        "spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] == "ai-gateway:latest"
    assert [e["name"] for e in containers[0]["env"]] == ["POD_NAME", "POD_NAMESPACE"]


def test_server_side_apply_and_dry_run(server):
    applied = yaml.safe_dump(configmap("ssa", data={"k": "v"}))
    status, obj, _ = server.api("PATCH", f"{CONFIGMAPS}/ssa?fieldManager=test", applied,
                                content_type="application/apply-patch+yaml")
    assert status == 201 and obj["data"] == {"k": "v"}
    status, obj, _ = server.api("POST", f"{CONFIGMAPS}?dryRun=All", configmap("dry"))
    assert status == 201 and "resourceVersion" not in obj["metadata"]
    assert server.api("GET", f"{CONFIGMAPS}/dry")[0] == 404
