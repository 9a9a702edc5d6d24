"""Malformed HTTP input at every route, through the test client: never a 5xx, nothing saved.

Every HTTP route the resolvers report gets a corpus of malformed bodies, query strings
and path values from a signed-in user (session cookie with its CSRF token, and a
bearer token for the API); the sign-in pages get it from an anonymous visitor too.
"""

import json
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import AsyncClient, Client

from tests.security.fuzz import (
    CHANGED_BY_ANY_REQUEST,
    DEEP,
    FORM,
    JSON,
    ONE_MIB,
    WRONG_TYPES,
    asnapshot,
    diff,
    is_api_error,
)
from tests.security.routes import (
    METHODS,
    NOT_FOUND_ROUTES,
    ROUTES,
    UNSAFE_METHODS,
    Route,
    http_routes,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_password_hashing")]


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
            if is_api(route) and status >= 400 and not is_api_error(response.content):
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
