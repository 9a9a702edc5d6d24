"""A user's folders: named groups of conversations (ChatGPT's projects, LibreChat's
folders), each conversation in one folder or none. Only their owner sees them."""

from contextlib import suppress

from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Lower
from django.utils.translation import gettext as _

from conversations import services
from conversations.errors import ChatError
from conversations.models import FOLDER_NAME_MAX_CHARS, Conversation, Folder
from conversations.owners import User, owner_id
from conversations.selectors import conversation_get
from conversations.text import text_unstorable

FOLDERS_PER_USER = 200


def folder_list(*, owner: User) -> QuerySet[Folder]:
    """The owner's folders by name, each with `size`: how many conversations the sidebar
    lists in it (a pinned one is listed on top instead, an archived one with the archived)."""
    listed = Q(conversations__archived_at__isnull=True, conversations__pinned_at__isnull=True)
    return (
        Folder.objects.filter(owner_id=owner.pk)
        .annotate(size=Count("conversations", filter=listed))
        .order_by(Lower("name"), "pk")
    )


def folder_get(*, owner: User, folder_id: object) -> Folder:
    """The owner's folder. Raises Folder.DoesNotExist for anyone else's (callers 404)."""
    try:
        pk = int(str(folder_id))
    except ValueError:
        raise Folder.DoesNotExist("Not a folder id.") from None
    return Folder.objects.get(owner_id=owner.pk, pk=pk)


def folder_name_clean(name: object) -> str:
    if not isinstance(name, str):
        raise ChatError(_("A folder's name must be text."), code="invalid_folder")
    name = " ".join(name.split())
    if not name:
        raise ChatError(_("A folder needs a name."), code="invalid_folder")
    if len(name) > FOLDER_NAME_MAX_CHARS:
        raise ChatError(
            _("A folder's name can be at most %(count)s characters.") % {"count": FOLDER_NAME_MAX_CHARS},
            code="invalid_folder",
        )
    if text_unstorable(name):
        raise ChatError(_("This name contains characters that cannot be saved."), code="invalid_folder")
    return name


def _taken(name: str) -> ChatError:
    return ChatError(_("You already have a folder named “%(name)s”.") % {"name": name}, code="folder_exists")


def folder_create(*, owner: User, name: object) -> Folder:
    name = folder_name_clean(name)
    pk = owner_id(owner)
    if Folder.objects.filter(owner_id=pk).count() >= FOLDERS_PER_USER:
        raise ChatError(
            _("You can have at most %(count)s folders.") % {"count": FOLDERS_PER_USER},
            code="too_many_folders",
        )
    try:
        # The unique constraint decides, also between two tabs creating the same name at once.
        with transaction.atomic():
            return Folder.objects.create(owner_id=pk, name=name)
    except IntegrityError:
        raise _taken(name) from None


def folder_rename(*, owner: User, folder_id: object, name: object) -> Folder:
    folder = folder_get(owner=owner, folder_id=folder_id)
    folder.name = folder_name_clean(name)
    try:
        with transaction.atomic():
            folder.save(update_fields=["name"])
    except IntegrityError:
        raise _taken(folder.name) from None
    return folder


def folder_delete(*, owner: User, folder_id: object, with_conversations: bool) -> list[str]:
    """Delete the owner's folder. Its conversations stay (in no folder), or the ones it
    lists go with it when `with_conversations`, each as a delete from its menu would (a
    reply being written stops). A pinned or archived one is not listed in the folder, so
    the user did not see it go: it stays. Returns the ids of the conversations deleted."""
    folder = folder_get(owner=owner, folder_id=folder_id)
    deleted: list[str] = []
    if with_conversations:
        listed = folder.conversations.filter(pinned_at__isnull=True, archived_at__isnull=True)
        for pk in listed.values_list("pk", flat=True):
            # One deleted meanwhile (from another tab) is gone already.
            with suppress(Conversation.DoesNotExist):
                services.conversation_delete(owner=owner, conversation_id=pk)
                deleted.append(str(pk))
    folder.delete()
    return deleted


def folder_assign(conversations: QuerySet[Conversation], folder: Folder | None) -> None:
    """Put the conversations into the folder (or none). A folder deleted meanwhile is not
    found (Folder.DoesNotExist), as if it had been gone before."""
    try:
        with transaction.atomic():
            conversations.update(folder=folder)
    except IntegrityError:  # the foreign key: the folder went between the read and this
        raise Folder.DoesNotExist("The folder was deleted.") from None


def conversation_move(
    *, owner: User, conversation_id: object, folder_id: object = None, new_folder: object = ""
) -> Conversation:
    """Put the owner's conversation into one of the owner's folders, a new one named
    `new_folder`, or (neither given) into none. It keeps its place in time: moving it is
    not writing in it. A folder named is the owner's, even when a new one is asked for: a
    request naming someone else's is refused, not half-read."""
    conversation = conversation_get(owner=owner, conversation_id=conversation_id)
    folder: Folder | None = None
    if folder_id not in (None, ""):
        folder = folder_get(owner=owner, folder_id=folder_id)
    if not isinstance(new_folder, str):
        raise ChatError(_("A folder's name must be text."), code="invalid_folder")
    if new_folder.strip():
        folder = folder_create(owner=owner, name=new_folder)
    folder_assign(Conversation.objects.filter(pk=conversation.pk), folder)
    conversation.folder = folder
    return conversation
