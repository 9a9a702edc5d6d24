"""The load client: N streams started at the same moment, each checked for exact, whole text.

The same client code measures the model server straight (the limit) and Chatsite (the SSE
API here, the chat WebSocket in ws_client). HTTP streams use a small asyncio.Protocol
instead of an HTTP library: the client shares the 2 cores with the app, so it must cost
little per token.
"""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

HOST = "127.0.0.1"
# A WebSocket handshake or TCP connect that takes longer than this failed.
CONNECT_TIMEOUT = 30.0


@dataclass
class StreamResult:
    """One stream: what arrived and when (seconds since its own request was sent)."""

    parts: list[str] = field(default_factory=list)
    started: float = 0.0
    first_token: float | None = None
    finished: float | None = None  # absolute perf_counter time of the end
    final_status: str = ""  # "complete" when the reply ended normally
    error: str = ""  # "" or its kind: "HTTP 500", "connect: ...", "timeout", "incomplete", ...
    compare_words: bool = False  # text shown as rendered HTML: compared word by word

    def start(self) -> None:
        self.started = time.perf_counter()

    def add(self, text: str) -> None:
        if text:
            if self.first_token is None:
                self.first_token = time.perf_counter() - self.started
            self.parts.append(text)

    def show(self, text: str) -> None:
        """The whole text shown so far (a page re-rendering its reply), replacing the last."""
        if text.strip() and self.first_token is None:
            self.first_token = time.perf_counter() - self.started
        self.parts = [text]

    def end(self, status: str, error: str = "") -> None:
        if self.finished is None:
            self.finished = time.perf_counter()
            self.final_status, self.error = status, self.error or error

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def settle(self, expected: str) -> None:
        """Name the failure, if any, once the stream is over."""
        if self.error:
            return
        if self.finished is None:
            self.error = "closed early"
        elif self.final_status != "complete":
            self.error = f"reply {self.final_status or 'unfinished'}"
        elif (self.text.split() != expected.split()) if self.compare_words else (self.text != expected):
            self.error = "incomplete"  # ended normally with text missing: the worst kind


class HttpStream(asyncio.Protocol):
    """One HTTP/1.1 request whose response is a server-sent event stream."""

    def __init__(self, request: bytes, result: StreamResult, on_event: Callable[[str], bool]) -> None:
        self.request, self.result, self.on_event = request, result, on_event
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.body = bytearray()  # chunked framing not decoded yet
        self.events = bytearray()
        self.in_body = False
        self.chunked = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and not self.result.error and self.result.finished is None:
            self.result.error = f"connection: {type(exc).__name__}"
        self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.in_body:
            self._body(data)
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(self.head[:end]).decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)[1] if " " in lines[0] else "?"
        if status != "200":
            self.result.error = f"HTTP {status}"
            self._finish()
            return
        self.chunked = any(
            line.lower().startswith("transfer-encoding:") and "chunked" in line.lower() for line in lines[1:]
        )
        self.in_body = True
        rest = bytes(self.head[end + 4 :])
        self.head.clear()
        self._body(rest)

    def _body(self, data: bytes) -> None:
        if not self.chunked:
            self._events(data)
            return
        body = self.body
        body += data
        while True:  # bounded: every turn consumes a whole chunk or stops
            line_end = body.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(body[:line_end]).split(b";", 1)[0], 16)
            if size == 0:
                self._finish()  # the last chunk: the server ended the response
                return
            if len(body) < line_end + 2 + size + 2:
                return
            payload = bytes(body[line_end + 2 : line_end + 2 + size])
            del body[: line_end + 2 + size + 2]
            self._events(payload)
            if self.done.done():
                return

    def _events(self, payload: bytes) -> None:
        events = self.events
        events += payload
        while (end := events.find(b"\n\n")) >= 0:
            block = bytes(events[:end]).decode()
            del events[: end + 2]
            data = "\n".join(line[5:].lstrip(" ") for line in block.split("\n") if line.startswith("data:"))
            if data and self.on_event(data):
                self._finish()
                return


async def http_stream(
    port: int, request: bytes, result: StreamResult, on_event: Callable[[str], bool]
) -> None:
    loop = asyncio.get_running_loop()
    result.start()
    try:
        _transport, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: HttpStream(request, result, on_event), HOST, port), CONNECT_TIMEOUT
        )
    except (OSError, TimeoutError) as exc:
        result.error = f"connect: {type(exc).__name__}"
        return
    await protocol.done


def straight_request(port: int, tokens: int) -> bytes:
    body = json.dumps(
        {
            "model": "bench-model",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": tokens,
        }
    ).encode()
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer bench\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def straight_events(result: StreamResult) -> Callable[[str], bool]:
    def on_event(data: str) -> bool:
        if data == "[DONE]":
            result.end("complete")
            return True
        for choice in json.loads(data).get("choices") or []:
            result.add((choice.get("delta") or {}).get("content") or "")
        return False

    return on_event


def sse_request(port: int, token: str, conversation: str) -> bytes:
    return (
        f"GET /chat/stream?session_id={conversation}&message=hi HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    ).encode()


def sse_events(result: StreamResult) -> Callable[[str], bool]:
    def on_event(data: str) -> bool:
        event = json.loads(data)
        kind = event.get("type")
        if kind == "chunk":
            result.add(event.get("content") or "")
        elif kind == "end":
            result.end(str(event.get("status", "")))
            return True
        elif kind == "error":
            result.end(str(event.get("status", "")), f"error event ({event.get('status', '')})")
            return True
        return False

    return on_event


@dataclass
class PhaseRun:
    results: list[StreamResult]
    wall: float  # from the common start to the last stream's end


Client = Callable[[StreamResult], Awaitable[None]]


async def run_phase(clients: list[Client], expected: str, within: float) -> PhaseRun:
    """Start every client at the same moment; whatever is not over `within` seconds timed out."""
    start = asyncio.Event()
    results = [StreamResult() for _ in clients]

    async def run(client: Client, result: StreamResult) -> None:
        await start.wait()
        await client(result)

    tasks = [
        asyncio.create_task(run(client, result)) for client, result in zip(clients, results, strict=True)
    ]
    await asyncio.sleep(0)  # every task is waiting on the barrier
    began = time.perf_counter()
    start.set()
    _done, pending = await asyncio.wait(tasks, timeout=within)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    ended = time.perf_counter()
    for task, result in zip(tasks, results, strict=True):
        if task.cancelled() and result.finished is None and not result.error:
            result.error = "timeout"
        elif not task.cancelled() and task.exception() is not None:
            result.error = result.error or f"client: {type(task.exception()).__name__}"
        result.settle(expected)
    last = max((r.finished for r in results if r.finished is not None), default=ended)
    wall = ended - began if any(r.error == "timeout" for r in results) else last - began
    return PhaseRun(results, max(wall, 1e-6))
