"""REDIS_URL, and REDIS_SENTINELS when Redis is run for high availability, as settings.

With sentinels, no client is given the master's address: each asks the sentinels which
server is the master of REDIS_SENTINEL_MASTER now, and asks again once that server
fails or refuses a write, so a failover is followed without a restart. REDIS_URL then
gives the scheme (`rediss://` for TLS), username, password and database; its host is
not used. The async clients (reply engine, channel layer, health check) are made in
conversations.replylog from the same settings.
"""

from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from redis.sentinel import SentinelManagedSSLConnection


def sentinel_addresses(items: list[str]) -> list[tuple[str, int]]:
    """REDIS_SENTINELS ("host:port,host:port") as (host, port) pairs."""
    addresses = []
    for item in items:
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ImproperlyConfigured(f"REDIS_SENTINELS lists host:port pairs, not {item!r}")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def sentinel_master_checked(name: str) -> str:
    # django-redis reads the service name from its URL's host, which urllib lowercases.
    if not name or urlsplit(f"redis://{name}/").hostname != name:
        raise ImproperlyConfigured(
            f"REDIS_SENTINEL_MASTER must be a lowercase name that can stand as a URL's host, not {name!r}"
        )
    return name


def cache_settings(
    url: str,
    *,
    sentinels: list[tuple[str, int]],
    master: str,
    sentinel_kwargs: dict[str, Any],
    options: dict[str, Any],
) -> dict[str, Any]:
    """django-redis's LOCATION and OPTIONS: REDIS_URL's server, or the sentinels' master."""
    if not sentinels:
        return {"LOCATION": url, "OPTIONS": options}
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    location = parts._replace(netloc=f"{credentials}@{master}" if credentials else master).geturl()
    pool_kwargs = dict(options.get("CONNECTION_POOL_KWARGS", {}))
    if parts.scheme == "rediss":
        # from_url would pick a plain SSLConnection, which connects to the URL's host.
        pool_kwargs["connection_class"] = SentinelManagedSSLConnection
    return {
        # One URL, not a string: given a string, SentinelClient adds a second pool of
        # replicas and reads from it, and a replica can still hold a session that was
        # just deleted from the master, or not yet hold one just written.
        "LOCATION": [location],
        "OPTIONS": {
            **options,
            "CLIENT_CLASS": "django_redis.client.SentinelClient",
            "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
            "SENTINELS": sentinels,
            "SENTINEL_KWARGS": sentinel_kwargs,
            "CONNECTION_POOL_KWARGS": pool_kwargs,
        },
    }
