"""Starts one shipped container's command line as a pod would, and waits until it is ready.

Run by test_shipped_commands.py inside `unshare --mount --net` (a private network and mount
namespace), so the container's fixed ports and the service account path touch nothing outside:

1. brings up loopback and starts the fake API server (TLS, a bearer token) on a free port;
2. applies crds/ with kubectl and creates the pod's namespace, as an install would have;
3. mounts a tmpfs on /var/run and writes the service account there (token, ca.crt, namespace),
   where in-cluster configuration reads it, next to KUBERNETES_SERVICE_HOST/PORT;
4. runs the command line given (argv, env, user), and polls /readyz on the probe's port until it
   answers 200, failing as soon as the process exits;
5. stops it with SIGTERM, as the kubelet does, and expects exit status 0.

Usage: pod_start.py SPEC.json (argv, env, uid, gid, namespace, probe_port, workdir).
Prints what happened; exits 0 only if the process became ready and stopped cleanly.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SERVER_SCRIPT = REPO / "testing" / "fake-apiserver" / "fake_apiserver.py"
TOKEN = "pod-start-token"
# Bounds only, so that a broken build cannot hang the test: every wait below ends on an event
# (a line printed, a process exiting, a 200) long before these on any machine.
START_BOUND_S = float(os.environ.get("POD_START_BOUND_S", "120"))


def loopback_up() -> None:
    """`ip link set lo up`, without needing iproute2: SIOCGIFFLAGS/SIOCSIFFLAGS on "lo"."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14s", b"lo", 0, b"\0" * 14)
        flags = struct.unpack("16sH", fcntl.ioctl(s, siocgifflags, request)[:18])[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH14s", b"lo", flags | iff_up, b"\0" * 14))


def wait_until(what: str, check, process: subprocess.Popen | None = None, log: Path | None = None):
    """Polls `check` until it returns a truthy value; fails at once if `process` exits."""
    give_up = time.monotonic() + START_BOUND_S
    while True:
        value = check()
        if value:
            return value
        if process is not None and process.poll() is not None:
            detail = log.read_text(errors="replace")[-4000:] if log else ""
            raise SystemExit(f"FAIL: exited with status {process.returncode} before {what}:\n{detail}")
        if time.monotonic() > give_up:
            detail = log.read_text(errors="replace")[-4000:] if log else ""
            raise SystemExit(f"FAIL: no {what} within {START_BOUND_S:.0f} s:\n{detail}")
        time.sleep(0.05)


def start_fake_apiserver(workdir: Path) -> tuple[subprocess.Popen, int, Path]:
    out, err = workdir / "apiserver.out", workdir / "apiserver.err"
    kubeconfig = workdir / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--port", "0", "--tls", "--token", TOKEN,
         "--state-dir", str(workdir / "apiserver-state"), "--kubeconfig-out", str(kubeconfig)],
        stdout=open(out, "w"), stderr=open(err, "w"), stdin=subprocess.DEVNULL)

    def listening():
        text = out.read_text()
        return text.split("listening on ", 1)[1].split()[0] if "listening on " in text else None

    url = wait_until("the fake API server listening", listening, proc, err)
    wait_until("the kubeconfig", kubeconfig.exists, proc, err)
    return proc, int(url.rsplit(":", 1)[1].rstrip("/")), kubeconfig


def kubectl(kubeconfig: Path, *args: str) -> None:
    result = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"FAIL: kubectl {' '.join(args)}:\n{result.stdout}\n{result.stderr}")


def write_service_account(kubeconfig: Path, namespace: str, workdir: Path) -> None:
    """The files a pod's service account volume holds, at the path in-cluster mode reads."""
    config = yaml.safe_load(kubeconfig.read_text())
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
    run_dir = os.path.realpath("/var/run")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "pod-start", run_dir], check=True)
    directory = Path(run_dir) / "secrets" / "kubernetes.io" / "serviceaccount"
    directory.mkdir(parents=True)
    (directory / "token").write_text(TOKEN)
    (directory / "ca.crt").write_bytes(ca)
    (directory / "namespace").write_text(namespace)
    for path in [directory, *directory.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    workdir = Path(spec["workdir"])
    loopback_up()
    apiserver, api_port, kubeconfig = start_fake_apiserver(workdir)
    gateway = None
    try:
        kubectl(kubeconfig, "apply", "-f", str(REPO / "crds"))
        kubectl(kubeconfig, "create", "namespace", spec["namespace"])
        write_service_account(kubeconfig, spec["namespace"], workdir)

        env = dict(spec["env"], KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(api_port))
        log = workdir / "container.log"

        def become_user():
            if spec.get("gid") is not None:
                os.setgroups([])
                os.setgid(spec["gid"])
            if spec.get("uid") is not None:
                os.setuid(spec["uid"])

        print("running:", json.dumps(spec["argv"]), flush=True)
        gateway = subprocess.Popen(spec["argv"], env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=open(log, "w"),
                                   stderr=subprocess.STDOUT, preexec_fn=become_user)
        wait_until(f"/readyz answering 200 on port {spec['probe_port']}", lambda: ready(spec["probe_port"]), gateway, log)
        print("ready", flush=True)
        gateway.send_signal(signal.SIGTERM)
        try:
            status = gateway.wait(timeout=START_BOUND_S)
        except subprocess.TimeoutExpired:
            raise SystemExit("FAIL: still running after SIGTERM")
        if status != 0:
            raise SystemExit(f"FAIL: exit status {status} after SIGTERM:\n{log.read_text(errors='replace')[-4000:]}")
        print("stopped cleanly", flush=True)
    finally:
        for proc in (gateway, apiserver):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    main()
