"""Watching replies: one Redis reader per process for all of its watchers.

A watcher (a browser socket, an SSE client, the terminal) follows one reply's log.
Replies written in this process reach their watchers straight from the publisher,
which hands over every event it has just appended (with its stream id). Replies
written in another process are read by one task per process: a single blocking
`XREAD` over every such log, on one connection, fanned out to asyncio queues. A
blocking read per watcher would hold one Redis connection per open tab, and the
pool runs dry long before the CPU does.

A watcher is told a reply ended only after it has every byte of the text: when the
end event never comes (Redis was away, the log expired), the saved reply settles
it, and whatever text it is missing is sent first.
"""

import asyncio
import logging
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, cast

from redis.exceptions import RedisError

from conversations import replylog
from conversations.metrics import REDIS_ERRORS, WATCHERS
from conversations.replylog import START, Event, id_order
from conversations.selectors import ReplySettled, reply_settled

logger = logging.getLogger(__name__)

READ_BLOCK_MS = 5000
# A watcher that has heard nothing for this long asks the database whether the reply is over.
QUIET_SECONDS = 3.0
# How long the reader waits before asking Redis again after it failed.
RETRY_SECONDS = 0.5
# Entries per log per read: a reader that fell behind catches up in a few reads.
READ_COUNT = 1000

Settled = Callable[[int], Awaitable[ReplySettled | None]]


@dataclass(eq=False)
class _Watcher:
    reply_id: int
    queue: "asyncio.Queue[Event]" = field(default_factory=asyncio.Queue)


class Hub:
    """The watchers of one event loop, and its one reader of other processes' logs."""

    def __init__(self) -> None:
        self.watchers: dict[int, set[_Watcher]] = {}
        # The last id delivered for each watched reply: where the reader goes on from.
        self.cursors: dict[int, str] = {}
        # Replies written by this loop's publisher: delivered without reading Redis.
        self.local: set[int] = set()
        # Local replies that have published something: only those have a log to catch up on.
        self.published: set[int] = set()
        self.reader: asyncio.Task[None] | None = None
        self.name = f"chatsite-hub-{uuid.uuid4().hex}"
        self.wake_key = f"chatsite:hub:{self.name}:wake"
        self.wake_cursor = "$"
        self.reading: set[int] = set()  # the remote replies the running XREAD covers
        self.left = asyncio.Event()  # set whenever a watcher leaves

    def join(self, reply_id: int, after: str) -> _Watcher:
        watcher = _Watcher(reply_id)
        self.watchers.setdefault(reply_id, set()).add(watcher)
        cursor = self.cursors.get(reply_id)
        if cursor is None or id_order(after) < id_order(cursor):
            # Reading from the earliest point any watcher needs; watchers skip what they have.
            self.cursors[reply_id] = after
        if reply_id not in self.local:
            self._read_remote(reply_id)
        return watcher

    def leave(self, watcher: _Watcher) -> None:
        self.left.set()
        watchers = self.watchers.get(watcher.reply_id)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self.watchers[watcher.reply_id]
                self.cursors.pop(watcher.reply_id, None)

    def local_add(self, reply_id: int) -> None:
        self.local.add(reply_id)

    def local_remove(self, reply_id: int, *, ended: bool) -> None:
        """The reply's job here is over. Its watchers have its end in their queues, unless
        Redis was away at the end: then they read its log from Redis, once it is back."""
        self.local.discard(reply_id)
        self.published.discard(reply_id)
        if reply_id in self.watchers and not ended:
            self._read_remote(reply_id)

    def deliver(self, reply_id: int, event: Event) -> None:
        """An event this process has just appended to the reply's log."""
        if reply_id in self.local:
            self.published.add(reply_id)
        watchers = self.watchers.get(reply_id)
        if not watchers:
            return
        self.cursors[reply_id] = event.id
        for watcher in watchers:
            watcher.queue.put_nowait(event)

    def _read_remote(self, reply_id: int) -> None:
        if self.reader is None or self.reader.done():
            self.reader = asyncio.get_running_loop().create_task(self._read(), name="hub-reader")
        elif reply_id not in self.reading:
            # The running XREAD does not cover this log yet: make it return at once.
            asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        # If this fails the reader is failing too, and re-reads the whole set when it recovers.
        with suppress(RedisError):
            await replylog.client().xadd(self.wake_key, {"w": 1}, maxlen=1)

    async def _read(self) -> None:
        reader = replylog.reader_client(block_seconds=READ_BLOCK_MS / 1000, name=self.name)
        try:
            while remote := [r for r in self.watchers if r not in self.local]:
                self.reading = set(remote)
                streams: dict[Any, Any] = {self.wake_key: self.wake_cursor}
                streams.update({replylog.log_key(r): self.cursors[r] for r in remote})
                try:
                    response = cast(Any, await reader.xread(streams, block=READ_BLOCK_MS, count=READ_COUNT))
                except RedisError as exc:
                    REDIS_ERRORS.labels("hub_read").inc()
                    logger.debug("Reading reply logs failed (%r); trying again", exc)
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                for key, entries in response or []:
                    name = key.decode() if isinstance(key, bytes) else key
                    if name == self.wake_key:
                        self.wake_cursor = entries[-1][0].decode()
                        continue
                    reply_id = int(name.split(":")[2])
                    for entry_id, fields in entries:
                        self.deliver(reply_id, replylog.decode(entry_id, fields))
        finally:
            self.reading = set()
            await reader.aclose()


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = weakref.WeakKeyDictionary()


