"""Tests of FakeOpenAI, driven through the real `openai` SDK over loopback."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from tests.fake_openai import FakeOpenAI, Reply

MESSAGES: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hello world"},
]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    server.start()
    yield server
    server.stop()


def sync_client(fake: FakeOpenAI, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=0, **kwargs)


def async_client(fake: FakeOpenAI, **kwargs: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0, **kwargs)


def content(chunk: ChatCompletionChunk) -> str | None:
    return chunk.choices[0].delta.content if chunk.choices else None


async def stream_contents(chunks: AsyncIterator[ChatCompletionChunk]) -> list[str]:
    return [text async for chunk in chunks if (text := content(chunk))]


def raw_post(fake: FakeOpenAI, body: bytes) -> tuple[int, dict[str, Any]]:
    port = int(fake.base_url.rsplit(":", 1)[1].split("/")[0])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.asyncio
async def test_stream_yields_tokens_in_order_and_usage(fake: FakeOpenAI) -> None:
    fake.queue_reply(Reply(tokens=["Hi", " there", "!"], usage=(7, 3)))
    async with async_client(fake) as client:
        stream = await client.chat.completions.create(
            model="fake-model", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]

    assert [c for chunk in chunks if (c := content(chunk))] == ["Hi", " there", "!"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 3)
    assert chunks[-1].usage.total_tokens == 10
    assert {chunk.id for chunk in chunks} == {chunks[0].id}


@pytest.mark.asyncio
async def test_default_reply_echoes_last_user_message_word_by_word(fake: FakeOpenAI) -> None:
    async with async_client(fake) as client:
        stream = await client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
        assert await stream_contents(stream) == ["Echo:", " hello", " world"]


@pytest.mark.asyncio
async def test_requests_are_recorded_with_exact_messages(fake: FakeOpenAI) -> None:
    async with async_client(fake) as client:
        stream = await client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
        await stream_contents(stream)

    assert fake.last_messages() == MESSAGES
    [request] = fake.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "fake-model"
    assert request.headers["authorization"] == "Bearer test"


@pytest.mark.asyncio
async def test_tokens_arrive_one_at_a_time(fake: FakeOpenAI) -> None:
    # The fake holds the stream after each token: the client can only see that token
    # before the next is written if it was sent at once, not buffered.
    fake.queue_reply(Reply(tokens=["a", "b", "c"], hang_after_tokens=1, hang_again_after_tokens=2))
    received: list[str] = []
    async with async_client(fake) as client:
        stream = await client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
        chunks = aiter(stream)
        for expected in ["a", "b"]:
            while not received or received[-1] != expected:
                text = content(await asyncio.wait_for(anext(chunks), 10))
                if text:
                    received.append(text)
            fake.release()
        received += [text async for chunk in chunks if (text := content(chunk))]

    assert received == ["a", "b", "c"]


def test_sync_non_stream_completion(fake: FakeOpenAI) -> None:
    fake.queue_text("Hello from the fake")
    with sync_client(fake) as client:
        completion = client.chat.completions.create(model="fake-model", messages=MESSAGES)

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "Hello from the fake"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 4


def test_models_lists_configured_model() -> None:
    with FakeOpenAI(model="tiny") as fake, sync_client(fake) as client:
        assert [model.id for model in client.models.list()] == ["tiny"]


def test_status_500_raises_internal_server_error(fake: FakeOpenAI) -> None:
    fake.queue_reply(Reply(tokens=[], status=500, error_message="boom"))
    with sync_client(fake) as client, pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)

    assert raised.value.status_code == 500
    assert raised.value.body == {"message": "boom", "type": "server_error", "param": None, "code": None}


@pytest.mark.asyncio
async def test_status_429_raises_rate_limit_error_with_retry_after(fake: FakeOpenAI) -> None:
    fake.queue_reply(Reply(tokens=[], status=429, retry_after=2))
    async with async_client(fake) as client:
        with pytest.raises(openai.RateLimitError) as raised:
            await client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)

    assert raised.value.response.headers["retry-after"] == "2"
    assert raised.value.code == "rate_limit_exceeded"


@pytest.mark.asyncio
async def test_drop_after_tokens_raises_after_exactly_those_tokens(fake: FakeOpenAI) -> None:
    fake.queue_reply(Reply(tokens=["one", " two", " three", " four"], drop_after_tokens=2))
    received: list[str] = []
    async with async_client(fake) as client:
        stream = await client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIConnectionError):
            async for chunk in stream:
                if text := content(chunk):
                    received.append(text)

    assert received == ["one", " two"]


@pytest.mark.asyncio
async def test_hang_with_read_timeout_raises_api_timeout_error(fake: FakeOpenAI) -> None:
    fake.queue_reply(Reply(tokens=["first", " never"], hang_after_tokens=1))
    received: list[str] = []
    async with async_client(fake, timeout=openai.Timeout(5.0, read=0.5)) as client:
        stream = await client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APITimeoutError):
            async for chunk in stream:
                if text := content(chunk):
                    received.append(text)

    assert received == ["first"]
    fake.wait_for_open_streams(0)


@pytest.mark.asyncio
async def test_open_streams_returns_to_zero_when_client_closes_early(fake: FakeOpenAI) -> None:
    fake.queue_reply(Reply(tokens=["tick"] * 50, delay=0.05))
    async with async_client(fake) as client:
        stream = await client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
        async for chunk in stream:
            if content(chunk):
                break
        assert fake.open_streams == 1
        await stream.close()

    fake.wait_for_open_streams(0)
    assert fake.open_streams == 0


@pytest.mark.asyncio
async def test_release_resumes_concurrent_hung_streams(fake: FakeOpenAI) -> None:
    for _ in range(2):
        fake.queue_reply(Reply(tokens=["a", "b"], hang_after_tokens=1))
    async with async_client(fake) as client:
        streams = [
            await client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
            for _ in range(2)
        ]
        fake.wait_for_request(2)
        assert fake.open_streams == 2
        fake.release()
        assert [await stream_contents(stream) for stream in streams] == [["a", "b"], ["a", "b"]]

    fake.wait_for_open_streams(0)


def test_stop_does_not_hang_on_a_hung_stream(fake: FakeOpenAI) -> None:
    fake.queue_reply(Reply(tokens=["a", "b"], hang_after_tokens=1))
    with sync_client(fake) as client:
        stream = client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
        fake.wait_for_request()
        server = fake._server
        assert server is not None
        fake.stop()
        # Every connection was closed before stop() returned: its grace period did not run out.
        assert not server._connections
        assert fake.open_streams == 0
        with pytest.raises(openai.APIConnectionError):
            list(stream)


def test_malformed_json_is_rejected_with_400(fake: FakeOpenAI) -> None:
    status, body = raw_post(fake, b"{not json")

    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert fake.requests == []


def test_missing_messages_is_rejected_with_400(fake: FakeOpenAI) -> None:
    status, body = raw_post(fake, json.dumps({"model": "fake-model"}).encode())

    assert status == 400
    assert body["error"]["code"] == "missing_required_parameter"
