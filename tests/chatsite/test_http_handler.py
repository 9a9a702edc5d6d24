"""The ASGI handler daphne serves: Django's middleware on the loop, a thread only when needed."""

import re
import time
import weakref
from http.cookies import SimpleCookie

import pytest
from asgiref.sync import SyncToAsync, sync_to_async
from channels.testing import HttpCommunicator
from django.conf import settings
from django.core import signals
from django.db import connection

from chatsite.http_handler import ON_LOOP, ASGIHandler
from conversations.tokens import api_token_create
from tests.conftest import PASSWORD, postgres_only, session_cookie_for
from tests.live import Visitor

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


def _database_backends() -> int:
    """PostgreSQL's sessions on the test database, but for this test's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def _backends_settle(at_most: int, within: float = 2.0) -> int:
    """The number of sessions once it is `at_most` (a closed connection's backend takes a
    moment to exit), or after `within` seconds, whichever comes first."""
    deadline = time.monotonic() + within
    while (count := _database_backends()) > at_most and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


@postgres_only
def test_a_page_requests_thread_gives_its_database_connection_back_when_the_request_ends(app_servers, alice):
    """A page's sync code runs on a thread of the request's own, which ends with it:
    its kept connection (CONN_MAX_AGE=None on PostgreSQL) must be closed then, not
    whenever the garbage collector finds it."""
    app = app_servers()
    browser = Visitor()
    name, value = session_cookie_for(alice).split("=", 1)
    browser.cookies[name] = value
    assert browser.request(app, "GET", "/")[0] == 200
    kept = _backends_settle(at_most=1)  # the server's own: its writer, its pool's threads

    after_each_ten = []
    for _batch in range(3):
        for _page in range(10):
            assert browser.request(app, "GET", "/")[0] == 200
        after_each_ten.append(_backends_settle(at_most=kept))

    assert kept <= 3
    assert after_each_ten == [kept] * 3
