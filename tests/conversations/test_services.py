import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django_redis import get_redis_connection

from conversations import hub
from conversations.branches import branch_select
from conversations.models import Conversation, Message
from conversations.selectors import message_branches, message_list
from conversations.sending import message_edit, message_send, reply_regenerate
from conversations.services import ChatError, conversation_create, reply_stop
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


async def test_a_rounds_cap_of_twenty_keeps_only_the_last_twenty_rounds_at_turn_twenty_five(
    alice, builtin_roles, fake_openai, settings
):
    settings.CHAT_LIMIT_MESSAGES_PER_MINUTE = 0  # 25 messages in a few seconds
    settings.CHAT_CONTEXT_ROUNDS = 20  # a cap besides the window (0, the default: none)
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


async def follow_until(reply_id, text):
    """Follow the reply's log until its text so far is `text`; return that event's seq."""
    shown = ""
    async for event in hub.follow(reply_id=reply_id):
        shown += event.text
        if shown == text:
            return event.seq
    raise AssertionError(f"the reply ended at {shown!r}, before {text!r}")


async def test_stop_keeps_exactly_the_text_already_shown(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    tokens = ["Shown", " text", " the", " client", " never", " saw"]
    fake_openai.queue_reply(Reply(tokens=tokens, hang_after_tokens=2, hang_again_after_tokens=6))
    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="Hi")
    seen = await asyncio.wait_for(follow_until(exchange.reply.pk, "Shown text"), 10)
    fake_openai.release()  # the model runs ahead of what the client shows, and keeps running
    await asyncio.wait_for(follow_until(exchange.reply.pk, "".join(tokens)), 10)

    await reply_stop(owner=alice, conversation_id=conversation.pk, seen=seen)
    reply = await wait_for_reply(exchange.reply.pk)

    assert reply.status == Message.Status.STOPPED
    assert reply.content == "Shown text"
    await asyncio.to_thread(fake_openai.wait_for_open_streams, 0)


async def test_a_roles_own_model_and_temperature_reach_the_provider(alice, builtin_roles, fake_openai):
    await Role.objects.filter(slug="programmer").aupdate(model="role-own-model", temperature=0.15)
    conversation = await acreate(owner=alice, role_slug="programmer")

    _, reply = await send(alice, conversation, "Hi")

    body = fake_openai.requests[-1].body
    assert (body["model"], body["temperature"]) == ("role-own-model", 0.15)
    assert reply.status == Message.Status.COMPLETE


async def test_a_role_without_a_model_uses_the_sites(alice, builtin_roles, fake_openai, settings):
    await Role.objects.filter(slug="teacher").aupdate(model="")
    conversation = await acreate(owner=alice, role_slug="teacher")

    await send(alice, conversation, "Hi")

    assert fake_openai.requests[-1].body["model"] == settings.OPENAI_MODEL == "fake-model"


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


# --- Regenerate, edit, versions -------------------------------------------------------


async def test_regenerate_answers_the_last_message_again_and_keeps_the_old_reply(
    alice, builtin_roles, fake_openai
):
    conversation = await acreate(owner=alice)
    await send(alice, conversation, "first")
    fake_openai.queue_reply(Reply(tokens=["Old", " answer"]))
    old, _ = await send(alice, conversation, "second")
    fake_openai.queue_reply(Reply(tokens=["New", " answer"]))

    exchange = await reply_regenerate(owner=alice, conversation_id=conversation.pk)
    new = await wait_for_reply(exchange.reply.pk)

    assert new.content == "New answer"
    assert exchange.user_message.pk == old.user_message.pk
    assert fake_openai.last_messages()[1:] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "Echo: first"},
        {"role": "user", "content": "second"},
    ]
    shown = await sync_to_async(message_list)(conversation=conversation)
    assert [m.content for m in shown] == ["first", "Echo: first", "second", "New answer"]
    kept = await Message.objects.aget(pk=old.reply.pk)
    assert (kept.content, kept.superseded) == ("Old answer", True)


