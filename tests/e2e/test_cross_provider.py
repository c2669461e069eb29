"""One request fails over across providers: the shipped examples/cross-provider Backend (OpenAI,
Anthropic, Gemini, Bedrock, Azure OpenAI, Vertex AI, in that order) in front of the fake provider,
which speaks each native API and is as strict as the real ones, driven by the official OpenAI SDK."""
import json
import subprocess
import urllib.parse
import urllib.request

import openai
import pytest

from conftest import ROOT, Stack, bin_dir, free_port, wait_for

KEY = "sk-demo-not-a-real-key"
ANSWER = "Kubernetes is an open-source system for automating deployment, scaling, and management of"
MESSAGES = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is kubernetes?"}]
CHAIN = [  # (provider, model) in the Backend's priority order
    ("openai", "gpt-4o"),
    ("anthropic", "claude-3-5-sonnet-20241022"),
    ("gemini", "gemini-2.0-flash"),
    ("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0"),
    ("azureopenai", "gpt-4o-mini"),
    ("vertexai", "gemini-1.5-pro"),
]
FAULTS = {  # what each provider does wrong, in its own API's terms
    "gpt-4o": "status=503",
    "claude-3-5-sonnet-20241022": "status=529",
    "gemini-2.0-flash": "status=429,retry-after=30",
    "anthropic.claude-3-5-haiku-20241022-v1:0": "status=503",
    "gpt-4o-mini": "status=500",
}


class CrossStack:
    """The fake provider and the gateway on examples/cross-provider, every provider redirected to the fake."""

    def __init__(self, tmp):
        bins = bin_dir()
        self.provider = subprocess.Popen([str(bins / "fake-provider"), "--port", "0", "--require-key", KEY],
                                         stdout=subprocess.PIPE, text=True)
        line = self.provider.stdout.readline().strip()
        assert line.startswith("fake-provider listening on "), line
        self.provider_url = "http://127.0.0.1:%d" % urllib.parse.urlsplit(line.rsplit(" ", 1)[1]).port
        self.port, self.admin_port = free_port(), free_port()
        self.log = open(tmp / "gateway.log", "w")
        self.gateway = subprocess.Popen(
            [str(bins / "ai-gateway"), "run", "--manifests", str(ROOT / "examples" / "cross-provider"),
             "--host", "127.0.0.1", "--port", str(self.port), "--admin-port", str(self.admin_port),
             *[a for key in Stack.PROVIDERS for a in ("--provider-endpoint", f"{key}={self.provider_url}")],
             "--log-format", "json"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(f"http://127.0.0.1:{self.admin_port}/readyz")
        self.client = openai.OpenAI(base_url=f"http://127.0.0.1:{self.port}/cross", api_key="unused", max_retries=0)

    def fault(self, model, spec):
        req = urllib.request.Request(f"{self.provider_url}/_fake/faults/{model}", data=spec.encode(), method="PUT")
        urllib.request.urlopen(req, timeout=5).read()

    def requests(self):
        with urllib.request.urlopen(f"{self.provider_url}/_fake/requests", timeout=5) as r:
            return json.loads(r.read())

    def stop(self):
        for p in (self.gateway, self.provider):
            p.terminate()
        for p in (self.gateway, self.provider):
            p.wait(timeout=10)
        self.log.close()


@pytest.fixture
def cross(tmp_path):
    s = CrossStack(tmp_path)
    yield s
    s.stop()


def attempts(header):
    """x-aigw-attempts as [(provider, model, outcome)]."""
    out = []
    for item in header.split(","):
        who, outcome = item.rsplit("=", 1)
        provider, model = who.split("/", 1)
        out.append((provider, model, outcome))
    return out


def providers_tried(trail):
    seen = []
    for provider, _, _ in trail:
        if provider not in seen:
            seen.append(provider)
    return seen


@pytest.mark.parametrize("answering", [3, 5], ids=["bedrock-answers", "vertexai-answers"])
def test_one_request_fails_over_across_providers(cross, answering):
    """gpt-4o answers 503, Claude is overloaded (529), Gemini is throttled (429), ... and the first
    healthy provider answers; the client gets one well-formed OpenAI answer naming that model."""
    for provider, model in CHAIN[:answering]:
        cross.fault(model, FAULTS[model])
    raw = cross.client.chat.completions.with_raw_response.create(model="ignored", messages=MESSAGES)
    completion = raw.parse()
    provider, model = CHAIN[answering]
    assert completion.model == model
    assert raw.headers["x-aigw-model"] == model
    assert completion.choices[0].message.content == ANSWER
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 12 and completion.usage.prompt_tokens > 0
    trail = attempts(raw.headers["x-aigw-attempts"])
    assert providers_tried(trail) == [p for p, _ in CHAIN[:answering + 1]], trail
    assert trail[-1] == (provider, model, "ok")
    assert all(outcome != "ok" for _, _, outcome in trail[:-1])
    # Each provider was called in its own API, never with another's request.
    paths = [r["path"] for r in cross.requests()]
    assert any(p.startswith("/v1/chat/completions") for p in paths)
    assert "/v1/messages" in paths
    assert any(p.startswith("/v1beta/models/gemini-2.0-flash:generateContent") for p in paths)
    assert any(p.startswith("/model/anthropic.claude-3-5-haiku-20241022-v1") and p.endswith("/converse") for p in paths)
    for r in cross.requests():
        body = json.loads(r["body"])
        if r["path"] == "/v1/messages":
            assert body["system"] == "Answer briefly." and body["max_tokens"] == 4096
        if "/converse" in r["path"]:
            assert body["system"] == [{"text": "Answer briefly."}] and body["inferenceConfig"]["maxTokens"] == 4096
            assert "model" not in body and "messages" in body


def test_a_stream_fails_over_across_providers(cross):
    for _, model in CHAIN[:3]:
        cross.fault(model, FAULTS[model])
    stream = cross.client.chat.completions.create(model="ignored", messages=MESSAGES, stream=True,
                                                  stream_options={"include_usage": True})
    chunks = list(stream)
    provider, model = CHAIN[3]
    assert {c.model for c in chunks} == {model}
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and chunks[-1].choices == []
    assert usage_chunks[0].usage.completion_tokens == 12
