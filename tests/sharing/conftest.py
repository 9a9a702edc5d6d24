import pytest
from django.test import Client

from conversations.models import Conversation, Message
from conversations.services import conversation_create


def conversation_with_turns(owner, *turns: tuple[str, str], title: str = "Tides") -> Conversation:
    """A conversation of the owner's with a finished reply to each (question, answer)."""
    conversation = conversation_create(owner=owner, role_slug="teacher", title=title)
    for turn, (question, answer) in enumerate(turns, start=1):
        asked = Message.objects.create(conversation=conversation, author="user", content=question, turn=turn)
        Message.objects.create(
            conversation=conversation, author="assistant", content=answer, turn=turn, reply_to=asked
        )
    return conversation


@pytest.fixture
def tides(alice, builtin_roles) -> Conversation:
    return conversation_with_turns(alice, ("Why are there tides?", "The **Moon** pulls the sea."))


@pytest.fixture
def alice_client(client, alice, builtin_roles):
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(bob, builtin_roles):
    signed_in = Client()
    signed_in.force_login(bob)
    return signed_in
