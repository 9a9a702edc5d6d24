"""Per-user limits, counted atomically in Redis (sign-in throttling: accounts/throttle.py).

- messages per minute, replies being written at once, and tokens per day (UTC) per
  user: the site's settings, overridden per user in the admin (UserLimit).
- the fixed-window counter the other apps' throttles count with (window_count): sign-ins
  (accounts/throttle.py), "continue" of shared conversations (sharing/throttle.py).

Every check-and-count is one Lua script, so two requests at the same instant cannot
both slip under a limit. A refused message is not saved (the user's text stays in their
input box or API client); it does count as an attempt against the per-minute limit.
"""

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django_redis import get_redis_connection
from redis.commands.core import Script as SyncScript

from conversations import replylog
from conversations.models import UserLimit


@dataclass(frozen=True)
class Limits:
    """0 means no limit."""

    messages_per_minute: int
    concurrent_replies: int
    daily_tokens: int


class LimitExceeded(Exception):
    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = max(1, retry_after)


def limits_for(*, user_id: int) -> Limits:
    override = UserLimit.objects.filter(user_id=user_id).first()

    def pick(field: str, default: int) -> int:
        value = getattr(override, field, None) if override else None
        return default if value is None else int(value)

    return Limits(
        messages_per_minute=pick("messages_per_minute", settings.CHAT_LIMIT_MESSAGES_PER_MINUTE),
        concurrent_replies=pick("concurrent_replies", settings.CHAT_LIMIT_CONCURRENT_REPLIES),
        daily_tokens=pick("daily_tokens", settings.CHAT_LIMIT_DAILY_TOKENS),
    )


def _keys(user_id: int) -> tuple[str, str, str]:
    today = timezone.now().date().isoformat()
    return (
        f"chatsite:limits:{user_id}:minute",
        f"chatsite:limits:{user_id}:replies",
        f"chatsite:limits:{user_id}:tokens:{today}",
    )


def _seconds_to_midnight() -> int:
    now = timezone.now()
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return int((midnight - now).total_seconds()) + 1


_ADMIT = """
local now = tonumber(ARGV[1])
local per_minute, concurrent, daily = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if daily > 0 and tonumber(redis.call('get', KEYS[3]) or '0') >= daily then
  return {'tokens', 0}
end
redis.call('zremrangebyscore', KEYS[2], '-inf', now)
if concurrent > 0 and redis.call('zcard', KEYS[2]) >= concurrent then
  local first = redis.call('zrange', KEYS[2], 0, 0, 'WITHSCORES')
  return {'concurrent', math.ceil(tonumber(first[2]) - now)}
end
if per_minute > 0 then
  local count = redis.call('incr', KEYS[1])
  if count == 1 then redis.call('expire', KEYS[1], 60) end
  if count > per_minute then return {'minute', redis.call('ttl', KEYS[1])} end
end
redis.call('zadd', KEYS[2], now + tonumber(ARGV[6]), ARGV[5])
redis.call('expire', KEYS[2], tonumber(ARGV[6]))
return {'ok', 0}
"""


def limits_off(limits: Limits) -> bool:
    return not (limits.messages_per_minute or limits.concurrent_replies or limits.daily_tokens)


async def reply_admit(*, user_id: int, limits: Limits, holder: str, lease: int) -> None:
    """Count a new message and its reply against the user's limits, or raise LimitExceeded.

    With every limit off, nothing is counted and Redis is not asked.
    """
    if limits_off(limits):
        return
    verdict, wait = cast(
        Any,
        await replylog.script(_ADMIT)(
            keys=list(_keys(user_id)),
            args=[
                time.time(),
                limits.messages_per_minute,
                limits.concurrent_replies,
                limits.daily_tokens,
                holder,
                lease,
            ],
            client=replylog.client(),
        ),
    )
    verdict = verdict.decode() if isinstance(verdict, bytes) else verdict
    if verdict == "ok":
        return
    if verdict == "tokens":
        raise LimitExceeded(
            _("You have used today's token quota (%(quota)s). It resets at midnight UTC.")
            % {"quota": limits.daily_tokens},
            retry_after=_seconds_to_midnight(),
        )
    if verdict == "concurrent":
        raise LimitExceeded(
            ngettext(
                "You already have %(count)s reply being written. Wait for it to finish.",
                "You already have %(count)s replies being written. Wait for one to finish.",
                limits.concurrent_replies,
            )
            % {"count": limits.concurrent_replies},
            retry_after=int(wait),
        )
    raise LimitExceeded(
        _("You are sending messages too quickly (%(count)s a minute). Try again in %(seconds)s s.")
        % {"count": limits.messages_per_minute, "seconds": int(wait)},
        retry_after=int(wait),
    )


