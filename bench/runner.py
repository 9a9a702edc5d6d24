"""`./run bench`: Chatsite under N concurrent streams, against the model server as the limit.

    ./run bench [--n 1,10,50,200,500,1000] [--transport sse,ws] [--json out.json] [--quick]
    ./run bench --soak [--duration 600] [--streams 100] [--faults 0.05]   (bench/soak.py)
    ./run bench --search [--postgres] [--conversations 10000] [--messages 20]          (bench/search.py)

Starts an embedded Redis, a model server pacing tokens like a real one (default 200 tokens
at 50 tokens/s, first token after 0.2 s), and Chatsite through `python -m chatsite.launcher`
(DEBUG=false, limits off, CHATSITE_WORKERS workers). For each N, the same load client
streams straight from the model server, then through the SSE API and the chat WebSocket,
all N streams starting at the same moment. Prints a Markdown table with issue 9's targets
and writes JSON. Everything stays on 127.0.0.1, every phase is bounded in time, and
everything started is stopped on exit, Ctrl-C or error.
"""

import argparse
import asyncio
import gc
import json
import os
import platform
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

from bench import phases, procs
from bench.model_server import expected_text
from bench.pages import measure_pages, pages_text, prepare_reader
from bench.report import Row, compare_to_straight, markdown_table, targets, targets_text
from bench.stack import BASE_DIR, App, ModelServer, app_env, prepare_database

TRANSPORTS = ("sse", "ws")


def _int_list(value: str) -> list[int]:
    return [int(item) for item in value.split(",") if item.strip()]


def _transports(value: str) -> list[str]:
    chosen = [item.strip() for item in value.split(",") if item.strip()]
    unknown = set(chosen) - set(TRANSPORTS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown transport(s): {', '.join(sorted(unknown))}")
    return chosen


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./run bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=_int_list, default=[1, 10, 50, 200, 500, 1000], help="concurrent streams")
    parser.add_argument("--transport", type=_transports, default=list(TRANSPORTS), help="sse,ws")
    parser.add_argument("--json", type=Path, default=BASE_DIR / "test-artifacts" / "bench.json")
    parser.add_argument("--quick", action="store_true", help="N=1,10, 50 tokens, 200 idle sockets")
    parser.add_argument("--workers", type=int, default=2, help="CHATSITE_WORKERS for the app")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per reply")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second per reply")
    parser.add_argument("--first-token", type=float, default=0.2, help="model's seconds to first token")
    parser.add_argument("--idle", type=int, default=2000, help="idle chat sockets for the memory figure")
    parser.add_argument("--timeout", type=float, default=0.0, help="seconds per phase (0: from the reply)")
    parser.add_argument(
        "--pages", action="store_true", help="also time the chat page and a long conversation"
    )
    soak = parser.add_argument_group("soak (bench/soak.py)")
    soak.add_argument("--soak", action="store_true", help="minutes of streams, faults, a Redis restart")
    soak.add_argument("--duration", type=float, default=600.0, help="soak seconds")
    soak.add_argument("--streams", type=int, default=100, help="soak: concurrent streams")
    soak.add_argument("--faults", type=float, default=0.05, help="soak: share of upstream requests that fail")
    search = parser.add_argument_group("search (bench/search.py)")
    search.add_argument("--search", action="store_true", help="search and the page over many conversations")
    search.add_argument("--conversations", type=int, default=10000, help="search: the reader's conversations")
    search.add_argument("--messages", type=int, default=20, help="search: messages per conversation")
    search.add_argument("--loads", type=int, default=20, help="search: requests per query")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="on a throwaway PostgreSQL, not SQLite (its CPU counted as the server's)",
    )
    args = parser.parse_args(argv)
    if args.soak and args.json == parser.get_default("json"):
        args.json = BASE_DIR / "test-artifacts" / "soak.json"
    if args.search and args.json == parser.get_default("json"):
        args.json = BASE_DIR / "test-artifacts" / "search.json"
    if args.quick:
        args.n, args.tokens, args.idle = [1, 10], min(args.tokens, 50), min(args.idle, 200)
    if not args.n or min(args.n) < 1:
        parser.error("--n needs positive numbers")
    return args


