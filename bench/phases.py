"""One measured phase: N streams over one transport, with the CPU and memory it cost.

A phase is bounded in time (its timeout), and the next one starts only once the model
server has no open stream: the app has finished every reply of the last one.
"""

import asyncio
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench import load_client, procs, ws_client
from bench.load_client import Client, StreamResult
from bench.report import STRAIGHT, Row, add_costs, summarize
from bench.stack import Accounts, ModelServer
from bench.ws_client import ClientConnection

RSS_SAMPLE_SECONDS = 0.5
SETTLE_SECONDS = 60.0
# After a phase, the app is idle again once it uses less than this share of a core.
QUIET_CORE_SHARE = 0.1
QUIET_WINDOW_SECONDS = 0.25
QUIET_SECONDS = 30.0
# Opening the idle sockets gives up after this long (the figure then counts those opened).
IDLE_OPEN_SECONDS = 120.0
EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exhausted))\b", re.M)


@dataclass
class Meters:
    """Where CPU and memory are read: the app's process tree, the model server, Redis, us."""

    server: procs.ProcessTree
    model_pid: int
    redis_pid: int
    log: Path

    def cpu(self) -> tuple[procs.TreeSample, float, float, float]:
        return (
            self.server.sample(),
            procs.cpu_seconds(self.model_pid) or 0.0,
            procs.cpu_seconds(self.redis_pid) or 0.0,
            procs.self_cpu_seconds(),
        )


@dataclass
class Bench:
    port: int
    tokens: int
    expected: str
    timeout: float
    accounts: Accounts
    model: ModelServer
    meters: Meters

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, conversation: str) -> str:
        # The path the chat page opens for an existing conversation (templates/chat/page.html).
        return f"ws://127.0.0.1:{self.port}/ws/chat/{conversation}/"


async def _peak_rss(pids: list[int], peak: list[int]) -> None:
    while True:  # cancelled when the phase ends
        peak[0] = max(peak[0], sum(procs.rss_kib(pid) for pid in pids))
        await asyncio.sleep(RSS_SAMPLE_SECONDS)


async def _quiet(server: procs.ProcessTree) -> bool:
    """Wait until the app uses less than QUIET_CORE_SHARE of a core; False if it never does."""
    deadline = asyncio.get_running_loop().time() + QUIET_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        before = server.sample()
        await asyncio.sleep(QUIET_WINDOW_SECONDS)
        if server.cpu_since(before) < QUIET_CORE_SHARE * QUIET_WINDOW_SECONDS:
            return True
    return False


def _log_exceptions(log: Path, since: int) -> dict[str, int]:
    with log.open("rb") as file:
        file.seek(since)
        text = file.read().decode(errors="replace")
    return dict(Counter(EXCEPTION.findall(text)).most_common(5))


async def measure(bench: Bench, *, n: int, transport: str, clients: list[Client]) -> Row:
    meters = bench.meters
    pids = meters.server.pids()
    peak = [0]
    log_offset = meters.log.stat().st_size
    server_before, model_before, redis_before, client_before = meters.cpu()
    sampler = asyncio.create_task(_peak_rss(pids, peak))
    try:
        run = await load_client.run_phase(clients, bench.expected, bench.timeout)
    finally:
        sampler.cancel()
    row = summarize(run, n=n, transport=transport, tokens=bench.tokens)
    # CPU is read once the app has finished every reply of the phase (saving, rendering)
    # and whatever it does after (failing retries, reaping): the next phase starts clean.
    row["settled"] = await asyncio.to_thread(bench.model.wait_idle, SETTLE_SECONDS) and await _quiet(
        meters.server
    )
    _server, model_after, redis_after, client_after = meters.cpu()
    by_process = meters.server.cpu_by_process_since(server_before)
    row["server_cpu_s_by_process"] = [round(cpu, 2) for cpu in by_process]
    add_costs(
        row,
        server_cpu=sum(by_process),
        model_cpu=model_after - model_before,
        client_cpu=client_after - client_before,
        redis_cpu=redis_after - redis_before,
    )
    row["server_rss_mib"] = max(peak[0], meters.server.rss_kib()) / 1024
    row["server_processes"] = len(pids)
    row["server_log_exceptions"] = _log_exceptions(meters.log, log_offset)
    return row


