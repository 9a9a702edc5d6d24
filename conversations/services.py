"""Writes to conversations: the one path the chat page, the API and manage.py all call."""

import enum
import logging
import uuid
from contextlib import suppress
from datetime import timedelta

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from conversations import generation, limits, replylog
from conversations.db import in_thread, in_write_thread
from conversations.errors import ChatError
from conversations.llm import ChatMessage
from conversations.metrics import REDIS_ERRORS, REFUSALS
from conversations.models import Conversation, Message
from conversations.owners import User, owner_id
from conversations.selectors import Exchange, context_history, conversation_get, conversation_id_parse
from conversations.store import STORE
from conversations.text import text_unstorable
from roles.selectors import role_get_active, role_get_default

logger = logging.getLogger(__name__)

TITLE_MAX_CHARS = 60


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
        model=role.model,
        temperature=role.temperature,
    )


def conversation_rename(*, owner: User, conversation_id: object, title: object) -> Conversation:
    title = title_clean(title)
    if not title:
        raise ChatError(_("A title cannot be empty."), code="empty_title")
    conversation = conversation_get(owner=owner, conversation_id=conversation_id)
    conversation.title = title
    conversation.save(update_fields=["title", "updated_at"])
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


def message_clean(content: object) -> str:
    if not isinstance(content, str):
        raise ChatError(_("A message must be text."), code="invalid_message")
    if text_unstorable(content):
        # Rejected, not repaired: changing what the user typed behind their back is worse.
        raise ChatError(_("This message contains characters that cannot be saved."), code="invalid_message")
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


class Redo(enum.Enum):
    REGENERATE = "regenerate"  # a new reply to the last user message
    EDIT = "edit"  # a new last user message, and a reply to it


def _conversation_role_apply(*, conversation: Conversation, role_slug: str) -> None:
    """Old API clients name the role with every message: it may set the role of a new
    conversation, but a conversation with messages keeps the role it has."""
    if role_slug == conversation.role.slug:
        return
    if conversation.messages.exists():
        raise ChatError(
            _("This conversation uses the role %(role)s; start a new conversation for another role.")
            % {"role": conversation.role.slug},
            code="role_mismatch",
        )
    role = role_get_active(slug=role_slug)
    if role is None:
        raise ChatError(_("Unknown role: %(slug)s") % {"slug": role_slug}, code="unknown_role")
    conversation.role = role
    conversation.system_prompt = role.system_prompt
    conversation.model = role.model
    conversation.temperature = role.temperature
    conversation.save(update_fields=["role", "system_prompt", "model", "temperature", "updated_at"])


def _user_message_for(*, conversation: Conversation, content: str, redo: Redo | None) -> tuple[Message, bool]:
    """The user message the new reply answers, setting aside the last turn for a redo."""
    current = conversation.messages.filter(superseded=False)
    last_turn = current.aggregate(last=Max("turn"))["last"] or 0
    if redo is None:
        # Saved before the model is called: nothing typed is lost.
        message = Message.objects.create(
            conversation=conversation, author=Message.Author.USER, content=content, turn=last_turn + 1
        )
        return message, False
    last = current.filter(turn=last_turn, author=Message.Author.USER).first()
    if last is None:
        raise ChatError(_("There is no message to answer again yet."), code="nothing_to_redo")
    if redo is Redo.REGENERATE:
        current.filter(turn=last_turn, author=Message.Author.ASSISTANT).update(superseded=True)
        return last, True
    current.filter(turn=last_turn).update(superseded=True)
    edited = Message.objects.create(
        conversation=conversation, author=Message.Author.USER, content=content, turn=last_turn
    )
    return edited, True


