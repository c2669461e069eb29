"""Anthropic Messages behind the gateway, driven by the official OpenAI Python SDK: the fake
provider speaks Anthropic's native API (as strictly as the real one) and the gateway translates."""
import json

import openai
import pytest

from conftest import (ANSWER, BACKEND_HEAD, MESSAGES, WORDS, Stack, check_streamed_answer, client, native, pool_entry,
                      streamed_weather_call, text_until_error)

CLAUDE = "claude-sonnet-4-5"


def backend(*entries) -> str:
    return BACKEND_HEAD + "".join(pool_entry(p, m) for p, m in entries)


@pytest.fixture
def claude(tmp_path):
    """A Backend with one Anthropic entry."""
    s = Stack(tmp_path, backend=backend(("anthropic", CLAUDE)))
    yield s
    s.stop()


@pytest.fixture
def mixed(tmp_path):
    """OpenAI first, Anthropic second."""
    s = Stack(tmp_path, backend=backend(("openai", "gpt-4o"), ("anthropic", CLAUDE)))
    yield s
    s.stop()


def test_non_streamed_answer(claude):
    raw = client(claude).chat.completions.with_raw_response.create(model="anything", messages=MESSAGES)
    c = raw.parse()
    assert c.object == "chat.completion"
    assert c.model == CLAUDE
    assert c.choices[0].message.role == "assistant"
    assert c.choices[0].message.content == ANSWER
    assert c.choices[0].finish_reason == "stop"
    assert (c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.total_tokens) == (6, 12, 18)
    assert raw.headers["x-aigw-model"] == CLAUDE
    assert raw.headers["x-aigw-attempts"] == f"anthropic/{CLAUDE}=ok"
    # What Anthropic got: its own shape, system on top, the two user turns merged, max_tokens set.
    r = native(claude)
    assert r["path"] == "/v1/messages"
    assert r["h"]["x-api-key"] == "sk-demo-not-a-real-key"
    assert "authorization" not in r["h"]
    assert r["h"]["anthropic-version"] == "2023-06-01"
    assert r["json"]["system"] == "You are terse."
    assert r["json"]["max_tokens"] == 4096
    assert r["json"]["model"] == CLAUDE
    assert r["json"]["messages"] == [{"role": "user", "content": [{"type": "text", "text": "What is"}, {"type": "text", "text": "kubernetes?"}]}]


def test_max_tokens_from_the_client(claude):
    client(claude).chat.completions.create(model="x", messages=MESSAGES, max_completion_tokens=55, seed=7, temperature=0.2)
    body = native(claude)["json"]
    assert body["max_tokens"] == 55
    assert body["temperature"] == 0.2
    assert "seed" not in body  # tuning only: dropped for Anthropic


@pytest.mark.parametrize("include_usage", [True, False])
def test_streamed_answer(claude, include_usage):
    kwargs = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(client(claude).chat.completions.create(model="x", messages=MESSAGES, stream=True, **kwargs))
    check_streamed_answer(chunks, include_usage)
    assert all(c.model == CLAUDE for c in chunks)
    assert native(claude)["json"]["stream"] is True


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                           "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]


def test_tool_call_streamed_then_the_result_accepted(claude):
    call, follow = streamed_weather_call(claude, CLAUDE, TOOLS)
    assert call["name"] == "get_weather"
    assert native(claude)["json"]["tools"][0]["input_schema"]["properties"] == {"location": {"type": "string"}}

    # The follow-up turn with the result: the strict fake checks Anthropic's placement rules.
    c = client(claude).chat.completions.create(model="x", messages=follow, tools=TOOLS)
    assert c.choices[0].message.content == ANSWER
    sent = native(claude)["json"]["messages"]
    assert sent[1]["content"][0] == {"type": "tool_use", "id": call["id"], "name": "get_weather", "input": {"location": "Paris", "unit": "celsius"}}
    assert sent[2] == {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "18 degrees"}]}


def test_non_streamed_tool_call(claude):
    claude.fault(CLAUDE, "tool-call")
    c = client(claude).chat.completions.create(model="x", messages=[{"role": "user", "content": "Weather?"}], tools=TOOLS, tool_choice="required")
    assert c.choices[0].finish_reason == "tool_calls"
    assert c.choices[0].message.content is None
    assert json.loads(c.choices[0].message.tool_calls[0].function.arguments) == {"location": "Paris", "unit": "celsius"}
    assert native(claude)["json"]["tool_choice"] == {"type": "any"}


