"""Starting replies: a user's message in, a reply being written out.

message_send() (and the regenerate and edit variants) admits the reply (load, limits,
the conversation's one reply slot), saves the user's message and an empty reply in one
transaction, starts the generation job, and tells the conversation's other sockets.
It returns at once; watchers follow the reply's log (conversations.hub).
"""

import enum
import logging
import uuid
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from conversations import generation, limits, replylog, summaries, titles
from conversations.announce import reply_announce
from conversations.branches import branch_leave
from conversations.context import reply_context
from conversations.copies import title_from
from conversations.db import in_thread, in_write_thread
from conversations.errors import ChatError
from conversations.images import attachment_data_url, attachments_copy
from conversations.llm import ChatMessage
from conversations.metrics import REFUSALS
from conversations.model_pick import conversation_model_resolve
from conversations.models import Attachment, Conversation, Message
from conversations.owners import User, owner_id
from conversations.selectors import (
    Exchange,
    chat_message,
    conversation_get,
)
from conversations.services import conversation_create, conversation_delete, message_clean, unavailable_error
from conversations.store import STORE
from providers.selectors import ModelPick
from roles.selectors import role_get_active

logger = logging.getLogger(__name__)


class Redo(enum.Enum):
    REGENERATE = "regenerate"  # a new reply to a user message
    EDIT = "edit"  # a new version of a user message, and a reply to it


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
    conversation.provider, conversation.model = role.provider, role.model
    conversation.temperature = role.temperature
    conversation.save(
        update_fields=["role", "system_prompt", "provider", "model", "temperature", "updated_at"]
    )


def _redo_target(*, conversation: Conversation, redo: Redo, target: int | None) -> Message:
    """The message a redo starts from: the question to answer again (for a regenerate,
    the one the reply `target` answers) or the question to replace (`target`); by
    default the last one shown. Only a message on the branch shown can be redone."""
    shown = conversation.messages.filter(superseded=False)
    if target is None:
        found = shown.filter(author=Message.Author.USER).order_by("-id").first()
        if found is None:
            raise ChatError(_("There is no message to answer again yet."), code="nothing_to_redo")
        return found
    author = Message.Author.ASSISTANT if redo is Redo.REGENERATE else Message.Author.USER
    found = shown.filter(pk=target, author=author).select_related("reply_to").first()
    question = found.reply_to if found is not None and redo is Redo.REGENERATE else found
    if question is None:
        raise ChatError(_("That message is no longer shown. Reload the page."), code="invalid_target")
    return question


def _user_message_for(
    *, conversation: Conversation, content: str, redo: Redo | None, target: int | None
) -> tuple[Message, bool, bool]:
    """The user message the new reply answers, setting aside what a redo replaces (a new
    branch from there); whether it replaced some, and whether nothing comes before it."""
    if redo is None:
        last = conversation.messages.filter(superseded=False).only("id", "turn").order_by("-id").first()
        # Saved before the model is called: nothing typed is lost.
        message = Message.objects.create(
            conversation=conversation,
            author=Message.Author.USER,
            content=content,
            turn=last.turn + 1 if last else 1,
            parent=last,
        )
        return message, False, last is None
    question = _redo_target(conversation=conversation, redo=redo, target=target)
    if redo is Redo.REGENERATE:
        branch_leave(conversation=conversation, point=question.pk)
        return question, True, question.parent_id is None
    branch_leave(conversation=conversation, point=question.parent_id)
    edited = Message.objects.create(
        conversation=conversation,
        author=Message.Author.USER,
        content=content,
        turn=question.turn,
        parent_id=question.parent_id,
    )
    edited.edited_from = question
    return edited, True, question.parent_id is None


@dataclass(frozen=True)
class Asked:
    """What the user asked for besides the text: a model, and images."""

    pick: ModelPick | None = None
    attachments: tuple[int, ...] = ()
    # Regenerating or editing: the reply or question to redo, when not the last one.
    target: int | None = None


def attachments_unsent(*, owner: User, ids: Sequence[int]) -> list[Attachment]:
    """The owner's uploaded images not sent with any message yet, all of `ids`, or ChatError."""
    if not ids:
        return []
    if len(ids) > settings.CHAT_IMAGES_PER_MESSAGE:
        raise ChatError(
            _("At most %(count)s images can go with one message.")
            % {"count": settings.CHAT_IMAGES_PER_MESSAGE},
            code="too_many_images",
        )
    found = list(
        Attachment.objects.select_for_update().filter(
            pk__in=ids, owner_id=owner_id(owner), message__isnull=True
        )
    )
    if len(found) != len(set(ids)):
        # Someone else's, already sent, or deleted: the same answer for each.
        raise ChatError(
            _("An attached image is no longer available. Attach it again."), code="invalid_attachment"
        )
    return found


