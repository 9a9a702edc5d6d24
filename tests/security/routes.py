"""Every route the project serves, walked from its resolvers, and what each one reads.

The sweep probes what the resolvers report, not a hand-kept list. The tables below say,
for every route and socket action, which parameters (path kwargs, query and body
fields, frame fields) name an object, of which kind (a key of victims.KINDS), and which
are plain text. A route, parameter or action missing from them, or a kind missing
from KINDS, fails the sweep until someone declares it.
"""

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern

from conversations.routing import websocket_urlpatterns
from tests.security.victims import ANY_KIND, SEARCHED

# Django's own apps (with their own tests) and files: not in the CSRF tests' sweep.
SKIPPED_PREFIXES = ("admin/", "i18n/", "static/")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SWEPT_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Text:
    """A parameter that names no object; `value` is what every probe sends in it."""

    value: str = ""


@dataclass(frozen=True)
class Own:
    """A parameter that is a key to its object (a shared link's token): whoever holds it
    may use it, by design. The sweep fills it with the attacker's own only; that the
    victim's never reaches him is what the sweep checks (it is one of his markers)."""

    kind: str


Param = str | Text | Own  # a kind (of victims.KINDS), plain text, or a key of the caller's own


@dataclass(frozen=True)
class Declared:
    methods: frozenset[str]
    # Every parameter the route reads: its path kwargs and the query or body fields.
    params: Mapping[str, Param] = field(default_factory=dict)
    public: bool = False  # serves signed-out callers (login_not_required and not refusing them)
    api: bool = False  # accepts API tokens
    staff: bool = False  # only for staff: anyone else is sent to the admin's sign-in


GET, POST, PUT, DELETE = frozenset({"GET"}), frozenset({"POST"}), frozenset({"PUT"}), frozenset({"DELETE"})
SEARCH_PROBE = f"{SEARCHED} {SEARCHED[:2]}"
# The API reads the legacy `user_id` everywhere: it may only name the caller.
LEGACY = {"user_id": "user"}

