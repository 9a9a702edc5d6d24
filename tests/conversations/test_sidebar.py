import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from django.http import QueryDict
from django.utils import timezone, translation

from conversations.models import Conversation
from conversations.services import conversation_archive, conversation_create, conversation_pin
from conversations.sidebar import Cursor, archived_list, date_group, sidebar_page

pytestmark = pytest.mark.django_db

TODAY = date(2026, 12, 3)


def written(conversation: Conversation, days_ago: float) -> Conversation:
    """The conversation as if last written in `days_ago` days before noon UTC on TODAY."""
    moment = datetime(2026, 12, 3, 12, tzinfo=UTC) - timedelta(days=days_ago)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=moment)
    conversation.updated_at = moment
    return conversation


def listed(page) -> list[tuple[str, str, list[str]]]:
    return [(g.key, g.label, [c.title for c in g.conversations]) for g in page.groups]


@pytest.mark.parametrize(
    ("days_ago", "key"),
    [(0, "today"), (1, "yesterday"), (2, "week"), (7, "week"), (8, "month"), (30, "month"), (31, "2026-11")],
)
def test_a_conversation_is_grouped_by_the_day_it_was_last_written(days_ago, key):
    moment = datetime(2026, 12, 3, 12, tzinfo=UTC) - timedelta(days=days_ago)

    assert date_group(moment, TODAY)[0] == key


def test_older_groups_are_named_by_month_in_the_users_language():
    moment = datetime(2026, 10, 9, 12, tzinfo=UTC)

    with translation.override("zh-hans"):
        assert date_group(moment, TODAY) == ("2026-10", "2026年10月")
    with translation.override("en"):
        assert date_group(moment, TODAY) == ("2026-10", "October 2026")


def test_the_day_is_the_one_of_the_active_time_zone():
    # 23:30 UTC on 2 December is already 3 December in Shanghai.
    moment = datetime(2026, 12, 2, 23, 30, tzinfo=UTC)

    assert date_group(moment, TODAY)[0] == "yesterday"
    with timezone.override("Asia/Shanghai"):
        assert date_group(moment, TODAY)[0] == "today"


def test_the_list_is_pinned_first_then_by_date_newest_first(alice, bob, builtin_roles):
    written(conversation_create(owner=alice, title="last month"), 40)
    written(conversation_create(owner=alice, title="yesterday"), 1)
    written(conversation_create(owner=alice, title="this morning"), 0.1)
    written(conversation_create(owner=alice, title="just now"), 0)
    old_pin = written(conversation_create(owner=alice, title="old but pinned"), 100)
    conversation_pin(owner=alice, conversation_id=old_pin.pk, pinned=True)
    conversation_create(owner=bob, title="bob's")

    page = sidebar_page(owner=alice, today=TODAY)

    assert listed(page) == [
        ("pinned", "Pinned", ["old but pinned"]),
        ("today", "Today", ["just now", "this morning"]),
        ("yesterday", "Yesterday", ["yesterday"]),
        ("2026-10", "October 2026", ["last month"]),
    ]
    assert page.next_before is None


def test_the_first_page_has_todays_group_even_when_it_is_empty(alice, builtin_roles):
    written(conversation_create(owner=alice, title="last week"), 3)

    page = sidebar_page(owner=alice, today=TODAY)

    assert listed(page) == [("today", "Today", []), ("week", "Previous 7 days", ["last week"])]


def test_the_latest_pin_is_on_top(alice, builtin_roles):
    first = conversation_create(owner=alice, title="pinned first")
    second = conversation_create(owner=alice, title="pinned second")
    conversation_pin(owner=alice, conversation_id=first.pk, pinned=True)
    conversation_pin(owner=alice, conversation_id=second.pk, pinned=True)

    assert listed(sidebar_page(owner=alice, today=TODAY))[0] == (
        "pinned",
        "Pinned",
        ["pinned second", "pinned first"],
    )


def test_pages_go_on_where_the_last_one_ended_without_repeating_its_heading(alice, builtin_roles):
    for n in range(5):
        written(conversation_create(owner=alice, title=f"today {n}"), n / 100)
    for n in range(3):
        written(conversation_create(owner=alice, title=f"yesterday {n}"), 1 + n / 100)

    first = sidebar_page(owner=alice, limit=3, today=TODAY)
    second = sidebar_page(owner=alice, before=first.next_before, limit=3, today=TODAY)
    third = sidebar_page(owner=alice, before=second.next_before, limit=3, today=TODAY)

    assert listed(first) == [("today", "Today", ["today 0", "today 1", "today 2"])]
    assert listed(second) == [
        ("today", "", ["today 3", "today 4"]),
        ("yesterday", "Yesterday", ["yesterday 0"]),
    ]
    assert listed(third) == [("yesterday", "", ["yesterday 1", "yesterday 2"])]
    assert third.next_before is None


def test_conversations_written_at_the_same_moment_are_each_listed_once(alice, builtin_roles):
    made = [written(conversation_create(owner=alice, title=f"c{n}"), 0) for n in range(5)]

    first = sidebar_page(owner=alice, limit=2, today=TODAY)
    rest = [first]
    while rest[-1].next_before is not None:
        rest.append(sidebar_page(owner=alice, before=rest[-1].next_before, limit=2, today=TODAY))

    titles = [c.title for page in rest for g in page.groups for c in g.conversations]
    assert sorted(titles) == sorted(c.title for c in made)


