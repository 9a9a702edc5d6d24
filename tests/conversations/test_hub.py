"""Watching replies: one reader per process, no gap, no duplicate, no end before the whole text."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django_redis import get_redis_connection

from conversations import hub, replylog
from conversations.models import Message
from conversations.selectors import ReplySettled
from tests.conftest import redis_restart
from tests.conversations.test_generation import events_until, start
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)


def write_remote(reply_id: int, *events: dict[str, str | int]) -> list[str]:
    """Append to a reply's log as a job in another process would; returns the entry ids."""
    redis = get_redis_connection("default")
    return [redis.xadd(replylog.log_key(reply_id), event).decode() for event in events]


def delta(seq: int, text: str) -> dict[str, str | int]:
    return {"kind": "delta", "seq": seq, "text": text}


def end(seq: int, status: str = "complete") -> dict[str, str | int]:
    return replylog.end_fields(seq=seq, status=status)


async def collect(reply_id: int, **kwargs) -> list[replylog.Event]:
    return [event async for event in hub.follow(reply_id=reply_id, **kwargs)]


def blocked_reads() -> list[str]:
    """The names of the connections blocked in a read right now."""
    clients = get_redis_connection("default").client_list()
    return [client["name"] for client in clients if "b" in client["flags"]]


async def test_many_watchers_of_other_processes_replies_share_one_blocking_reader():
    before = await sync_to_async(blocked_reads)()  # earlier tests' readers may still block
    reply_ids = list(range(1000, 1200))
    watchers = [asyncio.create_task(collect(reply_id)) for reply_id in reply_ids]
    started_blocking: list[str] = []
    async with asyncio.timeout(10):  # until every watcher has joined and waits
        while hub.hub().reading != set(reply_ids) or hub.hub().name not in started_blocking:
            await asyncio.sleep(0.05)
            started_blocking = [name for name in await sync_to_async(blocked_reads)() if name not in before]

    # 200 blocking reads, one per watcher, ran the pool dry; one reader serves them all.
    assert started_blocking == [hub.hub().name]
    for reply_id in reply_ids:
        await sync_to_async(write_remote)(reply_id, delta(1, f"text of {reply_id}"), end(2))
    results = await asyncio.wait_for(asyncio.gather(*watchers), 10)

    for reply_id, events in zip(reply_ids, results, strict=True):
        assert [(e.kind, e.text) for e in events] == [("delta", f"text of {reply_id}"), ("end", "")]


async def test_a_watcher_resuming_mid_reply_gets_the_rest_without_gap_or_duplicate():
    ids = await sync_to_async(write_remote)(7, delta(1, "one "), delta(2, "two "), delta(3, "three "))
    watcher = asyncio.create_task(collect(7, after=ids[1], known="one two "))
    await asyncio.sleep(0.2)
    await sync_to_async(write_remote)(7, delta(4, "four"), end(5))

    events = await asyncio.wait_for(watcher, 5)

    assert [(e.kind, e.seq, e.text) for e in events] == [
        ("delta", 3, "three "),
        ("delta", 4, "four"),
        ("end", 5, ""),
    ]


async def test_a_reset_is_turned_into_the_text_the_watcher_is_missing():
    watcher = asyncio.create_task(collect(8))
    await asyncio.sleep(0.2)
    await sync_to_async(write_remote)(8, delta(1, "Hello"))
    # Redis lost the log: the writer publishes the whole text so far again.
    await sync_to_async(write_remote)(8, {"kind": "reset", "seq": 2, "text": "Hello, world"}, end(3))

    events = await asyncio.wait_for(watcher, 5)

    assert "".join(e.text for e in events) == "Hello, world"


async def test_two_watchers_of_one_local_reply_each_get_the_whole_text_once(
    alice, builtin_roles, fake_openai
):
    tokens = [f"t{n} " for n in range(30)]
    _, exchange = await start(alice, fake_openai, Reply(tokens=tokens, delay=0.01))
    first = asyncio.create_task(collect(exchange.reply.pk))
    await events_until(exchange.reply.pk, 5)
    second = asyncio.create_task(collect(exchange.reply.pk))  # a second tab, mid-reply

    for events in await asyncio.wait_for(asyncio.gather(first, second), 10):
        assert "".join(e.text for e in events) == "".join(tokens)
        assert events[-1].kind == "end"


async def test_a_watcher_is_told_the_end_only_with_the_whole_text_when_redis_stays_away(
    alice, builtin_roles, fake_openai, own_redis, monkeypatch
):
    monkeypatch.setattr(hub, "QUIET_SECONDS", 0.3)
    tokens = [f"w{n} " for n in range(20)]
    _, exchange = await start(alice, fake_openai, Reply(tokens=tokens, delay=0.05))
    watcher = asyncio.create_task(collect(exchange.reply.pk))
    await events_until(exchange.reply.pk, 3)

    # Redis goes away for longer than the rest of the reply takes.
    assert own_redis.process is not None
    own_redis.process.kill()
    events = await asyncio.wait_for(watcher, 15)

    saved = await Message.objects.aget(pk=exchange.reply.pk)
    assert (saved.status, saved.content) == ("complete", "".join(tokens))
    assert "".join(e.text for e in events if e.kind == "delta") == saved.content
    assert events[-1].kind == "end" and events[-1].status == "complete"
    assert events[-1].seq > max(e.seq for e in events[:-1])  # a real sequence number, not 0


