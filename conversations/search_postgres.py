"""Search on PostgreSQL: how conversations.search finds the owner's messages there.

Every word is matched with ILIKE. Two indexes answer it:
- pg_trgm's trigram index (migration 0023), for a word of three characters or more;
- the grams index (migration 0024), for a shorter word with a character beyond ASCII
  ("北京", "猫"): Chinese is written without spaces, and many of its words are one or two
  characters long. A shorter ASCII word ("an", "C#") has no index: it is checked among
  what another word found, or read.

An index makes a rare word cheap and a common one dear: every match is read and checked
again (a word in 38,000 of 220,000 messages took 500 ms). Reading the newest
conversations first (the walk) is the reverse: it finds enough matches of a common word
in the first hundred conversations, and reads everything for a rare one. So the walk goes
first, over at most WALK_CONVERSATIONS conversations, and the indexes answer only when it
did not find enough, which means the word is rare and their answer short.
"""

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    BooleanField,
    CharField,
    F,
    FloatField,
    Func,
    Lookup,
    Q,
    QuerySet,
    TextField,
    Value,
)

from conversations.models import Conversation, Message
from conversations.search_base import like_pattern, owned_messages, searchable_messages

TRIGRAM_MIN_CHARS = 3
WALK_CONVERSATIONS = 400
WALK_CHUNK = 100  # conversations checked in one query


class ILike(Lookup):
    """`column ILIKE pattern`, PostgreSQL's: its trigram indexes answer it. (Django's
    icontains there is `UPPER(column) LIKE UPPER(...)`, which no index on the column does.)"""

    lookup_name = "ilike"

    def as_sql(self, compiler: Any, connection: BaseDatabaseWrapper) -> tuple[str, tuple[str | int, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} ILIKE {rhs}", (*lhs_params, *rhs_params)


TextField.register_lookup(ILike)
CharField.register_lookup(ILike)


class GramsHeld(Func):
    """`chatsite_grams(text) @> chatsite_grams(word)`: the text has every character and pair
    of the word's (migration 0024). Both sides go through the same function, so they are
    lower-cased alike; the constant side is worked out once, when the query is planned."""

    template = "chatsite_grams(%(expressions)s)"
    arg_joiner = ") @> chatsite_grams("
    arity = 2
    output_field = BooleanField()


def _in_grams(term: str) -> bool:
    return len(term) < TRIGRAM_MIN_CHARS and any(ord(char) > 0x7F for char in term)


def holding(field: str, terms: Iterable[str]) -> Q:
    """A filter for rows whose `field` holds every word, in any case."""
    held = Q()
    for term in terms:
        held &= Q(**{f"{field}__ilike": like_pattern(term)})
        if field == "content" and _in_grams(term):
            held &= Q(GramsHeld(F("content"), Value(term)))
    return held


def _walk[T](
    ids: list[uuid.UUID], wanted: int, found_in: Callable[[Sequence[uuid.UUID]], list[T]]
) -> list[T] | None:
    """`wanted` matches from the conversations `ids` (their first WALK_CONVERSATIONS), read
    WALK_CHUNK at a time in order by `found_in`; None when the index should answer: there
    are more conversations, or the rate so far says the walk would not find enough."""
    found: list[T] = []
    for start in range(0, min(len(ids), WALK_CONVERSATIONS), WALK_CHUNK):
        found += found_in(ids[start : start + WALK_CHUNK])
        walked = min(start + WALK_CHUNK, len(ids))
        if len(found) >= wanted or walked == len(ids):
            return found[:wanted]  # enough, or every conversation read
        if len(found) * WALK_CONVERSATIONS < wanted * walked:
            return None  # at this rate the walk would not find enough
    return None  # more conversations than the walk reads


def _messages_holding(terms: list[str]) -> QuerySet[Message]:
    return searchable_messages().filter(holding("content", terms))


def conversation_ids_matching(
    *,
    owner: AbstractBaseUser | AnonymousUser,
    terms: list[str],
    candidates: QuerySet[Conversation],
    limit: int,
) -> list[uuid.UUID]:
    """The first `limit` of `candidates` (the owner's, in their order) whose title, or one
    of whose messages, holds every word."""

    def found_in(chunk: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        titled = Conversation.objects.filter(pk__in=chunk).filter(holding("title", terms))
        said = _messages_holding(terms).filter(conversation_id__in=chunk)
        matched = {*titled.values_list("id", flat=True), *said.values_list("conversation_id", flat=True)}
        return [pk for pk in chunk if pk in matched]

    walked = _walk(list(candidates.values_list("id", flat=True)[: WALK_CONVERSATIONS + 1]), limit, found_in)
    if walked is not None:
        return walked
    in_messages = owned_messages(owner).filter(holding("content", terms)).values("conversation_id")
    matching = candidates.filter(holding("title", terms) | Q(pk__in=in_messages))
    return list(matching.values_list("id", flat=True)[:limit])


def newest_message_ids(*, owner: AbstractBaseUser | AnonymousUser, terms: list[str], count: int) -> list[int]:
    """Up to `count` of the owner's messages holding every word: those of the most recently
    active conversations first, the newest first within one."""

    def found_in(chunk: Sequence[uuid.UUID]) -> list[int]:
        place = {pk: at for at, pk in enumerate(chunk)}
        hits = _messages_holding(terms).filter(conversation_id__in=chunk).values_list("id", "conversation_id")
        return [pk for pk, _in in sorted(hits, key=lambda hit: (place[hit[1]], -hit[0]))]

    conversations = Conversation.objects.filter(owner_id=owner.pk).order_by("-updated_at", "-id")
    walked = _walk(
        list(conversations.values_list("id", flat=True)[: WALK_CONVERSATIONS + 1]), count, found_in
    )
    if walked is not None:
        return walked
    # All the (few) matches first, then their order: asked for both at once, the planner
    # may read the owner's conversations in order instead, and every message of them.
    matches = (
        owned_messages(owner).filter(holding("content", terms)).annotate(active=F("conversation__updated_at"))
    )
    sql, params = matches.order_by().values("id", "conversation_id", "active").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH matches AS MATERIALIZED ({sql}) SELECT id FROM matches "
            "ORDER BY active DESC, conversation_id DESC, id DESC LIMIT %s",
            [*params, count],
        )
        return [row[0] for row in cursor.fetchall()]


def ranked_ids(
    *, owner: AbstractBaseUser | AnonymousUser, terms: list[str], window: int, limit: int
) -> list[int]:
    """The `window` newest matches (newest_message_ids), by how much of each one is the
    words (pg_trgm's similarity: "walrus walrus" before a long text with "walrus" once, as
    BM25 would), then newest first."""
    newest = newest_message_ids(owner=owner, terms=terms, count=max(limit, window))
    similarity = sum(
        (Func(F("content"), Value(term), function="similarity", output_field=FloatField()) for term in terms),
        start=Value(0.0),
    )
    ranked = Message.objects.filter(pk__in=newest).annotate(rank=similarity).order_by("-rank", "-id")
    return list(ranked.values_list("id", flat=True)[:limit])
