"""Search in the owner's own conversations: their titles and the text of their messages.

A query is words separated by spaces; a hit holds every word, anywhere, in any case
(as far as the database folds case). On SQLite, words of three or more characters are
looked up in the trigram index (migration 0012), which finds runs of characters, so
Chinese written without spaces is found too; words of two letters or digits ("北京",
"AI") in the pair index (migration 0019); a word of one character, or of two with a
sign in it ("C#"), is checked among what an index found, or matched by scanning the
owner's messages when the query has no other word. On PostgreSQL, see
conversations.search_postgres.

Every read here is scoped to its owner, like conversations.selectors.
"""

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL

from conversations import search_index, search_postgres
from conversations.models import Conversation, Message
from conversations.search_base import QUERY_MAX_CHARS, like_pattern, owned_messages, search_terms
from conversations.search_index import index_supported

__all__ = ["QUERY_MAX_CHARS", "search_terms"]  # the API's reads them from here

# Shorter words cannot use the trigram index.
INDEXED_MIN_CHARS = 3
# Ranked by how well they match: this many of the newest matches (see _ranked_ids).
RANK_WINDOW = 200
SNIPPET_CONTEXT = 60  # characters shown on each side of the first match
INDEX_TABLE = search_index.TABLE
PAIRS_TABLE = search_index.PAIRS_TABLE


def _is_pair(term: str) -> bool:
    """A word the pair index holds: two letters or digits."""
    return len(term) == 2 and term.isalnum()


def _uses_index(terms: list[str]) -> bool:
    return index_supported(connection) and any(
        len(term) >= INDEXED_MIN_CHARS or _is_pair(term) for term in terms
    )


def _quoted(terms: list[str]) -> str:
    """An FTS5 query holding every term, each a quoted string (nothing in it an operator)."""
    return " AND ".join('"' + term.replace('"', '""') + '"' for term in terms)


def _index_table(terms: list[str]) -> str:
    """The index that finds the words: the trigram one for any long word, else the pairs."""
    return INDEX_TABLE if any(len(term) >= INDEXED_MIN_CHARS for term in terms) else PAIRS_TABLE


def _indexed(select: str, owner: AbstractBaseUser | AnonymousUser, terms: list[str]) -> tuple[str, list[Any]]:
    """SQL for the owner's messages holding every word, through an index (_index_table):
    it finds the words it holds, and LIKE checks the others among what it found."""
    message, conversation = Message._meta.db_table, Conversation._meta.db_table
    table = _index_table(terms)
    found = [t for t in terms if (len(t) >= INDEXED_MIN_CHARS if table == INDEX_TABLE else _is_pair(t))]
    checked = [term for term in terms if term not in found]
    sql = (
        f"SELECT {select} FROM {table} JOIN {message} m ON m.id = {table}.rowid "
        f"JOIN {conversation} c ON c.id = m.conversation_id "
        f"WHERE {table} MATCH %s AND c.owner_id = %s AND NOT m.superseded"
        + "".join(" AND m.content LIKE %s ESCAPE '\\'" for _term in checked)
    )
    return sql, [_quoted(found), owner.pk, *(like_pattern(term) for term in checked)]


def _holding(field: str, terms: list[str]) -> Q:
    """A filter for rows whose `field` holds every word, in any case."""
    if connection.vendor == "postgresql":
        return search_postgres.holding(field, terms)
    held = Q()
    for term in terms:
        held &= Q(**{f"{field}__icontains": term})
    return held


def _scanned(owner: AbstractBaseUser | AnonymousUser, terms: list[str]) -> QuerySet[Message]:
    """The owner's messages holding every word, read one by one (SQLite, no index)."""
    return owned_messages(owner).filter(_holding("content", terms))


def conversation_ids_matching(
    *,
    owner: AbstractBaseUser | AnonymousUser,
    query: str,
    candidates: QuerySet[Conversation],
    limit: int,
) -> list[uuid.UUID]:
    """The first `limit` of `candidates` (the owner's conversations, in their order) whose
    title, or one of whose messages, holds every word of `query` (none, for no words)."""
    terms = search_terms(query)
    if not terms:
        return []
    candidates = candidates.filter(owner_id=owner.pk)
    if connection.vendor == "postgresql":
        return search_postgres.conversation_ids_matching(
            owner=owner, terms=terms, candidates=candidates, limit=limit
        )
    if _uses_index(terms):
        in_messages = Q(pk__in=RawSQL(*_indexed("m.conversation_id", owner, terms)))
    else:
        in_messages = Q(pk__in=_scanned(owner, terms).values("conversation_id"))
    matching = candidates.filter(_holding("title", terms) | in_messages)
    return list(matching.values_list("id", flat=True)[:limit])


