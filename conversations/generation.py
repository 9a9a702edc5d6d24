"""The generation job: one asyncio task per reply, owned by the conversation, not by a socket.

The job reads the model's stream, coalesces deltas into at most one event per
CHAT_STREAM_INTERVAL, appends them to the reply's Redis log (replylog), and writes
the final text to the database once. Watchers follow the log; closing a tab
does not touch the job. A stop request (from any process) is a Redis key the
job polls between events.
"""

import asyncio
import logging
import uuid
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from conversations import limits, llm, replylog
from conversations.models import Message

logger = logging.getLogger(__name__)

# How often a running job checks for a stop request and renews its lease.
STOP_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class ReplyJob:
    reply_id: int
    conversation_id: uuid.UUID
    messages: list[llm.ChatMessage]
    model: str
    temperature: float | None
    # The token that holds the conversation's reply slot (replylog.active_acquire)
    # and the reply's place among its user's concurrent replies (limits).
    holder: str
    user_id: int


def lease_seconds() -> int:
    """How long the conversation's reply slot is held without renewal before it frees itself
    (a live job renews it every STOP_POLL_SECONDS; a dead process's expires)."""
    return max(1, int(settings.CHAT_LEASE_SECONDS))


# Strong references: the event loop keeps only weak ones, and a job must not be
# garbage-collected mid-reply.
_running: dict[int, asyncio.Task[None]] = {}


def start(job: ReplyJob) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(run(job), name=f"reply-{job.reply_id}")
    _running[job.reply_id] = task
    task.add_done_callback(lambda _task: _running.pop(job.reply_id, None))
    return task


def running_ids() -> set[int]:
    return set(_running)


async def shutdown(*, grace: float = 5.0) -> None:
    """Stop every job of this process; each saves what it has as `interrupted`."""
    tasks = list(_running.values())
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=grace)


async def wait(reply_id: int) -> None:
    """Wait until the reply's job (if it runs in this process) has fully finished."""
    task = _running.get(reply_id)
    if task is not None:
        await asyncio.shield(task)


class _End:
    """Marks the end of the upstream stream in the pump's queue."""


Item = str | llm.Usage | llm.ProviderError | _End


async def _pump(job: ReplyJob, queue: "asyncio.Queue[Item]") -> None:
    try:
        async for item in llm.chat_stream(
            messages=job.messages, model=job.model, temperature=job.temperature
        ):
            queue.put_nowait(item)
    except llm.ProviderError as exc:
        queue.put_nowait(exc)
    else:
        queue.put_nowait(_End())


class _Reply:
    """The text of one reply as it is written, and how far it has been published.

    Every published event has the next sequence number; `length_at[seq]` is how much
    of the text a watcher had after that event, so a stop can keep exactly what the
    stopping client had seen. Redis trouble never ends a reply: the text is kept here,
    and once Redis answers again the whole text so far is published as one `reset`.
    """

    def __init__(self, job: ReplyJob) -> None:
        self.job = job
        self.loop = asyncio.get_running_loop()
        self.parts: list[str] = []  # published (or meant to be): what watchers saw
        self.pending: list[str] = []  # received, not yet published
        self.seq = 0
        self.length_at: dict[int, int] = {0: 0}
        self.log_lost = False
        self.last_flush = 0.0  # the first delta goes out at once: time to first token matters most
        self.last_checkpoint = self.loop.time()

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def due(self) -> bool:
        return bool(self.pending) and self.loop.time() - self.last_flush >= settings.CHAT_STREAM_INTERVAL

    def keep_seen(self, seen: int | None) -> None:
        """Drop what the stopping client had not seen (all published text when it did not say)."""
        self.pending.clear()
        if seen is not None and seen in self.length_at:
            self.parts = [self.text[: self.length_at[seen]]]

    async def flush(self) -> None:
        self.last_flush = self.loop.time()
        if not self.pending:
            return
        chunk = "".join(self.pending)
        self.pending.clear()
        self.parts.append(chunk)
        await self.publish(chunk)
        if self.loop.time() - self.last_checkpoint >= settings.CHAT_CHECKPOINT_SECONDS:
            # A long reply is saved now and then, so a crash loses little of it.
            self.last_checkpoint = self.loop.time()
            # services imports this module to start jobs; a job reaches back only to save.
            from conversations.services import reply_checkpoint

            await database_sync_to_async(reply_checkpoint)(reply_id=self.job.reply_id, content=self.text)

    async def publish(self, chunk: str) -> None:
        reply_id, seq = self.job.reply_id, self.seq + 1
        try:
            if self.log_lost or not await replylog.append_delta(reply_id=reply_id, seq=seq, text=chunk):
                await replylog.append_reset(reply_id=reply_id, seq=seq, text=self.text)
        except RedisError as exc:
            if not self.log_lost:
                logger.warning("Reply %s: Redis unavailable (%r); writing on", reply_id, exc)
            self.log_lost = True
            return
        self.log_lost = False
        self.seq = seq
        self.length_at[seq] = len(self.text)

    async def poll(self) -> replylog.StopRequest | None:
        """A stop request, if any, renewing the conversation's lease on the way."""
        try:
            request = await replylog.stop_requested(reply_id=self.job.reply_id)
            await replylog.active_refresh(
                conversation_id=self.job.conversation_id, holder=self.job.holder, ttl=lease_seconds()
            )
            await limits.reply_renew(user_id=self.job.user_id, holder=self.job.holder, lease=lease_seconds())
        except RedisError:
            return None
        return request


