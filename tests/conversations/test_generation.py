"""The generation job: stop, checkpoints, Redis outages, slow and failing providers."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django_redis import get_redis_connection

from conversations import generation, hub, lifecycle, replylog
from conversations.models import Message
from conversations.publisher import publisher
from conversations.sending import message_send
from conversations.services import ChatError, conversation_create, conversation_delete, reply_stop
from conversations.store import reply_reap_orphans
from tests.conftest import redis_restart, wait_for_reply, wait_for_uptime
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)

acreate = sync_to_async(conversation_create)
TOKENS = [f"t{n} " for n in range(8)]


async def start(user, fake_openai, reply):
    conversation = await acreate(owner=user)
    fake_openai.queue_reply(reply)
    exchange = await message_send(owner=user, conversation_id=conversation.pk, content="go")
    return conversation, exchange


async def events_until(reply_id, count):
    events = []
    async for event in hub.follow(reply_id=reply_id):
        events.append(event)
        if len(events) == count:
            return events
    return events


async def test_stop_keeps_exactly_what_the_stopping_client_had_seen(alice, builtin_roles, fake_openai):
    # The whole reply is written and published, and the model is still running, but the
    # stopping client had shown only the first event: the reply is what it showed.
    conversation, exchange = await start(
        alice, fake_openai, Reply(tokens=TOKENS, delay=0.02, hang_after_tokens=len(TOKENS))
    )
    events = []
    async for event in hub.follow(reply_id=exchange.reply.pk):
        events.append(event)
        if "".join(e.text for e in events) == "".join(TOKENS):
            break
    assert events[0].text == TOKENS[0]  # the first text is published at once, alone

    await reply_stop(owner=alice, conversation_id=conversation.pk, seen=events[0].seq)
    saved = await wait_for_reply(exchange.reply.pk)

    assert saved.status == Message.Status.STOPPED
    assert saved.content == TOKENS[0]


async def test_stop_closes_the_upstream_request(alice, builtin_roles, fake_openai, settings):
    settings.OPENAI_READ_TIMEOUT = 60  # so only the stop can close the hung stream within the deadline
    conversation, exchange = await start(alice, fake_openai, Reply(tokens=["a", "b"], hang_after_tokens=1))
    await events_until(exchange.reply.pk, 1)
    assert fake_openai.open_streams == 1

    await reply_stop(owner=alice, conversation_id=conversation.pk)

    await asyncio.to_thread(fake_openai.wait_for_open_streams, 0, 10)
    await wait_for_reply(exchange.reply.pk)


async def test_nothing_is_left_running_after_a_stop(alice, builtin_roles, fake_openai):
    conversation, exchange = await start(alice, fake_openai, Reply(tokens=["a", "b"], hang_after_tokens=1))
    await events_until(exchange.reply.pk, 1)

    await reply_stop(owner=alice, conversation_id=conversation.pk)
    await wait_for_reply(exchange.reply.pk)
    await generation.wait(exchange.reply.pk)

    assert generation.running_ids() == set()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("reply-")]
    await asyncio.to_thread(fake_openai.wait_for_open_streams, 0)


async def test_a_long_reply_is_checkpointed_while_it_is_written(alice, builtin_roles, fake_openai, settings):
    settings.CHAT_CHECKPOINT_SECONDS = 0.1
    _, exchange = await start(alice, fake_openai, Reply(tokens=TOKENS, delay=0.05))
    await events_until(exchange.reply.pk, 6)

    row = await Message.objects.aget(pk=exchange.reply.pk)

    assert row.status == Message.Status.STREAMING
    assert row.content.startswith("t0 t1 ")
    await wait_for_reply(exchange.reply.pk)


async def test_a_very_slow_provider_still_completes(alice, builtin_roles, fake_openai, settings):
    # Each gap is well under the read timeout, the whole reply well over it.
    settings.OPENAI_READ_TIMEOUT = 2.0
    _, exchange = await start(alice, fake_openai, Reply(tokens=["slow", " but", " sure"], delay=0.9))

    saved = await wait_for_reply(exchange.reply.pk)

    assert (saved.status, saved.content) == ("complete", "slow but sure")


async def test_a_silent_provider_times_out_with_the_text_kept(alice, builtin_roles, fake_openai, settings):
    settings.OPENAI_READ_TIMEOUT = 0.5
    _, exchange = await start(alice, fake_openai, Reply(tokens=["partial", "never"], hang_after_tokens=1))

    saved = await wait_for_reply(exchange.reply.pk)

    assert saved.status == Message.Status.INTERRUPTED
    assert saved.content == "partial"
    assert "too long" in saved.error


async def test_a_rate_limit_with_a_short_retry_after_is_waited_out(alice, builtin_roles, fake_openai):
    fake_openai.queue_reply(Reply(tokens=[], status=429, retry_after=0.3))
    _, exchange = await start(alice, fake_openai, Reply(tokens=["fine"]))

    saved = await wait_for_reply(exchange.reply.pk)

    assert (saved.status, saved.content) == ("complete", "fine")
    assert len(fake_openai.requests) == 2


async def test_a_rate_limit_with_a_long_retry_after_says_busy_at_once(alice, builtin_roles, fake_openai):
    _, exchange = await start(alice, fake_openai, Reply(tokens=[], status=429, retry_after=600))

    saved = await wait_for_reply(exchange.reply.pk, within=5)

    assert saved.status == Message.Status.ERROR
    assert "busy" in saved.error
    assert len(fake_openai.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_server_error_is_retried_once(alice, builtin_roles, fake_openai, status):
    fake_openai.queue_reply(Reply(tokens=[], status=status))
    _, exchange = await start(alice, fake_openai, Reply(tokens=["recovered"]))

    saved = await wait_for_reply(exchange.reply.pk)

    assert (saved.status, saved.content) == ("complete", "recovered")
    assert len(fake_openai.requests) == 2  # the failed request and exactly one retry


@pytest.mark.parametrize("status", [500, 503])
async def test_a_server_error_is_retried_only_once(alice, builtin_roles, fake_openai, status):
    fake_openai.queue_reply(Reply(tokens=[], status=status))
    fake_openai.queue_reply(Reply(tokens=[], status=status))
    _, exchange = await start(alice, fake_openai, Reply(tokens=["never asked for"]))

    saved = await wait_for_reply(exchange.reply.pk)

    assert saved.status == Message.Status.ERROR
    assert len(fake_openai.requests) == 2


async def test_shutdown_saves_running_replies_as_interrupted(alice, builtin_roles, fake_openai):
    _, exchange = await start(alice, fake_openai, Reply(tokens=["kept", "lost"], hang_after_tokens=1))
    await events_until(exchange.reply.pk, 1)

    await generation.shutdown()

    saved = await Message.objects.aget(pk=exchange.reply.pk)
    assert (saved.status, saved.content) == ("interrupted", "kept")
    await asyncio.to_thread(fake_openai.wait_for_open_streams, 0)


async def test_a_reply_cancelled_with_the_publisher_is_still_saved_and_ended(
    alice, builtin_roles, fake_openai
):
    # A closing event loop cancels every task at once: the jobs and the publisher they wait on.
    _, exchange = await start(alice, fake_openai, Reply(tokens=["kept", "lost"], hang_after_tokens=1))
    await asyncio.wait_for(events_until(exchange.reply.pk, 1), 10)
    job = generation._running[exchange.reply.pk]
    watcher = asyncio.create_task(events_until(exchange.reply.pk, 99))

    publisher().task.cancel()  # type: ignore[union-attr]
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(job, 10)

    saved = await Message.objects.aget(pk=exchange.reply.pk)
    assert (saved.status, saved.content) == ("interrupted", "kept")
    events = await asyncio.wait_for(watcher, 10)
    assert (events[-1].kind, events[-1].status) == ("end", "interrupted")


# --- Orphans (a process died mid-reply) --------------------------------------------


def orphan(owner, content="checkpointed text"):
    conversation = conversation_create(owner=owner)
    Message.objects.create(conversation=conversation, author="user", content="q")
    return Message.objects.create(
        conversation=conversation, author="assistant", status=Message.Status.STREAMING, content=content
    )


def test_an_orphaned_reply_is_finished_as_interrupted_with_its_checkpoint(alice, builtin_roles, short_lease):
    reply = orphan(alice)

    assert reply_reap_orphans(running=set()) == 1

    reply.refresh_from_db()
    assert (reply.status, reply.content) == ("interrupted", "checkpointed text")


async def test_a_reply_with_a_live_lease_is_not_reaped(alice, builtin_roles, short_lease, fake_openai):
    _, exchange = await start(alice, fake_openai, Reply(tokens=["a", "b"], hang_after_tokens=1))
    await events_until(exchange.reply.pk, 1)

    # As another process would see it: not running there, but its lease is alive.
    reaped = await sync_to_async(reply_reap_orphans)(running=set())

    assert reaped == 0
    await generation.shutdown()


# --- Redis goes away mid-reply ------------------------------------------------------


async def test_a_reply_completes_across_a_redis_restart(alice, builtin_roles, fake_openai, own_redis):
    tokens = [f"w{n} " for n in range(20)]
    _, exchange = await start(alice, fake_openai, Reply(tokens=tokens, delay=0.05))
    seen: list[str] = []

    async def watch():
        async for event in hub.follow(reply_id=exchange.reply.pk):
            seen.append(event.text)

    watcher = asyncio.create_task(watch())
    await events_until(exchange.reply.pk, 3)  # a few words are out before the crash
    port = own_redis.port
    own_redis.process.kill()  # as a crash would
    own_redis.stop()
    await asyncio.sleep(0.4)
    own_redis.port = port
    own_redis.start()

    await asyncio.wait_for(watcher, 15)
    saved = await Message.objects.aget(pk=exchange.reply.pk)
    assert (saved.status, saved.content) == ("complete", "".join(tokens))
    assert "".join(seen) == "".join(tokens)  # every word once, in order


def test_just_after_a_redis_restart_no_reply_is_an_orphan(alice, builtin_roles, own_redis, settings):
    settings.CHAT_LEASE_SECONDS = 1
    wait_for_uptime(1)
    assert reply_reap_orphans(running=set()) == 0  # this process has seen this Redis run
    reply = orphan(alice)  # as another process's live reply looks once a restart lost its lease
    redis_restart(own_redis)

    assert reply_reap_orphans(running=set()) == 0
    assert Message.objects.get(pk=reply.pk).status == Message.Status.STREAMING
    # Its process would have claimed the lease back by now; nobody did.
    wait_for_uptime(1)
    assert reply_reap_orphans(running=set()) == 1


def test_a_process_started_soon_after_redis_takes_no_reply_for_an_orphan(
    alice, builtin_roles, settings, monkeypatch
):
    monkeypatch.setattr(replylog, "_seen_run_ids", {})  # this process has seen no Redis run yet
    settings.CHAT_LEASE_SECONDS = 10**6  # Redis has been up for less than one lease
    reply = orphan(alice)

    assert reply_reap_orphans(running=set()) == 0

    settings.CHAT_LEASE_SECONDS = 1
    wait_for_uptime(1)
    assert reply_reap_orphans(running=set()) == 1
    assert Message.objects.get(pk=reply.pk).status == Message.Status.INTERRUPTED


def test_reaping_tells_watchers_the_reply_is_over(alice, builtin_roles, short_lease):
    reply = orphan(alice)

    reply_reap_orphans(running=set())

    assert replylog.snapshot(reply_id=reply.pk).ended


async def test_a_running_server_reaps_again_every_reap_seconds(
    alice, builtin_roles, short_lease, monkeypatch
):
    assert lifecycle.REAP_SECONDS == 30  # the README's "every 30 s"
    monkeypatch.setattr(lifecycle, "REAP_SECONDS", 0.1)
    passes = 0
    reap_once = lifecycle.reap_once

    async def counted() -> int:
        nonlocal passes
        passes += 1
        return await reap_once()

    monkeypatch.setattr(lifecycle, "reap_once", counted)
    reaper = asyncio.create_task(lifecycle.reap_forever())
    try:
        deadline = time.monotonic() + 10
        while passes < 1:  # the pass at start is over
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        started_with = passes
        reply = await sync_to_async(orphan)(alice)  # a process died after this one started

        while (await Message.objects.aget(pk=reply.pk)).status == Message.Status.STREAMING:
            assert time.monotonic() < deadline, "the running server never reaped the orphan"
            await asyncio.sleep(0.05)
    finally:
        reaper.cancel()

    saved = await Message.objects.aget(pk=reply.pk)
    assert (saved.status, saved.content) == ("interrupted", "checkpointed text")
    assert passes > started_with  # a later pass, not the one at start


async def test_a_watcher_stops_waiting_when_the_saved_reply_is_over(alice, builtin_roles, monkeypatch):
    monkeypatch.setattr(hub, "QUIET_SECONDS", 0.05)
    reply = await sync_to_async(orphan)(alice)
    # Saved as over, but no end event was ever published (Redis was down at the time).
    await Message.objects.filter(pk=reply.pk).aupdate(status="interrupted", error="gone")

    events = [e async for e in hub.follow(reply_id=reply.pk)]

    # Told it ended only after it has the whole saved text, with a real sequence number.
    assert [(e.kind, e.text, e.status, e.seq) for e in events] == [
        ("delta", "checkpointed text", "", 1),
        ("end", "", "interrupted", 2),
    ]


async def test_a_settled_watcher_is_sent_only_the_text_it_is_missing(alice, builtin_roles, monkeypatch):
    monkeypatch.setattr(hub, "QUIET_SECONDS", 0.05)
    reply = await sync_to_async(orphan)(alice)
    await Message.objects.filter(pk=reply.pk).aupdate(status="complete")

    events = [e async for e in hub.follow(reply_id=reply.pk, known="checkpointed")]

    assert [(e.kind, e.text) for e in events] == [("delta", " text"), ("end", "")]


async def test_deleting_a_conversation_stops_its_reply(alice, builtin_roles, fake_openai):
    conversation, exchange = await start(alice, fake_openai, Reply(tokens=["a", "b"], hang_after_tokens=1))
    await events_until(exchange.reply.pk, 1)

    await sync_to_async(conversation_delete)(owner=alice, conversation_id=conversation.pk)

    await asyncio.to_thread(fake_openai.wait_for_open_streams, 0, 1.0)
    await generation.wait(exchange.reply.pk)


async def test_a_long_reply_keeps_its_place_among_concurrent_replies(
    alice, builtin_roles, fake_openai, settings
):
    settings.CHAT_LEASE_SECONDS = 1
    settings.CHAT_LIMIT_CONCURRENT_REPLIES = 1
    conversation, exchange = await start(alice, fake_openai, Reply(tokens=["a", "b"], hang_after_tokens=1))
    places = f"chatsite:limits:{alice.pk}:replies"
    redis = get_redis_connection("default")
    ((_holder, first_expiry),) = redis.zrange(places, 0, -1, withscores=True)
    deadline = time.monotonic() + 10
    while time.time() < first_expiry + 0.2:  # past the lease it was admitted with
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    ((_holder, renewed_expiry),) = redis.zrange(places, 0, -1, withscores=True)
    assert renewed_expiry > first_expiry  # the running reply renewed its place
    other = await acreate(owner=alice)

    with pytest.raises(ChatError, match="You already have 1 reply being written"):
        await message_send(owner=alice, conversation_id=other.pk, content="second")

    await reply_stop(owner=alice, conversation_id=conversation.pk)
    await wait_for_reply(exchange.reply.pk)


async def test_each_finished_reply_logs_one_line_with_its_figures(alice, builtin_roles, fake_openai, caplog):
    caplog.set_level("INFO", logger="conversations.generation")
    _conversation, exchange = await start(
        alice, fake_openai, Reply(tokens=["Hello", " there"], delay=0.05, usage=(12, 2))
    )
    await wait_for_reply(exchange.reply.pk)
    await generation.wait(exchange.reply.pk)

    [record] = [r for r in caplog.records if getattr(r, "reply_id", None) == exchange.reply.pk]
    assert record.status == "complete"
    assert record.user_id == alice.pk
    assert record.model == "fake-model"
    assert (record.prompt_tokens, record.completion_tokens) == (12, 2)
    assert record.chars == len("Hello there")
    assert 0 < record.first_token_ms <= record.duration_ms
    assert f"Reply {exchange.reply.pk} complete" in record.getMessage()
    saved = await Message.objects.aget(pk=exchange.reply.pk)
    assert saved.first_token_ms == record.first_token_ms  # kept with the reply, shown on the page


async def test_a_reply_that_got_no_text_logs_no_first_token(alice, builtin_roles, fake_openai, caplog):
    caplog.set_level("INFO", logger="conversations.generation")
    _conversation, exchange = await start(alice, fake_openai, Reply(tokens=[], status=401))  # not retried
    await wait_for_reply(exchange.reply.pk)
    await generation.wait(exchange.reply.pk)

    [record] = [r for r in caplog.records if getattr(r, "reply_id", None) == exchange.reply.pk]
    assert record.status == "error"
    assert record.first_token_ms is None


async def test_a_renewal_at_the_end_does_not_claim_the_freed_slot_back(
    alice, builtin_roles, fake_openai, monkeypatch
):
    release = replylog.active_release

    async def release_then_renew(**kwargs):
        await release(**kwargs)
        await publisher()._renew()  # the publisher's tick, landing between the release and the end

    monkeypatch.setattr(replylog, "active_release", release_then_renew)
    conversation, exchange = await start(alice, fake_openai, Reply(tokens=TOKENS))

    await wait_for_reply(exchange.reply.pk)
    await generation.wait(exchange.reply.pk)

    assert get_redis_connection("default").exists(replylog.active_key(conversation.pk)) == 0


async def test_a_renewal_stuck_on_redis_does_not_hold_the_replys_end_up(
    alice, builtin_roles, fake_openai, monkeypatch
):
    monkeypatch.setattr("conversations.publisher.RETIRE_WAIT_SECONDS", 0.2)
    conversation, exchange = await start(alice, fake_openai, Reply(tokens=TOKENS, hang_after_tokens=1))
    await events_until(exchange.reply.pk, 1)  # the fake holds the reply now: a release is not missed
    out = publisher()

    async with out.renewing, asyncio.timeout(10):  # as a renewal waiting on a slow Redis holds it
        fake_openai.release()
        reply = await wait_for_reply(exchange.reply.pk, within=5.0)
        await generation.wait(exchange.reply.pk)
        slot_held = get_redis_connection("default").exists(replylog.active_key(conversation.pk))

    assert reply.status == Message.Status.COMPLETE
    assert slot_held == 0