async def test_a_watcher_keeps_every_word_across_a_redis_restart(
    alice, builtin_roles, fake_openai, own_redis
):
    tokens = [f"r{n} " for n in range(20)]
    _, exchange = await start(alice, fake_openai, Reply(tokens=tokens, delay=0.05))
    watcher = asyncio.create_task(collect(exchange.reply.pk))
    await events_until(exchange.reply.pk, 3)

    await asyncio.to_thread(redis_restart, own_redis, down_for=0.3)
    events = await asyncio.wait_for(watcher, 15)

    assert "".join(e.text for e in events if e.kind == "delta") == "".join(tokens)


async def test_a_watcher_of_a_deleted_reply_ends(monkeypatch):
    monkeypatch.setattr(hub, "QUIET_SECONDS", 0.05)

    events = await asyncio.wait_for(collect(987654), 5)  # no such reply (any more)

    assert [e.kind for e in events] == ["end"]


async def test_a_reply_written_here_is_watched_without_reading_redis(alice, builtin_roles, fake_openai):
    tokens = [f"l{n} " for n in range(10)]
    _, exchange = await start(alice, fake_openai, Reply(tokens=tokens, delay=0.01))

    events = await asyncio.wait_for(collect(exchange.reply.pk), 10)

    assert "".join(e.text for e in events) == "".join(tokens)
    # Every event came straight from this process's publisher: no blocking read, no wake.
    assert hub.hub().reader is None


async def joined(reply_id: int) -> None:
    # The hub signals nobody when a watcher joins: polled, with a deadline.
    async with asyncio.timeout(5):
        while reply_id not in hub.hub().watchers:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_a_watcher_that_could_not_read_the_log_never_takes_a_later_delta_for_the_next_words(
    own_redis,
):
    """The soak saw it once: a complete reply arrived the same length as the saved text, but
    other text. The watcher joined a reply of this process that had published, its read of
    the log failed as Redis died, a delta that Redis had stored just before reached it
    anyway, and the reset after the restart filled its text up by length."""
    reply_id = 4242
    local = hub.hub()
    local.local_add(reply_id)
    [first_id] = await sync_to_async(write_remote)(reply_id, delta(1, "Hello"))
    local.deliver(reply_id, replylog.Event(id=first_id, seq=1, kind="delta", text="Hello"))
    own_redis.stop()  # the watcher's read of the log fails

    watcher = asyncio.create_task(collect(reply_id))
    await joined(reply_id)
    # Stored just before Redis died, so handed over by this process's publisher...
    local.deliver(
        reply_id, replylog.Event(id=f"{int(first_id.split('-')[0]) + 1}-0", seq=2, kind="delta", text=", wor")
    )
    # ...which, once Redis is back empty, publishes the whole text again.
    local.deliver(reply_id, replylog.Event(id="9999999999999-0", seq=3, kind="reset", text="Hello, world"))
    local.deliver(reply_id, replylog.Event(id="9999999999999-1", seq=4, kind="end", status="complete"))
    events = await asyncio.wait_for(watcher, 5)
    local.local_remove(reply_id, ended=True)

    assert "".join(e.text for e in events if e.kind == "delta") == "Hello, world"
    assert events[-1].kind == "end"


async def test_a_watcher_that_could_not_read_the_log_takes_its_end_from_the_saved_reply(own_redis):
    reply_id = 4243
    local = hub.hub()
    local.local_add(reply_id)
    [first_id] = await sync_to_async(write_remote)(reply_id, delta(1, "Hello"))
    local.deliver(reply_id, replylog.Event(id=first_id, seq=1, kind="delta", text="Hello"))
    own_redis.stop()

    async def saved(_reply_id: int) -> ReplySettled:
        return ReplySettled(status="complete", error="", content="Hello, world")

    watcher = asyncio.create_task(collect(reply_id, settled=saved))
    await joined(reply_id)
    local.deliver(
        reply_id, replylog.Event(id=f"{int(first_id.split('-')[0]) + 1}-0", seq=2, kind="delta", text=", wor")
    )
    local.deliver(
        reply_id,
        replylog.Event(id=f"{int(first_id.split('-')[0]) + 2}-0", seq=3, kind="end", status="complete"),
    )
    events = await asyncio.wait_for(watcher, 5)
    local.local_remove(reply_id, ended=True)

    assert "".join(e.text for e in events if e.kind == "delta") == "Hello, world"
    assert (events[-1].kind, events[-1].status) == ("end", "complete")
