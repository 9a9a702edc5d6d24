"""One client per provider per event loop, closed with its loop."""

import asyncio
import dataclasses
import gc
import weakref

import openai
import pytest

from conversations import llm
from providers.clients import client_for, clients_close


def test_a_loops_clients_are_closed_as_the_loop_ends(fake_openai):
    async def models() -> tuple[list[str], openai.AsyncOpenAI]:
        provider = llm.provider_get()
        assert provider is not None
        return [model.id async for model in client_for(provider).models.list()], client_for(provider)

    listed, client = asyncio.run(models())  # as a management command, or async_to_sync

    assert listed == ["fake-model"]
    assert client.is_closed()  # an aiohttp session left open warns as it is collected


@pytest.mark.asyncio
async def test_a_server_closes_its_clients_as_it_stops(fake_openai):
    provider = llm.provider_get()
    assert provider is not None
    client = client_for(provider)

    await clients_close()

    assert client.is_closed()
    assert client_for(provider) is not client  # a later request gets a new one


def test_an_ended_loop_is_not_kept_alive_by_its_clients(fake_openai):
    async def loop_that_made_a_client() -> "weakref.ref[asyncio.AbstractEventLoop]":
        provider = llm.provider_get()
        assert provider is not None
        client_for(provider)
        return weakref.ref(asyncio.get_running_loop())

    ended = asyncio.run(loop_that_made_a_client())
    gc.collect()

    assert ended() is None  # each test's and each async_to_sync's loop would stay in memory


def test_a_client_replaced_by_new_settings_is_closed_with_its_loop(fake_openai):
    async def replaced() -> openai.AsyncOpenAI:
        provider = llm.provider_get()
        assert provider is not None
        old = client_for(provider)
        client_for(dataclasses.replace(provider, api_key="a-new-key"))
        assert not old.is_closed()  # a reply may still be reading from it
        return old

    assert asyncio.run(replaced()).is_closed()


def test_a_client_that_fails_to_close_leaves_none_of_the_others_open(fake_openai, caplog):
    async def two_clients_one_failing() -> openai.AsyncOpenAI:
        provider = llm.provider_get()
        assert provider is not None
        other = client_for(dataclasses.replace(provider, api_key="an-old-key"))
        failing = client_for(provider)  # closed first: the one in use

        async def close() -> None:
            raise OSError("the connection was already gone")

        failing.close = close  # type: ignore[method-assign]
        return other

    assert asyncio.run(two_clients_one_failing()).is_closed()
    assert "Closing a model client failed" in caplog.text