def test_a_conversation_written_in_after_its_page_was_drawn_is_not_listed_again(alice, builtin_roles):
    made = [written(conversation_create(owner=alice, title=f"c{n}"), n) for n in range(4)]
    first = sidebar_page(owner=alice, limit=2, today=TODAY)
    # The page's last conversation moves to now (written in, or renamed) before the next page loads.
    written(made[1], -0.01)

    second = sidebar_page(owner=alice, before=first.next_before, limit=2, today=TODAY)

    assert [c.title for g in second.groups for c in g.conversations] == ["c2", "c3"]


def test_a_page_after_a_cursor_holds_only_the_owners_conversations(alice, bob, builtin_roles):
    written(conversation_create(owner=alice, title="alice's"), 2)
    bobs = written(conversation_create(owner=bob, title="bob's"), 1)

    page = sidebar_page(owner=alice, before=Cursor.after(bobs), today=TODAY)

    assert [c.title for g in page.groups for c in g.conversations] == ["alice's"]


@pytest.mark.parametrize(
    ("at", "pk"),
    [
        ("", ""),
        ("2026-12-03T12:00:00", "6f1c0a52-7d3e-4d59-9d84-7d0c7d1e1a00"),  # no offset
        ("yesterday", "6f1c0a52-7d3e-4d59-9d84-7d0c7d1e1a00"),
        ("2026-12-03T12:00:00+00:00", "not-a-uuid"),
    ],
)
def test_a_malformed_cursor_is_refused(at, pk):
    with pytest.raises(ValueError):
        Cursor.parse(at, pk)


def test_a_cursor_reads_back_from_its_query():
    cursor = Cursor(
        updated_at=datetime(2026, 12, 3, 12, 0, 0, 123456, tzinfo=UTC),
        id=uuid.UUID("6f1c0a52-7d3e-4d59-9d84-7d0c7d1e1a00"),
    )
    query = QueryDict(cursor.query)

    assert Cursor.parse(query["before_at"], query["before_id"]) == cursor


def test_an_archived_conversation_leaves_the_list_for_the_archived_one(alice, builtin_roles):
    kept = conversation_create(owner=alice, title="kept")
    gone = conversation_create(owner=alice, title="archived")

    conversation_archive(owner=alice, conversation_id=gone.pk, archived=True)

    page = sidebar_page(owner=alice, today=TODAY)
    assert [c.pk for g in page.groups for c in g.conversations] == [kept.pk]
    assert page.has_archived
    assert [c.pk for c in archived_list(owner=alice)] == [gone.pk]


def test_a_restored_conversation_is_back_in_its_place(alice, builtin_roles):
    conversation = written(conversation_create(owner=alice, title="restored"), 1)
    conversation_archive(owner=alice, conversation_id=conversation.pk, archived=True)

    conversation_archive(owner=alice, conversation_id=conversation.pk, archived=False)

    page = sidebar_page(owner=alice, today=TODAY)
    assert listed(page)[1] == ("yesterday", "Yesterday", ["restored"])
    assert not page.has_archived


@pytest.mark.parametrize("change", [conversation_pin, conversation_archive])
def test_pinning_and_archiving_keep_the_conversations_time(alice, builtin_roles, change):
    conversation = written(conversation_create(owner=alice, title="t"), 3)
    flag = "pinned" if change is conversation_pin else "archived"

    change(owner=alice, conversation_id=conversation.pk, **{flag: True})

    conversation.refresh_from_db()
    assert conversation.updated_at == datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert getattr(conversation, f"{flag}_at") is not None


def test_archiving_unpins(alice, builtin_roles):
    conversation = conversation_create(owner=alice, title="t")
    conversation_pin(owner=alice, conversation_id=conversation.pk, pinned=True)

    conversation_archive(owner=alice, conversation_id=conversation.pk, archived=True)
    conversation_archive(owner=alice, conversation_id=conversation.pk, archived=False)

    conversation.refresh_from_db()
    assert conversation.pinned_at is None
    assert listed(sidebar_page(owner=alice, today=timezone.localdate()))[0][0] == "today"


def test_unpinning_puts_it_back_under_its_date(alice, builtin_roles):
    conversation = written(conversation_create(owner=alice, title="t"), 3)
    conversation_pin(owner=alice, conversation_id=conversation.pk, pinned=True)

    conversation_pin(owner=alice, conversation_id=conversation.pk, pinned=False)

    assert listed(sidebar_page(owner=alice, today=TODAY)) == [
        ("today", "Today", []),
        ("week", "Previous 7 days", ["t"]),
    ]


@pytest.mark.parametrize("change", [conversation_pin, conversation_archive])
def test_nobody_pins_or_archives_someone_elses_conversation(alice, bob, builtin_roles, change):
    bobs = conversation_create(owner=bob, title="bob's")
    flag = "pinned" if change is conversation_pin else "archived"

    with pytest.raises(Conversation.DoesNotExist):
        change(owner=alice, conversation_id=bobs.pk, **{flag: True})

    bobs.refresh_from_db()
    assert bobs.pinned_at is None and bobs.archived_at is None
