"""What ships must start. No container engine runs here, so this tests what can be tested without
one: the Dockerfile's ENTRYPOINT and CMD, composed with each shipped workload's `command` and
`args` exactly as Kubernetes composes them, run with the built binary in place of the image's path,
in a pod's environment (the container's env, its user, the in-cluster service account), against
the fake API server, until the readiness probe's endpoint answers. And the image is built with
the Swift the project is built and tested with.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
MANIFESTS = REPO / "manifests"
SHIPPED_ROOTS = (MANIFESTS, REPO / "overlays")
IMAGE = "ai-gateway"
WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job", "CronJob", "Pod")
POD_NAME = "ai-gateway-7d4b9c-x2x9z"


# --- The image ---------------------------------------------------------------------------------

def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with line continuations joined and comments dropped."""
    instructions, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        if full:
            name, _, rest = full.partition(" ")
            instructions.append((name.upper(), rest.strip()))
    return instructions


def exec_form(value: str) -> list[str]:
    """ENTRYPOINT/CMD arguments: the JSON (exec) form, else the shell form."""
    if value.startswith("["):
        return json.loads(value)
    return ["/bin/sh", "-c", value]


def final_stage(instructions):
    start = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[start:]


def image_entrypoint_and_cmd() -> tuple[list[str], list[str]]:
    """The final stage's ENTRYPOINT and CMD. Setting ENTRYPOINT resets a CMD inherited from the
    base image, so only a CMD written after it in this stage counts (the runtime stage here is
    built FROM a distribution image, whose ENTRYPOINT is empty)."""
    entrypoint, cmd = [], []
    for name, value in final_stage(dockerfile_instructions(DOCKERFILE.read_text())):
        if name == "ENTRYPOINT":
            entrypoint, cmd = exec_form(value), []
        elif name == "CMD":
            cmd = exec_form(value)
    return entrypoint, cmd


def compose(entrypoint: list[str], cmd: list[str], command: list[str] | None, args: list[str] | None) -> list[str]:
    """The command line Kubernetes runs: `command` replaces the ENTRYPOINT (and drops the CMD),
    `args` replace the CMD."""
    if command is not None:
        return list(command) + list(args or [])
    return list(entrypoint) + (list(args) if args is not None else list(cmd))


def test_compose_follows_kubernetes():
    assert compose(["/e", "x"], ["c"], None, None) == ["/e", "x", "c"]
    assert compose(["/e", "x"], ["c"], None, ["a"]) == ["/e", "x", "a"]
    assert compose(["/e", "x"], ["c"], ["/k"], None) == ["/k"]
    assert compose(["/e", "x"], ["c"], ["/k"], ["a"]) == ["/k", "a"]
    assert compose(["/e"], [], None, []) == ["/e"]


def test_dockerfile_is_parsed():
    entrypoint, _ = image_entrypoint_and_cmd()
    assert entrypoint and entrypoint[0] == "/usr/local/bin/ai-gateway", entrypoint


# --- The Swift the image is built with ---------------------------------------------------------

def swift_major_minor() -> str:
    out = subprocess.run(["swift", "--version"], capture_output=True, text=True, check=True)
    found = re.search(r"Swift version (\d+)\.(\d+)", out.stdout + out.stderr)
    assert found, out.stdout + out.stderr
    return f"{found.group(1)}.{found.group(2)}"


def test_the_image_builds_with_the_swift_the_project_is_tested_with():
    swift_images = [value.split()[0] for name, value in dockerfile_instructions(DOCKERFILE.read_text())
                    if name == "FROM" and value.split()[0].split(":")[0] in ("swift", "docker.io/library/swift")]
    assert swift_images, "the Dockerfile builds FROM a swift image"
    version = swift_major_minor()
    for image in swift_images:
        tag = image.split(":", 1)[1] if ":" in image else "latest"
        assert re.match(rf"{re.escape(version)}(\.\d+)?(-|$)", tag), \
            f"{image}: the project is built and tested with Swift {version} (`swift --version`)"


# --- The shipped workloads ---------------------------------------------------------------------

