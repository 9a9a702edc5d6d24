"""The history sent upstream is the newest whole rounds that fit the model's context window
(less the reply's share), not a fixed number of rounds; a reply written without the
earliest messages says so."""

import pytest
from asgiref.sync import sync_to_async

from conversations.errors import ChatError
from conversations.models import Conversation, Message
from conversations.selectors import context_system
from conversations.sending import message_send
from conversations.services import conversation_create
from conversations.token_count import MESSAGE_FRAMING, message_tokens_estimate, text_tokens_estimate
from tests.conftest import wait_for_reply

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "And what now?"


def long_conversation(owner, rounds: int) -> tuple[Conversation, list[Message]]:
    conversation = conversation_create(owner=owner, role_slug="teacher")
    written = []
    for n in range(rounds):
        question = Message.objects.create(
            conversation=conversation, author="user", content=f"Question {n}: " + "word " * 60, turn=n + 1
        )
        written.append(question)
        written.append(
            Message.objects.create(
                conversation=conversation,
                author="assistant",
                content=f"Answer {n}: " + "word " * 60,
                turn=n + 1,
                reply_to=question,
            )
        )
    return conversation, written


def window_for(conversation: Conversation, rounds: list[Message]) -> int:
    """A context window with room for the system message, the new question and `rounds`
    (less than one more round to spare)."""
    system = text_tokens_estimate(context_system(conversation=conversation).content)
    question = text_tokens_estimate(QUESTION) + MESSAGE_FRAMING
    return system + question + sum(message_tokens_estimate(m) for m in rounds) + 10


async def test_a_conversation_past_its_window_sends_its_newest_rounds_that_fit(
    alice, builtin_roles, fake_openai, settings
):
    settings.CHAT_REPLY_TOKENS = 0
    conversation, written = await sync_to_async(long_conversation)(alice, rounds=6)
    settings.OPENAI_CONTEXT_WINDOW = await sync_to_async(window_for)(conversation, written[-4:])

    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content=QUESTION)
    await wait_for_reply(exchange.reply.pk)

    system = await sync_to_async(context_system)(conversation=conversation)
    assert fake_openai.last_messages() == [
        {"role": "system", "content": system.content},
        *({"role": m.author, "content": m.content} for m in written[-4:]),
        {"role": "user", "content": QUESTION},
    ]
    recorded = (await Message.objects.aget(pk=exchange.reply.pk)).sent or {}
    assert recorded["cut"] is True
    assert recorded["messages"] == [*(m.pk for m in written[-4:]), exchange.user_message.pk]


async def test_the_reply_says_it_was_written_without_the_earliest_messages(
    alice, builtin_roles, fake_openai, settings, async_client
):
    settings.CHAT_REPLY_TOKENS = 0
    conversation, written = await sync_to_async(long_conversation)(alice, rounds=3)
    settings.OPENAI_CONTEXT_WINDOW = await sync_to_async(window_for)(conversation, written[-2:])
    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content=QUESTION)
    await wait_for_reply(exchange.reply.pk)
    await async_client.aforce_login(alice)

    page = (await async_client.get(f"/c/{conversation.pk}/")).content.decode()
    sent = (await async_client.get(f"/replies/{exchange.reply.pk}/sent/")).content.decode()

    note = "earliest messages: they do not fit in the model"
    assert page.count(note) == 1  # under the new reply only
    assert "Earlier messages: not sent" in sent


async def test_a_conversation_that_fits_is_sent_whole_and_says_nothing(alice, builtin_roles, fake_openai):
    conversation, written = await sync_to_async(long_conversation)(alice, rounds=25)  # > the old 20 rounds

    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="Short?")
    await wait_for_reply(exchange.reply.pk)

    sent = fake_openai.last_messages()
    assert len(sent) == 1 + len(written) + 1
    recorded = (await Message.objects.aget(pk=exchange.reply.pk)).sent or {}
    assert recorded["cut"] is False


async def test_a_message_too_long_for_the_window_is_refused_saying_so_and_nothing_is_saved(
    alice, builtin_roles, fake_openai, settings
):
    settings.OPENAI_CONTEXT_WINDOW = 2000
    conversation = await sync_to_async(conversation_create)(owner=alice, role_slug="teacher")

    with pytest.raises(ChatError, match="too long for the model") as refused:
        await message_send(owner=alice, conversation_id=conversation.pk, content="word " * 2000)

    assert refused.value.code == "message_too_long"
    assert not await Message.objects.filter(conversation=conversation).aexists()
    assert fake_openai.requests == []