ROUTES: dict[str, Declared] = {
    # Django's form views take PUT as POST.
    "login": Declared(
        GET | POST | PUT, {"username": Text(), "password": Text(), "next": Text()}, public=True
    ),
    "logout": Declared(POST, {"next": Text()}),
    "signup": Declared(
        GET | POST, {"username": Text(), "password1": Text(), "password2": Text()}, public=True
    ),
    # The account's own settings: each acts on the caller only, and names no object.
    "account_settings": Declared(GET | POST, {"email": Text()}),
    "instructions_save": Declared(POST, {"text": Text("Bob's instructions")}),
    "prompt_add": Declared(POST, {"title": Text("Bob's prompt"), "text": Text("Bob's prompt text")}),
    "prompt_remove": Declared(POST, {"prompt_id": "prompt"}),
    # An import makes the caller's own conversations from the file's text.
    "conversations_import": Declared(POST, {"file": Text()}),
    "sessions_end_others": Declared(POST),
    "account_delete": Declared(POST, {"password": Text()}),
    "password_change": Declared(
        GET | POST | PUT, {"old_password": Text(), "new_password1": Text(), "new_password2": Text()}
    ),
    # Password reset by email (Django's views): for signed-out callers.
    "password_reset": Declared(GET | POST | PUT, {"email": Text()}, public=True),
    "password_reset_done": Declared(GET, public=True),
    "password_reset_confirm": Declared(
        GET | POST | PUT,
        {"uidb64": Text("MQ"), "token": Text("x-token"), "new_password1": Text(), "new_password2": Text()},
        public=True,
    ),
    "password_reset_complete": Declared(GET, public=True),
    # Any method: a POST sets the language, and every method is sent on to `next`.
    "set_language": Declared(frozenset(SWEPT_METHODS), {"language": Text("en"), "next": Text()}, public=True),
    "api-chat-start": Declared(POST, {"role": Text(), "title": Text("Bob's"), **LEGACY}, api=True),
    "api-chat-stream": Declared(
        GET | POST,
        {
            "session_id": "conversation",
            "message": Text("Bob's words"),
            "role": Text(),
            # A model of the site's providers: the same for every user, nobody's data.
            "provider": Text(),
            "model": Text(),
            # An image sent with the message: made from these bytes, the caller's own.
            "image_data": Text(),
            "image_type": Text(),
            **LEGACY,
        },
        api=True,
    ),
    "api-chat-history": Declared(GET, {"session_id": "conversation", "tree": Text("1"), **LEGACY}, api=True),
    # Search: every victim's marker starts with SEARCHED, so a search not scoped to its
    # caller finds every one of them (through the index for the word, by a scan for the
    # short one beside it).
    "api-chat-sessions": Declared(
        GET, {"before": "conversation", "limit": Text("10"), "q": Text(SEARCH_PROBE), **LEGACY}, api=True
    ),
    "api-chat-search": Declared(GET, {"q": Text(SEARCH_PROBE), "limit": Text("50"), **LEGACY}, api=True),
    "api-chat-session": Declared(DELETE, {"session_id": "conversation", **LEGACY}, api=True),
    "api-roles": Declared(GET, LEGACY, api=True),
    # The site's providers and models: the same for every user, never a key or a URL.
    "api-providers": Declared(GET, LEGACY, api=True),
    "^chat/": Declared(frozenset(SWEPT_METHODS), api=True),  # the API's catch-all: JSON 404 for anything
    "chat:home": Declared(GET),
    "chat:local_model": Declared(GET),
    "chat:conversation": Declared(GET, {"conversation_id": "conversation"}),
    "chat:search": Declared(GET, {"q": Text(SEARCH_PROBE)}),
    "chat:rename": Declared(
        POST,
        # `active` is compared with the path's conversation, never looked up.
        {"conversation_id": "conversation", "title": Text("Bob was here"), "active": Text()},
    ),
    "chat:delete": Declared(POST | DELETE, {"conversation_id": "conversation"}),
    "chat:pin": Declared(POST, {"conversation_id": "conversation", "pinned": Text("1")}),
    "chat:archive": Declared(POST, {"conversation_id": "conversation", "archived": Text("1")}),
    # The sidebar's next page: where the last one ended, as a time and an id, never looked
    # up (a keyset over the caller's own list); the archived list is the caller's own.
    "chat:list_more": Declared(
        GET,
        {
            "before_at": Text("2999-01-01T00:00:00+00:00"),
            "before_id": Text("ffffffff-ffff-ffff-ffff-ffffffffffff"),
        },
    ),
    "chat:list_archived": Declared(GET),
    # A conversation's earlier messages, before one of its messages.
    "chat:older": Declared(GET, {"conversation_id": "conversation", "before": Text("1")}),
    # The conversations selected in the list, all the caller's, and a folder of the caller's.
    "chat:bulk": Declared(POST, {"ids": "conversation", "action": Text("delete"), "folder": "folder"}),
    # Folders: the caller's own, made from a name; a conversation moved into one of the
    # caller's folders (or a new one by name, or none).
    "chat:folder_create": Declared(POST, {"name": Text("Bob's folder")}),
    "chat:folder": Declared(GET, {"folder_id": "folder"}),
    "chat:folder_rename": Declared(POST, {"folder_id": "folder", "name": Text("Bob was here")}),
    "chat:folder_delete": Declared(POST, {"folder_id": "folder", "conversations": Text("delete")}),
    "chat:move": Declared(
        POST, {"conversation_id": "conversation", "folder": "folder", "new_folder": Text()}
    ),
    "chat:move_form": Declared(GET, {"conversation_id": "conversation"}),
    "chat:export": Declared(GET, {"conversation_id": "conversation", "format": Text("md")}),
    "chat:sent": Declared(GET, {"reply_id": "reply"}),
    "chat:note": Declared(GET | POST, {"conversation_id": "conversation", "note": Text("Bob's note")}),
    "chat:feedback": Declared(
        POST,
        {"reply_id": "reply", "rating": Text("up"), "comment": Text("Bob's note")},
    ),
    # Everything of the caller's own: names no object.
    "chat:export_all": Declared(GET),
    # An upload makes the caller's own image; the file is its owner's only.
    "chat:attachment_upload": Declared(POST, {"file": Text()}),
    "chat:attachment": Declared(GET | DELETE, {"attachment_id": "attachment"}),
    # Sharing: the owner's page and links, then the copy by its token, the whole key, for
    # anyone who holds it.
    "sharing:manage": Declared(
        GET | POST, {"conversation_id": "conversation", "share": Text("1"), "show_name": Text("1")}
    ),
    "sharing:remove": Declared(POST, {"share_id": "share", "back": Text("settings")}),
    "sharing:view": Declared(GET, {"token": Own("share_token")}, public=True),
    "sharing:continue": Declared(POST, {"token": Own("share_token")}),
    # Health for load balancers: the same answer for everyone, naming nobody's data.
    "chat:healthz": Declared(GET, public=True),
    # Counts, never anyone's data; for staff and a scraper's token only.
    "chat:metrics": Declared(GET, staff=True),
}
# Every page of Django's admin but its sign-in: staff only, whatever it shows.
ADMIN_PREFIX = "admin/"
ADMIN = Declared(
    GET | POST,
    {
        "object_id": ANY_KIND,
        "id": ANY_KIND,
        "app_label": Text("conversations"),
        "content_type_id": Text("1"),
        "url": Text("nowhere/"),
    },
    staff=True,
)
ADMIN_PUBLIC = {"admin:login"}
# Routes that exist only to answer "not found".
NOT_FOUND_ROUTES = frozenset({"^chat/"})
# Every swept HTTP route (by name; an unnamed one by its route) and the methods it accepts.
METHODS: dict[str, frozenset[str]] = {name: declared.methods for name, declared in ROUTES.items()}


