import asyncio

import pytest
from channels.db import database_sync_to_async

from conversations import replylog
from conversations.models import Conversation, Message
from conversations.services import (
    ChatError,
    conversation_create,
    message_send,
    reply_stop,
)
from roles.models import Role
from tests.conftest import wait_for_reply
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)

acreate = database_sync_to_async(conversation_create)


async def send(user, conversation, text):
    exchange = await message_send(owner=user, conversation_id=conversation.pk, content=text)
    return exchange, await wait_for_reply(exchange.reply.pk)


async def test_a_streamed_reply_is_saved_complete(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice, role_slug="teacher")
    fake_openai.queue_reply(Reply(tokens=["Hello", ",", " Alice"], usage=(12, 3)))

    _, reply = await send(alice, conversation, "Hi")

    assert reply.content == "Hello, Alice"
    assert reply.status == Message.Status.COMPLETE
    assert (reply.prompt_tokens, reply.completion_tokens) == (12, 3)


async def test_turn_one_sends_the_system_prompt_and_the_message(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice, role_slug="teacher")
    teacher = await Role.objects.aget(slug="teacher")

    await send(alice, conversation, "What is a prime?")

    assert fake_openai.last_messages() == [
        {"role": "system", "content": teacher.system_prompt},
        {"role": "user", "content": "What is a prime?"},
    ]


async def test_turn_three_sends_the_whole_history(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice, role_slug="assistant")
    for text in ["one", "two"]:
        await send(alice, conversation, text)

    await send(alice, conversation, "three")

    assert fake_openai.last_messages() == [
        {"role": "system", "content": conversation.system_prompt},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "Echo: one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "Echo: two"},
        {"role": "user", "content": "three"},
    ]


async def test_turn_twenty_five_keeps_only_the_last_twenty_rounds(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice, role_slug="assistant")
    for turn in range(1, 25):
        await send(alice, conversation, f"turn {turn}")

    await send(alice, conversation, "turn 25")

    expected = [{"role": "system", "content": conversation.system_prompt}]
    for turn in range(5, 25):
        expected += [
            {"role": "user", "content": f"turn {turn}"},
            {"role": "assistant", "content": f"Echo: turn {turn}"},
        ]
    expected.append({"role": "user", "content": "turn 25"})
    assert fake_openai.last_messages() == expected
    assert len(expected) == 42


async def test_the_conversation_keeps_its_starting_prompt_after_an_admin_edit(
    alice, builtin_roles, fake_openai
):
    conversation = await acreate(owner=alice, role_slug="teacher")
    original = conversation.system_prompt
    await Role.objects.filter(slug="teacher").aupdate(system_prompt="A different prompt")

    await send(alice, conversation, "Hi")

    assert fake_openai.last_messages()[0] == {"role": "system", "content": original}


async def test_the_user_message_is_saved_before_the_model_answers(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["late"], hang_after_tokens=0))

    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="Keep me")
    await asyncio.to_thread(fake_openai.wait_for_request)

    saved = await Message.objects.aget(pk=exchange.user_message.pk)
    assert saved.content == "Keep me"
    assert (await Message.objects.aget(pk=exchange.reply.pk)).status == Message.Status.STREAMING
    await reply_stop(owner=alice, conversation_id=conversation.pk)
    await wait_for_reply(exchange.reply.pk)


async def test_no_provider_saves_the_message_and_an_error_reply(alice, builtin_roles, no_provider):
    conversation = await acreate(owner=alice)

    exchange, reply = await send(alice, conversation, "Hello?")

    assert (await Message.objects.aget(pk=exchange.user_message.pk)).content == "Hello?"
    assert reply.status == Message.Status.ERROR
    assert "No model provider is configured" in reply.error


async def test_an_upstream_error_marks_the_reply_error(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=[], status=500))
    fake_openai.queue_reply(Reply(tokens=[], status=500))

    _, reply = await send(alice, conversation, "Hi")

    assert reply.status == Message.Status.ERROR
    assert "HTTP 500" in reply.error
    assert len(fake_openai.requests) == 2  # one retry at most


async def test_a_connection_dropped_mid_reply_keeps_the_partial_text(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["Half", " an", " answer", " lost"], drop_after_tokens=3))

    _, reply = await send(alice, conversation, "Hi")

    assert reply.status == Message.Status.INTERRUPTED
    assert reply.content == "Half an answer"


async def test_a_second_message_while_a_reply_runs_is_refused(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["slow"], hang_after_tokens=1))
    first = await message_send(owner=alice, conversation_id=conversation.pk, content="one")

    with pytest.raises(ChatError) as refused:
        await message_send(owner=alice, conversation_id=conversation.pk, content="two")

    assert refused.value.code == "reply_in_progress"
    assert await Message.objects.filter(conversation=conversation).acount() == 2
    await reply_stop(owner=alice, conversation_id=conversation.pk)
    await wait_for_reply(first.reply.pk)


async def test_stop_keeps_exactly_the_text_already_shown(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["Shown", " text"], hang_after_tokens=2))
    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="Hi")
    shown = []
    async for event in replylog.follow(reply_id=exchange.reply.pk):
        shown.append(event.text)
        if "".join(shown) == "Shown text":
            break

    await reply_stop(owner=alice, conversation_id=conversation.pk)
    reply = await wait_for_reply(exchange.reply.pk)

    assert reply.status == Message.Status.STOPPED
    assert reply.content == "Shown text"
    await asyncio.to_thread(fake_openai.wait_for_open_streams, 0)


@pytest.mark.parametrize("text", ["", "   \n "])
async def test_an_empty_message_is_refused(alice, builtin_roles, fake_openai, text):
    conversation = await acreate(owner=alice)

    with pytest.raises(ChatError) as refused:
        await message_send(owner=alice, conversation_id=conversation.pk, content=text)

    assert refused.value.code == "empty_message"
    assert fake_openai.requests == []


async def test_a_too_long_message_is_refused(alice, builtin_roles, fake_openai, settings):
    settings.CHAT_MAX_MESSAGE_CHARS = 10
    conversation = await acreate(owner=alice)

    with pytest.raises(ChatError) as refused:
        await message_send(owner=alice, conversation_id=conversation.pk, content="x" * 11)

    assert refused.value.code == "message_too_long"
    assert await Message.objects.acount() == 0


async def test_nobody_can_send_into_another_users_conversation(alice, bob, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)

    with pytest.raises(Conversation.DoesNotExist):
        await message_send(owner=bob, conversation_id=conversation.pk, content="Hi")

    assert await Message.objects.acount() == 0


async def test_the_first_message_titles_the_conversation(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)

    await send(alice, conversation, "How do   rainbows form?")

    assert (await Conversation.objects.aget(pk=conversation.pk)).title == "How do rainbows form?"
