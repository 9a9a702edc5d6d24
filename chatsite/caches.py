"""The cache as one object a process (`shared_cache()`), not one per async context.

Django gives each async context (each open chat socket's task) a cache object of its own,
and what reads the cache from a socket keeps it for as long as the socket is open: every
socket held a django-redis client, ~12 KiB of it (tracemalloc, 1,000 sockets; 59 -> 42
KiB of RSS a socket). django-redis's clients are thread-safe and share one connection
pool a process, so one object serves every socket, request and thread.
"""

from typing import Any

from django.conf import settings
from django.core.cache import BaseCache, caches

# The settings it was made from, and the object: made again when they change (a test's
# own Redis), as Django's own cache objects are.
_shared: dict[str, tuple[Any, BaseCache]] = {}


def shared_cache(alias: str = "default") -> BaseCache:
    config = caches.settings[alias]
    made = _shared.get(alias)
    if made is None or made[0] is not config:
        made = _shared[alias] = (config, caches.create_connection(alias))
    return made[1]


def session_cache() -> BaseCache:
    return shared_cache(settings.SESSION_CACHE_ALIAS)
