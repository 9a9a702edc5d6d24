"""Several of the owner's conversations at once, as the sidebar's "Select" mode asks:
archive them, delete them, or move them into a folder (or out of one).

All or nothing: an id that is not one of the owner's conversations, or a folder that is
not the owner's, refuses the whole request before anything changes."""

import uuid
from contextlib import suppress
from enum import StrEnum

from django.utils import timezone
from django.utils.translation import gettext as _

from conversations import services
from conversations.errors import ChatError
from conversations.folders import folder_assign, folder_get
from conversations.models import Conversation, Folder
from conversations.owners import User, owner_id

# More than a sidebar shows in one go (a page, the pinned, an open folder) is not a
# selection a person made.
BULK_MAX = 500


class BulkAction(StrEnum):
    ARCHIVE = "archive"
    DELETE = "delete"
    MOVE = "move"


def bulk_action_clean(action: object) -> BulkAction:
    if not isinstance(action, str) or action not in {a.value for a in BulkAction}:
        raise ChatError(_("Choose archive, delete or move."), code="invalid_action")
    return BulkAction(action)


def conversations_owned(*, owner: User, ids: object) -> list[uuid.UUID]:
    """The ids, each one of the owner's conversations, in the order given and once each.
    Raises Conversation.DoesNotExist when any is not (callers answer 404: whose it is, or
    whether it exists, is not said)."""
    if isinstance(ids, str):  # one box ticked
        ids = [ids] if ids else []
    if not isinstance(ids, list) or not ids:
        raise ChatError(_("Select at least one conversation."), code="nothing_selected")
    if len(ids) > BULK_MAX:
        raise ChatError(
            _("At most %(count)s conversations can be changed at once.") % {"count": BULK_MAX},
            code="too_many_selected",
        )
    if not all(isinstance(i, str) for i in ids):
        raise Conversation.DoesNotExist("Not a conversation id.")
    try:
        wanted = list(dict.fromkeys(uuid.UUID(i) for i in ids))
    except ValueError:
        raise Conversation.DoesNotExist("Not a conversation id.") from None
    found = Conversation.objects.filter(owner_id=owner_id(owner), pk__in=wanted).count()
    if found != len(wanted):
        raise Conversation.DoesNotExist("Not all of them are the owner's conversations.")
    return wanted


def conversations_bulk_change(
    *, owner: User, ids: object, action: object, folder_id: object = None
) -> list[str]:
    """Archive, delete or move (into the folder `folder_id`, or none when it is empty) the
    owner's conversations `ids`. Returns the ids of the conversations deleted.

    A folder named is the owner's whatever the action: a request naming someone else's
    is refused (Folder.DoesNotExist), not half-read."""
    chosen = bulk_action_clean(action)
    folder: Folder | None = None
    if folder_id not in (None, ""):
        folder = folder_get(owner=owner, folder_id=folder_id)
    pks = conversations_owned(owner=owner, ids=ids)
    mine = Conversation.objects.filter(owner_id=owner_id(owner), pk__in=pks)
    if chosen is BulkAction.ARCHIVE:
        # As an archive from the menu: unpinned, and kept in its place in time.
        mine.filter(archived_at__isnull=True).update(archived_at=timezone.now(), pinned_at=None)
    elif chosen is BulkAction.MOVE:
        folder_assign(mine, folder)
    if chosen is not BulkAction.DELETE:
        return []
    for pk in pks:
        # One at a time, as from the menu: a reply still being written in it stops. One
        # deleted meanwhile (from another tab) is gone already.
        with suppress(Conversation.DoesNotExist):
            services.conversation_delete(owner=owner, conversation_id=pk)
    return [str(pk) for pk in pks]
