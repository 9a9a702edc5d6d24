"""What replies have cost: replies and tokens, today and this month, per user.

Counted from the replies saved in the database, by UTC day and month: the days the
daily token limit counts (conversations.limits). A deleted conversation's replies no
longer count here; the limit's own count for today (kept in Redis) still has them, so
the settings page shows that one beside the limit. Tokens are the figures the provider
reported with each reply; a reply it reported none for counts none here (the limit
counted Chatsite's estimate for it). A title the model wrote is not a reply: not here.
"""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, FilteredRelation, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from redis.exceptions import RedisError

from conversations import limits
from conversations.models import Message


@dataclass(frozen=True)
class Usage:
    replies: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class UsageSummary:
    today: Usage
    month: Usage
    limits: limits.Limits
    # What the daily token limit has counted today: deleted conversations' replies too.
    # None while Redis, where it is counted, cannot be reached.
    limit_tokens_today: int | None

    @property
    def daily_tokens_left(self) -> int | None:
        if not self.limits.daily_tokens or self.limit_tokens_today is None:
            return None
        return max(0, self.limits.daily_tokens - self.limit_tokens_today)


def period_starts(now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The start of today and of this month, in UTC."""
    day = (now or timezone.now()).astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day, day.replace(day=1)


def _sums(prefix: str, when: Q | None = None) -> dict[str, Count | Coalesce]:
    """Aggregates of the messages that `prefix` names (those `when` picks, if given)."""
    return {
        "replies": Count(f"{prefix}id", filter=when),
        "prompt_tokens": Coalesce(Sum(f"{prefix}prompt_tokens", filter=when), 0),
        "completion_tokens": Coalesce(Sum(f"{prefix}completion_tokens", filter=when), 0),
    }


def usage_since(*, user_id: int, since: dt.datetime) -> Usage:
    # Narrowed in WHERE, not only in the sums: the (conversation, created_at) index
    # then reads this period's messages, not all the user has ever had.
    replies = Message.objects.filter(
        conversation__owner_id=user_id, author=Message.Author.ASSISTANT, created_at__gte=since
    )
    return Usage(**replies.aggregate(**_sums("")))


def usage_summary(*, user_id: int, now: dt.datetime | None = None) -> UsageSummary:
    """For the user's settings page: today, this month, and the limits they count against."""
    today, month = period_starts(now)
    try:
        counted: int | None = limits.tokens_used_today(user_id=user_id)
    except RedisError:
        counted = None  # the page still shows what the database knows
    return UsageSummary(
        today=usage_since(user_id=user_id, since=today),
        month=usage_since(user_id=user_id, since=month),
        limits=limits.limits_for(user_id=user_id),
        limit_tokens_today=counted,
    )


def usage_annotations(now: dt.datetime | None = None) -> dict[str, FilteredRelation | Count | Coalesce]:
    """A user queryset's annotations with its usage: `today_…` and `month_…` of each
    of replies, prompt_tokens, completion_tokens (for the admin's list and its CSV).

    The join is to this month's replies only (a FilteredRelation: the condition is in
    the join), so a page of users does not read every message they ever had."""
    today, month = period_starts(now)
    this_month = FilteredRelation(
        "conversations__messages",
        condition=Q(
            conversations__messages__author=Message.Author.ASSISTANT,
            conversations__messages__created_at__gte=month,
        ),
    )
    return {
        "month_replies_joined": this_month,
        **{
            f"today_{name}": value
            for name, value in _sums(
                "month_replies_joined__", Q(month_replies_joined__created_at__gte=today)
            ).items()
        },
        **{f"month_{name}": value for name, value in _sums("month_replies_joined__").items()},
    }
