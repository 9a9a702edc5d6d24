import pytest

from conversations.models import Conversation, Message
from conversations.selectors import context_history, conversation_get
from conversations.services import conversation_create

pytestmark = pytest.mark.django_db


def add(conversation, author, content, status=Message.Status.COMPLETE):
    return Message.objects.create(conversation=conversation, author=author, content=content, status=status)


def test_context_counts_stopped_and_interrupted_text_as_seen(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    add(conversation, "user", "q1")
    add(conversation, "assistant", "partial one", Message.Status.STOPPED)
    add(conversation, "user", "q2")
    add(conversation, "assistant", "partial two", Message.Status.INTERRUPTED)

    history = [m.as_dict() for m in context_history(conversation=conversation)]

    assert history[1:] == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "partial one"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "partial two"},
    ]


def test_context_leaves_out_failed_replies_without_text(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    add(conversation, "user", "q1")
    add(conversation, "assistant", "", Message.Status.ERROR)

    history = [m.as_dict() for m in context_history(conversation=conversation)]

    assert history[1:] == [{"role": "user", "content": "q1"}]


def test_context_rounds_setting_limits_the_history(alice, builtin_roles, settings):
    settings.CHAT_CONTEXT_ROUNDS = 1
    conversation = conversation_create(owner=alice)
    for n in range(3):
        add(conversation, "user", f"q{n}")
        add(conversation, "assistant", f"a{n}")

    history = [m.as_dict() for m in context_history(conversation=conversation)]

    assert history[1:] == [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]


def test_get_refuses_another_owner(alice, bob, builtin_roles):
    conversation = conversation_create(owner=alice)

    with pytest.raises(Conversation.DoesNotExist):
        conversation_get(owner=bob, conversation_id=conversation.pk)


def test_get_treats_a_malformed_id_as_missing(alice):
    with pytest.raises(Conversation.DoesNotExist):
        conversation_get(owner=alice, conversation_id="not-a-uuid")
