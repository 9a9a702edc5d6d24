"""An OpenAI-compatible model server that paces tokens like a real one, for the benchmark.

    python -m bench.model_server [--tokens 200] [--rate 50] [--first-token 0.2]

Prints `listening http://127.0.0.1:PORT` once bound, then serves until SIGINT/SIGTERM:
`POST /v1/chat/completions` (streamed or not), `GET /v1/models`, and `GET /bench/stats`
(streams open and served, so the bench can wait for the app to finish a phase).

Token i of every reply is " w<i>", so a client can check that a reply arrived exactly and
whole. One asyncio loop serves all streams: it must hold 1,000 of them on one core and
leave the rest of the machine to the app. A single timer heap paces every stream
(streams started together wake together), and each token's bytes are built once.
"""

import argparse
import asyncio
import heapq
import json
import random
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from bench.procs import raise_fd_limit

HEAD_LIMIT = 64 * 1024
BODY_LIMIT = 4 * 1024 * 1024
# Streams due within this much of each other are written in the same wake-up.
SLACK_SECONDS = 0.0005


def token_text(index: int) -> str:
    return f" w{index}"


def expected_text(tokens: int) -> str:
    return "".join(token_text(i) for i in range(tokens))


def _chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _event(data: dict[str, Any]) -> bytes:
    return _chunked(b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n")


@dataclass(frozen=True)
class Script:
    """What every reply looks like, pre-encoded once."""

    tokens: int
    interval: float
    first_token: float
    model: str
    token_chunks: list[bytes] = field(default_factory=list)

    @classmethod
    def build(cls, *, tokens: int, rate: float, first_token: float, model: str) -> "Script":
        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": model}
        chunks = []
        for i in range(tokens):
            delta: dict[str, str] = {"content": token_text(i)}
            if i == 0:
                delta = {"role": "assistant", **delta}
            choice = {"index": 0, "delta": delta, "finish_reason": None}
            chunks.append(_event({**base, "choices": [choice]}))
        return cls(tokens, 1.0 / rate, first_token, model, chunks)

    def tail(self, prompt_tokens: int) -> bytes:
        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": self.model}
        stop = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        usage = {
            **base,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": self.tokens,
                "total_tokens": prompt_tokens + self.tokens,
            },
        }
        return _event(stop) + _event(usage) + _chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n"


class Stats:
    def __init__(self) -> None:
        self.active = 0
        self.served = 0


class Stream:
    def __init__(self, protocol: "ModelProtocol", prompt_tokens: int) -> None:
        self.protocol = protocol
        self.prompt_tokens = prompt_tokens
        self.next_index = 0
        self.closed = False
        # A fault (the soak's): at this token the connection drops, or goes silent for good.
        self.fault_at: int | None = None
        self.fault = ""


class Faults:
    """Which requests fail, and how: a share of them, drawn from a seeded generator."""

    KINDS = ("500", "drop", "hang")

    def __init__(self, share: float, seed: int) -> None:
        self.share = share
        self.random = random.Random(seed)
        self.counts = dict.fromkeys(self.KINDS, 0)

    def draw(self) -> str:
        if self.share <= 0 or self.random.random() >= self.share:
            return ""
        kind = self.random.choice(self.KINDS)
        self.counts[kind] += 1
        return kind


