"""A reply's live event log, kept in Redis so any process can follow or resume it.

Each reply being written has a Redis Stream of events: `delta` (coalesced text),
`reset` (the whole text so far, after Redis was unreachable for a while) and one
final `end`. Watchers (a browser socket, an SSE client, the terminal) read it
from the last id they saw, so a reload or a second tab continues without a gap or
a duplicate. The channel layer is not used for tokens: it drops messages silently
when a consumer falls behind; a Stream read from an id loses nothing.
"""

import asyncio
import json
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import redis.asyncio as aioredis
from django.conf import settings
from django_redis import get_redis_connection
from redis.exceptions import RedisError

START = "0"
READ_BLOCK_MS = 2000
# After this many quiet reads (or failed ones), a watcher asks whether the reply is over.
QUIET_CHECKS = 3
# How long a watcher waits before asking Redis again after it failed.
RETRY_SECONDS = 0.5


def _log_key(reply_id: int) -> str:
    return f"chatsite:reply:{reply_id}:log"


def _stop_key(reply_id: int) -> str:
    return f"chatsite:reply:{reply_id}:stop"


def _active_key(conversation_id: object) -> str:
    return f"chatsite:conversation:{conversation_id}:active"


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


def _decode(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Event:
    event_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    kind = fields[b"kind"].decode()
    seq = int(fields[b"seq"])
    if kind == "delta":
        return Event(id=event_id, seq=seq, kind="delta", text=fields[b"text"].decode())
    if kind == "reset":
        return Event(id=event_id, seq=seq, kind="reset", text=fields[b"text"].decode())
    end = json.loads(fields[b"data"])
    return Event(id=event_id, seq=seq, kind="end", status=end["status"], error=end.get("error", ""))


# One async client per event loop (its connections belong to that loop).
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis]"
_clients = weakref.WeakKeyDictionary()


def client() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    existing = _clients.get(loop)
    if existing is None:
        existing = aioredis.Redis.from_url(
            settings.REDIS_URL,
            socket_connect_timeout=2,
            # Longer than a blocking XREAD, so a quiet stream is not a timeout.
            socket_timeout=READ_BLOCK_MS / 1000 + 5,
            health_check_interval=15,
        )
        _clients[loop] = existing
    return existing


# A delta only makes sense after the ones before it: if the log is gone (Redis restarted
# empty) the writer is told, and publishes the whole text as a reset instead.
_APPEND_DELTA = """
if tonumber(ARGV[1]) > 1 and redis.call('exists', KEYS[1]) == 0 then return 0 end
redis.call('xadd', KEYS[1], '*', 'kind', 'delta', 'seq', ARGV[1], 'text', ARGV[2])
return 1
"""


async def append_delta(*, reply_id: int, seq: int, text: str) -> bool:
    """Publish a delta; False when the log was lost and the whole text must be reset."""
    return bool(await cast(Any, client().eval(_APPEND_DELTA, 1, _log_key(reply_id), seq, text)))


async def append_reset(*, reply_id: int, seq: int, text: str) -> None:
    await client().xadd(_log_key(reply_id), {"kind": "reset", "seq": seq, "text": text})


async def append_end(*, reply_id: int, seq: int, status: str, error: str = "") -> None:
    key = _log_key(reply_id)
    async with client().pipeline(transaction=True) as pipe:
        pipe.xadd(key, {"kind": "end", "seq": seq, "data": json.dumps({"status": status, "error": error})})
        # Late watchers (a reload just after the end) still find the log for a while.
        pipe.expire(key, settings.CHAT_STREAM_TTL)
        pipe.delete(_stop_key(reply_id))
        await pipe.execute()


Settled = Callable[[], Awaitable[tuple[str, str] | None]]


