"""Publishing replies: one task per process appends every running reply's text to its log.

Jobs only collect text (`Reply.pending`). Every CHAT_STREAM_INTERVAL (longer under load:
see Publisher.interval) the publisher
sends whatever all of this process's replies have collected to Redis in one pipeline,
hands each appended event (with its stream id) to this process's watchers (hub), and,
less often, asks in one command whether any reply was asked to stop and renews every
reply's leases in one pipeline. Per-reply round trips every 250 ms, times hundreds of
replies, were what ran the Redis pool dry.

The first text of a reply goes out at once: time to the first token matters most.
Redis trouble never ends a reply: its text is kept here, and once Redis answers again
the whole text so far is published as one `reset`.
"""

import asyncio
import logging
import weakref
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, cast

from django.conf import settings
from redis.exceptions import RedisError

from conversations import limits, replylog
from conversations.hub import hub
from conversations.metrics import REDIS_ERRORS
from conversations.replylog import Event, StopRequest

logger = logging.getLogger(__name__)

# How often the publisher asks whether any of its replies was asked to stop.
STOP_POLL_SECONDS = 0.25
# How long a finishing reply waits for lease renewals already on their way (retire()).
RETIRE_WAIT_SECONDS = 2.0


def lease_seconds() -> int:
    """How long a reply's conversation slot is held without renewal before it frees itself
    (a live process renews it every third of that; a dead process's expires)."""
    return max(1, int(settings.CHAT_LEASE_SECONDS))


@dataclass(eq=False)
class Reply:
    """The text of one reply as it is written, and how far it has been published.

    Every published event has the next sequence number; `length_at[seq]` is how much
    of the text a watcher had after that event, so a stop can keep exactly what the
    stopping client had seen.
    """

    reply_id: int
    conversation_id: object
    holder: str
    user_id: int
    parts: list[str] = field(default_factory=list)  # published (or meant to be): what watchers saw
    pending: list[str] = field(default_factory=list)  # received, not yet published
    seq: int = 0
    length_at: dict[int, int] = field(default_factory=lambda: {0: 0})
    log_lost: bool = False
    last_flush: float = 0.0
    # Its job is giving back the conversation's slot and the user's place: no more renewals.
    retired: bool = False
    # Set by the job: publish everything now (and then the end, once `end` is set).
    drain: asyncio.Future[None] | None = None
    end: tuple[str, str] | None = None
    ended: bool = False  # the end event is in the log (and with this process's watchers)
    # Set by the publisher when a stop request for this reply was found.
    stopped: asyncio.Future[StopRequest] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def keep_seen(self, seen: int | None) -> None:
        """Drop what the stopping client had not seen (all published text when it did not say)."""
        self.pending.clear()
        if seen is not None and seen in self.length_at:
            self.parts = [self.text[: self.length_at[seen]]]