@transaction.atomic
def _exchange_create(
    *,
    owner: User,
    conversation_id: object,
    content: str,
    holder: str,
    role_slug: str | None,
    redo: Redo | None,
) -> tuple[Exchange, generation.ReplyJob]:
    conversation = conversation_get(owner=owner, conversation_id=conversation_id)
    if role_slug:
        _conversation_role_apply(conversation=conversation, role_slug=role_slug)
    user_message, replaced = _user_message_for(conversation=conversation, content=content, redo=redo)
    reply = Message.objects.create(
        conversation=conversation,
        author=Message.Author.ASSISTANT,
        status=Message.Status.STREAMING,
        model=conversation.model or settings.OPENAI_MODEL,
        turn=user_message.turn,
        reply_to=user_message,
    )
    if not conversation.title:
        conversation.title = _title_from(user_message.content)
    conversation.save(update_fields=["title", "updated_at"])
    job = generation.ReplyJob(
        reply_id=reply.pk,
        conversation_id=conversation.pk,
        messages=[
            *context_history(conversation=conversation, before_id=user_message.pk),
            ChatMessage(role="user", content=user_message.content),
        ],
        model=conversation.model,
        temperature=float(conversation.temperature),
        holder=holder,
        user_id=conversation.owner_id,
    )
    exchange = Exchange(conversation=conversation, user_message=user_message, reply=reply, replaced=replaced)
    return exchange, job


async def message_send(
    *, owner: User, conversation_id: object, content: object, role_slug: str | None = None
) -> Exchange:
    """Save the user's message, create the reply, and start writing it in the background.

    Returns at once; watchers follow the reply with replylog.follow(). Raises ChatError
    for bad input or while another reply in the conversation is still being written,
    and Conversation.DoesNotExist for a conversation that is not the owner's.
    """
    return await _reply_start(
        owner=owner, conversation_id=conversation_id, content=message_clean(content), role_slug=role_slug
    )


async def conversation_start(*, owner: User, role_slug: str | None, content: object) -> Exchange:
    """A new conversation with its first message: both, or (when the message is refused) neither."""
    text = message_clean(content)
    conversation = await database_sync_to_async(conversation_create)(owner=owner, role_slug=role_slug)
    try:
        return await message_send(owner=owner, conversation_id=conversation.pk, content=text)
    except BaseException:
        await database_sync_to_async(conversation_delete)(owner=owner, conversation_id=conversation.pk)
        raise


async def reply_regenerate(*, owner: User, conversation_id: object) -> Exchange:
    """Answer the last user message again; the previous reply stays as an earlier version."""
    return await _reply_start(owner=owner, conversation_id=conversation_id, content="", redo=Redo.REGENERATE)


async def message_edit(*, owner: User, conversation_id: object, content: object) -> Exchange:
    """Replace the last user message and answer it; the previous turn stays as an earlier version."""
    return await _reply_start(
        owner=owner, conversation_id=conversation_id, content=message_clean(content), redo=Redo.EDIT
    )


def _unavailable() -> ChatError:
    REDIS_ERRORS.labels("admission").inc()
    return ChatError(
        _("The chat service is briefly unavailable. Your message was not sent; try again in a few seconds."),
        code="unavailable",
        retry_after=settings.CHAT_RETRY_AFTER_SECONDS,
    )


# Refusals an operator watches (/metrics): load, limits, Redis, a restart.
REFUSAL_CODES = frozenset({"busy", "rate_limited", "unavailable", "reply_in_progress"})


async def _reply_start(
    *,
    owner: User,
    conversation_id: object,
    content: str,
    role_slug: str | None = None,
    redo: Redo | None = None,
) -> Exchange:
    try:
        return await _reply_admit_and_start(
            owner=owner, conversation_id=conversation_id, content=content, role_slug=role_slug, redo=redo
        )
    except ChatError as exc:
        if exc.code in REFUSAL_CODES:
            REFUSALS.labels(exc.code).inc()
        raise


