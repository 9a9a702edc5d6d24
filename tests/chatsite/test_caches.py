"""The cache as one object a process (chatsite/caches.py), and the sessions read through it."""

import asyncio
import contextvars

import pytest
import redis
from django.contrib.sessions.backends.cached_db import SessionStore as DjangoSessionStore
from django.core.cache import caches

from accounts.sessions import SessionStore
from chatsite.caches import shared_cache
from chatsite.embedded_redis import EmbeddedRedis

pytestmark = pytest.mark.django_db(transaction=True)


async def in_two_sockets(make):
    # Each socket's task runs in an async context of its own, as daphne starts them.
    made = [asyncio.create_task(_made(make), context=contextvars.Context()) for _ in range(2)]
    return await asyncio.gather(*made)


async def _made(make):
    return make()


def test_open_sockets_share_one_cache_object_not_one_each():
    first, second = asyncio.run(in_two_sockets(shared_cache))
    assert first is second
    # Django's own: one each, kept for as long as its socket is open.
    django_first, django_second = asyncio.run(in_two_sockets(lambda: caches["default"]))
    assert django_first is not django_second


def test_sessions_are_read_through_the_one_cache_object():
    first, second = asyncio.run(in_two_sockets(SessionStore))
    assert first._cache is second._cache is shared_cache()
    django_first, django_second = asyncio.run(in_two_sockets(DjangoSessionStore))
    assert django_first._cache is not django_second._cache


def test_the_cache_object_follows_a_change_of_the_cache_settings(settings):
    before = SessionStore()
    before.create()  # the suite's Redis
    server = EmbeddedRedis().start()
    try:
        settings.CACHES = {
            **settings.CACHES,
            "default": {**settings.CACHES["default"], "LOCATION": server.url},
        }
        after = SessionStore()
        after.create()

        held = redis.Redis.from_url(server.url)
        assert held.keys(f"*{after.session_key}")
        assert not held.keys(f"*{before.session_key}")
    finally:
        server.stop()
