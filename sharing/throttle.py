"""How often a user may "continue" shared conversations: each one copies a conversation,
up to thousands of messages, into the database, so a script holding one account could
otherwise fill it. Counted per user in a fixed window, atomically in Redis."""

from django.conf import settings
from django.utils.translation import gettext as _
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from conversations.limits import LimitExceeded

WINDOW_SECONDS = 3600
# Counts the copy as it starts, then checks: atomic, so parallel posts cannot all pass.
_COUNT = """
local count = redis.call('incr', KEYS[1])
if count == 1 then redis.call('expire', KEYS[1], tonumber(ARGV[1])) end
if count > tonumber(ARGV[2]) then return math.max(1, redis.call('ttl', KEYS[1])) end
return 0
"""


def continue_count(*, user_id: int) -> None:
    """Count a copy; raise LimitExceeded past SHARE_CONTINUE_PER_HOUR (0: no limit).

    With Redis unreachable the copy goes ahead: the count guards the database, which an
    outage of Redis does not fill."""
    limit = settings.SHARE_CONTINUE_PER_HOUR
    if limit <= 0:
        return
    try:
        wait = int(
            get_redis_connection("default").eval(
                _COUNT, 1, f"chatsite:share-continue:{user_id}", WINDOW_SECONDS, limit
            )
        )
    except RedisError:
        return
    if wait:
        raise LimitExceeded(
            _("Too many conversations continued this hour. Try again in %(minutes)s minute(s).")
            % {"minutes": max(1, (wait + 59) // 60)},
            retry_after=wait,
        )
