"""Sessions as Django's cached_db engine keeps them, read through the process's one cache
object (chatsite/caches.py): a session's store keeps its cache object for as long as its
socket is open."""

from django.contrib.sessions.backends import cached_db, db

from chatsite.caches import session_cache


class SessionStore(cached_db.SessionStore):
    def __init__(self, session_key: str | None = None) -> None:
        self._cache = session_cache()
        # Not cached_db's own __init__: it takes the context's cache object first.
        db.SessionStore.__init__(self, session_key)
