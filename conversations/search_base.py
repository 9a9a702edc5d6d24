"""What both databases' search (conversations.search) starts from: a query's words, and
the messages a search reads. Every read here is scoped to its owner."""

import re

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from conversations.models import Message

QUERY_MAX_CHARS = 200
# Control characters (NUL ends an FTS5 string early) are spaces in a query.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def search_terms(query: str) -> list[str]:
    """The query's words, each once (ignoring case)."""
    terms: list[str] = []
    seen: set[str] = set()
    for word in _CONTROL.sub(" ", query[:QUERY_MAX_CHARS]).split():
        if word.casefold() not in seen:
            seen.add(word.casefold())
            terms.append(word)
    return terms


def searchable_messages() -> QuerySet[Message]:
    # Superseded versions are neither shown nor found; a reply's empty start holds nothing.
    return Message.objects.filter(superseded=False).exclude(content="")


def owned_messages(owner: AbstractBaseUser | AnonymousUser) -> QuerySet[Message]:
    return searchable_messages().filter(conversation__owner_id=owner.pk)


def like_pattern(term: str) -> str:
    """`term` as a LIKE pattern matching it anywhere (its own % and _ taken literally)."""
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
