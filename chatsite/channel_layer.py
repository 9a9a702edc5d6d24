"""The channel layer: channels-redis, with a pool that waits for a free connection.

channels-redis makes a plain redis-py pool, which raises MaxConnectionsError once every
connection is busy. A thousand chat sockets closing at once (each leaving its groups)
raised it by the dozen (`./run bench`, N=1,000), and so would as many sockets
reconnecting after a restart, failing their handshakes. Here a command waits for a
connection, up to REDIS_POOL_TIMEOUT seconds, as the reply engine's own commands do.
"""

from typing import Any

import redis.asyncio as aioredis
from channels_redis.core import RedisChannelLayer
from django.conf import settings


class ChannelLayer(RedisChannelLayer):
    def create_pool(self, index: int) -> Any:
        host = dict(self.hosts[index])
        address = host.pop("address", None)
        if address is None:  # Sentinel, or host and port: channels-redis's own pool
            return super().create_pool(index)
        return aioredis.BlockingConnectionPool.from_url(address, timeout=settings.REDIS_POOL_TIMEOUT, **host)
