"""The official OpenAI Python SDK against the gateway, in front of the fake provider."""
import openai
import pytest

from conftest import client

ANSWER_WORDS = None


MESSAGES = [{"role": "user", "content": "What is kubernetes?"}]


def test_failover_non_streaming(stack):
    stack.fault("gpt-4o", "status=503")
    raw = client(stack).chat.completions.with_raw_response.create(model="anything", messages=MESSAGES)
    completion = raw.parse()
    assert completion.model == "gpt-4.0-turbo"
    assert raw.headers["x-aigw-model"] == "gpt-4.0-turbo"
    assert raw.headers["x-aigw-attempts"] == "openai/gpt-4o=503,openai/gpt-4o=503,openai/gpt-4.0-turbo=ok"
    assert completion.choices[0].message.content.startswith("Kubernetes")
    assert completion.usage.completion_tokens == 12
    for r in stack.requests():
        headers = {k: v for k, v in r["headers"]}
        assert headers["authorization"] == "Bearer sk-demo-not-a-real-key"


def test_streaming_through_failover(stack):
    stack.fault("gpt-4o", "reset")
    stream = client(stack).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                   stream_options={"include_usage": True})
    text, models, usage = "", set(), None
    for chunk in stream:
        models.add(chunk.model)
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    assert models == {"gpt-4.0-turbo"}
    assert text.startswith("Kubernetes is an open-source")
    assert len(text.split(" ")) == 12
    assert usage is not None and usage.completion_tokens == 12


def test_streaming_without_usage_has_no_empty_choice_chunk(stack):
    # The gateway asks the provider for usage (to count tokens) but must not hand a client that
    # did not ask a chunk whose choices list is empty.
    stream = client(stack).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    chunks = list(stream)
    assert chunks and all(c.choices for c in chunks)


def test_cut_stream_raises_in_the_sdk(stack):
    stack.fault("gpt-4o", "cut-after=3")
    stream = client(stack).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    received = ""
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received += chunk.choices[0].delta.content
    assert "incomplete" in str(err.value.message)
    assert received == "Kubernetes is an"


def test_stalled_stream_raises_in_the_sdk(stack):
    stack.fault("gpt-4o", "stall-after=2")
    stream = client(stack).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


def test_everything_failed_is_an_api_status_error(stack):
    for m in ("gpt-4o", "gpt-4.0-turbo", "gpt-3.5-turbo"):
        stack.fault(m, "status=500")
    with pytest.raises(openai.APIStatusError) as err:
        client(stack).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert err.value.status_code == 502
    attempts = err.value.body["attempts"]
    assert [a["model"] for a in attempts] == ["gpt-4o", "gpt-4o", "gpt-4.0-turbo", "gpt-4.0-turbo", "gpt-3.5-turbo", "gpt-3.5-turbo"]


def test_content_filter_is_returned_as_is(stack):
    stack.fault("gpt-4o", "content-filter")
    with pytest.raises(openai.BadRequestError) as err:
        client(stack).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert err.value.code == "content_filter"
    assert len(stack.requests()) == 1


def test_error_inside_a_stream_before_tokens_fails_over(stack):
    # OpenAI's own `data: {"error": ...}` in a 200 stream is a failure of the attempt, not an answer.
    stack.fault("gpt-4o", "stream-error=0")
    raw = client(stack).chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert raw.headers["x-aigw-model"] == "gpt-4.0-turbo"
    assert raw.headers["x-aigw-attempts"] == "openai/gpt-4o=500,openai/gpt-4o=500"
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices).startswith("Kubernetes is")
