"""The channel layer: channels-redis, with a pool that waits for a free connection.

channels-redis makes a plain redis-py pool, which raises MaxConnectionsError once every
connection is busy. A thousand chat sockets closing at once (each leaving its groups)
raised it by the dozen (`./run bench`, N=1,000), and so would as many sockets
reconnecting after a restart, failing their handshakes. Here a command waits for a
connection, up to REDIS_POOL_TIMEOUT seconds, as the reply engine's own commands do.

The pool is the reply engine's kind (conversations.replylog.pool_create), so the layer
goes where every other client goes: REDIS_URL's server, or the master the sentinels
name (REDIS_SENTINELS), following a failover. A host's entries are connection options.
"""

from typing import Any

from channels_redis.core import RedisChannelLayer

from conversations import replylog


class ChannelLayer(RedisChannelLayer):
    def create_pool(self, index: int) -> Any:
        return replylog.pool_create(**self.hosts[index])
