"""Reading shared links: the public one by its token, and an owner's own."""

from django.db.models import QuerySet

from conversations.models import Conversation
from conversations.owners import User, owner_id
from sharing.models import SharedLink

# What a token looks like (secrets.token_urlsafe(24)); anything else is not looked up.
TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
TOKEN_MAX_CHARS = 64


def share_get(*, token: object) -> SharedLink:
    """The link with this token, for anyone who has it. Raises SharedLink.DoesNotExist
    for a token that is not (or no longer) one, whoever asks."""
    if not isinstance(token, str) or not 0 < len(token) <= TOKEN_MAX_CHARS or not set(token) <= TOKEN_CHARS:
        raise SharedLink.DoesNotExist
    # A deactivated account's links close with it.
    return SharedLink.objects.get(token=token, conversation__owner__is_active=True)


def share_list(*, owner: User) -> QuerySet[SharedLink]:
    """The owner's shared links, the most recently shared first."""
    return SharedLink.objects.filter(conversation__owner_id=owner_id(owner)).only(
        "id", "token", "title", "updated_at", "conversation_id"
    )


def share_get_for_conversation(*, conversation: Conversation) -> SharedLink | None:
    """The conversation's link, if it has one (the caller has checked who owns it)."""
    return SharedLink.objects.filter(conversation=conversation).first()
