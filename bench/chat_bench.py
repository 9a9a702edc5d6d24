"""Chatsite's performance figures, measured end to end on this machine.

Starts its own Redis, fake OpenAI-compatible provider, SQLite database and daphne
process, then measures what users feel:

- many users streaming at once over the chat socket: time to first token, time to
  the finished reply, frames per second per stream (coalescing) and server CPU per token;
- opening the chat page with a long conversation list and a long conversation.

Run:  .venv/bin/python bench/chat_bench.py [--users 20] [--tokens 200] [--conversations 300]
Everything stays on 127.0.0.1 and every loop is bounded.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

# Targets: what "fast" means for Chatsite on a 2-core machine.
TARGETS = {
    "ttft_p95_ms": 500.0,
    "page_p95_ms": 200.0,
    "frames_per_s_max": 25.0,
}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=20, help="users streaming at the same time")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per reply")
    parser.add_argument("--token-delay", type=float, default=0.005, help="provider seconds per token")
    parser.add_argument("--conversations", type=int, default=300, help="conversations in the list")
    parser.add_argument("--messages", type=int, default=100, help="messages in the long conversation")
    parser.add_argument("--page-loads", type=int, default=30)
    args = parser.parse_args()

    from chatsite.embedded_redis import EmbeddedRedis, free_port
    from tests.fake_openai import FakeOpenAI, Reply

    workdir = tempfile.TemporaryDirectory(prefix="chatsite-bench-")
    with EmbeddedRedis() as redis, FakeOpenAI() as provider:
        os.environ.update(
            {
                "DJANGO_SETTINGS_MODULE": "chatsite.settings",
                "REDIS_URL": redis.url,
                "SQLITE_PATH": str(Path(workdir.name) / "bench.sqlite3"),
                "OPENAI_BASE_URL": provider.base_url,
                "OPENAI_API_KEY": "bench",
                "OPENAI_MODEL": "fake-model",
            }
        )
        cookies = prepare_database(args)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "chatsite.asgi:application"],
            cwd=BASE_DIR,
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(base)
            # Warm up (templates compiled, provider client created), as a server in use is.
            asyncio.run(stream_all(port, cookies["streamers"][:1]))
            for _ in range(args.users):
                provider.queue_reply(
                    Reply(tokens=[f"w{i} " for i in range(args.tokens)], delay=args.token_delay)
                )
            cpu_before = cpu_seconds(server.pid)
            streams = asyncio.run(stream_all(port, cookies["streamers"]))
            cpu_used = cpu_seconds(server.pid) - cpu_before
            pages = load_pages(base, cookies, args.page_loads)
        finally:
            server.terminate()
            server.wait(timeout=10)
    workdir.cleanup()
    report(args, streams, cpu_used, pages)


def prepare_database(args: argparse.Namespace) -> dict[str, list[str]]:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from conversations.models import Conversation, Message
    from conversations.services import conversation_create
    from roles.services import role_load_builtins

    call_command("migrate", verbosity=0)
    role_load_builtins()
    users = get_user_model().objects

    def cookie_for(username: str) -> str:
        client = Client()
        client.force_login(users.create_user(username=username, password="bench-password-1"))
        return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"

    streamers = [cookie_for(f"user{n}") for n in range(args.users)]
    reader_cookie = cookie_for("reader")
    reader = users.get(username="reader")
    for n in range(args.conversations):
        conversation = conversation_create(owner=reader, title=f"Conversation {n}")
        Message.objects.create(conversation=conversation, author="user", content=f"Question {n}")
        Message.objects.create(conversation=conversation, author="assistant", content=f"Answer **{n}**")
    long_one = Conversation.objects.filter(owner=reader).order_by("-updated_at").first()
    assert long_one is not None
    for n in range(args.messages // 2):
        Message.objects.create(conversation=long_one, author="user", content=f"Question {n}?")
        Message.objects.create(
            conversation=long_one,
            author="assistant",
            content=f"## Answer {n}\n\nSome *Markdown* with code:\n\n```python\nprint({n})\n```\n",
        )
    return {"streamers": streamers, "reader": [reader_cookie], "long": [str(long_one.pk)]}


def wait_for(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/accounts/login/", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("daphne did not start")


async def stream_one(port: int, cookie: str, start: asyncio.Event) -> dict[str, float]:
    import websockets

    async with websockets.connect(
        f"ws://127.0.0.1:{port}/ws/chat/",
        additional_headers={"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"},
        max_size=2**22,
    ) as socket:
        await start.wait()
        sent = time.perf_counter()
        await socket.send(json.dumps({"action": "send", "message": "Tell me a long story"}))
        first = None
        frames = 0
        while True:
            frame = str(await asyncio.wait_for(socket.recv(), 60))
            if "beforeend:#msg-" in frame:
                frames += 1
                first = first or time.perf_counter()
            if "msg-assistant status-" in frame and "status-streaming" not in frame:
                done = time.perf_counter()
                break
    assert first is not None, "no streamed text arrived"
    return {
        "ttft": first - sent,
        "total": done - sent,
        "frames": frames,
        "fps": frames / max(done - first, 1e-6),
    }


async def stream_all(port: int, cookies: list[str]) -> list[dict[str, float]]:
    start = asyncio.Event()
    tasks = [asyncio.create_task(stream_one(port, cookie, start)) for cookie in cookies]
    await asyncio.sleep(0.5)  # all sockets open first, then everyone sends at once
    start.set()
    return list(await asyncio.gather(*tasks))


def load_pages(base: str, cookies: dict[str, list[str]], loads: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"list": [], "long": []}
    urls = {"list": base + "/", "long": f"{base}/c/{cookies['long'][0]}/"}
    for name, url in urls.items():
        for _ in range(loads):
            request = urllib.request.Request(url, headers={"Cookie": cookies["reader"][0]})
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
                assert response.status == 200
            timings[name].append(time.perf_counter() - started)
    return timings


def report(
    args: argparse.Namespace, streams: list[dict[str, float]], cpu: float, pages: dict[str, list[float]]
) -> None:
    ttft = [s["ttft"] * 1000 for s in streams]
    total = [s["total"] for s in streams]
    fps = [s["fps"] for s in streams]
    tokens = args.users * args.tokens
    rows = [
        ("concurrent streams", f"{args.users} x {args.tokens} tokens", ""),
        (
            "time to first token p50 / p95",
            f"{percentile(ttft, 0.5):.0f} / {percentile(ttft, 0.95):.0f} ms",
            f"p95 < {TARGETS['ttft_p95_ms']:.0f} ms",
        ),
        ("reply time p50 / p95", f"{percentile(total, 0.5):.2f} / {percentile(total, 0.95):.2f} s", ""),
        ("frames per second per stream (max)", f"{max(fps):.1f}", f"<= {TARGETS['frames_per_s_max']:.0f}"),
        ("server CPU per 1000 tokens", f"{cpu / tokens * 1000 * 1000:.0f} ms", ""),
        (
            f"chat page, {args.conversations} conversations p50 / p95",
            f"{percentile(pages['list'], 0.5) * 1000:.0f} / {percentile(pages['list'], 0.95) * 1000:.0f} ms",
            f"p95 < {TARGETS['page_p95_ms']:.0f} ms",
        ),
        (
            f"conversation of {args.messages} messages p50 / p95",
            f"{percentile(pages['long'], 0.5) * 1000:.0f} / {percentile(pages['long'], 0.95) * 1000:.0f} ms",
            f"p95 < {TARGETS['page_p95_ms']:.0f} ms",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print("\nChatsite benchmark (this machine, daphne + SQLite + embedded Redis + fake provider)")
    for name, value, target in rows:
        print(f"  {name:<{width}}  {value:<20} {target}")
    met = (
        percentile(ttft, 0.95) < TARGETS["ttft_p95_ms"]
        and max(fps) <= TARGETS["frames_per_s_max"]
        and percentile(pages["list"], 0.95) * 1000 < TARGETS["page_p95_ms"]
        and percentile(pages["long"], 0.95) * 1000 < TARGETS["page_p95_ms"]
    )
    print(f"  targets {'met' if met else 'MISSED'}")
    print(f"  mean streamed frames per reply: {statistics.mean(s['frames'] for s in streams):.1f}")


if __name__ == "__main__":
    main()
