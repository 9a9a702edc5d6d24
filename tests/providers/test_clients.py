"""One client per provider per event loop, closed with its loop."""

import asyncio

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
