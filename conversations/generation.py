"""The generation job: one asyncio task per reply, owned by the conversation, not by a socket.

The job reads the model's stream and hands the text to the process's publisher,
which coalesces it into at most one event per CHAT_STREAM_INTERVAL in the reply's
Redis log; the final text goes to the database once. Watchers follow the log;
closing a tab does not touch the job. A stop request (from any process) is a Redis
key the publisher looks for on behalf of all of this process's jobs.
"""

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from django.conf import settings
from django.db import DatabaseError
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from conversations import hub, limits, llm, replylog
from conversations.db import in_write_thread
from conversations.metrics import (
    DATABASE_ERRORS,
    FIRST_TOKEN,
    REPLIES_FINISHED,
    REPLIES_IN_FLIGHT,
    REPLIES_STARTED,
    TOKENS_RELAYED,
)
from conversations.models import Message
from conversations.publisher import Reply, lease_seconds, publisher
from conversations.reasoning import THINK_END
from providers.selectors import Endpoint

logger = logging.getLogger(__name__)

__all__ = [
    "ReplyJob",
    "accepting",
    "lease_seconds",
    "running_count",
    "running_ids",
    "shutdown",
    "start",
    "wait",
]


@dataclass(frozen=True)
class ReplyJob:
    reply_id: int
    conversation_id: uuid.UUID
    messages: list[llm.ChatMessage]
    model: str
    temperature: float | None
    endpoint: Endpoint | None  # the model's provider (None: the default one)
    # The token that holds the conversation's reply slot (replylog.active_acquire)
    # and the reply's place among its user's concurrent replies (limits).
    holder: str
    user_id: int


# The database writes a job makes, given by the services module that starts it (the
# services call down into this module, never the other way round).
@dataclass(frozen=True)
class Store:
    checkpoint: Callable[..., None]
    finish: Callable[..., None]


# Strong references: the event loop keeps only weak ones, and a job must not be
# garbage-collected mid-reply.
_running: dict[int, asyncio.Task[None]] = {}
# The event loops shutting down (a server has one): there new replies are refused
# (another process or host takes them), and the running ones are given time to finish.
_draining: "weakref.WeakSet[asyncio.AbstractEventLoop]" = weakref.WeakSet()


def start(job: ReplyJob, store: Store) -> asyncio.Task[None]:
    # Registered at once, before the task first runs: a watcher joining right after
    # message_send() returns knows the reply is written here.
    reply = Reply(
        reply_id=job.reply_id, conversation_id=job.conversation_id, holder=job.holder, user_id=job.user_id
    )
    publisher().add(reply)
    task = asyncio.get_running_loop().create_task(run(job, reply, store), name=f"reply-{job.reply_id}")
    _running[job.reply_id] = task
    REPLIES_STARTED.inc()
    REPLIES_IN_FLIGHT.inc()

    def done(_task: asyncio.Task[None]) -> None:
        _running.pop(job.reply_id, None)
        REPLIES_IN_FLIGHT.dec()

    task.add_done_callback(done)
    return task


def running_ids() -> set[int]:
    return set(_running)


def running_count() -> int:
    return len(_running)


def accepting() -> bool:
    return asyncio.get_running_loop() not in _draining


async def shutdown(*, drain: float = 0.0, grace: float = 5.0) -> None:
    """Refuse new replies; give the running ones up to `drain` seconds to finish, then stop
    the rest: each publishes and saves what it has as `interrupted`. Either way their
    watchers here are given the end before the server closes their connections."""
    _draining.add(asyncio.get_running_loop())
    tasks = dict(_running)
    if not tasks:
        return
    if drain > 0:
        logger.info("Shutting down: waiting up to %.0f s for %d running reply(ies)", drain, len(tasks))
        await asyncio.wait(tasks.values(), timeout=drain)
    for task in tasks.values():
        task.cancel()  # no effect on the ones that finished
    await asyncio.wait(tasks.values(), timeout=grace)
    await hub.watchers_gone(set(tasks), within=2.0)


async def wait(reply_id: int) -> None:
    """Wait until the reply's job (if it runs in this process) has fully finished."""
    task = _running.get(reply_id)
    if task is not None:
        await asyncio.shield(task)


@dataclass
class _Outcome:
    status: str = Message.Status.COMPLETE
    error: str = ""
    usage: llm.Usage | None = None
    started: float = field(default_factory=time.monotonic)
    first_text: float | None = None  # when the model's first text arrived
    answer_after_reasoning: float | None = None  # when its answer began, if it reasoned first

    def _ms(self, at: float | None) -> int | None:
        return None if at is None else round((at - self.started) * 1000)

    def first_token_ms(self) -> int | None:
        return self._ms(self.first_text)

    def reasoning_ms(self) -> int | None:
        return self._ms(self.answer_after_reasoning)


async def _read_upstream(job: ReplyJob, reply: Reply, outcome: _Outcome) -> None:
    out = publisher()
    try:
        async for item in llm.chat_stream(
            messages=job.messages, model=job.model, temperature=job.temperature, endpoint=job.endpoint
        ):
            if isinstance(item, str):
                if outcome.first_text is None:
                    outcome.first_text = time.monotonic()
                if outcome.answer_after_reasoning is None and THINK_END in item:
                    outcome.answer_after_reasoning = time.monotonic()
                out.received(reply, item)
            else:
                outcome.usage = item
    except llm.ProviderError as exc:
        interrupted = exc.interrupted and bool(reply.parts or reply.pending)
        outcome.status = Message.Status.INTERRUPTED if interrupted else Message.Status.ERROR
        outcome.error = exc.user_message


