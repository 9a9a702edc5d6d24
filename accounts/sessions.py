"""Sessions as Django's cached_db engine keeps them, read through one cache object a process.

Django gives each async context (each open chat socket's task) a cache object of its own,
and a session's store keeps the one it was made with: every idle socket held a django-redis
client, ~12 KiB of it (tracemalloc, 1,000 sockets; 59 -> 42 KiB of RSS a socket). Its
clients are thread-safe and share one connection pool, so one object serves every socket
and request.
"""

from typing import Any

from django.conf import settings
from django.contrib.sessions.backends import cached_db, db
from django.core.cache import BaseCache, caches

# The cache's settings it was made from, and the object: made again when they change (a
# test's own Redis), as Django's own cache objects are.
_shared: tuple[Any, BaseCache] | None = None


def _session_cache() -> BaseCache:
    global _shared
    alias = settings.SESSION_CACHE_ALIAS
    config = caches.settings[alias]
    if _shared is None or _shared[0] is not config:
        _shared = (config, caches.create_connection(alias))
    return _shared[1]


class SessionStore(cached_db.SessionStore):
    def __init__(self, session_key: str | None = None) -> None:
        self._cache = _session_cache()
        # Not cached_db's own __init__: it takes the context's cache object first.
        db.SessionStore.__init__(self, session_key)
