"""Database calls from the reply path's async code.

channels' database_sync_to_async runs every call on one thread per process by default
(thread_sensitive), so a burst of new messages queued up behind each other's SQLite
writes and the first token waited seconds. These calls touch no thread-bound state, so
they run on the loop's thread pool instead, each thread with its own kept connection.
"""

from collections.abc import Awaitable, Callable
from typing import cast

from channels.db import database_sync_to_async


def in_thread[**P, R](function: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    return cast(Callable[P, Awaitable[R]], database_sync_to_async(function, thread_sensitive=False))
