"""Reads of conversations and messages. Every read is scoped to its owner."""

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import OuterRef, Prefetch, Q, QuerySet, Subquery

from conversations.images import attachment_data_url
from conversations.instructions import system_text
from conversations.llm import ChatMessage
from conversations.models import ApiToken, Conversation, Message
from conversations.reasoning import reasoning_join
from conversations.search import conversation_ids_matching
from conversations.token_count import MESSAGE_TOKENS_MIN, message_tokens_estimate

API_LIST_LIMIT = 200


def conversation_id_parse(conversation_id: object) -> uuid.UUID:
    """A conversation id as a UUID; anything malformed is a conversation that does not exist."""
    try:
        return conversation_id if isinstance(conversation_id, uuid.UUID) else uuid.UUID(str(conversation_id))
    except ValueError:
        raise Conversation.DoesNotExist("Not a conversation id.") from None


def _owned(owner: AbstractBaseUser | AnonymousUser) -> QuerySet[Conversation]:
    return (
        Conversation.objects.filter(owner_id=owner.pk)
        .select_related("role")
        .only("id", "title", "updated_at", "created_at", "role__name", "role__slug")
        .order_by("-updated_at", "-id")
    )


def conversation_summaries(
    *,
    owner: AbstractBaseUser | AnonymousUser,
    limit: int = API_LIST_LIMIT,
    before: Conversation | None = None,
    query: str = "",
) -> list[Conversation]:
    """The owner's conversations, newest first, each with `last_message` (its newest text);
    with `before`, only those that come after it in that order (the next page); with
    `query`, only those whose title or messages hold its words (conversations.search)."""
    newest = Message.objects.filter(conversation=OuterRef("pk")).exclude(content="").order_by("-id")
    owned = _owned(owner)
    if before is not None:
        owned = owned.filter(
            Q(updated_at__lt=before.updated_at) | Q(updated_at=before.updated_at, id__lt=before.id)
        )
    if query.strip():
        matching = conversation_ids_matching(owner=owner, query=query, candidates=owned, limit=limit)
        owned = owned.filter(pk__in=matching)
    return list(owned.annotate(last_message=Subquery(newest.values("content")[:1]))[:limit])


def conversation_get(*, owner: AbstractBaseUser | AnonymousUser, conversation_id: object) -> Conversation:
    """The owner's conversation. Raises Conversation.DoesNotExist for anyone else's (callers 404)."""
    return Conversation.objects.select_related("role").get(
        pk=conversation_id_parse(conversation_id), owner_id=owner.pk
    )


def message_list(*, conversation: Conversation) -> list[Message]:
    """The conversation as it stands: the branch shown (conversations.branches)."""
    return list(
        conversation.messages.filter(superseded=False)
        .select_related("feedback")
        .prefetch_related("attachments")
        .order_by("id")
    )


@dataclass(frozen=True)
class Branch:
    """A message among its siblings (the messages that follow the same one), oldest first."""

    ids: list[int]
    index: int

    @property
    def previous(self) -> int | None:
        return self.ids[self.index - 1] if self.index > 0 else None

    @property
    def next(self) -> int | None:
        return self.ids[self.index + 1] if self.index + 1 < len(self.ids) else None


def message_branches(*, conversation: Conversation, messages: Sequence[Message]) -> dict[int, Branch]:
    """Where each of `messages` that has siblings stands among them, by message id."""
    parents = {message.parent_id for message in messages}
    if not parents:
        return {}
    followers = Q(parent_id__in=[pk for pk in parents if pk is not None])
    if None in parents:
        followers |= Q(parent__isnull=True)
    siblings: dict[int | None, list[int]] = defaultdict(list)
    for pk, parent in conversation.messages.filter(followers).order_by("id").values_list("id", "parent_id"):
        siblings[parent].append(pk)
    return {
        message.pk: Branch(ids=found, index=found.index(message.pk))
        for message in messages
        if len(found := siblings[message.parent_id]) > 1 and message.pk in found
    }


def message_tree(*, conversation: Conversation) -> list[Message]:
    """Every message of the conversation, each branch included, oldest first."""
    return list(
        conversation.messages.select_related("feedback").prefetch_related("attachments").order_by("id")
    )


# The latest messages a conversation opens with; earlier ones load as the reader scrolls
# up to them, this many at a time.
MESSAGES_PAGE = 40


