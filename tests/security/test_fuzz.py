"""Malformed input at every route: never a 5xx, never a dropped connection, nothing saved.

Every HTTP route the resolvers report gets a corpus of malformed bodies, query strings
and path values from a signed-in user (session cookie with its CSRF token, and a
bearer token for the API); the sign-in pages get it from an anonymous visitor too.
Each chat socket route gets a corpus of malformed frames. Each corpus entry carries
a defect every route must refuse, so after each request the database must be as it
was. A real daphne gets what only a socket can send: over-long request lines and
headers, raw bytes, broken framing.

Failures are collected per route and reported together, each with its input.
"""

import asyncio
import contextlib
import json
import socket
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.apps import apps
from django.test import AsyncClient, Client

from chatsite.asgi import application
from conversations.models import Conversation, Message
from conversations.services import api_token_create, conversation_create
from tests.conftest import frames_until, session_cookie_for
from tests.security.routes import (
    METHODS,
    NOT_FOUND_ROUTES,
    ROUTES,
    UNSAFE_METHODS,
    Route,
    http_routes,
    websocket_routes,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_password_hashing")]

ONE_MIB = 1024 * 1024
DEEP = 100_000
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

# What a route changes whatever it is sent: signing out ends the session.
CHANGED_BY_ANY_REQUEST = {"logout": {"sessions.Session"}}
WRONG_TYPES: list[Any] = [{"text": "hi"}, ["hi"], 7, 2.5, True]


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes = b""
    content_type: str = ""
    # Text only: daphne refuses a query string that is not ASCII (see the raw corpus),
    # and the test client cannot send one.
    query: str = ""
    # Django parses a multipart body for POST only: other methods never read one.
    post_only: bool = False


def is_api(route: Route) -> bool:
    return ROUTES[route.name].api


def fields_read(route: Route) -> list[str]:
    """The query and body fields the route reads (routes.ROUTES declares them)."""
    return [name for name in ROUTES[route.name].params if name not in route.kwargs]


def _fields(pk: str, **fields: Any) -> dict[str, Any]:
    """A request that would be accepted but for the field(s) given."""
    return {"session_id": pk, "message": "hello", "title": "A title", "role": "teacher", **fields}


def body_cases(pk: str) -> list[Case]:
    """Bodies no API route may accept, whatever fields it reads."""
    surrogate_everywhere = (
        '{"session_id": "PK", "message": "\\ud800", "title": "\\udfff", "role": "\\ud800", "\\udc00": 1}'
    ).replace("PK", pk)
    return [
        Case("truncated-json", b'{"session_id": "%s", "message": ' % pk.encode(), JSON),
        Case("json-garbage", b"{not json}", JSON),
        Case("json-array", b'["session_id", "message"]', JSON),
        Case("json-number", b"42", JSON),
        Case("json-string", b'"hello"', JSON),
        Case("json-null", b"null", JSON),
        Case("json-nested-100000-deep", b'{"title": ' + b"[" * DEEP + b"]" * DEEP + b"}", JSON),
        Case("json-objects-100000-deep", b'{"a": ' * DEEP + b"1" + b"}" * DEEP, JSON),
        Case("json-2mib-unterminated", b'{"title": "' + b"x" * (2 * ONE_MIB), JSON),
        Case("json-huge-integer", b'{"user_id": ' + b"9" * 5000 + b"}", JSON),
        Case("json-lone-surrogate-escapes", surrogate_everywhere.encode(), JSON),
        Case("json-lone-surrogate-key", b'{"\\udfff": "x", "session_id": "%s"}' % pk.encode(), JSON),
        Case("json-utf8-encoded-surrogate", b'{"title": "\xed\xa0\x80", "message": "\xed\xb0\x80"}', JSON),
        Case("json-not-utf8", b'{"title": "\xff\xfe\xc3"}', JSON),
        Case("json-utf16", '{"title": "x"}'.encode("utf-16"), JSON),
        Case("json-raw-nul", b'{"title": "a\x00b"}', JSON),
        Case("json-nul-user-id", b'{"user_id": "1\\u0000"}', JSON),
        Case("json-bom", b'\xef\xbb\xbf{"title": "x"}', JSON),
        Case("form-bad-percent", b"junk=%ff", FORM),
        Case("form-encoded-surrogate", b"junk=%ED%A0%80", FORM),
        Case("form-raw-bytes", b"junk=\xff\xfe\x00", FORM),
        Case("form-nul-user-id", b"user_id=%00", FORM),
        Case("form-too-many-fields", "&".join(f"f{i}=x" for i in range(1001)).encode(), FORM),
        Case("multipart-empty-boundary", b"--x\r\n\r\n", "multipart/form-data; boundary=", post_only=True),
        Case("multipart-no-boundary", b"--x\r\n\r\n", "multipart/form-data", post_only=True),
        Case(
            "multipart-nul-user-id",
            b'--b\r\nContent-Disposition: form-data; name="user_id"\r\n\r\n\x00\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            post_only=True,
        ),
    ]


def field_cases(route: Route, pk: str) -> list[Case]:
    """For each field the route reads: every wrong type, and NUL, in an otherwise good request."""
    cases = []
    for name in fields_read(route):
        for wrong in WRONG_TYPES:
            if name == "user_id" and type(wrong) is int:
                continue  # a JSON number is how old clients send it
            body = json.dumps(_fields(pk, **{name: wrong})).encode()
            cases.append(Case(f"{name}-as-{type(wrong).__name__}", body, JSON))
        body = json.dumps(_fields(pk, **{name: "a\x00b"})).encode()
        cases.append(Case(f"{name}-with-nul", body, JSON))
        cases.append(
            Case(f"{name}-with-nul-in-form", urlencode(_fields(pk, **{name: "a\x00b"})).encode(), FORM)
        )
    return cases


def form_cases(route: Route) -> list[Case]:
    """A page's form with a NUL character in each field it reads (and the others empty)."""
    cases = []
    for name in fields_read(route):
        form = dict.fromkeys(fields_read(route), "") | {name: "a\x00b"}
        cases.append(Case(f"form-{name}-with-nul", urlencode(form).encode(), FORM))
    return cases


def query_cases(route: Route, pk: str) -> list[Case]:
    """Query strings no API route may accept."""
    good = urlencode(_fields(pk))
    cases = [
        Case("query-bad-percent", query=f"{good}&junk=%ff"),
        Case("query-encoded-surrogate", query=f"{good}&junk=%ED%A0%80"),
        Case("query-truncated-percent", query=f"{good}&junk=%E2%82"),
        Case("query-nul-user-id", query=f"{good}&user_id=%00"),
        Case("query-too-many-fields", query="&".join(f"f{i}=x" for i in range(1001))),
    ]
    for name in fields_read(route):
        cases.append(Case(f"query-{name}-with-nul", query=urlencode(_fields(pk, **{name: "a\x00b"}))))
    return cases


# Harmless to a route that does not read what it is sent: it may act on the rest of
# the request (POST /chat/start starts a conversation), so only "no 5xx" holds.
def lenient_cases(pk: str) -> list[Case]:
    return [
        Case("query-1mib", query="junk=" + "x" * ONE_MIB),
        Case("octet-stream-garbage", b"\x00\xff\xfe" * 1000, "application/octet-stream"),
    ]


# --- The database before and after -------------------------------------------------------------


def snapshot(ignore: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """Row counts of every model, and the content of every conversation and message."""
    state: dict[str, Any] = {
        model._meta.label: model._default_manager.count()
        for model in apps.get_models()
        if model._meta.label not in ignore
    }
    state["conversations"] = list(Conversation.objects.order_by("pk").values_list())
    state["messages"] = list(Message.objects.order_by("pk").values_list())
    return state


asnapshot = sync_to_async(snapshot)


def diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    changes = []
    for key in before:
        if isinstance(before[key], list):
            gone = [row for row in before[key] if row not in after[key]]
            new = [row for row in after[key] if row not in before[key]]
            if gone or new:
                changes.append(f"{key}: {gone!r:.200} -> {new!r:.200}")
        elif before[key] != after[key]:
            changes.append(f"{key}: {before[key]} -> {after[key]}")
    return "; ".join(changes)


# --- HTTP through the test client ---------------------------------------------------------------


@dataclass
class Caller:
    name: str
    client: AsyncClient
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)

    def add(self, where: str, case: Case, problem: str) -> None:
        self.problems.append(f"{where} [{case.name}]: {problem}")

    def __bool__(self) -> bool:
        return bool(self.problems)

    def __str__(self) -> str:
        return f"{len(self.problems)} problem(s):\n" + "\n".join(self.problems)


def _is_api_error(content: bytes) -> bool:
    try:
        error = json.loads(content)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(error, dict) and set(error) >= {"code", "message"}


@pytest.fixture
def fuzz_setup(alice, builtin_roles):
    conversation = conversation_create(owner=alice, role_slug="teacher", title="Kept")
    Message.objects.create(conversation=conversation, author="user", content="Still here")
    Message.objects.create(conversation=conversation, author="assistant", content="Still there")
    _token, raw = api_token_create(user=alice, name="fuzz")
    return conversation, raw


async def signed_in_client(user) -> Caller:
    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(user)
    await client.get("/")  # the page sets the CSRF cookie, as a browser's would hold it
    return Caller("cookie", client, {"X-CSRFToken": client.cookies["csrftoken"].value})


async def send(caller: Caller, method: str, path: str, case: Case) -> Any:
    extra: dict[str, Any] = {"QUERY_STRING": case.query} if case.query else {}
    return await caller.client.generic(
        method,
        path,
        case.body,
        content_type=case.content_type or "application/octet-stream",
        headers=caller.headers,
        **extra,
    )


# Path values that name no conversation; each gets a few of the cases, not all.
ODD_PATH_VALUES = ("not-a-uuid", "%00", "%ED%A0%80", "%ff", "x" * 4000)
ODD_PATH_CASES = ("json-garbage", "form-too-many-fields", "multipart-no-boundary", "query-bad-percent")


def paths(route: Route, pk: str) -> list[tuple[str, bool]]:
    """(URL, whether to send it every case): the real conversation, and ids that name nothing."""
    if not route.kwargs:
        return [(route.url(""), True)]
    # A page delete acts on any request it gets: its real conversation is left alone.
    main = str(uuid.uuid4()) if route.name == "chat:delete" else pk
    return [(route.url(main), True)] + [(route.url(value), False) for value in ODD_PATH_VALUES]


async def fuzz_route(route: Route, method: str, caller: Caller, pk: str, user, findings: Findings) -> None:
    unsafe = method in UNSAFE_METHODS
    refused = query_cases(route, pk)
    if unsafe:
        refused = body_cases(pk) + refused
        refused += field_cases(route, pk) if is_api(route) else form_cases(route)
    cases = [(case, True) for case in refused] + [(case, False) for case in lenient_cases(pk)]
    changed = CHANGED_BY_ANY_REQUEST.get(route.name, set())
    after = await asnapshot(changed)
    for path, every_case in paths(route, pk):
        for case, must_refuse in cases:
            if (case.body and not unsafe) or (case.post_only and method != "POST"):
                continue
            if not every_case and case.name not in ODD_PATH_CASES:
                continue
            where = f"{caller.name} {method} {path[:80]}"
            before = after
            try:
                response = await send(caller, method, path, case)
            except Exception:
                findings.add(where, case, "the test client raised:\n" + traceback.format_exc())
                after = await asnapshot(changed)
                continue
            after = await asnapshot(changed)
            status = response.status_code
            if status >= 500:
                findings.add(where, case, f"HTTP {status}: {response.content[:500]!r}")
            if is_api(route) and must_refuse and not 400 <= status < 500:
                findings.add(where, case, f"accepted with HTTP {status}")
            if is_api(route) and status >= 400 and not _is_api_error(response.content):
                findings.add(
                    where, case, f"HTTP {status} not in the API's error shape: {response.content[:200]!r}"
                )
            if must_refuse and before != after:
                findings.add(where, case, f"HTTP {status} changed the database: {diff(before, after)}")
            if route.name == "logout" and status < 400:
                await caller.client.aforce_login(user)  # signing out is what it is for


HTTP_TARGETS = [
    (route, method)
    for route in http_routes()
    for method in sorted(METHODS[route.name])
    if route.name not in NOT_FOUND_ROUTES or method == "POST"  # the catch-all: one method will do
]


@pytest.mark.parametrize(("route", "method"), HTTP_TARGETS, ids=lambda v: str(v))
async def test_malformed_http_requests_are_refused_without_a_5xx(
    route, method, alice, builtin_roles, fuzz_setup
):
    conversation, raw_token = fuzz_setup
    pk = str(conversation.pk)
    findings = Findings()
    callers = [await signed_in_client(alice)]
    if is_api(route):
        callers.append(Caller("token", AsyncClient(), {"Authorization": f"Bearer {raw_token}"}))
    if ROUTES[route.name].public:
        anonymous = AsyncClient(enforce_csrf_checks=True)
        await anonymous.get("/accounts/login/")
        callers.append(Caller("anonymous", anonymous, {"X-CSRFToken": anonymous.cookies["csrftoken"].value}))

    for caller in callers:
        await fuzz_route(route, method, caller, pk, alice, findings)

    assert not findings, str(findings)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"--x\r\n\r\n", "multipart/form-data"),
        (b"--x\r\n\r\n", "multipart/form-data; boundary="),
        ("&".join(f"f{i}=x" for i in range(1001)).encode(), FORM),
    ],
    ids=["multipart-without-boundary", "multipart-empty-boundary", "too-many-fields"],
)
@pytest.mark.parametrize("signed_in", [True, False], ids=["signed-in", "anonymous"])
def test_a_post_nowhere_with_an_unreadable_body_is_a_404_not_a_500(alice, body, content_type, signed_in):
    """Found by the sweep: Django's 404 page read the body for its CSRF check, and failed."""
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)  # checks as in production
    if signed_in:
        client.force_login(alice)
    client.get("/" if signed_in else "/accounts/login/")  # with its CSRF cookie, the check reads the body
    assert "csrftoken" in client.cookies

    response = client.post("/c/not-a-conversation/rename/", body, content_type=content_type)

    assert response.status_code == 404