@dataclass(frozen=True)
class Snippet:
    """Text around a match, in parts: (text, whether it is one of the query's words)."""

    parts: tuple[tuple[str, bool], ...]

    @property
    def text(self) -> str:
        return "".join(part for part, _match in self.parts)

    @property
    def highlights(self) -> list[tuple[int, int]]:
        """Where the matches are in `text`: [start, end) character offsets."""
        spans, at = [], 0
        for part, match in self.parts:
            if match:
                spans.append((at, at + len(part)))
            at += len(part)
        return spans


def snippet_make(text: str, terms: list[str], context: int = SNIPPET_CONTEXT) -> Snippet:
    """The text around the first match of any word, on one line, with every match marked."""
    flat = " ".join(text.split())
    # Matched in the text itself (re's per-character case folding), so offsets are the
    # text's: str.casefold() and lower() can change a string's length ("ß", "İ").
    words = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)), re.IGNORECASE)
    first = words.search(flat) if terms else None
    at = first.start() if first else 0
    start, end = max(0, at - context), min(len(flat), max(at + context * 2, first.end() if first else 0))
    if start > 0 and " " in flat[start:at]:
        start = flat.index(" ", start) + 1  # start on a word
    parts: list[tuple[str, bool]] = [("…", False)] if start > 0 else []
    at = start
    for match in words.finditer(flat, start, end) if terms else ():
        if match.start() > at:
            parts.append((flat[at : match.start()], False))
        parts.append((match.group(), True))
        at = match.end()
    if at < end:
        parts.append((flat[at:end], False))
    if end < len(flat):
        parts.append(("…", False))
    return Snippet(parts=tuple(parts))


@dataclass(frozen=True)
class MessageHit:
    conversation_id: uuid.UUID
    conversation_title: str
    message_id: int
    author: str
    created_at: datetime
    snippet: Snippet


def _ranked_ids(owner: AbstractBaseUser | AnonymousUser, terms: list[str], limit: int) -> list[int]:
    """The ids of the owner's matching messages, best first.

    Through the index: by BM25 among the newest RANK_WINDOW matches, then newest first.
    Ranking every match of a common word ("the", "python") read the whole of its long
    list of hits (hundreds of ms at 200,000 messages); the newest come straight off the
    index, in its order. Without the index: newest first.
    """
    if connection.vendor == "postgresql":
        return search_postgres.ranked_ids(owner=owner, terms=terms, window=RANK_WINDOW, limit=limit)
    if not _uses_index(terms):
        return list(_scanned(owner, terms).order_by("-id").values_list("id", flat=True)[:limit])
    table = _index_table(terms)
    # The pair index keeps no counts to rank by: its matches come newest first.
    rank = f"{table}.rank" if table == INDEX_TABLE else "0"
    sql, params = _indexed(f"m.id AS id, {rank} AS rank", owner, terms)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM ({sql} AND m.content != '' ORDER BY {table}.rowid DESC LIMIT %s) "
            "ORDER BY rank, id DESC LIMIT %s",
            [*params, max(limit, RANK_WINDOW), limit],
        )
        return [row[0] for row in cursor.fetchall()]


def message_search(
    *, owner: AbstractBaseUser | AnonymousUser, query: str, limit: int = 20
) -> list[MessageHit]:
    """The owner's messages holding every word of `query`, best first, each with a snippet."""
    terms = search_terms(query)
    if not terms:
        return []
    ids = _ranked_ids(owner, terms, limit)
    messages = (
        Message.objects.filter(pk__in=ids)
        .select_related("conversation")
        .only("id", "author", "content", "created_at", "conversation__id", "conversation__title")
    )
    by_id = {message.pk: message for message in messages}
    return [
        MessageHit(
            conversation_id=message.conversation.pk,
            conversation_title=message.conversation.title,
            message_id=message.pk,
            author=message.author,
            created_at=message.created_at,
            snippet=snippet_make(message.content, terms),
        )
        for message in (by_id[pk] for pk in ids if pk in by_id)
    ]


@dataclass(frozen=True)
class TitleHit:
    conversation: Conversation
    snippet: Snippet  # the whole title, its matches marked


def conversation_title_search(
    *, owner: AbstractBaseUser | AnonymousUser, query: str, limit: int = 10
) -> list[TitleHit]:
    """The owner's conversations whose title holds every word of `query`, newest first."""
    terms = search_terms(query)
    if not terms:
        return []
    title = Q(owner_id=owner.pk) & _holding("title", terms)
    conversations = (
        Conversation.objects.filter(title)
        .select_related("role")
        .only("id", "title", "updated_at", "role__name", "role__slug")
        .order_by("-updated_at", "-id")[:limit]
    )
    return [TitleHit(c, snippet_make(c.title, terms, context=len(c.title))) for c in conversations]
