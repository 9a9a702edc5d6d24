"""The conversation as a tree: the branch shown, and the branches at each message.

Regenerating a reply or editing a question (conversations.sending) adds a sibling to it,
a branch from that point; nothing is deleted. The branch shown is one path from the first
question down, and every message off it is superseded, so whatever reads the
conversation as it stands (the page, the context sent upstream, search, exports) reads
that path. branch_select() shows another one.
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from conversations.errors import ChatError
from conversations.models import Conversation, Message
from conversations.owners import User
from conversations.selectors import conversation_get, message_streaming

# Set aside before anything was: messages from before the tree (migration 0022).
NEVER = datetime.min.replace(tzinfo=UTC)


def _path_through(rows: Iterable[tuple[int, int | None, datetime | None]], chosen: int) -> list[int]:
    """The path from the first question through `chosen` down to a last message. Below
    `chosen`, every message is set aside, and of each one's followers the one set aside
    last was the one shown last: the path goes on where the user left it."""
    parent_of: dict[int, int | None] = {}
    left: dict[int, tuple[datetime, int]] = {}
    children: dict[int, list[int]] = defaultdict(list)
    for pk, parent, superseded_at in rows:
        parent_of[pk] = parent
        left[pk] = (superseded_at or NEVER, pk)  # the newest first among equals
        if parent is not None:
            children[parent].append(pk)
    up: list[int] = []
    at: int | None = chosen
    while at is not None and at in parent_of:
        up.append(at)
        at = parent_of[at]
    path = up[::-1]
    while children.get(path[-1]):
        path.append(max(children[path[-1]], key=left.__getitem__))
    return path


def summary_forget_after(*, conversation: Conversation, point: int | None) -> None:
    """The branch shown changes after message `point` (None: from the first question): a
    summary of messages past it no longer stands for the messages shown, and goes. The
    next reply that leaves messages out has them summarised again (conversations.summaries)."""
    until = conversation.summary_until
    if until is None or (point is not None and until <= point):
        return
    conversation.summary, conversation.summary_until = "", None
    Conversation.objects.filter(pk=conversation.pk).update(summary="", summary_until=None)


def branch_leave(*, conversation: Conversation, point: int | None) -> None:
    """Set aside the branch shown after message `point` (all of it, for None), for a new
    branch from there. The path shown reads in id order, so what follows `point` on it
    is what has a larger id."""
    shown = conversation.messages.filter(superseded=False)
    if point is not None:
        shown = shown.filter(id__gt=point)
    shown.update(superseded=True, superseded_at=timezone.now())
    summary_forget_after(conversation=conversation, point=point)


@transaction.atomic
def branch_select(*, owner: User, conversation_id: object, message_id: int) -> Message:
    """Show the branch through the owner's message `message_id`, down to where it was left.

    Raises Conversation.DoesNotExist or Message.DoesNotExist for a conversation or message
    not the owner's, and ChatError while a reply is being written."""
    conversation = conversation_get(owner=owner, conversation_id=conversation_id)
    chosen = conversation.messages.get(pk=message_id)
    if message_streaming(conversation=conversation) is not None:
        raise ChatError(
            _("A reply is still being written. Wait for it, or stop it first."), code="reply_in_progress"
        )
    rows = list(conversation.messages.values_list("id", "parent_id", "superseded_at", "superseded"))
    order = _path_through((row[:3] for row in rows), chosen.pk)
    path = set(order)
    shown = {pk for pk, _parent, _at, superseded in rows if not superseded}
    if shown == path:
        return chosen
    if hidden := shown - path:
        Message.objects.filter(pk__in=hidden).update(superseded=True, superseded_at=timezone.now())
    if revealed := path - shown:
        Message.objects.filter(pk__in=revealed).update(superseded=False)
    # Where the two paths part: the last message of the one shown that the new one keeps.
    kept = 0
    while kept < len(order) and order[kept] in shown:
        kept += 1
    summary_forget_after(conversation=conversation, point=order[kept - 1] if kept else None)
    return chosen