class Pacer:
    """Writes every open stream's next token at its due time, from one timer."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, script: Script, stats: Stats, faults: Faults | None = None
    ) -> None:
        self.loop, self.script, self.stats = loop, script, stats
        self.faults = faults or Faults(0.0, 0)
        self._heap: list[tuple[float, int, Stream]] = []
        self._order = 0  # ties in due time must not compare Streams
        self._timer: asyncio.TimerHandle | None = None

    def add(self, stream: Stream) -> None:
        self.stats.active += 1
        self._push(self.loop.time() + self.script.first_token, stream)

    def _push(self, due: float, stream: Stream) -> None:
        self._order += 1
        heapq.heappush(self._heap, (due, self._order, stream))
        if self._timer is None or self._timer.when() > self._heap[0][0]:
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(self._heap[0][0], self._tick) if self._heap else None

    def _tick(self) -> None:
        self._timer = None
        horizon = self.loop.time() + SLACK_SECONDS
        heap = self._heap
        due_again: list[tuple[float, Stream]] = []
        while heap and heap[0][0] <= horizon:
            due, _order, stream = heapq.heappop(heap)
            if stream.closed:
                self.stats.active -= 1
                continue
            script = self.script
            if stream.next_index == stream.fault_at:
                self.stats.active -= 1
                if stream.fault == "drop":
                    stream.protocol.abort()
                continue  # "hang": the connection stays open and silent
            stream.protocol.write(script.token_chunks[stream.next_index])
            stream.next_index += 1
            if stream.next_index < script.tokens:
                # Due times are absolute (start + k intervals): a late wake-up never drifts.
                due_again.append((due + script.interval, stream))
            else:
                self.stats.active -= 1
                self.stats.served += 1
                stream.protocol.finish(script.tail(stream.prompt_tokens))
        for due, stream in due_again:
            self._order += 1
            heapq.heappush(heap, (due, self._order, stream))
        self._arm()


class ModelProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection: keep-alive, one request at a time (the SDK's pool reuses them)."""

    def __init__(self, pacer: Pacer) -> None:
        self.pacer = pacer
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.stream: Stream | None = None
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stream is not None:
            self.stream.closed = True  # the pacer drops it at its next due time
        self.transport = None

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.stream is None:
            self._next_request()

    def finish(self, tail: bytes) -> None:
        self.write(tail)
        self.stream = None
        if self.close_after and self.transport is not None:
            self.transport.close()
        else:
            self._next_request()

    def _next_request(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > HEAD_LIMIT:
                self._respond(431, {"error": {"message": "headers too large"}}, close=True)
            return
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        method, path = ([*lines[0].split(" "), "", ""])[:2]
        headers = {}
        for line in lines[1:]:
            name, _colon, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length > BODY_LIMIT:
            self._respond(413, {"error": {"message": "body too large"}}, close=True)
            return
        if len(self.buffer) < end + 4 + length:
            return  # the body is still on its way
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        self.close_after = headers.get("connection", "").lower() == "close"
        self._handle(method, path.split("?", 1)[0], body)

    def _handle(self, method: str, path: str, body: bytes) -> None:
        script = self.pacer.script
        if method == "GET" and path.endswith("/models"):
            self._respond(200, {"object": "list", "data": [{"id": script.model, "object": "model"}]})
        elif method == "GET" and path == "/bench/stats":
            stats = self.pacer.stats
            self._respond(200, {"active": stats.active, "served": stats.served, **self.pacer.faults.counts})
        elif method == "POST" and path.endswith("/chat/completions"):
            try:
                request = json.loads(body)
                prompt_tokens = max(1, len(json.dumps(request.get("messages", []))) // 4)
            except (ValueError, AttributeError):
                self._respond(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error"}})
                return
            fault = self.pacer.faults.draw() if request.get("stream") else ""
            if fault == "500":
                self._respond(500, {"error": {"message": "injected fault", "type": "server_error"}})
            elif request.get("stream"):
                self._start_stream(prompt_tokens, fault)
            else:
                asyncio.get_running_loop().call_later(
                    script.first_token + script.tokens * script.interval, self._complete, prompt_tokens
                )
                self.stream = Stream(self, prompt_tokens)  # holds the connection until answered
        else:
            self._respond(404, {"error": {"message": f"no route {method} {path}"}})

    def _start_stream(self, prompt_tokens: int, fault: str = "") -> None:
        self.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        self.stream = Stream(self, prompt_tokens)
        if fault:
            # Mid-reply, after some text was sent: what the app must keep and say.
            self.stream.fault = fault
            self.stream.fault_at = self.pacer.faults.random.randint(1, max(1, self.pacer.script.tokens - 1))
        self.pacer.add(self.stream)

    def _complete(self, prompt_tokens: int) -> None:
        script = self.pacer.script
        self.stream = None
        self._respond(
            200,
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": 0,
                "model": script.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": expected_text(script.tokens)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": script.tokens,
                    "total_tokens": prompt_tokens + script.tokens,
                },
            },
        )

    def _respond(self, status: int, data: dict[str, Any], *, close: bool = False) -> None:
        payload = json.dumps(data).encode()
        self.write(
            b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (status, len(payload), payload)
        )
        if (close or self.close_after) and self.transport is not None:
            self.transport.close()
        elif self.buffer:
            self._next_request()


async def serve(script: Script, port: int, faults: Faults | None = None) -> None:
    loop = asyncio.get_running_loop()
    pacer = Pacer(loop, script, Stats(), faults)
    server = await loop.create_server(
        lambda: ModelProtocol(pacer), "127.0.0.1", port, backlog=4096, reuse_address=True
    )
    stopped = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening http://127.0.0.1:{bound}", flush=True)
    async with server:
        await stopped.wait()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per reply")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second per reply")
    parser.add_argument("--first-token", type=float, default=0.2, help="seconds before the first token")
    parser.add_argument("--model", default="bench-model")
    parser.add_argument("--faults", type=float, default=0.0, help="share of streamed requests that fail")
    parser.add_argument("--seed", type=int, default=1, help="for the faults")
    args = parser.parse_args()
    raise_fd_limit()
    script = Script.build(tokens=args.tokens, rate=args.rate, first_token=args.first_token, model=args.model)
    asyncio.run(serve(script, args.port, Faults(args.faults, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
