"""Per-user limits (messages a minute, replies at once, tokens a day) and sign-in throttling."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client

from conversations import limits
from conversations.models import Message, UserLimit
from conversations.services import ChatError, api_token_create, conversation_create, message_send, reply_stop
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

    with pytest.raises(ChatError, match="already have 1 replies"):
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


async def test_usage_is_estimated_when_the_provider_reports_none(alice, builtin_roles, settings):
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    conversation = await acreate(owner=alice)

    await send(alice, conversation, "x" * 400)  # fails at once: no provider, but the prompt was built

    used = await sync_to_async(limits.tokens_used_today)(user_id=alice.pk)
    assert used >= 100


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


# --- Sign-in ------------------------------------------------------------------------


def test_sign_in_is_refused_after_too_many_attempts_for_an_account(alice, settings):
    settings.SIGNIN_LIMIT_PER_ACCOUNT = 3
    client = Client()
    for _ in range(3):
        client.post("/accounts/login/", {"username": "alice", "password": "wrong"})

    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 429
    assert "Too many sign-in attempts" in response.content.decode()
    assert int(response["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session


def test_sign_in_failures_are_limited_per_ip_across_accounts(alice, settings):
    settings.SIGNIN_LIMIT_PER_IP = 2
    client = Client()
    for name in ["x", "y"]:
        client.post("/accounts/login/", {"username": name, "password": "wrong"})

    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 429


def test_a_correct_sign_in_under_the_limit_works(alice, settings):
    settings.SIGNIN_LIMIT_PER_ACCOUNT = 3
    client = Client()
    client.post("/accounts/login/", {"username": "alice", "password": "wrong"})

    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 302


def test_successful_sign_ins_do_not_count_against_the_ip(alice, settings):
    settings.SIGNIN_LIMIT_PER_IP = 3
    for _ in range(6):  # an office behind one address, everyone signing in
        client = Client()
        response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
        assert response.status_code == 302

    for name in ["x", "y", "z"]:  # failures still count
        Client().post("/accounts/login/", {"username": name, "password": "wrong"})
    assert Client().post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code == 429
