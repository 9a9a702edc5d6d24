"""Conversations made from messages written elsewhere: an imported file, a shared link.

conversation_from_turns() is the one way such a conversation is made: its questions and
replies in the order they were written, each reply linked to its question.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from django.utils.translation import gettext_lazy

from conversations.models import Conversation, Message
from conversations.owners import User
from conversations.services import conversation_create
from roles.selectors import role_get_active

FIRST_WORDS_MAX_CHARS = 60
# A reply that ended on its own, or with the text its user saw: copied as it stands.
FINISHED_STATUSES = frozenset({Message.Status.COMPLETE, Message.Status.STOPPED, Message.Status.INTERRUPTED})
# What a copied question that was only images says: the images stay where they were.
IMAGE_LEFT_OUT = gettext_lazy("(an image, not included here)")


@dataclass(frozen=True)
class Turn:
    question: str
    answer: str  # "" when the question has no reply
    status: str = Message.Status.COMPLETE  # the reply's


def title_from(content: str) -> str:
    """A conversation's title from its first message: the first words, on one line."""
    line = " ".join(content.split())
    return line if len(line) <= FIRST_WORDS_MAX_CHARS else line[: FIRST_WORDS_MAX_CHARS - 1] + "…"


def conversation_from_turns(
    *,
    owner: User,
    title: str,
    role_slug: str | None,
    turns: Sequence[Turn],
    import_key: str = "",
    created_at: datetime | None = None,
    updated_at: datetime | None = None,
) -> Conversation:
    """The owner's new conversation holding `turns` (an unknown role: the default one).
    The dates, when given, are kept instead of now's, so the sidebar lists it where it belongs."""
    # The role it had, while it is active here; otherwise the default one.
    role = role_get_active(slug=role_slug) if role_slug else None
    conversation = conversation_create(
        owner=owner,
        role_slug=role.slug if role else None,
        title=title or (title_from(turns[0].question) if turns else ""),
    )
    # In the order they were written (a conversation reads by id); then each is linked to
    # the one before it (a reply to its question), which bulk_create has just given an id:
    # one branch.
    made: list[tuple[Message, Message | None]] = []
    for number, turn in enumerate(turns, start=1):
        question = Message(
            conversation=conversation, author=Message.Author.USER, content=turn.question, turn=number
        )
        made.append((question, None))
        if turn.answer:
            reply = Message(
                conversation=conversation,
                author=Message.Author.ASSISTANT,
                content=turn.answer,
                status=turn.status,
                turn=number,
            )
            made.append((reply, question))
    Message.objects.bulk_create(message for message, _asked in made)
    for (previous, _), (message, asked) in pairwise(made):
        message.parent = previous
        message.reply_to = asked
    Message.objects.bulk_update([message for message, _asked in made[1:]], ["parent", "reply_to"])
    # update() leaves auto_now alone.
    written, last = created_at or updated_at, updated_at or created_at
    dates = {name: value for name, value in (("created_at", written), ("updated_at", last)) if value}
    if import_key or dates:
        Conversation.objects.filter(pk=conversation.pk).update(import_key=import_key, **dates)
    if written:
        # Not today's: the usage figures count replies by when they were written.
        Message.objects.filter(conversation=conversation).update(created_at=written)
    return conversation