def hub() -> Hub:
    loop = asyncio.get_running_loop()
    existing = _hubs.get(loop)
    if existing is None:
        existing = _hubs[loop] = Hub()
    return existing


class _Text:
    """What one watcher has been sent: turns resets into the delta it is missing."""

    def __init__(self, after: str, known: str) -> None:
        self.last = after
        self.have = len(known)
        self.seq = 0

    def accept(self, event: Event) -> Event | None:
        if id_order(event.id) <= id_order(self.last):
            return None  # already sent (read twice: catch-up and live)
        self.last, self.seq = event.id, event.seq
        if event.kind == "reset":
            missing = event.text[self.have :]
            self.have = len(event.text)
            return Event(id=event.id, seq=event.seq, kind="delta", text=missing) if missing else None
        self.have += len(event.text)
        return event


async def follow(
    *, reply_id: int, after: str = START, known: str = "", settled: Settled = reply_settled
) -> AsyncIterator[Event]:
    """Yield the reply's `delta` events after `after`, then its `end`, waiting for new ones.

    `known` is the text the watcher already has. A watcher sees the text exactly once,
    in order, through Redis outages. When the log stays quiet, the saved reply is asked
    whether it is over: then its missing text and its end come from the database.
    """
    watchers = hub()
    watcher = watchers.join(reply_id, after)
    WATCHERS.inc()
    text = _Text(after, known)
    log = replylog.log_key(reply_id)
    try:
        # What the log already holds. Joining first means nothing appended from now on
        # can be missed; what is read twice is skipped by its id. A reply of this
        # process that has published nothing yet has nothing to read (a new message).
        unpublished = reply_id in watchers.local and reply_id not in watchers.published
        backlog = [] if unpublished else await _log_read(log, after=after)
        # None: the log could not be read, so this watcher does not know the text before
        # the next delta, and must not take that delta for the next words (its text would
        # have a gap that a later reset or the saved reply then fills by length, wrongly).
        # It reads the log again with each event until it can, or a reset brings the whole text.
        synced = backlog is not None
        for earlier in _accepted(text, backlog or []):
            yield earlier
            if earlier.kind == "end":
                return
        while True:
            event: Event | None
            try:
                event = await asyncio.wait_for(watcher.queue.get(), QUIET_SECONDS)
            except TimeoutError:
                event = None
            if event is not None and not synced and event.kind != "reset":
                caught_up = await _log_read(log, after=text.last)
                if caught_up is not None:
                    synced = True
                    for accepted in _accepted(text, [*caught_up, event]):
                        yield accepted
                        if accepted.kind == "end":
                            return
                    continue
                if event.kind != "end":
                    continue  # not placeable yet: dropped, the log or a reset brings it again
                event = None  # the end, and the log unreadable: the saved reply settles it
            if event is None:
                state = await settled(reply_id)
                if state is None:
                    continue
                missing = state.content[text.have :]
                if missing:
                    text.seq += 1
                    yield Event(id=text.last, seq=text.seq, kind="delta", text=missing)
                yield Event(
                    id=text.last, seq=text.seq + 1, kind="end", status=state.status, error=state.error
                )
                return
            synced = True  # it was, or this is a reset: the whole text, wherever the watcher was
            for accepted in _accepted(text, [event]):
                yield accepted
                if accepted.kind == "end":
                    return
    finally:
        WATCHERS.dec()
        watchers.leave(watcher)


async def _log_read(log: str, *, after: str) -> list[Event] | None:
    """The log's events after `after`, or None when Redis cannot be read."""
    try:
        entries = cast(Any, await replylog.client().xrange(log, min=f"({after}"))
    except RedisError:
        return None
    return [replylog.decode(entry_id, fields) for entry_id, fields in entries]


def _accepted(text: _Text, events: list[Event]) -> list[Event]:
    """What of `events` the watcher has not been sent, as it should be sent."""
    return [accepted for accepted in map(text.accept, events) if accepted is not None]


async def watchers_gone(reply_ids: set[int], *, within: float) -> None:
    """Wait (up to `within`) until no watcher here follows any of these replies."""
    watchers = hub()
    with suppress(TimeoutError):
        async with asyncio.timeout(within):
            while any(r in watchers.watchers for r in reply_ids):
                watchers.left.clear()
                await watchers.left.wait()
