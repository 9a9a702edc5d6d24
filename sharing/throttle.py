"""How often a user may "continue" shared conversations: each one copies a conversation,
up to thousands of messages, into the database, so a script holding one account could
otherwise fill it. Counted per user in a fixed window, atomically in Redis; a copy that
failed is given back (sharing.services.share_continue)."""

from contextlib import suppress

from django.conf import settings
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from conversations.limits import LimitExceeded, window_count, window_give_back

WINDOW_SECONDS = 3600


def _key(user_id: int) -> str:
    return f"chatsite:share-continue:{user_id}"


def continue_count(*, user_id: int) -> None:
    """Count a copy as it starts; raise LimitExceeded past SHARE_CONTINUE_PER_HOUR (0: no limit).

    With Redis unreachable the copy goes ahead: the count guards the database, which an
    outage of Redis does not fill."""
    limit = settings.SHARE_CONTINUE_PER_HOUR
    if limit <= 0:
        return
    try:
        wait = window_count(keys=[_key(user_id)], limits=[limit], window_seconds=WINDOW_SECONDS)
    except RedisError:
        return
    if wait:
        raise LimitExceeded(
            _("Too many conversations continued this hour. Try again in %(minutes)s minute(s).")
            % {"minutes": max(1, (wait + 59) // 60)},
            retry_after=wait,
        )


def continue_give_back(*, user_id: int) -> None:
    """A copy continue_count counted failed: it does not use up the user's allowance."""
    if settings.SHARE_CONTINUE_PER_HOUR <= 0:
        return  # nothing was counted
    with suppress(RedisError):
        window_give_back(key=_key(user_id))
