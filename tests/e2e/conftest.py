"""Starts the real binaries (fake provider + ai-gateway) for the SDK tests."""
import functools
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=None)
def bin_dir() -> Path:
    """AIGW_BIN_DIR if set (a build with its own --scratch-path), else `swift build --show-bin-path`."""
    if os.environ.get("AIGW_BIN_DIR"):
        return Path(os.environ["AIGW_BIN_DIR"])
    out = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready within {timeout}s")


class Stack:
    """The fake provider and the gateway on the guide's manifests in front of it.

    provider_args/gateway_args go to the two commands; endpoint_host names the provider in
    --provider-endpoint (its scheme follows the provider's: https with --tls-cert). Every provider
    key is redirected to the one fake, which speaks each native API on its own paths. backend, if
    given, is the YAML of a Backend named model-failover that replaces the guide's (the route and
    the Secret `openai-secret` stay)."""

    PROVIDERS = ("openai", "azureopenai", "anthropic", "gemini", "vertexai", "bedrock")

    def __init__(self, tmp: Path, provider_args=(), gateway_args=(), endpoint_host="127.0.0.1", backend=None, gateway_env=None):
        self.bins = bin_dir()
        self.provider = subprocess.Popen(
            [str(self.bins / "fake-provider"), "--port", "0", "--require-key", "sk-demo-not-a-real-key", *provider_args],
            stdout=subprocess.PIPE, text=True)
        line = self.provider.stdout.readline().strip()
        assert line.startswith("fake-provider listening on "), line
        listening = urllib.parse.urlsplit(line.rsplit(" ", 1)[1])
        self.provider_url = f"{listening.scheme}://{endpoint_host}:{listening.port}"
        manifests = tmp / "manifests"
        manifests.mkdir()
        for f in (ROOT / "examples" / "model-failover").glob("*.yaml"):
            text = f.read_text()
            if f.name == "backend.yaml":
                if backend is not None:
                    text = backend
                # Short timeouts so stalls are noticed quickly in tests (next to the test's own
                # annotations, if it has any).
                idle = "    ai-gateway.kgateway.dev/stream-idle-timeout: 1s\n"
                if "\n  annotations:\n" in text:
                    text = text.replace("\n  annotations:\n", "\n  annotations:\n" + idle, 1)
                else:
                    text = text.replace(
                        "  labels:\n    app: model-failover\n  name: model-failover",
                        "  annotations:\n" + idle + "  labels:\n    app: model-failover\n  name: model-failover", 1)
            (manifests / f.name).write_text(text)
        self.port = free_port()
        self.admin_port = free_port()
        self.log = open(tmp / "gateway.log", "w")
        self.gateway = subprocess.Popen(
            [str(self.bins / "ai-gateway"), "run", "--manifests", str(manifests), "--host", "127.0.0.1",
             "--port", str(self.port), "--admin-port", str(self.admin_port),
             *[a for key in self.PROVIDERS for a in ("--provider-endpoint", f"{key}={self.provider_url}")],
             "--log-format", "json", *gateway_args],
            stdout=self.log, stderr=subprocess.STDOUT, env=self._environment(gateway_env))
        wait_for(f"http://127.0.0.1:{self.admin_port}/readyz")

    def _environment(self, extra):
        if extra is None:
            return None
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({k: v.replace("{provider_url}", self.provider_url) for k, v in extra.items()})
        return env

    def fault(self, model: str, spec: str) -> None:
        req = urllib.request.Request(f"{self.provider_url}/_fake/faults/{model}", data=spec.encode(), method="PUT")
        urllib.request.urlopen(req, timeout=5).read()

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.provider_url}/_fake/faults", method="DELETE"), timeout=5).read()
        urllib.request.urlopen(urllib.request.Request(f"{self.provider_url}/_fake/requests", method="DELETE"), timeout=5).read()

    def requests(self) -> list:
        with urllib.request.urlopen(f"{self.provider_url}/_fake/requests", timeout=5) as r:
            return json.loads(r.read())

    def post(self, body: str, path: str = "/model", timeout: float = 30):
        """POSTs JSON to the gateway; returns (status, headers, body bytes), errors included."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body.encode(), method="POST",
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def stop(self) -> None:
        started = time.monotonic()
        for p in (self.gateway, self.provider):
            if p.poll() is None:
                p.terminate()
        for p in (self.gateway, self.provider):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.log.close()
        self.stop_seconds = time.monotonic() - started


@pytest.fixture
def stack(tmp_path):
    # A fresh gateway per test: passive health (ejections, cool-downs) must not leak between tests.
    s = Stack(tmp_path)
    yield s
    s.stop()


# The head of a Backend named model-failover, its priorities to follow: a test's own Backend for
# `Stack(backend=...)` (the Stack adds the short stream-idle timeout to exactly this metadata).
BACKEND_HEAD = """apiVersion: gateway.kgateway.dev/v1alpha1
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
"""


# The fake provider's answer: its first 12 words, one token each (a fault that cuts the answer
# after n tokens leaves the first n).
WORDS = ["Kubernetes", "is", "an", "open-source", "system", "for", "automating", "deployment,", "scaling,", "and",
         "management", "of", "containerized", "applications.", "It", "groups", "containers", "that", "make", "up"]
ANSWER = " ".join(WORDS[:12])

# A system turn and two user turns (the second as content parts), which each provider's API takes
# its own way.
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is"},
    {"role": "user", "content": [{"type": "text", "text": "kubernetes?"}]},
]


def client(stack) -> openai.OpenAI:
    # The guide's route is PathPrefix /model; the SDK appends /chat/completions.
    return openai.OpenAI(base_url=f"http://127.0.0.1:{stack.port}/model", api_key="client-key-never-forwarded", max_retries=0, timeout=30)


def native(stack, k=-1):
    """The k-th request the fake received, with its body parsed (json) and its headers as a dict
    (h, by lower-case name)."""
    r = stack.requests()[k]
    r["json"] = json.loads(r["body"])
    r["h"] = {name.lower(): value for name, value in r["headers"]}
    return r


def pool_entry(provider: str, model: str) -> str:
    """One priority of a Backend (after BACKEND_HEAD): `provider` with `model`, keyed by the Secret openai-secret."""
    return f"""      - pool:
        - provider:
            {provider}:
              model: "{model}"
              authToken:
                kind: SecretRef
                secretRef:
                  name: openai-secret