@dataclass(frozen=True)
class SummaryMark:
    """Where the messages the conversation's summary stands for end: shown before message
    `before_id`, with the summary."""

    text: str
    before_id: int


@dataclass(frozen=True)
class MessagePage:
    """Some of the conversation as it stands, oldest first."""

    messages: list[Message]
    # Where the earlier messages end (the first id shown), or None when there are none.
    older_than: int | None
    # Where its summary's messages end, when that is among these messages.
    summary: SummaryMark | None = None
    # The branches at those of them that have siblings, by message id.
    branches: dict[int, Branch] = field(default_factory=dict)


def _summary_mark(
    conversation: Conversation, rows: list[Message], previous: int | None
) -> SummaryMark | None:
    """The mark before the first of `rows` after what the summary covers, if the message
    before that one (in `rows`, or `previous`, the one just before them) is covered."""
    until = conversation.summary_until
    if not conversation.summary or until is None:
        return None
    after = next((index for index, message in enumerate(rows) if message.pk > until), None)
    if after is None or (after == 0 and (previous is None or previous > until)):
        return None
    return SummaryMark(text=conversation.summary, before_id=rows[after].pk)


def message_page(
    *, conversation: Conversation, before: int | None = None, limit: int = MESSAGES_PAGE
) -> MessagePage:
    """The latest `limit` messages of the conversation as it stands, or those before the
    message `before`."""
    shown = conversation.messages.filter(superseded=False)
    if before is not None:
        shown = shown.filter(id__lt=before)
    rows = list(shown.select_related("feedback").prefetch_related("attachments").order_by("-id")[: limit + 1])
    more = len(rows) > limit
    previous = rows[limit].pk if more else None  # the one just before the page
    rows = rows[:limit][::-1]
    return MessagePage(
        messages=rows,
        older_than=rows[0].pk if more else None,
        summary=_summary_mark(conversation, rows, previous),
        branches=message_branches(conversation=conversation, messages=rows),
    )


def message_streaming(*, conversation: Conversation) -> Message | None:
    """The reply being written in this conversation, if any."""
    return (
        conversation.messages.filter(author=Message.Author.ASSISTANT, status=Message.Status.STREAMING)
        .order_by("-id")
        .first()
    )


@dataclass(frozen=True)
class Exchange:
    """A saved user message and the (streaming) reply created for it."""

    conversation: Conversation
    user_message: Message
    reply: Message
    # True when an earlier version of the last turn was set aside (regenerate, edit).
    replaced: bool = False
    # True when the conversation was archived and this message brought it back.
    restored: bool = False


def exchange_get(
    *, owner: AbstractBaseUser | AnonymousUser, user_message_id: int, reply_id: int
) -> Exchange | None:
    """A user message and the reply to it, if both are the owner's."""
    messages = {
        m.pk: m
        for m in Message.objects.select_related("conversation__role")
        .prefetch_related("attachments")
        .filter(pk__in=[user_message_id, reply_id], conversation__owner_id=owner.pk)
    }
    if user_message_id not in messages or reply_id not in messages:
        return None
    reply = messages[reply_id]
    return Exchange(conversation=reply.conversation, user_message=messages[user_message_id], reply=reply)


def _counts_as_context(message: Message) -> bool:
    if message.author == Message.Author.USER:
        return True
    if message.status == Message.Status.STREAMING:
        return False
    # Stopped, interrupted or failed replies count as what the user saw, if any text.
    return bool(message.content)


def context_system(*, conversation: Conversation) -> ChatMessage:
    """The system message the model is sent first: the role's prompt, the custom
    instructions and the conversation's note."""
    return ChatMessage(
        role="system",
        content=system_text(
            role_prompt=conversation.system_prompt,
            instructions=conversation.custom_instructions,
            note=conversation.system_note,
        ),
    )


@dataclass(frozen=True)
class Context:
    """The messages sent before a new one, oldest first, and whether earlier ones were left
    out (they did not fit the model's context window, or CHAT_CONTEXT_ROUNDS)."""

    messages: list[Message]
    cut: bool


