import pytest

from conversations.bulk import BULK_MAX, conversations_bulk_change
from conversations.errors import ChatError
from conversations.folders import folder_create
from conversations.models import Conversation, Folder, Message
from conversations.services import conversation_create, conversation_pin

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("builtin_roles")]


def ids(*conversations: Conversation) -> list[str]:
    return [str(c.pk) for c in conversations]


def test_archive_puts_each_selected_conversation_away_unpinned_and_in_its_place_in_time(alice):
    first = conversation_create(owner=alice, title="First")
    second = conversation_pin(
        owner=alice, conversation_id=conversation_create(owner=alice, title="Second").pk, pinned=True
    )
    left = conversation_create(owner=alice, title="Left")
    written = {c.pk: c.updated_at for c in Conversation.objects.all()}

    deleted = conversations_bulk_change(owner=alice, ids=ids(first, second), action="archive")

    assert deleted == []
    rows = {c.pk: c for c in Conversation.objects.all()}
    assert rows[first.pk].archived_at is not None
    assert rows[second.pk].archived_at is not None
    assert rows[second.pk].pinned_at is None
    assert rows[left.pk].archived_at is None
    assert {pk: c.updated_at for pk, c in rows.items()} == written


def test_delete_removes_the_selected_conversations_and_their_messages(alice):
    gone = conversation_create(owner=alice, title="Gone")
    Message.objects.create(conversation=gone, author=Message.Author.USER, content="hi")
    also_gone = conversation_create(owner=alice, title="Also gone")
    kept = conversation_create(owner=alice, title="Kept")

    deleted = conversations_bulk_change(owner=alice, ids=ids(gone, also_gone), action="delete")

    assert sorted(deleted) == sorted(ids(gone, also_gone))
    assert list(Conversation.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not Message.objects.exists()


def test_move_puts_the_selected_conversations_into_the_folder_and_out_again(alice):
    folder = folder_create(owner=alice, name="Work")
    one = conversation_create(owner=alice, title="One")
    two = conversation_create(owner=alice, title="Two")

    conversations_bulk_change(owner=alice, ids=ids(one, two), action="move", folder_id=str(folder.pk))
    assert set(folder.conversations.values_list("pk", flat=True)) == {one.pk, two.pk}

    conversations_bulk_change(owner=alice, ids=ids(one), action="move", folder_id="")
    assert list(folder.conversations.values_list("pk", flat=True)) == [two.pk]


def test_one_conversation_of_someone_else_refuses_all_of_them(alice, bob):
    mine = conversation_create(owner=alice, title="Mine")
    theirs = conversation_create(owner=bob, title="Theirs")

    with pytest.raises(Conversation.DoesNotExist):
        conversations_bulk_change(owner=alice, ids=ids(mine, theirs), action="delete")

    assert Conversation.objects.count() == 2


@pytest.mark.parametrize("action", ["move", "archive", "delete"])
def test_a_folder_of_someone_else_refuses_any_action(alice, bob, action):
    mine = conversation_create(owner=alice, title="Mine")
    theirs = folder_create(owner=bob, name="Bob's")

    with pytest.raises(Folder.DoesNotExist):
        conversations_bulk_change(owner=alice, ids=ids(mine), action=action, folder_id=str(theirs.pk))

    kept = Conversation.objects.get(pk=mine.pk)
    assert (kept.folder_id, kept.archived_at) == (None, None)


@pytest.mark.parametrize("bad", [["not-a-uuid"], [7], [None]])
def test_an_id_that_is_not_one_is_not_found(alice, bad):
    mine = conversation_create(owner=alice, title="Mine")

    with pytest.raises(Conversation.DoesNotExist):
        conversations_bulk_change(owner=alice, ids=[str(mine.pk), *bad], action="archive")

    assert Conversation.objects.get(pk=mine.pk).archived_at is None


@pytest.mark.parametrize("selected", [None, [], "", 7])
def test_nothing_selected_is_refused_saying_so(alice, selected):
    with pytest.raises(ChatError, match="Select at least one"):
        conversations_bulk_change(owner=alice, ids=selected, action="archive")


def test_more_than_the_most_at_once_is_refused(alice):
    with pytest.raises(ChatError, match="At most"):
        conversations_bulk_change(owner=alice, ids=["x"] * (BULK_MAX + 1), action="archive")


@pytest.mark.parametrize("action", [None, "", "pin", ["archive"]])
def test_an_unknown_action_changes_nothing(alice, action):
    mine = conversation_create(owner=alice, title="Mine")

    with pytest.raises(ChatError, match="Choose archive, delete or move"):
        conversations_bulk_change(owner=alice, ids=ids(mine), action=action)

    assert Conversation.objects.get(pk=mine.pk).archived_at is None
