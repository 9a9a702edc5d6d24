"""The chat WebSocket as a browser's htmx socket uses it: open with the session cookie and
the page's Origin, send one message, read the HTML fragments that come back."""

import asyncio
import contextlib
import html
import json
import re
import time

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench.load_client import CONNECT_TIMEOUT, StreamResult

# Sockets opened at once before a phase starts: a burst of thousands would only test
# the listen backlog, which is not what the phase measures.
CONNECT_CONCURRENCY = 100

# The chat socket's fragments (templates/chat/frames): a reply streams as sanitised
# Markdown, its finished blocks once (before the tail) and its unfinished tail replaced
# each frame; the reply's <article> leaves data-status "streaming" when it has ended.
FINISHED = re.compile(r'beforebegin:#msg-(\d+)-tail"[^>]*>(.*?)</div>', re.S)
TAIL = re.compile(r'innerHTML:#msg-(\d+)-tail"[^>]*>(.*?)</div>', re.S)
TAG = re.compile(r"<[^>]+>")
ARTICLE = re.compile(r'<article id="msg-(\d+)" class="msg msg-assistant[^"]*" data-status="(\w+)"')
COMPOSER_ERROR = re.compile(r'id="composer-error"[^>]*>([^<]+)</p>')


async def ws_open(url: str, cookie: str, origin: str) -> ClientConnection | str:
    """An open chat socket, or the kind of failure."""
    try:
        return await websockets.connect(
            url,
            additional_headers={"Cookie": cookie, "Origin": origin},
            open_timeout=CONNECT_TIMEOUT,
            ping_interval=None,  # browsers do not ping; keep the server's load what it would be
            max_size=2**22,
        )
    except InvalidStatus as exc:
        return f"HTTP {exc.response.status_code}"
    except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
        return f"connect: {type(exc).__name__}"


async def ws_open_many(
    targets: list[tuple[str, str]], origin: str, *, within: float
) -> list[ClientConnection | str]:
    """(url, cookie) pairs opened CONNECT_CONCURRENCY at a time; those not begun `within`
    seconds are not tried (failure "not opened in time")."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    deadline = time.monotonic() + within

    async def one(url: str, cookie: str) -> ClientConnection | str:
        async with gate:
            if time.monotonic() > deadline:
                return "not opened in time"
            return await ws_open(url, cookie, origin)

    return list(await asyncio.gather(*(one(url, cookie) for url, cookie in targets)))


def _shown(finished: str, tail: str) -> str:
    """The text a page shows of the streamed HTML."""
    return html.unescape(TAG.sub(" ", finished + tail))


async def ws_stream(socket: ClientConnection, conversation: str, result: StreamResult) -> None:
    reply: str | None = None
    finished, tail = "", ""
    result.compare_words = True  # rendered HTML: the words must match, not the spacing
    try:
        result.start()
        await socket.send(json.dumps({"action": "send", "message": "hi", "conversation": conversation}))
        async for frame in socket:  # bounded by the phase deadline (run_phase)
            text = frame if isinstance(frame, str) else frame.decode()
            for message_id, status in ARTICLE.findall(text):
                if reply is None and status == "streaming":
                    reply = message_id  # the "sent" fragment names the new reply
                elif message_id == reply and status != "streaming":
                    result.end(status)  # the "finished" fragment
            updated = False
            for message_id, block in FINISHED.findall(text):
                if message_id == reply:
                    finished, updated = finished + block, True
            for message_id, block in TAIL.findall(text):
                if message_id == reply:
                    tail, updated = block, True
            if updated:
                result.show(_shown(finished, tail))
            if result.finished is not None:
                return
            error = COMPOSER_ERROR.search(text)
            if error:
                result.end("", f"error frame: {html.unescape(error.group(1)).strip()[:60]}")
                return
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else "none"
        result.error = result.error or f"socket closed ({code})"


async def close_all(sockets: list[ClientConnection | str]) -> None:
    async def close(socket: ClientConnection) -> None:
        with contextlib.suppress(TimeoutError, OSError, ConnectionClosed):
            await asyncio.wait_for(socket.close(), 5)

    await asyncio.gather(*(close(s) for s in sockets if not isinstance(s, str)))