def _phase_timeout(args: argparse.Namespace, n: int) -> float:
    if args.timeout:
        return float(args.timeout)
    # Three times the reply's own duration plus slack, a little more for bigger N.
    return 3 * (args.first_token + args.tokens / args.rate) + 30 + 0.03 * n


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same clean-up as Ctrl-C


STARTED = time.monotonic()


def _progress(text: str) -> None:
    print(f"[{time.monotonic() - STARTED:5.1f} s] {text}", file=sys.stderr, flush=True)


async def _run_phases(
    args: argparse.Namespace, bench: phases.Bench, warmup: int
) -> tuple[list[Row], Row | None, float]:
    # Warm up every worker (templates compiled, provider client made) as a server in use is.
    await asyncio.gather(
        *(
            (phases.sse if transport == "sse" else phases.ws)(bench, warmup, (f"warmup-{transport}", warmup))
            for transport in args.transport
        )
    )
    baseline = await phases.idle_cpu(bench)
    _progress(f"  warmed up; idle, the app uses {baseline:.3f} of a core")
    # Idle sockets before the streams: after them, the allocator hands the sockets memory
    # the streams had used, and the figure read 10 KiB a socket where a server that has
    # not streamed yet needs 59.
    idle = None
    if args.idle > 0:
        biggest = max(args.n)
        pool = bench.accounts.conversations[(args.transport[-1], biggest)] if args.transport else []
        if pool:
            _progress(f"  opening {args.idle} idle chat sockets ...")
            idle = await phases.idle_sockets(bench, args.idle, pool)
            _progress("  measured idle sockets")
    rows: list[Row] = []
    for n in args.n:
        bench.timeout = _phase_timeout(args, n)
        for transport in ["straight", *args.transport]:
            began = time.monotonic()
            if transport == "straight":
                row = await phases.straight(bench, n)
            else:
                row = await (phases.sse if transport == "sse" else phases.ws)(bench, n)
            rows.append(row)
            errors = ", ".join(f"{c} {k}" for k, c in row["errors"].items()) or "no errors"
            # PostgreSQL's idle connections, each a process, left out.
            split = " / ".join(f"{cpu:.1f}" for cpu in row.get("server_cpu_s_by_process", []) if cpu >= 0.05)
            _progress(
                f"  N={n} {transport}: {row['exact']}/{n} exact, {errors} ({time.monotonic() - began:.0f} s)"
                + (f"; server CPU s by process: {split}" if split else "")
            )
    return rows, idle, baseline


def _environment(args: argparse.Namespace, app: App, redis_pid: int, fd_limit: tuple[int, int]) -> Row:
    assert app.process is not None
    tree = procs.descendants(app.process.pid)
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "server_processes": [{"pid": pid, "command": procs.command_line(pid)[:120]} for pid in tree],
        "server_open_files_limit": min((procs.open_files_limit(pid) or 0) for pid in tree),
        "bench_open_files_limit": fd_limit[0],
        "workers_requested": args.workers,
        "database": "postgresql" if args.postgres else "sqlite",
        "redis_pid": redis_pid,
    }


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        if args.soak:
            from bench.soak import soak

            return soak(args)
        if args.search:
            from bench.search import search_bench

            return search_bench(args)
        return run(args)
    except KeyboardInterrupt:
        _progress("Interrupted: everything the bench started is stopped.")
        return 130


