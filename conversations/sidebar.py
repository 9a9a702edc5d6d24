"""The sidebar's list: pinned conversations first, then the folders, then the rest grouped
by when they were last written in (Today, Yesterday, Previous 7 days, Previous 30 days,
then by month), a page at a time; archived ones apart. A conversation shows in one
place only: pinned on top, else in its folder, else under its date. Every read is scoped
to its owner."""

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from conversations.folders import folder_list
from conversations.models import Conversation, Folder

PAGE_SIZE = 50
# Listed whole (the pinned above the pages, the archived when opened), the latest first;
# a user with more sees the latest of them.
PINNED_LIMIT = 100
ARCHIVED_LIMIT = 200
FOLDER_LIMIT = 200

Owner = AbstractBaseUser | AnonymousUser


@dataclass(frozen=True)
class Group:
    key: str  # "pinned", "today", "yesterday", "week", "month" or "2026-11"
    label: str
    conversations: list[Conversation]


@dataclass(frozen=True)
class Cursor:
    """Where a page of the list ends: the last listed conversation's time and id, as they
    were then (the conversation may have been written in, renamed or deleted since)."""

    updated_at: datetime
    id: uuid.UUID

    @classmethod
    def after(cls, conversation: Conversation) -> "Cursor":
        return cls(updated_at=conversation.updated_at, id=conversation.pk)

    @property
    def query(self) -> str:
        """The cursor as the next page's query string."""
        return urlencode({"before_at": self.updated_at.isoformat(), "before_id": str(self.id)})

    @classmethod
    def parse(cls, at: str, pk: str) -> "Cursor":
        """From a request's `before_at` (ISO 8601 with its offset) and `before_id`, or ValueError."""
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError("before_at needs its UTC offset")
        return cls(updated_at=moment, id=uuid.UUID(pk))


@dataclass(frozen=True)
class SidebarPage:
    groups: list[Group]
    # Where the next page starts, or None at the end.
    next_before: Cursor | None
    has_archived: bool = False
    # The owner's folders (on the first page only), each with its `size`.
    folders: tuple[Folder, ...] = ()


# What an item shows: its title, role (in either language) and state.
ITEM_FIELDS = (
    "id",
    "title",
    "updated_at",
    "pinned_at",
    "archived_at",
    "role__name",
    "role__name_zh_hans",
    "role__slug",
)


def _listed(owner: Owner) -> QuerySet[Conversation]:
    return (
        Conversation.objects.filter(owner_id=owner.pk, archived_at__isnull=True)
        .select_related("role")
        .only(*ITEM_FIELDS)
    )


def date_group(moment: datetime, today: date) -> tuple[str, str]:
    """The key and label of the group a conversation last written at `moment` is in, seen
    on `today` (both in the active time zone)."""
    day = timezone.localtime(moment).date()
    days = (today - day).days
    if days <= 0:
        return "today", _("Today")
    if days == 1:
        return "yesterday", _("Yesterday")
    if days <= 7:
        return "week", _("Previous 7 days")
    if days <= 30:
        return "month", _("Previous 30 days")
    return day.strftime("%Y-%m"), date_format(day, "YEAR_MONTH_FORMAT")


def _grouped(conversations: list[Conversation], today: date) -> list[Group]:
    groups: list[Group] = []
    for conversation in conversations:
        key, label = date_group(conversation.updated_at, today)
        if not groups or groups[-1].key != key:
            groups.append(Group(key=key, label=label, conversations=[]))
        groups[-1].conversations.append(conversation)
    return groups


def sidebar_page(
    *, owner: Owner, before: Cursor | None = None, limit: int = PAGE_SIZE, today: date | None = None
) -> SidebarPage:
    """A page of the owner's unarchived, unpinned conversations in no folder, newest first
    and grouped by date; the first page (no `before`) starts with the pinned ones, has the
    folders, and always has a
    "today" group, empty or not. A page after
    `before` leaves out the heading of the group `before` is in: it is already shown."""
    today = today or timezone.localdate()
    unpinned = (
        _listed(owner).filter(pinned_at__isnull=True, folder__isnull=True).order_by("-updated_at", "-id")
    )
    if before is not None:
        unpinned = unpinned.filter(
            Q(updated_at__lt=before.updated_at) | Q(updated_at=before.updated_at, id__lt=before.id)
        )
    page = list(unpinned[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    groups = _grouped(page, today)
    if before is None:
        # Today's heading is always there (hidden while empty): a new conversation goes under it.
        if not groups or groups[0].key != "today":
            groups.insert(0, Group(key="today", label=_("Today"), conversations=[]))
        pinned = list(_listed(owner).filter(pinned_at__isnull=False).order_by("-pinned_at")[:PINNED_LIMIT])
        if pinned:
            groups.insert(0, Group(key="pinned", label=_("Pinned"), conversations=pinned))
    elif groups and groups[0].key == date_group(before.updated_at, today)[0]:
        groups[0] = Group(key=groups[0].key, label="", conversations=groups[0].conversations)
    return SidebarPage(
        groups=groups,
        next_before=Cursor.after(page[-1]) if more else None,
        has_archived=before is None
        and Conversation.objects.filter(owner_id=owner.pk, archived_at__isnull=False).exists(),
        folders=tuple(folder_list(owner=owner)) if before is None else (),
    )


def folder_items(*, owner: Owner, folder: Folder, limit: int = FOLDER_LIMIT) -> list[Conversation]:
    """What the sidebar lists in the owner's folder: its unarchived, unpinned conversations,
    newest first."""
    return list(
        _listed(owner).filter(folder=folder, pinned_at__isnull=True).order_by("-updated_at", "-id")[:limit]
    )


def archived_list(*, owner: Owner, limit: int = ARCHIVED_LIMIT) -> list[Conversation]:
    """The owner's archived conversations, the latest archived first."""
    return list(
        Conversation.objects.filter(owner_id=owner.pk, archived_at__isnull=False)
        .select_related("role")
        .only(*ITEM_FIELDS)
        .order_by("-archived_at")[:limit]
    )
