"""Several daphne processes serving one port, as `./run` starts them.

One daphne process runs one event loop on one core. The launcher binds one socket per
child on the port (SO_REUSEPORT) and starts CHATSITE_WORKERS daphne children, each on
its own (`daphne -e fd:...`): the kernel spreads new connections evenly over them. They
share Redis and the database, so any of them can serve any page, socket or stream.

The children are supervised: one that dies unexpectedly is started again. SIGINT or
SIGTERM to the launcher is passed on as SIGTERM, so each child saves its running
replies; a child whose launcher is killed outright gets SIGTERM from the kernel
(PR_SET_PDEATHSIG) and does the same, instead of living on without a parent.
"""

import ctypes
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# A child that exits this soon after starting, this many times in a row, is not restarted:
# it is failing on start (a bad setting), not crashing under load.
QUICK_EXIT_SECONDS = 10.0
QUICK_EXITS_ALLOWED = 3
# A child stopping lets its replies finish (CHATSITE_DRAIN_SECONDS, default 20), then saves
# the rest and closes its connections; it is killed only if it takes longer than that.
STOP_AFTER_DRAIN_SECONDS = 15.0
_PR_SET_PDEATHSIG = 1


def worker_count(value: str) -> int:
    """CHATSITE_WORKERS: empty means one per core."""
    if not value.strip():
        return max(1, os.cpu_count() or 1)
    count = int(value)
    if count < 1:
        raise ValueError("CHATSITE_WORKERS must be 1 or more")
    return count


def raise_open_files_limit() -> None:
    """Each stream, socket and Redis connection is a file descriptor; 1,024 is too few."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _bound(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    return sock


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """One listening socket per worker, all on the same port (SO_REUSEPORT).

    The kernel spreads new connections evenly over them. One socket shared by every
    worker let whichever was awake first accept a burst: with 2 workers and 200 streams
    starting at once, one worker took 60-75% of the work (CPU measured per process by
    `./run bench`), and the burst lasted as long as that worker needed.
    """
    # Without SO_REUSEPORT first: a port another server holds (even with SO_REUSEPORT,
    # like a second Chatsite) fails here, instead of being shared with it.
    with _bound(host, port, reuse_port=False) as probe:
        port = probe.getsockname()[1]
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = _bound(host, port, reuse_port=True)
            socks.append(sock)
            sock.listen(2048)
            sock.set_inheritable(True)
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class WorkerPool:
    def __init__(
        self,
        *,
        socks: list[socket.socket],
        daphne_args: list[str],
        on_tick: Callable[[], None] = lambda: None,
        on_exit: Callable[[int], None] = lambda _pid: None,
    ) -> None:
        self.on_tick = on_tick  # what else the launcher supervises (its Redis)
        self.on_exit = on_exit  # told the pid of a child that exited (its metrics are cleared)
        self.daphne_args = daphne_args
        self.socks = socks
        # daphne's `fd:` endpoint adopts IPv4 sockets only (it passes its `domain` option on
        # as text), so an IPv6 address is served by one process that binds it itself.
        if socks[0].family == socket.AF_INET6:
            host, port = socks[0].getsockname()[:2]
            for sock in socks:
                sock.close()
            self.socks = []
            self.bindings = [["-b", host, "-p", str(port)]]
        else:
            # Each worker its own socket, for good: one started again takes its place.
            self.bindings = [["-e", f"fd:fileno={sock.fileno()}"] for sock in socks]
        self.count = len(self.bindings)
        self.children: list[tuple[subprocess.Popen[bytes], float]] = []
        self.stopping = False

    def _spawn(self, index: int) -> tuple[subprocess.Popen[bytes], float]:
        inherited = [self.socks[index].fileno()] if self.socks else []
        command = [
            sys.executable,
            "-m",
            "daphne",
            *self.bindings[index],
            *self.daphne_args,
            "chatsite.serving:application",
        ]
        process = subprocess.Popen(command, cwd=BASE_DIR, pass_fds=inherited, preexec_fn=_die_with_parent)
        return process, time.monotonic()

    def run(self) -> int:
        """Serve until SIGINT/SIGTERM; returns the exit status."""
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def stop(_signum: int, _frame: object) -> None:
            self.stopping = True

        for sig in previous:
            signal.signal(sig, stop)
        try:
            self.children = [self._spawn(index) for index in range(self.count)]
            return self._supervise()
        finally:
            self._stop_children()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _supervise(self, sleep: Callable[[float], None] = time.sleep) -> int:
        quick_exits = 0
        while not self.stopping:
            sleep(0.2)
            self.on_tick()
            for index, (process, started) in enumerate(self.children):
                code = process.poll()
                if code is None or self.stopping:
                    continue
                self.on_exit(process.pid)
                quick = time.monotonic() - started < QUICK_EXIT_SECONDS
                quick_exits = quick_exits + 1 if quick else 0
                if quick_exits >= QUICK_EXITS_ALLOWED:
                    print(f"  A serving process keeps exiting at start ({code}); stopping.", flush=True)
                    return 1
                print(f"  A serving process exited (status {code}); starting another.", flush=True)
                self.children[index] = self._spawn(index)
        return 0

    def _stop_children(self) -> None:
        for process, _started in self.children:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        drain = float(os.environ.get("CHATSITE_DRAIN_SECONDS", "").strip() or 20.0)
        deadline = time.monotonic() + drain + STOP_AFTER_DRAIN_SECONDS
        for process, _started in self.children:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
