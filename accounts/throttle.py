"""Sign-in throttling: failed sign-ins per client IP and per account, counted atomically in Redis.

Every attempt is counted as it starts, and a successful one is given back, so a burst of
parallel guesses cannot all pass before the first is counted.
"""

from contextlib import suppress

from django.conf import settings
from django.utils.translation import gettext as _
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from conversations.limits import LimitExceeded

# Counts the attempt for the IP and for the account, then checks both: atomic, so a
# burst of parallel guesses cannot all pass before the first is counted.
_SIGNIN_ATTEMPT = """
for i = 1, 2 do
  local count = redis.call('incr', KEYS[i])
  if count == 1 then redis.call('expire', KEYS[i], tonumber(ARGV[1])) end
  local limit = tonumber(ARGV[i + 1])
  if limit > 0 and count > limit then return math.max(1, redis.call('ttl', KEYS[i])) end
end
return 0
"""


def _signin_keys(*, ip: str, username: str) -> list[str]:
    return [f"chatsite:signin:ip:{ip}", f"chatsite:signin:user:{username.strip().lower()}"]


def signin_attempt(*, ip: str, username: str) -> None:
    """Count a sign-in attempt; raise LimitExceeded when this IP or account has had too many.

    With Redis unreachable, sign-in stays possible: an outage must not lock everyone out.
    """
    try:
        wait = int(
            get_redis_connection("default").eval(
                _SIGNIN_ATTEMPT,
                2,
                *_signin_keys(ip=ip, username=username),
                settings.SIGNIN_LIMIT_WINDOW_SECONDS,
                settings.SIGNIN_LIMIT_PER_IP,
                settings.SIGNIN_LIMIT_PER_ACCOUNT,
            )
        )
    except RedisError:
        return
    if wait:
        raise LimitExceeded(
            _("Too many sign-in attempts. Try again in %(minutes)s minute(s).")
            % {"minutes": max(1, (wait + 59) // 60)},
            retry_after=wait,
        )


def signin_succeeded(*, ip: str, username: str) -> None:
    """A good password is not a failed attempt: the IP's count gives it back (an office
    behind one address must not lock itself out by signing in), and the account's count
    starts again. Counted first and given back after, so parallel guesses still count."""
    ip_key, account_key = _signin_keys(ip=ip, username=username)
    with suppress(RedisError):
        connection = get_redis_connection("default")
        with connection.pipeline(transaction=True) as pipe:
            pipe.decr(ip_key)
            pipe.delete(account_key)
            pipe.execute()