# --- Socket frames --------------------------------------------------------------------------------


def frame_corpus(pk: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, send_to kwargs) of frames the consumer must answer with an error."""
    other = str(uuid.uuid4())

    def text(value: Any) -> dict[str, Any]:
        return {"text_data": value if isinstance(value, str) else json.dumps(value)}

    frames: list[tuple[str, dict[str, Any]]] = [
        ("blank", text(" ")),
        ("truncated-json", text('{"action": "send", "message": ')),
        ("json-array", text('["send", "hello"]')),
        ("json-number", text("42")),
        ("json-string", text('"send"')),
        ("json-null", text("null")),
        ("json-nested-100000-deep", text("[" * DEEP + "]" * DEEP)),
        ("json-objects-100000-deep", text('{"a": ' * DEEP + "1" + "}" * DEEP)),
        ("json-huge-integer", text('{"action": "send", "message": ' + "9" * 5000 + "}")),
        ("binary-garbage", {"bytes_data": b"\xff\xfe\x00" * 100}),
        ("binary-json", {"bytes_data": json.dumps({"action": "send", "message": "hi"}).encode()}),
        ("message-2mib", text({"action": "send", "message": "x" * (2 * ONE_MIB)})),
        ("message-lone-surrogate", text('{"action": "send", "message": "\\ud800"}')),
        ("message-raw-lone-surrogate", text('{"action": "send", "message": "\ud800"}')),
        ("message-nul", text({"action": "send", "message": "a\x00b"})),
        (
            "edit-lone-surrogate",
            text('{"action": "edit", "conversation": "PK", "message": "\\udc00"}'.replace("PK", pk)),
        ),
        ("edit-nul", text({"action": "edit", "conversation": pk, "message": "a\x00b"})),
        ("version-huge-id", text({"action": "version", "conversation": pk, "reply": "9" * 40})),
        ("version-not-a-number", text({"action": "version", "conversation": pk, "reply": "½"})),
        ("stop-huge-seen", text({"action": "stop", "conversation": other, "seen": "9" * 40})),
        ("unknown-action", text({"action": "delete_everything"})),
    ]
    for wrong in [*WRONG_TYPES, None]:
        kind = type(wrong).__name__
        frames += [
            (f"action-as-{kind}", text({"action": wrong, "conversation": pk, "message": "hi"})),
            (f"message-as-{kind}", text({"action": "send", "message": wrong})),
            (f"edit-message-as-{kind}", text({"action": "edit", "conversation": pk, "message": wrong})),
            (f"reply-as-{kind}", text({"action": "version", "conversation": pk, "reply": wrong})),
        ]
        if wrong:  # an empty value means "a new conversation"
            frames += [
                (
                    f"send-conversation-as-{kind}",
                    text({"action": "send", "conversation": wrong, "message": "hi"}),
                ),
                (
                    f"new-conversation-role-as-{kind}",
                    text({"action": "send", "role": wrong, "message": "hi"}),
                ),
            ]
        for action in ("stop", "regenerate", "sync", "version"):
            frames.append(
                (
                    f"{action}-conversation-as-{kind}",
                    text({"action": action, "conversation": wrong, "reply": "1"}),
                )
            )
    return frames


async def ws_connect(user, path: str) -> WebsocketCommunicator:
    cookie = await sync_to_async(session_cookie_for)(user)
    headers = [(b"origin", b"http://localhost"), (b"cookie", cookie.encode())]
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect()
    assert connected, code
    return communicator


async def answer_of(communicator: WebsocketCommunicator, within: float = 3.0) -> str:
    """The next frame; raises at once what the consumer raised, if it died instead."""
    deadline = asyncio.get_running_loop().time() + within
    while await communicator.receive_nothing(timeout=0.02, interval=0.01):
        if communicator.future.done():
            communicator.future.result()
            raise ConnectionError("the consumer ended")
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("no answer")
    return str(await communicator.receive_from())


def _innermost(formatted: str, lines: int = 8) -> str:
    """The end of a traceback: where the application raised, and what."""
    return "\n    ".join(["", *formatted.rstrip().splitlines()[-lines:]])


def _describe(frame: dict[str, Any]) -> str:
    return repr(frame.get("text_data", frame.get("bytes_data")))[:120]


@pytest.mark.parametrize("route", websocket_routes(), ids=str)
async def test_malformed_socket_frames_get_an_error_and_the_socket_stays_usable(
    route, alice, builtin_roles, fake_openai, fuzz_setup
):
    conversation, _raw_token = fuzz_setup
    pk = str(conversation.pk)
    path = route.url(pk)
    problems: list[str] = []
    communicator = await ws_connect(alice, path)
    after = await asnapshot()
    try:
        for name, frame in frame_corpus(pk):
            before = after
            try:
                await communicator.send_to(**frame)
                answer = await answer_of(communicator)
            except Exception:
                problems.append(
                    f"[{name}] {_describe(frame)}: the socket died: {_innermost(traceback.format_exc())}"
                )
                with contextlib.suppress(Exception):
                    await communicator.disconnect()
                communicator = await ws_connect(alice, path)
                after = await asnapshot()
                continue
            after = await asnapshot()
            if 'id="composer-error"' not in answer:
                problems.append(f"[{name}] {_describe(frame)}: answered without an error: {answer[:200]!r}")
            if before != after:
                problems.append(f"[{name}] {_describe(frame)}: changed the database: {diff(before, after)}")
                # Whatever it started must finish before the next frame is judged.
                with contextlib.suppress(Exception):
                    await frames_until(communicator, r"status-(complete|error|interrupted)", within=10)
                after = await asnapshot()
            # Anything else it sent (it should have sent nothing more) is not the next frame's answer.
            while not await communicator.receive_nothing(timeout=0.05):
                await communicator.receive_from()
        try:
            await communicator.send_to(text_data=json.dumps({"action": "send", "message": "still here"}))
            usable = await frames_until(communicator, r"msg-assistant status-complete")
            if "Echo: still here" not in usable[-1]:
                problems.append(f"the socket no longer chats: {usable[-1][:200]!r}")
        except Exception:
            problems.append(f"the socket no longer chats:\n{traceback.format_exc()}")
    finally:
        with contextlib.suppress(Exception):
            await communicator.disconnect()

    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


# --- A real daphne ------------------------------------------------------------------------------------


def exchange(url: str, request: bytes, timeout: float = 15.0) -> bytes:
    """Send a raw request and read the answer until the server closes."""
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    assert response, "the connection closed without a response"
    return int(response.split(b" ", 2)[1])


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


def head(request_target: bytes, *headers: bytes, method: bytes = b"GET", body: bytes = b"") -> bytes:
    lines = [
        method + b" " + request_target + b" HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Connection: close",
        *headers,
    ]
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@dataclass(frozen=True)
class RawCase:
    name: str
    request: bytes
    statuses: frozenset[int]
    api_error: bool = True  # answered in the API's JSON error shape


def raw_corpus(token: str, pk: str) -> Iterator[RawCase]:
    auth = b"Authorization: Bearer " + token.encode()
    bad = frozenset({400})
    # The case: a 1 MiB query string was a silent close.
    yield RawCase("query-1mib", head(b"/chat/stream?session_id=" + b"x" * ONE_MIB, auth), frozenset({414}))
    yield RawCase("request-line-20kib", head(b"/?" + b"a" * 20_000), frozenset({414}))
    yield RawCase("header-20kib", head(b"/", b"X-Big: " + b"b" * 20_000), frozenset({431}))
    yield RawCase(
        "query-and-headers-over-16kib",
        head(b"/roles?" + b"q" * 12_000, b"X-Big: " + b"b" * 8_000),
        frozenset({431}),
    )
    yield RawCase("too-many-headers", head(b"/", *[b"X-H%d: v" % i for i in range(600)]), frozenset({431}))
    yield RawCase("garbage-request-line", b"GARBAGE\r\n\r\n", bad)
    yield RawCase("header-without-colon", head(b"/", b"NoColonHere"), bad)
    yield RawCase("nul-in-header-value", head(b"/", b"X-Nul: a\x00b"), bad)
    yield RawCase(
        "bad-content-length", head(b"/chat/start", auth, b"Content-Length: abc", method=b"POST"), bad
    )
    yield RawCase(
        "bad-chunked-body",
        head(b"/chat/start", auth, b"Transfer-Encoding: chunked", method=b"POST") + b"zz\r\nxx\r\n0\r\n\r\n",
        bad,
    )
    yield RawCase(
        "malformed-multipart",
        head(
            b"/chat/start",
            auth,
            b"Content-Type: multipart/form-data; boundary=",
            method=b"POST",
            body=b"--x\r\n",
        ),
        bad,
    )
    # Answered by daphne (its HTML error page) or by the API: a real answer either way.
    yield RawCase("raw-bytes-in-query", head(b"/chat/sessions?junk=\xff\xfe", auth), bad, api_error=False)
    yield RawCase("raw-bytes-in-path", head(b"/chat/\xff", auth), bad, api_error=False)
    yield RawCase("encoded-surrogate-in-query", head(b"/chat/sessions?junk=%ED%A0%80", auth), bad)
    yield RawCase("nul-in-query", head(b"/chat/history?session_id=%00", auth), frozenset({404}))
    yield RawCase(
        "json-2mib-malformed",
        head(
            b"/chat/start", auth, b"Content-Type: application/json", method=b"POST", body=b"{" * (2 * ONE_MIB)
        ),
        bad,
    )
    yield RawCase(
        "json-3mib",
        head(
            b"/chat/start", auth, b"Content-Type: application/json", method=b"POST", body=b" " * (3 * ONE_MIB)
        ),
        frozenset({413}),
    )
    yield RawCase(
        "json-lone-surrogate",
        head(
            b"/chat/stream",
            auth,
            b"Content-Type: application/json",
            method=b"POST",
            body=b'{"session_id": "%s", "message": "\\ud800"}' % pk.encode(),
        ),
        frozenset({400}),
    )


async def test_a_real_server_answers_every_malformed_request(live_app, alice, fuzz_setup):
    conversation, raw_token = fuzz_setup
    problems: list[str] = []
    before = await asnapshot()

    for case in raw_corpus(raw_token, str(conversation.pk)):
        try:
            response = await sync_to_async(exchange)(live_app.url, case.request)
            status = status_of(response)
        except (OSError, AssertionError) as exc:
            problems.append(f"[{case.name}] no answer: {exc!r}")
            continue
        if status not in case.statuses:
            problems.append(
                f"[{case.name}] HTTP {status}, expected {sorted(case.statuses)}: {response[:300]!r}"
            )
        elif case.api_error and not _is_api_error(body_of(response)):
            problems.append(f"[{case.name}] HTTP {status} without the API's error body: {response[:300]!r}")

    after = await asnapshot()
    still_serving = status_of(await sync_to_async(exchange)(live_app.url, head(b"/accounts/login/")))

    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)
    assert before == after, diff(before, after)
    assert still_serving == 200
