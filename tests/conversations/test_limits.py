"""Per-user limits (messages a minute, replies at once, tokens a day); sign-in: tests/accounts."""

import asyncio
import datetime as dt
import time
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client
from django_redis import get_redis_connection

from conversations import limits
from conversations.models import Message, UserLimit
from conversations.sending import message_send
from conversations.services import ChatError, conversation_create, reply_stop
from conversations.tokens import api_token_create
from tests.conftest import PASSWORD, wait_for_reply
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)

acreate = sync_to_async(conversation_create)


async def send(user, conversation, text="hi"):
    exchange = await message_send(owner=user, conversation_id=conversation.pk, content=text)
    await wait_for_reply(exchange.reply.pk)
    return exchange


async def test_messages_over_the_per_minute_limit_are_refused(alice, builtin_roles, fake_openai, settings):
    settings.CHAT_LIMIT_MESSAGES_PER_MINUTE = 2
    conversation = await acreate(owner=alice)
    await send(alice, conversation)
    await send(alice, conversation)

    with pytest.raises(ChatError) as refused:
        await send(alice, conversation, "third")

    assert refused.value.code == "rate_limited"
    assert "2 a minute" in refused.value.message
    assert refused.value.retry_after is not None and 0 < refused.value.retry_after <= 60
    assert await Message.objects.filter(content="third").acount() == 0


async def test_replies_at_once_are_limited_per_user(alice, builtin_roles, fake_openai, settings):
    settings.CHAT_LIMIT_CONCURRENT_REPLIES = 1
    first, second = await acreate(owner=alice), await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["slow"], hang_after_tokens=1))
    running = await message_send(owner=alice, conversation_id=first.pk, content="one")

    with pytest.raises(ChatError, match="You already have 1 reply being written"):
        await message_send(owner=alice, conversation_id=second.pk, content="two")

    await reply_stop(owner=alice, conversation_id=first.pk)
    await wait_for_reply(running.reply.pk)
    await send(alice, second, "now it fits")  # the finished reply freed its place


async def test_the_daily_token_quota_counts_reported_usage(alice, builtin_roles, fake_openai, settings):
    settings.CHAT_LIMIT_DAILY_TOKENS = 100
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["big"], usage=(60, 40)))
    await send(alice, conversation)

    assert await sync_to_async(limits.tokens_used_today)(user_id=alice.pk) == 100
    with pytest.raises(ChatError, match="today's token quota"):
        await send(alice, conversation, "more")


async def test_usage_is_estimated_when_the_provider_reports_none(alice, builtin_roles, fake_openai, settings):
    conversation = await acreate(owner=alice)
    reply_text = "y" * 400
    fake_openai.queue_reply(Reply(tokens=[reply_text[i : i + 8] for i in range(0, 400, 8)], send_usage=False))

    exchange = await send(alice, conversation, "x" * 400)

    reply = await Message.objects.aget(pk=exchange.reply.pk)
    assert reply.content == reply_text and reply.prompt_tokens is None  # a real stream, no usage in it
    assert fake_openai.requests[-1].body["stream_options"] == {"include_usage": True}  # it was asked for
    prompt = "".join(message["content"] for message in fake_openai.last_messages())
    used = await sync_to_async(limits.tokens_used_today)(user_id=alice.pk)
    # About four characters a token, for what the provider was sent and what it wrote.
    assert used == limits.estimate_tokens(prompt) + limits.estimate_tokens(reply_text)
    assert used >= (400 + 400) // 4


async def test_a_users_own_limit_in_the_admin_wins(alice, bob, builtin_roles, fake_openai, settings):
    settings.CHAT_LIMIT_MESSAGES_PER_MINUTE = 100
    await UserLimit.objects.acreate(user=alice, messages_per_minute=1)
    mine, bobs = await acreate(owner=alice), await acreate(owner=bob)
    await send(alice, mine)

    with pytest.raises(ChatError):
        await send(alice, mine)
    await send(bob, bobs)
    await send(bob, bobs)  # bob keeps the site's limit


async def test_the_api_answers_429_with_retry_after(alice, builtin_roles, fake_openai, settings):
    settings.CHAT_LIMIT_MESSAGES_PER_MINUTE = 1
    conversation = await acreate(owner=alice)
    _token, raw = await sync_to_async(api_token_create)(user=alice)
    client = AsyncClient()
    headers = {"Authorization": f"Bearer {raw}"}
    first = await client.get(f"/chat/stream?session_id={conversation.pk}&message=one", headers=headers)
    assert first.status_code == 200
    async for _chunk in first.streaming_content:  # type: ignore[attr-defined]
        pass

    refused = await client.get(f"/chat/stream?session_id={conversation.pk}&message=two", headers=headers)

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 0 < int(refused["Retry-After"]) <= 60