async def test_edit_replaces_the_last_message_and_keeps_the_old_turn(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    await send(alice, conversation, "first")
    before, _ = await send(alice, conversation, "secnod")

    exchange = await message_edit(owner=alice, conversation_id=conversation.pk, content="second")
    await wait_for_reply(exchange.reply.pk)

    assert fake_openai.last_messages()[-1] == {"role": "user", "content": "second"}
    assert len(fake_openai.last_messages()) == 4  # the typo turn is not sent upstream
    shown = await sync_to_async(message_list)(conversation=conversation)
    assert [m.content for m in shown] == ["first", "Echo: first", "second", "Echo: second"]
    assert (await Message.objects.aget(pk=before.user_message.pk)).superseded


async def test_flipping_back_to_an_earlier_version_restores_it(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["version one"]))
    first, _ = await send(alice, conversation, "question")
    fake_openai.queue_reply(Reply(tokens=["version two"]))
    await wait_for_reply((await reply_regenerate(owner=alice, conversation_id=conversation.pk)).reply.pk)

    await sync_to_async(branch_select)(
        owner=alice, conversation_id=conversation.pk, message_id=first.reply.pk
    )

    shown = await sync_to_async(message_list)(conversation=conversation)
    assert [m.content for m in shown] == ["question", "version one"]
    branches = await sync_to_async(message_branches)(conversation=conversation, messages=shown)
    assert (len(branches[first.reply.pk].ids), branches[first.reply.pk].index) == (2, 0)
    await send(alice, conversation, "next")
    assert [m["content"] for m in fake_openai.last_messages()[1:]] == ["question", "version one", "next"]


async def test_regenerate_while_a_reply_runs_is_refused(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["slow"], hang_after_tokens=1))
    running = await message_send(owner=alice, conversation_id=conversation.pk, content="one")

    with pytest.raises(ChatError) as refused:
        await reply_regenerate(owner=alice, conversation_id=conversation.pk)

    assert refused.value.code == "reply_in_progress"
    await reply_stop(owner=alice, conversation_id=conversation.pk)
    await wait_for_reply(running.reply.pk)


async def test_regenerate_with_nothing_to_answer_is_refused(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)

    with pytest.raises(ChatError) as refused:
        await reply_regenerate(owner=alice, conversation_id=conversation.pk)

    assert refused.value.code == "nothing_to_redo"
    assert await Message.objects.acount() == 0


@pytest.mark.parametrize("text", ["lone \ud800 surrogate", "a NUL \x00 byte"])
async def test_a_message_that_cannot_be_stored_is_refused_clearly(alice, builtin_roles, text):
    conversation = await acreate(owner=alice)

    with pytest.raises(ChatError) as refused:
        await message_send(owner=alice, conversation_id=conversation.pk, content=text)

    assert refused.value.code == "invalid_message"
    assert await Message.objects.acount() == 0


@pytest.mark.parametrize("title", ["\udfff", "nul\x00", 42, ["a"]])
def test_a_title_that_cannot_be_stored_is_refused_clearly(alice, builtin_roles, title):
    with pytest.raises(ChatError) as refused:
        conversation_create(owner=alice, title=title)

    assert refused.value.code == "invalid_title"


async def test_with_every_limit_off_a_message_does_not_need_the_limits_in_redis(
    alice, builtin_roles, fake_openai, settings
):
    settings.CHAT_LIMIT_MESSAGES_PER_MINUTE = 0
    settings.CHAT_LIMIT_CONCURRENT_REPLIES = 0
    settings.CHAT_LIMIT_DAILY_TOKENS = 0
    conversation = await acreate(owner=alice)

    _exchange, reply = await send(alice, conversation, "hi")

    assert reply.status == "complete"
    keys = await asyncio.to_thread(lambda: get_redis_connection("default").keys("chatsite:limits:*:minute"))
    assert keys == []  # nothing was counted
