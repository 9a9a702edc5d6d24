"""A serving process's start and shutdown hooks: the reaper."""

import asyncio
import logging

import pytest
from asgiref.sync import sync_to_async

from conversations import lifecycle
from conversations.models import Message
from conversations.services import conversation_create

pytestmark = pytest.mark.django_db(transaction=True)


def streaming_reply(owner) -> Message:
    conversation = conversation_create(owner=owner)
    Message.objects.create(conversation=conversation, author="user", content="q")
    return Message.objects.create(
        conversation=conversation, author="assistant", status=Message.Status.STREAMING, content="so far"
    )


async def test_with_redis_down_the_reaper_takes_nothing_for_an_orphan(
    alice, builtin_roles, own_redis, caplog
):
    reply = await sync_to_async(streaming_reply)(alice)
    own_redis.stop()  # the lease cannot be read: its reply may well be alive elsewhere
    lifecycle_task = asyncio.ensure_future(lifecycle.reap_forever())

    with caplog.at_level(logging.WARNING, logger="conversations.lifecycle"):
        await asyncio.sleep(0.5)
    lifecycle_task.cancel()

    assert (await Message.objects.aget(pk=reply.pk)).status == Message.Status.STREAMING
    assert "Redis unreachable" in caplog.text
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)


async def test_a_shutdown_step_that_fails_is_logged_and_the_next_still_runs(caplog):
    from twisted.internet import defer

    ran = []

    async def fails() -> None:
        raise RuntimeError("the sockets could not be told")

    async def runs() -> None:
        ran.append("closed")

    steps: defer.Deferred[None] = defer.succeed(None)
    lifecycle._then(steps, "Telling sockets to reconnect", fails)
    lifecycle._then(steps, "Closing the model clients", runs)
    with caplog.at_level(logging.ERROR, logger=lifecycle.logger.name):
        await steps.asFuture(asyncio.get_running_loop())

    assert ran == ["closed"]
    assert "Telling sockets to reconnect on shutdown failed" in caplog.text
    assert "RuntimeError: the sockets could not be told" in caplog.text  # with its traceback
