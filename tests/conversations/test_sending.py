"""The write that starts a reply, given the conversation as read just before it."""

import pytest

from conversations.models import Conversation, Message
from conversations.selectors import conversation_get
from conversations.sending import Asked, Redo, _exchange_create
from conversations.services import (
    conversation_archive,
    conversation_create,
    conversation_delete,
    conversation_rename,
)

pytestmark = pytest.mark.django_db


def exchange_create(
    owner,
    conversation: Conversation,
    content: str = "Plan a trip to Kyoto",
    redo: Redo | None = None,
    target=None,
):
    return _exchange_create(
        owner=owner,
        conversation=conversation,
        content=content,
        holder="h",
        role_slug=None,
        redo=redo,
        asked=Asked(target=target),
    )


def test_a_conversation_deleted_after_it_was_read_gets_no_messages(alice, builtin_roles, fake_openai):
    read = conversation_get(owner=alice, conversation_id=conversation_create(owner=alice).pk)
    conversation_delete(owner=alice, conversation_id=read.pk)  # another tab, meanwhile

    with pytest.raises(Conversation.DoesNotExist):  # the API and the socket answer "not found"
        exchange_create(alice, read)

    assert not Message.objects.exists()


def test_a_title_given_after_the_conversation_was_read_is_kept(alice, builtin_roles, fake_openai):
    read = conversation_get(owner=alice, conversation_id=conversation_create(owner=alice).pk)
    conversation_rename(owner=alice, conversation_id=read.pk, title="Holiday")  # another tab, meanwhile

    exchange, _job = exchange_create(alice, read)

    stored = Conversation.objects.get(pk=read.pk)
    assert (stored.title, stored.title_auto) == ("Holiday", False)
    assert exchange.conversation.title == "Holiday"  # what the sent frame shows in the list
    assert not exchange.conversation.title_auto  # so the model is not asked for a title


def test_an_untitled_conversation_is_named_by_its_first_words(alice, builtin_roles, fake_openai):
    read = conversation_get(owner=alice, conversation_id=conversation_create(owner=alice).pk)

    exchange, _job = exchange_create(alice, read)

    stored = Conversation.objects.get(pk=read.pk)
    assert (stored.title, stored.title_auto) == ("Plan a trip to Kyoto", True)
    assert exchange.conversation.title == stored.title  # what the sent frame shows


def test_a_message_brings_back_a_conversation_archived_after_it_was_read(alice, builtin_roles, fake_openai):
    read = conversation_get(owner=alice, conversation_id=conversation_create(owner=alice, title="Trip").pk)
    conversation_archive(owner=alice, conversation_id=read.pk, archived=True)  # another tab, meanwhile

    exchange_create(alice, read)

    assert Conversation.objects.get(pk=read.pk).archived_at is None


def test_a_regenerate_forgets_a_summary_saved_after_the_conversation_was_read(
    alice, builtin_roles, fake_openai
):
    chat = conversation_create(owner=alice, title="Trip")
    q1 = Message.objects.create(conversation=chat, author="user", content="q1", turn=1)
    a1 = Message.objects.create(
        conversation=chat, author="assistant", content="a1", turn=1, parent=q1, reply_to=q1, status="complete"
    )
    q2 = Message.objects.create(conversation=chat, author="user", content="q2", turn=2, parent=a1)
    a2 = Message.objects.create(
        conversation=chat, author="assistant", content="a2", turn=2, parent=q2, reply_to=q2, status="complete"
    )
    read = conversation_get(owner=alice, conversation_id=chat.pk)
    # Meanwhile the summary of earlier messages (conversations.summaries) is saved, up to a2.
    Conversation.objects.filter(pk=chat.pk).update(summary="They planned a trip.", summary_until=a2.pk)

    exchange_create(alice, read, content="", redo=Redo.REGENERATE, target=a1.pk)

    stored = Conversation.objects.get(pk=chat.pk)
    # a1, q2 and a2 are set aside: a summary of them would stand in for messages not shown.
    assert (stored.summary, stored.summary_until) == ("", None)
