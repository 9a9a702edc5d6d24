"""Writes to conversations: the one path the chat page, the API and manage.py all call."""

import uuid
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from conversations import generation, replylog
from conversations.llm import ChatMessage, Usage
from conversations.models import Conversation, Message
from conversations.selectors import context_history, conversation_get, conversation_id_parse
from roles.selectors import role_get_active, role_get_default

User = AbstractBaseUser | AnonymousUser
TITLE_MAX_CHARS = 60


class ChatError(Exception):
    """A user mistake or a refused request; `message` is shown to the user as is."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _owner_id(owner: User) -> int:
    # Defence in depth: callers authenticate, but nothing anonymous may own a conversation.
    if not owner.is_authenticated or owner.pk is None:
        raise PermissionDenied("Sign in first.")
    return int(owner.pk)


def conversation_create(*, owner: User, role_slug: str | None = None, title: str = "") -> Conversation:
    role = role_get_active(slug=role_slug) if role_slug else role_get_default()
    if role is None:
        if role_slug:
            raise ChatError(_("Unknown role: %(slug)s") % {"slug": role_slug}, code="unknown_role")
        raise ChatError(_("No AI role is available. An administrator must add one."), code="no_role")
    return Conversation.objects.create(
        owner_id=_owner_id(owner),
        role=role,
        title=title.strip()[:200],
        system_prompt=role.system_prompt,
        model=role.model,
        temperature=role.temperature,
    )


def conversation_rename(*, owner: User, conversation_id: object, title: str) -> Conversation:
    title = " ".join(title.split())
    if not title:
        raise ChatError(_("A title cannot be empty."), code="empty_title")
    conversation = conversation_get(owner=owner, conversation_id=conversation_id)
    conversation.title = title[:200]
    conversation.save(update_fields=["title", "updated_at"])
    return conversation


def conversation_delete(*, owner: User, conversation_id: object) -> None:
    conversation = conversation_get(owner=owner, conversation_id=conversation_id)
    conversation.delete()


def message_clean(content: object) -> str:
    if not isinstance(content, str):
        raise ChatError(_("A message must be text."), code="invalid_message")
    content = content.strip()
    if not content:
        raise ChatError(_("Type a message first."), code="empty_message")
    if len(content) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise ChatError(
            _("This message is too long (%(length)s characters; the limit is %(limit)s).")
            % {"length": len(content), "limit": settings.CHAT_MAX_MESSAGE_CHARS},
            code="message_too_long",
        )
    return content


def _title_from(content: str) -> str:
    line = " ".join(content.split())
    return line if len(line) <= TITLE_MAX_CHARS else line[: TITLE_MAX_CHARS - 1] + "…"


@dataclass(frozen=True)
class Exchange:
    """A saved user message and the (streaming) reply created for it."""

    conversation: Conversation
    user_message: Message
    reply: Message


@transaction.atomic
def _exchange_create(
    *, owner: User, conversation_id: object, content: str, holder: str
) -> tuple[Exchange, generation.ReplyJob]:
    conversation = conversation_get(owner=owner, conversation_id=conversation_id)
    # The user's message is saved before the model is called: nothing typed is lost.
    user_message = Message.objects.create(
        conversation=conversation, author=Message.Author.USER, content=content
    )
    reply = Message.objects.create(
        conversation=conversation,
        author=Message.Author.ASSISTANT,
        status=Message.Status.STREAMING,
        model=conversation.model or settings.OPENAI_MODEL,
    )
    if not conversation.title:
        conversation.title = _title_from(content)
    conversation.save(update_fields=["title", "updated_at"])
    job = generation.ReplyJob(
        reply_id=reply.pk,
        conversation_id=conversation.pk,
        messages=[
            *context_history(conversation=conversation, before_id=user_message.pk),
            ChatMessage(role="user", content=content),
        ],
        model=conversation.model,
        temperature=float(conversation.temperature),
        holder=holder,
    )
    return Exchange(conversation=conversation, user_message=user_message, reply=reply), job


async def message_send(*, owner: User, conversation_id: object, content: object) -> Exchange:
    """Save the user's message, create the reply, and start writing it in the background.

    Returns at once; watchers follow the reply with replylog.follow(). Raises ChatError
    for bad input or while another reply in the conversation is still being written,
    and Conversation.DoesNotExist for a conversation that is not the owner's.
    """
    text = message_clean(content)
    key = conversation_id_parse(conversation_id)
    holder = uuid.uuid4().hex
    # The slot is claimed before the ownership check (one database round trip, not
    # two); a claim on a conversation that is not the owner's is released at once.
    acquired = await replylog.active_acquire(
        conversation_id=key, holder=holder, ttl=generation.lease_seconds()
    )
    if not acquired:
        raise ChatError(
            _("A reply is still being written. Wait for it, or stop it first."), code="reply_in_progress"
        )
    try:
        exchange, job = await database_sync_to_async(_exchange_create)(
            owner=owner, conversation_id=key, content=text, holder=holder
        )
    except BaseException:
        await replylog.active_release(conversation_id=key, holder=holder)
        raise
    generation.start(job)
    return exchange


async def reply_stop(*, owner: User, conversation_id: object) -> Message | None:
    """Ask the conversation's running reply to stop (it may run in another process)."""
    conversation = await database_sync_to_async(conversation_get)(
        owner=owner, conversation_id=conversation_id
    )
    reply = (
        await conversation.messages.filter(author=Message.Author.ASSISTANT, status=Message.Status.STREAMING)
        .order_by("-id")
        .afirst()
    )
    if reply is not None:
        await replylog.stop_request(reply_id=reply.pk)
    return reply


def reply_finish(*, reply_id: int, content: str, status: str, error: str, usage: Usage | None) -> None:
    """Write a finished reply once: its whole text, status and token usage."""
    updated = timezone.now()
    with transaction.atomic():
        Message.objects.filter(pk=reply_id).update(
            content=content,
            status=status,
            error=error,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            updated_at=updated,
        )
        Conversation.objects.filter(messages__pk=reply_id).update(updated_at=updated)


def reply_recover_orphans() -> int:
    """Mark replies left `streaming` by a process that died as interrupted, keeping their text.

    Called when the single-process server starts, before it serves anyone.
    """
    orphans = list(Message.objects.filter(status=Message.Status.STREAMING).only("id", "content"))
    for reply in orphans:
        try:
            text = replylog.snapshot(reply_id=reply.pk).text
        except Exception:  # Redis may be new and empty, or unreachable: keep what the DB has
            text = ""
        reply_finish(
            reply_id=reply.pk,
            content=text or reply.content,
            status=Message.Status.INTERRUPTED,
            error=_("The server stopped while this reply was being written."),
            usage=None,
        )
    return len(orphans)
