"""A reasoning model's reply, through the whole engine: streamed apart, saved apart,
never sent back upstream, and kept by a stop exactly as far as it was seen."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.test import AsyncClient
from django_redis import get_redis_connection

from conversations import generation, replylog
from conversations.export import as_json, as_markdown
from conversations.models import Message
from conversations.reasoning import THINK_END, THINK_START
from conversations.sending import message_send
from conversations.services import conversation_create, reply_stop
from conversations.store import reply_reap_orphans
from tests.conftest import wait_for_reply
from tests.conversations.test_api import read_events
from tests.conversations.test_services import follow_until
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)

acreate = database_sync_to_async(conversation_create)
THINKING = Reply(reasoning=("Two ", "and two", " make four."), tokens=["Four", "."], usage=(5, 9))


async def signed_in(user) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(user)
    return client


async def send(user, conversation, text):
    exchange = await message_send(owner=user, conversation_id=conversation.pk, content=text)
    return await wait_for_reply(exchange.reply.pk)


async def test_the_reasoning_is_saved_apart_from_the_answer(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(THINKING)

    reply = await send(alice, conversation, "2+2?")

    assert (reply.reasoning, reply.content, reply.status) == ("Two and two make four.", "Four.", "complete")
    assert reply.reasoning_ms is not None and reply.reasoning_ms >= reply.first_token_ms


async def test_a_reply_without_reasoning_has_no_thinking_time(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["Hi"]))

    reply = await send(alice, conversation, "Hello")

    assert (reply.reasoning, reply.reasoning_ms) == ("", None)


async def test_the_reasoning_is_never_sent_back_upstream(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(THINKING)
    await send(alice, conversation, "2+2?")

    await send(alice, conversation, "And 3+3?")

    sent = fake_openai.last_messages()
    assert {"role": "assistant", "content": "Four."} in sent
    assert not any("make four" in str(message["content"]) for message in sent)


async def test_the_sse_stream_sends_reasoning_events_before_the_chunks(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(THINKING)

    response = await (await signed_in(alice)).get(
        "/chat/stream", {"session_id": str(conversation.pk), "message": "2+2?"}
    )
    events = [data for _id, data in await read_events(response)]
    await generation.wait(events[-1]["message_id"])

    kinds = [event["type"] for event in events]
    assert kinds.index("chunk") > max(i for i, kind in enumerate(kinds) if kind == "reasoning")
    assert "".join(e["content"] for e in events if e["type"] == "reasoning") == "Two and two make four."
    assert "".join(e["content"] for e in events if e["type"] == "chunk") == "Four."
    assert not any(THINK_START in str(e) or THINK_END in str(e) for e in events)


async def test_the_history_gives_the_reasoning_and_how_long_it_took(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(THINKING)
    reply = await send(alice, conversation, "2+2?")

    response = await (await signed_in(alice)).get("/chat/history", {"session_id": str(conversation.pk)})

    answer = response.json()["messages"][-1]
    assert (answer["content"], answer["reasoning"], answer["reasoning_ms"]) == (
        "Four.",
        "Two and two make four.",
        reply.reasoning_ms,
    )


async def test_exports_carry_the_reasoning(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(THINKING)
    await send(alice, conversation, "2+2?")

    document = await sync_to_async(as_json)(conversation)
    markdown = await sync_to_async(as_markdown)(conversation)

    assert document["messages"][-1]["reasoning"] == "Two and two make four."
    assert "> Two and two make four." in markdown


async def test_a_stop_while_thinking_keeps_exactly_the_reasoning_seen(alice, builtin_roles, fake_openai):
    conversation = await acreate(owner=alice)
    # The model thinks on past what the client has shown, and is still running at the stop.
    fake_openai.queue_reply(
        Reply(
            reasoning=("Let me", " think", " more", " and more"),
            tokens=["Four"],
            hang_after_tokens=2,
            hang_again_after_tokens=4,
        )
    )
    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="2+2?")
    seen = await asyncio.wait_for(follow_until(exchange.reply.pk, f"{THINK_START}Let me think"), 10)
    fake_openai.release()
    await asyncio.wait_for(follow_until(exchange.reply.pk, f"{THINK_START}Let me think more and more"), 10)

    await reply_stop(owner=alice, conversation_id=conversation.pk, seen=seen)
    reply = await wait_for_reply(exchange.reply.pk)

    assert (reply.status, reply.reasoning, reply.content) == ("stopped", "Let me think", "")
    await asyncio.to_thread(fake_openai.wait_for_open_streams, 0)


def test_an_orphan_keeps_its_reasoning_and_its_answer_apart(alice, builtin_roles, short_lease):
    conversation = conversation_create(owner=alice)
    Message.objects.create(conversation=conversation, author="user", content="q")
    reply = Message.objects.create(
        conversation=conversation, author="assistant", status=Message.Status.STREAMING
    )
    # The log a process left behind when it died mid-answer.
    get_redis_connection("default").xadd(
        replylog.log_key(reply.pk), {"kind": "delta", "seq": 1, "text": f"{THINK_START}hmm{THINK_END}Fo"}
    )

    assert reply_reap_orphans(running=set()) == 1

    reply.refresh_from_db()
    assert (reply.status, reply.reasoning, reply.content) == ("interrupted", "hmm", "Fo")
