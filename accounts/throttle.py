"""Sign-in throttling: failed sign-ins per client IP and per account, counted atomically in Redis.

Every attempt is counted as it starts, and a successful one is given back, so a burst of
parallel guesses cannot all pass before the first is counted.
"""

from contextlib import suppress

from django.conf import settings
from django.utils.translation import gettext as _
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from conversations.limits import LimitExceeded, window_count, window_give_back


def _signin_keys(*, ip: str, username: str) -> list[str]:
    return [f"chatsite:signin:ip:{ip}", f"chatsite:signin:user:{username.strip().lower()}"]


def signin_attempt(*, ip: str, username: str) -> None:
    """Count a sign-in attempt; raise LimitExceeded when this IP or account has had too many.

    With Redis unreachable, sign-in stays possible: an outage must not lock everyone out.
    """
    try:
        # The IP first: an attempt the IP's limit refuses does not count against the account.
        wait = window_count(
            keys=_signin_keys(ip=ip, username=username),
            limits=[settings.SIGNIN_LIMIT_PER_IP, settings.SIGNIN_LIMIT_PER_ACCOUNT],
            window_seconds=settings.SIGNIN_LIMIT_WINDOW_SECONDS,
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
        window_give_back(key=ip_key)
        get_redis_connection("default").delete(account_key)
