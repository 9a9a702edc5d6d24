import asyncio

import pytest

from conversations import llm
from conversations.llm import ChatMessage, ProviderError, ProviderNotConfigured, Usage
from conversations.reasoning import THINK_END, THINK_START
from providers import clients
from providers.clients import client_for
from tests.fake_openai import Reply

HELLO = [ChatMessage(role="user", content="hello")]


async def collect(**kwargs):
    return [item async for item in llm.chat_stream(messages=HELLO, **kwargs)]


async def test_deltas_arrive_in_order_then_the_usage(fake_openai):
    fake_openai.queue_reply(Reply(tokens=["Hel", "lo", "!"], usage=(5, 3)))

    items = await collect()

    assert items == ["Hel", "lo", "!", Usage(prompt_tokens=5, completion_tokens=3)]


async def test_the_request_names_the_model_and_streams(fake_openai):
    await collect(model="role-model", temperature=0.2)

    body = fake_openai.requests[-1].body
    assert (body["model"], body["stream"], body["temperature"]) == ("role-model", True, 0.2)


async def test_the_request_carries_the_key_and_asks_for_the_usage(fake_openai):
    await collect()

    request = fake_openai.requests[-1]
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.body == {
        "model": "fake-model",
        "messages": [{"role": "user", "content": "hello"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_the_configured_model_is_the_default(fake_openai):
    await collect()

    assert fake_openai.requests[-1].body["model"] == "fake-model"


async def test_no_provider_is_a_clear_error(no_provider):
    with pytest.raises(ProviderNotConfigured, match="OPENAI_API_KEY"):
        await collect()


async def test_a_rate_limit_tells_the_user_the_provider_is_busy(fake_openai):
    for _ in range(2):
        fake_openai.queue_reply(Reply(tokens=[], status=429, retry_after=0.1))

    with pytest.raises(ProviderError, match="busy"):
        await collect()


async def test_a_silent_upstream_times_out(fake_openai, settings):
    settings.OPENAI_READ_TIMEOUT = 0.5
    settings.OPENAI_MAX_RETRIES = 0
    fake_openai.queue_reply(Reply(tokens=["a"], hang_after_tokens=1))

    with pytest.raises(ProviderError, match="too long") as failed:
        await collect()

    assert failed.value.interrupted is True  # text had arrived before the silence


async def test_a_stream_that_hangs_before_any_text_is_tried_once_more(fake_openai, settings):
    settings.OPENAI_READ_TIMEOUT = 0.5
    fake_openai.queue_reply(Reply(tokens=["never"], hang_after_tokens=0))  # headers, then silence
    fake_openai.queue_reply(Reply(tokens=["second", " try"]))

    items = await collect()

    assert [item for item in items if isinstance(item, str)] == ["second", " try"]
    assert len(fake_openai.requests) == 2


async def test_a_stream_that_hangs_after_text_is_not_tried_again(fake_openai, settings):
    settings.OPENAI_READ_TIMEOUT = 0.5
    fake_openai.queue_reply(Reply(tokens=["shown", "never"], hang_after_tokens=1))

    with pytest.raises(ProviderError, match="rest of the reply"):
        await collect()

    assert len(fake_openai.requests) == 1  # a retry would repeat the text already shown


async def test_a_connection_dropped_after_text_says_so(fake_openai):
    fake_openai.queue_reply(Reply(tokens=["shown", "lost"], drop_after_tokens=1))

    with pytest.raises(ProviderError, match="dropped mid-reply") as failed:
        await collect()

    assert failed.value.interrupted is True


async def test_cancelling_the_stream_closes_the_upstream_connection(fake_openai):
    fake_openai.queue_reply(Reply(tokens=["a", "b"], hang_after_tokens=1))

    async def read_forever():
        async for _item in llm.chat_stream(messages=HELLO):
            pass

    task = asyncio.create_task(read_forever())
    await asyncio.to_thread(fake_openai.wait_for_open_streams, 1)
    task.cancel()

    await asyncio.to_thread(fake_openai.wait_for_open_streams, 0)
    assert fake_openai.open_streams == 0


async def test_one_client_is_reused_within_a_loop(fake_openai):
    provider = llm.provider_get()
    assert provider is not None

    assert client_for(provider) is client_for(provider)


def test_a_base_url_without_a_key_still_configures_a_provider(settings):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:11434/v1"
    settings.OPENAI_API_KEY = ""

    provider = llm.provider_get()

    assert provider is not None
    assert provider.base_url == "http://127.0.0.1:11434/v1"


async def test_warming_up_makes_the_processs_client_before_a_user_needs_it(fake_openai):
    assert await llm.provider_reachable() is True

    provider = llm.provider_get()
    assert provider is not None
    made = clients._loop_clients(asyncio.get_running_loop()).current
    assert list(made) == [provider]  # the one the first reply uses


async def test_warming_up_an_unreachable_provider_fails_quietly(settings):
    from chatsite.embedded_redis import free_port

    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    settings.OPENAI_MAX_RETRIES = 0

    assert await llm.provider_reachable(within=3) is False


async def test_with_no_provider_there_is_nothing_to_warm_up(no_provider):
    assert await llm.provider_reachable() is False


async def test_reasoning_content_comes_first_marked_off_from_the_answer(fake_openai):
    fake_openai.queue_reply(Reply(reasoning=("Two and ", "two."), tokens=["Four", "."]))

    items = [item for item in await collect() if isinstance(item, str)]

    assert "".join(items) == f"{THINK_START}Two and two.{THINK_END}Four."
    assert items[0] == f"{THINK_START}Two and "  # the first delta already says what it is


async def test_a_reasoning_field_named_reasoning_is_read_too(fake_openai):
    fake_openai.queue_reply(Reply(reasoning=("hmm",), reasoning_field="reasoning", tokens=["Yes"]))

    items = [item for item in await collect() if isinstance(item, str)]

    assert "".join(items) == f"{THINK_START}hmm{THINK_END}Yes"


async def test_inline_think_tags_in_the_content_become_reasoning(fake_openai):
    fake_openai.queue_reply(Reply(tokens=["<thi", "nk>Let me", " see</think>", "\n\nFour."]))

    items = [item for item in await collect() if isinstance(item, str)]

    assert "".join(items) == f"{THINK_START}Let me see{THINK_END}Four."


async def test_the_markers_in_a_providers_text_are_taken_out(fake_openai):
    fake_openai.queue_reply(Reply(tokens=[f"a{THINK_START}b{THINK_END}c"]))

    items = [item for item in await collect() if isinstance(item, str)]

    assert items == ["abc"]


async def test_a_provider_that_refuses_the_connection_cannot_be_reached(settings):
    from chatsite.embedded_redis import free_port

    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    settings.OPENAI_MAX_RETRIES = 0

    with pytest.raises(ProviderError, match="Could not reach the model provider"):
        await collect()
