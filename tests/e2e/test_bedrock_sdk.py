"""Amazon Bedrock (Converse / ConverseStream) behind the gateway, driven by the official OpenAI
Python SDK. The fake provider speaks Bedrock's native API strictly: it verifies the SigV4 signature
(access key AKIDFAKEGATEWAY, secret = the fake's required key), streams binary event-stream frames,
and rejects what Bedrock rejects (roles out of order, tool blocks without a toolConfig, ...)."""
import json
import re
import time
import urllib.parse
import urllib.request

import openai
import pytest

from conftest import (ANSWER, BACKEND_HEAD, MESSAGES, WORDS, Stack, check_streamed_answer, client, native, pool_entry,
                      streamed_weather_call, text_until_error)

# A model id with ':' (signed with %253A in the canonical URI, sent as %3A).
MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"
WIRE_PATH = "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"


def aws_secret(secret_key: str) -> str:
    return f"""---
apiVersion: v1
kind: Secret
metadata: {{name: aws-keys, namespace: kgateway-system}}
type: Opaque
stringData:
  accessKey: AKIDFAKEGATEWAY
  secretKey: "{secret_key}"
"""


def entry(provider: str, model: str, guardrail: bool = False) -> str:
    if provider in ("bedrock", "bedrock-default-chain"):
        g = "\n              guardrail: {identifier: gr-fake, version: \"3\"}" if guardrail else ""
        auth = "\n              auth: {type: Secret, secretRef: {name: aws-keys}}" if provider == "bedrock" else ""
        return f"""      - pool:
        - provider:
            bedrock:
              model: "{model}"
              region: eu-west-3{auth}{g}
"""
    return pool_entry(provider, model)


def backend(*entries, secret_key="sk-demo-not-a-real-key", guardrail=False) -> str:
    return BACKEND_HEAD + "".join(entry(p, m, guardrail) for p, m in entries) + aws_secret(secret_key)


def make(tmp_path, *entries, gateway_env=None, **kw):
    return Stack(tmp_path, backend=backend(*entries, **kw), gateway_env=gateway_env)


@pytest.fixture
def bedrock(tmp_path):
    s = make(tmp_path, ("bedrock", MODEL), guardrail=True)
    yield s
    s.stop()


@pytest.fixture
def bedrock_first(tmp_path):
    """Bedrock first, OpenAI second."""
    s = make(tmp_path, ("bedrock", MODEL), ("openai", "gpt-4o"))
    yield s
    s.stop()


def test_non_streamed_answer_signed_and_translated(bedrock):
    raw = client(bedrock).chat.completions.with_raw_response.create(model="anything", messages=MESSAGES)
    c = raw.parse()
    assert c.object == "chat.completion"
    assert c.id.startswith("fake-req-"), "the id is Bedrock's x-amzn-RequestId"
    assert c.model == MODEL
    assert c.choices[0].message.content == ANSWER
    assert c.choices[0].finish_reason == "stop"
    assert (c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.total_tokens) == (6, 12, 18)
    assert raw.headers["x-aigw-attempts"] == f"bedrock/{MODEL}=ok"
    r = native(bedrock)
    assert r["path"] == WIRE_PATH
    # SigV4 for service bedrock in the Backend's region; the fake verified the signature itself.
    assert re.match(r"AWS4-HMAC-SHA256 Credential=AKIDFAKEGATEWAY/\d{8}/eu-west-3/bedrock/aws4_request, "
                    r"SignedHeaders=content-type;host;x-amz-date, Signature=[0-9a-f]{64}$", r["h"]["authorization"])
    assert "sk-demo-not-a-real-key" not in json.dumps(r["headers"])
    body = r["json"]
    assert body["system"] == [{"text": "You are terse."}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "What is"}, {"text": "kubernetes?"}]}]
    assert body["inferenceConfig"] == {"maxTokens": 4096}
    assert body["guardrailConfig"] == {"guardrailIdentifier": "gr-fake", "guardrailVersion": "3", "trace": "enabled"}
    assert "model" not in body


