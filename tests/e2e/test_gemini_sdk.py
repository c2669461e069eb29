"""The official OpenAI Python SDK against the gateway, with Gemini API and Vertex AI entries
served by the fake provider's native Google endpoints (strict like the real APIs)."""
import json
import urllib.request

import openai
import pytest

from conftest import ANSWER, BACKEND_HEAD, WORDS, Stack, client, text_until_error

KEY = "sk-demo-not-a-real-key"

ENTRY = {
    "gemini": """gemini:
              model: gemini-2.5-flash
              apiVersion: v1beta
              authToken: {kind: SecretRef, secretRef: {name: openai-secret}}""",
    "vertexai": """vertexai:
              model: gemini-2.5-pro
              apiVersion: v1
              projectId: demo-project
              location: us-central1
              publisher: GOOGLE
              authToken: {kind: SecretRef, secretRef: {name: openai-secret}}""",
}
MODEL = {"gemini": "gemini-2.5-flash", "vertexai": "gemini-2.5-pro"}
PATH = {
    "gemini": "/v1beta/models/gemini-2.5-flash",
    "vertexai": "/v1/projects/demo-project/locations/us-central1/publishers/google/models/gemini-2.5-pro",
}


def backend(first: str) -> str:
    """A Backend whose first priority is `first` (an entry's YAML), with OpenAI gpt-4o behind it."""
    return BACKEND_HEAD + f"""      - pool:
        - provider:
            {first}
      - pool:
        - provider:
            openai:
              model: "gpt-4o"
              authToken: {{kind: SecretRef, secretRef: {{name: openai-secret}}}}
"""


@pytest.fixture(params=["gemini", "vertexai"])
def google(request, tmp_path):
    flavor = request.param
    s = Stack(tmp_path, backend=backend(ENTRY[flavor]))
    s.flavor = flavor
    s.model = MODEL[flavor]
    yield s
    s.stop()


def native_requests(stack) -> list:
    return [r for r in stack.requests() if not r["path"].startswith("/v1/chat/completions")]


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is kubernetes?"}]
PROMPT_WORDS = 5


def test_non_streamed_answer(google):
    raw = client(google).chat.completions.with_raw_response.create(model="whatever", messages=MESSAGES, max_tokens=50, temperature=0.5)
    completion = raw.parse()
    assert completion.choices[0].message.content == ANSWER
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == google.model
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (PROMPT_WORDS, 12, PROMPT_WORDS + 12)
    assert raw.headers["x-aigw-attempts"] == f"{google.flavor}/{google.model}=ok"
    [request] = native_requests(google)
    assert request["path"] == PATH[google.flavor] + ":generateContent"
    headers = dict(request["headers"])
    if google.flavor == "gemini":
        assert headers["x-goog-api-key"] == KEY and "authorization" not in headers
    else:
        assert headers["authorization"] == f"Bearer {KEY}"
    body = json.loads(request["body"])
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "What is kubernetes?"}]}]
    assert body["generationConfig"] == {"maxOutputTokens": 50, "temperature": 0.5}


@pytest.mark.parametrize("include_usage", [True, False])
def test_streamed_answer(google, include_usage):
    kwargs = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(client(google).chat.completions.create(model="m", messages=MESSAGES, stream=True, **kwargs))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage_chunks = [c for c in chunks if c.usage]
    if include_usage:
        assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and chunks[-1].choices == []
        u = usage_chunks[0].usage
        assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (PROMPT_WORDS, 12, PROMPT_WORDS + 12)
    else:
        assert usage_chunks == [] and all(c.choices for c in chunks)
    [request] = native_requests(google)
    assert request["path"] == PATH[google.flavor] + ":streamGenerateContent?alt=sse"


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
          "parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": False,
                         "$defs": {"Unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                         "properties": {"location": {"type": "string"}, "unit": {"$ref": "#/$defs/Unit"},
                                        "days": {"type": ["integer", "null"], "default": 1}},
                         "required": ["location"]}}}]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_and_follow_up(google, stream):
    google.fault(google.model, "tool-call,times=1")
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    c = client(google)
    if stream:
        chunks = list(c.chat.completions.create(model="m", messages=ask, tools=TOOLS, stream=True))
        deltas = [tc for ch in chunks if ch.choices for tc in (ch.choices[0].delta.tool_calls or [])]
        assert len(deltas) == 1 and deltas[0].index == 0 and deltas[0].id and deltas[0].function.name == "get_weather"
        call_id, name, arguments = deltas[0].id, deltas[0].function.name, deltas[0].function.arguments
        finish = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
        assert finish == ["tool_calls"]
    else:
        completion = c.chat.completions.create(model="m", messages=ask, tools=TOOLS)
        choice = completion.choices[0]
        assert choice.finish_reason == "tool_calls"
        [call] = choice.message.tool_calls
        call_id, name, arguments = call.id, call.function.name, call.function.arguments
    assert name == "get_weather"
    assert isinstance(json.loads(arguments), dict)
    # What reached the fake: Gemini's schema subset only (the fake rejects anything else).
    declared = json.loads(native_requests(google)[0]["body"])["tools"][0]["functionDeclarations"][0]
    assert declared["parameters"]["properties"]["unit"] == {"type": "STRING", "enum": ["celsius", "fahrenheit"]}
    assert declared["parameters"]["properties"]["days"] == {"type": "INTEGER", "nullable": True}
    # The follow-up with the tool result: accepted by the strict fake, answered with text.
    follow = ask + [
        {"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21 degrees"},
    ]
    answer = c.chat.completions.create(model="m", messages=follow, tools=TOOLS)
    assert answer.choices[0].message.content == ANSWER
    assert answer.choices[0].finish_reason == "stop"
    body = json.loads(native_requests(google)[-1]["body"])
    assert body["contents"][-1] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"content": "sunny, 21 degrees"}}}]}


