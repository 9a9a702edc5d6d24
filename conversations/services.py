"""Writes to conversations: the one path the chat page, the API and manage.py all call."""

import logging
from contextlib import suppress
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from conversations import replylog
from conversations.errors import ChatError
from conversations.instructions import instructions_clean, instructions_get
from conversations.metrics import REDIS_ERRORS
from conversations.models import Conversation, Message
from conversations.owners import User, owner_id
from conversations.selectors import conversation_get
from conversations.text import text_unstorable
from roles.selectors import role_get_active, role_get_default

logger = logging.getLogger(__name__)


def title_clean(title: object) -> str:
    if not isinstance(title, str):
        raise ChatError(_("A title must be text."), code="invalid_title")
    if text_unstorable(title):
        raise ChatError(_("This title contains characters that cannot be saved."), code="invalid_title")
    return " ".join(title.split())[:200]


def conversation_create(*, owner: User, role_slug: str | None = None, title: object = "") -> Conversation:
    title = title_clean(title)
    role = role_get_active(slug=role_slug) if role_slug else role_get_default()
    if role is None:
        if role_slug:
            raise ChatError(_("Unknown role: %(slug)s") % {"slug": role_slug}, code="unknown_role")
        raise ChatError(_("No AI role is available. An administrator must add one."), code="no_role")
    return Conversation.objects.create(
        owner_id=owner_id(owner),
        role=role,
        title=title,
        system_prompt=role.system_prompt,
        custom_instructions=instructions_get(user_id=owner_id(owner)),
        provider=role.provider,
        model=role.model,
        temperature=role.temperature,
    )


def conversation_rename(*, owner: User, conversation_id: object, title: object) -> Conversation:
    title = title_clean(title)
    if not title:
        raise ChatError(_("A title cannot be empty."), code="empty_title")
    conversation = conversation_get(owner=owner, conversation_id=conversation_id)
    conversation.title = title
    conversation.title_auto = False  # the user's: never replaced by a model-written one
    conversation.save(update_fields=["title", "title_auto", "updated_at"])
    return conversation


def conversation_pin(*, owner: User, conversation_id: object, pinned: bool) -> Conversation:
    """Pin the owner's conversation to the top of the list, or unpin it. It keeps its place
    in time (updated_at): pinning is not writing in it."""
    conversation = conversation_get(owner=owner, conversation_id=conversation_id)
    if pinned != (conversation.pinned_at is not None):
        conversation.pinned_at = timezone.now() if pinned else None
        Conversation.objects.filter(pk=conversation.pk).update(pinned_at=conversation.pinned_at)
    return conversation


def conversation_archive(*, owner: User, conversation_id: object, archived: bool) -> Conversation:
    """Take the owner's conversation out of the list (still found by search, opened by its
    link, and restored by writing in it), or restore it. Archiving unpins it: put away is
    not on top, and a restored conversation comes back under its date."""
    conversation = conversation_get(owner=owner, conversation_id=conversation_id)
    if archived != (conversation.archived_at is not None):
        conversation.archived_at = timezone.now() if archived else None
        if archived:
            conversation.pinned_at = None
        Conversation.objects.filter(pk=conversation.pk).update(
            archived_at=conversation.archived_at, pinned_at=conversation.pinned_at
        )
    return conversation


def conversation_note_set(*, owner: User, conversation_id: object, text: object) -> Conversation:
    """Saves the note for the owner's conversation (an empty text removes it): the next
    reply is written with it. Raises Conversation.DoesNotExist for anyone else's."""
    conversation = conversation_get(owner=owner, conversation_id=conversation_id)
    conversation.system_note = instructions_clean(text, kind="note")
    # Not writing in it: the conversation keeps its place in the list.
    Conversation.objects.filter(pk=conversation.pk).update(system_note=conversation.system_note)
    return conversation


def conversation_delete(*, owner: User, conversation_id: object) -> None:
    conversation = conversation_get(owner=owner, conversation_id=conversation_id)
    # A reply still being written stops too: no tokens spent on a deleted conversation.
    for reply_id in conversation.messages.filter(status=Message.Status.STREAMING).values_list(
        "pk", flat=True
    ):
        # Without Redis the job runs on, but its final save finds no row: nothing shows.
        with suppress(RedisError):
            replylog.stop_request_sync(reply_id=reply_id)
    conversation.delete()


def message_clean(content: object, *, allow_empty: bool = False) -> str:
    """The message's text, stripped, or ChatError. Empty is allowed when images go with it."""
    if not isinstance(content, str):
        raise ChatError(_("A message must be text."), code="invalid_message")
    if text_unstorable(content):
        # Rejected, not repaired: changing what the user typed behind their back is worse.
        raise ChatError(_("This message contains characters that cannot be saved."), code="invalid_message")
    content = content.strip()
    if not content and not allow_empty:
        raise ChatError(_("Type a message first."), code="empty_message")
    if len(content) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise ChatError(
            _("This message is too long (%(length)s characters; the limit is %(limit)s).")
            % {"length": len(content), "limit": settings.CHAT_MAX_MESSAGE_CHARS},
            code="message_too_long",
        )
    return content


def unavailable_error() -> ChatError:
    REDIS_ERRORS.labels("admission").inc()
    return ChatError(
        _("The chat service is briefly unavailable. Your message was not sent; try again in a few seconds."),
        code="unavailable",
        retry_after=settings.CHAT_RETRY_AFTER_SECONDS,
    )


async def reply_stop(*, owner: User, conversation_id: object, seen: int | None = None) -> Message | None:
    """Ask the conversation's running reply to stop (it may run in another process).

    `seen` is the sequence number of the last event the stopping client showed: the
    saved reply is then exactly the text that client had on screen.
    """
    conversation = await database_sync_to_async(conversation_get)(
        owner=owner, conversation_id=conversation_id
    )
    reply = (
        await conversation.messages.filter(author=Message.Author.ASSISTANT, status=Message.Status.STREAMING)
        .order_by("-id")
        .afirst()
    )
    if reply is not None:
        try:
            await replylog.stop_request(reply_id=reply.pk, seen=seen)
        except RedisError:
            raise unavailable_error() from None
    return reply


def conversation_purge(*, older_than: timedelta, owner: User | None = None, dry_run: bool = False) -> int:
    """Delete conversations not updated for `older_than` (of one owner, when given); returns how many."""
    stale = Conversation.objects.filter(updated_at__lt=timezone.now() - older_than)
    if owner is not None:
        stale = stale.filter(owner_id=owner_id(owner))
    if dry_run:
        return stale.count()
    _total, by_model = stale.delete()
    return by_model.get(Conversation._meta.label, 0)
