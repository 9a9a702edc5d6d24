"""Saving a running reply: its checkpoints, its one final write, and the ends of orphans.

The reply's job (conversations.generation) calls these through `STORE`; the reaper
finishes replies whose process died.
"""

import uuid
from contextlib import suppress

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from conversations import generation, replylog
from conversations.llm import Usage
from conversations.models import Conversation, Message
from conversations.reasoning import reasoning_split


def reply_checkpoint(*, reply_id: int, content: str) -> None:
    """Save a long reply's text so far (the engine's: reasoning and answer); it stays `streaming`."""
    reasoning, answer = reasoning_split(content)
    Message.objects.filter(pk=reply_id, status=Message.Status.STREAMING).update(
        content=answer, reasoning=reasoning
    )


def reply_finish(
    *,
    reply_id: int,
    conversation_id: uuid.UUID,
    content: str,
    status: str,
    error: str,
    usage: Usage | None,
    first_token_ms: int | None = None,
    reasoning_ms: int | None = None,
) -> None:
    """Write a finished reply once: its whole text (the engine's: its reasoning is kept
    apart), status, token usage, first-token and thinking times."""
    updated = timezone.now()
    reasoning, answer = reasoning_split(content)
    with transaction.atomic():
        Message.objects.filter(pk=reply_id).update(
            content=answer,
            reasoning=reasoning,
            reasoning_ms=reasoning_ms if reasoning else None,
            status=status,
            error=error,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            first_token_ms=first_token_ms,
            updated_at=updated,
        )
        Conversation.objects.filter(pk=conversation_id).update(updated_at=updated)


STORE = generation.Store(checkpoint=reply_checkpoint, finish=reply_finish)


def reply_reap_orphans(*, running: set[int]) -> int:
    """Finish replies left `streaming` by a process that died, as `interrupted`.

    A reply is an orphan when no process holds its conversation's lease (the process
    writing it renews it) and it is not running here. Its text is the log's, else the
    last checkpoint. Safe to run in every process at any time. With Redis unreachable no
    lease can be seen, so nothing is taken for an orphan: RedisError is raised. Nor is
    anything just after Redis restarted, which lost the live leases too (a soak with a
    Redis restart saw a live reply reaped, its reader told "interrupted").
    """
    if replylog.leases_lost_recently(lease=generation.lease_seconds()):
        return 0
    candidates = list(
        Message.objects.filter(status=Message.Status.STREAMING)
        .exclude(pk__in=running)
        .only("id", "content", "reasoning", "conversation_id")
    )
    held = replylog.active_held(conversation_ids=[m.conversation_id for m in candidates])
    orphans = [m for m in candidates if str(m.conversation_id) not in held]
    reaped = 0
    error = _("The server stopped while this reply was being written.")
    for reply in orphans:
        try:
            snapshot = replylog.snapshot(reply_id=reply.pk)
        except RedisError:  # Redis unreachable: keep what the database has
            snapshot = None
        reasoning, answer = (
            reasoning_split(snapshot.text) if snapshot and snapshot.text else (reply.reasoning, reply.content)
        )
        # Only if still streaming: its job may have finished it since it was selected.
        reaped += Message.objects.filter(pk=reply.pk, status=Message.Status.STREAMING).update(
            content=answer,
            reasoning=reasoning,
            status=Message.Status.INTERRUPTED,
            error=error,
            updated_at=timezone.now(),
        )
        with suppress(RedisError):  # tell anyone still watching
            replylog.end_sync(
                reply_id=reply.pk, seq=(snapshot.seq if snapshot else 0) + 1, status="interrupted"
            )
    return reaped