def test_refusal_is_content_filter(claude):
    claude.fault(CLAUDE, "blocked")
    c = client(claude).chat.completions.create(model="x", messages=MESSAGES)
    assert c.choices[0].finish_reason == "content_filter"


def test_overloaded_everywhere_is_one_error_naming_the_attempts(claude):
    claude.fault(CLAUDE, "status=529")
    with pytest.raises(openai.APIStatusError) as err:
        client(claude).chat.completions.create(model="x", messages=MESSAGES)
    assert err.value.status_code == 502
    assert err.value.response.headers["x-aigw-attempts"] == f"anthropic/{CLAUDE}=529"


def test_context_length_is_returned_in_openai_shape(claude):
    claude.fault(CLAUDE, "context-length")
    with pytest.raises(openai.BadRequestError) as err:
        client(claude).chat.completions.create(model="x", messages=MESSAGES)
    assert err.value.code == "context_length_exceeded"
    assert "prompt is too long" in err.value.message


def test_rate_limit_honours_retry_after(claude):
    # Longer than the request may wait, and than --retry-after-cap (300 s): the client hears when
    # to come back (the cap), the entry is not retried.
    claude.fault(CLAUDE, "status=429,retry-after=900")
    with pytest.raises(openai.APIStatusError) as err:
        client(claude).chat.completions.create(model="x", messages=MESSAGES)
    assert err.value.status_code == 503
    assert int(err.value.response.headers["retry-after"]) == 300
    assert len(claude.requests()) == 1, "not retried sooner than asked"


def test_rate_limit_reset_time_is_honoured(claude):
    # The anthropic-ratelimit-*-reset time (20 minutes ahead) is read, and capped at 300 s.
    claude.fault(CLAUDE, "status=429,ratelimit-reset=20m")
    with pytest.raises(openai.APIStatusError) as err:
        client(claude).chat.completions.create(model="x", messages=MESSAGES)
    assert err.value.status_code == 503
    assert int(err.value.response.headers["retry-after"]) == 300


@pytest.fixture
def claude_first(tmp_path):
    """Anthropic first, OpenAI second."""
    s = Stack(tmp_path, backend=backend(("anthropic", CLAUDE), ("openai", "gpt-4o")))
    yield s
    s.stop()


def test_spend_limit_is_not_retried(claude_first):
    claude_first.fault(CLAUDE, "status=429,code=enforced_spend_limit_reached")
    raw = client(claude_first).chat.completions.with_raw_response.create(model="x", messages=MESSAGES)
    assert raw.parse().model == "gpt-4o"
    assert raw.headers["x-aigw-attempts"] == f"anthropic/{CLAUDE}=429,openai/gpt-4o=ok"
    assert sum(r["path"] == "/v1/messages" for r in claude_first.requests()) == 1


def test_a_wrong_key_is_a_misconfigured_entry(claude_first):
    claude_first.fault(CLAUDE, "unauthorized")
    raw = client(claude_first).chat.completions.with_raw_response.create(model="x", messages=MESSAGES)
    assert raw.headers["x-aigw-attempts"] == f"anthropic/{CLAUDE}=401,openai/gpt-4o=ok"


def test_in_stream_error_before_any_token_fails_over(claude_first):
    claude_first.fault(CLAUDE, "stream-error=0")
    raw = client(claude_first).chat.completions.with_raw_response.create(model="x", messages=MESSAGES, stream=True)
    # A stream's headers go out with its first token: the trail names the attempts before it.
    assert raw.headers["x-aigw-attempts"] == f"anthropic/{CLAUDE}=529"
    assert raw.headers["x-aigw-model"] == "gpt-4o"
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == ANSWER


def test_in_stream_error_after_tokens_raises_in_the_sdk(claude):
    claude.fault(CLAUDE, "stream-error=3")
    assert text_until_error(claude, model="x", messages=MESSAGES) == " ".join(WORDS[:3])


