"""Whether this process can serve: its database, its Redis and the model provider.

For load balancers and operators (`GET /healthz`). The database and Redis decide
whether the process is healthy: without either no message can be saved or streamed.
The provider is reported but does not: when it is down every process is, and taking
them all out of a load balancer would only turn "the model is unreachable" messages
into connection errors. Its answer is kept for a while, so a probe every few seconds
does not list the provider's models every few seconds.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from django.db import connection

from conversations import llm, replylog
from conversations.db import in_thread
from providers.selectors import Endpoint

# A check that has not answered in this long has failed: a probe must answer quickly.
CHECK_SECONDS = 2.0
PROVIDER_CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Check:
    ok: bool
    milliseconds: float
    # The kind of failure only: an exception's text can hold a URL with a password.
    error: str = ""


@dataclass(frozen=True)
class Health:
    database: Check
    redis: Check
    provider: Check

    @property
    def serving(self) -> bool:
        return self.database.ok and self.redis.ok

    @property
    def status(self) -> str:
        if not self.serving:
            return "unavailable"
        return "ok" if self.provider.ok else "degraded"


# The last answer, and which provider (settings) and when it was for.
_provider_cache: tuple[Endpoint, float, Check] | None = None


async def _timed(probe: Callable[[], Awaitable[object]]) -> Check:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            await probe()
    except TimeoutError:
        return Check(False, _ms(started), "timeout")
    except Exception as exc:  # RedisError, OSError, or whatever the database backend raises
        return Check(False, _ms(started), type(exc).__name__)
    return Check(True, _ms(started))


def _database_ping() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def _redis_ping() -> None:
    await replylog.client().ping()


async def _provider_list_models() -> None:
    # Lists the models (no tokens spent), as each process does when it starts.
    if not await llm.provider_reachable(within=CHECK_SECONDS):
        raise ConnectionError("the provider did not list its models")


async def _provider_check() -> Check:
    global _provider_cache
    provider = llm.provider_get()
    if provider is None:
        return Check(False, 0.0, "not_configured")
    now = time.monotonic()
    if _provider_cache is not None:
        cached_for, checked_at, check = _provider_cache
        if cached_for == provider and now - checked_at < PROVIDER_CACHE_SECONDS:
            return check
    check = await _timed(_provider_list_models)
    _provider_cache = (provider, now, check)
    return check


async def health_check() -> Health:
    """Check the database, Redis and the provider at once; each within CHECK_SECONDS."""
    database, redis, provider = await asyncio.gather(
        _timed(in_thread(_database_ping)), _timed(_redis_ping), _provider_check()
    )
    return Health(database=database, redis=redis, provider=provider)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
