"""`./run bench --soak`: many streams for minutes, with upstream faults and a Redis restart.

    ./run bench --soak [--duration 600] [--streams 100] [--faults 0.05] [--json out.json]

Each of `--streams` clients keeps one SSE stream going through Chatsite at all times: a
new conversation (`POST /chat/start`), one message (`GET /chat/stream`), read to its end,
again, until `--duration` has passed. The model server fails a share of the requests
(HTTP 500, the connection dropped mid-reply, silence mid-reply), and halfway through
Redis is killed and started again, empty. Then the database is checked against what the
clients were sent: every admitted message saved, every reply's saved text equal to the
text its client received, none left `streaming`, and the server's memory at the end
against the start. Exits non-zero when any check fails.
"""

import argparse
import asyncio
import json
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs
from bench.load_client import HOST, StreamResult, http_stream, sse_events, sse_request
from bench.stack import App, ModelServer, app_env, prepare_database

STREAM_SECONDS = 60.0
# Redis is away this long before it is started again.
REDIS_DOWN_SECONDS = 3.0
SETTLE_SECONDS = 60.0
RSS_SAMPLE_SECONDS = 15.0


@dataclass
class Sent:
    conversation: str
    result: StreamResult


@dataclass
class Soak:
    port: int
    tokens: list[str]
    deadline: float
    sent: list[Sent] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)


async def _start_conversation(port: int, token: str) -> str:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(
            f"POST /chat/start HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".encode()
        )
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head, _sep, body = response.partition(b"\r\n\r\n")
    if b" 201 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"POST /chat/start answered {head[:40]!r}")
    return str(json.loads(body)["session_id"])


async def _client(soak: Soak, token: str) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < soak.deadline:
        try:
            conversation = await _start_conversation(soak.port, token)
        except (OSError, RuntimeError, TimeoutError, ValueError) as exc:
            soak.refused[f"start: {type(exc).__name__}"] = (
                soak.refused.get(f"start: {type(exc).__name__}", 0) + 1
            )
            await asyncio.sleep(0.5)
            continue
        result = StreamResult()
        request = sse_request(soak.port, token, conversation)
        try:
            await asyncio.wait_for(
                http_stream(soak.port, request, result, sse_events(result)), STREAM_SECONDS
            )
        except TimeoutError:
            result.error = result.error or "timeout"
        if result.error.startswith("HTTP "):
            soak.refused[result.error] = soak.refused.get(result.error, 0) + 1
            await asyncio.sleep(0.5)  # a refusal says Retry-After; come back shortly
        soak.sent.append(Sent(conversation, result))


async def _redis_restart_halfway(redis: Any, duration: float) -> None:
    await asyncio.sleep(duration / 2)
    assert redis.process is not None
    redis.process.kill()  # as a crash would
    await asyncio.sleep(REDIS_DOWN_SECONDS)
    await asyncio.to_thread(redis.restart)


def _first_difference(saved: str, sent: str) -> int:
    """The index of the first character that differs (the shorter's length if one is a prefix)."""
    return next(
        (i for i, (a, b) in enumerate(zip(saved, sent, strict=False)) if a != b), min(len(saved), len(sent))
    )


def _admitted(item: Sent) -> bool:
    """Refused with a status (503 during the outage), or never connected: nothing to save."""
    return not item.result.error.startswith(("HTTP ", "connect: "))


def _check(sent: list[Sent]) -> dict[str, Any]:
    """Compare the database with what every client was sent."""
    from conversations.models import Message

    by_conversation: dict[str, list[Message]] = {}
    for message in Message.objects.filter(conversation_id__in=[s.conversation for s in sent]).order_by("id"):
        by_conversation.setdefault(str(message.conversation_id), []).append(message)
    statuses: dict[str, int] = {}
    mismatches: list[dict[str, Any]] = []
    lost_messages = half_saved = gave_up = 0
    for item in sent:
        messages = by_conversation.get(item.conversation, [])
        admitted = _admitted(item)
        if not admitted:
            half_saved += bool(messages)  # a refused message must leave nothing behind
            continue
        users = [m for m in messages if m.author == "user"]
        replies = [m for m in messages if m.author == "assistant"]
        if not users:
            lost_messages += 1
            continue
        for reply in replies:
            statuses[reply.status] = statuses.get(reply.status, 0) + 1
            if item.result.error == "timeout":
                # The client stopped reading (STREAM_SECONDS): what it did read must be the
                # beginning of the saved text; the rest it never asked for.
                gave_up += 1
                matches = reply.content.startswith(item.result.text)
            else:
                matches = reply.content == item.result.text
            if not matches:
                mismatches.append(
                    {
                        "conversation": item.conversation,
                        "status": reply.status,
                        "saved_chars": len(reply.content),
                        "sent_chars": len(item.result.text),
                        "client_error": item.result.error,
                        "reply_id": reply.pk,
                        # Enough to tell a gap from a reordering (seen once: same length, other text).
                        "first_difference": _first_difference(reply.content, item.result.text),
                        "saved": reply.content,
                        "sent_parts": item.result.parts,
                    }
                )
    return {
        "admitted": sum(1 for s in sent if _admitted(s)),
        "replies_by_status": statuses,
        "user_messages_lost": lost_messages,
        "refused_but_saved": half_saved,
        "text_mismatches": len(mismatches),
        "client_timeouts": gave_up,
        "mismatch_examples": mismatches[:5],
        "left_streaming": Message.objects.filter(status=Message.Status.STREAMING).count(),
    }


