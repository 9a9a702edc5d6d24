"""`GET /chat/search`: the caller's messages that hold the words of `q`, with snippets."""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponseBase
from django.utils.translation import gettext as _

from conversations.api_base import ApiError, api_view, ok, param_limit, param_required, param_text
from conversations.db import in_thread
from conversations.search import QUERY_MAX_CHARS, message_search

SEARCH_PAGE = 20
SEARCH_MAX_LIMIT = 50


def param_query(params: dict[str, Any], *, required: bool) -> str:
    """`q`: the words to search for, at most QUERY_MAX_CHARS of text."""
    query = (param_required(params, "q") if required else param_text(params, "q")).strip()
    if "\x00" in query:  # as for every text the API takes
        raise ApiError(400, "invalid_parameter", _("q must not contain NUL characters."))
    if len(query) > QUERY_MAX_CHARS:
        raise ApiError(
            400,
            "invalid_parameter",
            _("q must be at most %(most)s characters.") % {"most": QUERY_MAX_CHARS},
        )
    return query


@api_view("GET")
async def chat_search(
    request: HttpRequest, user: AbstractBaseUser, params: dict[str, Any]
) -> HttpResponseBase:
    """The best `limit` (default 20, at most 50) of the caller's messages holding every
    word of `q`, each with its conversation and the text around the match."""
    query = param_query(params, required=True)
    limit = param_limit(params, default=SEARCH_PAGE, most=SEARCH_MAX_LIMIT)
    hits = await in_thread(message_search)(owner=user, query=query, limit=limit)
    return ok(
        {
            "query": query,
            "results": [
                {
                    "session_id": str(hit.conversation_id),
                    "title": hit.conversation_title,
                    "message_id": hit.message_id,
                    "author": hit.author,
                    "created_at": hit.created_at.isoformat(),
                    "snippet": hit.snippet.text,
                    # Where the words are in the snippet: [start, end) in characters.
                    "highlights": [list(span) for span in hit.snippet.highlights],
                }
                for hit in hits
            ],
        }
    )