async def test_two_sends_at_the_same_instant_cannot_both_pass_the_last_slot(
    alice, builtin_roles, fake_openai, settings
):
    settings.CHAT_LIMIT_MESSAGES_PER_MINUTE = 1
    first, second = await acreate(owner=alice), await acreate(owner=alice)

    results = await asyncio.gather(
        message_send(owner=alice, conversation_id=first.pk, content="a"),
        message_send(owner=alice, conversation_id=second.pk, content="b"),
        return_exceptions=True,
    )

    assert sorted(type(r).__name__ for r in results) == ["ChatError", "Exchange"]
    for result in results:
        if not isinstance(result, BaseException):
            await wait_for_reply(result.reply.pk)


async def test_the_daily_quota_resets_at_midnight_utc(
    alice, builtin_roles, fake_openai, settings, monkeypatch
):
    settings.TIME_ZONE = "Asia/Shanghai"  # local midnight is 16:00 UTC: the quota must not follow it
    settings.CHAT_LIMIT_DAILY_TOKENS = 100
    clock = {"now": dt.datetime(2026, 3, 1, 23, 59, 30, tzinfo=dt.UTC)}
    monkeypatch.setattr(limits, "timezone", SimpleNamespace(now=lambda: clock["now"]))
    conversation = await acreate(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["big"], usage=(60, 40)))
    await send(alice, conversation)

    with pytest.raises(ChatError, match="midnight UTC") as refused:
        await send(alice, conversation, "still the same UTC day")
    assert refused.value.retry_after is not None and 25 <= refused.value.retry_after <= 35

    clock["now"] = dt.datetime(2026, 3, 2, 0, 0, 5, tzinfo=dt.UTC)  # a new UTC day
    await send(alice, conversation, "a new day")
    assert await sync_to_async(limits.tokens_used_today)(user_id=alice.pk) > 0
    clock["now"] = dt.datetime(2026, 3, 1, 23, 59, 50, tzinfo=dt.UTC)
    # Yesterday's count is kept apart.
    assert await sync_to_async(limits.tokens_used_today)(user_id=alice.pk) == 100


# --- The fixed-window counter (the sign-in and "continue" throttles count with it) --------


def test_a_window_count_stops_at_the_first_key_past_its_limit():
    first, second = "chatsite:test:first", "chatsite:test:second"
    assert limits.window_count(keys=[first, second], limits=[1, 5], window_seconds=60) == 0

    wait = limits.window_count(keys=[first, second], limits=[1, 5], window_seconds=60)

    assert 0 < wait <= 60
    assert get_redis_connection("default").get(second) == b"1"


def test_a_hit_given_back_after_its_window_ended_leaves_no_count_behind():
    key = "chatsite:test:window"
    limits.window_count(keys=[key], limits=[1], window_seconds=60)
    get_redis_connection("default").delete(key)  # the window ended

    limits.window_give_back(key=key)

    # DECR would have left -1 there, never to expire: a hit more in every window to come.
    assert get_redis_connection("default").exists(key) == 0


def test_a_window_is_counted_by_its_scripts_sha_not_its_text():
    redis = get_redis_connection("default")
    limits.window_count(keys=["chatsite:test:sha"], limits=[5], window_seconds=60)  # loads both
    limits.window_give_back(key="chatsite:test:sha")
    before = redis.info("commandstats")

    limits.window_count(keys=["chatsite:test:sha"], limits=[5], window_seconds=60)
    limits.window_give_back(key="chatsite:test:sha")

    after = redis.info("commandstats")
    calls = {
        name: after.get(f"cmdstat_{name}", {}).get("calls", 0)
        - before.get(f"cmdstat_{name}", {}).get("calls", 0)
        for name in ("eval", "evalsha")
    }
    assert calls == {"eval": 0, "evalsha": 2}
    assert redis.get("chatsite:test:sha") == b"0"


# --- The sign-in window (the throttle itself: accounts/throttle.py) -------------------


def test_failed_sign_ins_count_for_15_minutes(alice, settings):
    assert settings.SIGNIN_LIMIT_WINDOW_SECONDS == 15 * 60  # the README's "per 15 minutes"
    settings.SIGNIN_LIMIT_PER_ACCOUNT = 1
    client = Client()
    client.post("/accounts/login/", {"username": "alice", "password": "wrong"})

    refused = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})

    assert refused.status_code == 429
    assert 14 * 60 < int(refused["Retry-After"]) <= 15 * 60
    assert "15 minute" in refused.content.decode()


def test_failed_sign_ins_are_forgotten_once_the_window_is_over(alice, settings):
    # Long enough that a loaded machine's password hashing (a second or more) does not
    # outlast it between the two first requests.
    settings.SIGNIN_LIMIT_WINDOW_SECONDS = 5
    settings.SIGNIN_LIMIT_PER_ACCOUNT = 1
    Client().post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert Client().post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code == 429

    deadline = time.monotonic() + 30
    sign_in = {"username": "alice", "password": PASSWORD}
    while (status := Client().post("/accounts/login/", sign_in).status_code) == 429:
        assert time.monotonic() < deadline, "the failures were never forgotten"
        time.sleep(0.2)

    assert status == 302