async def run(job: ReplyJob) -> None:
    reply = _Reply(job)
    loop = reply.loop
    queue: asyncio.Queue[Item] = asyncio.Queue()
    pump = loop.create_task(_pump(job, queue), name=f"reply-{job.reply_id}-upstream")
    usage: llm.Usage | None = None
    status = Message.Status.COMPLETE
    error = ""
    next_poll = loop.time() + STOP_POLL_SECONDS
    getter: asyncio.Future[Item] | None = None
    try:
        while True:
            deadline = next_poll
            if reply.pending:
                deadline = min(deadline, reply.last_flush + settings.CHAT_STREAM_INTERVAL)
            if getter is None:
                getter = asyncio.ensure_future(queue.get())
            done, _not_done = await asyncio.wait({getter}, timeout=max(0.0, deadline - loop.time()))
            if loop.time() >= next_poll:
                next_poll = loop.time() + STOP_POLL_SECONDS
                stop = await reply.poll()
                if stop is not None:
                    reply.keep_seen(stop.seen)
                    status = Message.Status.STOPPED
                    break
            if not done:
                if reply.due():
                    await reply.flush()
                continue
            item = getter.result()
            getter = None
            if isinstance(item, str):
                reply.pending.append(item)
                if reply.due():
                    await reply.flush()
            elif isinstance(item, llm.Usage):
                usage = item
            elif isinstance(item, llm.ProviderError):
                await reply.flush()
                interrupted = item.interrupted and bool(reply.parts)
                status = Message.Status.INTERRUPTED if interrupted else Message.Status.ERROR
                error = item.user_message
                break
            else:
                await reply.flush()
                break
    except asyncio.CancelledError:
        # The process is shutting down: keep everything received, marked interrupted.
        reply.parts.extend(reply.pending)
        error = _("The server stopped while this reply was being written.")
        await asyncio.shield(_finish(reply, Message.Status.INTERRUPTED, error, usage))
        raise
    except Exception:
        logger.exception("Reply %s failed", job.reply_id)
        reply.parts.extend(reply.pending)
        status = Message.Status.ERROR
        error = _("Something went wrong while writing this reply.")
    finally:
        if getter is not None:
            getter.cancel()
        # Cancelling the pump closes the upstream HTTP response (stop, errors, shutdown).
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
    await _finish(reply, status, error, usage)


def _tokens(job: ReplyJob, reply: _Reply, usage: llm.Usage | None) -> int:
    if usage is not None:
        return usage.prompt_tokens + usage.completion_tokens
    prompt = "".join(message.content for message in job.messages)
    return limits.estimate_tokens(prompt) + limits.estimate_tokens(reply.text)


async def _finish(reply: _Reply, status: str, error: str, usage: llm.Usage | None) -> None:
    job = reply.job
    try:
        from conversations.services import reply_finish

        await database_sync_to_async(reply_finish)(
            reply_id=job.reply_id, content=reply.text, status=status, error=error, usage=usage
        )
    finally:
        # Watchers must learn the reply ended even if the database write failed. Each
        # step is tried on its own: the lease and the limits expire by themselves, and a
        # watcher that never sees the end finds the saved reply (replylog.follow).
        # The slot and the tokens are settled before the end is announced: a client that
        # sends its next message the moment it sees the end must find them free.
        steps = [
            lambda: limits.reply_done(
                user_id=job.user_id, holder=job.holder, tokens=_tokens(job, reply, usage)
            ),
            lambda: replylog.active_release(conversation_id=job.conversation_id, holder=job.holder),
        ]
        if reply.log_lost:
            steps.append(
                lambda: replylog.append_reset(reply_id=job.reply_id, seq=reply.seq + 1, text=reply.text)
            )
        steps.append(
            lambda: replylog.append_end(
                reply_id=job.reply_id,
                seq=reply.seq + 2 if reply.log_lost else reply.seq + 1,
                status=status,
                error=error,
            )
        )
        for step in steps:
            try:
                await step()
            except RedisError as exc:
                logger.warning("Reply %s: Redis step after the end failed (%r)", job.reply_id, exc)
        await database_sync_to_async(close_old_connections)()
