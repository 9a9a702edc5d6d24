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

from conversations import llm, replylog
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
    # The token that holds the conversation's reply slot (replylog.active_acquire).
    holder: str


def lease_seconds() -> int:
    """How long the conversation's reply slot is held without renewal before it frees itself."""
    return int(settings.OPENAI_READ_TIMEOUT) + 30


# Strong references: the event loop keeps only weak ones, and a job must not be
# garbage-collected mid-reply.
_running: dict[int, asyncio.Task[None]] = {}


def start(job: ReplyJob) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(run(job), name=f"reply-{job.reply_id}")
    _running[job.reply_id] = task
    task.add_done_callback(lambda _task: _running.pop(job.reply_id, None))
    return task


async def wait(reply_id: int) -> None:
    """Wait until the reply's job (if it runs in this process) has fully finished."""
    task = _running.get(reply_id)
    if task is not None:
        await asyncio.shield(task)


class _End:
    """Marks the end of the upstream stream in the pump's queue."""


async def _pump(job: ReplyJob, queue: "asyncio.Queue[str | llm.Usage | llm.ProviderError | _End]") -> None:
    try:
        async for item in llm.chat_stream(
            messages=job.messages, model=job.model, temperature=job.temperature
        ):
            queue.put_nowait(item)
    except llm.ProviderError as exc:
        queue.put_nowait(exc)
    else:
        queue.put_nowait(_End())


async def run(job: ReplyJob) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | llm.Usage | llm.ProviderError | _End] = asyncio.Queue()
    pump = loop.create_task(_pump(job, queue), name=f"reply-{job.reply_id}-upstream")
    shown: list[str] = []  # text already in the log: what watchers have seen
    pending: list[str] = []  # received, not yet flushed
    usage: llm.Usage | None = None
    status = Message.Status.COMPLETE
    error = ""
    last_flush = 0.0  # the first delta goes out at once: time to first token matters most
    next_poll = loop.time() + STOP_POLL_SECONDS

    async def flush() -> None:
        nonlocal last_flush
        if pending:
            text = "".join(pending)
            pending.clear()
            shown.append(text)
            await replylog.append_delta(reply_id=job.reply_id, seq=len(shown), text=text)
        last_flush = loop.time()

    getter: asyncio.Future[str | llm.Usage | llm.ProviderError | _End] | None = None
    try:
        while True:
            now = loop.time()
            deadline = next_poll
            if pending:
                deadline = min(deadline, last_flush + settings.CHAT_STREAM_INTERVAL)
            if getter is None:
                getter = asyncio.ensure_future(queue.get())
            done, _not_done = await asyncio.wait({getter}, timeout=max(0.0, deadline - now))
            if loop.time() >= next_poll:
                next_poll = loop.time() + STOP_POLL_SECONDS
                if await replylog.stop_requested(reply_id=job.reply_id):
                    # Keep exactly what watchers were shown; unflushed text was never seen.
                    pending.clear()
                    status = Message.Status.STOPPED
                    break
                await replylog.active_refresh(conversation_id=job.conversation_id, ttl=lease_seconds())
            if not done:
                if pending and loop.time() - last_flush >= settings.CHAT_STREAM_INTERVAL:
                    await flush()
                continue
            item = getter.result()
            getter = None
            if isinstance(item, str):
                pending.append(item)
                if loop.time() - last_flush >= settings.CHAT_STREAM_INTERVAL:
                    await flush()
            elif isinstance(item, llm.Usage):
                usage = item
            elif isinstance(item, llm.ProviderError):
                await flush()
                has_text = bool(shown)
                status = Message.Status.INTERRUPTED if item.interrupted and has_text else Message.Status.ERROR
                error = item.user_message
                break
            else:
                await flush()
                break
    except asyncio.CancelledError:
        # The process is shutting down: keep everything received, marked interrupted.
        shown.extend(pending)
        pending.clear()
        status = Message.Status.INTERRUPTED
        error = _("The server stopped while this reply was being written.")
        await asyncio.shield(_finish(job, shown, status, error, usage))
        raise
    except Exception:
        logger.exception("Reply %s failed", job.reply_id)
        shown.extend(pending)
        status = Message.Status.ERROR
        error = _("Something went wrong while writing this reply.")
    finally:
        if getter is not None:
            getter.cancel()
        # Cancelling the pump closes the upstream HTTP response (stop, errors, shutdown).
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
    await _finish(job, shown, status, error, usage)


async def _finish(job: ReplyJob, shown: list[str], status: str, error: str, usage: llm.Usage | None) -> None:
    from conversations.services import reply_finish

    content = "".join(shown)
    try:
        await database_sync_to_async(reply_finish)(
            reply_id=job.reply_id,
            content=content,
            status=status,
            error=error,
            usage=usage,
        )
    finally:
        # Watchers must learn the reply ended even if the database write failed.
        await replylog.append_end(reply_id=job.reply_id, seq=len(shown) + 1, status=status, error=error)
        await replylog.active_release(conversation_id=job.conversation_id, holder=job.holder)
        await database_sync_to_async(close_old_connections)()