def test_failover_from_openai_503_to_anthropic(mixed):
    mixed.fault("gpt-4o", "status=503")
    raw = client(mixed).chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    c = raw.parse()
    assert c.model == CLAUDE and c.choices[0].message.content == ANSWER
    assert raw.headers["x-aigw-attempts"] == f"openai/gpt-4o=503,openai/gpt-4o=503,anthropic/{CLAUDE}=ok"
    last = native(mixed)
    assert last["path"] == "/v1/messages" and "messages" in last["json"] and "stream_options" not in last["json"]


def test_streamed_failover_from_openai_to_anthropic(mixed):
    mixed.fault("gpt-4o", "reset")
    chunks = list(client(mixed).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert chunks[-1].usage.completion_tokens == 12


def test_a_parameter_anthropic_cannot_honour_moves_on(claude_first):
    raw = client(claude_first).chat.completions.with_raw_response.create(model="x", messages=MESSAGES, n=2)
    assert raw.parse().model == "gpt-4o"
    assert raw.headers["x-aigw-attempts"] == f"anthropic/{CLAUDE}=unsupported,openai/gpt-4o=ok"
    assert all(r["path"] != "/v1/messages" for r in claude_first.requests())


def test_a_parameter_no_candidate_can_honour_is_a_400(claude):
    with pytest.raises(openai.BadRequestError) as err:
        client(claude).chat.completions.create(model="x", messages=MESSAGES, logprobs=True)
    assert "'logprobs'" in err.value.message
    assert claude.requests() == []


def post_native(stack, body, headers=None):
    """POSTs straight to the fake's Anthropic API; returns (status, parsed body)."""
    import urllib.error
    import urllib.request
    h = {"content-type": "application/json", "x-api-key": "sk-demo-not-a-real-key", "anthropic-version": "2023-06-01"}
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    req = urllib.request.Request(f"{stack.provider_url}/v1/messages", data=json.dumps(body).encode(), method="POST", headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


GOOD = {"model": CLAUDE, "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]}
USE = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}


@pytest.mark.parametrize("change,headers,status,fragment", [
    ({}, {}, 200, None),
    ({"max_tokens": None}, {}, 400, "max_tokens: Field required"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}, {}, 400, "roles must alternate"),
    ({"messages": [{"role": "system", "content": "a"}]}, {}, 400, "role"),
    ({"messages": [{"role": "assistant", "content": "a"}]}, {}, 400, "first message"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}, {}, 400, "non-empty"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": [USE]},
                   {"role": "user", "content": "b"}]}, {}, 400, "without `tool_result`"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": [USE]},
                   {"role": "user", "content": [{"type": "text", "text": "b"}, RESULT]}]}, {}, 400, "must come first"),
    ({"messages": [{"role": "user", "content": [RESULT]}]}, {}, 400, "unexpected `tool_use_id`"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": [USE]},
                   {"role": "user", "content": [RESULT, {"type": "text", "text": "b"}]}]}, {}, 200, None),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b "}]}, {}, 400, "trailing whitespace"),
    ({"seed": 1}, {}, 400, "Extra inputs"),
    ({}, {"x-api-key": None}, 401, "x-api-key"),
    ({}, {"x-api-key": "sk-wrong"}, 401, "invalid x-api-key"),
    ({}, {"anthropic-version": None}, 400, "anthropic-version"),
    ({}, {"anthropic-version": "2099-01-01"}, 400, "anthropic-version"),
])
def test_the_fake_is_as_strict_as_anthropic(claude, change, headers, status, fragment):
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    got, answer = post_native(claude, body, headers)
    assert got == status, answer
    if fragment:
        assert answer["type"] == "error" and fragment in answer["error"]["message"]


def test_stream_continuation_in_anthropics_own_format(tmp_path):
    s = Stack(tmp_path, backend=backend(("openai", "gpt-4o"), ("anthropic", CLAUDE)).replace(
        "  labels:\n", "  annotations:\n    ai-gateway.kgateway.dev/stream-continuation: \"true\"\n  labels:\n", 1))
    try:
        s.fault("gpt-4o", "cut-after=3")
        chunks = list(client(s).chat.completions.create(model="x", messages=MESSAGES, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
        last = native(s)
        assert last["path"] == "/v1/messages"
        assert last["json"]["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": " ".join(WORDS[:3])}]}
    finally:
        s.stop()
