"""Background tasks stopped in order: cancel, then wait until each has really ended, so
nothing it owns (a store connection, a listening port) is used after its owner closes it."""
from __future__ import annotations

import asyncio


async def cancel_and_wait(*tasks: asyncio.Task) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            pass
