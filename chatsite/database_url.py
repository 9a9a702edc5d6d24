"""DATABASE_URL (`postgres://user:password@host:5432/name?sslmode=require`) as Django's
database settings: PostgreSQL through psycopg 3, each thread keeping its connection.

Why kept connections (CONN_MAX_AGE, with health checks) and not Django's pool: the async
code reaches the database from a few long-lived threads (conversations.db: one writer,
and the event loop's thread pool), each of which keeps one connection, as it does on
SQLite. Django's pool was tried first: a connection goes back to it only when Django
closes it, and one borrowed by a thread that ended without closing it (a `sync_to_async`
call that read the database in passing, an event loop's pool shut down) never did. The
suite's run on PostgreSQL ran the pool dry after a few hundred tests, each request then
waiting out the pool's timeout. A kept connection that broke (the server restarted) is
found by the health check before its next use and opened again.
"""

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

SCHEMES = frozenset({"postgres", "postgresql"})


def database_settings(url: str) -> dict[str, Any]:
    """Django's DATABASES["default"] for a PostgreSQL URL; anything else is refused."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured("DATABASE_URL has a port that is not a number.") from None
    if parts.scheme not in SCHEMES:
        raise ImproperlyConfigured(
            f"DATABASE_URL must start with postgres:// (unset, Chatsite uses SQLite), not {parts.scheme!r}://."
        )
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured("DATABASE_URL names no database: postgres://user:password@host:5432/NAME")
    options: dict[str, Any] = dict(parse_qsl(parts.query))  # sslmode, sslrootcert, ...
    # A server down or restarting refuses at once rather than after the OS's timeout: the
    # request is answered 503 (chatsite.database_unavailable).
    options.setdefault("connect_timeout", 5)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(port or ""),
        "OPTIONS": options,
        "CONN_MAX_AGE": None,
        "CONN_HEALTH_CHECKS": True,
    }
