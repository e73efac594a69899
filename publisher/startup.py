"""Start-up that does not wait for the slowest part: listen first, load later.

aiohttp runs every cleanup context's start-up to the end before the HTTP site may open, so
one part that loads a whole store of a million certificates (the LDAP directory, the OCSP
answers) would keep /healthz, the CRLs and every other part closed for as long as it takes.
`DeferredStart.defer` turns such a context into one whose start-up runs as a background task:
the site opens at once, and `pkirepo serve` waits for the deferred start-ups afterwards (a
failure there still stops the server, as it would have before listening). Meanwhile each part
answers as it does before it is ready (OCSP tryLater, LDAP not yet listening).
"""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator, Callable

from .tasks import cancel_and_wait

Context = Callable[[object], AsyncIterator[None]]


class DeferredStart:
    """Collects the start-up tasks of the contexts it deferred."""

    def __init__(self) -> None:
        self._tasks: list[tuple[str, asyncio.Task]] = []
        self.durations: dict[str, float] = {}

    def defer(self, ctx: Context, name: str) -> Context:
        """`ctx` with its start-up (everything before its yield) run in the background."""

        async def deferred(app) -> AsyncIterator[None]:
            gen = ctx(app)
            started = time.monotonic()

            async def start() -> None:
                await gen.__anext__()
                self.durations[name] = time.monotonic() - started

            task = asyncio.create_task(start(), name=f"pkirepo-start-{name}")
            self._tasks.append((name, task))
            try:
                yield
            finally:
                if not task.done():
                    # Cancelled mid-way: the context's own finally blocks release what it held.
                    await cancel_and_wait(task)
                elif not task.cancelled() and task.exception() is None:
                    try:
                        await gen.__anext__()  # its cleanup
                    except StopAsyncIteration:
                        pass

        deferred.__qualname__ = f"deferred({getattr(ctx, '__qualname__', name)})"
        return deferred

    async def wait(self) -> None:
        """Until every deferred start-up has finished; raises the first one's error."""
        for _, task in list(self._tasks):
            await asyncio.shield(task)
