import pytest

from conversations.errors import ChatError
from conversations.folders import (
    FOLDERS_PER_USER,
    conversation_move,
    folder_create,
    folder_delete,
    folder_get,
    folder_list,
    folder_rename,
)
from conversations.models import Conversation, Folder, Message
from conversations.services import conversation_archive, conversation_create, conversation_pin
from conversations.sidebar import folder_items, sidebar_page

pytestmark = pytest.mark.django_db


def test_a_folder_is_made_with_its_name_tidied(alice):
    folder = folder_create(owner=alice, name="  Work \n trips ")

    assert folder.name == "Work trips"
    assert list(folder_list(owner=alice)) == [folder]


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "a\x00b", 7])
def test_a_bad_name_is_refused(alice, name):
    with pytest.raises(ChatError):
        folder_create(owner=alice, name=name)

    assert not Folder.objects.exists()


def test_two_folders_of_one_user_cannot_share_a_name(alice, bob):
    folder_create(owner=alice, name="Work")
    folder_create(owner=bob, name="Work")

    with pytest.raises(ChatError, match="already have a folder"):
        folder_create(owner=alice, name="Work")

    assert Folder.objects.filter(owner=alice).count() == 1


def test_a_rename_to_a_name_taken_is_refused_and_keeps_the_old(alice):
    folder_create(owner=alice, name="Work")
    home = folder_create(owner=alice, name="Home")

    with pytest.raises(ChatError, match="already have a folder"):
        folder_rename(owner=alice, folder_id=home.pk, name="Work")

    assert Folder.objects.get(pk=home.pk).name == "Home"


def test_a_user_has_at_most_so_many_folders(alice):
    Folder.objects.bulk_create(Folder(owner=alice, name=f"F{i}") for i in range(FOLDERS_PER_USER))

    with pytest.raises(ChatError, match="at most"):
        folder_create(owner=alice, name="One more")


def test_nobody_else_gets_renames_or_deletes_a_folder(alice, bob):
    folder = folder_create(owner=alice, name="Alice's")

    with pytest.raises(Folder.DoesNotExist):
        folder_get(owner=bob, folder_id=folder.pk)
    with pytest.raises(Folder.DoesNotExist):
        folder_rename(owner=bob, folder_id=folder.pk, name="Bob's")
    with pytest.raises(Folder.DoesNotExist):
        folder_delete(owner=bob, folder_id=folder.pk, with_conversations=True)

    assert Folder.objects.get(pk=folder.pk).name == "Alice's"


def test_moving_a_conversation_keeps_its_place_in_time(alice, builtin_roles):
    conversation = conversation_create(owner=alice, title="Trip")
    before = Conversation.objects.get(pk=conversation.pk).updated_at
    folder = folder_create(owner=alice, name="Travel")

    conversation_move(owner=alice, conversation_id=conversation.pk, folder_id=folder.pk)

    moved = Conversation.objects.get(pk=conversation.pk)
    assert moved.folder_id == folder.pk
    assert moved.updated_at == before


def test_moving_into_a_new_folder_makes_it(alice, builtin_roles):
    conversation = conversation_create(owner=alice, title="Trip")

    moved = conversation_move(owner=alice, conversation_id=conversation.pk, new_folder="Travel")

    assert moved.folder is not None
    assert moved.folder.name == "Travel"
    assert Conversation.objects.get(pk=conversation.pk).folder_id == moved.folder.pk


def test_moving_with_no_folder_takes_it_out(alice, builtin_roles):
    folder = folder_create(owner=alice, name="Travel")
    conversation = conversation_create(owner=alice, title="Trip")
    conversation_move(owner=alice, conversation_id=conversation.pk, folder_id=folder.pk)

    conversation_move(owner=alice, conversation_id=conversation.pk, folder_id="")

    assert Conversation.objects.get(pk=conversation.pk).folder_id is None


def test_nobody_moves_into_anyone_elses_folder(alice, bob, builtin_roles):
    bobs = folder_create(owner=bob, name="Bob's")
    conversation = conversation_create(owner=alice, title="Alice's")

    with pytest.raises(Folder.DoesNotExist):
        conversation_move(owner=alice, conversation_id=conversation.pk, folder_id=bobs.pk)

    assert Conversation.objects.get(pk=conversation.pk).folder_id is None


def test_nobody_moves_anyone_elses_conversation(alice, bob, builtin_roles):
    conversation = conversation_create(owner=alice, title="Alice's")
    bobs = folder_create(owner=bob, name="Bob's")

    with pytest.raises(Conversation.DoesNotExist):
        conversation_move(owner=bob, conversation_id=conversation.pk, folder_id=bobs.pk)

    assert Conversation.objects.get(pk=conversation.pk).folder_id is None


