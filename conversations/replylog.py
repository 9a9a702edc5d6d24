"""A reply's live event log, kept in Redis so any process can follow or resume it.

Each reply being written has a Redis Stream of events: `delta` (coalesced text),
`reset` (the whole text so far, after Redis was unreachable for a while) and one
final `end`. Watchers (a browser socket, an SSE client, the terminal) read it
from the last id they saw, so a reload or a second tab continues without a gap or
a duplicate. The channel layer is not used for tokens: it drops messages silently
when a consumer falls behind; a Stream read from an id loses nothing.

This module holds the log's keys and entry shapes, and the process's Redis clients.
Writing is batched per process (conversations.publisher); reading is multiplexed per
process (conversations.hub).
"""

import asyncio
import json
import weakref
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis
from django.conf import settings
from django_redis import get_redis_connection
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.commands.core import AsyncScript

START = "0"


def log_key(reply_id: int) -> str:
    return f"chatsite:reply:{reply_id}:log"


def stop_key(reply_id: int) -> str:
    return f"chatsite:reply:{reply_id}:stop"


def active_key(conversation_id: object) -> str:
    return f"chatsite:conversation:{conversation_id}:active"


def id_order(entry_id: str) -> tuple[int, int]:
    """Stream ids compare as (milliseconds, sequence), not as text."""
    millis, _dash, sequence = entry_id.partition("-")
    return int(millis), int(sequence or 0)


@dataclass(frozen=True)
class Event:
    id: str
    # 1, 2, 3... per reply: what SSE clients see as event ids.
    seq: int
    kind: Literal["delta", "reset", "end"]
    text: str = ""
    status: str = ""
    error: str = ""


@dataclass(frozen=True)
class Snapshot:
    """The text written so far, and the id to resume watching after."""

    text: str
    last_id: str
    seq: int
    ended: bool


def decode(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Event:
    event_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    kind = fields[b"kind"].decode()
    seq = int(fields[b"seq"])
    if kind == "delta":
        return Event(id=event_id, seq=seq, kind="delta", text=fields[b"text"].decode())
    if kind == "reset":
        return Event(id=event_id, seq=seq, kind="reset", text=fields[b"text"].decode())
    end = json.loads(fields[b"data"])
    return Event(id=event_id, seq=seq, kind="end", status=end["status"], error=end.get("error", ""))


def end_fields(*, seq: int, status: str, error: str = "") -> dict[str, str | int]:
    return {"kind": "end", "seq": seq, "data": json.dumps({"status": status, "error": error})}


# --- Clients ----------------------------------------------------------------------
# One async client per event loop (its connections belong to that loop). Its pool is
# bounded and blocking: under load a command waits for a free connection (up to
# REDIS_POOL_TIMEOUT) instead of failing with "Too many connections". Nothing holds
# one of these connections for long: blocking reads have their own (hub).

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis]"
_clients = weakref.WeakKeyDictionary()


class BlockingSentinelConnectionPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """The sentinels' master, with BlockingConnectionPool's wait for a free connection:
    redis-py has the two only apart. SentinelConnectionPool adds where to connect (asked
    of the sentinels at each new connection); the blocking pool, how to lend them."""


_sentinels: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Sentinel]"
_sentinels = weakref.WeakKeyDictionary()


def _sentinels_client() -> Sentinel:
    """The loop's client of the sentinels, shared by its pools: one of its own for each
    pool (a reader's is made and closed again and again) would leave its connections to
    the sentinels open behind it."""
    loop = asyncio.get_running_loop()
    existing = _sentinels.get(loop)
    if existing is None:
        existing = Sentinel(settings.REDIS_SENTINELS, sentinel_kwargs=settings.REDIS_SENTINEL_KWARGS)
        _sentinels[loop] = existing
    return existing


def pool_create(**options: Any) -> aioredis.ConnectionPool:
    """A pool of connections to the Redis master: REDIS_URL's server, or the server the
    sentinels name (REDIS_SENTINELS) now. A command waits up to REDIS_POOL_TIMEOUT for a
    free connection. The one place async clients are made (channel layer included)."""
    if not settings.REDIS_SENTINELS:
        return aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL, timeout=settings.REDIS_POOL_TIMEOUT, **options
        )
    tls = settings.REDIS_URL.startswith("rediss://")
    return BlockingSentinelConnectionPool.from_url(
        settings.REDIS_URL,
        service_name=settings.REDIS_SENTINEL_MASTER,
        sentinel_manager=_sentinels_client(),
        # Given none, from_url would pick a plain connection to the URL's host.
        connection_class=SentinelManagedSSLConnection if tls else SentinelManagedConnection,
        timeout=settings.REDIS_POOL_TIMEOUT,
        **options,
    )


def _connection_options() -> dict[str, Any]:
    return {
        # No CLIENT SETINFO: redis-py looks its own version up in the package metadata
        # for every new connection (~0.3 ms of CPU) and sends two more commands. py-spy
        # found it 7% of a worker's CPU while 200 replies started at once.
        "driver_info": None,
        "socket_connect_timeout": 2,
        "socket_timeout": settings.REDIS_SOCKET_TIMEOUT,
        "socket_keepalive": True,
        "retry_on_timeout": False,
    }


