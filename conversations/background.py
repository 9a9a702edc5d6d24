"""Small requests Chatsite makes of the model for itself after a reply (a title, a
summary), run as tasks on this process's event loop beside the reply's job."""

import asyncio
from collections.abc import Coroutine
from typing import Any

# Strong references to the tasks (the event loop keeps weak ones only).
_running: set[asyncio.Task[None]] = set()


def background_start(work: Coroutine[Any, Any, None], *, name: str) -> None:
    task = asyncio.get_running_loop().create_task(work, name=name)
    _running.add(task)
    task.add_done_callback(_running.discard)


async def background_settled() -> None:
    """Wait for every such task of this process (for tests)."""
    while _running:
        await asyncio.gather(*list(_running), return_exceptions=True)
