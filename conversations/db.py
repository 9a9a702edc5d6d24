"""Database calls from the reply path's async code.

channels' database_sync_to_async runs every call on one thread per process by default
(thread_sensitive), so a burst of new messages queued up behind each other's SQLite
writes and the first token waited seconds. Reads run on the loop's thread pool instead,
each thread with its own kept connection.

Writes go to one writer thread per process, and on SQLite they take a file lock beside
the database first. SQLite lets one writer in at a time, and one that finds the database
locked sleeps and retries with growing pauses (up to 100 ms): two hundred writers at once
slept in every pool thread, and reads queued behind them. In line for one lock, each
write starts the moment the one before ends.
"""

import atexit
import fcntl
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO, cast

from channels.db import database_sync_to_async
from django.db import connection

_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-writer")
_lock_files: dict[str, IO[bytes]] = {}
_lock_files_guard = threading.Lock()


def in_thread[**P, R](function: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    return cast(Callable[P, Awaitable[R]], database_sync_to_async(function, thread_sensitive=False))


@contextmanager
def _sqlite_write_lock() -> Iterator[None]:
    if connection.vendor != "sqlite":
        yield
        return
    name = str(connection.settings_dict["NAME"])
    with _lock_files_guard:
        lock_file = _lock_files.get(name)
        if lock_file is None:
            lock_file = _lock_files[name] = Path(name + ".write-lock").open("ab")  # noqa: SIM115
    fcntl.flock(lock_file, fcntl.LOCK_EX)  # the kernel wakes the next in line: no polling
    try:
        yield
    finally:
        fcntl.flock(lock_file, fcntl.LOCK_UN)


@atexit.register
def _lock_files_close() -> None:
    # Each stays open for the process's life (no open and close per write); closed at
    # exit so that Python does not warn about files left open.
    with _lock_files_guard:
        for lock_file in _lock_files.values():
            lock_file.close()
        _lock_files.clear()


def in_write_thread[**P, R](function: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run a write (one transaction) on the process's writer thread, in line for the database."""

    def write(*args: P.args, **kwargs: P.kwargs) -> R:
        with _sqlite_write_lock():
            return function(*args, **kwargs)

    return cast(
        Callable[P, Awaitable[R]], database_sync_to_async(write, thread_sensitive=False, executor=_writer)
    )