def client() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    existing = _clients.get(loop)
    if existing is None:
        existing = aioredis.Redis.from_pool(
            pool_create(max_connections=settings.REDIS_POOL_SIZE, **_connection_options())
        )
        _clients[loop] = existing
    return existing


def reader_client(*, block_seconds: float, name: str) -> aioredis.Redis:
    """A client of its own for one long blocking read (the hub's XREAD), named so that
    `CLIENT LIST` shows whose it is."""
    options = _connection_options()
    # Longer than the block, so a quiet log is not a timeout.
    options["socket_timeout"] = block_seconds + settings.REDIS_SOCKET_TIMEOUT
    reader = aioredis.Redis(
        connection_pool=pool_create(max_connections=1, client_name=name, **options),
        single_connection_client=True,
    )
    # Its pool is its own: closed with it, as Redis.from_url's would be.
    reader.auto_close_connection_pool = True
    return reader


# --- Reading ----------------------------------------------------------------------


def snapshot_from(entries: list[tuple[bytes | str, dict[bytes, bytes]]]) -> Snapshot:
    text: list[str] = []
    last_id = START
    seq = 0
    ended = False
    for entry_id, fields in entries:
        event = decode(entry_id, fields)
        last_id, seq = event.id, event.seq
        if event.kind == "delta":
            text.append(event.text)
        elif event.kind == "reset":
            text = [event.text]
        else:
            ended = True
    return Snapshot(text="".join(text), last_id=last_id, seq=seq, ended=ended)


def snapshot(*, reply_id: int) -> Snapshot:
    """Read the whole log synchronously (page rendering runs in a worker thread)."""
    return snapshot_from(get_redis_connection("default").xrange(log_key(reply_id)))


def end_sync(*, reply_id: int, seq: int, status: str) -> None:
    """Publish a reply's end from sync code (the reaper), so its watchers stop waiting."""
    key = log_key(reply_id)
    with get_redis_connection("default").pipeline(transaction=True) as pipe:
        pipe.xadd(key, end_fields(seq=seq, status=status))
        pipe.expire(key, settings.CHAT_STREAM_TTL)
        pipe.execute()


# --- Stop requests ----------------------------------------------------------------


@dataclass(frozen=True)
class StopRequest:
    # The sequence number of the last event the stopping client had shown, if it said.
    seen: int | None


def stop_request_parse(value: bytes | str | None) -> StopRequest | None:
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else value
    return StopRequest(seen=int(text) if text.isascii() and text.isdigit() else None)


def stop_request_sync(*, reply_id: int) -> None:
    get_redis_connection("default").set(stop_key(reply_id), "", ex=settings.CHAT_STREAM_TTL)


async def stop_request(*, reply_id: int, seen: int | None = None) -> None:
    value = "" if seen is None else str(seen)
    await client().set(stop_key(reply_id), value, ex=settings.CHAT_STREAM_TTL)


# --- The conversation's one reply slot ----------------------------------------------


async def active_acquire(*, conversation_id: object, holder: str, ttl: int) -> bool:
    """Claim the conversation's one reply slot; False when a reply is already running."""
    return bool(await client().set(active_key(conversation_id), holder, nx=True, ex=ttl))


# Renew the lease; after a Redis restart lost it, claim it back (unless taken).
RENEW_OR_RECLAIM = """
local holder = redis.call('get', KEYS[1])
if holder == false or holder == ARGV[1] then
  return redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 0
"""

_RELEASE_IF_HELD = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


# The Redis run the reaper's last pass in this process saw, by server (INFO's run_id
# changes when Redis restarts).
_seen_run_ids: dict[str, str] = {}


def leases_lost_recently(*, lease: int) -> bool:
    """Whether Redis may have lost live leases lately (sync: the reaper's thread).

    A restart loses every lease at once, and a live process takes its leases back only
    at its next renewal (every third of `lease`): until then its replies look orphaned.
    So: Redis up for less than one lease (which also covers a process started since), or
    a restart since this process last looked (a pass may come just after one renewal fails).
    """
    connection = get_redis_connection("default")
    kwargs = connection.connection_pool.connection_kwargs
    server = f"{kwargs.get('host')}:{kwargs.get('port')}:{kwargs.get('path')}"
    info = connection.info("server")
    run_id, uptime = str(info.get("run_id", "")), int(info.get("uptime_in_seconds", 0))
    seen = _seen_run_ids.get(server)
    _seen_run_ids[server] = run_id
    return uptime < lease or (seen is not None and seen != run_id)


def active_held(*, conversation_ids: list[object]) -> set[str]:
    """Which of these conversations have a live reply lease (sync: used by the reaper's thread)."""
    if not conversation_ids:
        return set()
    values = get_redis_connection("default").mget([active_key(c) for c in conversation_ids])
    return {str(c) for c, value in zip(conversation_ids, values, strict=True) if value is not None}


async def active_release(*, conversation_id: object, holder: str) -> None:
    await script(_RELEASE_IF_HELD)(keys=[active_key(conversation_id)], args=[holder], client=client())


# --- Scripts ----------------------------------------------------------------------
# Sent by their SHA (EVALSHA), not as text with every call; redis-py loads a script
# again by itself when Redis answers NOSCRIPT (after a restart).

_scripts: dict[str, AsyncScript] = {}


def script(source: str) -> AsyncScript:
    existing = _scripts.get(source)
    if existing is None:
        existing = _scripts[source] = client().register_script(source)
    return existing
