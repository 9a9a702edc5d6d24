"""Importing conversations: what is made, once, with its dates; nothing from a bad file."""

import io
import json
import threading
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django_redis import get_redis_connection

from conversations import imports
from conversations.copies import conversation_from_turns
from conversations.export import as_zip
from conversations.imports import ImportRefused, conversations_import
from conversations.models import Conversation, Message
from conversations.selectors import conversation_list_for_export
from tests.conversations.imports_samples import chatgpt_conversation, chatgpt_file, chatsite_document
from tests.sharing.conftest import conversation_with_turns

pytestmark = pytest.mark.django_db


def test_a_chatgpt_export_becomes_the_owners_conversations_in_order(alice, builtin_roles):
    result = conversations_import(owner=alice, data=chatgpt_file())

    conversation = Conversation.objects.get(owner=alice)
    assert (result.created, result.skipped) == (1, 0)
    assert (conversation.title, conversation.role.slug) == ("Tides", "assistant")
    assert list(conversation.messages.order_by("id").values_list("author", "content", "turn")) == [
        ("user", "Why are there tides?", 1),
        ("assistant", "The **Moon** pulls the sea.", 1),
        ("user", "And the Sun?", 2),
        ("assistant", "It pulls too, less.", 2),
    ]
    replies = conversation.messages.filter(author="assistant").order_by("id")
    assert list(replies.values_list("reply_to__content", flat=True)) == [
        "Why are there tides?",
        "And the Sun?",
    ]


def test_an_imported_conversation_keeps_the_dates_it_was_written(alice, builtin_roles):
    conversations_import(owner=alice, data=chatgpt_file())

    conversation = Conversation.objects.get(owner=alice)
    assert conversation.created_at == datetime.fromtimestamp(1_700_000_000.5, tz=UTC)
    assert conversation.updated_at == datetime.fromtimestamp(1_700_000_900.5, tz=UTC)


def test_importing_the_same_file_twice_adds_each_conversation_once(alice, builtin_roles):
    conversations_import(owner=alice, data=chatgpt_file())
    data = chatgpt_file(chatgpt_conversation(), chatgpt_conversation("c0ffee-2", title="New one"))

    result = conversations_import(owner=alice, data=data)

    assert (result.created, result.skipped) == (1, 1)
    assert sorted(Conversation.objects.filter(owner=alice).values_list("title", flat=True)) == [
        "New one",
        "Tides",
    ]


def test_someone_elses_import_of_the_same_file_is_their_own(alice, bob, builtin_roles):
    conversations_import(owner=alice, data=chatgpt_file())

    result = conversations_import(owner=bob, data=chatgpt_file())

    assert result.created == 1
    assert Conversation.objects.filter(owner=bob).count() == 1


def test_a_chatsite_export_of_the_owners_own_conversations_adds_nothing(alice, builtin_roles):
    conversation_with_turns(alice, ("One?", "First."))
    exported = as_zip(conversation_list_for_export(owner=alice))

    result = conversations_import(owner=alice, data=exported)

    assert (result.created, result.skipped) == (0, 1)
    assert Conversation.objects.filter(owner=alice).count() == 1


def test_a_chatsite_export_moves_to_another_account_with_its_role(alice, bob, builtin_roles):
    conversation_with_turns(alice, ("One?", "First."), title="Counting")
    exported = as_zip(conversation_list_for_export(owner=alice))

    conversations_import(owner=bob, data=exported)

    copy = Conversation.objects.get(owner=bob)
    assert (copy.title, copy.role.slug) == ("Counting", "teacher")
    assert list(copy.messages.order_by("id").values_list("content", flat=True)) == ["One?", "First."]


def test_an_unknown_role_becomes_the_default_one(alice, builtin_roles):
    document = chatsite_document()
    document["role"] = "no-such-role"

    conversations_import(owner=alice, data=json.dumps(document).encode())

    assert Conversation.objects.get(owner=alice).role.slug == "assistant"


