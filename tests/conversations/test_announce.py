"""A new reply is announced to a conversation's sockets when any but the sender's shows it."""

import asyncio
import uuid

import pytest
from channels.layers import get_channel_layer

from conversations.announce import conversation_group, reply_announce
from conversations.models import Conversation, Message
from conversations.selectors import Exchange


@pytest.fixture
def exchange() -> Exchange:
    return Exchange(
        conversation=Conversation(pk=uuid.uuid4()), user_message=Message(pk=41), reply=Message(pk=42)
    )


async def test_another_socket_on_the_conversation_hears_of_the_reply(exchange):
    layer = get_channel_layer()
    sender, other = await layer.new_channel(), await layer.new_channel()
    for channel in (sender, other):
        await layer.group_add(conversation_group(exchange.conversation.pk), channel)

    await reply_announce(exchange, sender=sender)
    heard = await asyncio.wait_for(layer.receive(other), 5)

    assert (heard["type"], heard["reply_id"], heard["user_message_id"]) == ("reply.started", 42, 41)


async def test_a_socket_alone_on_its_conversation_is_sent_nothing(exchange, monkeypatch):
    layer = get_channel_layer()
    sender = await layer.new_channel()
    await layer.group_add(conversation_group(exchange.conversation.pk), sender)
    sent = []
    monkeypatch.setattr(layer, "group_send", lambda *args: sent.append(args))

    await reply_announce(exchange, sender=sender)

    assert sent == []


async def test_a_conversation_no_socket_shows_is_sent_nothing(exchange, monkeypatch):
    layer = get_channel_layer()
    sent = []
    monkeypatch.setattr(layer, "group_send", lambda *args: sent.append(args))

    await reply_announce(exchange)

    assert sent == []