def declared_for(route: "Route", table: Mapping[str, Declared]) -> Declared | None:
    if route.name in table:
        return table[route.name]
    if route.route.startswith(ADMIN_PREFIX):
        return Declared(GET | POST, public=True) if route.name in ADMIN_PUBLIC else ADMIN
    return None


# --- Socket actions ----------------------------------------------------------------------

# Every action the chat socket dispatches on, and the frame fields each one reads.
SOCKET_ACTIONS: dict[str, dict[str, Param]] = {
    "send": {
        "conversation": "conversation",
        "message": Text("Bob's words"),
        "role": Text(),
        "model": Text(),
        "attachments": "attachment",
    },
    "stop": {"conversation": "conversation", "seen": Text("1")},
    "regenerate": {"conversation": "conversation", "model": Text(), "target": "reply"},
    "edit": {
        "conversation": "conversation",
        "message": Text("Bob's edit"),
        "model": Text(),
        "target": "message",
    },
    "branch": {"conversation": "conversation", "message": "reply"},
    "version": {"conversation": "conversation", "reply": "reply"},
    "sync": {"conversation": "conversation", "busy": Text("1")},
}
# Read by the consumer to choose the action, not by any action.
DISPATCH_FIELDS = frozenset({"action"})
WEBSOCKET_ROUTES = frozenset({"ws/chat/", "ws/chat/<uuid:conversation_id>/"})
# Path parameters of the socket routes.
SOCKET_PATH_PARAMS: dict[str, Param] = {"conversation_id": "conversation"}


# --- Walking the resolvers ---------------------------------------------------------------

_GROUP = re.compile(r"\(\?P<(\w+)>[^()]*\)")
_ROUTE_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")


@dataclass(frozen=True)
class Route:
    route: str  # as declared, prefixes included: "c/<uuid:conversation_id>/rename/"
    name: str  # "chat:rename"; an unnamed route is named by its route
    kwargs: tuple[str, ...]
    regex: bool  # some part of it is a regular expression
    callback: Callable[..., Any] = field(compare=False, repr=False)

    @property
    def catch_all(self) -> bool:
        """A regex route that ends open ("^chat/"): anything may follow it."""
        return self.regex and not self.route.endswith("$")

    def url_with(self, values: Mapping[str, object], suffix: str = "") -> str:
        """The route's URL with each parameter set from `values` (a catch-all gets `suffix`)."""
        path = _GROUP.sub(lambda m: str(values[m.group(1)]), self.route)
        path = _ROUTE_PARAM.sub(lambda m: str(values[m.group(1)]), path)
        if self.regex:
            path = path.replace("^", "").replace("$", "")
        return "/" + path + (suffix if self.catch_all else "")

    def url(self, value: str) -> str:
        """The route's URL with every parameter set to `value` (a catch-all gets it appended)."""
        return self.url_with(dict.fromkeys(self.kwargs, value), suffix=value)

    def __str__(self) -> str:
        return self.name


def _walk(
    patterns: Sequence[Any], prefix: str = "", namespace: str = "", regex: bool = False
) -> Iterator[Route]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        is_regex = regex or isinstance(pattern.pattern, RegexPattern)
        if isinstance(pattern, URLResolver):
            inner = ":".join(n for n in (namespace, pattern.namespace) if n)
            yield from _walk(pattern.url_patterns, route, inner, is_regex)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name or route
            kwargs = [*_GROUP.findall(route), *_ROUTE_PARAM.findall(_GROUP.sub("", route))]
            yield Route(
                route=route,
                name=name,
                kwargs=tuple(dict.fromkeys(kwargs)),
                regex=is_regex,
                callback=pattern.callback,
            )


def all_http_routes(urlconf: str | None = None) -> list[Route]:
    """Every HTTP route of the URLconf (the settings' by default)."""
    return list(_walk(get_resolver(urlconf).url_patterns))


def http_routes() -> list[Route]:
    """Every HTTP route but the skipped prefixes (Django's own apps)."""
    return [r for r in all_http_routes() if not r.route.startswith(SKIPPED_PREFIXES)]


def websocket_routes() -> list[Route]:
    return list(_walk(websocket_urlpatterns))
