"""Talking to live daphne servers (the `app_servers` fixture) as clients do: the SSE API,
the chat socket and a signed-in browser's cookies and CSRF token."""

import html
import http.client
import json
import re
import threading
import time
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlparse

import websockets

from conversations.models import Message
from conversations.services import conversation_create
from conversations.tokens import api_token_create
from tests.conftest import LiveApp, make_user


def connect(app: LiveApp, *, timeout: float) -> http.client.HTTPConnection:
    address = urlparse(app.url)
    return http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=timeout)


# --- The SSE API --------------------------------------------------------------------


def post_stream(
    app: LiveApp, token: str, session_id: str, message: str, barrier: threading.Barrier | None = None
):
    """POST /chat/stream (once the other caller at `barrier` is ready too); returns the
    connection and its response."""
    connection = connect(app, timeout=20)
    body = json.dumps({"session_id": session_id, "message": message})
    if barrier is not None:
        barrier.wait()
    connection.request(
        "POST",
        "/chat/stream",
        body=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    return connection, connection.getresponse()


def open_stream(app: LiveApp, token: str, session_id: str, message: str):
    """POST /chat/stream; returns the connection and its response, ready to read events."""
    connection, response = post_stream(app, token, session_id, message)
    assert response.status == 200
    return connection, response


def read_chunks(response: http.client.HTTPResponse, count: int) -> list[str]:
    chunks: list[str] = []
    while len(chunks) < count:
        line = response.readline().decode()
        if line.startswith("data: "):
            chunks.append(json.loads(line[6:])["content"])
    return chunks


def read_text(response: http.client.HTTPResponse, text: str) -> None:
    """Read SSE chunks until their text is `text` (frames may carry several tokens)."""
    shown = ""
    while shown != text:
        assert text.startswith(shown), f"{shown!r} is not a beginning of {text!r}"
        shown += read_chunks(response, 1)[0]


def read_events(response: http.client.HTTPResponse) -> list[dict]:
    """Every event until the stream ends (or the connection is cut)."""
    events: list[dict] = []
    try:
        while line := response.readline():
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))
    except (http.client.IncompleteRead, ConnectionError):
        pass
    return events


def alice_with_conversation():
    alice = make_user("alice")
    _token, raw = api_token_create(user=alice, name="test")
    return alice, raw, conversation_create(owner=alice)


def wait_for_status(reply_id: int, status: str, within: float = 10.0) -> Message:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        reply = Message.objects.get(pk=reply_id)
        if reply.status == status:
            return reply
        time.sleep(0.1)
    raise AssertionError(f"reply {reply_id} is {Message.objects.get(pk=reply_id).status}, not {status}")


# --- The chat socket ----------------------------------------------------------------

# A streamed frame: the Markdown blocks finished since the last frame go before the
# reply's tail, and the unfinished tail is replaced (templates/chat/frames/delta.html).
DONE = re.compile(
    r'<div hx-swap-oob="beforebegin:#msg-\d+-tail">(.*?)</div>\s*<div hx-swap-oob="innerHTML', re.S
)
TAIL = re.compile(r'<div hx-swap-oob="innerHTML:#msg-\d+-tail">(.*?)</div>\s*<input', re.S)
SEEN = re.compile(r'id="stop-seen" value="(\d+)"')
# A reply being written, as the page (and a reattach frame) renders it: its finished
# blocks, then its tail (templates/chat/_macros.html).
STREAMING = re.compile(
    r'class="msg-body markdown stream-text" hx-disable>(.*?)'
    r'<div id="msg-\d+-tail" class="stream-tail">(.*?)</div><span class="typing"',
    re.S,
)


def fragment_text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", fragment))


class ShownReply:
    """What a tab shows of a streamed reply, frame by frame: the finished blocks, then
    the tail that each frame replaces, and the last `seen` the page would send with Stop."""

    def __init__(self) -> None:
        self.done, self.tail, self.seen = "", "", 0

    @classmethod
    def reattached(cls, frame: str) -> "ShownReply":
        """What a tab shows once the reattach frame (the reply so far, whole) is in."""
        shown = cls()
        match = STREAMING.search(frame)
        assert match is not None, "the frame holds no reply being written"
        shown.done, shown.tail = fragment_text(match.group(1)), fragment_text(match.group(2))
        shown.seen = int(SEEN.findall(frame)[-1])
        return shown

    def add(self, frame: str) -> None:
        self.done += "".join(fragment_text(block) for block in DONE.findall(frame))
        if TAIL.search(frame):
            self.tail = fragment_text(TAIL.findall(frame)[-1])
        if SEEN.search(frame):
            self.seen = int(SEEN.findall(frame)[-1])

    @property
    def words(self) -> list[str]:
        return (self.done + self.tail).split()


async def socket(app: LiveApp, cookie: str, conversation_id: object | None = None):
    """A chat socket as the page opens it: with its session cookie and its own origin."""
    address = urlparse(app.url)
    path = f"/ws/chat/{conversation_id}/" if conversation_id is not None else "/ws/chat/"
    return await websockets.connect(
        f"ws://{address.netloc}{path}",
        additional_headers={"Cookie": cookie, "Origin": f"http://{address.netloc}"},
    )


def api_get(app: LiveApp, path: str, token: str) -> int:
    """The status of an API GET with a bearer token."""
    connection = connect(app, timeout=10)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


# --- A browser's cookies ------------------------------------------------------------

CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Visitor:
    """One browser's cookie jar, taken from server to server: the same site behind a
    load balancer. Sends no Origin header, as a same-origin form post over plain HTTP
    may not; Django then checks the token alone."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    def request(
        self, app: LiveApp, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        """The status, headers and body; cookies set by the answer are kept (and expired
        ones dropped)."""
        connection = connect(app, timeout=10)
        headers = {"Cookie": self.cookie_header} if self.cookies else {}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode(errors="replace")
            for value in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(value).items():
                    if morsel.value and morsel["max-age"] != "0":
                        self.cookies[name] = morsel.value
                    else:
                        self.cookies.pop(name, None)
            return response.status, dict(response.getheaders()), text
        finally:
            connection.close()

    def csrf_token(self, app: LiveApp, path: str) -> str:
        """The CSRF token a page's forms carry."""
        status, _headers, page = self.request(app, "GET", path)
        assert status == 200, f"GET {path} answered {status}"
        return CSRF_FIELD.search(page).group(1)  # type: ignore[union-attr]