def run(args: argparse.Namespace) -> int:
    fd_limit = procs.raise_fd_limit()  # children (model server, app) inherit it
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    from chatsite.embedded_redis import EmbeddedRedis, free_port

    # Enough concurrent streams that every worker (they share one socket) serves some.
    warmup = max(4, 4 * args.workers)
    phase_keys = [(t, n) for t in args.transport for n in args.n] + [
        (f"warmup-{t}", warmup) for t in args.transport
    ]
    with tempfile.TemporaryDirectory(prefix="chatsite-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        redis = stack.enter_context(EmbeddedRedis())
        assert redis.process is not None
        model = ModelServer(
            tokens=args.tokens, rate=args.rate, first_token=args.first_token, log=workdir / "model.log"
        )
        stack.callback(model.stop)
        model.start()
        assert model.process is not None
        env = app_env(
            redis_url=redis.url,
            sqlite_path=workdir / "bench.sqlite3",
            model_url=model.base_url,
            port=free_port(),
            workers=args.workers,
        )
        postgres = None
        if args.postgres:
            from chatsite.embedded_postgres import PostgresServer

            postgres = PostgresServer().start()
            stack.callback(postgres.stop)
            env["DATABASE_URL"] = postgres.url
        os.environ.update(env)  # the bench's own Django (preparing the data) uses the same settings
        _progress(f"Preparing {max(max(args.n), warmup)} users and their conversations ...")
        accounts = prepare_database(users=max(max(args.n), warmup), phases=phase_keys)
        reader = prepare_reader() if args.pages else None
        _progress("Starting Chatsite (python -m chatsite.launcher) ...")
        app = App(env=env, log=workdir / "server.log")
        stack.callback(app.stop)
        try:
            app.start()
            assert app.process is not None
            _progress(f"  serving on 127.0.0.1:{app.port}")
            meters = phases.Meters(
                procs.ProcessTree(app.process.pid, cpu_also=postgres.postmaster_pid() if postgres else None),
                model.process.pid,
                redis.process.pid,
                app.log,
            )
            bench = phases.Bench(
                port=app.port,
                tokens=args.tokens,
                expected=expected_text(args.tokens),
                timeout=_phase_timeout(args, warmup),
                accounts=accounts,
                model=model,
                meters=meters,
            )
            # The prepared rows stay alive for the whole run: keep the collector from
            # walking them again and again while it times streams.
            gc.collect()
            gc.freeze()
            rows, idle, baseline = asyncio.run(_run_phases(args, bench, warmup))
            # Read after the run: every worker the launcher starts is up by now.
            environment = _environment(args, app, redis.process.pid, fd_limit)
            environment["server_idle_cpu_cores"] = baseline
            pages = measure_pages(port=app.port, reader=reader, loads=30) if reader else None
        except Exception:
            _progress(f"The bench failed. Server log (end):\n{app.log_tail()}")
            raise
    _progress("stopped everything")
    compare_to_straight(rows)
    checks = targets(rows, idle)
    _print_report(args, environment, rows, idle, checks, pages)
    _write_json(args, environment, rows, idle, checks, pages)
    return 0


def _print_report(
    args: argparse.Namespace,
    environment: Row,
    rows: list[Row],
    idle: Row | None,
    checks: list[Row],
    pages: dict[str, Any] | None,
) -> None:
    processes = environment["server_processes"]
    database = "PostgreSQL (its CPU counted in the server's)" if args.postgres else "SQLite"
    print(f"\n## Chatsite under load ({environment['machine']})\n")
    print(
        f"{args.tokens} tokens per reply at {args.rate:g} tokens/s, "
        f"first token after {args.first_token:g} s; "
        f"CHATSITE_WORKERS={args.workers}, {len(processes)} server process(es), "
        f"{database}, "
        f"open-files limit {environment['server_open_files_limit']}; idle, the app uses "
        f"{environment['server_idle_cpu_cores']:.3f} of a core. First token over the streams "
        "that received one; delivered = tokens of exact, whole replies / wall time.\n"
    )
    print(markdown_table(rows))
    exceptions = [
        f"N={r['n']} {r['transport']}: {r['server_log_exceptions']}"
        for r in rows
        if r["server_log_exceptions"]
    ]
    if exceptions:
        print("\nServer log exceptions: " + "; ".join(exceptions))
    if idle:
        print(
            f"\nIdle chat sockets: {idle['opened']}/{idle['requested']} open, server RSS "
            f"{idle['rss_before_mib']:.0f} -> {idle['rss_after_mib']:.0f} MiB"
            + (f", {idle['kib_per_socket']:.1f} KiB per socket" if idle["kib_per_socket"] is not None else "")
            + (f"; failures: {idle['failures']}" if idle["failures"] else "")
        )
    print("\nTargets (issue 9):\n" + targets_text(checks))
    if pages:
        print("\nPages:\n" + pages_text(pages))


def _write_json(
    args: argparse.Namespace,
    environment: Row,
    rows: list[Row],
    idle: Row | None,
    checks: list[Row],
    pages: dict[str, Any] | None,
) -> None:
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    document = {
        "config": config,
        "environment": environment,
        "phases": rows,
        "idle_sockets": idle,
        "targets": checks,
        "pages": pages,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2))
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    sys.exit(main())
