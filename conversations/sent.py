"""What was sent: the message list a reply's request upstream held, as the reply recorded
it when it started (Message.sent). The system message is the role's prompt with the
user's instructions and note; only staff see its text."""

from dataclasses import dataclass

from conversations.models import Message
from conversations.owners import User, owner_id


@dataclass(frozen=True)
class Sent:
    system: str
    messages: list[Message]
    images: bool  # the messages' images went too (the model reads them)
    cut: bool  # earlier messages were left out: they did not fit the context window
    summary: str  # what the model was sent of the messages before, in their place


def reply_sent_get(*, owner: User, reply_id: int) -> Sent | None:
    """What the owner's reply was written from; None for a reply from before it was kept.
    Raises Message.DoesNotExist for anyone else's reply."""
    if not 0 < reply_id < 2**63:  # the route's <int:> takes digits of any length
        raise Message.DoesNotExist("Not a reply id.")
    reply = Message.objects.only("pk", "conversation_id", "sent").get(
        pk=reply_id, author=Message.Author.ASSISTANT, conversation__owner_id=owner_id(owner)
    )
    recorded = reply.sent
    if not isinstance(recorded, dict):
        return None
    ids = [pk for pk in recorded.get("messages", []) if isinstance(pk, int)]
    # Only the reply's own conversation's: the ids were recorded from it.
    found = reply.conversation.messages.filter(pk__in=ids).prefetch_related("attachments").in_bulk()
    return Sent(
        system=str(recorded.get("system", "")),
        messages=[found[pk] for pk in ids if pk in found],
        images=bool(recorded.get("images")),
        cut=bool(recorded.get("cut")),
        summary=str(recorded.get("summary") or ""),
    )