def _memory_figures(samples: list[int]) -> dict[str, float]:
    """Growth of the server's RSS in each half of the soak, in MiB per minute: a leak grows
    as fast in the second half as in the first; caches filling up slow down."""
    if len(samples) < 4:
        return {}
    per_minute = 60 / RSS_SAMPLE_SECONDS
    half = len(samples) // 2
    first, second = samples[: half + 1], samples[half:]
    return {
        "server_rss_mib_per_min_first_half": round(
            (first[-1] - first[0]) / 1024 / (len(first) - 1) * per_minute, 2
        ),
        "server_rss_mib_per_min_second_half": round(
            (second[-1] - second[0]) / 1024 / (len(second) - 1) * per_minute, 2
        ),
    }


def _find_all(text: str, needle: str) -> list[int]:
    found, start = [], text.find(needle)
    while start >= 0:
        found.append(max(0, start - 300))  # with the log line before it
        start = text.find(needle, start + 1)
    return found


def _wait_settled(timeout: float) -> None:
    from conversations.models import Message

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Message.objects.filter(status=Message.Status.STREAMING).exists():
        time.sleep(0.5)


def soak(args: argparse.Namespace) -> int:
    import os

    procs.raise_fd_limit()
    from chatsite.embedded_redis import EmbeddedRedis, free_port

    with tempfile.TemporaryDirectory(prefix="chatsite-soak-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        redis = stack.enter_context(EmbeddedRedis())
        model = ModelServer(
            tokens=args.tokens,
            rate=args.rate,
            first_token=args.first_token,
            log=workdir / "model.log",
            faults=args.faults,
        )
        stack.callback(model.stop)
        model.start()
        env = app_env(
            redis_url=redis.url,
            sqlite_path=workdir / "soak.sqlite3",
            model_url=model.base_url,
            port=free_port(),
            workers=args.workers,
        )
        # A silent provider is given up on after this long, so hung replies end within the soak.
        env["OPENAI_READ_TIMEOUT"] = "3"
        os.environ.update(env)
        accounts = prepare_database(users=args.streams, phases=[])
        app = App(env=env, log=workdir / "server.log")
        stack.callback(app.stop)
        app.start()
        assert app.process is not None
        tree = procs.ProcessTree(app.process.pid)
        rss_start = sum(procs.rss_kib(pid) for pid in tree.pids())
        print(
            f"Soak: {args.streams} streams for {args.duration:.0f} s, {args.faults:.0%} upstream faults, "
            "one Redis restart halfway",
            flush=True,
        )

        samples: list[int] = []
        anon_samples: list[int] = []

        async def sample_memory() -> None:
            while True:  # cancelled when the clients are done
                await asyncio.sleep(RSS_SAMPLE_SECONDS)
                pids = tree.pids()
                samples.append(sum(procs.rss_kib(pid) for pid in pids))
                anon_samples.append(sum(procs.rss_anon_kib(pid) for pid in pids))

        async def run() -> Soak:
            loop = asyncio.get_running_loop()
            state = Soak(port=app.port, tokens=[], deadline=loop.time() + args.duration)
            restart = asyncio.create_task(_redis_restart_halfway(redis, args.duration))
            sampler = asyncio.create_task(sample_memory())
            await asyncio.gather(*(_client(state, token) for token in accounts.tokens))
            await restart
            sampler.cancel()
            return state

        state = asyncio.run(run())
        _wait_settled(SETTLE_SECONDS)
        rss_end = sum(procs.rss_kib(pid) for pid in tree.pids())
        figures = _check(state.sent)
        figures.update(
            streams=len(state.sent),
            refused=state.refused,
            faults_injected={k: v for k, v in model.stats().items() if k in ("500", "drop", "hang")},
            redis_restarts=1,
            server_rss_kib_start=rss_start,
            server_rss_kib_end=rss_end,
            duration_s=args.duration,
            concurrent_streams=args.streams,
        )
        log = app.log.read_text(errors="replace")
        if figures["text_mismatches"]:  # the server's side of it, kept beside the JSON
            args.json.parent.mkdir(parents=True, exist_ok=True)
            (args.json.parent / "soak-server.log").write_text(log)
        figures["server_tracebacks"] = log.count("Traceback")
        figures["traceback_examples"] = [
            log[start : start + 1500] for start in _find_all(log, "Traceback")[:3]
        ]
        # Memory once the streams are all running (the first samples are the ramp-up), to the end.
        figures.update(_memory_figures(samples))
        figures["server_rss_kib_samples"] = samples
        figures["server_rss_anon_kib_samples"] = anon_samples
    passed = (
        figures["user_messages_lost"] == 0
        and figures["refused_but_saved"] == 0
        and figures["text_mismatches"] == 0
        and figures["left_streaming"] == 0
        and not any(k.startswith("HTTP 5") and k != "HTTP 503" for k in state.refused)
        and figures["admitted"] > 0
    )
    figures["passed"] = passed
    print(json.dumps(figures, indent=2), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2))
    return 0 if passed else 1