def reply_renew_queue(pipe: Any, *, user_id: int, holder: str, lease: int) -> None:
    """Queue, on the publisher's pipeline, what keeps a reply still being written in its
    place among the user's concurrent replies."""
    replies = _keys(user_id)[1]
    # GT: only ever moves the expiry later; a member the key's expiry dropped is added back.
    pipe.zadd(replies, {holder: time.time() + lease}, gt=True)
    pipe.expire(replies, lease)


async def reply_done(*, user_id: int, holder: str, tokens: int) -> None:
    """Free the reply's place and count its tokens against today's quota."""
    _minute, replies, daily = _keys(user_id)
    async with replylog.client().pipeline(transaction=True) as pipe:
        pipe.zrem(replies, holder)
        if tokens > 0:
            pipe.incrby(daily, tokens)
            pipe.expire(daily, 2 * 24 * 3600)
        await pipe.execute()


# Counts a hit on each key, then checks that key's limit (0: none), stopping at the first
# key past it: atomic, so a burst of parallel requests cannot all pass before the first is
# counted. A window starts at its key's first hit.
_WINDOW_COUNT = """
for i = 1, #KEYS do
  local count = redis.call('incr', KEYS[i])
  if count == 1 then redis.call('expire', KEYS[i], tonumber(ARGV[1])) end
  local limit = tonumber(ARGV[i + 1])
  if limit > 0 and count > limit then return math.max(1, redis.call('ttl', KEYS[i])) end
end
return 0
"""

# Only while the window lasts: DECR on a key gone with its window would make one that
# never expires.
_WINDOW_GIVE_BACK = """
if redis.call('exists', KEYS[1]) == 1 then redis.call('decr', KEYS[1]) end
return 0
"""


# Sent by their SHA (EVALSHA), as the reply engine's scripts are (replylog.script); redis-py
# loads a script again by itself when Redis answers NOSCRIPT (after a restart).
_sync_scripts: dict[str, SyncScript] = {}


def _sync_script(source: str) -> SyncScript:
    existing = _sync_scripts.get(source)
    if existing is None:
        existing = _sync_scripts[source] = get_redis_connection("default").register_script(source)
    return existing


def window_count(*, keys: Sequence[str], limits: Sequence[int], window_seconds: int) -> int:
    """Count a hit in each key's fixed window of `window_seconds`, in order, up to the
    first key past its limit (the same place in `limits`; 0: no limit). The seconds until
    that key's window ends, or 0 when every key is within its limit.

    Raises RedisError with Redis unreachable: each caller says what an outage allows."""
    wait = _sync_script(_WINDOW_COUNT)(
        keys=list(keys), args=[window_seconds, *limits], client=get_redis_connection("default")
    )
    return int(cast(Any, wait))


def window_give_back(*, key: str) -> None:
    """Take back one hit window_count counted on `key` (a request that turned out not to
    count), unless its window has ended meanwhile. Raises RedisError with Redis unreachable."""
    _sync_script(_WINDOW_GIVE_BACK)(keys=[key], client=get_redis_connection("default"))


def tokens_used_today(*, user_id: int) -> int:
    return int(get_redis_connection("default").get(_keys(user_id)[2]) or 0)


def estimate_tokens(text: str) -> int:
    """About four characters a token: used when the provider does not report usage."""
    return (len(text) + 3) // 4
