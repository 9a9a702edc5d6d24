"""Sharing a conversation: a read-only copy at an unguessable URL, and continuing one.

The copy holds the conversation's title, its messages as they stand (not the earlier
versions, not a reply still being written, not its thinking, not its images) and, only
if its owner chooses, the owner's name. Never the system prompt or the custom
instructions: they are the owner's, and the role is named by its slug alone.
"""

import secrets
import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from conversations.copies import FINISHED_STATUSES, IMAGE_LEFT_OUT, Turn, conversation_from_turns
from conversations.errors import ChatError
from conversations.models import Conversation, Message
from conversations.owners import User, owner_id
from conversations.selectors import conversation_get, message_list
from sharing import throttle
from sharing.models import SharedLink
from sharing.selectors import share_get


def _snapshot(conversation: Conversation) -> list[dict[str, Any]]:
    shared: list[dict[str, Any]] = []
    for message in message_list(conversation=conversation):
        if message.author == Message.Author.USER:
            images = len(message.attachments.all())  # prefetched by message_list
            if message.content or images:
                shared.append({"author": "user", "content": message.content, "images": images})
        elif message.status in FINISHED_STATUSES and message.content:
            shared.append({"author": "assistant", "content": message.content, "status": message.status})
    return shared


def share_author_name(owner: User) -> str:
    """What the page calls the owner who chose to be named: their full name, else their
    username (the share page says which before they choose)."""
    if not isinstance(owner, AbstractBaseUser):
        return ""
    full = owner.get_full_name() if hasattr(owner, "get_full_name") else ""
    return (full or owner.get_username())[:150]


def share_publish(*, owner: User, conversation_id: object, show_name: bool) -> tuple[SharedLink, bool]:
    """Share the owner's conversation as it is now: a new link, or (shared before) the copy
    at the same URL updated; True when the link is new. Raises Conversation.DoesNotExist
    for anyone else's, and ChatError when there is nothing to share yet."""
    conversation = conversation_get(owner=owner, conversation_id=conversation_id)
    messages = _snapshot(conversation)
    if not messages:
        raise ChatError(_("There is nothing to share yet: send a message first."), code="nothing_to_share")
    fields = {
        "title": conversation.title,
        "role_slug": conversation.role.slug,
        "messages": messages,
        "author_name": share_author_name(owner) if show_name else "",
        "updated_at": timezone.now(),
    }
    # One statement either way: a link deleted meanwhile in another tab is made again.
    return SharedLink.objects.update_or_create(
        conversation=conversation,
        defaults=fields,
        create_defaults={"token": secrets.token_urlsafe(24), **fields},
    )


def share_delete(*, owner: User, share_id: int) -> uuid.UUID:
    """End the owner's link: its URL answers 404 from now on. Returns its conversation's
    id; raises SharedLink.DoesNotExist for anyone else's."""
    link = SharedLink.objects.only("conversation_id").get(pk=share_id, conversation__owner_id=owner_id(owner))
    link.delete()
    return link.conversation_id


def _turns(link: SharedLink) -> list[Turn]:
    turns: list[Turn] = []
    for shared in link.messages:
        if shared.get("author") == "user":
            # The images stayed with their owner: the copy says one was there.
            turns.append(Turn(shared.get("content", "") or str(IMAGE_LEFT_OUT), ""))
        elif turns and not turns[-1].answer:
            status = shared.get("status", Message.Status.COMPLETE)
            turns[-1] = Turn(turns[-1].question, shared.get("content", ""), status)
    return turns


def share_continue(*, viewer: User, token: object) -> Conversation:
    """A conversation of the viewer's own, holding the shared messages, to go on with.
    Raises SharedLink.DoesNotExist for a token that is not a link, and LimitExceeded past
    the viewer's SHARE_CONTINUE_PER_HOUR (sharing.throttle)."""
    link = share_get(token=token)
    user_id = owner_id(viewer)
    # Counted before the copy and given back if it fails, rather than counted once it has
    # succeeded: then parallel posts would all pass the check before any was counted, and
    # go past the limit by as many. This way at most the limit's worth are ever under way.
    throttle.continue_count(user_id=user_id)
    try:
        with transaction.atomic():
            return conversation_from_turns(
                owner=viewer, title=link.title, role_slug=link.role_slug, turns=_turns(link)
            )
    except BaseException:
        throttle.continue_give_back(user_id=user_id)
        raise