def manifest_documents() -> list[tuple[str, dict]]:
    """Every object the install ships (manifests/, the base, and overlays/): each directory with a
    kustomization is rendered with `kubectl kustomize` (as `kubectl apply -k` would), plain YAML
    files outside them are read as they are."""
    roots = [root for root in SHIPPED_ROOTS if root.is_dir()]
    kustomized = sorted({p.parent for root in roots for p in root.rglob("*")
                         if p.name in ("kustomization.yaml", "kustomization.yml", "Kustomization")})
    docs = []
    for directory in kustomized:
        out = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True)
        assert out.returncode == 0, f"kubectl kustomize {directory}:\n{out.stderr}"
        docs += [(str(directory.relative_to(REPO)), d) for d in yaml.safe_load_all(out.stdout) if d]
    for path in sorted(p for root in roots for p in root.rglob("*.y*ml")):
        if any(k == path.parent or k in path.parents for k in kustomized):
            continue
        docs += [(str(path.relative_to(REPO)), d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def pod_spec(doc: dict) -> dict:
    if doc["kind"] == "Pod":
        return doc["spec"]
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def shipped_containers() -> list[tuple[str, dict, dict]]:
    """(id, workload, container) for each container of a shipped workload that runs the image."""
    found = {}
    for source, doc in manifest_documents():
        if doc.get("kind") not in WORKLOAD_KINDS:
            continue
        spec = pod_spec(doc)
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            if container["image"].split("/")[-1].split(":")[0].split("@")[0] == IMAGE:
                ident = f"{source}:{doc['kind']}/{doc['metadata'].get('namespace', 'default')}/{doc['metadata']['name']}/{container['name']}"
                found[ident] = (ident, doc, container)
    return list(found.values())


SHIPPED = shipped_containers()


def test_something_ships_the_gateway():
    assert SHIPPED, "no workload in manifests/ or overlays/ runs the ai-gateway image"


def container_env(container: dict, namespace: str) -> dict:
    """The container's environment as the kubelet builds it (the downward API fields it uses)."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME": POD_NAME, "HOME": "/"}
    fields = {"metadata.name": POD_NAME, "metadata.namespace": namespace, "spec.nodeName": "node-1",
              "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1", "spec.serviceAccountName": "ai-gateway"}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "fieldRef" in item.get("valueFrom", {}):
            path = item["valueFrom"]["fieldRef"]["fieldPath"]
            assert path in fields, f"env {item['name']}: fieldRef {path} is not supported by this test"
            env[item["name"]] = fields[path]
        else:
            pytest.fail(f"env {item['name']}: {item.get('valueFrom')} is not supported by this test")
    assert not container.get("envFrom"), "envFrom is not supported by this test"
    return env


def probe_port(container: dict) -> int:
    """The readiness probe's port (a number, or the name of one of the container's ports)."""
    probe = container.get("readinessProbe", {}).get("httpGet")
    assert probe, f"{container['name']}: no HTTP readiness probe"
    port = probe["port"]
    if isinstance(port, int):
        return port
    named = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    assert port in named, f"readinessProbe port {port!r} names none of the container's ports {named}"
    return named[port]


def binary_dir() -> Path:
    if os.environ.get("AIGW_BIN_DIR"):
        return Path(os.environ["AIGW_BIN_DIR"])
    out = subprocess.run(["swift", "build", "--show-bin-path"], cwd=REPO, check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


@pytest.mark.parametrize("ident,workload,container", SHIPPED, ids=[s[0] for s in SHIPPED])
def test_the_shipped_command_line_starts_and_becomes_ready(ident, workload, container, tmp_path):
    entrypoint, cmd = image_entrypoint_and_cmd()
    argv = compose(entrypoint, cmd, container.get("command"), container.get("args"))
    image_binary = entrypoint[0] if entrypoint else ""
    assert argv[0] == image_binary, f"{ident}: runs {argv[0]}, not the image's {image_binary}"
    binary = binary_dir() / Path(image_binary).name
    assert binary.exists(), f"build first: {binary}"
    argv = [str(binary), *argv[1:]]

    namespace = workload["metadata"].get("namespace", "default")
    security = {**pod_spec(workload).get("securityContext", {}), **container.get("securityContext", {})}
    spec = {"argv": argv, "env": container_env(container, namespace), "namespace": namespace,
            "probe_port": probe_port(container), "workdir": str(tmp_path),
            # The container's user, where this test may switch to it (as root).
            "uid": security.get("runAsUser") if os.geteuid() == 0 else None,
            "gid": security.get("runAsGroup") if os.geteuid() == 0 else None}
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))

    # A private network namespace (the container's fixed ports touch nothing on the machine) and
    # mount namespace (the service account under /var/run). Root needs no user namespace.
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed: scripts/setup.sh installs it"
    isolation = ["--mount", "--net"] if os.geteuid() == 0 else ["--map-root-user", "--mount", "--net"]
    result = subprocess.run([unshare, *isolation, "--", sys.executable, str(Path(__file__).with_name("pod_start.py")), str(spec_path)],
                            capture_output=True, text=True, timeout=600)
    report = f"{ident}: {json.dumps(argv)}\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, report
    assert "ready" in result.stdout.splitlines() and "stopped cleanly" in result.stdout, report
