"""Publishing replies: one pipeline per tick for every reply of the process."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from conversations import hub
from conversations.models import Message
from conversations.sending import message_send
from conversations.services import conversation_create
from tests.conftest import make_user
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)


async def follow_text(reply_id: int) -> tuple[str, list[int], str]:
    """The text a watcher was sent, the sequence numbers of its deltas, and the end status."""
    text, seqs, status = [], [], ""
    async for event in hub.follow(reply_id=reply_id):
        if event.kind == "delta":
            text.append(event.text)
            seqs.append(event.seq)
        else:
            status = event.status
    return "".join(text), seqs, status


async def test_many_replies_at_once_through_a_small_pool_all_arrive_whole(
    builtin_roles, fake_openai, settings
):
    # Far more replies than connections: commands wait for one instead of failing.
    settings.REDIS_POOL_SIZE = 3
    settings.CHAT_LIMIT_CONCURRENT_REPLIES = 0
    settings.CHAT_LIMIT_MESSAGES_PER_MINUTE = 0
    count = 120
    user = await sync_to_async(make_user)("many")
    conversations = [await sync_to_async(conversation_create)(owner=user) for _ in range(count)]
    for n in range(count):
        fake_openai.queue_reply(Reply(tokens=[f"r{n}w{i} " for i in range(20)], delay=0.01))

    exchanges = await asyncio.gather(
        *(message_send(owner=user, conversation_id=c.pk, content="go") for c in conversations)
    )
    results = await asyncio.wait_for(asyncio.gather(*(follow_text(e.reply.pk) for e in exchanges)), 60)

    saved = {m.pk: m async for m in Message.objects.filter(author="assistant")}
    for exchange, (text, seqs, status) in zip(exchanges, results, strict=True):
        reply = saved[exchange.reply.pk]
        assert status == reply.status == "complete"
        assert text == reply.content  # exact and whole on the wire and in the database
        assert len(reply.content.split()) == 20
        assert seqs == list(range(1, len(seqs) + 1))  # in order, none missing


async def test_the_first_text_is_not_held_back_by_the_interval(alice, builtin_roles, fake_openai, settings):
    settings.CHAT_STREAM_INTERVAL = 0.5
    conversation = await sync_to_async(conversation_create)(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["First", " second", " third"], delay=0.05))
    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="go")

    events = [event async for event in hub.follow(reply_id=exchange.reply.pk)]

    # The first token goes out alone, at once; the rest waits for the interval.
    assert [e.text for e in events if e.kind == "delta"] == ["First", " second third"]


async def test_streamed_text_is_coalesced_to_at_most_one_frame_per_interval(
    alice, builtin_roles, fake_openai, settings
):
    settings.CHAT_STREAM_INTERVAL = 0.05  # the real setting (the suite's default is 0)
    conversation = await sync_to_async(conversation_create)(owner=alice)
    tokens = [f"t{n} " for n in range(100)]
    fake_openai.queue_reply(Reply(tokens=tokens, delay=0.005))
    loop = asyncio.get_running_loop()
    started = loop.time()
    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="go")

    text, seqs, _status = await follow_text(exchange.reply.pk)
    elapsed = loop.time() - started

    assert text == "".join(tokens)
    # ~20 frames a second (plus the first at once): a slower machine only sends fewer.
    assert len(seqs) <= elapsed / 0.05 + 2
    assert len(seqs) < len(tokens) / 2


async def test_under_load_replies_come_in_fewer_larger_frames(builtin_roles, fake_openai, settings):
    settings.CHAT_STREAM_INTERVAL = 0.05
    settings.CHAT_STREAM_FRAMES_PER_SECOND = 20  # 4 replies at once: one frame each per 0.2 s
    settings.CHAT_LIMIT_CONCURRENT_REPLIES = 0
    user = await sync_to_async(make_user)("busy")
    conversations = [await sync_to_async(conversation_create)(owner=user) for _ in range(4)]
    tokens = [f"t{n} " for n in range(40)]
    for _ in conversations:
        fake_openai.queue_reply(Reply(tokens=tokens, delay=0.02))  # 0.8 s each
    loop = asyncio.get_running_loop()
    started = loop.time()
    exchanges = await asyncio.gather(
        *(message_send(owner=user, conversation_id=c.pk, content="go") for c in conversations)
    )

    results = await asyncio.gather(*(follow_text(e.reply.pk) for e in exchanges))
    elapsed = loop.time() - started

    for text, seqs, status in results:
        assert (text, status) == ("".join(tokens), "complete")  # nothing lost, only coalesced
        assert len(seqs) <= elapsed / 0.2 + 2  # at 0.05 s they would have been ~16