async def _reply_admit_and_start(
    *,
    owner: User,
    conversation_id: object,
    content: str,
    role_slug: str | None,
    redo: Redo | None,
) -> Exchange:
    # Ownership first: someone else's conversation is "not found", never "busy", and a
    # stranger can never hold its reply slot, not even for a moment.
    def owned_with_limits() -> tuple[Conversation, limits.Limits]:
        # One trip to the database thread, which every socket and request shares.
        found = conversation_get(owner=owner, conversation_id=conversation_id)
        return found, limits.limits_for(user_id=found.owner_id)

    conversation, user_limits = await in_thread(owned_with_limits)()
    if not generation.accepting():
        # Shutting down: the replies running here finish, a new one goes to another process.
        raise ChatError(
            _("Chatsite is restarting. Try again in %(seconds)s s.")
            % {"seconds": settings.CHAT_RETRY_AFTER_SECONDS},
            code="unavailable",
            retry_after=settings.CHAT_RETRY_AFTER_SECONDS,
        )
    if generation.running_count() >= settings.CHAT_MAX_REPLIES_PER_PROCESS:
        # Past capacity a new reply would slow every reply being written: refuse it clearly.
        raise ChatError(
            _("Chatsite is busy right now. Try again in %(seconds)s s.")
            % {"seconds": settings.CHAT_RETRY_AFTER_SECONDS},
            code="busy",
            retry_after=settings.CHAT_RETRY_AFTER_SECONDS,
        )
    key = conversation.pk
    user_id = owner_id(owner)
    holder = uuid.uuid4().hex
    try:
        await limits.reply_admit(
            user_id=user_id, limits=user_limits, holder=holder, lease=generation.lease_seconds()
        )
    except limits.LimitExceeded as exc:
        raise ChatError(exc.message, code="rate_limited", retry_after=exc.retry_after) from None
    except RedisError:
        raise _unavailable() from None
    try:
        try:
            acquired = await replylog.active_acquire(
                conversation_id=key, holder=holder, ttl=generation.lease_seconds()
            )
        except RedisError:
            raise _unavailable() from None
        if not acquired:
            raise ChatError(
                _("A reply is still being written. Wait for it, or stop it first."), code="reply_in_progress"
            )
        try:
            exchange, job = await in_write_thread(_exchange_create)(
                owner=owner,
                conversation_id=key,
                content=content,
                holder=holder,
                role_slug=role_slug,
                redo=redo,
            )
        except BaseException:
            with suppress(RedisError):
                await replylog.active_release(conversation_id=key, holder=holder)
            raise
    except BaseException:
        # Refused or failed: the reply never ran, so it holds no place among the user's replies.
        if not limits.limits_off(user_limits):
            with suppress(RedisError):
                await limits.reply_done(user_id=user_id, holder=holder, tokens=0)
        raise
    generation.start(job, STORE)
    await _announce_reply(exchange)
    return exchange


@transaction.atomic
def reply_version_select(*, owner: User, conversation_id: object, reply_id: int) -> Message:
    """Show another version of the last turn (a reply and the user message it answers)."""
    conversation = conversation_get(owner=owner, conversation_id=conversation_id)
    chosen = conversation.messages.select_related("reply_to").get(
        pk=reply_id, author=Message.Author.ASSISTANT
    )
    last_turn = conversation.messages.aggregate(last=Max("turn"))["last"]
    turn = conversation.messages.filter(turn=last_turn)
    if chosen.turn != last_turn or turn.filter(status=Message.Status.STREAMING).exists():
        raise ChatError(_("Only the last reply's versions can be chosen."), code="not_last_turn")
    conversation.messages.filter(turn=last_turn).update(superseded=True)
    conversation.messages.filter(pk__in=[chosen.pk, chosen.reply_to_id]).update(superseded=False)
    return chosen


def conversation_group(conversation_id: object) -> str:
    """The channel-layer group of every socket showing this conversation, in any process."""
    return f"conversation.{conversation_id_parse(conversation_id).hex}"


async def _announce_reply(exchange: Exchange) -> None:
    # Other tabs (and tabs watching a reply started from the API or the terminal)
    # start following it. Only a notification: the text itself travels in replylog.
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(
            conversation_group(exchange.conversation.pk),
            {
                "type": "reply.started",
                "user_message_id": exchange.user_message.pk,
                "reply_id": exchange.reply.pk,
                "replaced": exchange.replaced,
            },
        )
    except Exception as exc:  # a missed notification must never fail the message
        logger.warning("Could not announce reply %s: %r", exchange.reply.pk, exc)


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
            raise _unavailable() from None
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
