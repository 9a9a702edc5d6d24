"""One AsyncOpenAI client per provider per event loop (in a server, per process).

The `openai` SDK is imported only in the providers app and in conversations.llm. A client's connection
pool is bound to the loop that opened it, so a second loop (a management command's
asyncio.run, a test) gets its own.
"""

import asyncio
import weakref

import openai

from providers.selectors import Endpoint

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Endpoint, openai.AsyncOpenAI]]"
_clients = weakref.WeakKeyDictionary()


def client_for(endpoint: Endpoint) -> openai.AsyncOpenAI:
    loop = asyncio.get_running_loop()
    clients = _clients.setdefault(loop, {})
    client = clients.get(endpoint)
    if client is None:
        # A provider whose settings changed (a new key, another URL) is a new Endpoint:
        # the old one's client is dropped with its connections.
        for stale in [e for e in clients if e.name == endpoint.name]:
            del clients[stale]
        client = clients[endpoint] = openai.AsyncOpenAI(
            api_key=endpoint.api_key,
            base_url=endpoint.base_url,
            # Retries are conversations.llm's: at most one, and a Retry-After within a small cap.
            max_retries=0,
            timeout=openai.Timeout(endpoint.read_timeout, connect=endpoint.connect_timeout),
        )
    return client


async def models_list(endpoint: Endpoint) -> list[str]:
    """The model ids the provider lists (GET /v1/models)."""
    return [model.id async for model in client_for(endpoint).models.list()]
