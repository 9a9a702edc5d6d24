"""The ASGI handler daphne serves: Django's middleware on the loop, a thread only when needed."""

import re
import threading
import weakref
from http.cookies import SimpleCookie
from typing import Any

import pytest
from asgiref.sync import SyncToAsync, sync_to_async
from channels.testing import HttpCommunicator
from django.conf import settings
from django.core import signals
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.signals import connection_created

from chatsite.http_handler import ON_LOOP, ASGIHandler
from conversations.tokens import api_token_create
from tests.conftest import PASSWORD, session_cookie_for

pytestmark = pytest.mark.django_db(transaction=True)


class _RecordingExecutors(weakref.WeakKeyDictionary):
    """asgiref's map of requests to their threads, noting each thread it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.started = 0

    def __setitem__(self, key, value):
        self.started += 1
        super().__setitem__(key, value)


@pytest.fixture
def request_threads(monkeypatch) -> _RecordingExecutors:
    recording = _RecordingExecutors()
    monkeypatch.setattr(SyncToAsync, "context_to_thread_executor", recording)
    return recording


async def call(method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None):
    pairs = [
        (b"host", b"testserver"),
        *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
    ]
    if body:
        pairs.append((b"content-type", b"application/x-www-form-urlencoded"))
    communicator = HttpCommunicator(ASGIHandler(), method, path, body=body, headers=pairs)
    response = await communicator.get_response(timeout=10)
    await communicator.wait(timeout=10)  # the handler has closed the response too
    return (
        response["status"],
        {k.decode().lower(): v.decode() for k, v in response["headers"]},
        response["body"],
    )


def cookies_of(headers_list: list[tuple[bytes, bytes]]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in headers_list:
        if name.lower() == b"set-cookie":
            jar.load(value.decode())
    return {key: morsel.value for key, morsel in jar.items()}


def test_every_django_middleware_in_the_settings_runs_on_the_loop():
    django_ones = {path for path in settings.MIDDLEWARE if path.startswith("django.")}

    assert django_ones == set(ON_LOOP)


def test_loading_the_middleware_leaves_the_setting_as_configured():
    configured = list(settings.MIDDLEWARE)

    ASGIHandler()

    assert configured == settings.MIDDLEWARE


async def test_an_api_call_is_served_without_a_thread_of_its_own(alice, builtin_roles, request_threads):
    _token, raw = await sync_to_async(api_token_create)(user=alice)

    status, _headers, body = await call("GET", "/roles", headers={"Authorization": f"Bearer {raw}"})

    assert status == 200
    assert b'"teacher"' in body
    assert request_threads.started == 0


async def test_a_page_keeps_the_headers_of_djangos_middleware():
    status, headers, _body = await call("GET", "/accounts/login/")

    assert status == 200
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert "default-src" in headers["content-security-policy"]
    assert headers["content-language"] == "en"


async def test_signing_in_through_the_page_saves_the_session_and_opens_the_chat(alice):
    page = await HttpCommunicator(
        ASGIHandler(), "GET", "/accounts/login/", headers=[(b"host", b"testserver")]
    ).get_response(timeout=10)
    csrf_cookie = cookies_of(page["headers"])["csrftoken"]
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page["body"])
    assert token is not None
    form = f"csrfmiddlewaretoken={token.group(1).decode()}&username=alice&password={PASSWORD}".encode()

    signed_in = await HttpCommunicator(
        ASGIHandler(),
        "POST",
        "/accounts/login/",
        body=form,
        headers=[
            (b"host", b"testserver"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"cookie", f"csrftoken={csrf_cookie}".encode()),
        ],
    ).get_response(timeout=10)
    session = cookies_of(signed_in["headers"])[settings.SESSION_COOKIE_NAME]
    status, _headers, body = await call(
        "GET", "/", headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"}
    )

    assert signed_in["status"] == 302
    assert status == 200
    assert b'id="messages"' in body


async def test_a_form_without_its_csrf_token_is_refused(alice):
    form = f"username=alice&password={PASSWORD}".encode()

    status, _headers, _body = await call("POST", "/accounts/login/", body=form)

    assert status == 403


async def test_a_page_that_needs_signing_in_sends_a_stranger_to_the_sign_in_page():
    status, headers, _body = await call("GET", "/")

    assert status == 302
    assert headers["location"].startswith("/accounts/login/")


async def test_an_async_receiver_of_the_request_signals_is_awaited(alice, builtin_roles):
    heard: list[str] = []

    async def started(**kwargs):
        heard.append("started")

    async def finished(**kwargs):
        heard.append("finished")

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        status, _headers, _body = await call("GET", "/accounts/login/")
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)

    assert status == 200
    assert heard == ["started", "finished"]


async def test_a_page_requests_thread_closes_its_database_connections_when_the_request_ends(alice):
    """A page's sync code runs on a thread of the request's own, which ends with it. With
    connections kept (CONN_MAX_AGE=None, PostgreSQL's setting), request_finished leaves
    them open, and each stayed open until the garbage collector found it: 7 to 13
    PostgreSQL backends after 10 to 30 page requests."""
    cookie = await sync_to_async(session_cookie_for)(alice)
    opened: list[Any] = []

    def note(sender: Any, connection: Any, **kwargs: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            opened.append(connection)

    kept = connections.settings[DEFAULT_DB_ALIAS].get("CONN_MAX_AGE", 0)
    connections.settings[DEFAULT_DB_ALIAS]["CONN_MAX_AGE"] = None  # what a thread's new connection gets
    connection_created.connect(note)
    try:
        status, _headers, _body = await call("GET", "/", headers={"Cookie": cookie})
    finally:
        connection_created.disconnect(note)
        connections.settings[DEFAULT_DB_ALIAS]["CONN_MAX_AGE"] = kept

    assert status == 200
    assert opened, "the page read nothing from the database on a thread"
    assert [wrapper.connection for wrapper in opened] == [None] * len(opened)  # each one closed