async def straight(bench: Bench, n: int) -> Row:
    request = load_client.straight_request(bench.model.port, bench.tokens)
    clients = [_straight_client(bench.model.port, request) for _ in range(n)]
    return await measure(bench, n=n, transport=STRAIGHT, clients=clients)


def _straight_client(port: int, request: bytes) -> Client:
    async def client(result: StreamResult) -> None:
        await load_client.http_stream(port, request, result, load_client.straight_events(result))

    return client


def _sse_client(port: int, token: str, conversation: str) -> Client:
    request = load_client.sse_request(port, token, conversation)

    async def client(result: StreamResult) -> None:
        await load_client.http_stream(port, request, result, load_client.sse_events(result))

    return client


async def sse(bench: Bench, n: int, key: tuple[str, int] | None = None) -> Row:
    conversations = bench.accounts.conversations[key or ("sse", n)]
    tokens = bench.accounts.tokens
    clients = [_sse_client(bench.port, tokens[i], conversations[i]) for i in range(n)]
    return await measure(bench, n=n, transport="sse", clients=clients)


def _ws_client(socket: ClientConnection | str, conversation: str) -> Client:
    async def client(result: StreamResult) -> None:
        if isinstance(socket, str):
            result.error = socket  # it never opened: the kind of failure
            return
        await ws_client.ws_stream(socket, conversation, result)

    return client


async def ws(bench: Bench, n: int, key: tuple[str, int] | None = None) -> Row:
    conversations = bench.accounts.conversations[key or ("ws", n)]
    cookies = bench.accounts.cookies
    # Sockets open before the clock starts, as a browser's is open before its user types.
    sockets = await ws_client.ws_open_many(
        [(bench.ws_url(conversations[i]), cookies[i]) for i in range(n)], bench.origin, within=bench.timeout
    )
    try:
        clients = [_ws_client(sockets[i], conversations[i]) for i in range(n)]
        return await measure(bench, n=n, transport="ws", clients=clients)
    finally:
        await ws_client.close_all(sockets)


async def idle_cpu(bench: Bench, seconds: float = 2.0) -> float:
    """Cores the app uses with nothing to do (its timers and pollers): in every phase's CPU."""
    before = bench.meters.server.sample()
    await asyncio.sleep(seconds)
    return bench.meters.server.cpu_since(before) / seconds


async def idle_sockets(bench: Bench, count: int, conversations: list[str]) -> Row:
    """Server memory per idle open chat socket: (RSS after opening - RSS before) / opened."""
    cookies = bench.accounts.cookies
    await _quiet(bench.meters.server)
    before = bench.meters.server.rss_kib()
    targets = [
        (bench.ws_url(conversations[i % len(conversations)]), cookies[i % len(conversations)])
        for i in range(count)
    ]
    sockets = await ws_client.ws_open_many(targets, bench.origin, within=IDLE_OPEN_SECONDS)
    try:
        await _quiet(bench.meters.server)  # the server's per-socket work (auth, group join) is done
        after = bench.meters.server.rss_kib()
    finally:
        await ws_client.close_all(sockets)
    await _quiet(bench.meters.server)  # the server's goodbyes are not the next phase's work
    opened = sum(1 for s in sockets if not isinstance(s, str))
    failures = Counter(s for s in sockets if isinstance(s, str))
    return {
        "requested": count,
        "opened": opened,
        "failures": dict(failures.most_common()),
        "rss_before_mib": before / 1024,
        "rss_after_mib": after / 1024,
        "kib_per_socket": (after - before) / opened if opened else None,
    }
