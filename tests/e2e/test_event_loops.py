"""`ai-gateway run --event-loops N`: the size of the event loop group that serves clients and
providers (and runs Swift concurrency). The threads of NIO's singleton group are named
NIO-SGLTN-<group>-#<loop>, so /proc shows how many loops the process really has."""
import os
import subprocess

import pytest

from conftest import bin_dir, free_port, wait_for

ROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  rules:
  - backendRefs: [{name: b, group: gateway.kgateway.dev, kind: Backend}]
---
apiVersion: gateway.kgateway.dev/v1alpha1
kind: Backend
metadata: {name: b, namespace: default}
spec:
  type: AI
  ai:
    llm:
      provider:
        openai: {model: gpt-4o, authToken: {kind: Inline, inline: sk-test}}
"""


def run(tmp_path, *flags: str):
    (tmp_path / "route.yaml").write_text(ROUTE)
    port, admin = free_port(), free_port()
    return subprocess.Popen(
        [str(bin_dir() / "ai-gateway"), "run", "--manifests", str(tmp_path / "route.yaml"), "--host", "127.0.0.1",
         "--port", str(port), "--admin-port", str(admin), "--log-level", "warning", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), admin


def event_loop_threads(pid: int) -> int:
    names = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/comm") as f:
                names.append(f.read().strip())
        except FileNotFoundError:
            pass
    return sum(1 for n in names if n.startswith("NIO-SGLTN-"))


@pytest.mark.parametrize("flags,loops", [(["--event-loops", "3"], 3), (["--event-loops=1"], 1)])
def test_the_gateway_runs_the_event_loops_it_is_given(tmp_path, flags, loops):
    gateway, admin = run(tmp_path, *flags)
    try:
        wait_for(f"http://127.0.0.1:{admin}/readyz")
        assert event_loop_threads(gateway.pid) == loops
    finally:
        gateway.terminate()
        gateway.wait(timeout=15)


@pytest.mark.parametrize("flags,value", [(["--event-loops", "0"], "0"), (["--event-loops=-2"], "-2"),
                                         (["--event-loops", "1025"], "1025"), (["--event-loops", "two"], None)])
def test_an_event_loop_count_out_of_range_is_refused_before_start(tmp_path, flags, value):
    gateway, _ = run(tmp_path, *flags)
    _, err = gateway.communicate(timeout=30)
    assert gateway.returncode != 0
    if value is None:
        assert "--event-loops" in err and "two" in err, err
    else:
        assert f"--event-loops must be between 1 and 1024, got {value}" in err, err