def test_deleting_a_folder_can_keep_its_conversations(alice, builtin_roles):
    folder = folder_create(owner=alice, name="Travel")
    conversation = conversation_create(owner=alice, title="Trip")
    conversation_move(owner=alice, conversation_id=conversation.pk, folder_id=folder.pk)

    deleted = folder_delete(owner=alice, folder_id=folder.pk, with_conversations=False)

    assert deleted == []
    assert not Folder.objects.exists()
    assert Conversation.objects.get(pk=conversation.pk).folder_id is None


def test_deleting_a_folder_can_delete_its_conversations_and_no_other(alice, builtin_roles):
    folder = folder_create(owner=alice, name="Travel")
    inside = conversation_create(owner=alice, title="Trip")
    Message.objects.create(conversation=inside, author="user", content="Where to?", turn=1)
    outside = conversation_create(owner=alice, title="Other")
    conversation_move(owner=alice, conversation_id=inside.pk, folder_id=folder.pk)

    deleted = folder_delete(owner=alice, folder_id=folder.pk, with_conversations=True)

    assert deleted == [str(inside.pk)]
    assert list(Conversation.objects.values_list("pk", flat=True)) == [outside.pk]
    assert not Message.objects.exists()


def test_the_list_shows_a_conversation_in_its_folder_only(alice, builtin_roles):
    folder = folder_create(owner=alice, name="Travel")
    inside = conversation_create(owner=alice, title="Trip")
    outside = conversation_create(owner=alice, title="Other")
    conversation_move(owner=alice, conversation_id=inside.pk, folder_id=folder.pk)

    page = sidebar_page(owner=alice)

    listed = [c.pk for g in page.groups for c in g.conversations]
    assert listed == [outside.pk]
    assert [(f.name, f.size) for f in page.folders] == [("Travel", 1)]  # type: ignore[attr-defined]
    assert [c.pk for c in folder_items(owner=alice, folder=folder)] == [inside.pk]


def test_a_pinned_or_archived_conversation_is_listed_there_not_in_its_folder(alice, builtin_roles):
    folder = folder_create(owner=alice, name="Travel")
    pinned = conversation_create(owner=alice, title="Pinned trip")
    archived = conversation_create(owner=alice, title="Old trip")
    for conversation in (pinned, archived):
        conversation_move(owner=alice, conversation_id=conversation.pk, folder_id=folder.pk)
    conversation_pin(owner=alice, conversation_id=pinned.pk, pinned=True)
    conversation_archive(owner=alice, conversation_id=archived.pk, archived=True)

    page = sidebar_page(owner=alice)

    assert [c.pk for c in page.groups[0].conversations] == [pinned.pk]
    assert folder_items(owner=alice, folder=folder) == []
    assert page.folders[0].size == 0  # type: ignore[attr-defined]


def test_deleting_a_folder_with_its_conversations_keeps_the_ones_it_does_not_list(alice, builtin_roles):
    folder = folder_create(owner=alice, name="Travel")
    listed = conversation_create(owner=alice, title="Listed")
    pinned = conversation_create(owner=alice, title="Pinned")
    archived = conversation_create(owner=alice, title="Archived")
    for conversation in (listed, pinned, archived):
        conversation_move(owner=alice, conversation_id=conversation.pk, folder_id=folder.pk)
    conversation_pin(owner=alice, conversation_id=pinned.pk, pinned=True)
    conversation_archive(owner=alice, conversation_id=archived.pk, archived=True)

    deleted = folder_delete(owner=alice, folder_id=folder.pk, with_conversations=True)

    assert deleted == [str(listed.pk)]
    kept = Conversation.objects.order_by("title")
    assert [(c.title, c.folder_id) for c in kept] == [("Archived", None), ("Pinned", None)]


def test_a_new_folder_named_beside_someone_elses_is_refused(alice, bob, builtin_roles):
    theirs = folder_create(owner=bob, name="Bob's")
    mine = conversation_create(owner=alice, title="Mine")

    with pytest.raises(Folder.DoesNotExist):
        conversation_move(owner=alice, conversation_id=mine.pk, folder_id=theirs.pk, new_folder="Fresh")

    assert not Folder.objects.filter(owner=alice).exists()
    assert Conversation.objects.get(pk=mine.pk).folder_id is None


@pytest.mark.parametrize("new_folder", [None, 7, ["Work"]])
def test_a_new_folder_name_that_is_not_text_moves_nothing(alice, builtin_roles, new_folder):
    folder = folder_create(owner=alice, name="Work")
    mine = conversation_create(owner=alice, title="Mine")
    conversation_move(owner=alice, conversation_id=mine.pk, folder_id=folder.pk)

    with pytest.raises(ChatError):
        conversation_move(owner=alice, conversation_id=mine.pk, folder_id="", new_folder=new_folder)

    assert Conversation.objects.get(pk=mine.pk).folder_id == folder.pk