async def follow(
    *, reply_id: int, after: str = START, known: str = "", settled: Settled | None = None
) -> AsyncIterator[Event]:
    """Yield the reply's `delta` and `end` events after `after`, waiting for new ones.

    `known` is the text the watcher already has. A `reset` is turned into the delta
    the watcher is missing, and a Redis outage is waited out, so a watcher sees the
    text exactly once, in order. When the log has been quiet for a while, `settled`
    (the reply's saved status and error, once it is no longer streaming) ends the
    watch even if its end event was never published.
    """
    key = _log_key(reply_id)
    last = after
    have = len(known)
    quiet = 0
    while True:
        try:
            response = cast(Any, await client().xread({key: last}, block=READ_BLOCK_MS, count=100))
        except RedisError:
            response = None
            await asyncio.sleep(RETRY_SECONDS)
        if not response:
            quiet += 1
            if settled is not None and quiet % QUIET_CHECKS == 0 and (state := await settled()) is not None:
                yield Event(id=last, seq=0, kind="end", status=state[0], error=state[1])
                return
            continue
        quiet = 0
        for _stream, entries in response or []:
            for entry_id, fields in entries:
                event = _decode(entry_id, fields)
                last = event.id
                if event.kind == "reset":
                    missing = event.text[have:]
                    have = len(event.text)
                    if missing:
                        yield Event(id=event.id, seq=event.seq, kind="delta", text=missing)
                    continue
                have += len(event.text)
                yield event
                if event.kind == "end":
                    return


def snapshot(*, reply_id: int) -> Snapshot:
    """Read the whole log synchronously (page rendering runs in a worker thread)."""
    entries = get_redis_connection("default").xrange(_log_key(reply_id))
    text: list[str] = []
    last_id = START
    seq = 0
    ended = False
    for entry_id, fields in entries:
        event = _decode(entry_id, fields)
        last_id, seq = event.id, event.seq
        if event.kind == "delta":
            text.append(event.text)
        elif event.kind == "reset":
            text = [event.text]
        else:
            ended = True
    return Snapshot(text="".join(text), last_id=last_id, seq=seq, ended=ended)


@dataclass(frozen=True)
class StopRequest:
    # The sequence number of the last event the stopping client had shown, if it said.
    seen: int | None


def end_sync(*, reply_id: int, seq: int, status: str) -> None:
    """Publish a reply's end from sync code (the reaper), so its watchers stop waiting."""
    key = _log_key(reply_id)
    with get_redis_connection("default").pipeline(transaction=True) as pipe:
        pipe.xadd(key, {"kind": "end", "seq": seq, "data": json.dumps({"status": status, "error": ""})})
        pipe.expire(key, settings.CHAT_STREAM_TTL)
        pipe.execute()


def stop_request_sync(*, reply_id: int) -> None:
    get_redis_connection("default").set(_stop_key(reply_id), "", ex=settings.CHAT_STREAM_TTL)


async def stop_request(*, reply_id: int, seen: int | None = None) -> None:
    value = "" if seen is None else str(seen)
    await client().set(_stop_key(reply_id), value, ex=settings.CHAT_STREAM_TTL)


async def stop_requested(*, reply_id: int) -> StopRequest | None:
    value = await client().get(_stop_key(reply_id))
    if value is None:
        return None
    return StopRequest(seen=int(value) if value.isdigit() else None)


async def active_acquire(*, conversation_id: object, holder: str, ttl: int) -> bool:
    """Claim the conversation's one reply slot; False when a reply is already running."""
    return bool(await client().set(_active_key(conversation_id), holder, nx=True, ex=ttl))


_RENEW_OR_RECLAIM = """
local holder = redis.call('get', KEYS[1])
if holder == false or holder == ARGV[1] then
  return redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 0
"""


async def active_refresh(*, conversation_id: object, holder: str, ttl: int) -> None:
    """Renew the lease; after a Redis restart lost it, claim it back (unless taken)."""
    await cast(Any, client().eval(_RENEW_OR_RECLAIM, 1, _active_key(conversation_id), holder, ttl))


def active_held(*, conversation_ids: list[object]) -> set[str]:
    """Which of these conversations have a live reply lease (sync: used by the reaper's thread)."""
    if not conversation_ids:
        return set()
    values = get_redis_connection("default").mget([_active_key(c) for c in conversation_ids])
    return {str(c) for c, value in zip(conversation_ids, values, strict=True) if value is not None}


_RELEASE_IF_HELD = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


async def active_release(*, conversation_id: object, holder: str) -> None:
    await cast(Any, client().eval(_RELEASE_IF_HELD, 1, _active_key(conversation_id), holder))