@pytest.mark.parametrize("batch", [1, 50])  # the first conversation saved before the failure, or not
def test_a_failure_midway_leaves_nothing_of_the_file(alice, builtin_roles, monkeypatch, batch):
    made: list[Conversation] = []

    def fail_on_the_second(**kwargs):
        if made:
            raise RuntimeError("the disk is full")
        made.append(conversation_from_turns(**kwargs))
        return made[-1]

    monkeypatch.setattr(imports, "BATCH", batch)
    monkeypatch.setattr(imports, "conversation_from_turns", fail_on_the_second)
    data = chatgpt_file(chatgpt_conversation(), chatgpt_conversation("c0ffee-2"))

    with pytest.raises(RuntimeError):
        conversations_import(owner=alice, data=data)

    assert len(made) == 1
    assert not Conversation.objects.exists() and not Message.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_import_saves_a_batch_at_a_time_so_other_writers_get_their_turn(alice, builtin_roles, monkeypatch):
    seen_from_elsewhere: list[int] = []

    def count_from_another_connection() -> None:
        try:
            seen_from_elsewhere.append(Conversation.objects.filter(owner=alice).count())
        finally:
            connections.close_all()

    def write(**kwargs):
        if kwargs["import_key"] == "chatgpt:c0ffee-2":  # the second batch, the first one done
            reader = threading.Thread(target=count_from_another_connection)
            reader.start()
            reader.join()
        return conversation_from_turns(**kwargs)

    monkeypatch.setattr(imports, "BATCH", 1)
    monkeypatch.setattr(imports, "conversation_from_turns", write)

    conversations_import(
        owner=alice, data=chatgpt_file(chatgpt_conversation(), chatgpt_conversation("c0ffee-2"))
    )

    assert seen_from_elsewhere == [1]  # one transaction for the file: 0
    assert Conversation.objects.filter(owner=alice).count() == 2


def test_a_second_import_while_one_runs_is_refused_and_the_first_goes_on(alice, builtin_roles, monkeypatch):
    # The second one, started while the first writes, would find the first one's batches
    # there (and skip them) just before the first one, failing, deleted them.
    refusals: list[str] = []

    def import_again_meanwhile(**kwargs):
        if not refusals:
            refusals.append("")
            try:
                conversations_import(owner=alice, data=chatgpt_file())
            except ImportRefused as refused:
                refusals[0] = refused.message
        return conversation_from_turns(**kwargs)

    monkeypatch.setattr(imports, "conversation_from_turns", import_again_meanwhile)

    result = conversations_import(owner=alice, data=chatgpt_file())

    assert refusals == ["Another import is running. Try again when it has finished."]
    assert result.created == 1
    assert Conversation.objects.filter(owner=alice).count() == 1


def test_a_long_import_renews_its_lock_after_each_batch(alice, builtin_roles, monkeypatch):
    monkeypatch.setattr(imports, "BATCH", 1)
    lock = get_redis_connection("default")
    key = f"chatsite:import:{alice.pk}"
    left_ms: list[int] = []

    def write(**kwargs):
        if kwargs["import_key"] == "chatgpt:c0ffee-1":
            assert lock.pexpire(key, 2000)  # nearly run out during the first batch
        else:
            left_ms.append(lock.pttl(key))  # after the first batch was saved
        return conversation_from_turns(**kwargs)

    monkeypatch.setattr(imports, "conversation_from_turns", write)
    data = chatgpt_file(chatgpt_conversation(), chatgpt_conversation("c0ffee-2"))

    assert conversations_import(owner=alice, data=data).created == 2
    assert left_ms and left_ms[0] > 2000  # held for LOCK_SECONDS again
    assert lock.exists(key) == 0  # and given up at the end