def test_client_parameters(bedrock):
    client(bedrock).chat.completions.create(model="x", messages=MESSAGES, max_tokens=55, temperature=0.25, top_p=0.5, stop=["END"], seed=7)
    body = native(bedrock)["json"]
    assert body["inferenceConfig"] == {"maxTokens": 55, "temperature": 0.25, "topP": 0.5, "stopSequences": ["END"]}
    assert "seed" not in body


@pytest.mark.parametrize("include_usage", [True, False])
def test_streamed_answer(bedrock, include_usage):
    kwargs = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(client(bedrock).chat.completions.create(model="x", messages=MESSAGES, stream=True, **kwargs))
    check_streamed_answer(chunks, include_usage)
    assert all(c.model == MODEL and c.id.startswith("fake-req-") for c in chunks)
    assert native(bedrock)["path"] == WIRE_PATH.replace("/converse", "/converse-stream")


# A name Bedrock refuses ('.'): sanitised on the way out, restored on the way back.
TOOLS = [{"type": "function", "function": {"name": "weather.get", "description": "Weather in a city",
                                           "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]


def test_tool_call_streamed_then_the_result_accepted(bedrock):
    call, follow = streamed_weather_call(bedrock, MODEL, TOOLS)
    assert call["name"] == "weather.get"
    spec = native(bedrock)["json"]["toolConfig"]["tools"][0]["toolSpec"]
    assert spec["name"] == "weather_get"
    assert spec["inputSchema"]["json"]["properties"] == {"location": {"type": "string"}}

    # The follow-up turn with the result, accepted by the strict fake (toolUse, then toolResult).
    c = client(bedrock).chat.completions.create(model="x", messages=follow, tools=TOOLS)
    assert c.choices[0].message.content == ANSWER
    sent = native(bedrock)["json"]["messages"]
    assert sent[1] == {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": call["id"], "name": "weather_get", "input": {"location": "Paris", "unit": "celsius"}}}]}
    assert sent[2] == {"role": "user", "content": [{"toolResult": {"toolUseId": call["id"], "content": [{"text": "18 degrees"}]}}]}

    # Without tools in the request, the history's tool blocks still get the toolConfig Bedrock requires.
    c = client(bedrock).chat.completions.create(model="x", messages=follow)
    assert c.choices[0].message.content == ANSWER
    assert native(bedrock)["json"]["toolConfig"]["tools"][0]["toolSpec"]["name"] == "weather_get"


def test_non_streamed_tool_call(bedrock):
    bedrock.fault(MODEL, "tool-call")
    c = client(bedrock).chat.completions.create(model="x", messages=[{"role": "user", "content": "Weather?"}], tools=TOOLS, tool_choice="required")
    assert c.choices[0].finish_reason == "tool_calls"
    assert c.choices[0].message.content is None
    assert c.choices[0].message.tool_calls[0].function.name == "weather.get"
    assert json.loads(c.choices[0].message.tool_calls[0].function.arguments) == {"location": "Paris", "unit": "celsius"}
    assert native(bedrock)["json"]["toolConfig"]["toolChoice"] == {"any": {}}


@pytest.mark.parametrize("stream", [False, True])
def test_guardrail_block_is_content_filter(bedrock, stream):
    bedrock.fault(MODEL, "blocked")
    if stream:
        chunks = list(client(bedrock).chat.completions.create(model="x", messages=MESSAGES, stream=True))
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        c = client(bedrock).chat.completions.create(model="x", messages=MESSAGES)
        finishes, text = [c.choices[0].finish_reason], c.choices[0].message.content
    assert finishes == ["content_filter"]
    assert "guardrail" in text


def test_throttling_honours_retry_after(bedrock):
    # A ThrottlingException asking for 900 s: honoured up to --retry-after-cap (300 s), no retry sooner.
    bedrock.fault(MODEL, "status=429,retry-after=900")
    with pytest.raises(openai.APIStatusError) as err:
        client(bedrock).chat.completions.create(model="x", messages=MESSAGES)
    assert err.value.status_code == 503
    assert int(err.value.response.headers["retry-after"]) == 300
    assert len(bedrock.requests()) == 1


def test_context_length_is_returned_in_openai_shape(bedrock):
    bedrock.fault(MODEL, "context-length")
    with pytest.raises(openai.BadRequestError) as err:
        client(bedrock).chat.completions.create(model="x", messages=MESSAGES)
    assert err.value.code == "context_length_exceeded"
    assert "too long" in err.value.message


def metric(stack, name: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.admin_port}/metrics", timeout=5) as r:
        return "\n".join(line for line in r.read().decode().splitlines() if line.startswith(name))


def test_a_wrong_secret_key_is_misconfigured_and_fails_over(tmp_path):
    s = make(tmp_path, ("bedrock", MODEL), ("openai", "gpt-4o"), secret_key="not-the-secret")
    try:
        raw = client(s).chat.completions.with_raw_response.create(model="x", messages=MESSAGES)
        assert raw.parse().model == "gpt-4o"
        assert raw.headers["x-aigw-attempts"] == f"bedrock/{MODEL}=403,openai/gpt-4o=ok"
        first = s.requests()[0]
        assert first["path"] == WIRE_PATH
        lines = metric(s, "aigw_misconfigured_total")
        assert re.search(r'aigw_misconfigured_total\{[^}]*model="' + re.escape(MODEL) + r'"[^}]*reason="403"[^}]*\} 1', lines) or \
            re.search(r'aigw_misconfigured_total\{[^}]*reason="403"[^}]*model="' + re.escape(MODEL) + r'"[^}]*\} 1', lines), lines
    finally:
        s.stop()


def test_service_unavailable_fails_over(bedrock_first):
    bedrock_first.fault(MODEL, "status=503")
    raw = client(bedrock_first).chat.completions.with_raw_response.create(model="x", messages=MESSAGES)
    assert raw.parse().model == "gpt-4o"
    assert raw.headers["x-aigw-attempts"] == f"bedrock/{MODEL}=503,bedrock/{MODEL}=503,openai/gpt-4o=ok"


def test_in_stream_exception_before_any_token_fails_over(bedrock_first):
    bedrock_first.fault(MODEL, "stream-error=0")
    raw = client(bedrock_first).chat.completions.with_raw_response.create(model="x", messages=MESSAGES, stream=True)
    assert raw.headers["x-aigw-attempts"] == f"bedrock/{MODEL}=424"
    assert raw.headers["x-aigw-model"] == "gpt-4o"
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices) == ANSWER


def test_in_stream_exception_after_tokens_raises_in_the_sdk(bedrock):
    bedrock.fault(MODEL, "stream-error=3")
    assert text_until_error(bedrock, model="x", messages=MESSAGES) == " ".join(WORDS[:3])


def test_an_http_image_moves_on(bedrock_first):
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                             {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]
    raw = client(bedrock_first).chat.completions.with_raw_response.create(model="x", messages=messages)
    assert raw.parse().model == "gpt-4o"
    assert raw.headers["x-aigw-attempts"] == f"bedrock/{MODEL}=unsupported,openai/gpt-4o=ok"
    assert all(not r["path"].startswith("/model/") for r in bedrock_first.requests())


def test_failover_from_openai_to_bedrock_streamed(tmp_path):
    s = make(tmp_path, ("openai", "gpt-4o"), ("bedrock", MODEL))
    try:
        s.fault("gpt-4o", "status=503")
        chunks = list(client(s).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
        assert chunks[-1].usage.completion_tokens == 12
        assert all(c.model == MODEL for c in chunks)
        last = native(s)
        assert last["path"].endswith("/converse-stream") and "stream_options" not in last["json"]
    finally:
        s.stop()


def test_keys_from_the_environment(tmp_path):
    s = make(tmp_path, ("bedrock-default-chain", MODEL),
             gateway_env={"AWS_ACCESS_KEY_ID": "AKIDFAKEGATEWAY", "AWS_SECRET_ACCESS_KEY": "sk-demo-not-a-real-key"})
    try:
        c = client(s).chat.completions.create(model="x", messages=MESSAGES)
        assert c.choices[0].message.content == ANSWER
        h = native(s)["h"]
        assert h["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDFAKEGATEWAY/")
        assert "x-amz-security-token" not in h
    finally:
        s.stop()


def test_web_identity_through_sts(tmp_path):
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.fake.jwt\n")
    s = make(tmp_path, ("bedrock-default-chain", MODEL), gateway_env={
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token), "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/gateway",
        "AWS_ROLE_SESSION_NAME": "gw-test", "AWS_ENDPOINT_URL_STS": "{provider_url}"})
    try:
        # The gateway logs when it holds the exchanged keys: wait for that, not for a while.
        deadline = time.monotonic() + 10
        while "AWS credentials from web identity" not in (tmp_path / "gateway.log").read_text():
            assert time.monotonic() < deadline, "the gateway never got credentials from STS"
            time.sleep(0.05)
        sts = [r for r in s.requests() if r["path"] == "/"]
        assert len(sts) == 1
        form = urllib.parse.parse_qs(sts[0]["body"])
        assert form["Action"] == ["AssumeRoleWithWebIdentity"]
        assert form["RoleArn"] == ["arn:aws:iam::123456789012:role/gateway"] and form["RoleSessionName"] == ["gw-test"]
        assert form["WebIdentityToken"] == ["eyJhbGciOiJSUzI1NiJ9.fake.jwt"]
        raw = client(s).chat.completions.with_raw_response.create(model="x", messages=MESSAGES)
        c = raw.parse()
        assert c.choices[0].message.content == ANSWER
        h = native(s)["h"]
        assert h["x-amz-security-token"].startswith("FAKESTS-")
        assert "x-amz-security-token" in h["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    finally:
        s.stop()


def test_stream_continuation_sends_the_partial_answer_as_a_bedrock_prefill(tmp_path):
    second = "anthropic.claude-3-haiku-20240307-v1:0"
    # Stream continuation on: a stream cut after tokens continues on the next candidate.
    yaml = backend(("bedrock", MODEL), ("bedrock", second)).replace(
        "  labels:\n    app: model-failover\n  name: model-failover",
        "  annotations:\n    ai-gateway.kgateway.dev/stream-continuation: \"true\"\n"
        "  labels:\n    app: model-failover\n  name: model-failover", 1)
    s = Stack(tmp_path, backend=yaml)
    try:
        s.fault(MODEL, "cut-after=4")
        chunks = list(client(s).chat.completions.create(model="x", messages=MESSAGES, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
        assert [c.choices[0].delta.role for c in chunks if c.choices and c.choices[0].delta.role] == ["assistant"]
        last = native(s)
        assert last["path"] == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
        assert last["json"]["messages"][-1] == {"role": "assistant", "content": [{"text": " ".join(WORDS[:4])}]}
    finally:
        s.stop()


def test_one_request_fails_over_across_openai_anthropic_and_bedrock(tmp_path):
    claude = "claude-sonnet-4-5"
    s = make(tmp_path, ("openai", "gpt-4o"), ("anthropic", claude), ("bedrock", MODEL))
    try:
        s.fault("gpt-4o", "status=503")
        s.fault(claude, "status=529")
        for stream in (False, True):
            raw = client(s).chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, stream=stream)
            assert raw.headers["x-aigw-model"] == MODEL
            if stream:
                text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
            else:
                text = raw.parse().choices[0].message.content
            assert text == ANSWER
            trail = raw.headers["x-aigw-attempts"].split(",")
            assert trail[0] == "openai/gpt-4o=503" and f"anthropic/{claude}=529" in trail
            # A stream's headers leave with its first token: its trail names the attempts before it.
            assert trail[-1] == (f"anthropic/{claude}=529" if stream else f"bedrock/{MODEL}=ok")
    finally:
        s.stop()
