"""Every route the project serves, walked from its resolvers, with what each one accepts.

The tests sweep what the resolvers report, not a hand-kept list; the tables below
say what each route is expected to be, so a new route fails the coverage tests
until someone decides how it must be protected.
"""

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

from conversations.routing import websocket_urlpatterns

# Django's own apps (with their own tests) and files: deliberately not swept.
SKIPPED_PREFIXES = ("admin/", "i18n/", "static/")
# Path parameters that name a conversation.
ID_KWARGS = frozenset({"conversation_id", "session_id"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SWEPT_METHODS = ("GET", "POST", "DELETE")

# Every swept HTTP route (by name; an unnamed one by its route) and the methods it accepts.
METHODS: dict[str, frozenset[str]] = {
    "login": frozenset({"GET", "POST"}),
    "logout": frozenset({"POST"}),
    "signup": frozenset({"GET", "POST"}),
    "api-chat-start": frozenset({"POST"}),
    "api-chat-stream": frozenset({"GET", "POST"}),
    "api-chat-history": frozenset({"GET"}),
    "api-chat-sessions": frozenset({"GET"}),
    "api-chat-session": frozenset({"DELETE"}),
    "api-roles": frozenset({"GET"}),
    "^chat/": frozenset(SWEPT_METHODS),  # the API's catch-all: JSON 404 for anything
    "chat:home": frozenset({"GET"}),
    "chat:conversation": frozenset({"GET"}),
    "chat:rename": frozenset({"POST"}),
    "chat:delete": frozenset({"POST", "DELETE"}),
}
# Routes whose path names a conversation.
CONVERSATION_IN_PATH = frozenset({"chat:conversation", "chat:rename", "chat:delete", "api-chat-session"})
# Routes that name a conversation by a query or body parameter (`session_id`): the
# resolver cannot see these, so they are listed by hand.
CONVERSATION_IN_PARAMS = frozenset({"api-chat-stream", "api-chat-history"})
# Routes that exist only to answer "not found".
NOT_FOUND_ROUTES = frozenset({"^chat/"})

WEBSOCKET_ROUTES = frozenset({"ws/chat/", "ws/chat/<uuid:conversation_id>/"})


@dataclass(frozen=True)
class Route:
    route: str  # as declared, prefixes included: "c/<uuid:conversation_id>/rename/"
    name: str  # "chat:rename"; an unnamed route is named by its route
    kwargs: frozenset[str]
    api: bool  # served by the JSON API (bearer tokens accepted)

    def url(self, value: str) -> str:
        """The route's URL with every parameter set to `value` (a catch-all gets it appended)."""
        path = re.sub(r"<(?:\w+:)?(\w+)>", value, self.route)
        if "^" in path or "$" in path:
            path = path.replace("^", "").replace("$", "") + value
        return "/" + path

    def __str__(self) -> str:
        return self.name


def _walk(patterns: Sequence[Any], prefix: str = "", namespace: str = "") -> Iterator[Route]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = ":".join(n for n in (namespace, pattern.namespace) if n)
            yield from _walk(pattern.url_patterns, route, inner)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name or route
            yield Route(
                route=route,
                name=name,
                kwargs=frozenset(re.findall(r"<(?:\w+:)?(\w+)>", route)),
                api=pattern.callback.__module__ == "conversations.api",
            )


def http_routes() -> list[Route]:
    """Every HTTP route but the skipped prefixes."""
    return [r for r in _walk(get_resolver().url_patterns) if not r.route.startswith(SKIPPED_PREFIXES)]


def websocket_routes() -> list[Route]:
    return list(_walk(websocket_urlpatterns))