def _conversation_touch(*, conversation: Conversation, content: str, redo: Redo | None) -> bool:
    """Mark the conversation written in now, name a new one by its first words, and bring
    it back from the archive; whether it came back. `conversation` was read before the
    write began: what another tab or process changed since is kept (a title given), or
    read again (before a redo, which decides from its summary). Raises
    Conversation.DoesNotExist when it was deleted since."""
    row = Conversation.objects.filter(pk=conversation.pk)
    values: dict[str, Any] = {"updated_at": timezone.now()}
    # A new message in an archived conversation brings it back to the list, as in ChatGPT
    # (the sent frame lists it again; a regenerate or an edit re-renders the messages only).
    restored = redo is None and conversation.archived_at is not None
    if redo is None:
        values["archived_at"] = None
    # The first words for now; the model may write a better one (conversations.titles).
    # Only where the row has no title yet; only these fields, so nothing written since
    # (a title the model wrote, in another process) is undone.
    titled = ""
    if redo is None and not conversation.title:
        title = title_from(content) or _("Image")
        titled = title if row.filter(title="").update(title=title, title_auto=True, **values) else ""
    if not titled and not row.update(**values):
        raise Conversation.DoesNotExist
    if titled:
        conversation.title, conversation.title_auto = titled, True
    elif redo is not None or not conversation.title:
        # The row is this transaction's now: what it reads stays so until it ends.
        conversation.refresh_from_db()
    for field, value in values.items():
        setattr(conversation, field, value)
    return restored


@transaction.atomic
def _exchange_create(
    *,
    owner: User,
    conversation: Conversation,
    content: str,
    holder: str,
    role_slug: str | None,
    redo: Redo | None,
    asked: Asked,
) -> tuple[Exchange, generation.ReplyJob]:
    """`conversation` is the owner's, as read just before (not again here: every process's
    writes wait in line for SQLite, and that read was a third of this one's time in
    py-spy's samples of 200 replies starting at once). Its row is written first: gone
    since, the exchange is not created."""
    restored = _conversation_touch(conversation=conversation, content=content, redo=redo)
    if role_slug:
        _conversation_role_apply(conversation=conversation, role_slug=role_slug)
    choice, endpoint = conversation_model_resolve(conversation=conversation, pick=asked.pick)
    attachments = attachments_unsent(owner=owner, ids=asked.attachments)
    user_message, replaced, first = _user_message_for(
        conversation=conversation, content=content, redo=redo, target=asked.target
    )
    if attachments:
        Attachment.objects.filter(pk__in=[a.pk for a in attachments]).update(message=user_message)
    # The new message's images, or (regenerating, editing) the ones it was sent with.
    images = attachments
    if redo is Redo.REGENERATE:
        images = list(user_message.attachments.all())
    elif redo is Redo.EDIT and user_message.edited_from is not None:
        images = list(user_message.edited_from.attachments.all())
    if images and not choice.vision:
        if redo is None:
            text = _("%(model)s cannot read images. Pick a model that can, or send the message without them.")
        else:  # the images are the message's own: nothing in the composer to take away
            text = _("%(model)s cannot read images, and this message has some. Pick a model that can.")
        raise ChatError(text % {"model": choice.label}, code="model_cannot_read_images")
    if redo is Redo.EDIT and images:
        # The text changes; the pictures it was about go with it, as in ChatGPT.
        images = attachments_copy(originals=images, target=user_message)
    # Known now: rendering the sent frame asks the database nothing. (Django's prefetch
    # cost ~0.3 ms a message even with nothing to fetch; py-spy at N=200 found it 15% of
    # _exchange_create, in the one thread every message start waits for.)
    user_message.known_images = images
    context = reply_context(conversation=conversation, user_message=user_message, choice=choice, first=first)
    reply = Message.objects.create(
        conversation=conversation,
        author=Message.Author.ASSISTANT,
        status=Message.Status.STREAMING,
        provider=choice.provider,
        model=choice.model,
        turn=user_message.turn,
        parent=user_message,
        reply_to=user_message,
        # What the request upstream holds, for "What was sent" (conversations.sent).
        sent=context.record,
    )
    if not conversation.title:  # a redo in a conversation whose title was never set
        conversation.title = title_from(user_message.content) or _("Image")
        conversation.title_auto = True
        conversation.save(update_fields=["title", "title_auto"])
    job = generation.ReplyJob(
        reply_id=reply.pk,
        conversation_id=conversation.pk,
        messages=[
            context.system,
            *(chat_message(m, images=choice.vision) for m in context.history),
            ChatMessage(
                role="user",
                content=user_message.content,
                images=tuple(attachment_data_url(image) for image in images),
            ),
        ],
        model=choice.model,
        temperature=float(choice.temperature if choice.temperature is not None else conversation.temperature),
        endpoint=endpoint,
        holder=holder,
        user_id=conversation.owner_id,
    )
    exchange = Exchange(
        conversation=conversation,
        user_message=user_message,
        reply=reply,
        replaced=replaced,
        restored=restored,
    )
    return exchange, job


