"""One AsyncOpenAI client per provider per event loop (in a server, per process).

The `openai` SDK is imported only in the providers app and in conversations.llm. A client's connection
pool is bound to the loop that opened it, so a second loop (a management command's
asyncio.run, a test) gets its own.
"""

import asyncio
import logging
import weakref
from collections.abc import AsyncGenerator
from contextlib import suppress
from typing import Any

import httpx2
import openai

from providers.selectors import Endpoint

logger = logging.getLogger(__name__)


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


class _LoopClients:
    """A loop's clients, and those replaced while it ran (a provider's key or URL changed):
    a stream may still be reading from one, so it is closed with the others."""

    def __init__(self) -> None:
        self.current: dict[Endpoint, openai.AsyncOpenAI] = {}
        self.retired: list[openai.AsyncOpenAI] = []

    async def close(self) -> None:
        closing = [*self.current.values(), *self.retired]
        self.current.clear()
        self.retired.clear()
        for client in closing:
            try:
                await client.close()
            except Exception:  # the others are closed all the same
                logger.exception("Closing a model client failed")


_by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[_LoopClients, AsyncGenerator[None]]]"
_by_loop = weakref.WeakKeyDictionary()


async def _closes_with_the_loop(
    loop: asyncio.AbstractEventLoop, clients: _LoopClients
) -> AsyncGenerator[None]:
    """Waits at its yield while its loop runs. asyncio.run(), asyncio.Runner (the tests'
    loops) and asgiref's async_to_sync close a loop's async generators before they close
    the loop, and this one then closes the loop's clients: an aiohttp session collected
    open warns (a ResourceWarning, and an error in the log)."""
    try:
        yield
    finally:
        # The entry holds this generator, which holds the loop (its finalizer): left in
        # the table, the loop would never be collected.
        _by_loop.pop(loop, None)
        await clients.close()


async def clients_close() -> None:
    """Close the running loop's clients (a server process, as it stops)."""
    entry = _by_loop.get(asyncio.get_running_loop())
    if entry is not None:
        await entry[1].aclose()


def _loop_clients(loop: asyncio.AbstractEventLoop) -> _LoopClients:
    entry = _by_loop.get(loop)
    if entry is None:
        clients = _LoopClients()
        closer = _closes_with_the_loop(loop, clients)
        _by_loop[loop] = (clients, closer)
        # Run to its yield now (nothing in it awaits before): the loop knows an async
        # generator from its first step, and closes only one it knows.
        with suppress(StopIteration):
            closer.__anext__().send(None)
        return clients
    return entry[0]


def client_for(endpoint: Endpoint) -> openai.AsyncOpenAI:
    clients = _loop_clients(asyncio.get_running_loop())
    client = clients.current.get(endpoint)
    if client is None:
        # A provider whose settings changed (a new key, another URL) is a new Endpoint.
        for stale in [e for e in clients.current if e.name == endpoint.name]:
            clients.retired.append(clients.current.pop(stale))
        client = clients.current[endpoint] = openai.AsyncOpenAI(
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