class Publisher:
    def __init__(self) -> None:
        self.replies: dict[int, Reply] = {}
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        # Held while renewals are on their way to Redis (see retire()).
        self.renewing = asyncio.Lock()

    def interval(self) -> float:
        """How long text is collected before it is published: CHAT_STREAM_INTERVAL, or longer
        when this process writes so many replies that their frames would pass
        CHAT_STREAM_FRAMES_PER_SECOND. Each frame costs the same to send whatever its size,
        so under load replies arrive in fewer, larger pieces instead of all falling behind."""
        budget = settings.CHAT_STREAM_FRAMES_PER_SECOND
        base = settings.CHAT_STREAM_INTERVAL
        return max(base, len(self.replies) / budget) if budget > 0 and base > 0 else base

    def add(self, reply: Reply) -> None:
        self.replies[reply.reply_id] = reply
        hub().local_add(reply.reply_id)
        self._ensure_running()

    def _ensure_running(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run(), name="chatsite-publisher")
            self.task.add_done_callback(self._ended)

    def _ended(self, task: "asyncio.Task[None]") -> None:
        # A closing event loop cancels every task at once, this one with the jobs it
        # serves: they then publish what they hold and their end, and would wait forever.
        if task is self.task and self.replies and not task.get_loop().is_closed():
            self._ensure_running()

    def remove(self, reply: Reply) -> None:
        self.replies.pop(reply.reply_id, None)
        hub().local_remove(reply.reply_id, ended=reply.ended)
        if not self.replies:
            self.wake.set()  # nothing left to publish: the task ends

    async def retire(self, reply: Reply) -> None:
        """Renew the reply's leases no more, once renewals already sent have landed: its job
        is about to release them. A renewal after the release would claim the freed slot
        back for a lease, and the user's next message would be refused as "still being
        written" (the bench, sending again at once, met 5 in 400)."""
        reply.retired = True
        # Bounded: a renewal stuck on a slow Redis must not hold the reply's end up. Past
        # it, the release may be undone, and the slot frees itself after one lease.
        with suppress(TimeoutError):
            async with asyncio.timeout(RETIRE_WAIT_SECONDS), self.renewing:
                pass

    def received(self, reply: Reply, text: str) -> None:
        """Text from upstream. The first of a reply is published at once."""
        reply.pending.append(text)
        if not reply.parts or settings.CHAT_STREAM_INTERVAL <= 0:
            self.wake.set()

    async def publish(self, reply: Reply, *, end: tuple[str, str] | None = None) -> None:
        """Wait until everything the reply has collected (then its end, if given) is published.

        Returns early when Redis is unreachable: the text stays in `reply`, and watchers
        settle from the database.
        """
        reply.end = end
        reply.drain = asyncio.get_running_loop().create_future()
        self.wake.set()
        await asyncio.shield(reply.drain)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = next_poll = loop.time()
        next_renew = loop.time() + lease_seconds() / 3
        while self.replies:
            now = loop.time()
            pending = any(r.pending for r in self.replies.values())
            wake_at = min(next_poll, next_renew, next_tick if pending else next_poll)
            if wake_at > now:
                try:
                    async with asyncio.timeout(wake_at - now):
                        await self.wake.wait()
                except TimeoutError:
                    pass
            self.wake.clear()
            now = loop.time()
            tick = now >= next_tick
            if tick:
                next_tick = now + self.interval()
            try:
                await self._flush(tick=tick)
                if now >= next_poll:
                    next_poll = now + STOP_POLL_SECONDS
                    await self._poll_stops()
                if now >= next_renew:
                    next_renew = now + lease_seconds() / 3
                    await self._renew()
            except Exception:
                # The publisher must outlive any one bad step, or every reply here stalls.
                logger.exception("Publishing replies failed; going on")
                await asyncio.sleep(STOP_POLL_SECONDS)

    async def _flush(self, *, tick: bool) -> None:
        batch: list[tuple[Reply, Event]] = []
        async with replylog.client().pipeline(transaction=False) as pipe:
            for reply in self.replies.values():
                draining = reply.drain is not None
                if reply.pending and (tick or draining or not reply.parts or reply.log_lost):
                    batch.append((reply, self._queue_text(pipe, reply)))
                elif draining and not reply.pending and reply.log_lost:
                    batch.append((reply, self._queue_reset(pipe, reply)))
                elif draining and reply.end is not None:
                    batch.append((reply, self._queue_end(pipe, reply)))
                elif draining:
                    self._drained(reply)
            if not batch:
                return
            count = len(pipe)
            try:
                results = await pipe.execute(raise_on_error=False)
            except RedisError as exc:
                REDIS_ERRORS.labels("publish").inc()
                results = [exc] * count
        self._settle(batch, results)

    def _queue_text(self, pipe: Any, reply: Reply) -> Event:
        chunk = "".join(reply.pending)
        reply.pending.clear()
        reply.parts.append(chunk)
        if reply.log_lost:
            return self._queue_reset(pipe, reply)
        seq = reply.seq + 1
        # After the first delta the log must exist: if it does not, Redis lost it, and
        # the whole text goes out as a reset instead of a delta missing its beginning.
        pipe.xadd(
            replylog.log_key(reply.reply_id), {"kind": "delta", "seq": seq, "text": chunk}, nomkstream=seq > 1
        )
        return Event(id="", seq=seq, kind="delta", text=chunk)

    def _queue_reset(self, pipe: Any, reply: Reply) -> Event:
        seq, text = reply.seq + 1, reply.text
        pipe.xadd(replylog.log_key(reply.reply_id), {"kind": "reset", "seq": seq, "text": text})
        return Event(id="", seq=seq, kind="reset", text=text)

    def _queue_end(self, pipe: Any, reply: Reply) -> Event:
        assert reply.end is not None
        seq, (status, error) = reply.seq + 1, reply.end
        key = replylog.log_key(reply.reply_id)
        fields = replylog.end_fields(seq=seq, status=status, error=error)
        pipe.xadd(key, fields, nomkstream=seq > 1)
        # Late watchers (a reload just after the end) still find the log for a while.
        pipe.expire(key, settings.CHAT_STREAM_TTL)
        pipe.delete(replylog.stop_key(reply.reply_id))
        return Event(id="", seq=seq, kind="end", status=status, error=error)

    def _settle(self, batch: list[tuple[Reply, Event]], results: list[Any]) -> None:
        position = 0
        watchers = hub()
        for reply, event in batch:
            result = results[position]
            position += 3 if event.kind == "end" else 1
            if isinstance(result, Exception) or result is None:
                if isinstance(result, Exception) and not reply.log_lost:
                    logger.warning("Reply %s: Redis unavailable (%r); writing on", reply.reply_id, result)
                reply.log_lost = True
                if isinstance(result, Exception):
                    # Redis is away: the job goes on (and ends) without waiting for it.
                    self._drained(reply)
                # Else the log was lost (Redis restarted empty): the next flush publishes
                # the whole text as a reset, and only then the end.
                continue
            reply.log_lost = False
            reply.seq = event.seq
            reply.length_at[event.seq] = len(reply.text)
            reply.last_flush = asyncio.get_running_loop().time()
            entry_id = result.decode() if isinstance(result, bytes) else str(result)
            watchers.deliver(reply.reply_id, Event(**{**event.__dict__, "id": entry_id}))
            if event.kind == "end":
                reply.ended = True
                self._drained(reply)
        if any(r.drain is not None for r in self.replies.values()):
            self.wake.set()

    def _drained(self, reply: Reply) -> None:
        if reply.drain is not None and not reply.drain.done():
            reply.drain.set_result(None)
        reply.drain = None

    async def _poll_stops(self) -> None:
        ids = [r for r, reply in self.replies.items() if not reply.stopped.done()]
        if not ids:
            return
        try:
            values = await replylog.client().mget([replylog.stop_key(r) for r in ids])
        except RedisError:
            REDIS_ERRORS.labels("stop_poll").inc()
            return
        for reply_id, value in zip(ids, values, strict=True):
            request = replylog.stop_request_parse(value)
            reply = self.replies.get(reply_id)
            if request is not None and reply is not None and not reply.stopped.done():
                reply.stopped.set_result(request)

    async def _renew(self) -> None:
        """Every reply here keeps its conversation's slot and its place among its user's replies."""
        lease = lease_seconds()
        renew = replylog.script(replylog.RENEW_OR_RECLAIM)
        try:
            async with self.renewing, replylog.client().pipeline(transaction=False) as pipe:
                for reply in [r for r in self.replies.values() if not r.retired]:
                    await cast(
                        Any,
                        renew(
                            keys=[replylog.active_key(reply.conversation_id)],
                            args=[reply.holder, lease],
                            client=pipe,
                        ),
                    )
                    limits.reply_renew_queue(pipe, user_id=reply.user_id, holder=reply.holder, lease=lease)
                await pipe.execute(raise_on_error=False)
        except RedisError as exc:
            REDIS_ERRORS.labels("lease_renew").inc()
            logger.warning("Renewing reply leases failed (%r)", exc)


_publishers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Publisher]" = weakref.WeakKeyDictionary()


def publisher() -> Publisher:
    loop = asyncio.get_running_loop()
    existing = _publishers.get(loop)
    if existing is None:
        existing = _publishers[loop] = Publisher()
    return existing
