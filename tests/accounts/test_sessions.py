"""Sessions (accounts/sessions.py): Django's cached_db engine, one cache object a process."""

import asyncio
import contextvars

import pytest
import redis
from django.contrib.sessions.backends.cached_db import SessionStore as DjangoSessionStore

from accounts.sessions import SessionStore

pytestmark = pytest.mark.django_db(transaction=True)


async def stores_in_two_sockets(store_class):
    # Each socket's task runs in an async context of its own, as daphne starts them.
    made = [asyncio.create_task(_made(store_class), context=contextvars.Context()) for _ in range(2)]
    return await asyncio.gather(*made)


async def _made(store_class):
    return store_class()


def test_open_sockets_share_one_cache_object_not_one_each():
    first, second = asyncio.run(stores_in_two_sockets(SessionStore))
    assert first._cache is second._cache
    # Django's own engine: one each, kept as long as its socket is open.
    django_first, django_second = asyncio.run(stores_in_two_sockets(DjangoSessionStore))
    assert django_first._cache is not django_second._cache


def test_sessions_follow_a_change_of_the_cache_settings(own_redis):
    SessionStore().create()  # made with the suite's Redis

    store = SessionStore()  # after own_redis pointed the cache at a Redis of its own
    store["theme"] = "dark"
    store.create()

    assert redis.Redis.from_url(own_redis.url).keys(f"*{store.session_key}")