async def run(job: ReplyJob, reply: Reply, store: Store) -> None:
    outcome = _Outcome()
    loop = asyncio.get_running_loop()
    upstream = loop.create_task(_read_upstream(job, reply, outcome), name=f"reply-{job.reply_id}-upstream")
    checkpoints = loop.create_task(_checkpoint_forever(reply, store), name=f"reply-{job.reply_id}-checkpoint")
    try:
        await asyncio.wait([upstream, cast(Any, reply.stopped)], return_when=asyncio.FIRST_COMPLETED)
        if reply.stopped.done() and not upstream.done():
            reply.keep_seen(reply.stopped.result().seen)
            outcome.status = Message.Status.STOPPED
    except asyncio.CancelledError:
        # The process is shutting down: publish and keep everything received, marked interrupted.
        outcome.status = Message.Status.INTERRUPTED
        outcome.error = _("The server stopped while this reply was being written.")
        await asyncio.shield(_finish(job, reply, store, outcome, upstream, checkpoints))
        raise
    except Exception:
        logger.exception("Reply %s failed", job.reply_id)
        outcome.status = Message.Status.ERROR
        outcome.error = _("Something went wrong while writing this reply.")
    await _finish(job, reply, store, outcome, upstream, checkpoints)


async def _checkpoint_forever(reply: Reply, store: Store) -> None:
    """A long reply is saved now and then, so a crash that takes Redis with it loses little."""
    saved = 0
    while True:
        await asyncio.sleep(settings.CHAT_CHECKPOINT_SECONDS)
        text = reply.text
        if len(text) != saved:
            try:
                await in_write_thread(store.checkpoint)(reply_id=reply.reply_id, content=text)
            except DatabaseError as exc:  # the next checkpoint, or the final save, tries again
                DATABASE_ERRORS.labels("checkpoint").inc()
                logger.warning("Reply %s: a checkpoint failed (%r)", reply.reply_id, exc)
                continue
            saved = len(text)


def _tokens(job: ReplyJob, reply: Reply, usage: llm.Usage | None) -> int:
    if usage is not None:
        return usage.prompt_tokens + usage.completion_tokens
    prompt = "".join(message.content for message in job.messages)
    return limits.estimate_tokens(prompt) + limits.estimate_tokens(reply.text)


async def _finish(
    job: ReplyJob,
    reply: Reply,
    store: Store,
    outcome: _Outcome,
    upstream: "asyncio.Task[None]",
    checkpoints: "asyncio.Task[None]",
) -> None:
    out = publisher()
    # Cancelling the upstream task closes the model's HTTP response (stop, errors, shutdown).
    for task in (upstream, checkpoints):
        task.cancel()
    await asyncio.gather(upstream, checkpoints, return_exceptions=True)
    if outcome.status != Message.Status.STOPPED:
        # Whatever arrived is published first: the saved text is what watchers are sent.
        await out.publish(reply)
        reply.parts.extend(reply.pending)
        reply.pending.clear()
    try:
        await in_write_thread(store.finish)(
            reply_id=job.reply_id,
            conversation_id=job.conversation_id,
            content=reply.text,
            status=outcome.status,
            error=outcome.error,
            usage=outcome.usage,
            first_token_ms=outcome.first_token_ms(),
            reasoning_ms=outcome.reasoning_ms(),
        )
    finally:
        # Watchers must learn the reply ended even if the database write failed. The slot
        # and the tokens are settled before the end is announced: a client that sends its
        # next message the moment it sees the end must find them free. Each step is tried
        # on its own: the lease and the limits expire by themselves, and a watcher that
        # never sees the end settles from the saved reply (hub.follow).
        await out.retire(reply)
        steps: list[Callable[[], Awaitable[None]]] = [
            lambda: limits.reply_done(
                user_id=job.user_id, holder=job.holder, tokens=_tokens(job, reply, outcome.usage)
            ),
            lambda: replylog.active_release(conversation_id=job.conversation_id, holder=job.holder),
        ]
        for step in steps:
            try:
                await step()
            except RedisError as exc:
                logger.warning("Reply %s: Redis step after the end failed (%r)", job.reply_id, exc)
        await out.publish(reply, end=(outcome.status, outcome.error))
        out.remove(reply)
        _log_finished(job, reply, outcome)


def _log_finished(job: ReplyJob, reply: Reply, outcome: _Outcome) -> None:
    """One line per reply for operators (with LOG_FORMAT=json its fields are JSON keys),
    and its figures for /metrics."""
    ended = time.monotonic()
    first_token_ms = outcome.first_token_ms()
    REPLIES_FINISHED.labels(outcome.status).inc()
    usage = outcome.usage
    TOKENS_RELAYED.inc(usage.completion_tokens if usage else limits.estimate_tokens(reply.text))
    if first_token_ms is not None:
        FIRST_TOKEN.observe(first_token_ms / 1000)
    fields = {
        "reply_id": job.reply_id,
        "user_id": job.user_id,
        "provider": job.endpoint.name if job.endpoint else "default",
        "model": job.model or settings.OPENAI_MODEL,
        "status": outcome.status,
        "prompt_tokens": outcome.usage.prompt_tokens if outcome.usage else None,
        "completion_tokens": outcome.usage.completion_tokens if outcome.usage else None,
        "chars": len(reply.text),
        "first_token_ms": first_token_ms,
        "duration_ms": round((ended - outcome.started) * 1000),
    }
    logger.info(
        "Reply %(reply_id)s %(status)s: user %(user_id)s, model %(model)s of %(provider)s, "
        "%(chars)s characters, "
        "tokens %(prompt_tokens)s+%(completion_tokens)s, first token %(first_token_ms)s ms, "
        "%(duration_ms)s ms",
        fields,
        extra=fields,
    )
