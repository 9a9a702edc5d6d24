"""GET /metrics: who may read it, and that each figure moves when the engine does."""

import asyncio
from collections.abc import AsyncGenerator
from typing import cast

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from conversations import generation, hub
from conversations.replylog import Event
from conversations.sending import message_send
from conversations.services import ChatError, conversation_create
from tests.conftest import database_write_locked, make_user, wait_for_reply
from tests.fake_openai import Reply

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(client: Client | None = None, authorization: str = "") -> dict[tuple[str, tuple], float]:
    headers = {"Authorization": authorization} if authorization else {}
    response = (client or Client()).get("/metrics", headers=headers)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def staff_client() -> Client:
    operator = make_user("operator")
    operator.is_staff = True
    operator.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(operator)
    return client


def value(figures: dict, name: str, **labels: str) -> float:
    return figures.get((name, tuple(sorted(labels.items()))), 0.0)


def test_signed_out_callers_are_asked_for_a_token():
    response = Client().get("/metrics")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_users_who_are_not_staff_are_refused(alice):
    client = Client()
    client.force_login(alice)

    assert client.get("/metrics").status_code == 403


def test_staff_may_read_them():
    figures = scrape(staff_client())

    assert ("chatsite_replies_in_flight", ()) in figures


def test_a_scraper_reads_them_with_the_metrics_token(settings):
    settings.METRICS_TOKEN = "scrape-me-please"

    assert ("chatsite_replies_in_flight", ()) in scrape(authorization="Bearer scrape-me-please")
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403


def test_without_a_metrics_token_no_bearer_token_is_accepted(settings):
    settings.METRICS_TOKEN = ""

    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


async def test_a_finished_reply_moves_its_counters(alice, builtin_roles, fake_openai):
    client = await sync_to_async(staff_client)()
    before = await sync_to_async(scrape)(client)
    conversation = await sync_to_async(conversation_create)(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["Counted", " once"], delay=0.02, usage=(10, 2)))

    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="go")
    await wait_for_reply(exchange.reply.pk)
    await generation.wait(exchange.reply.pk)
    after = await sync_to_async(scrape)(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("chatsite_replies_started_total") == 1
    assert moved("chatsite_replies_finished_total", status="complete") == 1
    assert moved("chatsite_tokens_relayed_total") == 2
    assert moved("chatsite_upstream_first_token_seconds_count") == 1
    assert value(after, "chatsite_replies_in_flight") == value(before, "chatsite_replies_in_flight")


async def test_refusals_and_upstream_errors_are_counted_by_kind(alice, builtin_roles, fake_openai):
    client = await sync_to_async(staff_client)()
    before = await sync_to_async(scrape)(client)
    conversation = await sync_to_async(conversation_create)(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["a"], hang_after_tokens=1))
    first = await message_send(owner=alice, conversation_id=conversation.pk, content="go")
    with pytest.raises(ChatError):
        await message_send(owner=alice, conversation_id=conversation.pk, content="again")
    # Released before the model has the request, the stream would hang on a later release.
    await asyncio.to_thread(fake_openai.wait_for_request, 1, 10)
    fake_openai.release()
    await wait_for_reply(first.reply.pk)
    await generation.wait(first.reply.pk)
    failing = await sync_to_async(conversation_create)(owner=alice)
    fake_openai.queue_reply(Reply(tokens=[], status=401))
    refused_upstream = await message_send(owner=alice, conversation_id=failing.pk, content="go")
    await wait_for_reply(refused_upstream.reply.pk)
    after = await sync_to_async(scrape)(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("chatsite_refusals_total", code="reply_in_progress") == 1
    assert moved("chatsite_upstream_errors_total", kind="AuthenticationError") == 1


async def test_watchers_are_counted_while_they_follow(alice, builtin_roles, fake_openai):
    client = await sync_to_async(staff_client)()
    conversation = await sync_to_async(conversation_create)(owner=alice)
    fake_openai.queue_reply(Reply(tokens=["a", "b"], hang_after_tokens=1))
    exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="go")
    before = value(await sync_to_async(scrape)(client), "chatsite_watchers")

    following = cast(AsyncGenerator[Event, None], hub.follow(reply_id=exchange.reply.pk))
    await asyncio.wait_for(anext(following), 10)  # joined, and the first text arrived
    during = value(await sync_to_async(scrape)(client), "chatsite_watchers")
    await following.aclose()
    after = value(await sync_to_async(scrape)(client), "chatsite_watchers")
    fake_openai.release()
    await wait_for_reply(exchange.reply.pk)
    await asyncio.sleep(0)

    assert (during - before, after - before) == (1, 0)


def test_a_request_that_fails_on_the_database_is_counted(alice, builtin_roles):
    operator = staff_client()
    conversation = conversation_create(owner=alice, title="Locked out")
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    before = value(scrape(operator), "chatsite_database_errors_total", where="request")
    with database_write_locked():
        response = client.post(f"/c/{conversation.pk}/rename/", {"title": "New"})

    assert response.status_code == 503
    after = value(scrape(operator), "chatsite_database_errors_total", where="request")
    assert after == before + 1
