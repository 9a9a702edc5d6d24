"""A real daphne gets what only a socket can send: over-long request lines and headers,
raw bytes, broken framing. Never a 5xx, never a dropped connection, nothing saved."""

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from tests.security.fuzz import ONE_MIB, asnapshot, diff, is_api_error

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_password_hashing")]


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
    # One MiB past what a body may hold in memory (room for one base64 image).
    too_large = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + ONE_MIB
    yield RawCase(
        "json-over-the-body-limit",
        head(b"/chat/start", auth, b"Content-Type: application/json", method=b"POST", body=b" " * too_large),
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
        elif case.api_error and not is_api_error(body_of(response)):
            problems.append(f"[{case.name}] HTTP {status} without the API's error body: {response[:300]!r}")

    after = await asnapshot()
    still_serving = status_of(await sync_to_async(exchange)(live_app.url, head(b"/accounts/login/")))

    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)
    assert before == after, diff(before, after)
    assert still_serving == 200