def test_system_messages_and_same_role_turns(google):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Answer in English."},
        {"role": "user", "content": "Hello."},
        {"role": "user", "content": [{"type": "text", "text": "What is kubernetes?"}]},
        {"role": "assistant", "content": "A container orchestrator."},
        {"role": "assistant", "content": "It is open source."},
        {"role": "user", "content": "More?"},
    ]
    completion = client(google).chat.completions.create(model="m", messages=messages)
    assert completion.choices[0].message.content == ANSWER
    body = json.loads(native_requests(google)[0]["body"])
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief.\nAnswer in English."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][0]["parts"] == [{"text": "Hello."}, {"text": "What is kubernetes?"}]


@pytest.mark.parametrize("spec, label", [
    ("status=429,retry-after=30", "429"),
    ("status=503", "503"),
    ("status=500", "500"),
    ("model-not-found", "404"),
    ("unauthorized", None),
])
def test_native_errors_fail_over(google, spec, label):
    google.fault(google.model, spec)
    raw = client(google).chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert raw.parse().model == "gpt-4o"
    attempts = raw.headers["x-aigw-attempts"]
    assert attempts.endswith(",openai/gpt-4o=ok"), attempts
    expected = label or ("400" if google.flavor == "gemini" else "401")
    assert attempts.split(",")[0] == f"{google.flavor}/{google.model}={expected}", attempts


def test_context_length_is_classified(google):
    google.fault(google.model, "context-length")
    google.fault("gpt-4o", "context-length")
    with pytest.raises(openai.BadRequestError) as err:
        client(google).chat.completions.create(model="m", messages=MESSAGES)
    assert err.value.status_code == 400


def test_safety_block_is_content_filter(google):
    google.fault(google.model, "blocked")
    completion = client(google).chat.completions.create(model="m", messages=MESSAGES)
    assert completion.choices[0].finish_reason == "content_filter"
    assert not completion.choices[0].message.content
    chunks = list(client(google).chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["content_filter"]


def test_in_stream_error_before_any_token_fails_over(google):
    google.fault(google.model, "stream-error=0")
    chunks = list(client(google).chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert {c.model for c in chunks} == {"gpt-4o"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER


def test_in_stream_error_after_tokens_reaches_the_client(google):
    google.fault(google.model, "stream-error=3")
    assert text_until_error(google, model="m", messages=MESSAGES) == " ".join(WORDS[:3])


@pytest.mark.parametrize("flavor", ["gemini", "vertexai"])
def test_wrong_key_is_misconfigured_and_fails_over(tmp_path, flavor):
    entry = ENTRY[flavor].replace("{kind: SecretRef, secretRef: {name: openai-secret}}", "{kind: Inline, inline: wrong-key}")
    s = Stack(tmp_path, backend=backend(entry))
    try:
        raw = client(s).chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
        assert raw.parse().model == "gpt-4o"
        status = "400" if flavor == "gemini" else "401"
        assert raw.headers["x-aigw-attempts"] == f"{flavor}/{MODEL[flavor]}={status},openai/gpt-4o=ok"
        # Counted as a misconfigured entry (Gemini's 400 included), never as the client's error.
        with urllib.request.urlopen(f"http://127.0.0.1:{s.admin_port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        counted = [line for line in metrics.splitlines()
                   if line.startswith("aigw_misconfigured_total{") and f'model="{MODEL[flavor]}"' in line and f'reason="{status}"' in line]
        assert len(counted) == 1 and counted[0].rsplit(" ", 1)[1] in ("1", "1.0"), metrics
    finally:
        s.stop()


def test_cut_stream_reaches_the_client_as_an_error(google):
    google.fault(google.model, "cut-after=3")
    assert text_until_error(google, model="m", messages=MESSAGES) == " ".join(WORDS[:3])


def test_malformed_event_is_skipped(google):
    google.fault(google.model, "malformed-event=2")
    chunks = list(client(google).chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert {c.model for c in chunks} == {google.model}


def test_open_object_parameter_makes_the_candidate_unsupported(google):
    # Gemini rejects an object without properties below the top level: the next candidate answers.
    tools = [{"type": "function", "function": {"name": "run", "parameters": {"type": "object", "properties": {
        "params": {"type": "object", "additionalProperties": True}}}}}]
    raw = client(google).chat.completions.with_raw_response.create(model="m", messages=MESSAGES, tools=tools)
    assert raw.parse().model == "gpt-4o"
    attempts = raw.headers["x-aigw-attempts"]
    assert attempts.startswith(f"{google.flavor}/{google.model}=unsupported") and attempts.endswith(",openai/gpt-4o=ok"), attempts
    assert native_requests(google) == []