def test_an_import_that_failed_does_not_hold_back_the_next(alice, builtin_roles, monkeypatch):
    def fail(**kwargs):
        raise RuntimeError("the disk is full")

    with monkeypatch.context() as failing:
        failing.setattr(imports, "conversation_from_turns", fail)
        with pytest.raises(RuntimeError):
            conversations_import(owner=alice, data=chatgpt_file())

    assert conversations_import(owner=alice, data=chatgpt_file()).created == 1


def test_someone_elses_import_runs_alongside(alice, bob, builtin_roles, monkeypatch):
    theirs: list[int] = []

    def bob_imports_meanwhile(**kwargs):
        if kwargs["owner"] == alice and not theirs:
            theirs.append(conversations_import(owner=bob, data=chatgpt_file()).created)
        return conversation_from_turns(**kwargs)

    monkeypatch.setattr(imports, "conversation_from_turns", bob_imports_meanwhile)

    conversations_import(owner=alice, data=chatgpt_file())

    assert theirs == [1]


def test_with_redis_down_an_import_still_goes_ahead(alice, builtin_roles, own_redis):
    own_redis.stop()  # a real Redis, really gone: the lock guards against a rare race only

    result = conversations_import(owner=alice, data=chatgpt_file())

    assert result.created == 1


def test_a_conversation_twice_in_one_file_is_imported_once(alice, builtin_roles):
    result = conversations_import(
        owner=alice, data=chatgpt_file(chatgpt_conversation(), chatgpt_conversation())
    )

    assert (result.created, result.skipped) == (1, 1)
    assert Conversation.objects.count() == 1


def test_a_regenerated_reply_moves_with_an_export_as_its_current_version_only(alice, bob, builtin_roles):
    conversation = conversation_with_turns(alice, ("One?", "Second try."))
    question = conversation.messages.get(author="user")
    Message.objects.create(
        conversation=conversation,
        author="assistant",
        content="First try.",
        turn=1,
        reply_to=question,
        superseded=True,
    )

    conversations_import(owner=bob, data=as_zip(conversation_list_for_export(owner=alice)))

    copy = Conversation.objects.get(owner=bob)
    assert list(copy.messages.order_by("id").values_list("content", flat=True)) == ["One?", "Second try."]


def test_the_messages_of_an_import_are_dated_when_they_were_written(alice, builtin_roles):
    conversations_import(owner=alice, data=chatgpt_file())

    dates = set(Message.objects.values_list("created_at", flat=True))
    assert dates == {datetime.fromtimestamp(1_700_000_000.5, tz=UTC)}


def test_with_no_role_to_give_them_nothing_is_imported_and_the_reason_is_said(alice, db):
    with pytest.raises(ImportRefused) as refused:
        conversations_import(owner=alice, data=chatgpt_file())

    assert "No AI role is available" in refused.value.message
    assert not Conversation.objects.exists()


def test_a_file_with_one_bad_conversation_imports_none_of_them(alice, builtin_roles):
    broken = chatgpt_conversation("c0ffee-2")
    broken["title"] = 5  # not text

    with pytest.raises(ImportRefused) as refused:
        conversations_import(owner=alice, data=chatgpt_file(chatgpt_conversation(), broken))

    assert "Conversation 2" in refused.value.message
    assert not Conversation.objects.exists()


def test_the_command_imports_a_file_for_a_user(alice, builtin_roles, tmp_path):
    path = tmp_path / "conversations.json"
    path.write_bytes(chatgpt_file())
    out = io.StringIO()

    call_command("import_conversations", str(path), "--user", "alice", stdout=out)

    assert "Imported 1 conversation(s) for alice; 0 were there already." in out.getvalue()
    assert Conversation.objects.filter(owner=alice).count() == 1


def test_the_command_says_why_a_file_was_refused(alice, tmp_path):
    path = tmp_path / "conversations.json"
    path.write_bytes(b"{not json")

    with pytest.raises(CommandError, match=r"Nothing was imported: The file is not valid JSON\."):
        call_command("import_conversations", str(path), "--user", "alice")