async def message_send(
    *,
    owner: User,
    conversation_id: object,
    content: object,
    role_slug: str | None = None,
    pick: ModelPick | None = None,
    attachments: Sequence[int] = (),
    sender: str | None = None,
) -> Exchange:
    """Save the user's message, create the reply, and start writing it in the background.

    Returns at once; watchers follow the reply with replylog.follow(). Raises ChatError
    for bad input or while another reply in the conversation is still being written,
    and Conversation.DoesNotExist for a conversation that is not the owner's. `pick` is
    the model the user chose for this reply and the next ones (conversations.model_pick);
    `attachments` the ids of images the user uploaded for this message (then it may
    have no text). `sender` is the channel name of the chat socket that sent it: the
    conversation's other sockets are told of the reply, not that one.
    """
    return await _reply_start(
        owner=owner,
        conversation_id=conversation_id,
        content=message_clean(content, allow_empty=bool(attachments)),
        role_slug=role_slug,
        asked=Asked(pick=pick, attachments=tuple(attachments)),
        sender=sender,
    )


async def conversation_start(
    *,
    owner: User,
    role_slug: str | None,
    content: object,
    pick: ModelPick | None = None,
    attachments: Sequence[int] = (),
    sender: str | None = None,
) -> Exchange:
    """A new conversation with its first message: both, or (when the message is refused) neither."""
    text = message_clean(content, allow_empty=bool(attachments))
    conversation = await in_write_thread(conversation_create)(owner=owner, role_slug=role_slug)
    try:
        return await message_send(
            owner=owner,
            conversation_id=conversation.pk,
            content=text,
            pick=pick,
            attachments=attachments,
            sender=sender,
        )
    except BaseException:
        await database_sync_to_async(conversation_delete)(owner=owner, conversation_id=conversation.pk)
        raise


async def reply_regenerate(
    *,
    owner: User,
    conversation_id: object,
    reply_id: int | None = None,
    pick: ModelPick | None = None,
    sender: str | None = None,
) -> Exchange:
    """Answer again the question the reply `reply_id` answers, by default the last one
    (with the model picked now, if one is given). The new reply is a new branch: the one
    it replaces, and whatever followed it, stay in the tree."""
    return await _reply_start(
        owner=owner,
        conversation_id=conversation_id,
        content="",
        redo=Redo.REGENERATE,
        asked=Asked(pick=pick, target=reply_id),
        sender=sender,
    )


async def message_edit(
    *,
    owner: User,
    conversation_id: object,
    content: object,
    message_id: int | None = None,
    pick: ModelPick | None = None,
    sender: str | None = None,
) -> Exchange:
    """Replace the user message `message_id`, by default the last one, and answer it (with
    the model picked now, if one is given). The new message is a new branch: the one it
    replaces, with its images, and whatever followed it stay in the tree."""
    return await _reply_start(
        owner=owner,
        conversation_id=conversation_id,
        content=message_clean(content),
        redo=Redo.EDIT,
        asked=Asked(pick=pick, target=message_id),
        sender=sender,
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
    asked: Asked | None = None,
    sender: str | None = None,
) -> Exchange:
    try:
        return await _reply_admit_and_start(
            owner=owner,
            conversation_id=conversation_id,
            content=content,
            role_slug=role_slug,
            redo=redo,
            asked=asked or Asked(),
            sender=sender,
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
    asked: Asked,
    sender: str | None,
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
        raise unavailable_error() from None
    try:
        try:
            acquired = await replylog.active_acquire(
                conversation_id=key, holder=holder, ttl=generation.lease_seconds()
            )
        except RedisError:
            raise unavailable_error() from None
        if not acquired:
            raise ChatError(
                _("A reply is still being written. Wait for it, or stop it first."), code="reply_in_progress"
            )
        try:
            exchange, job = await in_write_thread(_exchange_create)(
                owner=owner,
                conversation=conversation,
                content=content,
                holder=holder,
                role_slug=role_slug,
                redo=redo,
                asked=asked,
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
    await reply_announce(exchange, sender=sender)
    if exchange.conversation.title_auto and exchange.user_message.turn == 1 and redo is None:
        titles.title_later(exchange, endpoint=job.endpoint, model=job.model)
    summaries.summary_later(exchange, endpoint=job.endpoint, model=job.model)
    return exchange
