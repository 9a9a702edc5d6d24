"""One AsyncOpenAI client per provider per event loop (in a server, per process).

The `openai` SDK is imported only in the providers app and in conversations.llm. A client's connection
pool is bound to the loop that opened it, so a second loop (a management command's
asyncio.run, a test) gets its own.
"""

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Any

import httpx2
import openai

from providers.selectors import Endpoint


class _AioHttpClient(openai.DefaultAioHttpClient):
    """The SDK's aiohttp transport (with its limits and the environment's proxies), telling
    a refused connection from a timeout. Its exception map makes every failure to connect
    a connect timeout (the SDK's APITimeoutError: "took too long", and not retried); what
    it wraps says which."""

    async def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        try:
            return await super().send(request, **kwargs)
        except httpx2.ConnectTimeout as exc:
            if isinstance(exc.__cause__, TimeoutError):
                raise
            raise httpx2.ConnectError(str(exc), request=request) from exc.__cause__


_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Endpoint, openai.AsyncOpenAI]]"
_clients = weakref.WeakKeyDictionary()
_closers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncIterator[None]]"
_closers = weakref.WeakKeyDictionary()


async def _closes_with_the_loop(clients: dict[Endpoint, openai.AsyncOpenAI]) -> AsyncIterator[None]:
    """Waits at its yield while its loop runs. asyncio.run(), asyncio.Runner (the tests'
    loops) and asgiref's async_to_sync close a loop's async generators before they close
    the loop, and this one then closes the loop's clients: an aiohttp session collected
    open warns (a ResourceWarning, and an error in the log)."""
    try:
        yield
    finally:
        await _close(clients)


async def _close(clients: dict[Endpoint, openai.AsyncOpenAI]) -> None:
    for client in list(clients.values()):
        await client.close()
    clients.clear()


async def clients_close() -> None:
    """Close the running loop's clients (a server process, as it stops)."""
    await _close(_clients.get(asyncio.get_running_loop(), {}))


def _loop_clients(loop: asyncio.AbstractEventLoop) -> dict[Endpoint, openai.AsyncOpenAI]:
    clients = _clients.get(loop)
    if clients is None:
        clients = _clients[loop] = {}
        closer = _closers[loop] = _closes_with_the_loop(clients)
        # Run to its yield now (nothing in it awaits before): the loop knows an async
        # generator from its first step, and closes only one it knows.
        with suppress(StopIteration):
            closer.__anext__().send(None)  # type: ignore[attr-defined]
    return clients


def client_for(endpoint: Endpoint) -> openai.AsyncOpenAI:
    clients = _loop_clients(asyncio.get_running_loop())
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
            # aiohttp under the SDK, not httpx2/httpcore2: reading a stream through those
            # was about half of a server's CPU while replies streamed.
            http_client=_AioHttpClient(),
        )
    return client


async def models_list(endpoint: Endpoint) -> list[str]:
    """The model ids the provider lists (GET /v1/models)."""
    return [model.id async for model in client_for(endpoint).models.list()]
