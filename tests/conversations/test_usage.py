"""What replies have cost, per user: the settings page's figures and the admin's usage list."""

import csv
import datetime as dt
import io

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client

from conversations.models import Conversation, Message
from conversations.sending import message_send
from conversations.services import conversation_create
from conversations.usage import Usage, usage_summary
from tests.conftest import wait_for_reply
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 12, 15, 12, 0, tzinfo=dt.UTC)


def reply_at(
    conversation: Conversation, when: dt.datetime, prompt: int | None, completion: int | None
) -> None:
    message = Message.objects.create(
        conversation=conversation,
        author=Message.Author.ASSISTANT,
        content="an answer",
        prompt_tokens=prompt,
        completion_tokens=completion,
    )
    Message.objects.filter(pk=message.pk).update(created_at=when)  # auto_now_add ignores a given time


def test_today_and_this_month_count_only_my_replies_and_their_tokens(alice, bob, builtin_roles):
    mine = conversation_create(owner=alice)
    reply_at(mine, NOW - dt.timedelta(hours=1), 100, 20)
    reply_at(mine, NOW - dt.timedelta(days=3), 50, 5)
    reply_at(mine, NOW - dt.timedelta(days=20), 999, 999)  # last month
    reply_at(mine, NOW - dt.timedelta(minutes=5), None, None)  # failed before any usage
    Message.objects.create(
        conversation=mine, author=Message.Author.USER, content="a question", prompt_tokens=7
    )
    reply_at(conversation_create(owner=bob), NOW - dt.timedelta(hours=1), 1000, 1000)

    summary = usage_summary(user_id=alice.pk, now=NOW)

    assert summary.today == Usage(replies=2, prompt_tokens=100, completion_tokens=20)
    assert summary.month == Usage(replies=3, prompt_tokens=150, completion_tokens=25)
    assert summary.month.tokens == 175


def test_today_and_the_month_begin_at_midnight_utc(alice, builtin_roles):
    first_of_december = dt.datetime(2026, 12, 1, 0, 30, tzinfo=dt.UTC)
    mine = conversation_create(owner=alice)
    reply_at(mine, first_of_december - dt.timedelta(minutes=40), 10, 1)  # 30 November, 23:50 UTC

    summary = usage_summary(
        user_id=alice.pk, now=first_of_december.astimezone(dt.timezone(dt.timedelta(hours=8)))
    )

    assert summary.today == Usage() and summary.month == Usage()


@pytest.mark.django_db(transaction=True)
async def test_the_summary_shows_what_the_daily_limit_counted(alice, builtin_roles, fake_openai, settings):
    settings.CHAT_LIMIT_DAILY_TOKENS = 5000
    conversation = await sync_to_async(conversation_create)(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["Hi", " there"], usage=(40, 2)))
    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="Hello")
    await wait_for_reply(exchange.reply.pk)

    summary = await sync_to_async(usage_summary)(user_id=alice.pk)

    assert summary.today == Usage(replies=1, prompt_tokens=40, completion_tokens=2)
    assert summary.limit_tokens_today == 42
    assert summary.daily_tokens_left == 5000 - 42


def test_without_redis_the_limits_count_is_unknown_and_the_page_still_shows(
    alice, builtin_roles, own_redis, settings
):
    settings.CHAT_LIMIT_DAILY_TOKENS = 5000
    own_redis.stop()  # a real Redis, really gone
    client = Client()
    client.force_login(alice)  # the session is in the database too (cached_db)

    response = client.get("/accounts/settings/")

    assert response.status_code == 200
    assert "Daily limit: 5000 tokens (today's count is unavailable right now)." in response.content.decode()


def test_the_settings_page_shows_my_usage_against_my_limits(client, alice, builtin_roles, settings):
    settings.CHAT_LIMIT_DAILY_TOKENS = 0
    settings.CHAT_LIMIT_MESSAGES_PER_MINUTE = 12
    settings.CHAT_LIMIT_CONCURRENT_REPLIES = 1
    reply_at(conversation_create(owner=alice), dt.datetime.now(dt.UTC), 300, 45)
    client.force_login(alice)

    page = client.get("/accounts/settings/").content.decode()

    assert '<th scope="row">Today (UTC)</th><td>1</td><td>300</td><td>45</td>' in page
    assert "No daily token limit." in page
    assert "At most 12 messages a minute." in page
    assert "At most 1 reply being written at once." in page


# --- The admin's usage list ---------------------------------------------------------


@pytest.fixture
def admin_client(client, builtin_roles):
    admin = get_user_model().objects.create_superuser(username="root", password="x-admin-password-1")
    client.force_login(admin)
    return client


def test_staff_see_each_users_usage_and_export_it_as_csv(admin_client, alice, bob):
    now = dt.datetime.now(dt.UTC)
    reply_at(conversation_create(owner=alice), now, 300, 45)
    reply_at(conversation_create(owner=bob), now, 10, 1)
    reply_at(conversation_create(owner=alice), now - dt.timedelta(days=40), 5000, 5000)  # not this month
    get_user_model().objects.filter(pk=bob.pk).update(username="=HYPERLINK(1)")  # a name like a formula

    listing = admin_client.get("/admin/conversations/userusage/?o=-5")  # by tokens this month, most first
    exported = admin_client.post(
        "/admin/conversations/userusage/",
        {"action": "export_csv", "_selected_action": [str(alice.pk), str(bob.pk)]},
    )

    assert listing.status_code == 200
    rows = listing.content.decode()
    assert rows.index("alice") < rows.index("HYPERLINK")
    assert exported["Content-Type"] == "text/csv; charset=utf-8"
    table = list(csv.reader(io.StringIO(exported.content.decode())))
    assert table[0] == [
        "user",
        *("today_replies", "today_prompt_tokens", "today_completion_tokens"),
        *("month_replies", "month_prompt_tokens", "month_completion_tokens"),
    ]
    assert sorted(table[1:]) == [
        ["'=HYPERLINK(1)", "1", "10", "1", "1", "10", "1"],
        ["alice", "1", "300", "45", "1", "300", "45"],
    ]


def test_the_usage_list_is_for_staff_only_and_deletes_nobody(client, admin_client, alice):
    outsider = Client()
    outsider.force_login(alice)

    refused = outsider.get("/admin/conversations/userusage/")
    delete = admin_client.get(f"/admin/conversations/userusage/{alice.pk}/delete/")

    assert refused.status_code == 302 and "/admin/login/" in refused["Location"]
    assert delete.status_code == 403
    assert get_user_model().objects.filter(pk=alice.pk).exists()