def _newest_filling(history: QuerySet[Message], *, budget: int, images: bool) -> tuple[list[Message], bool]:
    """The newest messages of `history`, newest first, enough to fill `budget` tokens (or
    all of them), and whether there are older ones. Read a few at a time, more each time:
    most conversations are short, and a long one need not be read whole."""
    # No message costs less than MESSAGE_TOKENS_MIN: more than this many cannot fit.
    most = max(0, budget) // MESSAGE_TOKENS_MIN
    limit = min(64, most)
    while True:
        rows = list(history.order_by("-id")[: limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        if not more or limit >= most or sum(message_tokens_estimate(m, images=images) for m in rows) > budget:
            return rows, more
        limit = min(limit * 4, most)


def context_messages(
    *,
    conversation: Conversation,
    budget: int,
    before_id: int | None = None,
    after_id: int | None = None,
    rounds: int | None = None,
    images: bool = False,
) -> Context:
    """The messages sent upstream before message `before_id` (and after `after_id`), after
    the system message: the most recent whole rounds that fit in `budget` tokens
    (conversations.token_count), and at most `rounds` of them when that is above 0
    (CHAT_CONTEXT_ROUNDS).

    A round starts at a user message and holds the replies to it. With `images`, their
    images are fetched with them and counted (the model reads them).
    """
    rounds = settings.CHAT_CONTEXT_ROUNDS if rounds is None else rounds
    history = conversation.messages.filter(superseded=False)
    if before_id is not None:
        history = history.filter(id__lt=before_id)
    if after_id is not None:  # those up to it are summarised (conversations.summaries)
        history = history.filter(id__gt=after_id)
    if images:
        history = history.prefetch_related("attachments")
    newest_first, more = _newest_filling(history, budget=budget, images=images)
    grouped: list[list[Message]] = []  # whole rounds, newest first
    pending: list[Message] = []
    for message in newest_first:
        pending.insert(0, message)
        if message.author == Message.Author.USER:
            grouped.append(pending)
            pending = []
    # Replies whose question the summary covers go on from it; otherwise their question
    # was too far back to read, and they are left out with it.
    follows_summary = bool(pending) and after_id is not None and not more
    if follows_summary:
        grouped.append(pending)
    cut = more or (bool(pending) and not follows_summary)
    kept: list[Message] = []
    spent = 0
    for number, turn in enumerate(grouped):
        sent = [message for message in turn if _counts_as_context(message)]
        cost = sum(message_tokens_estimate(message, images=images) for message in sent)
        if spent + cost > budget or (rounds > 0 and number >= rounds):
            return Context(messages=kept, cut=True)
        kept[:0] = sent
        spent += cost
    return Context(messages=kept, cut=cut)


def chat_message(message: Message, *, images: bool = False) -> ChatMessage:
    """A message as the model is sent it: its text, and its images when it reads them."""
    return ChatMessage(
        role=message.author,
        content=message.content,
        images=tuple(attachment_data_url(a) for a in message.image_list()) if images else (),
    )


def conversation_list_for_export(*, owner: AbstractBaseUser | AnonymousUser) -> QuerySet[Conversation]:
    """All of the owner's conversations, oldest first, with their messages in order."""
    return (
        Conversation.objects.filter(owner_id=owner.pk)
        .select_related("role")
        .prefetch_related(
            Prefetch("messages", queryset=Message.objects.order_by("id").prefetch_related("attachments"))
        )
        .order_by("created_at")
    )


def conversation_get_for_export(
    *, owner: AbstractBaseUser | AnonymousUser, conversation_id: object
) -> Conversation:
    """One of the owner's conversations with its messages in order. Raises
    Conversation.DoesNotExist for anyone else's."""
    return conversation_list_for_export(owner=owner).get(pk=conversation_id_parse(conversation_id))


def api_token_list(*, username: str | None = None) -> QuerySet[ApiToken]:
    tokens = ApiToken.objects.select_related("user").order_by("-created_at")
    return tokens.filter(user__username=username) if username else tokens


@dataclass(frozen=True)
class ReplySettled:
    status: str
    error: str
    content: str  # the engine's text: reasoning and answer (conversations.reasoning)


async def reply_settled(reply_id: int) -> ReplySettled | None:
    """A reply's saved status, error and text once it is no longer being written, else None.

    For watchers (hub.follow) whose end event never came; a deleted reply is over.
    """
    state = (
        await Message.objects.filter(pk=reply_id)
        .values_list("status", "error", "content", "reasoning")
        .afirst()
    )
    if state is None:
        return ReplySettled(status=Message.Status.STOPPED, error="", content="")
    status, error, content, reasoning = state
    if status == Message.Status.STREAMING:
        return None
    return ReplySettled(status=status, error=error, content=reasoning_join(reasoning, content))
