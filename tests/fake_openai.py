"""A local OpenAI-compatible HTTP server for tests.

The `openai` SDK talks to it over real loopback sockets, so tests exercise the
SDK's actual transport, SSE parsing, timeouts and error mapping. Pure stdlib.

    with FakeOpenAI() as fake:
        fake.queue_reply(Reply(tokens=["Hi", " there"]))
        client = openai.OpenAI(base_url=fake.base_url, api_key="test")
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import socket
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

# How often waiting handlers look for a client disconnect, release() or stop().
_POLL_SECONDS = 0.05
# Upper bound for stop() to wait for handler threads; they are daemons anyway.
_STOP_GRACE_SECONDS = 2.0

# (type, code) of OpenAI's error bodies for the statuses tests usually script.
_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass(frozen=True)
class Reply:
    """A scripted answer to one chat completion request.

    Without `stream`, `hang_after_tokens`/`drop_after_tokens` apply before any
    byte of the response is sent, and `delay` is paid once per token.
    `hang_again_after_tokens`: after a release(), run on to this many tokens and hang
    again until the next release(): the model runs ahead of a client, and is still running.
    """

    tokens: list[str]
    # Streamed before the tokens, each as `delta.<reasoning_field>`, as reasoning models do
    # (DeepSeek, Qwen, vLLM and llama.cpp send `reasoning_content`; others `reasoning`).
    # The hang and drop counts run over both: reasoning first, then the tokens.
    reasoning: tuple[str, ...] = ()
    reasoning_field: str = "reasoning_content"
    delay: float = 0.0
    status: int = 200
    retry_after: float | None = None
    hang_after_tokens: int | None = None
    hang_again_after_tokens: int | None = None
    drop_after_tokens: int | None = None
    usage: tuple[int, int] | None = None
    # False: report no usage at all, even when the request asks for it (as some
    # OpenAI-compatible servers do): no usage chunk in a stream, no `usage` field otherwise.
    send_usage: bool = True
    error_message: str | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """A chat completion request the fake accepted (header names lowercased)."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeOpenAI:
    """OpenAI-compatible server on 127.0.0.1, serving from a daemon thread."""

    def __init__(self, model: str = "fake-model", *, listed: list[str] | None = None) -> None:
        self.model = model
        self.listed = listed if listed is not None else [model]  # what GET /v1/models lists
        self._cond = threading.Condition()
        self._replies: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._open_streams = 0
        self._release_generation = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind a free loopback port and start serving."""
        if self._server is not None:
            raise RuntimeError("FakeOpenAI already started")
        self._stopping.clear()
        self._server = _Server(self)
        # A short poll interval keeps stop() fast: shutdown() waits for one.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_SECONDS},
            name="fake-openai",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, cutting open connections, including hung streams."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        self._stopping.set()
        server.shutdown()
        server.abort_connections()
        server.server_close()
        server.wait_idle(_STOP_GRACE_SECONDS)
        thread.join(_STOP_GRACE_SECONDS)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The URL to pass as the SDK's `base_url`."""
        if self._server is None:
            raise RuntimeError("FakeOpenAI is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the accepted chat completion requests, oldest first."""
        with self._cond:
            return list(self._requests)

    @property
    def open_streams(self) -> int:
        """How many streaming responses are being served right now."""
        with self._cond:
            return self._open_streams

    def last_messages(self) -> list[dict[str, Any]]:
        """The `messages` of the most recent chat completion request."""
        with self._cond:
            if not self._requests:
                raise LookupError("no chat completion request recorded")
            messages: list[dict[str, Any]] = self._requests[-1].body["messages"]
            return messages

    def queue_reply(self, reply: Reply) -> None:
        """Script the answer to a future request (FIFO, one per request)."""
        with self._cond:
            self._replies.append(reply)

    def queue_text(self, text: str, chunk_size: int | None = None, delay: float = 0.0) -> None:
        """Queue `text` as words (like the echo reply) or `chunk_size`-char tokens."""
        if chunk_size is None:
            tokens = _split_words(text)
        else:
            tokens = [text[i : i + chunk_size] for i in range(0, len(text), chunk_size)]
        self.queue_reply(Reply(tokens=tokens, delay=delay))

    def release(self) -> None:
        """Let every stream hung so far (`hang_after_tokens`) carry on."""
        with self._cond:
            self._release_generation += 1

    def wait_for_request(self, n: int = 1, timeout: float = 5.0) -> RecordedRequest:
        """Wait for the n-th request (1-based); streams have sent headers by then."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._requests) >= n, timeout):
                raise TimeoutError(f"request #{n} not received within {timeout}s")
            return self._requests[n - 1]

    def wait_for_open_streams(self, count: int, timeout: float = 5.0) -> None:
        """Wait until exactly `count` streams are open, e.g. 0 after a client hung up."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._open_streams == count, timeout):
                raise TimeoutError(f"{self._open_streams} streams open, expected {count}")

    # Used by the request handler threads.

    def _accept(self, request: RecordedRequest) -> tuple[Reply, int]:
        """Pop the reply for `request`; also the release generation it may hang on."""
        with self._cond:
            reply = self._replies.popleft() if self._replies else _echo_reply(request.body["messages"])
            return reply, self._release_generation

    def _record(self, request: RecordedRequest) -> None:
        with self._cond:
            self._requests.append(request)
            self._cond.notify_all()

    def _release_generation_now(self) -> int:
        with self._cond:
            return self._release_generation

    def _released_since(self, generation: int) -> bool:
        with self._cond:
            return self._release_generation != generation

    def _count_stream(self, delta: int) -> None:
        with self._cond:
            self._open_streams += delta
            self._cond.notify_all()


class _Server(ThreadingHTTPServer):
    """One daemon thread per connection (the ThreadingHTTPServer default)."""

    def __init__(self, fake: FakeOpenAI) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._idle = threading.Condition()

    def track(self, connection: socket.socket) -> None:
        with self._idle:
            self._connections.add(connection)
            # A connection accepted while stop() ran must not outlive it.
            if self.fake._stopping.is_set():
                _cut(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._idle:
            self._connections.discard(connection)
            self._idle.notify_all()

    def abort_connections(self) -> None:
        """Shut every connection down; blocked reads and writes then fail at once."""
        with self._idle:
            for connection in self._connections:
                _cut(connection)

    def wait_idle(self, timeout: float) -> None:
        with self._idle:
            self._idle.wait_for(lambda: not self._connections, timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client vanishing mid-request is routine here; anything else is a bug.
        if not isinstance(sys.exception(), ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Each SSE event must leave at once, not wait for the client's ACK.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""

    def do_GET(self) -> None:
        if self.path != "/v1/models":
            self._send_error(404, f"Unknown path {self.path}")
            return
        models = [
            {"id": name, "object": "model", "created": 0, "owned_by": "fake"}
            for name in self.server.fake.listed
        ]
        self._send_json(200, {"object": "list", "data": models})

    def do_POST(self) -> None:
        body = self._read_json()
        if self.path != "/v1/chat/completions":
            self._send_error(404, f"Unknown path {self.path}")
        elif body is None:
            self._send_error(400, "We could not parse the JSON body of your request.")
        elif not isinstance(body.get("messages"), list):
            self._send_error(
                400, "Missing required parameter: 'messages'.", code="missing_required_parameter"
            )
        else:
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = RecordedRequest(path=self.path, headers=headers, body=body)
            reply, generation = self.server.fake._accept(request)
            if reply.status != 200:
                self.server.fake._record(request)
                self._send_error(reply.status, reply.error_message, retry_after=reply.retry_after)
            elif body.get("stream") is True:
                self._stream(request, reply, generation)
            else:
                self._complete(request, reply, generation)

    def _read_json(self) -> dict[str, Any] | None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _stream(self, request: RecordedRequest, reply: Reply, generation: int) -> None:
        fake = self.server.fake
        options = request.body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        chunk = _Chunks(request.body, fake.model, include_usage)
        fake._count_stream(+1)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            fake._record(request)
            self._send_event(chunk.delta({"role": "assistant", "content": ""}))
            deltas = [{reply.reasoning_field: r} for r in reply.reasoning] + [
                {"content": token} for token in reply.tokens
            ]
            for sent in range(len(deltas) + 1):
                if sent == reply.drop_after_tokens:
                    self._drop()
                    return
                if sent in (reply.hang_after_tokens, reply.hang_again_after_tokens):
                    if not self._hold(None, generation):
                        return
                    generation = fake._release_generation_now()
                if sent == len(deltas):
                    break
                if reply.delay and not self._hold(reply.delay, generation):
                    return
                self._send_event(chunk.delta(deltas[sent]))
            self._send_event(chunk.delta({}, finish_reason="stop"))
            if include_usage and reply.send_usage:
                self._send_event(chunk.usage(_usage(request.body, reply)))
            self._send_event("[DONE]")
            self._write_chunk(b"")
        except OSError:
            # The client hung up (or stop() cut the socket): nothing left to say.
            self.close_connection = True
        finally:
            fake._count_stream(-1)

    def _complete(self, request: RecordedRequest, reply: Reply, generation: int) -> None:
        self.server.fake._record(request)
        if reply.drop_after_tokens is not None:
            self._drop()
            return
        if reply.hang_after_tokens is not None and not self._hold(None, generation):
            return
        if reply.delay and not self._hold(reply.delay * len(reply.tokens), generation):
            return
        message = {"role": "assistant", "content": "".join(reply.tokens), "refusal": None}
        completion: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": _model(request.body, self.server.fake.model),
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        }
        if reply.send_usage:
            completion["usage"] = _usage(request.body, reply)
        self._send_json(200, completion)

    def _hold(self, seconds: float | None, generation: int) -> bool:
        """Wait `seconds`, or for release() if None; False if the client or server quit."""
        fake = self.server.fake
        deadline = None if seconds is None else time.monotonic() + seconds
        while not fake._stopping.is_set():
            if deadline is None:
                if fake._released_since(generation):
                    return True
                timeout = _POLL_SECONDS
            else:
                timeout = min(deadline - time.monotonic(), _POLL_SECONDS)
                if timeout <= 0:
                    return True
            if self._peer_closed(timeout):
                break
        self.close_connection = True
        return False

    def _peer_closed(self, timeout: float) -> bool:
        """Watch the idle socket for up to `timeout`; True once the peer closed it."""
        try:
            readable, _, _ = select.select([self.connection], [], [], timeout)
            if not readable:
                return False
            if self.connection.recv(1, socket.MSG_PEEK):
                # Unexpected early bytes are not a hang-up; don't spin on them.
                time.sleep(timeout)
                return False
            return True
        except (OSError, ValueError):  # ValueError: the socket is already closed.
            return True

    def _drop(self) -> None:
        """Close the TCP connection mid-body, as a crashed upstream would."""
        self.close_connection = True
        _cut(self.connection)

    def _send_event(self, payload: dict[str, Any] | str) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        self._write_chunk(f"data: {data}\n\n".encode())

    def _write_chunk(self, data: bytes) -> None:
        """Write one HTTP/1.1 chunk (empty: the terminating one) and flush it."""
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _send_error(
        self, status: int, message: str | None, *, code: str | None = None, retry_after: float | None = None
    ) -> None:
        error_type, default_code = _ERROR_KINDS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None)
        )
        error = {
            "message": message or f"Fake error: {HTTPStatus(status).phrase}",
            "type": error_type,
            "param": None,
            "code": code or default_code,
        }
        headers = {} if retry_after is None else {"Retry-After": format(retry_after, "g")}
        self._send_json(status, {"error": error}, headers)

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _Chunks:
    """Builds `chat.completion.chunk` events sharing one id, as OpenAI's do."""

    def __init__(self, body: dict[str, Any], default_model: str, include_usage: bool) -> None:
        self._base: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": _model(body, default_model),
            "system_fingerprint": None,
        }
        # OpenAI sends "usage": null on every chunk once usage was asked for.
        if include_usage:
            self._base["usage"] = None

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**self._base, "choices": [choice]}

    def usage(self, usage: dict[str, int]) -> dict[str, Any]:
        return {**self._base, "choices": [], "usage": usage}


def _echo_reply(messages: list[Any]) -> Reply:
    user_texts = [_text(m) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return Reply(tokens=_split_words(f"Echo: {user_texts[-1] if user_texts else ''}"))


def _split_words(text: str) -> list[str]:
    """Split into words, each keeping its leading whitespace: "a b" -> ["a", " b"]."""
    return re.findall(r"\s*\S+", text)


def _text(message: dict[str, Any]) -> str:
    """A message's text, whether `content` is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _usage(body: dict[str, Any], reply: Reply) -> dict[str, int]:
    """Scripted counts, or words in the prompt and tokens in the reply."""
    if reply.usage is not None:
        prompt, completion = reply.usage
    else:
        prompt = sum(len(_text(m).split()) for m in body["messages"] if isinstance(m, dict))
        completion = len(reply.tokens)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _model(body: dict[str, Any], default: str) -> str:
    model = body.get("model")
    return model if isinstance(model, str) else default


def _cut(connection: socket.socket) -> None:
    """Shut a socket down both ways: the peer sees EOF, local I/O fails fast."""
    # OSError: already closed or never connected, so nothing to cut.
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
