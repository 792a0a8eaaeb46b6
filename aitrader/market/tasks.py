"""Running a session's concurrent tasks: the first terminal task to finish, or any failure, ends all."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


async def supervise(terminal: list[Coroutine[Any, Any, None]], helpers: list[Coroutine[Any, Any, None]]) -> None:
    """Run every coroutine until a ``terminal`` one returns or any one raises; cancel the rest.

    A helper that returns normally simply stops; the first exception is re-raised.
    """
    terminal_tasks = {asyncio.ensure_future(coro) for coro in terminal}
    running = terminal_tasks | {asyncio.ensure_future(coro) for coro in helpers}
    try:
        while running:
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = task.exception()
                if error is not None:
                    raise error
            if done & terminal_tasks:
                return
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
