"""The write that starts a reply, given the conversation as read just before it."""

import pytest

from conversations.models import Conversation, Message
from conversations.selectors import conversation_get
from conversations.sending import Asked, _exchange_create
from conversations.services import conversation_create, conversation_delete, conversation_rename

pytestmark = pytest.mark.django_db


def exchange_create(owner, conversation: Conversation, content: str = "Plan a trip to Kyoto"):
    return _exchange_create(
        owner=owner,
        conversation=conversation,
        content=content,
        holder="h",
        role_slug=None,
        redo=None,
        asked=Asked(),
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

    exchange_create(alice, read)

    stored = Conversation.objects.get(pk=read.pk)
    assert (stored.title, stored.title_auto) == ("Holiday", False)


def test_an_untitled_conversation_is_named_by_its_first_words(alice, builtin_roles, fake_openai):
    read = conversation_get(owner=alice, conversation_id=conversation_create(owner=alice).pk)

    exchange, _job = exchange_create(alice, read)

    stored = Conversation.objects.get(pk=read.pk)
    assert (stored.title, stored.title_auto) == ("Plan a trip to Kyoto", True)
    assert exchange.conversation.title == stored.title  # what the sent frame shows