"""


def text_until_error(stack, **create) -> str:
    """Streams a completion (create's arguments) and returns the text received before the SDK
    raised openai.APIError, which it must."""
    text = ""
    with pytest.raises(openai.APIError):
        for chunk in client(stack).chat.completions.create(stream=True, **create):
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
    return text


def check_streamed_answer(chunks, include_usage):
    """What every translated stream of the fake's answer to MESSAGES holds: the role first, the
    answer's text, one finish (stop), and a last chunk with the usage (6 in, 12 out) only when the
    client asked for it."""
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage_chunks = [c for c in chunks if not c.choices]
    if include_usage:
        assert len(usage_chunks) == 1 and chunks[-1] is usage_chunks[0]
        assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (6, 12)
    else:
        assert usage_chunks == [] and all(c.usage is None for c in chunks)


def streamed_weather_call(stack, model, tools):
    """Streams a question the fake answers with one tool call (fault tool-call, once) and checks
    the call as the SDK reassembles it (its name is the caller's to check). Returns the call and
    the follow-up conversation that carries its result."""
    stack.fault(model, "tool-call,times=1")
    question = [{"role": "user", "content": "Weather in Paris?"}]
    chunks = list(client(stack).chat.completions.create(model="x", messages=question, tools=tools, stream=True))
    calls, deltas = streamed_tool_calls(chunks)
    assert len(deltas) > 2, "arguments arrive in fragments"
    assert list(calls) == [0]
    call = calls[0]
    assert call["id"].startswith("call_fake_")
    assert json.loads(call["arguments"]) == {"location": "Paris", "unit": "celsius"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    follow = question + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": "18 degrees"},
    ]
    return call, follow


def streamed_tool_calls(chunks):
    """Reassembles the tool calls of streamed chunks as the OpenAI SDK does, checking that a call's
    id and name come once, in its first delta. Returns ({index: {id, name, arguments}}, the deltas)."""
    calls = {}
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    for tc in deltas:
        slot = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
        if tc.id:
            assert slot["id"] is None, "the id comes once"
            slot["id"] = tc.id
        if tc.function and tc.function.name:
            assert slot["name"] is None, "the name comes once"
            slot["name"] = tc.function.name
        if tc.function and tc.function.arguments:
            slot["arguments"] += tc.function.arguments
    return calls, deltas
