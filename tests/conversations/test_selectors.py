import pytest

from conversations.models import Conversation, Message
from conversations.selectors import context_history, conversation_get, message_page
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


def numbered(conversation, count):
    return [add(conversation, Message.Author.USER, f"Message {n}") for n in range(count)]


def test_a_page_is_the_latest_messages_oldest_first_with_where_earlier_ones_end(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    written = numbered(conversation, 7)

    page = message_page(conversation=conversation, limit=3)

    assert page.messages == written[4:]
    assert page.older_than == written[4].pk


def test_the_page_before_a_message_ends_where_the_conversation_starts(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    written = numbered(conversation, 7)

    page = message_page(conversation=conversation, before=written[3].pk, limit=3)
    first = message_page(conversation=conversation, before=written[0].pk, limit=3)

    assert page.messages == written[:3]
    assert page.older_than is None
    assert first.messages == []
    assert first.older_than is None


def test_a_page_leaves_out_earlier_versions_of_a_turn(alice, builtin_roles):
    conversation = conversation_create(owner=alice)
    question = add(conversation, Message.Author.USER, "Question")
    old = add(conversation, Message.Author.ASSISTANT, "First answer")
    Message.objects.filter(pk=old.pk).update(superseded=True)
    new = add(conversation, Message.Author.ASSISTANT, "Second answer")

    page = message_page(conversation=conversation, limit=2)

    assert page.messages == [question, new]
    assert page.older_than is None
