import pytest

from conversations.models import Conversation
from conversations.services import ChatError, conversation_create, conversation_delete, conversation_rename

pytestmark = pytest.mark.django_db


def test_create_uses_the_asked_role_and_records_its_prompt(alice, builtin_roles):
    conversation = conversation_create(owner=alice, role_slug="programmer")

    assert conversation.role.slug == "programmer"
    assert conversation.system_prompt == conversation.role.system_prompt


def test_create_without_a_role_uses_the_assistant(alice, builtin_roles):
    assert conversation_create(owner=alice).role.slug == "assistant"


def test_create_with_an_unknown_role_is_refused(alice, builtin_roles):
    with pytest.raises(ChatError) as refused:
        conversation_create(owner=alice, role_slug="pirate")

    assert refused.value.code == "unknown_role"


def test_rename_sets_a_tidy_title(alice, builtin_roles):
    conversation = conversation_create(owner=alice)

    conversation_rename(owner=alice, conversation_id=conversation.pk, title="  Trip   plans ")

    conversation.refresh_from_db()
    assert conversation.title == "Trip plans"


def test_rename_to_nothing_is_refused(alice, builtin_roles):
    conversation = conversation_create(owner=alice)

    with pytest.raises(ChatError):
        conversation_rename(owner=alice, conversation_id=conversation.pk, title="   ")


def test_nobody_can_rename_another_users_conversation(alice, bob, builtin_roles):
    conversation = conversation_create(owner=alice, title="Mine")

    with pytest.raises(Conversation.DoesNotExist):
        conversation_rename(owner=bob, conversation_id=conversation.pk, title="Yours")


def test_delete_removes_the_conversation(alice, builtin_roles):
    conversation = conversation_create(owner=alice)

    conversation_delete(owner=alice, conversation_id=conversation.pk)

    assert not Conversation.objects.filter(pk=conversation.pk).exists()


def test_nobody_can_delete_another_users_conversation(alice, bob, builtin_roles):
    conversation = conversation_create(owner=alice)

    with pytest.raises(Conversation.DoesNotExist):
        conversation_delete(owner=bob, conversation_id=conversation.pk)

    assert Conversation.objects.filter(pk=conversation.pk).exists()
